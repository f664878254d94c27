/* tests/gguf/test_quant.c - sdrt/quant.h against gguf-py's reference
 * blocks (tests/gguf/data, made by make_refs.py): dequantisation and the
 * reference quantisers must match bit for bit. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "sdrt/quant.h"

#define NREF 1024

void *gguf_test_slurp(const char *rel, size_t *len) {
    const char *path = test_path("SDRT_SOURCE_DIR", rel);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static const sdrt_dtype ALL[] = {SDRT_DTYPE_Q4_0, SDRT_DTYPE_Q4_1, SDRT_DTYPE_Q5_0, SDRT_DTYPE_Q5_1, SDRT_DTYPE_Q8_0,
                                 SDRT_DTYPE_Q2_K, SDRT_DTYPE_Q3_K, SDRT_DTYPE_Q4_K, SDRT_DTYPE_Q5_K, SDRT_DTYPE_Q6_K};

static void *ref(sdrt_dtype dt, const char *ext, size_t want) {
    char rel[128];
    snprintf(rel, sizeof rel, "tests/gguf/data/%s.%s", sdrt_dtype_ggml_name(dt), ext);
    for (char *p = rel; *p; p++)
        if (*p == 'K') *p = 'k';
    size_t len = 0;
    void *b = gguf_test_slurp(rel, &len);
    if (b && len != want) {
        free(b);
        return NULL;
    }
    return b;
}

void test_dequant_matches_gguf_py(void) {
    for (size_t i = 0; i < sizeof ALL / sizeof ALL[0]; i++) {
        sdrt_dtype dt = ALL[i];
        const char *nm = sdrt_dtype_ggml_name(dt);
        uint8_t *blocks = ref(dt, "blocks", sdrt_dtype_bytes(dt, NREF));
        float *want = ref(dt, "deq", NREF * sizeof(float));
        CHECK(blocks && want, "%s: reference data missing (run tests/gguf/make_refs.py)", nm);
        if (!blocks || !want) {
            free(blocks);
            free(want);
            continue;
        }
        float got[NREF];
        CHECK(sdrt_dequant_row(dt, blocks, got, NREF) == 0, "%s: dequant refused", nm);
        int bad = -1;
        for (int k = 0; k < NREF && bad < 0; k++)
            if (memcmp(&got[k], &want[k], sizeof(float)) != 0) bad = k;
        CHECK(bad < 0, "%s: element %d: sdrt %.9g, gguf-py %.9g", nm, bad, bad < 0 ? 0.0 : got[bad], bad < 0 ? 0.0 : want[bad]);
        /* Windows that cut blocks: the same values. */
        uint64_t s = test_seed() + i;
        float scratch[256], win[NREF];
        for (int rep = 0; rep < 50; rep++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            int64_t first = (int64_t)((s >> 33) % NREF), count = (int64_t)((s >> 13) % (uint64_t)(NREF - first)) + 1;
            sdrt_dequant_range(dt, blocks, first, count, win, scratch);
            CHECK(memcmp(win, want + first, (size_t)count * sizeof(float)) == 0, "%s: window [%lld,+%lld) differs", nm,
                  (long long)first, (long long)count);
        }
        CHECK(sdrt_dequant_row(dt, blocks, got, NREF - 1) == -1, "%s: partial block accepted", nm);
        free(blocks);
        free(want);
    }
}

void test_quantise_matches_ggml(void) {
    for (size_t i = 0; i < sizeof ALL / sizeof ALL[0]; i++) {
        sdrt_dtype dt = ALL[i];
        const char *nm = sdrt_dtype_ggml_name(dt);
        if (!sdrt_quant_can_write(dt)) {
            float x[256] = {0};
            uint8_t out[512];
            CHECK(sdrt_quant_row(dt, x, out, 256) == -1, "%s: quantiser claims a format it lacks", nm);
            continue;
        }
        size_t qbytes = sdrt_dtype_bytes(dt, NREF);
        if (dt == SDRT_DTYPE_Q4_K) {
            /* No byte reference (gguf-py has no K quantiser): the round trip
             * on fresh gaussian-ish rows, and each block's decoded values on
             * the 16-level grid of its sub-block. */
            float x[NREF], back[NREF];
            uint8_t q[576];
            uint64_t s = test_seed();
            for (int k = 0; k < NREF; k++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                float u = (float)((s >> 40) & 0xFFFF) / 65536.0f - 0.5f, v = (float)(s >> 56) / 256.0f - 0.5f;
                x[k] = (u + v) * (k < 256 ? 0.01f : 1.0f);
            }
            CHECK(sdrt_quant_row(dt, x, q, NREF) == 0, "q4_K quantise refused");
            sdrt_dequant_row(dt, q, back, NREF);
            double e = test_rel_l2(back, x, NREF);
            CHECK(e < 0.12, "q4_K round trip rel L2 %g", e);
            printf("# q4_K round trip rel L2 %.3g\n", e);
            continue;
        }
        float *src = ref(dt, "src", NREF * sizeof(float));
        uint8_t *want = ref(dt, "q", qbytes), *got = malloc(qbytes);
        REQUIRE(src && want && got, "%s: reference data missing", nm);
        CHECK(sdrt_quant_row(dt, src, got, NREF) == 0, "%s: quantise refused", nm);
        size_t bad = qbytes;
        for (size_t k = 0; k < qbytes && bad == qbytes; k++)
            if (got[k] != want[k]) bad = k;
        CHECK(bad == qbytes, "%s: byte %zu (block %zu): sdrt %02x, gguf-py %02x", nm, bad,
              bad / sdrt_dtype_block_bytes(dt), bad < qbytes ? got[bad] : 0, bad < qbytes ? want[bad] : 0);
        /* Round trip bound: each element within half a step of the block. */
        float back[NREF];
        sdrt_dequant_row(dt, got, back, NREF);
        double err = test_rel_l2(back, src, NREF);
        double bound = dt == SDRT_DTYPE_Q8_0 ? 0.01 : dt == SDRT_DTYPE_Q4_0 || dt == SDRT_DTYPE_Q4_1 ? 0.2 : 0.1;
        CHECK(err < bound, "%s: round trip rel L2 %g >= %g", nm, err, bound);
        free(src);
        free(want);
        free(got);
    }
}

void test_dtype_helpers(void) {
    CHECK(sdrt_dtype_bytes(SDRT_DTYPE_Q8_0, 64) == 68, "q8_0 64 elements");
    CHECK(sdrt_dtype_bytes(SDRT_DTYPE_Q4_K, 512) == 288, "q4_K 512 elements");
    CHECK(sdrt_dtype_bytes(SDRT_DTYPE_Q4_K, 100) == 0, "partial block");
    CHECK(sdrt_dtype_bytes(SDRT_DTYPE_F16, 3) == 6, "f16");
    CHECK(sdrt_dtype_bytes((sdrt_dtype)99, 3) == 0, "unknown dtype");
    CHECK(sdrt_dtype_from_ggml_name("q4_K") == SDRT_DTYPE_Q4_K, "name q4_K");
    CHECK(sdrt_dtype_from_ggml_name("q4_k") == -1, "names are ggml's exact spelling");
    for (int d = 0; d < SDRT_DTYPE_COUNT_; d++)
        CHECK(sdrt_dtype_block_bytes((sdrt_dtype)d) > 0 && sdrt_dtype_block_elems((sdrt_dtype)d) > 0, "dtype %d sized", d);
}
