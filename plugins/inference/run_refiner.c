/* plugins/inference/run_refiner.c - the SDXL ensemble of experts, as
 * diffusers documents it:
 *
 *   latents = base(prompt, denoising_end=s, output_type="latent")
 *   image   = refiner(prompt, image=latents, denoising_start=s)
 *
 * The base pass has run up to denoising_end (run.c). Here the refiner
 * model replaces the base: its own UNet, scheduler (same name and
 * overrides, the refiner's scheduler_config.json) and conditioning (its
 * own text encoders: text_encoder_2 only for the SDXL refiner, with the
 * aesthetic-score time ids), then an img2img pass from denoising_start on
 * the base's latents: no VAE encode and no added noise, so the generator
 * goes on where the base left it (one generator for the whole request, as
 * when one torch.Generator is passed to both pipelines). The refiner's VAE
 * decodes, unless model_id.vae overrides it. */
#include <string.h>

#include "run_internal.h"

static void drop_base(run_ctx *c) {
    /* The nn context caches device uploads of host weights until freed:
     * the base's (and its LoRA set's) memory is released below and may be
     * reused by the refiner's, so the refiner starts a fresh context. */
    sdrt_nn_free(c->nn);
    c->nn = NULL;
    if (c->state) c->sched->destroy(c->state);
    c->state = NULL;
    unet_free(c->u);
    c->u = NULL;
    run_lora_free(c); /* the refiner gets no LoRA (diffusers loads it into the base pipeline only) */
    run_cond_free(c);
    if (c->m) c->model->close(c->model->self, c->m);
    c->m = NULL;
}

static sdrt_error *check_refiner(run_ctx *c) {
    if (!c->is_sdxl)
        return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "model_id.refiner: %s is a %s model; a refiner must be SDXL",
                                 c->r.refiner_id, c->arch ? c->arch : "unknown");
    if (unet_get_config(c->u)->in_channels != c->channels || unet_get_config(c->u)->out_channels != c->channels)
        return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                 "model_id.refiner: its unet takes %d latent channels, the base gives %d",
                                 unet_get_config(c->u)->in_channels, c->channels);
    return NULL;
}

sdrt_error *run_refiner(run_ctx *c) {
    if (!c->r.refiner_id) return NULL;
    if (c->r.mask_image)
        return c->api->error_new(SDRT_UNSUPPORTED, NULL, "model_id.refiner: a refiner pass after inpainting is not supported");
    if (!c->is_sdxl)
        return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "model_id.refiner: the base %s is a %s model, not SDXL",
                                 c->r.model_id, c->arch ? c->arch : "unknown");
    drop_base(c);
    c->refining = 1;
    sdrt_error *e = c->model->open(c->model->self, c->r.refiner_id, c->job, &c->m);
    if (e) return run_field_error(c, e, "model_id.refiner");
    if ((e = run_load_unet(c, "model_id.refiner")) || (e = check_refiner(c))) return e;
    if ((e = run_scheduler(c)) || (e = run_conditioning(c))) return e;
    c->begin = c->sched->begin_for_denoising_start(c->state, c->r.denoising_end);
    c->end = 0;
    if (c->begin >= c->sched->num_timesteps(c->state)) return NULL; /* the base ran every step */
    sdrt_status st = c->sched->set_begin_index(c->state, c->begin);
    if (st != SDRT_OK) return c->api->error_new(st, NULL, "scheduler: set_begin_index(%u) failed", c->begin);
    return run_denoise(c);
}
