/* ckpt_driver OUT.h5: writes a checkpoint with known contents (f32 [3, 5] = i * 0.5, bf16 [4] = the
 * bits of 1, -2, 0.5, 3.25, i64 [2] = {7, -9}, attributes step = 42, lr = 0.001, text = "héllo") for
 * tests/reference/ckpt_h5py.sh to read with h5py + hdf5plugin. */
#include <stdio.h>

#include "train/ckpt.h"

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    float f[15];
    for (int i = 0; i < 15; i++) f[i] = (float)i * 0.5f;
    const uint16_t b[4] = {0x3F80, 0xC000, 0x3F00, 0x4050};
    const int64_t iv[2] = {7, -9};
    const lt_ckpt_item it[3] = {{.name = "lora/a", .dtype = LT_DTYPE_F32, .ndim = 2, .shape = {3, 5}, .data = f},
                                {.name = "lora/b", .dtype = LT_DTYPE_BF16, .ndim = 1, .shape = {4, 1}, .data = b},
                                {.name = "state/i", .dtype = LT_DTYPE_I64, .ndim = 1, .shape = {2, 1}, .data = iv}};
    const lt_ckpt_attr at[3] = {{.name = "step", .kind = LT_CKPT_INT, .i = 42},
                                {.name = "lr", .kind = LT_CKPT_FLOAT, .f = 0.001},
                                {.name = "text", .kind = LT_CKPT_STR, .s = "h\xc3\xa9llo"}};
    lt_status st = lt_ckpt_write(argv[1], it, 3, at, 3);
    if (st) {
        fprintf(stderr, "ckpt_driver: %s\n", lt_status_msg(st));
        return 1;
    }
    return 0;
}
