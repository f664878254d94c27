/* plugins/inference/run_controlnet.c - the ControlNet stage of
 * inference.run: each "controlnet" entry's model is opened through the
 * model plugin (so it is found and cached like any model), checked against
 * the base model, built over the UNet's block code (controlnet.h), and its
 * image read and resized to the generation size as diffusers'
 * ControlNet image processor does (VaeImageProcessor(do_normalize=False):
 * PIL Lanczos resize to width x height, values / 255). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_prep.h"
#include "run_internal.h"
#include "sdrt/canny.h"

typedef struct cn_src {
    const sdrt_model_iface *model;
    sdrt_model *m;
} cn_src;

static const sdrt_tensor *cn_weight(void *ctx, const char *name) {
    cn_src *s = ctx;
    return s->model->tensor(s->m, "controlnet", name);
}

static sdrt_error *field_err(run_ctx *c, sdrt_status st, size_t i, const char *field, const char *msg) {
    return c->api->error_new(st, NULL, "controlnet[%zu].%s: %s", i, field, msg);
}

/* The ControlNet must produce the residuals this UNet adds: same family
 * (SD1.x/SD2.x vs SDXL), and the same blocks. */
static sdrt_error *check_fits(run_ctx *c, size_t i, const char *arch, const controlnet *net) {
    int cn_xl = arch && strcmp(arch, "controlnet-sdxl") == 0;
    char msg[384];
    if (!net || !arch || strncmp(arch, "controlnet", 10) != 0) {
        snprintf(msg, sizeof msg, "%s is a %s model, not a ControlNet", c->r.controlnet.v[i].model_id,
                 arch ? arch : "unknown");
        return field_err(c, SDRT_INVALID_ARGUMENT, i, "model_id", msg);
    }
    const unet_config *a = controlnet_get_config(net), *u = &c->ucfg;
    int same = cn_xl == c->is_sdxl && a->nblocks == u->nblocks && a->cross_dim[0] == u->cross_dim[0] &&
               controlnet_n_down(net) == unet_n_skips_of(c->u);
    for (int b = 0; same && b < a->nblocks; b++)
        same = a->block_out[b] == u->block_out[b] && a->layers_down[b] == u->layers_down[b];
    if (same) return NULL;
    snprintf(msg, sizeof msg,
             "the %s ControlNet %s does not fit the %s model %s (its blocks, cross-attention width %d vs %d, or "
             "family differ)",
             cn_xl ? "SDXL" : "SD1.x/SD2.x", c->r.controlnet.v[i].model_id, c->is_sdxl ? "SDXL" : (c->arch ? c->arch : "?"),
             c->r.model_id, a->cross_dim[0], u->cross_dim[0]);
    return field_err(c, SDRT_INVALID_ARGUMENT, i, "model_id", msg);
}

static sdrt_error *read_image(run_ctx *c, size_t i, float **out) {
    uint8_t *src = NULL, *dst = NULL;
    int w = 0, h = 0;
    char field[48];
    snprintf(field, sizeof field, "controlnet[%zu].image", i);
    sdrt_error *e = run_read_u8(c, field, c->r.controlnet.v[i].image, &src, &w, &h);
    if (e) return e;
    if (c->r.controlnet.v[i].canny) {
        /* cv2.Canny on the image as given, repeated on 3 channels, then
         * resized like any control image (diffusers' canny example). */
        size_t npx0 = (size_t)w * (size_t)h;
        uint8_t *edges = malloc(npx0);
        if (!edges || sdrt_canny(src, w, h, 3, c->r.controlnet.v[i].low, c->r.controlnet.v[i].high, edges) != 0) {
            free(edges);
            free(src);
            return c->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "%s: out of memory for canny", field);
        }
        for (size_t p = 0; p < npx0; p++) src[p * 3] = src[p * 3 + 1] = src[p * 3 + 2] = edges[p];
        free(edges);
    }
    int W = c->r.width, H = c->r.height;
    size_t npx = (size_t)W * (size_t)H;
    dst = malloc(npx * 3);
    *out = malloc(npx * 3 * sizeof **out);
    if (!dst || !*out || iprep_resize(src, w, h, 3, dst, W, H) != 0) {
        free(src);
        free(dst);
        return c->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "%s: out of memory", field);
    }
    /* HWC 8-bit to CHW / 255, as torch.from_numpy(np.array(img) / 255). */
    for (size_t p = 0; p < npx; p++)
        for (int ch = 0; ch < 3; ch++) (*out)[(size_t)ch * npx + p] = (float)(dst[p * 3 + ch] / 255.0);
    free(src);
    free(dst);
    return NULL;
}

sdrt_error *run_controlnets(run_ctx *c) {
    const infer_cn_reqs *rq = &c->r.controlnet;
    if (rq->n == 0) return NULL;
    c->cns.v = calloc(rq->n, sizeof *c->cns.v);
    if (!c->cns.v) return c->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "controlnet: out of memory");
    c->cns.guess_mode = rq->guess_mode;
    c->cns.H = c->r.height;
    c->cns.W = c->r.width;
    for (size_t i = 0; i < rq->n; i++) {
        char field[48];
        snprintf(field, sizeof field, "controlnet[%zu].model_id", i);
        sdrt_error *e = c->model->open(c->model->self, rq->v[i].model_id, c->job, &c->cn_models[i]);
        if (e) return run_field_error(c, e, field);
        c->cns.n = (int)i + 1;
        infer_cn *cn = &c->cns.v[i];
        const char *cfg = c->model->config_json(c->cn_models[i], "controlnet");
        const char *arch = c->model->arch(c->cn_models[i]);
        if (!cfg || !arch || strncmp(arch, "controlnet", 10) != 0) return check_fits(c, i, arch, NULL);
        cn_src src = {c->model, c->cn_models[i]};
        char err[512];
        sdrt_status st = controlnet_new(cfg, cn_weight, &src, &cn->net, err, sizeof err);
        if (st != SDRT_OK) return field_err(c, st, i, "model_id", err);
        if ((e = check_fits(c, i, arch, cn->net))) return e;
        if ((e = read_image(c, i, &cn->image))) return e;
        if (controlnet_cond_factor(cn->net) != 8)
            return field_err(c, SDRT_INVALID_ARGUMENT, i, "model_id",
                             "its conditioning embedding does not downscale by the VAE factor 8");
        cn->scale = (float)rq->v[i].scale;
        cn->start = rq->v[i].start;
        cn->end = rq->v[i].end;
    }
    return NULL;
}

void run_controlnets_free(run_ctx *c) {
    for (int i = 0; i < c->cns.n; i++) {
        controlnet_free(c->cns.v[i].net);
        free(c->cns.v[i].image);
    }
    for (int i = 0; i < INFER_MAX_CONTROLNETS; i++)
        if (c->cn_models[i]) c->model->close(c->model->self, c->cn_models[i]);
    free(c->cns.v);
    memset(&c->cns, 0, sizeof c->cns);
}
