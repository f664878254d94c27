/* sdrt/lora.h - the LoRA interface the lora plugin publishes.
 *
 * A LoRA set is one request's view of a model with adapters applied: for
 * every weight an adapter touches it holds the merged tensor
 *     W' = W + sum_i scale_i * delta_i,   scale_i = weight_i * alpha_i / rank_i
 * (alpha absent: scale_i = weight_i), computed in float32 and stored in the
 * base tensor's dtype. The base model's tensors are never written: removing
 * the adapters is destroying the set (exact restore, no reload), and other
 * requests on the same model keep seeing the plain weights meanwhile.
 *
 * Files understood: kohya/A1111 (`lora_unet_*`, `lora_te_*`, SDXL
 * `lora_te1_*`/`lora_te2_*`, UNet keys in diffusers or SGM/LDM naming),
 * diffusers/PEFT (`lora_A`/`lora_B`, `lora.down`/`lora.up`,
 * `lora_linear_layer`, attention-processor keys), LoCon (conv factors),
 * LoHa (`hada_*`) and LoKr (`lokr_*`). Tucker-decomposed variants
 * (`lora_mid`, `hada_t*`, `lokr_t2`) and DoRA (`dora_scale`) are refused
 * with UNSUPPORTED naming the key.
 *
 * Usage (one request):
 *   const sdrt_lora_iface *li = api->acquire(host, SDRT_LORA_IFACE_ID, &err);
 *   sdrt_lora_adapter a[2];
 *   sdrt_lora_adapter_init(&a[0]); a[0].model_id = "my_style"; a[0].weight = 0.8f;
 *   ...
 *   sdrt_lora_set *set;
 *   err = li->prepare(li->self, model, a, 2, job, &set);
 *   // weight lookups: li->tensor(set, "unet", name) ?: model_iface->tensor(model, "unet", name)
 *   li->destroy(li->self, set);
 *   api->release(host, SDRT_LORA_IFACE_ID);
 */
#ifndef SDRT_LORA_H
#define SDRT_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "sdrt/model.h"
#include "sdrt/plugin.h"
#include "sdrt/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SDRT_LORA_IFACE_ID "sdrt.lora/1"

/* One adapter of a request. Fill with sdrt_lora_adapter_init. */
typedef struct sdrt_lora_adapter {
    uint32_t struct_size;
    /* A .safetensors path (checked against the model roots), or a name
     * under the LoRA folders: "<model root>/<subdir>/<name>[.safetensors]"
     * with the plugin's `subdirs` (default "loras", "Lora", "lora"), then
     * "<model root>/<name>[.safetensors]". A folder holding
     * pytorch_lora_weights.safetensors (diffusers' save_lora_weights) works
     * too. Borrowed for the call. */
    const char *model_id;
    /* Multiplier; 1 = the adapter as trained, 0 = not applied (the file is
     * still read and checked), negative values subtract it. */
    float weight;
} sdrt_lora_adapter;

static inline void sdrt_lora_adapter_init(sdrt_lora_adapter *a) {
    a->struct_size = SDRT_STRUCT_SIZE(sdrt_lora_adapter, weight);
    a->model_id = NULL;
    a->weight = 1.0f;
}

/* Adapters merged into one model for one request. Opaque. */
typedef struct sdrt_lora_set sdrt_lora_set;

typedef struct sdrt_lora_iface {
    uint32_t struct_size;
    void *self;

    /* Worker thread; thread-safe (several requests may prepare at once).
     * `m` is a model the caller opened through SDRT_MODEL_IFACE_ID and keeps
     * open until destroy; `adapters` (n of them, n >= 1) are borrowed for the
     * call; `job` (may be NULL) receives progress, cancellation checks and
     * one warning per LoRA key that matched no tensor of the model (never
     * dropped silently; the same texts are kept in the set, see warning()).
     * On success returns NULL and sets *out to a new set owned by the
     * caller (destroy). On failure returns an error, *out = NULL:
     *   INVALID_ARGUMENT  no adapters, a NULL model_id or a non-finite
     *                     weight; a malformed or empty file; a LoRA made for
     *                     another architecture (the message names the file,
     *                     the key and both architectures); a delta whose
     *                     shape does not fit the weight it names
     *   UNSUPPORTED       DoRA or Tucker-decomposed adapters (names the key)
     *   NOT_FOUND         model_id names no file
     *   PERMISSION_DENIED a path outside the allowed roots
     *   RESOURCE_EXHAUSTED, CANCELLED */
    sdrt_error *(*prepare)(void *self, sdrt_model *m, const sdrt_lora_adapter *adapters, size_t n, sdrt_job *job,
                           sdrt_lora_set **out);

    /* Any thread, concurrently (the set is read-only once prepared). The
     * merged weight `name` (diffusers naming, "…to_q.weight") of `component`
     * ("unet", "text_encoder", "text_encoder_2"): a contiguous host tensor in
     * the base tensor's dtype, `buffer` NULL, valid until destroy. NULL when
     * no adapter patches that tensor (use the model's own) or set is NULL. */
    const sdrt_tensor *(*tensor)(const sdrt_lora_set *set, const char *component, const char *name);

    /* Any thread. Number of warnings, and warning i (0-based) as text
     * valid until destroy (NULL past the end): keys that matched nothing,
     * tensors of the file that are no LoRA part, parts not applied. */
    size_t (*n_warnings)(const sdrt_lora_set *set);
    const char *(*warning)(const sdrt_lora_set *set, size_t i);

    /* Any thread. Tensors patched, and the bytes the set holds for them
     * (the memory a request with these adapters adds). */
    size_t (*n_patched)(const sdrt_lora_set *set);
    uint64_t (*bytes)(const sdrt_lora_set *set);

    /* Any thread, once per set, after the last use of its tensors. Frees the
     * merged tensors; the model is untouched. NULL: no-op. */
    void (*destroy)(void *self, sdrt_lora_set *set);

    /* --- appended (read only inside struct_size; NULL = absent) --- */
    /* Any thread. The set's weight store (sdrt/model.h): device copies of
     * its merged tensors, owned by the set and freed by destroy (after the
     * last context using them was freed). Uploads are counted for the job
     * through the model's store. NULL when absent. */
    sdrt_weight_store *(*weights)(const sdrt_lora_set *set);
} sdrt_lora_iface;

static inline sdrt_weight_store *sdrt_lora_weights(const sdrt_lora_iface *li, const sdrt_lora_set *set) {
    return li && set && li->struct_size >= SDRT_STRUCT_SIZE(sdrt_lora_iface, weights) && li->weights
               ? li->weights(set)
               : NULL;
}

#ifdef __cplusplus
}
#endif

#endif /* SDRT_LORA_H */
