/* plugins/conditioning/embeddings.c - textual-inversion embeddings (see
 * embeddings.h). */
#define _GNU_SOURCE
#include "embeddings.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cond_err.h"
#include "pickle.h"
#include "safetensors.h"
#include "sdrt/half.h"

/* ---- one file ---------------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

static float value_at(const st_tensor *t, size_t i) {
    switch (t->dtype) {
    case ST_F16: return sdrt_f16_to_f32(((const uint16_t *)t->data)[i]);
    case ST_BF16: return sdrt_bf16_to_f32(((const uint16_t *)t->data)[i]);
    case ST_F64: return (float)((const double *)t->data)[i];
    default: return ((const float *)t->data)[i];
    }
}

/* A [D] or [n, D] float tensor as table `k` of e. */
static int take_table(emb_entry *e, int k, const st_tensor *t, char *err, size_t errlen) {
    int float_type = t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16 || t->dtype == ST_F64;
    if (!float_type || t->ndim < 1 || t->ndim > 2 || t->shape[t->ndim - 1] < 1 ||
        (t->ndim == 2 && t->shape[0] < 1) || t->shape[t->ndim - 1] > 65536 || (t->ndim == 2 && t->shape[0] > 1024)) {
        cond_set_err(err, errlen, "embedding '%s': tensor '%s' must be a float [D] or [vectors, D] table", e->path,
                     t->name);
        return -1;
    }
    int nvec = t->ndim == 2 ? (int)t->shape[0] : 1, width = (int)t->shape[t->ndim - 1];
    if (k > 0 && nvec != e->nvec) {
        cond_set_err(err, errlen, "embedding '%s': clip_l has %d vectors, clip_g %d", e->path, e->nvec, nvec);
        return -1;
    }
    e->vec[k] = malloc((size_t)nvec * (size_t)width * sizeof(float));
    if (!e->vec[k]) {
        cond_set_err(err, errlen, "embedding '%s': out of memory", e->path);
        return -1;
    }
    for (size_t i = 0; i < (size_t)nvec * (size_t)width; i++) e->vec[k][i] = value_at(t, i);
    e->nvec = nvec;
    e->width[k] = width;
    e->ntables = k + 1;
    return 0;
}

static char *stem_of(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    return strndup(b, dot && dot != b ? (size_t)(dot - b) : strlen(b));
}

int emb_load_file(const char *path, emb_entry *e, char *err, size_t errlen) {
    memset(e, 0, sizeof *e);
    e->path = strdup(path);
    e->name = stem_of(path);
    if (!e->path || !e->name) {
        cond_set_err(err, errlen, "embedding '%s': out of memory", path);
        emb_entry_free(e);
        return -1;
    }
    /* .safetensors, or a torch.save pickle (.pt/.bin) read by the
     * restricted unpickler: any global but tensors and storages is refused
     * and nothing in the file runs. */
    st_file *f = NULL;
    pt_file *pf = NULL;
    char sub[384];
    int is_st = ends_with(path, ".safetensors");
    if (is_st ? st_open(path, &f, sub, sizeof sub) : pt_open(path, &pf, sub, sizeof sub)) {
        cond_set_err(err, errlen, "embedding '%s': %s", path, sub);
        emb_entry_free(e);
        return -1;
    }
    const st_tensor *tensors = is_st ? f->tensors : pf->tensors;
    size_t n_tensors = is_st ? f->n_tensors : pf->n_tensors;
#define FIND(name) (is_st ? st_find(f, name) : pt_find(pf, name))
    const st_tensor *l = FIND("clip_l"), *g = FIND("clip_g"), *a = FIND("emb_params");
    if (!a) a = FIND("string_to_param.*"); /* A1111 .pt: {"string_to_param": {"*": [n, D]}} */
#undef FIND
    int rc;
    if (l || g) {
        if (!l || !g) {
            cond_set_err(err, errlen, "embedding '%s': an SDXL embedding needs both clip_l and clip_g", path);
            rc = -1;
        } else {
            rc = take_table(e, 0, l, err, errlen);
            if (rc == 0) rc = take_table(e, 1, g, err, errlen);
        }
    } else if (a) {
        rc = take_table(e, 0, a, err, errlen);
    } else if (n_tensors == 1) {
        rc = take_table(e, 0, &tensors[0], err, errlen); /* diffusers learned_embeds: {"<token>": [D]} */
    } else {
        cond_set_err(err, errlen,
                     "embedding '%s': no emb_params, string_to_param, clip_l/clip_g or single tensor (%zu tensors) - "
                     "not a textual-inversion embedding",
                     path, n_tensors);
        rc = -1;
    }
    if (f) st_close(f);
    if (pf) pt_close(pf);
    if (rc) emb_entry_free(e);
    return rc;
}

void emb_entry_free(emb_entry *e) {
    if (!e) return;
    free(e->name);
    free(e->path);
    free(e->vec[0]);
    free(e->vec[1]);
    free(e->error);
    memset(e, 0, sizeof *e);
}

/* ---- a folder tree ------------------------------------------------------------- */

typedef struct scan {
    emb_entry *v;
    size_t n, cap;
    void (*skipped)(void *, const char *, const char *);
    void *ctx;
    int oom;
} scan;

static void scan_dir(scan *s, const char *dir, int depth) {
    DIR *d = depth < 8 ? opendir(dir) : NULL;
    if (!d) return;
    struct dirent *de;
    while (!s->oom && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char *p = NULL;
        if (asprintf(&p, "%s/%s", dir, de->d_name) < 0) { s->oom = 1; break; }
        struct stat sb;
        if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            scan_dir(s, p, depth + 1);
        } else if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode) &&
                   (ends_with(p, ".safetensors") || ends_with(p, ".pt") || ends_with(p, ".bin"))) {
            if (s->n == s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 16;
                emb_entry *v = realloc(s->v, cap * sizeof *v);
                if (!v) { s->oom = 1; free(p); break; }
                s->v = v;
                s->cap = cap;
            }
            char err[512];
            if (emb_load_file(p, &s->v[s->n], err, sizeof err) == 0) {
                s->n++;
            } else {
                /* Kept by name with its reason: a prompt that uses it fails
                 * with that reason instead of reading the name as words. */
                emb_entry *b = &s->v[s->n];
                memset(b, 0, sizeof *b);
                b->path = strdup(p);
                b->name = stem_of(p);
                b->error = strdup(err);
                if (b->path && b->name && b->error) s->n++;
                else emb_entry_free(b);
                if (s->skipped) s->skipped(s->ctx, p, err);
            }
        }
        free(p);
    }
    closedir(d);
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const emb_entry *)a)->name, ((const emb_entry *)b)->name);
}

int emb_scan(const char *const *roots, size_t n, void (*skipped)(void *ctx, const char *path, const char *why),
             void *ctx, emb_set **out) {
    scan s = {.skipped = skipped, .ctx = ctx};
    for (size_t i = 0; i < n && !s.oom; i++) scan_dir(&s, roots[i], 0);
    emb_set *set = s.oom ? NULL : calloc(1, sizeof *set);
    if (!set) {
        for (size_t i = 0; i < s.n; i++) emb_entry_free(&s.v[i]);
        free(s.v);
        return -1;
    }
    /* Stable order of discovery decides duplicates: keep the first. */
    size_t kept = 0;
    for (size_t i = 0; i < s.n; i++) {
        int dup = 0;
        for (size_t j = 0; j < kept && !dup; j++) dup = strcmp(s.v[j].name, s.v[i].name) == 0;
        if (dup) {
            if (skipped) skipped(ctx, s.v[i].path, "an embedding of the same name was found first");
            emb_entry_free(&s.v[i]);
        } else {
            s.v[kept++] = s.v[i];
        }
    }
    if (kept) qsort(s.v, kept, sizeof *s.v, by_name); /* s.v is NULL when none was found */
    set->v = s.v;
    set->n = kept;
    *out = set;
    return 0;
}

void emb_set_free(emb_set *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) emb_entry_free(&s->v[i]);
    free(s->v);
    free(s);
}

const emb_entry *emb_find(const emb_set *s, const char *name, size_t len) {
    for (size_t i = 0; s && i < s->n; i++)
        if (strlen(s->v[i].name) == len && memcmp(s->v[i].name, name, len) == 0) return &s->v[i];
    return NULL;
}

/* ---- use in one encode --------------------------------------------------------- */

void emb_use_init(emb_use *u, const emb_set *set, int table, int n_encoders, int width, const char *encoder,
                  int32_t base) {
    memset(u, 0, sizeof *u);
    u->set = set;
    u->table = table;
    u->n_encoders = n_encoders;
    u->width = width;
    u->encoder = encoder;
    u->base = base;
}

void emb_use_free(emb_use *u) {
    free(u->used);
    free(u->first_id);
    free(u->rows);
    memset(u, 0, sizeof *u);
}

/* First id of e for this encoder, adding its rows on first use; -1 OOM,
 * -2 mismatch. */
static int32_t id_of(emb_use *u, const emb_entry *e) {
    for (size_t i = 0; i < u->nused; i++)
        if (u->used[i] == e) return u->first_id[i];
    if (e->error) {
        snprintf(u->err, sizeof u->err, "embedding '%s' cannot be used: %s", e->name, e->error);
        return -2;
    }
    int k = 0;
    if (e->ntables == 2) {
        if (u->n_encoders != 2) {
            snprintf(u->err, sizeof u->err,
                     "embedding '%s' (%s): an SDXL embedding (clip_l and clip_g); this model has %d text encoder",
                     e->name, e->path, u->n_encoders);
            return -2;
        }
        k = u->table;
    }
    if (e->width[k] != u->width) {
        snprintf(u->err, sizeof u->err,
                 "embedding '%s' (%s): vectors of width %d, but %s takes width %d (made for another model family)",
                 e->name, e->path, e->width[k], u->encoder, u->width);
        return -2;
    }
    const emb_entry **used = realloc(u->used, (u->nused + 1) * sizeof *used);
    if (used) u->used = used;
    int32_t *first = realloc(u->first_id, (u->nused + 1) * sizeof *first);
    if (first) u->first_id = first;
    float *rows = realloc(u->rows, (size_t)(u->n_rows + e->nvec) * (size_t)u->width * sizeof *rows);
    if (rows) u->rows = rows;
    if (!used || !first || !rows) return -1;
    memcpy(rows + u->n_rows * u->width, e->vec[k], (size_t)e->nvec * (size_t)u->width * sizeof *rows);
    used[u->nused] = e;
    first[u->nused] = u->base + (int32_t)u->n_rows;
    u->n_rows += e->nvec;
    return first[u->nused++];
}

int emb_group_at(const emb_use *u, int32_t id) {
    for (size_t i = 0; u && i < u->nused; i++)
        if (u->first_id[i] == id) return u->used[i]->nvec;
    return 0;
}

static int word_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
}

/* The embedding whose name (or "embedding:"name) starts at text[i] as a
 * word of its own; the longest name wins. Sets *span. */
static const emb_entry *match_at(const emb_set *s, const char *text, size_t len, size_t i, size_t *span) {
    if (i > 0 && word_char((unsigned char)text[i - 1]) && word_char((unsigned char)text[i])) return NULL;
    static const char prefix[] = "embedding:";
    size_t skip = 0;
    if (len - i > sizeof prefix - 1 && strncasecmp(text + i, prefix, sizeof prefix - 1) == 0) skip = sizeof prefix - 1;
    const emb_entry *best = NULL;
    size_t best_len = 0;
    for (size_t k = 0; k < s->n; k++) {
        size_t nl = strlen(s->v[k].name);
        size_t at = i + skip;
        if (nl == 0 || nl <= best_len || at + nl > len || memcmp(text + at, s->v[k].name, nl) != 0) continue;
        size_t end = at + nl;
        if (end < len && word_char((unsigned char)text[end]) && word_char((unsigned char)text[end - 1])) continue;
        best = &s->v[k];
        best_len = nl;
        *span = skip + nl;
    }
    return best;
}

static int append(int32_t **ids, size_t *n, size_t *cap, const int32_t *src, size_t k) {
    if (*n + k > *cap) {
        size_t c = (*n + k) * 2 + 16;
        int32_t *v = realloc(*ids, c * sizeof *v);
        if (!v) return -1;
        *ids = v;
        *cap = c;
    }
    memcpy(*ids + *n, src, k * sizeof *src);
    *n += k;
    return 0;
}

static int bpe_run(bpe_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap) {
    if (len == 0) return 0;
    int32_t *part;
    size_t k;
    if (bpe_encode(t, text, len, &part, &k)) return -1;
    int r = append(ids, n, cap, part, k);
    free(part);
    return r;
}

int emb_encode(emb_use *u, bpe_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    if (!u || !u->set || u->set->n == 0) return bpe_encode(t, text, len, ids, n);
    size_t cap = 0, from = 0;
    for (size_t i = 0; i < len;) {
        size_t span = 0;
        const emb_entry *e = match_at(u->set, text, len, i, &span);
        if (!e) { i++; continue; }
        int32_t first = id_of(u, e);
        int r = first < 0 ? (int)first : bpe_run(t, text + from, i - from, ids, n, &cap);
        for (int v = 0; r == 0 && v < e->nvec; v++) {
            int32_t id = first + v;
            r = append(ids, n, &cap, &id, 1);
        }
        if (r) {
            free(*ids);
            *ids = NULL;
            *n = 0;
            return r;
        }
        i += span;
        from = i;
    }
    if (bpe_run(t, text + from, len - from, ids, n, &cap)) {
        free(*ids);
        *ids = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}
