/* plugins/model/cache.h - loaded models under a byte budget, LRU order.
 * Thread-safe. A model with pins > 0 (opened, not yet closed) is never
 * evicted; loading past the budget evicts least recently used unpinned
 * models first. */
#ifndef SDRT_MODEL_CACHE_H
#define SDRT_MODEL_CACHE_H

#include <pthread.h>

#include "store.h"

typedef struct model_cache {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sdrt_model *head; /* most recently used first */
    uint64_t bytes, budget, clock;
    int loading; /* a load is in progress (serialised: one at a time) */
    /* Device copies of every cached model's weights: one byte budget per
     * device, LRU over (model, device) (sdrt/weight_store.h). */
    sdrt_weight_budget *weights;
} model_cache;

/* Loads a model from its canonical path. Replaceable for tests. */
typedef sdrt_status (*cache_loader)(const char *path, const sdrt_file_scope *scope, struct sdrt_model **out,
                                    char *err, size_t errlen);

/* `budget`: host (mapped) bytes; device weight copies start unlimited
 * (cache_set_device_budget). 0, or -1 out of memory. */
int cache_init(model_cache *c, uint64_t budget);
/* Per-device byte budget for resident weight copies; 0 = device memory. */
void cache_set_device_budget(model_cache *c, uint64_t bytes);
void cache_destroy(model_cache *c);
/* Finds or loads `id` and pins it. *loaded tells whether it was loaded now.
 * RESOURCE_EXHAUSTED when it does not fit beside the pinned models. */
sdrt_status cache_open(model_cache *c, const char *id, cache_loader load, const sdrt_file_scope *scope,
                       struct sdrt_model **out, int *loaded, char *err, size_t errlen);
void cache_close(model_cache *c, struct sdrt_model *m);
/* Drops an unpinned model: NOT_FOUND, or FAILED_PRECONDITION while pinned. */
sdrt_status cache_unload(model_cache *c, const char *id, char *err, size_t errlen);
/* JSON text {"models":[...,"resident":[{device,bytes,tensors}]],
 * "cache_bytes":n,"budget_bytes":n,"devices":[{device,resident_bytes}],
 * "device_budget_bytes":n} (malloc'd). */
char *cache_list_json(model_cache *c);

#endif
