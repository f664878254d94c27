#version 450
// timestep.comp - TIMESTEP_EMB as diffusers get_timestep_embedding: one
// invocation per (n, i < half) writing the sin and cos entries.
#include "common.glsl"
layout(local_size_x = 64) in;

void main() {
    uint dim = uint(ip(0u));
    uint half_ = dim / 2u;
    uint i = gl_GlobalInvocationID.x, n = gl_GlobalInvocationID.y;
    int ys = t_nb(4u, 5u);
    int yo = int(n) * t_nb(4u, 4u);
    if (i == half_ && (dim & 1u) != 0u) st(t_off(4u) + uint(yo + int(dim - 1u) * ys), 0.0);
    if (i >= half_) return;
    bool flip = ip(1u) == 1;
    float shift = fp(0u);
    float max_period = fp(1u) != 0.0 ? fp(1u) : 10000.0;
    float scale = fp(2u) != 0.0 ? fp(2u) : 1.0;
    float ts = ld_t(0u, int(n) * t_nb(0u, 5u));
    float freq = exp(-log(max_period) * float(i) / (float(half_) - shift));
    float a = scale * (ts * freq);
    uint si = flip ? half_ + i : i, ci = flip ? i : half_ + i;
    st(t_off(4u) + uint(yo + int(si) * ys), sin(a));
    st(t_off(4u) + uint(yo + int(ci) * ys), cos(a));
}
