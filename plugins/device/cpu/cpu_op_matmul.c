/* cpu_op_matmul.c - MATMUL: batched, broadcast, optional transposed B,
 * bias and alpha, on top of cpu_gemm (or, for a weight B on an int8 / bf16
 * stream, cpu_lp_gemm). When B is shared by every batch and
 * A's batch rows are evenly spaced (the Linear layer case), the batch is
 * folded into M so one large GEMM runs instead of many small ones. */
#include "cpu_internal.h"

#include <string.h>

typedef struct cpu_mm {
    int64_t m, n, k;
    int nb; /* batch dims (of dst) */
    int64_t batch_shape[SDRT_MAX_DIMS];
    int64_t a_bstride[SDRT_MAX_DIMS], b_bstride[SDRT_MAX_DIMS], c_bstride[SDRT_MAX_DIMS];
    int64_t a_rs, a_cs, b_so, b_sk, c_rs;
} cpu_mm;

/* Batch strides of `t` aligned to the dst's batch dims; 0 where broadcast.
 * Returns -1 when a dim neither matches nor is 1. */
static int cpu_mm_batch_strides(const sdrt_tensor *t, const sdrt_tensor *dst, int nb, int64_t *out) {
    int tb = t->ndim - 2;
    for (int d = 0; d < nb; d++) {
        int td = d - (nb - tb);
        if (td < 0) { out[d] = 0; continue; }
        if (t->shape[td] == dst->shape[d]) out[d] = t->strides[td];
        else if (t->shape[td] == 1) out[d] = 0;
        else return -1;
    }
    return 0;
}

static sdrt_status cpu_mm_plan(const sdrt_op *op, cpu_mm *mm) {
    const sdrt_tensor *a = op->src[0], *b = op->src[1], *c = op->dst;
    int trans = op->iparams[0] == 1;
    if (a->ndim < 2 || b->ndim < 2 || c->ndim < 2) return SDRT_INVALID_ARGUMENT;
    if (c->ndim != (a->ndim > b->ndim ? a->ndim : b->ndim)) return SDRT_INVALID_ARGUMENT;
    mm->m = a->shape[a->ndim - 2];
    mm->k = a->shape[a->ndim - 1];
    int64_t bk = b->shape[b->ndim - (trans ? 1 : 2)];
    mm->n = b->shape[b->ndim - (trans ? 2 : 1)];
    if (bk != mm->k || c->shape[c->ndim - 2] != mm->m || c->shape[c->ndim - 1] != mm->n)
        return SDRT_INVALID_ARGUMENT;
    mm->nb = c->ndim - 2;
    memcpy(mm->batch_shape, c->shape, sizeof mm->batch_shape);
    if (cpu_mm_batch_strides(a, c, mm->nb, mm->a_bstride) || cpu_mm_batch_strides(b, c, mm->nb, mm->b_bstride))
        return SDRT_INVALID_ARGUMENT;
    for (int d = 0; d < mm->nb; d++) mm->c_bstride[d] = c->strides[d];
    mm->a_rs = a->strides[a->ndim - 2];
    mm->a_cs = a->strides[a->ndim - 1];
    int64_t bs_row = b->strides[b->ndim - 2], bs_col = b->strides[b->ndim - 1];
    mm->b_so = trans ? bs_row : bs_col;
    mm->b_sk = trans ? bs_col : bs_row;
    mm->c_rs = c->strides[c->ndim - 2];
    return SDRT_OK;
}

/* Folds every batch dim into M when B is shared and both A's and C's rows
 * then step evenly. */
static int cpu_mm_fold_batch(cpu_mm *mm) {
    int64_t a_step = mm->a_rs, c_step = mm->c_rs, rows = mm->m;
    for (int d = mm->nb - 1; d >= 0; d--) {
        if (mm->batch_shape[d] == 1) continue;
        if (mm->b_bstride[d] != 0) return 0;
        if (mm->a_bstride[d] != a_step * rows || mm->c_bstride[d] != c_step * rows) return 0;
        rows *= mm->batch_shape[d];
    }
    mm->m = rows;
    mm->nb = 0;
    return 1;
}

/* The stream's low-precision kernel when this product takes it: B is a
 * weight (no buffer: borrowed host memory, see cpu_internal.h) shared by
 * every batch. Products of two activations (attention scores) stay f32. */
static const cpu_lp_kernel *cpu_mm_lowp(cpu_ctx *ctx, const sdrt_op *op, const cpu_mm *mm) {
    if (ctx->precision == CPU_PREC_F32 || op->src[1]->buffer != NULL) return NULL;
    for (int d = 0; d < mm->nb; d++)
        if (mm->b_bstride[d] != 0 && mm->batch_shape[d] != 1) return NULL;
    return cpu_lp_kernel_best(ctx->precision);
}

static sdrt_status cpu_mm_run(cpu_ctx *ctx, const sdrt_op *op, const cpu_mm *mm, float *cbase,
                              const float *bias) {
    const sdrt_tensor *a = op->src[0], *b = op->src[1];
    size_t bes = cpu_dtype_size(b->dtype);
    int64_t batches = 1;
    for (int d = 0; d < mm->nb; d++) batches *= mm->batch_shape[d];
    float alpha = op->fparams[0] != 0.0f ? op->fparams[0] : 1.0f;
    const cpu_lp_weight *lw = NULL;
    const cpu_lp_kernel *lk = cpu_mm_lowp(ctx, op, mm);
    if (lk) {
        cpu_operand w = {.data = b->data, .dtype = b->dtype, .so = mm->b_so, .sk = mm->b_sk};
        sdrt_status st;
        lw = cpu_wcache_get(ctx, lk, &w, mm->n, mm->k, &st);
        /* No memory for the packed copy: this product runs in f32. */
        if (!lw && st != SDRT_RESOURCE_EXHAUSTED) return st;
    }
    for (int64_t bi = 0; bi < batches; bi++) {
        int64_t ao = 0, bo = 0, co = 0, rem = bi;
        for (int d = mm->nb - 1; d >= 0; d--) {
            int64_t idx = rem % mm->batch_shape[d];
            rem /= mm->batch_shape[d];
            ao += idx * mm->a_bstride[d];
            bo += idx * mm->b_bstride[d];
            co += idx * mm->c_bstride[d];
        }
        if (lw) {
            cpu_lp_gemm_args lg = {
                .m = mm->m, .a = {.data = (const float *)a->data + ao, .dtype = SDRT_DTYPE_F32, .so = mm->a_rs,
                                  .sk = mm->a_cs},
                .w = lw, .c = cbase + co, .ldc = mm->c_rs, .alpha = alpha, .bias_n = bias,
            };
            sdrt_status st = cpu_lp_gemm(ctx, &lg);
            if (st != SDRT_OK) return st;
            continue;
        }
        cpu_gemm_args g = {
            .m = mm->m, .n = mm->n, .k = mm->k,
            .a = {.data = (const float *)a->data + ao, .dtype = SDRT_DTYPE_F32, .so = mm->a_rs, .sk = mm->a_cs},
            .b = {.data = (const char *)b->data + (size_t)bo * bes, .dtype = b->dtype, .so = mm->b_so, .sk = mm->b_sk},
            .c = cbase + co, .ldc = mm->c_rs, .alpha = alpha, .bias_n = bias,
        };
        sdrt_status st = cpu_gemm(ctx, &g);
        if (st != SDRT_OK) return st;
    }
    return SDRT_OK;
}

/* The bias as a contiguous float row (staged only when strided or
 * F16/BF16). It must be a vector of n along its last dim. */
static const float *cpu_mm_bias(cpu_ctx *ctx, const sdrt_tensor *bias, int64_t n, sdrt_status *st) {
    *st = SDRT_OK;
    if (!bias) return NULL;
    if (bias->ndim < 1 || bias->shape[bias->ndim - 1] != n) {
        *st = SDRT_INVALID_ARGUMENT;
        return NULL;
    }
    return cpu_param_f32(ctx, bias, n, 0, st);
}

sdrt_status cpu_op_matmul(cpu_ctx *ctx, const sdrt_op *op) {
    cpu_mm mm;
    sdrt_status st = cpu_mm_plan(op, &mm);
    if (st != SDRT_OK) return st;
    const float *bias = cpu_mm_bias(ctx, op->src[2], mm.n, &st);
    if (st != SDRT_OK) return st;
    sdrt_tensor *c = op->dst;
    if (c->strides[c->ndim - 1] == 1) {
        cpu_mm_fold_batch(&mm);
        return cpu_mm_run(ctx, op, &mm, c->data, bias);
    }
    /* A dst with strided columns: compute contiguously, then scatter. */
    int64_t total = cpu_numel(c);
    float *tmp = cpu_ctx_shared(ctx, CPU_SLOT_TMP_DST, (size_t)total * sizeof(float));
    if (!tmp) return SDRT_RESOURCE_EXHAUSTED;
    sdrt_tensor staged = *c;
    for (int64_t d = c->ndim - 1, s = 1; d >= 0; d--) {
        staged.strides[d] = s;
        s *= c->shape[d];
    }
    staged.data = tmp;
    for (int d = 0; d < mm.nb; d++) mm.c_bstride[d] = staged.strides[d];
    mm.c_rs = mm.n;
    cpu_mm_fold_batch(&mm);
    st = cpu_mm_run(ctx, op, &mm, tmp, bias);
    if (st != SDRT_OK) return st;
    return cpu_copy_tensor(ctx, &staged, c);
}
