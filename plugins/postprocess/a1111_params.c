/* a1111_params.c - the "parameters" text A1111 writes into its PNGs, which
 * image browsers, Civitai and A1111's own "PNG Info" read back:
 *
 *   <prompt>
 *   Negative prompt: <negative>
 *   Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 42, Size: 1024x1024, Model: name
 */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"

typedef struct strbuf {
    char *s;
    size_t len, cap;
    int oom;
} strbuf;

static void sb_add(strbuf *b, const char *fmt, ...) SDRT_PRINTF(2, 3);
static void sb_add(strbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->len + (size_t)n + 1) * 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static const char *str_field(const cJSON *o, const char *name) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(f) ? f->valuestring : NULL;
}

static int num_field(const cJSON *o, const char *name, double *out) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(f)) return 0;
    *out = f->valuedouble;
    return 1;
}

static int bool_field(const cJSON *o, const char *name) {
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, name));
}

typedef struct sampler_name {
    const char *key;   /* diffusers class or sdrt short name */
    const char *label; /* A1111 label */
} sampler_name;

static const sampler_name samplers[] = {
    {"EulerDiscreteScheduler", "Euler"},
    {"euler", "Euler"},
    {"EulerAncestralDiscreteScheduler", "Euler a"},
    {"euler_a", "Euler a"},
    {"euler_ancestral", "Euler a"},
    {"DPMSolverMultistepScheduler", "DPM++ 2M"},
    {"dpmpp_2m", "DPM++ 2M"},
    {"dpmpp_2m_sde", "DPM++ 2M SDE"},
    {"DPMSolverSinglestepScheduler", "DPM++ 2S"},
    {"DPMSolverSDEScheduler", "DPM++ SDE"},
    {"dpmpp_sde", "DPM++ SDE"},
    {"DDIMScheduler", "DDIM"},
    {"ddim", "DDIM"},
    {"PNDMScheduler", "PLMS"},
    {"LMSDiscreteScheduler", "LMS"},
    {"lms", "LMS"},
    {"HeunDiscreteScheduler", "Heun"},
    {"heun", "Heun"},
    {"KDPM2DiscreteScheduler", "DPM2"},
    {"dpm2", "DPM2"},
    {"KDPM2AncestralDiscreteScheduler", "DPM2 a"},
    {"dpm2_a", "DPM2 a"},
    {"UniPCMultistepScheduler", "UniPC"},
    {"unipc", "UniPC"},
    {"LCMScheduler", "LCM"},
    {"lcm", "LCM"},
    {NULL, NULL},
};

/* The sampler label and, for labels like "DPM++ 2M Karras", the schedule. */
static void sampler_label(const cJSON *req, char *label, size_t len, const char **schedule) {
    const char *s = str_field(req, "scheduler");
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(req, "scheduler_config");
    *schedule = NULL;
    if (bool_field(cfg, "use_karras_sigmas")) *schedule = "Karras";
    if (bool_field(cfg, "use_exponential_sigmas")) *schedule = "Exponential";
    if (!s) s = "EulerDiscreteScheduler";
    const char *algo = str_field(cfg, "algorithm_type");
    for (const sampler_name *m = samplers; m->key; m++) {
        if (strcmp(m->key, s) != 0) continue;
        int sde = algo && strstr(algo, "sde") && strcmp(m->label, "DPM++ 2M") == 0;
        snprintf(label, len, "%s%s", m->label, sde ? " SDE" : "");
        return;
    }
    size_t n = strlen(s);
    if (n > 7 && strcmp(s + n - 7, " Karras") == 0) { /* A1111 label with schedule */
        snprintf(label, len, "%.*s", (int)(n - 7), s);
        *schedule = "Karras";
        return;
    }
    snprintf(label, len, "%s", s);
}

/* A1111 quotes a value holding ',', ':' or '"' as a JSON string. */
static void add_value(strbuf *b, const char *key, const char *value) {
    if (!strpbrk(value, ",:\"\n")) {
        sb_add(b, ", %s: %s", key, value);
        return;
    }
    cJSON *s = cJSON_CreateString(value);
    char *q = s ? cJSON_PrintUnformatted(s) : NULL;
    if (q) sb_add(b, ", %s: %s", key, q);
    free(q);
    cJSON_Delete(s);
}

/* "name" from ".../name.safetensors" or ".../org/name". */
static void model_name(const char *id, char *out, size_t len) {
    const char *base = strrchr(id, '/');
    base = base && base[1] ? base + 1 : id;
    const char *dot = strrchr(base, '.');
    int n = dot && (strcmp(dot, ".safetensors") == 0 || strcmp(dot, ".ckpt") == 0) ? (int)(dot - base)
                                                                                   : (int)strlen(base);
    snprintf(out, len, "%.*s", n, base);
}

static void add_settings(strbuf *b, const cJSON *req, uint64_t seed) {
    double steps = 30, cfg = 7.5, w = 0, h = 0, strength = 0;
    num_field(req, "num_inference_steps", &steps);
    num_field(req, "guidance_scale", &cfg);
    char label[128];
    const char *schedule;
    sampler_label(req, label, sizeof label, &schedule);
    sb_add(b, "Steps: %.0f", steps);
    add_value(b, "Sampler", label);
    if (schedule) sb_add(b, ", Schedule type: %s", schedule);
    sb_add(b, ", CFG scale: %g, Seed: %llu", cfg, (unsigned long long)seed);
    if (num_field(req, "width", &w) && num_field(req, "height", &h)) sb_add(b, ", Size: %.0fx%.0f", w, h);
    const char *model = str_field(req, "model_id");
    if (model) {
        char name[256];
        model_name(model, name, sizeof name);
        add_value(b, "Model", name);
    }
    if (num_field(req, "strength", &strength)) sb_add(b, ", Denoising strength: %g", strength);
    /* Entries a pipeline stage adds, e.g. the hires fix's (inference run_hires.c). */
    const char *extra = str_field(req, "infotext_extra");
    if (extra && extra[0]) sb_add(b, ", %s", extra);
    sb_add(b, ", Version: sdrt");
}

char *pp_format_parameters(const char *request_json, uint64_t seed, char *err, size_t errlen) {
    cJSON *req = cJSON_Parse(request_json ? request_json : "");
    if (!cJSON_IsObject(req)) {
        cJSON_Delete(req);
        snprintf(err, errlen, "request: not a JSON object");
        return NULL;
    }
    strbuf b = {0};
    const char *prompt = str_field(req, "prompt");
    const char *neg = str_field(req, "negative_prompt");
    sb_add(&b, "%s\n", prompt ? prompt : "");
    if (neg && neg[0]) sb_add(&b, "Negative prompt: %s\n", neg);
    add_settings(&b, req, seed);
    cJSON_Delete(req);
    if (b.oom || !b.s) {
        free(b.s);
        snprintf(err, errlen, "parameters: out of memory");
        return NULL;
    }
    return b.s;
}
