/* pp.h - internals of the postprocess plugin shared between its files
 * (module prefix pp_; libpng owns png_*). */
#ifndef PP_PP_H
#define PP_PP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <pthread.h>

#include "sdrt/backend.h"
#include "sdrt/file.h"
#include "sdrt/model.h"
#include "sdrt/plugin.h"
#include "sdrt/postprocess.h"
#include "sdrt/precision.h"

/* ---- image limits ---- */
#define PP_IMAGE_MAX_SIDE 8192
#define PP_IMAGE_MAX_PIXELS ((uint64_t)64 * 1024 * 1024)
#define PP_IMAGE_MAX_FILE (256 << 20)

/* ---- png_write.c ---- */
typedef struct pp_png_text {
    const char *key;  /* Latin-1 keyword, 1..79 bytes */
    const char *text; /* UTF-8; NULL = chunk omitted */
} pp_png_text;

uint8_t pp_to_u8(float x);
void pp_rgb_to_u8(const float *rgb, size_t count, uint8_t *out);
/* err must hold 256 bytes. Return 0 or -1. */
int pp_png_write_file(FILE *f, const uint8_t *rgb, int w, int h, const pp_png_text *texts, int ntexts,
                      char *err);
/* *out is malloc'd. */
int pp_png_write_mem(const uint8_t *rgb, int w, int h, const pp_png_text *texts, int ntexts,
                     uint8_t **out, size_t *out_len, char *err);

/* ---- output_name.c ---- */
int pp_mkdirs(const char *path, char *err, size_t errlen);
/* Non-zero if prefix is usable as a file name prefix (no separators). */
int pp_prefix_ok(const char *prefix);
/* Creates "<dir>/<prefix>-<n><ext>" with O_EXCL; path receives its name. */
int pp_create_unique(const char *dir, const char *prefix, const char *ext, char *path, size_t pathlen,
                     int *fd_out, char *err, size_t errlen);

/* ---- image_read.c, data_uri.c ---- */
typedef struct pp_image {
    uint8_t *rgb; /* malloc'd [h,w,3] */
    int w, h;
} pp_image;

sdrt_status pp_image_decode(const uint8_t *buf, size_t len, pp_image *out, char *err, size_t errlen);
/* Reads and decodes an image file opened through sdrt_file_open under
 * `scope` (NULL: type checks only): a FIFO or device is refused without
 * blocking, a real path outside the roots is PERMISSION_DENIED. */
sdrt_status pp_image_read_file(const char *path, const sdrt_file_scope *scope, pp_image *out, char *err,
                               size_t errlen);
sdrt_status pp_image_read_data_uri(const char *uri, pp_image *out, char *err, size_t errlen);
int pp_base64_decode(const char *s, size_t n, uint8_t **out, size_t *out_len, char *err, size_t errlen);
int pp_data_uri_decode(const char *uri, uint8_t **out, size_t *out_len, char *err, size_t errlen);

/* ---- preview.c ---- */
int pp_preview_factors(const char *arch, const float (**factors)[3], const float **bias);
void pp_preview_rgb8(const float *latents, int h, int w, const float (*factors)[3], const float *bias,
                     uint8_t *rgb);

/* ---- a1111_params.c ---- */
/* malloc'd text, or NULL with err set. */
char *pp_format_parameters(const char *request_json, uint64_t seed, char *err, size_t errlen);

/* ---- plugin state (plugin.c) ---- */
#define PP_SAFETY_CACHE 8 /* safety checkers kept open (safety_msg.c) */
struct sc_model;

typedef struct pp_plugin {
    const sdrt_host_api *api;
    sdrt_host *host;
    /* Acquired lazily on first use (load order is arbitrary), released at
     * shutdown; guarded by lock. */
    pthread_mutex_t lock;
    const sdrt_backend_iface *backend;
    const sdrt_model_iface *model;
    sdrt_postprocess_iface iface;
    char *config_json; /* the plugin's config (upscaler_roots), or NULL */
    /* Safety checkers opened so far, by pipeline folder (guarded by lock;
     * immutable once listed, closed at shutdown). */
    struct sc_model *safety[PP_SAFETY_CACHE];
    int n_safety;
    /* VAE calls naming no precision: the config's "precision", else the
     * host's top-level key, else AUTO (pp_default_precision). */
    sdrt_precision precision;
} pp_plugin;

/* Sets p->precision from the plugin config (borrowed JSON text, may be
 * NULL) and the host settings; INVALID_ARGUMENT for a bad value. */
sdrt_error *pp_default_precision(pp_plugin *p, const char *config_json);

/* Takes the error of resolve_path (may be NULL) for `path` and returns it
 * as "<field>: <message>", so a refusal names the request field (the
 * host's message names only the kind of root). */
sdrt_error *pp_field_error(pp_plugin *p, sdrt_error *e, const char *field, const char *path);

/* Reads an image named by a request field: a path under the output roots
 * or a data: URI, as 8-bit RGB (img->rgb malloc'd). Errors name "image". */
sdrt_error *pp_image_read_source(pp_plugin *p, const char *source, pp_image *img);

/* Acquire the backend / model interfaces on first use. NULL or an error. */
sdrt_error *pp_backend(pp_plugin *p, const sdrt_backend_iface **out);
sdrt_error *pp_model(pp_plugin *p, const sdrt_model_iface **out);

/* sdrt.postprocess/1 members (vae_iface.c, image_iface.c); self = pp_plugin. */
sdrt_error *pp_decode(void *self, sdrt_model *m, const float *latents, int batch, int c, int h, int w,
                      const sdrt_vae_options *opt, sdrt_job *job, float **rgb_out, int *height,
                      int *width);
sdrt_error *pp_decode_tensor(void *self, sdrt_model *m, sdrt_device *dev, const sdrt_tensor *latents,
                             const sdrt_vae_options *opt, sdrt_job *job, float **rgb_out, int *height, int *width);
sdrt_error *pp_encode(void *self, sdrt_model *m, const float *rgb, int batch, int height, int width,
                      const float *noise, const sdrt_vae_options *opt, sdrt_job *job,
                      float **latents_out, int *channels);
sdrt_error *pp_write_png(void *self, const float *rgb, int h, int w, const char *dir, const char *prefix,
                         const char *parameters_text, const char *request_json, char **path_out);
sdrt_error *pp_preview_png(void *self, const float *latents, int c, int h, int w, const char *arch,
                           uint8_t **png_out, size_t *png_len);
sdrt_error *pp_read_image(void *self, const char *source, float **rgb, int *h, int *w);
sdrt_error *pp_format_parameters_iface(void *self, const char *request_json, uint64_t seed,
                                       char **text_out);
void pp_free(void *self, void *ptr);
sdrt_error *pp_upscale(void *self, const char *model_id, const float *rgb, int h, int w, sdrt_job *job, float **out,
                       int *oh, int *ow);

/* The postprocess.decode message (decode_msg.c). */
sdrt_error *pp_handle_decode(pp_plugin *p, const sdrt_request *req, char **result_json);
/* The postprocess.upscale message (upscale_msg.c). */
sdrt_error *pp_handle_upscale(pp_plugin *p, const sdrt_request *req, char **result_json);
/* The safety checker (safety_msg.c): the sdrt.postprocess/1 member, the
 * postprocess.safety_check message, and closing the cached checkers. */
sdrt_error *pp_safety_check(void *self, sdrt_model *m, float *rgb, int batch, int h, int w, int black_out,
                            sdrt_job *job, int *nsfw, char **details_json);
sdrt_error *pp_handle_safety_check(pp_plugin *p, const sdrt_request *req, char **result_json);
void pp_safety_free_cache(pp_plugin *p);
/* Checks the plugin config's upscaler_roots (a path or array of paths). */
sdrt_error *pp_upscale_check_config(const sdrt_host_api *api, const char *config_json);

#endif
