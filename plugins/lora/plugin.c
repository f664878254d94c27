/* plugins/lora/plugin.c - the lora plugin: lifecycle and sdrt.lora/1.
 *
 * Config (all optional): {"subdirs": ["loras", "Lora", "lora"], "threads": n}.
 * subdirs are folders under each model root searched (before the roots
 * themselves) for adapter names and listed by lora.list; threads (default:
 * the host's "threads", else 2) run the merge. */
#define _GNU_SOURCE
#include "plugin.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "messages.h"
#include "set.h"

#define ERR_LEN 1024
#define MAX_ADAPTERS 64

/* ---- sdrt.lora/1 ----------------------------------------------------------- */

static sdrt_error *check_adapters(const lora_plugin *p, const sdrt_lora_adapter *a, size_t n) {
    if (!a || n == 0 || n > MAX_ADAPTERS)
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "adapters: between 1 and %d are needed, got %zu",
                                 MAX_ADAPTERS, a ? n : 0);
    for (size_t i = 0; i < n; i++) {
        int has_w = SDRT_HAS_MEMBER(&a[i], sdrt_lora_adapter, weight);
        if (!SDRT_HAS_MEMBER(&a[i], sdrt_lora_adapter, model_id) || !a[i].model_id || !*a[i].model_id)
            return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "adapters[%zu].model_id: missing", i);
        if (has_w && !isfinite(a[i].weight))
            return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "adapters[%zu].weight: not a finite number", i);
    }
    return NULL;
}

/* Opens the n adapter files; on failure closes what it opened. */
static sdrt_status open_files(const lora_plugin *p, const sdrt_lora_adapter *a, size_t n, lora_file **files,
                              float *weights, char *err, size_t errlen) {
    for (size_t i = 0; i < n; i++) {
        char *path = NULL;
        sdrt_status st = lora_resolve(p, a[i].model_id, &path, err, errlen);
        if (st == SDRT_OK) st = lora_file_open_scoped(path, &p->scope, &files[i], err, errlen);
        free(path);
        if (st != SDRT_OK) {
            for (size_t j = 0; j < i; j++) lora_file_close(files[j]);
            return st;
        }
        weights[i] = SDRT_HAS_MEMBER(&a[i], sdrt_lora_adapter, weight) ? a[i].weight : 1.0f;
    }
    return SDRT_OK;
}

static sdrt_status build_set(lora_plugin *p, const sdrt_model_iface *mi, sdrt_model *m,
                             const sdrt_lora_adapter *adapters, size_t n, sdrt_job *job, sdrt_lora_set **out,
                             char *err, size_t errlen) {
    lora_file *files[MAX_ADAPTERS];
    float weights[MAX_ADAPTERS];
    sdrt_status st = open_files(p, adapters, n, files, weights, err, errlen);
    if (st != SDRT_OK) return st;
    for (size_t i = 0; st == SDRT_OK && i < n; i++) st = lora_check_arch(files[i], mi->arch(m), mi->id(m), err, errlen);
    if (st == SDRT_OK) {
        lora_model_ref ref;
        lora_model_ref_init(&ref, mi, m);
        lora_set_input in = {&ref, mi->id(m), files, weights, n, p->threads, p->api, job};
        st = lora_set_build(&in, out, err, errlen);
        if (st == SDRT_OK && lora_set_resident_init(*out, sdrt_model_weights(mi, m)) != 0) {
            lora_set_free(*out);
            *out = NULL;
            snprintf(err, errlen, "lora: out of memory");
            st = SDRT_RESOURCE_EXHAUSTED;
        }
    }
    /* The set keeps only merged copies: the files can go now. */
    for (size_t i = 0; i < n; i++) lora_file_close(files[i]);
    return st;
}

static sdrt_error *iface_prepare(void *self, sdrt_model *m, const sdrt_lora_adapter *adapters, size_t n,
                                 sdrt_job *job, sdrt_lora_set **out) {
    lora_plugin *p = self;
    if (out) *out = NULL;
    sdrt_error *e = check_adapters(p, adapters, n);
    if (e) return e;
    if (!m || !out) return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "lora: a model and an output are required");
    const sdrt_model_iface *mi = p->api->acquire(p->host, SDRT_MODEL_IFACE_ID, &e);
    if (!mi) return e ? e : p->api->error_new(SDRT_UNAVAILABLE, NULL, "lora: no model plugin (sdrt.model/1)");
    char err[ERR_LEN] = "";
    sdrt_status st = build_set(p, mi, m, adapters, n, job, out, err, sizeof err);
    p->api->release(p->host, SDRT_MODEL_IFACE_ID);
    return st == SDRT_OK ? NULL : p->api->error_new(st, NULL, "%s", err[0] ? err : "lora: failed");
}

static const sdrt_tensor *iface_tensor(const sdrt_lora_set *s, const char *component, const char *name) {
    return lora_set_tensor(s, component, name);
}
static size_t iface_n_warnings(const sdrt_lora_set *s) { return s ? s->n_warnings : 0; }
static const char *iface_warning(const sdrt_lora_set *s, size_t i) {
    return s && i < s->n_warnings ? s->warnings[i] : NULL;
}
static size_t iface_n_patched(const sdrt_lora_set *s) { return s ? s->n : 0; }
static uint64_t iface_bytes(const sdrt_lora_set *s) { return s ? s->bytes : 0; }
static sdrt_weight_store *iface_weights(const sdrt_lora_set *s) { return s ? s->resident : NULL; }
static void iface_destroy(void *self, sdrt_lora_set *s) {
    (void)self;
    lora_set_free(s);
}

/* ---- lifecycle -------------------------------------------------------------- */

static int push(char ***list, size_t *n, char *s) {
    if (!s) return -1;
    char **g = realloc(*list, (*n + 1) * sizeof *g);
    if (!g) {
        free(s);
        return -1;
    }
    *list = g;
    g[(*n)++] = s;
    return 0;
}

static char *join(const char *a, const char *b) {
    char *s = NULL;
    return asprintf(&s, "%s/%s", a, b) < 0 ? NULL : s;
}

/* lookup.roots = [root/subdir ...] + [root ...] (model roots from the host). */
static int expand_roots(lora_plugin *p, const cJSON *subdirs) {
    char **roots = p->lookup.roots, **all = NULL;
    size_t n_roots = p->lookup.n_roots, n = 0;
    static const char *const DEFAULT[] = {"loras", "Lora", "lora"};
    int rc = 0;
    for (size_t r = 0; r < n_roots && rc == 0; r++) {
        if (subdirs) {
            for (const cJSON *s = subdirs->child; s && rc == 0; s = s->next) rc = push(&all, &n, join(roots[r], s->valuestring));
        } else {
            for (size_t d = 0; d < 3 && rc == 0; d++) rc = push(&all, &n, join(roots[r], DEFAULT[d]));
        }
    }
    p->n_lora_dirs = n;
    for (size_t r = 0; r < n_roots && rc == 0; r++) rc = push(&all, &n, strdup(roots[r]));
    for (size_t r = 0; r < n_roots; r++) free(roots[r]);
    free(roots);
    p->lookup.roots = all;
    p->lookup.n_roots = n;
    return rc;
}

static sdrt_error *read_config(const sdrt_host_api *api, sdrt_host *host, const char *config_json, cJSON **cfg,
                               int *threads) {
    *cfg = cJSON_Parse(config_json && *config_json ? config_json : "{}");
    if (!cJSON_IsObject(*cfg)) return api->error_new(SDRT_INVALID_ARGUMENT, NULL, "config: not a JSON object");
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(*cfg, "subdirs");
    if (sub && !cJSON_IsArray(sub)) return api->error_new(SDRT_INVALID_ARGUMENT, NULL, "config.subdirs: expected an array of folder names");
    for (const cJSON *s = sub ? sub->child : NULL; s; s = s->next)
        if (!cJSON_IsString(s) || !*s->valuestring || strstr(s->valuestring, ".."))
            return api->error_new(SDRT_INVALID_ARGUMENT, NULL, "config.subdirs: each entry must be a relative folder name without '..'");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(*cfg, "threads");
    if (t && (!cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble > 64))
        return api->error_new(SDRT_INVALID_ARGUMENT, NULL, "config.threads: expected a number 0..64");
    *threads = t ? (int)t->valuedouble : 0;
    if (*threads == 0) {
        cJSON *s = api->settings_json ? cJSON_Parse(api->settings_json(host)) : NULL;
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(s, "threads");
        *threads = cJSON_IsNumber(h) && h->valuedouble >= 1 && h->valuedouble <= 64 ? (int)h->valuedouble : 2;
        cJSON_Delete(s);
    }
    return NULL;
}

sdrt_error *lora_plugin_init(const sdrt_host_api *api, sdrt_host *host, const char *config_json, void **instance) {
    cJSON *cfg = NULL;
    int threads = 0;
    sdrt_error *e = read_config(api, host, config_json, &cfg, &threads);
    if (e) {
        cJSON_Delete(cfg);
        return e;
    }
    lora_plugin *p = calloc(1, sizeof *p);
    int rc = p ? lookup_init(&p->lookup, api, host) : -1;
    if (rc == 0) {
        /* Adapters are files under the roots, never Hugging Face repos. */
        for (size_t i = 0; i < p->lookup.n_hf; i++) free(p->lookup.hf_dirs[i]);
        p->lookup.n_hf = 0;
        rc = expand_roots(p, cJSON_GetObjectItemCaseSensitive(cfg, "subdirs"));
    }
    cJSON_Delete(cfg);
    if (rc != 0) {
        if (p) lookup_free(&p->lookup);
        free(p);
        return api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "lora plugin: out of memory");
    }
    p->api = api;
    p->host = host;
    p->threads = threads;
    p->scope = (sdrt_file_scope){.api = api, .host = host, .kind = "model", .extra_roots = p->lookup.hf_dirs,
                                 .n_extra_roots = p->lookup.n_hf};
    p->iface = (sdrt_lora_iface){
        .struct_size = SDRT_STRUCT_SIZE(sdrt_lora_iface, weights), .weights = iface_weights, .self = p, .prepare = iface_prepare,
        .tensor = iface_tensor, .n_warnings = iface_n_warnings, .warning = iface_warning,
        .n_patched = iface_n_patched, .bytes = iface_bytes, .destroy = iface_destroy,
    };
    if (api->publish && (e = api->publish(host, SDRT_LORA_IFACE_ID, &p->iface))) {
        lora_plugin_shutdown(p);
        return e;
    }
    *instance = p;
    return NULL;
}

void lora_plugin_shutdown(void *instance) {
    lora_plugin *p = instance;
    if (!p) return;
    lookup_free(&p->lookup);
    free(p);
}

const void *lora_plugin_get_interface(void *instance, const char *id) {
    lora_plugin *p = instance;
    return p && id && strcmp(id, SDRT_LORA_IFACE_ID) == 0 ? &p->iface : NULL;
}

sdrt_error *lora_plugin_handle(void *instance, const sdrt_request *req, char **result_json) {
    lora_plugin *p = instance;
    *result_json = NULL;
    cJSON *data = cJSON_Parse(req->data_json ? req->data_json : "{}");
    if (!cJSON_IsObject(data)) {
        cJSON_Delete(data);
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "data: not a JSON object");
    }
    if (p->api->is_cancelled && p->api->is_cancelled(req->job)) {
        cJSON_Delete(data);
        return p->api->error_new(SDRT_CANCELLED, NULL, "%s cancelled before it started", req->type);
    }
    cJSON *out = NULL;
    sdrt_error *e;
    if (!strcmp(req->type, "lora.list")) e = lora_msg_list(p, data, &out);
    else if (!strcmp(req->type, "lora.inspect")) e = lora_msg_inspect(p, data, req->job, &out);
    else e = p->api->error_new(SDRT_UNKNOWN_TYPE, NULL, "type: '%s' is not served by the lora plugin", req->type);
    cJSON_Delete(data);
    if (e) {
        cJSON_Delete(out);
        return e;
    }
    char *s = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    size_t n = s ? strlen(s) + 1 : 0;
    *result_json = s ? p->api->alloc(n) : NULL;
    if (*result_json) memcpy(*result_json, s, n);
    free(s);
    return *result_json ? NULL : p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "out of memory");
}
