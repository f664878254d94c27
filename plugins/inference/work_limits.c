/* plugins/inference/work_limits.c - work limits of one request (work_limits.h). */
#include "work_limits.h"

#include <stdio.h>

#include <cjson/cJSON.h>

static int read_positive(const cJSON *cfg, const char *key, double max, double *out, char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || v->valuedouble > max) {
        snprintf(err, errlen, "inference config: %s must be a positive number (at most %g)", key, max);
        return -1;
    }
    *out = v->valuedouble;
    return 0;
}

sdrt_status infer_limits_parse(const char *config_json, infer_limits *l, char *err, size_t errlen) {
    l->max_image_megapixels = INFER_DEFAULT_MAX_IMAGE_MEGAPIXELS;
    l->max_work = INFER_DEFAULT_MAX_WORK;
    l->max_batch_items = INFER_DEFAULT_MAX_BATCH_ITEMS;
    l->max_batch_work = INFER_DEFAULT_MAX_BATCH_WORK;
    cJSON *cfg = config_json ? cJSON_Parse(config_json) : NULL;
    if (!cfg) return SDRT_OK;
    double items = l->max_batch_items;
    int rc = read_positive(cfg, "max_image_megapixels", 67.2, &l->max_image_megapixels, err, errlen);
    if (!rc) rc = read_positive(cfg, "max_work_megapixel_steps", 1e12, &l->max_work, err, errlen);
    if (!rc) rc = read_positive(cfg, "max_batch_items", 256, &items, err, errlen);
    if (!rc) rc = read_positive(cfg, "max_batch_work_megapixel_steps", 1e13, &l->max_batch_work, err, errlen);
    l->max_batch_items = (int)items;
    cJSON_Delete(cfg);
    return rc ? SDRT_INVALID_ARGUMENT : SDRT_OK;
}

infer_limits infer_limits_or_default(const infer_limits *in) {
    infer_limits l = *in;
    if (!(l.max_image_megapixels > 0)) l.max_image_megapixels = INFER_DEFAULT_MAX_IMAGE_MEGAPIXELS;
    if (!(l.max_work > 0)) l.max_work = INFER_DEFAULT_MAX_WORK;
    if (l.max_batch_items <= 0) l.max_batch_items = INFER_DEFAULT_MAX_BATCH_ITEMS;
    if (!(l.max_batch_work > 0)) l.max_batch_work = INFER_DEFAULT_MAX_BATCH_WORK;
    return l;
}

static int side(int v) { return v > 0 ? v : 1024; }

double infer_work_estimate(const infer_request *r) {
    double mp = (double)side(r->width) * side(r->height) / 1e6;
    int guided = !(r->guidance_scale >= 0 && r->guidance_scale <= 1.0);
    return (double)r->batch_size * mp * r->steps * (guided ? 2 : 1);
}

sdrt_status infer_limits_check(const infer_limits *lim, const infer_request *r, char *err, size_t errlen) {
    infer_limits eff = infer_limits_or_default(lim);
    const infer_limits *l = &eff;
    double mp = (double)side(r->width) * side(r->height) / 1e6;
    if (mp > l->max_image_megapixels) {
        snprintf(err, errlen,
                 "width x height: %dx%d is %.1f megapixels, above the limit of %g (max_image_megapixels in the "
                 "inference plugin's config)",
                 side(r->width), side(r->height), mp, l->max_image_megapixels);
        return SDRT_INVALID_ARGUMENT;
    }
    double work = infer_work_estimate(r);
    if (work > l->max_work) {
        snprintf(err, errlen,
                 "batch_size x width x height x num_inference_steps: %d x %dx%d x %d%s = %.0f megapixel-steps, above "
                 "the limit of %g (max_work_megapixel_steps in the inference plugin's config)",
                 r->batch_size, side(r->width), side(r->height), r->steps,
                 work > (double)r->batch_size * mp * r->steps ? " x 2 (guidance)" : "", work, l->max_work);
        return SDRT_INVALID_ARGUMENT;
    }
    return SDRT_OK;
}
