/* plugins/inference/preview.c - `preview` events of inference.run: every
 * `preview` steps, one event per image of the batch with a cheap preview of
 * its current latents (sdrt.postprocess/1 preview_png: the fixed
 * latent-to-RGB factors, latent resolution, no VAE) as a PNG data URI, so a
 * client sees the picture form without a round trip through files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_internal.h"

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* "data:image/png;base64,..." of `len` bytes, malloc'd; NULL when out of memory. */
static char *png_data_uri(const uint8_t *png, size_t len) {
    static const char head[] = "data:image/png;base64,";
    char *uri = malloc(sizeof head + (len + 2) / 3 * 4);
    if (!uri) return NULL;
    char *o = uri + sizeof head - 1;
    memcpy(uri, head, sizeof head - 1);
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)png[i] << 16 | (i + 1 < len ? (uint32_t)png[i + 1] << 8 : 0) |
                     (i + 2 < len ? png[i + 2] : 0);
        *o++ = b64_alphabet[v >> 18 & 63];
        *o++ = b64_alphabet[v >> 12 & 63];
        *o++ = i + 1 < len ? b64_alphabet[v >> 6 & 63] : '=';
        *o++ = i + 2 < len ? b64_alphabet[v & 63] : '=';
    }
    *o = 0;
    return uri;
}

/* One image's event: {step, steps, image (index), images, width, height,
 * data: the PNG data URI}. */
static sdrt_error *preview_one(run_ctx *c, const float *latents, int index, int done, int total) {
    uint8_t *png = NULL;
    size_t len = 0;
    sdrt_error *e = c->post->preview_png(c->post->self, latents, c->channels, c->lh, c->lw, c->arch, &png, &len);
    if (e) return e;
    char *uri = png_data_uri(png, len);
    c->post->free(c->post->self, png);
    if (!uri) return c->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "preview: out of memory");
    size_t cap = strlen(uri) + 200;
    char *json = malloc(cap);
    if (json) {
        snprintf(json, cap, "{\"step\":%d,\"steps\":%d,\"index\":%d,\"images\":%d,\"width\":%d,\"height\":%d,"
                            "\"image\":\"%s\"}", done, total, index, c->r.batch_size, c->lw, c->lh, uri);
        c->api->event(c->job, "preview", json);
    }
    free(json);
    free(uri);
    return json ? NULL : c->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "preview: out of memory");
}

void run_preview(run_ctx *c, int done, int total) {
    int every = c->r.preview_every;
    if (every <= 0 || (done % every != 0 && done != total)) return;
    size_t per = (size_t)c->channels * (size_t)c->lh * (size_t)c->lw;
    for (int i = 0; i < c->r.batch_size; i++) {
        sdrt_error *e = preview_one(c, c->latents + per * (size_t)i, i, done, total);
        if (!e) continue;
        /* A preview is a courtesy: the generation goes on without it. */
        char msg[600];
        snprintf(msg, sizeof msg, "preview: %s; no further previews", e->message ? e->message : "failed");
        c->api->warn(c->job, msg);
        c->api->error_free(e);
        c->r.preview_every = 0;
        return;
    }
}
