/* host/legacy.c - the older C# service's and Python workers' message forms,
 * mapped to canonical types and inference.run fields. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "host.h"

static const struct {
    const char *legacy;
    const char *canonical;
} TYPE_ALIASES[] = {
    {"inference", "inference.run"},
    {"health", "host.health"},
    {"load_model", "model.load"},
    {"unload_model", "model.unload"},
    {"inference_request", "inference.run"},
    {"model_load_request", "model.load"},
    {"status_request", "host.health"},
    {"cancel", "host.cancel"},
    {"shutdown", "host.shutdown"},
    {NULL, NULL},
};

static const char *canonical_type(const char *t) {
    for (int i = 0; TYPE_ALIASES[i].legacy; i++)
        if (strcmp(TYPE_ALIASES[i].legacy, t) == 0) return TYPE_ALIASES[i].canonical;
    return NULL;
}

/* Moves src[key] to dst[new_key] unless dst already has new_key. */
static void move_field(cJSON *src, const char *key, cJSON *dst, const char *new_key) {
    if (!src || !cJSON_IsObject(src)) return;
    cJSON *v = cJSON_GetObjectItemCaseSensitive(src, key);
    if (!v || cJSON_GetObjectItemCaseSensitive(dst, new_key)) return;
    cJSON_AddItemToObject(dst, new_key, cJSON_DetachItemViaPointer(src, v));
}

static cJSON *get(cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

/* {model_name, hyperparameters{...}, dimensions{width, height}} */
static void map_nested_request(cJSON *d) {
    move_field(d, "model_name", d, "model_id");
    cJSON *hp = get(d, "hyperparameters");
    move_field(hp, "num_inference_steps", d, "num_inference_steps");
    move_field(hp, "guidance_scale", d, "guidance_scale");
    move_field(hp, "seed", d, "seed");
    move_field(hp, "scheduler", d, "scheduler");
    move_field(hp, "width", d, "width");
    move_field(hp, "height", d, "height");
    move_field(hp, "batch_size", d, "batch_size");
    cJSON *dims = get(d, "dimensions");
    move_field(dims, "width", d, "width");
    move_field(dims, "height", d, "height");
    cJSON_DeleteItemFromObjectCaseSensitive(d, "hyperparameters");
    cJSON_DeleteItemFromObjectCaseSensitive(d, "dimensions");
}

static void map_loras(cJSON *loras, cJSON *d) {
    if (!cJSON_IsArray(loras) || get(d, "lora")) return;
    cJSON *lora = cJSON_AddObjectToObject(d, "lora");
    cJSON_AddBoolToObject(lora, "enabled", cJSON_GetArraySize(loras) > 0);
    cJSON *adapters = cJSON_AddArrayToObject(lora, "adapters");
    cJSON *it;
    cJSON_ArrayForEach(it, loras) {
        cJSON *a = cJSON_CreateObject();
        const char *keys[] = {"Name", "Path", "ModelId", "Id", "name", "path", "model_id", NULL};
        for (int i = 0; keys[i]; i++) {
            cJSON *v = get(it, keys[i]);
            if (cJSON_IsString(v)) {
                cJSON_AddStringToObject(a, "model_id", v->valuestring);
                break;
            }
        }
        const char *wkeys[] = {"Weight", "Scale", "Strength", "weight", "scale", NULL};
        for (int i = 0; wkeys[i]; i++) {
            cJSON *v = get(it, wkeys[i]);
            if (cJSON_IsNumber(v)) {
                cJSON_AddNumberToObject(a, "weight", v->valuedouble);
                break;
            }
        }
        cJSON_AddItemToArray(adapters, a);
    }
}

/* C# EnhancedSDXLRequest: {Model{Base,Refiner,Vae}, Scheduler{Type,Steps},
 * Hyperparameters{GuidanceScale,Seed,...}, Conditioning{Prompt,...}}. */
static void map_enhanced_sdxl(cJSON *d) {
    cJSON *model = get(d, "Model");
    if (cJSON_IsObject(model) && !get(d, "model_id")) {
        cJSON *base = get(model, "Base"), *refiner = get(model, "Refiner"), *vae = get(model, "Vae");
        int only_base = !(cJSON_IsString(refiner) && *refiner->valuestring) && !(cJSON_IsString(vae) && *vae->valuestring);
        if (only_base && cJSON_IsString(base)) {
            cJSON_AddStringToObject(d, "model_id", base->valuestring);
        } else {
            cJSON *m = cJSON_AddObjectToObject(d, "model_id");
            move_field(model, "Base", m, "base");
            if (cJSON_IsString(refiner) && *refiner->valuestring) move_field(model, "Refiner", m, "refiner");
            if (cJSON_IsString(vae) && *vae->valuestring) move_field(model, "Vae", m, "vae");
        }
    } else if (cJSON_IsString(model)) {
        move_field(d, "Model", d, "model_id");
    }
    cJSON *sched = get(d, "Scheduler");
    move_field(sched, "Type", d, "scheduler");
    move_field(sched, "Steps", d, "num_inference_steps");
    cJSON *hp = get(d, "Hyperparameters");
    move_field(hp, "GuidanceScale", d, "guidance_scale");
    move_field(hp, "Seed", d, "seed");
    move_field(hp, "Width", d, "width");
    move_field(hp, "Height", d, "height");
    move_field(hp, "BatchSize", d, "batch_size");
    move_field(hp, "Steps", d, "num_inference_steps");
    cJSON *dims = get(d, "Dimensions");
    move_field(dims, "Width", d, "width");
    move_field(dims, "Height", d, "height");
    cJSON *cond = get(d, "Conditioning");
    move_field(cond, "Prompt", d, "prompt");
    move_field(cond, "NegativePrompt", d, "negative_prompt");
    move_field(cond, "ClipSkip", d, "clip_skip");
    map_loras(get(cond, "LoRAs"), d);
    const char *drop[] = {"Model", "Scheduler", "Hyperparameters", "Dimensions", "Conditioning", NULL};
    for (int i = 0; drop[i]; i++) cJSON_DeleteItemFromObjectCaseSensitive(d, drop[i]);
}

/* The Python upscaler worker: type/message_type "upscaler_worker", or an
 * inference request naming worker "upscaler_worker" (which used to run as
 * txt2img); {image_path, model_name, scale_factor, output_dir}. */
static int is_upscaler(cJSON *root, cJSON *d) {
    cJSON *w = get(root, "worker") ? get(root, "worker") : get(d, "worker");
    return cJSON_IsString(w) && strcmp(w->valuestring, "upscaler_worker") == 0;
}

static void map_upscaler(cJSON *d) {
    move_field(d, "image_path", d, "image");
    move_field(d, "model_name", d, "upscaler");
    move_field(d, "scale_factor", d, "scale");
    if (cJSON_IsString(get(d, "output_dir")) && !get(d, "output"))
        move_field(d, "output_dir", cJSON_AddObjectToObject(d, "output"), "dir");
    cJSON_DeleteItemFromObjectCaseSensitive(d, "worker");
}

void legacy_normalise(proto_request *req, cJSON *root) {
    if (strcmp(req->type, "upscaler_worker") == 0 || is_upscaler(root, req->data)) {
        free(req->type);
        req->type = strdup("postprocess.upscale");
        map_upscaler(req->data);
        return;
    }
    const char *c = canonical_type(req->type);
    /* The simplest old client sends {"type":"inference",...} and reads one
     * line: it gets its final line only unless it asks for events. */
    if (strcmp(req->type, "inference") == 0 && req->events < 0) req->events = 0;
    /* {"type":"cancel","request_id":X} names its target in request_id: the
     * acknowledgement then carries request_id null, so X gets one final line
     * (the cancelled job's). */
    if (strcmp(req->type, "cancel") == 0 && req->request_id && !get(req->data, "request_id")) {
        cJSON_AddStringToObject(req->data, "request_id", req->request_id);
        free(req->request_id);
        req->request_id = NULL;
    }
    if (c) {
        free(req->type);
        req->type = strdup(c);
    }
    cJSON *d = req->data;
    if (strcmp(req->type, "inference.run") == 0) {
        legacy_map_controlnet(d); /* before map_enhanced_sdxl drops Conditioning */
        if (get(d, "Model") || get(d, "Conditioning") || get(d, "Hyperparameters") || get(d, "Scheduler"))
            map_enhanced_sdxl(d);
        if (get(d, "model_name") || get(d, "hyperparameters") || get(d, "dimensions")) map_nested_request(d);
    } else if (strcmp(req->type, "model.load") == 0 || strcmp(req->type, "model.unload") == 0) {
        move_field(d, "model_name", d, "model_id");
        move_field(d, "model_path", d, "model_id");
    }
}
