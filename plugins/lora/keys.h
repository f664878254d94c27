/* plugins/lora/keys.h - LoRA tensor names: what module a key patches and
 * which part of the adapter it holds.
 *
 * Pure string functions (no files, no model), so the fuzzer drives them
 * directly. Understood forms:
 *  - kohya / A1111 / LyCORIS: "lora_unet_<flat>", "lora_te_<flat>",
 *    "lora_te1_<flat>", "lora_te2_<flat>" + ".lora_down.weight",
 *    ".lora_up.weight", ".alpha", ".hada_w1_a", ".lokr_w1", ".diff", ...
 *    where <flat> is a module path with '.' turned into '_', in diffusers
 *    naming (SD1 kohya) or in SGM/LDM naming (SDXL kohya: input_blocks_4_1_..);
 *  - diffusers / PEFT: "unet.<path>.lora_A.weight", ".lora_B.weight",
 *    ".lora.down.weight", ".lora.up.weight", ".lora_linear_layer.down.weight",
 *    the attention-processor form "<attn>.processor.to_q_lora.down.weight",
 *    with component prefixes "unet.", "text_encoder.", "text_encoder_2."
 *    (also PEFT's "base_model.model." and un-prefixed UNet paths). */
#ifndef SDRT_LORA_KEYS_H
#define SDRT_LORA_KEYS_H

#include <stddef.h>

#define LORA_PATH_MAX 256

/* The part of an adapter a tensor holds. */
typedef enum lora_part {
    PART_NONE = 0,
    PART_DOWN, PART_UP, PART_MID, PART_ALPHA,        /* LoRA / LoCon (MID: Tucker core) */
    PART_HADA_W1_A, PART_HADA_W1_B, PART_HADA_W2_A, PART_HADA_W2_B, PART_HADA_T1, PART_HADA_T2,
    PART_LOKR_W1, PART_LOKR_W1_A, PART_LOKR_W1_B, PART_LOKR_W2, PART_LOKR_W2_A, PART_LOKR_W2_B,
    PART_LOKR_T2,
    PART_DIFF,                                       /* full weight difference */
    PART_DIFF_B,                                     /* bias difference */
    PART_DORA_SCALE,                                 /* DoRA magnitude (unsupported) */
    PART_COUNT_
} lora_part;

/* Which spelling the key used (for lora.inspect's "format"). */
typedef enum lora_style { STYLE_KOHYA = 0, STYLE_DIFFUSERS, STYLE_PEFT } lora_style;

typedef struct lora_key {
    int component;              /* 0 unet, 1 text_encoder, 2 text_encoder_2 */
    lora_part part;
    lora_style style;
    int sgm;                    /* path is in SGM/LDM UNet naming */
    size_t base_len;            /* the key's module prefix: key[0..base_len) */
    char path[LORA_PATH_MAX];   /* dotted module path, no ".weight" */
} lora_key;

/* Component names, indexed by lora_key.component. */
extern const char *const LORA_COMPONENTS[3];

/* Parses one tensor name. Returns 0, or -1 when the name is not a LoRA key
 * (then *out is zeroed). Never reads past the terminating NUL. */
int lora_key_parse(const char *key, lora_key *out);

/* The UNet block layout needed to read SGM names, from the UNet config. */
#define LORA_MAX_LEVELS 8
typedef struct lora_unet_layout {
    int layers_per_block;          /* diffusers layers_per_block (>= 1) */
    int n_levels;                  /* len(up_block_types) */
    int up_attn[LORA_MAX_LEVELS];  /* up level i has attentions */
    int down_attn[LORA_MAX_LEVELS];
} lora_unet_layout;

/* Reads layers_per_block, down_ and up_block_types from a UNet config.json text.
 * Returns 0, or -1 (then *L is SD's default: 2 per block, 4 levels). */
int lora_unet_layout_from_config(const char *config_json, lora_unet_layout *L);

/* Turns an SGM/LDM UNet module path ("input_blocks.4.1.proj_in") into the
 * diffusers one ("down_blocks.1.attentions.0.proj_in"). 0, or -1 when the
 * path does not exist in that layout. */
int lora_sgm_to_diffusers(const char *sgm, const lora_unet_layout *L, char *out, size_t outlen);

/* "down", "hada_w1_a", ...: the part's spelling in kohya files. */
const char *lora_part_name(lora_part p);

#endif
