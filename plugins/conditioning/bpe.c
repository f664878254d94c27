/* bpe.c - CLIP byte-level BPE, as transformers' (slow) CLIPTokenizer.
 *
 * Pipeline for one text: split out added tokens (BOS/EOS, and "!" for SDXL's
 * tokenizer_2, whose config lists it as an added token) exactly as the
 * tokens trie does; clean each remaining piece (normalize.c); pre-tokenize
 * with CLIP's regex; map each piece's UTF-8 bytes to the printable
 * byte-to-unicode alphabet; merge by rank; look the symbols up in the vocab
 * (unknown -> unk id).
 *
 * Symbols are integers: every string in vocab.json or merges.txt is interned
 * once at load, so a merge is a lookup of the pair (a, b) -> (rank, a+b).
 */
#include "bpe.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cond_err.h"
#include "normalize.h"
#include "unicode.h"

/* transformers reads merges[1 : 49152 - 256 - 2 + 1]: the header line is
 * skipped and at most 48894 merges are used, whatever the file holds. */
#define BPE_MAX_MERGES (49152 - 256 - 2)
#define BPE_CACHE_MAX 16384
#define BPE_MAX_ADDED 16

/* ---- string -> int map (open addressing, FNV-1a) ------------------------ */

typedef struct str_map {
    char **keys;
    int32_t *vals;
    size_t cap, n;
} str_map;

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static int str_map_grow(str_map *m) {
    size_t cap = m->cap ? m->cap * 2 : 1024;
    char **keys = calloc(cap, sizeof *keys);
    int32_t *vals = calloc(cap, sizeof *vals);
    if (!keys || !vals) { free(keys); free(vals); return -1; }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = fnv(m->keys[i], strlen(m->keys[i])) & (cap - 1);
        while (keys[j]) j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return 0;
}

/* Slot of key s[0..n) (empty slot if absent). */
static size_t str_map_slot(const str_map *m, const char *s, size_t n) {
    size_t j = fnv(s, n) & (m->cap - 1);
    while (m->keys[j] && (strncmp(m->keys[j], s, n) != 0 || m->keys[j][n] != 0))
        j = (j + 1) & (m->cap - 1);
    return j;
}

static int32_t str_map_get(const str_map *m, const char *s, size_t n) {
    if (!m->cap) return -1;
    size_t j = str_map_slot(m, s, n);
    return m->keys[j] ? m->vals[j] : -1;
}

/* Inserts (copying the key) unless present; returns the stored value. */
static int str_map_put(str_map *m, const char *s, size_t n, int32_t val, int32_t *stored) {
    if ((m->n + 1) * 2 > m->cap && str_map_grow(m)) return -1;
    size_t j = str_map_slot(m, s, n);
    if (!m->keys[j]) {
        char *k = malloc(n + 1);
        if (!k) return -1;
        memcpy(k, s, n);
        k[n] = 0;
        m->keys[j] = k;
        m->vals[j] = val;
        m->n++;
    }
    *stored = m->vals[j];
    return 0;
}

static void str_map_free(str_map *m) {
    for (size_t i = 0; i < m->cap; i++) free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- pair -> merge map ---------------------------------------------------- */

typedef struct merge_entry {
    uint64_t key; /* (a << 32 | b) + 1; 0 = empty */
    int32_t rank, merged;
} merge_entry;

typedef struct merge_map {
    merge_entry *e;
    size_t cap;
} merge_map;

static uint64_t pair_key(int32_t a, int32_t b) {
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

static size_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k;
}

static const merge_entry *merge_find(const merge_map *m, int32_t a, int32_t b) {
    uint64_t k = pair_key(a, b);
    size_t j = mix(k) & (m->cap - 1);
    while (m->e[j].key && m->e[j].key != k) j = (j + 1) & (m->cap - 1);
    return m->e[j].key ? &m->e[j] : NULL;
}

/* First occurrence wins, as in the dict transformers builds. */
static void merge_put(merge_map *m, int32_t a, int32_t b, int32_t rank, int32_t merged) {
    uint64_t k = pair_key(a, b);
    size_t j = mix(k) & (m->cap - 1);
    while (m->e[j].key && m->e[j].key != k) j = (j + 1) & (m->cap - 1);
    if (m->e[j].key) return;
    m->e[j].key = k;
    m->e[j].rank = rank;
    m->e[j].merged = merged;
}

/* ---- the tokenizer -------------------------------------------------------- */

typedef struct added_token {
    char *content;
    int32_t id;
} added_token;

typedef struct cache_entry {
    int32_t *ids;
    int32_t n;
} cache_entry;

struct bpe_tokenizer {
    str_map syms;        /* symbol string -> symbol index */
    int32_t *sym_vocab;  /* symbol index -> vocab id, -1 if not in the vocab */
    size_t nsyms, sym_cap;
    size_t vocab_size;
    merge_map merges;
    int32_t byte_sym[256], byte_sym_end[256];
    int32_t bos, eos, pad, unk, comma;
    int max_length;
    added_token added[BPE_MAX_ADDED];
    int nadded;
    int32_t sym_bos_text, sym_eos_text; /* "<|startoftext|>" / "<|endoftext|>" */
    pthread_mutex_t cache_lock;
    str_map cache_index;  /* pre-token -> cache slot */
    cache_entry *cache;
    size_t ncache;
};

/* Interns a symbol string; new symbols are not in the vocab (-1). */
static int32_t intern(bpe_tokenizer *t, const char *s, size_t n) {
    int32_t idx;
    if (t->nsyms == t->sym_cap) {
        size_t cap = t->sym_cap ? t->sym_cap * 2 : 65536;
        int32_t *v = realloc(t->sym_vocab, cap * sizeof *v);
        if (!v) return -1;
        t->sym_vocab = v;
        t->sym_cap = cap;
    }
    if (str_map_put(&t->syms, s, n, (int32_t)t->nsyms, &idx)) return -1;
    if ((size_t)idx == t->nsyms) t->sym_vocab[t->nsyms++] = -1;
    return idx;
}

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to
 * U+0100 upwards in byte order. */
static uint32_t byte_to_unicode(int b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
        return (uint32_t)b;
    int n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) n++;
    return 256u + (uint32_t)n;
}

static int load_vocab(bpe_tokenizer *t, const char *text, size_t len, char *err, size_t errlen) {
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        cond_set_err(err, errlen, "vocab.json: not a JSON object of token -> id");
        return -1;
    }
    size_t count = 0;
    for (cJSON *it = root->child; it; it = it->next) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 1e7 ||
            it->valuedouble != (double)(int32_t)it->valuedouble) {
            cond_set_err(err, errlen, "vocab.json: token \"%.40s\": id is not a non-negative integer",
                    it->string ? it->string : "");
            cJSON_Delete(root);
            return -1;
        }
        int32_t sym = intern(t, it->string, strlen(it->string));
        if (sym < 0) { cJSON_Delete(root); cond_set_err(err, errlen, "vocab.json: out of memory"); return -1; }
        t->sym_vocab[sym] = (int32_t)it->valuedouble;
        if ((size_t)it->valueint + 1 > t->vocab_size) t->vocab_size = (size_t)it->valueint + 1;
        count++;
    }
    cJSON_Delete(root);
    if (count == 0) {
        cond_set_err(err, errlen, "vocab.json: empty vocabulary");
        return -1;
    }
    return 0;
}

static int setup_bytes(bpe_tokenizer *t, char *err, size_t errlen) {
    for (int b = 0; b < 256; b++) {
        char s[16];
        size_t n = uni_encode(byte_to_unicode(b), s);
        int32_t a = str_map_get(&t->syms, s, n);
        memcpy(s + n, "</w>", 4);
        int32_t e = str_map_get(&t->syms, s, n + 4);
        if (a < 0 || e < 0 || t->sym_vocab[a] < 0 || t->sym_vocab[e] < 0) {
            cond_set_err(err, errlen, "vocab.json: byte symbol for 0x%02X (or its </w> form) is missing", b);
            return -1;
        }
        t->byte_sym[b] = a;
        t->byte_sym_end[b] = e;
    }
    return 0;
}

static int load_merges(bpe_tokenizer *t, const char *text, size_t len, char *err, size_t errlen) {
    size_t pos = 0, line_no = 0;
    int32_t rank = 0;
    t->merges.cap = 1;
    while (t->merges.cap < 2 * BPE_MAX_MERGES) t->merges.cap <<= 1;
    t->merges.e = calloc(t->merges.cap, sizeof *t->merges.e);
    if (!t->merges.e) { cond_set_err(err, errlen, "merges.txt: out of memory"); return -1; }
    /* transformers strips the text and drops the first line (the
     * "#version" header) unconditionally. */
    while (pos < len && (text[pos] == ' ' || text[pos] == '\n' || text[pos] == '\r' || text[pos] == '\t')) pos++;
    while (pos < len && rank < BPE_MAX_MERGES) {
        size_t end = pos;
        while (end < len && text[end] != '\n') end++;
        line_no++;
        if (line_no > 1) {
            size_t n = end - pos;
            while (n > 0 && (text[pos + n - 1] == '\r' || text[pos + n - 1] == ' ')) n--;
            const char *sp = memchr(text + pos, ' ', n);
            if (!sp || sp == text + pos || (size_t)(sp - text - pos) + 1 >= n ||
                memchr(sp + 1, ' ', n - (size_t)(sp - text - pos) - 1)) {
                if (n == 0 && end >= len) break; /* trailing blank line */
                cond_set_err(err, errlen, "merges.txt: line %zu: expected two symbols separated by one space",
                        line_no);
                return -1;
            }
            size_t na = (size_t)(sp - text - pos), nb = n - na - 1;
            char buf[512];
            if (na + nb >= sizeof buf) {
                cond_set_err(err, errlen, "merges.txt: line %zu: symbol too long", line_no);
                return -1;
            }
            int32_t a = intern(t, text + pos, na), b = intern(t, sp + 1, nb);
            memcpy(buf, text + pos, na);
            memcpy(buf + na, sp + 1, nb);
            int32_t ab = intern(t, buf, na + nb);
            if (a < 0 || b < 0 || ab < 0) { cond_set_err(err, errlen, "merges.txt: out of memory"); return -1; }
            merge_put(&t->merges, a, b, rank++, ab);
        }
        pos = end + 1;
    }
    if (rank == 0) {
        cond_set_err(err, errlen, "merges.txt: no merges after the header line");
        return -1;
    }
    return 0;
}

/* A special token's text: a string, or an object with "content". */
static const char *token_text(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

static int32_t vocab_id(const bpe_tokenizer *t, const char *s) {
    for (int i = 0; i < t->nadded; i++)
        if (strcmp(t->added[i].content, s) == 0) return t->added[i].id;
    int32_t sym = str_map_get(&t->syms, s, strlen(s));
    return sym < 0 ? -1 : t->sym_vocab[sym];
}

static int add_token(bpe_tokenizer *t, const char *content, int32_t id) {
    if (!content || !*content) return 0;
    for (int i = 0; i < t->nadded; i++)
        if (strcmp(t->added[i].content, content) == 0) return 0;
    if (t->nadded == BPE_MAX_ADDED) return 0;
    char *c = strdup(content);
    if (!c) return -1;
    t->added[t->nadded].content = c;
    t->added[t->nadded++].id = id;
    return 0;
}

static int resolve_special(bpe_tokenizer *t, const char *name, const char *text, int32_t *out,
                           char *err, size_t errlen) {
    int32_t id = vocab_id(t, text);
    if (id < 0) {
        cond_set_err(err, errlen, "tokenizer config: %s \"%.40s\" is not in vocab.json", name, text);
        return -1;
    }
    *out = id;
    return 0;
}

/* Reads tokenizer_config.json then special_tokens_map.json (which wins, as
 * in transformers' from_pretrained). */
static int load_config(bpe_tokenizer *t, const char *config, const char *special_map,
                       char *err, size_t errlen) {
    const char *names[4] = {"bos_token", "eos_token", "pad_token", "unk_token"};
    char texts[4][128] = {"<|startoftext|>", "<|endoftext|>", "<|endoftext|>", "<|endoftext|>"};
    const char *srcs[2] = {config, special_map};
    const char *files[2] = {"tokenizer_config.json", "special_tokens_map.json"};
    t->max_length = 77;
    for (int s = 0; s < 2; s++) {
        if (!srcs[s]) continue;
        cJSON *root = cJSON_Parse(srcs[s]);
        if (!cJSON_IsObject(root)) {
            cJSON_Delete(root);
            cond_set_err(err, errlen, "%s: not a JSON object", files[s]);
            return -1;
        }
        for (int i = 0; i < 4; i++) {
            const char *v = token_text(cJSON_GetObjectItemCaseSensitive(root, names[i]));
            if (v) snprintf(texts[i], sizeof texts[i], "%s", v);
        }
        const cJSON *ml = cJSON_GetObjectItemCaseSensitive(root, "model_max_length");
        if (cJSON_IsNumber(ml)) {
            if (ml->valuedouble < 3 || ml->valuedouble > 4096) {
                cond_set_err(err, errlen, "%s: model_max_length %g is outside 3..4096", files[s], ml->valuedouble);
                cJSON_Delete(root);
                return -1;
            }
            t->max_length = (int)ml->valuedouble;
        }
        const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "added_tokens_decoder");
        for (const cJSON *it = dec ? dec->child : NULL; it; it = it->next) {
            const char *c = token_text(it);
            if (c && add_token(t, c, (int32_t)strtol(it->string, NULL, 10))) {
                cJSON_Delete(root);
                cond_set_err(err, errlen, "%s: out of memory", files[s]);
                return -1;
            }
        }
        cJSON_Delete(root);
    }
    int32_t *outs[4] = {&t->bos, &t->eos, &t->pad, &t->unk};
    for (int i = 0; i < 4; i++)
        if (resolve_special(t, names[i], texts[i], outs[i], err, errlen)) return -1;
    /* Special tokens are always split out, even without a config. */
    if (add_token(t, texts[0], t->bos) || add_token(t, texts[1], t->eos)) {
        cond_set_err(err, errlen, "tokenizer: out of memory");
        return -1;
    }
    return 0;
}

static int cache_init(bpe_tokenizer *t) {
    t->cache = calloc(BPE_CACHE_MAX, sizeof *t->cache);
    if (!t->cache) return -1;
    return pthread_mutex_init(&t->cache_lock, NULL) ? -1 : 0;
}

bpe_tokenizer *bpe_load_mem(const char *vocab, size_t vocab_len, const char *merges,
                            size_t merges_len, const char *config, const char *special_map,
                            char *err, size_t errlen) {
    bpe_tokenizer *t = calloc(1, sizeof *t);
    if (!t || cache_init(t)) {
        free(t);
        cond_set_err(err, errlen, "tokenizer: out of memory");
        return NULL;
    }
    if (load_vocab(t, vocab, vocab_len, err, errlen) || setup_bytes(t, err, errlen) ||
        load_merges(t, merges, merges_len, err, errlen) ||
        load_config(t, config, special_map, err, errlen)) {
        bpe_free(t);
        return NULL;
    }
    t->comma = vocab_id(t, ",</w>");
    t->sym_bos_text = str_map_get(&t->syms, "<|startoftext|>", 15);
    t->sym_eos_text = str_map_get(&t->syms, "<|endoftext|>", 13);
    return t;
}

/* Tokenizer files are a few MB (CLIP: 1 MB vocab, 0.5 MB merges); the
 * bound keeps a hostile file from costing more than its parse is worth. */
#define BPE_MAX_FILE_BYTES ((size_t)64 << 20)

static char *read_all(const char *path, const sdrt_file_scope *scope, size_t *len, sdrt_status *st, char *err,
                      size_t errlen) {
    const char *base = strrchr(path, '/');
    char field[96];
    snprintf(field, sizeof field, "tokenizer file %s", base ? base + 1 : path);
    return sdrt_file_read_all(path, field, scope, BPE_MAX_FILE_BYTES, len, st, err, errlen);
}

/* Prefixes a message from bpe_load_mem with the file path. */
static void prefix_path(char *err, size_t errlen, const char *file, const char *path) {
    if (!err || !errlen || strncmp(err, file, strlen(file)) != 0) return;
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s%s", path, err + strlen(file));
    snprintf(err, errlen, "%s", tmp);
}

bpe_tokenizer *bpe_load(const char *vocab_path, const char *merges_path,
                        const char *config_path, const char *special_map_path,
                        char *err, size_t errlen) {
    return bpe_load_scoped(vocab_path, merges_path, config_path, special_map_path, NULL, NULL, err, errlen);
}

bpe_tokenizer *bpe_load_scoped(const char *vocab_path, const char *merges_path, const char *config_path,
                               const char *special_map_path, const sdrt_file_scope *scope, sdrt_status *status,
                               char *err, size_t errlen) {
    size_t vl = 0, ml = 0, cl = 0, sl = 0;
    sdrt_status st = SDRT_OK;
    char *v = read_all(vocab_path, scope, &vl, &st, err, errlen);
    char *m = v ? read_all(merges_path, scope, &ml, &st, err, errlen) : NULL;
    char *c = m && config_path ? read_all(config_path, scope, &cl, &st, err, errlen) : NULL;
    char *s = m && special_map_path ? read_all(special_map_path, scope, &sl, &st, err, errlen) : NULL;
    bpe_tokenizer *t = NULL;
    if (status) *status = st;
    if (v && m && (!config_path || c) && (!special_map_path || s)) {
        t = bpe_load_mem(v, vl, m, ml, c, s, err, errlen);
        if (!t && status) *status = SDRT_INVALID_ARGUMENT;
        if (!t) {
            prefix_path(err, errlen, "vocab.json", vocab_path);
            prefix_path(err, errlen, "merges.txt", merges_path);
            if (config_path) prefix_path(err, errlen, "tokenizer_config.json", config_path);
            if (special_map_path) prefix_path(err, errlen, "special_tokens_map.json", special_map_path);
        }
    }
    free(v);
    free(m);
    free(c);
    free(s);
    return t;
}

void bpe_free(bpe_tokenizer *t) {
    if (!t) return;
    str_map_free(&t->syms);
    free(t->sym_vocab);
    free(t->merges.e);
    for (int i = 0; i < t->nadded; i++) free(t->added[i].content);
    if (t->cache) {
        for (size_t i = 0; i < t->ncache; i++) free(t->cache[i].ids);
        free(t->cache);
        pthread_mutex_destroy(&t->cache_lock);
    }
    str_map_free(&t->cache_index);
    free(t);
}

int32_t bpe_bos(const bpe_tokenizer *t) { return t->bos; }
int32_t bpe_eos(const bpe_tokenizer *t) { return t->eos; }
int32_t bpe_pad(const bpe_tokenizer *t) { return t->pad; }
int32_t bpe_comma(const bpe_tokenizer *t) { return t->comma; }
int bpe_max_length(const bpe_tokenizer *t) { return t->max_length; }
size_t bpe_vocab_size(const bpe_tokenizer *t) { return t->vocab_size; }

/* ---- encoding ------------------------------------------------------------- */

typedef struct id_vec {
    int32_t *v;
    size_t n, cap;
} id_vec;

static int vec_push(id_vec *a, int32_t x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        int32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) return -1;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

/* Merges symbols in w[0..n) in place by rank; returns the new length. */
static size_t bpe_merge(const bpe_tokenizer *t, int32_t *w, size_t n) {
    while (n > 1) {
        int32_t best = INT32_MAX, first = 0, second = 0, merged = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            const merge_entry *e = merge_find(&t->merges, w[i], w[i + 1]);
            if (e && e->rank < best) {
                best = e->rank;
                first = w[i];
                second = w[i + 1];
                merged = e->merged;
            }
        }
        if (best == INT32_MAX) break;
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            if (i + 1 < n && w[i] == first && w[i + 1] == second) {
                w[o++] = merged;
                i++;
            } else {
                w[o++] = w[i];
            }
        }
        n = o;
    }
    return n;
}

static int32_t sym_id(const bpe_tokenizer *t, int32_t sym) {
    int32_t id = sym >= 0 ? t->sym_vocab[sym] : -1;
    return id < 0 ? t->unk : id;
}

/* BPE of one pre-token (UTF-8 bytes), uncached. */
static int encode_word(const bpe_tokenizer *t, const char *s, size_t n, id_vec *out) {
    if (n == 15 && memcmp(s, "<|startoftext|>", 15) == 0 && t->sym_bos_text >= 0)
        return vec_push(out, sym_id(t, t->sym_bos_text));
    if (n == 13 && memcmp(s, "<|endoftext|>", 13) == 0 && t->sym_eos_text >= 0)
        return vec_push(out, sym_id(t, t->sym_eos_text));
    int32_t *w = malloc(n * sizeof *w);
    if (!w) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        w[i] = i + 1 == n ? t->byte_sym_end[b] : t->byte_sym[b];
    }
    size_t m = bpe_merge(t, w, n);
    int r = 0;
    for (size_t i = 0; i < m && !r; i++) r = vec_push(out, sym_id(t, w[i]));
    free(w);
    return r;
}

static int cache_lookup(bpe_tokenizer *t, const char *s, size_t n, id_vec *out) {
    int found = 0, r = 0;
    pthread_mutex_lock(&t->cache_lock);
    int32_t slot = str_map_get(&t->cache_index, s, n);
    if (slot >= 0) {
        found = 1;
        for (int32_t i = 0; i < t->cache[slot].n && !r; i++) r = vec_push(out, t->cache[slot].ids[i]);
    }
    pthread_mutex_unlock(&t->cache_lock);
    return r ? -1 : found;
}

/* Best effort: a full cache is emptied rather than grown without bound. */
static void cache_store(bpe_tokenizer *t, const char *s, size_t n, const int32_t *ids, size_t k) {
    if (n > 256) return;
    pthread_mutex_lock(&t->cache_lock);
    if (t->ncache == BPE_CACHE_MAX) {
        for (size_t i = 0; i < t->ncache; i++) free(t->cache[i].ids);
        t->ncache = 0;
        str_map_free(&t->cache_index);
    }
    int32_t *copy = malloc((k ? k : 1) * sizeof *copy);
    int32_t stored;
    if (copy && str_map_put(&t->cache_index, s, n, (int32_t)t->ncache, &stored) == 0 &&
        (size_t)stored == t->ncache) {
        memcpy(copy, ids, k * sizeof *copy);
        t->cache[t->ncache].ids = copy;
        t->cache[t->ncache++].n = (int32_t)k;
        copy = NULL;
    }
    free(copy);
    pthread_mutex_unlock(&t->cache_lock);
}

static int encode_word_cached(bpe_tokenizer *t, const char *s, size_t n, id_vec *out) {
    int hit = cache_lookup(t, s, n, out);
    if (hit) return hit < 0 ? -1 : 0;
    size_t start = out->n;
    if (encode_word(t, s, n, out)) return -1;
    cache_store(t, s, n, out->v + start, out->n - start);
    return 0;
}

/* Length of a contraction ('s 't 're 've 'm 'll 'd) at s, or 0. The
 * pattern is case-insensitive, so U+017F (long s) matches 's' too. */
static size_t contraction(const char *s, size_t n) {
    if (n < 2 || s[0] != '\'') return 0;
    char c = s[1];
    if (c == 's' || c == 't' || c == 'm' || c == 'd') return 2;
    if (n >= 3 && ((c == 'r' && s[2] == 'e') || (c == 'v' && s[2] == 'e') || (c == 'l' && s[2] == 'l')))
        return 3;
    if (n >= 3 && (unsigned char)s[1] == 0xC5 && (unsigned char)s[2] == 0xBF) return 3;
    return 0;
}

typedef enum { CH_SPACE, CH_LETTER, CH_NUMBER, CH_OTHER } char_class;

static char_class classify(uint32_t cp) {
    if (uni_is_letter(cp)) return CH_LETTER;
    if (uni_is_number(cp)) return CH_NUMBER;
    if (uni_is_space(cp)) return CH_SPACE;
    return CH_OTHER;
}

/* Length of the CLIP regex match starting at s (0 = whitespace, skip it). */
static size_t pretoken_len(const char *s, size_t n, size_t *skip) {
    uint32_t cp;
    size_t k = uni_decode(s, n, &cp), len;
    *skip = k;
    if (n >= 15 && memcmp(s, "<|startoftext|>", 15) == 0) return 15;
    if (n >= 13 && memcmp(s, "<|endoftext|>", 13) == 0) return 13;
    if ((len = contraction(s, n))) return len;
    char_class cls = classify(cp);
    if (cls == CH_SPACE) return 0;
    if (cls == CH_NUMBER) return k;
    len = k;
    while (len < n) {
        size_t kk = uni_decode(s + len, n - len, &cp);
        if (classify(cp) != cls) break;
        len += kk;
    }
    return len;
}

/* Cleans and BPE-encodes one piece of text without added tokens. */
static int encode_piece(bpe_tokenizer *t, const char *text, size_t len, id_vec *out) {
    char *clean = cond_clean_text(text, len);
    if (!clean) return -1;
    size_t n = strlen(clean), pos = 0;
    int r = 0;
    while (pos < n && !r) {
        size_t skip, m = pretoken_len(clean + pos, n - pos, &skip);
        if (m == 0) { pos += skip; continue; }
        r = encode_word_cached(t, clean + pos, m, out);
        pos += m;
    }
    free(clean);
    return r;
}

/* Longest added token starting at s, or -1. */
static int added_at(const bpe_tokenizer *t, const char *s, size_t n, size_t *len) {
    int best = -1;
    size_t best_len = 0;
    for (int i = 0; i < t->nadded; i++) {
        size_t l = strlen(t->added[i].content);
        if (l <= n && l > best_len && memcmp(s, t->added[i].content, l) == 0) {
            best = i;
            best_len = l;
        }
    }
    *len = best_len;
    return best;
}

int bpe_encode(bpe_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n) {
    id_vec out = {0};
    size_t start = 0, pos = 0;
    int r = 0;
    while (pos < len && !r) {
        size_t alen;
        int a = added_at(t, text + pos, len - pos, &alen);
        if (a < 0) { pos++; continue; }
        if (pos > start) r = encode_piece(t, text + start, pos - start, &out);
        if (!r) r = vec_push(&out, t->added[a].id);
        pos += alen;
        start = pos;
    }
    if (!r && start < len) r = encode_piece(t, text + start, len - start, &out);
    if (r) { free(out.v); *ids = NULL; *n = 0; return -1; }
    *ids = out.v;
    *n = out.n;
    return 0;
}

void bpe_frame(const bpe_tokenizer *t, const int32_t *ids, size_t n, int32_t *out) {
    size_t max = (size_t)t->max_length, body = n < max - 2 ? n : max - 2, i = 0;
    out[i++] = t->bos;
    for (size_t k = 0; k < body; k++) out[i++] = ids[k];
    out[i++] = t->eos;
    while (i < max) out[i++] = t->pad;
}
