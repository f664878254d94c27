/* cuda_gemm_prob.cuh - the GEMM "problems" of cuda_gemm.cu: how the tiled
 * kernels read A(m,k) and B(k,n) and where C(m,n) goes, for MATMUL (batched,
 * broadcast, strided) and CONV2D (implicit GEMM per group: A = weights
 * [og, cg*kh*kw], B = the im2col matrix read straight from the input,
 * C = output channels x pixels). Host and device code, so tests/cuda
 * (cuda-index) checks the index arithmetic on the CPU. */
#ifndef SDRT_CUDA_GEMM_PROB_CUH
#define SDRT_CUDA_GEMM_PROB_CUH

#include "cuda_common.cuh"

struct cu_mm_prob {
    const float *a;
    const void *b;
    float *c;
    const void *bias;
    int64_t bias_s;
    int bias_dt;
    int bdt;
    int64_t M, N, K;
    int64_t a_rs, a_cs, b_ks, b_ns, c_rs, c_cs;
    int nb;
    int64_t bshape[SDRT_MAX_DIMS], abst[SDRT_MAX_DIMS], bbst[SDRT_MAX_DIMS], cbst[SDRT_MAX_DIMS];
    int64_t z0;
    float alpha;

    struct Z {
        int64_t ao, bo, co;
    };
    CU_HD Z batch(int64_t z) const {
        Z r = {0, 0, 0};
        z += z0;
        for (int d = nb - 1; d >= 0; d--) {
            int64_t i = z % bshape[d];
            z /= bshape[d];
            r.ao += i * abst[d];
            r.bo += i * bbst[d];
            r.co += i * cbst[d];
        }
        return r;
    }
    CU_HD float a_at(const Z &z, int64_t m, int64_t k) const { return a[z.ao + m * a_rs + k * a_cs]; }
    CU_HD float b_at(const Z &z, int64_t k, int64_t n) const { return cu_load(b, bdt, z.bo + k * b_ks + n * b_ns); }
    CU_HD void store(const Z &z, int64_t m, int64_t n, float v) const {
        c[z.co + m * c_rs + n * c_cs] = v * alpha + (bias ? cu_load(bias, bias_dt, n * bias_s) : 0.0f);
    }
};

/* Implicit GEMM per group: A = weights [og, cg*kh*kw], B = im2col
 * [cg*kh*kw, n*ho*wo], C = output channels x pixels. */
struct cu_conv_prob {
    const float *x;
    const void *w;
    float *y;
    const void *bias;
    int64_t bias_s;
    int bias_dt;
    int wdt;
    int64_t M, N, K;
    int64_t c, h, wd, kh, kw, ho, wo, sh, sw, ph, pw, dh, dw, cg, og;
    int64_t xs[4], ws[4], ys[4];
    int64_t z0;

    struct Z {
        int64_t g;
    };
    CU_HD Z batch(int64_t z) const { return Z{z + z0}; }
    CU_HD float a_at(const Z &z, int64_t m, int64_t k) const {
        int64_t khw = kh * kw, ci = k / khw, r = k - ci * khw, ky = r / kw, kx = r - ky * kw;
        return cu_load(w, wdt, (z.g * og + m) * ws[0] + ci * ws[1] + ky * ws[2] + kx * ws[3]);
    }
    CU_HD float b_at(const Z &z, int64_t k, int64_t n) const {
        int64_t khw = kh * kw, ci = k / khw, r = k - ci * khw, ky = r / kw, kx = r - ky * kw;
        int64_t hw = ho * wo, img = n / hw, p = n - img * hw, oy = p / wo, ox = p - oy * wo;
        int64_t iy = oy * sh - ph + ky * dh, ix = ox * sw - pw + kx * dw;
        if (iy < 0 || iy >= h || ix < 0 || ix >= wd) return 0.0f;
        return x[img * xs[0] + (z.g * cg + ci) * xs[1] + iy * xs[2] + ix * xs[3]];
    }
    CU_HD void store(const Z &z, int64_t m, int64_t n, float v) const {
        int64_t hw = ho * wo, img = n / hw, p = n - img * hw, oy = p / wo, ox = p - oy * wo, o = z.g * og + m;
        y[img * ys[0] + o * ys[1] + oy * ys[2] + ox * ys[3]] = v + (bias ? cu_load(bias, bias_dt, o * bias_s) : 0.0f);
    }
};

/* The MATMUL problem for a plan (cuda_mm_plan_make) and its op. */
static inline cu_mm_prob cu_mm_setup(const sdrt_op *op, const cuda_mm_plan *planp) {
    const sdrt_tensor *a = op->src[0], *b = op->src[1], *c = op->dst, *bias = op->src[2];
    const cuda_mm_plan &plan = *planp;
    cu_mm_prob p = {};
    p.a = (const float *)a->data;
    p.b = b->data;
    p.c = (float *)c->data;
    p.bdt = b->dtype;
    p.bias = bias ? bias->data : NULL;
    p.bias_dt = bias ? bias->dtype : SDRT_DTYPE_F32;
    p.bias_s = bias ? bias->strides[bias->ndim - 1] : 0;
    p.M = plan.m, p.N = plan.n, p.K = plan.k;
    p.nb = plan.nb;
    for (int d = 0; d < plan.nb; d++) {
        p.bshape[d] = plan.bshape[d];
        p.abst[d] = plan.a_bs[d];
        p.bbst[d] = plan.b_bs[d];
        p.cbst[d] = plan.c_bs[d];
    }
    p.a_rs = plan.a_rs, p.a_cs = plan.a_cs, p.b_ks = plan.b_ks, p.b_ns = plan.b_ns;
    p.c_rs = plan.c_rs, p.c_cs = plan.c_cs;
    p.alpha = op->fparams[0] != 0.0f ? op->fparams[0] : 1.0f;
    return p;
}

static inline int64_t cu_conv_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
    return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

/* The CONV2D problem (one GEMM per group, *groups_out of them), with the
 * CPU backend's shape checks. */
static inline sdrt_status cu_conv_setup(const sdrt_op *op, cu_conv_prob *out, int64_t *groups_out) {
    const sdrt_tensor *x = op->src[0], *w = op->src[1], *b = op->src[2], *y = op->dst;
    if (x->ndim != 4 || w->ndim != 4 || y->ndim != 4) return SDRT_INVALID_ARGUMENT;
    const int32_t *ip = op->iparams;
    cu_conv_prob &p = *out;
    p = cu_conv_prob();
    p.sh = ip[0] > 0 ? ip[0] : 1;
    p.sw = ip[1] > 0 ? ip[1] : 1;
    p.ph = ip[2];
    p.pw = ip[3];
    p.dh = ip[4] > 0 ? ip[4] : 1;
    p.dw = ip[5] > 0 ? ip[5] : 1;
    int64_t groups = ip[6] > 0 ? ip[6] : 1;
    *groups_out = groups;
    if (p.ph < 0 || p.pw < 0) return SDRT_INVALID_ARGUMENT;
    int64_t n = x->shape[0], o = w->shape[0];
    p.c = x->shape[1], p.h = x->shape[2], p.wd = x->shape[3];
    p.kh = w->shape[2], p.kw = w->shape[3];
    if (p.c % groups || o % groups || w->shape[1] != p.c / groups) return SDRT_INVALID_ARGUMENT;
    p.ho = cu_conv_out(p.h, p.kh, p.sh, p.ph, p.dh);
    p.wo = cu_conv_out(p.wd, p.kw, p.sw, p.pw, p.dw);
    if (p.ho <= 0 || p.wo <= 0) return SDRT_INVALID_ARGUMENT;
    if (y->shape[0] != n || y->shape[1] != o || y->shape[2] != p.ho || y->shape[3] != p.wo)
        return SDRT_INVALID_ARGUMENT;
    if (b && cu_numel(b) != o) return SDRT_INVALID_ARGUMENT;
    p.cg = p.c / groups;
    p.og = o / groups;
    p.M = p.og;
    p.N = n * p.ho * p.wo;
    p.K = p.cg * p.kh * p.kw;
    p.x = (const float *)x->data;
    p.w = w->data;
    p.y = (float *)y->data;
    p.wdt = w->dtype;
    p.bias = b ? b->data : NULL;
    p.bias_dt = b ? b->dtype : SDRT_DTYPE_F32;
    p.bias_s = b ? b->strides[b->ndim - 1] : 0;
    for (int d = 0; d < 4; d++) p.xs[d] = x->strides[d], p.ws[d] = w->strides[d], p.ys[d] = y->strides[d];
    return SDRT_OK;
}

#endif /* SDRT_CUDA_GEMM_PROB_CUH */
