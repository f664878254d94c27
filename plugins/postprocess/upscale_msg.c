/* upscale_msg.c - the postprocess.upscale message:
 *   {image, upscaler: "lanczos"|"bicubic"|"nearest"|<model id> (or model_id),
 *    scale, tile, tile_overlap, precision, output: {dir, prefix, save_npy}}
 *   -> {images: [path], width, height, scale, upscaler, tiles, npy?}
 * Models are found by id under the configured upscaler_roots, the model
 * roots' ESRGAN/, RealESRGAN/, upscale_models/ and upscalers/ folders, or as
 * a path inside the model roots. The PNG keeps the source's "parameters"
 * text and adds A1111's extras "postprocessing" text. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pp.h"
#include "sdrt/npy.h"
#include "sdrt/resample.h"
#include "upscale.h"

#define UP_DEFAULT_TILE 192
#define UP_DEFAULT_OVERLAP 16

typedef struct up_req {
    const char *image;
    const char *upscaler;    /* filter name or model id */
    int filter;              /* sdrt_resample_filter, or -1 for a model */
    double scale;            /* 0 = the model's own */
    int tile, overlap;
    const char *dir, *prefix;
    int save_npy;
    sdrt_precision precision; /* the network's stream precision */
} up_req;

static sdrt_error *bad(pp_plugin *p, const char *field, const char *fmt, const char *arg) {
    char why[512];
    snprintf(why, sizeof why, fmt, arg ? arg : "");
    return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "%s: %s", field, why);
}

static sdrt_error *get_int(pp_plugin *p, const cJSON *d, const char *key, int lo, int hi, int *out) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(d, key);
    if (!f) return NULL;
    if (!cJSON_IsNumber(f) || f->valuedouble != floor(f->valuedouble) || f->valuedouble < lo || f->valuedouble > hi)
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "%s: must be an integer in [%d, %d]", key, lo, hi);
    *out = (int)f->valuedouble;
    return NULL;
}

static sdrt_error *parse(pp_plugin *p, const cJSON *d, up_req *r) {
    memset(r, 0, sizeof *r);
    r->precision = p->precision;
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(d, "precision");
    if (pr && !cJSON_IsNull(pr)) {
        char msg[200];
        if (!cJSON_IsString(pr)) return bad(p, "precision", "must be a string: " SDRT_PRECISION_CHOICES, NULL);
        if (sdrt_precision_parse(pr->valuestring, "precision", &r->precision, msg, sizeof msg) != SDRT_OK)
            return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "%s", msg);
    }
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(d, "image");
    if (!cJSON_IsString(f) || !f->valuestring[0]) return bad(p, "image", "required string (a path or data: URI)", NULL);
    r->image = f->valuestring;
    const cJSON *up = cJSON_GetObjectItemCaseSensitive(d, "upscaler"), *mid = cJSON_GetObjectItemCaseSensitive(d, "model_id");
    if (up && mid) return bad(p, "upscaler", "give either upscaler or model_id, not both", NULL);
    f = up ? up : mid;
    const char *field = up ? "upscaler" : "model_id";
    if (!cJSON_IsString(f) || !f->valuestring[0])
        return bad(p, "upscaler", "required string: \"lanczos\", \"bicubic\", \"nearest\" or an upscaler model id", NULL);
    r->upscaler = f->valuestring;
    r->filter = -1;
    if (!strcmp(r->upscaler, "lanczos")) r->filter = SDRT_RESAMPLE_LANCZOS;
    else if (!strcmp(r->upscaler, "bicubic")) r->filter = SDRT_RESAMPLE_BICUBIC;
    else if (!strcmp(r->upscaler, "nearest")) r->filter = SDRT_RESAMPLE_NEAREST;
    else if (strstr(r->upscaler, "..") || r->upscaler[0] == '/' || strchr(r->upscaler, '\\'))
        return bad(p, field, "\"%s\" must be a model id or a path relative to a model root", r->upscaler);
    f = cJSON_GetObjectItemCaseSensitive(d, "scale");
    if (f && (!cJSON_IsNumber(f) || !(f->valuedouble > 0) || f->valuedouble > 16))
        return bad(p, "scale", "must be a number in (0, 16]", NULL);
    r->scale = f ? f->valuedouble : 0;
    if (r->filter >= 0 && !f) r->scale = 2;
    r->tile = UP_DEFAULT_TILE;
    r->overlap = UP_DEFAULT_OVERLAP;
    sdrt_error *e = get_int(p, d, "tile", 0, 4096, &r->tile);
    if (!e) e = get_int(p, d, "tile_overlap", 0, 1024, &r->overlap);
    if (e) return e;
    if (r->tile && (r->tile < 16 || r->overlap * 2 >= r->tile))
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                 "tile_overlap: %d must be less than half of tile (%d); tile is 0 (off) or >= 16",
                                 r->overlap, r->tile);
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(d, "output");
    if (out && !cJSON_IsObject(out)) return bad(p, "output", "must be an object", NULL);
    f = cJSON_GetObjectItemCaseSensitive(out, "dir");
    if (f && !cJSON_IsString(f)) return bad(p, "output.dir", "must be a string", NULL);
    r->dir = f ? f->valuestring : "outputs";
    f = cJSON_GetObjectItemCaseSensitive(out, "prefix");
    if (f && !cJSON_IsString(f)) return bad(p, "output.prefix", "must be a string", NULL);
    r->prefix = f ? f->valuestring : "upscale";
    if (!pp_prefix_ok(r->prefix)) return bad(p, "output.prefix", "\"%s\" must be a plain file name", r->prefix);
    f = cJSON_GetObjectItemCaseSensitive(out, "save_npy");
    if (f && !cJSON_IsBool(f)) return bad(p, "output.save_npy", "must be a boolean", NULL);
    r->save_npy = cJSON_IsTrue(f);
    return NULL;
}

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int add_dirs(cJSON *list, const cJSON *v, const char *sub) {
    int n = 0;
    for (const cJSON *e = cJSON_IsArray(v) ? v->child : v; e; e = cJSON_IsArray(v) ? e->next : NULL) {
        if (!cJSON_IsString(e)) continue;
        char buf[4096];
        snprintf(buf, sizeof buf, "%s%s%s", e->valuestring, sub[0] ? "/" : "", sub);
        cJSON_AddItemToArray(list, cJSON_CreateString(buf));
        n++;
    }
    return n;
}

/* The model file of `id`: a path inside the model roots, or a plain name
 * (with or without extension) in one of the upscaler folders. *path is
 * malloc'd. */
static sdrt_error *find_model(pp_plugin *p, const char *id, char **path) {
    *path = NULL;
    const char *s = p->api->settings_json ? p->api->settings_json(p->host) : NULL;
    cJSON *set = s ? cJSON_Parse(s) : NULL, *cfg = p->config_json ? cJSON_Parse(p->config_json) : NULL;
    cJSON *dirs = cJSON_CreateArray();
    add_dirs(dirs, cJSON_GetObjectItemCaseSensitive(cfg, "upscaler_roots"), "");
    static const char *const subs[] = {"ESRGAN", "RealESRGAN", "upscale_models", "upscalers", ""};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        add_dirs(dirs, cJSON_GetObjectItemCaseSensitive(set, "model_roots"), subs[i]);
    static const char *const exts[] = {"", ".safetensors", ".pth", ".pt"};
    char buf[4200];
    if (!strchr(id, '/')) {
        for (const cJSON *d = dirs->child; d && !*path; d = d->next)
            for (size_t k = 0; k < sizeof exts / sizeof exts[0] && !*path; k++) {
                snprintf(buf, sizeof buf, "%s/%s%s", d->valuestring, id, exts[k]);
                if (is_file(buf)) *path = strdup(buf);
            }
    } else {
        sdrt_error *e = NULL;
        char *abs = p->api->resolve_path(p->host, "model", id, &e);
        if (abs && is_file(abs)) *path = strdup(abs);
        if (abs) p->api->free(abs);
        if (e) p->api->error_free(e);
    }
    sdrt_error *e = NULL;
    if (!*path) {
        char *list = cJSON_PrintUnformatted(dirs);
        e = p->api->error_new(SDRT_NOT_FOUND, NULL, "upscaler: model \"%s\" not found (looked in %s)", id,
                              list ? list : "[]");
        free(list);
    }
    cJSON_Delete(dirs);
    cJSON_Delete(set);
    cJSON_Delete(cfg);
    return e;
}

/* The "parameters" tEXt/iTXt (uncompressed) of a PNG file, or NULL. */
static char *png_parameters(pp_plugin *p, const char *source) {
    if (strncmp(source, "data:", 5) == 0) return NULL;
    sdrt_error *e = NULL;
    char *abs = p->api->resolve_path(p->host, "output", source, &e);
    if (e) p->api->error_free(e);
    if (!abs) return NULL;
    sdrt_file_scope scope = {.api = p->api, .host = p->host, .kind = "output"};
    FILE *f = sdrt_file_fopen(abs, "image", &scope, NULL, NULL, 0);
    p->api->free(abs);
    if (!f) return NULL;
    char *out = NULL;
    uint8_t hdr[8];
    if (fread(hdr, 1, 8, f) == 8 && memcmp(hdr, "\x89PNG\r\n\x1a\n", 8) == 0) {
        uint8_t ch[8];
        while (!out && fread(ch, 1, 8, f) == 8) {
            uint32_t len = (uint32_t)ch[0] << 24 | (uint32_t)ch[1] << 16 | (uint32_t)ch[2] << 8 | ch[3];
            int text = !memcmp(ch + 4, "tEXt", 4), itxt = !memcmp(ch + 4, "iTXt", 4);
            if (!memcmp(ch + 4, "IDAT", 4) || !memcmp(ch + 4, "IEND", 4) || len > (1u << 24)) break;
            if (!(text || itxt) || len < 11) {
                if (fseek(f, (long)len + 4, SEEK_CUR)) break;
                continue;
            }
            char *b = malloc(len + 1);
            if (!b || fread(b, 1, len, f) != len) {
                free(b);
                break;
            }
            b[len] = 0;
            fseek(f, 4, SEEK_CUR);
            if (strcmp(b, "parameters") == 0) {
                const char *v = b + 11;
                /* iTXt: flag, method, language\0, translated keyword\0, text */
                if (itxt && b[11] == 0) {
                    v = b + 13;
                    v += strnlen(v, (size_t)(b + len - v)) + 1;
                    if (v < b + len) v += strnlen(v, (size_t)(b + len - v)) + 1;
                } else if (itxt) {
                    v = NULL; /* compressed: not kept */
                }
                if (v && v <= b + len) out = strdup(v);
            }
            free(b);
        }
    }
    fclose(f);
    return out;
}

typedef struct up_progress {
    pp_plugin *p;
    sdrt_job *job;
    int total;      /* tiles, as the tiler reports them */
} up_progress;

static void on_tile(void *ctx, int done, int total) {
    up_progress *u = ctx;
    u->total = total;
    sdrt_progress pr = {SDRT_STRUCT_SIZE(sdrt_progress, message), (double)done / total, "upscale", done, total,
                        "upscale tile"};
    u->p->api->progress(u->job, &pr);
}

static sdrt_error *out_dir(pp_plugin *p, const char *dir, char **abs) {
    sdrt_error *e = NULL;
    *abs = p->api->resolve_path(p->host, "output", dir && dir[0] ? dir : ".", &e);
    if (!*abs) return e ? e : p->api->error_new(SDRT_PERMISSION_DENIED, NULL, "output.dir: %s: not allowed", dir);
    char err[512];
    if (pp_mkdirs(*abs, err, sizeof err)) {
        p->api->free(*abs);
        *abs = NULL;
        return p->api->error_new(SDRT_IO_ERROR, NULL, "%s", err);
    }
    return NULL;
}

static sdrt_error *write_outputs(pp_plugin *p, const up_req *r, const uint8_t *px, const float *f32, int w, int h,
                                 const char *params, const char *pp_info, const char *request_json, cJSON *res) {
    char *abs = NULL, path[4200], err[512];
    sdrt_error *e = out_dir(p, r->dir, &abs);
    if (e) return e;
    int fd = -1;
    if (pp_create_unique(abs, r->prefix, ".png", path, sizeof path, &fd, err, sizeof err)) {
        p->api->free(abs);
        return p->api->error_new(SDRT_IO_ERROR, NULL, "%s", err);
    }
    FILE *fp = fdopen(fd, "wb");
    pp_png_text texts[3] = {{"parameters", params}, {"postprocessing", pp_info}, {"sdrt", request_json}};
    int rc = fp ? pp_png_write_file(fp, px, w, h, texts, 3, err) : -1;
    if (!fp) close(fd);
    if (fp && fclose(fp) && !rc) rc = -1;
    if (rc) {
        unlink(path);
        p->api->free(abs);
        return p->api->error_new(SDRT_IO_ERROR, NULL, "%s: cannot write the PNG", path);
    }
    cJSON_AddItemToArray(cJSON_AddArrayToObject(res, "images"), cJSON_CreateString(path));
    if (f32) {
        /* Next to the PNG: same name, .npy, float32 [H,W,3] before clamping. */
        size_t n = strlen(path);
        memcpy(path + n - 4, ".npy", 5);
        int64_t shape[3] = {h, w, 3};
        if (sdrt_npy_write_f32(path, f32, shape, 3, err, sizeof err)) e = p->api->error_new(SDRT_IO_ERROR, NULL, "%s", err);
        else cJSON_AddStringToObject(res, "npy", path);
    }
    p->api->free(abs);
    return e;
}

static sdrt_error *run_model(pp_plugin *p, const up_req *r, sdrt_job *job, const float *in, int h, int w,
                             float **out, int *scale, char *desc, size_t desclen, int *tiles) {
    char *path = NULL;
    sdrt_error *e = find_model(p, r->upscaler, &path);
    if (e) return e;
    up_model *m = NULL;
    char err[1200];
    /* The file (and every symlink on its way) must stay inside the model
     * roots or the deployment's upscaler_roots. */
    cJSON *cfg = p->config_json ? cJSON_Parse(p->config_json) : NULL;
    const cJSON *ur = cJSON_GetObjectItemCaseSensitive(cfg, "upscaler_roots");
    char *extra[16];
    size_t n_extra = 0;
    for (const cJSON *d = cJSON_IsArray(ur) ? ur->child : ur; d && n_extra < 16; d = cJSON_IsArray(ur) ? d->next : NULL)
        if (cJSON_IsString(d)) extra[n_extra++] = d->valuestring;
    sdrt_file_scope scope = {.api = p->api, .host = p->host, .kind = "model", .extra_roots = extra,
                             .n_extra_roots = n_extra};
    int bad = up_model_open(path, &scope, &m, err, sizeof err);
    cJSON_Delete(cfg);
    if (bad) {
        free(path);
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "upscaler: %s", err);
    }
    free(path);
    up_model_describe(m, desc, desclen);
    if (r->scale != 0 && r->scale != m->scale) {
        e = p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "scale: %g is not what the model does (%s upscales x%d)",
                              r->scale, r->upscaler, m->scale);
    } else if ((int64_t)h * m->scale > PP_IMAGE_MAX_SIDE || (int64_t)w * m->scale > PP_IMAGE_MAX_SIDE ||
               (uint64_t)h * w * m->scale * m->scale > PP_IMAGE_MAX_PIXELS) {
        e = p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "image: %dx%d x%d = %lldx%lld exceeds the limits (%d per side, %llu pixels)",
                              w, h, m->scale, (long long)w * m->scale, (long long)h * m->scale, PP_IMAGE_MAX_SIDE,
                              (unsigned long long)PP_IMAGE_MAX_PIXELS);
    }
    const sdrt_backend_iface *bi = NULL;
    if (!e) e = pp_backend(p, &bi);
    sdrt_nn *nn = NULL;
    if (!e) {
        /* The request's precision; the device's refusal is the error
         * (UNSUPPORTED naming `precision` and the device). */
        char params[64], msg[400];
        sdrt_stream_params_format(params, sizeof params, 0, r->precision);
        sdrt_status st = sdrt_nn_create(bi->default_device(bi->self), params, p->api->is_cancelled, job, &nn, msg,
                                        sizeof msg);
        if (st == SDRT_UNSUPPORTED || st == SDRT_INVALID_ARGUMENT) e = p->api->error_new(st, NULL, "%s", msg);
        else if (st != SDRT_OK)
            e = p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "upscale: cannot create a compute context: %s", msg);
    }
    if (!e) {
        *scale = m->scale;
        *out = malloc((size_t)h * m->scale * w * m->scale * 3 * sizeof **out);
        up_progress pr = {p, job, 0};
        up_tiling t = {r->tile, r->overlap, on_tile, &pr};
        if (!*out) e = p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "upscale: out of memory");
        else if (up_run_tiled(m, nn, &t, in, h, w, *out, err, sizeof err)) {
            const char *msg = NULL;
            sdrt_status st = sdrt_nn_status(nn, &msg);
            e = p->api->error_new(st == SDRT_OK ? SDRT_INTERNAL : st, NULL, "%s", err);
        }
        *tiles = pr.total;
    }
    sdrt_nn_free(nn);
    up_model_close(m);
    return e;
}

sdrt_error *pp_upscale(void *self, const char *model_id, const float *rgb, int h, int w, sdrt_job *job, float **out,
                       int *oh, int *ow) {
    pp_plugin *p = self;
    if (out) *out = NULL;
    if (!model_id || !model_id[0] || !rgb || !out || !oh || !ow || h < 1 || w < 1)
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "upscale: model_id, image and outputs are required");
    up_req r = {.upscaler = model_id, .filter = -1, .tile = UP_DEFAULT_TILE, .overlap = UP_DEFAULT_OVERLAP,
                .precision = p->precision};
    int scale = 0, tiles = 0;
    char desc[200];
    sdrt_error *e = run_model(p, &r, job, rgb, h, w, out, &scale, desc, sizeof desc, &tiles);
    if (e) {
        free(*out);
        *out = NULL;
        return e;
    }
    *oh = h * scale;
    *ow = w * scale;
    return NULL;
}

sdrt_error *pp_upscale_check_config(const sdrt_host_api *api, const char *config_json) {
    cJSON *cfg = config_json ? cJSON_Parse(config_json) : NULL;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(cfg, "upscaler_roots");
    int ok = !r || cJSON_IsString(r);
    if (cJSON_IsArray(r)) {
        ok = 1;
        for (const cJSON *e = r->child; e; e = e->next) ok &= cJSON_IsString(e) && e->valuestring[0];
    }
    cJSON_Delete(cfg);
    return ok ? NULL
              : api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                               "postprocess config: upscaler_roots must be a folder path or an array of folder paths");
}

sdrt_error *pp_handle_upscale(pp_plugin *p, const sdrt_request *req, char **result_json) {
    cJSON *d = cJSON_Parse(req->data_json);
    if (!cJSON_IsObject(d)) {
        cJSON_Delete(d);
        return bad(p, "data", "must be a JSON object", NULL);
    }
    up_req r;
    float *in = NULL, *out = NULL;
    uint8_t *px = NULL;
    int h = 0, w = 0, oh = 0, ow = 0, scale = 0, tiles = 1;
    char desc[200] = "", *params = NULL, *info = NULL, *txt = NULL;
    cJSON *res = NULL;
    sdrt_error *e = parse(p, d, &r);
    if (!e) e = pp_read_image(p, r.image, &in, &h, &w);
    if (!e && r.filter >= 0) {
        ow = (int)lround(w * r.scale);
        oh = (int)lround(h * r.scale);
        if (ow < 1 || oh < 1 || ow > PP_IMAGE_MAX_SIDE || oh > PP_IMAGE_MAX_SIDE ||
            (uint64_t)ow * oh > PP_IMAGE_MAX_PIXELS)
            e = p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "scale: %dx%d x%g = %dx%d is outside the image limits (1..%d per side)",
                                  w, h, r.scale, ow, oh, PP_IMAGE_MAX_SIDE);
        uint8_t *src = e ? NULL : malloc((size_t)w * h * 3);
        px = e ? NULL : malloc((size_t)ow * oh * 3);
        if (!e && (!src || !px)) e = p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "upscale: out of memory");
        if (!e) {
            for (size_t i = 0; i < (size_t)w * h * 3; i++) src[i] = (uint8_t)lrintf(in[i] * 255.f);
            if (sdrt_resample_u8(src, w, h, 3, NULL, (sdrt_resample_filter)r.filter, px, ow, oh))
                e = p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "upscale: out of memory");
            snprintf(desc, sizeof desc, "%s", r.filter == SDRT_RESAMPLE_LANCZOS ? "Lanczos" : r.filter == SDRT_RESAMPLE_BICUBIC ? "Bicubic" : "Nearest");
            on_tile(&(up_progress){p, req->job, 0}, 1, 1);
        }
        free(src);
        if (!e && r.save_npy) {
            out = malloc((size_t)ow * oh * 3 * sizeof *out);
            if (out)
                for (size_t i = 0; i < (size_t)ow * oh * 3; i++) out[i] = px[i] / 255.f;
        }
    } else if (!e) {
        e = run_model(p, &r, req->job, in, h, w, &out, &scale, desc, sizeof desc, &tiles);
        if (!e) {
            ow = w * scale;
            oh = h * scale;
            px = malloc((size_t)ow * oh * 3);
            if (!px) e = p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "upscale: out of memory");
            else pp_rgb_to_u8(out, (size_t)ow * oh * 3, px);
        }
    }
    if (!e) {
        double s = r.filter >= 0 ? r.scale : scale;
        size_t n = strlen(desc) + strlen(r.upscaler) + 96;
        info = malloc(n);
        if (info) snprintf(info, n, "Postprocess upscale by: %g, Postprocess upscaler: %s", s, r.filter >= 0 ? desc : r.upscaler);
        params = png_parameters(p, r.image);
        res = cJSON_CreateObject();
        e = write_outputs(p, &r, px, r.save_npy ? out : NULL, ow, oh, params, info, req->data_json, res);
        cJSON_AddNumberToObject(res, "width", ow);
        cJSON_AddNumberToObject(res, "height", oh);
        cJSON_AddNumberToObject(res, "scale", s);
        cJSON_AddStringToObject(res, "upscaler", desc);
        cJSON_AddNumberToObject(res, "tiles", tiles);
        if (info) cJSON_AddStringToObject(res, "postprocessing", info);
    }
    if (!e) {
        txt = cJSON_PrintUnformatted(res);
        size_t len = txt ? strlen(txt) + 1 : 0;
        *result_json = txt ? p->api->alloc(len) : NULL;
        if (!*result_json) e = p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "upscale: out of memory");
        else memcpy(*result_json, txt, len);
    }
    free(txt);
    cJSON_Delete(res);
    free(info);
    free(params);
    free(px);
    free(out);
    free(in);
    cJSON_Delete(d);
    return e;
}
