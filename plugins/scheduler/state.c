/* plugins/scheduler/state.c - the run state: create, index bookkeeping,
 * dispatch to the kind, img2img windows.
 *
 * step() takes the absolute index i into timesteps. Calls must come in
 * order begin_index, begin_index+1, ... because multistep samplers keep a
 * history; an out-of-order call is FAILED_PRECONDITION rather than a
 * silently wrong image.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"

static void set_err(char *err, size_t len, const char *msg) {
    if (err && len) snprintf(err, len, "%s", msg);
}

static sdrt_status configure(sdrt_sched *s, const sdrt_scheduler_params *p, const char *alias_overrides) {
    sched_diag *d = &s->diag;
    sched_config_defaults(&s->cfg, s->kind->fields);
    if (sched_config_apply(&s->cfg, p->base_config_json, "model scheduler_config", 0, s->kind->name, d))
        return d->code;
    if (sched_config_apply(&s->cfg, alias_overrides, "scheduler alias", 2, s->kind->name, d)) return d->code;
    if (sched_config_apply(&s->cfg, p->overrides_json, "scheduler_config", 1, s->kind->name, d)) return d->code;
    if (p->num_inference_steps < 1 || p->num_inference_steps > 10000)
        return sched_fail(d, SDRT_INVALID_ARGUMENT, "num_inference_steps: %d is not in 1..10000",
                          (int)p->num_inference_steps);
    s->num_inference_steps = p->num_inference_steps;
    if (sched_make_betas(s)) return d->code;
    if ((uint32_t)p->num_inference_steps > s->T && strcmp(s->kind->name, "DDIMScheduler") == 0)
        return sched_fail(d, SDRT_INVALID_ARGUMENT, "num_inference_steps: %d is larger than num_train_timesteps %u",
                          (int)p->num_inference_steps, s->T);
    if (s->kind->setup(s)) return d->code;
    s->config_json = sched_config_to_json(&s->cfg, s->kind->fields);
    if (!s->config_json) return sched_fail(d, SDRT_RESOURCE_EXHAUSTED, "scheduler: out of memory");
    sched_a1111_label(s, &s->a1111_label, &s->a1111_schedule);
    return SDRT_OK;
}

sdrt_status sched_create(const sdrt_scheduler_params *p, sdrt_sched **out, char *err, size_t errlen) {
    *out = NULL;
    if (!p || !p->name) {
        set_err(err, errlen, "scheduler: name is required");
        return SDRT_INVALID_ARGUMENT;
    }
    const char *cls = NULL, *alias_over = NULL;
    sdrt_status st = sched_resolve(p->name, &cls, &alias_over, err, errlen);
    if (st) return st;
    const sched_kind *k = sched_kind_find(cls);
    if (!k) {
        /* Every class the alias table names is registered (the scheduler
         * test checks it); reaching this is a table bug. */
        if (err) snprintf(err, errlen, "scheduler: '%s' resolves to no registered class", cls);
        return SDRT_INTERNAL;
    }
    sdrt_sched *s = calloc(1, sizeof *s);
    if (!s) {
        set_err(err, errlen, "scheduler: out of memory");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    s->kind = k;
    s->stochastic = k->stochastic;
    st = configure(s, p, alias_over);
    if (st) {
        set_err(err, errlen, s->diag.error);
        sched_destroy(s);
        return st;
    }
    s->next_index = 0;
    *out = s;
    return SDRT_OK;
}

void sched_destroy(sdrt_sched *s) {
    if (!s) return;
    if (s->kind && s->kind->release) s->kind->release(s);
    for (int i = 0; i < SCHED_MAX_BUFS; i++) free(s->buf[i]);
    free(s->betas);
    free(s->alphas);
    free(s->alphas_cumprod);
    free(s->timesteps);
    free(s->sigmas);
    free(s->config_json);
    sched_config_free(&s->cfg);
    sched_diag_free(&s->diag);
    free(s);
}

sdrt_status sched_set_begin_index(sdrt_sched *s, uint32_t k) {
    if (!s || k >= s->n_ts) return SDRT_INVALID_ARGUMENT;
    if (s->next_index != s->begin_index) return SDRT_FAILED_PRECONDITION; /* already stepping */
    s->begin_index = k;
    s->next_index = k;
    return SDRT_OK;
}

/* Fixes the latent size on first use and allocates the kind's buffers. */
static sdrt_status bind_size(sdrt_sched *s, size_t n) {
    if (s->n == n) return SDRT_OK;
    if (s->n != 0) return SDRT_INVALID_ARGUMENT;
    for (uint32_t b = 0; b < s->kind->n_bufs; b++) {
        s->buf[b] = calloc(n, sizeof(float));
        if (!s->buf[b]) return SDRT_RESOURCE_EXHAUSTED;
    }
    s->n = n;
    return SDRT_OK;
}

sdrt_status sched_scale_model_input(sdrt_sched *s, uint32_t i, const float *in, float *out, size_t n) {
    if (!s || !in || !out || i >= s->n_ts) return SDRT_INVALID_ARGUMENT;
    if (!s->kind->scale) {
        if (out != in) memmove(out, in, n * sizeof(float));
        return SDRT_OK;
    }
    s->kind->scale(s, i, in, out, n);
    return SDRT_OK;
}

sdrt_status sched_step(sdrt_sched *s, uint32_t i, const float *eps, float *x, size_t n, sdrt_rng *rng) {
    if (!s || !eps || !x || n == 0 || i >= s->n_ts) return SDRT_INVALID_ARGUMENT;
    if (i != s->next_index) return SDRT_FAILED_PRECONDITION;
    if (s->stochastic && !rng) return SDRT_INVALID_ARGUMENT;
    sdrt_status st = bind_size(s, n);
    if (st) return st;
    st = s->kind->step(s, i, eps, x, n, rng);
    if (st) return st;
    s->next_index = i + 1;
    return SDRT_OK;
}

sdrt_status sched_add_noise(sdrt_sched *s, const float *x0, const float *noise, uint32_t i, float *out,
                            size_t n) {
    if (!s || !x0 || !noise || !out || i >= s->n_ts) return SDRT_INVALID_ARGUMENT;
    if (s->kind->add_noise) {
        s->kind->add_noise(s, x0, noise, i, out, n);
        return SDRT_OK;
    }
    float sigma = s->sigmas[i];
    for (size_t k = 0; k < n; k++) out[k] = x0[k] + noise[k] * sigma;
    return SDRT_OK;
}

/* StableDiffusionImg2ImgPipeline.get_timesteps */
uint32_t sched_begin_for_strength(const sdrt_sched *s, double strength) {
    int64_t N = s->num_inference_steps;
    int64_t init = (int64_t)(N * strength);
    if (init > N) init = N;
    int64_t start = N - init;
    if (start < 0) start = 0;
    uint64_t b = (uint64_t)start * s->kind->order;
    return b > s->n_ts ? s->n_ts : (uint32_t)b;
}

static double train_count(const sdrt_sched *s) { return (double)s->T; }

/* StableDiffusionXLImg2ImgPipeline.get_timesteps with denoising_start */
uint32_t sched_begin_for_denoising_start(const sdrt_sched *s, double ds) {
    double T = train_count(s);
    double cutoff = nearbyint(T - ds * T);
    uint32_t count = 0;
    for (uint32_t i = 0; i < s->n_ts; i++)
        if (s->timesteps[i] < cutoff) count++;
    if (s->kind->order == 2 && count % 2 == 0) count++;
    if (count > s->n_ts) count = s->n_ts;
    return s->n_ts - count;
}

/* StableDiffusionXLPipeline's denoising_end: iterations to run */
uint32_t sched_end_for_denoising_end(const sdrt_sched *s, double de) {
    double T = train_count(s);
    double cutoff = nearbyint(T - de * T);
    uint32_t count = 0;
    for (uint32_t i = 0; i < s->n_ts; i++)
        if (s->timesteps[i] >= cutoff) count++;
    return count;
}
