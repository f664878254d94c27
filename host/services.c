/* host/services.c - the host services table given to every plugin, and the
 * interface registry behind publish/acquire/release. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "sdrt/backend.h"
#include "os.h"

struct sdrt_host {
    host_plugin *plugin;   /* NULL for the host itself */
};

typedef struct reg_entry {
    char *id;
    const void *iface;
    const host_plugin *provider;
    int holders;
    struct reg_entry *next;
} reg_entry;

static pthread_mutex_t g_reg_lock = PTHREAD_MUTEX_INITIALIZER;
static reg_entry *g_registry;
static const host_config *g_cfg;
static char *g_settings_json;
/* model_roots followed by the hf_cache folders and the default Hugging Face
 * hub ($HF_HOME/hub, else ~/.cache/huggingface/hub), the places the model
 * plugin looks up repo ids: files a model reads may lie in any of them (an
 * HF snapshot links into its blobs/ folder). */
static char **g_model_read_roots;
static int g_n_model_read_roots;
static char g_hf_default[4096];

static const char *host_name(sdrt_host *h) {
    return h && h->plugin && h->plugin->desc ? h->plugin->desc->id : NULL;
}

static void api_log(sdrt_host *host, sdrt_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(host_name(host), level, fmt, ap);
    va_end(ap);
}

static sdrt_error *api_error_new(sdrt_status code, const char *data_json, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sdrt_error *e = error_vnew(code, data_json, fmt, ap);
    va_end(ap);
    return e;
}

static void job_event_line(sdrt_job *job, const char *event_name, const char *data_json) {
    events_emit(job, event_name, data_json);
}

static void api_progress(sdrt_job *job, const sdrt_progress *p) {
    if (!job || !p) return;
    cJSON *d = cJSON_CreateObject();
    job->progress = p->progress;
    if (p->stage) snprintf(job->stage, sizeof job->stage, "%s", p->stage);
    if (SDRT_HAS_MEMBER(p, sdrt_progress, steps)) {
        job->step = p->step;
        job->steps = p->steps;
    }
    cJSON_AddNumberToObject(d, "progress", p->progress);
    cJSON_AddStringToObject(d, "stage", job->stage);
    if (job->steps > 0) {
        cJSON_AddNumberToObject(d, "step", job->step);
        cJSON_AddNumberToObject(d, "steps", job->steps);
    }
    double elapsed = host_now() - job->t_start;
    cJSON_AddNumberToObject(d, "elapsed", elapsed);
    if (p->progress > 0 && p->progress <= 1)
        cJSON_AddNumberToObject(d, "eta", elapsed * (1 - p->progress) / p->progress);
    if (SDRT_HAS_MEMBER(p, sdrt_progress, message) && p->message)
        cJSON_AddStringToObject(d, "message", p->message);
    char *s = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    if (s) job_event_line(job, "progress", s);
    free(s);
}

static void api_event(sdrt_job *job, const char *event_name, const char *data_json) {
    if (!job || !event_name) return;
    job_event_line(job, event_name, data_json ? data_json : "{}");
}

static void api_warn(sdrt_job *job, const char *message) {
    if (!message) return;
    if (!job) {
        log_msg(NULL, SDRT_LOG_WARN, "%s", message);
        return;
    }
    job = job_root(job); /* an inner request's warnings are its caller's */
    job_add_warning(job, message);
    /* A problem that does not end the request: also an `error` event, so a
     * client sees it when it happens, not only in the final warnings. */
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "message", message);
    cJSON_AddBoolToObject(d, "fatal", 0);
    char *s = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    if (s) events_emit(job, "error", s);
    free(s);
}

/* An inner request (sdrt_host_api.call) sees its parents' cancel, stop
 * and pause as its own. */
static int api_is_cancelled(sdrt_job *job) {
    for (; job; job = job->parent)
        if (atomic_load(&job->cancelled)) return 1;
    return 0;
}

static int api_stop_requested(sdrt_job *job) {
    for (; job; job = job->parent)
        if (atomic_load(&job->stop_after) != 0 || atomic_load(&job->cancelled) != 0) return 1;
    return 0;
}

static int any_paused(sdrt_job *job) {
    for (; job; job = job->parent)
        if (atomic_load(&job->paused)) return 1;
    return 0;
}

static void api_job_set_user(sdrt_job *job, void *user) {
    if (job) atomic_store(&job->user, user);
}

static void *api_job_user(sdrt_job *job) { return job ? atomic_load(&job->user) : NULL; }

static int api_wait_if_paused(sdrt_job *job) {
    if (!job) return 0;
    while (any_paused(job) && !api_is_cancelled(job)) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return api_is_cancelled(job);
}

static reg_entry *registry_find(const char *id) {
    for (reg_entry *e = g_registry; e; e = e->next)
        if (strcmp(e->id, id) == 0) return e;
    return NULL;
}

static sdrt_error *api_publish(sdrt_host *host, const char *id, const void *iface) {
    if (!id || !iface) return error_new(SDRT_INVALID_ARGUMENT, NULL, "publish: id and iface are required");
    pthread_mutex_lock(&g_reg_lock);
    reg_entry *e = registry_find(id);
    if (e) {
        const char *other = e->provider && e->provider->desc ? e->provider->desc->id : "host";
        pthread_mutex_unlock(&g_reg_lock);
        return error_new(SDRT_ALREADY_EXISTS, NULL, "interface '%s' is already published by %s", id, other);
    }
    e = calloc(1, sizeof *e);
    if (!e || !(e->id = strdup(id))) {
        free(e);
        pthread_mutex_unlock(&g_reg_lock);
        return error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "publish: out of memory");
    }
    e->iface = iface;
    e->provider = host ? host->plugin : NULL;
    e->next = g_registry;
    g_registry = e;
    pthread_mutex_unlock(&g_reg_lock);
    return NULL;
}

static const void *api_acquire(sdrt_host *host, const char *id, sdrt_error **err) {
    pthread_mutex_lock(&g_reg_lock);
    reg_entry *e = id ? registry_find(id) : NULL;
    const void *iface = NULL;
    if (e) {
        e->holders++;
        iface = e->iface;
    }
    pthread_mutex_unlock(&g_reg_lock);
    if (!iface && err)
        *err = error_new(SDRT_NOT_FOUND, NULL, "interface '%s' is not published (is its plugin loaded?)",
                         id ? id : "(null)");
    return iface;
}

static void api_release(sdrt_host *host, const char *id) {
    pthread_mutex_lock(&g_reg_lock);
    reg_entry *e = id ? registry_find(id) : NULL;
    if (e && e->holders > 0) e->holders--;
    pthread_mutex_unlock(&g_reg_lock);
}

int64_t registry_device_allocated_bytes(void) {
    int64_t v = -1;
    pthread_mutex_lock(&g_reg_lock);
    reg_entry *e = registry_find(SDRT_BACKEND_IFACE_ID);
    const sdrt_backend_iface *b = e ? e->iface : NULL;
    if (b && SDRT_IFACE_HAS_(b, sdrt_backend_iface, device_allocated_bytes)) v = b->device_allocated_bytes(b->self);
    pthread_mutex_unlock(&g_reg_lock);
    return v;
}

int registry_holders(const host_plugin *p) {
    int n = 0;
    pthread_mutex_lock(&g_reg_lock);
    for (reg_entry *e = g_registry; e; e = e->next)
        if (e->provider == p) n += e->holders;
    pthread_mutex_unlock(&g_reg_lock);
    return n;
}

void registry_drop_plugin(const host_plugin *p) {
    pthread_mutex_lock(&g_reg_lock);
    reg_entry **pp = &g_registry;
    while (*pp) {
        reg_entry *e = *pp;
        if (e->provider == p) {
            *pp = e->next;
            free(e->id);
            free(e);
        } else {
            pp = &e->next;
        }
    }
    pthread_mutex_unlock(&g_reg_lock);
}

static void *api_alloc(size_t size) { return malloc(size ? size : 1); }
static void api_free(void *ptr) { free(ptr); }

static const char *api_settings_json(sdrt_host *host) { return g_settings_json ? g_settings_json : "{}"; }

static char *api_resolve_path(sdrt_host *host, const char *kind, const char *path, sdrt_error **err) {
    sdrt_error *e = NULL;
    char *out = NULL;
    if (!g_cfg) {
        e = error_new(SDRT_FAILED_PRECONDITION, NULL, "host is not configured");
    } else if (kind && strcmp(kind, "model") == 0) {
        out = paths_resolve(path, g_model_read_roots, g_n_model_read_roots, g_cfg->allow_any_path, "model", &e);
    } else if (kind && strcmp(kind, "output") == 0) {
        out = paths_resolve(path, g_cfg->output_roots, g_cfg->n_output_roots, g_cfg->allow_any_path, "output", &e);
    } else {
        e = error_new(SDRT_INVALID_ARGUMENT, NULL, "resolve_path: unknown kind '%s'", kind ? kind : "(null)");
    }
    if (err) *err = e;
    else error_free(e);
    return out;
}

static const sdrt_host_api g_api = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_host_api, start),
    .abi_major = SDRT_ABI_MAJOR,
    .abi_minor = SDRT_ABI_MINOR,
    .log = api_log,
    .error_new = api_error_new,
    .error_free = error_free,
    .progress = api_progress,
    .event = api_event,
    .warn = api_warn,
    .is_cancelled = api_is_cancelled,
    .wait_if_paused = api_wait_if_paused,
    .stop_requested = api_stop_requested,
    .job_set_user = api_job_set_user,
    .job_user = api_job_user,
    .publish = api_publish,
    .acquire = api_acquire,
    .release = api_release,
    .alloc = api_alloc,
    .free = api_free,
    .settings_json = api_settings_json,
    .resolve_path = api_resolve_path,
    .call = call_internal,
    .start = call_detached,
};

const sdrt_host_api *services_api(void) { return &g_api; }

static cJSON *string_array(char **items, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        char *real = os_realpath(items[i]);
        cJSON_AddItemToArray(a, cJSON_CreateString(real ? real : items[i]));
        free(real);
    }
    return a;
}

static void model_read_roots(const host_config *cfg) {
    free(g_model_read_roots);
    const cJSON *hf = cJSON_GetObjectItemCaseSensitive(cfg->root, "hf_cache");
    int n_hf = cJSON_IsArray(hf) ? cJSON_GetArraySize(hf) : 0;
    g_model_read_roots = calloc((size_t)(cfg->n_model_roots + n_hf) + 2, sizeof(char *));
    g_n_model_read_roots = 0;
    if (!g_model_read_roots) return;
    for (int i = 0; i < cfg->n_model_roots; i++) g_model_read_roots[g_n_model_read_roots++] = cfg->model_roots[i];
    const cJSON *it;
    cJSON_ArrayForEach(it, hf) {
        if (cJSON_IsString(it)) g_model_read_roots[g_n_model_read_roots++] = it->valuestring;
    }
    const char *hf_home = getenv("HF_HOME"), *home = getenv("HOME");
    g_hf_default[0] = '\0';
    if (hf_home && *hf_home) snprintf(g_hf_default, sizeof g_hf_default, "%s/hub", hf_home);
    else if (home && *home) snprintf(g_hf_default, sizeof g_hf_default, "%s/.cache/huggingface/hub", home);
    if (g_hf_default[0]) g_model_read_roots[g_n_model_read_roots++] = g_hf_default;
}

void services_configure(const host_config *cfg) {
    g_cfg = cfg;
    model_read_roots(cfg);
    cJSON *s = cJSON_CreateObject();
    cJSON_AddItemToObject(s, "model_roots", string_array(cfg->model_roots, cfg->n_model_roots));
    cJSON_AddItemToObject(s, "output_roots", string_array(cfg->output_roots, cfg->n_output_roots));
    cJSON_AddBoolToObject(s, "allow_any_path", cfg->allow_any_path);
    const cJSON *hf = cJSON_GetObjectItemCaseSensitive(cfg->root, "hf_cache");
    cJSON_AddItemToObject(s, "hf_cache", hf ? cJSON_Duplicate(hf, 1) : cJSON_CreateArray());
    const cJSON *emb = cJSON_GetObjectItemCaseSensitive(cfg->root, "embedding_roots");
    cJSON_AddItemToObject(s, "embedding_roots", emb ? cJSON_Duplicate(emb, 1) : cJSON_CreateArray());
    const cJSON *threads = cJSON_GetObjectItemCaseSensitive(cfg->root, "threads");
    cJSON_AddNumberToObject(s, "threads", cJSON_IsNumber(threads) ? threads->valuedouble : 0);
    /* Top-level defaults plugins read when their own config has none:
     * "device" (the device plugin), "precision" (the computing plugins). */
    static const char *const passed[] = {"device", "precision"};
    for (size_t i = 0; i < sizeof passed / sizeof passed[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg->root, passed[i]);
        if (cJSON_IsString(v)) cJSON_AddStringToObject(s, passed[i], v->valuestring);
    }
    free(g_settings_json);
    g_settings_json = cJSON_PrintUnformatted(s);
    cJSON_Delete(s);
}

sdrt_host *services_host_new(host_plugin *p) {
    sdrt_host *h = calloc(1, sizeof *h);
    if (h) h->plugin = p;
    return h;
}

void services_host_free(sdrt_host *h) { free(h); }
