/* cpu_op_attention.c - ATTENTION, memory-efficient.
 *
 * Phase 1 packs K^T and V of every head once into GEMM panels (the size of
 * K and V themselves). Phase 2 runs tasks of MR query rows: scores for the
 * strip [MR x Lk] (the only score memory, per thread), softmax in place,
 * pack as A, multiply by the packed V, normalise and store. So peak extra
 * memory is O(B*H*L*D + threads*MR*Lk), never [Lq, Lk] per head. */
#include "cpu_internal.h"

#include <math.h>
#include <string.h>

typedef struct cpu_attn {
    const sdrt_tensor *q, *k, *v, *o;
    const cpu_kernel *kern;
    int64_t b, h, lq, lk, d, dv;
    int64_t strips, k_head, v_head, o_ld; /* packed sizes per head (floats) */
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

static void cpu_attn_strip_task(void *arg, int64_t t, int thread) {
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
    a.kern = cpu_kernel_for_n(a.dv);
    int64_t bh = a.b * a.h;
    if (bh == 0 || a.lq == 0 || a.dv == 0) return SDRT_OK;
    if (a.lk == 0) return SDRT_INVALID_ARGUMENT; /* softmax over nothing */
    int MR = a.kern->mr, NR = a.kern->nr;
    a.strips = cpu_div_up(a.lq, MR);
    a.k_head = cpu_round_up(a.lk, NR) * a.d;
    a.v_head = cpu_round_up(a.dv, NR) * a.lk;
    a.o_ld = cpu_round_up(a.dv, NR);
    a.pk = cpu_ctx_shared(ctx, CPU_SLOT_ATTN_K, (size_t)(bh * a.k_head) * sizeof(float));
    a.pv = cpu_ctx_shared(ctx, CPU_SLOT_ATTN_V, (size_t)(bh * a.v_head) * sizeof(float));
    size_t strip = (size_t)MR * (size_t)(a.lk > a.d ? a.lk : a.d) * sizeof(float);
    if (!a.pk || !a.pv || cpu_ctx_reserve_local(ctx, CPU_SLOT_ATTN_S, (size_t)MR * a.lk * sizeof(float)) ||
        cpu_ctx_reserve_local(ctx, CPU_SLOT_ATTN_P, strip) ||
        cpu_ctx_reserve_local(ctx, CPU_SLOT_ATTN_O, (size_t)(MR * a.o_ld) * sizeof(float)))
        return SDRT_RESOURCE_EXHAUSTED;
    cpu_ctx_run(ctx, bh, cpu_attn_pack_task, &a);
    cpu_ctx_run(ctx, bh * a.strips, cpu_attn_strip_task, &a);
    return SDRT_OK;
}
