/* plugins/lora/merge.h - merged weights W' = W + sum_i scale_i * delta_i.
 *
 * Each adapter module that patches a tensor is a contribution whose factors
 * are converted to float32 once (small: rank x width); the merge then runs
 * row by row: the base row widened to f32, every contribution's row of
 * delta added, the sum rounded once to the output dtype. Only one row of
 * f32 scratch per thread is needed, whatever the tensor size. */
#ifndef SDRT_LORA_MERGE_H
#define SDRT_LORA_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "lora_file.h"
#include "sdrt/status.h"
#include "sdrt/tensor.h"

typedef struct lora_contrib {
    const lora_module *m;
    const char *file;        /* for messages */
    float scale;             /* adapter weight x alpha / rank */
    float *f[4];             /* f32 factors, see merge.c */
    int64_t r1, r2;          /* inner dimensions (LoRA/LoHa ranks) */
    int64_t ka, kb, kc, kd;  /* LoKr: W1 [ka, kb], W2 [kc, kd] */
} lora_contrib;

typedef struct lora_target {
    int component;
    char *name;              /* diffusers tensor name ("...to_q.weight") */
    const sdrt_tensor *base;
    lora_contrib *c;
    size_t nc;
    int64_t rows, cols;      /* shape[0], numel / shape[0] */
    sdrt_tensor out;         /* contiguous, base dtype, data owned by the target */
} lora_target;

/* Sets rows/cols from the base tensor. INVALID_ARGUMENT when it is not a
 * contiguous F32/F16/BF16 tensor of rank >= 1 (err names it). */
sdrt_status lora_target_init(lora_target *t, char *err, size_t errlen);

/* Checks that module c->m fits target t and converts its factors.
 * INVALID_ARGUMENT (err names the file, the key and both shapes) or
 * RESOURCE_EXHAUSTED. */
sdrt_status lora_contrib_prepare(lora_contrib *c, const lora_target *t, char *err, size_t errlen);
void lora_contrib_free(lora_contrib *c);

/* Writes rows [r0, r1) of t->out. `scratch` holds LORA_SCRATCH_ROWS * cols floats. Thread:
 * any; distinct row ranges of one target may run concurrently. */
#define LORA_SCRATCH_ROWS 6
void lora_merge_rows(const lora_target *t, int64_t r0, int64_t r1, float *scratch);

#endif
