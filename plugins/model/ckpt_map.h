/* plugins/model/ckpt_map.h - single-file (A1111/ComfyUI, "original layout")
 * checkpoints: architecture detection and tensor name mapping to diffusers
 * components and names.
 *
 * Works on names and shapes only, so it serves real files and key lists
 * alike. A source tensor maps to zero (known unused), one, or three (fused
 * OpenCLIP q/k/v) diffusers tensors, each with a view transform. */
#ifndef SDRT_MODEL_CKPT_MAP_H
#define SDRT_MODEL_CKPT_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef enum ckpt_arch { CKPT_UNKNOWN, CKPT_SD1, CKPT_SD2, CKPT_SDXL, CKPT_SDXL_REFINER } ckpt_arch;

typedef enum ckpt_comp { COMP_UNET, COMP_VAE, COMP_TEXT, COMP_TEXT2, COMP_COUNT } ckpt_comp;

/* How the diffusers tensor is viewed from the stored one. */
typedef enum ckpt_op {
    OP_SAME,      /* same shape */
    OP_SQUEEZE,   /* [o,i,1,1] conv -> [o,i] linear (VAE mid attention) */
    OP_TRANSPOSE, /* 2-D transpose (OpenCLIP text_projection) */
    OP_ROWS3      /* third `part` of the rows of a fused [3d, ...] tensor */
} ckpt_op;

#define CKPT_NAME_MAX 160
#define CKPT_MAX_BLOCKS 64

typedef struct ckpt_target {
    ckpt_comp comp;
    ckpt_op op;
    int part; /* OP_ROWS3: 0 = q, 1 = k, 2 = v */
    char name[CKPT_NAME_MAX];
} ckpt_target;

/* The UNet/VAE block structure of one checkpoint, read off its key names
 * (so any depth works, not only the full-size models). */
typedef struct ckpt_layout {
    ckpt_arch arch;
    int in_level[CKPT_MAX_BLOCKS], in_layer[CKPT_MAX_BLOCKS], in_down[CKPT_MAX_BLOCKS];
    int out_level[CKPT_MAX_BLOCKS], out_layer[CKPT_MAX_BLOCKS];
    int vae_up_levels;
    int text_layers; /* OpenCLIP resblocks in the SD2 encoder (last is dropped) */
} ckpt_layout;

const char *ckpt_arch_name(ckpt_arch a);
const char *ckpt_comp_name(ckpt_comp c);

/* Detects the architecture and the block layout from the key names. */
ckpt_arch ckpt_detect(const char *const *names, size_t n);
void ckpt_layout_build(ckpt_layout *L, ckpt_arch arch, const char *const *names, size_t n);

/* Maps one source name. Returns the number of targets written (1 or 3), 0
 * for a known unused tensor (EMA copies, schedule buffers, position_ids,
 * logit_scale), or -1 when the name is not understood. */
int ckpt_map_name(const ckpt_layout *L, const char *src, ckpt_target out[3]);

#endif
