/* train/report + plot:
 *   - durations ("12s", "4m10s", "2h03m", rounding at the unit edges, "?" for NaN / negative);
 *   - progress into a file (not a TTY): the line format, one line at step 1, every `every` steps and the
 *     last (also when resuming), no escape codes; the budget-less memory field;
 *   - progress on a pseudo-terminal: redrawn with "\r\033[K", never wider than the terminal, at most ~10
 *     draws a second (a burst of updates draws only the last), a message clears the bar first;
 *   - lt_metrics_parse_line: steps, bare nan / inf tokens outside strings, junk;
 *   - metrics.jsonl: resume at step k keeps the complete metrics lines with step <= k (NaN losses too),
 *     drops later ones, junk and an unterminated last line; a new file is created;
 *   - the SVG: well-formed, one point per train step, the eval points, the moving average once the
 *     window exceeds 1, junk and non-finite lines skipped and counted, a repeated step keeps its last
 *     value, one point, the run name escaped, and a 200k-step file stays small (<= 2 points per column). */
#define _XOPEN_SOURCE 700
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "test.h"
#include "train/report.h"

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* The number of "x,y" points in the polyline whose attributes contain cls, or -1. */
static int points_of(const char *svg, const char *cls) {
    const char *p = strstr(svg, cls);
    if (!p) return -1;
    const char *q = strstr(p, "points=\"");
    if (!q) return -1;
    int n = 0;
    for (q += 8; *q && *q != '"'; q++) n += *q == ',';
    return n;
}

static void test_durations(void) {
    char b[32];
    const struct {
        double s;
        const char *want;
    } cases[] = {{0, "0s"},         {5, "5s"},         {59.4, "59s"},    {59.6, "1m00s"}, {250, "4m10s"},
                 {3599.6, "1h00m"}, {7380, "2h03m"},   {360000, "100h00m"}, {NAN, "?"},   {-1, "?"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lt_format_duration(cases[i].s, b, sizeof b);
        CHECKF(!strcmp(b, cases[i].want), "%g s -> %s, want %s", cases[i].s, b, cases[i].want);
    }
}

static char *slurp_file(FILE *f) {
    rewind(f);
    static char buf[1 << 17];
    const size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    return buf;
}

static void test_plain_lines(void) {
    FILE *f = tmpfile();
    lt_progress p;
    lt_progress_init(&p, 100, 0, f);
    CHECK(!p.tty && p.every == 5);
    for (int s = 1; s <= 100; s++)
        lt_progress_update(&p, &(lt_progress_info){.step = s, .loss = 2.5, .lr = 1e-4, .tokens_per_s = 1500,
                                                   .pool_bytes = 1LL << 30, .budget_bytes = 128LL << 30,
                                                   .eval_loss = s > 50 ? 2.0 : NAN});
    lt_progress_message(&p, "checkpoint saved");
    lt_progress_finish(&p);
    const char *buf = slurp_file(f);
    CHECKF(count(buf, "step ") == 21, "%d progress lines:\n%s", count(buf, "step "), buf); /* 1, 5, 10, ..., 100 */
    CHECK(strstr(buf, "step 1/100 (1%) | loss 2.5000 | lr 1.00e-04 | 1.5k tok/s | mem 1.00/128 GB | ETA ?\n"));
    CHECK(strstr(buf, "step 10/100 (10%) | loss 2.5000 | lr 1.00e-04 | 1.5k tok/s | mem 1.00/128 GB | ETA 0s\n"));
    CHECK(strstr(buf, "step 100/100 (100%) | loss 2.5000 | eval 2.0000 | lr") && strstr(buf, "checkpoint saved\n"));
    CHECK(!strstr(buf, "step 50/100 (50%) | loss 2.5000 | eval") && strstr(buf, "step 55/100 (55%) | loss 2.5000 | eval"));
    CHECK(!strchr(buf, '\r') && !strstr(buf, "\033["));
    fclose(f);

    /* a resumed run of 1000 steps from 400: every 20, plus its first step and the last; no budget known */
    f = tmpfile();
    lt_progress_init(&p, 1000, 400, f);
    CHECK(p.every == 20);
    for (int s = 401; s <= 1000; s++)
        lt_progress_update(&p, &(lt_progress_info){.step = s, .loss = 1, .tokens_per_s = 3.2e6, .pool_bytes = 3LL << 29,
                                                   .eval_loss = NAN});
    lt_progress_finish(&p);
    buf = slurp_file(f);
    CHECKF(count(buf, "step ") == 1 + 30, "%d lines", count(buf, "step ")); /* 401, 420, 440, ..., 1000 */
    CHECK(strstr(buf, "step 401/1000 (40%) |") && strstr(buf, "3.2M tok/s | mem 1.50 GB | ETA ?"));
    CHECK(strstr(buf, "step 1000/1000 (100%)"));
    fclose(f);
}

/* Reads what is pending on the pty master. */
static size_t drain(int fd, char *buf, size_t cap) {
    size_t n = 0;
    for (;;) {
        const ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
    }
    buf[n] = 0;
    return n;
}

static void test_tty(void) {
    const int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
        printf("note: no pseudo-terminal here; the TTY checks are skipped\n");
        if (master >= 0) close(master);
        return;
    }
    const int sfd = open(ptsname(master), O_RDWR | O_NOCTTY);
    FILE *slave = sfd >= 0 ? fdopen(sfd, "w") : NULL;
    CHECK(slave != NULL);
    if (!slave) {
        close(master);
        return;
    }
    struct termios tio;
    if (tcgetattr(fileno(slave), &tio) == 0) { /* no "\n" -> "\r\n": see exactly what loft writes */
        tio.c_oflag &= ~(tcflag_t)OPOST;
        tcsetattr(fileno(slave), TCSANOW, &tio);
    }
    struct winsize ws = {.ws_row = 24, .ws_col = 60};
    ioctl(master, TIOCSWINSZ, &ws);
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    lt_progress p;
    lt_progress_init(&p, 50, 0, slave);
    CHECK(p.tty && p.width == 60);
    lt_progress_info in = {.loss = 1.2345, .lr = 2e-4, .tokens_per_s = 3200, .pool_bytes = 1LL << 30,
                           .budget_bytes = 128LL << 30, .eval_loss = NAN};
    usleep(120000); /* past the 0.1 s limit: the next update draws */
    in.step = 1;
    lt_progress_update(&p, &in);
    static char buf[1 << 16];
    drain(master, buf, sizeof buf);
    CHECKF(!strncmp(buf, "\r\033[Kstep 1/50 ", 14) && strlen(buf) - 4 <= 59, "[%s] (%zu)", buf + 4, strlen(buf));
    for (int s = 2; s <= 49; s++) { /* a burst within 0.1 s: nothing drawn */
        in.step = s;
        lt_progress_update(&p, &in);
    }
    drain(master, buf, sizeof buf);
    CHECKF(buf[0] == 0, "drawn during the burst: %s", buf);
    lt_progress_message(&p, "checkpoint saved");
    drain(master, buf, sizeof buf);
    CHECKF(!strcmp(buf, "\r\033[Kcheckpoint saved\n"), "[%s]", buf);
    in.step = 50; /* the last step is always drawn */
    lt_progress_update(&p, &in);
    lt_progress_finish(&p);
    drain(master, buf, sizeof buf);
    CHECKF(!strncmp(buf, "\r\033[Kstep 50/50 ", 15) && buf[strlen(buf) - 1] == '\n' && strlen(buf) - 5 <= 59, "[%s]",
           buf + 4);
    /* a wide terminal shows every field and a 30-column bar */
    ws.ws_col = 200;
    ioctl(master, TIOCSWINSZ, &ws);
    lt_progress_init(&p, 50, 0, slave);
    in.step = 50;
    lt_progress_update(&p, &in);
    lt_progress_finish(&p);
    drain(master, buf, sizeof buf);
    CHECKF(strstr(buf, "step 50/50 [##############################] 100% | loss 1.2345 | lr 2.00e-04 | 3.2k tok/s | "
                       "mem 1.00/128 GB | ETA 0s\n"),
           "[%s]", buf);
    fclose(slave);
    close(master);
}

static void test_parse(void) {
    lt_metrics_line m;
    const char *l = "{\"step\": 7, \"loss\": 2.5, \"eval_loss\": 3}\n";
    CHECK(lt_metrics_parse_line(l, strlen(l), &m) && m.step == 7 && m.has_loss && m.loss == 2.5 && m.has_eval &&
          m.eval_loss == 3);
    l = "{\"step\": 8, \"loss\": nan, \"lr\": -inf, \"eval_loss\": -Infinity}";
    CHECK(lt_metrics_parse_line(l, strlen(l), &m) && m.step == 8 && m.has_loss && isnan(m.loss) && m.has_eval &&
          isinf(m.eval_loss) && m.eval_loss < 0);
    l = "{\"step\": 9, \"note\": \"nan inf\", \"loss\": 1}"; /* the tokens inside a string stay text */
    CHECK(lt_metrics_parse_line(l, strlen(l), &m) && m.step == 9 && m.loss == 1 && !m.has_eval && isnan(m.eval_loss));
    l = "{\"step\": 9, \"note\": \"nan\", \"loss\": nan}";
    CHECK(lt_metrics_parse_line(l, strlen(l), &m) && isnan(m.loss));
    l = "{\"step\": 10, \"loss\": null}";
    CHECK(lt_metrics_parse_line(l, strlen(l), &m) && !m.has_loss);
    const char *bad[] = {"{\"step\": 1.5}", "[1]", "not json", "", "{\"loss\": 1}", "{\"step\": \"3\"}", "{\"step\": 3,",
                         "{\"step\": 3, \"step\": 4}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECKF(!lt_metrics_parse_line(bad[i], strlen(bad[i]), &m), "accepted: %s", bad[i]);
}

static char g_dir[4096];

static void write_text(const char *path, const char *text) { CHECK_OK(lt_write_file_atomic(path, text, (int64_t)strlen(text))); }

static char *read_text(const char *path) {
    char *t = NULL;
    int64_t n = 0;
    CHECK_OK(lt_read_file(path, 1 << 26, &t, &n));
    return t;
}

static void test_metrics(void) {
    char path[4300];
    snprintf(path, sizeof path, "%s/metrics.jsonl", g_dir);
    const char *old = "{\"step\": 1, \"loss\": 3}\n{\"step\": 2, \"loss\": nan}\nnot json\n{\"step\": 3, \"loss\": 2}\n"
                      "{\"step\": 3, \"eval_loss\": 2.2}\n{\"step\": 4, \"loss\": 1.9}\n{\"step\": 5, \"lo";
    write_text(path, old);
    lt_metrics *m = NULL;
    CHECK_OK(lt_metrics_open(path, 3, &m));
    char *t = read_text(path);
    CHECKF(t && !strcmp(t, "{\"step\": 1, \"loss\": 3}\n{\"step\": 2, \"loss\": nan}\n{\"step\": 3, \"loss\": 2}\n"
                          "{\"step\": 3, \"eval_loss\": 2.2}\n"),
           "[%s]", t);
    free(t);
    CHECK_OK(lt_metrics_write(m, "{\"step\": 4, \"loss\": 1.5}"));
    lt_metrics_close(m);
    t = read_text(path);
    CHECK(t && count(t, "\"step\": 4,") == 1 && strstr(t, "1.5}\n") && count(t, "\n") == 5);
    free(t);
    /* a fresh run (step 0) empties it; a missing file is created */
    CHECK_OK(lt_metrics_open(path, 0, &m));
    lt_metrics_close(m);
    t = read_text(path);
    CHECK(t && t[0] == 0);
    free(t);
    char p2[4400];
    snprintf(p2, sizeof p2, "%s/new/none.jsonl", g_dir);
    CHECK_ERR(lt_metrics_open(p2, 5, &m), "cannot append");
    snprintf(p2, sizeof p2, "%s/fresh.jsonl", g_dir);
    remove(p2);
    CHECK_OK(lt_metrics_open(p2, 5, &m));
    CHECK_OK(lt_metrics_write(m, "{\"step\": 6}"));
    lt_metrics_close(m);
    /* a directory in its place is an error, not an empty history */
    snprintf(p2, sizeof p2, "%s/adir", g_dir);
    CHECK_OK(lt_mkdir_p(p2));
    lt_status st = lt_metrics_open(p2, 5, &m);
    CHECK(st != NULL);
    lt_status_free(st);
}

/* Writes run_dir/metrics.jsonl with `steps` train lines (loss 3/(1+0.01 s)), an eval line every eval_every, and
 * the extra text appended. */
static void make_run(const char *run, int steps, int eval_every, const char *extra) {
    CHECK_OK(lt_mkdir_p(run));
    char path[4400];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    for (int s = 1; s <= steps; s++) {
        fprintf(f, "{\"step\": %d, \"loss\": %.17g, \"lr\": 1e-4}\n", s, 3.0 / (1 + 0.01 * s));
        if (eval_every && s % eval_every == 0) fprintf(f, "{\"step\": %d, \"eval_loss\": %.17g}\n", s, 3.3 / (1 + 0.01 * s));
    }
    fputs(extra, f);
    fclose(f);
}

static char *plot(const char *run) {
    char svg[4400];
    snprintf(svg, sizeof svg, "%s/loss.svg", run);
    remove(svg);
    lt_status st = lt_plot_run(run, svg);
    CHECKF(!st, "%s", lt_status_msg(st));
    lt_status_free(st);
    char *t = st ? NULL : read_text(svg);
    if (t) { /* well-formed enough for a browser: one root, balanced elements */
        CHECK(!strncmp(t, "<svg xmlns=\"http://www.w3.org/2000/svg\"", 39) && strstr(t, "</svg>\n") &&
              count(t, "</svg>") == 1);
        CHECK(count(t, "<text") == count(t, "</text>") && count(t, "<g ") == count(t, "</g>"));
        CHECK(count(t, "<") == count(t, ">") && !strstr(t, "nan") && !strstr(t, "inf"));
    }
    return t;
}

static void test_plot(void) {
    char run[4300];
    snprintf(run, sizeof run, "%s/run60", g_dir);
    make_run(run, 60, 20,
             "junk line\n{\"step\": 61, \"loss\": nan}\n{\"step\": 62, \"loss\": inf, \"eval_loss\": -nan}\n"
             "{\"step\": 63, \"eval_loss\": 1e400}\n\n");
    char *t = plot(run);
    if (t) {
        CHECK(strstr(t, "run60") && points_of(t, "class=\"train\"") == 60 && points_of(t, "class=\"eval\"") == 3);
        CHECK(count(t, "<polyline") == 2 && count(t, "<circle") == 3); /* window 60/50 = 1: no separate average */
        CHECK(strstr(t, "train loss (60 steps)") && strstr(t, "eval loss (3 points)"));
        CHECK(strstr(t, "3 non-finite values skipped")); /* nan, inf, -nan; 1e400 overflows: a junk line */
        CHECK(strstr(t, ">optimizer step<") && strstr(t, ">60<") && strstr(t, ">3.0<")); /* ticks: 0..60 by 10 */
        free(t);
    }
    /* 500 steps: a 10-step moving average, one point per step (710 columns) */
    snprintf(run, sizeof run, "%s/run500", g_dir);
    make_run(run, 500, 100, "");
    t = plot(run);
    if (t) {
        CHECK(points_of(t, "class=\"train\"") == 500 && points_of(t, "class=\"train-avg\"") == 500);
        CHECK(strstr(t, "moving average (10 steps)") && count(t, "<circle") == 5);
        free(t);
    }
    /* steps 5..10 written twice (a history written again): the later values win, 10 points */
    snprintf(run, sizeof run, "%s/dup", g_dir);
    make_run(run, 10, 0, "{\"step\": 5, \"loss\": 9}\n{\"step\": 6, \"loss\": 9}\n");
    t = plot(run);
    if (t) {
        CHECK(strstr(t, "train loss (10 steps)") && points_of(t, "class=\"train\"") == 10 && strstr(t, ">9<"));
        free(t);
    }
    /* one point; a name that needs escaping */
    snprintf(run, sizeof run, "%s/a&b<c>", g_dir);
    make_run(run, 1, 1, "");
    t = plot(run);
    if (t) {
        CHECK(strstr(t, "a&amp;b&lt;c&gt;</text>") && points_of(t, "class=\"train\"") == 1);
        free(t);
    }
    /* 200k steps: at most 2 points per column, a small file */
    snprintf(run, sizeof run, "%s/big", g_dir);
    make_run(run, 200000, 1000, "");
    t = plot(run);
    if (t) {
        const int np = points_of(t, "class=\"train\"");
        CHECKF(np > 700 && np <= 2 * 711 && strlen(t) < 200000, "%d points, %zu bytes", np, strlen(t));
        CHECK(strstr(t, "train loss (200000 steps)") && strstr(t, "eval loss (200 points)") && count(t, "<circle") == 200);
        free(t);
    }
    /* nothing to draw */
    snprintf(run, sizeof run, "%s/junk", g_dir);
    CHECK_OK(lt_mkdir_p(run));
    char path[4400];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run);
    write_text(path, "hello\n{\"step\": 1, \"loss\": nan}\n");
    CHECK_ERR(lt_plot_run(run, path), "no line with a step and a finite loss");
    snprintf(run, sizeof run, "%s/none", g_dir);
    CHECK_ERR(lt_plot_run(run, path), "no metrics to plot");
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/test_report", lt_test_tmpdir());
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: %s failed\n", cmd);
    CHECK_OK(lt_mkdir_p(g_dir));
    test_durations();
    test_plain_lines();
    test_tty();
    test_parse();
    test_metrics();
    test_plot();
    TEST_MAIN_END();
}
