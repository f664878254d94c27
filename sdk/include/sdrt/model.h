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

#include "sdrt/backend.h"
#include "sdrt/plugin.h"
#include "sdrt/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SDRT_MODEL_IFACE_ID "sdrt.model/1"

/* ------------------------------------------------------------------------ */
/* Resident weights                                                          */
/* ------------------------------------------------------------------------ */

/* A weight store: device copies of host weights (a model's mmap'd tensors,
 * a LoRA set's merged tensors), made on first use and shared by every
 * request and plugin using the owner. Owned by the model (or LoRA set) that
 * returned it; valid while that owner is open. Keys are host memory ranges:
 * the store only answers for weights inside the ranges it covers.
 *
 * Threads: every member is thread-safe.
 * Device copies are counted against a per-device byte budget and evicted
 * least-recently-used, but never while pinned: a user pins (store, device)
 * before its first acquire and unpins after the last graph using the
 * copies has completed (sdrt_nn does both: first weight, sdrt_nn_free).
 * Host-memory devices (is_host buffer types) need no store: they read the
 * host weight where it lies. */
typedef struct sdrt_weight_store sdrt_weight_store;

typedef struct sdrt_weight_store_iface {
    uint32_t struct_size;
    /* Non-zero when host bytes [data, data + size) belong to this store. */
    int (*covers)(sdrt_weight_store *ws, const void *data, size_t size);
    void (*pin)(sdrt_weight_store *ws, sdrt_device *dev);
    void (*unpin)(sdrt_weight_store *ws, sdrt_device *dev);
    /* The device copy of host tensor `host` on `dev` (the caller holds a
     * pin on dev), uploaded now if absent (a strided view, e.g. a transposed
     * weight, is gathered into a contiguous copy); the bytes uploaded are
     * counted for `job` (may be NULL). *out is owned by the store, keyed by
     * (host data, dtype, byte size, layout of strided views), contiguous:
     * its shape is that of the first caller
     * and its data are valid until the caller unpins. *uploaded (may be
     * NULL) receives the bytes this call copied (0 when already resident). Returns SDRT_OK;
     * SDRT_RESOURCE_EXHAUSTED when it cannot be resident (budget full of
     * pinned copies, device out of memory): the caller then uses a private
     * copy and reports its bytes with note_upload; SDRT_INVALID_ARGUMENT
     * for a tensor outside covers() or with negative strides. */
    sdrt_status (*acquire)(sdrt_weight_store *ws, sdrt_device *dev, const sdrt_tensor *host, sdrt_job *job,
                           const sdrt_tensor **out, uint64_t *uploaded);
    /* Counts weight bytes `job` uploaded outside the store (private copies). */
    void (*note_upload)(sdrt_weight_store *ws, sdrt_job *job, uint64_t bytes);
    /* --- appended after ABI 1.1 shipped (read only inside struct_size;
     * NULL = absent: callers then make a private converted copy) --- */
    /* acquire with the device copy stored as `dtype` (F32, F16 or BF16,
     * converted from the host's F32/F16/BF16 at upload, rounding to
     * nearest even): the form a stream's precision asks for
     * (sdrt_stream_weight_dtype). The dtype is part of the key: copies of
     * one host tensor in two forms are two entries, so a stream in one
     * precision never reads another's copies. *out has dtype `dtype`;
     * *uploaded counts the converted bytes. dtype == host->dtype is
     * acquire. INVALID_ARGUMENT also for a dtype pair it cannot convert. */
    sdrt_status (*acquire_as)(sdrt_weight_store *ws, sdrt_device *dev, const sdrt_tensor *host, sdrt_dtype dtype,
                              sdrt_job *job, const sdrt_tensor **out, uint64_t *uploaded);
    /* --- appended (read only inside struct_size; NULL = absent) ---
     * Frees every copy set on `dev` that no one has pinned, of this store
     * and of the stores sharing its budget (the owner's other models), and
     * returns the bytes freed. Called when a device allocation failed
     * (an offloading context's private weights, activations), so cached
     * copies that are not in use make room first. */
    uint64_t (*trim)(sdrt_weight_store *ws, sdrt_device *dev);
} sdrt_weight_store_iface;

struct sdrt_weight_store {
    const sdrt_weight_store_iface *iface;
    void *context;
};

/* Where a pipeline keeps weights on a device that is not host memory
 * (request field and config key "offload"; docs/devices.md). On host-memory
 * devices (the CPU) every mode reads the weights where they lie.
 *  NONE: resident copies in the model's weight store, shared by every
 *    request and kept (LRU under the budget): the whole model on the device.
 *  MODEL: each component (text encoders, UNet, VAE) uploads its weights to
 *    memory of its own compute context and frees them when it is done,
 *    before the next component runs (diffusers' enable_model_cpu_offload):
 *    the device holds one component's weights at a time.
 *  SEQUENTIAL: weights are uploaded just before the op that reads them and
 *    freed before the next op's weights are uploaded
 *    (enable_sequential_cpu_offload): the device holds one layer's weights. */
typedef enum sdrt_offload {
    SDRT_OFFLOAD_NONE = 0,
    SDRT_OFFLOAD_MODEL = 1,
    SDRT_OFFLOAD_SEQUENTIAL = 2
} sdrt_offload;

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

    /* --- appended (read only inside struct_size; NULL = absent) --- */
    /* Any thread. The model's resident-weight store (see above), owned by
     * the model, valid while open; NULL when the plugin has none. */
    sdrt_weight_store *(*weights)(sdrt_model *m);
    /* Any thread. Weight bytes uploaded to devices for `job` since the last
     * call for that job (through any model's store or note_upload), and
     * forgets the job. A request reports it as weight_bytes_uploaded. */
    uint64_t (*take_uploaded_bytes)(void *self, sdrt_job *job);
} sdrt_model_iface;

/* The model's weight store, NULL when the plugin predates it or has none. */
static inline sdrt_weight_store *sdrt_model_weights(const sdrt_model_iface *mi, sdrt_model *m) {
    return mi && m && mi->struct_size >= SDRT_STRUCT_SIZE(sdrt_model_iface, weights) && mi->weights ? mi->weights(m)
                                                                                                  : NULL;
}

/* Bytes uploaded for `job` (and forgets it); 0 when the plugin predates it. */
static inline uint64_t sdrt_model_take_uploaded_bytes(const sdrt_model_iface *mi, sdrt_job *job) {
    return mi && mi->struct_size >= SDRT_STRUCT_SIZE(sdrt_model_iface, take_uploaded_bytes) && mi->take_uploaded_bytes
               ? mi->take_uploaded_bytes(mi->self, job)
               : 0;
}

#ifdef __cplusplus
}
#endif

#endif /* SDRT_MODEL_H */
