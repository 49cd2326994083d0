/* train/ckpt — checkpoint files (HDF5, zstd-compressed datasets) and the checkpoint directory.
 *
 * Usage (writing; names and contents are the trainer's, this module stores what it is given):
 *   lt_ckpt_item items[] = {
 *       {.name = "lora/layers.0.q_proj.A.master", .dtype = LT_DTYPE_F32, .ndim = 2, .shape = {16, 4096}, .data = p},
 *       ...};
 *   lt_ckpt_attr attrs[] = {{.name = "step", .kind = LT_CKPT_INT, .i = 100},
 *                           {.name = "recipe", .kind = LT_CKPT_STR, .s = text}, ...};
 *   st = lt_ckpt_dir_save("runs/x/checkpoints", 100, items, n_items, attrs, n_attrs, keep_last, &path);
 *
 * Reading:
 *   char path[4096]; st = lt_ckpt_dir_resolve("runs/x/checkpoints", "latest", path, sizeof path, log_cb);
 *   lt_ckpt *c; st = lt_ckpt_open(path, &c);          // verifies the checksum before returning
 *   st = lt_ckpt_read(c, "lora/layers.0.q_proj.A.master", LT_DTYPE_F32, n_elems, dst);
 *   st = lt_ckpt_attr_int(c, "step", &step); ... lt_ckpt_close(c);
 *
 * File: one HDF5 file, each item a dataset at its name (slashes make groups) with its shape and dtype
 * (BF16 stored as 16-bit opaque-free integers with attribute "loft_dtype" = "bf16"; F32 native float),
 * chunked and compressed with zstd through HDF5 filter id 32015 (registered in-process with libzstd, the
 * id and cd_values layout hdf5plugin uses, so h5py + hdf5plugin read the files); attributes on the root
 * group. Root attribute "loft_checksum" = SHA-256 over every item (name, dtype, shape, raw bytes) and every
 * attribute (name, value) in name order, so any damage the HDF5 layer does not catch is caught here.
 *
 * Atomicity: written to "<final>.tmp-<pid>" in the same directory, fsync'd, renamed, directory fsync'd;
 * then the "latest" file (its content: the checkpoint file name + "\n") is replaced the same way; then
 * checkpoints beyond keep_last (oldest step first) are removed. A crash at any point leaves the previous
 * checkpoint and pointer intact; a stale .tmp is ignored and removed by the next save.
 * File names: "step-%08lld.h5".
 */
#ifndef LT_TRAIN_CKPT_H
#define LT_TRAIN_CKPT_H

#include "core/core.h"

typedef struct lt_ckpt_item {
    const char *name;
    lt_dtype dtype; /* F32, BF16, I32, I64, U8 */
    int ndim;       /* 1 or 2 */
    int64_t shape[2];
    const void *data;
} lt_ckpt_item;

typedef enum lt_ckpt_attr_kind { LT_CKPT_INT = 0, LT_CKPT_FLOAT, LT_CKPT_STR } lt_ckpt_attr_kind;
typedef struct lt_ckpt_attr {
    const char *name;
    lt_ckpt_attr_kind kind;
    int64_t i;
    double f;
    const char *s;
} lt_ckpt_attr;

/* Writes one checkpoint file at path (atomically, as above). */
lt_status lt_ckpt_write(const char *path, const lt_ckpt_item *items, int64_t n_items, const lt_ckpt_attr *attrs,
                        int64_t n_attrs);

/* Saves step-<step>.h5 in dir (created when missing), updates "latest", prunes to keep_last (0 = keep
 * all). *path_out (malloc'd, may be NULL) gets the file written. */
lt_status lt_ckpt_dir_save(const char *dir, int64_t step, const lt_ckpt_item *items, int64_t n_items,
                           const lt_ckpt_attr *attrs, int64_t n_attrs, int64_t keep_last, char **path_out);

/* which: "latest" (the pointer's target, else the highest step), a file path, or a step number.
 * For "latest", a checkpoint that fails to open (truncated, bad checksum) is reported through warn
 * (what failed and which one is used instead) and the next older valid one is chosen; fails when none
 * is valid, naming each that was tried. */
typedef void (*lt_ckpt_warn_fn)(void *ctx, const char *msg);
lt_status lt_ckpt_dir_resolve(const char *dir, const char *which, char *path, size_t cap, lt_ckpt_warn_fn warn,
                              void *warn_ctx);

typedef struct lt_ckpt lt_ckpt;
lt_status lt_ckpt_open(const char *path, lt_ckpt **out); /* reads everything and verifies the checksum */
void lt_ckpt_close(lt_ckpt *c);
bool lt_ckpt_has(const lt_ckpt *c, const char *name);
/* Item shape/dtype; fails naming the item when absent. */
lt_status lt_ckpt_item_info(const lt_ckpt *c, const char *name, lt_dtype *dtype, int *ndim, int64_t shape[2]);
/* Copies item `name` (which must have dtype and n_elems elements, else an error names both) to dst. */
lt_status lt_ckpt_read(const lt_ckpt *c, const char *name, lt_dtype dtype, int64_t n_elems, void *dst);
lt_status lt_ckpt_attr_int(const lt_ckpt *c, const char *name, int64_t *out);
lt_status lt_ckpt_attr_float(const lt_ckpt *c, const char *name, double *out);
/* Pointer owned by c. */
lt_status lt_ckpt_attr_str(const lt_ckpt *c, const char *name, const char **out);
/* Names of all items, in name order (owned by c). */
int64_t lt_ckpt_n_items(const lt_ckpt *c);
const char *lt_ckpt_item_name(const lt_ckpt *c, int64_t i);

#endif
