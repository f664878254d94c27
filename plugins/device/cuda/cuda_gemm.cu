/* cuda_gemm.cu - MATMUL and CONV2D.
 *
 * MATMUL with F32 weights whose layout cuBLAS can describe (unit stride in
 * one dim of each operand, the batch dims collapsing to one stride) runs
 * cublasSgemmStridedBatched (F32 arithmetic, no TF32), bias added after
 * (when cuBLAS could be opened: cuda_blas.h).
 * Everything else, and every CONV2D (implicit GEMM: the im2col matrix is
 * never stored; the B tile loader reads the input directly), runs the tiled
 * kernels below over "problem" descriptions that say how to read A(m,k),
 * B(k,n) and where C(m,n) goes:
 *  - gemm_simt: F32 FMA, 64x64 tiles, 4x4 outputs per thread (F32 weights,
 *    or F16/BF16 weights in the f32 precision mode);
 *  - gemm_wmma: tensor-core MMA (WMMA 16x16x16) on F16 or BF16 tiles with
 *    F32 accumulation (F16/BF16 weights, mixed precision: the activations
 *    are rounded to the weight dtype as they enter shared memory; F16
 *    saturates at +-65504 rather than overflowing to inf).
 * The epilogue applies alpha and the bias and stores through any strides.
 */
#include "cuda_blas.h"
#include <mma.h>

#include "cuda_common.cuh"

#define GT_BM 64
#define GT_BN 64

#include "cuda_gemm_prob.cuh"

/* ---- F32 SIMT tiles ------------------------------------------------------------ */

#define GS_BK 16

template <class P>
__global__ void __launch_bounds__(256) gemm_simt(P p, int64_t m_base) {
    __shared__ float As[GS_BK][GT_BM + 4];
    __shared__ float Bs[GS_BK][GT_BN + 4];
    typename P::Z z = p.batch(blockIdx.z);
    int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    int64_t m0 = m_base + (int64_t)blockIdx.y * GT_BM, n0 = (int64_t)blockIdx.x * GT_BN;
    float acc[4][4] = {};
    for (int64_t k0 = 0; k0 < p.K; k0 += GS_BK) {
        for (int i = tid; i < GT_BM * GS_BK; i += 256) {
            int r = i / GS_BK, c = i % GS_BK;
            int64_t m = m0 + r, k = k0 + c;
            As[c][r] = m < p.M && k < p.K ? p.a_at(z, m, k) : 0.0f;
        }
        for (int i = tid; i < GS_BK * GT_BN; i += 256) {
            int r = i / GT_BN, c = i % GT_BN;
            int64_t k = k0 + r, n = n0 + c;
            Bs[r][c] = k < p.K && n < p.N ? p.b_at(z, k, n) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < GS_BK; kk++) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++) a[i] = As[kk][ty * 4 + i];
#pragma unroll
            for (int j = 0; j < 4; j++) b[j] = Bs[kk][tx * 4 + j];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            int64_t m = m0 + ty * 4 + i, n = n0 + tx * 4 + j;
            if (m < p.M && n < p.N) p.store(z, m, n, acc[i][j]);
        }
}

/* ---- tensor-core tiles (sm_80+) ---------------------------------------------------- */

#define GW_BK 32

template <typename T>
__device__ __forceinline__ T cu_to(float v);
template <>
__device__ __forceinline__ __half cu_to<__half>(float v) {
    return __float2half_rn(fminf(fmaxf(v, -65504.0f), 65504.0f));
}
template <>
__device__ __forceinline__ __nv_bfloat16 cu_to<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

template <class P, typename T>
__global__ void __launch_bounds__(256) gemm_wmma(P p, int64_t m_base) {
    using namespace nvcuda;
    __shared__ __align__(32) T As[GT_BM][GW_BK + 8];
    __shared__ __align__(32) T Bs[GW_BK][GT_BN + 8];
    __shared__ __align__(32) float Cs[GT_BM][GT_BN + 4];
    typename P::Z z = p.batch(blockIdx.z);
    int tid = threadIdx.x, warp = tid / 32, wm = warp / 2, wn = warp % 2;
    int64_t m0 = m_base + (int64_t)blockIdx.y * GT_BM, n0 = (int64_t)blockIdx.x * GT_BN;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2];
    wmma::fill_fragment(acc[0], 0.0f);
    wmma::fill_fragment(acc[1], 0.0f);
    for (int64_t k0 = 0; k0 < p.K; k0 += GW_BK) {
        for (int i = tid; i < GT_BM * GW_BK; i += 256) {
            int r = i / GW_BK, c = i % GW_BK;
            int64_t m = m0 + r, k = k0 + c;
            As[r][c] = cu_to<T>(m < p.M && k < p.K ? p.a_at(z, m, k) : 0.0f);
        }
        for (int i = tid; i < GW_BK * GT_BN; i += 256) {
            int r = i / GT_BN, c = i % GT_BN;
            int64_t k = k0 + r, n = n0 + c;
            Bs[r][c] = cu_to<T>(k < p.K && n < p.N ? p.b_at(z, k, n) : 0.0f);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < GW_BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
            wmma::load_matrix_sync(fa, &As[wm * 16][kk], GW_BK + 8);
#pragma unroll
            for (int t = 0; t < 2; t++) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb;
                wmma::load_matrix_sync(fb, &Bs[kk][wn * 32 + t * 16], GT_BN + 8);
                wmma::mma_sync(acc[t], fa, fb, acc[t]);
            }
        }
        __syncthreads();
    }
    for (int t = 0; t < 2; t++)
        wmma::store_matrix_sync(&Cs[wm * 16][wn * 32 + t * 16], acc[t], GT_BN + 4, wmma::mem_row_major);
    __syncthreads();
    for (int i = tid; i < GT_BM * GT_BN; i += 256) {
        int r = i / GT_BN, c = i % GT_BN;
        int64_t m = m0 + r, n = n0 + c;
        if (m < p.M && n < p.N) p.store(z, m, n, Cs[r][c]);
    }
}

/* Launches over `batches` products in chunks of 65535 (grid z), and over
 * M in chunks of 65535 row tiles (grid y). */
template <class P>
static sdrt_status cu_gemm_launch(const cuda_exec *ex, P p, int64_t batches, int weight_dtype) {
    if (p.M == 0 || p.N == 0 || batches == 0) return SDRT_OK;
    int64_t gx = (p.N + GT_BN - 1) / GT_BN, gy_all = (p.M + GT_BM - 1) / GT_BM;
    if (gx > INT32_MAX) return SDRT_UNSUPPORTED; /* > 1.3e11 columns */
    bool tc = ex->precision == CUDA_PRECISION_MIXED && weight_dtype != SDRT_DTYPE_F32 && ex->sm >= 80;
    for (int64_t y0 = 0; y0 < gy_all; y0 += 65535) {
        int64_t gy = gy_all - y0 < 65535 ? gy_all - y0 : 65535, m_base = y0 * GT_BM;
        for (int64_t z0 = 0; z0 < batches; z0 += 65535) {
            int64_t nz = batches - z0 < 65535 ? batches - z0 : 65535;
            p.z0 = z0;
            dim3 grid((unsigned)gx, (unsigned)gy, (unsigned)nz);
            if (!tc) gemm_simt<P><<<grid, 256, 0, ex->stream>>>(p, m_base);
            else if (weight_dtype == SDRT_DTYPE_F16) gemm_wmma<P, __half><<<grid, 256, 0, ex->stream>>>(p, m_base);
            else gemm_wmma<P, __nv_bfloat16><<<grid, 256, 0, ex->stream>>>(p, m_base);
        }
    }
    return SDRT_OK;
}

__global__ void cu_bias_rows_kernel(float *c, int64_t batches, int64_t M, int64_t N, int64_t cbs, int64_t crs,
                                    const void *bias, int bdt, int64_t bs) {
    int64_t n_all = batches * M * N;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_all; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t n = i % N, m = (i / N) % M, b = i / (N * M);
        c[b * cbs + m * crs + n] += cu_load(bias, bdt, n * bs);
    }
}

/* cuBLAS SGEMM (F32 weights, a layout cuda_mm_plan_blas maps), bias after.
 * Returns 1 when it ran, 0 when the kernels must, -1 on a cuBLAS error. */
static int cu_mm_cublas(const cuda_exec *ex, const cuda_mm_plan *plan, const cu_mm_prob &p) {
    cuda_blas_call bc;
    const cuda_blas_api *blas = cuda_blas();
    if (!blas || !ex->cublas || p.bdt != SDRT_DTYPE_F32 || !cuda_mm_plan_blas(plan, &bc)) return 0;
    const float zero = 0.0f;
    cublasStatus_t s = blas->sgemm_strided_batched(
        (cublasHandle_t)ex->cublas, bc.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, bc.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
        (int)bc.m, (int)bc.n, (int)bc.k, &p.alpha, (const float *)p.b, (int)bc.lda, bc.stride_a, p.a, (int)bc.ldb,
        bc.stride_b, &zero, p.c, (int)bc.ldc, bc.stride_c, (int)bc.batches);
    if (s != CUBLAS_STATUS_SUCCESS) return -1;
    if (p.bias) {
        int64_t n = bc.batches * bc.n * bc.m;
        cu_bias_rows_kernel<<<cu_blocks(n, 256), 256, 0, ex->stream>>>(p.c, bc.batches, bc.n, bc.m, bc.stride_c, bc.ldc,
                                                                     p.bias, p.bias_dt, p.bias_s);
    }
    return 1;
}

extern "C" sdrt_status cuda_op_matmul(const cuda_exec *ex, const sdrt_op *op) {
    const sdrt_tensor *bias = op->src[2];
    cuda_mm_plan plan;
    sdrt_status st = cuda_mm_plan_make(op, &plan);
    if (st != SDRT_OK) return st;
    if (bias && (cu_numel(bias) != plan.n || bias->shape[bias->ndim - 1] != plan.n)) return SDRT_INVALID_ARGUMENT;
    cu_mm_prob p = cu_mm_setup(op, &plan);
    if (p.M == 0 || p.N == 0 || plan.batches == 0) return SDRT_OK;
    /* K = 0 is an empty sum (C = bias or 0): the F32 kernel writes it. */
    if (p.K == 0) return cu_gemm_launch(ex, p, plan.batches, SDRT_DTYPE_F32);
    int rc = cu_mm_cublas(ex, &plan, p);
    if (rc == 1) return SDRT_OK;
    if (rc < 0) return SDRT_INTERNAL;
    return cu_gemm_launch(ex, p, plan.batches, p.bdt);
}

/* ---- CONV2D ---------------------------------------------------------------------------- */


extern "C" sdrt_status cuda_op_conv2d(const cuda_exec *ex, const sdrt_op *op) {
    cu_conv_prob p;
    int64_t groups = 0;
    sdrt_status st = cu_conv_setup(op, &p, &groups);
    return st != SDRT_OK ? st : cu_gemm_launch(ex, p, groups, p.wdt);
}
