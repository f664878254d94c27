/* tests/cuda/test_cuda_device - the built sdrt_backend_cuda module.
 *
 * Everywhere: the module loads (cudart is static, so no driver is needed to
 * load it) and its entry either returns a usable family or returns NULL
 * after exactly one log line. Without a device every device check below
 * reports "skipped: ..." and passes.
 *
 * With a CUDA device: buffers (round trip, memset, device copy, pinned
 * staging, async copies and events), out-of-memory, every op on fresh
 * random inputs against the CPU backend (strided, broadcast, f16/bf16
 * weights in f32 and mixed precision), graph replay with new input data,
 * and reset. Tolerances (relative L2) as the conformance test's: 1e-6 for
 * exact-but-for-FMA element-wise ops, 1e-5 for transcendental ones and
 * norms, 2e-5 for reordered sums (MATMUL, CONV2D, ATTENTION), 2e-4 for
 * TIMESTEP_EMB (sin/cos of arguments up to 1000); 1e-2 / 2e-2 for mixed
 * precision (activations rounded to f16 / bf16). */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "sdrt/backend.h"
#include "sdrt/half.h"

static int g_log_lines;
static char g_last_log[512];

static void fake_log(sdrt_host *host, sdrt_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_last_log, sizeof g_last_log, fmt, ap);
    va_end(ap);
    g_log_lines++;
    fprintf(stderr, "# log: %s\n", g_last_log);
}

static sdrt_host_api g_api = {.struct_size = sizeof(sdrt_host_api), .abi_major = SDRT_ABI_MAJOR,
                              .abi_minor = SDRT_ABI_MINOR, .log = fake_log};

static sdrt_backend_reg *load_family(const char *name, const char *config) {
    char path[4096];
    snprintf(path, sizeof path, "%s/lib/sdrt/backends/sdrt_backend_%s.so", getenv("SDRT_BUILD_DIR"), name);
    struct stat sb;
    if (stat(path, &sb) != 0) return NULL;
    void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!so) {
        test_fail_(__FILE__, __LINE__, "dlopen %s: %s", path, dlerror());
        return NULL;
    }
    sdrt_backend_entry_fn entry = (sdrt_backend_entry_fn)dlsym(so, SDRT_BACKEND_ENTRY_SYMBOL);
    if (!entry) {
        test_fail_(__FILE__, __LINE__, "%s has no entry", path);
        return NULL;
    }
    return entry(&g_api, config);
}

static int g_loaded, g_cuda_log_lines;
static char g_cuda_log[512];
static sdrt_backend_reg *g_cuda, *g_cpu;

static sdrt_device *cuda_dev(void) {
    if (!g_loaded) {
        g_loaded = 1;
        g_log_lines = 0;
        g_last_log[0] = 0;
        g_cuda = load_family("cuda", "{}");
        g_cuda_log_lines = g_log_lines;
        snprintf(g_cuda_log, sizeof g_cuda_log, "%s", g_last_log);
        g_cpu = load_family("cpu", "{}");
    }
    return g_cuda && g_cuda->iface->device_count(g_cuda) ? g_cuda->iface->device_get(g_cuda, 0) : NULL;
}

#define NEED_DEVICE()                                                              \
    sdrt_device *dev = cuda_dev();                                                 \
    if (!dev) {                                                                    \
        printf("# skipped: no CUDA device (%s)\n", g_cuda_log[0] ? g_cuda_log : "family not built"); \
        return;                                                                    \
    }

/* The module loads here; no device means NULL after one log line. */
static void test_module_entry(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/lib/sdrt/backends/sdrt_backend_cuda.so", getenv("SDRT_BUILD_DIR"));
    struct stat sb;
    if (stat(path, &sb) != 0) {
        printf("# skipped: the CUDA family is not built (SDRT_CUDA off or no nvcc)\n");
        return;
    }
    sdrt_device *dev = cuda_dev();
    if (!g_cuda) {
        CHECK(g_cuda_log_lines == 1, "entry returned NULL after %d log lines, want 1", g_cuda_log_lines);
        CHECK(strstr(g_cuda_log, "cuda") != NULL, "log line should name the family: %s", g_cuda_log);
        printf("# skipped: no CUDA device: %s\n", g_cuda_log);
        return;
    }
    CHECK(g_cuda->abi_major == SDRT_ABI_MAJOR, "ABI");
    CHECK(strcmp(g_cuda->iface->name(g_cuda), "cuda") == 0, "family name");
    REQUIRE(dev, "family without devices");
    size_t fr = 0, tot = 0;
    dev->iface->memory(dev, &fr, &tot);
    CHECK(tot > 0 && fr <= tot, "memory free %zu total %zu", fr, tot);
    CHECK(strstr(dev->iface->info_json(dev), "\"cuda:0\"") != NULL, "info: %s", dev->iface->info_json(dev));
    CHECK(dev->iface->type(dev) == SDRT_DEVICE_GPU, "type");
}

/* ---- tensors on both sides -------------------------------------------------- */

typedef struct twin {
    sdrt_buffer *cb, *gb;
    sdrt_tensor c, g;
    size_t bytes;
} twin;

static size_t dt_size(sdrt_dtype dt) { return dt == SDRT_DTYPE_F32 ? 4 : 2; }

static void to_dtype(void *dst, const float *src, int64_t n, sdrt_dtype dt) {
    for (int64_t i = 0; i < n; i++) {
        if (dt == SDRT_DTYPE_F32) ((float *)dst)[i] = src[i];
        else if (dt == SDRT_DTYPE_F16) ((uint16_t *)dst)[i] = sdrt_f32_to_f16(src[i]);
        else ((uint16_t *)dst)[i] = sdrt_f32_to_bf16(src[i]);
    }
}

static float frand(void) { return (float)rand() / (float)RAND_MAX * 2.0f - 1.0f; }

/* A contiguous tensor of `shape` with random values (or zeros) on the CPU
 * and the same bytes in VRAM. */
static twin twin_new(sdrt_device *dev, sdrt_dtype dt, int ndim, const int64_t *shape, int random) {
    twin t;
    memset(&t, 0, sizeof t);
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    t.bytes = (size_t)n * dt_size(dt);
    sdrt_device *cpu = g_cpu->iface->device_get(g_cpu, 0);
    t.cb = sdrt_buffer_alloc(cpu->iface->buffer_type(cpu), t.bytes ? t.bytes : 4);
    t.gb = sdrt_buffer_alloc(dev->iface->buffer_type(dev), t.bytes ? t.bytes : 4);
    t.c = (sdrt_tensor){.struct_size = sizeof(sdrt_tensor), .dtype = dt, .ndim = ndim};
    int64_t s = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        t.c.shape[d] = shape[d];
        t.c.strides[d] = s;
        s *= shape[d];
    }
    t.g = t.c;
    t.c.data = t.cb->iface->base(t.cb);
    t.c.buffer = t.cb;
    t.g.data = t.gb->iface->base(t.gb);
    t.g.buffer = t.gb;
    float *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = random ? frand() : 0.0f;
    to_dtype(t.c.data, v, n, dt);
    t.gb->iface->write(t.gb, t.g.data, t.c.data, t.bytes);
    free(v);
    return t;
}

static void twin_free(twin *t) {
    sdrt_buffer_free(t->cb);
    sdrt_buffer_free(t->gb);
}

/* Permuted view (swap two dims) on both sides. */
static void twin_swap(twin *t, int a, int b) {
    sdrt_tensor *ts[2] = {&t->c, &t->g};
    for (int i = 0; i < 2; i++) {
        int64_t x = ts[i]->shape[a];
        ts[i]->shape[a] = ts[i]->shape[b];
        ts[i]->shape[b] = x;
        x = ts[i]->strides[a];
        ts[i]->strides[a] = ts[i]->strides[b];
        ts[i]->strides[b] = x;
    }
}

typedef struct opcase {
    const char *name;
    sdrt_op_kind kind;
    twin *src[4];
    twin *dst;
    int32_t ip[SDRT_OP_MAX_PARAMS];
    float fp[SDRT_OP_MAX_PARAMS];
    double tol;
} opcase;

static sdrt_stream *g_cs, *g_gs;

/* Runs the case on both backends and compares dst (as f32). */
static void run_case(sdrt_device *dev, const opcase *oc) {
    sdrt_op c = {.struct_size = sizeof(sdrt_op), .kind = oc->kind}, g = c;
    for (int i = 0; i < 4; i++)
        if (oc->src[i]) c.src[i] = &oc->src[i]->c, g.src[i] = &oc->src[i]->g;
    c.dst = &oc->dst->c;
    g.dst = &oc->dst->g;
    memcpy(c.iparams, oc->ip, sizeof c.iparams);
    memcpy(g.iparams, oc->ip, sizeof g.iparams);
    memcpy(c.fparams, oc->fp, sizeof c.fparams);
    memcpy(g.fparams, oc->fp, sizeof g.fparams);
    CHECK(sdrt_device_supports_op(dev, &g), "%s: not supported", oc->name);
    sdrt_status sc = sdrt_stream_compute(g_cs, &c), sg = sdrt_stream_compute(g_gs, &g);
    REQUIRE(sc == SDRT_OK && sg == SDRT_OK, "%s: cpu %d, cuda %d", oc->name, sc, sg);
    sdrt_stream_synchronize(g_gs);
    twin *d = oc->dst;
    void *got = malloc(d->bytes ? d->bytes : 4);
    d->gb->iface->read(d->gb, got, d->g.data, d->bytes);
    int64_t n = (int64_t)(d->bytes / dt_size(d->c.dtype));
    float *a = malloc((size_t)(n ? n : 1) * 4), *b = malloc((size_t)(n ? n : 1) * 4);
    for (int64_t i = 0; i < n; i++) {
        if (d->c.dtype == SDRT_DTYPE_F32) a[i] = ((float *)got)[i], b[i] = ((float *)d->c.data)[i];
        else if (d->c.dtype == SDRT_DTYPE_F16)
            a[i] = sdrt_f16_to_f32(((uint16_t *)got)[i]), b[i] = sdrt_f16_to_f32(((uint16_t *)d->c.data)[i]);
        else a[i] = sdrt_bf16_to_f32(((uint16_t *)got)[i]), b[i] = sdrt_bf16_to_f32(((uint16_t *)d->c.data)[i]);
    }
    double err = n ? test_rel_l2(a, b, (size_t)n) : 0.0;
    CHECK(err <= oc->tol && !isnan(err), "%s: rel L2 %.3g > %.3g", oc->name, err, oc->tol);
    printf("# %-28s rel L2 %.3g\n", oc->name, err);
    free(got), free(a), free(b);
}

static void streams(sdrt_device *dev, const char *params) {
    sdrt_stream_free(g_cs);
    sdrt_stream_free(g_gs);
    sdrt_device *cpu = g_cpu->iface->device_get(g_cpu, 0);
    g_cs = cpu->iface->stream_new(cpu, NULL);
    g_gs = dev->iface->stream_new(dev, params);
}

#define S(...) ((const int64_t[]){__VA_ARGS__})

static void test_elementwise_ops(void) {
    NEED_DEVICE();
    REQUIRE(g_cpu, "the CPU family is needed as the reference");
    streams(dev, NULL);
    twin x = twin_new(dev, SDRT_DTYPE_F32, 3, S(3, 37, 70), 1), y = twin_new(dev, SDRT_DTYPE_F32, 3, S(3, 37, 70), 0);
    static const sdrt_op_kind acts[] = {SDRT_OP_GELU, SDRT_OP_GELU_TANH, SDRT_OP_QUICK_GELU, SDRT_OP_SILU};
    static const char *names[] = {"GELU", "GELU_TANH", "QUICK_GELU", "SILU"};
    for (int i = 0; i < 4; i++) run_case(dev, &(opcase){names[i], acts[i], {&x}, &y, .tol = 1e-5});
    run_case(dev, &(opcase){"SCALE", SDRT_OP_SCALE, {&x}, &y, .fp = {1.5f, -0.25f}, .tol = 1e-6});
    twin b = twin_new(dev, SDRT_DTYPE_F32, 2, S(1, 70), 1);
    run_case(dev, &(opcase){"ADD broadcast alpha", SDRT_OP_ADD, {&x, &b}, &y, .fp = {0.5f}, .tol = 1e-6});
    twin b2 = twin_new(dev, SDRT_DTYPE_F32, 3, S(3, 37, 1), 1);
    run_case(dev, &(opcase){"MUL broadcast", SDRT_OP_MUL, {&x, &b2}, &y, .tol = 1e-6});
    twin b16 = twin_new(dev, SDRT_DTYPE_F16, 1, S(70), 1);
    run_case(dev, &(opcase){"ADD f16 operand", SDRT_OP_ADD, {&x, &b16}, &y, .tol = 1e-6});
    twin xt = twin_new(dev, SDRT_DTYPE_F32, 3, S(3, 70, 37), 1);
    twin_swap(&xt, 1, 2);
    run_case(dev, &(opcase){"SILU strided src", SDRT_OP_SILU, {&xt}, &y, .tol = 1e-5});
    twin gx = twin_new(dev, SDRT_DTYPE_F32, 2, S(33, 2 * 50), 1), gy = twin_new(dev, SDRT_DTYPE_F32, 2, S(33, 50), 0);
    run_case(dev, &(opcase){"GEGLU", SDRT_OP_GEGLU, {&gx}, &gy, .tol = 1e-5});
    run_case(dev, &(opcase){"SOFTMAX", SDRT_OP_SOFTMAX, {&x}, &y, .fp = {0.7f}, .tol = 1e-5});
    twin g = twin_new(dev, SDRT_DTYPE_F32, 1, S(70), 1), be = twin_new(dev, SDRT_DTYPE_F32, 1, S(70), 1);
    run_case(dev, &(opcase){"LAYER_NORM", SDRT_OP_LAYER_NORM, {&x, &g, &be}, &y, .tol = 1e-5});
    run_case(dev, &(opcase){"LAYER_NORM strided", SDRT_OP_LAYER_NORM, {&xt, NULL, NULL}, &y, .tol = 1e-5});
    twin gbf = twin_new(dev, SDRT_DTYPE_BF16, 1, S(70), 1);
    run_case(dev, &(opcase){"LAYER_NORM bf16 gamma", SDRT_OP_LAYER_NORM, {&x, &gbf, &be}, &y, .tol = 1e-5});
    twin nx = twin_new(dev, SDRT_DTYPE_F32, 4, S(2, 64, 9, 11), 1), ny = twin_new(dev, SDRT_DTYPE_F32, 4, S(2, 64, 9, 11), 0);
    twin ng = twin_new(dev, SDRT_DTYPE_F32, 1, S(64), 1), nb = twin_new(dev, SDRT_DTYPE_F32, 1, S(64), 1);
    run_case(dev, &(opcase){"GROUP_NORM+SiLU", SDRT_OP_GROUP_NORM, {&nx, &ng, &nb}, &ny, .ip = {32, 1}, .tol = 1e-5});
    run_case(dev, &(opcase){"GROUP_NORM g8", SDRT_OP_GROUP_NORM, {&nx, NULL, NULL}, &ny, .ip = {8}, .fp = {1e-6f}, .tol = 1e-5});
    twin uy = twin_new(dev, SDRT_DTYPE_F32, 4, S(2, 64, 18, 22), 0);
    run_case(dev, &(opcase){"UPSAMPLE2X", SDRT_OP_UPSAMPLE2X, {&nx}, &uy, .tol = 0});
    twin cy = twin_new(dev, SDRT_DTYPE_F32, 4, S(2, 128, 9, 11), 0);
    run_case(dev, &(opcase){"CONCAT dim1", SDRT_OP_CONCAT, {&nx, &nx}, &cy, .ip = {1}, .tol = 0});
    twin h16 = twin_new(dev, SDRT_DTYPE_F16, 3, S(3, 37, 70), 0), hb = twin_new(dev, SDRT_DTYPE_BF16, 3, S(3, 70, 37), 0);
    run_case(dev, &(opcase){"COPY f32->f16", SDRT_OP_COPY, {&x}, &h16, .tol = 0});
    twin_swap(&hb, 1, 2);
    run_case(dev, &(opcase){"COPY permute f32->bf16", SDRT_OP_COPY, {&x}, &hb, .tol = 0});
    twin ts = twin_new(dev, SDRT_DTYPE_F32, 1, S(5), 0), te = twin_new(dev, SDRT_DTYPE_F32, 2, S(5, 321), 0);
    float steps[5] = {0, 1, 250.5f, 999, 500};
    memcpy(ts.c.data, steps, sizeof steps);
    ts.gb->iface->write(ts.gb, ts.g.data, steps, sizeof steps);
    run_case(dev, &(opcase){"TIMESTEP_EMB", SDRT_OP_TIMESTEP_EMB, {&ts}, &te, .ip = {321, 1}, .fp = {1.0f}, .tol = 2e-4});
    /* The super-resolution ops (contiguous: what the CPU family takes). */
    run_case(dev, &(opcase){"LEAKY_RELU default slope", SDRT_OP_LEAKY_RELU, {&nx}, &ny, .tol = 0});
    run_case(dev, &(opcase){"LEAKY_RELU 0.2", SDRT_OP_LEAKY_RELU, {&nx}, &ny, .fp = {0.2f}, .tol = 0});
    run_case(dev, &(opcase){"PRELU 64 slopes", SDRT_OP_PRELU, {&nx, &ng}, &ny, .tol = 0});
    twin p1 = twin_new(dev, SDRT_DTYPE_BF16, 1, S(1), 1);
    run_case(dev, &(opcase){"PRELU one bf16 slope", SDRT_OP_PRELU, {&nx, &p1}, &ny, .tol = 0});
    twin sy = twin_new(dev, SDRT_DTYPE_F32, 4, S(2, 16, 18, 22), 0), usy = twin_new(dev, SDRT_DTYPE_F32, 4, S(2, 256, 9, 11), 0);
    run_case(dev, &(opcase){"PIXEL_SHUFFLE r2", SDRT_OP_PIXEL_SHUFFLE, {&nx}, &sy, .ip = {2}, .tol = 0});
    run_case(dev, &(opcase){"PIXEL_UNSHUFFLE r2", SDRT_OP_PIXEL_UNSHUFFLE, {&uy}, &usy, .ip = {2}, .tol = 0});
    twin ny3 = twin_new(dev, SDRT_DTYPE_F32, 4, S(2, 64, 27, 33), 0);
    run_case(dev, &(opcase){"UPSAMPLE_NEAREST r3", SDRT_OP_UPSAMPLE_NEAREST, {&nx}, &ny3, .ip = {3}, .tol = 0});
    twin *all[] = {&x,  &y,  &b,  &b2, &b16, &gbf, &xt, &gx, &gy, &g,   &be,  &nx,
                   &ny, &ng, &nb, &uy, &cy,  &h16, &hb, &ts, &te, &p1,  &sy,  &usy, &ny3};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) twin_free(all[i]);
}

static void test_gemm_ops(void) {
    NEED_DEVICE();
    REQUIRE(g_cpu, "the CPU family is needed as the reference");
    static const char *modes[2] = {"{\"precision\":\"f32\"}", "{\"precision\":\"mixed\"}"};
    for (int mode = 0; mode < 2; mode++) {
        streams(dev, modes[mode]);
        double half_tol = mode == 0 ? 2e-5 : 1e-2;
        twin a = twin_new(dev, SDRT_DTYPE_F32, 3, S(2, 77, 96), 1), bias = twin_new(dev, SDRT_DTYPE_F32, 1, S(130), 1);
        twin y = twin_new(dev, SDRT_DTYPE_F32, 3, S(2, 77, 130), 0);
        static const sdrt_dtype wdt[3] = {SDRT_DTYPE_F32, SDRT_DTYPE_F16, SDRT_DTYPE_BF16};
        static const char *wn[3] = {"f32", "f16", "bf16"};
        for (int w = 0; w < 3; w++) {
            twin wt = twin_new(dev, wdt[w], 2, S(130, 96), 1);
            char name[64];
            snprintf(name, sizeof name, "MATMUL linear %s %s", wn[w], mode ? "mixed" : "f32");
            run_case(dev, &(opcase){name, SDRT_OP_MATMUL, {&a, &wt, &bias}, &y, .ip = {1}, .fp = {0.5f},
                                    .tol = w == 0 ? 2e-5 : (w == 2 && mode ? 2e-2 : half_tol)});
            twin_free(&wt);
        }
        /* Batched, broadcast over heads, B not transposed, strided A. */
        twin q = twin_new(dev, SDRT_DTYPE_F32, 4, S(2, 3, 40, 17), 1), k = twin_new(dev, SDRT_DTYPE_F32, 4, S(2, 1, 40, 23), 1);
        twin_swap(&q, 2, 3);
        twin s = twin_new(dev, SDRT_DTYPE_F32, 4, S(2, 3, 17, 23), 0);
        run_case(dev, &(opcase){"MATMUL batched strided", SDRT_OP_MATMUL, {&q, &k}, &s, .tol = 2e-5});
        /* Convolutions: 3x3 pad 1, stride 2, 1x1, grouped, dilated. */
        twin x = twin_new(dev, SDRT_DTYPE_F32, 4, S(2, 12, 15, 13), 1);
        struct { const char *name; int64_t o, cg, kh, kw; int32_t ip[7]; } cv[] = {
            {"CONV2D 3x3 p1", 20, 12, 3, 3, {1, 1, 1, 1, 1, 1, 1}},
            {"CONV2D 3x3 s2 p1", 20, 12, 3, 3, {2, 2, 1, 1, 1, 1, 1}},
            {"CONV2D 1x1", 24, 12, 1, 1, {0}},
            {"CONV2D grouped 3", 9, 4, 3, 3, {1, 1, 1, 1, 1, 1, 3}},
            {"CONV2D dilated 2", 8, 12, 3, 3, {1, 1, 2, 2, 2, 2, 1}},
        };
        for (size_t i = 0; i < sizeof cv / sizeof cv[0]; i++) {
            int64_t sh = cv[i].ip[0] ? cv[i].ip[0] : 1, ph = cv[i].ip[2], dh = cv[i].ip[4] ? cv[i].ip[4] : 1;
            int64_t ho = (15 + 2 * ph - dh * (cv[i].kh - 1) - 1) / sh + 1, wo = (13 + 2 * ph - dh * (cv[i].kw - 1) - 1) / sh + 1;
            for (int w = 0; w < 3; w += 1) {
                twin wt = twin_new(dev, wdt[w], 4, S(cv[i].o, cv[i].cg, cv[i].kh, cv[i].kw), 1);
                twin cb = twin_new(dev, i == 0 ? SDRT_DTYPE_F16 : SDRT_DTYPE_F32, 1, S(cv[i].o), 1);
                twin cy = twin_new(dev, SDRT_DTYPE_F32, 4, S(2, cv[i].o, ho, wo), 0);
                char name[80];
                snprintf(name, sizeof name, "%s %s %s", cv[i].name, wn[w], mode ? "mixed" : "f32");
                opcase oc = {name, SDRT_OP_CONV2D, {&x, &wt, &cb}, &cy,
                             .tol = w == 0 ? 2e-5 : (w == 2 && mode ? 2e-2 : half_tol)};
                memcpy(oc.ip, cv[i].ip, sizeof cv[i].ip);
                run_case(dev, &oc);
                twin_free(&wt), twin_free(&cb), twin_free(&cy);
            }
        }
        twin_free(&a), twin_free(&bias), twin_free(&y), twin_free(&q), twin_free(&k), twin_free(&s), twin_free(&x);
    }
}

static void test_attention(void) {
    NEED_DEVICE();
    REQUIRE(g_cpu, "the CPU family is needed as the reference");
    streams(dev, NULL);
    struct { int64_t b, h, lq, lk, d; int causal; } cs[] = {
        {2, 3, 77, 77, 40, 1}, {1, 2, 300, 77, 64, 0}, {2, 1, 129, 257, 80, 0}, {1, 2, 65, 40, 160, 0}, {1, 1, 33, 33, 256, 1}};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        twin q = twin_new(dev, SDRT_DTYPE_F32, 4, S(cs[i].b, cs[i].lq, cs[i].h, cs[i].d), 1);
        twin k = twin_new(dev, SDRT_DTYPE_F32, 4, S(cs[i].b, cs[i].h, cs[i].lk, cs[i].d), 1);
        twin v = twin_new(dev, SDRT_DTYPE_F32, 4, S(cs[i].b, cs[i].h, cs[i].lk, cs[i].d), 1);
        twin o = twin_new(dev, SDRT_DTYPE_F32, 4, S(cs[i].b, cs[i].h, cs[i].lq, cs[i].d), 0);
        twin_swap(&q, 1, 2); /* [B, L, H, D] storage seen as [B, H, L, D] */
        char name[64];
        snprintf(name, sizeof name, "ATTENTION L%lld/%lld D%lld%s", (long long)cs[i].lq, (long long)cs[i].lk,
                 (long long)cs[i].d, cs[i].causal ? " causal" : "");
        run_case(dev, &(opcase){name, SDRT_OP_ATTENTION, {&q, &k, &v}, &o, .ip = {cs[i].causal}, .tol = 2e-5});
        twin_free(&q), twin_free(&k), twin_free(&v), twin_free(&o);
    }
}

/* A graph replayed after new input data gives the new result: the capture
 * recorded addresses, not values. */
static void test_graph_replay(void) {
    NEED_DEVICE();
    REQUIRE(g_cpu, "the CPU family is needed as the reference");
    streams(dev, NULL);
    twin x = twin_new(dev, SDRT_DTYPE_F32, 2, S(64, 96), 1), w = twin_new(dev, SDRT_DTYPE_F32, 2, S(80, 96), 1);
    twin h = twin_new(dev, SDRT_DTYPE_F32, 2, S(64, 80), 0), y = twin_new(dev, SDRT_DTYPE_F32, 2, S(64, 80), 0);
    sdrt_op ops[2] = {{.struct_size = sizeof(sdrt_op), .kind = SDRT_OP_MATMUL, .src = {&x.g, &w.g}, .dst = &h.g, .iparams = {1}},
                      {.struct_size = sizeof(sdrt_op), .kind = SDRT_OP_SILU, .src = {&h.g}, .dst = &y.g}};
    sdrt_op cops[2] = {ops[0], ops[1]};
    cops[0].src[0] = &x.c, cops[0].src[1] = &w.c, cops[0].dst = &h.c, cops[1].src[0] = &h.c, cops[1].dst = &y.c;
    sdrt_graph g = {.struct_size = sizeof(sdrt_graph), .n_ops = 2, .ops = ops, .replay_key = 42};
    sdrt_graph cg = {.struct_size = sizeof(sdrt_graph), .n_ops = 2, .ops = cops};
    float *got = malloc(64 * 80 * 4);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 64 * 96; i++) ((float *)x.c.data)[i] = frand();
        sdrt_stream_write_async(g_gs, x.gb, x.g.data, x.c.data, x.bytes);
        REQUIRE(sdrt_stream_graph_compute(g_gs, &g) == SDRT_OK, "graph round %d", round);
        REQUIRE(sdrt_stream_graph_compute(g_cs, &cg) == SDRT_OK, "cpu graph");
        sdrt_stream_read_async(g_gs, y.gb, got, y.g.data, y.bytes);
        sdrt_event *ev = sdrt_stream_event_record(g_gs);
        CHECK(ev != NULL, "event record");
        sdrt_event_synchronize(g_gs, ev);
        sdrt_event_free(g_gs, ev);
        double err = test_rel_l2(got, y.c.data, 64 * 80);
        CHECK(err < 2e-5, "round %d (%s): rel L2 %.3g", round, round ? "replay" : "capture", err);
    }
    free(got);
    twin_free(&x), twin_free(&w), twin_free(&h), twin_free(&y);
}

static void test_buffers_and_oom(void) {
    NEED_DEVICE();
    sdrt_buffer_type *bt = dev->iface->buffer_type(dev);
    CHECK(!sdrt_buffer_type_is_host(bt), "VRAM is not host memory");
    sdrt_buffer_type *pt = sdrt_device_host_buffer_type(dev);
    REQUIRE(pt && sdrt_buffer_type_is_host(pt), "pinned host buffer type");
    enum { N = 1 << 20 };
    sdrt_buffer *a = sdrt_buffer_alloc(bt, N), *b = sdrt_buffer_alloc(bt, N), *p = sdrt_buffer_alloc(pt, N);
    REQUIRE(a && b && p, "alloc");
    unsigned char *h = malloc(N), *r = malloc(N);
    for (int i = 0; i < N; i++) h[i] = (unsigned char)rand();
    a->iface->write(a, a->iface->base(a), h, N);
    REQUIRE(sdrt_buffer_copy(b, b->iface->base(b), a, a->iface->base(a), N) == SDRT_OK, "device copy");
    b->iface->read(b, r, b->iface->base(b), N);
    CHECK(memcmp(h, r, N) == 0, "write/copy/read round trip");
    b->iface->memset(b, (char *)b->iface->base(b) + 100, 0xAB, 1000);
    b->iface->read(b, r, b->iface->base(b), N);
    CHECK(r[99] == h[99] && r[100] == 0xAB && r[1099] == 0xAB && r[1100] == h[1100], "memset range");
    /* Pinned staging: async copy into VRAM and back through the stream. */
    streams(dev, NULL);
    memcpy(p->iface->base(p), h, N);
    sdrt_stream_copy_async(g_gs, a, a->iface->base(a), p, p->iface->base(p), N);
    memset(r, 0, N);
    sdrt_stream_read_async(g_gs, a, r, a->iface->base(a), N);
    sdrt_stream_synchronize(g_gs);
    CHECK(memcmp(h, r, N) == 0, "pinned async round trip");
    size_t fr, tot;
    dev->iface->memory(dev, &fr, &tot);
    g_log_lines = 0;
    sdrt_buffer *huge = sdrt_buffer_alloc(bt, tot * 2);
    CHECK(!huge, "allocating twice the device memory must fail");
    CHECK(g_log_lines == 1 && strstr(g_last_log, "cuda:0") && strstr(g_last_log, "out of memory"),
          "OOM log names the device: %s", g_last_log);
    sdrt_buffer *after = sdrt_buffer_alloc(bt, N);
    CHECK(after != NULL, "allocation works again after OOM");
    sdrt_buffer_free(after);
    sdrt_buffer_free(huge);
    sdrt_buffer_free(a), sdrt_buffer_free(b), sdrt_buffer_free(p);
    free(h), free(r);
}

/* A kernel that faults (an address far past its buffer) fails with
 * UNAVAILABLE, keeps failing until reset, and after reset new buffers and
 * streams work: the "next request runs" path. Runs last: it resets. */
static void test_fault_and_reset(void) {
    NEED_DEVICE();
    streams(dev, NULL);
    sdrt_buffer_type *bt = dev->iface->buffer_type(dev);
    sdrt_buffer *b = sdrt_buffer_alloc(bt, 4096);
    REQUIRE(b, "alloc");
    sdrt_tensor x = {.struct_size = sizeof(sdrt_tensor), .dtype = SDRT_DTYPE_F32, .ndim = 1, .shape = {1024},
                     .strides = {1}, .data = b->iface->base(b), .buffer = b};
    sdrt_tensor y = x;
    y.data = (char *)b->iface->base(b) + ((size_t)1 << 40); /* 1 TiB past the buffer: unmapped */
    sdrt_op op = {.struct_size = sizeof(sdrt_op), .kind = SDRT_OP_SILU, .src = {&x}, .dst = &y};
    sdrt_status st = sdrt_stream_compute(g_gs, &op);
    sdrt_stream_synchronize(g_gs);
    sdrt_status st2 = sdrt_stream_compute(g_gs, &op);
    CHECK(st == SDRT_OK || st == SDRT_UNAVAILABLE, "faulting launch: %d", st);
    CHECK(st2 == SDRT_UNAVAILABLE, "after the fault the stream must report UNAVAILABLE, got %d", st2);
    REQUIRE(dev->iface->reset && dev->iface->reset(dev) == SDRT_OK, "reset");
    sdrt_buffer_free(b); /* an old-generation buffer: only host memory is released */
    streams(dev, NULL);
    twin a = twin_new(dev, SDRT_DTYPE_F32, 1, S(1000), 1), r = twin_new(dev, SDRT_DTYPE_F32, 1, S(1000), 0);
    run_case(dev, &(opcase){"SILU after reset", SDRT_OP_SILU, {&a}, &r, .tol = 1e-5});
    twin_free(&a), twin_free(&r);
}

const test_entry TESTS[] = {
    {"entry", test_module_entry},
    {"buffers_and_oom", test_buffers_and_oom},
    {"elementwise_ops", test_elementwise_ops},
    {"gemm_ops", test_gemm_ops},
    {"attention", test_attention},
    {"graph_replay", test_graph_replay},
    {"fault_and_reset", test_fault_and_reset},
    {0},
};
