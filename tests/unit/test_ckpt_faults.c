/* Checkpoint fault injection: 60 times, a child process saves checkpoints in a loop (each one's contents a
 * function of its step, keep_last 2 so pruning runs too) and is killed with SIGKILL after a random delay
 * (seeded) spread over a few saves: inside the HDF5 write, the fsync, between the rename and the "latest"
 * update, during pruning. After every kill the newest complete checkpoint must resolve, open (checksum
 * verified) and hold exactly what was written for its step; the next child continues after it. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "train/ckpt.h"
#include "test.h"

#define N_VALS (1 << 19) /* 2 MB of f32 + 1 MB of bf16 per checkpoint */
#define N_KILLS 60

static void fill(int64_t step, float *f, uint16_t *h) {
    for (int64_t i = 0; i < N_VALS; i++) f[i] = (float)(step * 1000003 + i % 4099), h[i] = (uint16_t)(step + i);
}

static lt_status save(const char *dir, int64_t step, float *f, uint16_t *h) {
    fill(step, f, h);
    lt_ckpt_item it[2] = {{.name = "w/master", .dtype = LT_DTYPE_F32, .ndim = 1, .shape = {N_VALS, 1}, .data = f},
                          {.name = "w/bf16", .dtype = LT_DTYPE_BF16, .ndim = 2, .shape = {N_VALS / 64, 64}, .data = h}};
    lt_ckpt_attr at[1] = {{.name = "step", .kind = LT_CKPT_INT, .i = step}};
    return lt_ckpt_dir_save(dir, step, it, 2, at, 1, 2, NULL);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void) {
    char dir[4200], cmd[4400];
    snprintf(dir, sizeof dir, "%s/test_ckpt_faults", lt_test_tmpdir());
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    float *f = malloc(N_VALS * sizeof(float)), *g = malloc(N_VALS * sizeof(float));
    uint16_t *h = malloc(N_VALS * sizeof(uint16_t)), *hh = malloc(N_VALS * sizeof(uint16_t));
    /* how long one save takes here: the kills are spread over ~3 of them */
    const double t0 = now_s();
    CHECK_OK(save(dir, 1, f, h));
    const double t_save = now_s() - t0;
    int64_t last = 1;
    srand(20261122);
    for (int k = 0; k < N_KILLS; k++) {
        const pid_t pid = fork();
        if (pid == 0) {
            for (int64_t s = last + 1;; s++) {
                lt_status st = save(dir, s, f, h);
                if (st) _exit(3);
            }
        }
        const double delay = t_save * 3.0 * (double)rand() / RAND_MAX;
        struct timespec ts = {.tv_sec = (time_t)delay, .tv_nsec = (long)((delay - (double)(time_t)delay) * 1e9)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        CHECKF(WIFSIGNALED(status), "kill %d: the writer ended on its own (status %d)", k, status);
        char path[4300];
        lt_status st = lt_ckpt_dir_resolve(dir, "latest", path, sizeof path, NULL, NULL);
        CHECKF(!st, "kill %d: no checkpoint resolves: %s", k, st ? lt_status_msg(st) : "");
        if (st) {
            lt_status_free(st);
            break;
        }
        lt_ckpt *c = NULL;
        CHECK_OK(lt_ckpt_open(path, &c));
        if (!c) break;
        int64_t step = 0;
        CHECK_OK(lt_ckpt_attr_int(c, "step", &step));
        CHECK_OK(lt_ckpt_read(c, "w/master", LT_DTYPE_F32, N_VALS, g));
        CHECK_OK(lt_ckpt_read(c, "w/bf16", LT_DTYPE_BF16, N_VALS, hh));
        lt_ckpt_close(c);
        fill(step, f, h);
        CHECKF(!memcmp(f, g, N_VALS * sizeof(float)) && !memcmp(h, hh, N_VALS * sizeof(uint16_t)),
               "kill %d: checkpoint of step %lld holds other contents", k, (long long)step);
        CHECKF(step >= last, "kill %d: went back from step %lld to %lld", k, (long long)last, (long long)step);
        last = step;
    }
    printf("%d kills over ~3 saves of %.0f ms each; the newest complete checkpoint loaded every time (reached step "
           "%lld)\n", N_KILLS, t_save * 1e3, (long long)last);
    CHECK(last > 5); /* the children made progress between kills */
    free(f);
    free(g);
    free(h);
    free(hh);
    TEST_MAIN_END();
}
