/* conf_cases.c - the op cases of the conformance test: every op with the
 * dtypes and layouts the op set allows (f32 activations, f16/bf16 weights
 * and parameters, permuted views, padded rows, broadcast, bias or none,
 * causal attention, groups, strides, dilation, padding), on fresh random
 * shapes chosen from the seed. A device runs the cases it claims in
 * supports_op; the others are counted as not claimed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "harness.h"
#include "sdrt/half.h"
#include "sdrt/quant.h"

static uint64_t g_rng;

uint64_t conf_rand_u64(void) {
    if (!g_rng) g_rng = test_seed() * 0x9E3779B97F4A7C15ull | 1;
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

int conf_rand_int(int lo, int hi) { return lo + (int)(conf_rand_u64() % (uint64_t)(hi - lo + 1)); }

float conf_rand_float(float lo, float hi) {
    return lo + (hi - lo) * (float)(conf_rand_u64() >> 40) / (float)(1 << 24);
}

/* Quantized weights (GGUF block formats): random blocks whose values the
 * reference takes as their dequantisation. The types sdrt quantises get
 * quantised random floats; the K types (no quantiser here) random bytes
 * with small finite f16 scales at their ggml offsets. */
void conf_quant_fill(sdrt_dtype dt, int64_t n, float *vals, unsigned char *bytes) {
    if (sdrt_quant_can_write(dt)) {
        for (int64_t i = 0; i < n; i++) vals[i] = conf_rand_float(-1.0f, 1.0f);
        sdrt_quant_row(dt, vals, bytes, n);
    } else {
        size_t bb = sdrt_dtype_block_bytes(dt), nb = (size_t)(n / sdrt_dtype_block_elems(dt));
        static const int off[][2] = {[SDRT_DTYPE_Q2_K] = {80, 82}, [SDRT_DTYPE_Q3_K] = {108, 108},
                                     [SDRT_DTYPE_Q4_K] = {0, 2}, [SDRT_DTYPE_Q5_K] = {0, 2},
                                     [SDRT_DTYPE_Q6_K] = {208, 208}};
        for (size_t i = 0; i < nb * bb; i++) bytes[i] = (unsigned char)conf_rand_u64();
        for (size_t b = 0; b < nb; b++)
            for (int f = 0; f < 2; f++) {
                uint16_t h = sdrt_f32_to_f16(conf_rand_float(-0.02f, 0.02f));
                memcpy(bytes + b * bb + (size_t)off[dt][f], &h, 2);
            }
    }
    sdrt_dequant_row(dt, bytes, vals, n);
}

size_t conf_dtype_size(sdrt_dtype dt) {
    switch (dt) {
    case SDRT_DTYPE_F32: return 4;
    case SDRT_DTYPE_F16: return 2;
    case SDRT_DTYPE_BF16: return 2;
    default: return 0;
    }
}

float conf_quantize(sdrt_dtype dt, float v) {
    if (dt == SDRT_DTYPE_F16) return sdrt_f16_to_f32(sdrt_f32_to_f16(v));
    if (dt == SDRT_DTYPE_BF16) return sdrt_bf16_to_f32(sdrt_f32_to_bf16(v));
    return v;
}

conf_tensor conf_t(sdrt_dtype dtype, int ndim, const int64_t *shape) {
    conf_tensor t = {.used = 1, .dtype = dtype, .ndim = ndim, .lo = -1.0f, .hi = 1.0f};
    for (int d = 0; d < SDRT_MAX_DIMS; d++) {
        t.shape[d] = d < ndim ? shape[d] : 1;
        t.perm[d] = d;
    }
    return t;
}

int64_t conf_numel(const conf_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

int64_t conf_strides(const conf_tensor *t, int64_t *strides) {
    for (int d = 0; d < SDRT_MAX_DIMS; d++) strides[d] = 0;
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        int d = t->perm[i];
        strides[d] = s;
        s *= t->shape[d];
        if (i == t->ndim - 1) s += t->pad * (t->shape[d] > 0);
    }
    if (t->ndim == 0) return 1;
    /* The span: last element's offset + 1. */
    int64_t last = 0;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] > 0) last += (t->shape[d] - 1) * strides[d];
    return conf_numel(t) ? last + 1 : 0;
}

/* ---- building cases ---------------------------------------------------------- */

typedef struct conf_list {
    conf_case *items;
    size_t count, cap;
} conf_list;

static conf_case *conf_add(conf_list *l, sdrt_op_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#include <stdarg.h>
static conf_case *conf_add(conf_list *l, sdrt_op_kind kind, const char *fmt, ...) {
    if (l->count == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->items = realloc(l->items, l->cap * sizeof *l->items);
        if (!l->items) abort();
    }
    conf_case *c = &l->items[l->count++];
    memset(c, 0, sizeof *c);
    c->kind = kind;
    static int per_kind[SDRT_OP_COUNT_];
    c->async = per_kind[kind]++ & 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->name, sizeof c->name, fmt, ap);
    va_end(ap);
    return c;
}

static void conf_perm(conf_tensor *t, const int *perm) {
    for (int d = 0; d < t->ndim; d++) t->perm[d] = perm[d];
}

/* A random non-identity storage order of t's dims. */
static void conf_shuffle(conf_tensor *t) {
    if (t->ndim < 2) return;
    for (int tries = 0; tries < 8; tries++) {
        for (int i = t->ndim - 1; i > 0; i--) {
            int j = conf_rand_int(0, i), tmp = t->perm[i];
            t->perm[i] = t->perm[j];
            t->perm[j] = tmp;
        }
        for (int d = 0; d < t->ndim; d++)
            if (t->perm[d] != d) return;
    }
    int tmp = t->perm[0];
    t->perm[0] = t->perm[1];
    t->perm[1] = tmp;
}

static const char *dt_name(sdrt_dtype dt) {
    const char *q = sdrt_dtype_ggml_name(dt);
    return q ? q : "?";
}

static const sdrt_dtype k_wdt[3] = {SDRT_DTYPE_F32, SDRT_DTYPE_F16, SDRT_DTYPE_BF16};

/* Layout variants applied to a case's activations. */
enum { LAYOUT_CONTIG, LAYOUT_PERM_SRC, LAYOUT_PAD, LAYOUT_PERM_DST, LAYOUT_COUNT };
static const char *k_layout[LAYOUT_COUNT] = {"contig", "perm-src", "pad", "perm-dst"};

static void conf_layout(conf_case *c, int layout) {
    if (layout == LAYOUT_PERM_SRC) conf_shuffle(&c->src[0]);
    if (layout == LAYOUT_PAD) {
        c->src[0].pad = conf_rand_int(1, 5);
        c->dst.pad = conf_rand_int(1, 5);
    }
    if (layout == LAYOUT_PERM_DST) conf_shuffle(&c->dst);
}

/* ---- per op --------------------------------------------------------------------- */

static void cases_matmul(conf_list *l) {
    for (int v = 0; v < 12; v++) {
        int trans = v & 1, batch = (v >> 1) % 3; /* 0: 2-D, 1: 3-D shared B, 2: 4-D batched B */
        sdrt_dtype wdt = k_wdt[v % 3], bdt = k_wdt[(v / 3) % 3];
        int bias = v % 4 != 3, layout = v % LAYOUT_COUNT;
        int64_t m = conf_rand_int(1, 70), n = conf_rand_int(1, 90), k = conf_rand_int(1, 130);
        int64_t b0 = conf_rand_int(1, 3), b1 = conf_rand_int(1, 4);
        conf_case *c = conf_add(l, SDRT_OP_MATMUL, "matmul m%lld n%lld k%lld %s w=%s bias=%s %s alpha",
                                (long long)m, (long long)n, (long long)k, batch == 0 ? "2d" : batch == 1 ? "3d-sharedB" : "4d",
                                dt_name(wdt), bias ? dt_name(bdt) : "none", k_layout[layout]);
        int64_t as[4], bs[4], ds[4];
        int an = 0, bn = 0;
        if (batch == 2) { as[an++] = b0; as[an++] = b1; bs[bn++] = b0; bs[bn++] = 1; }
        if (batch == 1) as[an++] = b1;
        as[an++] = m; as[an++] = k;
        bs[bn++] = trans ? n : k;
        bs[bn++] = trans ? k : n;
        int dn = an;
        memcpy(ds, as, sizeof ds);
        ds[dn - 1] = n;
        c->src[0] = conf_t(SDRT_DTYPE_F32, an, as);
        c->src[1] = conf_t(wdt, bn, bs);
        if (v % 5 == 4) conf_shuffle(&c->src[1]);
        if (bias) {
            int64_t bsh[1] = {n};
            c->src[2] = conf_t(bdt, 1, bsh);
        }
        c->dst = conf_t(SDRT_DTYPE_F32, dn, ds);
        c->ip[0] = trans;
        c->fp[0] = v % 3 == 2 ? 0.5f : 0.0f;
        conf_layout(c, layout);
    }
}

static void cases_conv2d(conf_list *l) {
    for (int v = 0; v < 12; v++) {
        int64_t groups = v % 4 == 1 ? 2 : 1, k = v % 3 == 0 ? 1 : 3, stride = v % 5 == 2 ? 2 : 1;
        int64_t pad = k == 3 && v % 2 == 0 ? 1 : 0, dil = v == 7 ? 2 : 1;
        int64_t n = conf_rand_int(1, 2), ci = groups * conf_rand_int(1, 9), co = groups * conf_rand_int(1, 12);
        int64_t h = conf_rand_int(3, 17), w = conf_rand_int(3, 17);
        int64_t ho = (h + 2 * pad - dil * (k - 1) - 1) / stride + 1, wo = (w + 2 * pad - dil * (k - 1) - 1) / stride + 1;
        if (ho <= 0 || wo <= 0) continue;
        sdrt_dtype wdt = k_wdt[v % 3], bdt = k_wdt[(v + 1) % 3];
        int bias = v % 4 != 2, layout = v % LAYOUT_COUNT;
        conf_case *c = conf_add(l, SDRT_OP_CONV2D,
                                "conv2d n%lld c%lld o%lld %lldx%lld k%lld s%lld p%lld d%lld g%lld w=%s bias=%s %s",
                                (long long)n, (long long)ci, (long long)co, (long long)h, (long long)w, (long long)k,
                                (long long)stride, (long long)pad, (long long)dil, (long long)groups, dt_name(wdt),
                                bias ? dt_name(bdt) : "none", k_layout[layout]);
        int64_t xs[4] = {n, ci, h, w}, ws[4] = {co, ci / groups, k, k}, ys[4] = {n, co, ho, wo}, bs[1] = {co};
        c->src[0] = conf_t(SDRT_DTYPE_F32, 4, xs);
        c->src[1] = conf_t(wdt, 4, ws);
        if (bias) c->src[2] = conf_t(bdt, 1, bs);
        c->dst = conf_t(SDRT_DTYPE_F32, 4, ys);
        c->ip[0] = c->ip[1] = (int32_t)stride;
        c->ip[2] = c->ip[3] = (int32_t)pad;
        c->ip[4] = c->ip[5] = (int32_t)dil;
        c->ip[6] = (int32_t)groups;
        if (layout == LAYOUT_PERM_SRC) {
            static const int nhwc[4] = {0, 2, 3, 1};
            conf_perm(&c->src[0], nhwc);
        } else {
            conf_layout(c, layout);
        }
    }
}

static void cases_norms(conf_list *l) {
    for (int v = 0; v < 10; v++) {
        int64_t groups = conf_rand_int(1, 4), n = conf_rand_int(1, 2), ch = groups * conf_rand_int(1, 6);
        int64_t h = conf_rand_int(1, 9), w = conf_rand_int(1, 11);
        int spatial3 = v % 3 == 2, params = v % 5 != 4, layout = v % LAYOUT_COUNT;
        sdrt_dtype pdt = k_wdt[v % 3];
        conf_case *c = conf_add(l, SDRT_OP_GROUP_NORM, "group_norm n%lld c%lld g%lld %s silu=%d params=%s %s",
                                (long long)n, (long long)ch, (long long)groups, spatial3 ? "3d" : "4d", v & 1,
                                params ? dt_name(pdt) : "none", k_layout[layout]);
        int64_t xs[4] = {n, ch, h, w}, ps[1] = {ch};
        if (spatial3) xs[2] = h * w;
        c->src[0] = conf_t(SDRT_DTYPE_F32, spatial3 ? 3 : 4, xs);
        c->src[0].lo = -2.0f, c->src[0].hi = 3.0f;
        if (params) {
            c->src[1] = conf_t(pdt, 1, ps);
            c->src[2] = conf_t(pdt, 1, ps);
        }
        c->dst = conf_t(SDRT_DTYPE_F32, c->src[0].ndim, xs);
        c->ip[0] = (int32_t)groups;
        c->ip[1] = v & 1;
        c->fp[0] = v % 2 ? 1e-6f : 0.0f;
        conf_layout(c, layout);
    }
    for (int v = 0; v < 10; v++) {
        int64_t rows = conf_rand_int(1, 20), d = conf_rand_int(1, 200), b = conf_rand_int(1, 3);
        int params = v % 4, layout = v % LAYOUT_COUNT; /* 0 none, 1 gamma, 2-3 gamma+beta */
        sdrt_dtype pdt = k_wdt[v % 3];
        conf_case *c = conf_add(l, SDRT_OP_LAYER_NORM, "layer_norm %lldx%lldx%lld params=%d %s %s", (long long)b,
                                (long long)rows, (long long)d, params, dt_name(pdt), k_layout[layout]);
        int64_t xs[3] = {b, rows, d}, ps[1] = {d};
        c->src[0] = conf_t(SDRT_DTYPE_F32, 3, xs);
        c->src[0].lo = -1.0f, c->src[0].hi = 2.0f;
        if (params >= 1) c->src[1] = conf_t(pdt, 1, ps);
        if (params >= 2) c->src[2] = conf_t(pdt, 1, ps);
        c->dst = conf_t(SDRT_DTYPE_F32, 3, xs);
        c->fp[0] = v % 2 ? 1e-6f : 0.0f;
        conf_layout(c, layout);
    }
}

static void cases_softmax_attention(conf_list *l) {
    for (int v = 0; v < 6; v++) {
        int64_t rows = conf_rand_int(1, 30), n = conf_rand_int(1, 300), b = conf_rand_int(1, 3);
        int layout = v % LAYOUT_COUNT;
        conf_case *c = conf_add(l, SDRT_OP_SOFTMAX, "softmax %lldx%lldx%lld %s", (long long)b, (long long)rows,
                                (long long)n, k_layout[layout]);
        int64_t xs[3] = {b, rows, n};
        c->src[0] = conf_t(SDRT_DTYPE_F32, 3, xs);
        c->src[0].lo = -6.0f, c->src[0].hi = 6.0f;
        c->dst = conf_t(SDRT_DTYPE_F32, 3, xs);
        c->fp[0] = v % 2 ? 0.37f : 0.0f;
        conf_layout(c, layout);
    }
    for (int v = 0; v < 10; v++) {
        int causal = v % 3 == 1, blhd = v % 2 == 1;
        int64_t b = conf_rand_int(1, 2), h = conf_rand_int(1, 4), lq = conf_rand_int(1, 80);
        int64_t lk = causal ? lq : conf_rand_int(1, 90), d = conf_rand_int(1, 72), dv = v % 4 == 3 ? conf_rand_int(1, 40) : d;
        conf_case *c = conf_add(l, SDRT_OP_ATTENTION, "attention b%lld h%lld lq%lld lk%lld d%lld dv%lld causal=%d %s%s",
                                (long long)b, (long long)h, (long long)lq, (long long)lk, (long long)d, (long long)dv,
                                causal, blhd ? "BLHD" : "BHLD", v % 5 == 4 ? " perm-dst" : "");
        int64_t qs[4] = {b, h, lq, d}, ks[4] = {b, h, lk, d}, vs[4] = {b, h, lk, dv}, os[4] = {b, h, lq, dv};
        c->src[0] = conf_t(SDRT_DTYPE_F32, 4, qs);
        c->src[1] = conf_t(SDRT_DTYPE_F32, 4, ks);
        c->src[2] = conf_t(SDRT_DTYPE_F32, 4, vs);
        c->src[0].lo = c->src[1].lo = -2.0f;
        c->src[0].hi = c->src[1].hi = 2.0f;
        c->dst = conf_t(SDRT_DTYPE_F32, 4, os);
        if (blhd) {
            static const int p[4] = {0, 2, 1, 3};
            for (int i = 0; i < 3; i++) conf_perm(&c->src[i], p);
            conf_perm(&c->dst, p);
        }
        if (v % 5 == 4) conf_shuffle(&c->dst);
        c->ip[0] = causal;
        c->fp[0] = v % 3 == 2 ? 0.2f : 0.0f;
    }
}

static void cases_elementwise(conf_list *l) {
    static const sdrt_op_kind acts[4] = {SDRT_OP_GELU, SDRT_OP_GELU_TANH, SDRT_OP_QUICK_GELU, SDRT_OP_SILU};
    static const char *act_names[4] = {"gelu", "gelu_tanh", "quick_gelu", "silu"};
    for (int a = 0; a < 4; a++) {
        for (int layout = 0; layout < LAYOUT_COUNT; layout++) {
            int64_t s[3] = {conf_rand_int(1, 3), conf_rand_int(1, 17), conf_rand_int(1, 150)};
            conf_case *c = conf_add(l, acts[a], "%s %lldx%lldx%lld %s", act_names[a], (long long)s[0],
                                    (long long)s[1], (long long)s[2], k_layout[layout]);
            c->src[0] = conf_t(SDRT_DTYPE_F32, 3, s);
            c->src[0].lo = -6.0f, c->src[0].hi = 6.0f;
            c->dst = conf_t(SDRT_DTYPE_F32, 3, s);
            conf_layout(c, layout);
        }
    }
    for (int layout = 0; layout < LAYOUT_COUNT; layout++) {
        int64_t s[3] = {conf_rand_int(1, 3), conf_rand_int(1, 17), conf_rand_int(1, 150)};
        conf_case *c = conf_add(l, SDRT_OP_SCALE, "scale %lldx%lldx%lld %s", (long long)s[0], (long long)s[1],
                                (long long)s[2], k_layout[layout]);
        c->src[0] = conf_t(SDRT_DTYPE_F32, 3, s);
        c->dst = conf_t(SDRT_DTYPE_F32, 3, s);
        c->fp[0] = conf_rand_float(-2.0f, 2.0f);
        c->fp[1] = layout % 2 ? conf_rand_float(-1.0f, 1.0f) : 0.0f;
        conf_layout(c, layout);
    }
    for (int layout = 0; layout < LAYOUT_COUNT; layout++) {
        int64_t n = conf_rand_int(1, 120);
        int64_t s[3] = {conf_rand_int(1, 3), conf_rand_int(1, 17), 2 * n}, ds[3] = {s[0], s[1], n};
        conf_case *c = conf_add(l, SDRT_OP_GEGLU, "geglu %lldx%lldx%lld %s", (long long)s[0], (long long)s[1],
                                (long long)s[2], k_layout[layout]);
        c->src[0] = conf_t(SDRT_DTYPE_F32, 3, s);
        c->src[0].lo = -4.0f, c->src[0].hi = 4.0f;
        c->dst = conf_t(SDRT_DTYPE_F32, 3, ds);
        conf_layout(c, layout);
    }
    /* ADD / MUL: src1 broadcast shapes right-aligned (NumPy), alpha, src1
     * dtypes. */
    for (int v = 0; v < 16; v++) {
        int mul = v & 1, bc = (v >> 1) % 5, layout = v % LAYOUT_COUNT;
        sdrt_dtype bdt = k_wdt[(v / 2) % 3];
        int64_t s[4] = {conf_rand_int(1, 2), conf_rand_int(1, 12), conf_rand_int(1, 9), conf_rand_int(1, 33)};
        int64_t bs[4] = {1, 1, 1, 1};
        int bn;
        const char *bname;
        switch (bc) {
        case 0: memcpy(bs, s, sizeof bs), bn = 4, bname = "same"; break;
        case 1: bs[0] = s[1], bs[1] = 1, bs[2] = 1, bn = 3, bname = "[C,1,1]"; break;
        case 2: bs[0] = s[3], bn = 1, bname = "[W]"; break;
        case 3: bs[0] = s[0], bs[1] = s[1], bs[2] = 1, bs[3] = 1, bn = 4, bname = "[N,C,1,1]"; break;
        default: bs[0] = 1, bn = 1, bname = "[1]"; break;
        }
        conf_case *c = conf_add(l, mul ? SDRT_OP_MUL : SDRT_OP_ADD, "%s %lldx%lldx%lldx%lld src1=%s %s %s",
                                mul ? "mul" : "add", (long long)s[0], (long long)s[1], (long long)s[2], (long long)s[3],
                                bname, dt_name(bdt), k_layout[layout]);
        c->src[0] = conf_t(SDRT_DTYPE_F32, 4, s);
        c->src[1] = conf_t(bdt, bn, bs);
        if (v % 6 == 5) conf_shuffle(&c->src[1]);
        c->dst = conf_t(SDRT_DTYPE_F32, 4, s);
        if (!mul && v % 3 == 0) c->fp[0] = -0.75f;
        conf_layout(c, layout);
    }
}

static void cases_layout(conf_list *l) {
    for (int v = 0; v < 10; v++) {
        int dim = v % 4;
        sdrt_dtype dt = v % 5 == 3 ? SDRT_DTYPE_F16 : SDRT_DTYPE_F32;
        int64_t a[4] = {conf_rand_int(1, 3), conf_rand_int(1, 7), conf_rand_int(1, 9), conf_rand_int(1, 11)};
        int64_t b[4], y[4];
        memcpy(b, a, sizeof b);
        b[dim] = conf_rand_int(1, 6);
        memcpy(y, a, sizeof y);
        y[dim] = a[dim] + b[dim];
        int layout = v % LAYOUT_COUNT;
        conf_case *c = conf_add(l, SDRT_OP_CONCAT, "concat dim%d %s %s", v >= 8 ? dim - 4 : dim, dt_name(dt),
                                k_layout[layout]);
        c->src[0] = conf_t(dt, 4, a);
        c->src[1] = conf_t(dt, 4, b);
        c->dst = conf_t(dt, 4, y);
        c->ip[0] = v >= 8 ? dim - 4 : dim;
        conf_layout(c, layout);
    }
    for (int layout = 0; layout < LAYOUT_COUNT; layout++) {
        int64_t s[4] = {conf_rand_int(1, 2), conf_rand_int(1, 9), conf_rand_int(1, 13), conf_rand_int(1, 13)};
        int64_t d[4] = {s[0], s[1], 2 * s[2], 2 * s[3]};
        conf_case *c = conf_add(l, SDRT_OP_UPSAMPLE2X, "upsample2x %lldx%lldx%lldx%lld %s", (long long)s[0],
                                (long long)s[1], (long long)s[2], (long long)s[3], k_layout[layout]);
        c->src[0] = conf_t(SDRT_DTYPE_F32, 4, s);
        c->dst = conf_t(SDRT_DTYPE_F32, 4, d);
        conf_layout(c, layout);
    }
    /* The super-resolution ops. backend.h asks only contiguous operands
     * (all the CPU family takes): v 0-3; v 4-7 add the strided layouts
     * (permuted src, padded rows, permuted dst), which a family may claim
     * and then runs against the naive reference. */
    for (int v = 0; v < 8; v++) {
        int layout = v < 4 ? LAYOUT_CONTIG : v % LAYOUT_COUNT;
        if (v >= 4 && layout == LAYOUT_CONTIG) layout = LAYOUT_PAD;
        const char *ln = k_layout[layout];
        int64_t s[4] = {conf_rand_int(1, 2), conf_rand_int(1, 9), conf_rand_int(1, 13), conf_rand_int(1, 13)};
        conf_case *c = conf_add(l, SDRT_OP_LEAKY_RELU, "leaky_relu %lldx%lldx%lldx%lld slope=%s %s", (long long)s[0],
                                (long long)s[1], (long long)s[2], (long long)s[3], v & 1 ? "0.2" : "default", ln);
        c->src[0] = conf_t(SDRT_DTYPE_F32, 4, s);
        c->dst = conf_t(SDRT_DTYPE_F32, 4, s);
        c->fp[0] = v & 1 ? 0.2f : 0.0f;
        conf_layout(c, layout);
        static const sdrt_dtype wd[4] = {SDRT_DTYPE_F32, SDRT_DTYPE_F16, SDRT_DTYPE_BF16, SDRT_DTYPE_F32};
        int64_t ws[1] = {v % 4 == 3 ? 1 : s[1]};
        c = conf_add(l, SDRT_OP_PRELU, "prelu %lldx%lldx%lldx%lld slopes %lld %s %s", (long long)s[0], (long long)s[1],
                     (long long)s[2], (long long)s[3], (long long)ws[0], dt_name(wd[v % 4]), ln);
        c->src[0] = conf_t(SDRT_DTYPE_F32, 4, s);
        c->src[1] = conf_t(wd[v % 4], 1, ws);
        c->dst = conf_t(SDRT_DTYPE_F32, 4, s);
        conf_layout(c, layout);
        int r = conf_rand_int(1, 4);
        int64_t ch = conf_rand_int(1, 4), h = conf_rand_int(1, 9), w = conf_rand_int(1, 9);
        int64_t lo[4] = {s[0], ch * r * r, h, w}, hi[4] = {s[0], ch, h * r, w * r};
        c = conf_add(l, SDRT_OP_PIXEL_SHUFFLE, "pixel_shuffle r%d %lldx%lldx%lldx%lld %s", r, (long long)lo[0],
                     (long long)lo[1], (long long)lo[2], (long long)lo[3], ln);
        c->src[0] = conf_t(SDRT_DTYPE_F32, 4, lo);
        c->dst = conf_t(SDRT_DTYPE_F32, 4, hi);
        c->ip[0] = r;
        conf_layout(c, layout);
        int64_t full[4] = {s[0], ch, h * r, w * r}, packed[4] = {s[0], ch * r * r, h, w};
        c = conf_add(l, SDRT_OP_PIXEL_UNSHUFFLE, "pixel_unshuffle r%d %lldx%lldx%lldx%lld %s", r, (long long)full[0],
                     (long long)full[1], (long long)full[2], (long long)full[3], ln);
        c->src[0] = conf_t(SDRT_DTYPE_F32, 4, full);
        c->dst = conf_t(SDRT_DTYPE_F32, 4, packed);
        c->ip[0] = r;
        conf_layout(c, layout);
        int64_t up[4] = {s[0], s[1], s[2] * r, s[3] * r};
        c = conf_add(l, SDRT_OP_UPSAMPLE_NEAREST, "upsample_nearest r%d %lldx%lldx%lldx%lld %s", r, (long long)s[0],
                     (long long)s[1], (long long)s[2], (long long)s[3], ln);
        c->src[0] = conf_t(SDRT_DTYPE_F32, 4, s);
        c->dst = conf_t(SDRT_DTYPE_F32, 4, up);
        c->ip[0] = r;
        conf_layout(c, layout);
    }
    for (int v = 0; v < 6; v++) {
        int64_t n = conf_rand_int(1, 4), dim = v == 5 ? 2 * conf_rand_int(4, 100) + 1 : 2 * conf_rand_int(4, 160);
        int64_t ts[1] = {n}, ds[2] = {n, dim};
        conf_case *c = conf_add(l, SDRT_OP_TIMESTEP_EMB, "timestep_emb n%lld dim%lld flip=%d shift=%s%s", (long long)n,
                                (long long)dim, v & 1, v % 3 == 1 ? "1" : "0", v == 4 ? " perm-dst" : "");
        c->src[0] = conf_t(SDRT_DTYPE_F32, 1, ts);
        c->src[0].lo = 0.0f, c->src[0].hi = 1000.0f;
        c->dst = conf_t(SDRT_DTYPE_F32, 2, ds);
        if (v == 4) conf_shuffle(&c->dst);
        c->ip[0] = (int32_t)dim;
        c->ip[1] = v & 1;
        c->fp[0] = v % 3 == 1 ? 1.0f : 0.0f;
        c->fp[1] = v == 3 ? 5000.0f : 0.0f;
        c->fp[2] = v == 2 ? 0.5f : 0.0f;
    }
    static const sdrt_dtype pairs[7][2] = {
        {SDRT_DTYPE_F32, SDRT_DTYPE_F32}, {SDRT_DTYPE_F32, SDRT_DTYPE_F16}, {SDRT_DTYPE_F32, SDRT_DTYPE_BF16},
        {SDRT_DTYPE_F16, SDRT_DTYPE_F32}, {SDRT_DTYPE_BF16, SDRT_DTYPE_F32}, {SDRT_DTYPE_F16, SDRT_DTYPE_BF16},
        {SDRT_DTYPE_F16, SDRT_DTYPE_F16}};
    for (int v = 0; v < 14; v++) {
        const sdrt_dtype *p = pairs[v % 7];
        int64_t s[4] = {conf_rand_int(1, 3), conf_rand_int(1, 9), conf_rand_int(1, 9), conf_rand_int(1, 40)};
        int layout = v % LAYOUT_COUNT;
        conf_case *c = conf_add(l, SDRT_OP_COPY, "copy %s->%s %lldx%lldx%lldx%lld %s", dt_name(p[0]), dt_name(p[1]),
                                (long long)s[0], (long long)s[1], (long long)s[2], (long long)s[3], k_layout[layout]);
        c->src[0] = conf_t(p[0], 4, s);
        c->src[0].lo = -100.0f, c->src[0].hi = 100.0f;
        c->dst = conf_t(p[1], 4, s);
        conf_layout(c, layout);
    }
}

/* Quantized weights: a Linear (MATMUL, B transposed, K whole blocks) per
 * block format, K spanning several GEMM slices for some; CONV2D with
 * C*kh*kw whole blocks; one layout the CPU must not claim (B not
 * transposed: blocks would run along N). */
static void cases_quant(conf_list *l) {
    static const sdrt_dtype q[] = {SDRT_DTYPE_Q4_0, SDRT_DTYPE_Q4_1, SDRT_DTYPE_Q5_0, SDRT_DTYPE_Q5_1, SDRT_DTYPE_Q8_0,
                                   SDRT_DTYPE_Q2_K, SDRT_DTYPE_Q3_K, SDRT_DTYPE_Q4_K, SDRT_DTYPE_Q5_K, SDRT_DTYPE_Q6_K};
    for (size_t v = 0; v < sizeof q / sizeof q[0]; v++) {
        int64_t be = sdrt_dtype_block_elems(q[v]);
        int64_t m = conf_rand_int(1, 40), n = conf_rand_int(1, 50), k = be * conf_rand_int(1, be == 32 ? 24 : 3);
        int bias = v % 2 == 0, layout = (int)v % 2 ? LAYOUT_PAD : LAYOUT_CONTIG;
        conf_case *c = conf_add(l, SDRT_OP_MATMUL, "matmul quant m%lld n%lld k%lld trans w=%s bias=%s %s", (long long)m,
                                (long long)n, (long long)k, dt_name(q[v]), bias ? "f32" : "none", k_layout[layout]);
        int64_t as[3] = {2, m, k}, bs[2] = {n, k}, ys[3] = {2, m, n}, bsh[1] = {n};
        c->src[0] = conf_t(SDRT_DTYPE_F32, 3, as);
        c->src[1] = conf_t(q[v], 2, bs);
        if (bias) c->src[2] = conf_t(SDRT_DTYPE_F32, 1, bsh);
        c->dst = conf_t(SDRT_DTYPE_F32, 3, ys);
        c->ip[0] = 1;
        conf_layout(c, layout);
    }
    for (int v = 0; v < 3; v++) {
        static const sdrt_dtype cq[3] = {SDRT_DTYPE_Q8_0, SDRT_DTYPE_Q4_1, SDRT_DTYPE_Q4_K};
        int64_t k = v == 1 ? 1 : 3, ci = v == 2 ? 256 : 32 * conf_rand_int(1, 2), co = conf_rand_int(1, 12);
        int64_t h = conf_rand_int(3, 9), w = conf_rand_int(3, 9), p = k == 3 ? 1 : 0;
        conf_case *c = conf_add(l, SDRT_OP_CONV2D, "conv2d quant c%lld o%lld %lldx%lld k%lld p%lld w=%s bias=f32",
                                (long long)ci, (long long)co, (long long)h, (long long)w, (long long)k, (long long)p,
                                dt_name(cq[v]));
        int64_t xs[4] = {1, ci, h, w}, ws[4] = {co, ci, k, k}, ys[4] = {1, co, h, w}, bs[1] = {co};
        c->src[0] = conf_t(SDRT_DTYPE_F32, 4, xs);
        c->src[1] = conf_t(cq[v], 4, ws);
        c->src[2] = conf_t(SDRT_DTYPE_F32, 1, bs);
        c->dst = conf_t(SDRT_DTYPE_F32, 4, ys);
        c->ip[0] = c->ip[1] = 1;
        c->ip[2] = c->ip[3] = (int32_t)p;
    }
    {
        int64_t as[2] = {4, 64}, bs[2] = {64, 32}, ys[2] = {4, 32};
        conf_case *c = conf_add(l, SDRT_OP_MATMUL, "matmul quant not transposed w=q8_0 (blocks along N)");
        c->src[0] = conf_t(SDRT_DTYPE_F32, 2, as);
        c->src[1] = conf_t(SDRT_DTYPE_Q8_0, 2, bs);
        c->dst = conf_t(SDRT_DTYPE_F32, 2, ys);
    }
}

/* A few shapes past the tile sizes a GPU kernel blocks by (64, 128,
 * 256): edge tiles, K split across slices, long softmax rows. */
static void cases_large(conf_list *l) {
    for (int v = 0; v < 2; v++) {
        int64_t m = conf_rand_int(130, 300), n = conf_rand_int(260, 700), k = conf_rand_int(500, 1100);
        sdrt_dtype wdt = v ? SDRT_DTYPE_F16 : SDRT_DTYPE_F32, bdt = v ? SDRT_DTYPE_BF16 : SDRT_DTYPE_F32;
        conf_case *c = conf_add(l, SDRT_OP_MATMUL, "matmul large m%lld n%lld k%lld trans w=%s bias=%s", (long long)m,
                                (long long)n, (long long)k, dt_name(wdt), dt_name(bdt));
        int64_t as[2] = {m, k}, bs[2] = {n, k}, ys[2] = {m, n}, bias[1] = {n};
        c->src[0] = conf_t(SDRT_DTYPE_F32, 2, as);
        c->src[1] = conf_t(wdt, 2, bs);
        c->src[2] = conf_t(bdt, 1, bias);
        c->dst = conf_t(SDRT_DTYPE_F32, 2, ys);
        c->ip[0] = 1;
    }
    {
        int64_t ci = 64, co = 96, h = conf_rand_int(17, 28), w = conf_rand_int(17, 28);
        conf_case *c = conf_add(l, SDRT_OP_CONV2D, "conv2d large c%lld o%lld %lldx%lld k3 p1 w=f16 bias=f32",
                                (long long)ci, (long long)co, (long long)h, (long long)w);
        int64_t xs[4] = {1, ci, h, w}, ws[4] = {co, ci, 3, 3}, ys[4] = {1, co, h, w}, bs[1] = {co};
        c->src[0] = conf_t(SDRT_DTYPE_F32, 4, xs);
        c->src[1] = conf_t(SDRT_DTYPE_F16, 4, ws);
        c->src[2] = conf_t(SDRT_DTYPE_F32, 1, bs);
        c->dst = conf_t(SDRT_DTYPE_F32, 4, ys);
        c->ip[0] = c->ip[1] = 1;
        c->ip[2] = c->ip[3] = 1;
    }
    for (int causal = 0; causal < 2; causal++) {
        int64_t l2 = conf_rand_int(260, 520), d = 64;
        conf_case *c = conf_add(l, SDRT_OP_ATTENTION, "attention large h2 l%lld d%lld causal=%d BLHD", (long long)l2,
                                (long long)d, causal);
        int64_t qs[4] = {1, 2, l2, d};
        static const int p[4] = {0, 2, 1, 3};
        for (int i = 0; i < 3; i++) {
            c->src[i] = conf_t(SDRT_DTYPE_F32, 4, qs);
            conf_perm(&c->src[i], p);
        }
        c->src[0].lo = c->src[1].lo = -2.0f;
        c->src[0].hi = c->src[1].hi = 2.0f;
        c->dst = conf_t(SDRT_DTYPE_F32, 4, qs);
        c->ip[0] = causal;
    }
    {
        int64_t n = conf_rand_int(1000, 3000), xs[2] = {conf_rand_int(2, 9), n};
        conf_case *c = conf_add(l, SDRT_OP_SOFTMAX, "softmax large %lldx%lld", (long long)xs[0], (long long)n);
        c->src[0] = conf_t(SDRT_DTYPE_F32, 2, xs);
        c->src[0].lo = -8.0f, c->src[0].hi = 8.0f;
        c->dst = conf_t(SDRT_DTYPE_F32, 2, xs);
    }
    {
        int64_t xs[4] = {1, 128, 16, 16}, ps[1] = {128};
        conf_case *c = conf_add(l, SDRT_OP_GROUP_NORM, "group_norm large c128 g32 16x16 silu params=f16");
        c->src[0] = conf_t(SDRT_DTYPE_F32, 4, xs);
        c->src[1] = conf_t(SDRT_DTYPE_F16, 1, ps);
        c->src[2] = conf_t(SDRT_DTYPE_F16, 1, ps);
        c->dst = conf_t(SDRT_DTYPE_F32, 4, xs);
        c->ip[0] = 32;
        c->ip[1] = 1;
    }
    /* The SRVGGNet tail at a realistic width: 64-channel PReLU, the x4
     * pixel shuffle of 48 channels, the nearest x4 base. */
    {
        int64_t h = conf_rand_int(24, 48), w = conf_rand_int(24, 48);
        int64_t xs[4] = {1, 64, h, w}, ps[1] = {64}, ls[4] = {1, 48, h, w}, hs[4] = {1, 3, 4 * h, 4 * w};
        int64_t is[4] = {1, 3, h, w};
        conf_case *c = conf_add(l, SDRT_OP_PRELU, "prelu large 64x%lldx%lld slopes f32", (long long)h, (long long)w);
        c->src[0] = conf_t(SDRT_DTYPE_F32, 4, xs);
        c->src[1] = conf_t(SDRT_DTYPE_F32, 1, ps);
        c->dst = conf_t(SDRT_DTYPE_F32, 4, xs);
        c = conf_add(l, SDRT_OP_PIXEL_SHUFFLE, "pixel_shuffle large r4 48x%lldx%lld", (long long)h, (long long)w);
        c->src[0] = conf_t(SDRT_DTYPE_F32, 4, ls);
        c->dst = conf_t(SDRT_DTYPE_F32, 4, hs);
        c->ip[0] = 4;
        c = conf_add(l, SDRT_OP_UPSAMPLE_NEAREST, "upsample_nearest large r4 3x%lldx%lld", (long long)h, (long long)w);
        c->src[0] = conf_t(SDRT_DTYPE_F32, 4, is);
        c->dst = conf_t(SDRT_DTYPE_F32, 4, hs);
        c->ip[0] = 4;
    }
    {
        int64_t xs[2] = {77, 1280}, ps[1] = {1280};
        conf_case *c = conf_add(l, SDRT_OP_LAYER_NORM, "layer_norm large 77x1280 params=bf16");
        c->src[0] = conf_t(SDRT_DTYPE_F32, 2, xs);
        c->src[1] = conf_t(SDRT_DTYPE_BF16, 1, ps);
        c->src[2] = conf_t(SDRT_DTYPE_BF16, 1, ps);
        c->dst = conf_t(SDRT_DTYPE_F32, 2, xs);
    }
}

size_t conf_cases_make(conf_case **cases) {
    conf_list l = {0};
    cases_matmul(&l);
    cases_conv2d(&l);
    cases_norms(&l);
    cases_softmax_attention(&l);
    cases_elementwise(&l);
    cases_layout(&l);
    cases_large(&l);
    cases_quant(&l);
    *cases = l.items;
    return l.count;
}
