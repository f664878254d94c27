/* ops_common.h - shared fixtures of test-ops: the CPU device and streams,
 * host tensors, random data, golden files. */
#ifndef SDRT_TEST_OPS_COMMON_H
#define SDRT_TEST_OPS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "sdrt/backend.h"

sdrt_backend_reg *sdrt_backend_entry(const sdrt_host_api *host_api, const char *config_json);

/* The CPU device (loaded once). */
sdrt_device *ops_device(void);
/* A stream with `threads` threads (cached per count, up to 8). */
sdrt_stream *ops_stream(int threads);

/* A host tensor descriptor over `data` (contiguous). */
sdrt_tensor ops_tensor(void *data, sdrt_dtype dt, int ndim, const int64_t *shape);
/* A [shape] view into storage laid out in the order `perm` (storage dim i
 * holds logical dim perm[i]): exercises strided operands. */
sdrt_tensor ops_tensor_perm(void *data, int ndim, const int64_t *shape, const int *perm);
size_t ops_numel(int ndim, const int64_t *shape);

/* Deterministic per-test random floats in [-scale, scale] from test_seed. */
void ops_rand(float *x, size_t n, float scale);
uint64_t ops_rand_u64(void);
int ops_rand_int(int lo, int hi); /* inclusive */

/* Runs one op on a stream; returns its status. */
sdrt_status ops_run(sdrt_stream *s, sdrt_op_kind kind, const sdrt_tensor *s0, const sdrt_tensor *s1,
                    const sdrt_tensor *s2, sdrt_tensor *dst, const int32_t *ip, const float *fp);

/* Golden data: loads data/<case>__<name>.npy as f32 (malloc'd), shape into
 * shape/ndim. NULL (and a test failure) when missing. */
float *ops_golden(const char *cas, const char *name, int64_t *shape, int *ndim);

/* Reports and returns whether rel L2 of got vs want is within tol. */
int ops_close(const char *what, const float *got, const float *want, size_t n, double tol);

#endif
