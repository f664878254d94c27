/* plugins/lora/lora_file.c - reading a LoRA file into checked modules. */
#define _GNU_SOURCE
#include "lora_file.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdrt/half.h"
#include "sdrt/plugin.h"

void lora_set_err(char *err, size_t n, const char *fmt, ...) {
    if (!err || !n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

const char *lora_algo_name(lora_algo a) {
    static const char *const N[] = {"lora", "loha", "lokr", "diff"};
    return a >= 0 && a < ALGO_COUNT_ ? N[a] : "?";
}

const char *lora_style_name(lora_style s) {
    static const char *const N[] = {"kohya", "diffusers", "peft"};
    return s <= STYLE_PEFT ? N[s] : "?";
}

size_t lora_st_numel(const st_tensor *t) {
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}

float lora_st_get(const st_tensor *t, size_t i) {
    const uint8_t *p = t->data;
    uint16_t h;
    switch (t->dtype) {
    case ST_F32: {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    case ST_F64: {
        double d;
        memcpy(&d, p + 8 * i, 8);
        return (float)d;
    }
    case ST_F16: memcpy(&h, p + 2 * i, 2); return sdrt_f16_to_f32(h);
    case ST_BF16: memcpy(&h, p + 2 * i, 2); return sdrt_bf16_to_f32(h);
    default: return 0.0f;
    }
}

static int is_float(st_dtype d) { return d == ST_F32 || d == ST_F16 || d == ST_BF16 || d == ST_F64; }

/* ---- grouping keys into modules ------------------------------------------ */

typedef struct entry {
    const st_tensor *t;
    lora_key key;
} entry;

static int cmp_entry(const void *a, const void *b) {
    const entry *x = a, *y = b;
    size_t n = x->key.base_len < y->key.base_len ? x->key.base_len : y->key.base_len;
    int c = memcmp(x->t->name, y->t->name, n);
    if (c) return c;
    return x->key.base_len < y->key.base_len ? -1 : x->key.base_len > y->key.base_len;
}

static int same_base(const entry *a, const entry *b) {
    return a->key.base_len == b->key.base_len && memcmp(a->t->name, b->t->name, a->key.base_len) == 0;
}

static int push_ignored(lora_file *f, const char *key, const char *reason) {
    char **g = realloc(f->ignored, (f->n_ignored + 1) * sizeof *g);
    if (!g) return -1;
    f->ignored = g;
    if (asprintf(&g[f->n_ignored], "%s: %s", key, reason) < 0) return -1;
    f->n_ignored++;
    return 0;
}

/* ---- checking one module ------------------------------------------------- */

#define ERR(...) (lora_set_err(err, errlen, __VA_ARGS__), SDRT_INVALID_ARGUMENT)

static const char *shape_str(const st_tensor *t, char *buf, size_t n) {
    size_t o = 0;
    buf[0] = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < t->ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
    return buf;
}

static sdrt_status unsupported(const lora_file *f, const lora_module *m, lora_part p, const char *what, char *err,
                               size_t errlen) {
    lora_set_err(err, errlen, "lora '%s': key '%s.%s': %s is not supported", f->path, m->base, lora_part_name(p), what);
    return SDRT_UNSUPPORTED;
}

static sdrt_status check_lora(const lora_file *f, lora_module *m, char *err, size_t errlen) {
    const st_tensor *d = m->part[PART_DOWN], *u = m->part[PART_UP];
    char a[64], b[64];
    if (!d || !u)
        return ERR("lora '%s': key '%s': %s without %s", f->path, m->base, d ? "lora_down (lora_A)" : "lora_up (lora_B)",
                   d ? "lora_up (lora_B)" : "lora_down (lora_A)");
    if ((d->ndim != 2 && d->ndim != 4) || (u->ndim != 2 && u->ndim != 4) || d->shape[0] < 1 ||
        u->shape[1] != d->shape[0] || (u->ndim == 4 && (u->shape[2] != 1 || u->shape[3] != 1)))
        return ERR("lora '%s': key '%s': down %s and up %s are not a rank factorisation", f->path, m->base,
                   shape_str(d, a, sizeof a), shape_str(u, b, sizeof b));
    m->rank = (int)d->shape[0];
    m->conv = d->ndim == 4;
    return SDRT_OK;
}

static sdrt_status check_pair(const lora_file *f, const lora_module *m, lora_part pa, lora_part pb, char *err,
                              size_t errlen) {
    const st_tensor *x = m->part[pa], *y = m->part[pb];
    char s1[64], s2[64];
    if (!x || !y)
        return ERR("lora '%s': key '%s': %s without %s", f->path, m->base, lora_part_name(x ? pa : pb),
                   lora_part_name(x ? pb : pa));
    if (x->ndim != 2 || y->ndim < 2 || x->shape[1] != y->shape[0])
        return ERR("lora '%s': key '%s': %s %s and %s %s do not multiply", f->path, m->base, lora_part_name(pa),
                   shape_str(x, s1, sizeof s1), lora_part_name(pb), shape_str(y, s2, sizeof s2));
    return SDRT_OK;
}

static sdrt_status check_loha(const lora_file *f, lora_module *m, char *err, size_t errlen) {
    if (m->part[PART_HADA_T1] || m->part[PART_HADA_T2])
        return unsupported(f, m, m->part[PART_HADA_T1] ? PART_HADA_T1 : PART_HADA_T2, "Tucker-decomposed LoHa",
                           err, errlen);
    sdrt_status st = check_pair(f, m, PART_HADA_W1_A, PART_HADA_W1_B, err, errlen);
    if (st == SDRT_OK) st = check_pair(f, m, PART_HADA_W2_A, PART_HADA_W2_B, err, errlen);
    if (st != SDRT_OK) return st;
    const st_tensor *a1 = m->part[PART_HADA_W1_A], *a2 = m->part[PART_HADA_W2_A];
    if (a1->shape[0] != a2->shape[0] || lora_st_numel(m->part[PART_HADA_W1_B]) / (size_t)a1->shape[1] !=
                                            lora_st_numel(m->part[PART_HADA_W2_B]) / (size_t)a2->shape[1])
        return ERR("lora '%s': key '%s': the two LoHa products have different shapes", f->path, m->base);
    m->rank = (int)m->part[PART_HADA_W1_B]->shape[0];
    return SDRT_OK;
}

static sdrt_status check_lokr_side(const lora_file *f, lora_module *m, lora_part full, lora_part pa, lora_part pb,
                                   char *err, size_t errlen) {
    if (m->part[full]) return m->part[full]->ndim >= 2 ? SDRT_OK : ERR("lora '%s': key '%s.%s': not a matrix",
                                                                        f->path, m->base, lora_part_name(full));
    sdrt_status st = check_pair(f, m, pa, pb, err, errlen);
    if (st == SDRT_OK && !m->rank) m->rank = (int)m->part[pb]->shape[0];
    return st;
}

static sdrt_status check_lokr(const lora_file *f, lora_module *m, char *err, size_t errlen) {
    if (m->part[PART_LOKR_T2]) return unsupported(f, m, PART_LOKR_T2, "Tucker-decomposed LoKr", err, errlen);
    sdrt_status st = check_lokr_side(f, m, PART_LOKR_W1, PART_LOKR_W1_A, PART_LOKR_W1_B, err, errlen);
    if (st == SDRT_OK) st = check_lokr_side(f, m, PART_LOKR_W2, PART_LOKR_W2_A, PART_LOKR_W2_B, err, errlen);
    if (st == SDRT_OK && m->part[PART_LOKR_W1] && m->part[PART_LOKR_W1]->ndim != 2)
        return ERR("lora '%s': key '%s.lokr_w1': not a matrix", f->path, m->base);
    return st;
}

static int has_any(const lora_module *m, lora_part from, lora_part to) {
    for (int p = (int)from; p <= (int)to; p++)
        if (m->part[p]) return 1;
    return 0;
}

static sdrt_status check_module(const lora_file *f, lora_module *m, char *err, size_t errlen) {
    if (m->part[PART_DORA_SCALE]) return unsupported(f, m, PART_DORA_SCALE, "DoRA (weight decomposition)", err, errlen);
    if (m->part[PART_MID]) return unsupported(f, m, PART_MID, "Tucker-decomposed LoCon (lora_mid)", err, errlen);
    int kinds = has_any(m, PART_DOWN, PART_UP) + has_any(m, PART_HADA_W1_A, PART_HADA_T2) +
                has_any(m, PART_LOKR_W1, PART_LOKR_T2) + (m->part[PART_DIFF] != NULL);
    if (kinds > 1) return ERR("lora '%s': key '%s': mixes several adapter algorithms", f->path, m->base);
    for (int p = 1; p < PART_COUNT_; p++)
        if (m->part[p] && !is_float(m->part[p]->dtype))
            return ERR("lora '%s': key '%s.%s': dtype %s is not a float type", f->path, m->base,
                       lora_part_name((lora_part)p), st_dtype_name(m->part[p]->dtype));
    const st_tensor *al = m->part[PART_ALPHA];
    if (al && lora_st_numel(al) != 1) return ERR("lora '%s': key '%s.alpha': not a scalar", f->path, m->base);
    m->has_alpha = al != NULL;
    m->alpha = al ? lora_st_get(al, 0) : 0.0f;
    if (has_any(m, PART_DOWN, PART_UP)) return m->algo = ALGO_LORA, check_lora(f, m, err, errlen);
    if (has_any(m, PART_HADA_W1_A, PART_HADA_T2)) return m->algo = ALGO_LOHA, check_loha(f, m, err, errlen);
    if (has_any(m, PART_LOKR_W1, PART_LOKR_T2)) return m->algo = ALGO_LOKR, check_lokr(f, m, err, errlen);
    if (m->part[PART_DIFF]) return m->algo = ALGO_DIFF, SDRT_OK;
    return SDRT_NOT_FOUND; /* alpha or diff_b alone: reported as ignored by the caller */
}

/* ---- architecture from the file alone ------------------------------------ */

static const char *arch_of_dim(int64_t d, int te) {
    if (te) return d == 768 ? "sd1" : d == 1024 ? "sd2" : d == 1280 ? "sdxl" : NULL;
    return d == 768 ? "sd1" : d == 1024 ? "sd2" : d == 2048 ? "sdxl" : NULL;
}

/* The input width of a module's weight (cross-attention key/value of the
 * UNet: the text embedding width, which tells the architecture). */
static int64_t in_features(const lora_module *m) {
    if (m->algo == ALGO_LORA) return m->part[PART_DOWN]->shape[1];
    if (m->algo == ALGO_LOHA) return m->part[PART_HADA_W1_B]->shape[1];
    return 0;
}

static void detect_arch(lora_file *f) {
    f->arch = "unknown";
    for (size_t i = 0; i < f->n_mods; i++) {
        const lora_module *m = &f->mods[i];
        const char *p = m->key.path;
        const char *a = NULL;
        if (m->key.component == 2 || m->key.sgm) a = "sdxl";
        else if (m->key.component == 0 && (strstr(p, "attn2.to_k") || strstr(p, "attn2.to_v")))
            a = arch_of_dim(in_features(m), 0);
        if (a) {
            f->arch = a;
            f->arch_reason = m->base;
            return;
        }
    }
    cJSON *meta = f->st->metadata_json ? cJSON_Parse(f->st->metadata_json) : NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, "ss_base_model_version");
    if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        f->arch = !strncmp(s, "sdxl", 4) ? "sdxl" : !strncmp(s, "sd_v1", 5) ? "sd1" : !strncmp(s, "sd_v2", 5) ? "sd2"
                                                                                                             : "unknown";
        f->arch_reason = strcmp(f->arch, "unknown") ? "metadata ss_base_model_version" : NULL;
    }
    cJSON_Delete(meta);
}

/* ---- open ---------------------------------------------------------------- */

static sdrt_status build_module(lora_file *f, const entry *e, size_t n, char *err, size_t errlen) {
    lora_module *m = &f->mods[f->n_mods];
    memset(m, 0, sizeof *m);
    m->key = e[0].key;
    m->base = strndup(e[0].t->name, e[0].key.base_len);
    if (!m->base) return SDRT_RESOURCE_EXHAUSTED;
    for (size_t i = 0; i < n; i++) {
        if (m->part[(int)e[i].key.part]) {
            free(m->base);
            return ERR("lora '%s': key '%s': part %s given twice (as '%s')", f->path, e[0].t->name,
                       lora_part_name(e[i].key.part), e[i].t->name);
        }
        m->part[e[i].key.part] = e[i].t;
    }
    sdrt_status st = check_module(f, m, err, errlen);
    if (st == SDRT_NOT_FOUND) {
        const char *why = m->part[PART_DIFF_B] ? "bias differences (diff_b) are not applied"
                                               : "alpha without adapter weights";
        int rc = push_ignored(f, e[0].t->name, why);
        free(m->base);
        return rc ? SDRT_RESOURCE_EXHAUSTED : SDRT_OK;
    }
    if (st != SDRT_OK) {
        free(m->base);
        return st;
    }
    if (m->part[PART_DIFF_B] && push_ignored(f, m->base, "bias difference (diff_b) is not applied") != 0) {
        free(m->base);
        return SDRT_RESOURCE_EXHAUSTED;
    }
    f->styles |= 1u << m->key.style;
    f->algos |= 1u << m->algo;
    f->sgm |= m->key.sgm;
    f->n_mods++;
    return SDRT_OK;
}

static sdrt_status group_modules(lora_file *f, char *err, size_t errlen) {
    entry *e = calloc(f->st->n_tensors + 1, sizeof *e);
    if (!e) return SDRT_RESOURCE_EXHAUSTED;
    size_t n = 0;
    sdrt_status st = SDRT_OK;
    for (size_t i = 0; i < f->st->n_tensors && st == SDRT_OK; i++) {
        const st_tensor *t = &f->st->tensors[i];
        if (lora_key_parse(t->name, &e[n].key) == 0) e[n++].t = t;
        else if (strcmp(t->name, "__metadata__") && push_ignored(f, t->name, "not a LoRA key") != 0)
            st = SDRT_RESOURCE_EXHAUSTED;
    }
    qsort(e, n, sizeof *e, cmp_entry);
    f->mods = calloc(n + 1, sizeof *f->mods);
    if (!f->mods) st = SDRT_RESOURCE_EXHAUSTED;
    for (size_t i = 0; i < n && st == SDRT_OK;) {
        size_t j = i + 1;
        while (j < n && same_base(&e[i], &e[j])) j++;
        st = build_module(f, e + i, j - i, err, errlen);
        i = j;
    }
    free(e);
    return st;
}

sdrt_status lora_file_open(const char *path, lora_file **out, char *err, size_t errlen) {
    return lora_file_open_scoped(path, NULL, out, err, errlen);
}

sdrt_status lora_file_open_scoped(const char *path, const sdrt_file_scope *scope, lora_file **out, char *err,
                                  size_t errlen) {
    *out = NULL;
    lora_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return SDRT_RESOURCE_EXHAUSTED;
    }
    char sub[768];
    sdrt_status ost = st_open_scoped(path, "lora", scope, &f->st, sub, sizeof sub);
    if (ost != SDRT_OK) {
        lora_file_close(f);
        if (ost == SDRT_INVALID_ARGUMENT && !strstr(sub, "not a regular file"))
            lora_set_err(err, errlen, "lora '%s': not a readable safetensors file: %s", path, sub);
        else
            lora_set_err(err, errlen, "%s", sub);
        return ost;
    }
    sdrt_status st = group_modules(f, err, errlen);
    if (st == SDRT_OK && f->n_mods == 0) {
        lora_set_err(err, errlen, "lora '%s': no LoRA tensors (%zu tensors, none named like lora_down/lora_up, "
                             "lora_A/lora_B, hada_*, lokr_*)%s%s", path, f->st->n_tensors,
                f->n_ignored ? "; first key: " : "", f->n_ignored ? f->ignored[0] : "");
        st = SDRT_INVALID_ARGUMENT;
    }
    if (st == SDRT_RESOURCE_EXHAUSTED) lora_set_err(err, errlen, "lora '%s': out of memory", path);
    if (st != SDRT_OK) {
        lora_file_close(f);
        return st;
    }
    detect_arch(f);
    *out = f;
    return SDRT_OK;
}

void lora_file_close(lora_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_mods; i++) free(f->mods[i].base);
    for (size_t i = 0; i < f->n_ignored; i++) free(f->ignored[i]);
    free(f->mods);
    free(f->ignored);
    if (f->st) st_close(f->st);
    free(f->path);
    free(f);
}
