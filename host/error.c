/* host/error.c - sdrt_error objects and the host's view of the status
 * table (names and JSON-RPC codes come from sdrt/status.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

/* Returned when even the error cannot be allocated; error_free ignores it. */
static sdrt_error g_oom_error = {sizeof(sdrt_error), SDRT_RESOURCE_EXHAUSTED,
                                 "out of memory while reporting an error", NULL};

/* The SDK's one table (sdrt/status.h); a value outside it is reported as
 * INTERNAL on the wire, never as an unknown name. */
const char *status_name(sdrt_status code) {
    if ((unsigned)code >= SDRT_STATUS_COUNT_) return "INTERNAL";
    return sdrt_status_name(code);
}

int status_rpc_code(sdrt_status code) { return sdrt_status_rpc_code(code); }

sdrt_status status_from_name(const char *name) {
    for (int i = 0; i < SDRT_STATUS_COUNT_; i++)
        if (strcmp(sdrt_status_name((sdrt_status)i), name) == 0) return (sdrt_status)i;
    return SDRT_INTERNAL;
}

sdrt_error *error_vnew(sdrt_status code, const char *data_json, const char *fmt, va_list ap) {
    sdrt_error *e = calloc(1, sizeof *e);
    if (!e) return &g_oom_error;
    char buf[2048];
    vsnprintf(buf, sizeof buf, fmt ? fmt : "", ap);
    e->struct_size = SDRT_STRUCT_SIZE(sdrt_error, data_json);
    e->code = code;
    e->message = strdup(buf);
    e->data_json = data_json ? strdup(data_json) : NULL;
    if (!e->message) {
        free((void *)e->data_json);
        free(e);
        return &g_oom_error;
    }
    return e;
}

sdrt_error *error_new(sdrt_status code, const char *data_json, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sdrt_error *e = error_vnew(code, data_json, fmt, ap);
    va_end(ap);
    return e;
}

void error_free(sdrt_error *err) {
    if (!err || err == &g_oom_error) return;
    free((void *)err->message);
    free((void *)err->data_json);
    free(err);
}
