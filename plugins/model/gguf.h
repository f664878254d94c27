/* plugins/model/gguf.h - validated, mmap'd GGUF files (v2 and v3), as
 * stable-diffusion.cpp and ComfyUI-GGUF write them.
 *
 * gguf_open maps a file and checks every rule before anything is handed
 * out: magic, version, counts bounded by the bytes that could hold them,
 * metadata values (strings, nested arrays) inside the file, tensor ranks,
 * dims (>= 1, no overflow, the inner one a whole number of blocks), types
 * known, offsets aligned and inside the data region, no overlap, unique
 * names. Tensors then point straight into the mapping; nothing is read
 * outside it. Not thread-safe to close while in use; read-only after open. */
#ifndef SDRT_MODEL_GGUF_H
#define SDRT_MODEL_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "sdrt/tensor.h"

#define GGUF_MAX_DIMS 4

typedef struct gguf_tensor {
    char *name;
    uint32_t ggml_type;
    int dtype;                     /* sdrt_dtype, or -1 (a ggml type sdrt does not compute with) */
    int ndim;
    int64_t shape[GGUF_MAX_DIMS];  /* PyTorch order: shape[ndim-1] is ggml's ne[0] */
    uint64_t offset, bytes;        /* in the data region */
    const uint8_t *data;
} gguf_tensor;

typedef struct gguf_file {
    char *path;                    /* "<memory>" for gguf_parse */
    void *map;
    size_t map_len;
    uint32_t version, alignment;
    char *arch;                    /* general.architecture, or NULL */
    gguf_tensor *tensors;          /* sorted by name */
    size_t n_tensors;
} gguf_file;

/* Whether the first bytes of `path` are the GGUF magic. */
int gguf_is_gguf(const char *path);
/* Maps and validates `path`; 0, or -1 with err naming the file, the field
 * or tensor and the reason. *out is the caller's (gguf_close). */
int gguf_open(const char *path, gguf_file **out, char *err, size_t errlen);
/* The same over borrowed memory (tests, fuzzing); tensors point into buf. */
int gguf_parse(const void *buf, size_t len, gguf_file **out, char *err, size_t errlen);
void gguf_close(gguf_file *f);
const gguf_tensor *gguf_find(const gguf_file *f, const char *name);
/* ggml's name of a ggml type id ("q8_0", "iq2_xs"...), or NULL. */
const char *gguf_type_name(uint32_t ggml_type);
/* The ggml type id of an sdrt dtype, or -1. */
int gguf_type_of_dtype(sdrt_dtype dt);

#endif
