/* plugins/inference/quality.h - "quality": "fast" | "balanced" | "high"
 * presets (the old workers' README): sampler, steps and CFG scale chosen
 * for the model family, each only where the request does not set it. */
#ifndef SDRT_INFER_QUALITY_H
#define SDRT_INFER_QUALITY_H

#include "request.h"

/* 1 when `name` is a preset word. */
int infer_quality_known(const char *name);
/* Fills r's scheduler, steps and guidance_scale from r->quality for the
 * architecture `arch` ("sd1", "sd2", "sdxl", "sdxl-refiner"; other or NULL:
 * the SD1 row), leaving every field the request gave. No-op without a
 * preset. */
void infer_quality_apply(infer_request *r, const char *arch);

#endif
