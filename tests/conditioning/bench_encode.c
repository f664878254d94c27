/* bench_encode.c - time to encode one SDXL prompt pair with full-size
 * random weights (CLIP ViT-L + OpenCLIP ViT-bigG text towers, float16 as
 * in the released checkpoints) on the CPU backend. Not a ctest test: run
 *   SDRT_REFERENCE=... SDRT_BUILD_DIR=build ./build/tests/bench-cond-encode [threads] [reps]
 * Results go in docs/PERFORMANCE.md ("## Conditioning"). */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipeline.h"
#include "sdrt/half.h"

typedef struct wt {
    char comp[24];
    char name[96];
    sdrt_tensor t;
} wt;

static wt *g_w;
static size_t g_n, g_cap;
static uint64_t g_rng = 0x9E3779B97F4A7C15ULL;

static float frand(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return ((float)(g_rng >> 40) / (float)(1u << 24) - 0.5f) * 0.04f;
}

static void add(const char *comp, const char *name, int64_t rows, int64_t cols, float fill) {
    if (g_n == g_cap) {
        g_cap = g_cap ? g_cap * 2 : 256;
        g_w = realloc(g_w, g_cap * sizeof *g_w);
    }
    wt *w = &g_w[g_n++];
    memset(w, 0, sizeof *w);
    snprintf(w->comp, sizeof w->comp, "%s", comp);
    snprintf(w->name, sizeof w->name, "%s", name);
    size_t n = (size_t)(rows * cols);
    uint16_t *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = sdrt_f32_to_f16(fill != 0 ? fill : frand());
    w->t = (sdrt_tensor){.struct_size = sizeof(sdrt_tensor), .dtype = SDRT_DTYPE_F16, .ndim = cols > 1 ? 2 : 1,
                         .data = d};
    w->t.shape[0] = cols > 1 ? rows : rows * cols;
    w->t.shape[1] = cols > 1 ? cols : 1;
    w->t.strides[0] = cols > 1 ? cols : 1;
    w->t.strides[1] = cols > 1 ? 1 : 0;
}

static void tower(const char *comp, int d, int layers, int inter, int proj) {
    char n[96];
    add(comp, "text_model.embeddings.token_embedding.weight", 49408, d, 0);
    add(comp, "text_model.embeddings.position_embedding.weight", 77, d, 0);
    for (int i = 0; i < layers; i++) {
        const char *lin[6] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
                              "mlp.fc1", "mlp.fc2"};
        for (int k = 0; k < 6; k++) {
            int out = k == 4 ? inter : d, in = k == 5 ? inter : d;
            snprintf(n, sizeof n, "text_model.encoder.layers.%d.%s.weight", i, lin[k]);
            add(comp, n, out, in, 0);
            snprintf(n, sizeof n, "text_model.encoder.layers.%d.%s.bias", i, lin[k]);
            add(comp, n, out, 1, 0);
        }
        for (int k = 1; k <= 2; k++) {
            snprintf(n, sizeof n, "text_model.encoder.layers.%d.layer_norm%d.weight", i, k);
            add(comp, n, d, 1, 1.0f);
            snprintf(n, sizeof n, "text_model.encoder.layers.%d.layer_norm%d.bias", i, k);
            add(comp, n, d, 1, 0);
        }
    }
    add(comp, "text_model.final_layer_norm.weight", d, 1, 1.0f);
    add(comp, "text_model.final_layer_norm.bias", d, 1, 0);
    if (proj) add(comp, "text_projection.weight", proj, d, 0);
}

static const char *CFG1 = "{\"architectures\":[\"CLIPTextModel\"],\"hidden_size\":768,\"num_hidden_layers\":12,"
                          "\"num_attention_heads\":12,\"intermediate_size\":3072,\"hidden_act\":\"quick_gelu\","
                          "\"projection_dim\":768,\"eos_token_id\":2}";
static const char *CFG2 = "{\"architectures\":[\"CLIPTextModelWithProjection\"],\"hidden_size\":1280,"
                          "\"num_hidden_layers\":32,\"num_attention_heads\":20,\"intermediate_size\":5120,"
                          "\"hidden_act\":\"gelu\",\"projection_dim\":1280,\"eos_token_id\":2}";

static const char *cfg(void *ctx, const char *comp) {
    (void)ctx;
    if (strcmp(comp, "text_encoder") == 0) return CFG1;
    if (strcmp(comp, "text_encoder_2") == 0) return CFG2;
    return NULL;
}

static const sdrt_tensor *tensor(void *ctx, const char *comp, const char *name) {
    (void)ctx;
    for (size_t i = 0; i < g_n; i++)
        if (strcmp(g_w[i].comp, comp) == 0 && strcmp(g_w[i].name, name) == 0) return &g_w[i].t;
    return NULL;
}

static const char *file(void *ctx, const char *comp, const char *f) {
    (void)ctx;
    (void)comp;
    (void)f;
    return NULL; /* tokenizers come from the fallback folders */
}

static void nolog(sdrt_host *h, sdrt_log_level l, const char *fmt, ...) {
    (void)h;
    (void)l;
    (void)fmt;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, reps = argc > 2 ? atoi(argv[2]) : 3;
    const char *ref = getenv("SDRT_REFERENCE"), *build = getenv("SDRT_BUILD_DIR");
    if (!ref || !build) {
        fprintf(stderr, "set SDRT_REFERENCE and SDRT_BUILD_DIR\n");
        return 2;
    }
    char so_path[1024], tok1[1024], tok2[1024], params[64], err[512];
    snprintf(so_path, sizeof so_path, "%s/lib/sdrt/backends/sdrt_backend_cpu.so", build);
    snprintf(tok1, sizeof tok1, "%s/tokenizer", ref);
    snprintf(tok2, sizeof tok2, "%s/tokenizer_2", ref);
    void *so = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
    sdrt_backend_entry_fn entry = so ? (sdrt_backend_entry_fn)dlsym(so, SDRT_BACKEND_ENTRY_SYMBOL) : NULL;
    static sdrt_host_api api = {.struct_size = sizeof(sdrt_host_api), .abi_major = SDRT_ABI_MAJOR,
                                .log = nolog, .alloc = malloc, .free = free};
    sdrt_backend_reg *reg = entry ? entry(&api, "{}") : NULL;
    if (!reg) {
        fprintf(stderr, "cannot load %s\n", so_path);
        return 1;
    }
    double t0 = now();
    tower("text_encoder", 768, 12, 3072, 0);
    tower("text_encoder_2", 1280, 32, 5120, 1280);
    printf("random f16 weights: %zu tensors in %.1f s\n", g_n, now() - t0);
    cond_source src = {.config_json = cfg, .tensor = tensor, .file_path = file, .fallback_tokenizer_dir = {tok1, tok2}};
    cond_model *cm;
    if (cond_model_load(&src, &cm, err, sizeof err) != SDRT_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    snprintf(params, sizeof params, "{\"threads\":%d}", threads);
    sdrt_nn *nn = sdrt_nn_new(reg->iface->device_get(reg, 0), params, NULL, NULL);
    const char *prompt = "A photo of an astronaut riding a horse on Mars, highly detailed, 8k";
    const char *negative = "blurry, low quality";
    double best = 1e9;
    for (int r = 0; r < reps; r++) {
        cond_output o;
        t0 = now();
        sdrt_status st = cond_encode(cm, &src, nn, prompt, negative, 0, 1, &o, err, sizeof err);
        double dt = now() - t0;
        if (st != SDRT_OK) {
            fprintf(stderr, "encode: %s\n", err);
            return 1;
        }
        printf("encode prompt + negative: %.3f s (embeds [1,%lld,%lld], pooled [1,%lld])\n", dt,
               (long long)o.seq, (long long)o.dim, (long long)o.pooled_dim);
        if (dt < best) best = dt;
        cond_output_free(&o);
    }
    printf("best of %d: %.3f s with %d threads\n", reps, best, threads);
    sdrt_nn_free(nn);
    cond_model_free(cm);
    return 0;
}
