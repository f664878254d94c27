/* tests/rng/test_philox - Philox4x32-10 and the A1111 "NV" normals.
 * Expectations: the Random123 known-answer vectors (kat_vectors, typed in
 * below), tests/rng/philox_goldens.json from gen_philox.py (an independent
 * Python implementation), the example A1111 publishes in the docstring of
 * modules/rng_philox.py, and 64 values torch's CUDA generator printed. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "sdrt/philox.h"
#include "sdrt/rng.h"

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static cJSON *load_goldens(void) {
    const char *path = getenv("SDRT_PHILOX_GOLDENS");
    FILE *f = path ? fopen(path, "rb") : NULL;
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

/* Random123 tests/kat_vectors, the three "philox4x32 10" lines. */
static void test_random123_kat(void) {
    static const uint32_t v[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e,
         0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb,
         0x5001e420, 0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        sdrt_philox4x32_10(v[i], v[i] + 4, out);
        for (int j = 0; j < 4; j++)
            CHECK(out[j] == v[i][6 + j], "vector %d word %d: %08x, want %08x", i, j, out[j], v[i][6 + j]);
    }
}

static void test_goldens_blocks(void) {
    cJSON *g = load_goldens();
    REQUIRE(g, "cannot read SDRT_PHILOX_GOLDENS");
    const cJSON *kat = cJSON_GetObjectItem(g, "philox");
    REQUIRE(cJSON_GetArraySize(kat) >= 4, "philox cases missing");
    for (const cJSON *c = kat->child; c; c = c->next) {
        uint32_t ctr[4], key[2], out[4];
        for (int i = 0; i < 4; i++) ctr[i] = (uint32_t)cJSON_GetArrayItem(cJSON_GetObjectItem(c, "ctr"), i)->valuedouble;
        for (int i = 0; i < 2; i++) key[i] = (uint32_t)cJSON_GetArrayItem(cJSON_GetObjectItem(c, "key"), i)->valuedouble;
        sdrt_philox4x32_10(ctr, key, out);
        for (int i = 0; i < 4; i++) {
            uint32_t want = (uint32_t)cJSON_GetArrayItem(cJSON_GetObjectItem(c, "out"), i)->valuedouble;
            CHECK(out[i] == want, "ctr %08x key %08x word %d: %08x, want %08x", ctr[0], key[0], i, out[i], want);
        }
    }
    cJSON_Delete(g);
}

/* Every case: the generator after `offset` earlier calls, bit for bit; the
 * same through sdrt_rng seeded as Philox. */
static void test_goldens_randn(void) {
    cJSON *g = load_goldens();
    REQUIRE(g, "cannot read SDRT_PHILOX_GOLDENS");
    const cJSON *cases = cJSON_GetObjectItem(g, "randn");
    REQUIRE(cJSON_GetArraySize(cases) >= 8, "randn cases missing");
    for (const cJSON *c = cases->child; c; c = c->next) {
        uint64_t seed = strtoull(cJSON_GetObjectItem(c, "seed")->valuestring, NULL, 10);
        int offset = cJSON_GetObjectItem(c, "offset")->valueint, n = cJSON_GetObjectItem(c, "n")->valueint;
        const cJSON *bits = cJSON_GetObjectItem(c, "bits");
        float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b), *skip = malloc(4);
        sdrt_philox p;
        sdrt_philox_seed(&p, seed);
        sdrt_rng r;
        sdrt_rng_seed_philox(&r, seed);
        for (int k = 0; k < offset; k++) {
            sdrt_philox_randn(&p, skip, 1);
            sdrt_rng_randn(&r, skip, 1);
        }
        sdrt_philox_randn(&p, a, (size_t)n);
        sdrt_rng_randn(&r, b, (size_t)n);
        CHECK(p.offset == (uint64_t)offset + 1 && r.philox_offset == (uint64_t)offset + 1, "offset not advanced");
        int i = 0, bad = 0;
        for (const cJSON *v = bits->child; v && i < n; v = v->next, i++) {
            uint32_t want = (uint32_t)v->valuedouble;
            if (!bad && (f32_bits(a[i]) != want || f32_bits(b[i]) != want)) {
                CHECK(0, "seed %llu offset %d element %d: %.9g / %.9g, want bits %08x", (unsigned long long)seed,
                      offset, i, a[i], b[i], want);
                bad = 1;
            }
        }
        CHECK(i == n, "golden has %d values, want %d", i, n);
        free(a), free(b), free(skip);
    }
    cJSON_Delete(g);
}

/* modules/rng_philox.py's docstring: Generator(seed=0).randn((3, 4)). The
 * printed values agree with the NumPy code to ~2e-7, not bit for bit (they
 * look like torch CUDA's own float32 output), so the check is to 5e-7. */
static void test_a1111_docstring(void) {
    static const float want[12] = {-0.92466259f, -0.42534415f, -2.6438457f, 0.14518388f,
                                   -0.12086647f, -0.57972564f, -0.62285122f, -0.32838709f,
                                   -1.07454231f, -0.36314407f, -1.67105067f, 2.26550497f};
    sdrt_philox p;
    sdrt_philox_seed(&p, 0);
    float got[12];
    sdrt_philox_randn(&p, got, 12);
    for (int i = 0; i < 12; i++) CHECK(fabsf(got[i] - want[i]) < 5e-7f, "element %d: %.8f, want %.8f", i, got[i], want[i]);
}

/* torch CUDA's own output: a published printout of torch.randn((8, 8),
 * device="cuda") after seeding with 0 (a PyTorch user's notebook, 4
 * decimals; its first 12 values are A1111's docstring example). Every
 * value must round to the printed one: within half a unit of the last
 * printed digit. */
static void test_torch_cuda_printout(void) {
    static const float want[64] = {
        -0.9247f, -0.4253f, -2.6438f, 0.1452f,  -0.1209f, -0.5797f, -0.6229f, -0.3284f,
        -1.0745f, -0.3631f, -1.6711f, 2.2655f,  0.3117f,  -0.1842f, 1.2866f,  1.1820f,
        -0.1271f, 1.2169f,  1.4353f,  1.0605f,  -0.4941f, -1.4244f, -0.7244f, -1.2973f,
        0.0697f,  -0.0074f, 1.8969f,  0.6878f,  -0.0779f, -0.8373f, 1.3506f,  -0.2879f,
        -0.5965f, -0.3283f, -0.9086f, -0.8059f, -0.7407f, -0.0504f, 0.5435f,  1.5150f,
        0.0141f,  0.4532f,  1.6349f,  0.7124f,  -0.1806f, 1.0252f,  -1.4622f, -0.7554f,
        -0.1836f, 0.3824f,  0.3918f,  -0.0830f, 0.8971f,  -1.1123f, 0.1116f,  0.4863f,
        -0.5499f, -0.3231f, -0.5469f, 0.9049f,  0.2837f,  0.1210f,  0.4730f,  -1.0823f};
    sdrt_rng r;
    sdrt_rng_seed_philox(&r, 0);
    float got[64];
    sdrt_rng_randn(&r, got, 64);
    for (int i = 0; i < 64; i++)
        CHECK(fabsf(got[i] - want[i]) <= 5.01e-5f, "element %d: %.6f, torch CUDA printed %.4f", i, got[i], want[i]);
}

/* Counter-based: element i does not depend on n, so a longer draw starts
 * with a shorter one; seeding MT afterwards switches the kind back. */
static void test_prefix_and_kind(void) {
    uint64_t seed = test_seed();
    float a[100], b[37];
    sdrt_philox p;
    sdrt_philox_seed(&p, seed);
    sdrt_philox_randn(&p, a, 100);
    sdrt_philox_seed(&p, seed);
    sdrt_philox_randn(&p, b, 37);
    CHECK(memcmp(a, b, sizeof b) == 0, "prefix differs for seed %llu", (unsigned long long)seed);
    double sum = 0, sq = 0;
    for (int i = 0; i < 100; i++) sum += a[i], sq += (double)a[i] * a[i];
    CHECK(fabs(sum / 100) < 0.5 && fabs(sq / 100 - 1) < 0.6, "moments off: mean %g var %g", sum / 100, sq / 100);
    sdrt_rng r;
    sdrt_rng_seed_philox(&r, seed);
    sdrt_rng_seed(&r, seed);
    CHECK(r.kind == SDRT_RNG_MT, "sdrt_rng_seed must select MT");
    float u[64];
    sdrt_rng_seed_philox(&r, seed);
    sdrt_rng_rand(&r, u, 64);
    for (int i = 0; i < 64; i++) CHECK(u[i] > 0.0f && u[i] < 1.0f, "rand[%d] = %g outside (0,1)", i, u[i]);
}

const test_entry TESTS[] = {
    {"random123_kat", test_random123_kat},
    {"goldens_blocks", test_goldens_blocks},
    {"goldens_randn", test_goldens_randn},
    {"a1111_docstring", test_a1111_docstring},
    {"torch_cuda_printout", test_torch_cuda_printout},
    {"prefix_and_kind", test_prefix_and_kind},
    {0},
};
