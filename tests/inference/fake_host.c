/* tests/inference/fake_host.c - see fake_host.h. Single-threaded use. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "fake_host.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PLUGINS 8
#define MAX_IFACES 16

struct sdrt_host {
    int index; /* plugin slot */
};

typedef struct fh_plugin {
    void *so;
    const sdrt_plugin_desc *desc;
    void *instance;
    struct sdrt_host handle;
} fh_plugin;

static struct {
    fh_plugin plugins[MAX_PLUGINS];
    int n;
    struct {
        const char *id;
        const void *iface;
    } ifaces[MAX_IFACES];
    int n_ifaces;
    char settings[4096];
    struct sdrt_host self;
} g;

static void fh_log(sdrt_host *host, sdrt_log_level level, const char *fmt, ...) {
    va_list ap;
    if (level > SDRT_LOG_WARN) return;
    va_start(ap, fmt);
    fprintf(stderr, "[plugin %d] ", host ? host->index : -1);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static sdrt_error *fh_error_new(sdrt_status code, const char *data_json, const char *fmt, ...) {
    sdrt_error *e = calloc(1, sizeof *e);
    char *msg = malloc(1024);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, 1024, fmt, ap);
    va_end(ap);
    e->struct_size = sizeof *e;
    e->code = code;
    e->message = msg;
    e->data_json = data_json ? strdup(data_json) : NULL;
    return e;
}

static void fh_error_free(sdrt_error *e) {
    if (!e) return;
    free((char *)e->message);
    free((char *)e->data_json);
    free(e);
}

static void fh_progress(sdrt_job *job, const sdrt_progress *p) {
    if (!job) return;
    job->progress_events++;
    if (p->steps > 0) {
        job->last_step = p->step;
        job->last_steps = p->steps;
    }
    if (job->cancel_at_step > 0 && p->step >= job->cancel_at_step) job->cancelled = 1;
}

static void fh_event(sdrt_job *job, const char *name, const char *data_json) {
    if (!job) return;
    job->events++;
    if (!job->keep_events) return;
    snprintf(job->last_event_name, sizeof job->last_event_name, "%s", name);
    free(job->last_event_data);
    job->last_event_data = strdup(data_json);
}

static void fh_warn(sdrt_job *job, const char *message) {
    if (job) job->warnings++;
    fprintf(stderr, "warning: %s\n", message);
}

static int fh_is_cancelled(sdrt_job *job) {
    return job ? job->cancelled : 0;
}

static int fh_wait_if_paused(sdrt_job *job) {
    return fh_is_cancelled(job);
}

static int fh_stop_requested(sdrt_job *job) {
    return job ? job->stop_after || job->cancelled : 0;
}

static void fh_job_set_user(sdrt_job *job, void *user) {
    if (job) job->user = user;
}

static void *fh_job_user(sdrt_job *job) {
    return job ? job->user : NULL;
}

static sdrt_error *fh_publish(sdrt_host *host, const char *id, const void *iface) {
    for (int i = 0; i < g.n_ifaces; i++)
        if (strcmp(g.ifaces[i].id, id) == 0) return fh_error_new(SDRT_ALREADY_EXISTS, NULL, "%s: already published", id);
    if (g.n_ifaces == MAX_IFACES) return fh_error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "registry full");
    g.ifaces[g.n_ifaces].id = strdup(id);
    g.ifaces[g.n_ifaces++].iface = iface;
    return NULL;
}

static const void *fh_acquire(sdrt_host *host, const char *id, sdrt_error **err) {
    for (int i = 0; i < g.n_ifaces; i++)
        if (strcmp(g.ifaces[i].id, id) == 0) return g.ifaces[i].iface;
    if (err) *err = fh_error_new(SDRT_NOT_FOUND, NULL, "%s: not published", id);
    return NULL;
}

static void fh_release(sdrt_host *host, const char *id) {
    (void)host, (void)id;
}

static void *fh_alloc(size_t n) {
    return malloc(n);
}

static void fh_free(void *p) {
    free(p);
}

static const char *fh_settings(sdrt_host *host) {
    return g.settings;
}

/* Every path is allowed (allow_any_path) except under /sdrt-denied/,
 * which stands for "outside the roots" in tests; relative paths are made
 * absolute under the output root. */
static char *fh_resolve_path(sdrt_host *host, const char *kind, const char *path, sdrt_error **err) {
    if (strncmp(path, "/sdrt-denied/", 13) == 0) {
        if (err) *err = fh_error_new(SDRT_PERMISSION_DENIED, NULL, "%s: outside the %s roots", path, kind);
        return NULL;
    }
    char *out = malloc(PATH_MAX);
    if (path[0] == '/') {
        snprintf(out, PATH_MAX, "%s", path);
        return out;
    }
    const char *root = strstr(g.settings, "\"output_roots\":[\"");
    if (root) root += strlen("\"output_roots\":[\"");
    const char *end = root ? strchr(root, '"') : NULL;
    if (!root || !end) {
        free(out);
        if (err) *err = fh_error_new(SDRT_INVALID_ARGUMENT, NULL, "no output root");
        return NULL;
    }
    snprintf(out, PATH_MAX, "%.*s/%s", (int)(end - root), root, path);
    return out;
}

static const sdrt_host_api g_api = {
    .struct_size = sizeof(sdrt_host_api),
    .abi_major = SDRT_ABI_MAJOR,
    .abi_minor = SDRT_ABI_MINOR,
    .log = fh_log,
    .error_new = fh_error_new,
    .error_free = fh_error_free,
    .progress = fh_progress,
    .event = fh_event,
    .warn = fh_warn,
    .is_cancelled = fh_is_cancelled,
    .wait_if_paused = fh_wait_if_paused,
    .stop_requested = fh_stop_requested,
    .job_set_user = fh_job_set_user,
    .job_user = fh_job_user,
    .publish = fh_publish,
    .acquire = fh_acquire,
    .release = fh_release,
    .alloc = fh_alloc,
    .free = fh_free,
    .settings_json = fh_settings,
    .resolve_path = fh_resolve_path,
};

const sdrt_host_api *fake_host_api(void) {
    return &g_api;
}

sdrt_host *fake_host_handle(void) {
    g.self.index = MAX_PLUGINS;
    return &g.self;
}

static int load_plugin(const char *name, const char *config) {
    const char *build = getenv("SDRT_BUILD_DIR");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/lib/sdrt/plugins/sdrt_%s.so", build ? build : ".", name);
    fh_plugin *p = &g.plugins[g.n];
    p->so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!p->so) {
        fprintf(stderr, "fake host: dlopen %s: %s\n", path, dlerror());
        return -1;
    }
    sdrt_plugin_entry_fn entry = (sdrt_plugin_entry_fn)(uintptr_t)dlsym(p->so, SDRT_PLUGIN_ENTRY_SYMBOL);
    p->desc = entry ? entry() : NULL;
    if (!p->desc) {
        fprintf(stderr, "fake host: %s: no descriptor\n", path);
        return -1;
    }
    p->handle.index = g.n;
    sdrt_error *e = p->desc->vtable->init(&g_api, &p->handle, config ? config : "{}", &p->instance);
    if (e) {
        fprintf(stderr, "fake host: %s init: %s\n", name, e->message);
        fh_error_free(e);
        return -1;
    }
    g.n++;
    return 0;
}

int fake_host_start(const char *const *plugins, const char *const *configs, const char *output_root) {
    snprintf(g.settings, sizeof g.settings,
             "{\"model_roots\":[\"/\"],\"output_roots\":[\"%s\"],\"allow_any_path\":true,\"threads\":2}", output_root);
    for (int i = 0; plugins[i]; i++)
        if (g.n == MAX_PLUGINS || load_plugin(plugins[i], configs ? configs[i] : NULL) != 0) return -1;
    return 0;
}

void fake_host_stop(void) {
    for (int i = g.n - 1; i >= 0; i--) {
        g.plugins[i].desc->vtable->shutdown(g.plugins[i].instance);
        /* Modules stay mapped: a plugin's static data may still be referenced
         * by atexit handlers of libraries it pulled in. */
    }
    for (int i = 0; i < g.n_ifaces; i++) free((char *)g.ifaces[i].id);
    g.n = g.n_ifaces = 0;
}
