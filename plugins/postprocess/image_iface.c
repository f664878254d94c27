/* image_iface.c - the image members of sdrt.postprocess/1: PNG output with
 * metadata, previews, reading img2img inputs, parameter text, free. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pp.h"

static sdrt_error *to_u8(pp_plugin *p, const float *rgb, int h, int w, uint8_t **out) {
    size_t n = (size_t)h * w * 3;
    *out = malloc(n);
    if (!*out) return p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "png: out of memory for %dx%d", w, h);
    pp_rgb_to_u8(rgb, n, *out);
    return NULL;
}

sdrt_error *pp_field_error(pp_plugin *p, sdrt_error *e, const char *field, const char *path) {
    if (!e) return p->api->error_new(SDRT_PERMISSION_DENIED, NULL, "%s: '%s' is not allowed", field, path);
    sdrt_error *out = p->api->error_new(e->code, NULL, "%s: %s", field, e->message ? e->message : "refused");
    p->api->error_free(e);
    return out;
}

/* Resolves dir against the output roots and creates it. *abs from api->alloc. */
static sdrt_error *output_dir(pp_plugin *p, const char *dir, char **abs) {
    sdrt_error *e = NULL;
    *abs = p->api->resolve_path(p->host, "output", dir && dir[0] ? dir : ".", &e);
    if (!*abs) return pp_field_error(p, e, "output.dir", dir);
    char err[512];
    if (pp_mkdirs(*abs, err, sizeof err)) {
        p->api->free(*abs);
        *abs = NULL;
        return p->api->error_new(SDRT_IO_ERROR, NULL, "%s", err);
    }
    return NULL;
}

/* Writes the PNG into the freshly created fd; removes the file on failure. */
static sdrt_error *write_fd(pp_plugin *p, int fd, const char *path, const uint8_t *px, int w, int h,
                            const pp_png_text *texts) {
    FILE *f = fdopen(fd, "wb");
    char err[256] = "";
    int rc = f ? pp_png_write_file(f, px, w, h, texts, 2, err) : -1;
    if (!f) {
        close(fd);
        snprintf(err, sizeof err, "%s", strerror(errno));
    } else if (fclose(f) != 0 && !rc) {
        rc = -1;
        snprintf(err, sizeof err, "%s", strerror(errno));
    }
    if (!rc) return NULL;
    unlink(path);
    return p->api->error_new(SDRT_IO_ERROR, NULL, "%s: %s", path, err);
}

sdrt_error *pp_write_png(void *self, const float *rgb, int h, int w, const char *dir, const char *prefix,
                         const char *parameters_text, const char *request_json, char **path_out) {
    pp_plugin *p = self;
    if (path_out) *path_out = NULL;
    if (!prefix) prefix = "sdrt";
    if (!rgb || h < 1 || w < 1 || h > 65535 || w > 65535)
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "png: image %dx%d is empty or too large", w, h);
    if (!pp_prefix_ok(prefix))
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "prefix: \"%s\" must be a plain file name", prefix);
    uint8_t *px;
    sdrt_error *e = to_u8(p, rgb, h, w, &px);
    char *abs = NULL;
    if (!e) e = output_dir(p, dir, &abs);
    char path[4096], err[512];
    int fd = -1;
    if (!e && pp_create_unique(abs, prefix, ".png", path, sizeof path, &fd, err, sizeof err))
        e = p->api->error_new(SDRT_IO_ERROR, NULL, "%s", err);
    if (!e) {
        pp_png_text texts[2] = {{"parameters", parameters_text}, {"sdrt", request_json}};
        e = write_fd(p, fd, path, px, w, h, texts);
    }
    if (!e && path_out && !(*path_out = strdup(path)))
        e = p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "png: out of memory");
    if (abs) p->api->free(abs);
    free(px);
    return e;
}

sdrt_error *pp_preview_png(void *self, const float *latents, int c, int h, int w, const char *arch,
                           uint8_t **png_out, size_t *png_len) {
    pp_plugin *p = self;
    const float(*factors)[3];
    const float *bias;
    if (png_out) *png_out = NULL;
    if (!latents || !png_out || !png_len)
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "preview: latents, png_out and png_len are required");
    if (c != 4 || h < 1 || w < 1 || h > 4096 || w > 4096)
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "preview: latents [%d,%d,%d] must be [4,h,w]", c, h, w);
    if (pp_preview_factors(arch, &factors, &bias))
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "preview: arch \"%s\" has no latent-RGB factors", arch);
    uint8_t *px = malloc((size_t)h * w * 3);
    if (!px) return p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "preview: out of memory");
    pp_preview_rgb8(latents, h, w, factors, bias, px);
    char err[256];
    int rc = pp_png_write_mem(px, w, h, NULL, 0, png_out, png_len, err);
    free(px);
    return rc ? p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "preview: %s", err) : NULL;
}

sdrt_error *pp_image_read_source(pp_plugin *p, const char *source, pp_image *img) {
    char err[512];
    sdrt_status st;
    if (strncmp(source, "data:", 5) == 0) {
        st = pp_image_read_data_uri(source, img, err, sizeof err);
    } else {
        sdrt_error *e = NULL;
        char *abs = p->api->resolve_path(p->host, "output", source, &e);
        if (!abs) return pp_field_error(p, e, "image", source);
        sdrt_file_scope scope = {.api = p->api, .host = p->host, .kind = "output"};
        st = pp_image_read_file(abs, &scope, img, err, sizeof err);
        p->api->free(abs);
    }
    return st == SDRT_OK ? NULL : p->api->error_new(st, NULL, "%s", err);
}

sdrt_error *pp_read_image(void *self, const char *source, float **rgb, int *h, int *w) {
    pp_plugin *p = self;
    if (rgb) *rgb = NULL;
    if (!source || !rgb || !h || !w)
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "image: source and outputs are required");
    pp_image img;
    sdrt_error *e = pp_image_read_source(p, source, &img);
    if (e) return e;
    size_t n = (size_t)img.w * img.h * 3;
    float *out = malloc(n * sizeof *out);
    if (!out) {
        free(img.rgb);
        return p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "image: out of memory for %dx%d", img.w, img.h);
    }
    for (size_t i = 0; i < n; i++) out[i] = img.rgb[i] / 255.f;
    free(img.rgb);
    *rgb = out;
    *h = img.h;
    *w = img.w;
    return NULL;
}

sdrt_error *pp_format_parameters_iface(void *self, const char *request_json, uint64_t seed, char **text_out) {
    pp_plugin *p = self;
    char err[256];
    if (!text_out) return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "parameters: text_out is required");
    *text_out = pp_format_parameters(request_json, seed, err, sizeof err);
    return *text_out ? NULL : p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "%s", err);
}

void pp_free(void *self, void *ptr) {
    (void)self;
    free(ptr);
}
