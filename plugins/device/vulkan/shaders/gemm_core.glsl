// gemm_core.glsl - the GEMM both MATMUL and the implicit-GEMM CONV2D run:
// a 64x64 output tile per workgroup of 256 invocations, 4x4 outputs per
// invocation (rows ty+16i, cols tx+16j). On GPUs K runs in steps of 16
// staged through shared memory (conflict-free reads); with GEMM_DIRECT
// (the *_direct kernels, chosen for CPU-type devices such as lavapipe,
// where shared memory is ordinary memory and barriers are costly) each
// invocation reads its operands straight from the buffers. The including shader defines loadA(m,k), loadB(k,n),
// storeC(m,n,v) and sets g_M, g_N, g_K, g_a_kfast, g_b_kfast (which operand
// index runs along memory, to coalesce the tile loads).
//
// GEMM_SUBGROUP (the *_sg kernels, picked by vk_pipeline.c from the
// device's VkPhysicalDeviceSubgroupProperties: shuffle support, a power-of-
// two size in 4..64) shares the A operand through subgroup shuffles: the
// invocations of one subgroup are numbered in subgroup order (gl_SubgroupID,
// gl_SubgroupInvocationID), so each aligned group of C = min(size, 16)
// lanes has the same ty and needs the same four A rows at every k. Each
// lane loads A at its own k (C consecutive k per group: one load where
// there were C) and the group reads the others' values with
// subgroupShuffle. The tiled variant thereby stages only B in shared memory
// (half the shared traffic and the A staging gone); the direct one loads A
// once per C steps of k instead of at every step.
//
// GEMM_PREP (defined by conv2d.comp): the including shader splits its
// address arithmetic - prep_col(j, n) once per output column, prep_k(k)
// once per step of k - and loads with loadA_k(m) and loadB_kj(j), so the
// divisions that turn k into (channel, kernel row, kernel column) and n
// into (output row, column) run once per column / step, not per load (on
// CPU-type devices vector integer division is scalarised: it dominated).
// The tiled variants then stage B with each invocation on one column
// (g_b_kfast must be false) and A, when g_a_kfast, at one k per tile.
layout(local_size_x = 256) in;

#ifdef GEMM_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#endif

#define BM 64u
#define BN 64u
#define BK 16u

#ifndef GEMM_DIRECT
#ifndef GEMM_SUBGROUP
shared float As[BK][BM + 1u];
#endif
shared float Bs[BK][BN + 1u];
#endif

uint g_M, g_N, g_K;
bool g_a_kfast, g_b_kfast;

float loadA(uint m, uint k);
float loadB(uint k, uint n);
void storeC(uint m, uint n, float v);
#ifdef GEMM_PREP
void prep_col(uint j, uint n);
void prep_k(uint k);
float loadA_k(uint m);
float loadB_kj(uint j);
#endif

// This invocation's index in the tile: subgroup order for the subgroup
// variants (so lane groups map to rows whatever the driver's numbering).
uint gemm_tid() {
#ifdef GEMM_SUBGROUP
    return gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID;
#else
    return gl_LocalInvocationID.x;
#endif
}

void gemm_store(uint m0, uint n0, uint tx, uint ty, float acc[4][4]) {
    [[unroll]] for (uint i = 0u; i < 4u; i++) {
        uint gm = m0 + ty + 16u * i;
        if (gm >= g_M) continue;
        [[unroll]] for (uint j = 0u; j < 4u; j++) {
            uint gn = n0 + tx + 16u * j;
            if (gn < g_N) storeC(gm, gn, acc[i][j]);
        }
    }
}

#ifdef GEMM_DIRECT
void gemm(uint m0, uint n0) {
    // out-of-range rows/cols are clamped for the loads and skipped on store
    uint t = gemm_tid();
    uint tx = t % 16u, ty = t / 16u;
    float acc[4][4];
    [[unroll]] for (uint i = 0u; i < 4u; i++)
        [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] = 0.0;
    uint ms[4], ns[4];
    [[unroll]] for (uint i = 0u; i < 4u; i++) { ms[i] = min(m0 + ty + 16u * i, g_M - 1u); ns[i] = min(n0 + tx + 16u * i, g_N - 1u); }
#ifdef GEMM_PREP
    [[unroll]] for (uint j = 0u; j < 4u; j++) prep_col(j, ns[j]);
#define GEMM_LOAD_A(i, k) loadA_k(ms[i])
#define GEMM_LOAD_B(j, k) loadB_kj(j)
#define GEMM_PREP_K(k) prep_k(k)
#else
#define GEMM_LOAD_A(i, k) loadA(ms[i], k)
#define GEMM_LOAD_B(j, k) loadB(k, ns[j])
#define GEMM_PREP_K(k)
#endif
#ifdef GEMM_SUBGROUP
    uint C = min(gl_SubgroupSize, 16u);
    uint lane = gl_SubgroupInvocationID, kl = lane & (C - 1u), g0 = lane - kl;
    for (uint k0 = 0u; k0 < g_K; k0 += C) {
        float ar[4];
        uint ka = min(k0 + kl, g_K - 1u);
        GEMM_PREP_K(ka);
        [[unroll]] for (uint i = 0u; i < 4u; i++) ar[i] = GEMM_LOAD_A(i, ka);
        uint kn = min(C, g_K - k0); // the same in every lane: shuffles stay in uniform control flow
        for (uint kk = 0u; kk < kn; kk++) {
            float a[4], b[4];
            [[unroll]] for (uint i = 0u; i < 4u; i++) a[i] = subgroupShuffle(ar[i], g0 + kk);
            GEMM_PREP_K(k0 + kk);
            [[unroll]] for (uint j = 0u; j < 4u; j++) b[j] = GEMM_LOAD_B(j, k0 + kk);
            [[unroll]] for (uint i = 0u; i < 4u; i++)
                [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
    }
#else
    for (uint k = 0u; k < g_K; k++) {
        float a[4], b[4];
        GEMM_PREP_K(k);
        [[unroll]] for (uint i = 0u; i < 4u; i++) a[i] = GEMM_LOAD_A(i, k);
        [[unroll]] for (uint j = 0u; j < 4u; j++) b[j] = GEMM_LOAD_B(j, k);
        [[unroll]] for (uint i = 0u; i < 4u; i++)
            [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] = fma(a[i], b[j], acc[i][j]);
    }
#endif
    gemm_store(m0, n0, tx, ty, acc);
}
#else
void gemm(uint m0, uint n0) {
    uint t = gemm_tid();
    uint tx = t % 16u, ty = t / 16u;
    float acc[4][4];
    [[unroll]] for (uint i = 0u; i < 4u; i++)
        [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] = 0.0;
#ifdef GEMM_SUBGROUP
    uint C = min(gl_SubgroupSize, 16u);
    uint lane = gl_SubgroupInvocationID, kl = lane & (C - 1u), g0 = lane - kl;
    uint ms[4];
    [[unroll]] for (uint i = 0u; i < 4u; i++) ms[i] = m0 + ty + 16u * i;
#endif
#ifdef GEMM_PREP
    // B staging: this invocation's column is t % BN at every step
    uint bn = t % BN;
    bool bok = n0 + bn < g_N;
    prep_col(0u, min(n0 + bn, g_N - 1u));
#endif
    for (uint k0 = 0u; k0 < g_K; k0 += BK) {
#ifdef GEMM_PREP
#ifndef GEMM_SUBGROUP
        uint ka0 = k0 + t % BK; // the k of every A element this invocation stages when g_a_kfast
        if (g_a_kfast && ka0 < g_K) prep_k(ka0);
        [[unroll]] for (uint l = 0u; l < 4u; l++) {
            uint idx = t + 256u * l, kk, mm;
            if (g_a_kfast) { kk = idx % BK; mm = idx / BK; } else { mm = idx % BM; kk = idx / BM; }
            uint gm = m0 + mm, gk = k0 + kk;
            bool ok = gm < g_M && gk < g_K;
            if (ok && !g_a_kfast) prep_k(gk);
            As[kk][mm] = ok ? loadA_k(gm) : 0.0;
        }
#endif
        [[unroll]] for (uint l = 0u; l < 4u; l++) {
            uint kk = t / BN + (256u / BN) * l, gk = k0 + kk;
            bool ok = bok && gk < g_K;
            if (ok) prep_k(gk);
            Bs[kk][bn] = ok ? loadB_kj(0u) : 0.0;
        }
#else
        [[unroll]] for (uint l = 0u; l < 4u; l++) {
            uint idx = t + 256u * l;
            uint kk, gk;
#ifndef GEMM_SUBGROUP
            uint mm;
            if (g_a_kfast) { kk = idx % BK; mm = idx / BK; } else { mm = idx % BM; kk = idx / BM; }
            uint gm = m0 + mm;
            gk = k0 + kk;
            As[kk][mm] = (gm < g_M && gk < g_K) ? loadA(gm, gk) : 0.0;
#endif
            uint nn;
            if (g_b_kfast) { kk = idx % BK; nn = idx / BK; } else { nn = idx % BN; kk = idx / BN; }
            uint gn = n0 + nn;
            gk = k0 + kk;
            Bs[kk][nn] = (gn < g_N && gk < g_K) ? loadB(gk, gn) : 0.0;
        }
#endif
        barrier();
#ifdef GEMM_SUBGROUP
        // A for k0 .. k0+15 in C-wide steps: lane kl holds k = k0 + c + kl
        [[unroll]] for (uint c = 0u; c < BK; c += C) {
            float ar[4];
            uint ka = k0 + c + kl;
#ifdef GEMM_PREP
            if (ka < g_K) prep_k(ka);
            [[unroll]] for (uint i = 0u; i < 4u; i++) ar[i] = (ms[i] < g_M && ka < g_K) ? loadA_k(ms[i]) : 0.0;
#else
            [[unroll]] for (uint i = 0u; i < 4u; i++) ar[i] = (ms[i] < g_M && ka < g_K) ? loadA(ms[i], ka) : 0.0;
#endif
            for (uint kk = 0u; kk < C; kk++) {
                float a[4], b[4];
                [[unroll]] for (uint i = 0u; i < 4u; i++) a[i] = subgroupShuffle(ar[i], g0 + kk);
                [[unroll]] for (uint j = 0u; j < 4u; j++) b[j] = Bs[c + kk][tx + 16u * j];
                [[unroll]] for (uint i = 0u; i < 4u; i++)
                    [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] = fma(a[i], b[j], acc[i][j]);
            }
        }
#else
        [[unroll]] for (uint kk = 0u; kk < BK; kk++) {
            float a[4], b[4];
            [[unroll]] for (uint i = 0u; i < 4u; i++) a[i] = As[kk][ty + 16u * i];
            [[unroll]] for (uint j = 0u; j < 4u; j++) b[j] = Bs[kk][tx + 16u * j];
            [[unroll]] for (uint i = 0u; i < 4u; i++)
                [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
#endif
        barrier();
    }
    gemm_store(m0, n0, tx, ty, acc);
}
#endif
