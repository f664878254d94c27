/* sdk/helpers/nn.c - sdrt/nn.h over the backend ABI.
 *
 * Works with any device. Eager: every tensor is its own buffer of the
 * device's buffer type, ops go through the context's stream, host transfers
 * through buffer->iface->write/read. Graph: ops are recorded with virtual
 * operand addresses (a sentinel buffer plus an offset in a virtual space),
 * planned into one arena at graph_end and translated before submission.
 * Weights come from weight stores (resident, shared) or private uploads.
 * Errors are sticky (the first failure wins and later calls do nothing) and
 * cancellation is polled before every op.
 */
#include "sdrt/nn.h"

#include "sdrt/quant.h"


#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NN_MAGIC 0x6e6e7431u /* "nnt1": marks tensors this file allocated */
#define NN_MAX_STORES 4
#define NN_ALIGN 256 /* arena offsets: enough for every backend's vector loads */

/* An owned tensor. `t` comes first so a tensor pointer is its node.
 * Eager tensors own `buf`. Tensors made while a graph is recorded are
 * virtual until sdrt_nn_graph_end: t.buffer is the context's sentinel and
 * t.data the virtual address vofs; then they live in the arena
 * (in_arena) until dropped or until the next graph begins, which moves
 * the survivors into buffers of their own. */
typedef struct nn_node {
    sdrt_tensor t;
    uint32_t magic;
    sdrt_buffer *buf;
    struct nn_node *prev, *next;
    int is_weight;  /* a private weight upload (in the weight map) */
    int in_graph;   /* recorded in the current graph */
    int in_arena;   /* memory is the arena's */
    size_t vofs, bytes;
    size_t birth, death; /* op interval [birth, death); death 0 = alive */
    size_t offset;       /* planned arena offset */
    int deferred;        /* eager node dropped while recording */
    int held_weight;     /* a private weight upload counted in nn->held */
    uint64_t wseq;       /* private weight: nn->ops when last asked for */
} nn_node;

/* The weight map: (host data, dtype, shape) -> operand, open addressing. */
typedef struct nn_wentry {
    const void *host_data;
    sdrt_dtype dtype;
    int ndim;
    int64_t shape[SDRT_MAX_DIMS], strides[SDRT_MAX_DIMS];
    const sdrt_tensor *operand; /* a store's copy viewed as `desc`, or a private node */
    sdrt_tensor desc;
    nn_node *node; /* private upload, else NULL */
} nn_wentry;

/* A recorded op: operands copied by value (callers pass stack views). */
typedef struct nn_rec {
    sdrt_op op;
    sdrt_tensor src[SDRT_OP_MAX_SRC];
    sdrt_tensor dst;
    nn_node *dst_node;
} nn_rec;

/* An input written from host memory before the graph runs. */
typedef struct nn_input {
    nn_node *node;
    void *data; /* malloc'd copy */
} nn_input;

/* The cached memory plan of one graph shape. */
typedef struct nn_plan {
    uint64_t *key;
    size_t n_key;
    size_t *offsets; /* per recorded node, in creation order */
    size_t n_nodes, arena_bytes, peak_live;
} nn_plan;

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
    /* weights */
    nn_wentry **wtab;
    size_t wcap, wn;
    sdrt_weight_store *stores[NN_MAX_STORES];
    int store_pinned[NN_MAX_STORES];
    int n_stores;
    uint64_t uploaded;
    int offload;       /* sdrt_offload */
    uint64_t ops;      /* ops submitted eagerly: a private weight last asked
                        * for before the latest one is no longer needed
                        * (SEQUENTIAL frees it) */
    uint64_t held;     /* bytes of private weight uploads alive */
    int passthrough;   /* SEQUENTIAL: between graph_begin and graph_end, ops
                        * run eagerly */
    /* graph recording */
    int recording;
    sdrt_buffer vbuf; /* sentinel: t.buffer of virtual tensors */
    size_t vtop;
    nn_rec *recs;
    size_t n_recs, cap_recs;
    nn_node **gnodes; /* virtual nodes, creation (= vofs) order */
    size_t n_gnodes, cap_gnodes;
    nn_input *inputs;
    size_t n_inputs, cap_inputs;
    /* arena and plans */
    sdrt_buffer *arena;
    size_t arena_size;
    nn_plan plans[4];
    int next_plan;
    sdrt_op *gops;
    size_t cap_gops;
    /* The last NN_KEYS distinct graphs' fingerprints and keys: graphs that
     * alternate (a batch split into calls of two sizes) keep their keys. */
    struct {
        uint64_t *fp;
        size_t n;
        uint64_t key;
    } keys[4];
    int next_slot;
    uint64_t replay_key, next_key;
    size_t last_arena, last_peak;
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

/* The sentinel buffer is never handed to a backend (graph_end translates
 * every virtual operand first); its iface fails loudly if it were. */
static void nn_vbuf_free(sdrt_buffer *b) { (void)b; }
static void *nn_vbuf_base(sdrt_buffer *b) { (void)b; return NULL; }
static void nn_vbuf_rw(sdrt_buffer *b, void *d, const void *s, size_t n) { (void)b, (void)d, (void)s, (void)n; abort(); }
static const sdrt_buffer_iface g_vbuf_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_buffer_iface, read),
    .free = nn_vbuf_free, .base = nn_vbuf_base, .write = nn_vbuf_rw, .read = nn_vbuf_rw,
};

/* A family without stream_open predates the "precision" key and ignores
 * it: it computes as every family did before, f32 activations and
 * accumulation with weights as stored, which is what "auto" and "f32"
 * ask of it (a force_upcast VAE asks "f32" everywhere). Any other value
 * is refused rather than run as something else. Returns 1 and the value
 * (for the message: the text after "precision":", up to the next quote)
 * when the params name such a value. */
static int nn_params_need_precision(const char *params_json, char *value, size_t n) {
    const char *k = params_json ? strstr(params_json, "\"precision\"") : NULL;
    if (!k) return 0;
    const char *v = strchr(k + 11, '"');
    const char *end = v ? strchr(v + 1, '"') : NULL;
    snprintf(value, n, "%.*s", end ? (int)(end - v - 1) : 1, end ? v + 1 : "?");
    return strcmp(value, "auto") != 0 && strcmp(value, "f32") != 0;
}

sdrt_status sdrt_nn_create(sdrt_device *dev, const char *params_json, int (*is_cancelled)(sdrt_job *job),
                           sdrt_job *job, sdrt_nn **out, char *msg, size_t msg_size) {
    *out = NULL;
    if (msg && msg_size) msg[0] = 0;
    if (!dev || !dev->iface || !dev->iface->buffer_type || !dev->iface->stream_new) {
        if (msg && msg_size) snprintf(msg, msg_size, "no compute device");
        return SDRT_INVALID_ARGUMENT;
    }
    const char *dev_name = dev->iface->name ? dev->iface->name(dev) : "the device";
    char asked[32];
    if (!SDRT_IFACE_HAS_(dev->iface, sdrt_device_iface, stream_open) &&
        nn_params_need_precision(params_json, asked, sizeof asked)) {
        if (msg && msg_size)
            snprintf(msg, msg_size,
                     "precision: \"%s\" is not supported on %s (its backend family selects no precision: it runs "
                     "\"auto\" and \"f32\")",
                     asked, dev_name);
        return SDRT_UNSUPPORTED;
    }
    sdrt_nn *nn = calloc(1, sizeof *nn);
    if (!nn) {
        if (msg && msg_size) snprintf(msg, msg_size, "out of host memory");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    nn->dev = dev;
    nn->bt = dev->iface->buffer_type(dev);
    sdrt_status st = sdrt_device_stream_open(dev, params_json, &nn->stream, msg, msg_size);
    if (st == SDRT_OK && (!nn->bt || !nn->stream)) st = SDRT_RESOURCE_EXHAUSTED;
    if (st != SDRT_OK) {
        if (msg && msg_size && !msg[0]) snprintf(msg, msg_size, "cannot open a compute stream on %s", dev_name);
        sdrt_stream_free(nn->stream);
        free(nn);
        return st;
    }
    nn->is_host = nn->bt->iface->is_host ? nn->bt->iface->is_host(nn->bt) : 0;
    nn->is_cancelled = is_cancelled;
    nn->job = job;
    nn->vbuf.iface = &g_vbuf_iface;
    nn->vbuf.type = nn->bt;
    nn->next_key = 1;
    *out = nn;
    return SDRT_OK;
}

sdrt_nn *sdrt_nn_new(sdrt_device *dev, const char *params_json, int (*is_cancelled)(sdrt_job *job),
                     sdrt_job *job) {
    sdrt_nn *nn = NULL;
    sdrt_nn_create(dev, params_json, is_cancelled, job, &nn, NULL, 0);
    return nn;
}

static void nn_weight_forget(sdrt_nn *nn, nn_node *node);
static sdrt_status nn_submit(sdrt_nn *nn, const sdrt_op *op);

static void nn_node_free(sdrt_nn *nn, nn_node *node) {
    if (node->held_weight) nn->held -= node->bytes;
    if (node->prev) node->prev->next = node->next;
    else nn->live = node->next;
    if (node->next) node->next->prev = node->prev;
    if (node->is_weight) nn_weight_forget(nn, node);
    node->magic = 0;
    sdrt_buffer_free(node->buf);
    free(node);
}

static void nn_graph_discard(sdrt_nn *nn);

static void nn_plan_clear(nn_plan *p) {
    free(p->key);
    free(p->offsets);
    memset(p, 0, sizeof *p);
}

void sdrt_nn_free(sdrt_nn *nn) {
    if (!nn) return;
    sdrt_stream_synchronize(nn->stream);
    if (nn->recording) nn_graph_discard(nn);
    for (size_t i = 0; i < nn->wcap; i++) free(nn->wtab[i]);
    free(nn->wtab);
    nn->wtab = NULL;
    nn->wcap = 0;
    while (nn->live) {
        nn->live->is_weight = 0;
        nn_node_free(nn, nn->live);
    }
    /* The graph that used the resident copies has completed. */
    for (int i = 0; i < nn->n_stores; i++)
        if (nn->store_pinned[i]) nn->stores[i]->iface->unpin(nn->stores[i], nn->dev);
    sdrt_buffer_free(nn->arena);
    for (int i = 0; i < 4; i++) nn_plan_clear(&nn->plans[i]);
    free(nn->recs);
    free(nn->gnodes);
    free(nn->inputs);
    free(nn->gops);
    for (int i = 0; i < 4; i++) free(nn->keys[i].fp);
    sdrt_stream_free(nn->stream);
    free(nn);
}

/* ---- tensors ------------------------------------------------------------ */

int64_t sdrt_nn_numel(const sdrt_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
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

static int nn_grow(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *p = realloc(*arr, c * elem);
    if (!p) return -1;
    *arr = p;
    *cap = c;
    return 0;
}

static size_t nn_align(size_t n) {
    return (n + NN_ALIGN - 1) / NN_ALIGN * NN_ALIGN;
}

/* A device buffer; when the device is out of memory, the stores' copies
 * nobody pins on it (cached weights of earlier requests) are freed and the
 * allocation is tried once more. */
static sdrt_buffer *nn_buffer_alloc(sdrt_nn *nn, size_t bytes) {
    sdrt_buffer *buf = sdrt_buffer_alloc(nn->bt, bytes);
    if (buf || nn->is_host) return buf;
    uint64_t freed = 0;
    for (int i = 0; i < nn->n_stores; i++) {
        sdrt_weight_store *ws = nn->stores[i];
        if (SDRT_HAS_MEMBER(ws->iface, sdrt_weight_store_iface, trim) && ws->iface->trim)
            freed += ws->iface->trim(ws, nn->dev);
    }
    return freed ? sdrt_buffer_alloc(nn->bt, bytes) : NULL;
}

/* A new node; eager (own buffer) unless recording and !force_eager. */
static nn_node *nn_new_node(sdrt_nn *nn, sdrt_dtype dtype, int ndim, const int64_t *shape, int force_eager) {
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
    node->bytes = bytes ? bytes : es;
    if (nn->recording && !force_eager) {
        if (nn_grow((void **)&nn->gnodes, &nn->cap_gnodes, nn->n_gnodes + 1, sizeof *nn->gnodes) != 0) {
            free(node);
            nn_fail(nn, SDRT_RESOURCE_EXHAUSTED, "new_tensor: out of host memory");
            return NULL;
        }
        node->in_graph = 1;
        node->vofs = nn->vtop;
        nn->vtop += nn_align(node->bytes);
        node->birth = nn->n_recs;
        node->t.data = (void *)(uintptr_t)node->vofs;
        node->t.buffer = &nn->vbuf;
        nn->gnodes[nn->n_gnodes++] = node;
    } else {
        node->buf = nn_buffer_alloc(nn, node->bytes);
        if (!node->buf) {
            free(node);
            nn_fail(nn, SDRT_RESOURCE_EXHAUSTED, "new_tensor: %s could not allocate %zu bytes",
                    nn->dev->iface->name(nn->dev), bytes);
            return NULL;
        }
        node->t.data = node->buf->iface->base(node->buf);
        node->t.buffer = node->buf;
    }
    node->magic = NN_MAGIC;
    node->next = nn->live;
    if (nn->live) nn->live->prev = node;
    nn->live = node;
    return node;
}

sdrt_tensor *sdrt_nn_new_tensor(sdrt_nn *nn, sdrt_dtype dtype, int ndim, const int64_t *shape) {
    nn_node *node = nn_new_node(nn, dtype, ndim, shape, 0);
    return node ? &node->t : NULL;
}

void sdrt_nn_drop(sdrt_nn *nn, sdrt_tensor *t) {
    if (!nn || !t) return;
    nn_node *node = (nn_node *)(void *)t;
    if (node->magic != NN_MAGIC) return; /* not ours: nothing to release */
    if (node->in_graph) {
        /* Its memory is free for ops recorded from now on; the node stays
         * until graph_end translated every operand. */
        if (!node->death) node->death = nn->n_recs > node->birth ? nn->n_recs : node->birth + 1;
        return;
    }
    /* A recorded op may still read it: freed when the graph has run. */
    if (nn->recording) {
        node->deferred = 1;
        return;
    }
    nn_node_free(nn, node);
}

/* Host bytes into an eager tensor's buffer. */
static void nn_write(const sdrt_tensor *t, const void *data, size_t bytes) {
    if (bytes) t->buffer->iface->write(t->buffer, t->data, data, bytes);
}

static sdrt_tensor *nn_from_host(sdrt_nn *nn, sdrt_dtype dtype, int ndim, const int64_t *shape, const void *data,
                                 int force_eager) {
    nn_node *node = nn_new_node(nn, dtype, ndim, shape, force_eager);
    if (!node) return NULL;
    size_t bytes = (size_t)sdrt_nn_numel(&node->t) * nn_dtype_size(dtype);
    if (bytes && !data) {
        if (node->in_graph) node->death = node->birth + 1;
        else nn_node_free(nn, node);
        nn_fail(nn, SDRT_INVALID_ARGUMENT, "from_host: data is NULL");
        return NULL;
    }
    if (!node->in_graph) {
        nn_write(&node->t, data, bytes);
        return &node->t;
    }
    /* A graph input: live from the graph's start, written before it runs
     * (from a copy: the caller's memory may be gone by then). */
    node->birth = 0;
    void *copy = malloc(bytes ? bytes : 1);
    if (!copy || nn_grow((void **)&nn->inputs, &nn->cap_inputs, nn->n_inputs + 1, sizeof *nn->inputs) != 0) {
        free(copy);
        nn_fail(nn, SDRT_RESOURCE_EXHAUSTED, "from_host: out of host memory");
        return NULL;
    }
    if (bytes) memcpy(copy, data, bytes);
    nn->inputs[nn->n_inputs++] = (nn_input){node, copy};
    return &node->t;
}

sdrt_tensor *sdrt_nn_from_host(sdrt_nn *nn, sdrt_dtype dtype, int ndim, const int64_t *shape, const void *data) {
    return nn_from_host(nn, dtype, ndim, shape, data, 0);
}

/* ---- weights ---------------------------------------------------------------- */

static size_t nn_whash(const void *p, sdrt_dtype dt, int ndim, const int64_t *shape, const int64_t *strides) {
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull ^ (uint64_t)dt;
    for (int i = 0; i < ndim; i++) h = (h ^ (uint64_t)shape[i] ^ (uint64_t)strides[i] << 32) * 0x100000001b3ull;
    return (size_t)(h ^ (h >> 31));
}

static int nn_wmatch(const nn_wentry *e, const sdrt_tensor *w) {
    if (e->host_data != w->data || e->dtype != w->dtype || e->ndim != w->ndim) return 0;
    for (int i = 0; i < w->ndim; i++)
        if (e->shape[i] != w->shape[i] || e->strides[i] != w->strides[i]) return 0;
    return 1;
}

static nn_wentry *nn_wfind(sdrt_nn *nn, const sdrt_tensor *w) {
    if (!nn->wcap) return NULL;
    for (size_t i = nn_whash(w->data, w->dtype, w->ndim, w->shape, w->strides) & (nn->wcap - 1);;
         i = (i + 1) & (nn->wcap - 1)) {
        nn_wentry *e = nn->wtab[i];
        if (!e) return NULL;
        if (nn_wmatch(e, w)) return e;
    }
}

static void nn_wput(nn_wentry **tab, size_t cap, nn_wentry *e) {
    size_t i = nn_whash(e->host_data, e->dtype, e->ndim, e->shape, e->strides) & (cap - 1);
    while (tab[i]) i = (i + 1) & (cap - 1);
    tab[i] = e;
}

static int nn_winsert(sdrt_nn *nn, nn_wentry *e) {
    if (2 * (nn->wn + 1) > nn->wcap) {
        size_t cap = nn->wcap ? 2 * nn->wcap : 512;
        nn_wentry **tab = calloc(cap, sizeof *tab);
        if (!tab) return -1;
        for (size_t i = 0; i < nn->wcap; i++)
            if (nn->wtab[i]) nn_wput(tab, cap, nn->wtab[i]);
        free(nn->wtab);
        nn->wtab = tab;
        nn->wcap = cap;
    }
    nn_wput(nn->wtab, nn->wcap, e);
    nn->wn++;
    return 0;
}

/* A private weight node is being dropped: remove its map entry and
 * reinsert the rest of its probe run (linear-probing deletion). */
static void nn_weight_forget(sdrt_nn *nn, nn_node *node) {
    size_t at = nn->wcap;
    for (size_t i = 0; i < nn->wcap; i++)
        if (nn->wtab[i] && nn->wtab[i]->node == node) at = i;
    if (at == nn->wcap) return;
    free(nn->wtab[at]);
    nn->wtab[at] = NULL;
    nn->wn--;
    for (size_t i = (at + 1) & (nn->wcap - 1); nn->wtab[i]; i = (i + 1) & (nn->wcap - 1)) {
        nn_wentry *e = nn->wtab[i];
        nn->wtab[i] = NULL;
        nn_wput(nn->wtab, nn->wcap, e);
    }
}

void sdrt_nn_host_gather(const sdrt_tensor *t, void *out_) {
    char *out = out_;
    size_t es = nn_dtype_size(t->dtype);
    int64_t idx[SDRT_MAX_DIMS] = {0}, n = sdrt_nn_numel(t);
    for (int64_t k = 0; k < n; k++) {
        int64_t off = 0;
        for (int i = 0; i < t->ndim; i++) off += idx[i] * t->strides[i];
        memcpy(out + (size_t)k * es, (const char *)t->data + off * (int64_t)es, es);
        for (int i = t->ndim - 1; i >= 0 && ++idx[i] == t->shape[i]; i--) idx[i] = 0;
    }
}

/* Elements per conversion chunk: bounds the float32 scratch. */
#define NN_CONVERT_CHUNK 65536

static int nn_float_dtype(sdrt_dtype dt) {
    return dt == SDRT_DTYPE_F32 || dt == SDRT_DTYPE_F16 || dt == SDRT_DTYPE_BF16;
}

int sdrt_nn_host_convert(const sdrt_tensor *t, sdrt_dtype dtype, void *out) {
    if (dtype == t->dtype) {
        sdrt_nn_host_gather(t, out);
        return 0;
    }
    if (!nn_float_dtype(t->dtype) || !nn_float_dtype(dtype)) return -1;
    int64_t n = sdrt_nn_numel(t);
    size_t es_in = nn_dtype_size(t->dtype), es_out = nn_dtype_size(dtype);
    void *gathered = NULL;
    const char *src = t->data;
    if (!sdrt_nn_is_contiguous(t)) {
        if (!(gathered = malloc((size_t)n * es_in + 1))) return -1;
        sdrt_nn_host_gather(t, gathered);
        src = gathered;
    }
    float *f = malloc(sizeof(float) * (size_t)(n < NN_CONVERT_CHUNK ? n + 1 : NN_CONVERT_CHUNK));
    int rc = f ? 0 : -1;
    for (int64_t i = 0; rc == 0 && i < n; i += NN_CONVERT_CHUNK) {
        int64_t k = n - i < NN_CONVERT_CHUNK ? n - i : NN_CONVERT_CHUNK;
        rc = sdrt_dequant_row(t->dtype, src + (size_t)i * es_in, f, k);
        if (rc == 0) rc = sdrt_quant_row(dtype, f, (char *)out + (size_t)i * es_out, k);
    }
    free(f);
    free(gathered);
    return rc;
}

/* The dtype this context's stream wants a parameter stored as on the
 * device; only plain float dtypes convert (quantized weights stay). */
static sdrt_dtype nn_weight_dtype(sdrt_nn *nn, sdrt_dtype stored) {
    if (!nn_float_dtype(stored)) return stored;
    sdrt_dtype want = sdrt_stream_weight_dtype(nn->stream, stored);
    return nn_float_dtype(want) ? want : stored;
}

int sdrt_nn_add_weight_store(sdrt_nn *nn, sdrt_weight_store *ws) {
    if (!nn || !ws || !ws->iface) return -1;
    for (int i = 0; i < nn->n_stores; i++)
        if (nn->stores[i] == ws) return 0;
    if (nn->n_stores == NN_MAX_STORES) return -1;
    nn->stores[nn->n_stores++] = ws;
    return 0;
}

uint64_t sdrt_nn_weight_bytes_uploaded(const sdrt_nn *nn) {
    return nn ? nn->uploaded : 0;
}

/* The store covering `w`, pinned on this context's device when `pin`;
 * -1 if none. */
static int nn_store_for(sdrt_nn *nn, const sdrt_tensor *w, size_t bytes, int pin) {
    for (int i = 0; i < nn->n_stores; i++) {
        sdrt_weight_store *ws = nn->stores[i];
        if (!ws->iface->covers(ws, w->data, bytes)) continue;
        if (pin && !nn->store_pinned[i]) {
            ws->iface->pin(ws, nn->dev);
            nn->store_pinned[i] = 1;
        }
        return i;
    }
    return -1;
}

/* SEQUENTIAL: frees the private weights no op since the last submitted one
 * asked for (their ops are enqueued; a buffer free completes the work that
 * reads it first, as the backend ABI says). */
static void nn_stream_out(sdrt_nn *nn) {
    for (nn_node *n = nn->live, *next; n; n = next) {
        next = n->next;
        if (n->is_weight && n->wseq < nn->ops) nn_node_free(nn, n);
    }
}

/* A private device copy of host weight `w` in form `want` (`dev_bytes` of
 * it, contiguous in the copy; a strided view is gathered, another form
 * converted, on the host), or NULL with the context failed. */
static nn_node *nn_private_weight(sdrt_nn *nn, const sdrt_tensor *w, sdrt_dtype want, size_t dev_bytes) {
    void *staged = NULL;
    int direct = sdrt_nn_is_contiguous(w) && want == w->dtype;
    if (!direct && !(staged = malloc(dev_bytes ? dev_bytes : 1))) {
        nn_fail(nn, SDRT_RESOURCE_EXHAUSTED, "weight: out of host memory");
        return NULL;
    }
    if (staged && sdrt_nn_host_convert(w, want, staged) != 0) {
        free(staged);
        nn_fail(nn, SDRT_INVALID_ARGUMENT, "weight: cannot convert to the stream's form");
        return NULL;
    }
    nn_node *node = nn_new_node(nn, want, w->ndim, w->shape, 1);
    if (node) {
        nn_write(&node->t, staged ? staged : w->data, dev_bytes);
        node->held_weight = 1;
        nn->held += node->bytes;
    }
    free(staged);
    return node;
}

const sdrt_tensor *sdrt_nn_weight(sdrt_nn *nn, const sdrt_tensor *host_weight) {
    if (!nn_ready(nn)) return NULL;
    if (!host_weight || (!host_weight->data && sdrt_nn_numel(host_weight) > 0)) {
        nn_fail(nn, SDRT_INVALID_ARGUMENT, "weight: no tensor or no data");
        return NULL;
    }
    /* Host-memory devices read the weight where it lies (the mmap). */
    if (nn->is_host) return host_weight;
    nn_wentry *e = nn_wfind(nn, host_weight);
    if (e) {
        if (e->node) e->node->wseq = nn->ops; /* needed again by the next op */
        return e->operand;
    }
    e = calloc(1, sizeof *e);
    if (!e) {
        nn_fail(nn, SDRT_RESOURCE_EXHAUSTED, "weight: out of host memory");
        return NULL;
    }
    e->host_data = host_weight->data;
    e->dtype = host_weight->dtype;
    e->ndim = host_weight->ndim;
    memcpy(e->shape, host_weight->shape, sizeof e->shape);
    memcpy(e->strides, host_weight->strides, sizeof e->strides);
    size_t bytes = (size_t)sdrt_nn_numel(host_weight) * nn_dtype_size(host_weight->dtype);
    /* The form the stream's precision asks for (F32 -> F16 in an f16
     * stream, F16 -> F32 in an f32 one): converted at upload, and kept
     * apart from copies in other forms by the store. */
    sdrt_dtype want = nn_weight_dtype(nn, host_weight->dtype);
    size_t dev_bytes = (size_t)sdrt_nn_numel(host_weight) * nn_dtype_size(want);
    int resident = nn->offload == SDRT_OFFLOAD_NONE;
    int si = nn_store_for(nn, host_weight, bytes, resident);
    sdrt_weight_store *ws = si >= 0 && resident ? nn->stores[si] : NULL;
    const sdrt_tensor *res = NULL;
    uint64_t up = 0;
    sdrt_status st = SDRT_RESOURCE_EXHAUSTED;
    if (ws && want == host_weight->dtype)
        st = ws->iface->acquire(ws, nn->dev, host_weight, nn->job, &res, &up);
    else if (ws && SDRT_IFACE_HAS_(ws->iface, sdrt_weight_store_iface, acquire_as))
        st = ws->iface->acquire_as(ws, nn->dev, host_weight, want, nn->job, &res, &up);
    if (st == SDRT_OK) {
        nn->uploaded += up;
        /* The store's copy under this caller's shape (a reshaped view of the
         * same bytes shares the copy). */
        nn_fill_desc(&e->desc, want, host_weight->ndim, host_weight->shape);
        e->desc.data = res->data;
        e->desc.buffer = res->buffer;
        e->operand = &e->desc;
    } else {
        /* Not resident (an offload mode, or no room in the store): a copy
         * private to this context in the stream's form, counted as
         * uploaded. */
        if (nn->offload == SDRT_OFFLOAD_SEQUENTIAL) nn_stream_out(nn);
        nn_node *node = nn_private_weight(nn, host_weight, want, dev_bytes);
        if (!node) {
            free(e);
            return NULL;
        }
        node->is_weight = 1;
        node->wseq = nn->ops;
        e->node = node;
        e->operand = &node->t;
        nn->uploaded += dev_bytes;
        /* Counted for the job through the covering store, else any: the
         * owner's per-job count is what a request reports. */
        sdrt_weight_store *acct = si >= 0 ? nn->stores[si] : nn->n_stores ? nn->stores[0] : NULL;
        if (acct && acct->iface->note_upload) acct->iface->note_upload(acct, nn->job, dev_bytes);
    }
    if (nn_winsert(nn, e) != 0) {
        if (e->node) {
            e->node->is_weight = 0;
            nn_node_free(nn, e->node);
        }
        free(e);
        nn_fail(nn, SDRT_RESOURCE_EXHAUSTED, "weight: out of host memory");
        return NULL;
    }
    return e->operand;
}

void sdrt_nn_release_weights(sdrt_nn *nn) {
    if (!nn || nn->recording) return;
    sdrt_stream_synchronize(nn->stream); /* the ops reading them are done */
    for (size_t i = 0; i < nn->wcap; i++) {
        nn_wentry *e = nn->wtab[i];
        if (!e) continue;
        if (e->node) {
            e->node->is_weight = 0; /* the map is cleared here, not per node */
            nn_node_free(nn, e->node);
        }
        free(e);
        nn->wtab[i] = NULL;
    }
    nn->wn = 0;
    for (int i = 0; i < nn->n_stores; i++)
        if (nn->store_pinned[i]) {
            nn->stores[i]->iface->unpin(nn->stores[i], nn->dev);
            nn->store_pinned[i] = 0;
        }
}

sdrt_status sdrt_nn_set_offload(sdrt_nn *nn, int mode) {
    if (!nn) return SDRT_INVALID_ARGUMENT;
    if (mode != SDRT_OFFLOAD_NONE && mode != SDRT_OFFLOAD_MODEL && mode != SDRT_OFFLOAD_SEQUENTIAL) {
        nn_fail(nn, SDRT_INVALID_ARGUMENT, "offload: mode %d is not none (0), model (1) or sequential (2)", mode);
        return SDRT_INVALID_ARGUMENT;
    }
    if (nn->recording || nn->passthrough) {
        nn_fail(nn, SDRT_FAILED_PRECONDITION, "offload: not while a graph is recorded");
        return SDRT_FAILED_PRECONDITION;
    }
    sdrt_nn_release_weights(nn);
    nn->offload = mode;
    return SDRT_OK;
}

uint64_t sdrt_nn_weight_bytes_held(const sdrt_nn *nn) {
    return nn ? nn->held : 0;
}

size_t sdrt_nn_release_arena(sdrt_nn *nn) {
    if (!nn || !nn->arena || nn->recording) return 0;
    for (nn_node *n = nn->live; n; n = n->next)
        if (n->in_arena) return 0;
    sdrt_stream_synchronize(nn->stream); /* the last graph read and wrote it */
    size_t freed = nn->arena_size;
    sdrt_buffer_free(nn->arena);
    nn->arena = NULL;
    nn->arena_size = 0;
    return freed;
}

/* Bytes of t copied to host: through its buffer when it has one. */
static void nn_read(const sdrt_tensor *t, void *out, size_t bytes) {
    if (!bytes) return;
    if (t->buffer) t->buffer->iface->read(t->buffer, out, t->data, bytes);
    else memcpy(out, t->data, bytes);
}

sdrt_tensor *sdrt_nn_copy(sdrt_nn *nn, const sdrt_tensor *x, sdrt_dtype dtype);

sdrt_status sdrt_nn_synchronize(sdrt_nn *nn) {
    if (!nn_ready(nn)) return nn ? nn->status : SDRT_INVALID_ARGUMENT;
    if (nn->recording) {
        nn_fail(nn, SDRT_FAILED_PRECONDITION, "synchronize: not while a graph is recorded");
        return nn->status;
    }
    sdrt_stream_synchronize(nn->stream);
    return SDRT_OK;
}

sdrt_status sdrt_nn_to_host_f32(sdrt_nn *nn, const sdrt_tensor *t, float *out) {
    if (!nn_ready(nn)) return nn ? nn->status : SDRT_INVALID_ARGUMENT;
    if (!t || !out) {
        nn_fail(nn, SDRT_INVALID_ARGUMENT, "to_host_f32: tensor or output is NULL");
        return nn->status;
    }
    if (nn->recording) {
        nn_fail(nn, SDRT_FAILED_PRECONDITION, "to_host_f32: not while a graph is recorded (read after graph_end)");
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

/* Runs `op` now, or records it (operands copied by value) in a graph. */
static sdrt_status nn_submit(sdrt_nn *nn, const sdrt_op *op) {
    if (!nn->recording) {
        nn->ops++;
        return sdrt_stream_compute(nn->stream, op);
    }
    if (nn_grow((void **)&nn->recs, &nn->cap_recs, nn->n_recs + 1, sizeof *nn->recs) != 0)
        return SDRT_RESOURCE_EXHAUSTED;
    nn_rec *r = &nn->recs[nn->n_recs++];
    memset(r, 0, sizeof *r);
    r->op = *op;
    for (int i = 0; i < SDRT_OP_MAX_SRC; i++) {
        r->op.src[i] = NULL;
        if (op->src[i]) r->src[i] = *op->src[i];
    }
    r->dst = *op->dst;
    r->op.dst = NULL;
    return SDRT_OK;
}

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
    sdrt_status st = nn_submit(nn, op);
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
    int64_t ka = a->shape[a->ndim - 1], kb = b->shape[b->ndim - (transpose_b ? 1 : 2)];
    if (ka != kb) {
        /* Caught here too so that a recorded graph fails where it is built. */
        nn_fail(nn, SDRT_INVALID_ARGUMENT, "MATMUL: inner dimensions differ (%lld vs %lld)", (long long)ka,
                (long long)kb);
        return NULL;
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
    if (x->shape[x->ndim - 1] != w->shape[1]) {
        nn_fail(nn, SDRT_INVALID_ARGUMENT, "MATMUL (linear): input width %lld, weight expects %lld",
                (long long)x->shape[x->ndim - 1], (long long)w->shape[1]);
        return NULL;
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
    sdrt_status st = nn_submit(nn, &op);
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

/* ---- graphs ---------------------------------------------------------------- */

/* Moves tensors still in the arena from the last graph into buffers of
 * their own: the next graph reuses the arena. */
static sdrt_status nn_evacuate(sdrt_nn *nn) {
    int synced = 0;
    for (nn_node *n = nn->live; n; n = n->next) {
        if (!n->in_arena) continue;
        if (!synced) sdrt_stream_synchronize(nn->stream), synced = 1;
        sdrt_buffer *buf = nn_buffer_alloc(nn, n->bytes);
        if (!buf) return SDRT_RESOURCE_EXHAUSTED;
        void *base = buf->iface->base(buf);
        sdrt_status st = sdrt_buffer_copy(buf, base, nn->arena, n->t.data, n->bytes);
        if (st != SDRT_OK) {
            sdrt_buffer_free(buf);
            return st;
        }
        n->buf = buf;
        n->t.data = base;
        n->t.buffer = buf;
        n->in_arena = 0;
    }
    return SDRT_OK;
}

sdrt_status sdrt_nn_graph_begin(sdrt_nn *nn) {
    if (!nn_ready(nn)) return nn ? nn->status : SDRT_INVALID_ARGUMENT;
    if (nn->recording || nn->passthrough) {
        nn_fail(nn, SDRT_FAILED_PRECONDITION, "graph_begin: a graph is already being recorded");
        return nn->status;
    }
    sdrt_status st = nn_evacuate(nn);
    if (st != SDRT_OK) {
        nn_fail(nn, st, "graph_begin: cannot keep the last graph's outputs (out of device memory)");
        return st;
    }
    if (nn->offload == SDRT_OFFLOAD_SEQUENTIAL && !nn->is_host) {
        nn->passthrough = 1; /* weights come and go per op: run eagerly */
        return SDRT_OK;
    }
    nn->recording = 1;
    nn->n_recs = nn->n_gnodes = nn->n_inputs = 0;
    nn->vtop = NN_ALIGN; /* virtual address 0 stays NULL */
    return SDRT_OK;
}

/* Ends recording: frees dropped virtual nodes and deferred eager ones;
 * outputs stay (in the arena when `ran`, else as empty nodes). */
static void nn_graph_finish(sdrt_nn *nn, int ran) {
    for (size_t i = 0; i < nn->n_gnodes; i++) {
        nn_node *n = nn->gnodes[i];
        n->in_graph = 0;
        if (n->death) {
            nn_node_free(nn, n);
        } else if (!ran) {
            n->t.data = NULL;
            n->t.buffer = NULL;
        } else {
            n->in_arena = 1;
        }
    }
    for (size_t i = 0; i < nn->n_inputs; i++) free(nn->inputs[i].data);
    nn->n_recs = nn->n_gnodes = nn->n_inputs = 0;
    nn->recording = 0;
    for (nn_node *n = nn->live, *next; n; n = next) {
        next = n->next;
        if (n->deferred) nn_node_free(nn, n);
    }
}

static void nn_graph_discard(sdrt_nn *nn) {
    nn_graph_finish(nn, 0);
}

/* ggml-alloc's dynamic allocator in miniature: free blocks sorted by
 * offset, best fit, merged on free; `top` is the high-water mark. */
typedef struct nn_block {
    size_t off, size;
} nn_block;

typedef struct nn_alloc {
    nn_block *free;
    size_t n, cap, top;
} nn_alloc;

static size_t nn_alloc_take(nn_alloc *a, size_t size) {
    size_t best = a->n;
    for (size_t i = 0; i < a->n; i++)
        if (a->free[i].size >= size && (best == a->n || a->free[i].size < a->free[best].size)) best = i;
    if (best < a->n) {
        size_t off = a->free[best].off;
        a->free[best].off += size;
        a->free[best].size -= size;
        if (!a->free[best].size) memmove(&a->free[best], &a->free[best + 1], (--a->n - best) * sizeof *a->free);
        return off;
    }
    /* Grow: from the last free block when it reaches the top. */
    if (a->n && a->free[a->n - 1].off + a->free[a->n - 1].size == a->top) {
        size_t off = a->free[--a->n].off;
        a->top = off + size;
        return off;
    }
    size_t off = a->top;
    a->top += size;
    return off;
}

static int nn_alloc_give(nn_alloc *a, size_t off, size_t size) {
    size_t i = 0;
    while (i < a->n && a->free[i].off < off) i++;
    int left = i > 0 && a->free[i - 1].off + a->free[i - 1].size == off;
    int right = i < a->n && off + size == a->free[i].off;
    if (left && right) {
        a->free[i - 1].size += size + a->free[i].size;
        memmove(&a->free[i], &a->free[i + 1], (--a->n - i) * sizeof *a->free);
    } else if (left) {
        a->free[i - 1].size += size;
    } else if (right) {
        a->free[i].off = off;
        a->free[i].size += size;
    } else {
        if (nn_grow((void **)&a->free, &a->cap, a->n + 1, sizeof *a->free) != 0) return -1;
        memmove(&a->free[i + 1], &a->free[i], (a->n - i) * sizeof *a->free);
        a->free[i] = (nn_block){off, size};
        a->n++;
    }
    return 0;
}

static int nn_cmp_death(const void *x, const void *y) {
    const nn_node *a = *(nn_node *const *)x, *b = *(nn_node *const *)y;
    return a->death < b->death ? -1 : a->death > b->death;
}

/* Offsets for every virtual node by liveness: at op i the tensors born at
 * i are placed, then those whose last reader is op i are released (an op
 * never writes over its own inputs). */
static int nn_plan_new(sdrt_nn *nn, nn_plan *p) {
    size_t n = nn->n_gnodes;
    nn_node **by_birth = malloc((n ? n : 1) * sizeof *by_birth), **by_death = malloc((n ? n : 1) * sizeof *by_death);
    p->offsets = malloc((n ? n : 1) * sizeof *p->offsets);
    nn_alloc a = {0};
    int rc = by_birth && by_death && p->offsets ? 0 : -1;
    if (rc == 0) {
        /* gnodes are in creation order, hence birth order except inputs
         * (birth 0): a stable two-pass split keeps that order. */
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (nn->gnodes[i]->birth == 0) by_birth[k++] = nn->gnodes[i];
        for (size_t i = 0; i < n; i++)
            if (nn->gnodes[i]->birth != 0) by_birth[k++] = nn->gnodes[i];
        memcpy(by_death, nn->gnodes, n * sizeof *by_death);
        qsort(by_death, n, sizeof *by_death, nn_cmp_death);
        size_t bi = 0, di = 0, live = 0, peak = 0;
        for (size_t step = 0; rc == 0 && step <= nn->n_recs; step++) {
            for (; bi < n && by_birth[bi]->birth <= step; bi++) {
                nn_node *x = by_birth[bi];
                size_t sz = nn_align(x->bytes);
                x->offset = nn_alloc_take(&a, sz);
                live += sz;
                if (live > peak) peak = live;
            }
            for (; di < n && by_death[di]->death <= step + 1; di++) {
                nn_node *x = by_death[di];
                if (x->birth > step) break; /* not placed yet (sorted by death only) */
                live -= nn_align(x->bytes);
                if (nn_alloc_give(&a, x->offset, nn_align(x->bytes)) != 0) rc = -1;
            }
        }
        for (size_t i = 0; i < n; i++) p->offsets[i] = nn->gnodes[i]->offset;
        p->n_nodes = n;
        p->arena_bytes = a.top;
        p->peak_live = peak;
    }
    free(a.free);
    free(by_birth);
    free(by_death);
    return rc;
}

/* The plan's cache key: every node's size and live interval. */
static int nn_plan_key(sdrt_nn *nn, uint64_t **key, size_t *n_key) {
    *n_key = 1 + 3 * nn->n_gnodes;
    *key = malloc(*n_key * sizeof **key);
    if (!*key) return -1;
    (*key)[0] = nn->n_recs;
    for (size_t i = 0; i < nn->n_gnodes; i++) {
        const nn_node *x = nn->gnodes[i];
        (*key)[1 + 3 * i] = x->bytes;
        (*key)[2 + 3 * i] = x->birth;
        (*key)[3 + 3 * i] = x->death;
    }
    return 0;
}

/* The cached plan of this graph's shape, or a new one. */
static const nn_plan *nn_plan_get(sdrt_nn *nn) {
    uint64_t *key;
    size_t n_key;
    if (nn_plan_key(nn, &key, &n_key) != 0) return NULL;
    for (int i = 0; i < 4; i++) {
        nn_plan *p = &nn->plans[i];
        if (p->n_key == n_key && memcmp(p->key, key, n_key * sizeof *key) == 0) {
            free(key);
            for (size_t k = 0; k < nn->n_gnodes; k++) nn->gnodes[k]->offset = p->offsets[k];
            return p;
        }
    }
    nn_plan *p = &nn->plans[nn->next_plan];
    nn->next_plan = (nn->next_plan + 1) % 4;
    nn_plan_clear(p);
    p->key = key;
    p->n_key = n_key;
    if (nn_plan_new(nn, p) != 0) {
        nn_plan_clear(p);
        return NULL;
    }
    return p;
}

/* Virtual operand -> its place in the arena. */
static void nn_translate(sdrt_nn *nn, sdrt_tensor *d, char *base) {
    if (d->buffer != &nn->vbuf) return;
    size_t v = (size_t)(uintptr_t)d->data, lo = 0, hi = nn->n_gnodes;
    while (lo < hi) { /* last node with vofs <= v */
        size_t mid = (lo + hi) / 2;
        if (nn->gnodes[mid]->vofs <= v) lo = mid + 1;
        else hi = mid;
    }
    const nn_node *x = nn->gnodes[lo - 1];
    d->data = base + x->offset + (v - x->vofs);
    d->buffer = nn->arena;
}

static size_t nn_fp_operand(uint64_t *fp, size_t k, const sdrt_tensor *t) {
    fp[k++] = (uint64_t)(uintptr_t)t->data;
    fp[k++] = (uint64_t)(uintptr_t)t->buffer;
    fp[k++] = (uint64_t)t->dtype << 32 | (uint32_t)t->ndim;
    for (int d = 0; d < SDRT_MAX_DIMS; d++) fp[k++] = (uint64_t)t->shape[d];
    for (int d = 0; d < SDRT_MAX_DIMS; d++) fp[k++] = (uint64_t)t->strides[d];
    return k;
}

/* replay_key: the key of an earlier graph (of the last four distinct ones)
 * whose ops, shapes, parameters and addresses this one equals exactly,
 * else a fresh one. */
static void nn_replay_key(sdrt_nn *nn) {
    enum { PER_OPERAND = 3 + 2 * SDRT_MAX_DIMS, PER_OP = 1 + 2 * SDRT_OP_MAX_PARAMS + (SDRT_OP_MAX_SRC + 1) * PER_OPERAND };
    size_t n = nn->n_recs * PER_OP;
    uint64_t *fp = calloc(n ? n : 1, sizeof *fp);
    if (!fp) {
        nn->replay_key = 0;
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < nn->n_recs; i++) {
        const nn_rec *r = &nn->recs[i];
        size_t k0 = k;
        fp[k++] = (uint64_t)r->op.kind;
        for (int j = 0; j < SDRT_OP_MAX_PARAMS; j++) {
            uint32_t bits;
            memcpy(&bits, &r->op.fparams[j], sizeof bits);
            fp[k++] = (uint32_t)r->op.iparams[j];
            fp[k++] = bits;
        }
        for (int j = 0; j < SDRT_OP_MAX_SRC; j++)
            if (r->op.src[j]) k = nn_fp_operand(fp, k, r->op.src[j]);
        k = nn_fp_operand(fp, k, &r->dst);
        k = k0 + PER_OP;
    }
    for (int i = 0; i < 4; i++)
        if (nn->keys[i].fp && nn->keys[i].n == n && memcmp(nn->keys[i].fp, fp, n * sizeof *fp) == 0) {
            free(fp);
            nn->replay_key = nn->keys[i].key; /* the same graph again */
            return;
        }
    int slot = nn->next_slot;
    nn->next_slot = (slot + 1) % 4;
    free(nn->keys[slot].fp);
    nn->keys[slot].fp = fp;
    nn->keys[slot].n = n;
    nn->keys[slot].key = nn->replay_key = nn->next_key++;
}

sdrt_status sdrt_nn_graph_end(sdrt_nn *nn) {
    if (!nn) return SDRT_INVALID_ARGUMENT;
    if (nn->passthrough) {
        nn->passthrough = 0;
        if (nn->status == SDRT_OK) sdrt_stream_synchronize(nn->stream); /* as a graph's end waits */
        return nn->status;
    }
    if (!nn->recording) {
        nn_fail(nn, SDRT_FAILED_PRECONDITION, "graph_end: no graph is being recorded");
        return nn->status;
    }
    if (nn->status != SDRT_OK) {
        nn_graph_discard(nn);
        return nn->status;
    }
    /* Outputs (never dropped) live to the end of the graph. */
    for (size_t i = 0; i < nn->n_gnodes; i++) {
        nn_node *x = nn->gnodes[i];
        if (!x->death) x->death = nn->n_recs + 1;
    }
    const nn_plan *p = nn_plan_get(nn);
    if (!p) {
        nn_fail(nn, SDRT_RESOURCE_EXHAUSTED, "graph_end: out of host memory for the plan");
        nn_graph_discard(nn);
        return nn->status;
    }
    for (size_t i = 0; i < nn->n_gnodes; i++)
        if (nn->gnodes[i]->death == nn->n_recs + 1) nn->gnodes[i]->death = 0;
    nn->last_arena = p->arena_bytes;
    nn->last_peak = p->peak_live;
    sdrt_stream_synchronize(nn->stream); /* the arena's last graph is done */
    if (p->arena_bytes > nn->arena_size) {
        sdrt_buffer_free(nn->arena);
        nn->arena_size = 0;
        nn->arena = nn_buffer_alloc(nn, p->arena_bytes);
        if (!nn->arena) {
            nn_fail(nn, SDRT_RESOURCE_EXHAUSTED, "graph: %s could not allocate a %zu-byte arena",
                    nn->dev->iface->name(nn->dev), p->arena_bytes);
            nn_graph_discard(nn);
            return nn->status;
        }
        sdrt_buffer_set_usage(nn->arena, SDRT_BUFFER_USAGE_COMPUTE);
        nn->arena_size = p->arena_bytes;
    }
    char *base = nn->arena ? nn->arena->iface->base(nn->arena) : NULL;
    if (nn_grow((void **)&nn->gops, &nn->cap_gops, nn->n_recs + 1, sizeof *nn->gops) != 0) {
        nn_fail(nn, SDRT_RESOURCE_EXHAUSTED, "graph_end: out of host memory");
        nn_graph_discard(nn);
        return nn->status;
    }
    for (size_t i = 0; i < nn->n_recs; i++) {
        nn_rec *r = &nn->recs[i];
        for (int j = 0; j < SDRT_OP_MAX_SRC; j++) {
            if (!r->src[j].struct_size) continue;
            nn_translate(nn, &r->src[j], base);
            r->op.src[j] = &r->src[j];
        }
        nn_translate(nn, &r->dst, base);
        r->op.dst = &r->dst;
        nn->gops[i] = r->op;
    }
    for (size_t i = 0; i < nn->n_gnodes; i++) nn_translate(nn, &nn->gnodes[i]->t, base);
    /* Inputs go in the stream's queue ahead of the ops; their staged copies
     * stay alive until the synchronize below. */
    sdrt_status st = SDRT_OK;
    for (size_t i = 0; i < nn->n_inputs && st == SDRT_OK; i++) {
        const nn_input *in = &nn->inputs[i];
        size_t bytes = (size_t)sdrt_nn_numel(&in->node->t) * nn_dtype_size(in->node->t.dtype);
        if (bytes) st = sdrt_stream_write_async(nn->stream, nn->arena, in->node->t.data, in->data, bytes);
    }
    nn_replay_key(nn);
    sdrt_graph g = {.struct_size = SDRT_STRUCT_SIZE(sdrt_graph, replay_key), .n_ops = nn->n_recs,
                    .ops = nn->gops, .replay_key = nn->replay_key};
    if (st == SDRT_OK && nn->n_recs) st = sdrt_stream_graph_compute(nn->stream, &g);
    sdrt_stream_synchronize(nn->stream); /* recs and staged inputs are freed below */
    if (st != SDRT_OK) {
        nn_fail(nn, st, "graph of %zu ops on %s failed (status %d)%s", nn->n_recs, nn->dev->iface->name(nn->dev),
                (int)st, st == SDRT_UNSUPPORTED ? ": op, dtype or layout not supported" : "");
        nn_graph_discard(nn);
        return st;
    }
    nn_graph_finish(nn, 1);
    return SDRT_OK;
}

int sdrt_nn_graph_recording(const sdrt_nn *nn) {
    return nn ? nn->recording : 0;
}

void sdrt_nn_graph_stats(const sdrt_nn *nn, size_t *arena_bytes, size_t *peak_live_bytes, uint64_t *replay_key) {
    if (arena_bytes) *arena_bytes = nn ? nn->last_arena : 0;
    if (peak_live_bytes) *peak_live_bytes = nn ? nn->last_peak : 0;
    if (replay_key) *replay_key = nn ? nn->replay_key : 0;
}
