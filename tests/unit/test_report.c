/* train/report + plot: the non-terminal progress lines (cadence and fields), durations, metrics.jsonl
 * truncated to the resumed step (and an unterminated last line dropped), and the SVG plot of a synthetic
 * run: well-formed, one point per train step, the eval points, junk lines skipped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "train/report.h"

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

int main(void) {
    char b[32];
    lt_format_duration(5, b, sizeof b);
    CHECK(!strcmp(b, "5s"));
    lt_format_duration(250, b, sizeof b);
    CHECK(!strcmp(b, "4m10s"));
    lt_format_duration(7380, b, sizeof b);
    CHECK(!strcmp(b, "2h03m"));

    /* progress into a file (not a TTY): a line for step 1, every `every` steps and the last */
    FILE *f = tmpfile();
    lt_progress p;
    lt_progress_init(&p, 100, 0, f);
    CHECK(!p.tty && p.every == 5);
    for (int s = 1; s <= 100; s++)
        lt_progress_update(&p, &(lt_progress_info){.step = s, .loss = 2.5, .lr = 1e-4, .tokens_per_s = 1500,
                                                   .pool_bytes = 1LL << 30, .budget_bytes = 128LL << 30,
                                                   .eval_loss = s > 50 ? 2.0 : 0.0 / 0.0});
    lt_progress_message(&p, "checkpoint saved");
    lt_progress_finish(&p);
    rewind(f);
    char buf[65536];
    const size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    CHECKF(count(buf, "step ") == 21, "%d progress lines:\n%s", count(buf, "step "), buf); /* 1, 5, 10, ..., 100 */
    CHECK(strstr(buf, "step 1/100 (1%) | loss 2.5000 | lr 1.00e-04 | 1.5k tok/s | mem 1.00/128 GB") != NULL);
    CHECK(strstr(buf, "step 100/100 (100%) | loss 2.5000 | eval 2.0000") && strstr(buf, "checkpoint saved\n"));
    CHECK(!strchr(buf, '\r') && !strstr(buf, "\033["));

    /* metrics: resume at step 3 keeps steps <= 3 and drops an unterminated last line */
    char dir[4200], path[4300], svg[4300];
    snprintf(dir, sizeof dir, "%s/test_report_run", lt_test_tmpdir());
    CHECK_OK(lt_mkdir_p(dir));
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    const char *old = "{\"step\": 1, \"loss\": 3}\n{\"step\": 2, \"loss\": 2.5}\n{\"step\": 3, \"loss\": 2}\n"
                      "{\"step\": 3, \"eval_loss\": 2.2}\n{\"step\": 4, \"loss\": 1.9}\n{\"step\": 5, \"lo";
    CHECK_OK(lt_write_file_atomic(path, old, (int64_t)strlen(old)));
    lt_metrics *m = NULL;
    CHECK_OK(lt_metrics_open(path, 3, &m));
    for (int s = 4; m && s <= 60; s++) {
        char line[128];
        snprintf(line, sizeof line, "{\"step\": %d, \"loss\": %g}", s, 3.0 / (1 + 0.1 * s));
        CHECK_OK(lt_metrics_write(m, line));
        if (s % 20 == 0) {
            snprintf(line, sizeof line, "{\"step\": %d, \"eval_loss\": %g}", s, 3.2 / (1 + 0.1 * s));
            CHECK_OK(lt_metrics_write(m, line));
        }
    }
    CHECK_OK(lt_metrics_write(m, "not json at all"));
    lt_metrics_close(m);
    char *text = NULL;
    int64_t len = 0;
    CHECK_OK(lt_read_file(path, 1 << 20, &text, &len));
    CHECK(text && count(text, "\"step\": 4,") == 1 && count(text, "\"step\": 3,") == 2 && !strstr(text, "\"lo\n"));
    free(text);

    snprintf(svg, sizeof svg, "%s/loss.svg", dir);
    CHECK_OK(lt_plot_run(dir, svg));
    CHECK_OK(lt_read_file(svg, 1 << 22, &text, &len));
    if (text) {
        CHECK(!strncmp(text, "<svg ", 5) && strstr(text, "</svg>\n") && strstr(text, "test_report_run"));
        CHECK(count(text, "<polyline") == 3);         /* raw train, moving average, eval */
        CHECK(count(text, "<circle") == 4);           /* eval at 3, 20, 40, 60 */
        CHECK(strstr(text, "train loss (60 steps)") && strstr(text, "eval loss (4 points)"));
        free(text);
    }
    snprintf(path, sizeof path, "%s/none", dir);
    CHECK_ERR(lt_plot_run(path, svg), "no metrics to plot");
    TEST_MAIN_END();
}
