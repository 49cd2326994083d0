/* train/ckpt: round trip of every dtype and attribute kind; the checksum catches a flipped bit anywhere in
 * the data; truncated files at many lengths are refused (never a crash: this runs under ASan in CI); the
 * directory: latest pointer, keep_last pruning, stale temporaries, resolve falling back from a damaged
 * newest checkpoint with a warning, and refusing when none is valid. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "train/ckpt.h"
#include "test.h"

#define NA 3000
static float fa[NA];
static uint16_t hb[NA];
static int64_t iv[5] = {1, -2, 3, 1LL << 40, -7};

static int64_t make_items(lt_ckpt_item *it, lt_ckpt_attr *at, int64_t *n_attrs, float salt) {
    for (int i = 0; i < NA; i++) fa[i] = (float)i * 0.25f + salt, hb[i] = (uint16_t)(i * 7 + (int)salt);
    it[0] = (lt_ckpt_item){.name = "lora/layers.0.q_proj.A.master", .dtype = LT_DTYPE_F32, .ndim = 2, .shape = {30, 100}, .data = fa};
    it[1] = (lt_ckpt_item){.name = "lora/layers.0.q_proj.A.bf16", .dtype = LT_DTYPE_BF16, .ndim = 2, .shape = {30, 100}, .data = hb};
    it[2] = (lt_ckpt_item){.name = "state/ints", .dtype = LT_DTYPE_I64, .ndim = 1, .shape = {5, 1}, .data = iv};
    it[3] = (lt_ckpt_item){.name = "empty", .dtype = LT_DTYPE_F32, .ndim = 1, .shape = {0, 1}, .data = fa};
    at[0] = (lt_ckpt_attr){.name = "step", .kind = LT_CKPT_INT, .i = 17};
    at[1] = (lt_ckpt_attr){.name = "lr", .kind = LT_CKPT_FLOAT, .f = 1.25e-4};
    at[2] = (lt_ckpt_attr){.name = "recipe", .kind = LT_CKPT_STR, .s = "model:\n  path: x\n# é ✓\n"};
    at[3] = (lt_ckpt_attr){.name = "empty_str", .kind = LT_CKPT_STR, .s = ""};
    *n_attrs = 4;
    return 4;
}

static void check_contents(const char *path, float salt, int64_t want_step) {
    lt_ckpt *c = NULL;
    CHECK_OK(lt_ckpt_open(path, &c));
    if (!c) return;
    float f[NA];
    uint16_t h[NA];
    int64_t i5[5], step;
    double lr;
    const char *s;
    CHECK_OK(lt_ckpt_read(c, "lora/layers.0.q_proj.A.master", LT_DTYPE_F32, 3000, f));
    CHECK_OK(lt_ckpt_read(c, "lora/layers.0.q_proj.A.bf16", LT_DTYPE_BF16, 3000, h));
    CHECK_OK(lt_ckpt_read(c, "state/ints", LT_DTYPE_I64, 5, i5));
    bool ok = true;
    for (int i = 0; i < NA; i++) ok &= f[i] == (float)i * 0.25f + salt && h[i] == (uint16_t)(i * 7 + (int)salt);
    CHECK(ok && !memcmp(i5, iv, sizeof iv));
    CHECK_OK(lt_ckpt_attr_int(c, "step", &step));
    CHECK_OK(lt_ckpt_attr_float(c, "lr", &lr));
    CHECK_OK(lt_ckpt_attr_str(c, "recipe", &s));
    CHECK(step == want_step && lr == 1.25e-4 && !strcmp(s, "model:\n  path: x\n# é ✓\n"));
    CHECK_OK(lt_ckpt_attr_str(c, "empty_str", &s));
    CHECK(s && !s[0]);
    CHECK(lt_ckpt_has(c, "empty") && lt_ckpt_n_items(c) == 4);
    CHECK_ERR(lt_ckpt_read(c, "lora/layers.0.q_proj.A.master", LT_DTYPE_BF16, 3000, h), "expected BF16 x 3000");
    CHECK_ERR(lt_ckpt_read(c, "nope", LT_DTYPE_F32, 1, f), "no item nope");
    CHECK_ERR(lt_ckpt_attr_int(c, "lr", &step), "another type");
    lt_ckpt_close(c);
}

static void warn_cb(void *ctx, const char *m) {
    int *n = ctx;
    (*n)++;
    fprintf(stderr, "  (warning) %s\n", m);
}

int main(void) {
    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/test_ckpt", lt_test_tmpdir());
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    CHECK_OK(lt_mkdir_p(dir));
    snprintf(path, sizeof path, "%s/one.h5", dir);
    lt_ckpt_item it[4];
    lt_ckpt_attr at[4];
    int64_t na;
    const int64_t ni = make_items(it, at, &na, 0);
    CHECK_OK(lt_ckpt_write(path, it, ni, at, na));
    check_contents(path, 0, 17);

    /* damage: every single-bit flip in a spread of positions is refused or (in HDF5 slack/unused bytes)
       harmless; it never crashes and never returns different data */
    char *buf = NULL;
    int64_t n = 0;
    CHECK_OK(lt_read_file(path, 1 << 26, &buf, &n));
    char bad[4300];
    snprintf(bad, sizeof bad, "%s/bad.h5", dir);
    int refused = 0, harmless = 0;
    for (int64_t pos = 0; buf && pos < n; pos += n / 97 + 1) {
        buf[pos] ^= 0x10;
        CHECK_OK(lt_write_file_atomic(bad, buf, n));
        buf[pos] ^= 0x10;
        lt_ckpt *c = NULL;
        lt_status st = lt_ckpt_open(bad, &c);
        if (st) {
            refused++;
            lt_status_free(st);
        } else {
            harmless++;
            lt_ckpt_close(c);
            check_contents(bad, 0, 17); /* opened: the checksum proves the contents are the original */
        }
    }
    printf("bit flips: %d refused, %d in bytes that carry nothing\n", refused, harmless);
    CHECK(refused > 10);
    /* truncations */
    int trunc_refused = 0;
    for (int64_t len = 0; buf && len < n; len += n / 61 + 1) {
        CHECK_OK(lt_write_file_atomic(bad, buf, len));
        lt_ckpt *c = NULL;
        lt_status st = lt_ckpt_open(bad, &c);
        CHECKF(st != NULL, "a checkpoint truncated to %lld of %lld bytes opened", (long long)len, (long long)n);
        trunc_refused += st != NULL;
        lt_status_free(st);
        lt_ckpt_close(c);
    }
    CHECK(trunc_refused > 50);
    free(buf);

    /* the directory */
    char cdir[4300];
    snprintf(cdir, sizeof cdir, "%s/run/checkpoints", dir);
    for (int s = 1; s <= 5; s++) {
        make_items(it, at, &na, (float)s);
        at[0].i = s;
        char *w = NULL;
        CHECK_OK(lt_ckpt_dir_save(cdir, s * 10, it, ni, at, na, 3, &w));
        CHECK(w && strstr(w, "step-000000") != NULL);
        free(w);
    }
    char p[4400];
    struct stat sb;
    snprintf(p, sizeof p, "%s/step-00000020.h5", cdir);
    CHECK(stat(p, &sb) != 0); /* pruned: keep_last 3 keeps 30, 40, 50 */
    snprintf(p, sizeof p, "%s/step-00000030.h5", cdir);
    CHECK(stat(p, &sb) == 0);
    char got[4300];
    int warnings = 0;
    CHECK_OK(lt_ckpt_dir_resolve(cdir, "latest", got, sizeof got, warn_cb, &warnings));
    CHECK(strstr(got, "step-00000050.h5") && warnings == 0);
    CHECK_OK(lt_ckpt_dir_resolve(cdir, "40", got, sizeof got, warn_cb, &warnings));
    CHECK(strstr(got, "step-00000040.h5"));
    /* a stale temporary is removed by the next save */
    snprintf(p, sizeof p, "%s/step-00000060.h5.tmp-99999", cdir);
    CHECK_OK(lt_write_file_atomic(p, "partial", 7));
    /* the newest truncated: resolve warns and falls back to 40 */
    snprintf(p, sizeof p, "%s/step-00000050.h5", cdir);
    CHECK(truncate(p, 1000) == 0);
    CHECK_OK(lt_ckpt_dir_resolve(cdir, "latest", got, sizeof got, warn_cb, &warnings));
    CHECK(strstr(got, "step-00000040.h5") && warnings == 1);
    check_contents(got, 4, 4);
    make_items(it, at, &na, 6);
    CHECK_OK(lt_ckpt_dir_save(cdir, 60, it, ni, at, na, 0, NULL));
    snprintf(p, sizeof p, "%s/step-00000060.h5.tmp-99999", cdir);
    CHECK(stat(p, &sb) != 0);
    /* nothing valid: refused, naming what was tried */
    snprintf(cmd, sizeof cmd, "for f in '%s'/step-*.h5; do truncate -s 100 \"$f\"; done", cdir);
    CHECK(system(cmd) == 0);
    CHECK_ERR(lt_ckpt_dir_resolve(cdir, "latest", got, sizeof got, NULL, NULL), "no valid checkpoint (tried step-00000060.h5");
    snprintf(p, sizeof p, "%s/empty", dir);
    CHECK_OK(lt_mkdir_p(p));
    CHECK_ERR(lt_ckpt_dir_resolve(p, "latest", got, sizeof got, NULL, NULL), "holds no checkpoint");
    /* duplicate names refused before anything is written */
    it[1].name = it[0].name;
    CHECK_ERR(lt_ckpt_write(path, it, ni, at, na), "given twice");
    TEST_MAIN_END();
}
