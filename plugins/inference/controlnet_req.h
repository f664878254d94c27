/* plugins/inference/controlnet_req.h - the "controlnet" field of
 * inference.run:
 *   "controlnet": [{"model_id", "image", "conditioning_scale" (1.0),
 *                   "guidance_start" (0), "guidance_end" (1),
 *                   "preprocess" ("none" | "canny"), "low_threshold" (100),
 *                   "high_threshold" (200)}, ...], "guess_mode": false
 * Several entries are summed as diffusers' MultiControlNetModel does. */
#ifndef SDRT_INFERENCE_CONTROLNET_REQ_H
#define SDRT_INFERENCE_CONTROLNET_REQ_H

#include <stddef.h>

#include "sdrt/status.h"

#define INFER_MAX_CONTROLNETS 8

typedef struct infer_cn_req {
    char *model_id;
    char *image;              /* a path under the roots or a data: URI */
    double scale;             /* conditioning_scale */
    double start, end;        /* guidance window, fractions of the steps */
    int canny;                /* preprocess "canny": cv2.Canny on the image first */
    double low, high;         /* its thresholds (low_threshold 100, high_threshold 200) */
} infer_cn_req;

typedef struct infer_cn_reqs {
    infer_cn_req *v;
    size_t n;
    int guess_mode;
} infer_cn_reqs;

struct cJSON;
/* Reads the fields from the request object `root` (borrowed). Returns
 * SDRT_OK (no field: n 0), INVALID_ARGUMENT naming the field
 * ("controlnet[1].guidance_end: ..."), or UNSUPPORTED for a preprocessor
 * other than "none" and "canny" (naming it: the others need detector
 * models). Free with infer_cn_reqs_free. */
sdrt_status infer_cn_reqs_parse(const struct cJSON *root, infer_cn_reqs *out, char *err, size_t errlen);
void infer_cn_reqs_free(infer_cn_reqs *r);

#endif
