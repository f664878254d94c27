/* tests/harness/harness.h - the tiny test harness (libuv style).
 *
 * Each area's test file defines its tests as functions and lists them in
 * one table:
 *
 *   static void test_parse_ok(void) { CHECK(x == 1, "x=%d", x); }
 *   const test_entry TESTS[] = { {"parse_ok", test_parse_ok}, {0} };
 *
 * The runner executes every entry (or those named on the command line),
 * prints "ok"/"not ok" per test and a final "N passed, M failed" line, and
 * exits non-zero on any failure. CHECK records a failure and continues;
 * REQUIRE records it and returns from the test.
 */
#ifndef SDRT_TEST_HARNESS_H
#define SDRT_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>

typedef struct test_entry {
    const char *name;
    void (*fn)(void);
} test_entry;

extern const test_entry TESTS[];

void test_fail_(const char *file, int line, const char *fmt, ...);
int test_failed_(void);

#define CHECK(cond, ...) \
    do { if (!(cond)) test_fail_(__FILE__, __LINE__, __VA_ARGS__); } while (0)
#define REQUIRE(cond, ...) \
    do { if (!(cond)) { test_fail_(__FILE__, __LINE__, __VA_ARGS__); return; } } while (0)

/* Environment helpers: SDRT_REFERENCE etc. set by ctest. Returns a static
 * string "<env>/<rel>" (one of 8 rotating buffers). */
const char *test_path(const char *env, const char *rel);
/* A fresh empty directory under the build tree, unique per call. */
const char *test_tmpdir(void);
/* Relative L2 error ||a-b|| / ||b||. */
double test_rel_l2(const float *a, const float *b, size_t n);
double test_max_abs(const float *a, const float *b, size_t n);
/* A seed for fresh random inputs: SDRT_TEST_SEED or time-based, printed so
 * a failure can be replayed. */
uint64_t test_seed(void);

#endif
