/* plugins/inference/device_check.c - the request's `device` field.
 *
 * Every request runs on the deployment's device (the device plugin's
 * "device" setting); a request cannot move work elsewhere. So `device` is
 * checked, never silently ignored: "auto" and the deployment's device pass;
 * a device that exists but is another one passes with a warning saying
 * where the request ran; one that does not exist is NOT_FOUND naming it and
 * the devices there are; a malformed id is INVALID_ARGUMENT. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_internal.h"

/* "<family>[:<index>]" -> family (into fam) and index; -1 when malformed. */
static int parse_id(const char *s, char *fam, size_t famlen, size_t *index) {
    const char *colon = strchr(s, ':');
    size_t n = colon ? (size_t)(colon - s) : strlen(s);
    if (n == 0 || n >= famlen) return -1;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i])) return -1;
    memcpy(fam, s, n);
    fam[n] = '\0';
    *index = 0;
    if (!colon) return 0;
    const char *d = colon + 1;
    if (!*d || strlen(d) > 6 || strspn(d, "0123456789") != strlen(d)) return -1;
    *index = (size_t)strtoul(d, NULL, 10);
    return 0;
}

void run_device_id(const sdrt_backend_iface *b, const sdrt_device *dev, char *out, size_t n) {
    snprintf(out, n, "?");
    for (size_t r = 0; r < b->reg_count(b->self); r++) {
        sdrt_backend_reg *reg = b->reg_get(b->self, r);
        for (size_t i = 0; reg && i < reg->iface->device_count(reg); i++)
            if (reg->iface->device_get(reg, i) == dev) {
                snprintf(out, n, "%s:%zu", reg->iface->name(reg), i);
                return;
            }
    }
}

sdrt_error *run_check_device(run_ctx *c) {
    const char *want = c->r.device;
    if (!want || strcmp(want, "auto") == 0) return NULL;
    char fam[32];
    size_t index;
    if (parse_id(want, fam, sizeof fam, &index) != 0)
        return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                 "device: '%s' is not \"auto\" or a device id <backend>:<index> (e.g. cpu:0)", want);
    const sdrt_backend_iface *b = c->backend;
    sdrt_device *found = NULL;
    char have[512] = "";
    size_t at = 0;
    for (size_t r = 0; r < b->reg_count(b->self); r++) {
        sdrt_backend_reg *reg = b->reg_get(b->self, r);
        if (!reg) continue;
        size_t n = reg->iface->device_count(reg);
        for (size_t i = 0; i < n && at < sizeof have; i++) {
            int w = snprintf(have + at, sizeof have - at, "%s%s:%zu", at ? ", " : "", reg->iface->name(reg), i);
            if (w > 0) at += (size_t)w;
        }
        if (strcmp(reg->iface->name(reg), fam) == 0 && index < n) found = reg->iface->device_get(reg, index);
    }
    if (!found)
        return c->api->error_new(SDRT_NOT_FOUND, NULL, "device: '%s' does not exist here (devices: %s)", want,
                                 have[0] ? have : "none");
    sdrt_device *def = b->default_device(b->self);
    if (found != def) {
        char used[64], msg[256];
        run_device_id(b, def, used, sizeof used);
        snprintf(msg, sizeof msg,
                 "device: '%s' exists but requests run on the deployment's device %s (the device plugin's "
                 "\"device\" setting); this request ran there",
                 want, used);
        c->api->warn(c->job, msg);
    }
    return NULL;
}
