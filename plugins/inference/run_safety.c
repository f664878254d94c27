/* run_safety.c - the safety checker stage of inference.run: diffusers'
 * run_safety_checker between decoding and writing the images, through the
 * postprocess plugin's safety_check (the checker lives there: it is also
 * the postprocess.safety_check message). On when the request says
 * "safety_checker": true, or when it says nothing and the plugin config
 * has "safety_checker": true; "safety_action" "black" (default, as
 * diffusers) zeroes flagged images, "flag" only reports them. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_internal.h"

sdrt_status infer_safety_config(const char *config_json, infer_plugin *p, char *err, size_t errlen) {
    p->safety_default = 0;
    p->safety_flag_default = 0;
    cJSON *cfg = config_json ? cJSON_Parse(config_json) : NULL;
    if (!cfg) return SDRT_OK;
    sdrt_status st = SDRT_OK;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "safety_checker");
    if (v && !cJSON_IsBool(v)) {
        snprintf(err, errlen, "inference config: safety_checker must be true or false");
        st = SDRT_INVALID_ARGUMENT;
    }
    p->safety_default = cJSON_IsTrue(v);
    v = cJSON_GetObjectItemCaseSensitive(cfg, "safety_action");
    if (st == SDRT_OK && v && !(cJSON_IsString(v) && (!strcmp(v->valuestring, "black") || !strcmp(v->valuestring, "flag")))) {
        snprintf(err, errlen, "inference config: safety_action must be \"black\" or \"flag\"");
        st = SDRT_INVALID_ARGUMENT;
    }
    if (st == SDRT_OK && v) p->safety_flag_default = strcmp(v->valuestring, "flag") == 0;
    cJSON_Delete(cfg);
    return st;
}

/* Says which images were flagged and what became of them. */
static void warn_flagged(run_ctx *c, const int *flags, int n, int black) {
    char list[256] = "";
    size_t len = 0;
    int any = 0;
    for (int i = 0; i < n && len + 8 < sizeof list; i++)
        if (flags[i]) {
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%d", any ? ", " : "", i);
            any = 1;
        }
    if (!any) return;
    char msg[400];
    snprintf(msg, sizeof msg, "safety_checker: potential NSFW content detected in image(s) %s%s", list,
             black ? "; replaced by black images" : " (safety_action flag: kept)");
    c->api->warn(c->job, msg);
}

/* Whether the checker runs for this request: the request's field, else the config. */
static int wanted(const run_ctx *c) {
    return c->r.safety_checker >= 0 ? c->r.safety_checker : c->p->safety_default;
}

/* The postprocess call, on the base pipeline (after a refiner pass c->m is
 * the refiner). batch 0: the preflight. A model without a checker is an
 * error when the request asked (named), a warning and *skip when only the
 * config did. */
static sdrt_error *check(run_ctx *c, float *rgb, int n, int h, int w, int black, int *flags, int *skip) {
    const sdrt_postprocess_iface *pp = c->post;
    if (!SDRT_HAS_MEMBER(pp, sdrt_postprocess_iface, safety_check) || !pp->safety_check)
        return c->api->error_new(SDRT_UNAVAILABLE, NULL, "safety_checker: the postprocess plugin has no safety checker");
    sdrt_model *m = c->m, *base = NULL;
    sdrt_error *e = NULL;
    if (c->refining && (e = c->model->open(c->model->self, c->r.model_id, c->job, &base))) return e;
    if (base) m = base;
    e = pp->safety_check(pp->self, m, rgb, n, h, w, black, c->job, flags, NULL);
    if (base) c->model->close(c->model->self, base);
    if (e && e->code == SDRT_NOT_FOUND && c->r.safety_checker < 0) {
        /* On by config, and this model has no checker: say so, do not fail. */
        char msg[600];
        snprintf(msg, sizeof msg, "%s; images not checked", e->message);
        c->api->warn(c->job, msg);
        c->api->error_free(e);
        *skip = 1;
        return NULL;
    }
    if (e && e->code == SDRT_NOT_FOUND) {
        sdrt_error *named = c->api->error_new(SDRT_NOT_FOUND, NULL, "%s (requested by \"safety_checker\": true)",
                                              e->message);
        c->api->error_free(e);
        e = named;
    }
    return e;
}

sdrt_error *run_safety_preflight(run_ctx *c) {
    if (!wanted(c)) return NULL;
    return check(c, NULL, 0, 0, 0, 0, NULL, &c->safety_skip);
}

sdrt_error *run_safety(run_ctx *c, float *rgb, int h, int w) {
    if (!wanted(c) || c->safety_skip) return NULL;
    int black = c->r.safety_black >= 0 ? c->r.safety_black : !c->p->safety_flag_default;
    int n = c->r.batch_size, skip = 0;
    int *flags = calloc((size_t)n, sizeof *flags);
    sdrt_error *e = flags ? check(c, rgb, n, h, w, black, flags, &skip)
                          : c->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "inference: out of memory");
    for (int i = 0; !e && !skip && i < n; i++) {
        c->outs[i].safety_checked = 1;
        c->outs[i].nsfw = flags[i];
    }
    if (!e && !skip) warn_flagged(c, flags, n, black);
    free(flags);
    return e;
}
