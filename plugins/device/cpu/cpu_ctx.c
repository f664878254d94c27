/* cpu_ctx.c - a stream's execution context: its thread pool and scratch
 * memory that grows to the largest op seen and is reused afterwards, so
 * steady-state inference does no allocation inside ops. */
#include "cpu_internal.h"

#include <stdlib.h>

void *cpu_aligned_alloc(size_t bytes) {
    void *p = NULL;
    /* 64 bytes: one cache line, one AVX-512 vector. */
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    return p;
}

void cpu_aligned_free(void *p) { free(p); }

static int cpu_buf_grow(cpu_buf *b, size_t bytes) {
    if (b->size >= bytes) return 0;
    void *p = cpu_aligned_alloc(bytes);
    if (!p) return -1;
    cpu_aligned_free(b->ptr);
    b->ptr = p;
    b->size = bytes;
    return 0;
}

int cpu_ctx_init(cpu_ctx *ctx, int threads) {
    *ctx = (cpu_ctx){0};
    ctx->threads = threads < 1 ? 1 : threads;
    if (ctx->threads > 1) {
        ctx->pool = cpu_pool_new(ctx->threads);
        if (!ctx->pool) return -1;
    }
    for (int s = 0; s < CPU_SLOT_COUNT_; s++) {
        ctx->local[s] = calloc((size_t)ctx->threads, sizeof(cpu_buf));
        if (!ctx->local[s]) {
            cpu_ctx_release(ctx);
            return -1;
        }
    }
    return 0;
}

void cpu_ctx_release(cpu_ctx *ctx) {
    cpu_pool_free(ctx->pool);
    ctx->pool = NULL;
    for (int s = 0; s < CPU_SLOT_COUNT_; s++) {
        if (ctx->local[s]) {
            for (int t = 0; t < ctx->threads; t++) cpu_aligned_free(ctx->local[s][t].ptr);
            free(ctx->local[s]);
            ctx->local[s] = NULL;
        }
        cpu_aligned_free(ctx->shared[s].ptr);
        ctx->shared[s] = (cpu_buf){0};
    }
    cpu_wcache_free(ctx->wcache);
    ctx->wcache = NULL;
}

int cpu_ctx_reserve_local(cpu_ctx *ctx, cpu_slot slot, size_t bytes) {
    for (int t = 0; t < ctx->threads; t++)
        if (cpu_buf_grow(&ctx->local[slot][t], bytes) != 0) return -1;
    return 0;
}

void *cpu_ctx_shared(cpu_ctx *ctx, cpu_slot slot, size_t bytes) {
    if (cpu_buf_grow(&ctx->shared[slot], bytes) != 0) return NULL;
    return ctx->shared[slot].ptr;
}

void cpu_ctx_run(cpu_ctx *ctx, int64_t n_tasks, cpu_task_fn fn, void *arg) {
    cpu_pool_run(ctx->pool, n_tasks, fn, arg);
}
