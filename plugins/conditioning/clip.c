/* clip.c - CLIP text transformer as a builder over the SDK block library:
 * token + position embeddings, CLIP encoder layers (pre-LN, causal
 * self-attention), final layer norm, pooled output and the optional text
 * projection, as transformers' modeling_clip.py. */
#include "clip.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cond_err.h"
#include "sdrt/half.h"
#include "sdrt/nn_blocks.h"

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

/* One encode: the layers it needs bound from the block library (their
 * converted parameters in `mem`), and the first failure. */
typedef struct enc {
    sdrt_nn *nn;
    const clip_config *cfg;
    sdrt_blk_loader L;
    sdrt_blk_mem *mem;
    sdrt_blk_clip_layer *layers;
    sdrt_blk_norm final_ln;
    sdrt_blk_linear proj;
    char *err;
    size_t errlen;
    sdrt_status st;
} enc;

static void fail(enc *e, sdrt_status st, const char *fmt, ...) SDRT_PRINTF(3, 4);
static void fail(enc *e, sdrt_status st, const char *fmt, ...) {
    if (e->st != SDRT_OK) return;
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    e->st = st;
    cond_set_err(e->err, e->errlen, "%s", msg);
}

/* Binds the first `nlayers` encoder layers, final_layer_norm when
 * `final_ln`, text_projection when `project`: only what the run reads. */
static int bind(enc *e, int nlayers, int final_ln, int project) {
    const clip_config *c = e->cfg;
    sdrt_blk_loader *L = &e->L;
    char p[SDRT_BLK_NAME];
    sdrt_blk_act act = c->act == CLIP_GELU ? SDRT_BLK_GELU : c->act == CLIP_GELU_TANH ? SDRT_BLK_GELU_TANH
                                                                                     : SDRT_BLK_QUICK_GELU;
    e->layers = nlayers > 0 ? sdrt_blk_alloc(L, (size_t)nlayers * sizeof *e->layers) : NULL;
    for (int i = 0; e->layers && i < nlayers; i++) {
        sdrt_blk_name(p, "text_model.encoder.layers", "%d", i);
        sdrt_blk_bind_clip_layer(L, p, &e->layers[i], c->hidden, c->heads, c->intermediate, c->eps, act, 1);
    }
    if (final_ln) e->final_ln = sdrt_blk_bind_norm(L, "text_model.final_layer_norm", c->hidden, 0, c->eps);
    if (project) {
        int64_t out = c->projection_dim > 0 ? c->projection_dim : c->hidden;
        e->proj = sdrt_blk_bind_linear(L, "text_projection", out, c->hidden, SDRT_BLK_BIAS_NONE, SDRT_BLK_LINEAR_2D);
    }
    if (L->status == SDRT_OK) return 0;
    fail(e, L->status, "%s", L->message);
    return -1;
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

/* An embedding table `name` of >= rows rows of width hidden, or NULL. */
static const sdrt_tensor *table(enc *e, const char *name, int64_t rows) {
    if (e->st != SDRT_OK) return NULL;
    const sdrt_tensor *t = e->L.get(e->L.ctx, name);
    if (!t) {
        fail(e, SDRT_NOT_FOUND, "text encoder: weight %s is missing", name);
        return NULL;
    }
    int ok = t->ndim == 2 && t->shape[1] == e->cfg->hidden && t->shape[0] >= rows &&
             (t->dtype == SDRT_DTYPE_F32 || t->dtype == SDRT_DTYPE_F16 || t->dtype == SDRT_DTYPE_BF16);
    if (!ok) {
        fail(e, SDRT_INVALID_ARGUMENT, "text encoder: %s must be [>= %lld, %d] float", name, (long long)rows,
             e->cfg->hidden);
        return NULL;
    }
    return t;
}

/* inputs_embeds + position_embeds, gathered on the host (no gather op). */
static sdrt_tensor *embed(enc *e, const clip_run *run) {
    const sdrt_tensor *tok = table(e, "text_model.embeddings.token_embedding.weight", 1);
    const sdrt_tensor *pos = table(e, "text_model.embeddings.position_embedding.weight", run->len);
    if (!tok || !pos) return NULL;
    int64_t d = e->cfg->hidden, n = (int64_t)run->batch * run->len;
    float *x = malloc((size_t)(n * d) * sizeof *x);
    if (!x) {
        fail(e, SDRT_RESOURCE_EXHAUSTED, "text encoder: out of memory for embeddings");
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) {
        int32_t id = run->ids[i];
        int64_t p = i % run->len;
        if (run->extra_rows && id >= run->extra_base && id - (int64_t)run->extra_base < run->n_extra) {
            const float *row = run->extra_rows + (id - (int64_t)run->extra_base) * d;
            for (int64_t k = 0; k < d; k++) x[i * d + k] = row[k] + host_at(pos, p, k);
            continue;
        }
        if (id < 0 || id >= tok->shape[0]) {
            free(x);
            fail(e, SDRT_INVALID_ARGUMENT, "text encoder: token id %d outside the vocabulary of %lld", id,
                 (long long)tok->shape[0]);
            return NULL;
        }
        for (int64_t k = 0; k < d; k++) x[i * d + k] = host_at(tok, id, k) + host_at(pos, p, k);
    }
    int64_t shape[3] = {run->batch, run->len, d};
    sdrt_tensor *t = sdrt_nn_from_host(e->nn, SDRT_DTYPE_F32, 3, shape, x);
    free(x);
    return t;
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
        fail(e, SDRT_RESOURCE_EXHAUSTED, "text encoder: out of memory");
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
    sdrt_tensor *y = x ? sdrt_blk_linear_fwd(e->nn, &e->proj, x) : NULL;
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
    sdrt_tensor *n = final_ln ? sdrt_blk_norm_fwd(e->nn, &e->final_ln, t, 0) : NULL;
    if (final_ln && !n) return -1;
    sdrt_status st = sdrt_nn_to_host_f32(e->nn, n ? n : t, out);
    sdrt_nn_drop(e->nn, n);
    return st == SDRT_OK ? 0 : -1;
}

/* The hidden state t (optionally through final_layer_norm) as a new device
 * tensor in *out: a copy of t when no norm applies, as t stays the
 * caller's. */
static int emit_dev(enc *e, const sdrt_tensor *t, int final_ln, sdrt_tensor **out) {
    *out = final_ln ? sdrt_blk_norm_fwd(e->nn, &e->final_ln, t, 0) : sdrt_nn_copy(e->nn, t, SDRT_DTYPE_F32);
    return *out ? 0 : -1;
}

/* The pooled output of the first sequence from `last` (final LN of the
 * last layer, [batch, len, d]) on the device: its EOS row, projected. */
static int pooled_dev(enc *e, const clip_run *run, const sdrt_tensor *last) {
    int64_t d = e->cfg->hidden;
    int p = pool_position(e->cfg, run->ids, run->len);
    sdrt_tensor first = sdrt_nn_view_slice(last, 0, 0, 1);
    sdrt_tensor row = sdrt_nn_view_slice(&first, 1, p, 1);
    int64_t shape[2] = {1, d};
    row = sdrt_nn_view_reshape(&row, 2, shape);
    sdrt_tensor *x = row.data ? sdrt_nn_copy(e->nn, &row, SDRT_DTYPE_F32) : NULL;
    if (!x || !run->project) {
        *run->pooled_dev = x;
        return x ? 0 : -1;
    }
    *run->pooled_dev = sdrt_blk_linear_fwd(e->nn, &e->proj, x);
    sdrt_nn_drop(e->nn, x);
    return *run->pooled_dev ? 0 : -1;
}

static sdrt_status finish(enc *e) {
    const char *msg = NULL;
    sdrt_status st = sdrt_nn_status(e->nn, &msg);
    if (e->st != SDRT_OK) return e->st;
    if (st != SDRT_OK) cond_set_err(e->err, e->errlen, "text encoder: %s", msg ? msg : "op failed");
    return st;
}

/* The requested hidden state `x` to the caller (host or device). */
static int emit_hidden(enc *e, const clip_run *run, const sdrt_tensor *x) {
    return run->hidden_dev ? emit_dev(e, x, run->final_ln, run->hidden_dev)
                           : emit(e, x, run->final_ln, run->hidden_out);
}

static sdrt_status encode_run(enc *e, const clip_run *run) {
    const clip_config *cfg = e->cfg;
    int want_pooled = run->hidden_dev ? run->pooled_dev != NULL : run->pooled_out != NULL;
    int need = want_pooled ? cfg->layers : run->hidden_index;
    if (bind(e, need, run->final_ln || want_pooled, want_pooled && run->project)) return finish(e);
    sdrt_tensor *x = embed(e, run);
    if (x && run->hidden_index == 0 && emit_hidden(e, run, x)) {
        sdrt_nn_drop(e->nn, x);
        x = NULL;
    }
    for (int i = 0; x && i < need; i++) {
        x = sdrt_blk_clip_layer_fwd(e->nn, &e->layers[i], x);
        if (x && i + 1 == run->hidden_index && emit_hidden(e, run, x)) {
            sdrt_nn_drop(e->nn, x);
            x = NULL;
        }
    }
    int ok = x != NULL;
    if (x && want_pooled && run->hidden_dev) {
        sdrt_tensor *last = sdrt_blk_norm_fwd(e->nn, &e->final_ln, x, 0);
        if (last) pooled_dev(e, run, last);
        sdrt_nn_drop(e->nn, last);
    } else if (x && want_pooled) {
        size_t n = (size_t)run->batch * (size_t)run->len * (size_t)cfg->hidden;
        float *last = malloc(n * sizeof *last);
        if (!last) fail(e, SDRT_RESOURCE_EXHAUSTED, "text encoder: out of memory");
        else if (emit(e, x, 1, last) == 0) pooled(e, run, last);
        free(last);
    }
    sdrt_nn_drop(e->nn, x);
    if (!ok && e->st == SDRT_OK && sdrt_nn_status(e->nn, NULL) == SDRT_OK)
        fail(e, SDRT_INTERNAL, "text encoder: failed without a reason");
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
    *e = (enc){.nn = nn, .cfg = cfg, .err = err, .errlen = errlen, .st = SDRT_OK};
    sdrt_blk_loader_init(&e->L, "text encoder", weight, ctx, &e->mem);
    sdrt_status st = encode_run(e, run);
    /* The bound structs may go: no tensor left (temporaries are dropped,
     * device outputs are new tensors) refers to their memory. */
    sdrt_blk_mem_free(e->mem);
    free(e);
    return st;
}
