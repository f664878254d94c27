/* upscale_net.c - ESRGAN-family upscalers over sdrt/nn.h: RRDBNet (ESRGAN,
 * Real-ESRGAN incl. the x2 pixel-unshuffle variant, BSRGAN key names) and
 * SRVGGNetCompact (realesr-general-x4v3, animevideov3). The architecture,
 * its sizes and the scale come from tensor names and shapes, following
 * spandrel (architectures/ESRGAN and Compact). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upscale.h"

static int up_fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static const st_tensor *find_raw(const up_model *m, const char *name) {
    return m->st ? st_find(m->st, name) : pt_find(m->pt, name);
}

static const st_tensor *find(const up_model *m, const char *fmt, ...) {
    char name[256], full[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s%s", m->prefix, name);
    return find_raw(m, full);
}

static int has(const up_model *m, const char *name) { return find(m, "%s", name) != NULL; }

/* Key sets that identify each layout (spandrel's KeyCondition lists). */
static const struct {
    const char *style;
    const char *keys[4];
} k_layouts[] = {
    {"ESRGAN", {"model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight"}},
    {"Real-ESRGAN", {"conv_first.weight", "body.0.rdb1.conv1.weight", "conv_body.weight", "conv_last.weight"}},
    {"BSRGAN", {"conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight", "trunk_conv.weight", "conv_last.weight"}},
    {"SRVGGNetCompact", {"body.0.weight", "body.1.weight"}},
};
#define N_LAYOUTS (sizeof k_layouts / sizeof k_layouts[0])

static int layout_matches(const up_model *m, size_t i) {
    for (int k = 0; k < 4 && k_layouts[i].keys[k]; k++)
        if (!has(m, k_layouts[i].keys[k])) return 0;
    return 1;
}

/* A conv weight [o, i, 3, 3] with bias [o]; o or i < 0 = any. */
static int conv_ok(const up_model *m, const st_tensor *const wb[2], int o, int i, char *err, size_t errlen,
                   const char *what) {
    (void)m;
    const st_tensor *w = wb[0], *b = wb[1];
    if (!w) return up_fail(err, errlen, "%s: weight missing", what);
    if (!b) return up_fail(err, errlen, "%s: bias missing", what);
    if (w->ndim != 4 || w->shape[2] != 3 || w->shape[3] != 3 || (o >= 0 && w->shape[0] != o) ||
        (i >= 0 && w->shape[1] != i))
        return up_fail(err, errlen, "%s: weight %s has shape [%lld,%lld,%lld,%lld], expected [%d,%d,3,3]", what, w->name,
                       (long long)w->shape[0], (long long)(w->ndim > 1 ? w->shape[1] : 0),
                       (long long)(w->ndim > 2 ? w->shape[2] : 0), (long long)(w->ndim > 3 ? w->shape[3] : 0), o, i);
    if (b->ndim != 1 || b->shape[0] != w->shape[0])
        return up_fail(err, errlen, "%s: bias %s does not have %lld elements", what, b->name, (long long)w->shape[0]);
    if (st_to_sdrt_dtype(w->dtype) < 0 || st_to_sdrt_dtype(b->dtype) < 0 || w->dtype == ST_I64 || w->dtype == ST_I32 ||
        w->dtype == ST_U8 || w->dtype == ST_F64)
        return up_fail(err, errlen, "%s: dtype %s is not F32, F16 or BF16", w->name, st_dtype_name(w->dtype));
    return 0;
}

static void pair(const up_model *m, const st_tensor *wb[2], const char *fmt, ...) {
    char base[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(base, sizeof base, fmt, ap);
    va_end(ap);
    wb[0] = find(m, "%s.weight", base);
    wb[1] = find(m, "%s.bias", base);
}

static int load_rrdb(up_model *m, int style, char *err, size_t errlen) {
    /* Key names per layout: 0 ESRGAN (model.N...), 1 Real-ESRGAN, 2 BSRGAN. */
    if (style == 0) pair(m, m->first, "model.0");
    else pair(m, m->first, "conv_first");
    if (!m->first[0] || m->first[0]->ndim != 4) return up_fail(err, errlen, "RRDBNet: first conv weight missing or not 4-D");
    m->nf = (int)m->first[0]->shape[0];
    m->in_nc = (int)m->first[0]->shape[1];
    int nb = 0;
    while (nb <= UP_MAX_BLOCKS &&
           (style == 0   ? find(m, "model.1.sub.%d.RDB1.conv1.0.weight", nb)
            : style == 1 ? find(m, "body.%d.rdb1.conv1.weight", nb)
                         : find(m, "RRDB_trunk.%d.RDB1.conv1.weight", nb)))
        nb++;
    if (nb > UP_MAX_BLOCKS) return up_fail(err, errlen, "RRDBNet: more than %d blocks", UP_MAX_BLOCKS);
    if (style == 0 && find(m, "model.1.sub.0.RDB1.conv1x1.weight"))
        return up_fail(err, errlen, "ESRGAN+ (conv1x1 in the dense blocks) is not supported");
    m->nb = nb;
    for (int b = 0; b < nb; b++)
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 5; c++) {
                if (style == 0) pair(m, m->rdb[b][r][c], "model.1.sub.%d.RDB%d.conv%d.0", b, r + 1, c + 1);
                else if (style == 1) pair(m, m->rdb[b][r][c], "body.%d.rdb%d.conv%d", b, r + 1, c + 1);
                else pair(m, m->rdb[b][r][c], "RRDB_trunk.%d.RDB%d.conv%d", b, r + 1, c + 1);
            }
    if (!m->rdb[0][0][0][0] || m->rdb[0][0][0][0]->ndim != 4) return up_fail(err, errlen, "RRDBNet: no dense block");
    m->gc = (int)m->rdb[0][0][0][0]->shape[0];
    if (style == 0) pair(m, m->trunk, "model.1.sub.%d", nb);
    else pair(m, m->trunk, style == 1 ? "conv_body" : "trunk_conv");
    /* Upsampling convs: model.3, model.6, ... / conv_up1, conv_up2 / upconv1, ... */
    int n_up = 0;
    for (; n_up < UP_MAX_UPS; n_up++) {
        const st_tensor *w = style == 0   ? find(m, "model.%d.weight", 3 * (n_up + 1))
                             : style == 1 ? find(m, "conv_up%d.weight", n_up + 1)
                                          : find(m, "upconv%d.weight", n_up + 1);
        if (!w) break;
        if (style == 0) pair(m, m->up[n_up], "model.%d", 3 * (n_up + 1));
        else pair(m, m->up[n_up], style == 1 ? "conv_up%d" : "upconv%d", n_up + 1);
    }
    m->n_up = n_up;
    if (style == 0) {
        pair(m, m->hr, "model.%d", 3 * n_up + 2);
        pair(m, m->last, "model.%d", 3 * n_up + 4);
    } else {
        pair(m, m->hr, style == 1 ? "conv_hr" : "HRconv");
        pair(m, m->last, "conv_last");
    }
    if (!m->last[0] || m->last[0]->ndim != 4) return up_fail(err, errlen, "RRDBNet: last conv weight missing");
    m->out_nc = (int)m->last[0]->shape[0];
    /* Real-ESRGAN x2/x1: pixel-unshuffled input (spandrel's rule). */
    m->shuffle = 1;
    if (m->in_nc == m->out_nc * 4) m->shuffle = 2;
    else if (m->in_nc == m->out_nc * 16) m->shuffle = 4;
    int full = 1 << n_up;
    if (full % m->shuffle) return up_fail(err, errlen, "RRDBNet: %d upsamplings cannot undo a %dx unshuffle", n_up, m->shuffle);
    m->scale = full / m->shuffle;
    if (m->out_nc != 3 || m->in_nc != 3 * m->shuffle * m->shuffle)
        return up_fail(err, errlen, "RRDBNet: %d input and %d output channels; only RGB models are supported", m->in_nc,
                       m->out_nc);
    char what[96];
    if (conv_ok(m, m->first, m->nf, m->in_nc, err, errlen, "conv_first")) return -1;
    for (int b = 0; b < nb; b++)
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 5; c++) {
                snprintf(what, sizeof what, "block %d rdb%d conv%d", b, r + 1, c + 1);
                if (conv_ok(m, m->rdb[b][r][c], c == 4 ? m->nf : m->gc, m->nf + c * m->gc, err, errlen, what)) return -1;
            }
    if (conv_ok(m, m->trunk, m->nf, m->nf, err, errlen, "trunk conv")) return -1;
    for (int u = 0; u < n_up; u++) {
        snprintf(what, sizeof what, "upsampling conv %d", u + 1);
        if (conv_ok(m, m->up[u], m->nf, m->nf, err, errlen, what)) return -1;
    }
    if (conv_ok(m, m->hr, m->nf, m->nf, err, errlen, "hr conv") || conv_ok(m, m->last, 3, m->nf, err, errlen, "last conv"))
        return -1;
    return 0;
}

static int load_compact(up_model *m, char *err, size_t errlen) {
    int highest = 0;
    while (highest < 2 * UP_MAX_CONVS + 4 && find(m, "body.%d.weight", highest + 1)) highest++;
    if (highest < 2 || highest % 2)
        return up_fail(err, errlen, "SRVGGNetCompact: body has %d layers; expected conv/PReLU pairs and a last conv",
                       highest + 1);
    m->n_convs = (highest - 2) / 2; /* convs between the first and the last */
    if (m->n_convs > UP_MAX_CONVS) return up_fail(err, errlen, "SRVGGNetCompact: more than %d convs", UP_MAX_CONVS);
    for (int i = 0; i <= m->n_convs + 1; i++) pair(m, m->conv[i], "body.%d", 2 * i);
    for (int i = 0; i <= m->n_convs; i++) m->prelu[i] = find(m, "body.%d.weight", 2 * i + 1);
    if (!m->conv[0][0] || m->conv[0][0]->ndim != 4) return up_fail(err, errlen, "SRVGGNetCompact: body.0.weight is not a conv");
    m->nf = (int)m->conv[0][0]->shape[0];
    m->in_nc = (int)m->conv[0][0]->shape[1];
    m->out_nc = m->in_nc;
    const st_tensor *lw = m->conv[m->n_convs + 1][0];
    if (!lw || lw->ndim != 4) return up_fail(err, errlen, "SRVGGNetCompact: body.%d.weight is not a conv", highest);
    int64_t ps = lw->shape[0] / m->out_nc;
    int s = 1;
    while ((int64_t)s * s < ps) s++;
    if ((int64_t)s * s != ps || lw->shape[0] % m->out_nc)
        return up_fail(err, errlen, "SRVGGNetCompact: last conv has %lld outputs, not %d x a square scale", (long long)lw->shape[0],
                       m->out_nc);
    m->scale = s;
    if (m->in_nc != 3) return up_fail(err, errlen, "SRVGGNetCompact: %d input channels; only RGB models are supported", m->in_nc);
    char what[64];
    for (int i = 0; i <= m->n_convs + 1; i++) {
        snprintf(what, sizeof what, "body.%d", 2 * i);
        if (conv_ok(m, m->conv[i], i == m->n_convs + 1 ? 3 * s * s : m->nf, i == 0 ? 3 : m->nf, err, errlen, what)) return -1;
    }
    for (int i = 0; i <= m->n_convs; i++) {
        const st_tensor *p = m->prelu[i];
        if (!p || p->ndim != 1 || (p->shape[0] != m->nf && p->shape[0] != 1) ||
            !(p->dtype == ST_F32 || p->dtype == ST_F16 || p->dtype == ST_BF16))
            return up_fail(err, errlen, "SRVGGNetCompact: body.%d.weight is not a PReLU of %d slopes (only PReLU activations are supported)",
                           2 * i + 1, m->nf);
    }
    return 0;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

int up_model_open(const char *path, const sdrt_file_scope *scope, up_model **out, char *err, size_t errlen) {
    *out = NULL;
    up_model *m = calloc(1, sizeof *m);
    if (!m) return up_fail(err, errlen, "out of memory");
    char e2[600];
    int rc;
    if (ends_with(path, ".safetensors")) rc = st_open_scoped(path, "upscaler", scope, &m->st, e2, sizeof e2) == SDRT_OK ? 0 : -1;
    else if (ends_with(path, ".pth") || ends_with(path, ".pt")) rc = pt_open_scoped(path, "upscaler", scope, &m->pt, e2, sizeof e2);
    else {
        free(m);
        return up_fail(err, errlen, "%s: not a .safetensors, .pth or .pt file", path);
    }
    if (rc) {
        free(m);
        return up_fail(err, errlen, "%s", e2);
    }
    /* Training checkpoints keep the weights under params_ema / params. */
    static const char *const prefixes[] = {"", "params_ema.", "params.", "state_dict.", "model."};
    int layout = -1;
    for (size_t p = 0; p < sizeof prefixes / sizeof prefixes[0] && layout < 0; p++) {
        snprintf(m->prefix, sizeof m->prefix, "%s", prefixes[p]);
        for (size_t i = 0; i < N_LAYOUTS && layout < 0; i++)
            if (layout_matches(m, i)) layout = (int)i;
    }
    if (layout < 0) {
        m->prefix[0] = 0;
        size_t k = (size_t)snprintf(e2, sizeof e2, "%s: unknown upscaler architecture; missing keys:", path);
        for (size_t i = 0; i < N_LAYOUTS && k < sizeof e2; i++) {
            k += (size_t)snprintf(e2 + k, sizeof e2 - k, " %s {", k_layouts[i].style);
            int first = 1;
            for (int j = 0; j < 4 && k_layouts[i].keys[j] && k < sizeof e2; j++)
                if (!has(m, k_layouts[i].keys[j])) {
                    k += (size_t)snprintf(e2 + k, sizeof e2 - k, "%s%s", first ? "" : ", ", k_layouts[i].keys[j]);
                    first = 0;
                }
            if (k < sizeof e2) k += (size_t)snprintf(e2 + k, sizeof e2 - k, "}");
        }
        size_t n = m->st ? m->st->n_tensors : m->pt->n_tensors;
        const st_tensor *t = m->st ? m->st->tensors : m->pt->tensors;
        if (k < sizeof e2) k += (size_t)snprintf(e2 + k, sizeof e2 - k, "; the file has %zu tensors, e.g. %s", n, n ? t[0].name : "(none)");
        up_model_close(m);
        snprintf(err, errlen, "%s", e2);
        return -1;
    }
    m->style = k_layouts[layout].style;
    m->arch = layout == 3 ? UP_ARCH_COMPACT : UP_ARCH_RRDB;
    rc = m->arch == UP_ARCH_COMPACT ? load_compact(m, e2, sizeof e2) : load_rrdb(m, layout, e2, sizeof e2);
    if (rc) {
        up_model_close(m);
        return up_fail(err, errlen, "%s: %s", path, e2);
    }
    *out = m;
    return 0;
}

void up_model_close(up_model *m) {
    if (!m) return;
    st_close(m->st);
    pt_close(m->pt);
    free(m);
}

void up_model_describe(const up_model *m, char *buf, size_t len) {
    if (m->arch == UP_ARCH_RRDB)
        snprintf(buf, len, "RRDBNet x%d (%s keys, %dnf %dnb%s)", m->scale, m->style, m->nf, m->nb,
                 m->shuffle > 1 ? ", pixel-unshuffle" : "");
    else
        snprintf(buf, len, "SRVGGNetCompact x%d (%dnf %dnc)", m->scale, m->nf, m->n_convs);
}

/* ---- forward ---------------------------------------------------------------- */

static sdrt_tensor host_view(const st_tensor *t) {
    sdrt_tensor v;
    memset(&v, 0, sizeof v);
    v.struct_size = sizeof v;
    v.dtype = (sdrt_dtype)st_to_sdrt_dtype(t->dtype);
    v.ndim = t->ndim;
    int64_t s = 1;
    for (int d = SDRT_MAX_DIMS - 1; d >= 0; d--) {
        v.shape[d] = d < t->ndim ? t->shape[d] : 1;
        v.strides[d] = d < t->ndim ? s : 0;
        if (d < t->ndim) s *= t->shape[d];
    }
    v.data = (void *)t->data;
    return v;
}

static sdrt_tensor *conv(sdrt_nn *nn, const sdrt_tensor *x, const st_tensor *const wb[2]) {
    sdrt_tensor w = host_view(wb[0]), b = host_view(wb[1]);
    return sdrt_nn_conv2d(nn, x, sdrt_nn_weight(nn, &w), sdrt_nn_weight(nn, &b), 1, 1);
}

/* conv then LeakyReLU(0.2), dropping the intermediate. */
static sdrt_tensor *conv_lrelu(sdrt_nn *nn, const sdrt_tensor *x, const st_tensor *const wb[2]) {
    sdrt_tensor *c = conv(nn, x, wb), *y = sdrt_nn_leaky_relu(nn, c, 0.2f);
    sdrt_nn_drop(nn, c);
    return y;
}

/* out = a + 0.2 * r (the residual scaling of RDB and RRDB). */
static sdrt_tensor *res02(sdrt_nn *nn, const sdrt_tensor *a, sdrt_tensor *r) {
    sdrt_tensor *s = sdrt_nn_scale(nn, r, 0.2f, 0.0f), *y = sdrt_nn_add(nn, a, s);
    sdrt_nn_drop(nn, s);
    return y;
}

static sdrt_tensor *rdb(sdrt_nn *nn, const sdrt_tensor *x, const st_tensor *const cv[5][2]) {
    sdrt_tensor *cat = NULL;
    const sdrt_tensor *in = x;
    for (int c = 0; c < 4; c++) {
        sdrt_tensor *y = conv_lrelu(nn, in, cv[c]);
        sdrt_tensor *nc = sdrt_nn_concat(nn, in, y, 1);
        sdrt_nn_drop(nn, y);
        sdrt_nn_drop(nn, cat);
        cat = nc;
        in = cat;
    }
    sdrt_tensor *x5 = conv(nn, in, cv[4]);
    sdrt_nn_drop(nn, cat);
    sdrt_tensor *y = res02(nn, x, x5);
    sdrt_nn_drop(nn, x5);
    return y;
}

static sdrt_tensor *rrdb_forward(const up_model *m, sdrt_nn *nn, const sdrt_tensor *x) {
    sdrt_tensor *fea = conv(nn, x, m->first), *t = fea;
    for (int b = 0; b < m->nb; b++) {
        sdrt_tensor *r1 = rdb(nn, t, m->rdb[b][0]), *r2 = rdb(nn, r1, m->rdb[b][1]);
        sdrt_nn_drop(nn, r1);
        sdrt_tensor *r3 = rdb(nn, r2, m->rdb[b][2]);
        sdrt_nn_drop(nn, r2);
        sdrt_tensor *y = res02(nn, t, r3);
        sdrt_nn_drop(nn, r3);
        if (t != fea) sdrt_nn_drop(nn, t);
        t = y;
    }
    sdrt_tensor *tr = conv(nn, t, m->trunk);
    if (t != fea) sdrt_nn_drop(nn, t);
    t = sdrt_nn_add(nn, fea, tr);
    sdrt_nn_drop(nn, tr);
    sdrt_nn_drop(nn, fea);
    for (int u = 0; u < m->n_up; u++) {
        sdrt_tensor *up = sdrt_nn_upsample2x(nn, t);
        sdrt_nn_drop(nn, t);
        t = conv_lrelu(nn, up, m->up[u]);
        sdrt_nn_drop(nn, up);
    }
    sdrt_tensor *h = conv_lrelu(nn, t, m->hr);
    sdrt_nn_drop(nn, t);
    sdrt_tensor *y = conv(nn, h, m->last);
    sdrt_nn_drop(nn, h);
    return y;
}

static sdrt_tensor *compact_forward(const up_model *m, sdrt_nn *nn, const sdrt_tensor *x) {
    sdrt_tensor *t = NULL;
    for (int i = 0; i <= m->n_convs; i++) {
        sdrt_tensor *c = conv(nn, t ? t : x, m->conv[i]);
        sdrt_nn_drop(nn, t);
        sdrt_tensor pv = host_view(m->prelu[i]);
        t = sdrt_nn_prelu(nn, c, sdrt_nn_weight(nn, &pv));
        sdrt_nn_drop(nn, c);
    }
    sdrt_tensor *c = conv(nn, t, m->conv[m->n_convs + 1]);
    sdrt_nn_drop(nn, t);
    sdrt_tensor *ps = sdrt_nn_pixel_shuffle(nn, c, m->scale);
    sdrt_nn_drop(nn, c);
    sdrt_tensor *base = sdrt_nn_upsample_nearest(nn, x, m->scale);
    sdrt_tensor *y = sdrt_nn_add(nn, ps, base);
    sdrt_nn_drop(nn, ps);
    sdrt_nn_drop(nn, base);
    return y;
}

/* torch's reflect padding index (edge not repeated). */
static int reflect(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
}

int up_model_run(const up_model *m, sdrt_nn *nn, const float *in, int h, int w, float *out, char *err,
                 size_t errlen) {
    /* The unshuffle variant pads to a multiple of the factor by reflection
     * (spandrel's pad_to_multiple) and crops the output back. */
    int sh = m->arch == UP_ARCH_RRDB ? m->shuffle : 1;
    int ph = (h + sh - 1) / sh * sh, pw = (w + sh - 1) / sh * sh;
    float *chw = malloc((size_t)3 * ph * pw * sizeof *chw);
    if (!chw) return up_fail(err, errlen, "upscale: out of memory for a %dx%d tile", w, h);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < ph; y++)
            for (int x = 0; x < pw; x++)
                chw[((size_t)c * ph + y) * pw + x] = in[((size_t)reflect(y, h) * w + reflect(x, w)) * 3 + c];
    int64_t shape[4] = {1, 3, ph, pw};
    sdrt_tensor *x = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 4, shape, chw);
    free(chw);
    sdrt_tensor *y = NULL;
    if (m->arch == UP_ARCH_RRDB) {
        sdrt_tensor *xu = sh > 1 ? sdrt_nn_pixel_unshuffle(nn, x, sh) : x;
        y = rrdb_forward(m, nn, xu);
        if (xu != x) sdrt_nn_drop(nn, xu);
    } else {
        y = compact_forward(m, nn, x);
    }
    sdrt_nn_drop(nn, x);
    /* the context's message names the failing op or allocation (and the
     * device): asked even when y is NULL, which is how a failure shows */
    const char *msg = NULL;
    sdrt_status st = sdrt_nn_status(nn, &msg);
    if (!y || st != SDRT_OK) {
        sdrt_nn_drop(nn, y);
        return up_fail(err, errlen, "upscale: %s", msg && msg[0] ? msg : "network failed");
    }
    int64_t oh = y->shape[2], ow = y->shape[3], s = m->scale;
    float *host = malloc((size_t)(3 * oh * ow) * sizeof *host);
    if (!host || sdrt_nn_to_host_f32(nn, y, host) != SDRT_OK) {
        free(host);
        sdrt_nn_drop(nn, y);
        return up_fail(err, errlen, "upscale: cannot read the result back");
    }
    sdrt_nn_drop(nn, y);
    for (int64_t yy = 0; yy < (int64_t)h * s; yy++)
        for (int64_t xx = 0; xx < (int64_t)w * s; xx++)
            for (int c = 0; c < 3; c++)
                out[((size_t)yy * w * s + xx) * 3 + c] = host[((size_t)c * oh + yy) * ow + xx];
    free(host);
    return 0;
}
