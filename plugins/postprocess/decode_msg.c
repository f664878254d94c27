/* decode_msg.c - the postprocess.decode message:
 *   {model_id, latents: "<path>.npy", output: {dir, prefix}, tiling: "auto"|"on"|"off",
 *    precision: "auto"|"f32"|"f16"|"bf16"|"int8"}
 *   -> {images: [paths], width, height}
 * Decodes saved latents (inference.run with output.save_latents) into PNGs. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"
#include "sdrt/npy.h"

typedef struct decode_req {
    const char *model_id;
    const char *latents;
    const char *dir;
    const char *prefix;
    int tiling;
    const char *precision; /* NULL = the plugin's default */
} decode_req;

static sdrt_error *bad(pp_plugin *p, const char *field, const char *why) {
    return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "%s: %s", field, why);
}

static sdrt_error *parse_tiling(pp_plugin *p, const cJSON *t, int *out) {
    *out = SDRT_VAE_TILING_AUTO;
    if (!t) return NULL;
    if (cJSON_IsBool(t)) {
        *out = cJSON_IsTrue(t) ? SDRT_VAE_TILING_ON : SDRT_VAE_TILING_OFF;
        return NULL;
    }
    if (!cJSON_IsString(t)) return bad(p, "tiling", "must be \"auto\", \"on\", \"off\" or a boolean");
    if (strcmp(t->valuestring, "on") == 0) *out = SDRT_VAE_TILING_ON;
    else if (strcmp(t->valuestring, "off") == 0) *out = SDRT_VAE_TILING_OFF;
    else if (strcmp(t->valuestring, "auto") != 0) return bad(p, "tiling", "must be \"auto\", \"on\" or \"off\"");
    return NULL;
}

static sdrt_error *parse(pp_plugin *p, const cJSON *d, decode_req *r) {
    memset(r, 0, sizeof *r);
    /* vae (a VAE folder or a model with one) decodes when given; else
     * model_id's own VAE. */
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(d, "vae");
    if (f && (!cJSON_IsString(f) || !f->valuestring[0])) return bad(p, "vae", "must be a non-empty string");
    if (f) r->model_id = f->valuestring;
    f = cJSON_GetObjectItemCaseSensitive(d, "model_id");
    if (f && (!cJSON_IsString(f) || !f->valuestring[0])) return bad(p, "model_id", "must be a non-empty string");
    if (!r->model_id && !f) return bad(p, "model_id", "required string (or vae)");
    if (!r->model_id) r->model_id = f->valuestring;
    f = cJSON_GetObjectItemCaseSensitive(d, "latents");
    if (!cJSON_IsString(f) || !f->valuestring[0]) return bad(p, "latents", "required string (path of a .npy file)");
    r->latents = f->valuestring;
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(d, "output");
    if (out && !cJSON_IsObject(out)) return bad(p, "output", "must be an object");
    f = cJSON_GetObjectItemCaseSensitive(out, "dir");
    if (f && !cJSON_IsString(f)) return bad(p, "output.dir", "must be a string");
    r->dir = f ? f->valuestring : "outputs";
    f = cJSON_GetObjectItemCaseSensitive(out, "prefix");
    if (f && !cJSON_IsString(f)) return bad(p, "output.prefix", "must be a string");
    r->prefix = f ? f->valuestring : "decode";
    f = cJSON_GetObjectItemCaseSensitive(d, "precision");
    if (f && !cJSON_IsNull(f)) {
        char msg[200];
        sdrt_precision v;
        if (!cJSON_IsString(f)) return bad(p, "precision", "must be a string: " SDRT_PRECISION_CHOICES);
        if (sdrt_precision_parse(f->valuestring, "precision", &v, msg, sizeof msg) != SDRT_OK)
            return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "%s", msg);
        r->precision = f->valuestring;
    }
    return parse_tiling(p, cJSON_GetObjectItemCaseSensitive(d, "tiling"), &r->tiling);
}

/* Reads the latents file (inside the output roots) as [B,C,H,W]. */
static sdrt_error *read_latents(pp_plugin *p, const char *path, float **data, int64_t *shape) {
    sdrt_error *e = NULL;
    char *abs = p->api->resolve_path(p->host, "output", path, &e);
    if (!abs) return pp_field_error(p, e, "latents", path);
    int64_t s[SDRT_NPY_MAX_DIMS];
    int ndim = 0;
    char err[512];
    int rc = sdrt_npy_read_f32(abs, data, s, &ndim, err, sizeof err);
    p->api->free(abs);
    if (rc) return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "latents: %s", err);
    if (ndim != 3 && ndim != 4) {
        free(*data);
        *data = NULL;
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "latents: %d dims, expected [B,C,H,W] or [C,H,W]", ndim);
    }
    int off = ndim == 3;
    shape[0] = off ? 1 : s[0];
    for (int i = 0; i < 3; i++) shape[i + 1] = s[i + 1 - off];
    for (int i = 0; i < 4; i++)
        if (shape[i] < 1 || shape[i] > 4096) {
            free(*data);
            *data = NULL;
            return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "latents: dimension %d of size %lld is out of range", i,
                                     (long long)shape[i]);
        }
    return NULL;
}

/* Writes each image and builds the result object. */
static sdrt_error *write_all(pp_plugin *p, const decode_req *r, const sdrt_request *req, const float *rgb,
                             int n, int h, int w, char **result_json) {
    cJSON *res = cJSON_CreateObject(), *imgs = cJSON_AddArrayToObject(res, "images");
    sdrt_error *e = NULL;
    for (int i = 0; i < n && !e; i++) {
        char *path = NULL;
        e = pp_write_png(p, rgb + (size_t)i * h * w * 3, h, w, r->dir, r->prefix, NULL, req->data_json, &path);
        if (!e) cJSON_AddItemToArray(imgs, cJSON_CreateString(path));
        free(path);
    }
    cJSON_AddNumberToObject(res, "width", w);
    cJSON_AddNumberToObject(res, "height", h);
    char *txt = e ? NULL : cJSON_PrintUnformatted(res);
    cJSON_Delete(res);
    if (e) return e;
    size_t len = txt ? strlen(txt) + 1 : 0;
    *result_json = txt ? p->api->alloc(len) : NULL;
    if (!*result_json) {
        free(txt);
        return p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "postprocess.decode: out of memory");
    }
    memcpy(*result_json, txt, len);
    free(txt);
    return NULL;
}

static sdrt_error *decode_with_model(pp_plugin *p, const decode_req *r, const sdrt_request *req,
                                     const float *lat, const int64_t *shape, char **result_json) {
    const sdrt_model_iface *mi;
    sdrt_error *e = pp_model(p, &mi);
    sdrt_model *m = NULL;
    if (!e) e = mi->open(mi->self, r->model_id, req->job, &m);
    if (e) return e;
    sdrt_vae_options opt;
    sdrt_vae_options_init(&opt);
    opt.tiling = r->tiling;
    opt.precision = r->precision;
    float *rgb = NULL;
    int h = 0, w = 0, n = (int)shape[0];
    e = pp_decode(p, m, lat, n, (int)shape[1], (int)shape[2], (int)shape[3], &opt, req->job, &rgb, &h, &w);
    mi->close(mi->self, m);
    if (!e) e = write_all(p, r, req, rgb, n, h, w, result_json);
    free(rgb);
    return e;
}

sdrt_error *pp_handle_decode(pp_plugin *p, const sdrt_request *req, char **result_json) {
    cJSON *d = cJSON_Parse(req->data_json);
    if (!cJSON_IsObject(d)) {
        cJSON_Delete(d);
        return bad(p, "data", "must be a JSON object");
    }
    decode_req r;
    float *lat = NULL;
    int64_t shape[4];
    sdrt_error *e = parse(p, d, &r);
    if (!e) e = read_latents(p, r.latents, &lat, shape);
    if (!e) e = decode_with_model(p, &r, req, lat, shape, result_json);
    free(lat);
    cJSON_Delete(d);
    return e;
}
