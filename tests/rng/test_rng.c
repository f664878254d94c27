/* tests/rng - sdrt_rng against PyTorch's CPU generator, bit for bit.
 * Goldens: the shared reference (rng.json and the rng .npy files, torch 1.13) and
 * tests/rng/goldens.json (gen_goldens.py, newer torch pinned to AVX2). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "sdrt/npy.h"
#include "sdrt/rng.h"

static cJSON *load_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    buf[got] = 0;
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    return j;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Index of the first element whose bits differ, or -1. */
static long first_diff_values(const float *got, const cJSON *want, size_t n) {
    if ((size_t)cJSON_GetArraySize(want) != n) return 0;
    size_t i = 0;
    for (const cJSON *v = want->child; v; v = v->next, i++)
        if (f32_bits(got[i]) != f32_bits((float)v->valuedouble)) return (long)i;
    return -1;
}

static long first_diff_bits(const float *got, const cJSON *want, size_t n) {
    if ((size_t)cJSON_GetArraySize(want) != n) return 0;
    size_t i = 0;
    for (const cJSON *v = want->child; v; v = v->next, i++)
        if (f32_bits(got[i]) != (uint32_t)v->valuedouble) return (long)i;
    return -1;
}

static size_t shape_numel(const char *key) {
    size_t n = 1;
    for (const char *p = key; *p;) {
        n *= strtoul(p, (char **)&p, 10);
        if (*p == 'x') p++;
    }
    return n;
}

static void draw(sdrt_rng *g, const char *op, float *out, size_t n) {
    if (strcmp(op, "rand") == 0) sdrt_rng_rand(g, out, n);
    else sdrt_rng_randn(g, out, n);
}

static void test_mt_first_outputs(void) {
    /* std::mt19937 with seed 5489 is the C++ standard's check value. */
    sdrt_rng g;
    sdrt_rng_seed(&g, 5489);
    uint32_t v = 0;
    for (int i = 0; i < 10000; i++) v = sdrt_rng_u32(&g);
    CHECK(v == 4123659995u, "10000th output %u, want 4123659995", v);
}

static void test_reference_json(void) {
    cJSON *root = load_json(test_path("SDRT_REFERENCE", "rng.json"));
    REQUIRE(root, "cannot read rng.json under SDRT_REFERENCE");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    int cases = 0;
    for (const cJSON *s = data ? data->child : NULL; s; s = s->next) {
        uint64_t seed = strtoull(s->string, NULL, 10);
        for (const cJSON *c = s->child; c; c = c->next) {
            int is_rand = strncmp(c->string, "rand_", 5) == 0;
            size_t n = is_rand ? strtoul(c->string + 5, NULL, 10) : shape_numel(c->string);
            float *out = malloc(n * sizeof *out);
            sdrt_rng g;
            sdrt_rng_seed(&g, seed);
            draw(&g, is_rand ? "rand" : "randn", out, n);
            long d = first_diff_values(out, c, n);
            CHECK(d < 0, "seed %llu %s: element %ld differs", (unsigned long long)seed, c->string, d);
            free(out);
            cases++;
        }
    }
    CHECK(cases == 27, "expected 27 cases, saw %d", cases);
    cJSON_Delete(root);
}

static void test_reference_sequence(void) {
    cJSON *root = load_json(test_path("SDRT_REFERENCE", "rng.json"));
    REQUIRE(root, "cannot read rng.json");
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(root, "sequence_seed42");
    const cJSON *shapes = cJSON_GetObjectItemCaseSensitive(seq, "draw_shapes");
    const cJSON *draws = cJSON_GetObjectItemCaseSensitive(seq, "draws");
    REQUIRE(cJSON_GetArraySize(shapes) == cJSON_GetArraySize(draws) && cJSON_GetArraySize(draws) > 0, "bad sequence");
    sdrt_rng g;
    sdrt_rng_seed(&g, 42);
    const cJSON *d = draws->child;
    for (const cJSON *sh = shapes->child; sh && d; sh = sh->next, d = d->next) {
        size_t n = 1;
        for (const cJSON *e = sh->child; e; e = e->next) n *= (size_t)e->valuedouble;
        float *out = malloc(n * sizeof *out);
        sdrt_rng_randn(&g, out, n);
        long k = first_diff_values(out, d, n);
        CHECK(k < 0, "sequence draw of %zu: element %ld differs", n, k);
        free(out);
    }
    cJSON_Delete(root);
}

static void test_reference_npy(void) {
    static const char *shapes[] = {"1x4x8x8", "2x4x16x16", "1x4x64x64", "7", "16", "17"};
    static const int seeds[] = {0, 1, 42};
    for (size_t si = 0; si < 3; si++) {
        for (size_t k = 0; k < 6; k++) {
            char rel[128], err[256];
            snprintf(rel, sizeof rel, "rng/randn_seed%d_%s.npy", seeds[si], shapes[k]);
            float *want;
            int64_t shape[SDRT_NPY_MAX_DIMS];
            int ndim;
            int rc = sdrt_npy_read_f32(test_path("SDRT_REFERENCE", rel), &want, shape, &ndim, err, sizeof err);
            CHECK(rc == 0, "%s", err);
            if (rc != 0) continue;
            size_t n = 1;
            for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
            CHECK(n == shape_numel(shapes[k]), "%s: %zu elements", rel, n);
            float *got = malloc(n * sizeof *got);
            sdrt_rng g;
            sdrt_rng_seed(&g, (uint64_t)seeds[si]);
            sdrt_rng_randn(&g, got, n);
            CHECK(memcmp(got, want, n * sizeof *got) == 0, "%s: bits differ", rel);
            free(got);
            free(want);
        }
    }
}

static cJSON *goldens(void) {
    const char *p = getenv("SDRT_RNG_GOLDENS");
    return load_json(p ? p : test_path("SDRT_SOURCE_DIR", "tests/rng/goldens.json"));
}

static void test_goldens_cases(void) {
    cJSON *root = goldens();
    REQUIRE(root, "cannot read tests/rng/goldens.json");
    int n_cases = 0;
    for (const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "cases")->child; c; c = c->next, n_cases++) {
        uint64_t seed = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "seed"));
        const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "op"));
        size_t n = (size_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "n"));
        /* 2^63-1 does not survive a double; the generator only uses the low
         * 32 bits, which for 2^63-1 are all ones. */
        if (seed >= (UINT64_C(1) << 53)) seed = UINT64_C(0x7fffffffffffffff);
        float out[128];
        sdrt_rng g;
        sdrt_rng_seed(&g, seed);
        draw(&g, op, out, n);
        long d = first_diff_bits(out, cJSON_GetObjectItemCaseSensitive(c, "bits"), n);
        CHECK(d < 0, "seed %llu %s(%zu): element %ld differs", (unsigned long long)seed, op, n, d);
    }
    CHECK(n_cases >= 60, "only %d cases", n_cases);
    cJSON_Delete(root);
}

static void test_goldens_big(void) {
    cJSON *root = goldens();
    REQUIRE(root, "cannot read goldens.json");
    for (const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "big")->child; c; c = c->next) {
        uint64_t seed = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "seed"));
        size_t n = (size_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "n"));
        /* The sum does not fit a double exactly: compare it as a string. */
        char *sum_text = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "bitsum"));
        float *out = malloc(n * sizeof *out);
        sdrt_rng g;
        sdrt_rng_seed(&g, seed);
        sdrt_rng_randn(&g, out, n);
        uint64_t sum = 0;
        for (size_t i = 0; i < n; i++) sum += f32_bits(out[i]);
        for (const cJSON *s = cJSON_GetObjectItemCaseSensitive(c, "samples")->child; s; s = s->next) {
            size_t i = strtoul(s->string, NULL, 10);
            CHECK(f32_bits(out[i]) == (uint32_t)s->valuedouble, "seed %llu n %zu: element %zu differs",
                  (unsigned long long)seed, n, i);
        }
        char mine[32];
        snprintf(mine, sizeof mine, "%llu", (unsigned long long)sum);
        CHECK(strcmp(mine, sum_text) == 0, "seed %llu n %zu: bit sum %s, want %s", (unsigned long long)seed, n,
              mine, sum_text);
        free(sum_text);
        free(out);
    }
    cJSON_Delete(root);
}

static void test_goldens_sequences(void) {
    cJSON *root = goldens();
    REQUIRE(root, "cannot read goldens.json");
    for (const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "sequences")->child; s; s = s->next) {
        uint64_t seed = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(s, "seed"));
        sdrt_rng g;
        sdrt_rng_seed(&g, seed);
        int k = 0;
        for (const cJSON *d = cJSON_GetObjectItemCaseSensitive(s, "draws")->child; d; d = d->next, k++) {
            const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "op"));
            size_t n = (size_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(d, "n"));
            float out[64];
            draw(&g, op, out, n);
            long e = first_diff_bits(out, cJSON_GetObjectItemCaseSensitive(d, "bits"), n);
            CHECK(e < 0, "seed %llu draw %d %s(%zu): element %ld differs", (unsigned long long)seed, k, op, n, e);
        }
    }
    cJSON_Delete(root);
}

static void test_seed_resets_cached_normal(void) {
    sdrt_rng g;
    float a[3], b[3];
    sdrt_rng_seed(&g, 9);
    sdrt_rng_randn(&g, a, 1); /* leaves a cached sine sample */
    sdrt_rng_seed(&g, 9);
    sdrt_rng_randn(&g, b, 1);
    CHECK(f32_bits(a[0]) == f32_bits(b[0]), "reseeding must drop the cached normal");
    CHECK(g.has_next_normal == 1, "one scalar draw caches one sample");
}

const test_entry TESTS[] = {
    {"mt_first_outputs", test_mt_first_outputs},
    {"reference_json", test_reference_json},
    {"reference_sequence", test_reference_sequence},
    {"reference_npy", test_reference_npy},
    {"goldens_cases", test_goldens_cases},
    {"goldens_big", test_goldens_big},
    {"goldens_sequences", test_goldens_sequences},
    {"seed_resets_cached_normal", test_seed_resets_cached_normal},
    {0},
};
