/* cpu_gemm.c - the GEMM driver: operand packing, edge tiles, blocking and
 * threading around the micro-kernels.
 *
 * Blocking (row-major C, kernels broadcast A and load B vectors): for each
 * K slice of at most KC, all of B is packed once into NR-wide panels shared
 * by every thread; then tasks over (MC rows x NC columns) blocks each pack
 * their A block and sweep it: one A micro-panel (MR x KC, ~21 KB) stays in
 * L1 while the B block (KC x NC, ~600 KB) streams from L2. */
#include "cpu_internal.h"

#include <stdlib.h>
#include <string.h>

#ifndef CPU_GEMM_KC
#define CPU_GEMM_KC 384
#endif
#define CPU_GEMM_NC 384
#define CPU_GEMM_MC_PANELS 8
#define CPU_PACK_CHUNK 512

static const cpu_kernel *g_kernel;

static const cpu_kernel *cpu_kernel_pick(void) {
    const cpu_features *f = cpu_features_get();
    const char *want = getenv("SDRT_CPU_KERNEL");
    int allow512 = !want || !strcmp(want, "avx512");
    int allow2 = !want || !strcmp(want, "avx512") || !strcmp(want, "avx2");
    if (allow512 && f->avx512f && cpu_kernel_avx512.fn) return &cpu_kernel_avx512;
    if (allow2 && f->avx2 && f->fma && cpu_kernel_avx2.fn) return &cpu_kernel_avx2;
    return &cpu_kernel_scalar;
}

const cpu_kernel *cpu_kernel_best(void) {
    /* A benign race: every thread computes the same answer. */
    const cpu_kernel *k = __atomic_load_n(&g_kernel, __ATOMIC_ACQUIRE);
    if (k) return k;
    k = cpu_kernel_pick();
    __atomic_store_n(&g_kernel, k, __ATOMIC_RELEASE);
    return k;
}

const cpu_kernel *cpu_kernel_for_n(int64_t n) {
    const cpu_kernel *k = cpu_kernel_best();
    if (k != &cpu_kernel_avx512 || n <= 0) return k;
    double eff32 = (double)n / (double)cpu_round_up(n, 32), eff16 = (double)n / (double)cpu_round_up(n, 16);
    return eff16 > eff32 + 0.1 ? &cpu_kernel_avx512_n16 : k;
}

/* ---- packing ---------------------------------------------------------------- */

/* Rows are contiguous along k: widen each row in chunks, then scatter it
 * into its lane of the panel. */
static void cpu_pack_rows_kcontig(const cpu_operand *op, const char *base, size_t es, int64_t o, int64_t k0,
                                  int64_t kc, int w, float *d) {
    float tmp[CPU_PACK_CHUNK];
    const char *row = base + (size_t)(o * op->so + k0) * es;
    for (int64_t kk = 0; kk < kc; kk += CPU_PACK_CHUNK) {
        int64_t len = kc - kk < CPU_PACK_CHUNK ? kc - kk : CPU_PACK_CHUNK;
        const float *src = tmp;
        if (op->dtype == SDRT_DTYPE_F32) src = (const float *)(const void *)row + kk;
        else cpu_convert_row_f32(tmp, row + (size_t)kk * es, op->dtype, len);
        float *dk = d + kk * w;
        for (int64_t k = 0; k < len; k++) dk[k * w] = src[k];
    }
}

void cpu_pack_strided(const cpu_operand *op, int64_t o0, int64_t on, int64_t k0, int64_t kc, int w,
                      float *dst) {
    const char *base = op->data;
    size_t es = cpu_dtype_size(op->dtype);
    for (int64_t p = 0; p * w < on; p++) {
        float *d = dst + p * kc * w;
        int64_t first = o0 + p * w;
        int rows = (int)(on - p * w < w ? on - p * w : w);
        if (op->sk == 1 && kc > 1) {
            for (int r = 0; r < rows; r++) cpu_pack_rows_kcontig(op, base, es, first + r, k0, kc, w, d + r);
        } else if (op->so == 1) {
            /* Each k gives `rows` contiguous values: convert straight in. */
            for (int64_t k = 0; k < kc; k++)
                cpu_convert_row_f32(d + k * w, base + (size_t)((k0 + k) * op->sk + first) * es, op->dtype, rows);
        } else {
            for (int64_t k = 0; k < kc; k++)
                for (int r = 0; r < rows; r++)
                    d[k * w + r] = cpu_load_f32(base, op->dtype, (first + r) * op->so + (k0 + k) * op->sk);
        }
        if (rows < w)
            for (int64_t k = 0; k < kc; k++) memset(d + k * w + rows, 0, (size_t)(w - rows) * sizeof(float));
    }
}

/* ---- macro-kernel ------------------------------------------------------------- */

/* A tile that sticks out of C: run the kernel on a full local tile, then
 * copy the valid part. Biases are padded so the kernel reads no further. */
static void cpu_gemm_edge(const cpu_kernel *kern, int mr, int nr, int64_t kc, const float *a, const float *b,
                          float *c, int64_t ldc, const cpu_epilogue *e) {
    _Alignas(64) float tile[32 * 64];
    float bn[64], bm[32];
    cpu_epilogue ep = *e;
    int NR = kern->nr;
    if (e->accumulate)
        for (int i = 0; i < mr; i++) memcpy(tile + i * NR, c + i * ldc, (size_t)nr * sizeof(float));
    if (e->bias_n) {
        memset(bn, 0, sizeof bn);
        memcpy(bn, e->bias_n, (size_t)nr * sizeof(float));
        ep.bias_n = bn;
    }
    if (e->bias_m) {
        memset(bm, 0, sizeof bm);
        memcpy(bm, e->bias_m, (size_t)mr * sizeof(float));
        ep.bias_m = bm;
    }
    kern->fn(kc, a, b, tile, NR, &ep);
    for (int i = 0; i < mr; i++) memcpy(c + i * ldc, tile + i * NR, (size_t)nr * sizeof(float));
}

void cpu_gemm_packed(const cpu_kernel *kern, int64_t m, int64_t n, int64_t kc, const float *pa,
                     const float *pb, float *c, int64_t ldc, const cpu_epilogue *e) {
    int MR = kern->mr, NR = kern->nr;
    for (int64_t i = 0; i < m; i += MR) {
        const float *a = pa + (i / MR) * kc * MR;
        int mr = (int)(m - i < MR ? m - i : MR);
        for (int64_t j = 0; j < n; j += NR) {
            const float *b = pb + (j / NR) * kc * NR;
            int nr = (int)(n - j < NR ? n - j : NR);
            cpu_epilogue ep = *e;
            ep.bias_n = e->bias_n ? e->bias_n + j : NULL;
            ep.bias_m = e->bias_m ? e->bias_m + i : NULL;
            float *ct = c + i * ldc + j;
            if (mr == MR && nr == NR) kern->fn(kc, a, b, ct, ldc, &ep);
            else cpu_gemm_edge(kern, mr, nr, kc, a, b, ct, ldc, &ep);
        }
    }
}

/* ---- threaded driver ------------------------------------------------------------ */

typedef struct cpu_gemm_job {
    cpu_ctx *ctx;
    const cpu_gemm_args *g;
    const cpu_kernel *kern;
    int64_t k0, kc, mc, mblocks, nblocks, panels_per_pack_task;
    float *pb;
    int first, last;
} cpu_gemm_job;

static void cpu_gemm_pack_b_task(void *arg, int64_t t, int thread) {
    cpu_gemm_job *j = arg;
    int NR = j->kern->nr;
    int64_t p0 = t * j->panels_per_pack_task;
    int64_t o0 = p0 * NR;
    int64_t on = j->g->n - o0;
    if (on > j->panels_per_pack_task * NR) on = j->panels_per_pack_task * NR;
    if (on <= 0) return;
    cpu_pack(&j->g->b, o0, on, j->k0, j->kc, NR, j->pb + p0 * j->kc * NR);
}

/* Start of block b when `units` micro-rows/columns are split into `blocks`
 * near-equal blocks (sizes differ by at most one unit). */
static int64_t cpu_block_start(int64_t b, int64_t blocks, int64_t units, int unit) {
    return b * units / blocks * unit;
}

static void cpu_gemm_block_task(void *arg, int64_t t, int thread) {
    cpu_gemm_job *j = arg;
    const cpu_gemm_args *g = j->g;
    int MR = j->kern->mr, NR = j->kern->nr;
    int64_t mb = t / j->nblocks, nb = t % j->nblocks;
    int64_t mu = cpu_div_up(g->m, MR), nu = cpu_div_up(g->n, NR);
    int64_t i0 = cpu_block_start(mb, j->mblocks, mu, MR), i1 = cpu_block_start(mb + 1, j->mblocks, mu, MR);
    int64_t j0 = cpu_block_start(nb, j->nblocks, nu, NR), j1 = cpu_block_start(nb + 1, j->nblocks, nu, NR);
    int64_t mc = (i1 < g->m ? i1 : g->m) - i0, nc = (j1 < g->n ? j1 : g->n) - j0;
    if (mc <= 0 || nc <= 0) return;
    float *pa = cpu_ctx_local(j->ctx, CPU_SLOT_PACK_A, thread);
    cpu_pack(&g->a, i0, mc, j->k0, j->kc, MR, pa);
    cpu_epilogue e = {g->alpha, g->bias_n ? g->bias_n + j0 : NULL, g->bias_m ? g->bias_m + i0 : NULL,
                      !j->first, j->last};
    cpu_gemm_packed(j->kern, mc, nc, j->kc, pa, j->pb + (j0 / NR) * j->kc * NR, g->c + i0 * g->ldc + j0, g->ldc,
                    &e);
}

/* K == 0: the product is empty, only the biases remain. */
static void cpu_gemm_bias_only(const cpu_gemm_args *g) {
    for (int64_t i = 0; i < g->m; i++)
        for (int64_t j = 0; j < g->n; j++)
            g->c[i * g->ldc + j] = (g->bias_n ? g->bias_n[j] : 0.0f) + (g->bias_m ? g->bias_m[i] : 0.0f);
}

sdrt_status cpu_gemm(cpu_ctx *ctx, const cpu_gemm_args *g) {
    if (g->m <= 0 || g->n <= 0) return SDRT_OK;
    if (g->k <= 0) {
        cpu_gemm_bias_only(g);
        return SDRT_OK;
    }
    cpu_gemm_job j = {.ctx = ctx, .g = g, .kern = g->kern ? g->kern : cpu_kernel_for_n(g->n)};
    int MR = j.kern->mr, NR = j.kern->nr;
    int64_t slices = cpu_div_up(g->k, CPU_GEMM_KC);
    int64_t kc_max = cpu_div_up(g->k, slices);
    int64_t panels = cpu_div_up(g->n, NR);
    /* Blocks of about MC rows x NC columns, split evenly; small problems
     * split further so every thread gets work. */
    int64_t mu = cpu_div_up(g->m, MR);
    j.mblocks = cpu_div_up(mu, CPU_GEMM_MC_PANELS);
    j.nblocks = cpu_div_up(panels, cpu_div_up(CPU_GEMM_NC, NR));
    while (j.mblocks * j.nblocks < 4 * ctx->threads && (j.nblocks < panels || j.mblocks < mu)) {
        if (j.nblocks < panels) j.nblocks++;
        else j.mblocks++;
    }
    j.mc = cpu_div_up(mu, j.mblocks) * MR;
    j.panels_per_pack_task = cpu_div_up(panels, 4 * ctx->threads);
    j.pb = cpu_ctx_shared(ctx, CPU_SLOT_PACK_B, (size_t)(panels * kc_max * NR) * sizeof(float));
    if (!j.pb) return SDRT_RESOURCE_EXHAUSTED;
    if (cpu_ctx_reserve_local(ctx, CPU_SLOT_PACK_A, (size_t)(j.mc * kc_max) * sizeof(float)) != 0)
        return SDRT_RESOURCE_EXHAUSTED;
    for (int64_t s = 0, k0 = 0; s < slices; s++) {
        j.k0 = k0;
        j.kc = g->k - k0 < kc_max ? g->k - k0 : kc_max;
        j.first = s == 0;
        j.last = s == slices - 1;
        cpu_ctx_run(ctx, cpu_div_up(panels, j.panels_per_pack_task), cpu_gemm_pack_b_task, &j);
        cpu_ctx_run(ctx, j.mblocks * j.nblocks, cpu_gemm_block_task, &j);
        k0 += j.kc;
    }
    return SDRT_OK;
}
