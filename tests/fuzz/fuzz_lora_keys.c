/* tests/fuzz/fuzz_lora_keys.c - libFuzzer target for the LoRA key parser
 * (plugins/lora/keys.c). Every line of the input is parsed as a tensor
 * name; accepted names must give a non-empty NUL-terminated path inside
 * the key, a known part and component, and SGM paths are also mapped onto
 * the SD1 and SDXL UNet layouts (the result, if any, must fit its buffer). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"

static void check_key(const char *key) {
    lora_key k;
    if (lora_key_parse(key, &k) != 0) return;
    size_t n = strnlen(k.path, sizeof k.path);
    if (n == 0 || n >= sizeof k.path || k.base_len > strlen(key) || k.component < 0 || k.component > 2 ||
        k.part <= PART_NONE || k.part >= PART_COUNT_)
        abort();
    if (!k.sgm) return;
    static const char *const CONFIGS[] = {
        "{\"layers_per_block\":2,\"down_block_types\":[\"CrossAttnDownBlock2D\",\"CrossAttnDownBlock2D\","
        "\"CrossAttnDownBlock2D\",\"DownBlock2D\"],\"up_block_types\":[\"UpBlock2D\",\"CrossAttnUpBlock2D\","
        "\"CrossAttnUpBlock2D\",\"CrossAttnUpBlock2D\"]}",
        "{\"layers_per_block\":2,\"down_block_types\":[\"DownBlock2D\",\"CrossAttnDownBlock2D\","
        "\"CrossAttnDownBlock2D\"],\"up_block_types\":[\"CrossAttnUpBlock2D\",\"CrossAttnUpBlock2D\",\"UpBlock2D\"]}",
    };
    for (int i = 0; i < 2; i++) {
        lora_unet_layout L;
        if (lora_unet_layout_from_config(CONFIGS[i], &L) != 0) abort();
        char out[LORA_PATH_MAX];
        if (lora_sgm_to_diffusers(k.path, &L, out, sizeof out) == 0 && strnlen(out, sizeof out) >= sizeof out)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    for (char *line = buf, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        check_key(line);
    }
    free(buf);
    return 0;
}
