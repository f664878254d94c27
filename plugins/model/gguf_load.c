/* plugins/model/gguf_load.c - a GGUF file as a model: its tensors become
 * views into the mapping under their diffusers names, as single-file
 * safetensors do (singlefile.c), quantized ones keeping their block dtype.
 *
 * Three naming schemes occur in the wild:
 *  - stable-diffusion.cpp files: the original checkpoint's names
 *    (model.diffusion_model.*, first_stage_model.*, cond_stage_model.* /
 *    conditioner.*), mapped by ckpt_map.c like a .safetensors checkpoint;
 *  - ComfyUI-GGUF UNet files: the UNet's ldm names without the
 *    "model.diffusion_model." prefix (it is added back);
 *  - UNet files in diffusers names (down_blocks.*): taken as they are.
 * A UNet-only file loads only the "unet" component; its architecture is
 * read from the UNet (label_emb / add_embedding means SDXL). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_map.h"
#include "gguf.h"
#include "store.h"
#include "sdrt/quant.h"

#define UNET_LDM "model.diffusion_model."

typedef enum naming { NAMING_CKPT, NAMING_UNET_LDM, NAMING_UNET_DIFFUSERS, NAMING_UNKNOWN } naming;

static int has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static int any(const gguf_file *f, const char *const *prefixes) {
    for (size_t i = 0; i < f->n_tensors; i++)
        for (int k = 0; prefixes[k]; k++)
            if (has_prefix(f->tensors[i].name, prefixes[k])) return 1;
    return 0;
}

static naming detect_naming(const gguf_file *f) {
    static const char *const ckpt[] = {UNET_LDM, "first_stage_model.", "cond_stage_model.", "conditioner.", NULL};
    static const char *const ldm[] = {"input_blocks.", "middle_block.", "output_blocks.", "time_embed.", NULL};
    static const char *const diffusers[] = {"down_blocks.", "mid_block.", "up_blocks.", "time_embedding.", NULL};
    if (any(f, ckpt)) return NAMING_CKPT;
    if (any(f, ldm)) return NAMING_UNET_LDM;
    if (any(f, diffusers)) return NAMING_UNET_DIFFUSERS;
    return NAMING_UNKNOWN;
}

/* The tensor as a contiguous sdrt view (strides in elements). */
static int gguf_view(const gguf_file *f, const gguf_tensor *g, sdrt_tensor *t, char *err, size_t errlen) {
    if (g->dtype < 0) {
        snprintf(err, errlen, "%s: tensor '%s' has ggml type %s, which sdrt does not compute with (use f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0 or q2_K..q6_K)",
                 f->path, g->name, gguf_type_name(g->ggml_type));
        return -1;
    }
    memset(t, 0, sizeof *t);
    t->struct_size = sizeof *t;
    t->dtype = (sdrt_dtype)g->dtype;
    t->ndim = g->ndim;
    for (int d = 0; d < SDRT_MAX_DIMS; d++) t->shape[d] = 1;
    int64_t s = 1;
    for (int d = g->ndim - 1; d >= 0; d--) {
        t->shape[d] = g->shape[d];
        t->strides[d] = s;
        s *= g->shape[d];
    }
    t->data = (void *)g->data;
    return 0;
}

static sdrt_status add_one(struct sdrt_model *m, const gguf_file *f, const gguf_tensor *g, const ckpt_target *tg,
                           char *err, size_t errlen) {
    sdrt_tensor t;
    if (gguf_view(f, g, &t, err, errlen) != 0) return SDRT_UNSUPPORTED;
    int quant = sdrt_dtype_is_quantized(t.dtype);
    sdrt_tensor whole = t;
    if (tg->op != OP_SAME && singlefile_apply_op(&t, tg) != 0) {
        /* A quantized tensor that must be transposed: dequantise it first. */
        t = whole;
        if (!quant || store_dequantise(m, &t) != 0 || singlefile_apply_op(&t, tg) != 0) {
            snprintf(err, errlen, "%s: tensor '%s' (%s) cannot be viewed as diffusers '%s'", f->path, g->name,
                     store_dtype_name(whole.dtype), tg->name);
            return SDRT_INVALID_ARGUMENT;
        }
    }
    /* Only GEMM weights stay quantized: tables, norms and biases are read
     * by the host or by ops that take plain dtypes. */
    if (sdrt_dtype_is_quantized(t.dtype) && !store_is_gemm_weight(tg->name, &t) && store_dequantise(m, &t) != 0) {
        snprintf(err, errlen, "out of memory");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    store_component *c = store_component_add(m, ckpt_comp_name(tg->comp));
    if (!c || store_add(c, tg->name, &t) != 0) {
        snprintf(err, errlen, "out of memory");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    return SDRT_OK;
}

static sdrt_status map_tensors(struct sdrt_model *m, const gguf_file *f, naming nm, const ckpt_layout *L, char *err,
                               size_t errlen) {
    char name[CKPT_NAME_MAX + 32];
    for (size_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *g = &f->tensors[i];
        ckpt_target tg[3];
        int n;
        if (nm == NAMING_UNET_DIFFUSERS) {
            if (strlen(g->name) >= CKPT_NAME_MAX) {
                m->n_unmapped++;
                continue;
            }
            tg[0] = (ckpt_target){.comp = COMP_UNET, .op = OP_SAME};
            snprintf(tg[0].name, sizeof tg[0].name, "%s", g->name);
            n = 1;
        } else {
            const char *src = g->name;
            if (nm == NAMING_UNET_LDM) {
                snprintf(name, sizeof name, UNET_LDM "%s", g->name);
                src = name;
            }
            n = ckpt_map_name(L, src, tg);
        }
        if (n < 0) {
            m->n_unmapped++;
            continue;
        }
        for (int k = 0; k < n; k++) {
            sdrt_status st = add_one(m, f, g, &tg[k], err, errlen);
            if (st != SDRT_OK) return st;
        }
        if (n > 0) {
            m->bytes_by_dtype[g->dtype] += g->bytes;
            m->n_tensors += (size_t)n;
        }
    }
    return SDRT_OK;
}

/* Key names for ckpt_detect/ckpt_layout_build, with the UNet prefix put
 * back for ComfyUI-GGUF files (malloc'd array; names in `store`). */
static const char **source_names(const gguf_file *f, naming nm, char **store) {
    const char **names = malloc((f->n_tensors ? f->n_tensors : 1) * sizeof *names);
    if (!names) return NULL;
    for (size_t i = 0; i < f->n_tensors; i++) {
        names[i] = f->tensors[i].name;
        if (nm == NAMING_UNET_LDM) {
            if (asprintf(&store[i], UNET_LDM "%s", f->tensors[i].name) < 0) store[i] = NULL;
            if (!store[i]) {
                free(names);
                return NULL;
            }
            names[i] = store[i];
        }
    }
    return names;
}

static ckpt_arch unet_only_arch(const gguf_file *f, naming nm) {
    static const char *const sdxl_ldm[] = {"label_emb.", UNET_LDM "label_emb.", NULL};
    static const char *const sdxl_diffusers[] = {"add_embedding.", NULL};
    return any(f, nm == NAMING_UNET_DIFFUSERS ? sdxl_diffusers : sdxl_ldm) ? CKPT_SDXL : CKPT_SD1;
}

sdrt_status gguf_load(struct sdrt_model *m, const char *path, char *err, size_t errlen) {
    gguf_file *f;
    if (gguf_open(path, &f, err, errlen) != 0) return SDRT_INVALID_ARGUMENT;
    m->gguf = f;
    m->bytes = f->map_len;
    m->source = "gguf";
    naming nm = detect_naming(f);
    if (nm == NAMING_UNKNOWN) {
        snprintf(err, errlen, "%s: no SD UNet, VAE or text encoder tensors (names neither ldm nor diffusers; general.architecture %s)",
                 path, f->arch ? f->arch : "absent");
        return SDRT_INVALID_ARGUMENT;
    }
    char **store = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *store);
    const char **names = store ? source_names(f, nm, store) : NULL;
    ckpt_layout *L = names ? malloc(sizeof *L) : NULL;
    sdrt_status st = L ? SDRT_OK : SDRT_RESOURCE_EXHAUSTED;
    if (st != SDRT_OK) snprintf(err, errlen, "out of memory");
    ckpt_arch arch = CKPT_UNKNOWN;
    if (st == SDRT_OK) {
        arch = nm == NAMING_CKPT ? ckpt_detect(names, f->n_tensors) : CKPT_UNKNOWN;
        /* A UNet without text encoders (ComfyUI-GGUF, or sd.cpp --type on
         * a UNet alone). */
        if (arch == CKPT_UNKNOWN && nm != NAMING_CKPT) arch = unet_only_arch(f, nm);
        if (arch == CKPT_UNKNOWN) {
            static const char *const unet[] = {UNET_LDM, NULL};
            if (any(f, unet)) arch = unet_only_arch(f, NAMING_CKPT);
        }
        if (arch == CKPT_UNKNOWN) {
            snprintf(err, errlen, "%s: not a recognised SD1/SD2/SDXL GGUF (no UNet tensors)", path);
            st = SDRT_INVALID_ARGUMENT;
        } else {
            ckpt_layout_build(L, arch, names, f->n_tensors);
        }
    }
    if (st == SDRT_OK) {
        m->arch = ckpt_arch_name(arch);
        st = map_tensors(m, f, nm, L, err, errlen);
    }
    for (size_t i = 0; store && i < f->n_tensors; i++) free(store[i]);
    free(store);
    free(names);
    free(L);
    if (st == SDRT_OK) st = singlefile_check_unique(m, path, err, errlen);
    if (st == SDRT_OK) st = singlefile_attach_configs(m, err, errlen);
    return st;
}
