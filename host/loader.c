/* host/loader.c - finding, opening, checking and initialising plugins.
 * A refused plugin is reported and the rest keep working. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dynlib.h"
#include "host.h"
#include "os.h"

/* "…/sdrt_model.so" -> "model" */
static char *plugin_name_from_path(const char *path) {
    const char *base = os_path_last_sep(path);
    base = base ? base + 1 : path;
    if (strncmp(base, "sdrt_", 5) == 0) base += 5;
    char *name = strdup(base);
    char *dot = name ? strrchr(name, '.') : NULL;
    if (dot) *dot = '\0';
    return name;
}

static cJSON *load_manifest(const char *so_path) {
    char path[4096];
    snprintf(path, sizeof path, "%s", so_path);
    char *dot = strrchr(path, '.');
    char *slash = os_path_last_sep(path);
    if (!dot || (slash && dot < slash)) return NULL;
    snprintf(dot, sizeof path - (size_t)(dot - path), ".json");
    char *text = host_read_file(path);
    cJSON *m = text ? cJSON_Parse(text) : NULL;
    free(text);
    return m;
}

static int count_types(const char *const *types) {
    int n = 0;
    while (types && types[n]) n++;
    return n;
}

/* The manifest must agree with the descriptor on id, domain and types. */
static sdrt_error *check_manifest(const cJSON *m, const sdrt_plugin_desc *d) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
    const cJSON *domain = cJSON_GetObjectItemCaseSensitive(m, "domain");
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(m, "message_types");
    if (!cJSON_IsString(id) || strcmp(id->valuestring, d->id) != 0)
        return error_new(SDRT_ABI_MISMATCH, NULL, "manifest id '%s' disagrees with descriptor id '%s'",
                         cJSON_IsString(id) ? id->valuestring : "(missing)", d->id);
    if (!cJSON_IsString(domain) || strcmp(domain->valuestring, d->domain) != 0)
        return error_new(SDRT_ABI_MISMATCH, NULL, "manifest domain '%s' disagrees with descriptor domain '%s'",
                         cJSON_IsString(domain) ? domain->valuestring : "(missing)", d->domain);
    if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) != count_types(d->message_types))
        return error_new(SDRT_ABI_MISMATCH, NULL, "manifest message_types disagree with the descriptor's %d types",
                         count_types(d->message_types));
    for (int i = 0; d->message_types[i]; i++) {
        const cJSON *t = cJSON_GetArrayItem(types, i);
        if (!cJSON_IsString(t) || strcmp(t->valuestring, d->message_types[i]) != 0)
            return error_new(SDRT_ABI_MISMATCH, NULL, "manifest message type #%d '%s' disagrees with descriptor '%s'",
                             i, cJSON_IsString(t) ? t->valuestring : "(not a string)", d->message_types[i]);
    }
    return NULL;
}

static sdrt_error *check_descriptor(const sdrt_plugin_desc *d) {
    if (!d) return error_new(SDRT_ABI_MISMATCH, NULL, "sdrt_plugin_entry returned NULL");
    if (d->struct_size < SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable))
        return error_new(SDRT_ABI_MISMATCH, NULL, "descriptor struct_size %u is smaller than the minimum %u",
                         d->struct_size, SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable));
    if (d->abi_major != SDRT_ABI_MAJOR)
        return error_new(SDRT_ABI_MISMATCH, NULL, "plugin ABI %u.%u has major %u, host ABI is %d.%d", d->abi_major,
                         d->abi_minor, d->abi_major, SDRT_ABI_MAJOR, SDRT_ABI_MINOR);
    if (d->abi_minor > SDRT_ABI_MINOR)
        return error_new(SDRT_ABI_MISMATCH, NULL, "plugin needs ABI %u.%u but the host provides %d.%d (too old)",
                         d->abi_major, d->abi_minor, SDRT_ABI_MAJOR, SDRT_ABI_MINOR);
    if (!d->id || !*d->id) return error_new(SDRT_ABI_MISMATCH, NULL, "descriptor has no id");
    if (!d->domain || !*d->domain) return error_new(SDRT_ABI_MISMATCH, NULL, "descriptor '%s' has no domain", d->id);
    if (!d->version) return error_new(SDRT_ABI_MISMATCH, NULL, "descriptor '%s' has no version", d->id);
    if (!d->message_types) return error_new(SDRT_ABI_MISMATCH, NULL, "descriptor '%s' has no message_types", d->id);
    if (!d->vtable || d->vtable->struct_size < SDRT_STRUCT_SIZE(sdrt_plugin_vtable, handle) || !d->vtable->init ||
        !d->vtable->shutdown || !d->vtable->handle)
        return error_new(SDRT_ABI_MISMATCH, NULL, "descriptor '%s' lacks a required vtable member (init, shutdown, handle)",
                         d->id);
    size_t dl = strlen(d->domain);
    for (int i = 0; d->message_types[i]; i++) {
        const char *t = d->message_types[i];
        if (strncmp(t, d->domain, dl) != 0 || t[dl] != '.' || !t[dl + 1])
            return error_new(SDRT_ABI_MISMATCH, NULL, "message type '%s' of '%s' is not in its domain '%s.'", t, d->id,
                             d->domain);
    }
    if (strcmp(d->domain, "host") == 0)
        return error_new(SDRT_ABI_MISMATCH, NULL, "plugin '%s' claims the reserved domain 'host'", d->id);
    return NULL;
}

host_plugin *loader_open(const char *path, sdrt_error **err) {
    char msg[1024];
    void *dl = dynlib_open(path, msg, sizeof msg);
    if (!dl) {
        *err = error_new(SDRT_UNAVAILABLE, NULL, "cannot load %s: %s", path, msg);
        return NULL;
    }
    sdrt_plugin_entry_fn entry = (sdrt_plugin_entry_fn)dynlib_sym(dl, SDRT_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        *err = error_new(SDRT_ABI_MISMATCH, NULL, "%s: missing entry symbol '%s'", path, SDRT_PLUGIN_ENTRY_SYMBOL);
        dynlib_close(dl);
        return NULL;
    }
    const sdrt_plugin_desc *d = entry();
    sdrt_error *e = check_descriptor(d);
    cJSON *manifest = e ? NULL : load_manifest(path);
    if (!e && manifest) e = check_manifest(manifest, d);
    if (e) {
        *err = error_new(e->code, NULL, "%s: %s", path, e->message);
        error_free(e);
        cJSON_Delete(manifest);
        dynlib_close(dl);
        return NULL;
    }
    host_plugin *p = calloc(1, sizeof *p);
    p->path = strdup(path);
    p->name = plugin_name_from_path(path);
    p->dl = dl;
    p->desc = d;
    p->manifest = manifest;
    p->self = services_host_new(p);
    return p;
}

sdrt_error *loader_init(host_plugin *p, const char *config_json) {
    void *inst = NULL;
    sdrt_error *e = p->desc->vtable->init(services_api(), p->self, config_json ? config_json : "{}", &inst);
    if (e) return e;
    p->instance = inst;
    p->initialised = 1;
    return NULL;
}

void loader_close(host_plugin *p) {
    if (!p) return;
    /* shutdown is promised only after every handle call returned; a worker
     * stuck in a plugin that ignores cancel gets a short wait, then the
     * plugin is left initialised and mapped (the process is exiting). */
    for (int i = 0; i < 100 && atomic_load(&p->active_calls) > 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&p->active_calls) > 0) {
        log_msg(NULL, SDRT_LOG_WARN, "plugin %s still runs a request at exit: not shut down", p->desc->id);
        return;
    }
    if (p->initialised) {
        if (registry_holders(p) > 0)
            log_msg(NULL, SDRT_LOG_WARN, "plugin %s still has interface holders at shutdown", p->desc->id);
        p->desc->vtable->shutdown(p->instance);
    }
    registry_drop_plugin(p);
    /* Keep the code mapped: a worker that ignored cancel may still run in it. */
    services_host_free(p->self);
    cJSON_Delete(p->manifest);
    free(p->path);
    free(p->name);
    free(p);
}

/* data_json as one line, or NULL unless it is a JSON object (the shape a
 * failure response's error_data has). */
static char *refusal_data(const char *data_json) {
    cJSON *d = data_json ? cJSON_Parse(data_json) : NULL;
    char *line = cJSON_IsObject(d) ? cJSON_PrintUnformatted(d) : NULL;
    cJSON_Delete(d);
    return line;
}

static void add_refusal(host_plugins *ps, const char *path, const sdrt_error *e) {
    ps->refused = realloc(ps->refused, sizeof *ps->refused * (size_t)(ps->n_refused + 1));
    host_refusal *r = &ps->refused[ps->n_refused++];
    r->path = strdup(path);
    r->code = e->code;
    r->reason = strdup(e->message);
    /* The plugin's own details (which field, which device) are what an
     * operator needs to fix the config: keep them with the refusal. */
    r->data_json = refusal_data(e->data_json);
    if (r->data_json) log_msg(NULL, SDRT_LOG_ERROR, "plugin refused: %s %s", e->message, r->data_json);
    else log_msg(NULL, SDRT_LOG_ERROR, "plugin refused: %s", e->message);
}

static sdrt_error *check_duplicates(const host_plugins *ps, const host_plugin *p) {
    for (int i = 0; i < ps->count; i++) {
        const sdrt_plugin_desc *o = ps->items[i]->desc;
        if (strcmp(o->id, p->desc->id) == 0)
            return error_new(SDRT_ALREADY_EXISTS, NULL, "%s: duplicate plugin id '%s' (already loaded from %s)", p->path,
                             o->id, ps->items[i]->path);
        for (int a = 0; p->desc->message_types[a]; a++)
            for (int b = 0; o->message_types[b]; b++)
                if (strcmp(p->desc->message_types[a], o->message_types[b]) == 0)
                    return error_new(SDRT_ALREADY_EXISTS, NULL, "%s: message type '%s' is already served by '%s'",
                                     p->path, o->message_types[b], o->id);
    }
    return NULL;
}

/* A plugin's entry in the config: keyed by file name ("device") or id. */
static const cJSON *plugin_entry(const host_config *cfg, const host_plugin *p) {
    const cJSON *plugins = cJSON_GetObjectItemCaseSensitive(cfg->root, "plugins");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(plugins, p->name);
    return e ? e : cJSON_GetObjectItemCaseSensitive(plugins, p->desc->id);
}

static int plugin_enabled(const host_config *cfg, const host_plugin *p) {
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(plugin_entry(cfg, p), "enabled");
    return !cJSON_IsFalse(en);
}

static char *plugin_config_json(const host_config *cfg, const host_plugin *p) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(plugin_entry(cfg, p), "config");
    return c ? cJSON_PrintUnformatted(c) : strdup("{}");
}

static int has_suffix(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted so that load order, and so error messages, are reproducible. */
static char **list_plugin_files(const char *dir, int *n) {
    char **files = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "sdrt_", 5) != 0) continue;
        if (!has_suffix(de->d_name, ".so") && !has_suffix(de->d_name, ".dll")) continue;
        files = realloc(files, sizeof *files * (size_t)(*n + 1));
        size_t len = strlen(dir) + strlen(de->d_name) + 2;
        files[*n] = malloc(len);
        snprintf(files[*n], len, "%s/%s", dir, de->d_name);
        (*n)++;
    }
    closedir(d);
    if (files) qsort(files, (size_t)*n, sizeof *files, cmp_str);
    return files;
}

static void load_one(host_plugins *ps, const host_config *cfg, const char *path) {
    sdrt_error *e = NULL;
    host_plugin *p = loader_open(path, &e);
    if (!p) {
        add_refusal(ps, path, e);
        error_free(e);
        return;
    }
    if (!plugin_enabled(cfg, p)) {
        log_msg(NULL, SDRT_LOG_INFO, "plugin %s disabled by config", p->name);
        loader_close(p);
        return;
    }
    e = check_duplicates(ps, p);
    if (e) {
        add_refusal(ps, path, e);
        error_free(e);
        loader_close(p);
        return;
    }
    char *conf = plugin_config_json(cfg, p);
    e = loader_init(p, conf);
    free(conf);
    if (e) {
        sdrt_error *wrapped = error_new(e->code, e->data_json, "%s: init failed: %s", p->desc->id, e->message);
        add_refusal(ps, path, wrapped);
        error_free(wrapped);
        error_free(e);
        loader_close(p);
        return;
    }
    ps->items = realloc(ps->items, sizeof *ps->items * (size_t)(ps->count + 1));
    ps->items[ps->count++] = p;
    log_msg(NULL, SDRT_LOG_DEBUG, "loaded plugin %s %s from %s", p->desc->id, p->desc->version, path);
}

void loader_load_all(host_plugins *ps, const host_config *cfg) {
    for (int i = 0; i < cfg->n_plugin_paths; i++) {
        int n = 0;
        char **files = list_plugin_files(cfg->plugin_paths[i], &n);
        for (int j = 0; j < n; j++) {
            load_one(ps, cfg, files[j]);
            free(files[j]);
        }
        free(files);
    }
}

void loader_unload_all(host_plugins *ps) {
    /* Reverse order: later plugins may hold interfaces of earlier ones. */
    for (int i = ps->count - 1; i >= 0; i--) loader_close(ps->items[i]);
    free(ps->items);
    for (int i = 0; i < ps->n_refused; i++) {
        free(ps->refused[i].path);
        free(ps->refused[i].reason);
        free(ps->refused[i].data_json);
    }
    free(ps->refused);
    memset(ps, 0, sizeof *ps);
}

host_plugin *loader_find(const host_plugins *ps, const char *type, int *domain_known) {
    const char *dot = strchr(type, '.');
    size_t dl = dot ? (size_t)(dot - type) : strlen(type);
    *domain_known = 0;
    for (int i = 0; i < ps->count; i++) {
        const sdrt_plugin_desc *d = ps->items[i]->desc;
        if (strlen(d->domain) == dl && strncmp(d->domain, type, dl) == 0) *domain_known = 1;
        for (int j = 0; d->message_types[j]; j++)
            if (strcmp(d->message_types[j], type) == 0) return ps->items[i];
    }
    return NULL;
}

cJSON *loader_describe(const host_plugin *p) {
    const sdrt_plugin_desc *d = p->desc;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", d->id);
    cJSON_AddStringToObject(o, "name", p->name);
    cJSON_AddStringToObject(o, "version", d->version);
    cJSON_AddStringToObject(o, "domain", d->domain);
    cJSON_AddStringToObject(o, "description", d->description ? d->description : "");
    char abi[32];
    snprintf(abi, sizeof abi, "%u.%u", d->abi_major, d->abi_minor);
    cJSON_AddStringToObject(o, "abi", abi);
    cJSON_AddStringToObject(o, "path", p->path);
    cJSON *types = cJSON_AddArrayToObject(o, "message_types");
    for (int i = 0; d->message_types[i]; i++) cJSON_AddItemToArray(types, cJSON_CreateString(d->message_types[i]));
    const cJSON *prov = cJSON_GetObjectItemCaseSensitive(p->manifest, "provides");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(p->manifest, "requires");
    cJSON_AddItemToObject(o, "provides", prov ? cJSON_Duplicate(prov, 1) : cJSON_CreateArray());
    cJSON_AddItemToObject(o, "requires", req ? cJSON_Duplicate(req, 1) : cJSON_CreateArray());
    return o;
}
