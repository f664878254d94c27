/* plugins/lora/match.c - LoRA modules onto a model's tensors. */
#include "match.h"

#include <stdio.h>
#include <string.h>

void lora_model_ref_init(lora_model_ref *r, const sdrt_model_iface *mi, sdrt_model *m) {
    r->mi = mi;
    r->m = m;
    lora_unet_layout_from_config(mi->config_json(m, "unet"), &r->layout);
}

int lora_match_module(const lora_model_ref *r, const lora_module *m, lora_match *out) {
    char path[LORA_PATH_MAX + 8];
    out->component = m->key.component;
    out->base = NULL;
    snprintf(out->name, sizeof out->name, "%s.weight", m->key.path);
    if (m->key.sgm) {
        if (lora_sgm_to_diffusers(m->key.path, &r->layout, path, sizeof path) != 0) return -1;
        snprintf(out->name, sizeof out->name, "%s.weight", path);
    }
    out->base = r->mi->tensor(r->m, LORA_COMPONENTS[out->component], out->name);
    return out->base ? 0 : -1;
}

/* "sdxl-refiner" is its own family: one OpenCLIP encoder, other widths. */
static const char *family(const char *arch) {
    if (!arch) return "unknown";
    if (!strcmp(arch, "sdxl-refiner")) return arch;
    if (!strncmp(arch, "sdxl", 4)) return "sdxl";
    return arch;
}

sdrt_status lora_check_arch(const lora_file *f, const char *model_arch, const char *model_id, char *err,
                            size_t errlen) {
    const char *fam = family(model_arch);
    if (!strcmp(f->arch, "unknown") || !strcmp(fam, "unknown") || !strcmp(f->arch, fam)) return SDRT_OK;
    snprintf(err, errlen, "lora '%s': made for %s (%s%s%s) but model '%s' is %s", f->path, f->arch,
             f->arch_reason && strncmp(f->arch_reason, "metadata", 8) ? "key '" : "",
             f->arch_reason ? f->arch_reason : "?", f->arch_reason && strncmp(f->arch_reason, "metadata", 8) ? "'" : "",
             model_id, fam);
    return SDRT_INVALID_ARGUMENT;
}
