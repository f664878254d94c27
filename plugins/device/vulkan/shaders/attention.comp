#version 450
// attention.comp - fused flash-style ATTENTION: one workgroup per (batch,
// head, 8 query rows); keys in tiles of 128 with an online softmax (running
// max and sum per row, the output rescaled when the max grows), so only an
// 8x128 score tile ever exists. Q rows live in shared memory, each
// invocation scores two keys of a tile and owns output columns t, t+64, ...
// (D, Dv <= 512, checked by the host). 128-key tiles halve the barriers per
// key against 64 (lavapipe: 1.2-1.6x; barriers are coroutine switches there). Tensors are 4-D [B,H,L,D], right-aligned into dims 2..5.
// Extras: 0 Lq, 1 Lk, 2 D, 3 Dv, 4 causal, 5 scale bits.
//
// ATTN_SUBGROUP (attention_sg, picked by vk_pipeline.c when the device has
// subgroup arithmetic): the softmax step runs on all 64 invocations
// instead of 8 - subgroup g owns query rows g, g + (number of subgroups),
// ..., each lane the scores lane, lane + size, ... of a row, the row's max
// and sum combined with subgroupMax / subgroupAdd - and the rows' running
// max and sum stay in those lanes' registers, not shared memory. Written
// for any subgroup size (drivers may compile another size than the one
// they report).
#ifdef ATTN_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#include "common.glsl"
layout(local_size_x = 64) in;

#define BR 8u
#define BC 128u
#define DMAX 512u

shared float Qs[BR][DMAX];
shared float S[BR][BC];
shared float corr[BR];
shared float mrow[BR];
shared float lrow[BR];

void main() {
    uint Lq = xp(0), Lk = xp(1), D = xp(2), Dv = xp(3);
    bool causal = xp(4) != 0u;
    float scale = xpf(5);
    uint t = gl_LocalInvocationID.x;
    uint q0 = gl_WorkGroupID.x * BR, h = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
    int qo = int(t_off(0u)) + int(b) * t_nb(0u, 2u) + int(h) * t_nb(0u, 3u);
    int ko = int(t_off(1u)) + int(b) * t_nb(1u, 2u) + int(h) * t_nb(1u, 3u);
    int vo = int(t_off(2u)) + int(b) * t_nb(2u, 2u) + int(h) * t_nb(2u, 3u);
    int oo = int(t_off(4u)) + int(b) * t_nb(4u, 2u) + int(h) * t_nb(4u, 3u);
    int qs = t_nb(0u, 4u), qd = t_nb(0u, 5u), ks = t_nb(1u, 4u), kd = t_nb(1u, 5u);
    int vs = t_nb(2u, 4u), vd = t_nb(2u, 5u), os = t_nb(4u, 4u), od = t_nb(4u, 5u);
    uint qdt = t_dtype(0u), kdt = t_dtype(1u), vdt = t_dtype(2u);
    for (uint i = t; i < BR * D; i += 64u) {
        uint r = i / D, d = i % D;
        Qs[r][d] = q0 + r < Lq ? ld(0u, qdt, uint(qo + int(q0 + r) * qs + int(d) * qd)) * scale : 0.0;
    }
#ifdef ATTN_SUBGROUP
    uint sgs = gl_SubgroupSize, lane = gl_SubgroupInvocationID, nsg = gl_NumSubgroups;
    float m_run[BR], l_run[BR]; // [q]: row gl_SubgroupID + q * nsg
    [[unroll]] for (uint q = 0u; q < BR; q++) { m_run[q] = -1e30; l_run[q] = 0.0; }
#else
    if (t < BR) { mrow[t] = -1e30; lrow[t] = 0.0; }
#endif
    float O[BR][DMAX / 64u];
    [[unroll]] for (uint r = 0u; r < BR; r++)
        [[unroll]] for (uint c = 0u; c < DMAX / 64u; c++) O[r][c] = 0.0;
    barrier();
    uint kend = Lk;
    if (causal) kend = min(Lk, q0 + BR); // keys past the last row's diagonal never count
    for (uint k0 = 0u; k0 < kend; k0 += BC) {
        // 1. scores of this tile: invocation t takes keys k0 + t and k0 + 64 + t
        //    for all rows (two keys per invocation: half the barriers per key)
        [[unroll]] for (uint h = 0u; h < BC / 64u; h++) {
            uint key = k0 + t + 64u * h;
            float acc[BR];
            [[unroll]] for (uint r = 0u; r < BR; r++) acc[r] = 0.0;
            if (key < Lk) {
                int kb = ko + int(key) * ks;
                for (uint d = 0u; d < D; d++) {
                    float kv = ld(1u, kdt, uint(kb + int(d) * kd));
                    [[unroll]] for (uint r = 0u; r < BR; r++) acc[r] = fma(Qs[r][d], kv, acc[r]);
                }
            }
            [[unroll]] for (uint r = 0u; r < BR; r++) {
                bool valid = key < Lk && (!causal || key <= q0 + r);
                S[r][t + 64u * h] = valid ? acc[r] : -1e30;
            }
        }
        barrier();
        // 2. online softmax update per row
#ifdef ATTN_SUBGROUP
        for (uint r = gl_SubgroupID, q = 0u; r < BR; r += nsg, q++) {
            float mx = m_run[q];
            for (uint j = lane; j < BC; j += sgs) mx = max(mx, S[r][j]);
            mx = subgroupMax(mx);
            float cf = exp(m_run[q] - mx), sum = 0.0;
            for (uint j = lane; j < BC; j += sgs) {
                float pj = S[r][j] <= -1e29 ? 0.0 : exp(S[r][j] - mx);
                S[r][j] = pj;
                sum += pj;
            }
            l_run[q] = l_run[q] * cf + subgroupAdd(sum);
            m_run[q] = mx;
            if (lane == 0u) corr[r] = cf;
        }
#else
        if (t < BR) {
            float mx = mrow[t];
            for (uint j = 0u; j < BC; j++) mx = max(mx, S[t][j]);
            float cf = exp(mrow[t] - mx), sum = 0.0;
            for (uint j = 0u; j < BC; j++) {
                float pj = S[t][j] <= -1e29 ? 0.0 : exp(S[t][j] - mx);
                S[t][j] = pj;
                sum += pj;
            }
            lrow[t] = lrow[t] * cf + sum;
            mrow[t] = mx;
            corr[t] = cf;
        }
#endif
        barrier();
        // 3. O = O * corr + P V for this invocation's columns
        uint jn = min(BC, Lk - k0);
        [[unroll]] for (uint c = 0u; c < DMAX / 64u; c++) {
            uint dv = t + 64u * c;
            if (dv >= Dv) break;
            float o[BR];
            [[unroll]] for (uint r = 0u; r < BR; r++) o[r] = O[r][c] * corr[r];
            for (uint j = 0u; j < jn; j++) {
                float v = ld(2u, vdt, uint(vo + int(k0 + j) * vs + int(dv) * vd));
                [[unroll]] for (uint r = 0u; r < BR; r++) o[r] = fma(S[r][j], v, o[r]);
            }
            [[unroll]] for (uint r = 0u; r < BR; r++) O[r][c] = o[r];
        }
        barrier();
    }
#ifdef ATTN_SUBGROUP
    if (lane == 0u)
        for (uint r = gl_SubgroupID, q = 0u; r < BR; r += nsg, q++) lrow[r] = l_run[q];
    barrier();
#endif
    [[unroll]] for (uint c = 0u; c < DMAX / 64u; c++) {
        uint dv = t + 64u * c;
        if (dv >= Dv) break;
        [[unroll]] for (uint r = 0u; r < BR; r++) {
            if (q0 + r >= Lq) continue;
            st(uint(oo + int(q0 + r) * os + int(dv) * od), O[r][c] / lrow[r]);
        }
    }
}
