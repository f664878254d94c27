/* plugins/inference/request.h - the validated fields of one inference.run.
 *
 * infer_request_parse checks every field's type and range and fills the
 * defaults; later stages trust the struct. Model-dependent defaults (size,
 * guidance) are left at 0 and resolved once the model is open.
 */
#ifndef SDRT_INFERENCE_REQUEST_H
#define SDRT_INFERENCE_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "hires.h"
#include "controlnet_req.h"
#include "memory_mode.h"
#include "sdrt/lora.h"
#include "sdrt/precision.h"
#include "sdrt/status.h"

#define INFER_MAX_SIZE 8192
#define INFER_MAX_STEPS 1000
#define INFER_MAX_BATCH 64
#define INFER_MAX_CLIP_SKIP 11
#define INFER_MAX_LORAS 32

typedef struct infer_request {
    char *model_id;
    char *prompt;
    char *negative_prompt;       /* "" when absent */
    int has_negative_prompt;     /* SDXL zeroes embeddings for an absent one */
    int width, height;           /* 0 = the model's default */
    int steps;
    int steps_given;             /* num_inference_steps was in the request */
    char *quality;               /* "fast" | "balanced" | "high" preset (quality.c), or NULL */
    double guidance_scale;       /* < 0 = the model's default */
    char *scheduler;             /* NULL = the model's scheduler_config.json */
    char *scheduler_config_json; /* "{}" when absent */
    uint64_t seed;
    int seed_given;              /* 0: draw one, report it */
    int rng_philox;              /* "rng": 1 = Philox (A1111 "NV"), 0 = PyTorch CPU */
    int batch_size;
    int clip_skip;               /* 0 = none */
    char *output_dir;
    char *output_prefix;         /* file name prefix; NULL = "sdrt-<seed>" */
    int save_latents;
    char *device;                /* "auto", "<backend>[:<index>]"; NULL = the deployment's */
    /* "precision" (sdrt/precision.h); precision_given 0 = absent: the
     * plugin's default (config, else the host's top-level key). */
    sdrt_precision precision;
    int precision_given;

    /* Model suite: model_id {base, refiner, vae}; NULL = none. */
    char *refiner_id;
    char *vae_id;
    /* img2img / inpainting (NULL = txt2img). init_image: a path under the
     * roots, a data: URI, or a .npy of latents [1,C,h,w] (a handover). */
    char *init_image;
    char *mask_image;            /* white = repaint; needs init_image */
    double strength;             /* (0, 1]; < 0 = the pipeline's default */
    double denoising_start;      /* [0, 1); < 0 = none (SDXL handover) */
    double denoising_end;        /* (0, 1]; < 0 = none (or 0.8 with a refiner) */
    double aesthetic_score;      /* refiner time id; 6.0 */
    double negative_aesthetic_score; /* 2.5 */
    double mask_blur;            /* PIL GaussianBlur radius of the mask; 0 = none */
    int padding_mask_crop;       /* < 0 = none; else "only masked" with this padding */

    /* lora{enabled, adapters[{model_id, weight}]}: model_id strings owned
     * here (freed by infer_request_free). lora_enabled 0 also turns the
     * prompt's <lora:name:w> tags off. */
    int preview_every;
    int max_batch;               /* images per UNet call; 0 = from the memory budget */           /* preview: an event every n steps; 0 = none */

    sdrt_lora_adapter *loras;
    size_t n_loras;
    int lora_enabled;

    /* "safety_checker": -1 absent (the plugin config decides), 0, 1;
     * "safety_action": -1 absent, 1 "black" (flagged images zeroed), 0 "flag". */
    int safety_checker;
    int safety_black;

    infer_hires hires;           /* the hires fix (hires.h); enabled 0 = none */
    infer_cn_reqs controlnet;    /* "controlnet" entries and guess_mode */
    infer_memory memory;         /* offload, vae_tiling, …: -1 = the config's */
} infer_request;

/* Parses the `data` JSON of inference.run (borrowed). On success returns
 * SDRT_OK and fills *req (free with infer_request_free). Otherwise returns
 * SDRT_INVALID_ARGUMENT with a
 * message naming the field and the reason in err. Accepts the legacy
 * nesting `model_name`, `hyperparameters{...}`, `dimensions{...}` too. */
sdrt_status infer_request_parse(const char *data_json, infer_request *req, char *err, size_t errlen);
void infer_request_free(infer_request *req);
/* A file name prefix that stays inside output.dir: 1-100 characters, no
 * path separator, no "..", no leading dot, no control characters. */
int infer_prefix_ok(const char *s);

#endif /* SDRT_INFERENCE_REQUEST_H */
