/* safety_net.c - the network of StableDiffusionSafetyChecker: transformers'
 * CLIPVisionModel (patch embedding conv, class token, position embeddings,
 * pre_layrnorm, CLIP encoder layers without a mask, post_layernorm of the
 * class token) and visual_projection, over the block library (the text
 * encoder's CLIP layer) on the compute backend; plus loading and checking
 * the folder. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "safety.h"
#include "sdrt/half.h"
#include "sdrt/weight_store.h"

#define SC_CFG "safety_checker/config.json"

/* ---- config -------------------------------------------------------------------- */

static int get_int(const cJSON *o, const char *key, int def, int lo, int hi, int *out, char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return *out = def, 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi) {
        snprintf(err, errlen, SC_CFG ": %s must be an integer in [%d, %d]", key, lo, hi);
        return -1;
    }
    *out = (int)v->valuedouble;
    return 0;
}

int sc_config_parse(const char *json, sc_config *c, char *err, size_t errlen) {
    cJSON *j = json ? cJSON_Parse(json) : NULL;
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        snprintf(err, errlen, SC_CFG ": not a JSON object");
        return -1;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "vision_config");
    if (!cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(j, "vision_config_dict");
    if (!cJSON_IsObject(v)) {
        cJSON_Delete(j);
        snprintf(err, errlen, SC_CFG ": vision_config is missing (not a StableDiffusionSafetyChecker CLIPConfig)");
        return -1;
    }
    memset(c, 0, sizeof *c);
    /* transformers' CLIPVisionConfig / CLIPConfig defaults. */
    int rc = get_int(v, "hidden_size", 768, 1, 16384, &c->hidden, err, errlen) ||
             get_int(v, "intermediate_size", 3072, 1, 65536, &c->intermediate, err, errlen) ||
             get_int(v, "num_attention_heads", 12, 1, 256, &c->heads, err, errlen) ||
             get_int(v, "num_hidden_layers", 12, 1, 256, &c->layers, err, errlen) ||
             get_int(v, "image_size", 224, 1, 4096, &c->image_size, err, errlen) ||
             get_int(v, "patch_size", 32, 1, 4096, &c->patch, err, errlen) ||
             get_int(v, "num_channels", 3, 3, 3, &c->channels, err, errlen) ||
             get_int(j, "projection_dim", 512, 1, 16384, &c->projection_dim, err, errlen);
    if (!rc && c->hidden % c->heads) {
        snprintf(err, errlen, SC_CFG ": vision_config.hidden_size %d is not a multiple of num_attention_heads %d",
                 c->hidden, c->heads);
        rc = -1;
    }
    if (!rc && c->image_size % c->patch) {
        snprintf(err, errlen, SC_CFG ": vision_config.image_size %d is not a multiple of patch_size %d", c->image_size,
                 c->patch);
        rc = -1;
    }
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(v, "layer_norm_eps");
    c->eps = cJSON_IsNumber(eps) && eps->valuedouble > 0 ? (float)eps->valuedouble : 1e-5f;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(v, "hidden_act");
    const char *a = cJSON_IsString(act) ? act->valuestring : "quick_gelu";
    if (!rc) {
        if (!strcmp(a, "quick_gelu")) c->act = SDRT_BLK_QUICK_GELU;
        else if (!strcmp(a, "gelu")) c->act = SDRT_BLK_GELU;
        else if (!strcmp(a, "gelu_new") || !strcmp(a, "gelu_pytorch_tanh")) c->act = SDRT_BLK_GELU_TANH;
        else {
            snprintf(err, errlen, SC_CFG ": vision_config.hidden_act \"%s\" is not supported (quick_gelu, gelu, gelu_new)", a);
            rc = -1;
        }
    }
    cJSON_Delete(j);
    return rc ? -1 : 0;
}

/* ---- loading ------------------------------------------------------------------ */

static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", a, b);
    return s;
}

static int exists(const char *path, int dir) {
    struct stat st;
    return stat(path, &st) == 0 && (dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
}

static char *read_json(const char *dir, const char *rel, const sdrt_file_scope *scope, sdrt_status *st, char *err,
                       size_t errlen) {
    char *path = join(dir, rel);
    if (!path) {
        *st = SDRT_RESOURCE_EXHAUSTED;
        return NULL;
    }
    char *text = sdrt_file_read_all(path, rel, scope, 1 << 20, NULL, st, err, errlen);
    free(path);
    /* A missing or unreadable file of an existing checker folder is a broken model. */
    if (!text && *st == SDRT_NOT_FOUND) *st = SDRT_INVALID_ARGUMENT;
    return text;
}

static const sdrt_tensor *lookup(void *ctx, const char *name) {
    const sc_model *m = ctx;
    const st_tensor *t = st_find(m->st, name);
    if (!t) return NULL;
    const sdrt_tensor *v = &m->views[t - m->st->tensors];
    return v->data ? v : NULL;
}

static void make_views(sc_model *m) {
    for (size_t i = 0; i < m->st->n_tensors; i++) {
        const st_tensor *t = &m->st->tensors[i];
        sdrt_tensor *v = &m->views[i];
        int dt = st_to_sdrt_dtype(t->dtype);
        if (dt != SDRT_DTYPE_F32 && dt != SDRT_DTYPE_F16 && dt != SDRT_DTYPE_BF16) continue; /* data NULL: absent */
        v->struct_size = sizeof *v;
        v->dtype = (sdrt_dtype)dt;
        v->ndim = t->ndim;
        int64_t s = 1;
        for (int d = SDRT_MAX_DIMS - 1; d >= 0; d--) {
            v->shape[d] = d < t->ndim ? t->shape[d] : 1;
            v->strides[d] = d < t->ndim ? s : 0;
            if (d < t->ndim) s *= t->shape[d];
        }
        v->data = (void *)t->data;
    }
}

static float at(const sdrt_tensor *t, int64_t i) {
    switch (t->dtype) {
    case SDRT_DTYPE_F16: return sdrt_f16_to_f32(((const uint16_t *)t->data)[i]);
    case SDRT_DTYPE_BF16: return sdrt_bf16_to_f32(((const uint16_t *)t->data)[i]);
    default: return ((const float *)t->data)[i];
    }
}

/* "<name>" [rows, projection_dim] as float32 rows scaled to unit length
 * (torch's normalize: x / max(||x||, 1e-12)), and its thresholds [rows]. */
static float *concept_rows(sc_model *m, sdrt_blk_loader *L, const char *name, const char *wname, int *rows,
                           float **thr) {
    const st_tensor *raw = st_find(m->st, name);
    if (!raw && L->status == SDRT_OK) {
        sdrt_blk_fail(L, SDRT_NOT_FOUND, "weight %s is missing", name);
        return NULL;
    }
    int64_t shape[2] = {raw && raw->ndim == 2 ? raw->shape[0] : -1, m->cfg.projection_dim};
    if (raw && (raw->ndim != 2 || raw->shape[0] < 1 || raw->shape[0] > 4096)) {
        sdrt_blk_fail(L, SDRT_INVALID_ARGUMENT, "weight %s must be [concepts, %d] with 1..4096 concepts", name,
                      m->cfg.projection_dim);
        return NULL;
    }
    const sdrt_tensor *e = sdrt_blk_bind_weight(L, "", name, 2, shape);
    const sdrt_tensor *w = e ? sdrt_blk_bind_param(L, "", wname, shape[0], 1) : NULL;
    if (!w) return NULL;
    int64_t n = shape[0], d = shape[1];
    float *rows_out = sdrt_blk_alloc(L, (size_t)(n * d) * sizeof(float));
    *thr = sdrt_blk_alloc(L, (size_t)n * sizeof(float));
    if (!rows_out || !*thr) return NULL;
    for (int64_t r = 0; r < n; r++) {
        double ss = 0;
        for (int64_t k = 0; k < d; k++) {
            float x = at(e, r * d + k);
            rows_out[r * d + k] = x;
            ss += (double)x * x;
        }
        float norm = (float)sqrt(ss);
        if (norm < 1e-12f) norm = 1e-12f;
        for (int64_t k = 0; k < d; k++) rows_out[r * d + k] /= norm;
        (*thr)[r] = at(w, r);
    }
    *rows = (int)n;
    return rows_out;
}

static void bind_all(sc_model *m, sdrt_blk_loader *L) {
    const sc_config *c = &m->cfg;
    /* transformers 4 (every SD1.x/SD2 checkpoint) saved CLIPVisionModel's
     * tower as "vision_model.vision_model.*", transformers 5 as
     * "vision_model.*": take whichever the file has. */
    const char *tower = st_find(m->st, "vision_model.vision_model.embeddings.patch_embedding.weight")
                         ? "vision_model.vision_model" : "vision_model";
    char n1[96], n2[96], n3[96], n4[96], n5[96], n6[96];
    snprintf(n1, sizeof n1, "%s.embeddings.patch_embedding", tower);
    snprintf(n2, sizeof n2, "%s.embeddings", tower);
    snprintf(n3, sizeof n3, "%s.embeddings.position_embedding", tower);
    snprintf(n4, sizeof n4, "%s.pre_layrnorm", tower);
    snprintf(n5, sizeof n5, "%s.encoder.layers", tower);
    snprintf(n6, sizeof n6, "%s.post_layernorm", tower);
    int grid = c->image_size / c->patch;
    int64_t pshape[4] = {c->hidden, c->channels, c->patch, c->patch};
    int64_t posshape[2] = {(int64_t)grid * grid + 1, c->hidden};
    m->patch_w = sdrt_blk_bind_weight(L, n1, "weight", 4, pshape);
    m->class_emb = sdrt_blk_bind_param(L, n2, "class_embedding", c->hidden, 1);
    m->pos_emb = sdrt_blk_bind_weight(L, n3, "weight", 2, posshape);
    m->pre_ln = sdrt_blk_bind_norm(L, n4, c->hidden, 0, c->eps);
    m->layers = sdrt_blk_alloc(L, (size_t)c->layers * sizeof *m->layers);
    for (int i = 0; m->layers && i < c->layers; i++) {
        char p[SDRT_BLK_NAME];
        sdrt_blk_name(p, n5, "%d", i);
        sdrt_blk_bind_clip_layer(L, p, &m->layers[i], c->hidden, c->heads, c->intermediate, c->eps, c->act, 0);
    }
    m->post_ln = sdrt_blk_bind_norm(L, n6, c->hidden, 0, c->eps);
    m->proj = sdrt_blk_bind_linear(L, "visual_projection", c->projection_dim, c->hidden, SDRT_BLK_BIAS_NONE,
                                   SDRT_BLK_LINEAR_2D);
    m->concept_embeds = concept_rows(m, L, "concept_embeds", "concept_embeds_weights", &m->n_concepts, &m->concept_thr);
    m->special_embeds = concept_rows(m, L, "special_care_embeds", "special_care_embeds_weights", &m->n_special,
                                     &m->special_thr);
}

static sdrt_status open_weights(sc_model *m, const sdrt_file_scope *scope, char *err, size_t errlen) {
    static const char *const names[] = {"model.safetensors", "model.fp16.safetensors"};
    for (size_t i = 0; i < 2; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "safety_checker/%s", names[i]);
        char *path = join(m->dir, rel);
        if (!path) return SDRT_RESOURCE_EXHAUSTED;
        if (!exists(path, 0)) {
            free(path);
            continue;
        }
        sdrt_status st = st_open_scoped(path, rel, scope, &m->st, err, errlen);
        free(path);
        if (st == SDRT_NOT_FOUND) st = SDRT_INVALID_ARGUMENT;
        return st;
    }
    char *bin = join(m->dir, "safety_checker/pytorch_model.bin");
    int has_bin = bin && exists(bin, 0);
    free(bin);
    snprintf(err, errlen, has_bin ? "safety_checker/pytorch_model.bin: only pickle weights; convert them to "
                                    "model.safetensors"
                                  : "safety_checker/model.safetensors: missing (the folder has no weights)");
    return has_bin ? SDRT_UNSUPPORTED : SDRT_INVALID_ARGUMENT;
}

sdrt_status sc_model_open(const char *dir, const sdrt_file_scope *scope, sc_model **out, char *err, size_t errlen) {
    *out = NULL;
    char *scdir = join(dir, "safety_checker");
    int has = scdir && exists(scdir, 1);
    free(scdir);
    if (!has) {
        snprintf(err, errlen, "%s has no safety_checker/ folder", dir);
        return SDRT_NOT_FOUND;
    }
    sc_model *m = calloc(1, sizeof *m);
    if (!m || !(m->dir = strdup(dir))) {
        free(m);
        snprintf(err, errlen, "safety checker: out of memory");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    sdrt_status st = SDRT_OK;
    char *cfg = read_json(dir, SC_CFG, scope, &st, err, errlen);
    if (cfg && sc_config_parse(cfg, &m->cfg, err, errlen)) st = SDRT_INVALID_ARGUMENT;
    free(cfg);
    char *fe = st == SDRT_OK ? read_json(dir, "feature_extractor/preprocessor_config.json", scope, &st, err, errlen)
                             : NULL;
    if (fe && sc_prep_parse(fe, &m->prep, err, errlen)) st = SDRT_INVALID_ARGUMENT;
    free(fe);
    int oh = 0, ow = 0;
    if (st == SDRT_OK) sc_prep_out_size(&m->prep, &oh, &ow);
    if (st == SDRT_OK && (oh != m->cfg.image_size || ow != m->cfg.image_size)) {
        snprintf(err, errlen, "feature_extractor/preprocessor_config.json: its images are %dx%d, but "
                 SC_CFG " has image_size %d", ow, oh, m->cfg.image_size);
        st = SDRT_INVALID_ARGUMENT;
    }
    if (st == SDRT_OK) st = open_weights(m, scope, err, errlen);
    if (st == SDRT_OK && !(m->views = calloc(m->st->n_tensors ? m->st->n_tensors : 1, sizeof *m->views))) {
        snprintf(err, errlen, "safety checker: out of memory");
        st = SDRT_RESOURCE_EXHAUSTED;
    }
    if (st == SDRT_OK) {
        make_views(m);
        sdrt_blk_loader L;
        sdrt_blk_loader_init(&L, "safety_checker/model.safetensors:", lookup, m, &m->mem);
        bind_all(m, &L);
        if (L.status != SDRT_OK) {
            /* A missing or misshapen weight is a broken model folder, not a missing model. */
            st = L.status == SDRT_RESOURCE_EXHAUSTED ? L.status : SDRT_INVALID_ARGUMENT;
            snprintf(err, errlen, "%s", L.message);
        }
    }
    /* Resident device copies shared by every call on this checker (no
     * budget: the checker is small next to the pipeline it guards). */
    if (st == SDRT_OK && m->st->map && (m->ws = sdrt_weight_store_new(NULL, NULL)) &&
        sdrt_weight_store_add_range(m->ws, m->st->map, m->st->map_len)) {
        sdrt_weight_store_free(m->ws);
        m->ws = NULL;
    }
    if (st != SDRT_OK) {
        sc_model_close(m);
        return st;
    }
    *out = m;
    return SDRT_OK;
}

void sc_model_close(sc_model *m) {
    if (!m) return;
    sdrt_weight_store_free(m->ws);
    sdrt_blk_mem_free(m->mem);
    free(m->views);
    st_close(m->st);
    free(m->dir);
    free(m);
}

/* ---- forward ------------------------------------------------------------------ */

/* [n, 1 + grid^2, hidden]: class token then the patches, plus positions. */
static sdrt_tensor *embeddings(const sc_model *m, sdrt_nn *nn, const float *pixels, int n) {
    const sc_config *c = &m->cfg;
    int64_t g = c->image_size / c->patch, d = c->hidden;
    int64_t xs[4] = {n, c->channels, c->image_size, c->image_size};
    sdrt_tensor *x = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 4, xs, pixels);
    sdrt_tensor *pe = x ? sdrt_nn_conv2d(nn, x, sdrt_nn_weight(nn, m->patch_w), NULL, c->patch, 0) : NULL;
    sdrt_nn_drop(nn, x);
    if (!pe) return NULL;
    int64_t flat[3] = {n, d, g * g};
    int perm[3] = {0, 2, 1};
    sdrt_tensor v = sdrt_nn_view_reshape(pe, 3, flat);
    sdrt_tensor tv = sdrt_nn_view_permute(&v, perm);
    sdrt_tensor *tokens = sdrt_nn_copy(nn, &tv, SDRT_DTYPE_F32);
    sdrt_nn_drop(nn, pe);
    float *cls = tokens ? malloc((size_t)(n * d) * sizeof *cls) : NULL;
    for (int64_t i = 0; cls && i < n * d; i++) cls[i] = at(m->class_emb, i % d);
    int64_t cs[3] = {n, 1, d};
    sdrt_tensor *ct = cls ? sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 3, cs, cls) : NULL;
    free(cls);
    sdrt_tensor *cat = ct ? sdrt_nn_concat(nn, ct, tokens, 1) : NULL;
    sdrt_nn_drop(nn, ct);
    sdrt_nn_drop(nn, tokens);
    sdrt_tensor *e = cat ? sdrt_nn_add(nn, cat, sdrt_nn_weight(nn, m->pos_emb)) : NULL;
    sdrt_nn_drop(nn, cat);
    return e;
}

int sc_model_embed(const sc_model *m, sdrt_nn *nn, const float *pixels, int n, float *embeds, char *err,
                   size_t errlen) {
    sdrt_tensor *x = embeddings(m, nn, pixels, n);
    sdrt_tensor *h = x ? sdrt_blk_norm_fwd(nn, &m->pre_ln, x, 0) : NULL;
    sdrt_nn_drop(nn, x);
    for (int i = 0; h && i < m->cfg.layers; i++) h = sdrt_blk_clip_layer_fwd(nn, &m->layers[i], h);
    sdrt_tensor *pooled = NULL;
    if (h) {
        /* pooled_output = post_layernorm(last_hidden_state[:, 0, :]) */
        sdrt_tensor first = sdrt_nn_view_slice(h, 1, 0, 1);
        int64_t ps[2] = {n, m->cfg.hidden};
        sdrt_tensor *row = sdrt_nn_copy(nn, &first, SDRT_DTYPE_F32);
        sdrt_tensor rv = row ? sdrt_nn_view_reshape(row, 2, ps) : first;
        pooled = row ? sdrt_blk_norm_fwd(nn, &m->post_ln, &rv, 0) : NULL;
        sdrt_nn_drop(nn, row);
    }
    sdrt_nn_drop(nn, h);
    sdrt_tensor *emb = pooled ? sdrt_blk_linear_fwd(nn, &m->proj, pooled) : NULL;
    sdrt_nn_drop(nn, pooled);
    int ok = emb && sdrt_nn_to_host_f32(nn, emb, embeds) == SDRT_OK;
    sdrt_nn_drop(nn, emb);
    if (ok) return 0;
    const char *msg = NULL;
    sdrt_nn_status(nn, &msg);
    snprintf(err, errlen, "safety checker: %s", msg && *msg ? msg : "the vision tower failed");
    return -1;
}
