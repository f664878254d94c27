/* cpu_tensor.c - strided tensor helpers: element counts, contiguity and a
 * parallel N-d iterator that coalesces dimensions so permuted and
 * broadcast views still run long inner loops. */
#include "cpu_internal.h"

#define CPU_ITER_MAX_OPS 3
#define CPU_ITER_MIN_WORK 16384

int64_t cpu_numel(const sdrt_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int cpu_is_contiguous(const sdrt_tensor *t) {
    int64_t expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != expect) return 0;
        expect *= t->shape[i];
    }
    return 1;
}

typedef struct cpu_iter {
    int ndim, nops;
    int64_t shape[SDRT_MAX_DIMS];
    int64_t strides[CPU_ITER_MAX_OPS][SDRT_MAX_DIMS];
    int64_t rows, rows_per_task;
    cpu_row_fn fn;
    void *arg;
} cpu_iter;

/* Drops size-1 dims and merges a dim into its outer neighbour when every
 * operand steps through both as one. */
static void cpu_iter_coalesce(cpu_iter *it, int ndim, const int64_t *shape, const int64_t *const *strides) {
    it->ndim = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 1) continue;
        int n = it->ndim;
        int merge = n > 0;
        for (int o = 0; o < it->nops && merge; o++)
            merge = it->strides[o][n - 1] == strides[o][d] * shape[d];
        if (merge) {
            it->shape[n - 1] *= shape[d];
            for (int o = 0; o < it->nops; o++) it->strides[o][n - 1] = strides[o][d];
            continue;
        }
        it->shape[n] = shape[d];
        for (int o = 0; o < it->nops; o++) it->strides[o][n] = strides[o][d];
        it->ndim++;
    }
    if (it->ndim == 0) {
        it->ndim = 1;
        it->shape[0] = 1;
        for (int o = 0; o < it->nops; o++) it->strides[o][0] = 0;
    }
}

static void cpu_iter_task(void *arg, int64_t t, int thread) {
    const cpu_iter *it = arg;
    int inner = it->ndim - 1;
    int64_t inner_strides[CPU_ITER_MAX_OPS], offs[CPU_ITER_MAX_OPS];
    for (int o = 0; o < it->nops; o++) inner_strides[o] = it->strides[o][inner];
    int64_t r1 = (t + 1) * it->rows_per_task;
    if (r1 > it->rows) r1 = it->rows;
    for (int64_t r = t * it->rows_per_task; r < r1; r++) {
        for (int o = 0; o < it->nops; o++) offs[o] = 0;
        int64_t rem = r;
        for (int d = inner - 1; d >= 0; d--) {
            int64_t idx = rem % it->shape[d];
            rem /= it->shape[d];
            for (int o = 0; o < it->nops; o++) offs[o] += idx * it->strides[o][d];
        }
        it->fn(it->arg, it->shape[inner], offs, inner_strides);
    }
}

void cpu_iterate(cpu_ctx *ctx, int ndim, const int64_t *shape, int nops, const int64_t *const *strides,
                 cpu_row_fn fn, void *arg) {
    cpu_iter it = {.nops = nops, .fn = fn, .arg = arg};
    cpu_iter_coalesce(&it, ndim, shape, strides);
    for (int d = 0; d < ndim; d++)
        if (shape[d] == 0) return;
    it.rows = 1;
    for (int d = 0; d < it.ndim - 1; d++) it.rows *= it.shape[d];
    int64_t inner = it.shape[it.ndim - 1];
    it.rows_per_task = cpu_div_up(CPU_ITER_MIN_WORK, inner);
    int64_t tasks = cpu_div_up(it.rows, it.rows_per_task);
    /* Enough tasks to balance, never tasks smaller than the minimum. */
    int64_t want = 4 * (int64_t)ctx->threads;
    if (tasks > want) {
        it.rows_per_task = cpu_div_up(it.rows, want);
        tasks = cpu_div_up(it.rows, it.rows_per_task);
    }
    cpu_ctx_run(ctx, tasks, cpu_iter_task, &it);
}

int64_t cpu_row_offset(const sdrt_tensor *t, int64_t r) {
    int64_t off = 0;
    for (int d = t->ndim - 2; d >= 0; d--) {
        off += (r % t->shape[d]) * t->strides[d];
        r /= t->shape[d];
    }
    return off;
}

int64_t cpu_rows(const sdrt_tensor *t) {
    int64_t r = 1;
    for (int d = 0; d < t->ndim - 1; d++) r *= t->shape[d];
    return r;
}

int cpu_same_shape(const sdrt_tensor *a, const sdrt_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

void cpu_set_contiguous_strides(sdrt_tensor *t) {
    int64_t s = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        t->strides[d] = s;
        s *= t->shape[d];
    }
}

sdrt_status cpu_contiguous(cpu_ctx *ctx, const sdrt_tensor *t, cpu_slot slot, sdrt_tensor *out) {
    *out = *t;
    if (cpu_is_contiguous(t)) return SDRT_OK;
    out->data = cpu_ctx_shared(ctx, slot, (size_t)cpu_numel(t) * cpu_dtype_size(t->dtype));
    if (!out->data) return SDRT_RESOURCE_EXHAUSTED;
    cpu_set_contiguous_strides(out);
    return cpu_copy_tensor(ctx, t, out);
}

const float *cpu_param_f32(cpu_ctx *ctx, const sdrt_tensor *t, int64_t n, int which, sdrt_status *st) {
    *st = SDRT_OK;
    if (!t) return NULL;
    if (cpu_numel(t) != n) {
        *st = SDRT_INVALID_ARGUMENT;
        return NULL;
    }
    /* F32 with unit stride over its only non-1 dim: used in place. */
    int64_t step = 1;
    int runs = 0;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] != 1) step = t->strides[d], runs++;
    if (t->dtype == SDRT_DTYPE_F32 && runs <= 1 && step == 1) return t->data;
    float *dst = cpu_ctx_shared(ctx, CPU_SLOT_MISC, (size_t)(2 * n) * sizeof(float));
    if (!dst) {
        *st = SDRT_RESOURCE_EXHAUSTED;
        return NULL;
    }
    dst += which * n;
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0, rem = i;
        for (int d = t->ndim - 1; d >= 0; d--) {
            off += (rem % t->shape[d]) * t->strides[d];
            rem /= t->shape[d];
        }
        dst[i] = cpu_load_f32(t->data, t->dtype, off);
    }
    return dst;
}
