/* What a run shows and records (see report.h): the progress line and metrics.jsonl. The plot is plot.c. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "train/report.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void lt_format_duration(double s, char *buf, size_t cap) {
    if (!(s >= 0) || s > 1e9) {
        snprintf(buf, cap, "?");
        return;
    }
    const long long t = (long long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, cap, "%lldh%02lldm", t / 3600, (t % 3600) / 60);
    else if (t >= 60)
        snprintf(buf, cap, "%lldm%02llds", t / 60, t % 60);
    else
        snprintf(buf, cap, "%llds", t);
}

static void human(double v, char *buf, size_t cap) {
    if (v >= 1e6)
        snprintf(buf, cap, "%.1fM", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, cap, "%.1fk", v / 1e3);
    else
        snprintf(buf, cap, "%.0f", v);
}

void lt_progress_init(lt_progress *p, int64_t total, int64_t start, FILE *f) {
    memset(p, 0, sizeof *p);
    p->f = f;
    p->tty = f && isatty(fileno(f));
    p->total = total;
    p->start_step = start;
    p->every = total >= 200 ? total / 50 : total >= 20 ? 5 : 1;
    p->t_start = p->t_last_print = now_s();
    p->width = 100;
    struct winsize ws;
    if (p->tty && ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40) p->width = ws.ws_col;
    const char *cols = getenv("COLUMNS");
    if (cols && atoi(cols) >= 40) p->width = atoi(cols);
}

static void clear_line(lt_progress *p) {
    if (p->tty && p->drawn) {
        fprintf(p->f, "\r\033[K");
        p->drawn = false;
    }
}

void lt_progress_message(lt_progress *p, const char *fmt, ...) {
    if (!p->f) return;
    clear_line(p);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->f, fmt, ap);
    va_end(ap);
    fputc('\n', p->f);
    fflush(p->f);
}

void lt_progress_update(lt_progress *p, const lt_progress_info *in) {
    if (!p->f) return;
    const double now = now_s();
    if (in->step == p->start_step + 1) p->t_first = now; /* the first step (warm-up) is not timed */
    const int64_t done = in->step - p->start_step;
    const bool last = in->step >= p->total;
    if (p->tty ? (now - p->t_last_print < 0.1 && !last)
               : !(last || done == 1 || in->step % p->every == 0 || now - p->t_last_print >= 10.0))
        return;
    p->t_last_print = now;
    char eta[32] = "?", tps[32], mem[64], ev[48] = "";
    if (done > 1 && p->t_first > 0) {
        const double per = (now - p->t_first) / (double)(done - 1);
        lt_format_duration(per * (double)(p->total - in->step), eta, sizeof eta);
    }
    human(in->tokens_per_s, tps, sizeof tps);
    snprintf(mem, sizeof mem, "%.2f/%.0f GB", (double)in->pool_bytes / 1073741824.0, (double)in->budget_bytes / 1073741824.0);
    if (isfinite(in->eval_loss)) snprintf(ev, sizeof ev, " | eval %.4f", in->eval_loss);
    const double frac = p->total > 0 ? (double)in->step / (double)p->total : 1.0;
    char stats[256];
    snprintf(stats, sizeof stats, "| loss %.4f%s | lr %.2e | %s tok/s | mem %s | ETA %s", in->loss, ev, in->lr, tps, mem,
             last ? "0s" : eta);
    if (p->tty) {
        char head[64];
        snprintf(head, sizeof head, "step %lld/%lld ", (long long)in->step, (long long)p->total);
        int barw = p->width - (int)strlen(head) - (int)strlen(stats) - 8;
        if (barw > 30) barw = 30;
        char bar[40] = "";
        if (barw >= 5) {
            const int fill = (int)(frac * barw + 0.5);
            bar[0] = '[';
            for (int i = 0; i < barw; i++) bar[1 + i] = i < fill ? '#' : '.';
            bar[1 + barw] = ']';
            bar[2 + barw] = 0;
        }
        fprintf(p->f, "\r\033[K%s%s %3.0f%% %s", head, bar, 100 * frac, stats);
        p->drawn = true;
    } else {
        fprintf(p->f, "step %lld/%lld (%.0f%%) %s\n", (long long)in->step, (long long)p->total, 100 * frac, stats);
    }
    fflush(p->f);
}

void lt_progress_finish(lt_progress *p) {
    if (!p->f) return;
    if (p->tty && p->drawn) fputc('\n', p->f);
    p->drawn = false;
    fflush(p->f);
}

/* ---------------------------------------------------------------- metrics.jsonl */

struct lt_metrics {
    FILE *f;
    char *path;
};

/* The "step" value of a metrics line, or -1. */
static long long line_step(const char *line) {
    const char *s = strstr(line, "\"step\"");
    if (!s) return -1;
    s = strchr(s, ':');
    if (!s) return -1;
    char *end;
    const long long v = strtoll(s + 1, &end, 10);
    return end == s + 1 ? -1 : v;
}

lt_status lt_metrics_open(const char *path, int64_t keep_through_step, lt_metrics **out) {
    *out = NULL;
    /* keep lines with step <= keep_through_step (a resumed run continues one consistent history) */
    char *old = NULL;
    int64_t n = 0;
    lt_status rs = lt_read_file(path, (int64_t)1 << 32, &old, &n);
    if (rs) {
        lt_status_free(rs);
        old = NULL;
        n = 0;
    }
    char *kept = malloc((size_t)n + 1);
    if (!kept) {
        free(old);
        return lt_errorf(LT_ERR_NOMEM, "out of memory");
    }
    size_t k = 0;
    for (char *p = old; p && p < old + n;) {
        char *nl = memchr(p, '\n', (size_t)(old + n - p));
        const size_t len = nl ? (size_t)(nl - p) : (size_t)(old + n - p);
        char save = p[len];
        p[len] = 0;
        const long long st = line_step(p);
        p[len] = save;
        if (nl && st >= 0 && st <= keep_through_step) { /* an unterminated last line was cut by a crash: dropped */
            memcpy(kept + k, p, len + 1);
            k += len + 1;
        }
        p += len + (nl ? 1 : 0);
    }
    free(old);
    lt_status st = lt_write_file_atomic(path, kept, (int64_t)k);
    free(kept);
    if (st) return lt_status_wrapf(st, "metrics");
    lt_metrics *m = calloc(1, sizeof *m);
    if (!m) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    m->path = strdup(path);
    m->f = fopen(path, "a");
    if (!m->f) {
        st = lt_errorf(LT_ERR_IO, "%s: cannot append: %s", path, strerror(errno));
        free(m->path);
        free(m);
        return st;
    }
    *out = m;
    return NULL;
}

lt_status lt_metrics_write(lt_metrics *m, const char *json_line) {
    if (fprintf(m->f, "%s\n", json_line) < 0 || fflush(m->f) != 0)
        return lt_errorf(LT_ERR_IO, "%s: write failed: %s (disk full?)", m->path, strerror(errno));
    return NULL;
}

void lt_metrics_close(lt_metrics *m) {
    if (!m) return;
    fclose(m->f);
    free(m->path);
    free(m);
}
