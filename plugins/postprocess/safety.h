/* safety.h - the safety checker of the postprocess plugin (module prefix
 * sc_): diffusers' StableDiffusionSafetyChecker over a pipeline folder's
 * safety_checker/ (CLIPConfig config.json + weights) and
 * feature_extractor/preprocessor_config.json.
 *
 *   safety_prep.c      CLIPImageProcessor: resize shortest side (Pillow's
 *                      filters, sdrt/resample.h), center crop, rescale,
 *                      normalize
 *   safety_net.c       config, weights, the CLIP vision tower (block
 *                      library's CLIP encoder layer, no mask) and
 *                      visual_projection on the compute backend
 *   safety_concepts.c  the concept logic of safety_checker.py (cosine
 *                      distances, thresholds, the special-care adjustment)
 *   safety_msg.c       the postprocess.safety_check message and the
 *                      safety_check member of sdrt.postprocess/1
 */
#ifndef PP_SAFETY_H
#define PP_SAFETY_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"
#include "sdrt/nn_blocks.h"
#include "sdrt/resample.h"

/* ---- safety_prep.c ---- */

/* CLIPImageProcessor settings (transformers' defaults where the file is
 * silent: shortest edge 224, center crop 224, bicubic, 1/255, OpenAI CLIP
 * mean and std). */
typedef struct sc_prep {
    int do_resize;
    int shortest_edge;       /* > 0: resize the short side to it, aspect kept */
    int size_h, size_w;      /* shortest_edge 0: resize to exactly size_h x size_w */
    sdrt_resample_filter filter;
    int do_center_crop, crop_h, crop_w;
    int do_rescale;
    double rescale_factor;
    int do_normalize;
    float mean[3], std[3];
} sc_prep;

/* Parses preprocessor_config.json text (`json`, borrowed). Both layouts:
 * ints ("size": 224, "crop_size": 224; CLIPFeatureExtractor) and dicts
 * ({"shortest_edge": 224}, {"height": 224, "width": 224}). Returns 0, or -1
 * with err naming the key ("feature_extractor/preprocessor_config.json:
 * resample 2 (bilinear) is not supported"). */
int sc_prep_parse(const char *json, sc_prep *p, char *err, size_t errlen);
/* The output side lengths (crop, or the resize size without crop). */
void sc_prep_out_size(const sc_prep *p, int *h, int *w);
/* rgb [h,w,3] 8-bit (borrowed) -> out [3,oh,ow] float32 (caller-allocated,
 * oh/ow from sc_prep_out_size). Returns 0, or -1 with err (out of memory,
 * an image smaller than the crop without resize). Any thread. */
int sc_prep_run(const sc_prep *p, const uint8_t *rgb, int w, int h, float *out, char *err, size_t errlen);

/* ---- safety_net.c ---- */

typedef struct sc_config {
    int hidden, intermediate, heads, layers;
    int image_size, patch, channels;
    int projection_dim;
    float eps;
    sdrt_blk_act act;
} sc_config;

/* safety_checker/config.json (a CLIPConfig): vision_config (or the old
 * vision_config_dict) and projection_dim, transformers' CLIPVisionConfig
 * defaults for absent keys. Returns 0, or -1 with err naming the key. */
int sc_config_parse(const char *json, sc_config *c, char *err, size_t errlen);

/* A loaded checker. Immutable after sc_model_open: any number of threads
 * may run it at once, each with its own sdrt_nn context. */
typedef struct sc_model {
    char *dir;                  /* the pipeline folder */
    st_file *st;                /* safety_checker/model.safetensors, mapped */
    sdrt_tensor *views;         /* one host view per tensor of st */
    sdrt_weight_store *ws;      /* device copies of the weights, shared by calls */
    sc_config cfg;
    sc_prep prep;
    sdrt_blk_mem *mem;
    const sdrt_tensor *patch_w, *class_emb, *pos_emb;
    sdrt_blk_norm pre_ln, post_ln;
    sdrt_blk_clip_layer *layers;
    sdrt_blk_linear proj;
    int n_concepts, n_special;
    float *concept_embeds;      /* [n_concepts, projection_dim], L2-normalised rows */
    float *special_embeds;      /* [n_special, projection_dim], L2-normalised rows */
    float *concept_thr, *special_thr; /* concept_embeds_weights, special_care_embeds_weights */
} sc_model;

/* Opens the checker of the pipeline folder `dir`: safety_checker/config.json
 * and model.safetensors (or model.fp16.safetensors), and
 * feature_extractor/preprocessor_config.json, each opened through `scope`
 * (borrowed for the call). Every weight is checked against the config
 * (shape and dtype) here, so a broken folder fails before any image runs.
 * Returns SDRT_OK with *out (caller-owned: sc_model_close), or NOT_FOUND
 * (no safety_checker/ folder: the model has no checker), INVALID_ARGUMENT
 * (a file is missing, malformed or disagrees with the config; err names it),
 * UNSUPPORTED (.bin weights only), PERMISSION_DENIED (outside the roots),
 * RESOURCE_EXHAUSTED. */
sdrt_status sc_model_open(const char *dir, const sdrt_file_scope *scope, sc_model **out, char *err, size_t errlen);
void sc_model_close(sc_model *m);

/* Image embeddings: pixels [n,3,S,S] (S = image_size; borrowed) through the
 * vision tower, post_layernorm of the class token and visual_projection, to
 * embeds [n, projection_dim] (caller-allocated host memory). The caller
 * adds m->ws to nn once (sdrt_nn_add_weight_store) so device copies stay
 * resident between calls. Returns 0, or -1 with err (the nn context's
 * failure: cancelled, device memory). */
int sc_model_embed(const sc_model *m, sdrt_nn *nn, const float *pixels, int n, float *embeds, char *err,
                   size_t errlen);

/* ---- safety_concepts.c ---- */

/* One image's verdict as StableDiffusionSafetyChecker.forward computes it. */
typedef struct sc_verdict {
    float *special_scores;  /* [n_special]: cos - threshold + adjustment so far (float32 as diffusers) */
    float *concept_scores;  /* [n_concepts]: cos - threshold + adjustment */
    int special_care;       /* a special-care concept fired: +0.01 on later scores */
    int nsfw;               /* a concept score rounded to 3 decimals is > 0 */
} sc_verdict;

/* Scores the embedding `embed` [projection_dim] (borrowed) against the
 * model's concepts into v (arrays caller-allocated). A score counts when
 * round(score, 3) > 0, exactly as diffusers (which rounds half to even). */
void sc_concepts_score(const sc_model *m, const float *embed, sc_verdict *v);
/* diffusers' rule for one score: round(s, 3) > 0. */
int sc_score_fires(float s);

#endif
