/* cuda_mmplan.c - MATMUL operands as batched products and their mapping
 * onto cublasSgemmStridedBatched (cuda_plan.h). Plain C so tests/cuda
 * checks the mapping against an emulation of the cuBLAS call. */
#include <limits.h>
#include <string.h>

#include "cuda_plan.h"

/* Batch strides of t aligned to dst's batch dims; 0 where broadcast. */
static int mm_batch_strides(const sdrt_tensor *t, const sdrt_tensor *dst, int nb, int64_t *out) {
    int tb = t->ndim - 2;
    for (int d = 0; d < nb; d++) {
        int td = d - (nb - tb);
        if (td < 0) out[d] = 0;
        else if (t->shape[td] == dst->shape[d]) out[d] = t->strides[td];
        else if (t->shape[td] == 1) out[d] = 0;
        else return -1;
    }
    return 0;
}

sdrt_status cuda_mm_plan_make(const sdrt_op *op, cuda_mm_plan *p) {
    const sdrt_tensor *a = op->src[0], *b = op->src[1], *c = op->dst;
    int trans = op->iparams[0] == 1;
    memset(p, 0, sizeof *p);
    if (!b || a->ndim < 2 || b->ndim < 2 || c->ndim < 2) return SDRT_INVALID_ARGUMENT;
    if (c->ndim != (a->ndim > b->ndim ? a->ndim : b->ndim)) return SDRT_INVALID_ARGUMENT;
    p->m = a->shape[a->ndim - 2];
    p->k = a->shape[a->ndim - 1];
    int64_t bk = b->shape[b->ndim - (trans ? 1 : 2)];
    p->n = b->shape[b->ndim - (trans ? 2 : 1)];
    if (bk != p->k || c->shape[c->ndim - 2] != p->m || c->shape[c->ndim - 1] != p->n) return SDRT_INVALID_ARGUMENT;
    p->nb = c->ndim - 2;
    p->batches = 1;
    for (int d = 0; d < p->nb; d++) {
        p->bshape[d] = c->shape[d];
        p->c_bs[d] = c->strides[d];
        p->batches *= c->shape[d];
    }
    if (mm_batch_strides(a, c, p->nb, p->a_bs) || mm_batch_strides(b, c, p->nb, p->b_bs))
        return SDRT_INVALID_ARGUMENT;
    p->a_rs = a->strides[a->ndim - 2];
    p->a_cs = a->strides[a->ndim - 1];
    int64_t brow = b->strides[b->ndim - 2], bcol = b->strides[b->ndim - 1];
    p->b_ks = trans ? bcol : brow;
    p->b_ns = trans ? brow : bcol;
    p->c_rs = c->strides[c->ndim - 2];
    p->c_cs = c->strides[c->ndim - 1];
    return SDRT_OK;
}

/* The batch dims as one (count, stride per operand), dropping size-1 dims
 * and merging neighbours every operand steps through evenly. -1 when more
 * than one dim remains. */
static int mm_one_batch_dim(const cuda_mm_plan *p, int64_t *sa, int64_t *sb, int64_t *sc) {
    int nd = 0;
    int64_t shape = 1, st[3] = {0, 0, 0};
    for (int d = 0; d < p->nb; d++) {
        if (p->bshape[d] == 1) continue;
        int64_t s[3] = {p->a_bs[d], p->b_bs[d], p->c_bs[d]};
        if (nd == 1 && st[0] == s[0] * p->bshape[d] && st[1] == s[1] * p->bshape[d] && st[2] == s[2] * p->bshape[d]) {
            shape *= p->bshape[d];
            memcpy(st, s, sizeof st);
            continue;
        }
        if (nd == 1) return -1;
        nd = 1;
        shape = p->bshape[d];
        memcpy(st, s, sizeof st);
    }
    (void)shape;
    *sa = st[0], *sb = st[1], *sc = st[2];
    return 0;
}

static int fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

int cuda_mm_plan_blas(const cuda_mm_plan *p, cuda_blas_call *out) {
    int64_t sa, sb, sc, batches = p->batches, M = p->m, N = p->n, K = p->k;
    if (mm_one_batch_dim(p, &sa, &sb, &sc) != 0) return 0;
    if (batches > 1 && sb == 0 && sa == p->a_rs * M && sc == p->c_rs * M) {
        /* B shared and A's and C's rows step evenly across batches: one
         * tall product (the Linear layer over [batch, tokens, features]). */
        M *= batches;
        batches = 1;
        sa = sb = sc = 0;
    }
    if (batches > 1 && sc == 0) return 0; /* every batch would write the same C */
    if (M == 0 || N == 0 || K == 0 || batches == 0) return 0;
    if (!fits_int(M) || !fits_int(N) || !fits_int(K) || !fits_int(batches)) return 0;
    memset(out, 0, sizeof *out);
    /* cuBLAS's first operand is B^T [N x K], column-major. Row-major B
     * (unit n stride) read column-major with ld = b_ks is already B^T. */
    if (p->b_ns == 1 && (K == 1 || p->b_ks >= N)) out->trans_a = 0, out->lda = K == 1 ? N : p->b_ks;
    else if (p->b_ks == 1 && (N == 1 || p->b_ns >= K)) out->trans_a = 1, out->lda = N == 1 ? K : p->b_ns;
    else return 0;
    /* Second operand A^T [K x M]: row-major A read column-major is A^T. */
    if (p->a_cs == 1 && (M == 1 || p->a_rs >= K)) out->trans_b = 0, out->ldb = M == 1 ? K : p->a_rs;
    else if (p->a_rs == 1 && (K == 1 || p->a_cs >= M)) out->trans_b = 1, out->ldb = K == 1 ? M : p->a_cs;
    else return 0;
    /* C^T [N x M] column-major = row-major C with unit column stride. */
    if (p->c_cs == 1 && (M == 1 || p->c_rs >= N)) out->ldc = M == 1 ? N : p->c_rs;
    else return 0;
    if (!fits_int(out->lda) || !fits_int(out->ldb) || !fits_int(out->ldc) || out->lda < 1 || out->ldb < 1 ||
        out->ldc < 1)
        return 0;
    out->m = N;
    out->n = M;
    out->k = K;
    out->stride_a = sb;
    out->stride_b = sa;
    out->stride_c = sc;
    out->batches = batches;
    return 1;
}
