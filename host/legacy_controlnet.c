/* host/legacy_controlnet.c - ControlNet request shapes of the older clients
 * mapped to inference.run's "controlnet" list (docs/protocol.md):
 *
 * - C# Conditioning.ControlNet: one object or a list of {Model | ModelId |
 *   Path, Image, ConditioningScale | Scale | Weight, GuidanceStart | Start,
 *   GuidanceEnd | End, Preprocess | Preprocessor, LowThreshold,
 *   HighThreshold}, and Conditioning.GuessMode.
 * - A1111 alwayson_scripts.controlnet.args: [{enabled, model ("name
 *   [hash]": the hash is dropped), image | input_image (a bare base64 PNG
 *   becomes a data: URI), weight, guidance_start, guidance_end, module
 *   ("none" and "canny" run; others are refused by name by the inference
 *   plugin), threshold_a, threshold_b (canny's thresholds)}]. Entries with
 *   enabled false are skipped. control_mode, resize_mode, pixel_perfect and
 *   processor_res have no diffusers counterpart and are not mapped.
 *
 * A request that already has "controlnet" is left alone. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

static cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static const cJSON *first(const cJSON *o, const char *const *keys) {
    for (int i = 0; keys[i]; i++) {
        const cJSON *v = get(o, keys[i]);
        if (v && !cJSON_IsNull(v)) return v;
    }
    return NULL;
}

static void copy_number(const cJSON *src, const char *const *keys, cJSON *dst, const char *key) {
    const cJSON *v = first(src, keys);
    if (cJSON_IsNumber(v)) cJSON_AddNumberToObject(dst, key, v->valuedouble);
}

/* A bare base64 payload (A1111 sends images without the data: prefix). */
static int bare_base64(const char *s) {
    size_t n = strlen(s);
    if (n < 64 || strncmp(s, "data:", 5) == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == '+' || s[i] == '/' || s[i] == '=' || (s[i] >= '0' && s[i] <= '9') ||
              (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '\n' || s[i] == '\r'))
            return 0;
    return 1;
}

static void add_image(cJSON *e, const cJSON *img) {
    if (!cJSON_IsString(img)) return;
    if (!bare_base64(img->valuestring)) {
        cJSON_AddStringToObject(e, "image", img->valuestring);
        return;
    }
    char *uri = NULL;
    if (asprintf(&uri, "data:image/png;base64,%s", img->valuestring) >= 0) {
        cJSON_AddStringToObject(e, "image", uri);
        free(uri);
    }
}

static cJSON *from_csharp(const cJSON *it) {
    static const char *const model[] = {"Model", "ModelId", "Path", "Name", NULL};
    static const char *const scale[] = {"ConditioningScale", "Scale", "Weight", NULL};
    static const char *const start[] = {"GuidanceStart", "Start", NULL};
    static const char *const end[] = {"GuidanceEnd", "End", NULL};
    static const char *const pre[] = {"Preprocess", "Preprocessor", NULL};
    static const char *const img[] = {"Image", "ImagePath", NULL};
    static const char *const lo[] = {"LowThreshold", NULL}, *const hi[] = {"HighThreshold", NULL};
    cJSON *e = cJSON_CreateObject();
    const cJSON *m = first(it, model), *p = first(it, pre);
    if (cJSON_IsString(m)) cJSON_AddStringToObject(e, "model_id", m->valuestring);
    add_image(e, first(it, img));
    copy_number(it, scale, e, "conditioning_scale");
    copy_number(it, start, e, "guidance_start");
    copy_number(it, end, e, "guidance_end");
    if (cJSON_IsString(p)) cJSON_AddStringToObject(e, "preprocess", p->valuestring);
    copy_number(it, lo, e, "low_threshold");
    copy_number(it, hi, e, "high_threshold");
    return e;
}

static cJSON *from_a1111(const cJSON *it) {
    static const char *const img[] = {"image", "input_image", NULL};
    static const char *const w[] = {"weight", NULL}, *const s[] = {"guidance_start", NULL};
    static const char *const en[] = {"guidance_end", NULL};
    static const char *const ta[] = {"threshold_a", NULL}, *const tb[] = {"threshold_b", NULL};
    if (cJSON_IsFalse(get(it, "enabled"))) return NULL;
    cJSON *e = cJSON_CreateObject();
    const cJSON *m = get(it, "model"), *mod = get(it, "module");
    if (cJSON_IsString(m)) {
        char *name = strdup(m->valuestring);
        char *hash = name ? strstr(name, " [") : NULL;
        if (hash && name[strlen(name) - 1] == ']') *hash = 0;
        if (name) cJSON_AddStringToObject(e, "model_id", name);
        free(name);
    }
    add_image(e, first(it, img));
    copy_number(it, w, e, "conditioning_scale");
    copy_number(it, s, e, "guidance_start");
    copy_number(it, en, e, "guidance_end");
    if (cJSON_IsString(mod)) cJSON_AddStringToObject(e, "preprocess", mod->valuestring);
    if (cJSON_IsString(mod) && strcmp(mod->valuestring, "canny") == 0) {
        copy_number(it, ta, e, "low_threshold");
        copy_number(it, tb, e, "high_threshold");
    }
    return e;
}

void legacy_map_controlnet(cJSON *d) {
    if (!cJSON_IsObject(d) || get(d, "controlnet")) return;
    cJSON *list = NULL;
    const cJSON *cs = get(get(d, "Conditioning"), "ControlNet");
    const cJSON *a1111 = get(get(get(d, "alwayson_scripts"), "controlnet"), "args");
    if (cs && (cJSON_IsObject(cs) || cJSON_IsArray(cs))) {
        list = cJSON_CreateArray();
        if (cJSON_IsObject(cs)) cJSON_AddItemToArray(list, from_csharp(cs));
        const cJSON *it;
        if (cJSON_IsArray(cs)) cJSON_ArrayForEach(it, cs) cJSON_AddItemToArray(list, from_csharp(it));
        const cJSON *gm = get(get(d, "Conditioning"), "GuessMode");
        if (cJSON_IsBool(gm) && !get(d, "guess_mode")) cJSON_AddBoolToObject(d, "guess_mode", cJSON_IsTrue(gm));
    } else if (cJSON_IsArray(a1111)) {
        list = cJSON_CreateArray();
        const cJSON *it;
        cJSON_ArrayForEach(it, a1111) {
            cJSON *e = from_a1111(it);
            if (e) cJSON_AddItemToArray(list, e);
        }
        if (cJSON_GetArraySize(list) == 0) {
            cJSON_Delete(list);
            list = NULL;
        }
    }
    if (list) cJSON_AddItemToObject(d, "controlnet", list);
}
