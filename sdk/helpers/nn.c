/* sdk/helpers/nn.c - sdrt/nn.h over the backend ABI.
 *
 * Works with any device: every tensor is its own buffer of the device's
 * buffer type, ops go through the context's stream, host transfers through
 * buffer->iface->write/read. Errors are sticky (the first failure wins and
 * later calls do nothing) and cancellation is polled before every op.
 */
#include "sdrt/nn.h"

#include "sdrt/half.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NN_MAGIC 0x6e6e7431u /* "nnt1": marks tensors this file allocated */

/* An owned tensor. `t` comes first so a tensor pointer is its node. */
typedef struct nn_node {
    sdrt_tensor t;
    uint32_t magic;
    sdrt_buffer *buf;
    struct nn_node *prev, *next;
} nn_node;

/* A weight uploaded to a non-host device, keyed by its host address. */
typedef struct nn_weight {
    const void *host_data;
    sdrt_dtype dtype;
    nn_node *node;
    struct nn_weight *next;
} nn_weight;

struct sdrt_nn {
    sdrt_device *dev;
    sdrt_stream *stream;
    sdrt_buffer_type *bt;
    int is_host;
    int (*is_cancelled)(sdrt_job *job);
    sdrt_job *job;
    sdrt_status status;
    char message[256];
    nn_node *live;
    nn_weight *weights;
};

static size_t nn_dtype_size(sdrt_dtype dt) {
    switch (dt) {
    case SDRT_DTYPE_F32: return 4;
    case SDRT_DTYPE_F16: return 2;
    case SDRT_DTYPE_BF16: return 2;
    case SDRT_DTYPE_I32: return 4;
    case SDRT_DTYPE_I64: return 8;
    case SDRT_DTYPE_U8: return 1;
    case SDRT_DTYPE_F64: return 8;
    default: return 0;
    }
}

/* ---- errors ------------------------------------------------------------ */

static void nn_fail(sdrt_nn *nn, sdrt_status st, const char *fmt, ...) SDRT_PRINTF(3, 4);
static void nn_fail(sdrt_nn *nn, sdrt_status st, const char *fmt, ...) {
    if (nn->status != SDRT_OK) return;
    nn->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nn->message, sizeof nn->message, fmt, ap);
    va_end(ap);
}

/* False (and the context failed) when no further op may run. */
static int nn_ready(sdrt_nn *nn) {
    if (!nn || nn->status != SDRT_OK) return 0;
    if (nn->is_cancelled && nn->is_cancelled(nn->job)) {
        nn_fail(nn, SDRT_CANCELLED, "cancelled");
        return 0;
    }
    return 1;
}

sdrt_status sdrt_nn_status(const sdrt_nn *nn, const char **message) {
    if (!nn) {
        if (message) *message = "no context";
        return SDRT_INVALID_ARGUMENT;
    }
    if (message) *message = nn->status == SDRT_OK ? "" : nn->message;
    return nn->status;
}

void sdrt_nn_clear_status(sdrt_nn *nn) {
    if (!nn) return;
    nn->status = SDRT_OK;
    nn->message[0] = 0;
}

/* ---- context ------------------------------------------------------------ */

sdrt_nn *sdrt_nn_new(sdrt_device *dev, const char *params_json, int (*is_cancelled)(sdrt_job *job),
                     sdrt_job *job) {
    if (!dev || !dev->iface || !dev->iface->buffer_type || !dev->iface->stream_new) return NULL;
    sdrt_nn *nn = calloc(1, sizeof *nn);
    if (!nn) return NULL;
    nn->dev = dev;
    nn->bt = dev->iface->buffer_type(dev);
    nn->stream = dev->iface->stream_new(dev, params_json);
    if (!nn->bt || !nn->stream) {
        sdrt_stream_free(nn->stream);
        free(nn);
        return NULL;
    }
    nn->is_host = nn->bt->iface->is_host ? nn->bt->iface->is_host(nn->bt) : 0;
    nn->is_cancelled = is_cancelled;
    nn->job = job;
    return nn;
}

static void nn_node_free(sdrt_nn *nn, nn_node *node) {
    if (node->prev) node->prev->next = node->next;
    else nn->live = node->next;
    if (node->next) node->next->prev = node->prev;
    node->magic = 0;
    sdrt_buffer_free(node->buf);
    free(node);
}

void sdrt_nn_free(sdrt_nn *nn) {
    if (!nn) return;
    sdrt_stream_synchronize(nn->stream);
    while (nn->weights) {
        nn_weight *w = nn->weights;
        nn->weights = w->next;
        free(w);
    }
    while (nn->live) nn_node_free(nn, nn->live);
    sdrt_stream_free(nn->stream);
    free(nn);
}

/* ---- tensors ------------------------------------------------------------ */

int64_t sdrt_nn_numel(const sdrt_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int sdrt_nn_param_to_f32(const sdrt_tensor *t, float *out) {
    if (t->ndim != 1) return -1;
    const char *p = (const char *)t->data;
    int64_t n = t->shape[0], st = t->strides[0];
    switch (t->dtype) {
    case SDRT_DTYPE_F32:
        for (int64_t i = 0; i < n; i++) out[i] = ((const float *)p)[i * st];
        return 0;
    case SDRT_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) out[i] = sdrt_f16_to_f32(((const uint16_t *)p)[i * st]);
        return 0;
    case SDRT_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) out[i] = sdrt_bf16_to_f32(((const uint16_t *)p)[i * st]);
        return 0;
    default: return -1;
    }
}

int sdrt_nn_is_contiguous(const sdrt_tensor *t) {
    int64_t expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != expect) return 0;
        expect *= t->shape[i];
    }
    return 1;
}

static void nn_fill_desc(sdrt_tensor *t, sdrt_dtype dtype, int ndim, const int64_t *shape) {
    memset(t, 0, sizeof *t);
    t->struct_size = SDRT_STRUCT_SIZE(sdrt_tensor, buffer);
    t->dtype = dtype;
    t->ndim = ndim;
    int64_t s = 1;
    for (int d = SDRT_MAX_DIMS - 1; d >= 0; d--) {
        t->shape[d] = d < ndim ? shape[d] : 1;
        t->strides[d] = d < ndim ? s : 0;
        if (d < ndim) s *= shape[d];
    }
}

sdrt_tensor *sdrt_nn_new_tensor(sdrt_nn *nn, sdrt_dtype dtype, int ndim, const int64_t *shape) {
    if (!nn_ready(nn)) return NULL;
    size_t es = nn_dtype_size(dtype);
    if (!es || ndim < 0 || ndim > SDRT_MAX_DIMS || (ndim > 0 && !shape)) {
        nn_fail(nn, SDRT_INVALID_ARGUMENT, "new_tensor: dtype %d / ndim %d not valid", (int)dtype, ndim);
        return NULL;
    }
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0) {
            nn_fail(nn, SDRT_INVALID_ARGUMENT, "new_tensor: shape[%d] = %lld is negative", d, (long long)shape[d]);
            return NULL;
        }
    nn_node *node = calloc(1, sizeof *node);
    if (!node) {
        nn_fail(nn, SDRT_RESOURCE_EXHAUSTED, "new_tensor: out of host memory");
        return NULL;
    }
    nn_fill_desc(&node->t, dtype, ndim, shape);
    size_t bytes = (size_t)sdrt_nn_numel(&node->t) * es;
    node->buf = sdrt_buffer_alloc(nn->bt, bytes ? bytes : es);
    if (!node->buf) {
        free(node);
        nn_fail(nn, SDRT_RESOURCE_EXHAUSTED, "new_tensor: %s could not allocate %zu bytes",
                nn->dev->iface->name(nn->dev), bytes);
        return NULL;
    }
    node->t.data = node->buf->iface->base(node->buf);
    node->t.buffer = node->buf;
    node->magic = NN_MAGIC;
    node->next = nn->live;
    if (nn->live) nn->live->prev = node;
    nn->live = node;
    return &node->t;
}

void sdrt_nn_drop(sdrt_nn *nn, sdrt_tensor *t) {
    if (!nn || !t) return;
    nn_node *node = (nn_node *)(void *)t;
    if (node->magic != NN_MAGIC) return; /* not ours: nothing to release */
    for (nn_weight **w = &nn->weights; *w; w = &(*w)->next) {
        if ((*w)->node == node) {
            nn_weight *dead = *w;
            *w = dead->next;
            free(dead);
            break;
        }
    }
    nn_node_free(nn, node);
}

sdrt_tensor *sdrt_nn_from_host(sdrt_nn *nn, sdrt_dtype dtype, int ndim, const int64_t *shape, const void *data) {
    sdrt_tensor *t = sdrt_nn_new_tensor(nn, dtype, ndim, shape);
    if (!t) return NULL;
    size_t bytes = (size_t)sdrt_nn_numel(t) * nn_dtype_size(dtype);
    if (bytes && !data) {
        sdrt_nn_drop(nn, t);
        nn_fail(nn, SDRT_INVALID_ARGUMENT, "from_host: data is NULL");
        return NULL;
    }
    if (bytes) t->buffer->iface->write(t->buffer, t->data, data, bytes);
    return t;
}

const sdrt_tensor *sdrt_nn_weight(sdrt_nn *nn, const sdrt_tensor *host_weight) {
    if (!nn_ready(nn)) return NULL;
    if (!host_weight || (!host_weight->data && sdrt_nn_numel(host_weight) > 0)) {
        nn_fail(nn, SDRT_INVALID_ARGUMENT, "weight: no tensor or no data");
        return NULL;
    }
    /* Host-memory devices read the weight where it lies (the mmap). */
    if (nn->is_host) return host_weight;
    for (nn_weight *w = nn->weights; w; w = w->next)
        if (w->host_data == host_weight->data && w->dtype == host_weight->dtype) return &w->node->t;
    if (!sdrt_nn_is_contiguous(host_weight)) {
        nn_fail(nn, SDRT_UNSUPPORTED, "weight: a strided host weight cannot be uploaded");
        return NULL;
    }
    nn_weight *w = calloc(1, sizeof *w);
    if (!w) {
        nn_fail(nn, SDRT_RESOURCE_EXHAUSTED, "weight: out of host memory");
        return NULL;
    }
    sdrt_tensor *t = sdrt_nn_from_host(nn, host_weight->dtype, host_weight->ndim, host_weight->shape,
                                       host_weight->data);
    if (!t) {
        free(w);
        return NULL;
    }
    *w = (nn_weight){host_weight->data, host_weight->dtype, (nn_node *)(void *)t, nn->weights};
    nn->weights = w;
    return t;
}

/* Bytes of t copied to host: through its buffer when it has one. */
static void nn_read(const sdrt_tensor *t, void *out, size_t bytes) {
    if (!bytes) return;
    if (t->buffer) t->buffer->iface->read(t->buffer, out, t->data, bytes);
    else memcpy(out, t->data, bytes);
}

sdrt_tensor *sdrt_nn_copy(sdrt_nn *nn, const sdrt_tensor *x, sdrt_dtype dtype);

sdrt_status sdrt_nn_to_host_f32(sdrt_nn *nn, const sdrt_tensor *t, float *out) {
    if (!nn_ready(nn)) return nn ? nn->status : SDRT_INVALID_ARGUMENT;
    if (!t || !out) {
        nn_fail(nn, SDRT_INVALID_ARGUMENT, "to_host_f32: tensor or output is NULL");
        return nn->status;
    }
    size_t bytes = (size_t)sdrt_nn_numel(t) * sizeof(float);
    if (t->dtype == SDRT_DTYPE_F32 && sdrt_nn_is_contiguous(t)) {
        sdrt_stream_synchronize(nn->stream);
        nn_read(t, out, bytes);
        return SDRT_OK;
    }
    sdrt_tensor *tmp = sdrt_nn_copy(nn, t, SDRT_DTYPE_F32);
    if (!tmp) return nn->status;
    sdrt_stream_synchronize(nn->stream);
    nn_read(tmp, out, bytes);
    sdrt_nn_drop(nn, tmp);
    return SDRT_OK;
}

/* ---- views ---------------------------------------------------------------- */

/* A view that no op accepts: NULL data with elements. */
static sdrt_tensor nn_bad_view(const sdrt_tensor *t) {
    sdrt_tensor v = *t;
    v.data = NULL;
    return v;
}

sdrt_tensor sdrt_nn_view_reshape(const sdrt_tensor *t, int ndim, const int64_t *shape) {
    sdrt_tensor v;
    if (ndim < 0 || ndim > SDRT_MAX_DIMS || !sdrt_nn_is_contiguous(t)) return nn_bad_view(t);
    nn_fill_desc(&v, t->dtype, ndim, shape);
    if (sdrt_nn_numel(&v) != sdrt_nn_numel(t)) return nn_bad_view(t);
    v.data = t->data;
    v.buffer = t->buffer;
    return v;
}

sdrt_tensor sdrt_nn_view_permute(const sdrt_tensor *t, const int *perm) {
    sdrt_tensor v = *t;
    int seen = 0;
    for (int d = 0; d < t->ndim; d++) {
        int p = perm[d];
        if (p < 0 || p >= t->ndim || (seen & (1 << p))) return nn_bad_view(t);
        seen |= 1 << p;
        v.shape[d] = t->shape[p];
        v.strides[d] = t->strides[p];
    }
    return v;
}

sdrt_tensor sdrt_nn_view_slice(const sdrt_tensor *t, int dim, int64_t start, int64_t len) {
    if (dim < 0) dim += t->ndim;
    if (dim < 0 || dim >= t->ndim || start < 0 || len < 0 || start + len > t->shape[dim]) return nn_bad_view(t);
    sdrt_tensor v = *t;
    v.shape[dim] = len;
    v.data = (char *)t->data + (size_t)(start * t->strides[dim]) * nn_dtype_size(t->dtype);
    return v;
}

/* ---- ops --------------------------------------------------------------------- */

static const char *const g_op_names[] = {
#define NN_OP_NAME_(name) #name,
    SDRT_OP_LIST(NN_OP_NAME_)
#undef NN_OP_NAME_
};

/* Allocates dst (f32 unless told), runs the op, returns dst or NULL. */
static sdrt_tensor *nn_run(sdrt_nn *nn, sdrt_op *op, sdrt_dtype dtype, int ndim, const int64_t *shape) {
    if (!nn_ready(nn)) return NULL;
    if (!op->src[0]) {
        nn_fail(nn, SDRT_INVALID_ARGUMENT, "%s: input is NULL", g_op_names[op->kind]);
        return NULL;
    }
    sdrt_tensor *dst = sdrt_nn_new_tensor(nn, dtype, ndim, shape);
    if (!dst) return NULL;
    op->struct_size = SDRT_STRUCT_SIZE(sdrt_op, fparams);
    op->dst = dst;
    sdrt_status st = sdrt_stream_compute(nn->stream, op);
    if (st != SDRT_OK) {
        sdrt_nn_drop(nn, dst);
        nn_fail(nn, st, "%s on %s failed (status %d)%s", g_op_names[op->kind], nn->dev->iface->name(nn->dev),
                (int)st, st == SDRT_UNSUPPORTED ? ": op, dtype or layout not supported" : "");
        return NULL;
    }
    return dst;
}

static sdrt_tensor *nn_same_shape(sdrt_nn *nn, sdrt_op *op) {
    if (!op->src[0]) return nn_run(nn, op, SDRT_DTYPE_F32, 0, NULL);
    return nn_run(nn, op, SDRT_DTYPE_F32, op->src[0]->ndim, op->src[0]->shape);
}

static int nn_check(sdrt_nn *nn, int ok, const char *what) {
    if (!ok) nn_fail(nn, SDRT_INVALID_ARGUMENT, "%s", what);
    return ok;
}

sdrt_tensor *sdrt_nn_matmul(sdrt_nn *nn, const sdrt_tensor *a, const sdrt_tensor *b, int transpose_b, float alpha) {
    if (!nn_ready(nn) || !nn_check(nn, a && b && a->ndim >= 2 && b->ndim >= 2, "matmul: operands must be >= 2-D"))
        return NULL;
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t shape[SDRT_MAX_DIMS];
    for (int d = 0; d < nd - 2; d++) {
        int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        if (!nn_check(nn, sa == sb || sa == 1 || sb == 1, "matmul: batch dims do not broadcast")) return NULL;
        shape[d] = sa == 1 ? sb : sa;
    }
    shape[nd - 2] = a->shape[a->ndim - 2];
    shape[nd - 1] = b->shape[b->ndim - (transpose_b ? 2 : 1)];
    sdrt_op op = {.kind = SDRT_OP_MATMUL, .src = {a, b}, .iparams = {transpose_b ? 1 : 0}, .fparams = {alpha}};
    return nn_run(nn, &op, SDRT_DTYPE_F32, nd, shape);
}

sdrt_tensor *sdrt_nn_linear(sdrt_nn *nn, const sdrt_tensor *x, const sdrt_tensor *w, const sdrt_tensor *b) {
    if (!nn_ready(nn) || !nn_check(nn, x && w && x->ndim >= 1 && w->ndim == 2, "linear: x >= 1-D, w [out, in]"))
        return NULL;
    /* A 1-D input runs as one row. */
    sdrt_tensor row;
    const sdrt_tensor *xin = x;
    if (x->ndim == 1) {
        row = *x;
        row.ndim = 2;
        row.shape[0] = 1, row.shape[1] = x->shape[0];
        row.strides[0] = x->shape[0] * x->strides[0], row.strides[1] = x->strides[0];
        xin = &row;
    }
    int64_t shape[SDRT_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = w->shape[0];
    sdrt_op op = {.kind = SDRT_OP_MATMUL, .src = {xin, w, b}, .iparams = {1}};
    if (x->ndim > 1) return nn_run(nn, &op, SDRT_DTYPE_F32, x->ndim, shape);
    /* Output [N] written through a [1, N] view of it. */
    sdrt_tensor *dst = sdrt_nn_new_tensor(nn, SDRT_DTYPE_F32, 1, shape);
    if (!dst) return NULL;
    sdrt_tensor view = *dst;
    view.ndim = 2;
    view.shape[0] = 1, view.shape[1] = shape[0];
    view.strides[0] = shape[0], view.strides[1] = 1;
    op.struct_size = SDRT_STRUCT_SIZE(sdrt_op, fparams);
    op.dst = &view;
    sdrt_status st = sdrt_stream_compute(nn->stream, &op);
    if (st != SDRT_OK) {
        sdrt_nn_drop(nn, dst);
        nn_fail(nn, st, "MATMUL (linear) on %s failed (status %d)", nn->dev->iface->name(nn->dev), (int)st);
        return NULL;
    }
    return dst;
}

sdrt_tensor *sdrt_nn_conv2d(sdrt_nn *nn, const sdrt_tensor *x, const sdrt_tensor *w, const sdrt_tensor *b, int stride,
                            int padding) {
    if (!nn_ready(nn) || !nn_check(nn, x && w && x->ndim == 4 && w->ndim == 4, "conv2d: x and w must be 4-D"))
        return NULL;
    int s = stride > 0 ? stride : 1;
    int64_t shape[4] = {x->shape[0], w->shape[0], (x->shape[2] + 2 * padding - w->shape[2]) / s + 1,
                        (x->shape[3] + 2 * padding - w->shape[3]) / s + 1};
    if (!nn_check(nn, shape[2] > 0 && shape[3] > 0 && padding >= 0, "conv2d: kernel larger than padded input"))
        return NULL;
    sdrt_op op = {.kind = SDRT_OP_CONV2D, .src = {x, w, b}, .iparams = {s, s, padding, padding, 1, 1, 1}};
    return nn_run(nn, &op, SDRT_DTYPE_F32, 4, shape);
}

sdrt_tensor *sdrt_nn_group_norm(sdrt_nn *nn, const sdrt_tensor *x, const sdrt_tensor *gamma, const sdrt_tensor *beta,
                                int groups, float eps, int fuse_silu) {
    sdrt_op op = {.kind = SDRT_OP_GROUP_NORM, .src = {x, gamma, beta}, .iparams = {groups, fuse_silu ? 1 : 0},
                  .fparams = {eps}};
    return nn_same_shape(nn, &op);
}

sdrt_tensor *sdrt_nn_layer_norm(sdrt_nn *nn, const sdrt_tensor *x, const sdrt_tensor *gamma, const sdrt_tensor *beta,
                                float eps) {
    sdrt_op op = {.kind = SDRT_OP_LAYER_NORM, .src = {x, gamma, beta}, .fparams = {eps}};
    return nn_same_shape(nn, &op);
}

sdrt_tensor *sdrt_nn_softmax(sdrt_nn *nn, const sdrt_tensor *x, float scale) {
    sdrt_op op = {.kind = SDRT_OP_SOFTMAX, .src = {x}, .fparams = {scale}};
    return nn_same_shape(nn, &op);
}

sdrt_tensor *sdrt_nn_attention(sdrt_nn *nn, const sdrt_tensor *q, const sdrt_tensor *k, const sdrt_tensor *v,
                               float scale, int causal) {
    if (!nn_ready(nn) || !nn_check(nn, q && k && v && q->ndim == 4 && v->ndim == 4, "attention: q, k, v must be 4-D"))
        return NULL;
    int64_t shape[4] = {q->shape[0], q->shape[1], q->shape[2], v->shape[3]};
    sdrt_op op = {.kind = SDRT_OP_ATTENTION, .src = {q, k, v}, .iparams = {causal ? 1 : 0}, .fparams = {scale}};
    return nn_run(nn, &op, SDRT_DTYPE_F32, 4, shape);
}

static sdrt_tensor *nn_unary(sdrt_nn *nn, sdrt_op_kind kind, const sdrt_tensor *x) {
    sdrt_op op = {.kind = kind, .src = {x}};
    return nn_same_shape(nn, &op);
}

sdrt_tensor *sdrt_nn_gelu(sdrt_nn *nn, const sdrt_tensor *x) { return nn_unary(nn, SDRT_OP_GELU, x); }
sdrt_tensor *sdrt_nn_gelu_tanh(sdrt_nn *nn, const sdrt_tensor *x) { return nn_unary(nn, SDRT_OP_GELU_TANH, x); }
sdrt_tensor *sdrt_nn_quick_gelu(sdrt_nn *nn, const sdrt_tensor *x) { return nn_unary(nn, SDRT_OP_QUICK_GELU, x); }
sdrt_tensor *sdrt_nn_silu(sdrt_nn *nn, const sdrt_tensor *x) { return nn_unary(nn, SDRT_OP_SILU, x); }

sdrt_tensor *sdrt_nn_geglu(sdrt_nn *nn, const sdrt_tensor *x) {
    if (!nn_ready(nn) || !nn_check(nn, x && x->ndim >= 1 && x->shape[x->ndim - 1] % 2 == 0,
                                   "geglu: last dim must be even"))
        return NULL;
    int64_t shape[SDRT_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] /= 2;
    sdrt_op op = {.kind = SDRT_OP_GEGLU, .src = {x}};
    return nn_run(nn, &op, SDRT_DTYPE_F32, x->ndim, shape);
}

sdrt_tensor *sdrt_nn_add(sdrt_nn *nn, const sdrt_tensor *a, const sdrt_tensor *b) {
    sdrt_op op = {.kind = SDRT_OP_ADD, .src = {a, b}};
    return nn_same_shape(nn, &op);
}

sdrt_tensor *sdrt_nn_mul(sdrt_nn *nn, const sdrt_tensor *a, const sdrt_tensor *b) {
    sdrt_op op = {.kind = SDRT_OP_MUL, .src = {a, b}};
    return nn_same_shape(nn, &op);
}

sdrt_tensor *sdrt_nn_scale(sdrt_nn *nn, const sdrt_tensor *x, float scale, float bias) {
    sdrt_op op = {.kind = SDRT_OP_SCALE, .src = {x}, .fparams = {scale, bias}};
    return nn_same_shape(nn, &op);
}

sdrt_tensor *sdrt_nn_concat(sdrt_nn *nn, const sdrt_tensor *a, const sdrt_tensor *b, int dim) {
    if (!nn_ready(nn) || !nn_check(nn, a && b && a->ndim == b->ndim && a->ndim > 0, "concat: ranks differ"))
        return NULL;
    if (dim < 0) dim += a->ndim;
    if (!nn_check(nn, dim >= 0 && dim < a->ndim, "concat: dim out of range")) return NULL;
    int64_t shape[SDRT_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[dim] += b->shape[dim];
    sdrt_op op = {.kind = SDRT_OP_CONCAT, .src = {a, b}, .iparams = {dim}};
    return nn_run(nn, &op, a->dtype, a->ndim, shape);
}

sdrt_tensor *sdrt_nn_upsample2x(sdrt_nn *nn, const sdrt_tensor *x) {
    if (!nn_ready(nn) || !nn_check(nn, x && x->ndim == 4, "upsample2x: x must be [N,C,H,W]")) return NULL;
    int64_t shape[4] = {x->shape[0], x->shape[1], 2 * x->shape[2], 2 * x->shape[3]};
    sdrt_op op = {.kind = SDRT_OP_UPSAMPLE2X, .src = {x}};
    return nn_run(nn, &op, SDRT_DTYPE_F32, 4, shape);
}

sdrt_tensor *sdrt_nn_leaky_relu(sdrt_nn *nn, const sdrt_tensor *x, float slope) {
    if (!nn_ready(nn) || !nn_check(nn, x != NULL && slope != 0.0f, "leaky_relu: x missing or slope 0")) return NULL;
    sdrt_op op = {.kind = SDRT_OP_LEAKY_RELU, .src = {x}, .fparams = {slope}};
    return nn_run(nn, &op, SDRT_DTYPE_F32, x->ndim, x->shape);
}

sdrt_tensor *sdrt_nn_prelu(sdrt_nn *nn, const sdrt_tensor *x, const sdrt_tensor *slopes) {
    if (!nn_ready(nn) || !nn_check(nn, x && slopes && x->ndim >= 2, "prelu: x must have >= 2 dims, slopes given"))
        return NULL;
    sdrt_op op = {.kind = SDRT_OP_PRELU, .src = {x, slopes}};
    return nn_run(nn, &op, SDRT_DTYPE_F32, x->ndim, x->shape);
}

sdrt_tensor *sdrt_nn_pixel_shuffle(sdrt_nn *nn, const sdrt_tensor *x, int r) {
    if (!nn_ready(nn) || !nn_check(nn, x && x->ndim == 4 && r >= 1 && x->shape[1] % ((int64_t)r * r) == 0,
                                   "pixel_shuffle: x must be [N,C*r*r,H,W]"))
        return NULL;
    int64_t shape[4] = {x->shape[0], x->shape[1] / ((int64_t)r * r), x->shape[2] * r, x->shape[3] * r};
    sdrt_op op = {.kind = SDRT_OP_PIXEL_SHUFFLE, .src = {x}, .iparams = {r}};
    return nn_run(nn, &op, SDRT_DTYPE_F32, 4, shape);
}

sdrt_tensor *sdrt_nn_pixel_unshuffle(sdrt_nn *nn, const sdrt_tensor *x, int r) {
    if (!nn_ready(nn) || !nn_check(nn, x && x->ndim == 4 && r >= 1 && x->shape[2] % r == 0 && x->shape[3] % r == 0,
                                   "pixel_unshuffle: x must be [N,C,H*r,W*r]"))
        return NULL;
    int64_t shape[4] = {x->shape[0], x->shape[1] * r * r, x->shape[2] / r, x->shape[3] / r};
    sdrt_op op = {.kind = SDRT_OP_PIXEL_UNSHUFFLE, .src = {x}, .iparams = {r}};
    return nn_run(nn, &op, SDRT_DTYPE_F32, 4, shape);
}

sdrt_tensor *sdrt_nn_upsample_nearest(sdrt_nn *nn, const sdrt_tensor *x, int r) {
    if (!nn_ready(nn) || !nn_check(nn, x && x->ndim == 4 && r >= 1, "upsample_nearest: x must be [N,C,H,W], r >= 1"))
        return NULL;
    int64_t shape[4] = {x->shape[0], x->shape[1], x->shape[2] * r, x->shape[3] * r};
    sdrt_op op = {.kind = SDRT_OP_UPSAMPLE_NEAREST, .src = {x}, .iparams = {r}};
    return nn_run(nn, &op, SDRT_DTYPE_F32, 4, shape);
}

sdrt_tensor *sdrt_nn_timestep_embedding(sdrt_nn *nn, const sdrt_tensor *t, int dim, int flip_sin_to_cos,
                                        float downscale_freq_shift) {
    if (!nn_ready(nn) || !nn_check(nn, t && t->ndim == 1 && dim > 0, "timestep_embedding: t must be [N], dim > 0"))
        return NULL;
    int64_t shape[2] = {t->shape[0], dim};
    sdrt_op op = {.kind = SDRT_OP_TIMESTEP_EMB, .src = {t}, .iparams = {dim, flip_sin_to_cos ? 1 : 0},
                  .fparams = {downscale_freq_shift}};
    return nn_run(nn, &op, SDRT_DTYPE_F32, 2, shape);
}

sdrt_tensor *sdrt_nn_copy(sdrt_nn *nn, const sdrt_tensor *x, sdrt_dtype dtype) {
    if (!nn_ready(nn) || !nn_check(nn, x != NULL, "copy: input is NULL")) return NULL;
    sdrt_op op = {.kind = SDRT_OP_COPY, .src = {x}};
    return nn_run(nn, &op, dtype, x->ndim, x->shape);
}
