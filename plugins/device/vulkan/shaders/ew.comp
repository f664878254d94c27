#version 450
// ew.comp - element-wise kernels over any strides: COPY/convert, the
// activations, SCALE, ADD/MUL with broadcast (the host gives src1 stride 0
// on broadcast dims), GEGLU (src1 = the gate half of the same tensor),
// LEAKY_RELU and PRELU (src1 = the slopes, stride 0 on every dim but the
// channel's). Each tensor is walked in its own logical order (a reshaping
// COPY has another shape than dst; broadcast src1 has dst's shape); the
// layout ops (pixel shuffle, nearest upsampling) are COPYs over 6-D views.
// xp(0) = mode, xp(1) = element count, xpf(2) = ADD's alpha / the slope.
#include "common.glsl"
layout(local_size_x = 256) in;

#define M_COPY 0u
#define M_GELU 1u
#define M_GELU_TANH 2u
#define M_QUICK_GELU 3u
#define M_SILU 4u
#define M_SCALE 5u
#define M_ADD 6u
#define M_MUL 7u
#define M_GEGLU 8u
#define M_LEAKY_RELU 9u
#define M_PRELU 10u

void main() {
    uint n = xp(1);
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 256u;
    if (i >= n) return;
    uint mode = xp(0);
    float x = ld_t(0u, rel6(0u, 0u, i));
    float y;
    switch (mode) {
    case M_COPY: y = x; break;
    case M_GELU: y = gelu(x); break;
    case M_GELU_TANH: {
        float u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
        y = 0.5 * x * (1.0 + tanh(clamp(u, -15.0, 15.0)));
        break;
    }
    case M_QUICK_GELU: y = x / (1.0 + exp(-1.702 * x)); break;
    case M_SILU: y = silu(x); break;
    case M_SCALE: y = x * fp(0u) + fp(1u); break;
    case M_ADD: y = x + xpf(2) * ld_t(1u, rel6(1u, 1u, i)); break;
    case M_MUL: y = x * ld_t(1u, rel6(1u, 1u, i)); break;
    case M_LEAKY_RELU: y = x >= 0.0 ? x : x * xpf(2); break;
    case M_PRELU: y = x >= 0.0 ? x : x * ld_t(1u, rel6(1u, 1u, i)); break;
    default: y = x * gelu(ld_t(1u, rel6(1u, 1u, i))); break;
    }
    st(t_off(4u) + uint(rel6(4u, 4u, i)), y);
}
