/* plugins/inference/work_limits.h - how much work one request may ask for.
 *
 * Every size a request names is bounded on its own (request.c: 8192 px per
 * side, 1000 steps, batch 64, 32 adapters), but their product is what a
 * worker pays: batch_size x width x height x steps. These limits bound that
 * product by an estimate computed from the fields alone, before the model
 * opens or any step runs, and refuse beyond with INVALID_ARGUMENT naming the
 * limit and its config key. Config: the inference plugin's config object
 * (docs/protocol.md "Work limits"). */
#ifndef SDRT_INFERENCE_WORK_LIMITS_H
#define SDRT_INFERENCE_WORK_LIMITS_H

#include <stddef.h>

#include "request.h"
#include "sdrt/status.h"

typedef struct infer_limits {
    double max_image_megapixels; /* width x height / 1e6 of one image */
    double max_work;             /* megapixel-steps of one inference.run (see infer_work_estimate) */
    int max_batch_items;         /* requests[] of one inference.batch */
    double max_batch_work;       /* megapixel-steps of all items of one inference.batch */
} infer_limits;

#define INFER_DEFAULT_MAX_IMAGE_MEGAPIXELS 16.8 /* 4096 x 4096 */
#define INFER_DEFAULT_MAX_WORK 20000.0         /* e.g. 16 SDXL 1024x1024 images x 50 steps x CFG is 1678 */
#define INFER_DEFAULT_MAX_BATCH_ITEMS 256
#define INFER_DEFAULT_MAX_BATCH_WORK 100000.0

/* Defaults, then the keys found in `config_json` (borrowed; NULL = none):
 * max_image_megapixels, max_work_megapixel_steps, max_batch_items,
 * max_batch_work_megapixel_steps. SDRT_OK, or INVALID_ARGUMENT naming a key
 * that is not a positive number. */
sdrt_status infer_limits_parse(const char *config_json, infer_limits *l, char *err, size_t errlen);

/* `l` with every member that is 0 (not set: a zeroed struct, as tests
 * build) replaced by its default. */
infer_limits infer_limits_or_default(const infer_limits *l);

/* The estimate: batch_size x (width x height / 1e6) x steps x 2 (guided
 * requests run the UNet on two rows per image; unknown guidance counts as
 * guided), with a size the request leaves to the model counted as
 * 1024 x 1024 (the largest default of the supported models). A refiner
 * continues the same schedule, so its steps are within `steps`. */
double infer_work_estimate(const infer_request *r);

/* SDRT_OK, or INVALID_ARGUMENT with err naming the fields, the estimate,
 * the limit and its config key. Zero members of `l` mean the defaults. */
sdrt_status infer_limits_check(const infer_limits *l, const infer_request *r, char *err, size_t errlen);

#endif
