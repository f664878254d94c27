/* main.c - sdrt-mkdemo OUTDIR [--seed N] [--f32]
 *
 * Writes a tiny random-weight SDXL-architecture model in diffusers layout
 * (about 3 MB) so that sdrt can be tried and tested end to end on a fresh
 * machine with no downloads. Weights are drawn from sdrt's PyTorch-
 * compatible generator with a fixed seed: the same command always writes
 * the same bytes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mkdemo.h"

static const md_unet_cfg unet_cfg = {
    .block_out = {32, 64},
    .layers_per_block = 1,
    .transformer_layers = {1, 2},
    .head_dim = {2, 4},
    .cross_dim = 64, /* hidden sizes of both text encoders, concatenated */
    .time_embed_dim = 128,
    .add_time_dim = 8,
    .pooled_dim = 32,
};
static const md_vae_cfg vae_cfg = {.block_out = {32, 32, 32, 32}, .layers_per_block = 1, .latent_channels = 4};

static int make_dir(const char *root, const char *sub) {
    char path[4096];
    snprintf(path, sizeof path, "%.3800s%s%.200s", root, sub ? "/" : "", sub ? sub : "");
    if (mkdir(path, 0755) == 0 || errno == EEXIST) return 0;
    fprintf(stderr, "sdrt-mkdemo: cannot create %s: %s\n", path, strerror(errno));
    return -1;
}

static int write_component(const char *root, const char *sub, const char *file, md_list *l, sdrt_rng *g,
                           int all_f32) {
    char path[4096];
    snprintf(path, sizeof path, "%.3600s/%.200s/%.200s", root, sub, file);
    int rc = md_write_safetensors(path, l, g, all_f32);
    md_list_free(l);
    return rc;
}

static int usage(void) {
    fprintf(stderr, "usage: sdrt-mkdemo OUTDIR [--seed N] [--f32]\n"
                    "  writes a tiny random SDXL-architecture diffusers model into OUTDIR\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *out = NULL;
    unsigned long long seed = 0;
    int all_f32 = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--f32") == 0) all_f32 = 1;
        else if (argv[i][0] == '-' || out) return usage();
        else out = argv[i];
    }
    if (!out) return usage();
    const char *subs[] = {NULL, "unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler"};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (make_dir(out, subs[i])) return 1;
    md_clip_cfg te1 = {md_vocab_size(), 32, 37, 5, 4, 0};
    md_clip_cfg te2 = {md_vocab_size(), 32, 37, 5, 4, 32};
    if (md_write_configs(out, &unet_cfg, &vae_cfg, &te1, &te2)) return 1;
    sdrt_rng g;
    sdrt_rng_seed(&g, seed);
    md_list l = {0};
    md_unet_tensors(&l, &unet_cfg);
    if (write_component(out, "unet", "diffusion_pytorch_model.safetensors", &l, &g, all_f32)) return 1;
    md_vae_tensors(&l, &vae_cfg);
    if (write_component(out, "vae", "diffusion_pytorch_model.safetensors", &l, &g, all_f32)) return 1;
    md_clip_tensors(&l, &te1);
    if (write_component(out, "text_encoder", "model.safetensors", &l, &g, all_f32)) return 1;
    md_clip_tensors(&l, &te2);
    if (write_component(out, "text_encoder_2", "model.safetensors", &l, &g, all_f32)) return 1;
    fprintf(stderr, "sdrt-mkdemo: wrote %s (seed %llu)\n", out, seed);
    return 0;
}
