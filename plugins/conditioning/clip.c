/* clip.c - CLIP text transformer: token + position embeddings, pre-LN
 * blocks with causal self-attention, final layer norm, pooled output and the
 * optional text projection, as transformers' modeling_clip.py. */
#include "clip.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cond_err.h"
#include "sdrt/half.h"

static int get_int(const cJSON *root, const char *key, int def, int min, int max, int *out, char *err,
                   size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) {
        if (def < 0) {
            cond_set_err(err, errlen, "text encoder config.json: %s is missing", key);
            return -1;
        }
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble || v->valueint < min ||
        v->valueint > max) {
        cond_set_err(err, errlen, "text encoder config.json: %s must be an integer in %d..%d", key, min, max);
        return -1;
    }
    *out = v->valueint;
    return 0;
}

int clip_config_parse(const char *json, clip_config *c, char *err, size_t errlen) {
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        cond_set_err(err, errlen, "text encoder config.json: not a JSON object");
        return -1;
    }
    memset(c, 0, sizeof *c);
    int r = get_int(root, "hidden_size", -1, 1, 65536, &c->hidden, err, errlen) ||
            get_int(root, "num_hidden_layers", -1, 1, 1024, &c->layers, err, errlen) ||
            get_int(root, "num_attention_heads", -1, 1, 1024, &c->heads, err, errlen) ||
            get_int(root, "intermediate_size", -1, 1, 1 << 20, &c->intermediate, err, errlen) ||
            get_int(root, "max_position_embeddings", 77, 1, 1 << 16, &c->max_positions, err, errlen) ||
            get_int(root, "projection_dim", 0, 0, 65536, &c->projection_dim, err, errlen) ||
            get_int(root, "eos_token_id", 2, 0, 1 << 30, &c->eos_token_id, err, errlen);
    if (!r && c->hidden % c->heads) {
        cond_set_err(err, errlen, "text encoder config.json: hidden_size %d is not a multiple of num_attention_heads %d",
                c->hidden, c->heads);
        r = -1;
    }
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_eps");
    c->eps = cJSON_IsNumber(eps) ? (float)eps->valuedouble : 1e-5f;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    const char *a = cJSON_IsString(act) ? act->valuestring : "quick_gelu";
    if (!r) {
        if (strcmp(a, "quick_gelu") == 0) c->act = CLIP_QUICK_GELU;
        else if (strcmp(a, "gelu") == 0) c->act = CLIP_GELU;
        else if (strcmp(a, "gelu_new") == 0 || strcmp(a, "gelu_pytorch_tanh") == 0) c->act = CLIP_GELU_TANH;
        else {
            cond_set_err(err, errlen, "text encoder config.json: hidden_act \"%s\" is not supported "
                    "(quick_gelu, gelu, gelu_new)", a);
            r = -1;
        }
    }
    cJSON_Delete(root);
    return r ? -1 : 0;
}

/* ---- weights --------------------------------------------------------------- */

typedef struct enc {
    sdrt_nn *nn;
    const clip_config *cfg;
    clip_weight_fn weight;
    void *ctx;
    char *err;
    size_t errlen;
    sdrt_status st;
    sdrt_tensor *temps[4096]; /* converted vector weights, dropped at the end */
    size_t ntemps;
} enc;

static const sdrt_tensor *host_weight(enc *e, const char *fmt, ...) SDRT_PRINTF(2, 3);
static const sdrt_tensor *host_weight(enc *e, const char *fmt, ...) {
    char name[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (e->st != SDRT_OK) return NULL;
    const sdrt_tensor *t = e->weight(e->ctx, name);
    if (!t) {
        e->st = SDRT_NOT_FOUND;
        cond_set_err(e->err, e->errlen, "text encoder: weight %s is missing", name);
    }
    return t;
}

#define W(e, ...) weight_on_device((e), host_weight((e), __VA_ARGS__))

/* Vectors (biases, norm parameters) are converted to float32: backends
 * take half-precision only for matrix operands, while fp16 checkpoints
 * store every tensor in fp16. The copies live until clip_encode returns. */
static const sdrt_tensor *vector_f32(enc *e, const sdrt_tensor *host) {
    int64_t n = host->shape[0];
    float *v = malloc((size_t)n * sizeof *v);
    if (!v || e->ntemps == sizeof e->temps / sizeof e->temps[0]) {
        free(v);
        e->st = SDRT_RESOURCE_EXHAUSTED;
        cond_set_err(e->err, e->errlen, "text encoder: out of memory converting a vector weight");
        return NULL;
    }
    sdrt_nn_param_to_f32(host, v); /* weight_on_device passes only 1-D f16/bf16 here */
    sdrt_tensor *t = sdrt_nn_from_host(e->nn, SDRT_DTYPE_F32, 1, &n, v);
    free(v);
    if (t) e->temps[e->ntemps++] = t;
    return t;
}

static const sdrt_tensor *weight_on_device(enc *e, const sdrt_tensor *host) {
    if (!host) return NULL;
    if (host->ndim == 1 && (host->dtype == SDRT_DTYPE_F16 || host->dtype == SDRT_DTYPE_BF16))
        return vector_f32(e, host);
    return sdrt_nn_weight(e->nn, host);
}

/* Element [row, col] of a 2-D host weight as float. */
static float host_at(const sdrt_tensor *t, int64_t row, int64_t col) {
    int64_t off = row * t->strides[0] + col * t->strides[1];
    switch (t->dtype) {
    case SDRT_DTYPE_F16: return sdrt_f16_to_f32(((const uint16_t *)t->data)[off]);
    case SDRT_DTYPE_BF16: return sdrt_bf16_to_f32(((const uint16_t *)t->data)[off]);
    default: return ((const float *)t->data)[off];
    }
}

static int check_table(enc *e, const sdrt_tensor *t, const char *name, int64_t rows) {
    if (!t) return -1;
    int ok = t->ndim == 2 && t->shape[1] == e->cfg->hidden && t->shape[0] >= rows &&
             (t->dtype == SDRT_DTYPE_F32 || t->dtype == SDRT_DTYPE_F16 || t->dtype == SDRT_DTYPE_BF16);
    if (!ok) {
        e->st = SDRT_INVALID_ARGUMENT;
        cond_set_err(e->err, e->errlen, "text encoder: %s must be [>= %lld, %d] float", name, (long long)rows,
                e->cfg->hidden);
        return -1;
    }
    return 0;
}

/* inputs_embeds + position_embeds, gathered on the host (no gather op). */
static sdrt_tensor *embed(enc *e, const clip_run *run) {
    const char *tn = "text_model.embeddings.token_embedding.weight";
    const char *pn = "text_model.embeddings.position_embedding.weight";
    const sdrt_tensor *tok = host_weight(e, "%s", tn), *pos = host_weight(e, "%s", pn);
    if (check_table(e, tok, tn, 1) || check_table(e, pos, pn, run->len)) return NULL;
    int64_t d = e->cfg->hidden, n = (int64_t)run->batch * run->len;
    float *x = malloc((size_t)(n * d) * sizeof *x);
    if (!x) {
        e->st = SDRT_RESOURCE_EXHAUSTED;
        cond_set_err(e->err, e->errlen, "text encoder: out of memory for embeddings");
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) {
        int32_t id = run->ids[i];
        if (id < 0 || id >= tok->shape[0]) {
            free(x);
            e->st = SDRT_INVALID_ARGUMENT;
            cond_set_err(e->err, e->errlen, "text encoder: token id %d outside the vocabulary of %lld", id,
                    (long long)tok->shape[0]);
            return NULL;
        }
        int64_t p = i % run->len;
        for (int64_t k = 0; k < d; k++) x[i * d + k] = host_at(tok, id, k) + host_at(pos, p, k);
    }
    int64_t shape[3] = {run->batch, run->len, d};
    sdrt_tensor *t = sdrt_nn_from_host(e->nn, SDRT_DTYPE_F32, 3, shape, x);
    free(x);
    return t;
}

/* ---- one encoder layer ---------------------------------------------------- */

static sdrt_tensor *linear(enc *e, const sdrt_tensor *x, const char *layer, int i) {
    const sdrt_tensor *w = W(e, "text_model.encoder.layers.%d.%s.weight", i, layer);
    const sdrt_tensor *b = W(e, "text_model.encoder.layers.%d.%s.bias", i, layer);
    return w && b ? sdrt_nn_linear(e->nn, x, w, b) : NULL;
}

static sdrt_tensor *layer_norm(enc *e, const sdrt_tensor *x, const char *prefix) {
    const sdrt_tensor *g = W(e, "%s.weight", prefix), *b = W(e, "%s.bias", prefix);
    return g && b ? sdrt_nn_layer_norm(e->nn, x, g, b, e->cfg->eps) : NULL;
}

/* [B, L, D] -> the [B, H, L, hd] view attention reads. */
static sdrt_tensor heads_view(const clip_config *c, const sdrt_tensor *t) {
    int64_t shape[4] = {t->shape[0], t->shape[1], c->heads, c->hidden / c->heads};
    sdrt_tensor v = sdrt_nn_view_reshape(t, 4, shape);
    static const int perm[4] = {0, 2, 1, 3};
    return sdrt_nn_view_permute(&v, perm);
}

static sdrt_tensor *self_attention(enc *e, const sdrt_tensor *h, int i) {
    sdrt_nn *nn = e->nn;
    sdrt_tensor *q = linear(e, h, "self_attn.q_proj", i);
    sdrt_tensor *k = linear(e, h, "self_attn.k_proj", i);
    sdrt_tensor *v = linear(e, h, "self_attn.v_proj", i);
    sdrt_tensor *a = NULL, *merged = NULL, *out = NULL;
    if (q && k && v) {
        sdrt_tensor qh = heads_view(e->cfg, q), kh = heads_view(e->cfg, k), vh = heads_view(e->cfg, v);
        a = sdrt_nn_attention(nn, &qh, &kh, &vh, 0.0f, 1);
    }
    sdrt_nn_drop(nn, q);
    sdrt_nn_drop(nn, k);
    sdrt_nn_drop(nn, v);
    if (a) {
        static const int perm[4] = {0, 2, 1, 3};
        sdrt_tensor back = sdrt_nn_view_permute(a, perm);
        merged = sdrt_nn_copy(nn, &back, SDRT_DTYPE_F32);
    }
    sdrt_nn_drop(nn, a);
    if (merged) {
        int64_t shape[3] = {h->shape[0], h->shape[1], e->cfg->hidden};
        sdrt_tensor flat = sdrt_nn_view_reshape(merged, 3, shape);
        out = linear(e, &flat, "self_attn.out_proj", i);
    }
    sdrt_nn_drop(nn, merged);
    return out;
}

static sdrt_tensor *activation(enc *e, sdrt_tensor *x) {
    switch (e->cfg->act) {
    case CLIP_GELU: return sdrt_nn_gelu(e->nn, x);
    case CLIP_GELU_TANH: return sdrt_nn_gelu_tanh(e->nn, x);
    default: return sdrt_nn_quick_gelu(e->nn, x);
    }
}

static sdrt_tensor *mlp(enc *e, const sdrt_tensor *h, int i) {
    sdrt_tensor *f1 = linear(e, h, "mlp.fc1", i);
    sdrt_tensor *act = f1 ? activation(e, f1) : NULL;
    sdrt_nn_drop(e->nn, f1);
    sdrt_tensor *f2 = act ? linear(e, act, "mlp.fc2", i) : NULL;
    sdrt_nn_drop(e->nn, act);
    return f2;
}

/* x + attn(ln1(x)), then + mlp(ln2(.)). Consumes x. */
static sdrt_tensor *encoder_layer(enc *e, sdrt_tensor *x, int i) {
    char name[96];
    snprintf(name, sizeof name, "text_model.encoder.layers.%d.layer_norm1", i);
    sdrt_tensor *h = layer_norm(e, x, name);
    sdrt_tensor *a = h ? self_attention(e, h, i) : NULL;
    sdrt_nn_drop(e->nn, h);
    sdrt_tensor *x2 = a ? sdrt_nn_add(e->nn, x, a) : NULL;
    sdrt_nn_drop(e->nn, a);
    sdrt_nn_drop(e->nn, x);
    if (!x2) return NULL;
    snprintf(name, sizeof name, "text_model.encoder.layers.%d.layer_norm2", i);
    h = layer_norm(e, x2, name);
    sdrt_tensor *m = h ? mlp(e, h, i) : NULL;
    sdrt_nn_drop(e->nn, h);
    sdrt_tensor *x3 = m ? sdrt_nn_add(e->nn, x2, m) : NULL;
    sdrt_nn_drop(e->nn, m);
    sdrt_nn_drop(e->nn, x2);
    return x3;
}

/* ---- outputs -------------------------------------------------------------- */

/* transformers: eos_token_id == 2 (old configs) pools at argmax(ids), else
 * at the first position holding eos_token_id (0 if none). */
static int pool_position(const clip_config *c, const int32_t *ids, int len) {
    int best = 0;
    for (int i = 0; i < len; i++) {
        if (c->eos_token_id == 2) {
            if (ids[i] > ids[best]) best = i;
        } else if (ids[i] == c->eos_token_id) {
            return i;
        }
    }
    return c->eos_token_id == 2 ? best : 0;
}

static int pooled(enc *e, const clip_run *run, const float *last_ln) {
    int64_t d = e->cfg->hidden;
    float *rows = malloc((size_t)(run->batch * d) * sizeof *rows);
    if (!rows) {
        e->st = SDRT_RESOURCE_EXHAUSTED;
        cond_set_err(e->err, e->errlen, "text encoder: out of memory");
        return -1;
    }
    for (int b = 0; b < run->batch; b++) {
        int p = pool_position(e->cfg, run->ids + (size_t)b * run->len, run->len);
        memcpy(rows + b * d, last_ln + ((int64_t)b * run->len + p) * d, (size_t)d * sizeof *rows);
    }
    if (!run->project) {
        memcpy(run->pooled_out, rows, (size_t)(run->batch * d) * sizeof *rows);
        free(rows);
        return 0;
    }
    int64_t shape[2] = {run->batch, d};
    sdrt_tensor *x = sdrt_nn_from_host(e->nn, SDRT_DTYPE_F32, 2, shape, rows);
    free(rows);
    const sdrt_tensor *w = x ? W(e, "text_projection.weight") : NULL;
    sdrt_tensor *y = w ? sdrt_nn_linear(e->nn, x, w, NULL) : NULL;
    sdrt_nn_drop(e->nn, x);
    if (y && sdrt_nn_to_host_f32(e->nn, y, run->pooled_out) != SDRT_OK) {
        sdrt_nn_drop(e->nn, y);
        return -1;
    }
    sdrt_nn_drop(e->nn, y);
    return y ? 0 : -1;
}

/* Copies t (optionally through final_layer_norm) to host memory `out`. */
static int emit(enc *e, const sdrt_tensor *t, int final_ln, float *out) {
    sdrt_tensor *n = final_ln ? layer_norm(e, t, "text_model.final_layer_norm") : NULL;
    if (final_ln && !n) return -1;
    sdrt_status st = sdrt_nn_to_host_f32(e->nn, n ? n : t, out);
    sdrt_nn_drop(e->nn, n);
    return st == SDRT_OK ? 0 : -1;
}

static sdrt_status finish(enc *e) {
    for (size_t i = 0; i < e->ntemps; i++) sdrt_nn_drop(e->nn, e->temps[i]);
    e->ntemps = 0;
    const char *msg = NULL;
    sdrt_status st = sdrt_nn_status(e->nn, &msg);
    if (e->st != SDRT_OK) return e->st;
    if (st != SDRT_OK) cond_set_err(e->err, e->errlen, "text encoder: %s", msg ? msg : "op failed");
    return st;
}

static sdrt_status encode_run(enc *e, const clip_run *run) {
    const clip_config *cfg = e->cfg;
    int need = run->pooled_out ? cfg->layers : run->hidden_index;
    sdrt_tensor *x = embed(e, run);
    if (x && run->hidden_index == 0 && emit(e, x, run->final_ln, run->hidden_out)) {
        sdrt_nn_drop(e->nn, x);
        x = NULL;
    }
    for (int i = 0; x && i < need; i++) {
        x = encoder_layer(e, x, i);
        if (x && i + 1 == run->hidden_index && emit(e, x, run->final_ln, run->hidden_out)) {
            sdrt_nn_drop(e->nn, x);
            x = NULL;
        }
    }
    int ok = x != NULL;
    if (x && run->pooled_out) {
        size_t n = (size_t)run->batch * (size_t)run->len * (size_t)cfg->hidden;
        float *last = malloc(n * sizeof *last);
        if (!last) {
            e->st = SDRT_RESOURCE_EXHAUSTED;
            cond_set_err(e->err, e->errlen, "text encoder: out of memory");
        } else if (emit(e, x, 1, last) == 0) {
            pooled(e, run, last);
        }
        free(last);
    }
    sdrt_nn_drop(e->nn, x);
    if (!ok && e->st == SDRT_OK && sdrt_nn_status(e->nn, NULL) == SDRT_OK) {
        e->st = SDRT_INTERNAL;
        cond_set_err(e->err, e->errlen, "text encoder: failed without a reason");
    }
    return finish(e);
}

sdrt_status clip_encode(sdrt_nn *nn, const clip_config *cfg, clip_weight_fn weight, void *ctx,
                        const clip_run *run, char *err, size_t errlen) {
    if (run->len > cfg->max_positions || run->hidden_index < 0 || run->hidden_index > cfg->layers) {
        cond_set_err(err, errlen, "text encoder: %d tokens (max %d) or hidden state %d (of %d) out of range", run->len,
                cfg->max_positions, run->hidden_index, cfg->layers);
        return SDRT_INVALID_ARGUMENT;
    }
    enc *e = calloc(1, sizeof *e);
    if (!e) return SDRT_RESOURCE_EXHAUSTED;
    *e = (enc){.nn = nn, .cfg = cfg, .weight = weight, .ctx = ctx, .err = err, .errlen = errlen, .st = SDRT_OK};
    sdrt_status st = encode_run(e, run);
    free(e);
    return st;
}
