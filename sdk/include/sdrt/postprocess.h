/* sdrt/postprocess.h - the interface the postprocess plugin publishes:
 * VAE decode/encode, image files with generation metadata, previews.
 *
 * Images cross this interface as float32 RGB, NHWC ([B,H,W,3]) in [0,1];
 * latents as float32 NCHW ([B,C,h,w]) exactly as the UNet sees them (already
 * multiplied by the VAE's scaling_factor, i.e. what diffusers passes to
 * `vae.decode(latents / scaling_factor)`).
 *
 * Threads: every function may be called from any worker thread, also
 * concurrently; the plugin serialises nothing globally (each call builds its
 * own compute context).
 * Ownership: inputs are borrowed for the call. Every buffer returned through
 * an out-pointer (images, latents, PNG bytes, paths, texts) is owned by the
 * caller and freed with `free(self, ptr)` of this interface (never libc
 * free: the plugin may use another allocator). On failure the out-pointers
 * are left NULL.
 * Errors: NULL is success; otherwise an sdrt_error the caller owns, with the
 * statuses listed at each function.
 */
#ifndef SDRT_POSTPROCESS_H
#define SDRT_POSTPROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "sdrt/model.h"
#include "sdrt/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SDRT_POSTPROCESS_IFACE_ID "sdrt.postprocess/1"

/* Tiling of VAE decode/encode. Tiles overlap and are blended with linear
 * ramps, so seams are not visible; the result differs slightly from an
 * untiled run because group norms see one tile at a time. */
typedef enum sdrt_vae_tiling {
    SDRT_VAE_TILING_AUTO = 0, /* tile when the estimated activations exceed memory_budget */
    SDRT_VAE_TILING_ON = 1,
    SDRT_VAE_TILING_OFF = 2
} sdrt_vae_tiling;

typedef struct sdrt_vae_options {
    uint32_t struct_size;
    int32_t tiling;          /* sdrt_vae_tiling; 0 = AUTO */
    int32_t tile_size;       /* tile edge in image pixels, multiple of 8; 0 = 512 */
    int32_t tile_overlap;    /* overlap in image pixels, multiple of 8; 0 = 128 */
    uint64_t memory_budget;  /* bytes of activations before AUTO tiles; 0 = 3/4 of
                              * the device's free memory, at most 8 GiB */
    /* --- appended (read only inside struct_size) --- */
    /* The stream params "precision" of the call ("auto", "f32", "f16",
     * "bf16", "int8"; e.g. the inference.run request's); NULL = the
     * plugin's default (its config, else the host's). A VAE whose config
     * says force_upcast (diffusers' flag; true when absent) runs in "f32"
     * whatever this says, as diffusers upcasts it. Borrowed. */
    const char *precision;
    /* --- appended (read only inside struct_size; else NONE and 0) --- */
    int32_t offload;         /* sdrt_offload (sdrt/model.h): where the VAE's weights
                              * live while it runs; NONE = the model's resident copies */
    int32_t slicing;         /* non-zero: one batch item at a time (diffusers'
                              * enable_vae_slicing): activations of one image,
                              * the same results */
} sdrt_vae_options;

#define SDRT_VAE_OPTIONS_SIZE SDRT_STRUCT_SIZE(sdrt_vae_options, slicing)

/* Fills defaults (all zero = documented defaults) and struct_size. */
static inline void sdrt_vae_options_init(sdrt_vae_options *o) {
    o->struct_size = SDRT_VAE_OPTIONS_SIZE;
    o->tiling = SDRT_VAE_TILING_AUTO;
    o->tile_size = 0;
    o->tile_overlap = 0;
    o->memory_budget = 0;
    o->precision = NULL;
    o->offload = 0;
    o->slicing = 0;
}

typedef struct sdrt_postprocess_iface {
    uint32_t struct_size;
    void *self;

    /* Decodes latents [batch,c,h,w] of model `m` (borrowed; its "vae"
     * component and weights are used) to images. Computes
     * vae.decode(latents / scaling_factor + shift_factor) and maps
     * (x/2+0.5).clamp(0,1). `opt` may be NULL (defaults). `job` may be NULL
     * (no progress, never cancelled). On success *rgb_out is [batch,8h,8w,3]
     * and *height, *width (may be NULL) receive 8h, 8w.
     * Statuses: INVALID_ARGUMENT (c differs from latent_channels, sizes < 1),
     * NOT_FOUND (no vae component or a weight missing, named),
     * FAILED_PRECONDITION (no compute backend), RESOURCE_EXHAUSTED,
     * CANCELLED, INTERNAL (a backend op failed, named). */
    sdrt_error *(*decode)(void *self, sdrt_model *m, const float *latents, int batch, int c, int h,
                          int w, const sdrt_vae_options *opt, sdrt_job *job, float **rgb_out,
                          int *height, int *width);

    /* Encodes images rgb [batch,height,width,3] in [0,1] (height, width
     * multiples of 8) to latents [batch,C,height/8,width/8] ready for the
     * UNet: (z - shift_factor) * scaling_factor, where z is the
     * DiagonalGaussian mean when `noise` is NULL, else mean + std * noise
     * with `noise` [batch,C,height/8,width/8] drawn by the caller (so the
     * caller's generator decides reproducibility). *channels (may be NULL)
     * receives C. Statuses as decode, INVALID_ARGUMENT also for sizes that
     * are not multiples of 8. */
    sdrt_error *(*encode)(void *self, sdrt_model *m, const float *rgb, int batch, int height,
                          int width, const float *noise, const sdrt_vae_options *opt, sdrt_job *job,
                          float **latents_out, int *channels);

    /* Writes one RGB image rgb [h,w,3] in [0,1] as an 8-bit RGB PNG into
     * `dir` (resolved against the output roots and created if missing) as
     * "<prefix>-<n>.png" (n: 5 digits), the first number not in use; files
     * are created with O_EXCL so nothing is ever overwritten, also under
     * concurrent writers. `prefix` NULL = "sdrt"; callers put the seed in it
     * ("sdrt-42"). `parameters_text` (A1111 "parameters" chunk, UTF-8) and
     * `request_json` (chunk "sdrt") may be NULL (chunk omitted). *path_out
     * (may be NULL) receives the absolute path. Statuses: PERMISSION_DENIED
     * (dir outside the output roots), INVALID_ARGUMENT (prefix with '/' or
     * sizes < 1), IO_ERROR (mkdir, open, write; names the path). */
    sdrt_error *(*write_png)(void *self, const float *rgb, int h, int w, const char *dir,
                             const char *prefix, const char *parameters_text,
                             const char *request_json, char **path_out);

    /* A cheap preview of latents [c,h,w] (one image of a batch) by the fixed
     * latent-to-RGB factor matrices of SD1.x/SD2 (`arch` "sd1", "sd2") or
     * SDXL ("sdxl", "sdxl-refiner"; NULL = "sd1"): a PNG of h x w pixels
     * (latent resolution) in memory, *png_out / *png_len. Needs no model
     * and no compute device. Statuses: INVALID_ARGUMENT (c != 4, unknown
     * arch), RESOURCE_EXHAUSTED. */
    sdrt_error *(*preview_png)(void *self, const float *latents, int c, int h, int w,
                               const char *arch, uint8_t **png_out, size_t *png_len);

    /* Reads an image for img2img: `source` is a file path (resolved against
     * the output roots) or a data: URI (base64 PNG/JPEG/WebP). Returns
     * *rgb [h,w,3] float in [0,1] and its size. Images larger than 8192 px on
     * a side or 64 Mpixel are refused. Statuses: NOT_FOUND, PERMISSION_DENIED,
     * INVALID_ARGUMENT (not an image, corrupt, too large; the reason named),
     * UNSUPPORTED (a format other than PNG, JPEG, WebP). */
    sdrt_error *(*read_image)(void *self, const char *source, float **rgb, int *h, int *w);

    /* Formats the A1111 "parameters" text for an inference.run request
     * (data object JSON, borrowed) and the seed actually used:
     * "<prompt>\nNegative prompt: <neg>\nSteps: 30, Sampler: ..., Seed: 42, ...".
     * *text_out is owned by the caller. Statuses: INVALID_ARGUMENT (not a
     * JSON object). */
    sdrt_error *(*format_parameters)(void *self, const char *request_json, uint64_t seed,
                                     char **text_out);

    /* Frees a buffer returned by this interface. NULL: no-op. */
    void (*free)(void *self, void *ptr);

    /* --- appended (call only when struct_size covers it and it is not
     * NULL; else upload nothing and call decode) ---
     * decode of a device latent: `latents` (borrowed for the call) is a
     * contiguous float32 tensor [batch,c,h,w] on `dev` (from the
     * sdrt.backend/1 interface; NULL = the backend's default device), its
     * producer's work completed (stream synchronized). The VAE runs on
     * `dev` and reads the latents there; only the decoded pixels come to
     * host memory, for file I/O. When tiling applies (opt, or AUTO over the
     * budget) the latents are read to the host and tiled as by decode.
     * Results equal decode's up to float rounding (the unscale is one
     * device op, x * (1/scaling_factor) + shift_factor). Outputs, thread
     * and statuses as decode; INVALID_ARGUMENT also for a tensor that is
     * not 4-D contiguous float32. */
    sdrt_error *(*decode_tensor)(void *self, sdrt_model *m, sdrt_device *dev, const sdrt_tensor *latents,
                                 const sdrt_vae_options *opt, sdrt_job *job, float **rgb_out, int *height,
                                 int *width);
    /* Appended (check SDRT_HAS_MEMBER before calling). Upscales one image
     * rgb [h,w,3] in [0,1] (borrowed for the call) with the upscaler model
     * `model_id`, found as postprocess.upscale finds it (the plugin's
     * upscaler_roots, the model roots' ESRGAN/, RealESRGAN/,
     * upscale_models/, upscalers/ folders, or a path inside the model
     * roots), on the default compute device in 192-pixel tiles with
     * blended 16-pixel overlaps. Returns *out [*oh,*ow,3], the raw network
     * output (not clamped), owned by the caller (the free member). Worker
     * thread of `job` (progress stage "upscale", cancellation; may be NULL).
     * Statuses: NOT_FOUND (no such model), INVALID_ARGUMENT (unknown
     * architecture, malformed file, result over 8192 px a side or 64
     * Mpixel), CANCELLED, RESOURCE_EXHAUSTED. */
    sdrt_error *(*upscale)(void *self, const char *model_id, const float *rgb, int h, int w, sdrt_job *job,
                           float **out, int *oh, int *ow);
    /* Appended (check SDRT_HAS_MEMBER before calling). diffusers'
     * StableDiffusionSafetyChecker of model `m` (borrowed; its folder's
     * safety_checker/ and feature_extractor/preprocessor_config.json) on
     * images rgb [batch,h,w,3] in [0,1], each quantised to 8 bits as the
     * written PNG is (diffusers' numpy_to_pil) before the CLIP
     * preprocessing. nsfw [batch] (caller-allocated) receives
     * has_nsfw_concept per image. With black_out non-zero, flagged images are
     * set to 0 in rgb, in place (diffusers' black image); else rgb is left
     * as it is. details_json (may be NULL) receives a JSON array, per image
     * {nsfw_content_detected, special_care, concept_scores, special_scores,
     * bad_concepts}, owned by the caller (the free member). batch 0 only
     * opens and checks the checker (rgb, nsfw may be NULL), so a caller can
     * fail before generating. The checker is opened on first use and kept
     * while the plugin runs. Worker thread of
     * `job` (progress stage "safety_check", cancellation; may be NULL).
     * Statuses: NOT_FOUND (the model has no safety_checker/ folder),
     * INVALID_ARGUMENT (the folder is broken: a missing or malformed file, a
     * weight whose shape disagrees with its config; the file named),
     * UNSUPPORTED (pickle weights only), PERMISSION_DENIED (a file outside
     * the model roots), CANCELLED, RESOURCE_EXHAUSTED, INTERNAL. */
    sdrt_error *(*safety_check)(void *self, sdrt_model *m, float *rgb, int batch, int h, int w, int black_out,
                                sdrt_job *job, int *nsfw, char **details_json);
} sdrt_postprocess_iface;

#ifdef __cplusplus
}
#endif

#endif /* SDRT_POSTPROCESS_H */
