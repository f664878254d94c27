/* safety_prep.c - transformers' CLIPImageProcessor as the PIL backend runs
 * it (CLIPImageProcessorPil; the CLIPImageProcessor of transformers 4 that
 * the SD pipelines shipped with): resize the short side with Pillow's
 * filter on the 8-bit image, center crop, x * rescale_factor, then
 * (x - mean) / std per channel, as float32 [3,H,W]. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safety.h"

#define FE "feature_extractor/preprocessor_config.json"

static int bad(char *err, size_t errlen, const char *key, const char *why) {
    snprintf(err, errlen, FE ": %s %s", key, why);
    return -1;
}

static int get_bool(const cJSON *j, const char *key, int def, int *out, char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) return *out = def, 0;
    if (!cJSON_IsBool(v)) return bad(err, errlen, key, "must be true or false");
    *out = cJSON_IsTrue(v);
    return 0;
}

static int side(const cJSON *v, const char *key, const char *sub, int *out, char *err, size_t errlen) {
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1 || v->valuedouble > 4096) {
        char k[96];
        snprintf(k, sizeof k, "%s%s%s", key, sub ? "." : "", sub ? sub : "");
        return bad(err, errlen, k, "must be an integer in [1, 4096]");
    }
    *out = (int)v->valuedouble;
    return 0;
}

/* "size": 224 | {"shortest_edge": 224} | {"height": h, "width": w}. */
static int parse_size(const cJSON *j, sc_prep *p, char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "size");
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsNumber(v)) return side(v, "size", NULL, &p->shortest_edge, err, errlen);
    if (!cJSON_IsObject(v)) return bad(err, errlen, "size", "must be an integer or an object");
    const cJSON *se = cJSON_GetObjectItemCaseSensitive(v, "shortest_edge");
    if (se) return side(se, "size", "shortest_edge", &p->shortest_edge, err, errlen);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(v, "height"), *w = cJSON_GetObjectItemCaseSensitive(v, "width");
    if (!h || !w) return bad(err, errlen, "size", "needs shortest_edge, or height and width");
    p->shortest_edge = 0;
    return side(h, "size", "height", &p->size_h, err, errlen) || side(w, "size", "width", &p->size_w, err, errlen);
}

static int parse_crop(const cJSON *j, sc_prep *p, char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "crop_size");
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsNumber(v)) {
        if (side(v, "crop_size", NULL, &p->crop_h, err, errlen)) return -1;
        p->crop_w = p->crop_h;
        return 0;
    }
    if (!cJSON_IsObject(v)) return bad(err, errlen, "crop_size", "must be an integer or an object");
    return side(cJSON_GetObjectItemCaseSensitive(v, "height"), "crop_size", "height", &p->crop_h, err, errlen) ||
           side(cJSON_GetObjectItemCaseSensitive(v, "width"), "crop_size", "width", &p->crop_w, err, errlen);
}

/* image_mean / image_std: a number or 3 numbers (std non-zero). */
static int parse_triple(const cJSON *j, const char *key, float out[3], int positive, char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) return 0;
    for (int c = 0; c < 3; c++) {
        const cJSON *e = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, c) : v;
        if ((cJSON_IsArray(v) && cJSON_GetArraySize(v) != 3) || !cJSON_IsNumber(e) || !isfinite(e->valuedouble) ||
            (positive && !(e->valuedouble > 0)))
            return bad(err, errlen, key, positive ? "must be 3 positive numbers" : "must be 3 numbers");
        out[c] = (float)e->valuedouble;
    }
    return 0;
}

int sc_prep_parse(const char *json, sc_prep *p, char *err, size_t errlen) {
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f}, std[3] = {0.26862954f, 0.26130258f,
                                                                                   0.27577711f};
    *p = (sc_prep){.do_resize = 1, .shortest_edge = 224, .filter = SDRT_RESAMPLE_BICUBIC, .do_center_crop = 1,
                   .crop_h = 224, .crop_w = 224, .do_rescale = 1, .rescale_factor = 1.0 / 255, .do_normalize = 1};
    memcpy(p->mean, mean, sizeof mean);
    memcpy(p->std, std, sizeof std);
    cJSON *j = json ? cJSON_Parse(json) : NULL;
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        snprintf(err, errlen, FE ": not a JSON object");
        return -1;
    }
    int rc = get_bool(j, "do_resize", 1, &p->do_resize, err, errlen) ||
             get_bool(j, "do_center_crop", 1, &p->do_center_crop, err, errlen) ||
             get_bool(j, "do_rescale", 1, &p->do_rescale, err, errlen) ||
             get_bool(j, "do_normalize", 1, &p->do_normalize, err, errlen) || parse_size(j, p, err, errlen) ||
             parse_crop(j, p, err, errlen) || parse_triple(j, "image_mean", p->mean, 0, err, errlen) ||
             parse_triple(j, "image_std", p->std, 1, err, errlen);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "rescale_factor");
    if (!rc && v && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || !isfinite(v->valuedouble))
            rc = bad(err, errlen, "rescale_factor", "must be a positive number");
        else p->rescale_factor = v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "resample");
    if (!rc && v && !cJSON_IsNull(v)) {
        /* PIL's numbering: 0 NEAREST, 1 LANCZOS, 2 BILINEAR, 3 BICUBIC, 4 BOX, 5 HAMMING. */
        int r = cJSON_IsNumber(v) ? v->valueint : -1;
        if (r == 0) p->filter = SDRT_RESAMPLE_NEAREST;
        else if (r == 1) p->filter = SDRT_RESAMPLE_LANCZOS;
        else if (r == 3) p->filter = SDRT_RESAMPLE_BICUBIC;
        else rc = bad(err, errlen, "resample", "must be 3 (bicubic), 1 (lanczos) or 0 (nearest); others are not supported");
    }
    if (!rc && p->do_resize && p->shortest_edge > 0 && p->do_center_crop &&
        (p->crop_h > p->shortest_edge || p->crop_w > p->shortest_edge))
        rc = bad(err, errlen, "crop_size", "is larger than size.shortest_edge (the crop would need padding)");
    cJSON_Delete(j);
    return rc ? -1 : 0;
}

void sc_prep_out_size(const sc_prep *p, int *h, int *w) {
    if (p->do_center_crop) {
        *h = p->crop_h;
        *w = p->crop_w;
    } else if (p->do_resize && !p->shortest_edge) {
        *h = p->size_h;
        *w = p->size_w;
    } else {
        *h = *w = 0; /* depends on the image: refused by the caller */
    }
}

/* transformers' get_resize_output_image_size(default_to_square=False):
 * the short side becomes `edge`, the long one int(edge * long / short). */
static void resize_target(const sc_prep *p, int w, int h, int *nw, int *nh) {
    if (!p->shortest_edge) {
        *nw = p->size_w;
        *nh = p->size_h;
        return;
    }
    int s = w <= h ? w : h, l = w <= h ? h : w;
    int nl = (int)((double)p->shortest_edge * l / s);
    *nw = w <= h ? p->shortest_edge : nl;
    *nh = w <= h ? nl : p->shortest_edge;
}

int sc_prep_run(const sc_prep *p, const uint8_t *rgb, int w, int h, float *out, char *err, size_t errlen) {
    int oh, ow;
    sc_prep_out_size(p, &oh, &ow);
    const uint8_t *src = rgb;
    uint8_t *resized = NULL;
    int sw = w, sh = h;
    if (p->do_resize) {
        resize_target(p, w, h, &sw, &sh);
        /* PIL returns a copy for a same-size resize: no filter pass. */
        if (sw != w || sh != h) {
            resized = malloc((size_t)sw * sh * 3);
            if (!resized || sdrt_resample_u8(rgb, w, h, 3, NULL, p->filter, resized, sw, sh)) {
                free(resized);
                snprintf(err, errlen, "safety checker: out of memory resizing %dx%d to %dx%d", w, h, sw, sh);
                return -1;
            }
            src = resized;
        }
    }
    int top = 0, left = 0;
    if (p->do_center_crop) {
        if (sw < ow || sh < oh) {
            free(resized);
            snprintf(err, errlen, "safety checker: image %dx%d is smaller than the crop %dx%d", sw, sh, ow, oh);
            return -1;
        }
        top = (sh - oh) / 2;
        left = (sw - ow) / 2;
    } else if (sw != ow || sh != oh) {
        free(resized);
        snprintf(err, errlen, "safety checker: image %dx%d is not the model's %dx%d", sw, sh, ow, oh);
        return -1;
    }
    for (int c = 0; c < 3; c++) {
        float *o = out + (size_t)c * oh * ow;
        for (int y = 0; y < oh; y++) {
            const uint8_t *row = src + ((size_t)(top + y) * sw + left) * 3 + c;
            for (int x = 0; x < ow; x++) {
                /* float64 product cast to float32, then float32 arithmetic, as numpy does. */
                float v = p->do_rescale ? (float)(row[(size_t)x * 3] * p->rescale_factor) : (float)row[(size_t)x * 3];
                if (p->do_normalize) v = (v - p->mean[c]) / p->std[c];
                o[(size_t)y * ow + x] = v;
            }
        }
    }
    free(resized);
    return 0;
}
