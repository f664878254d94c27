/* plugins/model/plugin.c - the model plugin: sdrt.model/1 and the model.*
 * messages over the cache, the lookup and the store. */
#define _GNU_SOURCE
#include "plugin.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "convert.h"
#include "scan.h"
#include "sdrt/quant.h"

#define ERR_LEN 1024

/* ---- model ids with a weight type ------------------------------------------ */

/* The cache key of `model_id` quantised to `weight_type` (a ggml name, or
 * NULL): the resolved path, plus "#<type>" when quantised on load. The id
 * itself may carry the suffix ("<id>#q8_0", as sdrt.model/1 callers such
 * as inference.run's weight_type pass it). */
static sdrt_status resolve_key(model_plugin *p, const char *model_id, const char *weight_type, char **key, char *err,
                               size_t errlen) {
    *key = NULL;
    char *id = strdup(model_id), *path = NULL;
    if (!id) return SDRT_RESOURCE_EXHAUSTED;
    char *h = strrchr(id, '#');
    if (h && sdrt_dtype_from_ggml_name(h + 1) >= 0) {
        if (weight_type && strcmp(weight_type, h + 1) != 0) {
            snprintf(err, errlen, "weight_type: '%s' conflicts with the '#%s' in model_id", weight_type, h + 1);
            free(id);
            return SDRT_INVALID_ARGUMENT;
        }
        *h = 0;
        weight_type = h + 1;
    }
    sdrt_status st = SDRT_OK;
    if (weight_type) {
        int wt = sdrt_dtype_from_ggml_name(weight_type);
        if (wt < 0 || !sdrt_quant_can_write((sdrt_dtype)wt)) {
            snprintf(err, errlen, "weight_type: '%s' is not one sdrt quantises to (q8_0, q5_1, q5_0, q4_1, q4_0, q4_K, f16, bf16, "
                     "f32; other K-quant GGUF files load as they are)", weight_type);
            st = SDRT_INVALID_ARGUMENT;
        }
    }
    if (st == SDRT_OK) st = lookup_resolve(&p->lookup, id, &path, err, errlen);
    if (st == SDRT_OK && weight_type) {
        if (asprintf(key, "%s#%s", path, weight_type) < 0) *key = NULL, st = SDRT_RESOURCE_EXHAUSTED;
        free(path);
    } else if (st == SDRT_OK) {
        *key = path;
    }
    if (st == SDRT_RESOURCE_EXHAUSTED) snprintf(err, errlen, "out of memory");
    free(id);
    return st;
}

/* ---- sdrt.model/1 -------------------------------------------------------- */

static sdrt_error *iface_open(void *self, const char *model_id, sdrt_job *job, sdrt_model **out) {
    model_plugin *p = self;
    char err[ERR_LEN], *path = NULL;
    *out = NULL;
    sdrt_status st = resolve_key(p, model_id, NULL, &path, err, sizeof err);
    if (st == SDRT_OK) st = cache_open(&p->cache, path, store_load_scoped, &p->scope, out, NULL, err, sizeof err);
    free(path);
    return st == SDRT_OK ? NULL : p->api->error_new(st, NULL, "%s", err);
}

static void iface_close(void *self, sdrt_model *m) { cache_close(&((model_plugin *)self)->cache, m); }
static const char *iface_arch(sdrt_model *m) { return m->arch; }
static const char *iface_id(sdrt_model *m) { return m->id; }

static const char *iface_config(sdrt_model *m, const char *component) {
    store_component *c = component ? store_component_get(m, component) : NULL;
    return c ? c->config_json : NULL;
}

static const sdrt_tensor *iface_tensor(sdrt_model *m, const char *component, const char *name) {
    return store_tensor(m, component, name);
}

static sdrt_weight_store *iface_weights(sdrt_model *m) { return m->resident; }

static uint64_t iface_take_uploaded(void *self, sdrt_job *job) {
    return sdrt_weight_budget_take_job(((model_plugin *)self)->cache.weights, job);
}

static const char *iface_file_path(sdrt_model *m, const char *component, const char *file) {
    return store_file_path(m, component, file);
}

/* ---- messages ------------------------------------------------------------ */

static sdrt_error *reply(model_plugin *p, cJSON *o, char **result_json) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "out of memory");
    size_t n = strlen(s) + 1;
    *result_json = p->api->alloc(n);
    if (*result_json) memcpy(*result_json, s, n);
    free(s);
    return *result_json ? NULL : p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "out of memory");
}

static sdrt_error *model_id_of(model_plugin *p, const cJSON *data, const char **id) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, "model_id");
    if (!cJSON_IsString(v) || !*v->valuestring)
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "model_id: missing or not a non-empty string");
    *id = v->valuestring;
    return NULL;
}

static cJSON *summary(const sdrt_model *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", m->id);
    cJSON_AddStringToObject(o, "architecture", m->arch);
    cJSON *comps = cJSON_AddArrayToObject(o, "components");
    for (int i = 0; i < m->n_comps; i++) cJSON_AddItemToArray(comps, cJSON_CreateString(m->comps[i].name));
    cJSON *bd = cJSON_AddObjectToObject(o, "bytes_by_dtype");
    for (int d = 0; d < SDRT_DTYPE_COUNT_; d++)
        if (m->bytes_by_dtype[d]) cJSON_AddNumberToObject(bd, store_dtype_name((sdrt_dtype)d), (double)m->bytes_by_dtype[d]);
    cJSON_AddNumberToObject(o, "bytes", (double)m->bytes);
    cJSON_AddNumberToObject(o, "tensors", (double)m->n_tensors);
    cJSON_AddNumberToObject(o, "load_time_s", m->load_time_s);
    cJSON_AddStringToObject(o, "source", m->source);
    if (m->n_unmapped) cJSON_AddNumberToObject(o, "unmapped_tensors", (double)m->n_unmapped);
    return o;
}

static sdrt_error *open_for(model_plugin *p, const cJSON *data, sdrt_model **m, int *loaded) {
    const char *id = NULL;
    sdrt_error *e = model_id_of(p, data, &id);
    if (e) return e;
    const cJSON *wt = cJSON_GetObjectItemCaseSensitive(data, "weight_type");
    if (wt && !cJSON_IsString(wt))
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "weight_type: must be a string such as \"q8_0\"");
    char err[ERR_LEN], *path = NULL;
    sdrt_status st = resolve_key(p, id, wt ? wt->valuestring : NULL, &path, err, sizeof err);
    if (st == SDRT_OK) st = cache_open(&p->cache, path, store_load_scoped, &p->scope, m, loaded, err, sizeof err);
    free(path);
    return st == SDRT_OK ? NULL : p->api->error_new(st, NULL, "%s", err);
}

/* model.load's schema names fields the model plugin does not act on: say
 * so in the response's warnings rather than ignore them silently. */
static void warn_unused_load_fields(model_plugin *p, const cJSON *data, sdrt_job *job) {
    if (!p->api->warn) return;
    const cJSON *dev = cJSON_GetObjectItemCaseSensitive(data, "device");
    if (cJSON_IsString(dev) && strcmp(dev->valuestring, "auto") != 0)
        p->api->warn(job, "device: model.load maps the weights in host memory; every request computes on the "
                          "deployment's device (the device plugin's \"device\" setting), so this field was not used");
    if (cJSON_GetObjectItemCaseSensitive(data, "dtype"))
        p->api->warn(job, "dtype: weights keep the dtype they are stored in; this field was not used");
    if (cJSON_GetObjectItemCaseSensitive(data, "components"))
        p->api->warn(job, "components: every component of the model is loaded; this field was not used");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(data, "pin")))
        p->api->warn(job, "pin: not supported: the model stays cached while in use and is evicted least recently "
                          "used beyond the cache budget (cache_bytes)");
}

static sdrt_error *on_load(model_plugin *p, const cJSON *data, sdrt_job *job, char **result_json) {
    warn_unused_load_fields(p, data, job);
    sdrt_model *m;
    int loaded = 0;
    sdrt_error *e = open_for(p, data, &m, &loaded);
    if (e) return e;
    cJSON *o = summary(m);
    cJSON_AddBoolToObject(o, "cached", !loaded);
    cache_close(&p->cache, m);
    return reply(p, o, result_json);
}

static sdrt_error *on_info(model_plugin *p, const cJSON *data, char **result_json) {
    sdrt_model *m;
    sdrt_error *e = open_for(p, data, &m, NULL);
    if (e) return e;
    cJSON *o = summary(m);
    cJSON *details = cJSON_AddArrayToObject(o, "component_details");
    for (int i = 0; i < m->n_comps; i++) {
        const store_component *c = &m->comps[i];
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "name", c->name);
        cJSON_AddNumberToObject(d, "tensors", (double)c->n);
        if (c->dir) cJSON_AddStringToObject(d, "path", c->dir);
        cJSON *cfg = c->config_json ? cJSON_Parse(c->config_json) : NULL;
        if (cfg) cJSON_AddItemToObject(d, "config", cfg);
        cJSON_AddItemToArray(details, d);
    }
    cache_close(&p->cache, m);
    return reply(p, o, result_json);
}

static sdrt_error *on_unload(model_plugin *p, const cJSON *data, char **result_json) {
    const char *id = NULL;
    sdrt_error *e = model_id_of(p, data, &id);
    if (e) return e;
    char err[ERR_LEN], *path = NULL;
    sdrt_status st = cache_unload(&p->cache, id, err, sizeof err);
    if (st == SDRT_NOT_FOUND && resolve_key(p, id, NULL, &path, err, sizeof err) == SDRT_OK)
        st = cache_unload(&p->cache, path, err, sizeof err);
    free(path);
    if (st != SDRT_OK) return p->api->error_new(st, NULL, "%s", err);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model_id", id);
    cJSON_AddBoolToObject(o, "unloaded", 1);
    return reply(p, o, result_json);
}

/* "output" inside the host's output roots (unless any path is allowed):
 * a request may only write where the deployment lets it. malloc'd. */
static sdrt_status output_path(model_plugin *p, const char *out, char **res, char *err, size_t errlen) {
    *res = NULL;
    if (p->lookup.allow_any_path || !p->api->resolve_path) {
        *res = strdup(out);
        return *res ? SDRT_OK : SDRT_RESOURCE_EXHAUSTED;
    }
    sdrt_error *e = NULL;
    char *r = p->api->resolve_path(p->host, "output", out, &e);
    if (!r) {
        sdrt_status code = e ? e->code : SDRT_PERMISSION_DENIED;
        snprintf(err, errlen, "output: %s", e ? e->message : "outside the output roots");
        if (e) p->api->error_free(e);
        return code;
    }
    *res = strdup(r);
    p->api->free(r);
    return *res ? SDRT_OK : SDRT_RESOURCE_EXHAUSTED;
}

/* model.convert: the model's single file rewritten as GGUF at "output"
 * (a new .gguf path inside the output roots, in an existing folder;
 * "overwrite": true replaces a file). */
static sdrt_error *on_convert(model_plugin *p, const cJSON *data, char **result_json) {
    const char *id = NULL;
    sdrt_error *e = model_id_of(p, data, &id);
    if (e) return e;
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(data, "output");
    const cJSON *wt = cJSON_GetObjectItemCaseSensitive(data, "weight_type");
    const cJSON *ow = cJSON_GetObjectItemCaseSensitive(data, "overwrite");
    if (!cJSON_IsString(out) || strlen(out->valuestring) < 6 ||
        strcmp(out->valuestring + strlen(out->valuestring) - 5, ".gguf") != 0)
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "output: must be a path ending in .gguf");
    if (!cJSON_IsString(wt))
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "weight_type: required, e.g. \"q8_0\"");
    if (ow && !cJSON_IsBool(ow)) return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "overwrite: must be a boolean");
    int dt = sdrt_dtype_from_ggml_name(wt->valuestring);
    if (dt < 0 || !sdrt_quant_can_write((sdrt_dtype)dt))
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                 "weight_type: '%s' is not one sdrt writes (q8_0, q5_1, q5_0, q4_1, q4_0, q4_K, f16, bf16, f32)",
                                 wt->valuestring);
    char err[ERR_LEN], *path = NULL, *dst = NULL;
    sdrt_status st = output_path(p, out->valuestring, &dst, err, sizeof err);
    if (st != SDRT_OK) return p->api->error_new(st, NULL, "%s", st == SDRT_RESOURCE_EXHAUSTED ? "out of memory" : err);
    struct stat sb;
    if (!cJSON_IsTrue(ow) && stat(dst, &sb) == 0) {
        free(dst);
        return p->api->error_new(SDRT_ALREADY_EXISTS, NULL, "output: %s exists (set \"overwrite\": true to replace it)",
                                 out->valuestring);
    }
    st = lookup_resolve(&p->lookup, id, &path, err, sizeof err);
    if (st == SDRT_OK && (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))) {
        snprintf(err, sizeof err, "model_id: %s is not a single-file checkpoint (.safetensors or .gguf)", path);
        st = SDRT_INVALID_ARGUMENT;
    }
    convert_stats cs;
    if (st == SDRT_OK) st = model_convert(path, dst, (sdrt_dtype)dt, &cs, err, sizeof err);
    free(path);
    if (st != SDRT_OK) {
        free(dst);
        return p->api->error_new(st, NULL, "%s", err);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "output", dst);
    free(dst);
    cJSON_AddStringToObject(o, "weight_type", wt->valuestring);
    cJSON_AddNumberToObject(o, "tensors", (double)cs.tensors);
    cJSON_AddNumberToObject(o, "quantised", (double)cs.quantised);
    cJSON_AddNumberToObject(o, "skipped", (double)cs.skipped);
    cJSON_AddNumberToObject(o, "bytes_in", (double)cs.bytes_in);
    cJSON_AddNumberToObject(o, "bytes_out", (double)cs.bytes_out);
    return reply(p, o, result_json);
}

static sdrt_error *on_list(model_plugin *p, char **result_json) {
    char *s = cache_list_json(&p->cache);
    cJSON *o = s ? cJSON_Parse(s) : NULL;
    free(s);
    return o ? reply(p, o, result_json) : p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "out of memory");
}

sdrt_error *model_plugin_handle(void *instance, const sdrt_request *req, char **result_json) {
    model_plugin *p = instance;
    *result_json = NULL;
    cJSON *data = cJSON_Parse(req->data_json ? req->data_json : "{}");
    if (!cJSON_IsObject(data)) {
        cJSON_Delete(data);
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "data: not a JSON object");
    }
    sdrt_error *e;
    if (!strcmp(req->type, "model.load")) e = on_load(p, data, req->job, result_json);
    else if (!strcmp(req->type, "model.info")) e = on_info(p, data, result_json);
    else if (!strcmp(req->type, "model.unload")) e = on_unload(p, data, result_json);
    else if (!strcmp(req->type, "model.list")) e = on_list(p, result_json);
    else if (!strcmp(req->type, "model.convert")) e = on_convert(p, data, result_json);
    else if (!strcmp(req->type, "model.scan")) e = reply(p, scan_roots(p->lookup.roots, p->lookup.n_roots, &p->scope), result_json);
    else e = p->api->error_new(SDRT_UNKNOWN_TYPE, NULL, "type: '%s' is not served by the model plugin", req->type);
    cJSON_Delete(data);
    return e;
}

/* ---- lifecycle ----------------------------------------------------------- */

static sdrt_error *parse_bytes(const sdrt_host_api *api, const cJSON *c, const char *key, uint64_t *out) {
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(c, key);
    if (b && (!cJSON_IsNumber(b) || b->valuedouble < 0))
        return api->error_new(SDRT_INVALID_ARGUMENT, NULL, "%s: must be a non-negative number of bytes", key);
    if (b) *out = (uint64_t)b->valuedouble;
    return NULL;
}

/* cache_bytes: mapped host bytes; device_weight_bytes: resident weight
 * copies per device (0 = as many as the device holds). */
static sdrt_error *parse_budget(const sdrt_host_api *api, const char *config_json, uint64_t *budget,
                                uint64_t *device_budget) {
    *budget = MODEL_DEFAULT_CACHE_BYTES;
    *device_budget = 0;
    cJSON *c = cJSON_Parse(config_json && *config_json ? config_json : "{}");
    sdrt_error *e = parse_bytes(api, c, "cache_bytes", budget);
    if (!e) e = parse_bytes(api, c, "device_weight_bytes", device_budget);
    cJSON_Delete(c);
    return e;
}

sdrt_error *model_plugin_init(const sdrt_host_api *api, sdrt_host *host, const char *config_json, void **instance) {
    uint64_t budget, device_budget;
    sdrt_error *e = parse_budget(api, config_json, &budget, &device_budget);
    if (e) return e;
    model_plugin *p = calloc(1, sizeof *p);
    if (!p || lookup_init(&p->lookup, api, host) != 0) {
        if (p) lookup_free(&p->lookup);
        free(p);
        return api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "model plugin: out of memory");
    }
    p->api = api;
    p->host = host;
    p->scope = (sdrt_file_scope){.api = api, .host = host, .kind = "model", .extra_roots = p->lookup.hf_dirs,
                                 .n_extra_roots = p->lookup.n_hf};
    if (cache_init(&p->cache, budget) != 0) {
        cache_destroy(&p->cache);
        lookup_free(&p->lookup);
        free(p);
        return api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "model plugin: out of memory");
    }
    cache_set_device_budget(&p->cache, device_budget);
    p->iface = (sdrt_model_iface){
        .struct_size = SDRT_STRUCT_SIZE(sdrt_model_iface, take_uploaded_bytes), .self = p, .open = iface_open,
        .close = iface_close, .arch = iface_arch, .config_json = iface_config, .tensor = iface_tensor,
        .file_path = iface_file_path, .id = iface_id, .weights = iface_weights,
        .take_uploaded_bytes = iface_take_uploaded,
    };
    if (api->publish && (e = api->publish(host, SDRT_MODEL_IFACE_ID, &p->iface))) {
        model_plugin_shutdown(p);
        return e;
    }
    *instance = p;
    return NULL;
}

void model_plugin_shutdown(void *instance) {
    model_plugin *p = instance;
    if (!p) return;
    cache_destroy(&p->cache);
    lookup_free(&p->lookup);
    free(p);
}

const void *model_plugin_get_interface(void *instance, const char *id) {
    model_plugin *p = instance;
    return p && id && strcmp(id, SDRT_MODEL_IFACE_ID) == 0 ? &p->iface : NULL;
}
