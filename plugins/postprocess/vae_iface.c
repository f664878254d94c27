/* vae_iface.c - decode/encode of sdrt.postprocess/1: model config and
 * weights, the compute device, the tiling decision, and the host-side maps
 * around the network. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "pp.h"
#include "vae.h"

#define DEFAULT_TILE 512
#define DEFAULT_OVERLAP 128
#define MAX_AUTO_BUDGET ((uint64_t)8 << 30)

typedef struct weight_ctx {
    const sdrt_model_iface *mi;
    sdrt_model *m;
} weight_ctx;

static const sdrt_tensor *model_weight(void *ctx, const char *name) {
    weight_ctx *w = ctx;
    return w->mi->tensor(w->m, "vae", name);
}

/* Everything one decode/encode call needs, set up by begin(). */
typedef struct vae_call {
    pp_plugin *p;
    vae_config cfg;
    weight_ctx wc;
    sdrt_device *dev;
    sdrt_job *job;
    char params[96]; /* stream params: the call's precision (vae_precision) */
    int offload; /* sdrt_offload of the options */
    int slicing; /* one batch item at a time */
} vae_call;

sdrt_error *pp_default_precision(pp_plugin *p, const char *config_json) {
    const char *settings = SDRT_HAS_MEMBER(p->api, sdrt_host_api, settings_json) && p->api->settings_json
                               ? p->api->settings_json(p->host) : NULL;
    cJSON *own = config_json ? cJSON_Parse(config_json) : NULL, *host = settings ? cJSON_Parse(settings) : NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(own, "precision");
    if (!v) v = cJSON_GetObjectItemCaseSensitive(host, "precision");
    char msg[200];
    sdrt_error *e = NULL;
    p->precision = SDRT_PRECISION_AUTO;
    if (v && (!cJSON_IsString(v) ||
              sdrt_precision_parse(v->valuestring, "precision", &p->precision, msg, sizeof msg) != SDRT_OK))
        e = p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "postprocess config: precision: must be one of "
                              SDRT_PRECISION_CHOICES);
    cJSON_Delete(own);
    cJSON_Delete(host);
    return e;
}

/* The stream params of a VAE call into c->params: the call's precision
 * (opt, else the plugin's default), but "f32" when the VAE's config says
 * force_upcast, as diffusers upcasts such a VAE whatever the pipeline's
 * dtype (no overflow to NaN or black images in f16). */
static sdrt_error *vae_precision(vae_call *c, const sdrt_vae_options *opt) {
    sdrt_precision prec = c->p->precision;
    const char *v = opt && SDRT_HAS_MEMBER(opt, sdrt_vae_options, precision) ? opt->precision : NULL;
    char msg[200];
    if (v && sdrt_precision_parse(v, "precision", &prec, msg, sizeof msg) != SDRT_OK)
        return c->p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "%s", msg);
    if (c->cfg.force_upcast) prec = SDRT_PRECISION_F32;
    sdrt_stream_params_format(c->params, sizeof c->params, 0, prec);
    return NULL;
}

static sdrt_error *begin(pp_plugin *p, sdrt_model *m, sdrt_job *job, vae_call *c) {
    memset(c, 0, sizeof *c);
    c->p = p;
    c->job = job;
    const sdrt_backend_iface *bi;
    sdrt_error *e = pp_model(p, &c->wc.mi);
    if (!e) e = pp_backend(p, &bi);
    if (e) return e;
    c->wc.m = m;
    c->dev = bi->default_device(bi->self);
    const char *json = c->wc.mi->config_json(m, "vae");
    if (!json) return p->api->error_new(SDRT_NOT_FOUND, NULL, "model %s: has no vae component", c->wc.mi->id(m));
    char err[256];
    if (vae_config_parse(json, &c->cfg, err, sizeof err))
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "model %s: %s", c->wc.mi->id(m), err);
    return NULL;
}

static uint64_t auto_budget(sdrt_device *dev) {
    size_t free_b = 0, total_b = 0;
    if (dev->iface->memory) dev->iface->memory(dev, &free_b, &total_b);
    uint64_t b = free_b ? (uint64_t)free_b / 4 * 3 : (uint64_t)4 << 30;
    return b < MAX_AUTO_BUDGET ? b : MAX_AUTO_BUDGET;
}

static void report_tile(void *ctx, int done, int total) {
    vae_call *c = ctx;
    sdrt_progress pr = {SDRT_STRUCT_SIZE(sdrt_progress, message), (double)done / total, "vae", done, total,
                        "vae tile"};
    c->p->api->progress(c->job, &pr);
}

/* Tiling from the options, with AUTO deciding by the activation estimate of
 * the latent size [n,h,w]. */
static sdrt_error *plan_tiling(vae_call *c, const sdrt_vae_options *opt, int n, int h, int w,
                               vae_tiling *t) {
    sdrt_vae_options o;
    sdrt_vae_options_init(&o);
    if (opt) {
        if (SDRT_HAS_MEMBER(opt, sdrt_vae_options, tiling)) o.tiling = opt->tiling;
        if (SDRT_HAS_MEMBER(opt, sdrt_vae_options, tile_size)) o.tile_size = opt->tile_size;
        if (SDRT_HAS_MEMBER(opt, sdrt_vae_options, tile_overlap)) o.tile_overlap = opt->tile_overlap;
        if (SDRT_HAS_MEMBER(opt, sdrt_vae_options, memory_budget)) o.memory_budget = opt->memory_budget;
        if (SDRT_HAS_MEMBER(opt, sdrt_vae_options, offload)) o.offload = opt->offload;
        if (SDRT_HAS_MEMBER(opt, sdrt_vae_options, slicing)) o.slicing = opt->slicing;
    }
    memset(t, 0, sizeof *t);
    t->tile = o.tile_size ? o.tile_size : DEFAULT_TILE;
    t->overlap = o.tile_overlap ? o.tile_overlap : DEFAULT_OVERLAP;
    const sdrt_host_api *api = c->p->api;
    if (o.tiling < 0 || o.tiling > SDRT_VAE_TILING_OFF)
        return api->error_new(SDRT_INVALID_ARGUMENT, NULL, "tiling: %d is not 0 (auto), 1 (on) or 2 (off)", o.tiling);
    if (o.offload < SDRT_OFFLOAD_NONE || o.offload > SDRT_OFFLOAD_SEQUENTIAL)
        return api->error_new(SDRT_INVALID_ARGUMENT, NULL, "offload: %d is not 0 (none), 1 (model) or 2 (sequential)",
                              o.offload);
    c->offload = o.offload;
    c->slicing = o.slicing != 0;
    if (t->tile < 64 || t->tile % 8 || t->tile > 4096)
        return api->error_new(SDRT_INVALID_ARGUMENT, NULL, "tile_size: %d is not a multiple of 8 in [64, 4096]", t->tile);
    if (t->overlap < 8 || t->overlap % 8 || t->overlap * 2 > t->tile)
        return api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                              "tile_overlap: %d is not a multiple of 8 in [8, tile_size/2=%d]", t->overlap,
                              t->tile / 2);
    uint64_t budget = o.memory_budget ? o.memory_budget : auto_budget(c->dev);
    /* Sliced, one image's activations are live at a time. */
    t->enabled = o.tiling == SDRT_VAE_TILING_ON ||
                 (o.tiling == SDRT_VAE_TILING_AUTO && vae_activation_bytes(&c->cfg, c->slicing ? 1 : n, h, w) > budget);
    t->on_tile = report_tile;
    t->ctx = c;
    return NULL;
}

static sdrt_error *net_error(const vae_call *c, const vae_net *v) {
    return c->p->api->error_new(v->status == SDRT_OK ? SDRT_INTERNAL : v->status, NULL, "%s",
                                v->message[0] ? v->message : "vae: failed");
}

/* A context on the call's device (c->params: its precision) with the
 * model's store and the call's offload mode. The device's refusal of the
 * precision is the error (UNSUPPORTED naming it and the device). */
static sdrt_error *open_nn(vae_call *c, sdrt_nn **out) {
    char msg[400];
    sdrt_status st = sdrt_nn_create(c->dev, c->params, c->p->api->is_cancelled, c->job, out, msg, sizeof msg);
    if (st == SDRT_UNSUPPORTED || st == SDRT_INVALID_ARGUMENT) return c->p->api->error_new(st, NULL, "%s", msg);
    if (st != SDRT_OK)
        return c->p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "vae: cannot create a compute context: %s", msg);
    sdrt_nn_add_weight_store(*out, sdrt_model_weights(c->wc.mi, c->wc.m)); /* resident, shared */
    if (sdrt_nn_set_offload(*out, c->offload) != SDRT_OK) { /* checked by plan_tiling: cannot fail */
        sdrt_nn_free(*out);
        *out = NULL;
        return c->p->api->error_new(SDRT_INTERNAL, NULL, "vae: offload mode refused");
    }
    return NULL;
}

/* Runs decode or encode of `in` into `out` on a fresh nn context; sliced,
 * one batch item after the other through the same context. */
static sdrt_error *run(vae_call *c, const vae_tiling *t, int encode, const float *in, int n, int h, int w,
                       float *out) {
    sdrt_nn *nn = NULL;
    sdrt_error *ne = open_nn(c, &nn);
    if (ne) return ne;
    vae_net v;
    vae_net_init(&v, &c->cfg, nn, model_weight, &c->wc);
    const vae_config *g = &c->cfg;
    size_t in_per = encode ? (size_t)g->in_channels * h * w : (size_t)g->latent_channels * h * w;
    size_t out_per = encode ? (size_t)2 * g->latent_channels * (h / 8) * (w / 8) : (size_t)g->out_channels * (8 * h) * (8 * w);
    int items = c->slicing ? n : 1, per = c->slicing ? 1 : n, rc = 0;
    for (int i = 0; i < items && !rc; i++) {
        const float *x = in + (size_t)i * in_per;
        float *y = out + (size_t)i * out_per;
        rc = encode ? vae_encode_tiled(&v, t, x, per, h, w, y) : vae_decode_tiled(&v, t, x, per, h, w, y);
    }
    sdrt_error *e = rc ? net_error(c, &v) : NULL;
    sdrt_nn_free(nn);
    vae_net_release(&v);
    return e;
}

/* The shape checks decode and decode_tensor share. */
static sdrt_error *check_latent_shape(pp_plugin *p, int batch, int c, int h, int w) {
    if (batch < 1 || c < 1 || h < 1 || w < 1 || h > 1024 || w > 1024)
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                 "latents: shape [%d,%d,%d,%d] must be positive with h, w <= 1024", batch, c, h, w);
    return NULL;
}

/* begin() on `dev` (NULL: the default device) plus the channel check and
 * the tiling plan. */
static sdrt_error *begin_decode(pp_plugin *p, sdrt_model *m, sdrt_device *dev, sdrt_job *job,
                                const sdrt_vae_options *opt, int batch, int c, int h, int w, vae_call *call,
                                vae_tiling *t) {
    sdrt_error *e = begin(p, m, job, call);
    if (!e) e = vae_precision(call, opt);
    if (e) return e;
    if (dev) call->dev = dev;
    if (c != call->cfg.latent_channels)
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "latents: %d channels, the model's VAE expects %d", c,
                                 call->cfg.latent_channels);
    return plan_tiling(call, opt, batch, h, w, t);
}

/* The decoder output raw [batch,3,8h,8w] (model range; freed here) as the
 * images [batch,8h,8w,3] in [0,1] of decode's outputs. */
static sdrt_error *finish_decode(pp_plugin *p, float *raw, int batch, int h, int w, float **rgb_out, int *height,
                                 int *width) {
    float *rgb = malloc((size_t)batch * 3 * (8 * h) * (8 * w) * sizeof *rgb);
    if (rgb) vae_to_images(raw, batch, 8 * h, 8 * w, rgb);
    free(raw);
    if (!rgb) return p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "decode: out of host memory");
    *rgb_out = rgb;
    if (height) *height = 8 * h;
    if (width) *width = 8 * w;
    return NULL;
}

sdrt_error *pp_decode(void *self, sdrt_model *m, const float *latents, int batch, int c, int h, int w,
                      const sdrt_vae_options *opt, sdrt_job *job, float **rgb_out, int *height, int *width) {
    pp_plugin *p = self;
    if (rgb_out) *rgb_out = NULL;
    if (!m || !latents || !rgb_out)
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "decode: model, latents and rgb_out are required");
    sdrt_error *e = check_latent_shape(p, batch, c, h, w);
    vae_call call;
    vae_tiling t;
    if (e || (e = begin_decode(p, m, NULL, job, opt, batch, c, h, w, &call, &t))) return e;
    size_t nz = (size_t)batch * c * h * w, npx = (size_t)batch * 3 * (8 * h) * (8 * w);
    float *z = malloc(nz * sizeof *z), *raw = malloc(npx * sizeof *raw);
    if (!z || !raw) {
        free(z), free(raw);
        return p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "decode: out of host memory for %zu pixels", npx / 3);
    }
    vae_unscale_latents(&call.cfg, latents, nz, z);
    e = run(&call, &t, 0, z, batch, h, w, raw);
    free(z);
    if (e) {
        free(raw);
        return e;
    }
    return finish_decode(p, raw, batch, h, w, rgb_out, height, width);
}

/* Untiled decode of the device tensor `lat` on call->dev into raw; sliced,
 * one batch item after the other. */
static sdrt_error *run_device(vae_call *c, const sdrt_tensor *lat, float *raw) {
    sdrt_nn *nn = NULL;
    sdrt_error *ne = open_nn(c, &nn);
    if (ne) return ne;
    vae_net v;
    vae_net_init(&v, &c->cfg, nn, model_weight, &c->wc);
    int64_t n = lat->shape[0], items = c->slicing ? n : 1, per = c->slicing ? 1 : n;
    size_t out_per = (size_t)c->cfg.out_channels * (size_t)(8 * lat->shape[2]) * (size_t)(8 * lat->shape[3]);
    sdrt_tensor *x = NULL;
    sdrt_status st = SDRT_OK;
    for (int64_t i = 0; i < items && st == SDRT_OK; i++) {
        sdrt_tensor li = sdrt_nn_view_slice(lat, 0, i * per, per);
        sdrt_tensor *z = sdrt_nn_scale(nn, &li, 1.0f / c->cfg.scaling_factor, c->cfg.shift_factor);
        x = z ? vae_decode_tensor(&v, z) : NULL;
        sdrt_nn_drop(nn, z);
        st = x ? sdrt_nn_to_host_f32(nn, x, raw + (size_t)i * out_per * (size_t)per) : SDRT_OK;
        if (x && i + 1 < items) {
            sdrt_nn_drop(nn, x);
            x = NULL;
        }
    }
    sdrt_nn_drop(nn, x);
    const char *msg = NULL;
    sdrt_status nst = sdrt_nn_status(nn, &msg);
    sdrt_error *e = NULL;
    if (v.status != SDRT_OK) e = net_error(c, &v);
    else if (!x || st != SDRT_OK || nst != SDRT_OK)
        e = c->p->api->error_new(nst != SDRT_OK ? nst : st != SDRT_OK ? st : SDRT_INTERNAL, NULL, "vae: %s",
                                 msg && *msg ? msg : "decode failed");
    sdrt_nn_free(nn);
    vae_net_release(&v);
    return e;
}

sdrt_error *pp_decode_tensor(void *self, sdrt_model *m, sdrt_device *dev, const sdrt_tensor *latents,
                             const sdrt_vae_options *opt, sdrt_job *job, float **rgb_out, int *height, int *width) {
    pp_plugin *p = self;
    if (rgb_out) *rgb_out = NULL;
    if (!m || !latents || !rgb_out)
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "decode: model, latents and rgb_out are required");
    if (latents->ndim != 4 || latents->dtype != SDRT_DTYPE_F32 || !sdrt_nn_is_contiguous(latents))
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "latents: must be a 4-D contiguous float32 tensor");
    for (int d = 0; d < 4; d++)
        if (latents->shape[d] > (d < 2 ? 65536 : 1024))
            return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "latents: dim %d is %lld, too large", d,
                                     (long long)latents->shape[d]);
    int batch = (int)latents->shape[0], c = (int)latents->shape[1], h = (int)latents->shape[2], w = (int)latents->shape[3];
    sdrt_error *e = check_latent_shape(p, batch, c, h, w);
    vae_call call;
    vae_tiling t;
    if (e || (e = begin_decode(p, m, dev, job, opt, batch, c, h, w, &call, &t))) return e;
    size_t nz = (size_t)batch * c * h * w, npx = (size_t)batch * 3 * (8 * h) * (8 * w);
    float *raw = malloc(npx * sizeof *raw);
    if (!raw) return p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "decode: out of host memory for %zu pixels", npx / 3);
    if (t.enabled) {
        /* Tiles are cut on the host: the small latents come over once. */
        float *host = malloc(nz * sizeof *host), *z = malloc(nz * sizeof *z);
        sdrt_nn *nn = host && z ? sdrt_nn_new(call.dev, NULL, NULL, NULL) : NULL;
        sdrt_status st = nn ? sdrt_nn_to_host_f32(nn, latents, host) : SDRT_RESOURCE_EXHAUSTED;
        sdrt_nn_free(nn);
        if (st == SDRT_OK) {
            vae_unscale_latents(&call.cfg, host, nz, z);
            e = run(&call, &t, 0, z, batch, h, w, raw);
        } else {
            e = p->api->error_new(st, NULL, "decode: reading the latents failed");
        }
        free(host);
        free(z);
    } else {
        e = run_device(&call, latents, raw);
    }
    if (e) {
        free(raw);
        return e;
    }
    return finish_decode(p, raw, batch, h, w, rgb_out, height, width);
}

sdrt_error *pp_encode(void *self, sdrt_model *m, const float *rgb, int batch, int height, int width,
                      const float *noise, const sdrt_vae_options *opt, sdrt_job *job, float **latents_out,
                      int *channels) {
    pp_plugin *p = self;
    if (latents_out) *latents_out = NULL;
    if (!m || !rgb || !latents_out)
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "encode: model, rgb and latents_out are required");
    if (batch < 1 || height < 8 || width < 8 || height % 8 || width % 8 || height > 8192 || width > 8192)
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                 "image: %dx%d must be multiples of 8 in [8, 8192] (batch %d)", width, height, batch);
    vae_call call;
    sdrt_error *e = begin(p, m, job, &call);
    if (!e) e = vae_precision(&call, opt);
    if (e) return e;
    vae_tiling t;
    if ((e = plan_tiling(&call, opt, batch, height / 8, width / 8, &t))) return e;
    int lc = call.cfg.latent_channels, lh = height / 8, lw = width / 8;
    size_t npx = (size_t)batch * 3 * height * width, nm = (size_t)batch * 2 * lc * lh * lw;
    float *x = malloc(npx * sizeof *x), *mom = malloc(nm * sizeof *mom), *z = malloc(nm / 2 * sizeof *z);
    if (!x || !mom || !z) {
        free(x), free(mom), free(z);
        return p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "encode: out of host memory");
    }
    vae_from_images(rgb, batch, height, width, x);
    e = run(&call, &t, 1, x, batch, height, width, mom);
    if (!e) {
        vae_gaussian_sample(mom, noise, batch, lc, lh, lw, z);
        vae_scale_latents(&call.cfg, z, nm / 2);
    }
    free(x), free(mom);
    if (e) {
        free(z);
        return e;
    }
    *latents_out = z;
    if (channels) *channels = lc;
    return NULL;
}
