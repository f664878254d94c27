/* plugins/scheduler/alias.c - the one table of scheduler names.
 *
 * A request names a scheduler by diffusers class, A1111 label (old combined
 * "DPM++ 2M Karras" or sampler + separate schedule type), ComfyUI sampler
 * (+ scheduler) or stable-diffusion.cpp name. Every name resolves to a
 * class plus config overrides; docs/schedulers.md lists the same table.
 * Matching ignores case; a trailing schedule type may follow a sampler
 * after a space, '_' or ':' ("dpmpp_2m_karras", "Euler a: Karras").
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "sched.h"

#define SDE_PP "{\"algorithm_type\":\"sde-dpmsolver++\"}"

const sched_alias sched_aliases[] = {
    /* diffusers class names */
    {"EulerDiscreteScheduler", "EulerDiscreteScheduler", NULL, "diffusers"},
    {"EulerAncestralDiscreteScheduler", "EulerAncestralDiscreteScheduler", NULL, "diffusers"},
    {"DPMSolverMultistepScheduler", "DPMSolverMultistepScheduler", NULL, "diffusers"},
    {"DDIMScheduler", "DDIMScheduler", NULL, "diffusers"},
    {"HeunDiscreteScheduler", "HeunDiscreteScheduler", NULL, "diffusers"},
    {"LMSDiscreteScheduler", "LMSDiscreteScheduler", NULL, "diffusers"},
    {"DDPMScheduler", "DDPMScheduler", NULL, "diffusers"},
    {"UniPCMultistepScheduler", "UniPCMultistepScheduler", NULL, "diffusers"},
    {"DPMSolverSinglestepScheduler", "DPMSolverSinglestepScheduler", NULL, "diffusers"},
    {"DEISMultistepScheduler", "DEISMultistepScheduler", NULL, "diffusers"},
    {"KDPM2DiscreteScheduler", "KDPM2DiscreteScheduler", NULL, "diffusers"},
    {"KDPM2AncestralDiscreteScheduler", "KDPM2AncestralDiscreteScheduler", NULL, "diffusers"},
    {"PNDMScheduler", "PNDMScheduler", NULL, "diffusers"},
    {"LCMScheduler", "LCMScheduler", NULL, "diffusers"},
    {"TCDScheduler", "TCDScheduler", NULL, "diffusers"},
    {"DPMSolverSDEScheduler", "DPMSolverSDEScheduler", NULL, "diffusers"},

    /* A1111 sampler labels */
    {"Euler", "EulerDiscreteScheduler", NULL, "a1111"},
    {"Euler a", "EulerAncestralDiscreteScheduler", NULL, "a1111"},
    {"Heun", "HeunDiscreteScheduler", NULL, "a1111"},
    {"LMS", "LMSDiscreteScheduler", NULL, "a1111"},
    {"DPM2", "KDPM2DiscreteScheduler", NULL, "a1111"},
    {"DPM2 a", "KDPM2AncestralDiscreteScheduler", NULL, "a1111"},
    {"DPM++ 2M", "DPMSolverMultistepScheduler", "{\"algorithm_type\":\"dpmsolver++\",\"solver_order\":2}", "a1111"},
    {"DPM++ 2M SDE", "DPMSolverMultistepScheduler",
     "{\"algorithm_type\":\"sde-dpmsolver++\",\"solver_order\":2,\"solver_type\":\"midpoint\"}", "a1111"},
    {"DPM++ 2M SDE Heun", "DPMSolverMultistepScheduler",
     "{\"algorithm_type\":\"sde-dpmsolver++\",\"solver_order\":2,\"solver_type\":\"heun\"}", "a1111"},
    {"DPM++ 3M SDE", "DPMSolverMultistepScheduler", "{\"algorithm_type\":\"sde-dpmsolver++\",\"solver_order\":3}",
     "a1111"},
    {"DPM++ SDE", "DPMSolverSDEScheduler", NULL, "a1111"},
    {"DPM++ 2S", "DPMSolverSinglestepScheduler", NULL, "a1111"},
    {"DDIM", "DDIMScheduler", NULL, "a1111"},
    {"DDPM", "DDPMScheduler", NULL, "a1111"},
    {"PLMS", "PNDMScheduler", "{\"skip_prk_steps\":true}", "a1111"},
    {"UniPC", "UniPCMultistepScheduler", NULL, "a1111"},
    {"DEIS", "DEISMultistepScheduler", NULL, "a1111"},
    {"LCM", "LCMScheduler", NULL, "a1111"},
    {"TCD", "TCDScheduler", NULL, "a1111"},
    {"DPM++ 2S a", NULL, "an ancestral single-step DPM++ 2S sampler has no diffusers equivalent", "a1111"},
    {"DPM fast", NULL, "k-diffusion's DPM fast has no diffusers equivalent", "a1111"},
    {"DPM adaptive", NULL, "adaptive step-size sampling has no diffusers equivalent", "a1111"},
    {"Restart", NULL, "the Restart sampler has no diffusers equivalent", "a1111"},

    /* ComfyUI sampler names */
    {"euler", "EulerDiscreteScheduler", NULL, "comfyui"},
    {"euler_ancestral", "EulerAncestralDiscreteScheduler", NULL, "comfyui"},
    {"heun", "HeunDiscreteScheduler", NULL, "comfyui"},
    {"dpm_2", "KDPM2DiscreteScheduler", NULL, "comfyui"},
    {"dpm_2_ancestral", "KDPM2AncestralDiscreteScheduler", NULL, "comfyui"},
    {"lms", "LMSDiscreteScheduler", NULL, "comfyui"},
    {"dpmpp_2m", "DPMSolverMultistepScheduler", "{\"algorithm_type\":\"dpmsolver++\",\"solver_order\":2}", "comfyui"},
    {"dpmpp_2m_sde", "DPMSolverMultistepScheduler",
     "{\"algorithm_type\":\"sde-dpmsolver++\",\"solver_order\":2,\"solver_type\":\"midpoint\"}", "comfyui"},
    {"dpmpp_2m_sde_heun", "DPMSolverMultistepScheduler",
     "{\"algorithm_type\":\"sde-dpmsolver++\",\"solver_order\":2,\"solver_type\":\"heun\"}", "comfyui"},
    {"dpmpp_3m_sde", "DPMSolverMultistepScheduler", "{\"algorithm_type\":\"sde-dpmsolver++\",\"solver_order\":3}",
     "comfyui"},
    {"dpmpp_sde", "DPMSolverSDEScheduler", NULL, "comfyui"},
    {"ddim", "DDIMScheduler", NULL, "comfyui"},
    {"ddpm", "DDPMScheduler", NULL, "comfyui"},
    {"uni_pc", "UniPCMultistepScheduler", "{\"solver_type\":\"bh1\"}", "comfyui"},
    {"uni_pc_bh2", "UniPCMultistepScheduler", "{\"solver_type\":\"bh2\"}", "comfyui"},
    {"deis", "DEISMultistepScheduler", NULL, "comfyui"},
    {"lcm", "LCMScheduler", NULL, "comfyui"},
    {"tcd", "TCDScheduler", NULL, "comfyui"},
    {"dpmpp_2s_ancestral", NULL, "an ancestral single-step DPM++ 2S sampler has no diffusers equivalent", "comfyui"},

    /* stable-diffusion.cpp and older k-diffusion style names */
    {"euler_a", "EulerAncestralDiscreteScheduler", NULL, "sdcpp"},
    {"dpm2", "KDPM2DiscreteScheduler", NULL, "sdcpp"},
    {"dpm++2m", "DPMSolverMultistepScheduler", "{\"algorithm_type\":\"dpmsolver++\",\"solver_order\":2}", "sdcpp"},
    {"dpm++2s_a", NULL, "an ancestral single-step DPM++ 2S sampler has no diffusers equivalent", "sdcpp"},
    {"dpm++2mv2", NULL, "sd.cpp's modified DPM++ 2M v2 has no diffusers equivalent", "sdcpp"},
    {"ipndm", NULL, "iPNDM has no diffusers equivalent for SD1/SDXL", "sdcpp"},
    {"ipndm_v", NULL, "iPNDM-v has no diffusers equivalent", "sdcpp"},
    {"ddim_trailing", "DDIMScheduler", "{\"timestep_spacing\":\"trailing\"}", "sdcpp"},
    {"k_euler", "EulerDiscreteScheduler", NULL, "sdcpp"},
    {"k_euler_a", "EulerAncestralDiscreteScheduler", NULL, "sdcpp"},
    {"k_heun", "HeunDiscreteScheduler", NULL, "sdcpp"},
    {"k_lms", "LMSDiscreteScheduler", NULL, "sdcpp"},
    {"k_dpm_2", "KDPM2DiscreteScheduler", NULL, "sdcpp"},
    {"k_dpm_2_a", "KDPM2AncestralDiscreteScheduler", NULL, "sdcpp"},
    {"k_dpmpp_2m", "DPMSolverMultistepScheduler", "{\"algorithm_type\":\"dpmsolver++\",\"solver_order\":2}", "sdcpp"},
    {"k_dpmpp_sde", "DPMSolverSDEScheduler", NULL, "sdcpp"},
    {"plms", "PNDMScheduler", "{\"skip_prk_steps\":true}", "sdcpp"},

    /* The old Python workers' README and the C# service ("DPM++" was its
     * default and meant diffusers' DPMSolverMultistep with dpmsolver++,
     * i.e. DPM++ 2M). */
    {"Euler Ancestral", "EulerAncestralDiscreteScheduler", NULL, "workers"},
    {"PNDM", "PNDMScheduler", NULL, "workers"},
    {"DPM++", "DPMSolverMultistepScheduler", "{\"algorithm_type\":\"dpmsolver++\",\"solver_order\":2}", "workers"},
    {NULL, NULL, NULL, NULL},
};

/* Trailing schedule types. The mappings follow diffusers' own table of
 * A1111/k-diffusion equivalents (SGM Uniform and Simple -> trailing). */
const sched_schedule sched_schedules[] = {
    {"Karras", "{\"use_karras_sigmas\":true}", NULL},
    {"Exponential", "{\"use_exponential_sigmas\":true}", NULL},
    {"Beta", "{\"use_beta_sigmas\":true}", NULL},
    {"SGM Uniform", "{\"timestep_spacing\":\"trailing\"}", NULL},
    {"sgm_uniform", "{\"timestep_spacing\":\"trailing\"}", NULL},
    {"Simple", "{\"timestep_spacing\":\"trailing\"}", NULL},
    {"Normal", "{\"timestep_spacing\":\"linspace\"}", NULL},
    {"Automatic", "{}", NULL},
    {"discrete", "{}", NULL},
    /* Align Your Steps: the family comes from ays_model (docs/schedulers.md) */
    {"Align Your Steps", "{\"align_your_steps\":true}", NULL},
    {"AYS", "{\"align_your_steps\":true}", NULL},
    {"AYS SD1", "{\"align_your_steps\":true,\"ays_model\":\"sd1\"}", NULL},
    {"AYS SDXL", "{\"align_your_steps\":true,\"ays_model\":\"sdxl\"}", NULL},
    {"ddim_uniform", NULL, "schedule type 'ddim_uniform' is not supported: no diffusers config reproduces it"},
    {"linear_quadratic", NULL, "schedule type 'linear_quadratic' is not supported: no diffusers config reproduces it"},
    {"kl_optimal", NULL, "schedule type 'kl_optimal' is not supported: no diffusers config reproduces it"},
    {"gits", NULL, "schedule type 'gits' is not supported: no diffusers config reproduces it"},
    {NULL, NULL, NULL},
};

/* Case-insensitive equality of s[0..n) with a whole string. */
static int eq_n(const char *s, size_t n, const char *t) {
    if (strlen(t) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)s[i]) != tolower((unsigned char)t[i])) return 0;
    return 1;
}

static const sched_alias *find_alias(const char *name, size_t n) {
    for (const sched_alias *a = sched_aliases; a->alias; a++)
        if (eq_n(name, n, a->alias)) return a;
    return NULL;
}

/* A schedule name matches with '_' and ' ' treated alike. */
static int schedule_eq(const char *s, size_t n, const char *t) {
    if (strlen(t) != n) return 0;
    for (size_t i = 0; i < n; i++) {
        char a = (char)tolower((unsigned char)s[i]), b = (char)tolower((unsigned char)t[i]);
        if (a == '_') a = ' ';
        if (b == '_') b = ' ';
        if (a != b) return 0;
    }
    return 1;
}

static const sched_schedule *find_schedule(const char *s, size_t n) {
    for (const sched_schedule *q = sched_schedules; q->name; q++)
        if (schedule_eq(s, n, q->name)) return q;
    return NULL;
}

static sdrt_status use_alias(const sched_alias *a, const char **cls, const char **over, char *err, size_t len) {
    if (!a->class_name) {
        snprintf(err, len, "scheduler: '%s' is not supported: %s", a->alias, a->overrides_json);
        return SDRT_UNSUPPORTED;
    }
    *cls = a->class_name;
    *over = a->overrides_json;
    return SDRT_OK;
}

/* Joins two override objects (both flat, small) into a static buffer per
 * combination; the set of combinations is finite, so keep one table. */
static const char *combine(const char *a, const char *b) {
    static _Thread_local char buf[256];
    if (!a || strcmp(a, "{}") == 0) return b;
    if (!b || strcmp(b, "{}") == 0) return a;
    snprintf(buf, sizeof buf, "%.*s,%s", (int)(strlen(a) - 1), a, b + 1);
    return buf;
}

sdrt_status sched_resolve(const char *name, const char **cls, const char **over, char *err, size_t len) {
    size_t n = strlen(name);
    while (n && isspace((unsigned char)name[n - 1])) n--;
    while (n && isspace((unsigned char)*name)) name++, n--;
    const sched_alias *a = find_alias(name, n);
    if (a) return use_alias(a, cls, over, err, len);
    /* "<sampler><sep><schedule>": try every separator position from the right */
    for (size_t cut = n; cut-- > 1;) {
        char c = name[cut];
        if (c != ' ' && c != '_' && c != ':') continue;
        size_t left = cut;
        while (left && (name[left - 1] == ' ' || name[left - 1] == ':')) left--;
        const sched_schedule *q = find_schedule(name + cut + 1, n - cut - 1);
        if (!q) continue;
        a = find_alias(name, left);
        if (!a) continue;
        if (!q->overrides_json) {
            snprintf(err, len, "scheduler: %s", q->reason);
            return SDRT_UNSUPPORTED;
        }
        sdrt_status st = use_alias(a, cls, over, err, len);
        if (st) return st;
        *over = combine(a->overrides_json, q->overrides_json);
        return SDRT_OK;
    }
    snprintf(err, len,
             "scheduler: '%.*s' is not a known scheduler (diffusers class, A1111 label, ComfyUI or sd.cpp name; "
             "see scheduler.list)",
             (int)(n > 200 ? 200 : n), name);
    return SDRT_NOT_FOUND;
}

static int flag(const sched_config *c, sched_field f) { return c->v[f].present && cfg_bool(c, f); }

static const char *dpm_label(const sched_config *c) {
    int sde = cfg_is(c, SCHED_F_ALGORITHM_TYPE, "sde-dpmsolver++") || cfg_is(c, SCHED_F_ALGORITHM_TYPE, "sde-dpmsolver");
    if (!sde) return "DPM++ 2M";
    if (cfg_num(c, SCHED_F_SOLVER_ORDER) == 3) return "DPM++ 3M SDE";
    return cfg_is(c, SCHED_F_SOLVER_TYPE, "heun") ? "DPM++ 2M SDE Heun" : "DPM++ 2M SDE";
}

void sched_a1111_label(const sdrt_sched *s, const char **label, const char **schedule) {
    static const struct { const char *cls, *label; } map[] = {
        {"EulerDiscreteScheduler", "Euler"},   {"EulerAncestralDiscreteScheduler", "Euler a"},
        {"HeunDiscreteScheduler", "Heun"},     {"LMSDiscreteScheduler", "LMS"},
        {"KDPM2DiscreteScheduler", "DPM2"},    {"KDPM2AncestralDiscreteScheduler", "DPM2 a"},
        {"DPMSolverSDEScheduler", "DPM++ SDE"}, {"DPMSolverSinglestepScheduler", "DPM++ 2S"},
        {"DDIMScheduler", "DDIM"},             {"DDPMScheduler", "DDPM"},
        {"PNDMScheduler", "PLMS"},             {"UniPCMultistepScheduler", "UniPC"},
        {"DEISMultistepScheduler", "DEIS"},    {"LCMScheduler", "LCM"},
        {"TCDScheduler", "TCD"},
    };
    const sched_config *c = &s->cfg;
    *label = s->kind->name;
    if (strcmp(s->kind->name, "DPMSolverMultistepScheduler") == 0) *label = dpm_label(c);
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].cls, s->kind->name) == 0) *label = map[i].label;
    if (flag(c, SCHED_F_ALIGN_YOUR_STEPS)) *schedule = "Align Your Steps";
    else if (flag(c, SCHED_F_USE_KARRAS_SIGMAS)) *schedule = "Karras";
    else if (flag(c, SCHED_F_USE_EXPONENTIAL_SIGMAS)) *schedule = "Exponential";
    else if (flag(c, SCHED_F_USE_BETA_SIGMAS)) *schedule = "Beta";
    else if (c->v[SCHED_F_TIMESTEP_SPACING].present && cfg_is(c, SCHED_F_TIMESTEP_SPACING, "trailing"))
        *schedule = "SGM Uniform";
    else *schedule = "Automatic";
}
