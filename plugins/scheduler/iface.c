/* plugins/scheduler/iface.c - the "sdrt.scheduler/1" vtable over the core. */
#include "iface.h"

#include <string.h>

#include "sched.h"

static const sdrt_host_api *g_api;

static sdrt_error *create(void *self, const sdrt_scheduler_params *p, sdrt_sched **out) {
    const sdrt_host_api *api = self ? (const sdrt_host_api *)self : g_api;
    char err[512] = {0};
    if (!out) return api->error_new(SDRT_INVALID_ARGUMENT, NULL, "scheduler: out is NULL");
    sdrt_scheduler_params q = {0};
    if (p) memcpy(&q, p, p->struct_size < sizeof q ? p->struct_size : sizeof q);
    q.struct_size = sizeof q;
    sdrt_status st = sched_create(p ? &q : NULL, out, err, sizeof err);
    if (st) return api->error_new(st, NULL, "%s", err);
    return NULL;
}

static uint32_t warning_count(const sdrt_sched *s) { return s ? s->diag.n_warnings : 0; }
static const char *warning(const sdrt_sched *s, uint32_t k) {
    return s && k < s->diag.n_warnings ? s->diag.warnings[k] : NULL;
}
static uint32_t num_timesteps(const sdrt_sched *s) { return s->n_ts; }
static const float *timesteps(const sdrt_sched *s) { return s->timesteps; }
static uint32_t num_sigmas(const sdrt_sched *s) { return s->n_sigmas; }
static const float *sigmas(const sdrt_sched *s) { return s->n_sigmas ? s->sigmas : NULL; }
static float init_noise_sigma(const sdrt_sched *s) { return s->init_noise_sigma; }
static uint32_t order(const sdrt_sched *s) { return s->kind->order; }
static int is_stochastic(const sdrt_sched *s) { return s->stochastic; }
static const char *class_name(const sdrt_sched *s) { return s->kind->name; }
static const char *config_json(const sdrt_sched *s) { return s->config_json; }
static void a1111_label(const sdrt_sched *s, const char **label, const char **sched) {
    *label = s->a1111_label;
    *sched = s->a1111_schedule;
}

void sched_iface_fill(sdrt_scheduler_iface *it, const sdrt_host_api *api) {
    memset(it, 0, sizeof *it);
    g_api = api;
    it->struct_size = SDRT_STRUCT_SIZE(sdrt_scheduler_iface, add_noise);
    it->self = (void *)api;
    it->create = create;
    it->destroy = sched_destroy;
    it->warning_count = warning_count;
    it->warning = warning;
    it->num_timesteps = num_timesteps;
    it->timesteps = timesteps;
    it->num_sigmas = num_sigmas;
    it->sigmas = sigmas;
    it->init_noise_sigma = init_noise_sigma;
    it->order = order;
    it->is_stochastic = is_stochastic;
    it->class_name = class_name;
    it->config_json = config_json;
    it->a1111_label = a1111_label;
    it->set_begin_index = sched_set_begin_index;
    it->begin_for_strength = sched_begin_for_strength;
    it->begin_for_denoising_start = sched_begin_for_denoising_start;
    it->end_for_denoising_end = sched_end_for_denoising_end;
    it->scale_model_input = sched_scale_model_input;
    it->step = sched_step;
    it->add_noise = sched_add_noise;
}
