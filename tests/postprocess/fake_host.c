/* tests/postprocess/fake_host.c - see fake_host.h. */
#define _GNU_SOURCE
#include "fake_host.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_root[PATH_MAX];
static struct {
    const char *id;
    const void *iface;
} g_ifaces[8];
static int g_outstanding;

static void fh_log(sdrt_host *h, sdrt_log_level lvl, const char *fmt, ...) {
    (void)h;
    if (lvl > SDRT_LOG_WARN) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("# log: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static sdrt_error *fh_error_new(sdrt_status code, const char *data_json, const char *fmt, ...) {
    sdrt_error *e = calloc(1, sizeof *e);
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    e->struct_size = SDRT_STRUCT_SIZE(sdrt_error, data_json);
    e->code = code;
    e->message = strdup(msg);
    e->data_json = data_json ? strdup(data_json) : NULL;
    return e;
}

static void fh_error_free(sdrt_error *e) {
    if (!e) return;
    free((char *)e->message);
    free((char *)e->data_json);
    free(e);
}

static void fh_progress(sdrt_job *j, const sdrt_progress *p) { (void)j, (void)p; }
static void fh_event(sdrt_job *j, const char *n, const char *d) { (void)j, (void)n, (void)d; }
static void fh_warn(sdrt_job *j, const char *m) { (void)j, (void)m; }
static int fh_is_cancelled(sdrt_job *j) { (void)j; return 0; }
static int fh_wait_if_paused(sdrt_job *j) { (void)j; return 0; }

static sdrt_error *fh_publish(sdrt_host *h, const char *id, const void *iface) {
    (void)h;
    fake_host_provide(id, iface);
    return NULL;
}

static const void *fh_acquire(sdrt_host *h, const char *id, sdrt_error **err) {
    (void)h;
    for (int i = 0; i < 8; i++)
        if (g_ifaces[i].id && strcmp(g_ifaces[i].id, id) == 0) {
            g_outstanding++;
            return g_ifaces[i].iface;
        }
    if (err) *err = fh_error_new(SDRT_NOT_FOUND, NULL, "interface %s: not published", id);
    return NULL;
}

static void fh_release(sdrt_host *h, const char *id) { (void)h, (void)id; g_outstanding--; }
static void *fh_alloc(size_t n) { return malloc(n); }
static void fh_free(void *p) { free(p); }
static const char *fh_settings(sdrt_host *h) { (void)h; return "{}"; }

/* Lexical normalisation of an absolute path ("." and ".." removed). */
static void normalise(const char *in, char *out) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", in);
    size_t len = 0;
    out[0] = '\0';
    for (char *save = NULL, *seg = strtok_r(tmp, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
        if (strcmp(seg, ".") == 0) continue;
        if (strcmp(seg, "..") == 0) {
            char *slash = strrchr(out, '/');
            len = slash ? (size_t)(slash - out) : 0;
            out[len] = '\0';
            continue;
        }
        len += (size_t)snprintf(out + len, PATH_MAX - len, "/%s", seg);
    }
    if (!out[0]) strcpy(out, "/");
}

static char *fh_resolve(sdrt_host *h, const char *kind, const char *path, sdrt_error **err) {
    (void)h, (void)kind;
    char joined[PATH_MAX], norm[PATH_MAX];
    if (path[0] == '/') snprintf(joined, sizeof joined, "%.4000s", path);
    else snprintf(joined, sizeof joined, "%.2000s/%.2000s", g_root, path);
    normalise(joined, norm);
    size_t rl = strlen(g_root);
    if (!g_root[0] || strncmp(norm, g_root, rl) != 0 || (norm[rl] != '/' && norm[rl] != '\0')) {
        if (err) *err = fh_error_new(SDRT_PERMISSION_DENIED, NULL, "%s: outside the output roots", path);
        return NULL;
    }
    return strdup(norm);
}

static const sdrt_host_api g_api = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_host_api, resolve_path),
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
    .publish = fh_publish,
    .acquire = fh_acquire,
    .release = fh_release,
    .alloc = fh_alloc,
    .free = fh_free,
    .settings_json = fh_settings,
    .resolve_path = fh_resolve,
};

const sdrt_host_api *fake_host_api(void) { return &g_api; }

void fake_host_set_output_root(const char *root) {
    char norm[PATH_MAX];
    normalise(root, norm);
    snprintf(g_root, sizeof g_root, "%s", norm);
}

void fake_host_provide(const char *id, const void *iface) {
    for (int i = 0; i < 8; i++)
        if (!g_ifaces[i].id || strcmp(g_ifaces[i].id, id) == 0) {
            g_ifaces[i].id = id;
            g_ifaces[i].iface = iface;
            return;
        }
}

int fake_host_outstanding(void) { return g_outstanding; }
