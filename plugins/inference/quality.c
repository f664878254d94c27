/* plugins/inference/quality.c - quality presets per model family. The
 * numbers follow common practice for each family (A1111/ComfyUI defaults
 * and SDXL's model card): SDXL wants fewer CFG and more steps than SD1. */
#define _GNU_SOURCE
#include "quality.h"

#include <stdlib.h>
#include <string.h>

typedef struct preset {
    const char *scheduler;
    int steps;
    double guidance;
} preset;

/* [family][fast, balanced, high]; family 0 = SD1/SD2, 1 = SDXL. */
static const preset PRESETS[2][3] = {
    {{"Euler a", 15, 7.0}, {"DPM++ 2M Karras", 25, 7.0}, {"DPM++ 2M Karras", 40, 7.5}},
    {{"Euler a", 20, 6.0}, {"DPM++ 2M Karras", 30, 6.5}, {"DPM++ 2M Karras", 50, 7.0}},
};

static int level(const char *name) {
    if (!name) return -1;
    if (strcmp(name, "fast") == 0) return 0;
    if (strcmp(name, "balanced") == 0) return 1;
    if (strcmp(name, "high") == 0) return 2;
    return -1;
}

int infer_quality_known(const char *name) { return level(name) >= 0; }

void infer_quality_apply(infer_request *r, const char *arch) {
    int l = level(r->quality);
    if (l < 0) return;
    const preset *p = &PRESETS[arch && strncmp(arch, "sdxl", 4) == 0][l];
    if (!r->scheduler) r->scheduler = strdup(p->scheduler);
    if (!r->steps_given) r->steps = p->steps;
    if (r->guidance_scale < 0) r->guidance_scale = p->guidance;
}
