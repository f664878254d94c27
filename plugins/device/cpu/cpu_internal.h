/* cpu_internal.h - private declarations shared by the CPU backend's files.
 *
 * Layers, bottom up: features (cpuid) -> pool (threads) -> ctx (a stream's
 * threads and scratch memory) -> gemm (packing, micro-kernels, driver) ->
 * ops (one file per op family) -> stream/device/entry.
 * Nothing here crosses the plugin boundary.
 */
#ifndef SDRT_CPU_INTERNAL_H
#define SDRT_CPU_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sdrt/backend.h"

/* ---- run-time CPU features ------------------------------------------------ */

typedef struct cpu_features {
    int sse42, avx, avx2, fma, f16c;
    int avx512f, avx512bw, avx512vl, avx512dq, avx512bf16, avx512fp16, amx_bf16;
    int avx512vnni, avx_vnni;
} cpu_features;

/* Detected once (cpuid + xgetbv: OS must save the registers); thread-safe. */
const cpu_features *cpu_features_get(void);

/* ---- thread pool ---------------------------------------------------------- */

typedef struct cpu_pool cpu_pool;
/* fn(ctx, task, thread): thread in [0, cpu_pool_size). */
typedef void (*cpu_task_fn)(void *ctx, int64_t task, int thread);

/* A pool of `threads` workers counting the caller (threads-1 are spawned).
 * NULL on failure. */
cpu_pool *cpu_pool_new(int threads);
void cpu_pool_free(cpu_pool *pool);
int cpu_pool_size(const cpu_pool *pool);
/* Runs fn for task 0..n_tasks-1 on the pool and the calling thread; returns
 * when all are done. Not reentrant: tasks must not call cpu_pool_run. */
void cpu_pool_run(cpu_pool *pool, int64_t n_tasks, cpu_task_fn fn, void *ctx);

/* ---- execution context: one per stream ------------------------------------ */

/* Scratch slots: each is a per-thread (or shared) growable buffer. Slots
 * let nested users (attention calling the GEMM pieces) keep separate
 * memory. */
typedef enum cpu_slot {
    CPU_SLOT_PACK_A = 0,  /* per thread: packed A block (or B chunk when A is shared) */
    CPU_SLOT_PACK_B,      /* shared: the GEMM operand packed for all threads */
    CPU_SLOT_TMP_DST,     /* shared: contiguous staging of a strided dst */
    CPU_SLOT_TMP_SRC,     /* shared: contiguous staging of a strided src */
    CPU_SLOT_ATTN_K,      /* shared: packed K (A panels) for all heads */
    CPU_SLOT_ATTN_V,      /* shared: packed V^T (A panels) for all heads */
    CPU_SLOT_ATTN_S,      /* per thread: scores of one key block */
    CPU_SLOT_ATTN_P,      /* per thread: packed queries, softmax max/sum */
    CPU_SLOT_ATTN_O,      /* per thread: output accumulator (O^T) */
    CPU_SLOT_MISC,        /* per thread: row buffers; shared: staged bias */
    CPU_SLOT_LP_A,        /* shared: activations packed for a low-precision GEMM */
    CPU_SLOT_LP_STAGE,    /* per thread: f32 staging of low-precision packers */
    CPU_SLOT_LP_C,        /* per thread: a low-precision task's C block (transposed C) */
    CPU_SLOT_COUNT_
} cpu_slot;

typedef struct cpu_buf {
    void *ptr;
    size_t size;
} cpu_buf;

/* The stream's compute precision for weight products ("precision" of the
 * stream params; cpu_lowp.c). F32 is the default and the only one other
 * ops use. */
typedef enum cpu_precision { CPU_PREC_F32 = 0, CPU_PREC_BF16 = 1, CPU_PREC_INT8 = 2 } cpu_precision;

typedef struct cpu_wcache cpu_wcache;

typedef struct cpu_ctx {
    cpu_pool *pool;
    int threads;
    cpu_buf *local[CPU_SLOT_COUNT_]; /* [threads] each */
    cpu_buf shared[CPU_SLOT_COUNT_];
    cpu_precision precision;
    cpu_wcache *wcache; /* weights packed for `precision`, made on first use (NULL: none yet) */
} cpu_ctx;

int cpu_ctx_init(cpu_ctx *ctx, int threads);
void cpu_ctx_release(cpu_ctx *ctx);
/* Grows slot `slot` of every thread to >= bytes (64-byte aligned). Call
 * before a parallel section; 0 on success, -1 out of memory. */
int cpu_ctx_reserve_local(cpu_ctx *ctx, cpu_slot slot, size_t bytes);
static inline void *cpu_ctx_local(cpu_ctx *ctx, cpu_slot slot, int thread) {
    return ctx->local[slot][thread].ptr;
}
/* Shared slot of >= bytes, or NULL out of memory. */
void *cpu_ctx_shared(cpu_ctx *ctx, cpu_slot slot, size_t bytes);
void cpu_ctx_run(cpu_ctx *ctx, int64_t n_tasks, cpu_task_fn fn, void *arg);

void *cpu_aligned_alloc(size_t bytes);
void cpu_aligned_free(void *p);

/* ---- dtype conversion ----------------------------------------------------- */

/* dst[i] = (float)src[i] for src of dtype F32, F16 or BF16, contiguous.
 * Uses F16C / AVX-512 when present. */
void cpu_convert_row_f32(float *dst, const void *src, sdrt_dtype dtype, int64_t n);
/* Element size in bytes of the dtypes this backend reads; 0 if unknown. */
size_t cpu_dtype_size(sdrt_dtype dtype);
float cpu_load_f32(const void *base, sdrt_dtype dtype, int64_t index);
void cpu_store_f32(void *base, sdrt_dtype dtype, int64_t index, float v);

/* ---- vector math ---------------------------------------------------------- */

/* Max of x[0..n) (-inf when n == 0). */
float cpu_row_max(const float *x, int64_t n);
/* x[i] = exp(x[i] - shift) in place; returns the sum. */
float cpu_exp_shift_sum(float *x, int64_t n, float shift);
/* One key block of an online (flash-style) softmax stored column-wise, in
 * base 2 (the caller folds log2(e) into the scores): s[rows][nr] holds
 * scores, one query per column (s 64-byte aligned for the SIMD paths). Per
 * column: the running max m and sum l are updated, s becomes 2^(s - new
 * max), and the accumulator o[orows][nr] is rescaled by 2^(old max - new
 * max). Start with m = -inf, l = 0, o = 0; -inf scores give 0. */
void cpu_softmax2_cols_step(float *s, int64_t rows, int nr, float *m, float *l, float *o, int64_t orows);

/* ---- activations (cpu_vact.c) -------------------------------------------- */

/* One element of GELU, GELU_TANH, QUICK_GELU or SILU (portable). */
float cpu_act1(sdrt_op_kind kind, float v);
float cpu_gelu1(float v);
/* y[i] = act(x[i]) over contiguous rows (y may equal x), AVX-512 / AVX2
 * when the chosen kernel level allows. */
void cpu_act_row_f32(sdrt_op_kind kind, const float *x, float *y, int64_t n);
/* The same at SIMD level <= `level` (2 AVX-512, 1 AVX2, 0 portable): tests
 * compare the paths. */
void cpu_act_row_f32_level(int level, sdrt_op_kind kind, const float *x, float *y, int64_t n);
/* y[i] = a[i] * gelu(g[i]) (GEGLU), contiguous. */
void cpu_geglu_row_f32(const float *a, const float *g, float *y, int64_t n);

/* ---- GEMM ------------------------------------------------------------------ */

/* Applied when a micro-tile is written: c = (acc [+ c if accumulate]) and,
 * on the last K slice, c = c * alpha + bias_n[j] + bias_m[i]. Bias pointers
 * are already offset to the tile (NULL: none). */
typedef struct cpu_epilogue {
    float alpha;
    const float *bias_n;
    const float *bias_m;
    int accumulate;
    int last;
} cpu_epilogue;

/* C[MR x NR] (row stride ldc) from packed a[kc][MR], b[kc][NR]. */
typedef void (*cpu_ukernel_fn)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                               const cpu_epilogue *e);

typedef struct cpu_kernel {
    const char *name;
    int mr, nr;
    cpu_ukernel_fn fn;
} cpu_kernel;

extern const cpu_kernel cpu_kernel_avx512;
extern const cpu_kernel cpu_kernel_avx512_n16;
extern const cpu_kernel cpu_kernel_avx512_m8;
extern const cpu_kernel cpu_kernel_avx2;
extern const cpu_kernel cpu_kernel_scalar;

/* The fastest kernel this CPU runs (SDRT_CPU_KERNEL=avx512|avx2|scalar
 * overrides, for tests and benchmarks). */
const cpu_kernel *cpu_kernel_best(void);
/* The best kernel for a product with n columns: a narrower-NR variant when
 * it wastes clearly less padding. */
const cpu_kernel *cpu_kernel_for_n(int64_t n);
/* The best kernel for an m x n product: cpu_kernel_for_n's choice, or a
 * fewer-rows variant when m would pad clearly less (m <= 0: by n only). */
const cpu_kernel *cpu_kernel_for(int64_t m, int64_t n);

/* A matrix operand seen as rows "outer" x columns "k": element (o, k) at
 * data + o*so + k*sk (elements, dtype). For A, outer = m; for B, outer = n.
 * `pack` (NULL: the strided packer) writes rows o0..o0+on and columns
 * k0..k0+kc as panels of `w` rows: dst[p][k][w], zero-padded. */
typedef struct cpu_operand cpu_operand;
typedef void (*cpu_pack_fn)(const cpu_operand *op, int64_t o0, int64_t on, int64_t k0, int64_t kc,
                            int w, float *dst);
struct cpu_operand {
    const void *data;
    sdrt_dtype dtype;
    int64_t so, sk;
    cpu_pack_fn pack;
    const void *ctx; /* for custom packers */
};

void cpu_pack_strided(const cpu_operand *op, int64_t o0, int64_t on, int64_t k0, int64_t kc, int w,
                      float *dst);
/* One panel: rows first..first+rows (rows <= w) of an operand with sk == 1,
 * columns k0..k0+kc, lanes rows..w zero (cpu_gemm_pack.c). */
typedef void (*cpu_panel_pack_fn)(const cpu_operand *op, int64_t first, int rows, int64_t k0, int64_t kc, int w,
                                  float *d);
void cpu_pack_panel_kcontig_scalar(const cpu_operand *op, int64_t first, int rows, int64_t k0, int64_t kc, int w,
                                   float *d);
/* The k-contiguous panel packer for a SIMD level (2 AVX-512, 1 AVX2, 0
 * portable), capped at what this CPU runs: tests compare them. */
cpu_panel_pack_fn cpu_pack_panel_kcontig_for(int level);
static inline void cpu_pack(const cpu_operand *op, int64_t o0, int64_t on, int64_t k0, int64_t kc, int w,
                            float *dst) {
    (op->pack ? op->pack : cpu_pack_strided)(op, o0, on, k0, kc, w, dst);
}

/* C[m,n] (row stride ldc, unit column stride) = alpha * A B + bias. */
typedef struct cpu_gemm_args {
    int64_t m, n, k;
    cpu_operand a, b;
    float *c;
    int64_t ldc;
    float alpha;
    const float *bias_n; /* [n] or NULL */
    const float *bias_m; /* [m] or NULL */
    const cpu_kernel *kern; /* NULL: cpu_kernel_best() */
    /* batch > 1: `batch` products sharing A, alpha and the biases, product
     * i with B = b_batch[i] and C = c_batch[i] (b and c are then unused).
     * Each A block is packed once for all of them: how a convolution over
     * N images reads its weights once per call instead of once per image. */
    int64_t batch;
    const cpu_operand *b_batch;
    float *const *c_batch;
} cpu_gemm_args;

/* Threaded over the context's pool. Returns SDRT_OK or RESOURCE_EXHAUSTED. */
sdrt_status cpu_gemm(cpu_ctx *ctx, const cpu_gemm_args *g);

/* Single-threaded macro-kernel over packed operands: pa holds ceil(m/MR)
 * A panels, pb ceil(n/NR) B panels, both of depth kc. Handles edge tiles.
 * `e` biases point at row 0 / column 0 of this block. */
void cpu_gemm_packed(const cpu_kernel *kern, int64_t m, int64_t n, int64_t kc, const float *pa,
                     const float *pb, float *c, int64_t ldc, const cpu_epilogue *e);

static inline int64_t cpu_round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }
static inline int64_t cpu_div_up(int64_t x, int64_t to) { return (x + to - 1) / to; }

/* ---- low-precision weight products (cpu_lowp*.c, cpu_wcache.c) ----------------
 *
 * Opt-in per stream ("precision" in the stream params): a MATMUL whose B is
 * a weight (a tensor with no buffer: borrowed host memory that outlives
 * every use, per sdrt/tensor.h) runs as C = alpha * A W^T + bias with
 *  - int8: W as ggml q8_0 (blocks of 32 along k, one scale each; Q8_0
 *    weights copied as they are, others quantised once by sdrt_quant_row)
 *    and each row of A quantised per call the same way (blocks of 32,
 *    d = max|x| / 127, q = round-to-nearest-even(x / d), d kept in f32);
 *    the 32-element integer dot products are exact, then scaled by
 *    d_a * d_w and summed in f32;
 *  - bf16: W and A rounded to bf16 (nearest even), products summed in f32.
 * W is packed once per stream (the weight cache) into the kernel's panels.
 *
 * The unit of every kernel is a block of CPU_LP_K = 32 along k (K is
 * zero-padded to whole blocks). Per unit, an A panel of MR rows holds
 *   U8     [MR][32] u8 q+128,           f32 d[MR]   (VNNI: u8 x s8 products)
 *   S8ABS  [MR][32] s8 q, [MR][32] |q|, f32 d[MR]   (AVX2: sign trick)
 *   S8     [MR][32] s8 q,               f32 d[MR]   (portable)
 *   BF16   [MR][32] bf16
 * and a B (weight) panel of NR columns
 *   int8   [8][NR][4] s8 q, f32 d[NR], i32 -128*sum(q)[NR]
 *   bf16   [16][NR][2] bf16. */
#define CPU_LP_K 32
typedef enum cpu_lp_afmt { CPU_LPA_U8 = 0, CPU_LPA_S8ABS, CPU_LPA_S8, CPU_LPA_BF16 } cpu_lp_afmt;

/* C[MR x NR] (row stride ldc) over `units` blocks of packed a and b, then
 * the epilogue as for the f32 kernels. */
typedef void (*cpu_lp_ukernel_fn)(int64_t units, const uint8_t *a, const uint8_t *b, float *c, int64_t ldc,
                                  const cpu_epilogue *e);

typedef struct cpu_lp_kernel {
    const char *name;
    cpu_precision prec;
    cpu_lp_afmt afmt;
    int mr, nr;
    int level; /* SIMD level it needs: 2 AVX-512 (+VNNI / BF16), 1 AVX2, 0 portable */
    cpu_lp_ukernel_fn fn;
} cpu_lp_kernel;

extern const cpu_lp_kernel cpu_lp_int8_vnni512; /* 6x32, AVX-512 VNNI vpdpbusd */
extern const cpu_lp_kernel cpu_lp_int8_avx2;    /* 4x8, AVX2 vpmaddubsw + vpmaddwd */
extern const cpu_lp_kernel cpu_lp_int8_avxvnni; /* 3x16, AVX-VNNI vpdpbusd on ymm */
extern const cpu_lp_kernel cpu_lp_int8_scalar;  /* 4x8, portable */
extern const cpu_lp_kernel cpu_lp_bf16_avx512;  /* 14x32, AVX-512 BF16 vdpbf16ps */

size_t cpu_lp_a_unit_bytes(const cpu_lp_kernel *k);
size_t cpu_lp_b_unit_bytes(const cpu_lp_kernel *k);

/* The kernel for `prec` at SIMD level <= `level` that this CPU runs (at
 * level 1 AVX-VNNI when present, else AVX2); NULL when there is none (bf16
 * without AVX-512 BF16, F32). */
const cpu_lp_kernel *cpu_lp_kernel_for(cpu_precision prec, int level);
/* The same at the level of cpu_kernel_best() (SDRT_CPU_KERNEL caps it:
 * "avx2" also excludes AVX-VNNI, "avxvnni" allows it). */
const cpu_lp_kernel *cpu_lp_kernel_best(cpu_precision prec);

/* "precision" of a stream's params JSON (NULL or absent: F32). "auto" and
 * "f32" give F32, "int8" and "bf16" themselves. Returns SDRT_OK;
 * SDRT_UNSUPPORTED for "f16" and for "bf16" on a CPU (or a
 * SDRT_CPU_KERNEL level) without AVX-512 BF16; SDRT_INVALID_ARGUMENT for
 * another value or a non-string; msg (len bytes, may be NULL) says why,
 * naming the field. */
sdrt_status cpu_precision_parse(const char *params_json, cpu_precision *out, char *msg, size_t len);
const char *cpu_precision_name(cpu_precision p);

/* A weight packed for one kernel: `panels` panels of NR columns, each
 * `units` units of cpu_lp_b_unit_bytes. Owned by whoever packed it. */
typedef struct cpu_lp_weight {
    const cpu_lp_kernel *kern;
    int64_t n, k, units, panels;
    size_t panel_bytes;
    uint8_t *data;
} cpu_lp_weight;

/* Packs w (outer = n output columns, k; any operand cpu_pack reads, of
 * any dtype; Q8_0 rows with sk == 1 are copied, not requantised) for
 * kern on the context's threads. SDRT_OK or RESOURCE_EXHAUSTED. */
sdrt_status cpu_lp_pack_weight(cpu_ctx *ctx, const cpu_lp_kernel *kern, const cpu_operand *w, int64_t n, int64_t k,
                               cpu_lp_weight *out);
void cpu_lp_weight_free(cpu_lp_weight *w);

/* C[m, w->n] (row stride ldc, unit column stride) = alpha * A W^T +
 * bias_n, A an f32 operand of m rows and w->k columns (any strides or a
 * custom packer such as im2col; rows are quantised / rounded per call).
 * c_trans: C is stored transposed, element (i, j) at c[j * ldc + i] (a
 * convolution's [channel][pixel] output). SDRT_OK or RESOURCE_EXHAUSTED. */
typedef struct cpu_lp_gemm_args {
    int64_t m;
    cpu_operand a;
    const cpu_lp_weight *w;
    float *c;
    int64_t ldc;
    int c_trans;
    float alpha;
    const float *bias_n; /* [n] or NULL */
} cpu_lp_gemm_args;
sdrt_status cpu_lp_gemm(cpu_ctx *ctx, const cpu_lp_gemm_args *g);

/* Quantises x[0..32) as the int8 mode does (see above): q[32], returns d.
 * The portable reference of the SIMD quantisers; tests use it. */
float cpu_lp_quant32(const float *x, int8_t *q);
/* The same through the SIMD quantiser of `level` (capped at this CPU's). */
float cpu_lp_quant32_level(int level, const float *x, int8_t *q);
/* One weight block of 32 as ggml's q8_0 (byte-identical to
 * sdrt_quant_row): q[32], returns d as f16 bits. */
uint16_t cpu_lp_q8_0_block(int level, const float *x, int8_t *q);

/* The weight packed for kern from the stream's cache, packing it on first
 * use (key: data, dtype, so, sk, n, k, kernel). Only operands with the
 * default packer (op->pack NULL) can be cached. NULL and *st set on
 * failure; RESOURCE_EXHAUSTED (no memory for the copy, logged once) means
 * the caller computes that product in f32 instead. Valid until the
 * context is released. */
const cpu_lp_weight *cpu_wcache_get(cpu_ctx *ctx, const cpu_lp_kernel *kern, const cpu_operand *w, int64_t n,
                                    int64_t k, sdrt_status *st);
void cpu_wcache_free(cpu_wcache *c);

/* ---- strided tensor helpers ------------------------------------------------ */

int64_t cpu_numel(const sdrt_tensor *t);
int cpu_is_contiguous(const sdrt_tensor *t);
/* Iterates over `shape` (ndim dims) with up to 3 operands' strides: dims are
 * coalesced, then fn(ctx, n, ptr offsets[], inner strides[]) runs for each
 * run of the innermost dim, spread over the pool. Offsets/strides are in
 * elements. */
typedef void (*cpu_row_fn)(void *ctx, int64_t n, const int64_t *offs, const int64_t *inner);
void cpu_iterate(cpu_ctx *ctx, int ndim, const int64_t *shape, int nops, const int64_t *const *strides,
                 cpu_row_fn fn, void *arg);
/* Offset (elements) of row `r` of t seen as [rows, last dim]. */
int64_t cpu_row_offset(const sdrt_tensor *t, int64_t r);
/* Rows of t seen as [rows, last dim]. */
int64_t cpu_rows(const sdrt_tensor *t);
/* Non-zero when every dim (and rank) of a and b match. */
int cpu_same_shape(const sdrt_tensor *a, const sdrt_tensor *b);
/* A contiguous view of `t`: t itself if contiguous, else a copy staged in
 * `slot` (shared). Returns SDRT_OK or RESOURCE_EXHAUSTED. */
sdrt_status cpu_contiguous(cpu_ctx *ctx, const sdrt_tensor *t, cpu_slot slot, sdrt_tensor *out);
/* A parameter vector of n elements (bias, norm scale/shift; F32, F16 or
 * BF16, any shape of n elements and any strides) as contiguous floats: t's
 * own memory when it already is one, else a copy in the shared MISC slot
 * (which = 0 or 1 picks one of its two halves, so gamma and beta can be
 * staged together). NULL when t is NULL; *st = INVALID_ARGUMENT when t does
 * not hold n elements, RESOURCE_EXHAUSTED without memory. */
const float *cpu_param_f32(cpu_ctx *ctx, const sdrt_tensor *t, int64_t n, int which, sdrt_status *st);
/* Sets contiguous strides for t's shape. */
void cpu_set_contiguous_strides(sdrt_tensor *t);

/* ---- ops: each validates its operands and returns a status ----------------- */

sdrt_status cpu_op_matmul(cpu_ctx *ctx, const sdrt_op *op);
sdrt_status cpu_op_conv2d(cpu_ctx *ctx, const sdrt_op *op);
sdrt_status cpu_op_group_norm(cpu_ctx *ctx, const sdrt_op *op);
sdrt_status cpu_op_layer_norm(cpu_ctx *ctx, const sdrt_op *op);
sdrt_status cpu_op_softmax(cpu_ctx *ctx, const sdrt_op *op);
sdrt_status cpu_op_attention(cpu_ctx *ctx, const sdrt_op *op);
sdrt_status cpu_op_activation(cpu_ctx *ctx, const sdrt_op *op); /* GELU..SILU, SCALE */
sdrt_status cpu_op_geglu(cpu_ctx *ctx, const sdrt_op *op);
sdrt_status cpu_op_binary(cpu_ctx *ctx, const sdrt_op *op);     /* ADD, MUL */
sdrt_status cpu_op_concat(cpu_ctx *ctx, const sdrt_op *op);
sdrt_status cpu_op_upsample2x(cpu_ctx *ctx, const sdrt_op *op);
sdrt_status cpu_op_timestep_emb(cpu_ctx *ctx, const sdrt_op *op);
/* LEAKY_RELU, PRELU, PIXEL_SHUFFLE, PIXEL_UNSHUFFLE, UPSAMPLE_NEAREST */
sdrt_status cpu_op_sr(cpu_ctx *ctx, const sdrt_op *op);
sdrt_status cpu_op_copy(cpu_ctx *ctx, const sdrt_op *op);
/* dst = src (same shape) converting dtypes; shared by COPY and CONCAT. */
sdrt_status cpu_copy_tensor(cpu_ctx *ctx, const sdrt_tensor *src, sdrt_tensor *dst);

/* Validates `op` (struct_size, supports_op) and runs it on ctx: what a
 * CPU stream's compute does, for families that compute with these kernels
 * on host storage (the strict test device). */
sdrt_status cpu_op_dispatch(cpu_ctx *ctx, const sdrt_op *op);

/* Whether compute would accept op (kind, dtypes, ranks); shapes are checked
 * by the op itself. */
int cpu_supports_op(const sdrt_op *op);

/* ---- stream, buffer type ------------------------------------------------------ */

extern const sdrt_buffer_type_iface cpu_buffer_type_iface;
/* "threads" of a JSON object text, 0 when absent or invalid. */
int cpu_json_threads(const char *json);
/* A new stream on dev; params_json may set "threads" and "precision"
 * (cpu_precision_parse). NULL on failure, after logging why when the
 * precision is refused. */
sdrt_stream *cpu_stream_new(sdrt_device *dev, const char *params_json, int default_threads);
/* cpu_stream_new with the reason (the device iface's stream_open):
 * INVALID_ARGUMENT / UNSUPPORTED for a "precision" the CPU does not run,
 * RESOURCE_EXHAUSTED, each with a message in msg (may be NULL). */
sdrt_status cpu_stream_open(sdrt_device *dev, const char *params_json, int default_threads, sdrt_stream **out,
                            char *msg, size_t msg_size);
/* Where the family logs (set by the entry; NULL: warnings and errors to
 * stderr). */
void cpu_log_set(const sdrt_host_api *api);
void cpu_logf(sdrt_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* SDRT_CPU_INTERNAL_H */
