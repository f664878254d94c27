/* cpu_op_attention.c - ATTENTION, flash-style, transposed.
 *
 * Phase 1 packs K and V^T of every head once as GEMM A panels (MR keys x D,
 * and MR value dims x Lk; together the size of K and V). Phase 2 runs tasks
 * of NR queries: their Q^T is packed once as one B panel [D][NR]; then for
 * each block of KB keys (KB * NR floats, L1-sized) the micro-kernel writes
 * S^T = K Q^T [KB][NR], one query per column. That layout is what makes
 * the rest cheap: the softmax reductions run down the columns with whole
 * vectors (no horizontal max/sum), and the probabilities are already the
 * packed B operand of O^T = V^T P^T, so they are never re-packed. The
 * softmax is online (running max and sum per query; the small O^T [D][NR]
 * accumulator is rescaled when the max grows), so scores live only one
 * L1-sized block at a time (in base 2: log2(e) is folded into the
 * scale, so the exponentials are plain 2^x): extra memory O(B*H*L*D + threads*(KB+2D)*NR).
 *
 * Wide heads (D > CPU_ATTN_COLS_MAX_D, the VAE's single 512-wide head) keep
 * the row-strip form, where the softmax is a small part of the work: tasks
 * of MR query rows, scores for all keys in one strip, a row softmax, the
 * strip packed as A and multiplied by V. The transposed form ran those at
 * half the speed (measured: D = 512, Lq = Lk = 4096). */
#include "cpu_internal.h"

#include <math.h>
#include <string.h>

/* Key block: a multiple of MR whose scores (kb x NR floats) take about
 * this many floats (16 KB; 8 KB and 32 KB measured the same). */
#ifndef CPU_ATTN_KB_FLOATS
#define CPU_ATTN_KB_FLOATS 4096
#endif

/* Largest head dim run in the transposed (flash) form. */
#ifndef CPU_ATTN_COLS_MAX_D
#define CPU_ATTN_COLS_MAX_D 256
#endif

typedef struct cpu_attn {
    const sdrt_tensor *q, *k, *v, *o;
    const cpu_kernel *kern;
    int64_t b, h, lq, lk, d, dv;
    int64_t strips, kb, k_head, v_head, dvp; /* packed sizes per head (floats), padded dv */
    int64_t o_ld;                            /* row strips: the output block's row stride */
    float scale;
    int causal;
    float *pk, *pv;
    cpu_ctx *ctx;
} cpu_attn;

static const float *cpu_attn_head(const sdrt_tensor *t, int64_t bh, int64_t h) {
    return (const float *)t->data + (bh / h) * t->strides[0] + (bh % h) * t->strides[1];
}

static void cpu_attn_pack_task(void *arg, int64_t bh, int thread) {
    const cpu_attn *a = arg;
    int MR = a->kern->mr;
    cpu_operand k = {.data = cpu_attn_head(a->k, bh, a->h), .dtype = SDRT_DTYPE_F32,
                     .so = a->k->strides[2], .sk = a->k->strides[3]};
    cpu_operand vt = {.data = cpu_attn_head(a->v, bh, a->h), .dtype = SDRT_DTYPE_F32,
                      .so = a->v->strides[3], .sk = a->v->strides[2]};
    cpu_pack(&k, 0, a->lk, 0, a->d, MR, a->pk + bh * a->k_head);
    cpu_pack(&vt, 0, a->dv, 0, a->lk, MR, a->pv + bh * a->v_head);
}

/* Causal: key j is visible to query i only when j <= i. */
static void cpu_attn_mask(float *s, int64_t k0, int64_t rows, int nr, int64_t i0, int cols) {
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            if (k0 + r > i0 + c) s[r * nr + c] = -INFINITY;
}

static void cpu_attn_strip_task(void *arg, int64_t t, int thread) {
    const cpu_attn *a = arg;
    const cpu_kernel *kern = a->kern;
    int MR = kern->mr, NR = kern->nr;
    int64_t bh = t / a->strips, i0 = (t % a->strips) * NR;
    int cols = (int)(a->lq - i0 < NR ? a->lq - i0 : NR);
    float *s = cpu_ctx_local(a->ctx, CPU_SLOT_ATTN_S, thread);  /* [kb][NR] */
    float *qt = cpu_ctx_local(a->ctx, CPU_SLOT_ATTN_P, thread); /* [d][NR], then m[NR], l[NR] */
    float *ot = cpu_ctx_local(a->ctx, CPU_SLOT_ATTN_O, thread); /* [dvp][NR] */
    float *mx = qt + a->d * NR, *sum = mx + NR;
    cpu_operand q = {.data = cpu_attn_head(a->q, bh, a->h), .dtype = SDRT_DTYPE_F32,
                     .so = a->q->strides[2], .sk = a->q->strides[3]};
    cpu_pack(&q, i0, cols, 0, a->d, NR, qt);
    for (int c = 0; c < NR; c++) mx[c] = -INFINITY, sum[c] = 0.0f;
    memset(ot, 0, (size_t)(a->dvp * NR) * sizeof(float));
    const float *pk = a->pk + bh * a->k_head, *pv = a->pv + bh * a->v_head;
    /* log2(e) folded into the scale: the softmax runs on 2^x, cheaper than e^x. */
    cpu_epilogue es = {.alpha = a->scale * 1.44269504088896341f, .last = 1}, eo = {.alpha = 1.0f, .accumulate = 1};
    /* Causal: keys past the strip's last query see nothing of it. */
    int64_t lk = a->causal && i0 + cols < a->lk ? i0 + cols : a->lk;
    for (int64_t k0 = 0; k0 < lk; k0 += a->kb) {
        int64_t rows = lk - k0 < a->kb ? lk - k0 : a->kb;
        for (int64_t r = 0; r < rows; r += MR)
            kern->fn(a->d, pk + (k0 + r) * a->d, qt, s + r * NR, NR, &es);
        if (a->causal && k0 + rows > i0) cpu_attn_mask(s, k0, rows, NR, i0, cols);
        cpu_softmax2_cols_step(s, rows, NR, mx, sum, ot, a->dvp);
        for (int64_t p = 0; p < a->dvp; p += MR)
            kern->fn(rows, pv + p * a->lk + k0 * MR, s, ot + p * NR, NR, &eo);
    }
    float *dst = (float *)a->o->data + (bh / a->h) * a->o->strides[0] + (bh % a->h) * a->o->strides[1];
    for (int c = 0; c < cols; c++) {
        float inv = 1.0f / sum[c];
        float *dr = dst + (i0 + c) * a->o->strides[2];
        for (int64_t e = 0; e < a->dv; e++) dr[e * a->o->strides[3]] = ot[e * NR + c] * inv;
    }
}

/* ---- row strips (wide heads) ---------------------------------------------------- */

static void cpu_attn_rows_pack_task(void *arg, int64_t bh, int thread) {
    const cpu_attn *a = arg;
    int NR = a->kern->nr;
    cpu_operand k = {.data = cpu_attn_head(a->k, bh, a->h), .dtype = SDRT_DTYPE_F32,
                     .so = a->k->strides[2], .sk = a->k->strides[3]};
    cpu_operand v = {.data = cpu_attn_head(a->v, bh, a->h), .dtype = SDRT_DTYPE_F32,
                     .so = a->v->strides[3], .sk = a->v->strides[2]};
    cpu_pack(&k, 0, a->lk, 0, a->d, NR, a->pk + bh * a->k_head);
    cpu_pack(&v, 0, a->dv, 0, a->lk, NR, a->pv + bh * a->v_head);
}

/* Softmax numerators of one score row in place; returns their sum. Keys
 * past `valid` (causal) get probability 0. */
static float cpu_attn_row_softmax(float *s, int64_t lk, int64_t valid) {
    float sum = cpu_exp_shift_sum(s, valid, cpu_row_max(s, valid));
    if (valid < lk) memset(s + valid, 0, (size_t)(lk - valid) * sizeof(float));
    return sum;
}

static void cpu_attn_rows_task(void *arg, int64_t t, int thread) {
    const cpu_attn *a = arg;
    const cpu_kernel *kern = a->kern;
    int MR = kern->mr;
    int64_t bh = t / a->strips, i0 = (t % a->strips) * MR;
    int rows = (int)(a->lq - i0 < MR ? a->lq - i0 : MR);
    float *s = cpu_ctx_local(a->ctx, CPU_SLOT_ATTN_S, thread);
    float *p = cpu_ctx_local(a->ctx, CPU_SLOT_ATTN_P, thread);
    float *o = cpu_ctx_local(a->ctx, CPU_SLOT_ATTN_O, thread);
    cpu_operand q = {.data = cpu_attn_head(a->q, bh, a->h), .dtype = SDRT_DTYPE_F32,
                     .so = a->q->strides[2], .sk = a->q->strides[3]};
    cpu_pack(&q, i0, rows, 0, a->d, MR, p);
    cpu_epilogue e = {.alpha = a->scale, .last = 1};
    cpu_gemm_packed(kern, rows, a->lk, a->d, p, a->pk + bh * a->k_head, s, a->lk, &e);
    float sums[64];
    for (int r = 0; r < rows; r++) {
        int64_t valid = a->causal ? (i0 + r + 1 < a->lk ? i0 + r + 1 : a->lk) : a->lk;
        sums[r] = cpu_attn_row_softmax(s + r * a->lk, a->lk, valid);
    }
    cpu_operand sp = {.data = s, .dtype = SDRT_DTYPE_F32, .so = a->lk, .sk = 1};
    cpu_pack(&sp, 0, rows, 0, a->lk, MR, p);
    e.alpha = 1.0f;
    cpu_gemm_packed(kern, rows, a->dv, a->lk, p, a->pv + bh * a->v_head, o, a->o_ld, &e);
    float *dst = (float *)a->o->data + (bh / a->h) * a->o->strides[0] + (bh % a->h) * a->o->strides[1];
    for (int r = 0; r < rows; r++) {
        float inv = 1.0f / sums[r];
        float *dr = dst + (i0 + r) * a->o->strides[2];
        for (int64_t c = 0; c < a->dv; c++) dr[c * a->o->strides[3]] = o[r * a->o_ld + c] * inv;
    }
}

static sdrt_status cpu_attn_rows(cpu_ctx *ctx, cpu_attn *a) {
    a->kern = cpu_kernel_for_n(a->dv);
    int64_t bh = a->b * a->h;
    int MR = a->kern->mr, NR = a->kern->nr;
    a->strips = cpu_div_up(a->lq, MR);
    a->k_head = cpu_round_up(a->lk, NR) * a->d;
    a->v_head = cpu_round_up(a->dv, NR) * a->lk;
    a->o_ld = cpu_round_up(a->dv, NR);
    a->pk = cpu_ctx_shared(ctx, CPU_SLOT_ATTN_K, (size_t)(bh * a->k_head) * sizeof(float));
    a->pv = cpu_ctx_shared(ctx, CPU_SLOT_ATTN_V, (size_t)(bh * a->v_head) * sizeof(float));
    size_t strip = (size_t)MR * (size_t)(a->lk > a->d ? a->lk : a->d) * sizeof(float);
    if (!a->pk || !a->pv || cpu_ctx_reserve_local(ctx, CPU_SLOT_ATTN_S, (size_t)MR * a->lk * sizeof(float)) ||
        cpu_ctx_reserve_local(ctx, CPU_SLOT_ATTN_P, strip) ||
        cpu_ctx_reserve_local(ctx, CPU_SLOT_ATTN_O, (size_t)(MR * a->o_ld) * sizeof(float)))
        return SDRT_RESOURCE_EXHAUSTED;
    cpu_ctx_run(ctx, bh, cpu_attn_rows_pack_task, a);
    cpu_ctx_run(ctx, bh * a->strips, cpu_attn_rows_task, a);
    return SDRT_OK;
}

static sdrt_status cpu_attn_plan(const sdrt_op *op, cpu_attn *a) {
    const sdrt_tensor *q = op->src[0], *k = op->src[1], *v = op->src[2], *o = op->dst;
    if (!k || !v || q->ndim != 4 || k->ndim != 4 || v->ndim != 4 || o->ndim != 4) return SDRT_INVALID_ARGUMENT;
    a->b = q->shape[0], a->h = q->shape[1], a->lq = q->shape[2], a->d = q->shape[3];
    a->lk = k->shape[2], a->dv = v->shape[3];
    if (k->shape[0] != a->b || k->shape[1] != a->h || k->shape[3] != a->d) return SDRT_INVALID_ARGUMENT;
    if (v->shape[0] != a->b || v->shape[1] != a->h || v->shape[2] != a->lk) return SDRT_INVALID_ARGUMENT;
    if (o->shape[0] != a->b || o->shape[1] != a->h || o->shape[2] != a->lq || o->shape[3] != a->dv)
        return SDRT_INVALID_ARGUMENT;
    a->q = q, a->k = k, a->v = v, a->o = o;
    a->scale = op->fparams[0] != 0.0f ? op->fparams[0] : (float)(1.0 / sqrt((double)a->d));
    a->causal = op->iparams[0] == 1;
    return SDRT_OK;
}

sdrt_status cpu_op_attention(cpu_ctx *ctx, const sdrt_op *op) {
    cpu_attn a = {.ctx = ctx};
    sdrt_status st = cpu_attn_plan(op, &a);
    if (st != SDRT_OK) return st;
    /* Queries are the kernel's columns here: the widest kernel suits. */
    a.kern = cpu_kernel_best();
    int64_t bh = a.b * a.h;
    if (bh == 0 || a.lq == 0 || a.dv == 0) return SDRT_OK;
    if (a.lk == 0) return SDRT_INVALID_ARGUMENT; /* softmax over nothing */
    if (a.d > CPU_ATTN_COLS_MAX_D || a.dv > CPU_ATTN_COLS_MAX_D) return cpu_attn_rows(ctx, &a);
    int MR = a.kern->mr, NR = a.kern->nr;
    a.strips = cpu_div_up(a.lq, NR);
    a.kb = (CPU_ATTN_KB_FLOATS / NR) / MR * MR;
    if (a.kb < MR) a.kb = MR;
    a.k_head = cpu_round_up(a.lk, MR) * a.d;
    a.dvp = cpu_round_up(a.dv, MR);
    a.v_head = a.dvp * a.lk;
    a.pk = cpu_ctx_shared(ctx, CPU_SLOT_ATTN_K, (size_t)(bh * a.k_head) * sizeof(float));
    a.pv = cpu_ctx_shared(ctx, CPU_SLOT_ATTN_V, (size_t)(bh * a.v_head) * sizeof(float));
    if (!a.pk || !a.pv || cpu_ctx_reserve_local(ctx, CPU_SLOT_ATTN_S, (size_t)(a.kb * NR) * sizeof(float)) ||
        cpu_ctx_reserve_local(ctx, CPU_SLOT_ATTN_P, (size_t)((a.d + 2) * NR) * sizeof(float)) ||
        cpu_ctx_reserve_local(ctx, CPU_SLOT_ATTN_O, (size_t)(a.dvp * NR) * sizeof(float)))
        return SDRT_RESOURCE_EXHAUSTED;
    cpu_ctx_run(ctx, bh, cpu_attn_pack_task, &a);
    cpu_ctx_run(ctx, bh * a.strips, cpu_attn_strip_task, &a);
    return SDRT_OK;
}
