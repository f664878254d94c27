/* cuda_internal.h - private declarations of the CUDA family, shared by its
 * C files (device, buffers, streams) and its CUDA files (kernels).
 *
 * Layers: cuda_plan (pool, replay cache; no CUDA) -> cuda_backend (family,
 * devices, buffer types) -> cuda_stream (queues, copies, events, graphs) ->
 * op launchers (cuda_ops.cu element-wise/norm/layout, cuda_gemm.cu MATMUL
 * and CONV2D, cuda_attention.cu ATTENTION). Nothing here crosses the
 * plugin boundary.
 */
#ifndef SDRT_CUDA_INTERNAL_H
#define SDRT_CUDA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "cuda_plan.h"
#include "sdrt/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Arithmetic for MATMUL/CONV2D with F16/BF16 weights: F32 (the default)
 * widens the weights and multiplies in F32; MIXED runs tensor-core MMA on
 * F16/BF16 operands (activations rounded to the weight dtype, F32
 * accumulation), the speed mode. */
typedef enum cuda_precision { CUDA_PRECISION_MIXED = 0, CUDA_PRECISION_F32 = 1 } cuda_precision;

/* What an op launcher gets from its stream. */
typedef struct cuda_exec {
    cudaStream_t stream;
    void *cublas;          /* cublasHandle_t bound to `stream` */
    void *workspace;       /* cuBLAS workspace, workspace_size bytes */
    size_t workspace_size;
    cuda_precision precision;
    int sm;                /* compute capability major*10 + minor */
    size_t smem_optin;     /* largest dynamic shared memory per block */
} cuda_exec;

/* ---- op launchers: validate shapes, enqueue, return a status -------------
 * Operands are device (or pinned host) addresses; nothing synchronises. */
sdrt_status cuda_op_elementwise(const cuda_exec *ex, const sdrt_op *op); /* activations, SCALE, ADD, MUL, PRELU */
sdrt_status cuda_op_geglu(const cuda_exec *ex, const sdrt_op *op);
sdrt_status cuda_op_group_norm(const cuda_exec *ex, const sdrt_op *op);
sdrt_status cuda_op_layer_norm(const cuda_exec *ex, const sdrt_op *op);
sdrt_status cuda_op_softmax(const cuda_exec *ex, const sdrt_op *op);
sdrt_status cuda_op_copy(const cuda_exec *ex, const sdrt_op *op);
sdrt_status cuda_op_concat(const cuda_exec *ex, const sdrt_op *op);
/* UPSAMPLE2X, UPSAMPLE_NEAREST, PIXEL_SHUFFLE, PIXEL_UNSHUFFLE */
sdrt_status cuda_op_layout(const cuda_exec *ex, const sdrt_op *op);
sdrt_status cuda_op_timestep_emb(const cuda_exec *ex, const sdrt_op *op);
sdrt_status cuda_op_matmul(const cuda_exec *ex, const sdrt_op *op);
sdrt_status cuda_op_conv2d(const cuda_exec *ex, const sdrt_op *op);
sdrt_status cuda_op_attention(const cuda_exec *ex, const sdrt_op *op);
/* One-time per-device kernel setup (shared-memory opt-in). */
void cuda_kernels_init(int device);

/* Largest head dim the attention kernel takes (registers per lane). */
#define CUDA_ATTN_MAX_D 256

/* Whether a stream on a device with these properties accepts op
 * (cuda_supports.c); compute refuses exactly what this refuses. */
int cuda_supports_op(const sdrt_op *op, const sdrt_buffer_type *vram, const sdrt_buffer_type *pinned);

/* Element size of the dtypes the kernels read and write; 0 otherwise. */
size_t cuda_dtype_size(sdrt_dtype dt);

/* ---- the family's devices ------------------------------------------------ */

typedef struct cuda_device_ctx cuda_device_ctx;

/* A status for a CUDA error, logging it with the device and what failed;
 * sticky errors (the context is lost) give SDRT_UNAVAILABLE and mark the
 * device for reset. */
sdrt_status cuda_check(cuda_device_ctx *d, cudaError_t err, const char *what);
/* Host log through the plugin API (may be called from any thread). */
void cuda_log(int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int cuda_device_ordinal(const cuda_device_ctx *d);
const char *cuda_device_label(const cuda_device_ctx *d); /* "cuda:N" */
cuda_precision cuda_device_precision(const cuda_device_ctx *d);
int cuda_device_sm(const cuda_device_ctx *d);
size_t cuda_device_smem_optin(const cuda_device_ctx *d);
/* Bumped by every reset: streams and buffers of an older generation are
 * dead and only release their host memory. */
uint64_t cuda_device_generation(const cuda_device_ctx *d);
/* Non-zero after a sticky fault until reset. */
int cuda_device_faulted(const cuda_device_ctx *d);
sdrt_buffer_type *cuda_device_vram_type(cuda_device_ctx *d);
sdrt_buffer_type *cuda_device_pinned_type(cuda_device_ctx *d);

/* Streams (cuda_stream.c). */
sdrt_stream *cuda_stream_new(sdrt_device *dev, cuda_device_ctx *d, const char *params_json);
/* cuda_stream_new with the reason (the device iface's stream_open): a
 * "precision" it cannot run (UNSUPPORTED) or a malformed one
 * (INVALID_ARGUMENT), RESOURCE_EXHAUSTED, UNAVAILABLE; message in msg. */
sdrt_status cuda_stream_open(sdrt_device *dev, cuda_device_ctx *d, const char *params_json, sdrt_stream **out,
                             char *msg, size_t msg_size);

/* Non-zero if `buf` is a buffer of this family (VRAM or pinned). */
int cuda_buffer_is_ours(const sdrt_buffer *buf);

#ifdef __cplusplus
}
#endif

#endif /* SDRT_CUDA_INTERNAL_H */
