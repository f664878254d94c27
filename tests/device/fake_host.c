/* tests/device/fake_host.c - see fake_host.h. */
#define _POSIX_C_SOURCE 200809L
#include "fake_host.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_log[16384];
static size_t g_loglen;
static char g_pub_id[64];
static const void *g_pub_iface;

static void fh_log(sdrt_host *host, sdrt_log_level level, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "  [log %d] %s\n", (int)level, line);
    int n = snprintf(g_log + g_loglen, sizeof g_log - g_loglen, "%s\n", line);
    if (n > 0 && g_loglen + (size_t)n < sizeof g_log) g_loglen += (size_t)n;
}

static sdrt_error *fh_error_new(sdrt_status code, const char *data_json, const char *fmt, ...) {
    sdrt_error *e = calloc(1, sizeof *e);
    char *msg = malloc(1024);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, 1024, fmt, ap);
    va_end(ap);
    e->struct_size = SDRT_STRUCT_SIZE(sdrt_error, data_json);
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

static sdrt_error *fh_publish(sdrt_host *host, const char *id, const void *iface) {
    snprintf(g_pub_id, sizeof g_pub_id, "%s", id);
    g_pub_iface = iface;
    return NULL;
}

static void *fh_alloc(size_t n) { return malloc(n); }
static void fh_free(void *p) { free(p); }

const sdrt_host_api *fake_host_api(void) {
    static sdrt_host_api api;
    api.struct_size = SDRT_STRUCT_SIZE(sdrt_host_api, resolve_path);
    api.abi_major = SDRT_ABI_MAJOR;
    api.abi_minor = SDRT_ABI_MINOR;
    api.log = fh_log;
    api.error_new = fh_error_new;
    api.error_free = fh_error_free;
    api.publish = fh_publish;
    api.alloc = fh_alloc;
    api.free = fh_free;
    return &api;
}

const void *fake_host_published(const char *id) { return strcmp(id, g_pub_id) == 0 ? g_pub_iface : NULL; }

int fake_host_logged(const char *needle) { return strstr(g_log, needle) != NULL; }
