/* plugins/lora/keys.c - LoRA key names to (component, module path, part).
 *
 * kohya flattens module paths with '_' although diffusers and transformers
 * module names contain '_' themselves ("down_blocks", "to_q"). The model
 * interface cannot enumerate tensor names, so instead of matching against a
 * table built from the model (A1111's way) the flat name is split back with
 * the closed vocabulary of multi-word module names these models use; a path
 * that comes out wrong simply matches no tensor and is reported. */
#include "keys.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const LORA_COMPONENTS[3] = {"unet", "text_encoder", "text_encoder_2"};

/* ---- suffixes ------------------------------------------------------------ */

typedef enum suffix_form { SFX_KOHYA, SFX_PEFT, SFX_DIFFUSERS, SFX_PROCESSOR } suffix_form;

typedef struct suffix {
    const char *text;
    lora_part part;
    suffix_form form;
} suffix;

static const suffix SUFFIXES[] = {
    {".lora_down.weight", PART_DOWN, SFX_KOHYA},
    {".lora_up.weight", PART_UP, SFX_KOHYA},
    {".lora_mid.weight", PART_MID, SFX_KOHYA},
    {".alpha", PART_ALPHA, SFX_KOHYA},
    {".hada_w1_a", PART_HADA_W1_A, SFX_KOHYA},
    {".hada_w1_b", PART_HADA_W1_B, SFX_KOHYA},
    {".hada_w2_a", PART_HADA_W2_A, SFX_KOHYA},
    {".hada_w2_b", PART_HADA_W2_B, SFX_KOHYA},
    {".hada_t1", PART_HADA_T1, SFX_KOHYA},
    {".hada_t2", PART_HADA_T2, SFX_KOHYA},
    {".lokr_w1", PART_LOKR_W1, SFX_KOHYA},
    {".lokr_w1_a", PART_LOKR_W1_A, SFX_KOHYA},
    {".lokr_w1_b", PART_LOKR_W1_B, SFX_KOHYA},
    {".lokr_w2", PART_LOKR_W2, SFX_KOHYA},
    {".lokr_w2_a", PART_LOKR_W2_A, SFX_KOHYA},
    {".lokr_w2_b", PART_LOKR_W2_B, SFX_KOHYA},
    {".lokr_t2", PART_LOKR_T2, SFX_KOHYA},
    {".diff", PART_DIFF, SFX_KOHYA},
    {".diff_b", PART_DIFF_B, SFX_KOHYA},
    {".dora_scale", PART_DORA_SCALE, SFX_KOHYA},
    {".lora_A.weight", PART_DOWN, SFX_PEFT},
    {".lora_B.weight", PART_UP, SFX_PEFT},
    {".lora_magnitude_vector", PART_DORA_SCALE, SFX_PEFT},
    {".lora.down.weight", PART_DOWN, SFX_DIFFUSERS},
    {".lora.up.weight", PART_UP, SFX_DIFFUSERS},
    {".lora_linear_layer.down.weight", PART_DOWN, SFX_DIFFUSERS},
    {".lora_linear_layer.up.weight", PART_UP, SFX_DIFFUSERS},
    {"_lora.down.weight", PART_DOWN, SFX_PROCESSOR},
    {"_lora.up.weight", PART_UP, SFX_PROCESSOR},
};

static const char *const PART_NAMES[PART_COUNT_] = {
    "none", "lora_down", "lora_up", "lora_mid", "alpha", "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b",
    "hada_t1", "hada_t2", "lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2",
    "diff", "diff_b", "dora_scale",
};

const char *lora_part_name(lora_part p) { return p >= 0 && p < PART_COUNT_ ? PART_NAMES[p] : "?"; }

static const suffix *find_suffix(const char *key, size_t n) {
    for (size_t i = 0; i < sizeof SUFFIXES / sizeof SUFFIXES[0]; i++) {
        size_t s = strlen(SUFFIXES[i].text);
        if (n > s && memcmp(key + n - s, SUFFIXES[i].text, s) == 0) return &SUFFIXES[i];
    }
    return NULL;
}

/* ---- unflattening kohya names -------------------------------------------- */

/* Multi-word module names of the SD UNet (diffusers and SGM spellings) and
 * of CLIP, longest first so "time_emb_proj" wins over "time_emb". */
static const char *const COMPOUNDS[] = {
    "conv_norm_out", "time_emb_proj", "final_layer_norm",
    "down_blocks", "up_blocks", "mid_block", "transformer_blocks", "to_q", "to_k", "to_v", "to_out",
    "proj_in", "proj_out", "conv_in", "conv_out", "conv_shortcut", "time_embedding", "linear_1", "linear_2",
    "add_embedding", "encoder_hid_proj", "class_embedding", "input_blocks", "output_blocks", "middle_block",
    "in_layers", "out_layers", "emb_layers", "skip_connection", "time_embed", "label_emb", "text_model",
    "self_attn", "q_proj", "k_proj", "v_proj", "out_proj", "layer_norm1", "layer_norm2", "token_embedding",
    "position_embedding", "text_projection",
};

/* Length of the compound word starting at s (ending at '_' or the end of
 * the flat name of length n), or of the single token there. */
static size_t word_at(const char *s, size_t n) {
    for (size_t i = 0; i < sizeof COMPOUNDS / sizeof COMPOUNDS[0]; i++) {
        size_t c = strlen(COMPOUNDS[i]);
        if (c <= n && memcmp(s, COMPOUNDS[i], c) == 0 && (c == n || s[c] == '_')) return c;
    }
    const char *u = memchr(s, '_', n);
    return u ? (size_t)(u - s) : n;
}

/* "down_blocks_0_attentions_0_proj_in" -> "down_blocks.0.attentions.0.proj_in". */
static int unflatten(const char *flat, size_t n, char *out, size_t outlen) {
    size_t o = 0;
    while (n > 0) {
        size_t w = word_at(flat, n);
        if (w == 0 || o + w + 2 > outlen) return -1; /* empty word: "__" or a trailing '_' */
        if (o) out[o++] = '.';
        memcpy(out + o, flat, w);
        o += w;
        flat += w;
        n -= w;
        if (n > 0) { /* skip the separator; a name cannot end on it */
            flat++;
            n--;
            if (n == 0) return -1;
        }
    }
    out[o] = 0;
    return o ? 0 : -1;
}

/* ---- component prefixes -------------------------------------------------- */

static const char *after(const char *s, size_t n, const char *prefix, size_t *rest) {
    size_t p = strlen(prefix);
    if (n <= p || memcmp(s, prefix, p) != 0) return NULL;
    *rest = n - p;
    return s + p;
}

static int copy_path(const char *s, size_t n, char *out) {
    if (n == 0 || n >= LORA_PATH_MAX || memchr(s, 0, n)) return -1;
    memcpy(out, s, n);
    out[n] = 0;
    return 0;
}

static int starts_word(const char *path, const char *w) {
    size_t n = strlen(w);
    return strncmp(path, w, n) == 0 && (path[n] == '.' || path[n] == 0);
}

static int is_sgm_path(const char *p) {
    return starts_word(p, "input_blocks") || starts_word(p, "middle_block") || starts_word(p, "output_blocks") ||
           starts_word(p, "time_embed") || starts_word(p, "label_emb") || starts_word(p, "out");
}

static int is_unet_path(const char *p) {
    static const char *const W[] = {"down_blocks", "up_blocks", "mid_block", "conv_in", "conv_out",
                                    "conv_norm_out", "time_embedding", "add_embedding", "encoder_hid_proj",
                                    "class_embedding"};
    for (size_t i = 0; i < sizeof W / sizeof W[0]; i++)
        if (starts_word(p, W[i])) return 1;
    return 0;
}

/* kohya: lora_unet_ / lora_te_ / lora_te1_ / lora_te2_ + flat path. */
static int parse_kohya(const char *base, size_t n, lora_key *k) {
    static const struct { const char *prefix; int comp; } P[] = {
        {"lora_unet_", 0}, {"lora_te1_", 1}, {"lora_te2_", 2}, {"lora_te_", 1}};
    for (size_t i = 0; i < sizeof P / sizeof P[0]; i++) {
        size_t rest;
        const char *flat = after(base, n, P[i].prefix, &rest);
        if (!flat) continue;
        k->component = P[i].comp;
        k->style = STYLE_KOHYA;
        return unflatten(flat, rest, k->path, sizeof k->path);
    }
    return -1;
}

/* diffusers / PEFT: dotted paths with or without a component prefix. */
static int parse_dotted(const char *base, size_t n, lora_key *k) {
    size_t rest = n;
    const char *p = after(base, n, "base_model.model.", &rest);
    if (!p) p = base;
    n = rest;
    static const struct { const char *prefix; int comp; } P[] = {
        {"unet.", 0}, {"text_encoder_2.", 2}, {"text_encoder.", 1}};
    for (size_t i = 0; i < sizeof P / sizeof P[0]; i++) {
        const char *q = after(p, n, P[i].prefix, &rest);
        if (!q) continue;
        k->component = P[i].comp;
        return copy_path(q, rest, k->path);
    }
    if (copy_path(p, n, k->path) != 0) return -1;
    if (is_unet_path(k->path)) k->component = 0;
    else if (starts_word(k->path, "text_model")) k->component = 1;
    else return -1;
    return 0;
}

/* Attention-processor form: ".processor.to_q" (UNet) or CLIP's
 * "self_attn.to_q" written by old diffusers; to module names. */
static int fix_processor(lora_key *k) {
    static const char *const FROM[] = {"to_q", "to_k", "to_v", "to_out"};
    static const char *const UNET[] = {"to_q", "to_k", "to_v", "to_out.0"};
    static const char *const CLIP[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    char *dot = strrchr(k->path, '.');
    if (!dot) return -1;
    for (int i = 0; i < 4; i++) {
        if (strcmp(dot + 1, FROM[i]) != 0) continue;
        *dot = 0;
        size_t n = strlen(k->path);
        const char *proc = ".processor";
        if (n >= strlen(proc) && strcmp(k->path + n - strlen(proc), proc) == 0) k->path[n - strlen(proc)] = 0;
        const char *name = k->component == 0 ? UNET[i] : CLIP[i];
        size_t m = strlen(k->path);
        if (m + 1 + strlen(name) + 1 > sizeof k->path) return -1;
        k->path[m] = '.';
        strcpy(k->path + m + 1, name);
        return 0;
    }
    return -1;
}

int lora_key_parse(const char *key, lora_key *out) {
    memset(out, 0, sizeof *out);
    size_t n = key ? strlen(key) : 0;
    const suffix *s = n ? find_suffix(key, n) : NULL;
    if (!s) return -1;
    size_t base = n - strlen(s->text);
    lora_key k;
    memset(&k, 0, sizeof k);
    int rc = s->form == SFX_KOHYA ? parse_kohya(key, base, &k) : -1;
    if (rc != 0) {
        memset(&k, 0, sizeof k);
        rc = parse_dotted(key, base, &k);
        k.style = s->form == SFX_PEFT ? STYLE_PEFT : STYLE_DIFFUSERS;
    }
    if (rc == 0 && s->form == SFX_PROCESSOR) rc = fix_processor(&k);
    if (rc != 0) return -1;
    k.part = s->part;
    k.base_len = base;
    k.sgm = k.component == 0 && is_sgm_path(k.path);
    *out = k;
    return 0;
}

/* ---- SGM (LDM) UNet names ------------------------------------------------ */

int lora_unet_layout_from_config(const char *config_json, lora_unet_layout *L) {
    L->layers_per_block = 2;
    L->n_levels = 4;
    for (int i = 0; i < LORA_MAX_LEVELS; i++) {
        L->up_attn[i] = i > 0;   /* SD1's layout: attention everywhere but the lowest level */
        L->down_attn[i] = i < 3;
    }
    cJSON *c = config_json ? cJSON_Parse(config_json) : NULL;
    const cJSON *lpb = cJSON_GetObjectItemCaseSensitive(c, "layers_per_block");
    const cJSON *up = cJSON_GetObjectItemCaseSensitive(c, "up_block_types");
    const cJSON *down = cJSON_GetObjectItemCaseSensitive(c, "down_block_types");
    int ok = cJSON_IsNumber(lpb) && lpb->valuedouble >= 1 && lpb->valuedouble <= 16 && cJSON_IsArray(up) &&
             cJSON_GetArraySize(up) >= 1 && cJSON_GetArraySize(up) <= LORA_MAX_LEVELS && cJSON_IsArray(down) &&
             cJSON_GetArraySize(down) == cJSON_GetArraySize(up);
    if (ok) {
        L->layers_per_block = (int)lpb->valuedouble;
        L->n_levels = cJSON_GetArraySize(up);
        int i = 0;
        for (const cJSON *t = up->child; t; t = t->next, i++)
            L->up_attn[i] = cJSON_IsString(t) && strstr(t->valuestring, "CrossAttn") != NULL;
        i = 0;
        for (const cJSON *t = down->child; t; t = t->next, i++)
            L->down_attn[i] = cJSON_IsString(t) && strstr(t->valuestring, "CrossAttn") != NULL;
    }
    cJSON_Delete(c);
    return ok ? 0 : -1;
}

/* Reads "<int>." (or "<int>" at the end) at *s; advances past it. */
static int take_int(const char **s, int *v) {
    const char *p = *s;
    if (*p < '0' || *p > '9') return -1;
    long x = 0;
    while (*p >= '0' && *p <= '9' && x < 100000) x = x * 10 + (*p++ - '0');
    if (*p == '.') p++;
    else if (*p) return -1;
    *v = (int)x;
    *s = p;
    return 0;
}

/* ResNet sub-module: SGM name -> diffusers name. */
static const char *resnet_part(const char *rest, const char **tail) {
    static const char *const FROM[] = {"in_layers.0", "in_layers.2", "emb_layers.1", "out_layers.0",
                                       "out_layers.3", "skip_connection"};
    static const char *const TO[] = {"norm1", "conv1", "time_emb_proj", "norm2", "conv2", "conv_shortcut"};
    for (int i = 0; i < 6; i++) {
        size_t n = strlen(FROM[i]);
        if (strncmp(rest, FROM[i], n) == 0 && (rest[n] == 0 || rest[n] == '.')) {
            *tail = rest + n;
            return TO[i];
        }
    }
    return NULL;
}

static int emit(char *out, size_t outlen, const char *fmt_head, int a, const char *kind, int b, const char *rest) {
    int n = snprintf(out, outlen, fmt_head, a, kind, b, rest);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* "<block>.<m>.<rest>" inside one level: resnet, attention or resampler. */
static int level_module(const char *blocks, int level, int layer, int m, const char *rest, int has_attn,
                        int is_resampler_slot, char *out, size_t outlen) {
    const char *tail = "";
    if (is_resampler_slot && ((m == 0 && !strncmp(rest, "op", 2)) || (m >= 1 && !strncmp(rest, "conv", 4)))) {
        if (!(rest[m == 0 ? 2 : 4] == 0 || rest[m == 0 ? 2 : 4] == '.')) return -1;
        tail = rest + (m == 0 ? 2 : 4);
        if (m == 1 && has_attn) return -1;
        const char *kind = strcmp(blocks, "down_blocks") == 0 ? "downsamplers" : "upsamplers";
        int n = snprintf(out, outlen, "%s.%d.%s.0.conv%s", blocks, level, kind, tail);
        return n > 0 && (size_t)n < outlen ? 0 : -1;
    }
    if (m == 0) {
        const char *r = resnet_part(rest, &tail);
        if (!r) return -1;
        int n = snprintf(out, outlen, "%s.%d.resnets.%d.%s%s", blocks, level, layer, r, tail);
        return n > 0 && (size_t)n < outlen ? 0 : -1;
    }
    if (m == 1 && has_attn && *rest)
        return emit(out, outlen, strcmp(blocks, "down_blocks") == 0 ? "down_blocks.%d.%s.%d.%s"
                                                                   : "up_blocks.%d.%s.%d.%s",
                    level, "attentions", layer, rest);
    return -1;
}

static int input_block(const char *s, const lora_unet_layout *L, char *out, size_t outlen) {
    int nb, m;
    if (take_int(&s, &nb) || take_int(&s, &m)) return -1;
    if (nb == 0) {
        int n = snprintf(out, outlen, "conv_in%s%s", *s ? "." : "", s);
        return m == 0 && n > 0 && (size_t)n < outlen ? 0 : -1;
    }
    int per = L->layers_per_block + 1, level = (nb - 1) / per, layer = (nb - 1) % per;
    if (level >= L->n_levels) return -1;
    int down_attn = L->down_attn[level];
    int resampler = layer == L->layers_per_block;
    if (resampler && m != 0) return -1;
    return level_module("down_blocks", level, layer, m, s, down_attn, resampler, out, outlen);
}

static int output_block(const char *s, const lora_unet_layout *L, char *out, size_t outlen) {
    int nb, m;
    if (take_int(&s, &nb) || take_int(&s, &m)) return -1;
    int per = L->layers_per_block + 1, level = nb / per, layer = nb % per;
    if (level >= L->n_levels) return -1;
    int attn = L->up_attn[level];
    int resampler = layer == L->layers_per_block && level < L->n_levels - 1 && m == (attn ? 2 : 1);
    if (m == 2 && !resampler) return -1;
    return level_module("up_blocks", level, layer, m, s, attn, resampler, out, outlen);
}

static int middle_block(const char *s, char *out, size_t outlen) {
    int m;
    if (take_int(&s, &m)) return -1;
    const char *tail = "";
    if (m == 1 && *s) {
        int n = snprintf(out, outlen, "mid_block.attentions.0.%s", s);
        return n > 0 && (size_t)n < outlen ? 0 : -1;
    }
    if (m != 0 && m != 2) return -1;
    const char *r = resnet_part(s, &tail);
    if (!r) return -1;
    int n = snprintf(out, outlen, "mid_block.resnets.%d.%s%s", m / 2, r, tail);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

static int simple_map(const char *s, char *out, size_t outlen) {
    static const char *const FROM[] = {"time_embed.0", "time_embed.2", "label_emb.0.0", "label_emb.0.2", "out.0",
                                       "out.2"};
    static const char *const TO[] = {"time_embedding.linear_1", "time_embedding.linear_2", "add_embedding.linear_1",
                                     "add_embedding.linear_2", "conv_norm_out", "conv_out"};
    for (int i = 0; i < 6; i++) {
        size_t n = strlen(FROM[i]);
        if (strncmp(s, FROM[i], n) == 0 && (s[n] == 0 || s[n] == '.')) {
            int w = snprintf(out, outlen, "%s%s", TO[i], s + n);
            return w > 0 && (size_t)w < outlen ? 0 : -1;
        }
    }
    return -1;
}

int lora_sgm_to_diffusers(const char *sgm, const lora_unet_layout *L, char *out, size_t outlen) {
    if (!sgm || !L || !out || outlen == 0 || L->layers_per_block < 1 || L->n_levels < 1 ||
        L->n_levels > LORA_MAX_LEVELS)
        return -1;
    out[0] = 0;
    if (!strncmp(sgm, "input_blocks.", 13)) return input_block(sgm + 13, L, out, outlen);
    if (!strncmp(sgm, "output_blocks.", 14)) return output_block(sgm + 14, L, out, outlen);
    if (!strncmp(sgm, "middle_block.", 13)) return middle_block(sgm + 13, out, outlen);
    return simple_map(sgm, out, outlen);
}
