/* `loft plot`: metrics.jsonl -> an SVG of the train loss (raw, faint, and a moving average) and the eval loss
 * against the optimizer step, with 1-2-5 ticks, a legend and the run's name. No external libraries. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/report.h"

typedef struct series {
    double *x, *y;
    int64_t n, cap;
} series;

static bool push(series *s, double x, double y) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        double *a = realloc(s->x, (size_t)s->cap * sizeof *a), *b = a ? realloc(s->y, (size_t)s->cap * sizeof *b) : NULL;
        if (!a || !b) {
            if (a) s->x = a;
            return false;
        }
        s->x = a;
        s->y = b;
    }
    s->x[s->n] = x;
    s->y[s->n++] = y;
    return true;
}

/* A "nice" tick step (1, 2 or 5 times a power of ten) giving about n ticks over [lo, hi]. */
static double nice_step(double lo, double hi, int n) {
    const double raw = (hi - lo) / n;
    if (!(raw > 0)) return 1;
    const double p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void fmt_num(double v, char *b, size_t cap) {
    if (fabs(v) >= 1e4 || (fabs(v) < 1e-3 && v != 0))
        snprintf(b, cap, "%.3g", v);
    else
        snprintf(b, cap, "%g", round(v * 1e6) / 1e6);
}

lt_status lt_plot_run(const char *run_dir, const char *out_path) {
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    FILE *f = fopen(path, "r");
    if (!f) return lt_errorf(LT_ERR_IO, "%s: no metrics to plot (is %s a run directory of loft train?)", path, run_dir);
    series tr = {0}, ev = {0};
    char *line = NULL;
    size_t cap = 0;
    int64_t lineno = 0, skipped = 0;
    lt_status st = NULL;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        json_t *s = j ? json_object_get(j, "step") : NULL, *l = j ? json_object_get(j, "loss") : NULL,
               *e = j ? json_object_get(j, "eval_loss") : NULL;
        if (!json_is_object(j) || !json_is_number(s)) {
            skipped++;
        } else {
            const double x = json_number_value(s);
            if (json_is_number(l) && isfinite(json_number_value(l)) && !push(&tr, x, json_number_value(l)))
                st = lt_errorf(LT_ERR_NOMEM, "out of memory");
            if (json_is_number(e) && isfinite(json_number_value(e)) && !push(&ev, x, json_number_value(e)))
                st = lt_errorf(LT_ERR_NOMEM, "out of memory");
        }
        json_decref(j);
        if (st) break;
    }
    free(line);
    fclose(f);
    if (!st && tr.n + ev.n == 0)
        st = lt_errorf(LT_ERR_FORMAT, "%s: no line with a step and a loss (%lld lines, %lld skipped)", path,
                       (long long)lineno, (long long)skipped);
    if (st) {
        free(tr.x), free(tr.y), free(ev.x), free(ev.y);
        return st;
    }
    if (skipped) fprintf(stderr, "loft plot: %s: %lld lines without a step were skipped\n", path, (long long)skipped);
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    const series *all[2] = {&tr, &ev};
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < all[k]->n; i++) {
            x0 = fmin(x0, all[k]->x[i]), x1 = fmax(x1, all[k]->x[i]);
            y0 = fmin(y0, all[k]->y[i]), y1 = fmax(y1, all[k]->y[i]);
        }
    if (x1 <= x0) x0 -= 1, x1 += 1;
    if (y1 <= y0) y0 -= 0.5, y1 += 0.5;
    const double pad = 0.05 * (y1 - y0);
    y0 -= pad, y1 += pad;
    const double W = 800, H = 480, L = 70, R = 20, T = 40, B = 50;
    const double pw = W - L - R, ph = H - T - B;
#define SX(v) (L + ((v)-x0) / (x1 - x0) * pw)
#define SY(v) (T + (1 - ((v)-y0) / (y1 - y0)) * ph)
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", out_path);
    FILE *o = fopen(tmp, "w");
    if (!o) {
        free(tr.x), free(tr.y), free(ev.x), free(ev.y);
        return lt_errorf(LT_ERR_IO, "%s: cannot write the plot", tmp);
    }
    const char *name = strrchr(run_dir, '/');
    name = name && name[1] ? name + 1 : run_dir;
    fprintf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H, W, H);
    fprintf(o, "<text x=\"%.0f\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">loss — ", W / 2);
    for (const char *c = name; *c; c++) { /* the run name, XML-escaped */
        if (*c == '<') fputs("&lt;", o);
        else if (*c == '>') fputs("&gt;", o);
        else if (*c == '&') fputs("&amp;", o);
        else fputc(*c, o);
    }
    fputs("</text>\n", o);
    char b[64];
    const double sx = nice_step(x0, x1, 8), sy = nice_step(y0, y1, 6);
    for (double v = ceil(x0 / sx) * sx; v <= x1 + 1e-9 * sx; v += sx) {
        fmt_num(v, b, sizeof b);
        fprintf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                SX(v), T, SX(v), T + ph, SX(v), T + ph + 16, b);
    }
    for (double v = ceil(y0 / sy) * sy; v <= y1 + 1e-9 * sy; v += sy) {
        fmt_num(v, b, sizeof b);
        fprintf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                L, SY(v), L + pw, SY(v), L - 6, SY(v) + 4, b);
    }
    fprintf(o, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#444\"/>\n", L, T, pw, ph);
    fprintf(o, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">optimizer step</text>\n", L + pw / 2, H - 10);
    /* train loss: raw (faint) and a moving average over ~2% of the run (at least 1 step) */
    if (tr.n > 0) {
        fputs("<polyline fill=\"none\" stroke=\"#9ecae1\" stroke-width=\"1\" points=\"", o);
        for (int64_t i = 0; i < tr.n; i++) fprintf(o, "%.1f,%.1f ", SX(tr.x[i]), SY(tr.y[i]));
        fputs("\"/>\n<polyline fill=\"none\" stroke=\"#08519c\" stroke-width=\"2\" points=\"", o);
        const int64_t w = tr.n / 50 > 1 ? tr.n / 50 : 1;
        double sum = 0;
        for (int64_t i = 0; i < tr.n; i++) {
            sum += tr.y[i];
            if (i >= w) sum -= tr.y[i - w];
            const int64_t k = i + 1 < w ? i + 1 : w;
            fprintf(o, "%.1f,%.1f ", SX(tr.x[i]), SY(sum / (double)k));
        }
        fputs("\"/>\n", o);
    }
    if (ev.n > 0) {
        fputs("<polyline fill=\"none\" stroke=\"#d94801\" stroke-width=\"2\" points=\"", o);
        for (int64_t i = 0; i < ev.n; i++) fprintf(o, "%.1f,%.1f ", SX(ev.x[i]), SY(ev.y[i]));
        fputs("\"/>\n", o);
        for (int64_t i = 0; i < ev.n; i++)
            fprintf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#d94801\"/>\n", SX(ev.x[i]), SY(ev.y[i]));
    }
    fprintf(o, "<g transform=\"translate(%.0f,%.0f)\"><rect width=\"170\" height=\"%d\" fill=\"white\" stroke=\"#ccc\"/>"
               "<line x1=\"8\" y1=\"14\" x2=\"30\" y2=\"14\" stroke=\"#08519c\" stroke-width=\"2\"/>"
               "<text x=\"36\" y=\"18\">train loss (%lld steps)</text>",
            L + pw - 180, T + 10, ev.n ? 44 : 24, (long long)tr.n);
    if (ev.n)
        fprintf(o, "<line x1=\"8\" y1=\"34\" x2=\"30\" y2=\"34\" stroke=\"#d94801\" stroke-width=\"2\"/>"
                   "<text x=\"36\" y=\"38\">eval loss (%lld points)</text>",
                (long long)ev.n);
    fputs("</g>\n</svg>\n", o);
    const bool ok = !ferror(o);
    fclose(o);
    free(tr.x), free(tr.y), free(ev.x), free(ev.y);
    if (!ok || rename(tmp, out_path) != 0) {
        remove(tmp);
        return lt_errorf(LT_ERR_IO, "%s: writing the plot failed", out_path);
    }
    return NULL;
#undef SX
#undef SY
}
