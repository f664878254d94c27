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
    /* Block-quantized weights in ggml's block formats (GGUF files), bit
     * for bit: blocks of 32 (Q4_0..Q8_0) or 256 (the K quants) elements
     * along the innermost dimension. See "Quantized tensors" below. */
    SDRT_DTYPE_Q4_0 = 7,
    SDRT_DTYPE_Q4_1 = 8,
    SDRT_DTYPE_Q5_0 = 9,
    SDRT_DTYPE_Q5_1 = 10,
    SDRT_DTYPE_Q8_0 = 11,
    SDRT_DTYPE_Q2_K = 12,
    SDRT_DTYPE_Q3_K = 13,
    SDRT_DTYPE_Q4_K = 14,
    SDRT_DTYPE_Q5_K = 15,
    SDRT_DTYPE_Q6_K = 16,
    SDRT_DTYPE_COUNT_
} sdrt_dtype;

/* Quantized tensors. A quantized dtype stores blocks of
 * sdrt_dtype_block_elems() elements in sdrt_dtype_block_bytes() bytes. A
 * tensor of such a dtype has a contiguous innermost dimension (stride 1)
 * whose length is a multiple of the block, and every other stride (still
 * counted in elements) is a multiple of the block too; element offset e
 * then lives in the block at byte e / block_elems * block_bytes. Views may
 * only cut whole blocks. Backends say which ops take them (supports_op). */

/* Elements per storage block: 1 for plain dtypes, 32 or 256 for the
 * quantized ones, 0 for a value this header does not know. */
static inline int64_t sdrt_dtype_block_elems(sdrt_dtype dt) {
    switch (dt) {
    case SDRT_DTYPE_F32: case SDRT_DTYPE_F16: case SDRT_DTYPE_BF16: case SDRT_DTYPE_I32:
    case SDRT_DTYPE_I64: case SDRT_DTYPE_U8: case SDRT_DTYPE_F64:
        return 1;
    case SDRT_DTYPE_Q4_0: case SDRT_DTYPE_Q4_1: case SDRT_DTYPE_Q5_0: case SDRT_DTYPE_Q5_1:
    case SDRT_DTYPE_Q8_0:
        return 32;
    case SDRT_DTYPE_Q2_K: case SDRT_DTYPE_Q3_K: case SDRT_DTYPE_Q4_K: case SDRT_DTYPE_Q5_K:
    case SDRT_DTYPE_Q6_K:
        return 256;
    default:
        return 0;
    }
}

/* Bytes of one block (the element size for plain dtypes); 0 if unknown. */
static inline size_t sdrt_dtype_block_bytes(sdrt_dtype dt) {
    switch (dt) {
    case SDRT_DTYPE_F32: case SDRT_DTYPE_I32: return 4;
    case SDRT_DTYPE_F16: case SDRT_DTYPE_BF16: return 2;
    case SDRT_DTYPE_I64: case SDRT_DTYPE_F64: return 8;
    case SDRT_DTYPE_U8: return 1;
    case SDRT_DTYPE_Q4_0: return 18;
    case SDRT_DTYPE_Q4_1: return 20;
    case SDRT_DTYPE_Q5_0: return 22;
    case SDRT_DTYPE_Q5_1: return 24;
    case SDRT_DTYPE_Q8_0: return 34;
    case SDRT_DTYPE_Q2_K: return 84;
    case SDRT_DTYPE_Q3_K: return 110;
    case SDRT_DTYPE_Q4_K: return 144;
    case SDRT_DTYPE_Q5_K: return 176;
    case SDRT_DTYPE_Q6_K: return 210;
    default: return 0;
    }
}

static inline int sdrt_dtype_is_quantized(sdrt_dtype dt) { return sdrt_dtype_block_elems(dt) > 1; }

/* Bytes of n contiguous elements, or 0 when the dtype is unknown or n is
 * not a whole number of blocks. */
static inline uint64_t sdrt_dtype_bytes(sdrt_dtype dt, int64_t n) {
    int64_t be = sdrt_dtype_block_elems(dt);
    if (be <= 0 || n < 0 || n % be) return 0;
    return (uint64_t)(n / be) * sdrt_dtype_block_bytes(dt);
}

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
