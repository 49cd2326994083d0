/* The Zstandard HDF5 filter (registered id 32015, cd_values[0] = compression level: the layout hdf5plugin's
 * "zstd" filter and the HDF5 filter registry use), registered in-process so that loft needs no plugin path
 * and its files open in h5py with `import hdf5plugin`. Each chunk is one zstd frame that records its content
 * size. */
#include <hdf5.h>
#include <stdlib.h>
#include <zstd.h>

#include "train/ckpt_internal.h"

static size_t zstd_filter(unsigned int flags, size_t cd_nelmts, const unsigned int cd_values[], size_t nbytes,
                          size_t *buf_size, void **buf) {
    if (flags & H5Z_FLAG_REVERSE) {
        const unsigned long long n = ZSTD_getFrameContentSize(*buf, nbytes);
        if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN || n > ((size_t)1 << 40)) return 0;
        void *out = malloc(n ? (size_t)n : 1);
        if (!out) return 0;
        const size_t got = ZSTD_decompress(out, (size_t)n, *buf, nbytes);
        if (ZSTD_isError(got) || got != n) {
            free(out);
            return 0;
        }
        free(*buf);
        *buf = out;
        *buf_size = (size_t)n;
        return (size_t)n;
    }
    const int level = cd_nelmts > 0 ? (int)cd_values[0] : 3;
    const size_t cap = ZSTD_compressBound(nbytes);
    void *out = malloc(cap);
    if (!out) return 0;
    const size_t got = ZSTD_compress(out, cap, *buf, nbytes, level);
    if (ZSTD_isError(got)) {
        free(out);
        return 0;
    }
    free(*buf);
    *buf = out;
    *buf_size = cap;
    return got;
}

static const H5Z_class2_t k_zstd = {
    H5Z_CLASS_T_VERS, (H5Z_filter_t)LT_H5Z_ZSTD, 1, 1, "Zstandard (loft, id 32015)", NULL, NULL, zstd_filter,
};

bool lt_h5_zstd_register(void) {
    if (H5Zfilter_avail(LT_H5Z_ZSTD) > 0) return true;
    return H5Zregister(&k_zstd) >= 0;
}

#ifdef LT_H5_PLUGIN
/* Built as a loadable HDF5 filter plugin too (CMake target loft_h5zstd, libloft_h5zstd.so next to the loft
 * binary): any HDF5 program — h5py, h5dump — reads loft checkpoints with HDF5_PLUGIN_PATH pointing there,
 * also where no zstd plugin is packaged (Debian 12). pip's hdf5plugin carries its own for the same id. */
#include <H5PLextern.h>
H5PL_type_t H5PLget_plugin_type(void) { return H5PL_TYPE_FILTER; }
const void *H5PLget_plugin_info(void) { return &k_zstd; }
#endif
