/* prompt.c - A1111 prompt syntax (modules/prompt_parser.py,
 * extra_networks.py, sd_hijack_clip.py tokenize_line), re-implemented.
 * Deliberate differences from A1111 are listed in docs/prompt-syntax.md. */
#include "prompt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cond_err.h"
#include "unicode.h"

/* ---- growable byte string ------------------------------------------------- */

typedef struct sbuf {
    char *s;
    size_t n, cap;
} sbuf;

static int sb_add(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) return -1;
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
    return 0;
}

static char *sb_take(sbuf *b) {
    if (!b->s && sb_add(b, "", 0)) return NULL;
    char *s = b->s;
    memset(b, 0, sizeof *b);
    return s;
}

/* ---- extra-network tags: <name:args> ------------------------------------ */

static int is_word_at(const char *s, size_t n, size_t *k) {
    uint32_t cp;
    *k = uni_decode(s, n, &cp);
    return uni_is_word(cp);
}

/* Length of a tag "<\w+:[^>]+>" at s, or 0; *name_len = length of \w+. */
static size_t tag_len(const char *s, size_t n, size_t *name_len) {
    size_t i = 1, k;
    if (n < 4 || s[0] != '<') return 0;
    while (i < n && is_word_at(s + i, n - i, &k)) i += k;
    if (i == 1 || i >= n || s[i] != ':') return 0;
    *name_len = i - 1;
    size_t args = ++i;
    while (i < n && s[i] != '>') i++;
    if (i >= n || i == args) return 0;
    return i + 1;
}

static int parse_number(const char *s, size_t n, double *out) {
    char buf[64];
    if (n == 0 || n >= sizeof buf) return 0;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    *out = strtod(buf, &end);
    while (*end == ' ') end++;
    return *end == 0 && buf[0] != ' ';
}

/* <lora:name[:te_weight[:...]]> (also <lyco:...>): name and weight. */
static int add_lora(prompt_parsed *p, const char *args, size_t n, char *err, size_t errlen) {
    const char *colon = memchr(args, ':', n);
    size_t name_len = colon ? (size_t)(colon - args) : n;
    double w = 1.0;
    if (colon) {
        const char *ws = colon + 1, *we = memchr(ws, ':', n - name_len - 1);
        size_t wl = we ? (size_t)(we - ws) : n - name_len - 1;
        if (!parse_number(ws, wl, &w)) {
            cond_set_err(err, errlen, "prompt: <lora:%.*s>: weight \"%.*s\" is not a number",
                    (int)(n > 80 ? 80 : n), args, (int)(wl > 40 ? 40 : wl), ws);
            return -1;
        }
    }
    prompt_lora *l = realloc(p->loras, (p->nloras + 1) * sizeof *l);
    if (!l) return -1;
    p->loras = l;
    char *name = malloc(name_len + 1);
    if (!name) return -1;
    memcpy(name, args, name_len);
    name[name_len] = 0;
    l[p->nloras].name = name;
    l[p->nloras++].weight = (float)w;
    return 0;
}

/* Removes every extra-network tag (A1111 removes them all); keeps LoRAs. */
static int strip_tags(const char *text, prompt_parsed *p, char *err, size_t errlen) {
    sbuf out = {0};
    size_t n = strlen(text), i = 0;
    while (i < n) {
        size_t name_len, t = text[i] == '<' ? tag_len(text + i, n - i, &name_len) : 0;
        if (!t) {
            if (sb_add(&out, text + i, 1)) goto oom;
            i++;
            continue;
        }
        int is_lora = (name_len == 4 && (memcmp(text + i + 1, "lora", 4) == 0 ||
                                         memcmp(text + i + 1, "lyco", 4) == 0));
        if (is_lora && add_lora(p, text + i + 6, t - 7, err, errlen)) {
            free(out.s);
            if (!err || !*err) cond_set_err(err, errlen, "prompt: out of memory");
            return -1;
        }
        i += t;
    }
    p->stripped = sb_take(&out);
    if (p->stripped) return 0;
oom:
    free(out.s);
    cond_set_err(err, errlen, "prompt: out of memory");
    return -1;
}

/* ---- emphasis ------------------------------------------------------------ */

typedef struct piece_list {
    prompt_piece *v;
    size_t n, cap;
} piece_list;

static int push_piece(piece_list *l, const char *s, size_t n, double w, int is_break) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        prompt_piece *v = realloc(l->v, cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    char *t = malloc(n + 1);
    if (!t) return -1;
    memcpy(t, s, n);
    t[n] = 0;
    l->v[l->n].text = t;
    l->v[l->n].weight = w;
    l->v[l->n++].is_break = is_break;
    return 0;
}

static size_t space_run(const char *s, size_t n) {
    size_t i = 0, k;
    uint32_t cp;
    while (i < n && (k = uni_decode(s + i, n - i, &cp)) && uni_is_space(cp)) i += k;
    return i;
}

/* Whether a word character ends right before s[i] (for \b). */
static int word_before(const char *s, size_t i) {
    if (i == 0) return 0;
    size_t j = i - 1;
    while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
    uint32_t cp;
    uni_decode(s + j, i - j, &cp);
    return uni_is_word(cp);
}

/* A text run split on re_break = \s*\bBREAK\b\s*: parts with BREAK markers
 * between them (the spaces around BREAK are dropped). */
static int push_text(piece_list *l, const char *s, size_t n) {
    size_t start = 0, i = 0;
    while (i + 5 <= n) {
        size_t k;
        if (memcmp(s + i, "BREAK", 5) != 0 || word_before(s, i) ||
            (i + 5 < n && is_word_at(s + i + 5, n - i - 5, &k))) {
            i++;
            continue;
        }
        size_t left = i;
        while (left > start && uni_is_space((unsigned char)s[left - 1])) left--;
        if (push_piece(l, s + start, left - start, 1.0, 0) || push_piece(l, "", 0, 1.0, 1)) return -1;
        i += 5;
        i += space_run(s + i, n - i);
        start = i;
    }
    return push_piece(l, s + start, n - start, 1.0, 0);
}

/* BREAK markers keep their meaning inside brackets (A1111 would multiply
 * their -1 marker weight and tokenize the word "break" instead). */
static void multiply_range(piece_list *l, size_t from, double m) {
    for (size_t i = from; i < l->n; i++)
        if (!l->v[i].is_break) l->v[i].weight *= m;
}

/* ":" \s* [+-]?[.\d]+ \s* ")" at s: its length and the weight, or 0. */
static size_t weight_close(const char *s, size_t n, double *w) {
    size_t i = 1 + space_run(s + 1, n - 1), num = i;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    size_t digits = i;
    while (i < n && (s[i] == '.' || (s[i] >= '0' && s[i] <= '9'))) i++;
    if (i == digits) return 0;
    size_t num_end = i;
    i += space_run(s + i, n - i);
    if (i >= n || s[i] != ')') return 0;
    return parse_number(s + num, num_end - num, w) ? i + 1 : 0;
}

static int is_special(char c) {
    return c == '\\' || c == '(' || c == ')' || c == '[' || c == ']' || c == ':';
}

typedef struct bracket_stack {
    size_t *v;
    size_t n, cap;
} bracket_stack;

static int stack_push(bracket_stack *s, size_t x) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        size_t *v = realloc(s->v, cap * sizeof *v);
        if (!v) return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return 0;
}

/* One token of re_attention at s; appends to l / the stacks. Returns the
 * number of bytes consumed, 0 on out of memory. */
static size_t attention_step(const char *s, size_t n, piece_list *l, bracket_stack *round,
                             bracket_stack *square) {
    double w;
    size_t k;
    if (s[0] == '\\') {
        int esc = n > 1 && (s[1] == '(' || s[1] == ')' || s[1] == '[' || s[1] == ']' || s[1] == '\\');
        /* A lone backslash yields an empty piece, as in A1111. */
        return push_piece(l, s + 1, esc ? 1 : 0, 1.0, 0) ? 0 : (esc ? 2 : 1);
    }
    if (s[0] == '(') return stack_push(round, l->n) ? 0 : 1;
    if (s[0] == '[') return stack_push(square, l->n) ? 0 : 1;
    if (s[0] == ':' && (k = weight_close(s, n, &w)) != 0) {
        if (round->n) {
            multiply_range(l, round->v[--round->n], w);
            return k;
        }
        return push_text(l, s, k) ? 0 : k;
    }
    if (s[0] == ')' && round->n) {
        multiply_range(l, round->v[--round->n], 1.1);
        return 1;
    }
    if (s[0] == ']' && square->n) {
        multiply_range(l, square->v[--square->n], 1 / 1.1);
        return 1;
    }
    if (s[0] == ')' || s[0] == ']' || s[0] == ':') return push_text(l, s, 1) ? 0 : 1;
    for (k = 1; k < n && !is_special(s[k]); k++) {}
    return push_text(l, s, k) ? 0 : k;
}

/* Merges neighbours of identical weight (BREAK markers stay apart). */
static int merge_runs(piece_list *l) {
    size_t i = 0;
    while (i + 1 < l->n) {
        prompt_piece *a = &l->v[i], *b = &l->v[i + 1];
        if (a->is_break || b->is_break || a->weight != b->weight) { i++; continue; }
        size_t na = strlen(a->text), nb = strlen(b->text);
        char *t = realloc(a->text, na + nb + 1);
        if (!t) return -1;
        memcpy(t + na, b->text, nb + 1);
        a->text = t;
        free(b->text);
        memmove(b, b + 1, (l->n - i - 2) * sizeof *b);
        l->n--;
    }
    return 0;
}

static int parse_attention(const char *text, piece_list *l) {
    bracket_stack round = {0}, square = {0};
    size_t n = strlen(text), i = 0;
    int r = 0;
    while (i < n) {
        size_t k = attention_step(text + i, n - i, l, &round, &square);
        if (!k) { r = -1; break; }
        i += k;
    }
    for (size_t j = 0; !r && j < round.n; j++) multiply_range(l, round.v[j], 1.1);
    for (size_t j = 0; !r && j < square.n; j++) multiply_range(l, square.v[j], 1 / 1.1);
    free(round.v);
    free(square.v);
    if (!r && l->n == 0) r = push_piece(l, "", 0, 1.0, 0);
    return r ? -1 : merge_runs(l);
}

int prompt_parse(const char *text, prompt_parsed *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (err && errlen) err[0] = 0;
    if (strip_tags(text ? text : "", out, err, errlen)) {
        prompt_free(out);
        return -1;
    }
    piece_list l = {0};
    if (parse_attention(out->stripped, &l)) {
        for (size_t i = 0; i < l.n; i++) free(l.v[i].text);
        free(l.v);
        prompt_free(out);
        cond_set_err(err, errlen, "prompt: out of memory");
        return -1;
    }
    out->pieces = l.v;
    out->npieces = l.n;
    return 0;
}

void prompt_free(prompt_parsed *p) {
    if (!p) return;
    for (size_t i = 0; i < p->npieces; i++) free(p->pieces[i].text);
    for (size_t i = 0; i < p->nloras; i++) free(p->loras[i].name);
    free(p->pieces);
    free(p->loras);
    free(p->stripped);
    memset(p, 0, sizeof *p);
}

int prompt_is_plain(const prompt_parsed *p) {
    return p->npieces == 1 && !p->pieces[0].is_break && p->pieces[0].weight == 1.0 &&
           strcmp(p->pieces[0].text, p->stripped) == 0;
}

/* ---- chunking ------------------------------------------------------------ */

typedef struct chunker {
    bpe_tokenizer *t;
    prompt_chunks *out;
    int32_t cur_ids[4096];
    float cur_w[4096];
    size_t cur_n;
    long last_comma;
    int body; /* tokens per chunk between BOS and EOS */
} chunker;

static int emit_chunk(chunker *c) {
    prompt_chunks *o = c->out;
    int len = o->len;
    if (o->nchunks + 1 > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 4;
        int32_t *ids = realloc(o->ids, cap * (size_t)len * sizeof *ids);
        if (ids) o->ids = ids;
        float *w = realloc(o->weights, cap * (size_t)len * sizeof *w);
        if (w) o->weights = w;
        if (!ids || !w) return -1;
        o->cap = cap;
    }
    int32_t *ids = o->ids + o->nchunks * (size_t)len;
    float *w = o->weights + o->nchunks * (size_t)len;
    int i = 0;
    ids[i] = bpe_bos(c->t);
    w[i++] = 1.0f;
    for (size_t k = 0; k < c->cur_n; k++, i++) {
        ids[i] = c->cur_ids[k];
        w[i] = c->cur_w[k];
    }
    ids[i] = bpe_eos(c->t);
    w[i++] = 1.0f;
    for (; i < len; i++) {
        ids[i] = bpe_pad(c->t);
        w[i] = 1.0f;
    }
    o->nchunks++;
    c->cur_n = 0;
    c->last_comma = -1;
    return 0;
}

static int add_token(chunker *c, int32_t id, float w, int comma_backtrack) {
    if (id == bpe_comma(c->t)) {
        c->last_comma = (long)c->cur_n;
    } else if (comma_backtrack > 0 && c->cur_n == (size_t)c->body && c->last_comma != -1 &&
               (long)c->cur_n - c->last_comma <= comma_backtrack) {
        /* Move everything after the last comma into the next chunk. */
        size_t brk = (size_t)c->last_comma + 1, nmove = c->cur_n - brk;
        int32_t ids[4096];
        float ws[4096];
        memcpy(ids, c->cur_ids + brk, nmove * sizeof *ids);
        memcpy(ws, c->cur_w + brk, nmove * sizeof *ws);
        c->cur_n = brk;
        if (emit_chunk(c)) return -1;
        memcpy(c->cur_ids, ids, nmove * sizeof *ids);
        memcpy(c->cur_w, ws, nmove * sizeof *ws);
        c->cur_n = nmove;
    }
    if (c->cur_n == (size_t)c->body && emit_chunk(c)) return -1;
    c->cur_ids[c->cur_n] = id;
    c->cur_w[c->cur_n++] = w;
    return 0;
}

static int plain_tokenize(void *ctx, bpe_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n) {
    (void)ctx;
    return bpe_encode(t, text, len, ids, n);
}

int prompt_chunk(bpe_tokenizer *t, const prompt_parsed *p, int comma_backtrack, prompt_chunks *out) {
    return prompt_chunk_with(t, p, comma_backtrack, plain_tokenize, NULL, NULL, out);
}

int prompt_chunk_with(bpe_tokenizer *t, const prompt_parsed *p, int comma_backtrack, prompt_tokenize_fn tok,
                      prompt_group_fn group, void *tok_ctx, prompt_chunks *out) {
    memset(out, 0, sizeof *out);
    out->len = bpe_max_length(t);
    chunker *c = calloc(1, sizeof *c);
    if (!c) return -1;
    c->t = t;
    c->out = out;
    c->last_comma = -1;
    c->body = out->len - 2;
    int r = 0;
    for (size_t i = 0; i < p->npieces && !r; i++) {
        const prompt_piece *pc = &p->pieces[i];
        if (pc->is_break) { r = emit_chunk(c); continue; }
        int32_t *ids;
        size_t n;
        if ((r = tok(tok_ctx, t, pc->text, strlen(pc->text), &ids, &n))) break;
        for (size_t k = 0; k < n && !r; k++) {
            int g = group ? group(tok_ctx, ids[k]) : 0;
            if (g > 0 && c->cur_n > 0 && c->cur_n + (size_t)g > (size_t)c->body) r = emit_chunk(c);
            r = r ? r : add_token(c, ids[k], (float)pc->weight, comma_backtrack);
        }
        free(ids);
    }
    if (!r && (c->cur_n || out->nchunks == 0)) r = emit_chunk(c);
    free(c);
    if (r) prompt_chunks_free(out);
    return r;
}

int prompt_chunk_plain(bpe_tokenizer *t, const char *text, prompt_chunks *out) {
    return prompt_chunk_plain_with(t, text, plain_tokenize, NULL, out);
}

int prompt_chunk_plain_with(bpe_tokenizer *t, const char *text, prompt_tokenize_fn tok, void *tok_ctx,
                            prompt_chunks *out) {
    memset(out, 0, sizeof *out);
    out->len = bpe_max_length(t);
    int32_t *ids;
    size_t n;
    int r = tok(tok_ctx, t, text, strlen(text), &ids, &n);
    if (r) return r;
    out->ids = malloc((size_t)out->len * sizeof *out->ids);
    out->weights = malloc((size_t)out->len * sizeof *out->weights);
    if (!out->ids || !out->weights) { free(ids); prompt_chunks_free(out); return -1; }
    bpe_frame(t, ids, n, out->ids);
    for (int i = 0; i < out->len; i++) out->weights[i] = 1.0f;
    out->nchunks = 1;
    out->cap = 1;
    free(ids);
    return 0;
}

int prompt_chunks_pad(bpe_tokenizer *t, prompt_chunks *c, size_t extra) {
    size_t len = (size_t)c->len, total = c->nchunks + extra;
    if (total > c->cap) {
        int32_t *ids = realloc(c->ids, total * len * sizeof *ids);
        if (ids) c->ids = ids;
        float *w = realloc(c->weights, total * len * sizeof *w);
        if (w) c->weights = w;
        if (!ids || !w) return -1;
        c->cap = total;
    }
    int32_t *ids = c->ids;
    float *w = c->weights;
    for (size_t k = c->nchunks; k < total; k++) {
        bpe_frame(t, NULL, 0, ids + k * len);
        for (size_t i = 0; i < len; i++) w[k * len + i] = 1.0f;
    }
    c->nchunks = total;
    return 0;
}

void prompt_chunks_free(prompt_chunks *c) {
    if (!c) return;
    free(c->ids);
    free(c->weights);
    memset(c, 0, sizeof *c);
}
