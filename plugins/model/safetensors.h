/* plugins/model/safetensors.h - validated, mmap'd safetensors files.
 *
 * st_open maps a file and checks every rule of the format before anything
 * is handed out: header length bounds, JSON object, known dtypes, shapes,
 * data_offsets inside the data region and consistent with the shape, no
 * overlap, unique names. Tensors then point straight into the mapping. */
#ifndef SDRT_MODEL_SAFETENSORS_H
#define SDRT_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "sdrt/file.h"
#include "sdrt/tensor.h"

#define ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024)
#define ST_MAX_DIMS 8

typedef enum st_dtype {
    ST_F64, ST_F32, ST_F16, ST_BF16, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL, ST_DTYPE_COUNT
} st_dtype;

typedef struct st_tensor {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t begin, end;   /* offsets in the data region */
    const uint8_t *data;   /* begin's address in the mapping (or buffer) */
} st_tensor;

typedef struct st_file {
    char *path;            /* as opened; "<memory>" for st_parse */
    void *map;             /* mmap base, NULL for st_parse */
    size_t map_len;
    size_t data_len;       /* bytes after the header */
    st_tensor *tensors;    /* sorted by name */
    size_t n_tensors;
    char *metadata_json;   /* the __metadata__ object as JSON text, or NULL */
} st_file;

/* Maps and validates `path`. Returns 0, or -1 with err naming the file, the
 * tensor or field, and the reason. *out is owned by the caller (st_close). */
int st_open(const char *path, st_file **out, char *err, size_t errlen);
/* The same through sdrt_file_open: never blocks on a FIFO, regular files
 * only, and with a scope the real path must lie inside its roots.
 * `field` names the file in messages (NULL: "file"). Returns SDRT_OK or
 * the status of the failure (NOT_FOUND, PERMISSION_DENIED,
 * INVALID_ARGUMENT, IO_ERROR) with err set. st_open is this with no scope. */
sdrt_status st_open_scoped(const char *path, const char *field, const sdrt_file_scope *scope, st_file **out,
                           char *err, size_t errlen);
/* The same over borrowed memory (fuzzing, tests); tensors point into buf. */
int st_parse(const void *buf, size_t len, st_file **out, char *err, size_t errlen);
void st_close(st_file *f);

/* Tensor by name (binary search), or NULL. */
const st_tensor *st_find(const st_file *f, const char *name);
size_t st_dtype_size(st_dtype d);
const char *st_dtype_name(st_dtype d);
/* The sdrt dtype, or -1 when sdrt has none (I16, I8, BOOL). */
int st_to_sdrt_dtype(st_dtype d);
/* numel * dtype size. */
uint64_t st_tensor_bytes(const st_tensor *t);

/* Reads a sharded index (`*.safetensors.index.json`): the distinct shard
 * file names of weight_map, in first-seen order, as a malloc'd array of
 * malloc'd strings. Shard names must be plain file names (no '/', no ".."),
 * since they are joined to the index's directory. */
int st_index_shards(const char *index_path, const sdrt_file_scope *scope, char ***shards, size_t *n, char *err,
                    size_t errlen);

#endif
