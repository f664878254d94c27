/* plugins/inference/hires.c - see hires.h. */
#define _POSIX_C_SOURCE 200809L
#include "hires.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;         /* request spelling */
    const char *a1111;        /* A1111 spelling (infotext) */
    infer_hr_upscaler kind;
} k_upscalers[] = {
    {"latent", "Latent", INFER_HR_LATENT},
    {"latent-bicubic", "Latent (bicubic)", INFER_HR_LATENT_BICUBIC},
    {"latent-nearest", "Latent (nearest)", INFER_HR_LATENT_NEAREST},
    {"lanczos", "Lanczos", INFER_HR_LANCZOS},
    {"nearest", "Nearest", INFER_HR_NEAREST},
};
#define N_UPSCALERS (sizeof k_upscalers / sizeof k_upscalers[0])

static sdrt_status fail(char *err, size_t errlen, sdrt_status st, const char *fmt, const char *a, double v) {
    char msg[300];
    snprintf(msg, sizeof msg, fmt, a ? a : "", v);
    snprintf(err, errlen, "%s", msg);
    return st;
}

static const cJSON *item(const cJSON *o, const char *k) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    return it && !cJSON_IsNull(it) ? it : NULL;
}

static sdrt_status get_int(const cJSON *it, const char *field, int lo, int hi, int *out, char *err, size_t errlen) {
    if (!it) return SDRT_OK;
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < lo || it->valuedouble > hi) {
        char fmt[128];
        snprintf(fmt, sizeof fmt, "%%s: must be an integer in [%d, %d]", lo, hi);
        return fail(err, errlen, SDRT_INVALID_ARGUMENT, fmt, field, 0);
    }
    *out = (int)it->valuedouble;
    return SDRT_OK;
}

static sdrt_status get_num(const cJSON *it, const char *field, double lo, double hi, double *out, char *err,
                           size_t errlen) {
    if (!it) return SDRT_OK;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || !(it->valuedouble > lo) || it->valuedouble > hi) {
        char fmt[128];
        snprintf(fmt, sizeof fmt, "%%s: must be a number in (%g, %g]", lo, hi);
        return fail(err, errlen, SDRT_INVALID_ARGUMENT, fmt, field, 0);
    }
    *out = it->valuedouble;
    return SDRT_OK;
}

static sdrt_status get_upscaler(const cJSON *it, const char *field, infer_hires *h, char *err, size_t errlen) {
    const char *s = "latent";
    if (it) {
        if (!cJSON_IsString(it)) return fail(err, errlen, SDRT_INVALID_ARGUMENT, "%s: must be a string", field, 0);
        s = it->valuestring;
    }
    for (size_t i = 0; i < N_UPSCALERS; i++)
        if (strcmp(s, k_upscalers[i].name) == 0 || strcmp(s, k_upscalers[i].a1111) == 0) {
            h->upscaler = k_upscalers[i].kind;
            h->upscaler_name = strdup(k_upscalers[i].a1111);
            return h->upscaler_name ? SDRT_OK : fail(err, errlen, SDRT_RESOURCE_EXHAUSTED, "%s: out of memory", field, 0);
        }
    if (strncmp(s, "Latent", 6) == 0) {
        snprintf(err, errlen, "%s: \"%s\" is not supported (latent modes: Latent, Latent (bicubic), Latent (nearest))",
                 field, s);
        return SDRT_UNSUPPORTED;
    }
    if (!s[0]) return fail(err, errlen, SDRT_INVALID_ARGUMENT, "%s: must not be empty", field, 0);
    h->upscaler = INFER_HR_MODEL;
    h->upscaler_name = strdup(s);
    return h->upscaler_name ? SDRT_OK : fail(err, errlen, SDRT_RESOURCE_EXHAUSTED, "%s: out of memory", field, 0);
}

sdrt_status infer_hires_parse(const cJSON *root, infer_hires *h, char *err, size_t errlen) {
    memset(h, 0, sizeof *h);
    h->scale = 2.0;
    h->denoising_strength = 0.7;
    const cJSON *obj = item(root, "hires"), *en = item(root, "enable_hr");
    if (en && !cJSON_IsBool(en)) return fail(err, errlen, SDRT_INVALID_ARGUMENT, "enable_hr: must be true or false", NULL, 0);
    if (obj && !cJSON_IsObject(obj)) return fail(err, errlen, SDRT_INVALID_ARGUMENT, "hires: must be an object", NULL, 0);
    if (obj && cJSON_IsTrue(en))
        return fail(err, errlen, SDRT_INVALID_ARGUMENT, "hires: give either hires{} or enable_hr, not both", NULL, 0);
    sdrt_status st = SDRT_OK;
    if (obj) {
        h->enabled = 1;
        if (item(obj, "scale") && (item(obj, "width") || item(obj, "height")))
            return fail(err, errlen, SDRT_INVALID_ARGUMENT, "hires.scale: give either scale or width/height", NULL, 0);
        if (!st) st = get_num(item(obj, "scale"), "hires.scale", 0.0, 8.0, &h->scale, err, errlen);
        if (!st) st = get_int(item(obj, "width"), "hires.width", 0, 8192, &h->resize_x, err, errlen);
        if (!st) st = get_int(item(obj, "height"), "hires.height", 0, 8192, &h->resize_y, err, errlen);
        if (!st) st = get_upscaler(item(obj, "upscaler"), "hires.upscaler", h, err, errlen);
        if (!st) st = get_int(item(obj, "steps"), "hires.steps", 0, 1000, &h->steps, err, errlen);
        if (!st) st = get_num(item(obj, "denoising_strength"), "hires.denoising_strength", 0.0, 1.0,
                              &h->denoising_strength, err, errlen);
    } else if (cJSON_IsTrue(en)) {
        h->enabled = 1;
        st = get_num(item(root, "hr_scale"), "hr_scale", 0.0, 8.0, &h->scale, err, errlen);
        if (!st) st = get_int(item(root, "hr_resize_x"), "hr_resize_x", 0, 8192, &h->resize_x, err, errlen);
        if (!st) st = get_int(item(root, "hr_resize_y"), "hr_resize_y", 0, 8192, &h->resize_y, err, errlen);
        if (!st) st = get_upscaler(item(root, "hr_upscaler"), "hr_upscaler", h, err, errlen);
        if (!st) st = get_int(item(root, "hr_second_pass_steps"), "hr_second_pass_steps", 0, 1000, &h->steps, err, errlen);
        if (!st) st = get_num(item(root, "denoising_strength"), "denoising_strength", 0.0, 1.0, &h->denoising_strength,
                              err, errlen);
    }
    if (st) infer_hires_free(h);
    return st;
}

void infer_hires_free(infer_hires *h) {
    free(h->upscaler_name);
    h->upscaler_name = NULL;
}

int infer_hires_target(const infer_hires *h, int w, int hp, int max, int *tw, int *th, int *crop_x, int *crop_y,
                       char *err, size_t errlen) {
    long x, y;
    *crop_x = *crop_y = 0;
    if (!h->resize_x && !h->resize_y) {
        x = (long)(w * h->scale);
        y = (long)(hp * h->scale);
    } else if (!h->resize_y) {
        x = h->resize_x;
        y = (long)h->resize_x * hp / w;
    } else if (!h->resize_x) {
        x = (long)h->resize_y * w / hp;
        y = h->resize_y;
    } else {
        /* Cover the requested box keeping the aspect, then crop. */
        double src = (double)w / hp, dst = (double)h->resize_x / h->resize_y;
        if (src < dst) {
            x = h->resize_x;
            y = (long)h->resize_x * hp / w;
        } else {
            x = (long)h->resize_y * w / hp;
            y = h->resize_y;
        }
        *crop_x = (int)(x / 8 * 8 - h->resize_x / 8 * 8);
        *crop_y = (int)(y / 8 * 8 - h->resize_y / 8 * 8);
    }
    x = x / 8 * 8;
    y = y / 8 * 8;
    if (x < 8 || y < 8 || x > max || y > max) {
        snprintf(err, errlen, "hires: target size %ldx%ld is out of range [8, %d]", x, y, max);
        return -1;
    }
    *tw = (int)x;
    *th = (int)y;
    return 0;
}

/* ---- torch.nn.functional.interpolate (upsample_*2d, align_corners=False) ---- */

static double cubic1(double x, double a) { return ((a + 2) * x - (a + 3)) * x * x + 1; }
static double cubic2(double x, double a) { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a; }

static int clampi(int v, int n) { return v < 0 ? 0 : v >= n ? n - 1 : v; }

void infer_latent_resize(const float *in, int n, int c, int ih, int iw, float *out, int oh, int ow,
                         infer_hr_upscaler mode) {
    /* torch's scale when size (not scale_factor) is given: in / out. */
    double sy = (double)ih / oh, sx = (double)iw / ow;
    for (int p = 0; p < n * c; p++) {
        const float *src = in + (size_t)p * ih * iw;
        float *dst = out + (size_t)p * oh * ow;
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                float v;
                if (mode == INFER_HR_LATENT_NEAREST) {
                    /* torch "nearest": floor(dst * scale), clamped. */
                    int yi = clampi((int)floorf((float)(y * (float)sy)), ih), xi = clampi((int)floorf((float)(x * (float)sx)), iw);
                    v = src[(size_t)yi * iw + xi];
                } else if (mode == INFER_HR_LATENT_BICUBIC) {
                    double fy = (y + 0.5) * sy - 0.5, fx = (x + 0.5) * sx - 0.5;
                    int y0 = (int)floor(fy), x0 = (int)floor(fx);
                    double ty = fy - y0, tx = fx - x0, A = -0.75;
                    double wy[4] = {cubic2(ty + 1, A), cubic1(ty, A), cubic1(1 - ty, A), cubic2(2 - ty, A)};
                    double wx[4] = {cubic2(tx + 1, A), cubic1(tx, A), cubic1(1 - tx, A), cubic2(2 - tx, A)};
                    double acc = 0;
                    for (int j = 0; j < 4; j++) {
                        const float *row = src + (size_t)clampi(y0 - 1 + j, ih) * iw;
                        double r = 0;
                        for (int i = 0; i < 4; i++) r += wx[i] * row[clampi(x0 - 1 + i, iw)];
                        acc += wy[j] * r;
                    }
                    v = (float)acc;
                } else {
                    double fy = (y + 0.5) * sy - 0.5, fx = (x + 0.5) * sx - 0.5;
                    if (fy < 0) fy = 0;
                    if (fx < 0) fx = 0;
                    int y0 = (int)fy, x0 = (int)fx;
                    int y1 = y0 + 1 < ih ? y0 + 1 : y0, x1 = x0 + 1 < iw ? x0 + 1 : x0;
                    double ly = fy - y0, lx = fx - x0;
                    v = (float)((1 - ly) * ((1 - lx) * src[(size_t)y0 * iw + x0] + lx * src[(size_t)y0 * iw + x1]) +
                                ly * ((1 - lx) * src[(size_t)y1 * iw + x0] + lx * src[(size_t)y1 * iw + x1]));
                }
                dst[(size_t)y * ow + x] = v;
            }
    }
}
