/* What a run shows and records (see report.h): the progress line and metrics.jsonl. The plot is plot.c.
 *
 * Progress on a terminal is one line redrawn in place, never wider than the terminal (a wrapped line would
 * leave a trail of copies, since "\r" only returns to the start of the last row). Anywhere else it is plain
 * lines at a fixed cadence, so logs stay small and greppable.
 *
 * metrics.jsonl lines are read back (resume truncation, plots) with lt_metrics_parse_line, which also takes
 * the bare nan / inf tokens that printf's %g writes for a diverged loss. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
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
    if (!cap) return;
    if (!(s >= 0) || s > 1e9) { /* NaN, negative or absurd: no estimate */
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

/* 950 -> "950", 3200 -> "3.2k", 4.1e6 -> "4.1M" */
static void human(double v, char *buf, size_t cap) {
    if (!isfinite(v)) snprintf(buf, cap, "?");
    else if (v >= 1e9) snprintf(buf, cap, "%.1fG", v / 1e9);
    else if (v >= 1e6) snprintf(buf, cap, "%.1fM", v / 1e6);
    else if (v >= 1e3) snprintf(buf, cap, "%.1fk", v / 1e3);
    else snprintf(buf, cap, "%.0f", v);
}

/* Columns of the terminal f is on: TIOCGWINSZ, else $COLUMNS, else 100. */
static int term_width(FILE *f) {
    struct winsize ws;
    if (f && ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    const char *cols = getenv("COLUMNS");
    const long c = cols ? strtol(cols, NULL, 10) : 0;
    return c > 0 && c < 10000 ? (int)c : 100;
}

void lt_progress_init(lt_progress *p, int64_t total, int64_t start, FILE *f) {
    memset(p, 0, sizeof *p);
    p->f = f;
    p->tty = f && isatty(fileno(f));
    p->total = total;
    p->start_step = start;
    /* about 50 lines for a long run, every 5th step for a short one, every step for a tiny one */
    p->every = total >= 200 ? total / 50 : total >= 20 ? 5 : 1;
    p->t_start = p->t_last_print = now_s();
    p->width = p->tty ? term_width(f) : 100;
}

static void clear_line(lt_progress *p) {
    if (p->tty && p->drawn) {
        fputs("\r\033[K", p->f);
        p->drawn = false;
    }
}

void lt_progress_message(lt_progress *p, const char *fmt, ...) {
    if (!p->f) return;
    clear_line(p); /* the message takes the bar's row; the next update draws the bar below it */
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
    if (in->step == p->start_step + 1) p->t_first = now; /* the first step (warm-up, caches) is not timed */
    const int64_t done = in->step - p->start_step;
    const bool last = in->step >= p->total;
    if (p->tty ? (now - p->t_last_print < 0.1 && !last)
               : !(last || done == 1 || (p->every > 0 && in->step % p->every == 0) || now - p->t_last_print >= 10.0))
        return;
    p->t_last_print = now;
    char eta[32] = "?", tps[32], mem[64], ev[48] = "";
    if (last) {
        snprintf(eta, sizeof eta, "0s");
    } else if (done > 1 && p->t_first > 0) {
        p->steps_timed = done - 1;
        const double per = (now - p->t_first) / (double)p->steps_timed;
        lt_format_duration(per * (double)(p->total - in->step), eta, sizeof eta);
    }
    human(in->tokens_per_s, tps, sizeof tps);
    const double gb = 1073741824.0;
    if (in->budget_bytes > 0)
        snprintf(mem, sizeof mem, "%.2f/%.0f GB", (double)in->pool_bytes / gb, (double)in->budget_bytes / gb);
    else
        snprintf(mem, sizeof mem, "%.2f GB", (double)in->pool_bytes / gb);
    if (isfinite(in->eval_loss)) snprintf(ev, sizeof ev, " | eval %.4f", in->eval_loss);
    const double frac = p->total > 0 ? fmin(1.0, fmax(0.0, (double)in->step / (double)p->total)) : 1.0;
    char stats[256];
    snprintf(stats, sizeof stats, "| loss %.4f%s | lr %.2e | %s tok/s | mem %s | ETA %s", in->loss, ev, in->lr, tps, mem,
             eta);
    if (!p->tty) {
        fprintf(p->f, "step %lld/%lld (%.0f%%) %s\n", (long long)in->step, (long long)p->total, 100 * frac, stats);
        fflush(p->f);
        return;
    }
    p->width = term_width(p->f); /* the terminal may have been resized */
    char head[64], bar[40] = "", line[512];
    snprintf(head, sizeof head, "step %lld/%lld ", (long long)in->step, (long long)p->total);
    int barw = p->width - (int)strlen(head) - (int)strlen(stats) - 8;
    if (barw > 30) barw = 30;
    if (barw >= 5) {
        const int fill = (int)(frac * barw + 0.5);
        bar[0] = '[';
        for (int i = 0; i < barw; i++) bar[1 + i] = i < fill ? '#' : '.';
        bar[1 + barw] = ']';
        bar[2 + barw] = ' ';
        bar[3 + barw] = 0;
    }
    int n = snprintf(line, sizeof line, "%s%s%3.0f%% %s", head, bar, 100 * frac, stats);
    /* one column short of the width: writing the last column makes some terminals wrap */
    const int maxw = p->width > 1 ? p->width - 1 : 1;
    if (n > maxw && maxw < (int)sizeof line) line[maxw] = 0;
    fprintf(p->f, "\r\033[K%s", line);
    p->drawn = true;
    fflush(p->f);
}

void lt_progress_finish(lt_progress *p) {
    if (!p->f) return;
    if (p->tty && p->drawn) fputc('\n', p->f);
    p->drawn = false;
    fflush(p->f);
}

/* ---------------------------------------------------------------- reading metrics lines */

/* Copies line into out, replacing bare nan / inf tokens (outside strings) by the strings "\u0001nan",
 * "\u0001inf", "\u0001-inf" that read_number understands. out has room for 4 * len + 16 bytes (a 3-byte token becomes 12). */
static size_t sanitize(const char *s, size_t len, char *out) {
    static const struct {
        const char *tok, *rep;
    } toks[] = {{"-nan", "\"\\u0001nan\""}, {"nan", "\"\\u0001nan\""},  {"-NaN", "\"\\u0001nan\""},
                {"NaN", "\"\\u0001nan\""},  {"-Infinity", "\"\\u0001-inf\""}, {"Infinity", "\"\\u0001inf\""},
                {"-inf", "\"\\u0001-inf\""}, {"inf", "\"\\u0001inf\""}};
    size_t o = 0;
    bool in_str = false;
    for (size_t i = 0; i < len;) {
        const char c = s[i];
        if (in_str) {
            out[o++] = c;
            if (c == '\\' && i + 1 < len) out[o++] = s[++i];
            else if (c == '"') in_str = false;
            i++;
            continue;
        }
        if (c == '"') in_str = true;
        size_t k = 0;
        for (; k < sizeof toks / sizeof toks[0]; k++) {
            const size_t tl = strlen(toks[k].tok);
            if (tl <= len - i && !memcmp(s + i, toks[k].tok, tl)) {
                const size_t rl = strlen(toks[k].rep);
                if (o + rl > 4 * len + 15) return 0;
                memcpy(out + o, toks[k].rep, rl);
                o += rl;
                i += tl;
                break;
            }
        }
        if (k == sizeof toks / sizeof toks[0]) out[o++] = s[i++];
    }
    out[o] = 0;
    return o;
}

static bool read_number(json_t *v, double *out) {
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return true;
    }
    const char *s = json_string_value(v);
    if (!s || s[0] != 1) return false;
    *out = !strcmp(s + 1, "nan") ? NAN : !strcmp(s + 1, "inf") ? INFINITY : -INFINITY;
    return true;
}

bool lt_metrics_parse_line(const char *line, size_t len, lt_metrics_line *out) {
    memset(out, 0, sizeof *out);
    out->loss = out->eval_loss = NAN;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
    json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    if (!j && len < ((size_t)1 << 24)) {
        char *buf = malloc(4 * len + 16);
        const size_t n = buf ? sanitize(line, len, buf) : 0;
        if (n) j = json_loadb(buf, n, JSON_REJECT_DUPLICATES, NULL);
        free(buf);
    }
    json_t *s = json_object_get(j, "step");
    const bool ok = json_is_object(j) && json_is_integer(s);
    if (ok) {
        out->step = (int64_t)json_integer_value(s);
        out->has_loss = read_number(json_object_get(j, "loss"), &out->loss);
        out->has_eval = read_number(json_object_get(j, "eval_loss"), &out->eval_loss);
    }
    json_decref(j);
    return ok;
}

/* ---------------------------------------------------------------- metrics.jsonl */

struct lt_metrics {
    FILE *f;
    char *path;
};

/* Rewrites path keeping the complete lines whose step is <= keep (temporary file, fsync, rename). */
static lt_status truncate_history(const char *path, int64_t keep) {
    FILE *in = fopen(path, "r");
    if (!in && errno == ENOENT) return NULL; /* a new run: the file is created by the append below */
    if (!in) return lt_errorf(LT_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    const size_t pl = strlen(path) + 32;
    char *tmp = malloc(pl);
    if (!tmp) {
        fclose(in);
        return lt_errorf(LT_ERR_NOMEM, "out of memory");
    }
    snprintf(tmp, pl, "%s.tmp%ld", path, (long)getpid());
    FILE *out = fopen(tmp, "w");
    lt_status st = out ? NULL : lt_errorf(LT_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while (!st && (n = getline(&line, &cap, in)) > 0) {
        lt_metrics_line ml;
        /* an unterminated last line was cut by a crash; lines that are not metrics describe nothing */
        if (line[n - 1] != '\n' || !lt_metrics_parse_line(line, (size_t)n, &ml) || ml.step > keep) continue;
        if (fwrite(line, 1, (size_t)n, out) != (size_t)n)
            st = lt_errorf(LT_ERR_IO, "%s: write failed: %s (is the disk full?)", tmp, strerror(errno));
    }
    if (!st && ferror(in)) st = lt_errorf(LT_ERR_IO, "%s: read failed: %s", path, strerror(errno));
    free(line);
    fclose(in);
    if (out) {
        if (!st && (fflush(out) != 0 || fsync(fileno(out)) != 0))
            st = lt_errorf(LT_ERR_IO, "%s: write failed: %s (is the disk full?)", tmp, strerror(errno));
        if (fclose(out) != 0 && !st) st = lt_errorf(LT_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
        if (!st && rename(tmp, path) != 0)
            st = lt_errorf(LT_ERR_IO, "rename %s -> %s failed: %s", tmp, path, strerror(errno));
        if (st) unlink(tmp);
    }
    free(tmp);
    return st;
}

lt_status lt_metrics_open(const char *path, int64_t keep_through_step, lt_metrics **out) {
    *out = NULL;
    lt_status st = truncate_history(path, keep_through_step);
    if (st) return lt_status_wrapf(st, "metrics (resuming from step %lld)", (long long)keep_through_step);
    lt_metrics *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return lt_errorf(LT_ERR_NOMEM, "out of memory");
    }
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
    LT_ASSERT(m && json_line && !strchr(json_line, '\n'));
    if (fprintf(m->f, "%s\n", json_line) < 0 || fflush(m->f) != 0)
        return lt_errorf(LT_ERR_IO, "%s: write failed: %s (is the disk full?)", m->path, strerror(errno));
    return NULL;
}

void lt_metrics_close(lt_metrics *m) {
    if (!m) return;
    fclose(m->f);
    free(m->path);
    free(m);
}
