/* plugins/inference/request.c - inference.run field validation.
 *
 * Every error names the field and the reason ("width: 1004 is not a
 * multiple of 8"). A field may come at the top level or, for the legacy
 * workers' shape, inside `hyperparameters` / `dimensions`; the top level
 * wins when both are present.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "request.h"
#include "quality.h"

typedef struct req_ctx {
    const cJSON *root;
    char *err;
    size_t errlen;
    sdrt_status status;
} req_ctx;

static void req_fail(req_ctx *c, const char *field, const char *fmt_reason, double value) {
    if (c->status != SDRT_OK) return;
    char reason[200];
    snprintf(reason, sizeof reason, fmt_reason, value);
    snprintf(c->err, c->errlen, "%s: %s", field, reason);
    c->status = SDRT_INVALID_ARGUMENT;
}

/* The field from the top level, else from the legacy `nest` object. */
static const cJSON *req_item(const req_ctx *c, const char *field, const char *nest) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(c->root, field);
    if (it && !cJSON_IsNull(it)) return it;
    if (!nest) return NULL;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(c->root, nest);
    it = cJSON_IsObject(n) ? cJSON_GetObjectItemCaseSensitive(n, field) : NULL;
    return it && !cJSON_IsNull(it) ? it : NULL;
}

static char *req_strdup(req_ctx *c, const char *s) {
    char *d = strdup(s);
    if (!d && c->status == SDRT_OK) {
        snprintf(c->err, c->errlen, "inference.run: out of memory");
        c->status = SDRT_RESOURCE_EXHAUSTED;
    }
    return d;
}

static char *req_string(req_ctx *c, const cJSON *it, const char *field, const char *def) {
    if (!it) return def ? req_strdup(c, def) : NULL;
    if (!cJSON_IsString(it)) {
        req_fail(c, field, "must be a string", 0);
        return NULL;
    }
    return req_strdup(c, it->valuestring);
}

static int req_int(req_ctx *c, const cJSON *it, const char *field, int def, int min, int max) {
    if (!it) return def;
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble)) {
        req_fail(c, field, "must be an integer", 0);
        return def;
    }
    double v = it->valuedouble;
    if (v < min || v > max) {
        char fmt[96];
        snprintf(fmt, sizeof fmt, "%%g is out of range [%d, %d]", min, max);
        req_fail(c, field, fmt, v);
        return def;
    }
    return (int)v;
}

static int req_bool(req_ctx *c, const cJSON *it, const char *field, int def) {
    if (!it) return def;
    if (!cJSON_IsBool(it)) req_fail(c, field, "must be true or false", 0);
    return cJSON_IsTrue(it);
}

/* width / height: positive multiples of 8 (the VAE's scale factor). */
static int req_size(req_ctx *c, const char *field) {
    const cJSON *it = req_item(c, field, "dimensions");
    int v = req_int(c, it, field, 0, 8, INFER_MAX_SIZE);
    if (v % 8 != 0) req_fail(c, field, "%g is not a multiple of 8", v);
    return v;
}

static double req_guidance(req_ctx *c) {
    const cJSON *it = req_item(c, "guidance_scale", "hyperparameters");
    if (!it) return -1.0;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) {
        req_fail(c, "guidance_scale", "must be a number", 0);
        return -1.0;
    }
    if (it->valuedouble < 0.0 || it->valuedouble > 100.0)
        req_fail(c, "guidance_scale", "%g is out of range [0, 100]", it->valuedouble);
    return it->valuedouble;
}

/* seed: a non-negative integer (strings allow the full 64-bit range that a
 * JSON double cannot carry); -1 or absent draws one. */
static void req_seed(req_ctx *c, infer_request *r) {
    const cJSON *it = req_item(c, "seed", "hyperparameters");
    if (!it) return;
    if (cJSON_IsString(it)) {
        /* Decimal digits only (strtoull alone would take "+1", " 1" and
         * wrap nothing but saturate on overflow): 0 .. 2^64-1, as the
         * schema's pattern says. */
        const char *s = it->valuestring;
        size_t n = strspn(s, "0123456789");
        errno = 0;
        unsigned long long v = n ? strtoull(s, NULL, 10) : 0;
        if (!n || s[n] || n > 20 || errno == ERANGE) {
            req_fail(c, "seed", "as a string must be a decimal integer in [0, 18446744073709551615]", 0);
            return;
        }
        r->seed = v;
        r->seed_given = 1;
        return;
    }
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble)) {
        req_fail(c, "seed", "must be an integer", 0);
        return;
    }
    double v = it->valuedouble;
    if (v == -1.0) return;
    if (v < 0 || v > 9007199254740992.0) {
        req_fail(c, "seed", "%g is out of range [0, 2^53] (pass larger seeds as a string)", v);
        return;
    }
    r->seed = (uint64_t)v;
    r->seed_given = 1;
}

/* rng: "cpu" (default, PyTorch's CPU generator) or "philox"; A1111's names
 * for its Philox generator ("NV", "GPU") are accepted, case-insensitive. */
static int req_ieq(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return *a == *b;
}

static void req_rng(req_ctx *c, infer_request *r) {
    const cJSON *it = req_item(c, "rng", NULL);
    if (!it) return;
    if (!cJSON_IsString(it)) {
        req_fail(c, "rng", "must be a string (\"cpu\" or \"philox\")", 0);
        return;
    }
    const char *v = it->valuestring;
    if (req_ieq(v, "cpu")) r->rng_philox = 0;
    else if (req_ieq(v, "philox") || req_ieq(v, "nv") || req_ieq(v, "gpu")) r->rng_philox = 1;
    else req_fail(c, "rng", "must be \"cpu\" or \"philox\" (A1111's \"NV\"/\"GPU\" mean philox)", 0);
}

static void req_scheduler(req_ctx *c, infer_request *r) {
    r->scheduler = req_string(c, req_item(c, "scheduler", NULL), "scheduler", NULL);
    const cJSON *cfg = req_item(c, "scheduler_config", NULL);
    if (cfg && !cJSON_IsObject(cfg)) {
        req_fail(c, "scheduler_config", "must be an object", 0);
        return;
    }
    char *text = cfg ? cJSON_PrintUnformatted(cfg) : NULL;
    r->scheduler_config_json = req_strdup(c, text ? text : "{}");
    cJSON_free(text);
}

static void req_output(req_ctx *c, infer_request *r) {
    const cJSON *out = req_item(c, "output", NULL);
    if (out && !cJSON_IsObject(out)) {
        req_fail(c, "output", "must be an object", 0);
        return;
    }
    const cJSON *dir = out ? cJSON_GetObjectItemCaseSensitive(out, "dir") : NULL;
    r->output_dir = req_string(c, dir && !cJSON_IsNull(dir) ? dir : NULL, "output.dir", "outputs");
    if (r->output_dir && !r->output_dir[0]) req_fail(c, "output.dir", "must not be empty", 0);
    r->save_latents = req_bool(c, out ? cJSON_GetObjectItemCaseSensitive(out, "save_latents") : NULL,
                               "output.save_latents", 0);
    const cJSON *prefix = out ? cJSON_GetObjectItemCaseSensitive(out, "prefix") : NULL;
    r->output_prefix = req_string(c, prefix && !cJSON_IsNull(prefix) ? prefix : NULL, "output.prefix", NULL);
    if (r->output_prefix && !infer_prefix_ok(r->output_prefix))
        req_fail(c, "output.prefix", "must be a plain file name (1-100 characters; no '/', '\\', ':', '..', "
                 "leading '.' or control characters)", 0);
}

int infer_prefix_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 100 || strstr(s, "..") || s[0] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f || ch == '/' || ch == '\\' || ch == ':') return 0;
    }
    return 1;
}

/* One lora.adapters[i]: {model_id (non-empty string), weight? (finite,
 * default 1)}; the model_id is copied into the request. */
static void req_adapter(req_ctx *c, const cJSON *it, size_t i, sdrt_lora_adapter *a) {
    char field[64];
    sdrt_lora_adapter_init(a);
    snprintf(field, sizeof field, "lora.adapters[%zu]", i);
    if (!cJSON_IsObject(it)) {
        req_fail(c, field, "must be an object", 0);
        return;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "model_id");
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(it, "weight");
    snprintf(field, sizeof field, "lora.adapters[%zu].model_id", i);
    if (!cJSON_IsString(id) || !id->valuestring[0]) {
        req_fail(c, field, "must be a non-empty string", 0);
        return;
    }
    a->model_id = req_strdup(c, id->valuestring);
    if (!w || cJSON_IsNull(w)) return;
    snprintf(field, sizeof field, "lora.adapters[%zu].weight", i);
    if (!cJSON_IsNumber(w) || !isfinite(w->valuedouble)) req_fail(c, field, "must be a finite number", 0);
    else a->weight = (float)w->valuedouble;
}

/* lora{enabled?, adapters?}: the adapters the lora plugin merges for this
 * request (host/legacy.c maps the C# Conditioning.LoRAs to this form).
 * enabled false = no adapters and no prompt tags. */
static void req_lora(req_ctx *c, infer_request *r) {
    r->lora_enabled = 1;
    const cJSON *lora = req_item(c, "lora", NULL);
    if (!lora) return;
    if (!cJSON_IsObject(lora)) {
        req_fail(c, "lora", "must be an object", 0);
        return;
    }
    r->lora_enabled = req_bool(c, cJSON_GetObjectItemCaseSensitive(lora, "enabled"), "lora.enabled", 1);
    const cJSON *ad = cJSON_GetObjectItemCaseSensitive(lora, "adapters");
    if (!ad || cJSON_IsNull(ad)) return;
    if (!cJSON_IsArray(ad)) {
        req_fail(c, "lora.adapters", "must be an array", 0);
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(ad);
    if (n > INFER_MAX_LORAS) req_fail(c, "lora.adapters", "more than %g adapters", INFER_MAX_LORAS);
    if (!r->lora_enabled || n == 0 || c->status != SDRT_OK) return;
    r->loras = calloc(n, sizeof *r->loras);
    if (!r->loras) {
        snprintf(c->err, c->errlen, "inference.run: out of memory");
        c->status = SDRT_RESOURCE_EXHAUSTED;
        return;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, ad) {
        req_adapter(c, it, r->n_loras, &r->loras[r->n_loras]);
        r->n_loras++;
    }
}

/* model_id: a string, or a suite {base, refiner?, vae?} (host/legacy.c maps
 * the C# Model{Base, Refiner, Vae} to it). */
static void req_model_id(req_ctx *c, infer_request *r) {
    const cJSON *m = req_item(c, "model_id", NULL);
    if (!cJSON_IsObject(m)) {
        r->model_id = req_string(c, m ? m : req_item(c, "model_name", NULL), "model_id", NULL);
        return;
    }
    r->model_id = req_string(c, cJSON_GetObjectItemCaseSensitive(m, "base"), "model_id.base", NULL);
    if (c->status == SDRT_OK && !r->model_id) req_fail(c, "model_id.base", "is required", 0);
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(m, "refiner"), *vae = cJSON_GetObjectItemCaseSensitive(m, "vae");
    r->refiner_id = req_string(c, cJSON_IsNull(ref) ? NULL : ref, "model_id.refiner", NULL);
    r->vae_id = req_string(c, cJSON_IsNull(vae) ? NULL : vae, "model_id.vae", NULL);
    if (r->refiner_id && !r->refiner_id[0]) req_fail(c, "model_id.refiner", "must not be empty", 0);
    if (r->vae_id && !r->vae_id[0]) req_fail(c, "model_id.vae", "must not be empty", 0);
}

/* Fields the schema names that sdrt does not implement: refused when they
 * would change the result, so that a request is never answered as if they
 * had been honoured. prompt_2/negative_prompt_2 equal to the first prompt
 * (diffusers' default) and guidance_rescale 0 change nothing. */
static void req_not_implemented(req_ctx *c, const infer_request *r) {
    static const char *const second[2] = {"prompt_2", "negative_prompt_2"};
    for (int i = 0; i < 2 && c->status == SDRT_OK; i++) {
        const cJSON *it = req_item(c, second[i], NULL);
        const char *first = i ? r->negative_prompt : r->prompt;
        if (it && !(cJSON_IsString(it) && first && strcmp(it->valuestring, first) == 0)) {
            snprintf(c->err, c->errlen,
                     "%s: a separate prompt for SDXL's second text encoder is not supported (both encoders get %s)",
                     second[i], i ? "negative_prompt" : "prompt");
            c->status = SDRT_UNSUPPORTED;
        }
    }
    const cJSON *gr = req_item(c, "guidance_rescale", NULL);
    if (c->status == SDRT_OK && gr && !(cJSON_IsNumber(gr) && gr->valuedouble == 0)) {
        snprintf(c->err, c->errlen, "guidance_rescale: not supported (only 0, no rescaling)");
        c->status = SDRT_UNSUPPORTED;
    }
}

static void req_model_and_prompts(req_ctx *c, infer_request *r) {
    req_model_id(c, r);
    if (c->status == SDRT_OK && (!r->model_id || !r->model_id[0]))
        req_fail(c, "model_id", "is required", 0);
    /* weight_type: the model plugin quantises on load under the id
     * "<model_id>#<type>" (its own cache entry, shared by every plugin
     * of this request); it checks the type. */
    const cJSON *wt = req_item(c, "weight_type", NULL);
    if (c->status == SDRT_OK && wt && (!cJSON_IsString(wt) || !wt->valuestring[0] || strchr(wt->valuestring, '#')))
        req_fail(c, "weight_type", "must be a ggml type name such as \"q8_0\"", 0);
    if (c->status == SDRT_OK && wt) {
        size_t n = strlen(r->model_id) + strlen(wt->valuestring) + 2;
        char *id = malloc(n);
        if (id) snprintf(id, n, "%s#%s", r->model_id, wt->valuestring);
        free(r->model_id);
        r->model_id = id ? id : req_strdup(c, "");
    }
    r->prompt = req_string(c, req_item(c, "prompt", NULL), "prompt", "");
    const cJSON *neg = req_item(c, "negative_prompt", NULL);
    r->has_negative_prompt = neg != NULL;
    r->negative_prompt = req_string(c, neg, "negative_prompt", "");
}

static void req_numbers(req_ctx *c, infer_request *r) {
    r->width = req_size(c, "width");
    r->height = req_size(c, "height");
    r->steps = req_int(c, req_item(c, "num_inference_steps", "hyperparameters"), "num_inference_steps", 50, 1,
                       INFER_MAX_STEPS);
    r->steps_given = req_item(c, "num_inference_steps", "hyperparameters") != NULL;
    r->quality = req_string(c, req_item(c, "quality", NULL), "quality", NULL);
    if (r->quality && !infer_quality_known(r->quality))
        req_fail(c, "quality", "must be \"fast\", \"balanced\" or \"high\"", 0);
    r->guidance_scale = req_guidance(c);
    req_seed(c, r);
    req_rng(c, r);
    const cJSON *bs = req_item(c, "batch_size", NULL);
    r->batch_size = req_int(c, bs ? bs : req_item(c, "num_images_per_prompt", NULL), "batch_size", 1, 1,
                            INFER_MAX_BATCH);
    r->clip_skip = req_int(c, req_item(c, "clip_skip", NULL), "clip_skip", 0, 0, INFER_MAX_CLIP_SKIP);
    r->max_batch = req_int(c, req_item(c, "max_batch", NULL), "max_batch", 0, 0, INFER_MAX_BATCH);
    r->preview_every = req_int(c, req_item(c, "preview", NULL), "preview", 0, 0, INFER_MAX_STEPS);
}

/* A number in [lo, hi] (open ends when lo_open / hi_open); absent = def. */
static double req_fraction(req_ctx *c, const char *field, double def, double lo, int lo_open, double hi,
                           int hi_open) {
    const cJSON *it = req_item(c, field, NULL);
    if (!it) return def;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) {
        req_fail(c, field, "must be a number", 0);
        return def;
    }
    double v = it->valuedouble;
    if ((lo_open ? v <= lo : v < lo) || (hi_open ? v >= hi : v > hi)) {
        char fmt[96];
        snprintf(fmt, sizeof fmt, "%%g is out of range %c%g, %g%c", lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']');
        req_fail(c, field, fmt, v);
        return def;
    }
    return v;
}

/* img2img, inpainting and the SDXL base/refiner split. */
static void req_image(req_ctx *c, infer_request *r) {
    r->init_image = req_string(c, req_item(c, "init_image", NULL), "init_image", NULL);
    r->mask_image = req_string(c, req_item(c, "mask_image", NULL), "mask_image", NULL);
    if (r->init_image && !r->init_image[0]) req_fail(c, "init_image", "must not be empty", 0);
    if (r->mask_image && !r->mask_image[0]) req_fail(c, "mask_image", "must not be empty", 0);
    if (r->mask_image && !r->init_image) req_fail(c, "mask_image", "needs init_image (the image to inpaint)", 0);
    r->strength = req_fraction(c, "strength", -1.0, 0.0, 1, 1.0, 0);
    if (r->strength >= 0 && !r->init_image) req_fail(c, "strength", "needs init_image (strength is for img2img)", 0);
    r->denoising_start = req_fraction(c, "denoising_start", -1.0, 0.0, 0, 1.0, 1);
    if (r->denoising_start >= 0 && !r->init_image)
        req_fail(c, "denoising_start", "needs init_image (the latents handed over)", 0);
    r->denoising_end = req_fraction(c, "denoising_end", -1.0, 0.0, 1, 1.0, 0);
    if (r->denoising_start >= 0 && r->denoising_end >= 0 && r->denoising_end <= r->denoising_start)
        req_fail(c, "denoising_end", "must be greater than denoising_start (%g)", r->denoising_start);
    r->aesthetic_score = req_fraction(c, "aesthetic_score", 6.0, -1e4, 0, 1e4, 0);
    r->negative_aesthetic_score = req_fraction(c, "negative_aesthetic_score", 2.5, -1e4, 0, 1e4, 0);
    r->mask_blur = req_fraction(c, "mask_blur", 0.0, 0.0, 0, 256.0, 0);
    r->padding_mask_crop = req_int(c, req_item(c, "padding_mask_crop", NULL), "padding_mask_crop", -1, 0,
                                   INFER_MAX_SIZE);
    if (c->status == SDRT_OK && !r->mask_image && (r->mask_blur > 0 || r->padding_mask_crop >= 0))
        req_fail(c, r->mask_blur > 0 ? "mask_blur" : "padding_mask_crop", "needs mask_image", 0);
}

/* safety_checker (bool) and safety_action ("black" | "flag"). */
static void req_safety(req_ctx *c, infer_request *r) {
    const cJSON *sc = req_item(c, "safety_checker", NULL);
    r->safety_checker = sc ? req_bool(c, sc, "safety_checker", 0) : -1;
    const cJSON *a = req_item(c, "safety_action", NULL);
    r->safety_black = -1;
    if (!a) return;
    if (!cJSON_IsString(a) || (strcmp(a->valuestring, "black") && strcmp(a->valuestring, "flag")))
        req_fail(c, "safety_action", "must be \"black\" (flagged images are replaced by black ones) or \"flag\"", 0);
    else r->safety_black = strcmp(a->valuestring, "black") == 0;
}

/* "precision": one of sdrt/precision.h's names (whether the device runs
 * it is the backend's answer, at stream creation). */
static void req_precision(req_ctx *c, infer_request *r) {
    const cJSON *it = req_item(c, "precision", NULL);
    if (!it || c->status != SDRT_OK) return;
    if (!cJSON_IsString(it)) {
        req_fail(c, "precision", "must be a string: " SDRT_PRECISION_CHOICES, 0);
        return;
    }
    if (sdrt_precision_parse(it->valuestring, "precision", &r->precision, c->err, c->errlen) != SDRT_OK) {
        c->status = SDRT_INVALID_ARGUMENT;
        return;
    }
    r->precision_given = 1;
}

sdrt_status infer_request_parse(const char *data_json, infer_request *req, char *err, size_t errlen) {
    memset(req, 0, sizeof *req);
    cJSON *root = cJSON_Parse(data_json ? data_json : "");
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        snprintf(err, errlen, "data: must be a JSON object");
        return SDRT_INVALID_ARGUMENT;
    }
    req_ctx c = {root, err, errlen, SDRT_OK};
    req_model_and_prompts(&c, req);
    req_numbers(&c, req);
    req_scheduler(&c, req);
    req_output(&c, req);
    req_image(&c, req);
    req_lora(&c, req);
    req_not_implemented(&c, req);
    req_safety(&c, req);
    const cJSON *dev = req_item(&c, "device", NULL);
    req->device = req_string(&c, dev && !cJSON_IsNull(dev) ? dev : NULL, "device", NULL);
    req_precision(&c, req);
    if (c.status == SDRT_OK) c.status = infer_hires_parse(root, &req->hires, err, errlen);
    if (c.status == SDRT_OK) c.status = infer_cn_reqs_parse(root, &req->controlnet, err, errlen);
    if (c.status == SDRT_OK) c.status = infer_memory_parse_request(root, &req->memory, err, errlen);
    cJSON_Delete(root);
    if (c.status != SDRT_OK) infer_request_free(req);
    return c.status;
}

void infer_request_free(infer_request *req) {
    free(req->model_id);
    free(req->prompt);
    free(req->negative_prompt);
    free(req->scheduler);
    free(req->scheduler_config_json);
    free(req->quality);
    free(req->output_dir);
    free(req->output_prefix);
    free(req->device);
    free(req->refiner_id);
    free(req->vae_id);
    free(req->init_image);
    free(req->mask_image);
    for (size_t i = 0; i < req->n_loras; i++) free((char *)req->loras[i].model_id);
    free(req->loras);
    infer_hires_free(&req->hires);
    infer_cn_reqs_free(&req->controlnet);
    memset(req, 0, sizeof *req);
}
