/* cpu_wcache.c - a stream's cache of weights packed for its low-precision
 * kernels: each weight is quantised / rounded and packed the first time a
 * product uses it, then every later call (every step) reads the packed
 * copy. Keyed by the weight's address and layout, which is safe because
 * only tensors without a buffer are cached: borrowed host memory whose
 * owner keeps it unchanged while the stream uses it (sdrt/tensor.h), and
 * the cache lives no longer than the stream (one request). */
#include "cpu_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct wc_entry {
    const void *data;
    sdrt_dtype dtype;
    int64_t so, sk, n, k;
    const cpu_lp_kernel *kern;
    cpu_lp_weight w;
} wc_entry;

struct cpu_wcache {
    wc_entry **slots; /* open addressing, power-of-two capacity */
    size_t cap, count;
    int warned; /* the out-of-memory fallback was logged */
};

static size_t wc_hash(const void *data, int64_t n, int64_t k, size_t cap) {
    uint64_t h = (uint64_t)(uintptr_t)data * 0x9e3779b97f4a7c15ull ^ (uint64_t)n * 0xc2b2ae3d27d4eb4full ^
                 (uint64_t)k;
    return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

static int wc_match(const wc_entry *e, const cpu_lp_kernel *kern, const cpu_operand *w, int64_t n, int64_t k) {
    return e->data == w->data && e->dtype == w->dtype && e->so == w->so && e->sk == w->sk && e->n == n &&
           e->k == k && e->kern == kern;
}

static int wc_grow(cpu_wcache *c) {
    size_t cap = c->cap ? c->cap * 2 : 256;
    wc_entry **slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < c->cap; i++) {
        wc_entry *e = c->slots[i];
        if (!e) continue;
        size_t h = wc_hash(e->data, e->n, e->k, cap);
        while (slots[h]) h = (h + 1) & (cap - 1);
        slots[h] = e;
    }
    free(c->slots);
    c->slots = slots;
    c->cap = cap;
    return 0;
}

const cpu_lp_weight *cpu_wcache_get(cpu_ctx *ctx, const cpu_lp_kernel *kern, const cpu_operand *w, int64_t n,
                                    int64_t k, sdrt_status *st) {
    *st = SDRT_OK;
    if (w->pack) {
        *st = SDRT_INVALID_ARGUMENT;
        return NULL;
    }
    if (!ctx->wcache && !(ctx->wcache = calloc(1, sizeof *ctx->wcache))) {
        *st = SDRT_RESOURCE_EXHAUSTED;
        return NULL;
    }
    cpu_wcache *c = ctx->wcache;
    if ((c->count + 1) * 2 > c->cap && wc_grow(c) != 0) {
        *st = SDRT_RESOURCE_EXHAUSTED;
        return NULL;
    }
    size_t h = wc_hash(w->data, n, k, c->cap);
    for (; c->slots[h]; h = (h + 1) & (c->cap - 1))
        if (wc_match(c->slots[h], kern, w, n, k)) return &c->slots[h]->w;
    wc_entry *e = calloc(1, sizeof *e);
    if (!e) {
        *st = SDRT_RESOURCE_EXHAUSTED;
        return NULL;
    }
    *e = (wc_entry){.data = w->data, .dtype = w->dtype, .so = w->so, .sk = w->sk, .n = n, .k = k, .kern = kern};
    *st = cpu_lp_pack_weight(ctx, kern, w, n, k, &e->w);
    if (*st != SDRT_OK) {
        if (!c->warned) cpu_logf(SDRT_LOG_WARN, "cpu backend: no memory to pack a weight for %s: it runs in f32",
                                 cpu_precision_name(kern->prec));
        c->warned = 1;
        free(e);
        return NULL;
    }
    c->slots[h] = e;
    c->count++;
    return &e->w;
}

void cpu_wcache_free(cpu_wcache *c) {
    if (!c) return;
    for (size_t i = 0; i < c->cap; i++) {
        if (!c->slots[i]) continue;
        cpu_lp_weight_free(&c->slots[i]->w);
        free(c->slots[i]);
    }
    free(c->slots);
    free(c);
}
