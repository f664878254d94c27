/* tests/cuda/test_cuda_index - the CUDA kernels' index arithmetic, run on
 * the CPU (no GPU needed; built with nvcc where the family is built).
 *
 * The tiled GEMM kernels read A(m,k) and B(k,n) and write C(m,n) only
 * through the "problem" objects of cuda_gemm_prob.cuh, and the element-wise
 * kernels only through cu_iter / cu_offsets. Here the same objects, set up
 * from sdrt_ops by the same functions the launchers call, drive a plain
 * host loop (sum over k of a_at * b_at, then store), and the results are
 * compared with the op computed straight from its definition: convolution
 * with stride, padding, dilation, groups, permuted input and F16/BF16
 * weights; batched broadcast MATMUL; strided copies; the layout ops'
 * 6-D views (PIXEL_SHUFFLE, PIXEL_UNSHUFFLE, UPSAMPLE_NEAREST, UPSAMPLE2X:
 * layout_view.h, shared with the Vulkan family). What this does not
 * check is the tiling, shared memory and synchronisation of the kernels
 * themselves (that needs a device: cuda-device). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_blas.h"
#include "cuda_gemm_prob.cuh"
#include "layout_view.h"

extern "C" {
#include "harness.h"
#include "sdrt/half.h"
}

/* A tensor of `shape` stored in dim order `order` (outermost first). */
static sdrt_tensor ix_tensor(sdrt_dtype dt, int nd, const int64_t *shape, const int *order, void *data) {
    sdrt_tensor t;
    memset(&t, 0, sizeof t);
    t.struct_size = sizeof t;
    t.dtype = dt;
    t.ndim = nd;
    t.data = data;
    int64_t s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        t.shape[order[i]] = shape[order[i]];
        t.strides[order[i]] = s;
        s *= shape[order[i]];
    }
    return t;
}

static float ix_rand(void) { return (float)(rand() % 2001 - 1000) / 1000.0f; }

/* Runs a problem on the host the way the kernels combine its pieces. */
template <class P>
static void ix_run(P p, int64_t batches) {
    for (int64_t z = 0; z < batches; z++) {
        typename P::Z zz = p.batch(z);
        for (int64_t m = 0; m < p.M; m++)
            for (int64_t n = 0; n < p.N; n++) {
                float acc = 0.0f;
                for (int64_t k = 0; k < p.K; k++) acc += p.a_at(zz, m, k) * p.b_at(zz, k, n);
                p.store(zz, m, n, acc);
            }
    }
}

static void test_conv_index(void) {
    uint64_t seed = test_seed();
    srand((unsigned)seed);
    for (int it = 0; it < 60; it++) {
        int64_t n = 1 + rand() % 2, groups = 1 + rand() % 3, cg = 1 + rand() % 3, og = 1 + rand() % 3;
        int64_t h = 3 + rand() % 6, w = 3 + rand() % 6, kh = 1 + rand() % 3, kw = 1 + rand() % 3;
        int32_t sh = 1 + rand() % 2, sw = 1 + rand() % 2, ph = rand() % 2, pw = rand() % 2, dh = 1 + rand() % 2,
                dw = 1 + rand() % 2;
        int64_t ho = (h + 2 * ph - dh * (kh - 1) - 1) / sh + 1, wo = (w + 2 * pw - dw * (kw - 1) - 1) / sw + 1;
        if (ho <= 0 || wo <= 0) continue;
        int64_t c = groups * cg, o = groups * og;
        sdrt_dtype wdt = (sdrt_dtype)(rand() % 3); /* F32, F16, BF16 */
        static float X[4096], Y[4096], Bv[64];
        static uint16_t W16[4096];
        static float W32[4096];
        int xorder[2][4] = {{0, 1, 2, 3}, {0, 2, 3, 1}}; /* NCHW or channels-last storage */
        int64_t xs[4] = {n, c, h, w}, ws[4] = {o, cg, kh, kw}, ys[4] = {n, o, ho, wo};
        int plain[4] = {0, 1, 2, 3};
        sdrt_tensor xt = ix_tensor(SDRT_DTYPE_F32, 4, xs, xorder[rand() % 2], X);
        sdrt_tensor wt = ix_tensor(wdt, 4, ws, plain, wdt == SDRT_DTYPE_F32 ? (void *)W32 : (void *)W16);
        sdrt_tensor yt = ix_tensor(SDRT_DTYPE_F32, 4, ys, xorder[rand() % 2], Y);
        int64_t bsh[1] = {o};
        int bo[1] = {0};
        sdrt_tensor bt = ix_tensor(SDRT_DTYPE_F32, 1, bsh, bo, Bv);
        REQUIRE(n * c * h * w <= 4096 && o * cg * kh * kw <= 4096 && n * o * ho * wo <= 4096, "sizes");
        for (int i = 0; i < 4096; i++) {
            X[i] = ix_rand();
            float v = ix_rand();
            W32[i] = v;
            W16[i] = wdt == SDRT_DTYPE_F16 ? sdrt_f32_to_f16(v) : sdrt_f32_to_bf16(v);
        }
        for (int i = 0; i < 64; i++) Bv[i] = ix_rand();
        sdrt_op op;
        memset(&op, 0, sizeof op);
        op.struct_size = sizeof op;
        op.kind = SDRT_OP_CONV2D;
        op.src[0] = &xt, op.src[1] = &wt, op.src[2] = &bt, op.dst = &yt;
        int32_t ip[7] = {sh, sw, ph, pw, dh, dw, (int32_t)groups};
        memcpy(op.iparams, ip, sizeof ip);
        cu_conv_prob p;
        int64_t ng = 0;
        REQUIRE(cu_conv_setup(&op, &p, &ng) == SDRT_OK && ng == groups, "setup case %d", it);
        ix_run(p, ng);
        /* The definition: y[b,oc,oy,ox] = bias[oc] + sum x[b, g*cg+ci, oy*sh-ph+ky*dh, ox*sw-pw+kx*dw] w[oc,ci,ky,kx]. */
        for (int64_t b = 0; b < n; b++)
            for (int64_t oc = 0; oc < o; oc++)
                for (int64_t oy = 0; oy < ho; oy++)
                    for (int64_t ox = 0; ox < wo; ox++) {
                        int64_t g = oc / og;
                        double s = Bv[oc];
                        for (int64_t ci = 0; ci < cg; ci++)
                            for (int64_t ky = 0; ky < kh; ky++)
                                for (int64_t kx = 0; kx < kw; kx++) {
                                    int64_t iy = oy * sh - ph + ky * dh, ix = ox * sw - pw + kx * dw;
                                    if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                    int64_t widx = oc * wt.strides[0] + ci * wt.strides[1] + ky * wt.strides[2] +
                                                   kx * wt.strides[3];
                                    float wv = wdt == SDRT_DTYPE_F32   ? W32[widx]
                                               : wdt == SDRT_DTYPE_F16 ? sdrt_f16_to_f32(W16[widx])
                                                                       : sdrt_bf16_to_f32(W16[widx]);
                                    s += (double)X[b * xt.strides[0] + (g * cg + ci) * xt.strides[1] +
                                                   iy * xt.strides[2] + ix * xt.strides[3]] * wv;
                                }
                        float got = Y[b * yt.strides[0] + oc * yt.strides[1] + oy * yt.strides[2] + ox * yt.strides[3]];
                        REQUIRE(fabs(got - s) < 1e-4, "case %d (seed %llu) y[%lld,%lld,%lld,%lld] = %g, want %g", it,
                                (unsigned long long)seed, (long long)b, (long long)oc, (long long)oy, (long long)ox,
                                got, s);
                    }
    }
}

/* Batched, broadcast, transposed-B MATMUL through cu_mm_setup. */
static void test_matmul_index(void) {
    uint64_t seed = test_seed();
    srand((unsigned)seed + 1);
    for (int it = 0; it < 60; it++) {
        int64_t B0 = 1 + rand() % 3, H = 1 + rand() % 3, M = 1 + rand() % 7, N = 1 + rand() % 7, K = 1 + rand() % 7;
        int trans = rand() % 2, bb = rand() % 2;
        static float A[4096], Bm[4096], C[4096], Bias[16];
        int64_t ash[4] = {B0, H, M, K}, bsh[4] = {bb ? 1 : B0, 1, trans ? N : K, trans ? K : N}, csh[4] = {B0, H, M, N};
        int o1[4] = {0, 1, 2, 3}, o2[4] = {0, 2, 1, 3}, o3[4] = {1, 0, 3, 2};
        sdrt_tensor a = ix_tensor(SDRT_DTYPE_F32, 4, ash, rand() % 2 ? o1 : o2, A);
        sdrt_tensor b = ix_tensor(SDRT_DTYPE_F32, 4, bsh, rand() % 2 ? o1 : o3, Bm);
        sdrt_tensor c = ix_tensor(SDRT_DTYPE_F32, 4, csh, rand() % 2 ? o1 : o2, C);
        int64_t bs[1] = {N};
        int b0[1] = {0};
        sdrt_tensor bias = ix_tensor(SDRT_DTYPE_F32, 1, bs, b0, Bias);
        for (int i = 0; i < 4096; i++) A[i] = ix_rand(), Bm[i] = ix_rand();
        for (int i = 0; i < 16; i++) Bias[i] = ix_rand();
        sdrt_op op;
        memset(&op, 0, sizeof op);
        op.struct_size = sizeof op;
        op.kind = SDRT_OP_MATMUL;
        op.src[0] = &a, op.src[1] = &b, op.src[2] = &bias, op.dst = &c;
        op.iparams[0] = trans;
        op.fparams[0] = 0.75f;
        cuda_mm_plan plan;
        REQUIRE(cuda_mm_plan_make(&op, &plan) == SDRT_OK, "plan %d", it);
        ix_run(cu_mm_setup(&op, &plan), plan.batches);
        for (int64_t i0 = 0; i0 < B0; i0++)
            for (int64_t hh = 0; hh < H; hh++)
                for (int64_t m = 0; m < M; m++)
                    for (int64_t nn = 0; nn < N; nn++) {
                        double s = 0;
                        for (int64_t k = 0; k < K; k++) {
                            int64_t boff = (bb ? 0 : i0) * b.strides[0];
                            float bv = trans ? Bm[boff + nn * b.strides[2] + k * b.strides[3]]
                                             : Bm[boff + k * b.strides[2] + nn * b.strides[3]];
                            s += (double)A[i0 * a.strides[0] + hh * a.strides[1] + m * a.strides[2] + k * a.strides[3]] * bv;
                        }
                        s = 0.75 * s + Bias[nn];
                        float got = C[i0 * c.strides[0] + hh * c.strides[1] + m * c.strides[2] + nn * c.strides[3]];
                        REQUIRE(fabs(got - s) < 1e-4, "case %d (seed %llu): %g, want %g", it, (unsigned long long)seed,
                                got, s);
                    }
    }
}

/* cu_iter_make + cu_offsets (COPY, element-wise): a permuted copy. */
static void test_iter_offsets(void) {
    static float S[720], D[720];
    int64_t shape[4] = {2, 3, 4, 30};
    int so[4] = {3, 1, 0, 2}, dord[4] = {0, 1, 2, 3};
    sdrt_tensor s = ix_tensor(SDRT_DTYPE_F32, 4, shape, so, S), d = ix_tensor(SDRT_DTYPE_F32, 4, shape, dord, D);
    for (int i = 0; i < 720; i++) S[i] = (float)i;
    const int64_t *st[2] = {s.strides, d.strides};
    cu_iter it = cu_iter_make(4, shape, 2, st);
    for (int64_t i = 0; i < 720; i++) {
        int64_t off[2];
        cu_offsets<2>(it, i, off);
        D[off[1]] = S[off[0]];
    }
    for (int64_t a = 0; a < 2; a++)
        for (int64_t b = 0; b < 3; b++)
            for (int64_t c = 0; c < 4; c++)
                for (int64_t e = 0; e < 30; e++) {
                    float want = S[a * s.strides[0] + b * s.strides[1] + c * s.strides[2] + e * s.strides[3]];
                    REQUIRE(D[((a * 3 + b) * 4 + c) * 30 + e] == want, "copy mismatch at %lld,%lld,%lld,%lld",
                            (long long)a, (long long)b, (long long)c, (long long)e);
                }
    /* Contiguous operands coalesce into one dim. */
    const int64_t *st2[2] = {d.strides, d.strides};
    cu_iter flat = cu_iter_make(4, shape, 2, st2);
    CHECK(flat.nd == 1 && flat.shape[0] == 720, "contiguous: %d dims", flat.nd);
}

/* The layout ops as cuda_op_layout launches them: layout_view.h's 6-D view
 * through cu_iter_make / cu_offsets, run on the host, against each op's
 * definition in sdrt/backend.h (torch's pixel_shuffle, pixel_unshuffle and
 * interpolate(mode="nearest")), with contiguous and permuted operands. */
static void test_layout_views(void) {
    srand((unsigned)test_seed());
    static const sdrt_op_kind kinds[4] = {SDRT_OP_PIXEL_SHUFFLE, SDRT_OP_PIXEL_UNSHUFFLE, SDRT_OP_UPSAMPLE_NEAREST,
                                          SDRT_OP_UPSAMPLE2X};
    static float X[8192], Y[8192];
    for (int it = 0; it < 80; it++) {
        sdrt_op_kind kind = kinds[it % 4];
        int64_t r = kind == SDRT_OP_UPSAMPLE2X ? 2 : 1 + rand() % 3;
        int64_t n = 1 + rand() % 2, c = 1 + rand() % 3, h = 1 + rand() % 5, w = 1 + rand() % 5;
        /* lo: the low-resolution side's shape, hi: the high-resolution side's */
        int64_t lo[4] = {n, kind == SDRT_OP_PIXEL_SHUFFLE || kind == SDRT_OP_PIXEL_UNSHUFFLE ? c * r * r : c, h, w};
        int64_t hi[4] = {n, c, h * r, w * r};
        const int64_t *xsh = kind == SDRT_OP_PIXEL_UNSHUFFLE ? hi : lo, *ysh = kind == SDRT_OP_PIXEL_UNSHUFFLE ? lo : hi;
        static const int orders[3][4] = {{0, 1, 2, 3}, {0, 2, 3, 1}, {3, 1, 0, 2}};
        sdrt_tensor x = ix_tensor(SDRT_DTYPE_F32, 4, xsh, orders[rand() % 3], X);
        sdrt_tensor y = ix_tensor(SDRT_DTYPE_F32, 4, ysh, orders[rand() % 3], Y);
        int64_t nx = xsh[0] * xsh[1] * xsh[2] * xsh[3], ny = ysh[0] * ysh[1] * ysh[2] * ysh[3];
        REQUIRE(nx <= 8192 && ny <= 8192, "case too large");
        for (int64_t i = 0; i < nx; i++) X[i] = (float)i;
        for (int64_t i = 0; i < ny; i++) Y[i] = -1.0f;
        sdrt_op op;
        memset(&op, 0, sizeof op);
        op.struct_size = sizeof op;
        op.kind = kind;
        op.src[0] = &x;
        op.dst = &y;
        op.iparams[0] = kind == SDRT_OP_UPSAMPLE2X ? 0 : (int32_t)r;
        devview v;
        REQUIRE(devview_layout(&op, &v) == 0, "kind %d r%lld: view refused", (int)kind, (long long)r);
        const int64_t *st[2] = {v.xs, v.ys};
        cu_iter iter = cu_iter_make(6, v.ne, 2, st);
        for (int64_t i = 0; i < ny; i++) {
            int64_t off[2];
            cu_offsets<2>(iter, i, off);
            Y[off[1]] = X[off[0]];
        }
        /* Every dst element from its definition: walk the high-resolution side. */
        for (int64_t b = 0; b < n; b++)
            for (int64_t ch = 0; ch < c; ch++)
                for (int64_t hh = 0; hh < h * r; hh++)
                    for (int64_t ww = 0; ww < w * r; ww++) {
                        int64_t lc = lo[1] == c ? ch : ch * r * r + (hh % r) * r + ww % r;
                        const sdrt_tensor *ht = kind == SDRT_OP_PIXEL_UNSHUFFLE ? &x : &y;
                        const sdrt_tensor *lt = kind == SDRT_OP_PIXEL_UNSHUFFLE ? &y : &x;
                        int64_t hoff = b * ht->strides[0] + ch * ht->strides[1] + hh * ht->strides[2] + ww * ht->strides[3];
                        int64_t loff = b * lt->strides[0] + lc * lt->strides[1] + (hh / r) * lt->strides[2] +
                                       (ww / r) * lt->strides[3];
                        float got = kind == SDRT_OP_PIXEL_UNSHUFFLE ? Y[loff] : Y[hoff];
                        float want = kind == SDRT_OP_PIXEL_UNSHUFFLE ? X[hoff] : X[loff];
                        REQUIRE(got == want, "kind %d r%lld at n%lld c%lld h%lld w%lld: %g, want %g", (int)kind,
                                (long long)r, (long long)b, (long long)ch, (long long)hh, (long long)ww, got, want);
                    }
    }
    /* Shapes that do not fit the op are refused (the launcher answers INVALID_ARGUMENT). */
    int64_t xs[4] = {1, 6, 2, 2}, ys[4] = {1, 1, 4, 4};
    int plain[4] = {0, 1, 2, 3};
    sdrt_tensor x = ix_tensor(SDRT_DTYPE_F32, 4, xs, plain, X), y = ix_tensor(SDRT_DTYPE_F32, 4, ys, plain, Y);
    sdrt_op op;
    memset(&op, 0, sizeof op);
    op.kind = SDRT_OP_PIXEL_SHUFFLE;
    op.src[0] = &x;
    op.dst = &y;
    op.iparams[0] = 2;
    devview v;
    CHECK(devview_layout(&op, &v) == -1, "6 channels are not C*2*2");
    op.iparams[0] = 0;
    CHECK(devview_layout(&op, &v) == -1, "factor 0 accepted");
}

/* cuBLAS opens at run time (the module does not link it): the soname and
 * the five entry points resolve where the toolkit is installed. Creating a
 * handle needs a driver, so that part runs in cuda-device only. */
static void test_blas_open(void) {
    char why[512] = "";
    const cuda_blas_api *b = cuda_blas_open(why, sizeof why);
    REQUIRE(b != NULL, "cuBLAS did not open: %s", why);
    CHECK(b->create && b->destroy && b->set_stream && b->set_workspace && b->sgemm_strided_batched, "symbols");
    CHECK(cuda_blas() == b && cuda_blas_open(NULL, 0) == b, "opened once");
}

extern "C" const test_entry TESTS[] = {
    {"blas_open", test_blas_open},
    {"conv_index", test_conv_index},
    {"matmul_index", test_matmul_index},
    {"iter_offsets", test_iter_offsets},
    {"layout_views", test_layout_views},
    {0, 0},
};
