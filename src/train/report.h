/* train/report — what a training run shows and records: the progress line, metrics.jsonl, loss plots.
 *
 * Usage:
 *   lt_progress p; lt_progress_init(&p, total_steps, start_step, stderr);   // TTY: redrawn bar; else lines
 *   lt_progress_update(&p, &(lt_progress_info){.step = s, .loss = l, .lr = lr, .tokens_per_s = tps,
 *                                              .pool_bytes = used, .pool_peak = peak});
 *   lt_progress_message(&p, "checkpoint saved: ...");   // printed above the bar
 *   lt_progress_finish(&p);
 *
 *   lt_metrics *mf; st = lt_metrics_open("runs/x/metrics.jsonl", resume_step, &mf);
 *   st = lt_metrics_write(mf, "{\"step\": 3, \"loss\": 2.5}");        // one JSON object per line, flushed
 *
 *   st = lt_plot_run("runs/x", "runs/x/loss.svg");     // reads metrics.jsonl, draws train/eval loss vs step
 *
 * Progress on a terminal: one line redrawn in place ("\r" + clear), at most ~10 times a second:
 *   step 120/500 [#####.....] 24% | loss 1.234 | lr 1.9e-04 | 3.2k tok/s | mem 1.2/128 GB | ETA 2m10s
 * Not a TTY (CI, pipes, log files): a plain line every `every` steps or ~10 s, whichever comes first,
 * and at the end. ETA from the mean step time since start (excluding the first step).
 *
 * metrics.jsonl: on resume from step k, lines with step > k are dropped first (the file is rewritten
 * atomically) so the file always describes one consistent history.
 *
 * The plot is an SVG written without external libraries: train loss (and its moving average) and eval
 * loss against the optimizer step, axes with ticks, a legend, the run name as the title. Lines of
 * metrics.jsonl that are not JSON objects are skipped with a warning naming the line.
 */
#ifndef LT_TRAIN_REPORT_H
#define LT_TRAIN_REPORT_H

#include <stdio.h>

#include "core/core.h"

typedef struct lt_progress_info {
    int64_t step;          /* optimizer steps done */
    double loss, lr, grad_norm;
    double tokens_per_s;
    int64_t pool_bytes, pool_peak, budget_bytes;
    double eval_loss;      /* NaN when none yet */
} lt_progress_info;

typedef struct lt_progress {
    FILE *f;
    bool tty;
    int64_t total, start_step, every;
    double t_start, t_first, t_last_print;
    int64_t steps_timed;
    bool drawn;           /* a bar is on screen (messages clear it first) */
    int width;            /* terminal columns */
} lt_progress;

void lt_progress_init(lt_progress *p, int64_t total_steps, int64_t start_step, FILE *f);
void lt_progress_update(lt_progress *p, const lt_progress_info *info);
void lt_progress_message(lt_progress *p, const char *fmt, ...);
void lt_progress_finish(lt_progress *p);
/* "2h03m", "4m10s", "12s" */
void lt_format_duration(double seconds, char *buf, size_t cap);

typedef struct lt_metrics lt_metrics;
lt_status lt_metrics_open(const char *path, int64_t keep_through_step, lt_metrics **out);
lt_status lt_metrics_write(lt_metrics *m, const char *json_line);
void lt_metrics_close(lt_metrics *m);

lt_status lt_plot_run(const char *run_dir, const char *out_path);

/* (added: the resume truncation and the plot read lines the same way) One line of metrics.jsonl: false
 * unless it is a JSON object with an integer "step". "loss" / "eval_loss" are taken when present as
 * numbers, or as the bare nan / inf / -inf / NaN / Infinity tokens printf and Python write for non-finite
 * values (has_* true, the value non-finite); absent: has_* false and NaN. A trailing newline is ignored. */
typedef struct lt_metrics_line {
    int64_t step;
    bool has_loss, has_eval;
    double loss, eval_loss;
} lt_metrics_line;
bool lt_metrics_parse_line(const char *line, size_t len, lt_metrics_line *out);

#endif
