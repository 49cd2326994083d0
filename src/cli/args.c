/* Argument parsing shared by every subcommand: --name value, --name=value, flags, --help. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static lt_opt *lt_find_opt(const lt_cmd_info *cmd, const char *name, size_t len) {
    for (lt_opt *o = cmd->opts; o && o->name; o++)
        if (strlen(o->name) == len && !strncmp(o->name, name, len)) return o;
    return NULL;
}

void lt_args_help(const lt_cmd_info *cmd, FILE *out) {
    fprintf(out, "loft %s — %s\n\nusage: loft %s %s\n", cmd->name, cmd->summary, cmd->name, cmd->usage);
    if (cmd->opts && cmd->opts->name) fprintf(out, "\noptions:\n");
    for (lt_opt *o = cmd->opts; o && o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->value_name ? " " : "", o->value_name ? o->value_name : "");
        fprintf(out, "  %-26s %s\n", left, o->help);
    }
    fprintf(out, "  %-26s %s\n", "--help", "show this help");
}

int lt_args_parse(const lt_cmd_info *cmd, int argc, char **argv, const char **pos, int max_pos, int *n_pos) {
    *n_pos = 0;
    for (lt_opt *o = cmd->opts; o && o->name; o++) o->value = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            lt_args_help(cmd, stdout);
            return 0;
        }
        if (a[0] == '-' && a[1] == '-' && a[2]) {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            lt_opt *o = lt_find_opt(cmd, name, len);
            if (!o) {
                fprintf(stderr, "loft %s: unknown option '%.*s'; see 'loft %s --help'\n", cmd->name, (int)len + 2, a,
                        cmd->name);
                return 2;
            }
            if (!o->value_name) {
                if (eq) {
                    fprintf(stderr, "loft %s: --%s takes no value\n", cmd->name, o->name);
                    return 2;
                }
                o->value = "1";
            } else if (eq) {
                o->value = eq + 1;
            } else if (i + 1 < argc) {
                o->value = argv[++i];
            } else {
                fprintf(stderr, "loft %s: --%s needs a value (%s)\n", cmd->name, o->name, o->value_name);
                return 2;
            }
            continue;
        }
        if (*n_pos >= max_pos) {
            fprintf(stderr, "loft %s: unexpected argument '%s'; usage: loft %s %s\n", cmd->name, a, cmd->name,
                    cmd->usage);
            return 2;
        }
        pos[(*n_pos)++] = a;
    }
    return -1;
}

const char *lt_opt_get(const lt_cmd_info *cmd, const char *name) {
    lt_opt *o = lt_find_opt(cmd, name, strlen(name));
    LT_ASSERT(o);
    return o->value;
}

bool lt_opt_int(const lt_cmd_info *cmd, const char *name, int64_t def, int64_t lo, int64_t hi, int64_t *out) {
    const char *v = lt_opt_get(cmd, name);
    if (!v) {
        *out = def;
        return true;
    }
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 0);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "loft %s: --%s: expected an integer in [%lld, %lld], got '%s'\n", cmd->name, name,
                (long long)lo, (long long)hi, v);
        return false;
    }
    *out = x;
    return true;
}

bool lt_opt_float(const lt_cmd_info *cmd, const char *name, double def, double lo, double hi, double *out) {
    const char *v = lt_opt_get(cmd, name);
    if (!v) {
        *out = def;
        return true;
    }
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x) || x < lo || x > hi) {
        fprintf(stderr, "loft %s: --%s: expected a number in [%g, %g], got '%s'\n", cmd->name, name, lo, hi, v);
        return false;
    }
    *out = x;
    return true;
}

bool lt_parse_ids(const char *cmd, const char *opt, const char *s, int32_t **ids, int64_t *n) {
    *ids = NULL;
    *n = 0;
    int64_t cap = 16;
    int32_t *v = malloc((size_t)cap * sizeof *v);
    if (!v) return false;
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT32_MAX) {
            fprintf(stderr, "loft %s: --%s: expected token ids like 1,2,3 (non-negative integers), bad entry at '%.20s'\n",
                    cmd, opt, p);
            free(v);
            return false;
        }
        if (*n == cap) {
            cap *= 2;
            int32_t *nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) {
                free(v);
                return false;
            }
            v = nv;
        }
        v[(*n)++] = (int32_t)x;
        p = end;
        if (*p && *p != ',' && *p != ' ' && *p != '\t' && *p != '\n') {
            fprintf(stderr, "loft %s: --%s: unexpected character '%c' in the id list\n", cmd, opt, *p);
            free(v);
            return false;
        }
    }
    if (*n == 0) {
        fprintf(stderr, "loft %s: --%s: the id list is empty\n", cmd, opt);
        free(v);
        return false;
    }
    *ids = v;
    return true;
}

int lt_cli_fail(const char *cmd, lt_status st) {
    fprintf(stderr, "loft %s: %s\n", cmd, lt_status_msg(st));
    lt_status_free(st);
    return 1;
}
