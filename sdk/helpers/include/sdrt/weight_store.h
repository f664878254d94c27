/* sdrt/weight_store.h - the resident-weight store behind sdrt_weight_store.
 *
 * Helper library (sdrt_helpers), not ABI: the owner of weights (the model
 * plugin for a model, the lora plugin for a LoRA set) creates a store here
 * and hands out its sdrt_weight_store handle (sdrt/model.h); users call the
 * handle's iface only, so they run the owner's code.
 *
 * A budget is shared by the stores of one owner plugin: per device it counts
 * the bytes of all their device copies against one limit and evicts the
 * least-recently-used unpinned (store, device) copy set when a new upload
 * would pass it or the device runs out of memory. It also counts uploaded
 * bytes per job (sdrt_weight_budget_take_job). The iface's trim frees every
 * unpinned copy set of the budget on one device at once (nn contexts call it
 * when a device allocation of theirs failed).
 *
 * Threads: everything is thread-safe. The stores of a budget share its
 * mutex (an eviction touches other stores); an upload holds it, so uploads
 * of one owner are serialised. Device copies are one buffer per weight with
 * usage SDRT_BUFFER_USAGE_WEIGHTS, in a hash map keyed by (host address,
 * dtype, bytes, layout, device form: acquire_as) per device.
 */
#ifndef SDRT_WEIGHT_STORE_H
#define SDRT_WEIGHT_STORE_H

#include "sdrt/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sdrt_weight_budget sdrt_weight_budget;

/* `per_device_bytes`: the most bytes of device copies per device; 0 = no
 * limit but the device's memory. NULL on out of memory. */
sdrt_weight_budget *sdrt_weight_budget_new(uint64_t per_device_bytes);
/* After every store of the budget was freed. NULL: no-op. */
void sdrt_weight_budget_free(sdrt_weight_budget *b);
uint64_t sdrt_weight_budget_limit(const sdrt_weight_budget *b);
/* Changes the limit; copies above it are evicted as uploads need room. */
void sdrt_weight_budget_set_limit(sdrt_weight_budget *b, uint64_t per_device_bytes);
/* Bytes uploaded for `job` since the last call for it; forgets the job.
 * The table keeps the 64 most recent jobs. */
uint64_t sdrt_weight_budget_take_job(sdrt_weight_budget *b, sdrt_job *job);
/* Calls fn for every device holding copies: resident bytes over all stores. */
void sdrt_weight_budget_each_device(sdrt_weight_budget *b, void (*fn)(void *u, sdrt_device *dev, uint64_t bytes),
                                    void *u);

/* New empty store counted against `b` (may be NULL: no budget, no per-job
 * counts; then `parent` (may be NULL) receives note_upload for the bytes
 * this store uploads, e.g. a LoRA set reporting through its model's store).
 * Both must outlive the store. NULL on out of memory. */
sdrt_weight_store *sdrt_weight_store_new(sdrt_weight_budget *b, sdrt_weight_store *parent);
/* Declares host bytes [data, data + size) as weights of this store. 0, or
 * -1 out of memory. Call before handing the store out. */
int sdrt_weight_store_add_range(sdrt_weight_store *ws, const void *data, size_t size);
/* Frees every device copy. No pin may be held. NULL: no-op. */
void sdrt_weight_store_free(sdrt_weight_store *ws);
/* Calls fn for every device this store holds copies on. */
void sdrt_weight_store_each_device(sdrt_weight_store *ws,
                                   void (*fn)(void *u, sdrt_device *dev, uint64_t bytes, size_t n_tensors), void *u);

#ifdef __cplusplus
}
#endif

#endif /* SDRT_WEIGHT_STORE_H */
