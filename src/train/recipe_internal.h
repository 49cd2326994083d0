/* Seams between recipe.c (the schema) and recipe_yaml.c (YAML -> a tree with positions). */
#ifndef LT_TRAIN_RECIPE_INTERNAL_H
#define LT_TRAIN_RECIPE_INTERNAL_H

#include "core/core.h"

typedef enum lt_ynode_kind { LT_Y_SCALAR = 0, LT_Y_MAP, LT_Y_SEQ } lt_ynode_kind;

typedef struct lt_ynode {
    lt_ynode_kind kind;
    int line, col;           /* 1-based, of the node's first character */
    char *str;               /* scalar text */
    size_t len;
    bool quoted;             /* a quoted scalar: always a string, never a number / bool / null */
    int n, cap;
    struct lt_ynode **items; /* map values / sequence items */
    struct lt_ynode **keys;  /* map keys (scalars) */
} lt_ynode;

/* Parses one YAML document; where names it in messages. An empty document gives *out NULL. */
lt_status lt_yaml_parse(const char *text, size_t len, const char *where, lt_ynode **out);
void lt_ynode_free(lt_ynode *n);

#endif
