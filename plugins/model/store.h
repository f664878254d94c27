/* plugins/model/store.h - a loaded model: components of diffusers-named
 * tensor views over mmap'd safetensors files, configs and auxiliary paths. */
#ifndef SDRT_MODEL_STORE_H
#define SDRT_MODEL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"
#include "sdrt/model.h"
#include "sdrt/status.h"
#include "sdrt/weight_store.h"

#define STORE_MAX_COMPONENTS 8

typedef struct store_entry {
    char *name;
    sdrt_tensor t;
} store_entry;

typedef struct store_component {
    char *name;
    char *config_json; /* NULL when none */
    char *dir;         /* absolute folder (diffusers layout), or NULL */
    store_entry *entries; /* sorted by name after load */
    size_t n, cap;
    char **paths;      /* file_path results, kept until the model is freed */
    size_t n_paths;
} store_component;

/* sdrt_model from sdrt/model.h. Cache bookkeeping lives here too so that
 * one allocation describes one cached model. */
struct sdrt_model {
    char *id;
    const char *arch;   /* static string */
    const char *source; /* "diffusers" | "single_file" | "gguf" */
    store_component comps[STORE_MAX_COMPONENTS];
    int n_comps;
    st_file **files;
    size_t n_files;
    struct gguf_file *gguf; /* a GGUF model's mapping, or NULL */
    void **owned;           /* tensor memory the model allocated (dequantised tables, quantised weights) */
    size_t n_owned;
    uint64_t bytes;
    uint64_t bytes_by_dtype[SDRT_DTYPE_COUNT_];
    size_t n_tensors;
    size_t n_unmapped;  /* single-file tensors with no diffusers name */
    double load_time_s;
    /* Device copies of this model's weights (sdrt/weight_store.h), covering
     * its mapped files; made by the cache on admission, freed with the
     * model (only ever unpinned then: no request holds the model). */
    sdrt_weight_store *resident;
    /* cache state, guarded by the cache mutex */
    int pins;
    uint64_t last_used;
    struct sdrt_model *prev, *next;
    /* Where every file the model reads must lie (copied from the loader's
     * scope; its pointers live as long as the plugin). */
    sdrt_file_scope scope;
};

/* Loads the diffusers folder, single .safetensors or .gguf file at
 * absolute `path` (optionally "<path>#<weight_type>": quantised on load). Returns SDRT_OK, or NOT_FOUND / INVALID_ARGUMENT / UNSUPPORTED /
 * IO_ERROR with err naming the file and the reason. */
sdrt_status store_load(const char *path, struct sdrt_model **out, char *err, size_t errlen);
/* The same with every file opened through sdrt_file_open under `scope`
 * (NULL: type checks only): the plugin's loader. PERMISSION_DENIED names a
 * file whose real path leaves the roots (a symlinked unet/ folder). */
sdrt_status store_load_scoped(const char *path, const sdrt_file_scope *scope, struct sdrt_model **out, char *err,
                              size_t errlen);
void store_free(struct sdrt_model *m);
/* Creates m->resident over m's files, counted against `b`. 0 or -1 (OOM). */
int store_resident_init(struct sdrt_model *m, sdrt_weight_budget *b);

store_component *store_component_get(struct sdrt_model *m, const char *name);
const sdrt_tensor *store_tensor(struct sdrt_model *m, const char *comp, const char *name);
const char *store_file_path(struct sdrt_model *m, const char *comp, const char *file);
const char *store_dtype_name(sdrt_dtype d);

/* Quantises, in memory, the MATMUL/CONV2D weights of the UNet and text
 * encoders whose rows are whole blocks of wt (model.load's weight_type).
 * The VAE, tables, norms and biases keep their dtype. */
sdrt_status store_quantise(struct sdrt_model *m, sdrt_dtype wt, char *err, size_t errlen);
/* Splits "<path>#<weight_type>" (a type sdrt_quant_can_write takes, and
 * the whole id not itself an existing path): returns the dtype and sets
 * *base (malloc'd), or -1 (no suffix; *base NULL), -2 out of memory. */
int store_split_weight_type(const char *id, char **base);

/* Memory of `bytes` owned by the model (freed with it), or NULL. */
void *store_alloc(struct sdrt_model *m, size_t bytes);
/* Whether diffusers tensor `name` is only ever a MATMUL/CONV2D weight,
 * so it may stay block-quantized (embeddings, norms, biases may not). */
int store_is_gemm_weight(const char *name, const sdrt_tensor *t);
/* Replaces quantized view *t with a dequantised copy owned by m (F32, or
 * F16 past 1M elements: embedding tables). 0, or -1 out of memory. */
int store_dequantise(struct sdrt_model *m, sdrt_tensor *t);

/* Adds a view (single-file mapping uses it); copies name. 0 or -1 (OOM). */
int store_add(store_component *c, const char *name, const sdrt_tensor *t);
void store_sort(store_component *c);
store_component *store_component_add(struct sdrt_model *m, const char *name);

/* The contiguous view of stored tensor `s`; -1 with err when its dtype or
 * rank has no sdrt equivalent. */
int store_view(const st_file *f, const st_tensor *s, sdrt_tensor *t, char *err, size_t errlen);

/* Single-file loading (singlefile.c). */
sdrt_status singlefile_load(struct sdrt_model *m, const char *path, char *err, size_t errlen);
/* Shared by the single-file loaders (safetensors and GGUF): the view
 * transform of a mapped name, the duplicate check, the derived configs. */
struct ckpt_target;
int singlefile_apply_op(sdrt_tensor *t, const struct ckpt_target *tg);
sdrt_status singlefile_check_unique(struct sdrt_model *m, const char *path, char *err, size_t errlen);
sdrt_status singlefile_attach_configs(struct sdrt_model *m, char *err, size_t errlen);
/* GGUF files (gguf_load.c): sd.cpp full checkpoints and ComfyUI-GGUF
 * UNet-only files. */
sdrt_status gguf_load(struct sdrt_model *m, const char *path, char *err, size_t errlen);

/* Config JSON texts derived from tensor shapes (ckpt_config.c). */
char *ckpt_config_unet(struct sdrt_model *m);
char *ckpt_config_vae(struct sdrt_model *m);
char *ckpt_config_text(struct sdrt_model *m, const char *comp);
char *ckpt_config_scheduler(struct sdrt_model *m);

#endif
