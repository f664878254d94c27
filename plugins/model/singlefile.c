/* plugins/model/singlefile.c - A1111/ComfyUI single-file checkpoints.
 *
 * Every stored tensor is mapped to its diffusers component and name
 * (ckpt_map.c) and exposed as a view: reshapes and transposes only change
 * shape and strides, fused q/k/v split by offsetting the data pointer. The
 * component configs are derived from the shapes (ckpt_config.c). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controlnet_file.h"
#include "ckpt_map.h"
#include "store.h"

/* Applies the mapping's view transform; -1 when the shape does not fit
 * (a quantized tensor keeps its inner dim contiguous: no transpose, rows
 * split only on whole blocks). */
int singlefile_apply_op(sdrt_tensor *t, const ckpt_target *tg) {
    int quant = sdrt_dtype_is_quantized(t->dtype);
    switch (tg->op) {
    case OP_SAME:
        return 0;
    case OP_SQUEEZE:
        if (t->ndim == 2) return 0;
        if (t->ndim != 4 || t->shape[2] != 1 || t->shape[3] != 1) return -1;
        t->ndim = 2;
        t->shape[2] = t->shape[3] = 1;
        t->strides[2] = t->strides[3] = 0;
        return 0;
    case OP_TRANSPOSE: {
        if (t->ndim != 2 || quant) return -1;
        int64_t s0 = t->shape[0], st0 = t->strides[0];
        t->shape[0] = t->shape[1];
        t->shape[1] = s0;
        t->strides[0] = t->strides[1];
        t->strides[1] = st0;
        return 0;
    }
    case OP_ROWS3:
        if (t->ndim < 1 || t->shape[0] % 3 != 0) return -1;
        t->shape[0] /= 3;
        uint64_t skip = sdrt_dtype_bytes(t->dtype, (int64_t)tg->part * t->shape[0] * t->strides[0]);
        if (!skip && tg->part) return -1;
        t->data = (char *)t->data + skip;
        return 0;
    }
    return -1;
}

static sdrt_status add_mapped(struct sdrt_model *m, const st_file *f, const st_tensor *s, const ckpt_target *tg,
                              char *err, size_t errlen) {
    sdrt_tensor t;
    if (store_view(f, s, &t, err, errlen) != 0) return SDRT_UNSUPPORTED;
    if (singlefile_apply_op(&t, tg) != 0) {
        snprintf(err, errlen, "%s: tensor '%s' has a shape that cannot be viewed as diffusers '%s'", f->path, s->name,
                 tg->name);
        return SDRT_INVALID_ARGUMENT;
    }
    store_component *c = store_component_add(m, ckpt_comp_name(tg->comp));
    if (!c || store_add(c, tg->name, &t) != 0) {
        snprintf(err, errlen, "out of memory");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    return SDRT_OK;
}

static sdrt_status map_all(struct sdrt_model *m, const st_file *f, const ckpt_layout *L, char *err, size_t errlen) {
    for (size_t i = 0; i < f->n_tensors; i++) {
        const st_tensor *s = &f->tensors[i];
        ckpt_target tg[3];
        int n = ckpt_map_name(L, s->name, tg);
        if (n < 0) {
            m->n_unmapped++;
            continue;
        }
        for (int k = 0; k < n; k++) {
            sdrt_status st = add_mapped(m, f, s, &tg[k], err, errlen);
            if (st != SDRT_OK) return st;
        }
        if (n > 0) {
            int dt = st_to_sdrt_dtype(s->dtype);
            if (dt >= 0) m->bytes_by_dtype[dt] += st_tensor_bytes(s);
            m->n_tensors += (size_t)n;
        }
    }
    return SDRT_OK;
}

/* Duplicate targets mean the mapping or the file is inconsistent. */
sdrt_status singlefile_check_unique(struct sdrt_model *m, const char *path, char *err, size_t errlen) {
    for (int i = 0; i < m->n_comps; i++) {
        store_component *c = &m->comps[i];
        store_sort(c);
        for (size_t k = 1; k < c->n; k++)
            if (strcmp(c->entries[k - 1].name, c->entries[k].name) == 0) {
                snprintf(err, errlen, "%s: two tensors map to %s '%s'", path, c->name, c->entries[k].name);
                return SDRT_INVALID_ARGUMENT;
            }
    }
    return SDRT_OK;
}

sdrt_status singlefile_attach_configs(struct sdrt_model *m, char *err, size_t errlen) {
    for (int i = 0; i < m->n_comps; i++) {
        store_component *c = &m->comps[i];
        if (strcmp(c->name, "unet") == 0) c->config_json = ckpt_config_unet(m);
        else if (strcmp(c->name, "vae") == 0) c->config_json = ckpt_config_vae(m);
        else c->config_json = ckpt_config_text(m, c->name);
        if (!c->config_json) {
            snprintf(err, errlen, "%s: cannot derive the %s config from its tensors", m->id, c->name);
            return SDRT_INVALID_ARGUMENT;
        }
    }
    store_component *sch = store_component_add(m, "scheduler");
    if (!sch || !(sch->config_json = ckpt_config_scheduler(m))) {
        snprintf(err, errlen, "out of memory");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    return SDRT_OK;
}

sdrt_status singlefile_load(struct sdrt_model *m, const char *path, char *err, size_t errlen) {
    st_file *f;
    sdrt_status ost = st_open_scoped(path, "model_id", &m->scope, &f, err, errlen);
    if (ost != SDRT_OK) return ost;
    m->files = malloc(sizeof *m->files);
    if (!m->files) {
        st_close(f);
        snprintf(err, errlen, "out of memory");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    m->files[m->n_files++] = f;
    m->bytes = f->map_len;
    m->source = "single_file";
    int cn_kind = controlnet_file_sniff(f);
    if (cn_kind) return controlnet_file_load(m, f, cn_kind, err, errlen);
    const char **names = malloc((f->n_tensors ? f->n_tensors : 1) * sizeof *names);
    if (!names) return SDRT_RESOURCE_EXHAUSTED;
    for (size_t i = 0; i < f->n_tensors; i++) names[i] = f->tensors[i].name;
    ckpt_arch arch = ckpt_detect(names, f->n_tensors);
    ckpt_layout *L = malloc(sizeof *L);
    if (L) ckpt_layout_build(L, arch, names, f->n_tensors);
    free(names);
    if (!L) return SDRT_RESOURCE_EXHAUSTED;
    sdrt_status st = SDRT_OK;
    if (arch == CKPT_UNKNOWN) {
        snprintf(err, errlen, "%s: not a recognised SD1/SD2/SDXL checkpoint (no model.diffusion_model.* with a known text encoder)", path);
        st = SDRT_INVALID_ARGUMENT;
    }
    m->arch = ckpt_arch_name(arch);
    if (st == SDRT_OK) st = map_all(m, f, L, err, errlen);
    free(L);
    if (st == SDRT_OK) st = singlefile_check_unique(m, path, err, errlen);
    if (st == SDRT_OK) st = singlefile_attach_configs(m, err, errlen);
    return st;
}
