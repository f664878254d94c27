/* plugins/inference/response.h - what an inference.run leaves behind: the
 * optional latent files and the response JSON. */
#ifndef SDRT_INFERENCE_RESPONSE_H
#define SDRT_INFERENCE_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

#include "sdrt/plugin.h"

/* One generated image. Strings are malloc'd and owned by the struct. */
typedef struct infer_output {
    char *image_path;    /* absolute PNG path */
    char *latents_path;  /* .npy beside it, or NULL */
    int safety_checked;  /* the safety checker ran on it */
    int nsfw;            /* its verdict (has_nsfw_concept) */
} infer_output;

/* Writes latents [1, c, h, w] as float32 .npy next to `png_path`
 * ("x.png" -> "x.latents.npy"), so it lands in the same checked output
 * directory. Returns 0 and sets *out_path (malloc'd), or -1 with err. */
int infer_write_latents(const char *png_path, const float *latents, int c, int h, int w, char **out_path,
                        char *err, size_t errlen);

/* The response data object: {images, processing_time, seed, images_info:
 * [{path, seed, width, height, nsfw_content_detected?}], latents (when any),
 * nsfw_content_detected (per image, when the safety checker ran), batch_split (images
 * per UNet call, when sub_batch > 0 split the n images), metrics:
 * {weight_bytes_uploaded: weight bytes copied to a device for this request
 * by any plugin; 0 on host-memory devices and once weights are resident}}.
 * Returns text allocated with api->alloc, or NULL when out of memory. */
char *infer_response_json(const sdrt_host_api *api, const infer_output *outs, int n, uint64_t seed, int width,
                          int height, double processing_time, int sub_batch, uint64_t weight_bytes_uploaded);

void infer_outputs_free(infer_output *outs, int n);

#endif /* SDRT_INFERENCE_RESPONSE_H */
