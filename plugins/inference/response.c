/* plugins/inference/response.c - latent files and the response JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "response.h"
#include "sdrt/npy.h"

int infer_write_latents(const char *png_path, const float *latents, int c, int h, int w, char **out_path,
                        char *err, size_t errlen) {
    size_t len = strlen(png_path);
    size_t stem = len > 4 && strcmp(png_path + len - 4, ".png") == 0 ? len - 4 : len;
    char *path = malloc(stem + sizeof ".latents.npy");
    if (!path) {
        snprintf(err, errlen, "output.save_latents: out of memory");
        return -1;
    }
    memcpy(path, png_path, stem);
    memcpy(path + stem, ".latents.npy", sizeof ".latents.npy");
    int64_t shape[4] = {1, c, h, w};
    if (sdrt_npy_write_f32(path, latents, shape, 4, err, errlen) != 0) {
        free(path);
        return -1;
    }
    *out_path = path;
    return 0;
}

/* Seeds above 2^53 do not survive a JSON double: send those as strings
 * (the request accepts both forms). */
static void add_seed(cJSON *obj, uint64_t seed) {
    if (seed <= (1ull << 53)) {
        cJSON_AddNumberToObject(obj, "seed", (double)seed);
        return;
    }
    char text[24];
    snprintf(text, sizeof text, "%llu", (unsigned long long)seed);
    cJSON_AddStringToObject(obj, "seed", text);
}

static cJSON *image_info(const infer_output *o, uint64_t seed, int width, int height) {
    cJSON *info = cJSON_CreateObject();
    cJSON_AddStringToObject(info, "path", o->image_path);
    add_seed(info, seed);
    cJSON_AddNumberToObject(info, "width", width);
    cJSON_AddNumberToObject(info, "height", height);
    if (o->latents_path) cJSON_AddStringToObject(info, "latents", o->latents_path);
    if (o->safety_checked) cJSON_AddBoolToObject(info, "nsfw_content_detected", o->nsfw);
    return info;
}

static char *to_host_text(const sdrt_host_api *api, cJSON *root) {
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text) return NULL;
    size_t n = strlen(text) + 1;
    char *out = api->alloc(n);
    if (out) memcpy(out, text, n);
    cJSON_free(text);
    return out;
}

/* batch_split: the images of each UNet call, e.g. [2, 2, 1] for 5 by 2. */
static void add_split(cJSON *root, int n, int sub_batch) {
    cJSON *split = cJSON_AddArrayToObject(root, "batch_split");
    for (int i = 0; i < n; i += sub_batch) cJSON_AddItemToArray(split, cJSON_CreateNumber(n - i < sub_batch ? n - i : sub_batch));
}

char *infer_response_json(const sdrt_host_api *api, const infer_output *outs, int n, uint64_t seed, int width,
                          int height, double processing_time, int sub_batch, uint64_t weight_bytes_uploaded) {
    cJSON *root = cJSON_CreateObject();
    cJSON *images = cJSON_AddArrayToObject(root, "images");
    cJSON *infos = cJSON_AddArrayToObject(root, "images_info");
    cJSON *latents = NULL;
    for (int i = 0; i < n; i++) {
        cJSON_AddItemToArray(images, cJSON_CreateString(outs[i].image_path));
        cJSON_AddItemToArray(infos, image_info(&outs[i], seed, width, height));
        if (!outs[i].latents_path) continue;
        if (!latents) latents = cJSON_CreateArray();
        cJSON_AddItemToArray(latents, cJSON_CreateString(outs[i].latents_path));
    }
    cJSON_AddNumberToObject(root, "processing_time", processing_time);
    add_seed(root, seed);
    cJSON_AddNumberToObject(root, "width", width);
    cJSON_AddNumberToObject(root, "height", height);
    if (latents) cJSON_AddItemToObject(root, "latents", latents);
    if (n > 0 && outs[0].safety_checked) {
        cJSON *flags = cJSON_AddArrayToObject(root, "nsfw_content_detected");
        for (int i = 0; i < n; i++) cJSON_AddItemToArray(flags, cJSON_CreateBool(outs[i].nsfw));
    }
    if (sub_batch > 0 && sub_batch < n) add_split(root, n, sub_batch);
    cJSON *metrics = cJSON_AddObjectToObject(root, "metrics");
    cJSON_AddNumberToObject(metrics, "weight_bytes_uploaded", (double)weight_bytes_uploaded);
    return to_host_text(api, root);
}

void infer_outputs_free(infer_output *outs, int n) {
    if (!outs) return;
    for (int i = 0; i < n; i++) {
        free(outs[i].image_path);
        free(outs[i].latents_path);
    }
    free(outs);
}
