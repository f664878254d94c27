/* cuda_common.cuh - device-side helpers shared by the kernel files:
 * strided N-d indexing (dims coalesced on the host as the CPU backend's
 * iterator does), dtype loads/stores, block reductions, launch sizing. */
#ifndef SDRT_CUDA_COMMON_CUH
#define SDRT_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "cuda_internal.h"

#define CU_MAX_OPS 3

/* Index and dtype helpers run on the host too: tests/cuda checks the
 * kernels' index arithmetic on the CPU (cuda-index). */
#define CU_HD __host__ __device__ __forceinline__

/* Up to three operands walked over one shape, innermost dim last. */
struct cu_iter {
    int nd;
    int64_t shape[SDRT_MAX_DIMS];
    int64_t st[CU_MAX_OPS][SDRT_MAX_DIMS];
};

/* Drops size-1 dims and merges neighbours every operand steps through as
 * one, so contiguous tensors become one dim. */
static inline cu_iter cu_iter_make(int ndim, const int64_t *shape, int nops, const int64_t *const *strides) {
    cu_iter it;
    it.nd = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 1) continue;
        int n = it.nd;
        bool merge = n > 0;
        for (int o = 0; o < nops && merge; o++) merge = it.st[o][n - 1] == strides[o][d] * shape[d];
        if (merge) {
            it.shape[n - 1] *= shape[d];
            for (int o = 0; o < nops; o++) it.st[o][n - 1] = strides[o][d];
            continue;
        }
        it.shape[n] = shape[d];
        for (int o = 0; o < nops; o++) it.st[o][n] = strides[o][d];
        it.nd++;
    }
    if (it.nd == 0) {
        it.nd = 1;
        it.shape[0] = 1;
        for (int o = 0; o < nops; o++) it.st[o][0] = 0;
    }
    return it;
}

template <int NOPS>
CU_HD void cu_offsets(const cu_iter &it, int64_t i, int64_t *off) {
    for (int o = 0; o < NOPS; o++) off[o] = 0;
    for (int d = it.nd - 1; d >= 0; d--) {
        int64_t n = it.shape[d], idx = i % n;
        i /= n;
        for (int o = 0; o < NOPS; o++) off[o] += idx * it.st[o][d];
    }
}

CU_HD float cu_load(const void *p, int dt, int64_t i) {
    if (dt == SDRT_DTYPE_F16) return __half2float(((const __half *)p)[i]);
    if (dt == SDRT_DTYPE_BF16) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    return ((const float *)p)[i];
}

CU_HD void cu_store(void *p, int dt, int64_t i, float v) {
    if (dt == SDRT_DTYPE_F16) ((__half *)p)[i] = __float2half_rn(v);
    else if (dt == SDRT_DTYPE_BF16) ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
    else ((float *)p)[i] = v;
}

static inline int64_t cu_numel(const sdrt_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

static inline bool cu_same_shape(const sdrt_tensor *a, const sdrt_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

static inline bool cu_contiguous(const sdrt_tensor *t) {
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->strides[d] != expect) return false;
        expect *= t->shape[d];
    }
    return true;
}

static inline void cu_contiguous_strides(int ndim, const int64_t *shape, int64_t *out) {
    int64_t s = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        out[d] = s;
        s *= shape[d];
    }
}

/* Grid for a grid-stride loop over n elements. */
static inline unsigned cu_blocks(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b > 65535 * 8 ? 65535 * 8 : (b < 1 ? 1 : b));
}

/* Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread
 * gets the result. `sh` holds 32 values. */
template <typename T>
__device__ __forceinline__ T cu_block_sum(T v, T *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    T r = lane < nw ? sh[lane] : T(0);
    for (int o = 16; o > 0; o >>= 1) r += __shfl_xor_sync(0xffffffffu, r, o);
    return r;
}

__device__ __forceinline__ float cu_block_max(float v, float *sh) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    float r = lane < nw ? sh[lane] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) r = fmaxf(r, __shfl_xor_sync(0xffffffffu, r, o));
    return r;
}

/* Offset of row r of t seen as [rows, last dim]. */
struct cu_rows {
    int nd; /* leading dims */
    int64_t shape[SDRT_MAX_DIMS];
    int64_t st[SDRT_MAX_DIMS];
};

static inline cu_rows cu_rows_make(const sdrt_tensor *t) {
    cu_rows r;
    r.nd = t->ndim > 0 ? t->ndim - 1 : 0;
    for (int d = 0; d < r.nd; d++) {
        r.shape[d] = t->shape[d];
        r.st[d] = t->strides[d];
    }
    return r;
}

CU_HD int64_t cu_row_offset(const cu_rows &r, int64_t row) {
    int64_t off = 0;
    for (int d = r.nd - 1; d >= 0; d--) {
        off += (row % r.shape[d]) * r.st[d];
        row /= r.shape[d];
    }
    return off;
}

#endif /* SDRT_CUDA_COMMON_CUH */
