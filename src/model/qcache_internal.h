/* Internal to src/model: the quantized model directory format, shared by its writer
 * (qcache_write.c: lt_model_quantize_dir) and its loader (qcache.c). The format itself is
 * described in model.h above lt_model_quantize_dir. */
#ifndef LT_QCACHE_INTERNAL_H
#define LT_QCACHE_INTERNAL_H

#include "model/model_internal.h"

#define LT_QDIR_VERSION "1"
#define LT_QDIR_MAX_CONFIG (16LL << 20) /* config.json of real models: < 10 KB */
#define LT_QDIR_NAME_CAP 128            /* a spec name (< 96) + "." + the longest component name */

/* __metadata__ keys */
#define LT_QK_VERSION "loft.version"
#define LT_QK_FORMAT "loft.format"
#define LT_QK_BLOCK "loft.block"
#define LT_QK_EMB "loft.quantize_embeddings"
#define LT_QK_LM "loft.quantize_lm_head"
#define LT_QK_SHA "loft.source_sha256"
#define LT_QK_FP "loft.source_fingerprint"
#define LT_QK_SOURCE "loft.source"

/* Output name of component slot s of weight: "<weight>.<component name>". */
void lt_qdir_comp_name(const char *weight, const lt_qlayout *L, int s, char buf[LT_QDIR_NAME_CAP]);
/* Stored shape of component slot s: codes and block scales [rows, count / rows], the per-group
 * and per-tensor values 1-D [count]. */
void lt_qdir_comp_shape(const lt_qlayout *L, int s, int *ndim, int64_t shape[2]);
/* The options a directory is written with, normalised so that equal models compare equal: the
 * lm_head flag means nothing for tied embeddings. */
lt_load_opts lt_qdir_norm_opts(const lt_load_opts *o, const lt_model_config *cfg);
/* The cheap source fingerprint (see lt_model_source_fingerprint) of config.json's bytes and the
 * opened safetensors files of the source. */
void lt_qdir_fingerprint(const char *config, int64_t config_len, const lt_st_set *set, char hex[LT_SHA256_HEX]);

#endif
