// common.glsl - the binding layout every sdrt Vulkan kernel shares, and the
// tensor descriptor the host writes into the parameter block (vk_params.h
// mirrors it word for word).
//
// Bindings 0..3 are the sources, 4 the destination, 5 the parameter words.
// Every storage buffer is viewed as 32-bit words: f32 elements are one word,
// f16/bf16 elements are half words, so one binding serves every dtype.
#extension GL_EXT_control_flow_attributes : enable

layout(std430, binding = 0) readonly buffer S0 { uint s0[]; };
layout(std430, binding = 1) readonly buffer S1 { uint s1[]; };
layout(std430, binding = 2) readonly buffer S2 { uint s2[]; };
layout(std430, binding = 3) readonly buffer S3 { uint s3[]; };
layout(std430, binding = 4) buffer D0 { uint d0[]; };
layout(std430, binding = 5) readonly buffer P { uint p[]; };

layout(push_constant) uniform PC { uint base; } pc;

// Parameter block, in words from pc.base:
//   0..7 iparams, 8..15 fparams, 16 + 16*t: tensor t (0..3 src, 4 dst),
//   96..127 per-kernel extras.
#define T_OFF(t) (pc.base + 16u + 16u * (t))
#define DT_F32 0u
#define DT_F16 1u
#define DT_BF16 2u

int ip(uint i) { return int(p[pc.base + i]); }
float fp(uint i) { return uintBitsToFloat(p[pc.base + 8u + i]); }
uint xp(uint i) { return p[pc.base + 96u + i]; }
int xpi(uint i) { return int(p[pc.base + 96u + i]); }
float xpf(uint i) { return uintBitsToFloat(p[pc.base + 96u + i]); }

// Descriptor words: 0 element offset, 1 dtype, 2 ndim (always 6 here: the
// host right-aligns shapes), 3 unused, 4..9 shape, 10..15 strides (elements).
uint t_off(uint t) { return p[T_OFF(t)]; }
uint t_dtype(uint t) { return p[T_OFF(t) + 1u]; }
uint t_ne(uint t, uint d) { return p[T_OFF(t) + 4u + d]; }
int t_nb(uint t, uint d) { return int(p[T_OFF(t) + 10u + d]); }

uint word_of(uint t, uint e) {
    switch (t) {
    case 0u: return s0[e];
    case 1u: return s1[e];
    case 2u: return s2[e];
    case 3u: return s3[e];
    default: return d0[e];
    }
}

// Element e (absolute, in elements of the tensor's dtype) of binding t as f32.
float ld(uint t, uint dt, uint e) {
    if (dt == DT_F32) return uintBitsToFloat(word_of(t, e));
    uint w = word_of(t, e >> 1u);
    uint h = (e & 1u) != 0u ? (w >> 16u) : (w & 0xffffu);
    if (dt == DT_F16) return unpackHalf2x16(h).x;
    return uintBitsToFloat(h << 16u);
}

float ld_t(uint t, int rel) { return ld(t, t_dtype(t), uint(int(t_off(t)) + rel)); }

// Stores f32 v as the destination's dtype at absolute element e. Half-word
// stores use two atomics on disjoint bits so neighbours never race.
void st(uint e, float v) {
    uint dt = t_dtype(4u);
    if (dt == DT_F32) { d0[e] = floatBitsToUint(v); return; }
    uint h;
    if (dt == DT_F16) h = packHalf2x16(vec2(v, 0.0)) & 0xffffu;
    else {
        uint u = floatBitsToUint(v);
        // round to nearest even, NaN kept quiet
        h = (u & 0x7fffffffu) > 0x7f800000u ? ((u >> 16u) | 0x40u) : ((u + 0x7fffu + ((u >> 16u) & 1u)) >> 16u);
    }
    uint sh = (e & 1u) != 0u ? 16u : 0u;
    atomicAnd(d0[e >> 1u], ~(0xffffu << sh));
    atomicOr(d0[e >> 1u], h << sh);
}

// Offset (elements, relative) of logical index i of a 6-D shape `shape_t`
// in tensor t's strides.
int rel6(uint shape_t, uint t, uint i) {
    int off = 0;
    [[unroll]] for (int d = 5; d >= 0; d--) {
        uint n = t_ne(shape_t, uint(d));
        uint c = i % n;
        i /= n;
        off += int(c) * t_nb(t, uint(d));
    }
    return off;
}

const float SQRT1_2 = 0.70710678118654752;

// erf with |error| < 1.2e-7 (Numerical Recipes erfc, Chebyshev fit).
float erf_(float x) {
    float z = abs(x);
    float t = 1.0 / (1.0 + 0.5 * z);
    float r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
              t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
              t * (-0.82215223 + t * 0.17087277)))))))));
    return x >= 0.0 ? 1.0 - r : r - 1.0;
}

float gelu(float x) { return 0.5 * x * (1.0 + erf_(x * SQRT1_2)); }
float silu(float x) { return x / (1.0 + exp(-x)); }
