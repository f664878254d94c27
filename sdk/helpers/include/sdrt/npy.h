/* sdrt/npy.h - NumPy .npy files (format 1.0-3.0), as used for latents and
 * embeddings on disk. Part of the static helper library sdrt_helpers.
 * Thread-safe (no shared state). */
#ifndef SDRT_NPY_H
#define SDRT_NPY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SDRT_NPY_MAX_DIMS 8

/* Reads a C-order .npy of dtype <f4, <f8, <f2, <i8, <i4, |u1 or |b1 and
 * converts it to float32. On success returns 0, sets *data to a malloc'd
 * array (caller frees with free()), shape[0..*ndim). On failure returns -1
 * and writes a message naming the file and the reason into err. */
int sdrt_npy_read_f32(const char *path, float **data, int64_t *shape, int *ndim,
                      char *err, size_t errlen);
/* The same from memory (fuzzing, data: URIs). `buf` is borrowed. */
int sdrt_npy_parse_f32(const void *buf, size_t len, float **data, int64_t *shape, int *ndim,
                       char *err, size_t errlen);
/* Writes float32 little-endian C-order. Returns 0, or -1 with err set. */
int sdrt_npy_write_f32(const char *path, const float *data, const int64_t *shape, int ndim,
                       char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* SDRT_NPY_H */
