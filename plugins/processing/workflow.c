/* plugins/processing/workflow.c - built-in workflow templates, validation
 * of user workflows (shape, served types, references, cycles) and the
 * resolution of {"$ref":"<step>.<path>"} values. */
#define _GNU_SOURCE
#include "workflow.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- templates ---------------------------------------------------------- */

typedef struct wf_input {
    const char *name;
    const char *type;     /* JSON type word, for the description */
    int required;
    const char *about;
} wf_input;

typedef struct wf_template {
    const char *id;
    const char *name;
    const char *category;
    const char *description;
    const char *models;        /* what model_id must be */
    double memory_gb;          /* rough need on the CPU backend at 1024 px SDXL / 512 px SD1 */
    const wf_input *inputs;
} wf_template;

#define GEN_INPUTS                                                                                          \
    {"model_id", "string", 1, "the model (for sdxl_refiner: the base)"},                                  \
        {"prompt", "string", 1, "the prompt"}, {"negative_prompt", "string", 0, "the negative prompt"},    \
        {"width", "integer", 0, "width (multiple of 8)"}, {"height", "integer", 0, "height (multiple of 8)"}, \
        {"num_inference_steps", "integer", 0, "steps"}, {"guidance_scale", "number", 0, "CFG scale"},      \
        {"seed", "integer", 0, "seed"}, {"scheduler", "string", 0, "scheduler name"},                      \
        {"output", "object", 0, "output {dir, save_latents}"}

static const wf_input TXT2IMG_INPUTS[] = {GEN_INPUTS, {NULL, NULL, 0, NULL}};
static const wf_input HIRES_INPUTS[] = {
    GEN_INPUTS,
    {"scale", "number", 0, "size factor of the second pass (default 2; the result is rounded down to a multiple of 8)"},
    {"strength", "number", 0, "img2img strength of the second pass (default 0.5)"},
    {"hires_steps", "integer", 0, "steps of the second pass (default num_inference_steps)"},
    {NULL, NULL, 0, NULL}};
static const wf_input REFINER_INPUTS[] = {
    GEN_INPUTS,
    {"refiner", "string", 1, "the SDXL refiner model"},
    {"denoising_end", "number", 0, "where the base stops and the refiner starts (default 0.8)"},
    {NULL, NULL, 0, NULL}};
static const wf_input STYLE_INPUTS[] = {
    GEN_INPUTS,
    {"images", "array", 1, "the input images (paths or data URLs), 1-64"},
    {"strength", "number", 0, "img2img strength (default 0.6)"},
    {NULL, NULL, 0, NULL}};

static const wf_template TEMPLATES[] = {
    {"txt2img", "Text to image", "generation", "One inference.run from a prompt.", "SD1/SD2/SDXL", 4.0,
     TXT2IMG_INPUTS},
    {"hires_fix", "Hires fix", "generation",
     "txt2img at the given size, then img2img of that image at scale x the size (A1111's hires fix pattern).",
     "SD1/SD2/SDXL", 6.0, HIRES_INPUTS},
    {"sdxl_refiner", "SDXL base then refiner", "generation",
     "The SDXL base to denoising_end with its latents saved, then the refiner from those latents "
     "(denoising_start = denoising_end).",
     "SDXL base + SDXL refiner", 12.0, REFINER_INPUTS},
    {"img2img_style", "Style over a list of images", "transformation",
     "img2img of each image with one style prompt; one step per image.", "SD1/SD2/SDXL", 4.0, STYLE_INPUTS},
    {NULL, NULL, NULL, NULL, NULL, 0, NULL},
};

static const wf_template *find_template(const char *id) {
    for (const wf_template *t = TEMPLATES; id && t->id; t++)
        if (strcmp(t->id, id) == 0) return t;
    return NULL;
}

static cJSON *describe(const wf_template *t, int full) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", t->id);
    cJSON_AddStringToObject(o, "name", t->name);
    cJSON_AddStringToObject(o, "category", t->category);
    cJSON_AddStringToObject(o, "description", t->description);
    cJSON_AddStringToObject(o, "models", t->models);
    cJSON_AddNumberToObject(o, "memory_gb", t->memory_gb);
    if (!full) return o;
    cJSON *inputs = cJSON_AddArrayToObject(o, "inputs");
    for (const wf_input *in = t->inputs; in->name; in++) {
        cJSON *i = cJSON_CreateObject();
        cJSON_AddStringToObject(i, "name", in->name);
        cJSON_AddStringToObject(i, "type", in->type);
        cJSON_AddBoolToObject(i, "required", in->required);
        cJSON_AddStringToObject(i, "description", in->about);
        cJSON_AddItemToArray(inputs, i);
    }
    /* The steps as they run, with placeholders for the inputs. */
    cJSON *example = cJSON_CreateObject();
    cJSON_AddStringToObject(example, "model_id", "<model_id>");
    cJSON_AddStringToObject(example, "prompt", "<prompt>");
    cJSON_AddStringToObject(example, "refiner", "<refiner>");
    cJSON *imgs = cJSON_AddArrayToObject(example, "images");
    cJSON_AddItemToArray(imgs, cJSON_CreateString("<image>"));
    cJSON_AddNumberToObject(example, "width", 512);
    cJSON_AddNumberToObject(example, "height", 512);
    sdrt_error *e = NULL;
    cJSON *steps = wf_template_steps(NULL, NULL, t->id, example, &e);
    cJSON_Delete(example);
    if (steps) cJSON_AddItemToObject(o, "steps", steps);
    return o;
}

cJSON *wf_template_list(void) {
    cJSON *arr = cJSON_CreateArray();
    for (const wf_template *t = TEMPLATES; t->id; t++) cJSON_AddItemToArray(arr, describe(t, 0));
    return arr;
}

cJSON *wf_template_describe(const char *id) {
    const wf_template *t = find_template(id);
    return t ? describe(t, 1) : NULL;
}

static sdrt_error *err_new(const sdrt_host_api *api, sdrt_status code, const char *fmt, const char *a,
                           const char *b) {
    if (!api) return NULL;
    return api->error_new(code, NULL, fmt, a, b);
}

/* The generation fields every template passes on to inference.run. */
static void copy_gen(cJSON *dst, const cJSON *inputs) {
    const char *keys[] = {"model_id", "prompt", "negative_prompt", "width", "height", "num_inference_steps",
                          "guidance_scale", "seed", "scheduler", "output", NULL};
    for (int i = 0; keys[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(inputs, keys[i]);
        if (v) cJSON_AddItemToObject(dst, keys[i], cJSON_Duplicate(v, 1));
    }
}

static cJSON *step(cJSON *steps, const char *id, const char *type) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "id", id);
    cJSON_AddStringToObject(s, "type", type);
    cJSON *d = cJSON_AddObjectToObject(s, "data");
    cJSON_AddItemToArray(steps, s);
    return d;
}

static cJSON *ref(const char *path) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "$ref", path);
    return r;
}

static double num_or(const cJSON *o, const char *k, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

cJSON *wf_template_steps(const sdrt_host_api *api, sdrt_job *job, const char *id, const cJSON *inputs,
                         sdrt_error **err) {
    *err = NULL;
    const wf_template *t = find_template(id);
    if (!t) {
        *err = err_new(api, SDRT_NOT_FOUND, "workflow_id: '%s' is not a workflow (see processing.workflows)%s",
                       id ? id : "", "");
        return NULL;
    }
    if (!cJSON_IsObject(inputs)) {
        *err = err_new(api, SDRT_INVALID_ARGUMENT, "inputs: expected an object%s%s", "", "");
        return NULL;
    }
    for (const wf_input *in = t->inputs; in->name; in++)
        if (in->required && !cJSON_GetObjectItemCaseSensitive(inputs, in->name)) {
            *err = err_new(api, SDRT_INVALID_ARGUMENT, "inputs.%s: is required by workflow '%s'", in->name, t->id);
            return NULL;
        }
    const cJSON *it;
    cJSON_ArrayForEach(it, inputs) {
        int known = 0;
        for (const wf_input *in = t->inputs; in->name && !known; in++) known = strcmp(in->name, it->string) == 0;
        if (!known && api && job) {
            char msg[300];
            snprintf(msg, sizeof msg, "inputs.%s: not an input of workflow '%s', ignored", it->string, t->id);
            api->warn(job, msg);
        }
    }
    cJSON *steps = cJSON_CreateArray();
    if (strcmp(t->id, "txt2img") == 0) {
        copy_gen(step(steps, "generate", "inference.run"), inputs);
    } else if (strcmp(t->id, "hires_fix") == 0) {
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(inputs, "width");
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(inputs, "height");
        if (!cJSON_IsNumber(w) || !cJSON_IsNumber(h)) {
            cJSON_Delete(steps);
            *err = err_new(api, SDRT_INVALID_ARGUMENT, "inputs.%s: is required by workflow '%s' (the first pass's size)",
                           cJSON_IsNumber(w) ? "height" : "width", t->id);
            return NULL;
        }
        double scale = num_or(inputs, "scale", 2.0);
        if (!(scale >= 1.0 && scale <= 4.0)) {
            cJSON_Delete(steps);
            *err = err_new(api, SDRT_INVALID_ARGUMENT, "inputs.scale: must be in [1, 4]%s%s", "", "");
            return NULL;
        }
        cJSON *base = step(steps, "base", "inference.run");
        copy_gen(base, inputs);
        cJSON *up = step(steps, "hires", "inference.run");
        copy_gen(up, inputs);
        cJSON_ReplaceItemInObjectCaseSensitive(up, "width", cJSON_CreateNumber((double)((int)(w->valuedouble * scale) / 8 * 8)));
        cJSON_ReplaceItemInObjectCaseSensitive(up, "height", cJSON_CreateNumber((double)((int)(h->valuedouble * scale) / 8 * 8)));
        cJSON_AddItemToObject(up, "init_image", ref("base.images[0]"));
        cJSON_AddNumberToObject(up, "strength", num_or(inputs, "strength", 0.5));
        const cJSON *hs = cJSON_GetObjectItemCaseSensitive(inputs, "hires_steps");
        if (hs) {
            cJSON_DeleteItemFromObjectCaseSensitive(up, "num_inference_steps");
            cJSON_AddItemToObject(up, "num_inference_steps", cJSON_Duplicate(hs, 1));
        }
    } else if (strcmp(t->id, "sdxl_refiner") == 0) {
        double end = num_or(inputs, "denoising_end", 0.8);
        cJSON *base = step(steps, "base", "inference.run");
        copy_gen(base, inputs);
        cJSON_AddNumberToObject(base, "denoising_end", end);
        cJSON *out = cJSON_GetObjectItemCaseSensitive(base, "output");
        if (!cJSON_IsObject(out)) {
            cJSON_DeleteItemFromObjectCaseSensitive(base, "output");
            out = cJSON_AddObjectToObject(base, "output");
        }
        cJSON_DeleteItemFromObjectCaseSensitive(out, "save_latents");
        cJSON_AddTrueToObject(out, "save_latents");
        cJSON *ref_step = step(steps, "refine", "inference.run");
        copy_gen(ref_step, inputs);
        cJSON_ReplaceItemInObjectCaseSensitive(ref_step, "model_id",
                                               cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(inputs, "refiner"), 1));
        cJSON_AddItemToObject(ref_step, "init_image", ref("base.latents[0]"));
        cJSON_AddNumberToObject(ref_step, "denoising_start", end);
    } else { /* img2img_style */
        const cJSON *imgs = cJSON_GetObjectItemCaseSensitive(inputs, "images");
        int n = cJSON_GetArraySize(imgs);
        if (!cJSON_IsArray(imgs) || n < 1 || n > WF_MAX_STEPS) {
            cJSON_Delete(steps);
            *err = err_new(api, SDRT_INVALID_ARGUMENT, "inputs.images: expected 1 to 64 images%s%s", "", "");
            return NULL;
        }
        for (int i = 0; i < n; i++) {
            char sid[32];
            snprintf(sid, sizeof sid, "image%d", i);
            cJSON *d = step(steps, sid, "inference.run");
            copy_gen(d, inputs);
            cJSON_AddItemToObject(d, "init_image", cJSON_Duplicate(cJSON_GetArrayItem(imgs, i), 1));
            cJSON_AddNumberToObject(d, "strength", num_or(inputs, "strength", 0.6));
        }
    }
    return steps;
}

/* ---- references ----------------------------------------------------------- */

/* A $ref value: "<step id>.<path>" -> the step id (into sid) and the path. */
static int split_ref(const char *ref, char *sid, size_t n, const char **path) {
    size_t i = 0;
    while (ref[i] && ref[i] != '.' && ref[i] != '[') i++;
    if (i == 0 || i >= n) return -1;
    memcpy(sid, ref, i);
    sid[i] = '\0';
    *path = ref + i + (ref[i] == '.');
    return 0;
}

static const char *ref_of(const cJSON *v) {
    if (!cJSON_IsObject(v) || cJSON_GetArraySize(v) != 1) return NULL;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(v, "$ref");
    return cJSON_IsString(r) ? r->valuestring : NULL;
}

/* Follows `path` ("images[0]", "a.b[2].c") into v; NULL when absent. */
static const cJSON *follow(const cJSON *v, const char *path) {
    const char *p = path;
    while (*p && v) {
        if (*p == '.') p++;
        if (*p == '[') {
            char *end = NULL;
            long k = strtol(p + 1, &end, 10);
            if (!end || *end != ']' || k < 0) return NULL;
            v = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, (int)k) : NULL;
            p = end + 1;
            continue;
        }
        size_t n = 0;
        while (p[n] && p[n] != '.' && p[n] != '[') n++;
        if (n == 0) return NULL;
        char key[128];
        if (n >= sizeof key) return NULL;
        memcpy(key, p, n);
        key[n] = '\0';
        v = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, key) : NULL;
        p += n;
    }
    return v;
}

/* Top-level outputs of the step types whose results are known, to refuse a
 * reference to an output that cannot exist before anything runs. */
static int output_known(const char *type, const char *path) {
    static const char *const INFER[] = {"images", "images_info", "latents", "seed", "width", "height",
                                        "processing_time", "batch_split", NULL};
    if (strcmp(type, "inference.run") != 0) return 1;
    size_t n = 0;
    while (path[n] && path[n] != '.' && path[n] != '[') n++;
    for (int i = 0; INFER[i]; i++)
        if (strlen(INFER[i]) == n && strncmp(INFER[i], path, n) == 0) return 1;
    return 0;
}

typedef struct vctx {
    const sdrt_host_api *api;
    const cJSON *steps;
    int n;
    unsigned char deps[WF_MAX_STEPS][WF_MAX_STEPS]; /* deps[i][j]: step i uses step j */
} vctx;

static int step_index(const vctx *c, const char *id) {
    for (int i = 0; i < c->n; i++) {
        const cJSON *sid = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(c->steps, i), "id");
        if (cJSON_IsString(sid) && strcmp(sid->valuestring, id) == 0) return i;
    }
    return -1;
}

static sdrt_error *step_err(const sdrt_host_api *api, sdrt_status code, int i, const char *id, const char *msg) {
    char where[160];
    snprintf(where, sizeof where, "workflow.steps[%d]%s%s%s", i, id ? " ('" : "", id ? id : "", id ? "')" : "");
    return api->error_new(code, NULL, "%s: %s", where, msg);
}

static sdrt_error *scan_refs(vctx *c, int i, const char *id, const cJSON *v) {
    const char *r = ref_of(v);
    if (r) {
        char sid[128], msg[400];
        const char *path = NULL;
        if (split_ref(r, sid, sizeof sid, &path) != 0 || !*path) {
            snprintf(msg, sizeof msg, "$ref '%s' is not '<step id>.<path>'", r);
            return step_err(c->api, SDRT_INVALID_ARGUMENT, i, id, msg);
        }
        int j = step_index(c, sid);
        if (j < 0) {
            snprintf(msg, sizeof msg, "$ref '%s' names no step '%s'", r, sid);
            return step_err(c->api, SDRT_INVALID_ARGUMENT, i, id, msg);
        }
        if (j == i) {
            snprintf(msg, sizeof msg, "$ref '%s' refers to the step itself", r);
            return step_err(c->api, SDRT_INVALID_ARGUMENT, i, id, msg);
        }
        const char *jtype = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(c->steps, j), "type"));
        if (jtype && !output_known(jtype, path)) {
            snprintf(msg, sizeof msg, "$ref '%s': a %s step has no output '%s'", r, jtype, path);
            return step_err(c->api, SDRT_INVALID_ARGUMENT, i, id, msg);
        }
        c->deps[i][j] = 1;
        return NULL;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, v) {
        sdrt_error *e = scan_refs(c, i, id, it);
        if (e) return e;
    }
    return NULL;
}

/* Depth-first topological order; a back edge is a cycle. */
static int visit(vctx *c, int i, int *mark, int *order, int *k, int *cycle_at) {
    if (mark[i] == 2) return 0;
    if (mark[i] == 1) {
        *cycle_at = i;
        return -1;
    }
    mark[i] = 1;
    for (int j = 0; j < c->n; j++)
        if (c->deps[i][j] && visit(c, j, mark, order, k, cycle_at) != 0) return -1;
    mark[i] = 2;
    order[(*k)++] = i;
    return 0;
}

static int id_ok(const char *s) {
    if (!*s || strlen(s) > 64) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-') return 0;
    return 1;
}

sdrt_error *wf_validate(const sdrt_host_api *api, sdrt_job *job, const cJSON *steps, int order[WF_MAX_STEPS]) {
    if (!cJSON_IsArray(steps)) return api->error_new(SDRT_INVALID_ARGUMENT, NULL, "workflow.steps: expected an array");
    vctx *c = calloc(1, sizeof *c);
    if (!c) return api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "processing: out of memory");
    c->api = api;
    c->steps = steps;
    c->n = cJSON_GetArraySize(steps);
    sdrt_error *e = NULL;
    if (c->n < 1 || c->n > WF_MAX_STEPS)
        e = api->error_new(SDRT_INVALID_ARGUMENT, NULL, "workflow.steps: has %d steps, expected 1 to %d", c->n,
                           WF_MAX_STEPS);
    for (int i = 0; !e && i < c->n; i++) {
        const cJSON *s = cJSON_GetArrayItem(steps, i);
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "id"));
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "type"));
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(s, "data");
        if (!cJSON_IsObject(s)) e = step_err(api, SDRT_INVALID_ARGUMENT, i, NULL, "expected an object {id, type, data}");
        else if (!id || !id_ok(id))
            e = step_err(api, SDRT_INVALID_ARGUMENT, i, NULL, "id: expected 1-64 letters, digits, '_' or '-'");
        else if (step_index(c, id) != i) e = step_err(api, SDRT_INVALID_ARGUMENT, i, id, "id: used by an earlier step");
        else if (!type) e = step_err(api, SDRT_INVALID_ARGUMENT, i, id, "type: expected a message type string");
        else if (data && !cJSON_IsObject(data)) e = step_err(api, SDRT_INVALID_ARGUMENT, i, id, "data: expected an object");
        else if (strncmp(type, "processing.", 11) == 0 || strncmp(type, "host.", 5) == 0)
            e = step_err(api, SDRT_INVALID_ARGUMENT, i, id, "type: processing.* and host.* messages cannot be steps");
        else {
            sdrt_error *ce = api->call(job, type, NULL, NULL); /* served? nothing runs */
            if (ce) {
                e = step_err(api, ce->code, i, id, ce->message);
                api->error_free(ce);
            }
        }
    }
    for (int i = 0; !e && i < c->n; i++) {
        const cJSON *s = cJSON_GetArrayItem(steps, i);
        e = scan_refs(c, i, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "id")),
                      cJSON_GetObjectItemCaseSensitive(s, "data"));
    }
    if (!e) {
        int mark[WF_MAX_STEPS] = {0}, k = 0, at = -1;
        for (int i = 0; i < c->n && !e; i++) {
            if (visit(c, i, mark, order, &k, &at) == 0) continue;
            const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(steps, at), "id"));
            e = step_err(api, SDRT_INVALID_ARGUMENT, at, id, "its $ref values form a cycle");
        }
    }
    free(c);
    return e;
}

static cJSON *resolve(const sdrt_host_api *api, const cJSON *v, const cJSON *results, const char *step_id,
                      sdrt_error **err) {
    const char *r = ref_of(v);
    if (r) {
        char sid[128];
        const char *path = NULL;
        const cJSON *out = NULL;
        if (split_ref(r, sid, sizeof sid, &path) == 0)
            out = follow(cJSON_GetObjectItemCaseSensitive(results, sid), path);
        if (!out) {
            *err = api->error_new(SDRT_INVALID_ARGUMENT, NULL, "workflow step '%s': $ref '%s': the output is missing",
                                  step_id, r);
            return NULL;
        }
        return cJSON_Duplicate(out, 1);
    }
    if (!cJSON_IsObject(v) && !cJSON_IsArray(v)) return cJSON_Duplicate(v, 1);
    cJSON *copy = cJSON_IsObject(v) ? cJSON_CreateObject() : cJSON_CreateArray();
    const cJSON *it;
    cJSON_ArrayForEach(it, v) {
        cJSON *x = resolve(api, it, results, step_id, err);
        if (!x) {
            cJSON_Delete(copy);
            return NULL;
        }
        if (cJSON_IsObject(v)) cJSON_AddItemToObject(copy, it->string, x);
        else cJSON_AddItemToArray(copy, x);
    }
    return copy;
}

cJSON *wf_resolve_refs(const sdrt_host_api *api, const cJSON *data, const cJSON *results, const char *step_id,
                       sdrt_error **err) {
    *err = NULL;
    if (!data) return cJSON_CreateObject();
    return resolve(api, data, results, step_id, err);
}
