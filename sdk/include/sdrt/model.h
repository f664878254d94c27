/* sdrt/model.h - the weight store interface the model plugin publishes.
 *
 * Every model, whatever its file layout (diffusers folder, sharded or single
 * safetensors, A1111/ComfyUI single-file checkpoint), is presented in ONE
 * internal layout: diffusers component names ("unet", "vae", "text_encoder",
 * "text_encoder_2", "scheduler", "tokenizer", "tokenizer_2") and diffusers
 * tensor names inside each component ("conv_in.weight"). Single-file
 * checkpoints are mapped to that layout by the model plugin.
 */
#ifndef SDRT_MODEL_H
#define SDRT_MODEL_H

#include "sdrt/plugin.h"
#include "sdrt/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SDRT_MODEL_IFACE_ID "sdrt.model/1"

/* A loaded model held open by one user. Opaque. */
typedef struct sdrt_model sdrt_model;

typedef struct sdrt_model_iface {
    uint32_t struct_size;
    void *self;

    /* Any worker thread. Finds `model_id` (path, name under the model roots,
     * or Hugging Face repo id in a local HF cache), loads it if it is not in
     * the cache, and returns it pinned: a pinned model is never evicted.
     * Returns NULL and sets *out, or an error (NOT_FOUND, PERMISSION_DENIED,
     * INVALID_ARGUMENT for a malformed file, RESOURCE_EXHAUSTED). `job` may
     * be NULL. Every successful open is matched by one close. */
    sdrt_error *(*open)(void *self, const char *model_id, sdrt_job *job, sdrt_model **out);
    /* Unpins. The model stays cached (LRU) unless unloaded. NULL: no-op. */
    void (*close)(void *self, sdrt_model *m);

    /* Architecture detected from tensor names: "sd1", "sd2", "sdxl",
     * "sdxl-refiner"; "vae" for a standalone AutoencoderKL folder (only a
     * "vae" component). Valid while open. */
    const char *(*arch)(sdrt_model *m);
    /* The component's diffusers config.json text (for single-file
     * checkpoints, the known config of the detected architecture), or NULL
     * when the model has no such component. Valid while open. */
    const char *(*config_json)(sdrt_model *m, const char *component);
    /* Weight `name` of `component` in diffusers naming, or NULL if absent.
     * Host memory (usually the mmap'd file), dtype as stored; read-only;
     * valid while open. */
    const sdrt_tensor *(*tensor)(sdrt_model *m, const char *component, const char *name);
    /* Absolute path of an auxiliary file of a component, e.g.
     * ("tokenizer", "vocab.json"), or NULL when the model has none (then
     * the caller looks in its configured fallbacks). Valid while open. */
    const char *(*file_path)(sdrt_model *m, const char *component, const char *file);
    /* The id the model is cached under (canonical absolute path). */
    const char *(*id)(sdrt_model *m);
} sdrt_model_iface;

#ifdef __cplusplus
}
#endif

#endif /* SDRT_MODEL_H */
