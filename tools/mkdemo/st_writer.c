/* st_writer.c - tensor lists and writing them as a safetensors file
 * (8-byte little-endian header length, JSON header padded to 8 bytes, raw
 * little-endian data in list order). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mkdemo.h"
#include "sdrt/half.h"

void md_name(char *out, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, MD_NAME, fmt, ap);
    va_end(ap);
}

void md_add(md_list *l, md_init init, const char *name, int ndim, const int64_t *shape) {
    if (l->oom) return;
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        md_tensor *p = realloc(l->items, cap * sizeof *p);
        if (!p) {
            l->oom = 1;
            return;
        }
        l->items = p;
        l->cap = cap;
    }
    md_tensor *t = &l->items[l->count++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->init = init;
}

static void add_named(md_list *l, md_init init, const char *prefix, const char *leaf, int ndim,
                      const int64_t *shape) {
    char name[MD_NAME];
    md_name(name, "%s.%s", prefix, leaf);
    md_add(l, init, name, ndim, shape);
}

void md_linear(md_list *l, const char *prefix, int64_t out, int64_t in, int bias, md_init init) {
    int64_t w[2] = {out, in};
    add_named(l, init, prefix, "weight", 2, w);
    if (bias) add_named(l, MD_BIAS, prefix, "bias", 1, &out);
}

void md_conv(md_list *l, const char *prefix, int64_t out, int64_t in, int k, md_init init) {
    int64_t w[4] = {out, in, k, k};
    add_named(l, init, prefix, "weight", 4, w);
    add_named(l, MD_BIAS, prefix, "bias", 1, &out);
}

void md_norm(md_list *l, const char *prefix, int64_t ch) {
    add_named(l, MD_NORM_W, prefix, "weight", 1, &ch);
    add_named(l, MD_NORM_B, prefix, "bias", 1, &ch);
}

void md_list_free(md_list *l) {
    free(l->items);
    memset(l, 0, sizeof *l);
}

static int64_t numel(const md_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static int is_f16(const md_tensor *t, int all_f32) {
    return !all_f32 && t->ndim >= 2 && (t->init == MD_MATRIX || t->init == MD_RESIDUAL);
}

/* Fills v[0..n) for tensor t from g. */
static void init_values(const md_tensor *t, sdrt_rng *g, float *v, int64_t n) {
    sdrt_rng_randn(g, v, (size_t)n);
    int64_t fan_in = t->ndim >= 2 ? n / t->shape[0] : 1;
    float scale = 0.02f, offset = 0.f;
    if (t->init == MD_MATRIX) scale = 1.f / sqrtf((float)fan_in);
    if (t->init == MD_RESIDUAL) scale = 0.2f / sqrtf((float)fan_in);
    if (t->init == MD_NORM_W) offset = 1.f;
    for (int64_t i = 0; i < n; i++) v[i] = v[i] * scale + offset;
}

/* The JSON header, padded with spaces to a multiple of 8. malloc'd. */
static char *header_json(const md_list *l, int all_f32, size_t *len) {
    size_t cap = 256 + l->count * 384, pos = 0;
    char *h = malloc(cap);
    if (!h) return NULL;
    uint64_t off = 0;
    pos += (size_t)snprintf(h + pos, cap - pos, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < l->count; i++) {
        const md_tensor *t = &l->items[i];
        int f16 = is_f16(t, all_f32);
        uint64_t bytes = (uint64_t)numel(t) * (f16 ? 2 : 4);
        pos += (size_t)snprintf(h + pos, cap - pos, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name, f16 ? "F16" : "F32");
        for (int d = 0; d < t->ndim; d++)
            pos += (size_t)snprintf(h + pos, cap - pos, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        pos += (size_t)snprintf(h + pos, cap - pos, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                                (unsigned long long)(off + bytes));
        off += bytes;
    }
    pos += (size_t)snprintf(h + pos, cap - pos, "}");
    while (pos % 8) h[pos++] = ' ';
    h[pos] = '\0';
    *len = pos;
    return h;
}

static int write_data(FILE *f, const md_tensor *t, sdrt_rng *g, int all_f32) {
    int64_t n = numel(t);
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) return -1;
    init_values(t, g, v, n);
    int rc = 0;
    if (is_f16(t, all_f32)) {
        for (int64_t i = 0; i < n && !rc; i++) {
            uint16_t h = sdrt_f32_to_f16(v[i]);
            uint8_t b[2] = {(uint8_t)h, (uint8_t)(h >> 8)};
            rc = fwrite(b, 1, 2, f) == 2 ? 0 : -1;
        }
    } else {
        rc = fwrite(v, sizeof *v, (size_t)n, f) == (size_t)n ? 0 : -1; /* x86/ARM: little-endian */
    }
    free(v);
    return rc;
}

int md_write_safetensors(const char *path, const md_list *l, sdrt_rng *g, int all_f32) {
    if (l->oom) {
        fprintf(stderr, "sdrt-mkdemo: out of memory\n");
        return -1;
    }
    size_t hlen = 0;
    char *h = header_json(l, all_f32, &hlen);
    FILE *f = fopen(path, "wb");
    int rc = h && f ? 0 : -1;
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    if (!rc) rc = fwrite(len8, 1, 8, f) == 8 && fwrite(h, 1, hlen, f) == hlen ? 0 : -1;
    for (size_t i = 0; i < l->count && !rc; i++) rc = write_data(f, &l->items[i], g, all_f32);
    if (f && fclose(f) != 0) rc = -1;
    if (rc) fprintf(stderr, "sdrt-mkdemo: cannot write %s\n", path);
    free(h);
    return rc;
}
