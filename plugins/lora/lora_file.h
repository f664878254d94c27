/* plugins/lora/lora_file.h - one LoRA file, read and checked: its tensors
 * grouped into modules (one per patched layer), each with its algorithm
 * (LoRA/LoCon, LoHa, LoKr, full diff), rank and alpha.
 *
 * The safetensors parser is the model plugin's (sdrt_model_core): tensors
 * point into the file's mapping, valid until lora_file_close. */
#ifndef SDRT_LORA_FILE_H
#define SDRT_LORA_FILE_H

#include <stddef.h>

#include "keys.h"
#include "safetensors.h"
#include "sdrt/plugin.h"
#include "sdrt/status.h"

typedef enum lora_algo { ALGO_LORA = 0, ALGO_LOHA, ALGO_LOKR, ALGO_DIFF, ALGO_COUNT_ } lora_algo;

typedef struct lora_module {
    char *base;                            /* the keys' common prefix, as spelled in the file */
    lora_key key;                          /* component, module path (maybe SGM), style */
    const st_tensor *part[PART_COUNT_];
    lora_algo algo;
    int conv;                              /* factors are 4-D (LoCon) */
    int rank;                              /* 0 when the algorithm has none (full LoKr, diff) */
    int has_alpha;
    float alpha;
} lora_module;

typedef struct lora_file {
    char *path;
    st_file *st;
    lora_module *mods;
    size_t n_mods;
    char **ignored;                        /* "key: reason" for tensors that are no LoRA part */
    size_t n_ignored;
    unsigned styles;                       /* 1 << lora_style */
    unsigned algos;                        /* 1 << lora_algo */
    int sgm;                               /* some UNet keys use SGM names */
    const char *arch;                      /* "sd1", "sd2", "sdxl" or "unknown" */
    const char *arch_reason;               /* the key or metadata that told, or NULL */
} lora_file;

/* Opens and checks `path`. Returns SDRT_OK, or with err naming the file and
 * the key: INVALID_ARGUMENT (not a safetensors file, no LoRA tensors, a
 * down without its up, inconsistent ranks or shapes, non-float dtypes),
 * UNSUPPORTED (DoRA, Tucker-decomposed LoCon/LoHa/LoKr), NOT_FOUND,
 * RESOURCE_EXHAUSTED. */
sdrt_status lora_file_open(const char *path, lora_file **out, char *err, size_t errlen);
/* The same with the file opened through sdrt_file_open under `scope`
 * (NULL: type checks only): never blocks on a FIFO, refuses devices, and
 * PERMISSION_DENIED when its real path is outside the roots. */
sdrt_status lora_file_open_scoped(const char *path, const sdrt_file_scope *scope, lora_file **out, char *err,
                                  size_t errlen);
void lora_file_close(lora_file *f);

/* f32 value of element i of a float tensor (F32/F16/BF16/F64). */
float lora_st_get(const st_tensor *t, size_t i);
size_t lora_st_numel(const st_tensor *t);

/* Names for lora.inspect. */
const char *lora_algo_name(lora_algo a);
/* printf into err[n] (either may be NULL/0: then nothing); the plugin's
 * one way to fill the err/errlen pairs. */
void lora_set_err(char *err, size_t n, const char *fmt, ...) SDRT_PRINTF(3, 4);
const char *lora_style_name(lora_style s);

#endif
