// gemm_core.glsl - the GEMM both MATMUL and the implicit-GEMM CONV2D run:
// a 64x64 output tile per workgroup of 256 invocations, 4x4 outputs per
// invocation (rows ty+16i, cols tx+16j). On GPUs K runs in steps of 16
// staged through shared memory (conflict-free reads); with GEMM_DIRECT
// (the *_direct kernels, chosen for CPU-type devices such as lavapipe,
// where shared memory is ordinary memory and barriers are costly) each
// invocation reads its operands straight from the buffers. The including shader defines loadA(m,k), loadB(k,n),
// storeC(m,n,v) and sets g_M, g_N, g_K, g_a_kfast, g_b_kfast (which operand
// index runs along memory, to coalesce the tile loads).
layout(local_size_x = 256) in;

#define BM 64u
#define BN 64u
#define BK 16u

#ifndef GEMM_DIRECT
shared float As[BK][BM + 1u];
shared float Bs[BK][BN + 1u];
#endif

uint g_M, g_N, g_K;
bool g_a_kfast, g_b_kfast;

float loadA(uint m, uint k);
float loadB(uint k, uint n);
void storeC(uint m, uint n, float v);

#ifdef GEMM_DIRECT
void gemm(uint m0, uint n0) {
    // out-of-range rows/cols are clamped for the loads and skipped on store
    uint t = gl_LocalInvocationID.x;
    uint tx = t % 16u, ty = t / 16u;
    float acc[4][4];
    [[unroll]] for (uint i = 0u; i < 4u; i++)
        [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] = 0.0;
    uint ms[4], ns[4];
    [[unroll]] for (uint i = 0u; i < 4u; i++) { ms[i] = min(m0 + ty + 16u * i, g_M - 1u); ns[i] = min(n0 + tx + 16u * i, g_N - 1u); }
    for (uint k = 0u; k < g_K; k++) {
        float a[4], b[4];
        [[unroll]] for (uint i = 0u; i < 4u; i++) a[i] = loadA(ms[i], k);
        [[unroll]] for (uint j = 0u; j < 4u; j++) b[j] = loadB(k, ns[j]);
        [[unroll]] for (uint i = 0u; i < 4u; i++)
            [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] = fma(a[i], b[j], acc[i][j]);
    }
    [[unroll]] for (uint i = 0u; i < 4u; i++) {
        uint gm = m0 + ty + 16u * i;
        if (gm >= g_M) continue;
        [[unroll]] for (uint j = 0u; j < 4u; j++) {
            uint gn = n0 + tx + 16u * j;
            if (gn < g_N) storeC(gm, gn, acc[i][j]);
        }
    }
}
#else
void gemm(uint m0, uint n0) {
    uint t = gl_LocalInvocationID.x;
    uint tx = t % 16u, ty = t / 16u;
    float acc[4][4];
    [[unroll]] for (uint i = 0u; i < 4u; i++)
        [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] = 0.0;
    for (uint k0 = 0u; k0 < g_K; k0 += BK) {
        [[unroll]] for (uint l = 0u; l < 4u; l++) {
            uint idx = t + 256u * l;
            uint kk, mm;
            if (g_a_kfast) { kk = idx % BK; mm = idx / BK; } else { mm = idx % BM; kk = idx / BM; }
            uint gm = m0 + mm, gk = k0 + kk;
            As[kk][mm] = (gm < g_M && gk < g_K) ? loadA(gm, gk) : 0.0;
            uint nn;
            if (g_b_kfast) { kk = idx % BK; nn = idx / BK; } else { nn = idx % BN; kk = idx / BN; }
            uint gn = n0 + nn;
            gk = k0 + kk;
            Bs[kk][nn] = (gn < g_N && gk < g_K) ? loadB(gk, gn) : 0.0;
        }
        barrier();
        [[unroll]] for (uint kk = 0u; kk < BK; kk++) {
            float a[4], b[4];
            [[unroll]] for (uint i = 0u; i < 4u; i++) a[i] = As[kk][ty + 16u * i];
            [[unroll]] for (uint j = 0u; j < 4u; j++) b[j] = Bs[kk][tx + 16u * j];
            [[unroll]] for (uint i = 0u; i < 4u; i++)
                [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
        barrier();
    }
    [[unroll]] for (uint i = 0u; i < 4u; i++) {
        uint gm = m0 + ty + 16u * i;
        if (gm >= g_M) continue;
        [[unroll]] for (uint j = 0u; j < 4u; j++) {
            uint gn = n0 + tx + 16u * j;
            if (gn < g_N) storeC(gm, gn, acc[i][j]);
        }
    }
}
#endif
