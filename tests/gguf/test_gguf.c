/* tests/gguf - the GGUF reader: a file written by the `gguf` Python package
 * (data/small.gguf) read back with values equal to gguf-py's; hand-built
 * malformed files each failing with the precise reason; every truncation
 * failing; loading as a model (test_load.c). */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "harness.h"
#include "sdrt/quant.h"

void *gguf_test_slurp(const char *rel, size_t *len);
void test_dequant_matches_gguf_py(void);
void test_quantise_matches_ggml(void);
void test_dtype_helpers(void);

/* ---- a file from gguf-py -------------------------------------------------- */

static void test_read_gguf_py_file(void) {
    size_t len;
    void *buf = gguf_test_slurp("tests/gguf/data/small.gguf", &len);
    REQUIRE(buf, "tests/gguf/data/small.gguf missing");
    gguf_file *f;
    char err[512];
    REQUIRE(gguf_parse(buf, len, &f, err, sizeof err) == 0, "parse: %s", err);
    CHECK(f->version == 3 && f->alignment == 32, "version %u alignment %u", f->version, f->alignment);
    CHECK(f->arch && strcmp(f->arch, "sdrt-test") == 0, "arch %s", f->arch ? f->arch : "(null)");
    CHECK(f->n_tensors == 7, "%zu tensors", f->n_tensors);
    static const struct {
        const char *name;
        int dtype, ndim;
        int64_t s0, s1;
    } want[] = {
        {"model.diffusion_model.time_embed.0.weight", SDRT_DTYPE_F32, 2, 4, 8},
        {"model.diffusion_model.time_embed.0.bias", SDRT_DTYPE_F16, 1, 4, 0},
        {"model.diffusion_model.time_embed.2.weight", SDRT_DTYPE_BF16, 2, 2, 3},
        {"model.diffusion_model.out.2.weight", SDRT_DTYPE_Q8_0, 2, 3, 64},
        {"first_stage_model.decoder.conv_in.weight", SDRT_DTYPE_Q4_0, 2, 2, 32},
        {"cond_stage_model.transformer.text_model.final_layer_norm.weight", SDRT_DTYPE_Q4_K, 2, 2, 256},
        {"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", SDRT_DTYPE_Q6_K, 2, 1, 256},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const gguf_tensor *t = gguf_find(f, want[i].name);
        CHECK(t, "%s missing", want[i].name);
        if (!t) continue;
        CHECK(t->dtype == want[i].dtype && t->ndim == want[i].ndim && t->shape[0] == want[i].s0 &&
                  (want[i].ndim == 1 || t->shape[1] == want[i].s1),
              "%s: dtype %d ndim %d shape %lld,%lld", t->name, t->dtype, t->ndim, (long long)t->shape[0],
              (long long)t->shape[1]);
        int64_t n = want[i].s0 * (want[i].ndim == 2 ? want[i].s1 : 1);
        char rel[256];
        snprintf(rel, sizeof rel, "tests/gguf/data/small.%s.deq", t->name);
        size_t dlen;
        float *ref = gguf_test_slurp(rel, &dlen), *got = malloc((size_t)n * sizeof *got);
        CHECK(ref && dlen == (size_t)n * sizeof(float), "%s: reference missing", rel);
        if (ref && got && dlen == (size_t)n * sizeof(float)) {
            CHECK(sdrt_dequant_row((sdrt_dtype)t->dtype, t->data, got, n) == 0, "%s: dequant", t->name);
            CHECK(memcmp(got, ref, dlen) == 0, "%s: values differ from gguf-py's", t->name);
            CHECK(t->bytes == sdrt_dtype_bytes((sdrt_dtype)t->dtype, n), "%s: %llu bytes", t->name, (unsigned long long)t->bytes);
        }
        free(ref);
        free(got);
    }
    gguf_close(f);
    free(buf);
}

/* ---- hand-built files ------------------------------------------------------ */

typedef struct gb {
    uint8_t p[4096];
    size_t n;
    /* positions of the fields the malformed cases change */
    size_t version, n_tensors, n_kv, align_val, a_name_len, a_ndim, a_dim0, a_dim1, a_type, a_offset, b_name, b_offset;
} gb;

static void put(gb *b, const void *v, size_t n) {
    memcpy(b->p + b->n, v, n);
    b->n += n;
}
static void put_u32(gb *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(gb *b, uint64_t v) { put(b, &v, 8); }
static void put_str(gb *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void set_u32(gb *b, size_t at, uint32_t v) { memcpy(b->p + at, &v, 4); }
static void set_u64(gb *b, size_t at, uint64_t v) { memcpy(b->p + at, &v, 8); }

/* Valid: alignment 32, "a" q8_0 [2, 64] at 0 (136 bytes), "b" f32 [4] at
 * 160, plus a string array in the metadata. */
static void build(gb *b) {
    memset(b, 0, sizeof *b);
    put(b, "GGUF", 4);
    b->version = b->n;
    put_u32(b, 3);
    b->n_tensors = b->n;
    put_u64(b, 2);
    b->n_kv = b->n;
    put_u64(b, 2);
    put_str(b, "general.alignment");
    put_u32(b, 4);
    b->align_val = b->n;
    put_u32(b, 32);
    put_str(b, "tokenizer.words");
    put_u32(b, 9);
    put_u32(b, 8);
    put_u64(b, 2);
    put_str(b, "x");
    put_str(b, "yz");
    b->a_name_len = b->n;
    put_str(b, "a");
    b->a_ndim = b->n;
    put_u32(b, 2);
    b->a_dim0 = b->n;
    put_u64(b, 64);
    b->a_dim1 = b->n;
    put_u64(b, 2);
    b->a_type = b->n;
    put_u32(b, 8);
    b->a_offset = b->n;
    put_u64(b, 0);
    b->b_name = b->n;
    put_str(b, "b");
    put_u32(b, 1);
    put_u64(b, 4);
    put_u32(b, 0);
    b->b_offset = b->n;
    put_u64(b, 160);
    b->n = (b->n + 31) / 32 * 32;
    for (int i = 0; i < 176; i++) b->p[b->n + (size_t)i] = (uint8_t)(i * 7);
    b->n += 176;
}

static void expect_fail(const gb *b, size_t len, const char *needle, const char *what) {
    gguf_file *f = NULL;
    char err[512] = "";
    int rc = gguf_parse(b->p, len, &f, err, sizeof err);
    CHECK(rc == -1 && f == NULL, "%s: accepted", what);
    CHECK(rc != -1 || strstr(err, needle), "%s: error '%s' lacks '%s'", what, err, needle);
    if (f) gguf_close(f);
}

static void test_handmade_valid(void) {
    gb b;
    build(&b);
    gguf_file *f;
    char err[512];
    REQUIRE(gguf_parse(b.p, b.n, &f, err, sizeof err) == 0, "valid file refused: %s", err);
    const gguf_tensor *a = gguf_find(f, "a"), *t = gguf_find(f, "b");
    CHECK(a && a->dtype == SDRT_DTYPE_Q8_0 && a->shape[0] == 2 && a->shape[1] == 64 && a->bytes == 136, "a");
    CHECK(t && t->dtype == SDRT_DTYPE_F32 && t->ndim == 1 && t->shape[0] == 4 && t->bytes == 16, "b");
    CHECK(a && t && t->data - a->data == 160, "b's data at offset 160");
    gguf_close(f);
    /* A foreign block type parses (so the model loader can name it). */
    set_u32(&b, b.a_type, 20);
    REQUIRE(gguf_parse(b.p, b.n, &f, err, sizeof err) == 0, "iq4_nl refused: %s", err);
    CHECK(gguf_find(f, "a")->dtype == -1, "iq4_nl has no sdrt dtype");
    gguf_close(f);
}

static void test_malformed(void) {
    gb b;
#define CASE(mutation, needle)          \
    do {                                \
        build(&b);                      \
        mutation;                       \
        expect_fail(&b, b.n, needle, #mutation); \
    } while (0)
    CASE(b.p[0] = 'X', "bad magic");
    CASE(set_u32(&b, b.version, 1), "version 1");
    CASE(set_u32(&b, b.version, 4), "version 4");
    CASE(set_u64(&b, b.n_tensors, 1ull << 60), "tensor count");
    CASE(set_u64(&b, b.n_kv, 1ull << 60), "metadata count");
    CASE(set_u32(&b, b.align_val, 24), "power of two");
    CASE(set_u64(&b, b.a_name_len, 1ull << 62), "runs past the end");
    CASE(set_u32(&b, b.a_ndim, 5), "5 dims");
    CASE(set_u64(&b, b.a_dim0, 0), "dim 0 is 0");
    CASE((set_u64(&b, b.a_dim0, 1ull << 40), set_u64(&b, b.a_dim1, 1ull << 40)), "overflows");
    CASE(set_u64(&b, b.a_dim0, 48), "not a multiple");
    CASE(set_u32(&b, b.a_type, 200), "type 200 out of range");
    CASE(set_u32(&b, b.a_type, 5), "type 5 out of range");
    CASE(set_u64(&b, b.a_offset, 8), "not aligned");
    CASE(set_u64(&b, b.a_offset, 1ull << 40), "runs past the end");
    CASE(set_u64(&b, b.a_offset, UINT64_MAX - 31), "runs past the end");
    CASE(set_u64(&b, b.b_offset, 128), "overlap");
    CASE(b.p[b.b_name + 8] = 'a', "appears twice");
    CASE(b.p[b.a_name_len + 8] = 0, "NUL");
#undef CASE
    build(&b);
    for (size_t len = 0; len < b.n; len++) {
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu bytes", len);
        expect_fail(&b, len, "<memory>: ", what);
    }
}

/* Random corruption: never a crash or an out-of-bounds read (ASan). */
static void test_random_corruption(void) {
    uint64_t s = test_seed();
    gb b;
    for (int rep = 0; rep < 3000; rep++) {
        build(&b);
        int flips = 1 + rep % 4;
        for (int k = 0; k < flips; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            b.p[(s >> 33) % b.n] = (uint8_t)(s >> 11);
        }
        gguf_file *f = NULL;
        char err[512];
        if (gguf_parse(b.p, b.n, &f, err, sizeof err) == 0) {
            for (size_t i = 0; i < f->n_tensors; i++) {
                const gguf_tensor *t = &f->tensors[i];
                CHECK(t->data >= b.p && t->data + t->bytes <= b.p + b.n, "tensor outside the buffer");
            }
            gguf_close(f);
        }
    }
}

/* The fuzz seeds (tests/fuzz/corpus/gguf, from make_corpus.py): valid
 * ones parse, each "bad_" one fails. */
static void test_fuzz_seeds(void) {
    const char *dir = test_path("SDRT_SOURCE_DIR", "tests/fuzz/corpus/gguf");
    DIR *d = opendir(dir);
    REQUIRE(d, "%s missing", dir);
    int seen = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char rel[512];
        snprintf(rel, sizeof rel, "tests/fuzz/corpus/gguf/%s", e->d_name);
        size_t len;
        void *buf = gguf_test_slurp(rel, &len);
        gguf_file *f = NULL;
        char err[512] = "";
        int rc = buf ? gguf_parse(buf, len, &f, err, sizeof err) : -2;
        int bad = strncmp(e->d_name, "bad_", 4) == 0;
        CHECK(bad ? rc == -1 : rc == 0, "%s: rc %d %s", e->d_name, rc, err);
        gguf_close(f);
        free(buf);
        seen++;
    }
    closedir(d);
    CHECK(seen >= 20, "only %d seeds", seen);
}

void test_convert_load_sd15(void);
void test_convert_load_sdxl(void);
void test_unet_only_ldm(void);
void test_load_errors(void);
void test_convert_message(void);
void test_cli_convert(void);

const test_entry TESTS[] = {
    {"dtype_helpers", test_dtype_helpers},
    {"dequant_matches_gguf_py", test_dequant_matches_gguf_py},
    {"quantise_matches_ggml", test_quantise_matches_ggml},
    {"read_gguf_py_file", test_read_gguf_py_file},
    {"handmade_valid", test_handmade_valid},
    {"malformed", test_malformed},
    {"random_corruption", test_random_corruption},
    {"fuzz_seeds", test_fuzz_seeds},
    {"convert_load_sd15", test_convert_load_sd15},
    {"convert_load_sdxl", test_convert_load_sdxl},
    {"unet_only_ldm", test_unet_only_ldm},
    {"load_errors", test_load_errors},
    {"convert_message", test_convert_message},
    {"cli_convert", test_cli_convert},
    {0},
};
