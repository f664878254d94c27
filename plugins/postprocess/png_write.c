/* png_write.c - 8-bit RGB PNG encoding with libpng, with text chunks for
 * generation metadata (A1111 "parameters", sdrt's request JSON), to a FILE
 * or to memory. */
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"

uint8_t pp_to_u8(float x) {
    /* numpy's (x * 255).round() rounds half to even: nearbyintf does too */
    if (!(x > 0.f)) return 0;
    if (x >= 1.f) return 255;
    return (uint8_t)nearbyintf(x * 255.f);
}

void pp_rgb_to_u8(const float *rgb, size_t count, uint8_t *out) {
    for (size_t i = 0; i < count; i++) out[i] = pp_to_u8(rgb[i]);
}

typedef struct mem_sink {
    uint8_t *data;
    size_t len, cap;
    int oom;
} mem_sink;

static void mem_write(png_structp png, png_bytep data, png_size_t len) {
    mem_sink *s = png_get_io_ptr(png);
    if (s->oom) return;
    if (s->len + len > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        while (cap < s->len + len) cap *= 2;
        uint8_t *p = realloc(s->data, cap);
        if (!p) {
            s->oom = 1;
            return;
        }
        s->data = p;
        s->cap = cap;
    }
    memcpy(s->data + s->len, data, len);
    s->len += len;
}

static void mem_flush(png_structp png) { (void)png; }

static int is_ascii(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return 0;
    return 1;
}

/* tEXt is Latin-1 only; anything beyond ASCII goes in an iTXt chunk (UTF-8),
 * as PIL (and so A1111) does. */
static void fill_text(png_text *t, const pp_png_text *src) {
    memset(t, 0, sizeof *t);
    t->key = (png_charp)src->key;
    t->text = (png_charp)src->text;
    if (is_ascii(src->text)) {
        t->compression = PNG_TEXT_COMPRESSION_NONE;
        t->text_length = strlen(src->text);
    } else {
        t->compression = PNG_ITXT_COMPRESSION_NONE;
        t->itxt_length = strlen(src->text);
        t->lang = (png_charp) "";
        t->lang_key = (png_charp) "";
    }
}

static void on_error(png_structp png, png_const_charp msg) {
    char *err = png_get_error_ptr(png);
    snprintf(err, 256, "png: %s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

/* Encodes with either a FILE or the memory sink. */
static int encode(FILE *f, mem_sink *sink, const uint8_t *rgb, int w, int h, const pp_png_text *texts,
                  int ntexts, char *err) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, err, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_text *pt = calloc(ntexts > 0 ? (size_t)ntexts : 1, sizeof *pt);
    png_bytep *rows = malloc(sizeof(png_bytep) * (size_t)h);
    if (!png || !info || !pt || !rows) {
        snprintf(err, 256, "png: out of memory");
        png_destroy_write_struct(&png, &info);
        free(pt), free(rows);
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(pt), free(rows);
        return -1;
    }
    if (f)
        png_init_io(png, f);
    else
        png_set_write_fn(png, sink, mem_write, mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    int n = 0;
    for (int i = 0; i < ntexts; i++)
        if (texts[i].text) fill_text(&pt[n++], &texts[i]);
    if (n) png_set_text(png, info, pt, n);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)(rgb + (size_t)y * w * 3);
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&png, &info);
    free(pt), free(rows);
    return 0;
}

int pp_png_write_file(FILE *f, const uint8_t *rgb, int w, int h, const pp_png_text *texts, int ntexts,
                      char *err) {
    return encode(f, NULL, rgb, w, h, texts, ntexts, err);
}

int pp_png_write_mem(const uint8_t *rgb, int w, int h, const pp_png_text *texts, int ntexts,
                     uint8_t **out, size_t *out_len, char *err) {
    mem_sink s = {0};
    int rc = encode(NULL, &s, rgb, w, h, texts, ntexts, err);
    if (!rc && s.oom) {
        snprintf(err, 256, "png: out of memory");
        rc = -1;
    }
    if (rc) {
        free(s.data);
        return -1;
    }
    *out = s.data;
    *out_len = s.len;
    return 0;
}
