/* A small YAML tree from libyaml's event stream, keeping each node's line:column, refusing what a recipe
 * never needs and what hides meaning (anchors, aliases, explicit tags, several documents, duplicate keys). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "train/recipe_internal.h"

static lt_ynode *node_new(lt_ynode_kind k, const yaml_mark_t *m) {
    lt_ynode *n = calloc(1, sizeof *n);
    if (n) {
        n->kind = k;
        n->line = (int)m->line + 1;
        n->col = (int)m->column + 1;
    }
    return n;
}

void lt_ynode_free(lt_ynode *n) {
    if (!n) return;
    for (int i = 0; i < n->n; i++) {
        lt_ynode_free(n->items[i]);
        if (n->keys) lt_ynode_free(n->keys[i]);
    }
    free(n->items);
    free(n->keys);
    free(n->str);
    free(n);
}

static bool node_push(lt_ynode *parent, lt_ynode *key, lt_ynode *child) {
    if (parent->n == parent->cap) {
        int cap = parent->cap ? parent->cap * 2 : 8;
        lt_ynode **it = realloc(parent->items, (size_t)cap * sizeof *it);
        if (!it) return false;
        parent->items = it;
        if (parent->kind == LT_Y_MAP) {
            lt_ynode **ks = realloc(parent->keys, (size_t)cap * sizeof *ks);
            if (!ks) return false;
            parent->keys = ks;
        }
        parent->cap = cap;
    }
    if (parent->kind == LT_Y_MAP) parent->keys[parent->n] = key;
    parent->items[parent->n++] = child;
    return true;
}

typedef struct yctx {
    yaml_parser_t p;
    const char *where;
    lt_status err;
} yctx;

static lt_status yerr(yctx *c, const yaml_mark_t *m, const char *what) {
    return lt_errorf(LT_ERR_FORMAT, "%s:%d:%d: %s", c->where, (int)m->line + 1, (int)m->column + 1, what);
}

/* Reads one node whose first event is ev (consumed by the caller). */
static lt_status read_node(yctx *c, yaml_event_t *ev, int depth, lt_ynode **out) {
    *out = NULL;
    if (depth > 32) return yerr(c, &ev->start_mark, "nesting deeper than 32 levels (a recipe is two or three)");
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        return yerr(c, &ev->start_mark, "aliases (*name) are not accepted in recipes: write the value out");
    case YAML_SCALAR_EVENT: {
        if (ev->data.scalar.anchor)
            return yerr(c, &ev->start_mark, "anchors (&name) are not accepted in recipes: write values out");
        if (ev->data.scalar.tag && !ev->data.scalar.plain_implicit && !ev->data.scalar.quoted_implicit)
            return yerr(c, &ev->start_mark, "explicit tags (!!type) are not accepted in recipes");
        lt_ynode *n = node_new(LT_Y_SCALAR, &ev->start_mark);
        if (!n) return lt_errorf(LT_ERR_NOMEM, "out of memory");
        n->str = malloc(ev->data.scalar.length + 1);
        if (!n->str) {
            free(n);
            return lt_errorf(LT_ERR_NOMEM, "out of memory");
        }
        memcpy(n->str, ev->data.scalar.value, ev->data.scalar.length);
        n->str[ev->data.scalar.length] = 0;
        n->len = ev->data.scalar.length;
        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        if (strlen(n->str) != n->len) {
            lt_ynode_free(n);
            return yerr(c, &ev->start_mark, "a NUL character inside a value");
        }
        *out = n;
        return NULL;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        const bool map = ev->type == YAML_MAPPING_START_EVENT;
        const yaml_char_t *anchor = map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
        const int implicit = map ? ev->data.mapping_start.implicit : ev->data.sequence_start.implicit;
        const yaml_char_t *tag = map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag;
        if (anchor) return yerr(c, &ev->start_mark, "anchors (&name) are not accepted in recipes: write values out");
        if (tag && !implicit) return yerr(c, &ev->start_mark, "explicit tags (!!type) are not accepted in recipes");
        lt_ynode *n = node_new(map ? LT_Y_MAP : LT_Y_SEQ, &ev->start_mark);
        if (!n) return lt_errorf(LT_ERR_NOMEM, "out of memory");
        lt_status st = NULL;
        for (;;) {
            yaml_event_t e;
            if (!yaml_parser_parse(&c->p, &e)) {
                st = lt_errorf(LT_ERR_FORMAT, "%s:%d:%d: %s", c->where, (int)c->p.problem_mark.line + 1,
                               (int)c->p.problem_mark.column + 1, c->p.problem ? c->p.problem : "YAML syntax error");
                break;
            }
            if (e.type == (map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT)) {
                yaml_event_delete(&e);
                break;
            }
            lt_ynode *key = NULL, *val = NULL;
            if (map) {
                st = read_node(c, &e, depth + 1, &key);
                yaml_event_delete(&e);
                if (st) break;
                if (key->kind != LT_Y_SCALAR) {
                    st = lt_errorf(LT_ERR_FORMAT, "%s:%d:%d: a key must be a plain name", c->where, key->line, key->col);
                    lt_ynode_free(key);
                    break;
                }
                for (int i = 0; i < n->n; i++)
                    if (!strcmp(n->keys[i]->str, key->str)) {
                        st = lt_errorf(LT_ERR_FORMAT, "%s:%d:%d: key '%s' appears twice (first at line %d); keep one",
                                       c->where, key->line, key->col, key->str, n->keys[i]->line);
                        break;
                    }
                if (st) {
                    lt_ynode_free(key);
                    break;
                }
                if (!yaml_parser_parse(&c->p, &e)) {
                    lt_ynode_free(key);
                    st = lt_errorf(LT_ERR_FORMAT, "%s:%d:%d: %s", c->where, (int)c->p.problem_mark.line + 1,
                                   (int)c->p.problem_mark.column + 1,
                                   c->p.problem ? c->p.problem : "YAML syntax error");
                    break;
                }
            }
            st = read_node(c, &e, depth + 1, &val);
            yaml_event_delete(&e);
            if (st || !node_push(n, key, val)) {
                lt_ynode_free(key);
                lt_ynode_free(val);
                if (!st) st = lt_errorf(LT_ERR_NOMEM, "out of memory");
                break;
            }
        }
        if (st) {
            lt_ynode_free(n);
            return st;
        }
        *out = n;
        return NULL;
    }
    default:
        return yerr(c, &ev->start_mark, "unexpected YAML event");
    }
}

lt_status lt_yaml_parse(const char *text, size_t len, const char *where, lt_ynode **out) {
    *out = NULL;
    yctx c = {.where = where};
    if (!yaml_parser_initialize(&c.p)) return lt_errorf(LT_ERR_NOMEM, "out of memory (YAML parser)");
    yaml_parser_set_input_string(&c.p, (const unsigned char *)text, len);
    lt_status st = NULL;
    lt_ynode *root = NULL;
    int docs = 0;
    for (bool done = false; !done && !st;) {
        yaml_event_t e;
        if (!yaml_parser_parse(&c.p, &e)) {
            st = lt_errorf(LT_ERR_FORMAT, "%s:%d:%d: %s%s%s", where, (int)c.p.problem_mark.line + 1,
                           (int)c.p.problem_mark.column + 1, c.p.problem ? c.p.problem : "YAML syntax error",
                           c.p.context ? " " : "", c.p.context ? c.p.context : "");
            break;
        }
        switch (e.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) st = yerr(&c, &e.start_mark, "a second YAML document ('---'): a recipe is one document");
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        default:
            if (root) {
                st = yerr(&c, &e.start_mark, "more than one value at the top level");
                break;
            }
            st = read_node(&c, &e, 0, &root);
            break;
        }
        yaml_event_delete(&e);
    }
    yaml_parser_delete(&c.p);
    if (st) {
        lt_ynode_free(root);
        return st;
    }
    *out = root;
    return NULL;
}
