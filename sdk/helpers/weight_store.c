/* sdk/helpers/weight_store.c - see sdrt/weight_store.h. */
#include "sdrt/weight_store.h"

#include "sdrt/nn.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define WS_MAX_DEVICES 8
#define WS_MAX_JOBS 64

typedef struct ws_copy {
    const void *data;
    sdrt_dtype dtype;
    size_t bytes;
    uint64_t layout; /* 0 contiguous, else a hash of shape and strides */
    sdrt_dtype form; /* the device copy's dtype (acquire_as), part of the key */
    size_t dev_bytes; /* the device copy's size, counted against the budget */
    sdrt_buffer *buf;
    sdrt_tensor t;
} ws_copy;

/* The copies of one store on one device: an open-addressing hash map. */
typedef struct ws_slot {
    sdrt_device *dev;
    ws_copy **tab;
    size_t cap, n;
    uint64_t bytes, last_use;
    int pins;
} ws_slot;

typedef struct ws_range {
    const char *lo, *hi;
} ws_range;

typedef struct ws_impl {
    sdrt_weight_store pub;
    sdrt_weight_budget *b;
    sdrt_weight_store *parent;
    pthread_mutex_t own_mu;
    pthread_mutex_t *mu; /* the budget's, or own_mu */
    ws_range *ranges;
    size_t n_ranges, cap_ranges;
    int ranges_sorted;
    ws_slot slots[WS_MAX_DEVICES];
    int n_slots;
    struct ws_impl *prev, *next; /* the budget's stores */
} ws_impl;

struct sdrt_weight_budget {
    pthread_mutex_t mu;
    uint64_t limit, clock;
    ws_impl *stores;
    struct {
        sdrt_job *job;
        uint64_t bytes;
    } jobs[WS_MAX_JOBS];
    int next_job;
};

static size_t ws_dtype_size(sdrt_dtype dt) {
    switch (dt) {
    case SDRT_DTYPE_F32: case SDRT_DTYPE_I32: return 4;
    case SDRT_DTYPE_F16: case SDRT_DTYPE_BF16: return 2;
    case SDRT_DTYPE_I64: case SDRT_DTYPE_F64: return 8;
    case SDRT_DTYPE_U8: return 1;
    default: return 0;
    }
}

static int ws_contiguous(const sdrt_tensor *t) {
    int64_t expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != expect) return 0;
        expect *= t->shape[i];
    }
    return 1;
}

/* 0 for a contiguous tensor; otherwise a non-zero hash of its shape and
 * strides (a transposed view of a weight is another copy of it). */
static uint64_t ws_layout(const sdrt_tensor *t) {
    if (ws_contiguous(t)) return 0;
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < t->ndim; i++) {
        h = (h ^ (uint64_t)t->shape[i]) * 0x100000001b3ull;
        h = (h ^ (uint64_t)t->strides[i]) * 0x100000001b3ull;
    }
    return h | 1;
}

static size_t ws_hash(const void *p, sdrt_dtype dt) {
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull ^ (uint64_t)dt;
    return (size_t)(h ^ (h >> 29));
}

/* ---- budget -------------------------------------------------------------- */

sdrt_weight_budget *sdrt_weight_budget_new(uint64_t per_device_bytes) {
    sdrt_weight_budget *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    pthread_mutex_init(&b->mu, NULL);
    b->limit = per_device_bytes;
    return b;
}

void sdrt_weight_budget_free(sdrt_weight_budget *b) {
    if (!b) return;
    pthread_mutex_destroy(&b->mu);
    free(b);
}

uint64_t sdrt_weight_budget_limit(const sdrt_weight_budget *b) {
    return b ? b->limit : 0;
}

void sdrt_weight_budget_set_limit(sdrt_weight_budget *b, uint64_t per_device_bytes) {
    pthread_mutex_lock(&b->mu);
    b->limit = per_device_bytes;
    pthread_mutex_unlock(&b->mu);
}

/* Under b->mu. */
static void ws_count_job(sdrt_weight_budget *b, sdrt_job *job, uint64_t bytes) {
    if (!job || !bytes) return;
    for (int i = 0; i < WS_MAX_JOBS; i++)
        if (b->jobs[i].job == job) {
            b->jobs[i].bytes += bytes;
            return;
        }
    int i = b->next_job;
    b->next_job = (i + 1) % WS_MAX_JOBS;
    b->jobs[i].job = job;
    b->jobs[i].bytes = bytes;
}

uint64_t sdrt_weight_budget_take_job(sdrt_weight_budget *b, sdrt_job *job) {
    if (!b || !job) return 0;
    uint64_t n = 0;
    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < WS_MAX_JOBS; i++)
        if (b->jobs[i].job == job) {
            n = b->jobs[i].bytes;
            b->jobs[i].job = NULL;
            b->jobs[i].bytes = 0;
        }
    pthread_mutex_unlock(&b->mu);
    return n;
}

/* Under b->mu: bytes of all copies on dev. */
static uint64_t ws_device_bytes(sdrt_weight_budget *b, sdrt_device *dev) {
    uint64_t n = 0;
    for (ws_impl *s = b->stores; s; s = s->next)
        for (int i = 0; i < s->n_slots; i++)
            if (s->slots[i].dev == dev) n += s->slots[i].bytes;
    return n;
}

void sdrt_weight_budget_each_device(sdrt_weight_budget *b, void (*fn)(void *u, sdrt_device *dev, uint64_t bytes),
                                    void *u) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    sdrt_device *seen[64];
    int n_seen = 0;
    for (ws_impl *s = b->stores; s; s = s->next)
        for (int i = 0; i < s->n_slots; i++) {
            sdrt_device *d = s->slots[i].dev;
            int known = 0;
            for (int k = 0; k < n_seen; k++) known |= seen[k] == d;
            if (known || n_seen == 64) continue;
            seen[n_seen++] = d;
            fn(u, d, ws_device_bytes(b, d));
        }
    pthread_mutex_unlock(&b->mu);
}

/* ---- slots ---------------------------------------------------------------- */

static void ws_slot_clear(ws_slot *sl) {
    for (size_t i = 0; i < sl->cap; i++) {
        if (!sl->tab[i]) continue;
        sdrt_buffer_free(sl->tab[i]->buf);
        free(sl->tab[i]);
    }
    free(sl->tab);
    sl->tab = NULL;
    sl->cap = sl->n = 0;
    sl->bytes = 0;
}

static ws_copy *ws_slot_find(const ws_slot *sl, const void *data, sdrt_dtype dt, size_t bytes, uint64_t layout,
                             sdrt_dtype form) {
    if (!sl->cap) return NULL;
    for (size_t i = ws_hash(data, dt) & (sl->cap - 1);; i = (i + 1) & (sl->cap - 1)) {
        ws_copy *c = sl->tab[i];
        if (!c) return NULL;
        if (c->data == data && c->dtype == dt && c->bytes == bytes && c->layout == layout && c->form == form)
            return c;
    }
}

static int ws_slot_insert(ws_slot *sl, ws_copy *c) {
    if (2 * (sl->n + 1) > sl->cap) {
        size_t cap = sl->cap ? 2 * sl->cap : 256;
        ws_copy **tab = calloc(cap, sizeof *tab);
        if (!tab) return -1;
        for (size_t i = 0; i < sl->cap; i++) {
            ws_copy *o = sl->tab[i];
            if (!o) continue;
            size_t j = ws_hash(o->data, o->dtype) & (cap - 1);
            while (tab[j]) j = (j + 1) & (cap - 1);
            tab[j] = o;
        }
        free(sl->tab);
        sl->tab = tab;
        sl->cap = cap;
    }
    size_t j = ws_hash(c->data, c->dtype) & (sl->cap - 1);
    while (sl->tab[j]) j = (j + 1) & (sl->cap - 1);
    sl->tab[j] = c;
    sl->n++;
    sl->bytes += c->dev_bytes;
    return 0;
}

/* Under the store's mutex. Creates the slot when `create`. */
static ws_slot *ws_slot_get(ws_impl *s, sdrt_device *dev, int create) {
    for (int i = 0; i < s->n_slots; i++)
        if (s->slots[i].dev == dev) return &s->slots[i];
    if (!create || s->n_slots == WS_MAX_DEVICES) return NULL;
    ws_slot *sl = &s->slots[s->n_slots++];
    memset(sl, 0, sizeof *sl);
    sl->dev = dev;
    return sl;
}

/* Under b->mu: frees the least recently used unpinned copy set on dev
 * (of any store of the budget, or of `s` alone without a budget). 0, or
 * -1 when every set on dev is pinned or empty. */
static int ws_evict_one(ws_impl *s, sdrt_device *dev) {
    ws_slot *victim = NULL;
    for (ws_impl *t = s->b ? s->b->stores : s; t; t = s->b ? t->next : NULL)
        for (int i = 0; i < t->n_slots; i++) {
            ws_slot *sl = &t->slots[i];
            if (sl->dev != dev || sl->pins > 0 || sl->n == 0) continue;
            if (!victim || sl->last_use < victim->last_use) victim = sl;
        }
    if (!victim) return -1;
    ws_slot_clear(victim);
    return 0;
}

/* ---- the iface -------------------------------------------------------------- */

static int ws_range_cmp(const void *a, const void *b) {
    const ws_range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static int ws_covers(sdrt_weight_store *pub, const void *data, size_t size) {
    ws_impl *s = pub->context;
    const char *p = data;
    int hit = 0;
    pthread_mutex_lock(s->mu);
    if (!s->ranges_sorted) {
        qsort(s->ranges, s->n_ranges, sizeof *s->ranges, ws_range_cmp);
        s->ranges_sorted = 1;
    }
    size_t lo = 0, hi = s->n_ranges; /* last range with start <= p */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->ranges[mid].lo <= p) lo = mid + 1;
        else hi = mid;
    }
    if (lo > 0) {
        const ws_range *r = &s->ranges[lo - 1];
        hit = p >= r->lo && p + size <= r->hi;
    }
    pthread_mutex_unlock(s->mu);
    return hit;
}

static void ws_pin(sdrt_weight_store *pub, sdrt_device *dev) {
    ws_impl *s = pub->context;
    pthread_mutex_lock(s->mu);
    ws_slot *sl = ws_slot_get(s, dev, 1);
    if (sl) sl->pins++;
    pthread_mutex_unlock(s->mu);
}

static void ws_unpin(sdrt_weight_store *pub, sdrt_device *dev) {
    ws_impl *s = pub->context;
    pthread_mutex_lock(s->mu);
    ws_slot *sl = ws_slot_get(s, dev, 0);
    if (sl && sl->pins > 0) sl->pins--;
    pthread_mutex_unlock(s->mu);
}

static void ws_note_upload(sdrt_weight_store *pub, sdrt_job *job, uint64_t bytes) {
    ws_impl *s = pub->context;
    if (s->b) {
        pthread_mutex_lock(s->mu);
        ws_count_job(s->b, job, bytes);
        pthread_mutex_unlock(s->mu);
    } else if (s->parent && s->parent->iface->note_upload) {
        s->parent->iface->note_upload(s->parent, job, bytes);
    }
}

/* Under the mutex: a new device copy of `host` (`bytes` on the host) as
 * `form`, room made first. */
static sdrt_status ws_upload(ws_impl *s, ws_slot *sl, const sdrt_tensor *host, size_t host_bytes, sdrt_dtype form,
                             ws_copy **out) {
    sdrt_device *dev = sl->dev;
    /* What the device holds: counted, allocated and written. */
    size_t bytes = host_bytes / ws_dtype_size(host->dtype) * ws_dtype_size(form);
    uint64_t limit = s->b ? s->b->limit : 0;
    if (limit && bytes > limit) return SDRT_RESOURCE_EXHAUSTED;
    while (limit && ws_device_bytes(s->b, dev) + bytes > limit)
        if (ws_evict_one(s, dev) != 0) return SDRT_RESOURCE_EXHAUSTED;
    ws_copy *c = calloc(1, sizeof *c);
    if (!c) return SDRT_RESOURCE_EXHAUSTED;
    sdrt_buffer_type *bt = dev->iface->buffer_type(dev);
    while (!(c->buf = bt ? sdrt_buffer_alloc(bt, bytes ? bytes : 1) : NULL))
        if (!bt || ws_evict_one(s, dev) != 0) {
            free(c);
            return SDRT_RESOURCE_EXHAUSTED;
        }
    sdrt_buffer_set_usage(c->buf, SDRT_BUFFER_USAGE_WEIGHTS);
    void *base = c->buf->iface->base(c->buf);
    uint64_t layout = ws_layout(host);
    char *staged = NULL;
    /* Strided views are gathered, other forms converted, on the host. */
    if ((layout || form != host->dtype) && bytes &&
        (!(staged = malloc(bytes)) || sdrt_nn_host_convert(host, form, staged) != 0)) {
        free(staged);
        sdrt_buffer_free(c->buf);
        free(c);
        return SDRT_RESOURCE_EXHAUSTED;
    }
    if (bytes) c->buf->iface->write(c->buf, base, staged ? staged : host->data, bytes);
    free(staged);
    c->data = host->data;
    c->dtype = host->dtype;
    c->bytes = host_bytes;
    c->layout = layout;
    c->form = form;
    c->dev_bytes = bytes;
    c->t = *host;
    c->t.dtype = form;
    c->t.struct_size = SDRT_STRUCT_SIZE(sdrt_tensor, buffer);
    for (int64_t d = c->t.ndim - 1, st = 1; d >= 0; d--) { /* the copy is contiguous */
        c->t.strides[d] = st;
        st *= c->t.shape[d];
    }
    c->t.data = base;
    c->t.buffer = c->buf;
    if (ws_slot_insert(sl, c) != 0) {
        sdrt_buffer_free(c->buf);
        free(c);
        return SDRT_RESOURCE_EXHAUSTED;
    }
    *out = c;
    return SDRT_OK;
}

static int ws_float(sdrt_dtype dt) {
    return dt == SDRT_DTYPE_F32 || dt == SDRT_DTYPE_F16 || dt == SDRT_DTYPE_BF16;
}

static sdrt_status ws_acquire_as(sdrt_weight_store *pub, sdrt_device *dev, const sdrt_tensor *host, sdrt_dtype form,
                                 sdrt_job *job, const sdrt_tensor **out, uint64_t *uploaded_out) {
    ws_impl *s = pub->context;
    *out = NULL;
    if (uploaded_out) *uploaded_out = 0;
    size_t es = host ? ws_dtype_size(host->dtype) : 0;
    if (!dev || !host || !es) return SDRT_INVALID_ARGUMENT;
    if (form != host->dtype && !(ws_float(form) && ws_float(host->dtype))) return SDRT_INVALID_ARGUMENT;
    size_t bytes = es;
    for (int i = 0; i < host->ndim; i++) bytes *= (size_t)host->shape[i];
    /* The host bytes a strided view spans: from its lowest to its highest
     * element (non-negative strides). */
    size_t span = es;
    for (int i = 0; i < host->ndim; i++) {
        if (host->strides[i] < 0) return SDRT_INVALID_ARGUMENT;
        if (host->shape[i] > 0) span += (size_t)((host->shape[i] - 1) * host->strides[i]) * es;
    }
    if (!ws_covers(pub, host->data, ws_contiguous(host) ? bytes : span)) return SDRT_INVALID_ARGUMENT;
    pthread_mutex_lock(s->mu);
    ws_slot *sl = ws_slot_get(s, dev, 1);
    sdrt_status st = sl ? SDRT_OK : SDRT_RESOURCE_EXHAUSTED;
    ws_copy *c = sl ? ws_slot_find(sl, host->data, host->dtype, bytes, ws_layout(host), form) : NULL;
    uint64_t uploaded = 0;
    if (sl && !c) {
        st = ws_upload(s, sl, host, bytes, form, &c);
        if (st == SDRT_OK) uploaded = c->dev_bytes;
    }
    if (c) {
        sl->last_use = s->b ? ++s->b->clock : sl->last_use + 1;
        *out = &c->t;
        if (s->b) ws_count_job(s->b, job, uploaded);
    }
    pthread_mutex_unlock(s->mu);
    if (uploaded_out) *uploaded_out = uploaded;
    if (!s->b && uploaded && s->parent && s->parent->iface->note_upload)
        s->parent->iface->note_upload(s->parent, job, uploaded);
    return st;
}

static sdrt_status ws_acquire(sdrt_weight_store *pub, sdrt_device *dev, const sdrt_tensor *host, sdrt_job *job,
                              const sdrt_tensor **out, uint64_t *uploaded_out) {
    if (!host) return SDRT_INVALID_ARGUMENT;
    return ws_acquire_as(pub, dev, host, host->dtype, job, out, uploaded_out);
}

static uint64_t ws_trim(sdrt_weight_store *pub, sdrt_device *dev) {
    ws_impl *s = pub->context;
    uint64_t freed = 0;
    pthread_mutex_lock(s->mu);
    for (ws_impl *t = s->b ? s->b->stores : s; t; t = s->b ? t->next : NULL)
        for (int i = 0; i < t->n_slots; i++) {
            ws_slot *sl = &t->slots[i];
            if (sl->dev != dev || sl->pins > 0 || sl->n == 0) continue;
            freed += sl->bytes;
            ws_slot_clear(sl);
        }
    pthread_mutex_unlock(s->mu);
    return freed;
}

static const sdrt_weight_store_iface g_ws_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_weight_store_iface, trim),
    .covers = ws_covers,
    .pin = ws_pin,
    .unpin = ws_unpin,
    .acquire = ws_acquire,
    .note_upload = ws_note_upload,
    .acquire_as = ws_acquire_as,
    .trim = ws_trim,
};

sdrt_weight_store *sdrt_weight_store_new(sdrt_weight_budget *b, sdrt_weight_store *parent) {
    ws_impl *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->pub.iface = &g_ws_iface;
    s->pub.context = s;
    s->b = b;
    s->parent = parent;
    pthread_mutex_init(&s->own_mu, NULL);
    s->mu = b ? &b->mu : &s->own_mu;
    s->ranges_sorted = 1;
    if (b) {
        pthread_mutex_lock(&b->mu);
        s->next = b->stores;
        if (b->stores) b->stores->prev = s;
        b->stores = s;
        pthread_mutex_unlock(&b->mu);
    }
    return &s->pub;
}

int sdrt_weight_store_add_range(sdrt_weight_store *pub, const void *data, size_t size) {
    ws_impl *s = pub->context;
    pthread_mutex_lock(s->mu);
    int rc = 0;
    if (s->n_ranges == s->cap_ranges) {
        size_t cap = s->cap_ranges ? 2 * s->cap_ranges : 8;
        ws_range *r = realloc(s->ranges, cap * sizeof *r);
        if (r) {
            s->ranges = r;
            s->cap_ranges = cap;
        } else {
            rc = -1;
        }
    }
    if (rc == 0) {
        s->ranges[s->n_ranges++] = (ws_range){data, (const char *)data + size};
        s->ranges_sorted = 0;
    }
    pthread_mutex_unlock(s->mu);
    return rc;
}

void sdrt_weight_store_free(sdrt_weight_store *pub) {
    if (!pub) return;
    ws_impl *s = pub->context;
    pthread_mutex_lock(s->mu);
    for (int i = 0; i < s->n_slots; i++) ws_slot_clear(&s->slots[i]);
    if (s->b) {
        if (s->prev) s->prev->next = s->next;
        else s->b->stores = s->next;
        if (s->next) s->next->prev = s->prev;
    }
    pthread_mutex_unlock(s->mu);
    pthread_mutex_destroy(&s->own_mu);
    free(s->ranges);
    free(s);
}

void sdrt_weight_store_each_device(sdrt_weight_store *pub,
                                   void (*fn)(void *u, sdrt_device *dev, uint64_t bytes, size_t n_tensors), void *u) {
    ws_impl *s = pub->context;
    pthread_mutex_lock(s->mu);
    for (int i = 0; i < s->n_slots; i++)
        if (s->slots[i].n) fn(u, s->slots[i].dev, s->slots[i].bytes, s->slots[i].n);
    pthread_mutex_unlock(s->mu);
}
