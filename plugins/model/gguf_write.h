/* plugins/model/gguf_write.h - GGUF v3 writer (see gguf_write.c). */
#ifndef SDRT_MODEL_GGUF_WRITE_H
#define SDRT_MODEL_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "sdrt/tensor.h"

typedef struct gguf_wtensor {
    const char *name;
    sdrt_dtype dtype;
    int ndim;
    int64_t shape[4]; /* PyTorch order */
} gguf_wtensor;

typedef struct gguf_wmeta {
    const char *arch;        /* general.architecture */
    const char *weight_type; /* sdrt.weight_type, or NULL */
} gguf_wmeta;

/* Writes tensor i's gguf_w_bytes(&t[i]) bytes into `out`; 0 or -1 with err. */
typedef int (*gguf_produce_fn)(void *ctx, size_t i, void *out, char *err, size_t errlen);

uint64_t gguf_w_bytes(const gguf_wtensor *t);
/* Writes `path` atomically. 0, or -1 with err naming the file or tensor. */
int gguf_write(const char *path, const gguf_wmeta *meta, const gguf_wtensor *t, size_t n, gguf_produce_fn produce,
               void *ctx, char *err, size_t errlen);

#endif
