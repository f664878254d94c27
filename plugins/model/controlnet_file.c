/* plugins/model/controlnet_file.c - single-file ControlNets (.safetensors),
 * as A1111 and ComfyUI users have them, loaded as one "controlnet"
 * component with a config.json derived from the tensor shapes:
 *
 * - the original layout (lllyasviel's cldm: control_model.input_blocks /
 *   middle_block / time_embed / label_emb named as the original UNet, mapped
 *   by the single-file UNet mapping; input_hint_block.{0,2,...} convs to
 *   controlnet_cond_embedding.conv_in, blocks.k, conv_out;
 *   zero_convs.N.0 to controlnet_down_blocks.N; middle_block_out.0 to
 *   controlnet_mid_block);
 * - diffusers-named single files (controlnet_cond_embedding.*,
 *   down_blocks.*, ...: the names are kept).
 *
 * Family: SDXL when add_embedding / label_emb is present, else SD2 for a
 * cross-attention width of 1024, else SD1 (arch "controlnet-sdxl" or
 * "controlnet-sd1"; SD2 ControlNets report "controlnet-sd1" with their own
 * config, since the inference plugin only checks the blocks). */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_map.h"
#include "controlnet_file.h"
#include "store.h"

#define ORIG "control_model."

int controlnet_file_sniff(const st_file *f) {
    if (st_find(f, "controlnet_cond_embedding.conv_in.weight")) return 2;
    for (size_t i = 0; i < f->n_tensors; i++)
        if (strncmp(f->tensors[i].name, ORIG "input_hint_block.", strlen(ORIG "input_hint_block.")) == 0) return 1;
    return 0;
}

static sdrt_status add(struct sdrt_model *m, const st_file *f, const st_tensor *s, const char *name, char *err,
                       size_t errlen) {
    sdrt_tensor t;
    if (store_view(f, s, &t, err, errlen) != 0) return SDRT_UNSUPPORTED;
    store_component *c = store_component_add(m, "controlnet");
    if (!c || store_add(c, name, &t) != 0) {
        snprintf(err, errlen, "out of memory");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    int dt = st_to_sdrt_dtype(s->dtype);
    if (dt >= 0) m->bytes_by_dtype[dt] += st_tensor_bytes(s);
    m->n_tensors++;
    return SDRT_OK;
}

/* The hint block's convs in index order: conv_in, blocks.0.., conv_out. */
static int hint_convs(const st_file *f, int *idx) {
    int n = 0;
    for (int k = 0; k < 64 && n < 32; k++) {
        char name[96];
        snprintf(name, sizeof name, ORIG "input_hint_block.%d.weight", k);
        if (st_find(f, name)) idx[n++] = k;
    }
    return n;
}

static sdrt_status map_original(struct sdrt_model *m, const st_file *f, ckpt_arch arch, char *err, size_t errlen) {
    /* The UNet part goes through the UNet mapping under its usual prefix. */
    size_t n = f->n_tensors;
    char **unet_names = calloc(n ? n : 1, sizeof *unet_names);
    if (!unet_names) return SDRT_RESOURCE_EXHAUSTED;
    size_t nu = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(f->tensors[i].name, ORIG, strlen(ORIG)) == 0 &&
            asprintf(&unet_names[nu], "model.diffusion_model.%s", f->tensors[i].name + strlen(ORIG)) > 0)
            nu++;
    ckpt_layout *L = malloc(sizeof *L);
    if (L) ckpt_layout_build(L, arch, (const char *const *)unet_names, nu);
    int hint[32], nh = hint_convs(f, hint);
    sdrt_status st = L ? SDRT_OK : SDRT_RESOURCE_EXHAUSTED;
    if (st == SDRT_OK && nh < 2) {
        snprintf(err, errlen, "%s: control_model.input_hint_block has fewer than two convs", f->path);
        st = SDRT_INVALID_ARGUMENT;
    }
    for (size_t i = 0; st == SDRT_OK && i < n; i++) {
        const st_tensor *s = &f->tensors[i];
        const char *r = strncmp(s->name, ORIG, strlen(ORIG)) == 0 ? s->name + strlen(ORIG) : NULL;
        char name[CKPT_NAME_MAX + 32];
        int k, j;
        char kind[16];
        if (!r) {
            m->n_unmapped++;
        } else if (sscanf(r, "input_hint_block.%d.%15s", &k, kind) == 2) {
            for (j = 0; j < nh && hint[j] != k; j++) {}
            if (j == 0) snprintf(name, sizeof name, "controlnet_cond_embedding.conv_in.%s", kind);
            else if (j == nh - 1) snprintf(name, sizeof name, "controlnet_cond_embedding.conv_out.%s", kind);
            else snprintf(name, sizeof name, "controlnet_cond_embedding.blocks.%d.%s", j - 1, kind);
            st = add(m, f, s, name, err, errlen);
        } else if (sscanf(r, "zero_convs.%d.0.%15s", &k, kind) == 2) {
            snprintf(name, sizeof name, "controlnet_down_blocks.%d.%s", k, kind);
            st = add(m, f, s, name, err, errlen);
        } else if (sscanf(r, "middle_block_out.0.%15s", kind) == 1) {
            snprintf(name, sizeof name, "controlnet_mid_block.%s", kind);
            st = add(m, f, s, name, err, errlen);
        } else {
            char src[CKPT_NAME_MAX + 32];
            ckpt_target tg[3];
            snprintf(src, sizeof src, "model.diffusion_model.%s", r);
            int nt = ckpt_map_name(L, src, tg);
            if (nt == 1 && tg[0].comp == COMP_UNET && tg[0].op == OP_SAME) st = add(m, f, s, tg[0].name, err, errlen);
            else m->n_unmapped++;
        }
    }
    for (size_t i = 0; i < nu; i++) free(unet_names[i]);
    free(unet_names);
    free(L);
    return st;
}

/* The UNet config of the encoder half (ckpt_config_unet reads the "unet"
 * component under the base family's arch name), made a ControlNetModel
 * config with the conditioning embedding's channels. */
static sdrt_status attach_config(struct sdrt_model *m, const char *family, char *err, size_t errlen) {
    store_component *c = store_component_get(m, "controlnet");
    if (!c) {
        snprintf(err, errlen, "%s: no ControlNet tensors", m->id);
        return SDRT_INVALID_ARGUMENT;
    }
    char *saved = c->name;
    c->name = "unet";
    m->arch = family;
    store_sort(c);
    char *text = ckpt_config_unet(m);
    c->name = saved;
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    free(text);
    const sdrt_tensor *cin = store_tensor(m, "controlnet", "controlnet_cond_embedding.conv_in.weight");
    if (!o || !cin) {
        cJSON_Delete(o);
        snprintf(err, errlen, "%s: cannot derive the ControlNet config from its tensors", m->id);
        return SDRT_INVALID_ARGUMENT;
    }
    cJSON_ReplaceItemInObject(o, "_class_name", cJSON_CreateString("ControlNetModel"));
    cJSON_DeleteItemFromObject(o, "up_block_types");
    cJSON_DeleteItemFromObject(o, "out_channels");
    cJSON_AddNumberToObject(o, "conditioning_channels", (double)cin->shape[1]);
    cJSON_AddStringToObject(o, "controlnet_conditioning_channel_order", "rgb");
    cJSON *emb = cJSON_AddArrayToObject(o, "conditioning_embedding_out_channels");
    cJSON_AddItemToArray(emb, cJSON_CreateNumber((double)cin->shape[0]));
    for (int k = 1; k < 32; k += 2) {
        char name[96];
        snprintf(name, sizeof name, "controlnet_cond_embedding.blocks.%d.weight", k);
        const sdrt_tensor *b = store_tensor(m, "controlnet", name);
        if (!b) break;
        cJSON_AddItemToArray(emb, cJSON_CreateNumber((double)b->shape[0]));
    }
    c->config_json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return c->config_json ? SDRT_OK : SDRT_RESOURCE_EXHAUSTED;
}

sdrt_status controlnet_file_load(struct sdrt_model *m, st_file *f, int kind, char *err, size_t errlen) {
    int xl = st_find(f, kind == 1 ? ORIG "label_emb.0.0.weight" : "add_embedding.linear_1.weight") != NULL;
    const st_tensor *k = NULL;
    for (size_t i = 0; !k && i < f->n_tensors; i++)
        if (strstr(f->tensors[i].name, "attn2.to_k.weight")) k = &f->tensors[i];
    int sd2 = !xl && k && k->ndim == 2 && k->shape[1] == 1024;
    ckpt_arch arch = xl ? CKPT_SDXL : sd2 ? CKPT_SD2 : CKPT_SD1;
    sdrt_status st = SDRT_OK;
    if (kind == 1) {
        st = map_original(m, f, arch, err, errlen);
    } else {
        for (size_t i = 0; st == SDRT_OK && i < f->n_tensors; i++) st = add(m, f, &f->tensors[i], f->tensors[i].name, err, errlen);
    }
    if (st == SDRT_OK) st = attach_config(m, ckpt_arch_name(arch), err, errlen);
    m->arch = xl ? "controlnet-sdxl" : "controlnet-sd1";
    return st;
}
