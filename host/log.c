/* host/log.c - log lines to stderr (stdout belongs to the protocol). */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "host.h"

static int g_level = SDRT_LOG_INFO;
static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const LEVEL_NAMES[] = {"error", "warn", "info", "debug"};

void log_set_level(int level) { g_level = level; }

int log_level_from_name(const char *name) {
    for (int i = 0; i < 4; i++)
        if (strcmp(name, LEVEL_NAMES[i]) == 0) return i;
    return -1;
}

void log_vmsg(const char *who, sdrt_log_level level, const char *fmt, va_list ap) {
    if ((int)level > g_level) return;
    char line[4096];
    int n = snprintf(line, sizeof line, "sdrt[%s]%s%s: ", LEVEL_NAMES[level & 3], who ? " " : "", who ? who : "");
    if (n < 0 || (size_t)n >= sizeof line) n = 0;
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    /* One fputs per line under a lock so concurrent plugins never interleave. */
    pthread_mutex_lock(&g_log_lock);
    fputs(line, stderr);
    fputc('\n', stderr);
    fflush(stderr);
    pthread_mutex_unlock(&g_log_lock);
}

void log_msg(const char *who, sdrt_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(who, level, fmt, ap);
    va_end(ap);
}
