/* plugins/scheduler/messages.c - the JSON bodies of scheduler.list and
 * scheduler.sigmas (no host calls here, so tests drive them directly). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iface.h"
#include "sched.h"

static cJSON *aliases_of(const char *cls) {
    cJSON *arr = cJSON_CreateArray();
    for (const sched_alias *a = sched_aliases; a->alias; a++) {
        if (!a->class_name || strcmp(a->class_name, cls) != 0 || strcmp(a->alias, cls) == 0) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", a->alias);
        cJSON_AddStringToObject(o, "source", a->source);
        if (a->overrides_json) cJSON_AddItemToObject(o, "config", cJSON_Parse(a->overrides_json));
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static cJSON *schedules(void) {
    cJSON *arr = cJSON_CreateArray();
    for (const sched_schedule *q = sched_schedules; q->name; q++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", q->name);
        if (q->overrides_json) cJSON_AddItemToObject(o, "config", cJSON_Parse(q->overrides_json));
        else cJSON_AddStringToObject(o, "unsupported", q->reason);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static cJSON *unsupported(void) {
    cJSON *arr = cJSON_CreateArray();
    for (const sched_alias *a = sched_aliases; a->alias; a++) {
        /* names with no diffusers equivalent; their reason text rides in
         * overrides_json */
        if (a->class_name) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", a->alias);
        cJSON_AddStringToObject(o, "source", a->source);
        cJSON_AddStringToObject(o, "reason", a->overrides_json);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

char *sched_msg_list(void) {
    cJSON *root = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(root, "schedulers");
    for (const sched_kind *const *k = sched_kinds; *k; k++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", (*k)->name);
        cJSON_AddNumberToObject(o, "order", (*k)->order);
        cJSON_AddBoolToObject(o, "stochastic", (*k)->stochastic);
        cJSON_AddBoolToObject(o, "has_sigmas", (*k)->has_sigmas);
        sched_config cfg;
        sched_config_defaults(&cfg, (*k)->fields);
        char *defaults = sched_config_to_json(&cfg, (*k)->fields);
        sched_config_free(&cfg);
        cJSON_AddItemToObject(o, "config", defaults ? cJSON_Parse(defaults) : cJSON_CreateObject());
        free(defaults);
        cJSON_AddItemToObject(o, "aliases", aliases_of((*k)->name));
        cJSON_AddItemToArray(list, o);
    }
    cJSON_AddItemToObject(root, "schedule_types", schedules());
    cJSON_AddItemToObject(root, "unsupported", unsupported());
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static cJSON *floats(const float *v, uint32_t n) {
    cJSON *arr = cJSON_CreateArray();
    for (uint32_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)v[i]));
    return arr;
}

sdrt_status sched_msg_sigmas(const char *scheduler, int32_t steps, const char *overrides_json,
                             const char *model_config, char **out, void (*warn)(void *, const char *),
                             void *warn_ctx, char *err, size_t errlen) {
    *out = NULL;
    sdrt_scheduler_params p;
    sdrt_scheduler_params_init(&p);
    p.name = scheduler;
    p.base_config_json = model_config;
    p.overrides_json = overrides_json;
    p.num_inference_steps = steps;
    sdrt_sched *s = NULL;
    sdrt_status st = sched_create(&p, &s, err, errlen);
    if (st) return st;
    for (uint32_t i = 0; warn && i < s->diag.n_warnings; i++) warn(warn_ctx, s->diag.warnings[i]);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "scheduler", s->kind->name);
    cJSON_AddNumberToObject(root, "num_inference_steps", steps);
    cJSON_AddItemToObject(root, "timesteps", floats(s->timesteps, s->n_ts));
    cJSON_AddItemToObject(root, "sigmas", s->n_sigmas ? floats(s->sigmas, s->n_sigmas) : cJSON_CreateNull());
    cJSON_AddNumberToObject(root, "init_noise_sigma", (double)s->init_noise_sigma);
    cJSON_AddNumberToObject(root, "order", s->kind->order);
    cJSON_AddItemToObject(root, "config", cJSON_Parse(s->config_json));
    cJSON *a = cJSON_AddObjectToObject(root, "a1111");
    cJSON_AddStringToObject(a, "sampler", s->a1111_label);
    cJSON_AddStringToObject(a, "schedule_type", s->a1111_schedule);
    *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    sched_destroy(s);
    if (!*out) {
        snprintf(err, errlen, "scheduler: out of memory");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    return SDRT_OK;
}
