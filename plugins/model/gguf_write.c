/* plugins/model/gguf_write.c - writing GGUF v3 files (model.convert).
 *
 * The header and tensor infos are computed first, then each tensor's data
 * is streamed by a caller-supplied producer, so a conversion holds one
 * tensor's output at a time, never the model. Written to "<path>.part" and
 * renamed into place, so a failed conversion leaves no truncated file. */
#define _GNU_SOURCE
#include "gguf_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"

#define GGUF_ALIGN 32

typedef struct wbuf {
    FILE *f;
    uint64_t pos;
    int bad;
} wbuf;

static void w_bytes(wbuf *w, const void *p, size_t n) {
    if (!w->bad && n && fwrite(p, 1, n, w->f) != n) w->bad = 1;
    w->pos += n;
}
static void w_u32(wbuf *w, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    w_bytes(w, b, 4);
}
static void w_u64(wbuf *w, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    w_bytes(w, b, 8);
}
static void w_str(wbuf *w, const char *s) {
    w_u64(w, strlen(s));
    w_bytes(w, s, strlen(s));
}
static void w_pad(wbuf *w) {
    static const uint8_t zeros[GGUF_ALIGN];
    w_bytes(w, zeros, (size_t)((GGUF_ALIGN - w->pos % GGUF_ALIGN) % GGUF_ALIGN));
}

uint64_t gguf_w_bytes(const gguf_wtensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return sdrt_dtype_bytes(t->dtype, n);
}

int gguf_write(const char *path, const gguf_wmeta *meta, const gguf_wtensor *t, size_t n, gguf_produce_fn produce,
               void *ctx, char *err, size_t errlen) {
    for (size_t i = 0; i < n; i++) {
        int64_t be = sdrt_dtype_block_elems(t[i].dtype);
        if (gguf_type_of_dtype(t[i].dtype) < 0 || t[i].ndim < 1 || t[i].ndim > GGUF_MAX_DIMS ||
            be <= 0 || t[i].shape[t[i].ndim - 1] % be) {
            snprintf(err, errlen, "%s: tensor '%s' cannot be stored as %s in GGUF", path, t[i].name,
                     gguf_type_name((uint32_t)gguf_type_of_dtype(t[i].dtype)) ? gguf_type_name((uint32_t)gguf_type_of_dtype(t[i].dtype)) : "this dtype");
            return -1;
        }
    }
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.part", path) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    wbuf w = {.f = fopen(tmp, "wb")};
    if (!w.f) {
        snprintf(err, errlen, "%s: cannot create", tmp);
        free(tmp);
        return -1;
    }
    uint64_t n_kv = 3 + (meta->weight_type ? 1 : 0);
    w_bytes(&w, "GGUF", 4);
    w_u32(&w, 3);
    w_u64(&w, n);
    w_u64(&w, n_kv);
    w_str(&w, "general.architecture");
    w_u32(&w, 8);
    w_str(&w, meta->arch);
    w_str(&w, "general.quantization_version");
    w_u32(&w, 4);
    w_u32(&w, 2);
    w_str(&w, "general.alignment");
    w_u32(&w, 4);
    w_u32(&w, GGUF_ALIGN);
    if (meta->weight_type) {
        w_str(&w, "sdrt.weight_type");
        w_u32(&w, 8);
        w_str(&w, meta->weight_type);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        w_str(&w, t[i].name);
        w_u32(&w, (uint32_t)t[i].ndim);
        for (int d = t[i].ndim - 1; d >= 0; d--) w_u64(&w, (uint64_t)t[i].shape[d]); /* ggml order: ne[0] innermost */
        w_u32(&w, (uint32_t)gguf_type_of_dtype(t[i].dtype));
        w_u64(&w, off);
        off += (gguf_w_bytes(&t[i]) + GGUF_ALIGN - 1) / GGUF_ALIGN * GGUF_ALIGN;
    }
    w_pad(&w);
    int rc = 0;
    for (size_t i = 0; i < n && !rc && !w.bad; i++) {
        uint64_t want = gguf_w_bytes(&t[i]);
        void *data = malloc(want ? (size_t)want : 1);
        if (!data) {
            snprintf(err, errlen, "out of memory for tensor '%s'", t[i].name);
            rc = -1;
            break;
        }
        if (produce(ctx, i, data, err, errlen) != 0) rc = -1;
        else {
            w_bytes(&w, data, (size_t)want);
            w_pad(&w);
        }
        free(data);
    }
    if (fclose(w.f) != 0) w.bad = 1;
    if (!rc && w.bad) {
        snprintf(err, errlen, "%s: write failed (disk full?)", tmp);
        rc = -1;
    }
    if (!rc && rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: cannot rename into place", path);
        rc = -1;
    }
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}
