/* cuda_plan.h - the CUDA family's bookkeeping that needs no device: the
 * memory sub-allocator behind the VRAM buffer type and the per-stream cache
 * of captured CUDA graphs keyed by sdrt_graph.replay_key. Plain C over
 * integers and callbacks, so tests/cuda runs it on machines without a GPU.
 *
 * Thread: a pool or a cache is used by one thread at a time (the backend
 * holds the device mutex around pool calls; a cache belongs to a stream).
 */
#ifndef SDRT_CUDA_PLAN_H
#define SDRT_CUDA_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "sdrt/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- sub-allocator ---------------------------------------------------------
 * Device memory is reserved in segments (one cudaMalloc each) and handed out
 * as aligned ranges, first fit over the address-ordered free list, with
 * neighbours coalesced on free. Freed ranges stay reserved, so an arena
 * re-planned for a new graph shape reuses them without cudaMalloc/cudaFree
 * (both synchronise the whole device). When a segment cannot be reserved,
 * the wholly free segments are released and the reservation retried once. */

/* Reserves `size` bytes; 0 and *base set, or -1 (out of memory). */
typedef int (*cuda_pool_grow_fn)(void *ctx, size_t size, uintptr_t *base);
/* Returns a segment reserved by grow. */
typedef void (*cuda_pool_release_fn)(void *ctx, uintptr_t base, size_t size);

typedef struct cuda_pool_range {
    uintptr_t addr;
    size_t size;
} cuda_pool_range;

typedef struct cuda_pool_seg {
    uintptr_t base;
    size_t size;
    size_t used;            /* bytes handed out from this segment */
    cuda_pool_range *free;  /* address order, coalesced */
    size_t n_free, cap_free;
} cuda_pool_seg;

typedef struct cuda_pool {
    size_t alignment;    /* power of two */
    size_t granularity;  /* smallest segment; larger requests get their own */
    cuda_pool_seg *segs;
    size_t n_segs, cap_segs;
    size_t reserved, in_use, peak_in_use;
    cuda_pool_grow_fn grow;
    cuda_pool_release_fn release;
    void *ctx;
} cuda_pool;

void cuda_pool_init(cuda_pool *p, size_t alignment, size_t granularity, cuda_pool_grow_fn grow,
                    cuda_pool_release_fn release, void *ctx);
/* Releases every segment (outstanding ranges become invalid). */
void cuda_pool_destroy(cuda_pool *p);
/* An aligned range of >= size bytes (size 0 counts as 1); 0 or -1 when
 * neither a free range nor a new segment is available. */
int cuda_pool_alloc(cuda_pool *p, size_t size, uintptr_t *addr);
/* Returns a range from cuda_pool_alloc (the same size). */
void cuda_pool_free(cuda_pool *p, uintptr_t addr, size_t size);
/* Releases wholly free segments; returns the bytes released. */
size_t cuda_pool_trim(cuda_pool *p);
/* The size cuda_pool_alloc really takes for a request. */
size_t cuda_pool_round(const cuda_pool *p, size_t size);

/* ---- CUDA graph replay cache ------------------------------------------------
 * A stream keeps the executable graphs it captured for the last few
 * replay keys (least recently used evicted). With the key it stores a
 * fingerprint of the graph (op kinds, shapes, parameters, addresses), so a
 * caller that reuses a key for a different graph gets a fresh capture
 * rather than a wrong replay. A key whose capture failed runs op by op
 * from then on. */

#define CUDA_REPLAY_SLOTS 4

typedef enum cuda_replay_action {
    CUDA_REPLAY_DIRECT = 0,  /* run op by op, do not capture */
    CUDA_REPLAY_LAUNCH = 1,  /* launch slots[*slot].exec */
    CUDA_REPLAY_CAPTURE = 2  /* capture into *slot (evicted/emptied first) */
} cuda_replay_action;

typedef struct cuda_replay_slot {
    uint64_t key;        /* 0 = empty */
    uint64_t fingerprint;
    uint64_t last_use;
    void *exec;          /* cudaGraphExec_t; NULL when failed */
    int failed;
} cuda_replay_slot;

/* Destroys an executable graph (cudaGraphExecDestroy). */
typedef void (*cuda_replay_destroy_fn)(void *ctx, void *exec);

typedef struct cuda_replay {
    cuda_replay_slot slots[CUDA_REPLAY_SLOTS];
    uint64_t tick;
    cuda_replay_destroy_fn destroy;
    void *ctx;
    /* counters for tests and info */
    uint64_t captures, launches, direct;
} cuda_replay;

void cuda_replay_init(cuda_replay *r, cuda_replay_destroy_fn destroy, void *ctx);
/* Decides how to run `g`; for CAPTURE the slot is empty and reserved for
 * g's key (the previous occupant destroyed). */
cuda_replay_action cuda_replay_begin(cuda_replay *r, const sdrt_graph *g, int *slot);
/* After a CAPTURE: exec, or NULL when capture failed (the key then runs
 * direct). */
void cuda_replay_end_capture(cuda_replay *r, int slot, void *exec);
/* Destroys every stored graph (stream free, device reset). */
void cuda_replay_clear(cuda_replay *r);
/* FNV-1a over what a replay depends on. */
uint64_t cuda_replay_fingerprint(const sdrt_graph *g);

/* ---- MATMUL planning ----------------------------------------------------------
 * The op's operands seen as batched row-major products, and, where the
 * layout allows, the cublasSgemmStridedBatched call that computes them
 * (cuBLAS is column-major: it computes C^T = B^T A^T, so its first operand
 * is B). */

typedef struct cuda_mm_plan {
    int64_t m, n, k;
    int nb; /* batch dims (dst's leading dims) */
    int64_t bshape[SDRT_MAX_DIMS], a_bs[SDRT_MAX_DIMS], b_bs[SDRT_MAX_DIMS], c_bs[SDRT_MAX_DIMS];
    int64_t a_rs, a_cs; /* A(m,k) = a[m*a_rs + k*a_cs] */
    int64_t b_ks, b_ns; /* B(k,n) = b[k*b_ks + n*b_ns] (iparams[0] = 1 already applied) */
    int64_t c_rs, c_cs;
    int64_t batches;
} cuda_mm_plan;

/* Shapes and broadcast checked as the CPU backend does; SDRT_OK or
 * SDRT_INVALID_ARGUMENT. */
sdrt_status cuda_mm_plan_make(const sdrt_op *op, cuda_mm_plan *p);

/* Arguments of cublasSgemmStridedBatched(handle, trans_a, trans_b, m, n, k,
 * alpha, A=b_data, lda, stride_a, B=a_data, ldb, stride_b, 0, C=c_data, ldc,
 * stride_c, batches). rows/cols: the row-major C each batch writes (rows =
 * n, cols = m; rows include folded batches). */
typedef struct cuda_blas_call {
    int trans_a, trans_b;
    int64_t m, n, k, lda, ldb, ldc;
    int64_t stride_a, stride_b, stride_c, batches;
} cuda_blas_call;

/* 1 and *out when cuBLAS can run the plan (unit stride in one dim of each
 * operand and of C's columns, leading dims large enough, the batch dims
 * collapsing to one stride or folding into M, sizes within int); 0 if not. */
int cuda_mm_plan_blas(const cuda_mm_plan *p, cuda_blas_call *out);

#ifdef __cplusplus
}
#endif

#endif /* SDRT_CUDA_PLAN_H */
