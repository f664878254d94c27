/* strict_stream.c - streams of the strict device. Ops run on the CPU
 * kernels once every operand is translated from device addresses to the
 * buffer's real storage. Async copies behave as on a GPU queue, only more
 * strictly: a write_async reads its host source when the stream next needs
 * the data, a read_async reaches host memory only at synchronize (or an
 * event's synchronize), so callers that skip a synchronize see wrong data
 * in tests instead of on a customer's GPU. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strict.h"

typedef struct strict_copy {
    int is_read;
    strict_buf *buf;
    void *dev;         /* write: device address */
    const void *src;   /* write: host source, read at flush */
    void *host_dst;    /* read: host destination, filled at synchronize */
    void *snapshot;    /* read: the device bytes as of the enqueue */
    size_t size;
} strict_copy;

/* What a replay_key promised: the graph seen with it first. */
#define STRICT_REPLAY_SLOTS 32
typedef struct strict_replay {
    uint64_t key, hash;
} strict_replay;

typedef struct strict_stream {
    sdrt_stream stream;
    cpu_ctx ctx;
    strict_replay replay[STRICT_REPLAY_SLOTS];
    unsigned replay_next;
    pthread_mutex_t mu; /* the queue: event_wait touches another stream's */
    strict_copy *queue;
    size_t count, cap;
} strict_stream;

struct sdrt_event {
    strict_stream *owner;
};

/* ---- translation -------------------------------------------------------------- */

static size_t strict_dtype_size(sdrt_dtype dt) {
    switch (dt) {
    case SDRT_DTYPE_F16: case SDRT_DTYPE_BF16: return 2;
    case SDRT_DTYPE_F32: case SDRT_DTYPE_I32: return 4;
    case SDRT_DTYPE_I64: case SDRT_DTYPE_F64: return 8;
    case SDRT_DTYPE_U8: return 1;
    default: return 0;
    }
}

/* Bytes spanned by t's elements from its data address; SIZE_MAX for a
 * layout this check cannot bound (negative strides, unknown dtype). */
static size_t strict_extent(const sdrt_tensor *t) {
    size_t es = strict_dtype_size(t->dtype);
    if (!es) return SIZE_MAX;
    int64_t last = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] == 0) return 0;
        if (t->strides[d] < 0) return SIZE_MAX;
        last += (t->shape[d] - 1) * t->strides[d];
    }
    return (size_t)(last + 1) * es;
}

static sdrt_status strict_translate(const sdrt_tensor *t, sdrt_tensor *out) {
    strict_buf *b = strict_buf_of(t->buffer);
    if (!b || b->buf.type->device != &g_strict_dev) return SDRT_UNSUPPORTED; /* host or another device's */
    if (t->ndim < 0 || t->ndim > SDRT_MAX_DIMS) return SDRT_INVALID_ARGUMENT;
    if (!strict_dtype_size(t->dtype)) return SDRT_UNSUPPORTED;
    size_t extent = strict_extent(t);
    if (extent == SIZE_MAX) return SDRT_INVALID_ARGUMENT;
    char *real = strict_buf_at(b, t->data, extent);
    if (!real) return SDRT_INVALID_ARGUMENT;
    *out = *t;
    out->data = real;
    out->buffer = NULL; /* host memory, as the CPU kernels see it */
    return SDRT_OK;
}

sdrt_status strict_translate_op(const sdrt_op *op, sdrt_op *out, sdrt_tensor hosts[SDRT_OP_MAX_SRC + 1]) {
    if (!op || op->struct_size < SDRT_STRUCT_SIZE(sdrt_op, fparams) || !op->dst) return SDRT_INVALID_ARGUMENT;
    *out = *op;
    for (int i = 0; i < SDRT_OP_MAX_SRC; i++) {
        if (!op->src[i]) continue;
        sdrt_status st = strict_translate(op->src[i], &hosts[i]);
        if (st != SDRT_OK) return st;
        out->src[i] = &hosts[i];
    }
    sdrt_status st = strict_translate(op->dst, &hosts[SDRT_OP_MAX_SRC]);
    out->dst = &hosts[SDRT_OP_MAX_SRC];
    return st;
}

/* ---- the copy queue ------------------------------------------------------------- */

static int strict_push(strict_stream *s, const strict_copy *c) {
    if (s->count == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        strict_copy *q = realloc(s->queue, cap * sizeof *q);
        if (!q) return -1;
        s->queue = q;
        s->cap = cap;
    }
    s->queue[s->count++] = *c;
    return 0;
}

/* Performs the pending writes (the device now holds their bytes); the
 * pending reads stay queued for synchronize. Caller holds s->mu. */
static void strict_flush_writes_locked(strict_stream *s) {
    size_t keep = 0;
    for (size_t i = 0; i < s->count; i++) {
        strict_copy *c = &s->queue[i];
        if (c->is_read) {
            s->queue[keep++] = *c;
            continue;
        }
        char *p = strict_buf_at_or_die(c->buf, c->dev, c->size, "write_async");
        if (c->size) memcpy(p, c->src, c->size);
        atomic_fetch_add(&g_strict.h2d, c->size);
    }
    s->count = keep;
}

static void strict_flush_writes(strict_stream *s) {
    pthread_mutex_lock(&s->mu);
    strict_flush_writes_locked(s);
    pthread_mutex_unlock(&s->mu);
}

static void strict_synchronize(sdrt_stream *st) {
    strict_stream *s = st->context;
    pthread_mutex_lock(&s->mu);
    strict_flush_writes_locked(s);
    for (size_t i = 0; i < s->count; i++) {
        strict_copy *c = &s->queue[i];
        if (c->size) memcpy(c->host_dst, c->snapshot, c->size);
        free(c->snapshot);
    }
    s->count = 0;
    pthread_mutex_unlock(&s->mu);
}

/* ---- stream iface ------------------------------------------------------------------ */

static void strict_stream_free(sdrt_stream *st) {
    if (!st) return;
    strict_stream *s = st->context;
    strict_synchronize(st);
    cpu_ctx_release(&s->ctx);
    pthread_mutex_destroy(&s->mu);
    free(s->queue);
    free(s);
}

static sdrt_status strict_compute(sdrt_stream *st, const sdrt_op *op) {
    strict_stream *s = st->context;
    sdrt_op hop;
    sdrt_tensor hosts[SDRT_OP_MAX_SRC + 1];
    sdrt_status rc = strict_translate_op(op, &hop, hosts);
    if (rc != SDRT_OK) return rc;
    strict_flush_writes(s);
    return cpu_op_dispatch(&s->ctx, &hop);
}

/* FNV-1a over what a replay must not change. */
static uint64_t strict_hash(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t strict_graph_hash(const sdrt_graph *g) {
    uint64_t h = strict_hash(0xcbf29ce484222325ull, &g->n_ops, sizeof g->n_ops);
    for (size_t i = 0; i < g->n_ops; i++) {
        const sdrt_op *op = &g->ops[i];
        h = strict_hash(h, &op->kind, sizeof op->kind);
        h = strict_hash(h, op->iparams, sizeof op->iparams);
        h = strict_hash(h, op->fparams, sizeof op->fparams);
        for (int k = 0; k <= SDRT_OP_MAX_SRC; k++) {
            const sdrt_tensor *t = k < SDRT_OP_MAX_SRC ? op->src[k] : op->dst;
            if (!t) {
                h = strict_hash(h, &k, sizeof k);
                continue;
            }
            h = strict_hash(h, &t->dtype, sizeof t->dtype);
            h = strict_hash(h, &t->ndim, sizeof t->ndim);
            h = strict_hash(h, t->shape, sizeof t->shape);
            h = strict_hash(h, t->strides, sizeof t->strides);
            h = strict_hash(h, &t->data, sizeof t->data);
        }
    }
    return h;
}

/* 0 when `g` keeps the promise of its replay_key (or has none); a key
 * reused for another graph is a caller bug a replaying GPU would hide. */
static int strict_replay_check(strict_stream *s, const sdrt_graph *g) {
    if (!SDRT_HAS_MEMBER(g, sdrt_graph, replay_key) || !g->replay_key) return 0;
    uint64_t h = strict_graph_hash(g);
    for (int i = 0; i < STRICT_REPLAY_SLOTS; i++)
        if (s->replay[i].key == g->replay_key) {
            if (s->replay[i].hash == h) return 0;
            fprintf(stderr, "strict device: replay_key %llu reused for a different graph\n",
                    (unsigned long long)g->replay_key);
            return -1;
        }
    s->replay[s->replay_next++ % STRICT_REPLAY_SLOTS] = (strict_replay){g->replay_key, h};
    return 0;
}

static sdrt_status strict_graph_compute(sdrt_stream *st, const sdrt_graph *g) {
    if (!g || (g->n_ops && !g->ops)) return SDRT_INVALID_ARGUMENT;
    if (strict_replay_check(st->context, g) != 0) return SDRT_INVALID_ARGUMENT;
    for (size_t i = 0; i < g->n_ops; i++) {
        sdrt_status rc = strict_compute(st, &g->ops[i]);
        if (rc != SDRT_OK) return rc;
    }
    return SDRT_OK;
}

static sdrt_status strict_write_async(sdrt_stream *st, sdrt_buffer *buf, void *dst, const void *src, size_t size) {
    strict_stream *s = st->context;
    strict_buf *b = strict_buf_of(buf);
    if (!b) return SDRT_INVALID_ARGUMENT;
    strict_buf_at_or_die(b, dst, size, "write_async");
    strict_copy c = {.buf = b, .dev = dst, .src = src, .size = size};
    pthread_mutex_lock(&s->mu);
    int rc = strict_push(s, &c);
    pthread_mutex_unlock(&s->mu);
    return rc ? SDRT_RESOURCE_EXHAUSTED : SDRT_OK;
}

static sdrt_status strict_read_async(sdrt_stream *st, sdrt_buffer *buf, void *dst, const void *src, size_t size) {
    strict_stream *s = st->context;
    strict_buf *b = strict_buf_of(buf);
    if (!b) return SDRT_INVALID_ARGUMENT;
    pthread_mutex_lock(&s->mu);
    strict_flush_writes_locked(s);
    const char *p = strict_buf_at_or_die(b, src, size, "read_async");
    strict_copy c = {.is_read = 1, .buf = b, .host_dst = dst, .snapshot = malloc(size ? size : 1), .size = size};
    int rc = !c.snapshot || strict_push(s, &c);
    if (rc) free(c.snapshot);
    else if (size) memcpy(c.snapshot, p, size);
    pthread_mutex_unlock(&s->mu);
    if (rc) return SDRT_RESOURCE_EXHAUSTED;
    atomic_fetch_add(&g_strict.d2h, size);
    return SDRT_OK;
}

static sdrt_status strict_copy_async(sdrt_stream *st, sdrt_buffer *dst_buf, void *dst, sdrt_buffer *src_buf,
                                     const void *src, size_t size) {
    strict_buf *d = strict_buf_of(dst_buf), *from = strict_buf_of(src_buf);
    if (!d || !from) return SDRT_UNSUPPORTED;
    strict_flush_writes(st->context);
    char *dp = strict_buf_at_or_die(d, dst, size, "copy_async destination");
    const char *sp = strict_buf_at_or_die(from, src, size, "copy_async source");
    if (size) memmove(dp, sp, size);
    atomic_fetch_add(&g_strict.d2d, size);
    return SDRT_OK;
}

/* An event is the end of the queue when recorded; waiting for it
 * completes the whole queue (ops run at once, so only copies are
 * pending). */
static sdrt_event *strict_event_record(sdrt_stream *st) {
    sdrt_event *ev = malloc(sizeof *ev);
    if (ev) ev->owner = st->context;
    return ev;
}

static void strict_event_synchronize(sdrt_stream *st, sdrt_event *ev) { strict_synchronize(&ev->owner->stream); }

/* Work of `st` enqueued later must see the writes queued on the event's
 * stream before it. */
static void strict_event_wait(sdrt_stream *st, sdrt_event *ev) { strict_flush_writes(ev->owner); }

static void strict_event_free(sdrt_stream *st, sdrt_event *ev) { free(ev); }

static const sdrt_stream_iface g_strict_stream_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_stream_iface, event_free),
    .free = strict_stream_free,
    .compute = strict_compute,
    .synchronize = strict_synchronize,
    .graph_compute = strict_graph_compute,
    .write_async = strict_write_async,
    .read_async = strict_read_async,
    .copy_async = strict_copy_async,
    .event_record = strict_event_record,
    .event_synchronize = strict_event_synchronize,
    .event_wait = strict_event_wait,
    .event_free = strict_event_free,
};

sdrt_stream *strict_stream_new(sdrt_device *dev, const char *params_json) {
    int threads = cpu_json_threads(params_json);
    if (threads <= 0) threads = g_strict.threads;
    strict_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (cpu_ctx_init(&s->ctx, threads) != 0) {
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->stream = (sdrt_stream){.iface = &g_strict_stream_iface, .context = s, .device = dev};
    return &s->stream;
}
