/* cuda_attention.cu - ATTENTION as a flash-attention kernel: each block
 * takes 32 query rows of one (batch, head) and streams K and V through
 * shared memory in tiles of 32 keys, keeping a running max and sum per row
 * (online softmax), so no [Lq, Lk] score matrix exists anywhere.
 *
 * Inside a block, each of 8 warps owns 4 query rows. For a key tile, lane j
 * computes the scores of key j against the warp's rows (Q rows broadcast
 * from shared memory, K rows padded by one float so lanes hit different
 * banks), the warp reduces max and sum with shuffles, and then each lane
 * accumulates output columns lane, lane+32, ... of its rows from the V tile.
 * F32 throughout (the op's dtype); head dims up to CUDA_ATTN_MAX_D. */
#include "cuda_common.cuh"

#define FA_BQ 32    /* query rows per block */
#define FA_BK 32    /* keys per tile = warp size */
#define FA_WARPS 8
#define FA_ROWS 4   /* query rows per warp */

struct cu_fa {
    const float *q, *k, *v;
    float *o;
    int64_t qs[4], ks[4], vs[4], os[4];
    int64_t h, lq, lk, d, dv, bh0;
    float scale;
    int causal;
};

static size_t cu_fa_smem(int64_t d, int64_t dv) {
    return sizeof(float) * (size_t)(FA_BK * (d + 1) + FA_BK * dv + FA_BQ * d + FA_WARPS * FA_ROWS * FA_BK);
}

template <int DVL>
__global__ void __launch_bounds__(FA_WARPS * 32) cu_flash_attn(cu_fa a) {
    extern __shared__ float fa_sh[];
    const int64_t D = a.d, DV = a.dv;
    float *Ks = fa_sh;                        /* [FA_BK][D + 1] */
    float *Vs = Ks + FA_BK * (D + 1);         /* [FA_BK][DV] */
    float *Qs = Vs + FA_BK * DV;              /* [FA_BQ][D] */
    float *Ps = Qs + FA_BQ * D;               /* [FA_WARPS][FA_ROWS][FA_BK] */
    int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    int64_t bh = a.bh0 + blockIdx.y, b = bh / a.h, hh = bh % a.h;
    int64_t q0 = (int64_t)blockIdx.x * FA_BQ;
    const float *qb = a.q + b * a.qs[0] + hh * a.qs[1];
    const float *kb = a.k + b * a.ks[0] + hh * a.ks[1];
    const float *vb = a.v + b * a.vs[0] + hh * a.vs[1];
    for (int64_t i = tid; i < FA_BQ * D; i += blockDim.x) {
        int64_t r = i / D, c = i % D;
        Qs[i] = q0 + r < a.lq ? qb[(q0 + r) * a.qs[2] + c * a.qs[3]] * a.scale : 0.0f;
    }
    float o[FA_ROWS][DVL], m[FA_ROWS], l[FA_ROWS];
#pragma unroll
    for (int r = 0; r < FA_ROWS; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int t = 0; t < DVL; t++) o[r][t] = 0.0f;
    }
    int64_t kend = a.lk;
    if (a.causal) {
        int64_t last = q0 + FA_BQ; /* keys <= the block's last row */
        if (last < kend) kend = last;
    }
    float *P = Ps + warp * FA_ROWS * FA_BK;
    for (int64_t j0 = 0; j0 < kend; j0 += FA_BK) {
        __syncthreads(); /* previous tile consumed (and Q staged on the first) */
        for (int64_t i = tid; i < FA_BK * D; i += blockDim.x) {
            int64_t j = i / D, c = i % D;
            Ks[j * (D + 1) + c] = j0 + j < a.lk ? kb[(j0 + j) * a.ks[2] + c * a.ks[3]] : 0.0f;
        }
        for (int64_t i = tid; i < FA_BK * DV; i += blockDim.x) {
            int64_t j = i / DV, c = i % DV;
            Vs[i] = j0 + j < a.lk ? vb[(j0 + j) * a.vs[2] + c * a.vs[3]] : 0.0f;
        }
        __syncthreads();
        int64_t key = j0 + lane;
#pragma unroll
        for (int r = 0; r < FA_ROWS; r++) {
            int row = warp * FA_ROWS + r;
            int64_t qi = q0 + row;
            const float *qr = Qs + row * D, *kr = Ks + lane * (D + 1);
            float s = 0.0f;
            for (int64_t c = 0; c < D; c++) s = fmaf(qr[c], kr[c], s);
            bool valid = key < a.lk && (!a.causal || key <= qi);
            s = valid ? s : -INFINITY;
            float mx = s;
            for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
            float mnew = fmaxf(m[r], mx);
            float p = valid ? expf(s - mnew) : 0.0f;
            float corr = m[r] == -INFINITY ? 0.0f : expf(m[r] - mnew);
            float ps = p;
            for (int off = 16; off > 0; off >>= 1) ps += __shfl_xor_sync(0xffffffffu, ps, off);
            if (mnew != -INFINITY) {
                m[r] = mnew;
                l[r] = l[r] * corr + ps;
#pragma unroll
                for (int t = 0; t < DVL; t++) o[r][t] *= corr;
            }
            P[r * FA_BK + lane] = p;
        }
        __syncwarp();
        for (int j = 0; j < FA_BK; j++) {
            const float *vr = Vs + j * DV;
#pragma unroll
            for (int r = 0; r < FA_ROWS; r++) {
                float pj = P[r * FA_BK + j];
#pragma unroll
                for (int t = 0; t < DVL; t++) {
                    int64_t c = lane + 32 * t;
                    if (c < DV) o[r][t] = fmaf(pj, vr[c], o[r][t]);
                }
            }
        }
        __syncwarp();
    }
    float *ob = a.o + b * a.os[0] + hh * a.os[1];
#pragma unroll
    for (int r = 0; r < FA_ROWS; r++) {
        int64_t qi = q0 + warp * FA_ROWS + r;
        if (qi >= a.lq) continue;
        float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
#pragma unroll
        for (int t = 0; t < DVL; t++) {
            int64_t c = lane + 32 * t;
            if (c < DV) ob[qi * a.os[2] + c * a.os[3]] = o[r][t] * inv;
        }
    }
}

template <int DVL>
static void cu_fa_launch(const cuda_exec *ex, cu_fa a, int64_t bh, size_t smem) {
    unsigned gx = (unsigned)((a.lq + FA_BQ - 1) / FA_BQ);
    for (int64_t b0 = 0; b0 < bh; b0 += 65535) {
        a.bh0 = b0;
        unsigned gy = (unsigned)(bh - b0 < 65535 ? bh - b0 : 65535);
        cu_flash_attn<DVL><<<dim3(gx, gy), FA_WARPS * 32, smem, ex->stream>>>(a);
    }
}

extern "C" void cuda_kernels_init(int device) {
    int optin = 0;
    cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
    cudaFuncSetAttribute(cu_flash_attn<1>, cudaFuncAttributeMaxDynamicSharedMemorySize, optin);
    cudaFuncSetAttribute(cu_flash_attn<2>, cudaFuncAttributeMaxDynamicSharedMemorySize, optin);
    cudaFuncSetAttribute(cu_flash_attn<4>, cudaFuncAttributeMaxDynamicSharedMemorySize, optin);
    cudaFuncSetAttribute(cu_flash_attn<8>, cudaFuncAttributeMaxDynamicSharedMemorySize, optin);
    cudaGetLastError();
}

extern "C" sdrt_status cuda_op_attention(const cuda_exec *ex, const sdrt_op *op) {
    const sdrt_tensor *q = op->src[0], *k = op->src[1], *v = op->src[2], *o = op->dst;
    if (!k || !v || q->ndim != 4 || k->ndim != 4 || v->ndim != 4 || o->ndim != 4) return SDRT_INVALID_ARGUMENT;
    cu_fa a;
    int64_t B = q->shape[0];
    a.h = q->shape[1], a.lq = q->shape[2], a.d = q->shape[3], a.lk = k->shape[2], a.dv = v->shape[3];
    if (k->shape[0] != B || k->shape[1] != a.h || k->shape[3] != a.d) return SDRT_INVALID_ARGUMENT;
    if (v->shape[0] != B || v->shape[1] != a.h || v->shape[2] != a.lk) return SDRT_INVALID_ARGUMENT;
    if (o->shape[0] != B || o->shape[1] != a.h || o->shape[2] != a.lq || o->shape[3] != a.dv)
        return SDRT_INVALID_ARGUMENT;
    int64_t bh = B * a.h;
    if (bh == 0 || a.lq == 0 || a.dv == 0) return SDRT_OK;
    if (a.lk == 0) return SDRT_INVALID_ARGUMENT; /* softmax over nothing */
    if (a.d > CUDA_ATTN_MAX_D || a.dv > CUDA_ATTN_MAX_D) return SDRT_UNSUPPORTED;
    size_t smem = cu_fa_smem(a.d, a.dv);
    if (smem > ex->smem_optin) return SDRT_UNSUPPORTED;
    a.q = (const float *)q->data, a.k = (const float *)k->data, a.v = (const float *)v->data, a.o = (float *)o->data;
    for (int d = 0; d < 4; d++) a.qs[d] = q->strides[d], a.ks[d] = k->strides[d], a.vs[d] = v->strides[d],
                                a.os[d] = o->strides[d];
    a.scale = op->fparams[0] != 0.0f ? op->fparams[0] : (float)(1.0 / sqrt((double)a.d));
    a.causal = op->iparams[0] == 1;
    a.bh0 = 0;
    if (a.dv <= 32) cu_fa_launch<1>(ex, a, bh, smem);
    else if (a.dv <= 64) cu_fa_launch<2>(ex, a, bh, smem);
    else if (a.dv <= 128) cu_fa_launch<4>(ex, a, bh, smem);
    else cu_fa_launch<8>(ex, a, bh, smem);
    return SDRT_OK;
}
