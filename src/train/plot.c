/* `loft plot`: metrics.jsonl -> an SVG of the train loss (raw, faint, and a trailing moving average over
 * ~2% of the run) and the eval loss against the optimizer step, with 1-2-5 ticks, a legend and the run's
 * name. No external libraries.
 *
 * Robustness: lines that are not JSON objects with an integer "step" are skipped with a warning naming the
 * line (the first few, then a count); non-finite losses (a diverged step) are skipped and counted in the
 * legend; a step that appears twice (a history written twice) keeps its last value; a run of any length
 * draws at most two points per pixel column per curve (the min and the max of the column, so spikes stay
 * visible), so the SVG stays small for millions of steps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "train/report.h"

typedef struct pt {
    double x, y;
    int64_t seq; /* line order: the later of two equal steps wins */
} pt;

typedef struct series {
    pt *p;
    int64_t n, cap;
} series;

static bool push(series *s, double x, double y, int64_t seq) {
    if (s->n == s->cap) {
        const int64_t cap = s->cap ? s->cap * 2 : 256;
        pt *q = realloc(s->p, (size_t)cap * sizeof *q);
        if (!q) return false;
        s->p = q;
        s->cap = cap;
    }
    s->p[s->n++] = (pt){x, y, seq};
    return true;
}

static int cmp_pt(const void *a, const void *b) {
    const pt *p = a, *q = b;
    if (p->x != q->x) return p->x < q->x ? -1 : 1;
    return p->seq < q->seq ? -1 : p->seq > q->seq;
}

/* Sorted by step, one point per step (the last written). */
static void order(series *s) {
    if (s->n < 2) return;
    qsort(s->p, (size_t)s->n, sizeof *s->p, cmp_pt);
    int64_t k = 0;
    for (int64_t i = 0; i < s->n; i++) {
        if (k > 0 && s->p[k - 1].x == s->p[i].x) s->p[k - 1] = s->p[i];
        else s->p[k++] = s->p[i];
    }
    s->n = k;
}

/* A "nice" tick step (1, 2 or 5 times a power of ten) giving about n ticks over [lo, hi]. */
static double nice_step(double lo, double hi, int n) {
    const double raw = (hi - lo) / n;
    if (!(raw > 0) || !isfinite(raw)) return 1;
    const double p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

typedef struct frame {
    double x0, x1, y0, y1, L, T, pw, ph;
} frame;

static double sx(const frame *f, double v) { return f->L + (v - f->x0) / (f->x1 - f->x0) * f->pw; }
static double sy(const frame *f, double v) { return f->T + (1 - (v - f->y0) / (f->y1 - f->y0)) * f->ph; }

/* A polyline of p[0..n) with at most two points per pixel column (the column's min and max, in order). */
static int64_t polyline(FILE *o, const frame *f, const pt *p, int64_t n, const char *style) {
    fprintf(o, "<polyline fill=\"none\" %s points=\"", style);
    int64_t emitted = 0;
    for (int64_t i = 0; i < n;) {
        const long col = (long)floor(sx(f, p[i].x));
        int64_t lo = i, hi = i, j = i;
        for (; j < n && (long)floor(sx(f, p[j].x)) == col; j++) {
            if (p[j].y < p[lo].y) lo = j;
            if (p[j].y > p[hi].y) hi = j;
        }
        if (j - i <= 2) {
            for (int64_t k = i; k < j; k++, emitted++) fprintf(o, "%.1f,%.1f ", sx(f, p[k].x), sy(f, p[k].y));
        } else {
            const int64_t a = lo < hi ? lo : hi, b = lo < hi ? hi : lo;
            fprintf(o, "%.1f,%.1f ", sx(f, p[a].x), sy(f, p[a].y));
            emitted++;
            if (b != a) fprintf(o, "%.1f,%.1f ", sx(f, p[b].x), sy(f, p[b].y)), emitted++;
        }
        i = j;
    }
    fputs("\"/>\n", o);
    return emitted;
}

/* The run name for the title: XML-escaped, control bytes and invalid UTF-8 shown as '?'. */
static void put_escaped(FILE *o, const char *s) {
    const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)s;
    utf8proc_ssize_t len = (utf8proc_ssize_t)strlen(s);
    while (len > 0) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(u, len, &cp);
        if (n <= 0 || cp < 0x20) {
            fputc('?', o);
            n = n <= 0 ? 1 : n;
        } else if (cp == '<') fputs("&lt;", o);
        else if (cp == '>') fputs("&gt;", o);
        else if (cp == '&') fputs("&amp;", o);
        else fwrite(u, 1, (size_t)n, o);
        u += n;
        len -= n;
    }
}

typedef struct data {
    series tr, ev;
    int64_t lines, junk, nonfinite;
} data;

static void data_free(data *d) {
    free(d->tr.p);
    free(d->ev.p);
}

static lt_status read_metrics(const char *path, data *d) {
    FILE *f = fopen(path, "r");
    if (!f) return lt_errorf(LT_ERR_IO, "%s: no metrics to plot (is this the run directory of a loft train?)", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    lt_status st = NULL;
    while (!st && (n = getline(&line, &cap, f)) > 0) {
        d->lines++;
        size_t k = 0;
        while (k < (size_t)n && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r' || line[k] == '\n')) k++;
        if (k == (size_t)n) continue; /* blank */
        lt_metrics_line ml;
        if (!lt_metrics_parse_line(line, (size_t)n, &ml)) {
            if (++d->junk <= 5)
                fprintf(stderr, "loft plot: %s:%lld: not a JSON object with an integer \"step\"; skipped\n", path,
                        (long long)d->lines);
            continue;
        }
        if (ml.has_loss && !isfinite(ml.loss)) d->nonfinite++;
        if (ml.has_eval && !isfinite(ml.eval_loss)) d->nonfinite++;
        if ((ml.has_loss && isfinite(ml.loss) && !push(&d->tr, (double)ml.step, ml.loss, d->lines)) ||
            (ml.has_eval && isfinite(ml.eval_loss) && !push(&d->ev, (double)ml.step, ml.eval_loss, d->lines)))
            st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory at line %lld", path, (long long)d->lines);
    }
    if (!st && ferror(f)) st = lt_errorf(LT_ERR_IO, "%s: read failed", path);
    free(line);
    fclose(f);
    if (st) return st;
    if (d->junk > 5) fprintf(stderr, "loft plot: %s: %lld more such lines skipped\n", path, (long long)(d->junk - 5));
    if (d->nonfinite)
        fprintf(stderr, "loft plot: %s: %lld non-finite loss values skipped\n", path, (long long)d->nonfinite);
    if (d->tr.n + d->ev.n == 0)
        return lt_errorf(LT_ERR_FORMAT, "%s: no line with a step and a finite loss or eval_loss (%lld lines, %lld skipped)",
                         path, (long long)d->lines, (long long)d->junk);
    order(&d->tr);
    order(&d->ev);
    return NULL;
}

static void axes(FILE *o, const frame *f) {
    const double xs = fmax(1.0, nice_step(f->x0, f->x1, 8)); /* steps are integers */
    const double ys = nice_step(f->y0, f->y1, 6);
    const int yd = ys >= 1 ? 0 : (int)fmin(12, ceil(-log10(ys) - 1e-9));
    const double bottom = f->T + f->ph;
    for (int i = 0; i < 100; i++) {
        const double v = ceil(f->x0 / xs) * xs + i * xs;
        if (v > f->x1 + 1e-9 * xs) break;
        fprintf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f</text>\n",
                sx(f, v), f->T, sx(f, v), bottom, sx(f, v), bottom + 16, v);
    }
    for (int i = 0; i < 100; i++) {
        const double v = ceil(f->y0 / ys) * ys + i * ys;
        if (v > f->y1 + 1e-9 * ys) break;
        fprintf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n",
                f->L, sy(f, v), f->L + f->pw, sy(f, v), f->L - 6, sy(f, v) + 4, yd, fabs(v) < ys * 1e-9 ? 0.0 : v);
    }
    fprintf(o, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#444\"/>\n", f->L, f->T,
            f->pw, f->ph);
    fprintf(o, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">optimizer step</text>\n", f->L + f->pw / 2,
            bottom + 38);
    fprintf(o, "<text transform=\"translate(16,%.0f) rotate(-90)\" text-anchor=\"middle\">loss</text>\n",
            f->T + f->ph / 2);
}

static void draw(FILE *o, const data *d, const char *run_dir) {
    const series *tr = &d->tr, *ev = &d->ev;
    frame f = {INFINITY, -INFINITY, INFINITY, -INFINITY, 70, 40, 0, 0};
    const double W = 800, H = 480;
    f.pw = W - f.L - 20;
    f.ph = H - f.T - 50;
    const series *all[2] = {tr, ev};
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < all[k]->n; i++) {
            f.x0 = fmin(f.x0, all[k]->p[i].x), f.x1 = fmax(f.x1, all[k]->p[i].x);
            f.y0 = fmin(f.y0, all[k]->p[i].y), f.y1 = fmax(f.y1, all[k]->p[i].y);
        }
    if (f.x1 <= f.x0) f.x0 -= 1, f.x1 += 1; /* one step: a visible range around it */
    if (f.y1 <= f.y0) f.y0 -= 0.5, f.y1 += 0.5;
    const double pad = 0.05 * (f.y1 - f.y0);
    f.y0 -= pad, f.y1 += pad;
    /* the title: the run directory's last component ("runs/x/" -> "x") */
    size_t end = strlen(run_dir), beg;
    while (end > 1 && run_dir[end - 1] == '/') end--;
    for (beg = end; beg > 0 && run_dir[beg - 1] != '/';) beg--;
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(end - beg < 255 ? end - beg : 255), run_dir + beg);
    fprintf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H, W, H);
    fprintf(o, "<text x=\"%.0f\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">loss \xe2\x80\x94 ", W / 2);
    put_escaped(o, name);
    fputs("</text>\n", o);
    axes(o, &f);
    const int64_t w = tr->n / 50 > 1 ? tr->n / 50 : 1; /* moving-average window: ~2% of the run */
    if (tr->n > 0) {
        polyline(o, &f, tr->p, tr->n, "stroke=\"#9ecae1\" stroke-width=\"1\" class=\"train\"");
        if (w > 1) {
            pt *ma = malloc((size_t)tr->n * sizeof *ma);
            if (ma) {
                double sum = 0;
                for (int64_t i = 0; i < tr->n; i++) {
                    sum += tr->p[i].y;
                    if (i >= w) sum -= tr->p[i - w].y;
                    ma[i] = (pt){tr->p[i].x, sum / (double)(i + 1 < w ? i + 1 : w), 0};
                }
                polyline(o, &f, ma, tr->n, "stroke=\"#08519c\" stroke-width=\"2\" class=\"train-avg\"");
                free(ma);
            }
        }
    }
    if (ev->n > 0) {
        polyline(o, &f, ev->p, ev->n, "stroke=\"#d94801\" stroke-width=\"2\" class=\"eval\"");
        for (int64_t i = 0; ev->n <= 300 && i < ev->n; i++)
            fprintf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#d94801\"/>\n", sx(&f, ev->p[i].x),
                    sy(&f, ev->p[i].y));
    }
    const int rows = (tr->n > 0) + (tr->n > 0 && w > 1) + (ev->n > 0) + (d->nonfinite > 0);
    fprintf(o, "<g transform=\"translate(%.0f,%.0f)\"><rect width=\"210\" height=\"%d\" fill=\"white\" stroke=\"#ccc\"/>",
            f.L + f.pw - 220, f.T + 10, 8 + 20 * rows);
    int y = 14;
    if (tr->n > 0) {
        fprintf(o, "<line x1=\"8\" y1=\"%d\" x2=\"30\" y2=\"%d\" stroke=\"#9ecae1\" stroke-width=\"2\"/>"
                   "<text x=\"36\" y=\"%d\">train loss (%lld steps)</text>",
                y, y, y + 4, (long long)tr->n);
        y += 20;
    }
    if (tr->n > 0 && w > 1) {
        fprintf(o, "<line x1=\"8\" y1=\"%d\" x2=\"30\" y2=\"%d\" stroke=\"#08519c\" stroke-width=\"2\"/>"
                   "<text x=\"36\" y=\"%d\">moving average (%lld steps)</text>",
                y, y, y + 4, (long long)w);
        y += 20;
    }
    if (ev->n > 0) {
        fprintf(o, "<line x1=\"8\" y1=\"%d\" x2=\"30\" y2=\"%d\" stroke=\"#d94801\" stroke-width=\"2\"/>"
                   "<text x=\"36\" y=\"%d\">eval loss (%lld points)</text>",
                y, y, y + 4, (long long)ev->n);
        y += 20;
    }
    if (d->nonfinite > 0) fprintf(o, "<text x=\"8\" y=\"%d\">%lld non-finite values skipped</text>", y + 4, (long long)d->nonfinite);
    fputs("</g>\n</svg>\n", o);
}

lt_status lt_plot_run(const char *run_dir, const char *out_path) {
    LT_ASSERT(run_dir && out_path);
    const size_t pl = strlen(run_dir) + 32, tl = strlen(out_path) + 32;
    char *path = malloc(pl), *tmp = malloc(tl);
    data d = {0};
    lt_status st = path && tmp ? NULL : lt_errorf(LT_ERR_NOMEM, "out of memory");
    if (!st) {
        snprintf(path, pl, "%s/metrics.jsonl", run_dir);
        snprintf(tmp, tl, "%s.tmp", out_path);
        st = read_metrics(path, &d);
    }
    FILE *o = st ? NULL : fopen(tmp, "w");
    if (!st && !o) st = lt_errorf(LT_ERR_IO, "%s: cannot write the plot", tmp);
    if (o) {
        draw(o, &d, run_dir);
        const bool bad = ferror(o) != 0;
        if (fclose(o) != 0 || bad || rename(tmp, out_path) != 0) {
            remove(tmp);
            st = lt_errorf(LT_ERR_IO, "%s: writing the plot failed (is the disk full?)", out_path);
        }
    }
    data_free(&d);
    free(path);
    free(tmp);
    return st;
}
