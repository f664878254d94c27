/* cuda_pool.c - the VRAM sub-allocator (cuda_plan.h). Segments are few
 * (one per large arena or weight block, 64 MiB otherwise), so linear scans
 * over them and their free lists are cheap next to one cudaMalloc. */
#include "cuda_plan.h"

#include <stdlib.h>
#include <string.h>

void cuda_pool_init(cuda_pool *p, size_t alignment, size_t granularity, cuda_pool_grow_fn grow,
                    cuda_pool_release_fn release, void *ctx) {
    memset(p, 0, sizeof *p);
    p->alignment = alignment ? alignment : 256;
    p->granularity = granularity;
    p->grow = grow;
    p->release = release;
    p->ctx = ctx;
}

size_t cuda_pool_round(const cuda_pool *p, size_t size) {
    if (size == 0) size = 1;
    return (size + p->alignment - 1) & ~(p->alignment - 1);
}

static int pool_insert_free(cuda_pool_seg *s, size_t at, cuda_pool_range r) {
    if (s->n_free == s->cap_free) {
        size_t cap = s->cap_free ? 2 * s->cap_free : 8;
        cuda_pool_range *f = realloc(s->free, cap * sizeof *f);
        if (!f) return -1;
        s->free = f;
        s->cap_free = cap;
    }
    memmove(s->free + at + 1, s->free + at, (s->n_free - at) * sizeof *s->free);
    s->free[at] = r;
    s->n_free++;
    return 0;
}

static void pool_remove_free(cuda_pool_seg *s, size_t at) {
    memmove(s->free + at, s->free + at + 1, (s->n_free - at - 1) * sizeof *s->free);
    s->n_free--;
}

/* First fit in address order inside one segment. */
static int pool_take(cuda_pool *p, cuda_pool_seg *s, size_t size, uintptr_t *addr) {
    for (size_t i = 0; i < s->n_free; i++) {
        if (s->free[i].size < size) continue;
        *addr = s->free[i].addr;
        s->free[i].addr += size;
        s->free[i].size -= size;
        if (s->free[i].size == 0) pool_remove_free(s, i);
        s->used += size;
        p->in_use += size;
        if (p->in_use > p->peak_in_use) p->peak_in_use = p->in_use;
        return 0;
    }
    return -1;
}

static int pool_add_segment(cuda_pool *p, size_t size) {
    if (p->n_segs == p->cap_segs) {
        size_t cap = p->cap_segs ? 2 * p->cap_segs : 8;
        cuda_pool_seg *s = realloc(p->segs, cap * sizeof *s);
        if (!s) return -1;
        p->segs = s;
        p->cap_segs = cap;
    }
    uintptr_t base = 0;
    if (p->grow(p->ctx, size, &base) != 0) return -1;
    cuda_pool_seg *s = &p->segs[p->n_segs];
    memset(s, 0, sizeof *s);
    s->base = base;
    s->size = size;
    if (pool_insert_free(s, 0, (cuda_pool_range){base, size}) != 0) {
        p->release(p->ctx, base, size);
        return -1;
    }
    p->n_segs++;
    p->reserved += size;
    return 0;
}

int cuda_pool_alloc(cuda_pool *p, size_t size, uintptr_t *addr) {
    size = cuda_pool_round(p, size);
    for (size_t i = 0; i < p->n_segs; i++)
        if (pool_take(p, &p->segs[i], size, addr) == 0) return 0;
    size_t seg = size > p->granularity ? size : p->granularity;
    if (pool_add_segment(p, seg) != 0) {
        /* Free segments may be what stands in the way: give them back and
         * try once more, with an exact-size segment. */
        cuda_pool_trim(p);
        if (pool_add_segment(p, size) != 0) return -1;
    }
    return pool_take(p, &p->segs[p->n_segs - 1], size, addr);
}

void cuda_pool_free(cuda_pool *p, uintptr_t addr, size_t size) {
    size = cuda_pool_round(p, size);
    for (size_t si = 0; si < p->n_segs; si++) {
        cuda_pool_seg *s = &p->segs[si];
        if (addr < s->base || addr >= s->base + s->size) continue;
        size_t at = 0;
        while (at < s->n_free && s->free[at].addr < addr) at++;
        int merge_prev = at > 0 && s->free[at - 1].addr + s->free[at - 1].size == addr;
        int merge_next = at < s->n_free && addr + size == s->free[at].addr;
        if (merge_prev && merge_next) {
            s->free[at - 1].size += size + s->free[at].size;
            pool_remove_free(s, at);
        } else if (merge_prev) {
            s->free[at - 1].size += size;
        } else if (merge_next) {
            s->free[at].addr = addr;
            s->free[at].size += size;
        } else if (pool_insert_free(s, at, (cuda_pool_range){addr, size}) != 0) {
            return; /* no host memory for the list: the range stays lost, never reused twice */
        }
        s->used -= size;
        p->in_use -= size;
        return;
    }
}

size_t cuda_pool_trim(cuda_pool *p) {
    size_t released = 0, keep = 0;
    for (size_t i = 0; i < p->n_segs; i++) {
        cuda_pool_seg *s = &p->segs[i];
        if (s->used == 0) {
            p->release(p->ctx, s->base, s->size);
            released += s->size;
            free(s->free);
            continue;
        }
        p->segs[keep++] = *s;
    }
    p->n_segs = keep;
    p->reserved -= released;
    return released;
}

void cuda_pool_destroy(cuda_pool *p) {
    for (size_t i = 0; i < p->n_segs; i++) {
        p->release(p->ctx, p->segs[i].base, p->segs[i].size);
        free(p->segs[i].free);
    }
    free(p->segs);
    p->segs = NULL;
    p->n_segs = p->cap_segs = 0;
    p->reserved = p->in_use = 0;
}
