/* bench-ops - throughput of the CPU backend's compute core.
 *
 *   bench-ops [--threads N] [--quick] [--cpu-time] [--shape MxNxK] [gemm|lowp|conv|attn|peak ...]
 *
 * Prints GFLOP/s of our GEMM next to OpenBLAS sgemm on Stable Diffusion
 * shapes (same process, same thread count), the f32, bf16 and int8 weight
 * products side by side on the Linear shapes (lowp: each kernel this CPU
 * runs, AVX-512 and AVX2, timed in alternating rounds), conv2d 3x3
 * throughput against the machine's FMA peak, and attention time and
 * scratch memory. Figures
 * are recorded in docs/PERFORMANCE.md. */
#define _GNU_SOURCE
#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cpu_internal.h"
#include "sdrt/half.h"

sdrt_backend_reg *sdrt_backend_entry(const sdrt_host_api *host_api, const char *config_json);

extern void openblas_set_num_threads(int);

static int g_threads = 2;
static int g_quick;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *rand_buf(size_t n) {
    float *p = cpu_aligned_alloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return p;
}

static int g_cputime; /* --cpu-time: time runs by process CPU time, not wall */

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best time of repeated runs: at least 3 and about `budget` seconds. With
 * --cpu-time a run is timed by the CPU time of all threads, which on a
 * shared, overloaded machine measures the work instead of the wait (with
 * --threads 1 it is the single-core rate; OpenBLAS threads that spin while
 * idle would count, so compare at one thread). */
typedef void (*bench_fn)(void *arg);
static double best_time(bench_fn fn, void *arg, double budget) {
    fn(arg); /* warm-up: scratch growth, page faults */
    double best = 1e30, start = now_s();
    for (int i = 0; i < 3 || now_s() - start < budget; i++) {
        double t0 = g_cputime ? cpu_s() : now_s();
        fn(arg);
        double t = (g_cputime ? cpu_s() : now_s()) - t0;
        if (t < best) best = t;
        if (i > 50) break;
    }
    return best;
}

/* ---- peak --------------------------------------------------------------- */

static double cpu_mhz(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    double mhz = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "cpu MHz : %lf", &mhz) == 1) break;
    if (f) fclose(f);
    return mhz;
}

/* 12 independent FMA chains: more than latency (4) x ports (2) needs. */
__attribute__((target("avx512f,fma"))) static double fma_loop_avx512(long iters) {
    __m512 m = _mm512_set1_ps(0.9999f), a = _mm512_set1_ps(1e-7f);
#define ACC(i) __m512 c##i = _mm512_set1_ps((float)i);
    ACC(0) ACC(1) ACC(2) ACC(3) ACC(4) ACC(5) ACC(6) ACC(7) ACC(8) ACC(9) ACC(10) ACC(11)
#undef ACC
    for (long it = 0; it < iters; it++) {
#define STEP(i) c##i = _mm512_fmadd_ps(c##i, m, a);
        STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5) STEP(6) STEP(7) STEP(8) STEP(9) STEP(10) STEP(11)
#undef STEP
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                             _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));
    return _mm512_reduce_add_ps(s);
}

typedef struct { long iters; double sink; } fma_arg;
static void fma_task(void *arg, int64_t t, int thread) {
    fma_arg *a = arg;
    a[t].sink = fma_loop_avx512(a[t].iters);
}

static double g_peak_measured;

static void bench_peak(cpu_ctx *ctx) {
    const cpu_features *f = cpu_features_get();
    int width = f->avx512f ? 16 : f->avx2 ? 8 : 4;
    double mhz = cpu_mhz();
    double theo = g_threads * 2.0 /*ports*/ * 2.0 /*flops per fma*/ * width * mhz * 1e-3;
    printf("peak: %d threads x 2 FMA ports x %d lanes x 2 flop x %.0f MHz = %.1f GFLOP/s (nominal clock)\n",
           g_threads, width, mhz, theo);
    if (!f->avx512f) return;
    long iters = 20000000;
    fma_arg args[64] = {{0}};
    for (int i = 0; i < g_threads; i++) args[i].iters = iters;
    double t0 = now_s();
    cpu_ctx_run(ctx, g_threads, fma_task, args);
    double t = now_s() - t0;
    g_peak_measured = g_threads * (double)iters * 12 * 16 * 2 / t * 1e-9;
    printf("peak: measured AVX-512 FMA loop on %d threads: %.1f GFLOP/s (%.1f per thread)\n", g_threads,
           g_peak_measured, g_peak_measured / g_threads);
}

/* ---- GEMM --------------------------------------------------------------- */

typedef struct gemm_case {
    int64_t m, n, k;
    const char *what;
} gemm_case;

typedef struct gemm_arg {
    cpu_ctx *ctx;
    int64_t m, n, k;
    float *a, *w, *c; /* w is [n, k]: the Linear weight layout */
} gemm_arg;

static void run_ours(void *p) {
    gemm_arg *g = p;
    cpu_gemm_args a = {.m = g->m, .n = g->n, .k = g->k, .c = g->c, .ldc = g->n, .alpha = 1.0f,
                       .a = {.data = g->a, .dtype = SDRT_DTYPE_F32, .so = g->k, .sk = 1},
                       .b = {.data = g->w, .dtype = SDRT_DTYPE_F32, .so = g->k, .sk = 1}};
    cpu_gemm(g->ctx, &a);
}

static void run_blas(void *p) {
    gemm_arg *g = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g->m, (int)g->n, (int)g->k, 1.0f, g->a, (int)g->k,
                g->w, (int)g->k, 0.0f, g->c, (int)g->n);
}

static gemm_case g_shape; /* --shape MxNxK: only that product */

static void bench_gemm(cpu_ctx *ctx) {
    static const gemm_case sd_cases[] = {
        {4096, 320, 320, "SD1.5 attn proj 64x64"},
        {4096, 1280, 320, "SD1.5 ff up (GEGLU half) 64x64"},
        {4096, 320, 1280, "SD1.5 ff down 64x64"},
        {1024, 640, 640, "SD1.5 proj 32x32 / SDXL 32x32"},
        {256, 1280, 1280, "SD1.5 16x16 / SDXL 32x32 1280"},
        {4096, 2560, 320, "GEGLU proj 64x64"},
        {77, 320, 768, "cross-attn K/V (CLIP-L)"},
        {77, 640, 2048, "SDXL cross-attn K/V"},
        {4096, 4096, 40, "attention-like QK^T D=40"},
        {4096, 40, 4096, "attention-like PV D=40"},
    };
    printf("\nGEMM C[M,N] = A[M,K] W[N,K]^T, %d threads, kernel %s\n", g_threads, cpu_kernel_best()->name);
    printf("%-34s %6s %6s %6s %10s %10s %7s\n", "shape", "M", "N", "K", "ours GF/s", "blas GF/s", "ratio");
    const gemm_case *cases = sd_cases;
    size_t n_cases = sizeof sd_cases / sizeof sd_cases[0];
    if (g_shape.m > 0) cases = &g_shape, n_cases = 1;
    for (size_t i = 0; i < n_cases; i++) {
        const gemm_case *c = &cases[i];
        gemm_arg g = {ctx, c->m, c->n, c->k, rand_buf((size_t)(c->m * c->k)), rand_buf((size_t)(c->n * c->k)),
                      rand_buf((size_t)(c->m * c->n))};
        double flop = 2.0 * c->m * c->n * c->k, budget = g_quick ? 0.2 : 1.0;
        /* OpenBLAS's idle threads spin for up to 2^28 cycles after a call
         * (its THREAD_TIMEOUT), taking a core from our workers on the next
         * shape; let them go to sleep first. */
        usleep(200000);
        double to = best_time(run_ours, &g, budget), tb = best_time(run_blas, &g, budget);
        printf("%-34s %6lld %6lld %6lld %10.1f %10.1f %6.2fx\n", c->what, (long long)c->m, (long long)c->n,
               (long long)c->k, flop / to * 1e-9, flop / tb * 1e-9, tb / to);
        cpu_aligned_free(g.a);
        cpu_aligned_free(g.w);
        cpu_aligned_free(g.c);
    }
}

/* ---- f32 vs bf16 vs int8 weight products ----------------------------------- */

typedef struct lowp_arg {
    cpu_ctx *ctx;
    const cpu_kernel *f32; /* the f32 kernel, or NULL: the low-precision one */
    cpu_lp_gemm_args lg;
    gemm_arg g;
} lowp_arg;

static void run_lowp(void *p) {
    lowp_arg *l = p;
    if (!l->f32) {
        cpu_lp_gemm(l->ctx, &l->lg);
        return;
    }
    cpu_gemm_args a = {.m = l->g.m, .n = l->g.n, .k = l->g.k, .c = l->g.c, .ldc = l->g.n, .alpha = 1.0f,
                       .kern = l->f32,
                       .a = {.data = l->g.a, .dtype = SDRT_DTYPE_F32, .so = l->g.k, .sk = 1},
                       .b = {.data = l->g.w, .dtype = SDRT_DTYPE_F16, .so = l->g.k, .sk = 1}};
    cpu_gemm(l->ctx, &a);
}

/* Each shape: every variant once per round, rounds alternating, best of
 * the rounds (so machine load hits all variants alike). Weights are f16
 * (as a checkpoint stores them); the low-precision weights are packed
 * before timing (once per stream in use), activations are quantised /
 * rounded inside every timed call. GOP/s counts 2 M N K. */
static void bench_lowp(cpu_ctx *ctx) {
    static const gemm_case cases[] = {
        {4096, 320, 320, "SD1.5 attn proj 64x64"},
        {4096, 2560, 320, "SD1.5 GEGLU proj 64x64"},
        {4096, 320, 1280, "SD1.5 ff down 64x64"},
        {1024, 640, 640, "SD1.5 proj 32x32"},
        {256, 1280, 1280, "SD1.5 proj 16x16"},
        {154, 320, 768, "SD1.5 cross-attn K/V (CFG)"},
        {1024, 1280, 1280, "SDXL proj 32x32"},
        {1024, 10240, 1280, "SDXL GEGLU proj 32x32"},
        {1024, 1280, 5120, "SDXL ff down 32x32"},
        {154, 1280, 2048, "SDXL cross-attn K/V (CFG)"},
    };
    const cpu_features *f = cpu_features_get();
    struct { const char *name; const cpu_kernel *f32; const cpu_lp_kernel *lp; } v[6];
    int nv = 0;
    if (f->avx512f) v[nv++] = (__typeof__(v[0])){"f32-512", &cpu_kernel_avx512, NULL};
    if (cpu_lp_kernel_for(CPU_PREC_BF16, 2)) v[nv++] = (__typeof__(v[0])){"bf16-512", NULL, &cpu_lp_bf16_avx512};
    if (cpu_lp_kernel_for(CPU_PREC_INT8, 2) == &cpu_lp_int8_vnni512)
        v[nv++] = (__typeof__(v[0])){"int8-vnni", NULL, &cpu_lp_int8_vnni512};
    if (f->avx2 && f->fma) {
        v[nv++] = (__typeof__(v[0])){"f32-avx2", &cpu_kernel_avx2, NULL};
        v[nv++] = (__typeof__(v[0])){"int8-avx2", NULL, &cpu_lp_int8_avx2};
        if (f->avx_vnni) v[nv++] = (__typeof__(v[0])){"int8-avxvnni", NULL, &cpu_lp_int8_avxvnni};
    }
    printf("\nweight products C[M,N] = A[M,K] W[N,K]^T (W f16 in the file), %d threads, GOP/s (best of %d "
           "alternating rounds)\n%-28s %5s %5s %5s", g_threads, g_quick ? 2 : 5, "shape", "M", "N", "K");
    for (int i = 0; i < nv; i++) printf(" %12s", v[i].name);
    printf("\n");
    const gemm_case *cs = cases;
    size_t n_cases = sizeof cases / sizeof cases[0];
    if (g_shape.m > 0) cs = &g_shape, n_cases = 1;
    for (size_t ci = 0; ci < n_cases; ci++) {
        const gemm_case *c = &cs[ci];
        float *a = rand_buf((size_t)(c->m * c->k)), *wf = rand_buf((size_t)(c->n * c->k));
        float *cc = rand_buf((size_t)(c->m * c->n));
        uint16_t *w = cpu_aligned_alloc((size_t)(c->n * c->k) * 2);
        for (int64_t i = 0; i < c->n * c->k; i++) w[i] = sdrt_f32_to_f16(wf[i]);
        lowp_arg la[6];
        cpu_lp_weight pw[6];
        for (int i = 0; i < nv; i++) {
            la[i] = (lowp_arg){.ctx = ctx, .f32 = v[i].f32, .g = {ctx, c->m, c->n, c->k, a, (float *)(void *)w, cc}};
            if (v[i].lp) {
                cpu_operand wo = {.data = w, .dtype = SDRT_DTYPE_F16, .so = c->k, .sk = 1};
                double t0 = now_s();
                cpu_lp_pack_weight(ctx, v[i].lp, &wo, c->n, c->k, &pw[i]);
                if (getenv("BENCH_PACK"))
                    printf("  pack %s: %.2f ns per weight\n", v[i].name, (now_s() - t0) * 1e9 / (double)(c->n * c->k));
                la[i].lg = (cpu_lp_gemm_args){.m = c->m, .a = {.data = a, .dtype = SDRT_DTYPE_F32, .so = c->k, .sk = 1},
                                              .w = &pw[i], .c = cc, .ldc = c->n, .alpha = 1.0f};
            }
        }
        double best[6] = {1e30, 1e30, 1e30, 1e30, 1e30, 1e30}, flop = 2.0 * c->m * c->n * c->k;
        for (int r = 0; r < (g_quick ? 2 : 5); r++)
            for (int i = 0; i < nv; i++) {
                double t = best_time(run_lowp, &la[i], g_quick ? 0.05 : 0.2);
                if (t < best[i]) best[i] = t;
            }
        printf("%-28s %5lld %5lld %5lld", c->what, (long long)c->m, (long long)c->n, (long long)c->k);
        for (int i = 0; i < nv; i++) printf(" %12.1f", flop / best[i] * 1e-9);
        printf("\n");
        fflush(stdout);
        for (int i = 0; i < nv; i++)
            if (v[i].lp) cpu_lp_weight_free(&pw[i]);
        cpu_aligned_free(a), cpu_aligned_free(wf), cpu_aligned_free(cc), cpu_aligned_free(w);
    }
}

/* ---- ops through the stream ---------------------------------------------- */

static sdrt_tensor make_tensor(float *data, int ndim, const int64_t *shape, sdrt_dtype dt) {
    sdrt_tensor t = {.struct_size = sizeof(sdrt_tensor), .dtype = dt, .ndim = ndim, .data = data};
    int64_t s = 1;
    for (int d = SDRT_MAX_DIMS - 1; d >= 0; d--) {
        t.shape[d] = d < ndim ? shape[d] : 1;
        t.strides[d] = d < ndim ? s : 0;
        if (d < ndim) s *= shape[d];
    }
    return t;
}

typedef struct op_arg {
    sdrt_stream *s;
    sdrt_op op;
} op_arg;

static void run_op(void *p) {
    op_arg *a = p;
    sdrt_status st = sdrt_stream_compute(a->s, &a->op);
    if (st != SDRT_OK) {
        fprintf(stderr, "op failed: %d\n", (int)st);
        exit(1);
    }
}

static void bench_conv(sdrt_stream *s) {
    static const int64_t cases[][2] = {{320, 64}, {640, 32}, {1280, 16}};
    printf("\nconv2d 3x3 pad 1, N=1, f32 weights (f16 in brackets), %d threads\n", g_threads);
    for (int i = 0; i < 3; i++) {
        int64_t c = cases[i][0], hw = cases[i][1];
        int64_t xs[4] = {1, c, hw, hw}, ws[4] = {c, c, 3, 3}, bs[1] = {c};
        float *x = rand_buf((size_t)(c * hw * hw)), *w = rand_buf((size_t)(c * c * 9)), *b = rand_buf((size_t)c);
        float *y = rand_buf((size_t)(c * hw * hw));
        uint16_t *wh = malloc((size_t)(c * c * 9) * 2);
        for (int64_t j = 0; j < c * c * 9; j++) wh[j] = sdrt_f32_to_f16(w[j]);
        sdrt_tensor tx = make_tensor(x, 4, xs, SDRT_DTYPE_F32), tw = make_tensor(w, 4, ws, SDRT_DTYPE_F32);
        sdrt_tensor twh = make_tensor((float *)(void *)wh, 4, ws, SDRT_DTYPE_F16);
        sdrt_tensor tb = make_tensor(b, 1, bs, SDRT_DTYPE_F32), ty = make_tensor(y, 4, xs, SDRT_DTYPE_F32);
        op_arg a = {s, {.struct_size = sizeof(sdrt_op), .kind = SDRT_OP_CONV2D, .src = {&tx, &tw, &tb}, .dst = &ty,
                        .iparams = {1, 1, 1, 1}}};
        double flop = 2.0 * c * c * 9 * hw * hw, budget = g_quick ? 0.2 : 1.0;
        double t = best_time(run_op, &a, budget);
        a.op.src[1] = &twh;
        double th = best_time(run_op, &a, budget);
        printf("  %4lld -> %4lld at %3lldx%-3lld  %8.2f ms  %6.1f GFLOP/s", (long long)c, (long long)c, (long long)hw,
               (long long)hw, t * 1e3, flop / t * 1e-9);
        if (g_peak_measured > 0) printf("  %5.1f%% of measured peak", 100.0 * flop / t * 1e-9 / g_peak_measured);
        printf("  [f16 %6.1f GFLOP/s]\n", flop / th * 1e-9);
        free(wh);
        cpu_aligned_free(x);
        cpu_aligned_free(w);
        cpu_aligned_free(b);
        cpu_aligned_free(y);
    }
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

static void bench_attn(sdrt_stream *s) {
    /* SD1.5 64x64 level, SD2/SDXL-like heads, CFG batch, wider heads, the
     * VAE mid-block (one head of 512 at 64x64 latents = 512x512 pixels). */
    static const int64_t cases[][4] = {{1, 8, 4096, 40}, {1, 5, 4096, 64}, {2, 8, 4096, 40},
                                       {1, 2, 4096, 160}, {1, 1, 4096, 256}, {1, 1, 4096, 512}};
    printf("\nattention self, Lq=Lk=4096, %d threads\n", g_threads);
    for (int i = 0; i < 6; i++) {
        int64_t b = cases[i][0], h = cases[i][1], l = cases[i][2], d = cases[i][3];
        int64_t shp[4] = {b, h, l, d};
        size_t n = (size_t)(b * h * l * d);
        float *q = rand_buf(n), *k = rand_buf(n), *v = rand_buf(n), *o = rand_buf(n);
        sdrt_tensor tq = make_tensor(q, 4, shp, SDRT_DTYPE_F32), tk = make_tensor(k, 4, shp, SDRT_DTYPE_F32);
        sdrt_tensor tv = make_tensor(v, 4, shp, SDRT_DTYPE_F32), to = make_tensor(o, 4, shp, SDRT_DTYPE_F32);
        op_arg a = {s, {.struct_size = sizeof(sdrt_op), .kind = SDRT_OP_ATTENTION, .src = {&tq, &tk, &tv}, .dst = &to}};
        long before = rss_kb();
        double t = best_time(run_op, &a, g_quick ? 0.2 : 1.0);
        double flop = 4.0 * b * h * l * l * d;
        printf("  B=%lld H=%lld D=%lld  %8.1f ms  %6.1f GFLOP/s  peak RSS %ld MB (+%ld MB during op; "
               "one head's scores would be %lld MB)\n",
               (long long)b, (long long)h, (long long)d, t * 1e3, flop / t * 1e-9, rss_kb() / 1024,
               (rss_kb() - before) / 1024, (long long)(l * l * 4 / (1 << 20)));
        cpu_aligned_free(q);
        cpu_aligned_free(k);
        cpu_aligned_free(v);
        cpu_aligned_free(o);
    }
}

static int want(int argc, char **argv, int first, const char *name) {
    if (first >= argc) return 1;
    for (int i = first; i < argc; i++)
        if (!strcmp(argv[i], name)) return 1;
    return 0;
}

int main(int argc, char **argv) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    g_threads = online > 0 ? (int)online : 1;
    int first = 1;
    while (first < argc && argv[first][0] == '-') {
        if (!strcmp(argv[first], "--threads") && first + 1 < argc) g_threads = atoi(argv[++first]);
        else if (!strcmp(argv[first], "--quick")) g_quick = 1;
        else if (!strcmp(argv[first], "--cpu-time")) g_cputime = 1;
        else if (!strcmp(argv[first], "--shape") && first + 1 < argc) {
            long long m, n, k;
            if (sscanf(argv[++first], "%lldx%lldx%lld", &m, &n, &k) != 3 || m <= 0 || n <= 0 || k <= 0) {
                fprintf(stderr, "bench-ops: --shape wants MxNxK\n");
                return 2;
            }
            g_shape = (gemm_case){m, n, k, "custom"};
        }
        first++;
    }
    openblas_set_num_threads(g_threads);
    sdrt_backend_reg *reg = sdrt_backend_entry(NULL, NULL);
    sdrt_device *dev = reg->iface->device_get(reg, 0);
    printf("device: %s\ninfo: %s\n", dev->iface->description(dev), dev->iface->info_json(dev));
    char params[64];
    snprintf(params, sizeof params, "{\"threads\":%d}", g_threads);
    sdrt_stream *s = dev->iface->stream_new(dev, params);
    cpu_ctx ctx;
    if (!s || cpu_ctx_init(&ctx, g_threads) != 0) return 1;
    bench_peak(&ctx);
    if (want(argc, argv, first, "gemm")) bench_gemm(&ctx);
    if (want(argc, argv, first, "lowp")) bench_lowp(&ctx);
    if (want(argc, argv, first, "conv")) bench_conv(s);
    if (want(argc, argv, first, "attn")) bench_attn(s);
    cpu_ctx_release(&ctx);
    sdrt_stream_free(s);
    return 0;
}
