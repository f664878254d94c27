/* plugins/lora/set.h - building a LoRA set: match every module of every
 * adapter to a model tensor, then merge all patched tensors in parallel. */
#ifndef SDRT_LORA_SET_H
#define SDRT_LORA_SET_H

#include "lora_file.h"
#include "match.h"
#include "merge.h"
#include "sdrt/lora.h"
#include "sdrt/plugin.h"
#include "sdrt/weight_store.h"

struct sdrt_lora_set {
    lora_target *t;          /* sorted by (component, name) */
    size_t n;
    char **warnings;
    size_t n_warnings;
    uint64_t bytes;
    double merge_s;          /* wall time of the merge (for metrics and the benchmark) */
    sdrt_weight_store *resident; /* device copies of the merged tensors, or NULL */
};

typedef struct lora_set_input {
    const lora_model_ref *model;
    const char *model_id;    /* for messages */
    lora_file *const *files; /* n adapters, opened by the caller */
    const float *weights;
    size_t n;
    int threads;             /* >= 1 */
    const sdrt_host_api *api;/* warn / progress / is_cancelled; may be NULL */
    sdrt_job *job;
} lora_set_input;

/* SDRT_OK and *out, or an error status with err (see sdrt_lora_iface
 * prepare). Warnings go to in->job (api->warn) and into the set. */
sdrt_status lora_set_build(const lora_set_input *in, sdrt_lora_set **out, char *err, size_t errlen);
void lora_set_free(sdrt_lora_set *s);
/* s->resident over the merged tensors, uploads reported through `parent`
 * (the model's store; may be NULL). 0 or -1 (out of memory). */
int lora_set_resident_init(sdrt_lora_set *s, sdrt_weight_store *parent);
const sdrt_tensor *lora_set_tensor(const sdrt_lora_set *s, const char *component, const char *name);

#endif
