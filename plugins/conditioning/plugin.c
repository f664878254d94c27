/* plugin.c - the conditioning plugin: descriptor, the sdrt.cond/1
 * interface, and the conditioning.tokenize / conditioning.encode /
 * conditioning.embeddings / conditioning.preprocess messages.
 *
 * Config (all optional): {"tokenizer_dir": "...", "tokenizer_2_dir": "...",
 * "threads": n, "cache": n, "max_prompt_chunks": n,
 * "embedding_roots": [...], "precision": "auto"|"f32"|...}. "precision" is
 * that of encodes that name none (else the host's top-level key). The
 * tokenizer folders serve models without
 * tokenizer files (single-file checkpoints); by default they are the CLIP
 * BPE tokenizer installed beside this plugin
 * (sdrt_conditioning.data/tokenizer and tokenizer_2, the SD1.x and SDXL pad
 * styles). Prepared tokenizers are kept per model id (LRU of `cache`
 * entries, default 4). Textual-inversion embeddings are read once at start
 * from the plugin's embedding_roots and the host's (config key
 * embedding_roots, --embedding-root); the set is immutable afterwards, so
 * encodes share it without a lock. */
#if !defined(_WIN32)
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#endif
#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pipeline.h"
#include "sdrt/backend.h"
#include "sdrt/cond.h"
#include "sdrt/file.h"
#include "sdrt/model.h"
#include "sdrt/nn.h"
#include "sdrt/npy.h"
#include "sdrt/canny.h"
#include "sdrt/plugin.h"
#include "sdrt/postprocess.h"
#include "sdrt/precision.h"

#define COND_CACHE_MAX 16

typedef struct cache_slot {
    char *model_id;
    cond_model *cm;
    uint64_t used;
} cache_slot;

typedef struct retired {
    cond_model *cm;
    struct retired *next;
} retired;

typedef struct cond_plugin {
    const sdrt_host_api *api;
    sdrt_host *host;
    char *tok_dir[2];
    sdrt_file_scope scope; /* model files: inside the model roots */
    int max_chunks;        /* max_prompt_chunks */
    int threads;
    sdrt_precision precision; /* of an encode naming none: config, else the host's top-level key */
    int cache_size;
    pthread_mutex_t lock;
    cache_slot cache[COND_CACHE_MAX];
    uint64_t tick;
    retired *retired_list;
    emb_set *emb;            /* textual-inversion embeddings, never NULL after init */
    sdrt_cond_iface iface;
} cond_plugin;

/* ---- errors ----------------------------------------------------------------- */

static sdrt_error *fail(cond_plugin *p, sdrt_status st, const char *msg) {
    return p->api->error_new(st, NULL, "%s", msg);
}

/* ---- prepared models (tokenizers + configs), cached per model id --------- */

/* Returns the cached cond_model for id, loading it on a miss. The lock is
 * held only for the lookup, so an evicted model may still be in use by
 * another job: it moves to the retired list, freed at shutdown (eviction
 * is rare: a deployment serves a few models). */
static sdrt_status cache_get(cond_plugin *p, const char *id, const cond_source *src, const cond_model **out,
                             char *err, size_t errlen) {
    pthread_mutex_lock(&p->lock);
    int free_slot = -1, lru = 0;
    for (int i = 0; i < p->cache_size; i++) {
        if (p->cache[i].model_id && strcmp(p->cache[i].model_id, id) == 0) {
            p->cache[i].used = ++p->tick;
            *out = p->cache[i].cm;
            pthread_mutex_unlock(&p->lock);
            return SDRT_OK;
        }
        if (!p->cache[i].model_id && free_slot < 0) free_slot = i;
        if (p->cache[i].used < p->cache[lru].used) lru = i;
    }
    cond_model *cm = NULL;
    sdrt_status st = cond_model_load(src, &cm, err, errlen);
    if (st == SDRT_OK) {
        int slot = free_slot >= 0 ? free_slot : lru;
        if (p->cache[slot].model_id) {
            retired *r = malloc(sizeof *r);
            if (r) {
                r->cm = p->cache[slot].cm;
                r->next = p->retired_list;
                p->retired_list = r;
            }
            free(p->cache[slot].model_id);
        }
        p->cache[slot].model_id = strdup(id);
        p->cache[slot].cm = cm;
        p->cache[slot].used = ++p->tick;
        *out = cm;
    }
    pthread_mutex_unlock(&p->lock);
    return st;
}

/* ---- the model as a cond_source ------------------------------------------ */

typedef struct model_ref {
    const sdrt_model_iface *mi;
    sdrt_model *m;
    const sdrt_cond_params *prm;  /* weight override hooks, when given */
    const sdrt_host_api *api;
    sdrt_nn *nn;                  /* the encode's context, once made */
} model_ref;

static sdrt_status ref_prepare_hook(model_ref *r, const prompt_parsed *parsed, char *err, size_t errlen);

static int has_hooks(const sdrt_cond_params *prm) {
    return prm && SDRT_HAS_MEMBER(prm, sdrt_cond_params, weights_ctx);
}

static const char *ref_config(void *ctx, const char *comp) {
    model_ref *r = ctx;
    return r->mi->config_json(r->m, comp);
}
static const sdrt_tensor *ref_tensor(void *ctx, const char *comp, const char *name) {
    model_ref *r = ctx;
    const sdrt_tensor *t = has_hooks(r->prm) && r->prm->weight ? r->prm->weight(r->prm->weights_ctx, comp, name) : NULL;
    return t ? t : r->mi->tensor(r->m, comp, name);
}

/* Hands the prompt's LoRA tags to the caller's prepare_weights hook. */
static sdrt_status ref_prepare(void *ctx, const prompt_parsed *parsed, char *err, size_t errlen) {
    model_ref *r = ctx;
    if (!has_hooks(r->prm) || !r->prm->prepare_weights) return SDRT_OK;
    sdrt_status st = ref_prepare_hook(r, parsed, err, errlen);
    /* The override tensors' device copies (a LoRA set's), once prepared. */
    if (st == SDRT_OK && r->nn && SDRT_HAS_MEMBER(r->prm, sdrt_cond_params, weight_store) && r->prm->weight_store)
        sdrt_nn_add_weight_store(r->nn, r->prm->weight_store(r->prm->weights_ctx));
    return st;
}

static sdrt_status ref_prepare_hook(model_ref *r, const prompt_parsed *parsed, char *err, size_t errlen) {
    sdrt_cond_lora *tags = calloc(parsed->nloras + 1, sizeof *tags);
    if (!tags) {
        snprintf(err, errlen, "conditioning: out of memory");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    for (size_t i = 0; i < parsed->nloras; i++) {
        tags[i].name = parsed->loras[i].name;
        tags[i].weight = parsed->loras[i].weight;
    }
    sdrt_error *e = r->prm->prepare_weights(r->prm->weights_ctx, tags, parsed->nloras);
    free(tags);
    if (!e) return SDRT_OK;
    sdrt_status st = e->code;
    snprintf(err, errlen, "%s", e->message);
    r->api->error_free(e);
    return st == SDRT_OK ? SDRT_INTERNAL : st;
}

static const char *ref_file(void *ctx, const char *comp, const char *file) {
    model_ref *r = ctx;
    return r->mi->file_path(r->m, comp, file);
}

/* model_index.json beside the components, when the model is a folder
 * (NULL when it has none, or it cannot be read safely). */
static char *read_model_index(const cond_plugin *p, const char *model_id) {
    char path[4096], err[256];
    struct stat sb;
    snprintf(path, sizeof path, "%s/model_index.json", model_id);
    if (stat(path, &sb) != 0) return NULL;
    return sdrt_file_read_all(path, "model_index.json", &p->scope, (size_t)1 << 20, NULL, NULL, err, sizeof err);
}

/* ---- encode ------------------------------------------------------------------ */

typedef struct result_box {
    sdrt_cond_result pub;
    cond_output out;
    sdrt_cond_lora *loras;
    sdrt_nn *nn; /* owns out's device tensors, or NULL */
} result_box;

/* The caller's device (sdrt_cond_params.device), or NULL. */
static sdrt_device *wanted_device(const sdrt_cond_params *prm) {
    return SDRT_HAS_MEMBER(prm, sdrt_cond_params, device) ? prm->device : NULL;
}

/* The precision of an encode: the caller's (sdrt_cond_params.precision,
 * e.g. the inference.run request's), else the plugin's default. */
static sdrt_status encode_precision(const cond_plugin *p, const sdrt_cond_params *prm, sdrt_precision *out, char *err,
                                    size_t errlen) {
    const char *v = SDRT_HAS_MEMBER(prm, sdrt_cond_params, precision) ? prm->precision : NULL;
    *out = p->precision;
    return v ? sdrt_precision_parse(v, "precision", out, err, errlen) : SDRT_OK;
}

/* A context on `dev` (the backend's default device when NULL) in the
 * encode's precision; a precision the device refuses is its error
 * (UNSUPPORTED naming `precision` and the device). */
static sdrt_nn *open_nn(cond_plugin *p, sdrt_device *want, const sdrt_cond_params *prm, sdrt_job *job,
                        sdrt_error **err) {
    char msg[400] = "", params[96];
    sdrt_precision prec;
    sdrt_status st = encode_precision(p, prm, &prec, msg, sizeof msg);
    if (st != SDRT_OK) {
        *err = p->api->error_new(st, NULL, "%s", msg);
        return NULL;
    }
    const sdrt_backend_iface *bi = want ? NULL : p->api->acquire(p->host, SDRT_BACKEND_IFACE_ID, err);
    if (!want && !bi) return NULL;
    sdrt_device *dev = want ? want : bi->default_device(bi->self);
    sdrt_stream_params_format(params, sizeof params, p->threads, prec);
    sdrt_nn *nn = NULL;
    st = dev ? sdrt_nn_create(dev, params, p->api->is_cancelled, job, &nn, msg, sizeof msg) : SDRT_UNAVAILABLE;
    if (bi) p->api->release(p->host, SDRT_BACKEND_IFACE_ID);
    if (st == SDRT_UNSUPPORTED || st == SDRT_INVALID_ARGUMENT) *err = p->api->error_new(st, NULL, "%s", msg);
    else if (!nn) *err = p->api->error_new(SDRT_UNAVAILABLE, NULL, "conditioning: no compute device could be opened%s%s",
                                           msg[0] ? ": " : "", msg);
    return nn;
}

static sdrt_status status_of(sdrt_status st, sdrt_job *job, const sdrt_host_api *api) {
    return api->is_cancelled && api->is_cancelled(job) ? SDRT_CANCELLED : st;
}

static sdrt_error *encode_with(cond_plugin *p, const sdrt_model_iface *mi, sdrt_model *m,
                               const sdrt_cond_params *prm, sdrt_job *job, result_box *box) {
    model_ref ref = {mi, m, prm, p->api, NULL};
    char *index = read_model_index(p, mi->id(m));
    cond_source src = {&ref, ref_config, ref_tensor, ref_file, index, {p->tok_dir[0], p->tok_dir[1]}, ref_prepare,
                       &p->scope, p->max_chunks, p->emb};
    char err[512] = "";
    const cond_model *cm = NULL;
    sdrt_status st = cache_get(p, mi->id(m), &src, &cm, err, sizeof err);
    sdrt_error *e = NULL;
    sdrt_nn *nn = st == SDRT_OK ? open_nn(p, wanted_device(prm), prm, job, &e) : NULL;
    /* The model's resident copies (shared with every request); weights of
     * the caller's hooks (LoRA merges) outside it are private uploads. */
    if (nn) sdrt_nn_add_weight_store(nn, sdrt_model_weights(mi, m));
    int32_t offload = SDRT_HAS_MEMBER(prm, sdrt_cond_params, offload) ? prm->offload : SDRT_OFFLOAD_NONE;
    if (nn && offload != SDRT_OFFLOAD_NONE && sdrt_nn_set_offload(nn, offload) != SDRT_OK) {
        snprintf(err, sizeof err, "offload: %d is not a mode (none 0, model 1, sequential 2)", (int)offload);
        st = SDRT_INVALID_ARGUMENT;
    }
    ref.nn = nn;
    if (st == SDRT_OK && nn) {
        int32_t skip = SDRT_HAS_MEMBER(prm, sdrt_cond_params, clip_skip) ? prm->clip_skip : 0;
        int32_t cfg = SDRT_HAS_MEMBER(prm, sdrt_cond_params, do_cfg) ? prm->do_cfg : 1;
        st = cond_encode_ex(cm, &src, nn, prm->prompt, prm->negative_prompt, skip, cfg, wanted_device(prm) != NULL,
                            &box->out, err, sizeof err);
        /* Device results are read by the caller's stream: complete them. */
        if (st == SDRT_OK && box->out.nn) st = sdrt_nn_synchronize(nn);
        /* Offloading: the encoders are done; their weights leave the
         * device before the next component runs (the embeddings stay). */
        if (offload != SDRT_OFFLOAD_NONE) sdrt_nn_release_weights(nn);
        st = st == SDRT_OK ? st : status_of(st, job, p->api);
    }
    /* The context lives as long as the device tensors it holds. */
    if (st == SDRT_OK && box->out.nn) {
        box->nn = nn;
    } else {
        if (box->out.nn) cond_output_free(&box->out);
        sdrt_nn_free(nn);
    }
    free(index);
    if (!e && st != SDRT_OK) e = p->api->error_new(st, NULL, "%s", err[0] ? err : "conditioning failed");
    return e;
}

static void fill_result(result_box *b) {
    cond_output *o = &b->out;
    sdrt_cond_result *r = &b->pub;
    r->struct_size = SDRT_STRUCT_SIZE(sdrt_cond_result, negative_pooled_prompt_embeds_dev);
    r->prompt_embeds = o->embeds;
    r->negative_prompt_embeds = o->neg_embeds;
    r->pooled_prompt_embeds = o->pooled;
    r->negative_pooled_prompt_embeds = o->neg_pooled;
    r->seq = o->seq;
    r->dim = o->dim;
    r->pooled_dim = o->pooled_dim;
    for (size_t i = 0; i < o->parsed.nloras; i++) {
        b->loras[i].name = o->parsed.loras[i].name;
        b->loras[i].weight = o->parsed.loras[i].weight;
    }
    r->loras = b->loras;
    r->n_loras = o->parsed.nloras;
    r->prompt_embeds_dev = o->embeds_dev;
    r->negative_prompt_embeds_dev = o->neg_embeds_dev;
    r->pooled_prompt_embeds_dev = o->pooled_dev;
    r->negative_pooled_prompt_embeds_dev = o->neg_pooled_dev;
}

static sdrt_error *iface_encode(void *self, sdrt_model *m, const sdrt_cond_params *prm, sdrt_job *job,
                                sdrt_cond_result **out) {
    cond_plugin *p = self;
    *out = NULL;
    if (!m || !prm) return fail(p, SDRT_INVALID_ARGUMENT, "conditioning: model and params are required");
    sdrt_error *e = NULL;
    const sdrt_model_iface *mi = p->api->acquire(p->host, SDRT_MODEL_IFACE_ID, &e);
    if (!mi) return e ? e : fail(p, SDRT_UNAVAILABLE, "conditioning: no model plugin (sdrt.model/1)");
    result_box *box = calloc(1, sizeof *box);
    e = box ? encode_with(p, mi, m, prm, job, box) : fail(p, SDRT_RESOURCE_EXHAUSTED, "out of memory");
    p->api->release(p->host, SDRT_MODEL_IFACE_ID);
    if (!e) {
        box->loras = calloc(box->out.parsed.nloras + 1, sizeof *box->loras);
        if (!box->loras) e = fail(p, SDRT_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (e) {
        if (box) {
            cond_output_free(&box->out);
            sdrt_nn_free(box->nn);
        }
        free(box);
        return e;
    }
    fill_result(box);
    *out = &box->pub;
    return NULL;
}

static void iface_result_free(void *self, sdrt_cond_result *r) {
    (void)self;
    if (!r) return;
    result_box *b = (result_box *)(void *)r;
    cond_output_free(&b->out);
    sdrt_nn_free(b->nn);
    free(b->loras);
    free(b);
}

/* ---- messages --------------------------------------------------------------- */

static const char *str_field(const cJSON *data, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Validates the optional string / integer fields of a request. */
static sdrt_error *check_string(cond_plugin *p, const cJSON *data, const char *key, int required) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, key);
    if ((!v && !required) || cJSON_IsString(v) || (!required && cJSON_IsNull(v))) return NULL;
    return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "%s: %s", key,
                             v ? "must be a string" : "is required (a string)");
}

static sdrt_error *open_model(cond_plugin *p, const char *id, sdrt_job *job, const sdrt_model_iface **mi,
                              sdrt_model **m) {
    sdrt_error *e = NULL;
    *mi = p->api->acquire(p->host, SDRT_MODEL_IFACE_ID, &e);
    if (!*mi) return e ? e : fail(p, SDRT_UNAVAILABLE, "conditioning: no model plugin (sdrt.model/1)");
    e = (*mi)->open((*mi)->self, id, job, m);
    if (e) p->api->release(p->host, SDRT_MODEL_IFACE_ID);
    return e;
}

static void close_model(cond_plugin *p, const sdrt_model_iface *mi, sdrt_model *m) {
    mi->close(mi->self, m);
    p->api->release(p->host, SDRT_MODEL_IFACE_ID);
}

static cJSON *ids_json(const prompt_chunks *c) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < c->len; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(c->ids[i]));
    return a;
}

static char *to_result(cond_plugin *p, cJSON *obj) {
    char *text = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (!text) return NULL;
    size_t n = strlen(text) + 1;
    char *out = p->api->alloc(n);
    if (out) memcpy(out, text, n);
    cJSON_free(text);
    return out;
}

static int tokenize_emb(void *ctx, bpe_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n) {
    return emb_encode(ctx, t, text, len, ids, n);
}

/* {"embeddings": [{"name", "path", "vectors", "widths": [D] or [D_l, D_g]}]} */
static sdrt_error *handle_embeddings(cond_plugin *p, char **result) {
    cJSON *out = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(out, "embeddings");
    for (size_t i = 0; list && i < p->emb->n; i++) {
        const emb_entry *e = &p->emb->v[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(list, o);
        cJSON_AddStringToObject(o, "name", e->name);
        cJSON_AddStringToObject(o, "path", e->path);
        if (e->error) {
            cJSON_AddStringToObject(o, "error", e->error);
            continue;
        }
        cJSON_AddNumberToObject(o, "vectors", e->nvec);
        cJSON *w = cJSON_AddArrayToObject(o, "widths");
        for (int k = 0; k < e->ntables; k++) cJSON_AddItemToArray(w, cJSON_CreateNumber(e->width[k]));
    }
    *result = to_result(p, out);
    return *result ? NULL : fail(p, SDRT_RESOURCE_EXHAUSTED, "out of memory");
}

/* conditioning.preprocess {image, preprocess "canny"|"none", low_threshold,
 * high_threshold, output{dir}}: the control map a ControlNet would see (at
 * the image's own size; inference.run resizes it afterwards), written as a
 * PNG through sdrt.postprocess/1. */
static sdrt_error *handle_preprocess(cond_plugin *p, const cJSON *data, char **result) {
    sdrt_error *e = check_string(p, data, "image", 1);
    if (!e) e = check_string(p, data, "preprocess", 1);
    if (e) return e;
    const char *kind = str_field(data, "preprocess");
    if (strcmp(kind, "canny") != 0 && strcmp(kind, "none") != 0)
        return p->api->error_new(SDRT_UNSUPPORTED, NULL,
                                 "preprocess: \"%.64s\" needs a detector model sdrt does not run (available: "
                                 "\"canny\", \"none\")",
                                 kind);
    double th[2] = {100, 200};
    const char *names[2] = {"low_threshold", "high_threshold"};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, names[i]);
        if (!v || cJSON_IsNull(v)) continue;
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 100000)
            return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "%s: must be a number in [0, 100000]", names[i]);
        th[i] = v->valuedouble;
    }
    const char *dir = str_field(cJSON_GetObjectItemCaseSensitive(data, "output"), "dir");
    if (!dir) return fail(p, SDRT_INVALID_ARGUMENT, "output.dir: required (the PNG is written there)");
    sdrt_error *ae = NULL;
    const sdrt_postprocess_iface *post = p->api->acquire(p->host, SDRT_POSTPROCESS_IFACE_ID, &ae);
    if (!post) return ae ? ae : fail(p, SDRT_UNAVAILABLE, "conditioning.preprocess: needs the postprocess plugin");
    float *rgb = NULL;
    int h = 0, w = 0;
    e = post->read_image(post->self, str_field(data, "image"), &rgb, &h, &w);
    if (e) {
        sdrt_error *f = p->api->error_new(e->code, NULL, "image: %s", e->message);
        p->api->error_free(e);
        e = f;
    }
    size_t npx = (size_t)w * (size_t)h;
    uint8_t *u8 = !e ? malloc(npx * 3) : NULL, *edges = !e ? malloc(npx) : NULL;
    float *outf = !e ? malloc(npx * 3 * sizeof *outf) : NULL;
    if (!e && (!u8 || !edges || !outf)) e = fail(p, SDRT_RESOURCE_EXHAUSTED, "conditioning.preprocess: out of memory");
    if (!e) {
        /* the 8-bit values read_image divided by 255 */
        for (size_t i = 0; i < npx * 3; i++) {
            float v = rgb[i] * 255.0f + 0.5f;
            u8[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        if (strcmp(kind, "canny") == 0) {
            if (sdrt_canny(u8, w, h, 3, th[0], th[1], edges) != 0)
                e = fail(p, SDRT_RESOURCE_EXHAUSTED, "canny: out of memory");
            for (size_t i = 0; !e && i < npx; i++) outf[i * 3] = outf[i * 3 + 1] = outf[i * 3 + 2] = edges[i] / 255.0f;
        } else {
            for (size_t i = 0; i < npx * 3; i++) outf[i] = u8[i] / 255.0f;
        }
    }
    char *path = NULL;
    if (!e && (e = post->write_png(post->self, outf, h, w, dir, kind, NULL, NULL, &path))) {
        sdrt_error *f = p->api->error_new(e->code, NULL, "output.dir: %s", e->message);
        p->api->error_free(e);
        e = f;
    }
    if (!e) {
        cJSON *out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "image", path);
        cJSON_AddNumberToObject(out, "width", w);
        cJSON_AddNumberToObject(out, "height", h);
        cJSON_AddStringToObject(out, "preprocess", kind);
        *result = to_result(p, out);
        if (!*result) e = fail(p, SDRT_RESOURCE_EXHAUSTED, "out of memory");
    }
    post->free(post->self, path);
    post->free(post->self, rgb);
    free(u8);
    free(edges);
    free(outf);
    p->api->release(p->host, SDRT_POSTPROCESS_IFACE_ID);
    return e;
}

static sdrt_error *handle_tokenize(cond_plugin *p, const cJSON *data, sdrt_job *job, char **result) {
    sdrt_error *e = check_string(p, data, "model_id", 1);
    if (!e) e = check_string(p, data, "text", 1);
    if (!e) e = check_string(p, data, "tokenizer", 0);
    if (e) return e;
    /* Fields the schema once named and this plugin never implemented are
     * refused, not ignored. */
    if (cJSON_GetObjectItemCaseSensitive(data, "max_length"))
        return fail(p, SDRT_UNSUPPORTED, "max_length: not supported (ids are padded or truncated to the tokenizer's "
                                         "model_max_length, 77 for CLIP)");
    if (cJSON_GetObjectItemCaseSensitive(data, "weighting"))
        return fail(p, SDRT_UNSUPPORTED, "weighting: not supported (conditioning.tokenize returns the ids of the "
                                         "text as written; conditioning.encode applies A1111 weighting)");
    const char *which = str_field(data, "tokenizer");
    if (which && strcmp(which, "tokenizer") != 0 && strcmp(which, "tokenizer_2") != 0)
        return fail(p, SDRT_INVALID_ARGUMENT, "tokenizer: must be \"tokenizer\" or \"tokenizer_2\"");
    const sdrt_model_iface *mi;
    sdrt_model *m;
    if ((e = open_model(p, str_field(data, "model_id"), job, &mi, &m))) return e;
    model_ref ref = {mi, m, NULL, p->api, NULL};
    cond_source src = {&ref, ref_config, ref_tensor, ref_file, NULL, {p->tok_dir[0], p->tok_dir[1]}, NULL,
                       &p->scope, p->max_chunks, p->emb};
    char err[512] = "";
    const cond_model *cm = NULL;
    sdrt_status st = cache_get(p, mi->id(m), &src, &cm, err, sizeof err);
    cJSON *out = st == SDRT_OK ? cJSON_CreateObject() : NULL;
    int want = which ? (strcmp(which, "tokenizer_2") == 0) : -1;
    if (out && want == 1 && cm->n < 2) {
        cJSON_Delete(out);
        out = NULL;
        st = SDRT_INVALID_ARGUMENT;
        snprintf(err, sizeof err, "tokenizer: the model has no tokenizer_2 (one text encoder)");
    }
    for (int i = 0; out && i < cm->n; i++) {
        if (want >= 0 && i != want) continue;
        prompt_chunks c;
        emb_use u;
        emb_use_init(&u, p->emb, i, cm->n, cm->enc[i].cfg.hidden, cm->enc[i].component,
                     (int32_t)bpe_vocab_size(cm->enc[i].tok));
        int r = prompt_chunk_plain_with(cm->enc[i].tok, str_field(data, "text"), tokenize_emb, &u, &c);
        if (r == -2) snprintf(err, sizeof err, "text: %.480s", u.err);
        emb_use_free(&u);
        if (r) {
            st = r == -2 ? SDRT_INVALID_ARGUMENT : SDRT_RESOURCE_EXHAUSTED;
            break;
        }
        cJSON_AddItemToObject(out, i ? "input_ids_2" : "input_ids", ids_json(&c));
        prompt_chunks_free(&c);
    }
    close_model(p, mi, m);
    if (st != SDRT_OK) {
        cJSON_Delete(out);
        return p->api->error_new(st, NULL, "%s", err[0] ? err : "conditioning.tokenize failed");
    }
    *result = to_result(p, out);
    return *result ? NULL : fail(p, SDRT_RESOURCE_EXHAUSTED, "out of memory");
}

static cJSON *shape_json(int nd, int64_t a, int64_t b, int64_t c) {
    cJSON *s = cJSON_CreateArray();
    int64_t v[3] = {a, b, c};
    for (int i = 0; s && i < nd; i++) cJSON_AddItemToArray(s, cJSON_CreateNumber((double)v[i]));
    return s;
}

/* Writes one tensor as <dir>/<name>.npy and records it in files. */
static sdrt_error *write_npy(cond_plugin *p, const char *dir, const char *name, const float *data, int nd,
                             const int64_t *shape, cJSON *files) {
    char path[4096], err[256];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    if (sdrt_npy_write_f32(path, data, shape, nd, err, sizeof err))
        return p->api->error_new(SDRT_IO_ERROR, NULL, "output.dir: %s", err);
    cJSON_AddStringToObject(files, name, path);
    return NULL;
}

static sdrt_error *write_outputs(cond_plugin *p, const char *dir_in, const sdrt_cond_result *r, cJSON *out) {
    sdrt_error *e = NULL;
    char *dir = p->api->resolve_path ? p->api->resolve_path(p->host, "output", dir_in, &e) : NULL;
    if (!dir && e) {
        sdrt_error *named = p->api->error_new(e->code, NULL, "output.dir: %s", e->message);
        p->api->error_free(e);
        return named;
    }
    if (!dir) return fail(p, SDRT_UNSUPPORTED, "output.dir: the host cannot resolve output paths");
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        e = p->api->error_new(SDRT_IO_ERROR, NULL, "output.dir: cannot create %s: %s", dir, strerror(errno));
        p->api->free(dir);
        return e;
    }
    cJSON *files = cJSON_AddObjectToObject(out, "files");
    int64_t s3[3] = {1, r->seq, r->dim}, s2[2] = {1, r->pooled_dim};
    e = write_npy(p, dir, "prompt_embeds", r->prompt_embeds, 3, s3, files);
    if (!e && r->negative_prompt_embeds)
        e = write_npy(p, dir, "negative_prompt_embeds", r->negative_prompt_embeds, 3, s3, files);
    if (!e && r->pooled_prompt_embeds)
        e = write_npy(p, dir, "pooled_prompt_embeds", r->pooled_prompt_embeds, 2, s2, files);
    if (!e && r->negative_pooled_prompt_embeds)
        e = write_npy(p, dir, "negative_pooled_prompt_embeds", r->negative_pooled_prompt_embeds, 2, s2, files);
    p->api->free(dir);
    return e;
}

static cJSON *describe(const sdrt_cond_result *r) {
    cJSON *out = cJSON_CreateObject(), *shapes = cJSON_AddObjectToObject(out, "shapes");
    cJSON_AddItemToObject(shapes, "prompt_embeds", shape_json(3, 1, r->seq, r->dim));
    if (r->negative_prompt_embeds)
        cJSON_AddItemToObject(shapes, "negative_prompt_embeds", shape_json(3, 1, r->seq, r->dim));
    if (r->pooled_prompt_embeds)
        cJSON_AddItemToObject(shapes, "pooled_prompt_embeds", shape_json(2, 1, r->pooled_dim, 0));
    if (r->negative_pooled_prompt_embeds)
        cJSON_AddItemToObject(shapes, "negative_pooled_prompt_embeds", shape_json(2, 1, r->pooled_dim, 0));
    cJSON *loras = cJSON_AddArrayToObject(out, "loras");
    for (size_t i = 0; i < r->n_loras; i++) {
        cJSON *l = cJSON_CreateObject();
        cJSON_AddStringToObject(l, "name", r->loras[i].name);
        cJSON_AddNumberToObject(l, "weight", r->loras[i].weight);
        cJSON_AddItemToArray(loras, l);
    }
    return out;
}

static sdrt_error *encode_params(cond_plugin *p, const cJSON *data, sdrt_cond_params *prm) {
    sdrt_error *e = check_string(p, data, "model_id", 1);
    if (!e) e = check_string(p, data, "prompt", 0);
    if (!e) e = check_string(p, data, "negative_prompt", 0);
    if (e) return e;
    sdrt_cond_params_init(prm);
    prm->prompt = str_field(data, "prompt");
    prm->negative_prompt = str_field(data, "negative_prompt");
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(data, "clip_skip");
    if (cs && !cJSON_IsNull(cs)) {
        if (!cJSON_IsNumber(cs) || cs->valuedouble != (double)(int)cs->valuedouble || cs->valueint < 0)
            return fail(p, SDRT_INVALID_ARGUMENT, "clip_skip: must be a non-negative integer");
        prm->clip_skip = cs->valueint;
    }
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(data, "do_cfg");
    if (cfg && !cJSON_IsBool(cfg)) return fail(p, SDRT_INVALID_ARGUMENT, "do_cfg: must be a boolean");
    if (cfg) prm->do_cfg = cJSON_IsTrue(cfg);
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(data, "output");
    if (o && !cJSON_IsNull(o) && !cJSON_IsObject(o))
        return fail(p, SDRT_INVALID_ARGUMENT, "output: must be an object");
    const cJSON *dir = cJSON_GetObjectItemCaseSensitive(o, "dir");
    if (dir && !cJSON_IsString(dir)) return fail(p, SDRT_INVALID_ARGUMENT, "output.dir: must be a string");
    /* "precision": checked here (a bad value is INVALID_ARGUMENT before the
     * model loads); whether the device runs it is the stream's answer. */
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(data, "precision");
    if (pr && !cJSON_IsNull(pr)) {
        char msg[200];
        sdrt_precision v;
        if (!cJSON_IsString(pr))
            return fail(p, SDRT_INVALID_ARGUMENT, "precision: must be a string: " SDRT_PRECISION_CHOICES);
        if (sdrt_precision_parse(pr->valuestring, "precision", &v, msg, sizeof msg) != SDRT_OK)
            return fail(p, SDRT_INVALID_ARGUMENT, msg);
        prm->precision = pr->valuestring;
    }
    return NULL;
}

static sdrt_error *handle_encode(cond_plugin *p, const cJSON *data, sdrt_job *job, char **result) {
    sdrt_cond_params prm;
    sdrt_error *e = encode_params(p, data, &prm);
    if (e) return e;
    const sdrt_model_iface *mi;
    sdrt_model *m;
    if ((e = open_model(p, str_field(data, "model_id"), job, &mi, &m))) return e;
    sdrt_cond_result *r = NULL;
    e = iface_encode(p, m, &prm, job, &r);
    close_model(p, mi, m);
    if (e) return e;
    cJSON *out = describe(r);
    const char *dir = str_field(cJSON_GetObjectItemCaseSensitive(data, "output"), "dir");
    if (dir) e = write_outputs(p, dir, r, out);
    iface_result_free(p, r);
    if (e) {
        cJSON_Delete(out);
        return e;
    }
    *result = to_result(p, out);
    return *result ? NULL : fail(p, SDRT_RESOURCE_EXHAUSTED, "out of memory");
}

static sdrt_error *plugin_handle(void *instance, const sdrt_request *req, char **result) {
    cond_plugin *p = instance;
    *result = NULL;
    cJSON *data = cJSON_Parse(req->data_json ? req->data_json : "{}");
    if (!cJSON_IsObject(data)) {
        cJSON_Delete(data);
        return fail(p, SDRT_INVALID_ARGUMENT, "data: must be a JSON object");
    }
    sdrt_error *e;
    if (strcmp(req->type, "conditioning.tokenize") == 0) e = handle_tokenize(p, data, req->job, result);
    else if (strcmp(req->type, "conditioning.encode") == 0) e = handle_encode(p, data, req->job, result);
    else if (strcmp(req->type, "conditioning.embeddings") == 0) e = handle_embeddings(p, result);
    else if (strcmp(req->type, "conditioning.preprocess") == 0) e = handle_preprocess(p, data, result);
    else e = p->api->error_new(SDRT_UNKNOWN_TYPE, NULL, "%s: not served by the conditioning plugin", req->type);
    cJSON_Delete(data);
    return e;
}

/* ---- lifecycle ---------------------------------------------------------------- */

/* "<folder of this plugin>/sdrt_conditioning.data/tokenizer[_2]" when it
 * holds a vocab.json (the CLIP BPE files installed with sdrt), else NULL. */
static char *bundled_tokenizer_dir(int second) {
    char dir[4096];
#if !defined(_WIN32)
    Dl_info info;
    if (!dladdr((void *)bundled_tokenizer_dir, &info) || !info.dli_fname) return NULL;
    snprintf(dir, sizeof dir, "%s", info.dli_fname);
#else
    return NULL; /* the conditioning plugin is not built for Windows yet */
#endif
    char *slash = strrchr(dir, '/');
    if (!slash) return NULL;
    snprintf(slash + 1, sizeof dir - (size_t)(slash + 1 - dir), "sdrt_conditioning.data/%s",
             second ? "tokenizer_2" : "tokenizer");
    char vocab[4200];
    struct stat sb;
    snprintf(vocab, sizeof vocab, "%s/vocab.json", dir);
    return stat(vocab, &sb) == 0 && S_ISREG(sb.st_mode) ? strdup(dir) : NULL;
}

static void emb_skipped(void *ctx, const char *path, const char *why) {
    cond_plugin *p = ctx;
    (void)path; /* `why` names it */
    if (p->api->log) p->api->log(p->host, SDRT_LOG_WARN, "embedding skipped: %s", why);
}

static int add_roots(const cJSON *v, const char ***roots, size_t *n) {
    for (const cJSON *r = cJSON_IsArray(v) ? v->child : v; r; r = cJSON_IsArray(v) ? r->next : NULL) {
        if (!cJSON_IsString(r)) return -1;
        const char **g = realloc(*roots, (*n + 1) * sizeof *g);
        if (!g) return -1;
        *roots = g;
        g[(*n)++] = r->valuestring;
    }
    return 0;
}

/* The plugin's own embedding_roots, then the host's. */
static sdrt_error *load_embeddings(cond_plugin *p, const cJSON *own) {
    cJSON *settings = p->api->settings_json ? cJSON_Parse(p->api->settings_json(p->host)) : NULL;
    const char **roots = NULL;
    size_t n = 0;
    sdrt_error *e = NULL;
    if (add_roots(own, &roots, &n))
        e = fail(p, SDRT_INVALID_ARGUMENT, "conditioning config: embedding_roots must be a folder or a list of folders");
    else if (add_roots(cJSON_GetObjectItemCaseSensitive(settings, "embedding_roots"), &roots, &n) ||
             emb_scan(roots, n, emb_skipped, p, &p->emb))
        e = fail(p, SDRT_RESOURCE_EXHAUSTED, "conditioning: out of memory while reading embeddings");
    free(roots);
    cJSON_Delete(settings);
    return e;
}

/* The precision of encodes that name none: the plugin config's "precision",
 * else the host's top-level one (settings), else "auto". */
static sdrt_error *default_precision(cond_plugin *p, const cJSON *own) {
    cJSON *settings = p->api->settings_json ? cJSON_Parse(p->api->settings_json(p->host)) : NULL;
    const cJSON *v = own ? own : cJSON_GetObjectItemCaseSensitive(settings, "precision");
    char msg[200];
    sdrt_error *e = NULL;
    p->precision = SDRT_PRECISION_AUTO;
    if (v && (!cJSON_IsString(v) ||
              sdrt_precision_parse(v->valuestring, "precision", &p->precision, msg, sizeof msg) != SDRT_OK))
        e = fail(p, SDRT_INVALID_ARGUMENT, "conditioning config: precision: must be one of " SDRT_PRECISION_CHOICES);
    cJSON_Delete(settings);
    return e;
}

static sdrt_error *parse_config(cond_plugin *p, const char *config_json) {
    cJSON *cfg = cJSON_Parse(config_json ? config_json : "{}");
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return fail(p, SDRT_INVALID_ARGUMENT, "conditioning config: not a JSON object");
    }
    const char *keys[2] = {"tokenizer_dir", "tokenizer_2_dir"};
    for (int i = 0; i < 2; i++) {
        const char *v = str_field(cfg, keys[i]);
        if (v) p->tok_dir[i] = strdup(v);
        else p->tok_dir[i] = bundled_tokenizer_dir(i);
    }
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(cfg, "max_prompt_chunks");
    if (mc && (!cJSON_IsNumber(mc) || mc->valuedouble < 1 || mc->valuedouble > 4096)) {
        cJSON_Delete(cfg);
        return fail(p, SDRT_INVALID_ARGUMENT, "conditioning config: max_prompt_chunks must be an integer 1..4096");
    }
    p->max_chunks = mc ? mc->valueint : COND_DEFAULT_MAX_CHUNKS;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cfg, "threads");
    p->threads = cJSON_IsNumber(t) && t->valueint > 0 ? t->valueint : 0;
    sdrt_error *pe = default_precision(p, cJSON_GetObjectItemCaseSensitive(cfg, "precision"));
    if (pe) {
        cJSON_Delete(cfg);
        return pe;
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(cfg, "cache");
    p->cache_size = cJSON_IsNumber(c) && c->valueint > 0 ? c->valueint : 4;
    if (p->cache_size > COND_CACHE_MAX) p->cache_size = COND_CACHE_MAX;
    sdrt_error *e = load_embeddings(p, cJSON_GetObjectItemCaseSensitive(cfg, "embedding_roots"));
    cJSON_Delete(cfg);
    return e;
}

static void plugin_shutdown(void *instance) {
    cond_plugin *p = instance;
    if (!p) return;
    for (int i = 0; i < COND_CACHE_MAX; i++) {
        free(p->cache[i].model_id);
        cond_model_free(p->cache[i].cm);
    }
    while (p->retired_list) {
        retired *r = p->retired_list;
        p->retired_list = r->next;
        cond_model_free(r->cm);
        free(r);
    }
    free(p->tok_dir[0]);
    free(p->tok_dir[1]);
    emb_set_free(p->emb);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static sdrt_error *plugin_init(const sdrt_host_api *api, sdrt_host *host, const char *config_json,
                               void **instance) {
    cond_plugin *p = calloc(1, sizeof *p);
    if (!p) return api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "conditioning: out of memory");
    p->api = api;
    p->host = host;
    p->scope = (sdrt_file_scope){.api = api, .host = host, .kind = "model"};
    pthread_mutex_init(&p->lock, NULL);
    sdrt_error *e = parse_config(p, config_json);
    p->iface = (sdrt_cond_iface){SDRT_STRUCT_SIZE(sdrt_cond_iface, result_free), p, iface_encode,
                                 iface_result_free};
    if (!e) e = api->publish(host, SDRT_COND_IFACE_ID, &p->iface);
    if (e) {
        plugin_shutdown(p);
        return e;
    }
    *instance = p;
    return NULL;
}

static const void *plugin_get_interface(void *instance, const char *id) {
    cond_plugin *p = instance;
    return p && id && strcmp(id, SDRT_COND_IFACE_ID) == 0 ? &p->iface : NULL;
}

static const char *const message_types[] = {"conditioning.tokenize", "conditioning.encode",
                                            "conditioning.embeddings", "conditioning.preprocess", NULL};

static const sdrt_plugin_vtable vtable = {
    SDRT_STRUCT_SIZE(sdrt_plugin_vtable, get_interface), plugin_init, plugin_shutdown, plugin_handle,
    plugin_get_interface,
};

static const sdrt_plugin_desc desc = {
    SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable), SDRT_ABI_MAJOR, 0, "org.sdrt.conditioning", "0.1.0",
    "conditioning", "CLIP tokenizer, prompt weighting and text encoders", message_types, &vtable,
};

SDRT_PLUGIN_DEFINE(conditioning, desc)
