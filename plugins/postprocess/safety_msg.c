/* safety_msg.c - the safety checker as a service: the safety_check member
 * of sdrt.postprocess/1 (inference.run's "safety_checker") and the
 * postprocess.safety_check message:
 *   {image | images, model_id, safety_action: "black"|"flag", output: {dir, prefix}}
 *   -> {images: [{source, path, nsfw_content_detected, special_care,
 *                 concept_scores, special_scores, bad_concepts, width, height}],
 *       nsfw_content_detected: [..], safety_action}
 * Checkers are opened once per pipeline folder and kept until shutdown
 * (weights mapped, device copies resident), like the models they guard. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lookup.h"
#include "pp.h"
#include "safety.h"

#define SC_BATCH 8 /* images per network call: bounds activation memory */
#define SC_MAX_IMAGES 64

static sdrt_error *bad(pp_plugin *p, const char *field, const char *why) {
    return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "%s: %s", field, why);
}

/* The checker of pipeline folder `dir`, from the cache or opened (then
 * cached while there is room; else *owned = 1 and the caller closes it). */
static sdrt_error *checker(pp_plugin *p, const char *dir, const sc_model **out, int *owned) {
    *owned = 0;
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->n_safety; i++)
        if (strcmp(p->safety[i]->dir, dir) == 0) {
            *out = p->safety[i];
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
    pthread_mutex_unlock(&p->lock);
    lookup_cfg lc;
    if (lookup_init(&lc, p->api, p->host))
        return p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "safety_checker: out of memory");
    /* The folder's files must lie inside the model roots (or the Hugging
     * Face caches the model plugin trusts), symlinks included. */
    sdrt_file_scope scope = {.api = p->api, .host = p->host, .kind = "model", .extra_roots = lc.hf_dirs,
                             .n_extra_roots = lc.n_hf};
    sc_model *m = NULL;
    char err[700];
    sdrt_status st = sc_model_open(dir, &scope, &m, err, sizeof err);
    lookup_free(&lc);
    if (st != SDRT_OK) return p->api->error_new(st, NULL, "safety_checker: %s", err);
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->n_safety; i++)
        if (strcmp(p->safety[i]->dir, dir) == 0) { /* another thread was quicker */
            sc_model_close(m);
            *out = p->safety[i];
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
    if (p->n_safety < PP_SAFETY_CACHE) p->safety[p->n_safety++] = m;
    else *owned = 1;
    pthread_mutex_unlock(&p->lock);
    *out = m;
    return NULL;
}

void pp_safety_free_cache(pp_plugin *p) {
    for (int i = 0; i < p->n_safety; i++) sc_model_close(p->safety[i]);
    p->n_safety = 0;
}

/* Verdicts for n 8-bit images; v[i]'s score arrays point into *scores
 * (malloc'd, the caller frees). */
static sdrt_error *run_checker(pp_plugin *p, const sc_model *m, const uint8_t *const *rgb, const int *ws,
                               const int *hs, int n, sdrt_job *job, sc_verdict *v, float **scores) {
    int S = m->cfg.image_size, per = m->n_concepts + m->n_special, d = m->cfg.projection_dim;
    int chunk = n < SC_BATCH ? n : SC_BATCH;
    *scores = malloc((size_t)n * per * sizeof **scores);
    float *px = malloc((size_t)chunk * 3 * S * S * sizeof *px), *emb = malloc((size_t)chunk * d * sizeof *emb);
    const sdrt_backend_iface *bi = NULL;
    sdrt_error *e = !*scores || !px || !emb ? p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "safety_checker: out of memory")
                                            : pp_backend(p, &bi);
    sdrt_nn *nn = NULL;
    if (!e && !(nn = sdrt_nn_new(bi->default_device(bi->self), NULL, job ? p->api->is_cancelled : NULL, job)))
        e = p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "safety_checker: cannot create a compute context");
    if (nn && m->ws) sdrt_nn_add_weight_store(nn, m->ws);
    char err[512];
    for (int i0 = 0; !e && i0 < n; i0 += chunk) {
        int k = n - i0 < chunk ? n - i0 : chunk;
        for (int i = 0; !e && i < k; i++)
            if (sc_prep_run(&m->prep, rgb[i0 + i], ws[i0 + i], hs[i0 + i], px + (size_t)i * 3 * S * S, err, sizeof err))
                e = p->api->error_new(strstr(err, "out of memory") ? SDRT_RESOURCE_EXHAUSTED : SDRT_INVALID_ARGUMENT,
                                      NULL, "%s", err);
        if (!e && sc_model_embed(m, nn, px, k, emb, err, sizeof err)) {
            sdrt_status st = sdrt_nn_status(nn, NULL);
            e = p->api->error_new(st == SDRT_OK ? SDRT_INTERNAL : st, NULL, "%s", err);
        }
        for (int i = 0; !e && i < k; i++) {
            sc_verdict *vi = &v[i0 + i];
            vi->special_scores = *scores + (size_t)(i0 + i) * per;
            vi->concept_scores = vi->special_scores + m->n_special;
            sc_concepts_score(m, emb + (size_t)i * d, vi);
        }
        if (!e && job) {
            sdrt_progress pr = {SDRT_STRUCT_SIZE(sdrt_progress, message), (double)(i0 + k) / n, "safety_check", i0 + k,
                                n, "safety checker"};
            p->api->progress(job, &pr);
        }
    }
    sdrt_nn_free(nn);
    free(px);
    free(emb);
    if (e) {
        free(*scores);
        *scores = NULL;
    }
    return e;
}

static cJSON *floats(const float *x, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(x[i]));
    return a;
}

/* {nsfw_content_detected, special_care, concept_scores, special_scores, bad_concepts}. */
static cJSON *verdict_json(const sc_model *m, const sc_verdict *v) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "nsfw_content_detected", v->nsfw);
    cJSON_AddBoolToObject(o, "special_care", v->special_care);
    cJSON_AddItemToObject(o, "concept_scores", floats(v->concept_scores, m->n_concepts));
    cJSON_AddItemToObject(o, "special_scores", floats(v->special_scores, m->n_special));
    cJSON *badc = cJSON_AddArrayToObject(o, "bad_concepts");
    for (int k = 0; k < m->n_concepts; k++)
        if (sc_score_fires(v->concept_scores[k])) cJSON_AddItemToArray(badc, cJSON_CreateNumber(k));
    return o;
}

sdrt_error *pp_safety_check(void *self, sdrt_model *model, float *rgb, int batch, int h, int w, int black_out,
                            sdrt_job *job, int *nsfw, char **details_json) {
    pp_plugin *p = self;
    if (details_json) *details_json = NULL;
    if (!model || (batch != 0 && (!rgb || !nsfw || batch < 1 || h < 1 || w < 1)))
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "safety_checker: model, images and nsfw are required");
    const sdrt_model_iface *mi = NULL;
    sdrt_error *e = pp_model(p, &mi);
    if (e) return e;
    const sc_model *m = NULL;
    int owned = 0;
    if ((e = checker(p, mi->id(model), &m, &owned))) return e;
    if (batch == 0) { /* the preflight: the checker opened and checked */
        if (owned) sc_model_close((sc_model *)m);
        return NULL;
    }
    size_t px = (size_t)h * w * 3;
    uint8_t *u8 = malloc((size_t)batch * px);
    const uint8_t **rows = calloc((size_t)batch, sizeof *rows);
    int *ws = calloc((size_t)batch, sizeof *ws), *hs = calloc((size_t)batch, sizeof *hs);
    sc_verdict *v = calloc((size_t)batch, sizeof *v);
    float *scores = NULL;
    if (!u8 || !rows || !ws || !hs || !v) e = p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "safety_checker: out of memory");
    for (int i = 0; !e && i < batch; i++) {
        /* The checker sees the 8-bit image that is written (diffusers: numpy_to_pil). */
        pp_rgb_to_u8(rgb + i * px, px, u8 + i * px);
        rows[i] = u8 + i * px;
        ws[i] = w;
        hs[i] = h;
    }
    if (!e) e = run_checker(p, m, rows, ws, hs, batch, job, v, &scores);
    cJSON *arr = !e && details_json ? cJSON_CreateArray() : NULL;
    for (int i = 0; !e && i < batch; i++) {
        nsfw[i] = v[i].nsfw;
        if (v[i].nsfw && black_out) memset(rgb + i * px, 0, px * sizeof *rgb);
        if (arr) cJSON_AddItemToArray(arr, verdict_json(m, &v[i]));
    }
    if (arr) {
        *details_json = cJSON_PrintUnformatted(arr);
        cJSON_Delete(arr);
        if (!*details_json) e = p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "safety_checker: out of memory");
    }
    if (owned) sc_model_close((sc_model *)m);
    free(scores);
    free(v);
    free(ws);
    free(hs);
    free(rows);
    free(u8);
    return e;
}

/* ---- the message ---------------------------------------------------------------- */

typedef struct sc_req {
    const char *model_id;
    const char **sources;
    int n;
    int black;
    const char *dir, *prefix;
} sc_req;

static sdrt_error *parse(pp_plugin *p, const cJSON *d, sc_req *r) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(d, "model_id");
    if (!cJSON_IsString(f) || !f->valuestring[0]) return bad(p, "model_id", "required string (a pipeline with safety_checker/)");
    r->model_id = f->valuestring;
    const cJSON *one = cJSON_GetObjectItemCaseSensitive(d, "image"), *many = cJSON_GetObjectItemCaseSensitive(d, "images");
    if (one && many) return bad(p, "image", "give either image or images, not both");
    if (!one && !many) return bad(p, "images", "required: image (a path or data: URI) or images (a list of them)");
    if (one && (!cJSON_IsString(one) || !one->valuestring[0])) return bad(p, "image", "must be a non-empty string (a path or data: URI)");
    if (many && (!cJSON_IsArray(many) || cJSON_GetArraySize(many) < 1 || cJSON_GetArraySize(many) > SC_MAX_IMAGES))
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "images: must be a list of 1..%d paths or data: URIs",
                                 SC_MAX_IMAGES);
    r->n = one ? 1 : cJSON_GetArraySize(many);
    r->sources = calloc((size_t)r->n, sizeof *r->sources);
    if (!r->sources) return p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "safety_check: out of memory");
    for (int i = 0; i < r->n; i++) {
        const cJSON *s = one ? one : cJSON_GetArrayItem(many, i);
        if (!cJSON_IsString(s) || !s->valuestring[0])
            return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "images[%d]: must be a non-empty string", i);
        r->sources[i] = s->valuestring;
    }
    f = cJSON_GetObjectItemCaseSensitive(d, "safety_action");
    if (f && !(cJSON_IsString(f) && (!strcmp(f->valuestring, "black") || !strcmp(f->valuestring, "flag"))))
        return bad(p, "safety_action", "must be \"black\" (flagged images are replaced by black ones) or \"flag\"");
    r->black = !f || !strcmp(f->valuestring, "black");
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(d, "output");
    if (out && !cJSON_IsObject(out)) return bad(p, "output", "must be an object");
    f = cJSON_GetObjectItemCaseSensitive(out, "dir");
    if (f && !cJSON_IsString(f)) return bad(p, "output.dir", "must be a string");
    r->dir = f ? f->valuestring : "outputs";
    f = cJSON_GetObjectItemCaseSensitive(out, "prefix");
    if (f && (!cJSON_IsString(f) || !pp_prefix_ok(f->valuestring)))
        return bad(p, "output.prefix", "must be a plain file name");
    r->prefix = f ? f->valuestring : "safety";
    return NULL;
}

/* The image as the checker left it: black when flagged and blacking out. */
static sdrt_error *write_image(pp_plugin *p, const sc_req *r, const pp_image *im, int black, const char *request_json,
                               char **path) {
    size_t n = (size_t)im->w * im->h * 3;
    float *f = malloc(n * sizeof *f);
    if (!f) return p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "safety_check: out of memory");
    for (size_t i = 0; i < n; i++) f[i] = black ? 0.0f : im->rgb[i] / 255.0f;
    sdrt_error *e = pp_write_png(p, f, im->h, im->w, r->dir, r->prefix, NULL, request_json, path);
    free(f);
    return e;
}

sdrt_error *pp_handle_safety_check(pp_plugin *p, const sdrt_request *req, char **result_json) {
    cJSON *d = cJSON_Parse(req->data_json);
    if (!cJSON_IsObject(d)) {
        cJSON_Delete(d);
        return bad(p, "data", "must be a JSON object");
    }
    sc_req r = {0};
    pp_image *imgs = NULL;
    sc_verdict *v = NULL;
    float *scores = NULL;
    char *dir = NULL, err[700], *txt = NULL;
    const sc_model *m = NULL;
    int owned = 0;
    cJSON *res = NULL;
    sdrt_error *e = parse(p, d, &r);
    if (!e) {
        lookup_cfg lc;
        if (lookup_init(&lc, p->api, p->host)) {
            e = p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "safety_check: out of memory");
        } else {
            sdrt_status st = lookup_resolve(&lc, r.model_id, &dir, err, sizeof err);
            if (st != SDRT_OK) e = p->api->error_new(st, NULL, "%s", err); /* names model_id */
            lookup_free(&lc);
        }
    }
    if (!e) e = checker(p, dir, &m, &owned);
    if (!e && !(imgs = calloc((size_t)r.n, sizeof *imgs))) e = p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "safety_check: out of memory");
    for (int i = 0; !e && i < r.n; i++) {
        e = pp_image_read_source(p, r.sources[i], &imgs[i]);
        if (e && r.n > 1) {
            /* Name which entry of the list failed. */
            sdrt_error *named = p->api->error_new(e->code, NULL, "images[%d]: %s", i, e->message);
            p->api->error_free(e);
            e = named;
        }
    }
    int *ws = !e ? calloc((size_t)r.n, sizeof *ws) : NULL, *hs = !e ? calloc((size_t)r.n, sizeof *hs) : NULL;
    const uint8_t **rows = !e ? calloc((size_t)r.n, sizeof *rows) : NULL;
    if (!e && (!ws || !hs || !rows || !(v = calloc((size_t)r.n, sizeof *v))))
        e = p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "safety_check: out of memory");
    for (int i = 0; !e && i < r.n; i++) {
        ws[i] = imgs[i].w;
        hs[i] = imgs[i].h;
        rows[i] = imgs[i].rgb;
    }
    if (!e) e = run_checker(p, m, rows, ws, hs, r.n, req->job, v, &scores);
    if (!e) {
        res = cJSON_CreateObject();
        cJSON *list = cJSON_AddArrayToObject(res, "images"), *flags = cJSON_AddArrayToObject(res, "nsfw_content_detected");
        for (int i = 0; !e && i < r.n; i++) {
            char *path = NULL;
            e = write_image(p, &r, &imgs[i], r.black && v[i].nsfw, req->data_json, &path);
            cJSON *o = verdict_json(m, &v[i]);
            cJSON_AddStringToObject(o, "source", strncmp(r.sources[i], "data:", 5) ? r.sources[i] : "data:");
            if (path) cJSON_AddStringToObject(o, "path", path);
            cJSON_AddNumberToObject(o, "width", imgs[i].w);
            cJSON_AddNumberToObject(o, "height", imgs[i].h);
            cJSON_AddItemToArray(list, o);
            cJSON_AddItemToArray(flags, cJSON_CreateBool(v[i].nsfw));
            free(path);
        }
        cJSON_AddStringToObject(res, "safety_action", r.black ? "black" : "flag");
    }
    if (!e) {
        txt = cJSON_PrintUnformatted(res);
        size_t len = txt ? strlen(txt) + 1 : 0;
        *result_json = txt ? p->api->alloc(len) : NULL;
        if (!*result_json) e = p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "safety_check: out of memory");
        else memcpy(*result_json, txt, len);
    }
    free(txt);
    cJSON_Delete(res);
    if (owned) sc_model_close((sc_model *)m);
    for (int i = 0; imgs && i < r.n; i++) free(imgs[i].rgb);
    free(imgs);
    free(ws);
    free(hs);
    free(rows);
    free(v);
    free(scores);
    free(dir);
    free(r.sources);
    cJSON_Delete(d);
    return e;
}
