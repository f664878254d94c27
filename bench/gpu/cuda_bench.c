/* bench/gpu/cuda_bench - TFLOP/s of the CUDA family's MATMUL, CONV2D and
 * ATTENTION on SD-shaped problems, through the backend ABI exactly as the
 * runtime calls it (op by op on one stream; CUDA graph replay for the
 * repeated runs). Prints one JSON line per case and a summary; exits 0
 * with "skipped" where there is no CUDA device.
 *
 * Usage: sdrt-cuda-bench [build_dir] (default: the SDRT_BUILD_DIR env or .)
 * Precision: SDRT_CUDA_PRECISION=f32|mixed (the family's own switch). */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sdrt/backend.h"
#include "sdrt/half.h"

static void blog(sdrt_host *h, sdrt_log_level lv, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "# ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static sdrt_host_api g_api = {.struct_size = sizeof(sdrt_host_api), .abi_major = SDRT_ABI_MAJOR,
                              .abi_minor = SDRT_ABI_MINOR, .log = blog};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct dt {
    sdrt_buffer *buf;
    sdrt_tensor t;
} dt;

static sdrt_device *g_dev;

static dt mk(sdrt_dtype dtype, int nd, const int64_t *shape) {
    dt r;
    memset(&r, 0, sizeof r);
    size_t es = dtype == SDRT_DTYPE_F32 ? 4 : 2, n = 1;
    r.t.struct_size = sizeof(sdrt_tensor);
    r.t.dtype = dtype;
    r.t.ndim = nd;
    for (int d = nd - 1; d >= 0; d--) {
        r.t.shape[d] = shape[d];
        r.t.strides[d] = (int64_t)n;
        n *= (size_t)shape[d];
    }
    r.buf = sdrt_buffer_alloc(g_dev->iface->buffer_type(g_dev), n * es);
    if (!r.buf) {
        fprintf(stderr, "out of device memory\n");
        exit(1);
    }
    /* small random values so the arithmetic is realistic (no denormals, no infs) */
    unsigned char *h = malloc(n * es);
    for (size_t i = 0; i < n; i++) {
        float v = ((float)rand() / RAND_MAX - 0.5f) * 0.1f;
        if (es == 4) memcpy(h + 4 * i, &v, 4);
        else {
            uint16_t u = dtype == SDRT_DTYPE_F16 ? sdrt_f32_to_f16(v) : sdrt_f32_to_bf16(v);
            memcpy(h + 2 * i, &u, 2);
        }
    }
    r.t.data = r.buf->iface->base(r.buf);
    r.t.buffer = r.buf;
    r.buf->iface->write(r.buf, r.t.data, h, n * es);
    free(h);
    return r;
}

/* Median-free simple timing: warm up, then `reps` replays of a one-op graph. */
static void bench(sdrt_stream *s, const char *name, sdrt_op *op, double flops, double peak_tflops, uint64_t key) {
    sdrt_graph g = {.struct_size = sizeof(sdrt_graph), .n_ops = 1, .ops = op, .replay_key = key};
    for (int i = 0; i < 3; i++)
        if (sdrt_stream_graph_compute(s, &g) != SDRT_OK) {
            printf("{\"case\":\"%s\",\"error\":\"compute failed\"}\n", name);
            return;
        }
    sdrt_stream_synchronize(s);
    int reps = 20;
    double t0 = now();
    for (int i = 0; i < reps; i++) sdrt_stream_graph_compute(s, &g);
    sdrt_stream_synchronize(s);
    double ms = (now() - t0) * 1e3 / reps, tf = flops / (ms * 1e-3) / 1e12;
    printf("{\"case\":\"%s\",\"ms\":%.4f,\"tflops\":%.2f,\"peak_fraction\":%.3f}\n", name, ms, tf,
           peak_tflops > 0 ? tf / peak_tflops : 0.0);
    fflush(stdout);
}

#define S(...) ((const int64_t[]){__VA_ARGS__})

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : getenv("SDRT_BUILD_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/lib/sdrt/backends/sdrt_backend_cuda.so", dir ? dir : ".");
    void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!so) {
        printf("{\"skipped\":\"cannot load %s: %s\"}\n", path, dlerror());
        return 0;
    }
    sdrt_backend_entry_fn entry = (sdrt_backend_entry_fn)dlsym(so, SDRT_BACKEND_ENTRY_SYMBOL);
    sdrt_backend_reg *reg = entry ? entry(&g_api, "{}") : NULL;
    if (!reg || !reg->iface->device_count(reg)) {
        printf("{\"skipped\":\"no CUDA device\"}\n");
        return 0;
    }
    g_dev = reg->iface->device_get(reg, 0);
    printf("{\"device\":%s}\n", g_dev->iface->info_json(g_dev));
    /* Dense peaks (TFLOP/s) for the fraction column: H100 SXM f16 989, f32 67
     * (non-tensor); A100 f16 312, f32 19.5. SDRT_PEAK_F16 / SDRT_PEAK_F32 set them. */
    double pk16 = getenv("SDRT_PEAK_F16") ? atof(getenv("SDRT_PEAK_F16")) : 989.0;
    double pk32 = getenv("SDRT_PEAK_F32") ? atof(getenv("SDRT_PEAK_F32")) : 67.0;
    sdrt_stream *s = g_dev->iface->stream_new(g_dev, NULL);
    uint64_t key = 1;
    /* GEMM: SDXL-like Linear layers (tokens x in -> out), f16 and f32 weights. */
    struct { int64_t m, k, n; } mm[] = {{4096, 640, 640}, {4096, 640, 5120}, {1024, 1280, 10240}, {8192, 320, 320}};
    for (size_t i = 0; i < sizeof mm / sizeof mm[0]; i++) {
        for (int w = 0; w < 2; w++) {
            sdrt_dtype wd = w ? SDRT_DTYPE_F32 : SDRT_DTYPE_F16;
            dt a = mk(SDRT_DTYPE_F32, 2, S(mm[i].m, mm[i].k)), b = mk(wd, 2, S(mm[i].n, mm[i].k));
            dt c = mk(SDRT_DTYPE_F32, 2, S(mm[i].m, mm[i].n)), bias = mk(SDRT_DTYPE_F32, 1, S(mm[i].n));
            sdrt_op op = {.struct_size = sizeof(sdrt_op), .kind = SDRT_OP_MATMUL, .src = {&a.t, &b.t, &bias.t},
                          .dst = &c.t, .iparams = {1}};
            char name[96];
            snprintf(name, sizeof name, "matmul %lldx%lldx%lld %s", (long long)mm[i].m, (long long)mm[i].k,
                     (long long)mm[i].n, w ? "f32" : "f16");
            bench(s, name, &op, 2.0 * mm[i].m * mm[i].k * mm[i].n, w ? pk32 : pk16, key++);
            sdrt_buffer_free(a.buf), sdrt_buffer_free(b.buf), sdrt_buffer_free(c.buf), sdrt_buffer_free(bias.buf);
        }
    }
    /* Conv 3x3 as in SDXL's UNet at 1024² (latent 128²) and the VAE. */
    struct { int64_t n, c, h, o; } cv[] = {{2, 320, 128, 320}, {2, 640, 64, 640}, {2, 1280, 32, 1280}, {1, 128, 512, 128}};
    for (size_t i = 0; i < sizeof cv / sizeof cv[0]; i++) {
        dt x = mk(SDRT_DTYPE_F32, 4, S(cv[i].n, cv[i].c, cv[i].h, cv[i].h)), w = mk(SDRT_DTYPE_F16, 4, S(cv[i].o, cv[i].c, 3, 3));
        dt y = mk(SDRT_DTYPE_F32, 4, S(cv[i].n, cv[i].o, cv[i].h, cv[i].h));
        sdrt_op op = {.struct_size = sizeof(sdrt_op), .kind = SDRT_OP_CONV2D, .src = {&x.t, &w.t}, .dst = &y.t,
                      .iparams = {1, 1, 1, 1}};
        char name[96];
        snprintf(name, sizeof name, "conv3x3 n%lld c%lld %lld² o%lld f16", (long long)cv[i].n, (long long)cv[i].c,
                 (long long)cv[i].h, (long long)cv[i].o);
        bench(s, name, &op, 2.0 * cv[i].n * cv[i].o * cv[i].h * cv[i].h * cv[i].c * 9, pk16, key++);
        sdrt_buffer_free(x.buf), sdrt_buffer_free(w.buf), sdrt_buffer_free(y.buf);
    }
    /* Attention: SDXL 1024² self-attention (4096 tokens, 10 heads x 64, CFG batch 2),
     * SD1.5 512² (4096 tokens, 8 x 40), cross-attention (77 keys). */
    struct { int64_t b, h, lq, lk, d; } at[] = {{2, 10, 4096, 4096, 64}, {2, 20, 1024, 1024, 64}, {2, 8, 4096, 4096, 40},
                                               {2, 10, 4096, 77, 64}};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        dt q = mk(SDRT_DTYPE_F32, 4, S(at[i].b, at[i].h, at[i].lq, at[i].d));
        dt k = mk(SDRT_DTYPE_F32, 4, S(at[i].b, at[i].h, at[i].lk, at[i].d));
        dt v = mk(SDRT_DTYPE_F32, 4, S(at[i].b, at[i].h, at[i].lk, at[i].d));
        dt o = mk(SDRT_DTYPE_F32, 4, S(at[i].b, at[i].h, at[i].lq, at[i].d));
        sdrt_op op = {.struct_size = sizeof(sdrt_op), .kind = SDRT_OP_ATTENTION, .src = {&q.t, &k.t, &v.t}, .dst = &o.t};
        char name[96];
        snprintf(name, sizeof name, "attention b%lld h%lld %lldx%lld d%lld", (long long)at[i].b, (long long)at[i].h,
                 (long long)at[i].lq, (long long)at[i].lk, (long long)at[i].d);
        bench(s, name, &op, 4.0 * at[i].b * at[i].h * at[i].lq * at[i].lk * at[i].d, pk32, key++);
        sdrt_buffer_free(q.buf), sdrt_buffer_free(k.buf), sdrt_buffer_free(v.buf), sdrt_buffer_free(o.buf);
    }
    sdrt_stream_free(s);
    return 0;
}
