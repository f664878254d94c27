/* sdrt/backend.h - the compute ABI: backend levels and the op set.
 *
 * Levels, after ggml-backend:
 *   family (sdrt_backend_reg)  e.g. "cpu", "cuda", "vulkan"
 *   -> device (sdrt_device)     one CPU, one GPU
 *   -> stream (sdrt_stream)     an execution queue on a device; runs ops
 *   -> buffer type              where a device keeps memory (host, VRAM)
 *   -> buffer (sdrt_buffer)     one allocation; tensors point into it
 * Each object is { iface, context }: the iface is a versioned vtable owned by
 * the backend, the context its private state. Callers use the inline
 * wrappers at the end of this file, which default optional members.
 *
 * A backend family is a shared object exporting `sdrt_backend_entry`; the
 * device plugin loads the families it finds and publishes them to other
 * plugins as the interface SDRT_BACKEND_IFACE_ID.
 *
 * Threads: a stream is used by one thread at a time (the caller serialises);
 * devices, buffer types and registries are thread-safe.
 */
#ifndef SDRT_BACKEND_H
#define SDRT_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "sdrt/plugin.h"
#include "sdrt/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* The op set                                                                */
/* ------------------------------------------------------------------------ */

/* Operands: src[i] are read, dst is written; dst is allocated by the caller
 * with the documented shape. Every tensor may be strided (views from
 * permute/reshape) unless noted. iparams / fparams carry the per-op
 * parameters listed here; unused entries are 0, and 0 means the default.
 *
 * Append only. Value = position in this list.
 *
 *  MATMUL       dst[..,M,N] = alpha * src0[..,M,K] @ B + src2[N]
 *               B = src1[..,K,N], or src1[..,N,K]^T when iparams[0]=1
 *               (PyTorch Linear weight). Leading dims of src1 broadcast
 *               (a 2-D src1 is shared by every batch). src2 (bias) optional.
 *               fparams[0] = alpha (0 -> 1). src1 may be F16/BF16.
 *  CONV2D       dst[N,O,Ho,Wo] = conv(src0[N,C,H,W], src1[O,C/g,kh,kw]) + src2[O]
 *               iparams: 0 stride_h, 1 stride_w, 2 pad_h, 3 pad_w,
 *               4 dilation_h, 5 dilation_w (0 -> 1), 6 groups (0 -> 1).
 *               src1 may be F16/BF16; src2 optional.
 *  GROUP_NORM   dst = groupnorm(src0[N,C,...]) * src1[C] + src2[C]
 *               iparams[0] groups, iparams[1] 1 = fused SiLU after; fparams[0] eps.
 *  LAYER_NORM   over the last dim; src1 gamma, src2 beta (optional); fparams[0] eps.
 *  SOFTMAX      over the last dim of src0 * fparams[0] (0 -> 1).
 *  ATTENTION    dst[B,H,Lq,Dv] = softmax(scale * Q K^T [+ causal mask]) V with
 *               Q=src0[B,H,Lq,D], K=src1[B,H,Lk,D], V=src2[B,H,Lk,Dv] (strided,
 *               so [B,L,H,D] storage works through strides).
 *               fparams[0] scale (0 -> 1/sqrt(D)); iparams[0] 1 = causal.
 *               Must not materialise [Lq,Lk] for all heads at once.
 *  GELU         erf GELU.        GELU_TANH  tanh approximation.
 *  QUICK_GELU   x * sigmoid(1.702 x).      SILU  x * sigmoid(x).
 *  GEGLU        src0[..,2N] -> dst[..,N] = a * gelu(g), a = first half,
 *               g = second half (diffusers GEGLU).
 *  ADD, MUL     dst = src0 (+|*) src1, src1 broadcast to src0's shape by
 *               NumPy rules (right-aligned). ADD: fparams[0] = alpha on src1
 *               (0 -> 1).
 *  SCALE        dst = src0 * fparams[0] + fparams[1].
 *  CONCAT       dst = cat(src0, src1) along dim iparams[0].
 *  UPSAMPLE2X   nearest-neighbour 2x: [N,C,H,W] -> [N,C,2H,2W].
 *  TIMESTEP_EMB src0[N] (F32 timesteps) -> dst[N, dim], dim = iparams[0];
 *               iparams[1] 1 = flip_sin_to_cos; fparams[0] downscale_freq_shift;
 *               fparams[1] max_period (0 -> 10000); fparams[2] scale (0 -> 1).
 *               Matches diffusers get_timestep_embedding.
 *  COPY         dst = src0 element by element in logical order: contiguous
 *               copies, permutes (strided src), and dtype conversion.
 */
#define SDRT_OP_LIST(X) \
    X(MATMUL)           \
    X(CONV2D)           \
    X(GROUP_NORM)       \
    X(LAYER_NORM)       \
    X(SOFTMAX)          \
    X(ATTENTION)        \
    X(GELU)             \
    X(GELU_TANH)        \
    X(QUICK_GELU)       \
    X(SILU)             \
    X(GEGLU)            \
    X(ADD)              \
    X(MUL)              \
    X(SCALE)            \
    X(CONCAT)           \
    X(UPSAMPLE2X)       \
    X(TIMESTEP_EMB)     \
    X(COPY)

typedef enum sdrt_op_kind {
#define SDRT_OP_ENUM_(name) SDRT_OP_##name,
    SDRT_OP_LIST(SDRT_OP_ENUM_)
#undef SDRT_OP_ENUM_
    SDRT_OP_COUNT_
} sdrt_op_kind;

#define SDRT_OP_MAX_SRC 4
#define SDRT_OP_MAX_PARAMS 8

typedef struct sdrt_op {
    uint32_t struct_size;
    sdrt_op_kind kind;
    const sdrt_tensor *src[SDRT_OP_MAX_SRC]; /* unused: NULL */
    sdrt_tensor *dst;
    int32_t iparams[SDRT_OP_MAX_PARAMS];
    float fparams[SDRT_OP_MAX_PARAMS];
} sdrt_op;

/* ------------------------------------------------------------------------ */
/* Levels                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct sdrt_backend_reg sdrt_backend_reg;
typedef struct sdrt_device sdrt_device;
typedef struct sdrt_stream sdrt_stream;
typedef struct sdrt_buffer_type sdrt_buffer_type;

typedef enum sdrt_device_type {
    SDRT_DEVICE_CPU = 0,
    SDRT_DEVICE_GPU = 1,
    SDRT_DEVICE_IGPU = 2
} sdrt_device_type;

/* Buffer: one allocation. */
typedef struct sdrt_buffer_iface {
    uint32_t struct_size;
    /* Frees the buffer and invalidates every tensor pointing into it. */
    void (*free)(sdrt_buffer *buf);
    /* Base address in the buffer's memory space. */
    void *(*base)(sdrt_buffer *buf);
    /* Copies `size` bytes from host memory `src` to buffer address `dst`
     * (inside this buffer). Synchronous. */
    void (*write)(sdrt_buffer *buf, void *dst, const void *src, size_t size);
    /* Copies `size` bytes from buffer address `src` to host memory `dst`. */
    void (*read)(sdrt_buffer *buf, void *dst, const void *src, size_t size);
} sdrt_buffer_iface;

struct sdrt_buffer {
    const sdrt_buffer_iface *iface;
    void *context;
    sdrt_buffer_type *type;
    size_t size;
};

/* Buffer type: where and how a device allocates. */
typedef struct sdrt_buffer_type_iface {
    uint32_t struct_size;
    const char *(*name)(sdrt_buffer_type *bt);
    /* Returns a new buffer of at least `size` bytes owned by the caller
     * (free with buf->iface->free), or NULL when out of memory. */
    sdrt_buffer *(*alloc)(sdrt_buffer_type *bt, size_t size);
    size_t (*alignment)(sdrt_buffer_type *bt);
    /* Non-zero if buffer addresses are host pointers usable directly. */
    int (*is_host)(sdrt_buffer_type *bt);
} sdrt_buffer_type_iface;

struct sdrt_buffer_type {
    const sdrt_buffer_type_iface *iface;
    void *context;
    sdrt_device *device;
};

/* Stream: executes ops in order. */
typedef struct sdrt_stream_iface {
    uint32_t struct_size;
    void (*free)(sdrt_stream *s);
    /* Enqueues (or runs) `op`; operands must live in buffers of this
     * stream's device or in host memory the device can read. Returns
     * SDRT_OK, SDRT_UNSUPPORTED (op/dtype/layout not supported: see
     * supports_op), SDRT_INVALID_ARGUMENT (shapes inconsistent) or
     * SDRT_RESOURCE_EXHAUSTED. `op` is borrowed for the call. */
    sdrt_status (*compute)(sdrt_stream *s, const sdrt_op *op);
    /* Waits for all enqueued ops. Optional (NULL: synchronous stream). */
    void (*synchronize)(sdrt_stream *s);
} sdrt_stream_iface;

struct sdrt_stream {
    const sdrt_stream_iface *iface;
    void *context;
    sdrt_device *device;
};

typedef struct sdrt_device_iface {
    uint32_t struct_size;
    const char *(*name)(sdrt_device *dev);        /* e.g. "CPU", "CUDA0" */
    const char *(*description)(sdrt_device *dev); /* e.g. the CPU model */
    sdrt_device_type (*type)(sdrt_device *dev);
    void (*memory)(sdrt_device *dev, size_t *free_bytes, size_t *total_bytes);
    sdrt_buffer_type *(*buffer_type)(sdrt_device *dev);
    /* New stream owned by the caller. `params_json` (borrowed, may be NULL)
     * e.g. {"threads":4}. NULL on failure. */
    sdrt_stream *(*stream_new)(sdrt_device *dev, const char *params_json);
    /* Non-zero if compute would accept `op` (its kind, dtypes, layout). */
    int (*supports_op)(sdrt_device *dev, const sdrt_op *op);
    /* JSON object text describing the device (features, memory), owned by
     * the device, valid while the family is loaded. Optional. */
    const char *(*info_json)(sdrt_device *dev);
} sdrt_device_iface;

struct sdrt_device {
    const sdrt_device_iface *iface;
    void *context;
    sdrt_backend_reg *reg;
};

typedef struct sdrt_backend_reg_iface {
    uint32_t struct_size;
    const char *(*name)(sdrt_backend_reg *reg);   /* "cpu", "cuda", "vulkan" */
    size_t (*device_count)(sdrt_backend_reg *reg);
    sdrt_device *(*device_get)(sdrt_backend_reg *reg, size_t index);
    /* Releases everything the family holds. Called once by the device
     * plugin at shutdown. Optional. */
    void (*unload)(sdrt_backend_reg *reg);
} sdrt_backend_reg_iface;

struct sdrt_backend_reg {
    const sdrt_backend_reg_iface *iface;
    void *context;
    uint32_t abi_major;
    uint32_t abi_minor;
};

/* Exported by a backend family shared object. `host_api` is valid for the
 * process lifetime; `config_json` (borrowed) is the device plugin's config
 * object for that family. Returns the family (owned by the shared object)
 * or NULL when its runtime is missing (no driver, no device), after logging
 * why: that is a normal case, not an error. */
typedef sdrt_backend_reg *(*sdrt_backend_entry_fn)(const sdrt_host_api *host_api,
                                                    const char *config_json);
#define SDRT_BACKEND_ENTRY_SYMBOL "sdrt_backend_entry"

/* ------------------------------------------------------------------------ */
/* The interface the device plugin publishes                                  */
/* ------------------------------------------------------------------------ */

#define SDRT_BACKEND_IFACE_ID "sdrt.backend/1"

typedef struct sdrt_backend_iface {
    uint32_t struct_size;
    void *self;
    size_t (*reg_count)(void *self);
    sdrt_backend_reg *(*reg_get)(void *self, size_t index);
    /* The device the deployment chose for compute ("device" in the device
     * plugin's config: "cpu", "cuda:0", "vulkan:0", "auto"); never NULL
     * (falls back to the CPU). */
    sdrt_device *(*default_device)(void *self);
} sdrt_backend_iface;

/* ------------------------------------------------------------------------ */
/* Inline wrappers                                                           */
/* ------------------------------------------------------------------------ */

static inline sdrt_status sdrt_stream_compute(sdrt_stream *s, const sdrt_op *op) {
    return s->iface->compute(s, op);
}

static inline void sdrt_stream_synchronize(sdrt_stream *s) {
    if (s->iface->synchronize) s->iface->synchronize(s);
}

static inline void sdrt_stream_free(sdrt_stream *s) {
    if (s) s->iface->free(s);
}

static inline sdrt_buffer *sdrt_buffer_alloc(sdrt_buffer_type *bt, size_t size) {
    return bt->iface->alloc(bt, size);
}

static inline void sdrt_buffer_free(sdrt_buffer *buf) {
    if (buf) buf->iface->free(buf);
}

static inline int sdrt_device_supports_op(sdrt_device *dev, const sdrt_op *op) {
    return dev->iface->supports_op ? dev->iface->supports_op(dev, op) : 1;
}

#ifdef __cplusplus
}
#endif

#endif /* SDRT_BACKEND_H */
