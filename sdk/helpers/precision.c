/* sdk/helpers/precision.c - see sdrt/precision.h. */
#include "sdrt/precision.h"

#include <stdio.h>
#include <string.h>

static const char *const g_names[] = {"auto", "f32", "f16", "bf16", "int8"};

const char *sdrt_precision_name(sdrt_precision p) {
    return (unsigned)p < sizeof g_names / sizeof g_names[0] ? g_names[p] : "?";
}

sdrt_status sdrt_precision_parse(const char *value, const char *field, sdrt_precision *out, char *msg,
                                 size_t msg_size) {
    *out = SDRT_PRECISION_AUTO;
    if (!value) return SDRT_OK;
    for (size_t i = 0; i < sizeof g_names / sizeof g_names[0]; i++)
        if (strcmp(value, g_names[i]) == 0) {
            *out = (sdrt_precision)i;
            return SDRT_OK;
        }
    if (msg && msg_size)
        snprintf(msg, msg_size, "%s: '%.64s' is not one of " SDRT_PRECISION_CHOICES, field ? field : "precision",
                 value);
    return SDRT_INVALID_ARGUMENT;
}

const char *sdrt_stream_params_format(char *out, size_t out_size, int threads, sdrt_precision p) {
    char t[32] = "", q[40] = "";
    if (threads > 0) snprintf(t, sizeof t, "\"threads\":%d", threads);
    if (p != SDRT_PRECISION_AUTO) snprintf(q, sizeof q, "%s\"precision\":\"%s\"", t[0] ? "," : "", sdrt_precision_name(p));
    int n = snprintf(out, out_size, "{%s%s}", t, q);
    return n >= 0 && (size_t)n < out_size ? out : NULL;
}

const char *sdrt_precision_refusal(char *msg, size_t msg_size, sdrt_precision p, const char *device,
                                   const char *supported) {
    snprintf(msg, msg_size, "precision: \"%s\" is not supported on %s (it runs %s)", sdrt_precision_name(p),
             device ? device : "this device", supported ? supported : "\"auto\"");
    return msg;
}
