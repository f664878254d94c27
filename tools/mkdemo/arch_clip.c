/* arch_clip.c - tensor names and shapes of transformers' CLIPTextModel and
 * CLIPTextModelWithProjection. */
#include <stdio.h>

#include "mkdemo.h"

static void layer(md_list *l, const md_clip_cfg *c, int i) {
    char p[MD_NAME], n[MD_NAME];
    md_name(p, "text_model.encoder.layers.%d", i);
    md_name(n, "%s.layer_norm1", p), md_norm(l, n, c->hidden);
    const char *proj[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    for (int k = 0; k < 4; k++) {
        md_name(n, "%s.self_attn.%s", p, proj[k]);
        md_linear(l, n, c->hidden, c->hidden, 1, k == 3 ? MD_RESIDUAL : MD_MATRIX);
    }
    md_name(n, "%s.layer_norm2", p), md_norm(l, n, c->hidden);
    md_name(n, "%s.mlp.fc1", p), md_linear(l, n, c->intermediate, c->hidden, 1, MD_MATRIX);
    md_name(n, "%s.mlp.fc2", p), md_linear(l, n, c->hidden, c->intermediate, 1, MD_RESIDUAL);
}

void md_clip_tensors(md_list *l, const md_clip_cfg *c) {
    int64_t tok[2] = {c->vocab, c->hidden}, pos[2] = {77, c->hidden};
    md_add(l, MD_EMBED, "text_model.embeddings.token_embedding.weight", 2, tok);
    md_add(l, MD_EMBED, "text_model.embeddings.position_embedding.weight", 2, pos);
    for (int i = 0; i < c->layers; i++) layer(l, c, i);
    md_norm(l, "text_model.final_layer_norm", c->hidden);
    if (c->projection) md_linear(l, "text_projection", c->projection, c->hidden, 0, MD_MATRIX);
}
