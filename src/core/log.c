/* Logging to stderr with a level from LOFT_LOG, and a monotonic clock. */
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int lt_log_level_cur = -1;

static lt_log_level lt_log_level_from_env(void) {
    const char *e = getenv("LOFT_LOG");
    if (!e) return LT_LOG_INFO;
    if (!strcasecmp(e, "debug")) return LT_LOG_DEBUG;
    if (!strcasecmp(e, "warn")) return LT_LOG_WARN;
    if (!strcasecmp(e, "error")) return LT_LOG_ERROR;
    return LT_LOG_INFO;
}

void lt_log_set_level(lt_log_level level) { lt_log_level_cur = (int)level; }

void lt_log(lt_log_level level, const char *fmt, ...) {
    if (lt_log_level_cur < 0) lt_log_level_cur = (int)lt_log_level_from_env();
    if ((int)level < lt_log_level_cur) return;
    static const char *names[] = {"debug", "info", "warning", "error"};
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "loft: %s%s%s\n", level == LT_LOG_INFO ? "" : names[level], level == LT_LOG_INFO ? "" : ": ",
            line);
}

double lt_time_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
