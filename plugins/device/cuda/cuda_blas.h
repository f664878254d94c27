/* cuda_blas.h - cuBLAS, opened at run time. The module does not link
 * cuBLAS: its libraries are large (mapping them costs ~150 ms and ~150 MB
 * at dlopen), and a host on a machine without a GPU must not pay that. The
 * entry opens it once a device was found; without it, F32 MATMUL runs on
 * the family's own kernels (a log line says so). */
#ifndef SDRT_CUDA_BLAS_H
#define SDRT_CUDA_BLAS_H

#include <cublas_api.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cuda_blas_api {
    cublasStatus_t (*create)(cublasHandle_t *handle);
    cublasStatus_t (*destroy)(cublasHandle_t handle);
    cublasStatus_t (*set_stream)(cublasHandle_t handle, cudaStream_t stream);
    cublasStatus_t (*set_workspace)(cublasHandle_t handle, void *workspace, size_t bytes);
    cublasStatus_t (*sgemm_strided_batched)(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                            int m, int n, int k, const float *alpha, const float *A, int lda,
                                            long long int stride_a, const float *B, int ldb, long long int stride_b,
                                            const float *beta, float *C, int ldc, long long int stride_c,
                                            int batch_count);
} cuda_blas_api;

/* Opens cuBLAS (once; thread-safe). Returns the table, or NULL after
 * writing why into `why`. */
const cuda_blas_api *cuda_blas_open(char *why, size_t whylen);
/* The table if cuda_blas_open succeeded, else NULL. */
const cuda_blas_api *cuda_blas(void);

#ifdef __cplusplus
}
#endif

#endif /* SDRT_CUDA_BLAS_H */
