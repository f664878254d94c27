/* sdrt/tensor.h - the tensor type plugins pass to each other.
 *
 * A tensor is a plain descriptor (dtype, shape, strides, data address) plus a
 * pointer to the buffer that owns its memory. Descriptors are small value
 * objects; copying one never copies data. Shapes are in PyTorch order
 * (outermost first: N, C, H, W), strides are in elements.
 */
#ifndef SDRT_TENSOR_H
#define SDRT_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SDRT_MAX_DIMS 6

/* Append only: values cross the ABI and appear in safetensors mapping. */
typedef enum sdrt_dtype {
    SDRT_DTYPE_F32 = 0,
    SDRT_DTYPE_F16 = 1,
    SDRT_DTYPE_BF16 = 2,
    SDRT_DTYPE_I32 = 3,
    SDRT_DTYPE_I64 = 4,
    SDRT_DTYPE_U8 = 5,
    SDRT_DTYPE_F64 = 6,
    SDRT_DTYPE_COUNT_
} sdrt_dtype;

typedef struct sdrt_buffer sdrt_buffer;

typedef struct sdrt_tensor {
    uint32_t struct_size;
    sdrt_dtype dtype;
    int32_t ndim;                    /* 0..SDRT_MAX_DIMS */
    int64_t shape[SDRT_MAX_DIMS];    /* unused dims are 1 */
    int64_t strides[SDRT_MAX_DIMS];  /* in elements; unused dims are 0 */
    /* Address of element [0,...,0] in the memory space of `buffer` (a host
     * pointer for host buffers, a device address otherwise). */
    void *data;
    /* The buffer that owns the memory, or NULL for borrowed host memory
     * (e.g. an mmap'd weight file) whose owner outlives every use. */
    sdrt_buffer *buffer;
} sdrt_tensor;

#ifdef __cplusplus
}
#endif

#endif /* SDRT_TENSOR_H */
