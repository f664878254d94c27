/* pipeline.c - diffusers' encode_prompt (StableDiffusionPipeline and
 * StableDiffusionXLPipeline, 0.27) plus A1111 weighting and chunking.
 *
 * Plain prompts (no syntax, <= 75 tokens) take exactly the diffusers path:
 * one 77-token sequence per tokenizer, no reweighting. Other prompts are
 * chunked (prompt.c), each chunk encoded as its own sequence, reweighted
 * (A1111 "Original" emphasis) and the chunks concatenated along the
 * sequence. */
#include "pipeline.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cond_err.h"

/* ---- loading --------------------------------------------------------------- */

static int is_regular(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* The model's own tokenizer files (opened under src->scope: they came with
 * the request's model), else the fallback folder: the deployment's
 * tokenizer_dir or the CLIP tokenizer shipped with sdrt, trusted (no root
 * check) but still opened without blocking. */
static bpe_tokenizer *load_tokenizer(const cond_source *src, const char *comp, const char *fallback,
                                     sdrt_status *st, char *err, size_t errlen) {
    const char *v = src->file_path(src->ctx, comp, "vocab.json");
    const char *m = src->file_path(src->ctx, comp, "merges.txt");
    if (v && m) {
        const char *c = src->file_path(src->ctx, comp, "tokenizer_config.json");
        const char *s = src->file_path(src->ctx, comp, "special_tokens_map.json");
        return bpe_load_scoped(v, m, c, s, src->scope, st, err, errlen);
    }
    if (!fallback) {
        *st = SDRT_NOT_FOUND;
        cond_set_err(err, errlen, "%s: the model has no vocab.json/merges.txt and no fallback tokenizer "
                "folder is configured (tokenizer_dir), nor was one installed with sdrt", comp);
        return NULL;
    }
    char paths[4][1024];
    const char *names[4] = {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"};
    for (int i = 0; i < 4; i++) snprintf(paths[i], sizeof paths[i], "%s/%s", fallback, names[i]);
    int has_cfg = is_regular(paths[2]), has_map = is_regular(paths[3]);
    return bpe_load_scoped(paths[0], paths[1], has_cfg ? paths[2] : NULL, has_map ? paths[3] : NULL, NULL, st, err,
                           errlen);
}

static int model_force_zeros(const cond_source *src, int sdxl_style) {
    cJSON *root = src->model_index_json ? cJSON_Parse(src->model_index_json) : NULL;
    const cJSON *fz = cJSON_GetObjectItemCaseSensitive(root, "force_zeros_for_empty_prompt");
    int r = cJSON_IsBool(fz) ? cJSON_IsTrue(fz) : (sdxl_style && !root);
    cJSON_Delete(root);
    return r;
}

static int has_projection(const char *config) {
    cJSON *root = cJSON_Parse(config);
    const cJSON *arch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "architectures"), 0);
    int r = cJSON_IsString(arch) && strstr(arch->valuestring, "WithProjection") != NULL;
    cJSON_Delete(root);
    return r;
}

sdrt_status cond_model_load(const cond_source *src, cond_model **out, char *err, size_t errlen) {
    static const char *comps[2] = {"text_encoder", "text_encoder_2"};
    static const char *toks[2] = {"tokenizer", "tokenizer_2"};
    cond_model *m = calloc(1, sizeof *m);
    if (!m) return SDRT_RESOURCE_EXHAUSTED;
    for (int i = 0; i < 2; i++) {
        const char *cfg = src->config_json(src->ctx, comps[i]);
        if (!cfg) continue;
        cond_encoder *e = &m->enc[m->n];
        snprintf(e->component, sizeof e->component, "%s", comps[i]);
        char sub[384];
        if (clip_config_parse(cfg, &e->cfg, sub, sizeof sub)) {
            cond_set_err(err, errlen, "%s: %s", comps[i], sub);
            cond_model_free(m);
            return SDRT_INVALID_ARGUMENT;
        }
        e->has_projection = has_projection(cfg);
        sdrt_status tst = SDRT_INVALID_ARGUMENT;
        e->tok = load_tokenizer(src, toks[i], src->fallback_tokenizer_dir[i], &tst, err, errlen);
        if (!e->tok) {
            cond_model_free(m);
            return tst == SDRT_OK ? SDRT_INVALID_ARGUMENT : tst;
        }
        m->n++;
        if (i == 1) m->sdxl_style = 1;
    }
    if (m->n == 0) {
        cond_model_free(m);
        cond_set_err(err, errlen, "model has no text_encoder component");
        return SDRT_NOT_FOUND;
    }
    m->force_zeros = model_force_zeros(src, m->sdxl_style);
    *out = m;
    return SDRT_OK;
}

void cond_model_free(cond_model *m) {
    if (!m) return;
    for (int i = 0; i < 2; i++) bpe_free(m->enc[i].tok);
    free(m);
}

/* ---- one encoder over a set of chunks ------------------------------------ */

typedef struct weight_ctx {
    const cond_source *src;
    const char *component;
} weight_ctx;

static const sdrt_tensor *weight_lookup(void *ctx, const char *name) {
    weight_ctx *w = ctx;
    return w->src->tensor(w->src->ctx, w->component, name);
}

typedef struct side {
    prompt_chunks chunks[2];   /* per encoder */
    int weighted;              /* A1111 emphasis applies */
    int zeros;                 /* force_zeros: no encoding at all */
    float *hidden[2];          /* [nchunks, len, D_e] */
    float *pooled;             /* [P] from the first chunk, or NULL */
    /* On the device instead (nn set): tensors of nn, or NULL. */
    sdrt_nn *nn;
    sdrt_tensor *hidden_dev[2]; /* [nchunks, len, D_e] */
    sdrt_tensor *pooled_dev;    /* [1, P] */
    emb_use emb[2];            /* textual-inversion tokens per encoder */
} side;

/* Which hidden state diffusers returns, and whether final LN applies. */
static void hidden_choice(const cond_model *m, const cond_encoder *e, int clip_skip, int *index, int *ln) {
    if (m->sdxl_style) {
        *index = e->cfg.layers - 1 - clip_skip; /* hidden_states[-(clip_skip + 2)] */
        *ln = 0;
    } else {
        *index = e->cfg.layers - clip_skip;     /* [-(clip_skip + 1)], or last_hidden_state */
        *ln = 1;
    }
}

static sdrt_status run_encoder(const cond_model *m, const cond_source *src, sdrt_nn *nn, int ei, side *s,
                               int clip_skip, int want_pooled, char *err, size_t errlen) {
    const cond_encoder *e = &m->enc[ei];
    prompt_chunks *c = &s->chunks[ei];
    if (s->nn) {
        weight_ctx wc = {src, e->component};
        clip_run run = {c->ids, (int)c->nchunks, c->len, 0, 0, NULL, NULL, e->has_projection,
                        &s->hidden_dev[ei], want_pooled ? &s->pooled_dev : NULL,
                        s->emb[ei].rows, s->emb[ei].n_rows, s->emb[ei].base};
        hidden_choice(m, e, clip_skip, &run.hidden_index, &run.final_ln);
        char sub[384];
        sdrt_status st = clip_encode(nn, &e->cfg, weight_lookup, &wc, &run, sub, sizeof sub);
        if (st != SDRT_OK) cond_set_err(err, errlen, "%s: %s", e->component, sub);
        return st;
    }
    size_t per = (size_t)c->len * (size_t)e->cfg.hidden;
    s->hidden[ei] = malloc(c->nchunks * per * sizeof(float));
    float *pooled = NULL;
    int pdim = e->has_projection && e->cfg.projection_dim ? e->cfg.projection_dim : e->cfg.hidden;
    if (want_pooled) pooled = malloc(c->nchunks * (size_t)pdim * sizeof(float));
    if (!s->hidden[ei] || (want_pooled && !pooled)) {
        free(pooled);
        cond_set_err(err, errlen, "conditioning: out of memory");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    weight_ctx wc = {src, e->component};
    clip_run run = {c->ids, (int)c->nchunks, c->len, 0, 0, s->hidden[ei], pooled, e->has_projection, NULL, NULL,
                    s->emb[ei].rows, s->emb[ei].n_rows, s->emb[ei].base};
    hidden_choice(m, e, clip_skip, &run.hidden_index, &run.final_ln);
    char sub[384];
    sdrt_status st = clip_encode(nn, &e->cfg, weight_lookup, &wc, &run, sub, sizeof sub);
    if (st != SDRT_OK) cond_set_err(err, errlen, "%s: %s", e->component, sub);
    if (st == SDRT_OK && pooled) {
        s->pooled = malloc((size_t)pdim * sizeof(float));
        if (s->pooled) memcpy(s->pooled, pooled, (size_t)pdim * sizeof(float));
        else st = SDRT_RESOURCE_EXHAUSTED;
    }
    free(pooled);
    return st;
}

/* A1111 "Original" emphasis on one chunk z[len, d]: z *= w per token, then
 * rescale so the chunk's mean is what it was before. */
static void emphasize(float *z, const float *w, int len, int d) {
    double before = 0, after = 0;
    size_t n = (size_t)len * (size_t)d;
    for (size_t i = 0; i < n; i++) before += z[i];
    for (int t = 0; t < len; t++)
        for (int k = 0; k < d; k++) z[(size_t)t * d + k] *= w[t];
    for (size_t i = 0; i < n; i++) after += z[i];
    if (after == 0) return;
    float ratio = (float)(before / after);
    for (size_t i = 0; i < n; i++) z[i] *= ratio;
}

static int all_ones(const float *w, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (w[i] != 1.0f) return 0;
    return 1;
}

static void apply_weights(const cond_model *m, side *s) {
    if (!s->weighted) return;
    for (int ei = 0; ei < m->n; ei++) {
        prompt_chunks *c = &s->chunks[ei];
        int d = m->enc[ei].cfg.hidden;
        for (size_t k = 0; k < c->nchunks; k++) {
            const float *w = c->weights + k * (size_t)c->len;
            if (!all_ones(w, (size_t)c->len))
                emphasize(s->hidden[ei] + k * (size_t)c->len * (size_t)d, w, c->len, d);
        }
    }
}

/* emphasize on the device: chunk z [len, d] -> a new tensor [len, d]. The
 * per-token sums come back through a matmul with ones (2 x len floats,
 * not the features) and are added in double as on the host. */
static sdrt_tensor *emphasize_dev(sdrt_nn *nn, const sdrt_tensor *z, const float *w, int len,
                                  const sdrt_tensor *ones) {
    int64_t wshape[2] = {len, 1};
    sdrt_tensor *wt = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 2, wshape, w);
    sdrt_tensor *zw = wt ? sdrt_nn_mul(nn, z, wt) : NULL;
    sdrt_nn_drop(nn, wt);
    sdrt_tensor *sb = zw ? sdrt_nn_matmul(nn, z, ones, 0, 1.0f) : NULL;
    sdrt_tensor *sa = sb ? sdrt_nn_matmul(nn, zw, ones, 0, 1.0f) : NULL;
    float *part = sa ? malloc(2 * (size_t)len * sizeof *part) : NULL;
    int ok = part && sdrt_nn_to_host_f32(nn, sb, part) == SDRT_OK && sdrt_nn_to_host_f32(nn, sa, part + len) == SDRT_OK;
    sdrt_nn_drop(nn, sb);
    sdrt_nn_drop(nn, sa);
    double before = 0, after = 0;
    for (int t = 0; ok && t < len; t++) before += part[t], after += part[len + t];
    free(part);
    if (!ok || after == 0) {
        if (!ok) sdrt_nn_drop(nn, zw);
        return ok ? zw : NULL;
    }
    sdrt_tensor *out = sdrt_nn_scale(nn, zw, (float)(before / after), 0.0f);
    sdrt_nn_drop(nn, zw);
    return out;
}

/* apply_weights for hidden states on the device: each encoder's
 * [nchunks, len, d] is rebuilt chunk by chunk. 0, or -1 (nn failed). */
static int apply_weights_dev(const cond_model *m, side *s) {
    if (!s->weighted) return 0;
    for (int ei = 0; ei < m->n; ei++) {
        prompt_chunks *c = &s->chunks[ei];
        int d = m->enc[ei].cfg.hidden, len = c->len;
        float *one = malloc((size_t)d * sizeof *one);
        for (int k = 0; one && k < d; k++) one[k] = 1.0f;
        int64_t oshape[2] = {d, 1}, cshape[2] = {len, d}, pshape[3] = {1, len, d};
        sdrt_tensor *ones = one ? sdrt_nn_from_host(s->nn, SDRT_DTYPE_F32, 2, oshape, one) : NULL;
        free(one);
        sdrt_tensor *acc = NULL;
        int ok = ones != NULL;
        for (size_t k = 0; ok && k < c->nchunks; k++) {
            const float *w = c->weights + k * (size_t)len;
            sdrt_tensor sl = sdrt_nn_view_slice(s->hidden_dev[ei], 0, (int64_t)k, 1);
            sdrt_tensor z = sdrt_nn_view_reshape(&sl, 2, cshape);
            sdrt_tensor *piece = !z.data ? NULL
                                 : all_ones(w, (size_t)len) ? sdrt_nn_copy(s->nn, &z, SDRT_DTYPE_F32)
                                                            : emphasize_dev(s->nn, &z, w, len, ones);
            sdrt_tensor pv = piece ? sdrt_nn_view_reshape(piece, 3, pshape) : (sdrt_tensor){0};
            sdrt_tensor *next = !piece ? NULL : acc ? sdrt_nn_concat(s->nn, acc, &pv, 0) : sdrt_nn_copy(s->nn, &pv, SDRT_DTYPE_F32);
            sdrt_nn_drop(s->nn, piece);
            sdrt_nn_drop(s->nn, acc);
            acc = next;
            ok = acc != NULL;
        }
        sdrt_nn_drop(s->nn, ones);
        if (!ok) {
            sdrt_nn_drop(s->nn, acc);
            return -1;
        }
        sdrt_nn_drop(s->nn, s->hidden_dev[ei]);
        s->hidden_dev[ei] = acc;
    }
    return 0;
}

/* ---- tokenizing both sides ----------------------------------------------- */

static int emb_tokenize(void *ctx, bpe_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n) {
    return emb_encode(ctx, t, text, len, ids, n);
}

static int emb_group(void *ctx, int32_t id) {
    return emb_group_at(ctx, id);
}

static int count_tokens(emb_use *u, bpe_tokenizer *t, const char *text, size_t *n) {
    int32_t *ids;
    int r = emb_encode(u, t, text, strlen(text), &ids, n);
    if (r == 0) free(ids);
    return r;
}

/* Chunks `p` for every encoder: the diffusers framing when plain. Returns 0,
 * -1 out of memory, or -2 with err (an embedding that does not fit). */
static int tokenize_side(const cond_model *m, const cond_source *src, const prompt_parsed *p, side *s, char *err,
                         size_t errlen) {
    for (int ei = 0; ei < m->n; ei++)
        emb_use_init(&s->emb[ei], src->embeddings, ei, m->n, m->enc[ei].cfg.hidden, m->enc[ei].component,
                     (int32_t)bpe_vocab_size(m->enc[ei].tok));
    size_t n = 0;
    int r = prompt_is_plain(p) ? count_tokens(&s->emb[0], m->enc[0].tok, p->stripped, &n) : 0;
    int plain = r == 0 && prompt_is_plain(p) && n <= (size_t)bpe_max_length(m->enc[0].tok) - 2;
    s->weighted = !plain;
    for (int ei = 0; r == 0 && ei < m->n; ei++) {
        r = plain ? prompt_chunk_plain_with(m->enc[ei].tok, p->stripped, emb_tokenize, &s->emb[ei], &s->chunks[ei])
                  : prompt_chunk_with(m->enc[ei].tok, p, 20, emb_tokenize, emb_group, &s->emb[ei], &s->chunks[ei]);
    }
    for (int ei = 0; r == -2 && ei < m->n; ei++)
        if (s->emb[ei].err[0]) {
            cond_set_err(err, errlen, "%s", s->emb[ei].err);
            break;
        }
    return r;
}

static size_t max_chunks(const cond_model *m, const side *s) {
    size_t k = 0;
    for (int ei = 0; !s->zeros && ei < m->n; ei++)
        if (s->chunks[ei].nchunks > k) k = s->chunks[ei].nchunks;
    return k;
}

/* Every sequence must have the same number of chunks: pad with the empty
 * prompt, as A1111 pads the shorter of cond/uncond. */
static int equalize(const cond_model *m, side *a, side *b, size_t *total) {
    size_t k = max_chunks(m, a), kb = max_chunks(m, b);
    if (kb > k) k = kb;
    for (int ei = 0; ei < m->n; ei++) {
        side *sides[2] = {a, b};
        for (int j = 0; j < 2; j++) {
            prompt_chunks *c = &sides[j]->chunks[ei];
            if (sides[j]->zeros || c->nchunks >= k) continue;
            if (prompt_chunks_pad(m->enc[ei].tok, c, k - c->nchunks)) return -1;
        }
    }
    *total = k;
    return 0;
}

static void side_free(side *s) {
    for (int i = 0; i < 2; i++) {
        prompt_chunks_free(&s->chunks[i]);
        free(s->hidden[i]);
        if (s->nn) sdrt_nn_drop(s->nn, s->hidden_dev[i]);
        emb_use_free(&s->emb[i]);
    }
    free(s->pooled);
    if (s->nn) sdrt_nn_drop(s->nn, s->pooled_dev);
}

/* A new device tensor of n zeros: [1, n] (ndim 2) or [1, seq, n]. */
static sdrt_tensor *zeros_dev(sdrt_nn *nn, int ndim, int64_t seq, int64_t n) {
    float *z = calloc((size_t)(seq * n), sizeof *z);
    int64_t shape[3] = {1, ndim == 2 ? n : seq, n};
    sdrt_tensor *t = z ? sdrt_nn_from_host(nn, SDRT_DTYPE_F32, ndim, shape, z) : NULL;
    free(z);
    return t;
}

/* assemble on the device: [1, chunks*len, sum D] as a new tensor. */
static sdrt_tensor *assemble_dev(const cond_model *m, const side *s, size_t chunks, int len, int64_t dim) {
    int64_t seq = (int64_t)chunks * len;
    if (s->zeros) return zeros_dev(s->nn, 3, seq, dim);
    sdrt_tensor *acc = NULL;
    for (int ei = 0; ei < m->n; ei++) {
        if (!s->hidden_dev[ei]) {
            sdrt_nn_drop(s->nn, acc);
            return NULL;
        }
        int64_t shape[3] = {1, seq, m->enc[ei].cfg.hidden};
        sdrt_tensor v = sdrt_nn_view_reshape(s->hidden_dev[ei], 3, shape);
        sdrt_tensor *next = !v.data ? NULL : acc ? sdrt_nn_concat(s->nn, acc, &v, 2) : sdrt_nn_copy(s->nn, &v, SDRT_DTYPE_F32);
        sdrt_nn_drop(s->nn, acc);
        if (!next) return NULL;
        acc = next;
    }
    return acc;
}

/* [1, chunks*len, sum D]: features of the encoders side by side. */
static float *assemble(const cond_model *m, const side *s, size_t chunks, int len, int64_t dim) {
    float *out = calloc(chunks * (size_t)len * (size_t)dim, sizeof *out);
    if (!out || s->zeros) return out;
    int64_t off = 0;
    for (int ei = 0; ei < m->n; ei++) {
        int d = m->enc[ei].cfg.hidden;
        for (size_t r = 0; r < chunks * (size_t)len; r++)
            memcpy(out + r * (size_t)dim + off, s->hidden[ei] + r * (size_t)d, (size_t)d * sizeof *out);
        off += d;
    }
    return out;
}

static sdrt_status encode_side(const cond_model *m, const cond_source *src, sdrt_nn *nn, side *s,
                               int clip_skip, char *err, size_t errlen) {
    if (s->zeros) return SDRT_OK;
    for (int ei = 0; ei < m->n; ei++) {
        int want_pooled = m->sdxl_style && ei == m->n - 1;
        sdrt_status st = run_encoder(m, src, nn, ei, s, clip_skip, want_pooled, err, errlen);
        if (st != SDRT_OK) return st;
    }
    if (!s->nn) {
        apply_weights(m, s);
    } else if (apply_weights_dev(m, s)) {
        const char *msg = NULL;
        sdrt_status st = sdrt_nn_status(s->nn, &msg);
        cond_set_err(err, errlen, "conditioning: emphasis: %s", msg && *msg ? msg : "out of memory");
        return st != SDRT_OK ? st : SDRT_RESOURCE_EXHAUSTED;
    }
    return SDRT_OK;
}

static int pooled_dim(const cond_model *m) {
    if (!m->sdxl_style) return 0;
    const cond_encoder *e = &m->enc[m->n - 1];
    return e->has_projection && e->cfg.projection_dim ? e->cfg.projection_dim : e->cfg.hidden;
}

/* build_output for sides encoded on the device (pos->nn set). */
static sdrt_status build_output_dev(const cond_model *m, side *pos, side *neg, int do_cfg, size_t chunks,
                                    cond_output *out) {
    sdrt_nn *nn = pos->nn;
    int len = pos->chunks[0].len;
    out->nn = nn;
    out->embeds_dev = assemble_dev(m, pos, chunks, len, out->dim);
    if (do_cfg) out->neg_embeds_dev = assemble_dev(m, neg, chunks, len, out->dim);
    if (out->pooled_dim) {
        out->pooled_dev = pos->pooled_dev;
        pos->pooled_dev = NULL;
        if (do_cfg) {
            out->neg_pooled_dev = neg->zeros ? zeros_dev(nn, 2, 1, out->pooled_dim) : neg->pooled_dev;
            if (!neg->zeros) neg->pooled_dev = NULL;
        }
    }
    int ok = out->embeds_dev && (!do_cfg || out->neg_embeds_dev) &&
             (!out->pooled_dim || (out->pooled_dev && (!do_cfg || out->neg_pooled_dev)));
    if (ok) return SDRT_OK;
    sdrt_status st = sdrt_nn_status(nn, NULL);
    return st != SDRT_OK ? st : SDRT_RESOURCE_EXHAUSTED;
}

static sdrt_status build_output(const cond_model *m, side *pos, side *neg, int do_cfg, size_t chunks,
                                cond_output *out) {
    int len = pos->chunks[0].len;
    out->seq = (int64_t)chunks * len;
    out->dim = 0;
    for (int ei = 0; ei < m->n; ei++) out->dim += m->enc[ei].cfg.hidden;
    out->pooled_dim = pooled_dim(m);
    if (pos->nn) return build_output_dev(m, pos, neg, do_cfg, chunks, out);
    out->embeds = assemble(m, pos, chunks, len, out->dim);
    if (do_cfg) out->neg_embeds = assemble(m, neg, chunks, len, out->dim);
    if (out->pooled_dim) {
        out->pooled = pos->pooled;
        pos->pooled = NULL;
        if (do_cfg) {
            out->neg_pooled = neg->zeros ? calloc((size_t)out->pooled_dim, sizeof(float)) : neg->pooled;
            if (!neg->zeros) neg->pooled = NULL;
        }
    }
    int ok = out->embeds && (!do_cfg || out->neg_embeds) &&
             (!out->pooled_dim || (out->pooled && (!do_cfg || out->neg_pooled)));
    return ok ? SDRT_OK : SDRT_RESOURCE_EXHAUSTED;
}

sdrt_status cond_encode(const cond_model *m, const cond_source *src, sdrt_nn *nn, const char *prompt,
                        const char *negative, int clip_skip, int do_cfg, cond_output *out, char *err,
                        size_t errlen) {
    return cond_encode_ex(m, src, nn, prompt, negative, clip_skip, do_cfg, 0, out, err, errlen);
}

sdrt_status cond_encode_ex(const cond_model *m, const cond_source *src, sdrt_nn *nn, const char *prompt,
                           const char *negative, int clip_skip, int do_cfg, int on_device, cond_output *out,
                           char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (err && errlen) err[0] = 0;
    int min_layers = m->enc[0].cfg.layers < m->enc[m->n - 1].cfg.layers ? m->enc[0].cfg.layers
                                                                            : m->enc[m->n - 1].cfg.layers;
    if (clip_skip < 0 || clip_skip > min_layers - (m->sdxl_style ? 2 : 1)) {
        cond_set_err(err, errlen, "clip_skip: %d is outside 0..%d for this model", clip_skip,
                min_layers - (m->sdxl_style ? 2 : 1));
        return SDRT_INVALID_ARGUMENT;
    }
    side pos, neg;
    memset(&pos, 0, sizeof pos);
    memset(&neg, 0, sizeof neg);
    prompt_parsed np;
    memset(&np, 0, sizeof np);
    sdrt_status st = SDRT_INVALID_ARGUMENT;
    size_t chunks = 0;
    if (prompt_parse(prompt ? prompt : "", &out->parsed, err, errlen) ||
        prompt_parse(negative ? negative : "", &np, err, errlen))
        goto done;
    if (src->prepare && (st = src->prepare(src->ctx, &out->parsed, err, errlen)) != SDRT_OK) goto done;
    neg.zeros = !do_cfg || (m->force_zeros && !negative); /* diffusers: only negative_prompt=None */
    st = SDRT_RESOURCE_EXHAUSTED;
    int tr = tokenize_side(m, src, &out->parsed, &pos, err, errlen);
    if (tr == 0 && !neg.zeros) tr = tokenize_side(m, src, &np, &neg, err, errlen);
    if (tr == -2) {
        st = SDRT_INVALID_ARGUMENT;
        goto done;
    }
    if (tr || equalize(m, &pos, &neg, &chunks)) {
        cond_set_err(err, errlen, "conditioning: out of memory while tokenizing");
        goto done;
    }
    size_t max_chunks = src->max_chunks > 0 ? (size_t)src->max_chunks : COND_DEFAULT_MAX_CHUNKS;
    if (chunks > max_chunks) {
        st = SDRT_INVALID_ARGUMENT;
        cond_set_err(err, errlen,
                     "prompt: %zu chunks of 75 tokens (long prompts and BREAK add chunks) exceed the limit of %zu "
                     "(max_prompt_chunks in the conditioning plugin's config)", chunks, max_chunks);
        goto done;
    }
    if (on_device) pos.nn = neg.nn = nn;
    /* diffusers encodes the negative prompt without clip_skip. */
    st = encode_side(m, src, nn, &pos, clip_skip, err, errlen);
    if (st == SDRT_OK) st = encode_side(m, src, nn, &neg, 0, err, errlen);
    if (st == SDRT_OK) st = build_output(m, &pos, &neg, do_cfg, chunks, out);
    if (st == SDRT_RESOURCE_EXHAUSTED && err && !*err) cond_set_err(err, errlen, "conditioning: out of memory");
done:
    side_free(&pos);
    side_free(&neg);
    prompt_free(&np);
    if (st != SDRT_OK) cond_output_free(out);
    return st;
}

void cond_output_free(cond_output *o) {
    if (!o) return;
    if (o->nn) {
        sdrt_nn_drop(o->nn, o->embeds_dev);
        sdrt_nn_drop(o->nn, o->neg_embeds_dev);
        sdrt_nn_drop(o->nn, o->pooled_dev);
        sdrt_nn_drop(o->nn, o->neg_pooled_dev);
    }
    free(o->embeds);
    free(o->neg_embeds);
    free(o->pooled);
    free(o->neg_pooled);
    prompt_free(&o->parsed);
    memset(o, 0, sizeof *o);
}
