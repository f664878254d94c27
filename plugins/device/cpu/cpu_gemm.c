/* cpu_gemm.c - the GEMM driver: kernel choice, edge tiles, blocking and
 * threading around the micro-kernels (packing is in cpu_gemm_pack.c). One
 * driver serves every micro-kernel (AVX-512, AVX2, portable): a kernel is
 * only its MR x NR tile function.
 *
 * Blocking (row-major C, kernels broadcast A and load B vectors): K is cut
 * into slices of at most KC; B is packed for a group of slices at once
 * (as many as fit 8 MB, usually all of a Linear weight) into NR-wide
 * panels shared by every thread. Tasks over (MC rows x TASK_NC columns)
 * blocks then run every slice of the group: pack their A block once per
 * slice, sweep it over B in NC-column chunks (one A micro-panel, MR x KC
 * ~21 KB, in L1 while the B chunk streams from L2), and keep their C
 * block in L2 between slices instead of re-reading all of C per slice.
 * Small M and implicit-GEMM convolutions swap the roles: A is shared and
 * each task packs the B chunk it is about to use (see the driver below). */
#include "cpu_internal.h"

#include <stdlib.h>
#include <string.h>

#ifndef CPU_GEMM_KC
#define CPU_GEMM_KC 384
#endif
/* Columns per macro-kernel sweep: a KC x NC block of B (~600 KB) in L2. */
#define CPU_GEMM_NC 384
/* Columns per task: its C block (MC x TASK_NC, ~460 KB) stays in L2
 * across the K slices of a group. */
#define CPU_GEMM_TASK_NC 1024
#define CPU_GEMM_MC_PANELS 8
/* Packed B shared by all threads for one group of K slices. */
#define CPU_GEMM_B_GROUP_BYTES ((size_t)8 << 20)
/* Largest A shared by all threads (all of K at once). */
#define CPU_GEMM_A_SHARE_BYTES ((size_t)16 << 20)
/* Largest A (all of K) shared with an explicit B, and the fewest columns
 * per task for which that pays (see cpu_gemm_choose_shared_a). */
#define CPU_GEMM_SHARE_A_L2_BYTES ((size_t)2 << 20)
#define CPU_GEMM_SHARE_A_MIN_COLS 128

static const cpu_kernel *g_kernel;

static const cpu_kernel *cpu_kernel_pick(void) {
    const cpu_features *f = cpu_features_get();
    const char *want = getenv("SDRT_CPU_KERNEL");
    int allow512 = !want || !strcmp(want, "avx512");
    /* "avxvnni": AVX2 kernels plus AVX-VNNI for int8 (cpu_lp_kernel_best). */
    int allow2 = !want || !strcmp(want, "avx512") || !strcmp(want, "avx2") || !strcmp(want, "avxvnni");
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

const cpu_kernel *cpu_kernel_for(int64_t m, int64_t n) {
    const cpu_kernel *k = cpu_kernel_for_n(n);
    if (k != &cpu_kernel_avx512 || m <= 0 || !cpu_kernel_avx512_m8.fn) return k;
    double eff14 = (double)m / (double)cpu_round_up(m, cpu_kernel_avx512.mr);
    double eff8 = (double)m / (double)cpu_round_up(m, cpu_kernel_avx512_m8.mr);
    return eff8 > eff14 + 0.1 ? &cpu_kernel_avx512_m8 : k;
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

/* One GEMM call. K is cut into slices of kc_max. One operand is packed up
 * front by all threads and shared, the other by each task for itself:
 * normally B is shared (its panels serve every row block) and each task
 * packs its A block; with a single row block (small M: cross-attention's
 * 77 text tokens, low-resolution levels) no B panel is used twice, so A is
 * shared instead and each task packs its B columns chunk by chunk, right
 * before using them, while they are hot in cache (likewise for the other
 * cases cpu_gemm_choose_shared_a lists). The shared operand is
 * packed for a group of consecutive slices at once (slice-major, then
 * product of the batch: [slice][product][panel][kc][w]) within a budget. */
typedef struct cpu_gemm_job {
    cpu_ctx *ctx;
    const cpu_gemm_args *g;
    const cpu_kernel *kern;
    int64_t kc_max, slices, batch;
    int64_t mblocks, nblocks; /* task grid */
    int share_a;
    int64_t s0, s1; /* slices of the current group */
    /* the shared operand: panels of width sh_w, sh_products per slice */
    int64_t sh_panels, sh_products, panels_per_pack_task, pack_tasks_per_slice;
    int sh_w;
    float *shared;
} cpu_gemm_job;

static int64_t cpu_gemm_slice_k0(const cpu_gemm_job *j, int64_t s) { return s * j->kc_max; }

static int64_t cpu_gemm_slice_kc(const cpu_gemm_job *j, int64_t s) {
    int64_t k0 = cpu_gemm_slice_k0(j, s);
    return j->g->k - k0 < j->kc_max ? j->g->k - k0 : j->kc_max;
}

/* The shared operand of slice s (inside the current group), product bi. */
static float *cpu_gemm_shared(const cpu_gemm_job *j, int64_t s, int64_t bi) {
    return j->shared + ((s - j->s0) * j->sh_products + bi) * j->sh_panels * j->kc_max * j->sh_w;
}

static const cpu_operand *cpu_gemm_b(const cpu_gemm_args *g, int64_t bi) {
    return g->batch > 1 ? &g->b_batch[bi] : &g->b;
}

static float *cpu_gemm_c(const cpu_gemm_args *g, int64_t bi) { return g->batch > 1 ? g->c_batch[bi] : g->c; }

static void cpu_gemm_pack_shared_task(void *arg, int64_t t, int thread) {
    cpu_gemm_job *j = arg;
    int64_t per_slice = j->pack_tasks_per_slice * j->sh_products;
    int64_t s = j->s0 + t / per_slice, bi = t % per_slice / j->pack_tasks_per_slice;
    int64_t p0 = (t % j->pack_tasks_per_slice) * j->panels_per_pack_task;
    int64_t o0 = p0 * j->sh_w, on = (j->share_a ? j->g->m : j->g->n) - o0;
    if (on > j->panels_per_pack_task * j->sh_w) on = j->panels_per_pack_task * j->sh_w;
    if (on <= 0) return;
    int64_t kc = cpu_gemm_slice_kc(j, s);
    const cpu_operand *op = j->share_a ? &j->g->a : cpu_gemm_b(j->g, bi);
    cpu_pack(op, o0, on, cpu_gemm_slice_k0(j, s), kc, j->sh_w, cpu_gemm_shared(j, s, bi) + p0 * kc * j->sh_w);
}

/* Start of block b when `units` micro-rows/columns are split into `blocks`
 * near-equal blocks (sizes differ by at most one unit). */
static int64_t cpu_block_start(int64_t b, int64_t blocks, int64_t units, int unit) {
    return b * units / blocks * unit;
}

/* A packed A block (rows i0.., depth of slice s) times columns j0..j0+nc
 * of product bi, in NC-column chunks; `local` is this thread's buffer for
 * B chunks when B is not shared. */
static void cpu_gemm_sweep(const cpu_gemm_job *j, int64_t s, int64_t bi, int64_t i0, int64_t mc, int64_t j0,
                           int64_t nc, const float *pa, float *local) {
    const cpu_gemm_args *g = j->g;
    int NR = j->kern->nr;
    int64_t kc = cpu_gemm_slice_kc(j, s);
    float *c = cpu_gemm_c(g, bi) + i0 * g->ldc;
    for (int64_t jc = j0; jc < j0 + nc; jc += CPU_GEMM_NC) {
        int64_t ncc = j0 + nc - jc < CPU_GEMM_NC ? j0 + nc - jc : CPU_GEMM_NC;
        const float *pb = local;
        if (j->share_a) cpu_pack(cpu_gemm_b(g, bi), jc, ncc, cpu_gemm_slice_k0(j, s), kc, NR, local);
        else pb = cpu_gemm_shared(j, s, bi) + (jc / NR) * kc * NR;
        cpu_epilogue e = {g->alpha, g->bias_n ? g->bias_n + jc : NULL, g->bias_m ? g->bias_m + i0 : NULL, s != 0,
                          s == j->slices - 1};
        cpu_gemm_packed(j->kern, mc, ncc, kc, pa, pb, c + jc, g->ldc, &e);
    }
}

/* Rows i0..i0+mc x columns j0..j0+nc of C over every slice of the group
 * and every product of the batch: the C block stays in L2 from one slice
 * to the next, and an A block packed here serves all the products. */
static void cpu_gemm_block(cpu_gemm_job *j, int64_t i0, int64_t mc, int64_t j0, int64_t nc, int thread) {
    const cpu_gemm_args *g = j->g;
    int MR = j->kern->mr;
    float *local = cpu_ctx_local(j->ctx, CPU_SLOT_PACK_A, thread);
    for (int64_t s = j->s0; s < j->s1; s++) {
        int64_t kc = cpu_gemm_slice_kc(j, s);
        const float *pa = local;
        if (j->share_a) pa = cpu_gemm_shared(j, s, 0) + (i0 / MR) * kc * MR;
        else cpu_pack(&g->a, i0, mc, cpu_gemm_slice_k0(j, s), kc, MR, local);
        for (int64_t bi = 0; bi < j->batch; bi++) cpu_gemm_sweep(j, s, bi, i0, mc, j0, nc, pa, local);
    }
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
    cpu_gemm_block(j, i0, mc, j0, nc, thread);
}

/* K == 0: the product is empty, only the biases remain. */
static void cpu_gemm_bias_only(const cpu_gemm_args *g) {
    for (int64_t bi = 0; bi < (g->batch > 1 ? g->batch : 1); bi++) {
        float *c = cpu_gemm_c(g, bi);
        for (int64_t i = 0; i < g->m; i++)
            for (int64_t j = 0; j < g->n; j++)
                c[i * g->ldc + j] = (g->bias_n ? g->bias_n[j] : 0.0f) + (g->bias_m ? g->bias_m[i] : 0.0f);
    }
}

/* One more block along the free dimension if possible, else along the
 * other; 0 when neither can be split further. Splitting is free along M
 * when B is shared (row blocks only re-read the packed B) and along N when
 * A is shared; the other way every extra block re-packs its operand. */
static int cpu_gemm_split_more(cpu_gemm_job *j, int64_t mu, int64_t nu, int prefer_m) {
    if (prefer_m && j->mblocks < mu) j->mblocks++;
    else if (j->nblocks < nu) j->nblocks++;
    else if (j->mblocks < mu) j->mblocks++;
    else return 0;
    return 1;
}

/* Splits the grid further until every thread has a few tasks, and to a
 * multiple of the thread count where possible so no thread idles through
 * the last round. */
static void cpu_gemm_balance(cpu_gemm_job *j, int threads, int64_t mu, int64_t nu, int prefer_m) {
    while (j->mblocks * j->nblocks < 4 * threads)
        if (!cpu_gemm_split_more(j, mu, nu, prefer_m)) return;
    for (int tries = 0; (j->mblocks * j->nblocks) % threads != 0 && tries < threads; tries++)
        if (!cpu_gemm_split_more(j, mu, nu, prefer_m)) return;
}

/* The task grid: blocks of about MC rows x TASK_NC columns, balanced.
 * With a single K slice no C block is revisited, so a task takes all
 * columns and packs its A block only once. */
static void cpu_gemm_plan_tasks(cpu_gemm_job *j, int threads) {
    int64_t mu = cpu_div_up(j->g->m, j->kern->mr), nu = cpu_div_up(j->g->n, j->kern->nr);
    j->mblocks = cpu_div_up(mu, CPU_GEMM_MC_PANELS);
    j->nblocks = j->slices == 1 ? 1 : cpu_div_up(nu, cpu_div_up(CPU_GEMM_TASK_NC, j->kern->nr));
    /* One row block means A will be shared (cpu_gemm_choose_shared_a). */
    cpu_gemm_balance(j, threads, mu, nu, j->mblocks > 1);
}

/* Task grid when A is shared: row blocks only as tall as keeps a C block
 * of NC columns (about 1 MB) in L2 across slices, columns split for the
 * threads as usual. */
static void cpu_gemm_plan_tasks_shared_a(cpu_gemm_job *j, int threads) {
    int64_t mu = cpu_div_up(j->g->m, j->kern->mr), nu = cpu_div_up(j->g->n, j->kern->nr);
    int64_t c_bytes = cpu_round_up(j->g->m, j->kern->mr) * CPU_GEMM_NC * (int64_t)sizeof(float);
    j->mblocks = j->slices > 1 ? cpu_div_up(c_bytes, (int64_t)1 << 20) : 1;
    if (j->mblocks > mu) j->mblocks = mu;
    j->nblocks = cpu_div_up(nu, CPU_GEMM_NC / j->kern->nr);
    cpu_gemm_balance(j, threads, mu, nu, 0);
}

/* Whether to share A instead of B, replanning the grid if so. Sharing A
 * packs each B chunk once, inside the task that uses it, with nothing
 * written to a large buffer, and keeps each task's C block in L2 across
 * all of K; the price is that every task streams all of A. So: always with
 * one row block (nothing to lose), never when A does not fit one packing
 * phase; otherwise when B is an implicit GEMM operand (im2col: cheap to
 * regenerate, 6 MB per slice to store for a 64x64 convolution), or when A
 * stays about L2-sized and tasks get columns enough (MIN_COLS) to reuse
 * each A micro-panel: 256x1280x1280 gains ~8 %, while 4096-row products
 * measured a few % slower streaming their 5 MB A per task. */
static int cpu_gemm_choose_shared_a(cpu_gemm_job *j, int threads) {
    const cpu_gemm_args *g = j->g;
    if (j->mblocks == 1) {
        cpu_gemm_plan_tasks_shared_a(j, threads);
        return 1;
    }
    size_t a_bytes = (size_t)(cpu_round_up(g->m, j->kern->mr) * g->k) * sizeof(float);
    if (a_bytes > CPU_GEMM_A_SHARE_BYTES) return 0;
    cpu_gemm_job alt = *j;
    cpu_gemm_plan_tasks_shared_a(&alt, threads);
    int explicit_b = g->b.pack == NULL;
    if (explicit_b && (a_bytes > CPU_GEMM_SHARE_A_L2_BYTES || g->n < CPU_GEMM_SHARE_A_MIN_COLS * alt.nblocks))
        return 0;
    j->mblocks = alt.mblocks;
    j->nblocks = alt.nblocks;
    return 1;
}

/* Which operand is shared, its layout, and how many slices one packing
 * phase covers. */
static void cpu_gemm_plan_shared(cpu_gemm_job *j, int threads, int64_t *per_group, size_t *slice_bytes) {
    const cpu_gemm_args *g = j->g;
    j->share_a = cpu_gemm_choose_shared_a(j, threads);
    j->sh_w = j->share_a ? j->kern->mr : j->kern->nr;
    j->sh_panels = cpu_div_up(j->share_a ? g->m : g->n, j->sh_w);
    j->sh_products = j->share_a ? 1 : j->batch;
    *slice_bytes = (size_t)(j->sh_products * j->sh_panels * j->kc_max * j->sh_w) * sizeof(float);
    *per_group = (int64_t)((j->share_a ? CPU_GEMM_A_SHARE_BYTES : CPU_GEMM_B_GROUP_BYTES) / *slice_bytes);
    if (*per_group < 1) *per_group = 1;
    if (*per_group > j->slices) *per_group = j->slices;
    j->panels_per_pack_task = cpu_div_up(j->sh_panels, 4 * threads);
    j->pack_tasks_per_slice = cpu_div_up(j->sh_panels, j->panels_per_pack_task);
}

sdrt_status cpu_gemm(cpu_ctx *ctx, const cpu_gemm_args *g) {
    if (g->m <= 0 || g->n <= 0) return SDRT_OK;
    if (g->k <= 0) {
        cpu_gemm_bias_only(g);
        return SDRT_OK;
    }
    cpu_gemm_job j = {.ctx = ctx, .g = g, .kern = g->kern ? g->kern : cpu_kernel_for(g->m, g->n)};
    int MR = j.kern->mr, NR = j.kern->nr;
    j.slices = cpu_div_up(g->k, CPU_GEMM_KC);
    j.kc_max = cpu_div_up(g->k, j.slices);
    j.batch = g->batch > 1 ? g->batch : 1;
    cpu_gemm_plan_tasks(&j, ctx->threads);
    int64_t per_group;
    size_t slice_bytes;
    cpu_gemm_plan_shared(&j, ctx->threads, &per_group, &slice_bytes);
    j.shared = cpu_ctx_shared(ctx, CPU_SLOT_PACK_B, slice_bytes * (size_t)per_group);
    if (!j.shared) return SDRT_RESOURCE_EXHAUSTED;
    /* Per thread: an A block, or a B chunk when A is shared. */
    int64_t local = j.share_a ? cpu_round_up(CPU_GEMM_NC, NR) : cpu_div_up(cpu_div_up(g->m, MR), j.mblocks) * MR;
    if (cpu_ctx_reserve_local(ctx, CPU_SLOT_PACK_A, (size_t)(local * j.kc_max) * sizeof(float)) != 0)
        return SDRT_RESOURCE_EXHAUSTED;
    for (j.s0 = 0; j.s0 < j.slices; j.s0 = j.s1) {
        j.s1 = j.s0 + per_group < j.slices ? j.s0 + per_group : j.slices;
        cpu_ctx_run(ctx, (j.s1 - j.s0) * j.sh_products * j.pack_tasks_per_slice, cpu_gemm_pack_shared_task, &j);
        cpu_ctx_run(ctx, j.mblocks * j.nblocks, cpu_gemm_block_task, &j);
    }
    return SDRT_OK;
}
