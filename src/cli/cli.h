/* cli — `loft` subcommands: argument parsing and nothing else. Each command is
 * `int lt_cmd_<name>(int argc, char **argv)` returning the process exit status
 * (0 ok, 1 failure, 2 usage error). */
#ifndef LT_CLI_H
#define LT_CLI_H

#include "core/core.h"
#include "model/model.h"

/* One option of a subcommand. value_name NULL = a flag without a value. */
typedef struct lt_opt {
    const char *name; /* "model" for --model */
    const char *value_name;
    const char *help;
    const char *value; /* filled by lt_args_parse: the value, "1" for a set flag, NULL if absent */
} lt_opt;

typedef struct lt_cmd_info {
    const char *name;
    const char *summary;
    const char *usage; /* after "loft <name> " */
    lt_opt *opts;      /* terminated by an entry with name NULL */
} lt_cmd_info;

/* Parses argv[1..] (argv[0] is the subcommand). Positional arguments are stored in pos (up to
 * max_pos). Prints help and returns 0 with *done set for --help; prints an error naming the
 * option and returns 2 on bad usage; returns -1 to continue. */
int lt_args_parse(const lt_cmd_info *cmd, int argc, char **argv, const char **pos, int max_pos, int *n_pos);
void lt_args_help(const lt_cmd_info *cmd, FILE *out);
const char *lt_opt_get(const lt_cmd_info *cmd, const char *name);

/* Typed option readers: on a bad value they print "loft <cmd>: --name: expected ..." and return false. */
bool lt_opt_int(const lt_cmd_info *cmd, const char *name, int64_t def, int64_t lo, int64_t hi, int64_t *out);
bool lt_opt_float(const lt_cmd_info *cmd, const char *name, double def, double lo, double hi, double *out);
/* "1,2,3" or "1 2 3" -> malloc'ed int32 array (free()); false on a bad list. */
bool lt_parse_ids(const char *cmd, const char *opt, const char *s, int32_t **ids, int64_t *n);

/* The options that say how a model is loaded (budget, quantization), for a command's option table. */
#define LT_MODEL_LOAD_OPTS                                                                                            \
    {"budget-gb", "GB", "memory budget for the pool (default 128)", NULL},                                            \
        {"quant", "FORMAT", "hold Linear weights quantized: nf4, nf4_nodq, mxfp4, nvfp4, q8_0, bf16 (default: f32)",   \
         NULL},                                                                                                        \
        {"quant-embeddings", NULL, "with --quant: quantize the token embedding table too (and lm_head when tied)",     \
         NULL},                                                                                                        \
        {"quant-lm-head", NULL, "with --quant: quantize an untied lm_head too", NULL},                                 \
        {"quant-cache", "DIR", "with --quant: load the quantized model from DIR, writing it there first when absent",  \
         NULL}
/* Creates the pool and loads --model with the LT_MODEL_LOAD_OPTS of cmd; prints any failure itself
 * and returns its exit status (0 ok). */
int lt_cli_open_model(const lt_cmd_info *cmd, lt_pool **pool, lt_model **m);

/* Prints "loft <cmd>: <message>" for a failed status, frees it, returns 1. */
int lt_cli_fail(const char *cmd, lt_status st);

int lt_cmd_make_model(int argc, char **argv);
int lt_cmd_inspect(int argc, char **argv);
int lt_cmd_logits(int argc, char **argv);
int lt_cmd_generate(int argc, char **argv);
int lt_cmd_quantize(int argc, char **argv);
int lt_cmd_tokenize(int argc, char **argv);
int lt_cmd_template(int argc, char **argv);
int lt_cmd_train(int argc, char **argv);
int lt_cmd_export(int argc, char **argv);
int lt_cmd_merge(int argc, char **argv);
int lt_cmd_eval(int argc, char **argv);
int lt_cmd_plot(int argc, char **argv);

/* --adapter on the inference commands: loads --model as the adapter was trained (a checkpoint says its
 * quantization), merges the adapter into the dequantized weights and keeps the merged f32 model. */
int lt_cli_open_model_adapter(const lt_cmd_info *cmd, const char *adapter, lt_pool **pool, lt_model **m);

#endif
