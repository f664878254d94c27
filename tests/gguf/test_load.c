/* tests/gguf/test_load.c - model.convert and loading GGUF models: the tiny
 * reference SD1.5 and SDXL checkpoints converted to q8_0 / q4_0 / f16 GGUF
 * by sdrt load with the same components, names and shapes as the
 * .safetensors originals; quantised weights dequantise to within the
 * format's error of the originals, everything else is bit-identical. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "gguf.h"
#include "gguf_write.h"
#include "harness.h"
#include "sdrt/quant.h"
#include "store.h"

static int64_t numel(const sdrt_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

/* A tensor's logical values as f32 (contiguous or a strided view). */
static float *values(const sdrt_tensor *t) {
    int64_t n = numel(t);
    float *out = malloc((size_t)(n ? n : 1) * sizeof *out);
    if (sdrt_dtype_is_quantized(t->dtype)) {
        sdrt_dequant_row(t->dtype, t->data, out, n);
        return out;
    }
    size_t es = sdrt_dtype_block_bytes(t->dtype);
    for (int64_t e = 0; e < n; e++) {
        int64_t off = 0, r = e;
        for (int d = t->ndim - 1; d >= 0; d--) {
            off += (r % t->shape[d]) * t->strides[d];
            r /= t->shape[d];
        }
        float v[1];
        sdrt_dequant_row(t->dtype, (const char *)t->data + (size_t)off * es, v, 1);
        out[e] = v[0];
    }
    return out;
}

static void compare_models(struct sdrt_model *ref, struct sdrt_model *q, sdrt_dtype wt, const char *what) {
    CHECK(strcmp(ref->arch, q->arch) == 0, "%s: arch %s vs %s", what, q->arch, ref->arch);
    CHECK(ref->n_comps == q->n_comps, "%s: %d components vs %d", what, q->n_comps, ref->n_comps);
    size_t quantised = 0;
    double worst = 0;
    for (int c = 0; c < ref->n_comps; c++) {
        store_component *rc = &ref->comps[c], *qc = store_component_get(q, rc->name);
        CHECK(qc && qc->n == rc->n, "%s: component %s: %zu tensors vs %zu", what, rc->name, qc ? qc->n : 0, rc->n);
        if (!qc) continue;
        CHECK(!rc->config_json || (qc->config_json && strcmp(rc->config_json, qc->config_json) == 0),
              "%s: %s config differs", what, rc->name);
        for (size_t i = 0; i < rc->n; i++) {
            const sdrt_tensor *a = &rc->entries[i].t, *b = store_tensor(q, rc->name, rc->entries[i].name);
            CHECK(b, "%s: %s/%s missing", what, rc->name, rc->entries[i].name);
            if (!b) continue;
            int same = a->ndim == b->ndim;
            for (int d = 0; same && d < a->ndim; d++) same = a->shape[d] == b->shape[d];
            CHECK(same, "%s: %s/%s shape differs", what, rc->name, rc->entries[i].name);
            if (!same) continue;
            float *x = values(a), *y = values(b);
            int64_t n = numel(a);
            if (sdrt_dtype_is_quantized(b->dtype)) {
                quantised++;
                CHECK(b->dtype == wt, "%s: %s stored as %s", what, rc->entries[i].name, store_dtype_name(b->dtype));
                double e = test_rel_l2(y, x, (size_t)n);
                if (e > worst) worst = e;
                CHECK(e < (wt == SDRT_DTYPE_Q8_0 ? 1e-2 : 0.15), "%s: %s rel L2 %g", what, rc->entries[i].name, e);
            } else if (b->dtype != a->dtype) {
                /* Converted to f16, or quantised in the file and widened on load (tables). */
                CHECK(test_rel_l2(y, x, (size_t)n) < (wt == SDRT_DTYPE_Q4_0 ? 0.15 : 1e-2), "%s: %s as %s", what,
                      rc->entries[i].name, store_dtype_name(b->dtype));
            } else {
                CHECK(memcmp(x, y, (size_t)n * sizeof *x) == 0, "%s: %s/%s values differ", what, rc->name,
                      rc->entries[i].name);
            }
            free(x);
            free(y);
        }
    }
    printf("# %s: %zu quantised tensors, worst rel L2 %.3g\n", what, quantised, worst);
    CHECK(wt == SDRT_DTYPE_F16 || quantised > 20, "%s: only %zu tensors quantised", what, quantised);
}

static void convert_and_compare(const char *name, sdrt_dtype wt) {
    char rel[128], out[4096], err[1024];
    snprintf(rel, sizeof rel, "%s/%s.safetensors", name, name);
    const char *src = test_path("SDRT_REFERENCE", rel);
    snprintf(out, sizeof out, "%s/%s-%s.gguf", test_tmpdir(), name, sdrt_dtype_ggml_name(wt));
    convert_stats cs;
    sdrt_status st = model_convert(src, out, wt, &cs, err, sizeof err);
    REQUIRE(st == SDRT_OK, "convert %s: %s", name, err);
    printf("# %s -> %s: %zu tensors, %zu quantised, %llu -> %llu bytes\n", name, sdrt_dtype_ggml_name(wt), cs.tensors,
           cs.quantised, (unsigned long long)cs.bytes_in, (unsigned long long)cs.bytes_out);
    struct sdrt_model *ref = NULL, *q = NULL;
    REQUIRE(store_load(src, &ref, err, sizeof err) == SDRT_OK, "load %s: %s", src, err);
    st = store_load(out, &q, err, sizeof err);
    CHECK(st == SDRT_OK, "load %s: %s", out, err);
    if (st == SDRT_OK) {
        CHECK(strcmp(q->source, "gguf") == 0, "source %s", q->source);
        compare_models(ref, q, wt, out);
    }
    store_free(ref);
    store_free(q);
}

void test_convert_load_sd15(void) {
    convert_and_compare("tiny-sd15", SDRT_DTYPE_Q8_0);
    convert_and_compare("tiny-sd15", SDRT_DTYPE_Q4_0);
    convert_and_compare("tiny-sd15", SDRT_DTYPE_F16);
}

void test_convert_load_sdxl(void) { convert_and_compare("tiny-sdxl", SDRT_DTYPE_Q8_0); }

/* Writer input for the hand-made files below: raw tensor bytes. */
typedef struct copy_ctx {
    const void **data;
    gguf_wtensor *w;
} copy_ctx;

static int produce(void *ctx, size_t i, void *o, char *e, size_t el) {
    (void)e;
    (void)el;
    copy_ctx *c = ctx;
    memcpy(o, c->data[i], (size_t)gguf_w_bytes(&c->w[i]));
    return 0;
}

/* A ComfyUI-GGUF UNet file: ldm names without "model.diffusion_model.". */
void test_unet_only_ldm(void) {
    char err[1024], out[4096];
    const char *src = test_path("SDRT_REFERENCE", "tiny-sdxl/tiny-sdxl.safetensors");
    snprintf(out, sizeof out, "%s/unet.gguf", test_tmpdir());
    st_file *f;
    REQUIRE(st_open(src, &f, err, sizeof err) == 0, "%s", err);
    /* Write the UNet tensors renamed, through the writer. */
    size_t n = 0;
    gguf_wtensor *w = calloc(f->n_tensors, sizeof *w);
    const void **data = calloc(f->n_tensors, sizeof *data);
    char **names = calloc(f->n_tensors, sizeof *names);
    for (size_t i = 0; i < f->n_tensors; i++) {
        const st_tensor *t = &f->tensors[i];
        if (strncmp(t->name, "model.diffusion_model.", 22) != 0) continue;
        names[n] = strdup(t->name + 22);
        w[n] = (gguf_wtensor){.name = names[n], .dtype = (sdrt_dtype)st_to_sdrt_dtype(t->dtype), .ndim = t->ndim};
        for (int d = 0; d < t->ndim; d++) w[n].shape[d] = t->shape[d];
        data[n++] = t->data;
    }
    copy_ctx cc = {data, w};
    gguf_wmeta meta = {.arch = "sdxl"};
    int rc = gguf_write(out, &meta, w, n, produce, &cc, err, sizeof err);
    CHECK(rc == 0, "write: %s", err);
    struct sdrt_model *m = NULL;
    sdrt_status st = rc ? SDRT_INTERNAL : store_load(out, &m, err, sizeof err);
    CHECK(st == SDRT_OK, "load unet-only: %s", err);
    if (st == SDRT_OK) {
        CHECK(strcmp(m->arch, "sdxl") == 0, "arch %s", m->arch);
        CHECK(store_component_get(m, "unet") && !store_component_get(m, "vae"), "components");
        CHECK(store_tensor(m, "unet", "conv_in.weight") && store_tensor(m, "unet", "add_embedding.linear_1.weight"),
              "unet tensors under diffusers names");
    }
    store_free(m);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    free(w);
    free(data);
    st_close(f);
}

void test_load_errors(void) {
    char err[1024], path[4096];
    snprintf(path, sizeof path, "%s/bad.gguf", test_tmpdir());
    FILE *f = fopen(path, "wb");
    fwrite("GGUF\x01\x00\x00\x00", 1, 8, f);
    fclose(f);
    struct sdrt_model *m = NULL;
    sdrt_status st = store_load(path, &m, err, sizeof err);
    CHECK(st == SDRT_INVALID_ARGUMENT && strstr(err, "version 1") && strstr(err, "bad.gguf"), "bad version: %s", err);
    /* Not SD tensors. */
    gguf_wtensor t = {.name = "blk.0.attn_q.weight", .dtype = SDRT_DTYPE_F32, .ndim = 1, .shape = {4}};
    float zeros[4] = {0};
    const void *d[1] = {zeros};
    copy_ctx cc = {d, &t};
    gguf_wmeta meta = {.arch = "llama"};
    REQUIRE(gguf_write(path, &meta, &t, 1, produce, &cc, err, sizeof err) == 0, "%s", err);
    st = store_load(path, &m, err, sizeof err);
    CHECK(st == SDRT_INVALID_ARGUMENT && strstr(err, "llama"), "llama file: %s", err);
    convert_stats cs;
    st = model_convert(path, path, SDRT_DTYPE_Q3_K, &cs, err, sizeof err);
    CHECK(st == SDRT_INVALID_ARGUMENT && strstr(err, "q3_K"), "q3_K write refused: %s", err);
}
