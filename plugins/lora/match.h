/* plugins/lora/match.h - LoRA modules onto a model's tensors. */
#ifndef SDRT_LORA_MATCH_H
#define SDRT_LORA_MATCH_H

#include "lora_file.h"
#include "sdrt/model.h"

typedef struct lora_match {
    int component;
    char name[LORA_PATH_MAX + 16];   /* diffusers tensor name, "<path>.weight" */
    const sdrt_tensor *base;         /* NULL: matched nothing */
} lora_match;

/* The model side of matching: its tensors and UNet layout (for SGM names). */
typedef struct lora_model_ref {
    const sdrt_model_iface *mi;
    sdrt_model *m;
    lora_unet_layout layout;
} lora_model_ref;

void lora_model_ref_init(lora_model_ref *r, const sdrt_model_iface *mi, sdrt_model *m);

/* Fills *out for module m. Returns 0 when a tensor of the model matched,
 * -1 otherwise (out->name then says what was looked for). */
int lora_match_module(const lora_model_ref *r, const lora_module *m, lora_match *out);

/* The model's family ("sd1", "sd2", "sdxl", "sdxl-refiner"). INVALID_ARGUMENT
 * with err naming the file, the key (or metadata) that tells and both
 * architectures when f was made for another one. */
sdrt_status lora_check_arch(const lora_file *f, const char *model_arch, const char *model_id, char *err,
                            size_t errlen);

#endif
