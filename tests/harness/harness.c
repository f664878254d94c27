/* tests/harness/harness.c - runner for the table in harness.h. */
#define _GNU_SOURCE
#include "harness.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int g_failed;

void test_fail_(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "    FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    g_failed = 1;
}

int test_failed_(void) { return g_failed; }

const char *test_path(const char *env, const char *rel) {
    static char bufs[8][4096];
    static int next;
    const char *base = getenv(env);
    char *b = bufs[next++ & 7];
    snprintf(b, sizeof bufs[0], "%s/%s", base ? base : ".", rel);
    return b;
}

const char *test_tmpdir(void) {
    static char bufs[8][4096];
    static int next;
    static unsigned counter;
    char *b = bufs[next++ & 7];
    const char *base = getenv("SDRT_BUILD_DIR");
    snprintf(b, sizeof bufs[0], "%s/tmp", base ? base : "/tmp");
    mkdir(b, 0755);
    snprintf(b, sizeof bufs[0], "%s/tmp/t%ld-%u-%ld", base ? base : "/tmp", (long)getpid(), counter++,
             (long)time(NULL));
    mkdir(b, 0755);
    return b;
}

double test_rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

double test_max_abs(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m || d != d) m = d;
    }
    return m;
}

uint64_t test_seed(void) {
    static uint64_t seed;
    if (seed) return seed;
    const char *s = getenv("SDRT_TEST_SEED");
    seed = s ? strtoull(s, NULL, 10) : ((uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20));
    if (!seed) seed = 1;
    fprintf(stderr, "# SDRT_TEST_SEED=%llu\n", (unsigned long long)seed);
    return seed;
}

static int selected(int argc, char **argv, const char *name) {
    if (argc < 2) return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0) return 1;
    return 0;
}

int main(int argc, char **argv) {
    int passed = 0, failed = 0;
    for (const test_entry *t = TESTS; t->name; t++) {
        if (!selected(argc, argv, t->name)) continue;
        g_failed = 0;
        t->fn();
        if (g_failed) {
            failed++;
            printf("not ok - %s\n", t->name);
        } else {
            passed++;
            printf("ok - %s\n", t->name);
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

