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
#include <stdlib.h>

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
 * Activations (src0, dst) are F32. Parameters - MATMUL/CONV2D weights and
 * biases, GROUP_NORM/LAYER_NORM scale and shift, the ADD/MUL src1 - may be
 * F32, F16 or BF16 (kept in the checkpoint's dtype; the backend widens
 * them), so callers never convert parameters themselves. MATMUL (B
 * transposed, iparams[0] = 1) and CONV2D weights may also be in a
 * block-quantized dtype (sdrt/tensor.h, GGUF); the CPU backend takes them
 * 2-D / contiguous with K a whole number of blocks. A backend says which
 * it takes through supports_op.
 *
 * Append only. Value = position in this list.
 *
 *  MATMUL       dst[..,M,N] = alpha * src0[..,M,K] @ B + src2[N]
 *               B = src1[..,K,N], or src1[..,N,K]^T when iparams[0]=1
 *               (PyTorch Linear weight). Leading dims of src1 broadcast
 *               (a 2-D src1 is shared by every batch). src2 (bias) optional.
 *               fparams[0] = alpha (0 -> 1). src1, src2 may be F16/BF16.
 *  CONV2D       dst[N,O,Ho,Wo] = conv(src0[N,C,H,W], src1[O,C/g,kh,kw]) + src2[O]
 *               iparams: 0 stride_h, 1 stride_w, 2 pad_h, 3 pad_w,
 *               4 dilation_h, 5 dilation_w (0 -> 1), 6 groups (0 -> 1).
 *               src1, src2 may be F16/BF16; src2 optional.
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
 *  Appended for the super-resolution networks (src0 and dst contiguous):
 *  LEAKY_RELU   dst = src0 >= 0 ? src0 : src0 * fparams[0] (0 -> 0.01).
 *  PRELU        dst[n,c,..] = src0 >= 0 ? src0 : src0 * src1[c]; src1 holds
 *               C or 1 slopes (F32/F16/BF16). src0 has >= 2 dims.
 *  PIXEL_SHUFFLE   [N,C*r*r,H,W] -> [N,C,H*r,W*r], r = iparams[0]:
 *               dst[n,c,h*r+i,w*r+j] = src0[n,c*r*r+i*r+j,h,w] (torch).
 *  PIXEL_UNSHUFFLE [N,C,H*r,W*r] -> [N,C*r*r,H,W], its inverse.
 *  UPSAMPLE_NEAREST [N,C,H,W] -> [N,C,H*r,W*r], r = iparams[0] >= 1
 *               (torch interpolate mode="nearest" with an integer factor).
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
    X(COPY)             \
    X(LEAKY_RELU)       \
    X(PRELU)            \
    X(PIXEL_SHUFFLE)    \
    X(PIXEL_UNSHUFFLE)  \
    X(UPSAMPLE_NEAREST)

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
    /* --- appended in ABI 1.1 (read only inside struct_size; NULL = absent) --- */
    /* Sets `size` bytes at buffer address `dst` to the byte `value`.
     * Synchronous. Absent: the wrapper writes a host block of that byte. */
    void (*memset)(sdrt_buffer *buf, void *dst, int value, size_t size);
    /* Copies `size` bytes from address `src` of `src_buf` to address `dst`
     * of this buffer without a host round trip. Synchronous. Returns 0 when
     * it cannot (another device or family): the wrapper then copies through
     * host memory. */
    int (*copy_from)(sdrt_buffer *buf, void *dst, sdrt_buffer *src_buf, const void *src, size_t size);
    /* Hint: what the buffer holds (sdrt_buffer_usage). A backend may place
     * weights and arenas differently; absent: ignored. */
    void (*set_usage)(sdrt_buffer *buf, int usage);
} sdrt_buffer_iface;

/* What a buffer holds (sdrt_buffer_iface.set_usage). */
typedef enum sdrt_buffer_usage {
    SDRT_BUFFER_USAGE_ANY = 0,
    SDRT_BUFFER_USAGE_WEIGHTS = 1, /* long-lived, read by many graphs */
    SDRT_BUFFER_USAGE_COMPUTE = 2, /* an arena of intermediates */
    SDRT_BUFFER_USAGE_STAGING = 3  /* host-visible transfer memory */
} sdrt_buffer_usage;

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
    /* --- appended in ABI 1.1 --- */
    /* Largest single allocation in bytes; 0 or absent = no limit below the
     * device's memory. Planners split arenas above it. */
    size_t (*max_size)(sdrt_buffer_type *bt);
} sdrt_buffer_type_iface;

struct sdrt_buffer_type {
    const sdrt_buffer_type_iface *iface;
    void *context;
    sdrt_device *device;
};

/* A graph: ops in execution order whose operands are all allocated (in
 * weight buffers, the stream's arena, or host memory the device reads).
 * The caller keeps `ops` and every tensor they point to alive and
 * unchanged until the stream is synchronized. */
typedef struct sdrt_graph {
    uint32_t struct_size;
    size_t n_ops;
    const sdrt_op *ops;
    /* Non-zero when the caller promises: the same key means the same ops,
     * shapes, parameters and addresses as an earlier graph with that key on
     * this stream, so a backend may replay what it recorded (a CUDA graph, a
     * Vulkan command buffer). 0 = never replay. */
    uint64_t replay_key;
} sdrt_graph;

/* A point in a stream's queue (sdrt_stream_iface.event_record). Opaque,
 * owned by the stream that recorded it. */
typedef struct sdrt_event sdrt_event;

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
    /* --- appended in ABI 1.1 (read only inside struct_size; NULL = absent;
     * the inline wrappers below give every absent member its default) --- */
    /* Enqueues the whole graph. Returns as compute does; on failure the
     * ops before the failing one may have run. Absent: op by op. */
    sdrt_status (*graph_compute)(sdrt_stream *s, const sdrt_graph *g);
    /* Enqueue host -> buffer / buffer -> host copies. The host memory must
     * stay valid (and, for write, unchanged) until the stream is
     * synchronized or an event recorded after the copy has completed.
     * Absent: synchronous buffer write/read after a synchronize. */
    sdrt_status (*write_async)(sdrt_stream *s, sdrt_buffer *buf, void *dst, const void *src, size_t size);
    sdrt_status (*read_async)(sdrt_stream *s, sdrt_buffer *buf, void *dst, const void *src, size_t size);
    /* Enqueues a device-side copy between two buffers of this stream's
     * device. Returns SDRT_UNSUPPORTED when the buffers are not both this
     * device's. Absent: synchronous copy_from or a host round trip. */
    sdrt_status (*copy_async)(sdrt_stream *s, sdrt_buffer *dst_buf, void *dst, sdrt_buffer *src_buf,
                              const void *src, size_t size);
    /* Events: record returns a new event at the current end of the queue
     * (owned by the caller, free with event_free) or NULL on failure;
     * event_synchronize blocks the host until the event completed;
     * event_wait makes this stream wait for an event of another stream of
     * the same device before later work. Absent: record gives NULL and the
     * wrappers synchronize the whole stream instead. */
    sdrt_event *(*event_record)(sdrt_stream *s);
    void (*event_synchronize)(sdrt_stream *s, sdrt_event *ev);
    void (*event_wait)(sdrt_stream *s, sdrt_event *ev);
    void (*event_free)(sdrt_stream *s, sdrt_event *ev);
    /* --- appended after ABI 1.1 shipped (read only inside struct_size;
     * NULL = absent) --- */
    /* The dtype this stream wants a parameter (a weight, bias or norm
     * scale: the sdrt_nn_weight operands) stored in on the device when
     * the checkpoint holds it as `stored` (F32, F16 or BF16): how the
     * stream's precision is realised (e.g. F32 -> F16 in an f16 stream,
     * F16 -> F32 in an f32 one). The caller converts at upload and keeps
     * copies of different dtypes apart. Any thread. Absent: `stored`. */
    sdrt_dtype (*weight_dtype)(sdrt_stream *s, sdrt_dtype stored);
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
     * is a JSON object; the keys every family reads (others it ignores):
     *   "threads": N    compute threads (host-memory families);
     *   "precision": "auto"|"f32"|"f16"|"bf16"|"int8"   how weights are
     *       stored and products computed (sdrt/precision.h in the helpers
     *       lists the meanings); absent = "auto", the device's default.
     * NULL on failure (stream_open says why). */
    sdrt_stream *(*stream_new)(sdrt_device *dev, const char *params_json);
    /* Non-zero if compute would accept `op` (its kind, dtypes, layout). */
    int (*supports_op)(sdrt_device *dev, const sdrt_op *op);
    /* JSON object text describing the device (features, memory), owned by
     * the device, valid while the family is loaded. Optional. */
    const char *(*info_json)(sdrt_device *dev);
    /* --- appended in ABI 1.1 --- */
    /* Host memory the device copies from and to fastest (pinned, mapped);
     * its buffers are host pointers (is_host). Absent or NULL: use malloc'd
     * memory for staging. */
    sdrt_buffer_type *(*host_buffer_type)(sdrt_device *dev);
    /* Re-initialises a device after a fault (lost device, sticky error):
     * every buffer and stream of the device is invalid afterwards. Returns
     * SDRT_OK or SDRT_UNAVAILABLE. Absent: faults are not recoverable. */
    sdrt_status (*reset)(sdrt_device *dev);
    /* --- appended after ABI 1.1 shipped (check SDRT_IFACE_HAS_(iface,
     * sdrt_device_iface, allocated_bytes)) --- */
    /* Bytes this process holds in the device's buffers now (what the
     * family allocated, not what the driver reports for every process).
     * Cheap, any thread, no synchronisation with the device: the host
     * samples it for every request's metrics. Absent: not reported. */
    uint64_t (*allocated_bytes)(sdrt_device *dev);
    /* --- appended after ABI 1.1 shipped (read only inside struct_size;
     * NULL = absent) --- */
    /* stream_new with the reason of a refusal: returns SDRT_OK and sets
     * *out (owned by the caller), or, with *out NULL and a NUL-terminated
     * message in msg (msg_size bytes; msg may be NULL):
     * SDRT_INVALID_ARGUMENT (a malformed params value, named),
     * SDRT_UNSUPPORTED (a value this device cannot do, e.g. "precision":
     * "int8": the message names the key and the device),
     * SDRT_RESOURCE_EXHAUSTED, SDRT_UNAVAILABLE (a lost device). Any
     * thread. Absent: stream_new, which predates "precision" and ignores
     * it (sdrt_nn_create then lets "auto" and "f32" through, the f32
     * compute every family did before, and refuses other values). */
    sdrt_status (*stream_open)(sdrt_device *dev, const char *params_json, sdrt_stream **out, char *msg,
                               size_t msg_size);
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
    /* --- appended later (check SDRT_IFACE_HAS_(iface, sdrt_backend_iface,
     * device_allocated_bytes)) --- */
    /* The bytes held on the devices of the loaded families other than the
     * CPU family (the sum of their allocated_bytes), without probing or
     * loading anything; -1 when no such device reports one. Any thread,
     * cheap. */
    int64_t (*device_allocated_bytes)(void *self);
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

#define SDRT_IFACE_HAS_(ptr, type, member) \
    ((ptr)->struct_size >= SDRT_STRUCT_SIZE(type, member) && (ptr)->member)

/* Whole graph; op by op for streams without graph_compute. */
static inline sdrt_status sdrt_stream_graph_compute(sdrt_stream *s, const sdrt_graph *g) {
    if (SDRT_IFACE_HAS_(s->iface, sdrt_stream_iface, graph_compute)) return s->iface->graph_compute(s, g);
    for (size_t i = 0; i < g->n_ops; i++) {
        sdrt_status st = s->iface->compute(s, &g->ops[i]);
        if (st != SDRT_OK) return st;
    }
    return SDRT_OK;
}

static inline sdrt_status sdrt_stream_write_async(sdrt_stream *s, sdrt_buffer *buf, void *dst, const void *src,
                                                  size_t size) {
    if (SDRT_IFACE_HAS_(s->iface, sdrt_stream_iface, write_async)) return s->iface->write_async(s, buf, dst, src, size);
    sdrt_stream_synchronize(s);
    buf->iface->write(buf, dst, src, size);
    return SDRT_OK;
}

static inline sdrt_status sdrt_stream_read_async(sdrt_stream *s, sdrt_buffer *buf, void *dst, const void *src,
                                                 size_t size) {
    if (SDRT_IFACE_HAS_(s->iface, sdrt_stream_iface, read_async)) return s->iface->read_async(s, buf, dst, src, size);
    sdrt_stream_synchronize(s);
    buf->iface->read(buf, dst, src, size);
    return SDRT_OK;
}

/* Synchronous buffer-to-buffer copy: the buffer's copy_from, else through a
 * host bounce block. Returns SDRT_RESOURCE_EXHAUSTED if that block cannot be
 * allocated. */
static inline sdrt_status sdrt_buffer_copy(sdrt_buffer *dst_buf, void *dst, sdrt_buffer *src_buf, const void *src,
                                           size_t size) {
    if (SDRT_IFACE_HAS_(dst_buf->iface, sdrt_buffer_iface, copy_from) &&
        dst_buf->iface->copy_from(dst_buf, dst, src_buf, src, size))
        return SDRT_OK;
    enum { BOUNCE = 1 << 22 };
    void *tmp = malloc(size < BOUNCE ? size : BOUNCE);
    if (!tmp) return SDRT_RESOURCE_EXHAUSTED;
    for (size_t off = 0; off < size; off += BOUNCE) {
        size_t n = size - off < BOUNCE ? size - off : BOUNCE;
        src_buf->iface->read(src_buf, tmp, (const char *)src + off, n);
        dst_buf->iface->write(dst_buf, (char *)dst + off, tmp, n);
    }
    free(tmp);
    return SDRT_OK;
}

static inline sdrt_status sdrt_stream_copy_async(sdrt_stream *s, sdrt_buffer *dst_buf, void *dst,
                                                 sdrt_buffer *src_buf, const void *src, size_t size) {
    if (SDRT_IFACE_HAS_(s->iface, sdrt_stream_iface, copy_async)) {
        sdrt_status st = s->iface->copy_async(s, dst_buf, dst, src_buf, src, size);
        if (st != SDRT_UNSUPPORTED) return st;
    }
    sdrt_stream_synchronize(s);
    return sdrt_buffer_copy(dst_buf, dst, src_buf, src, size);
}

/* NULL when the stream has no events: then sdrt_event_synchronize(s, NULL)
 * synchronizes the whole stream, which is always correct. */
static inline sdrt_event *sdrt_stream_event_record(sdrt_stream *s) {
    return SDRT_IFACE_HAS_(s->iface, sdrt_stream_iface, event_record) ? s->iface->event_record(s) : NULL;
}

static inline void sdrt_event_synchronize(sdrt_stream *s, sdrt_event *ev) {
    if (ev && SDRT_IFACE_HAS_(s->iface, sdrt_stream_iface, event_synchronize)) s->iface->event_synchronize(s, ev);
    else sdrt_stream_synchronize(s);
}

/* `s` waits for `ev` recorded on `other`; without events, `other` is
 * synchronized from the host first. */
static inline void sdrt_stream_wait_event(sdrt_stream *s, sdrt_stream *other, sdrt_event *ev) {
    if (ev && SDRT_IFACE_HAS_(s->iface, sdrt_stream_iface, event_wait)) s->iface->event_wait(s, ev);
    else sdrt_event_synchronize(other, ev);
}

static inline void sdrt_event_free(sdrt_stream *s, sdrt_event *ev) {
    if (ev && SDRT_IFACE_HAS_(s->iface, sdrt_stream_iface, event_free)) s->iface->event_free(s, ev);
}

static inline void sdrt_buffer_set_usage(sdrt_buffer *buf, sdrt_buffer_usage usage) {
    if (SDRT_IFACE_HAS_(buf->iface, sdrt_buffer_iface, set_usage)) buf->iface->set_usage(buf, (int)usage);
}

static inline size_t sdrt_buffer_type_max_size(sdrt_buffer_type *bt) {
    return SDRT_IFACE_HAS_(bt->iface, sdrt_buffer_type_iface, max_size) ? bt->iface->max_size(bt) : 0;
}

static inline int sdrt_buffer_type_is_host(sdrt_buffer_type *bt) {
    return bt->iface->is_host ? bt->iface->is_host(bt) : 0;
}

static inline sdrt_buffer_type *sdrt_device_host_buffer_type(sdrt_device *dev) {
    return SDRT_IFACE_HAS_(dev->iface, sdrt_device_iface, host_buffer_type) ? dev->iface->host_buffer_type(dev) : NULL;
}

static inline sdrt_buffer *sdrt_buffer_alloc(sdrt_buffer_type *bt, size_t size) {
    return bt->iface->alloc(bt, size);
}

static inline void sdrt_buffer_free(sdrt_buffer *buf) {
    if (buf) buf->iface->free(buf);
}

/* The stream's wanted parameter dtype (weight_dtype), `stored` when absent. */
static inline sdrt_dtype sdrt_stream_weight_dtype(sdrt_stream *s, sdrt_dtype stored) {
    return SDRT_IFACE_HAS_(s->iface, sdrt_stream_iface, weight_dtype) ? s->iface->weight_dtype(s, stored) : stored;
}

/* A device's stream_open, else stream_new: NULL from it reads as
 * RESOURCE_EXHAUSTED. */
static inline sdrt_status sdrt_device_stream_open(sdrt_device *dev, const char *params_json, sdrt_stream **out,
                                                  char *msg, size_t msg_size) {
    if (msg && msg_size) msg[0] = 0;
    if (SDRT_IFACE_HAS_(dev->iface, sdrt_device_iface, stream_open))
        return dev->iface->stream_open(dev, params_json, out, msg, msg_size);
    *out = dev->iface->stream_new(dev, params_json);
    return *out ? SDRT_OK : SDRT_RESOURCE_EXHAUSTED;
}

static inline int sdrt_device_supports_op(sdrt_device *dev, const sdrt_op *op) {
    return dev->iface->supports_op ? dev->iface->supports_op(dev, op) : 1;
}

#ifdef __cplusplus
}
#endif

#endif /* SDRT_BACKEND_H */
