/* tests/fuzz/standalone.c - runs a fuzz target without libFuzzer: on every
 * file named on the command line, then on SDRT_FUZZ_ITERS (default 2000)
 * mutated inputs derived from those files and fresh random bytes, so the
 * ordinary test build exercises each parser with hostile input too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t g_state;

static uint64_t next(void) {
    g_state ^= g_state << 13;
    g_state ^= g_state >> 7;
    g_state ^= g_state << 17;
    return g_state;
}

static unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len + 1);
    *n = fread(buf, 1, (size_t)len, f);
    fclose(f);
    return buf;
}

static void mutate(unsigned char *buf, size_t n) {
    int edits = 1 + (int)(next() % 8);
    for (int i = 0; i < edits && n > 0; i++) {
        size_t at = next() % n;
        switch (next() % 4) {
        case 0: buf[at] = (unsigned char)next(); break;
        case 1: buf[at] ^= (unsigned char)(1u << (next() % 8)); break;
        case 2: buf[at] = "{}[]\":,0-9eE\\\n"[next() % 14]; break;
        default: buf[at] = (unsigned char)(buf[at] + 1); break;
        }
    }
}

int main(int argc, char **argv) {
    const char *seed_env = getenv("SDRT_TEST_SEED");
    g_state = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)time(NULL);
    if (!g_state) g_state = 88172645463325252ull;
    fprintf(stderr, "# SDRT_TEST_SEED=%llu\n", (unsigned long long)g_state);
    int iters = getenv("SDRT_FUZZ_ITERS") ? atoi(getenv("SDRT_FUZZ_ITERS")) : 2000;
    unsigned char **seeds = calloc((size_t)argc, sizeof *seeds);
    size_t *sizes = calloc((size_t)argc, sizeof *sizes);
    if (!seeds || !sizes) return 1;
    int n = 0;
    for (int i = 1; i < argc; i++) {
        seeds[n] = read_file(argv[i], &sizes[n]);
        if (!seeds[n]) continue;
        LLVMFuzzerTestOneInput(seeds[n], sizes[n]);
        n++;
    }
    for (int it = 0; it < iters; it++) {
        size_t len;
        unsigned char *buf;
        if (n > 0 && next() % 4 != 0) {
            int k = (int)(next() % (uint64_t)n);
            len = sizes[k];
            buf = malloc(len + 1);
            memcpy(buf, seeds[k], len);
            mutate(buf, len);
            if (next() % 8 == 0 && len > 0) len = next() % len; /* truncation */
        } else {
            len = next() % 512;
            buf = malloc(len + 1);
            for (size_t j = 0; j < len; j++) buf[j] = (unsigned char)next();
        }
        LLVMFuzzerTestOneInput(buf, len);
        free(buf);
    }
    for (int i = 0; i < n; i++) free(seeds[i]);
    free(seeds);
    free(sizes);
    printf("%d passed, 0 failed\n", iters + n);
    return 0;
}
