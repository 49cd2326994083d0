/* Seams of the checkpoint module: the zstd HDF5 filter. */
#ifndef LT_TRAIN_CKPT_INTERNAL_H
#define LT_TRAIN_CKPT_INTERNAL_H

#include <stdbool.h>

#define LT_H5Z_ZSTD 32015
/* Registers the filter with the HDF5 library once (idempotent); false when HDF5 refuses. */
bool lt_h5_zstd_register(void);

#endif
