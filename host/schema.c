/* host/schema.c - JSON Schema 2020-12 validation (the subset in schema.h).
 *
 * The validator interprets the schema's cJSON tree directly: schemas are few
 * and small, and an interpreter keeps error messages close to the keyword
 * that failed. Sections: the set (loading, lookup), $ref resolution, the
 * regex subset, value helpers, the keyword checks.
 */
#define _POSIX_C_SOURCE 200809L
#include "schema.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>
#else
#include <dirent.h>
#include <sys/stat.h>
#endif

/* Nesting of schema applications (subschemas, $ref hops) before a schema is
 * declared broken: stops $ref cycles and bounds the C stack. */
#define SCHEMA_MAX_DEPTH 256
#define SCHEMA_MSG_MAX 512
#define SCHEMA_PATH_MAX 512
/* Regex work per pattern test; keeps hostile patterns and inputs cheap. */
#define RX_STEP_BUDGET 20000
#define RX_MAX_RECURSION 1500

typedef struct schema_doc {
    char *name; /* path relative to the loaded folder, '/' separated */
    char *id;   /* top-level $id, or NULL */
    cJSON *root;
} schema_doc;

struct schema_set {
    schema_doc *docs;
    size_t count;
    size_t cap;
};

#if defined(__GNUC__)
#define SCHEMA_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#else
#define SCHEMA_PRINTF(fmt_idx, arg_idx)
#endif

static void set_err(char *err, size_t errlen, const char *fmt, ...) SCHEMA_PRINTF(3, 4);

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char *str_dup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ------------------------------------------------------------------------ */
/* Regex subset (see schema.h)                                               */
/* ------------------------------------------------------------------------ */

enum { RX_CHAR, RX_ANY, RX_SET, RX_BOL, RX_EOL, RX_GROUP };

typedef struct rx_alt rx_alt;

typedef struct rx_node {
    int kind;
    int min, max; /* max < 0: unbounded */
    unsigned char bytes[4];
    int nbytes;              /* RX_CHAR: one UTF-8 code point */
    unsigned char set[16];   /* RX_SET: ASCII membership bits */
    int negate;
    rx_alt *alts;            /* RX_GROUP */
    struct rx_node *next;
} rx_node;

struct rx_alt {
    rx_node *first;
    rx_alt *next;
};

typedef struct rx {
    rx_node *nodes;
    rx_alt *altv;
    size_t nnodes, nalts, cap;
    rx_node root;
} rx;

typedef struct rx_parser {
    const char *p;
    rx *re;
    const char *error;
} rx_parser;

static rx_node *rx_new_node(rx_parser *ps, int kind) {
    if (ps->re->nnodes >= ps->re->cap) {
        ps->error = "pattern too long";
        return NULL;
    }
    rx_node *n = &ps->re->nodes[ps->re->nnodes++];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->min = n->max = 1;
    return n;
}

static rx_alt *rx_new_alt(rx_parser *ps) {
    if (ps->re->nalts >= ps->re->cap) {
        ps->error = "pattern too long";
        return NULL;
    }
    rx_alt *a = &ps->re->altv[ps->re->nalts++];
    memset(a, 0, sizeof *a);
    return a;
}

static void rx_set_add(unsigned char *set, int c) { set[c >> 3] |= (unsigned char)(1u << (c & 7)); }

static void rx_set_range(unsigned char *set, int lo, int hi) {
    for (int c = lo; c <= hi; c++) rx_set_add(set, c);
}

/* Adds the class escape \d \w \s (lowercase) to set; returns 0 if `e` is
 * not one. Uppercase forms are handled by the caller through negate. */
static int rx_class_escape(unsigned char *set, int e) {
    switch (e) {
    case 'd': rx_set_range(set, '0', '9'); return 1;
    case 'w':
        rx_set_range(set, 'a', 'z');
        rx_set_range(set, 'A', 'Z');
        rx_set_range(set, '0', '9');
        rx_set_add(set, '_');
        return 1;
    case 's':
        rx_set_add(set, ' ');
        rx_set_range(set, '\t', '\r');
        return 1;
    default: return 0;
    }
}

/* Control escapes \n \r \t \f \v; returns the byte or -1. */
static int rx_control_escape(int e) {
    switch (e) {
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'f': return '\f';
    case 'v': return '\v';
    default: return -1;
    }
}

static int rx_is_punct(int c) { return c > 0x20 && c < 0x7f && !((c | 0x20) >= 'a' && (c | 0x20) <= 'z') && !(c >= '0' && c <= '9'); }

static int rx_utf8_len(unsigned char c) {
    if (c >= 0xf0) return 4;
    if (c >= 0xe0) return 3;
    if (c >= 0xc0) return 2;
    return 1;
}

/* One class member (after '[' or between members): a char or an escape.
 * Returns the byte, or -2 when it was a class escape already added. */
static int rx_class_atom(rx_parser *ps, unsigned char *set) {
    unsigned char c = (unsigned char)*ps->p;
    if (c >= 0x80) {
        ps->error = "non-ASCII characters inside [...] are not supported";
        return -1;
    }
    ps->p++;
    if (c != '\\') return c;
    int e = (unsigned char)*ps->p++;
    if (rx_class_escape(set, e)) return -2;
    if (e == 'D' || e == 'W' || e == 'S') {
        ps->error = "negated class escapes inside [...] are not supported";
        return -1;
    }
    int ctl = rx_control_escape(e);
    if (ctl >= 0) return ctl;
    if (rx_is_punct(e)) return e;
    ps->error = "unsupported escape inside [...]";
    return -1;
}

static rx_node *rx_parse_class(rx_parser *ps) {
    rx_node *n = rx_new_node(ps, RX_SET);
    if (!n) return NULL;
    if (*ps->p == '^') {
        n->negate = 1;
        ps->p++;
    }
    int first = 1;
    while (*ps->p && (*ps->p != ']' || first)) {
        first = 0;
        int lo = rx_class_atom(ps, n->set);
        if (lo == -1) return NULL;
        if (lo == -2) continue;
        if (ps->p[0] == '-' && ps->p[1] && ps->p[1] != ']') {
            ps->p++;
            int hi = rx_class_atom(ps, n->set);
            if (hi < 0 || hi < lo) {
                if (!ps->error) ps->error = "bad range inside [...]";
                return NULL;
            }
            rx_set_range(n->set, lo, hi);
        } else {
            rx_set_add(n->set, lo);
        }
    }
    if (*ps->p != ']') {
        ps->error = "missing ]";
        return NULL;
    }
    ps->p++;
    return n;
}

static rx_node *rx_parse_escape(rx_parser *ps) {
    int e = (unsigned char)*ps->p;
    if (!e) {
        ps->error = "pattern ends with \\";
        return NULL;
    }
    ps->p++;
    unsigned char tmp[16] = {0};
    if (rx_class_escape(tmp, e | 0x20) && (e == 'd' || e == 'w' || e == 's' || e == 'D' || e == 'W' || e == 'S')) {
        rx_node *n = rx_new_node(ps, RX_SET);
        if (!n) return NULL;
        memcpy(n->set, tmp, sizeof tmp);
        n->negate = (e >= 'A' && e <= 'Z');
        return n;
    }
    int ctl = rx_control_escape(e);
    if (ctl < 0 && !rx_is_punct(e)) {
        ps->error = "unsupported escape (\\b, \\u, \\p and backreferences are not in the subset)";
        return NULL;
    }
    rx_node *n = rx_new_node(ps, RX_CHAR);
    if (!n) return NULL;
    n->bytes[0] = (unsigned char)(ctl >= 0 ? ctl : e);
    n->nbytes = 1;
    return n;
}

static rx_node *rx_parse_literal(rx_parser *ps) {
    rx_node *n = rx_new_node(ps, RX_CHAR);
    if (!n) return NULL;
    int len = rx_utf8_len((unsigned char)*ps->p);
    for (int i = 0; i < len; i++) {
        if (!ps->p[0]) {
            ps->error = "truncated UTF-8 in pattern";
            return NULL;
        }
        n->bytes[n->nbytes++] = (unsigned char)*ps->p++;
    }
    return n;
}

static rx_alt *rx_parse_alts(rx_parser *ps);

static rx_node *rx_parse_group(rx_parser *ps) {
    if (ps->p[0] == '?') {
        if (ps->p[1] != ':') {
            ps->error = "lookaround and named groups are not in the subset";
            return NULL;
        }
        ps->p += 2;
    }
    rx_node *n = rx_new_node(ps, RX_GROUP);
    if (!n) return NULL;
    n->alts = rx_parse_alts(ps);
    if (!n->alts) return NULL;
    if (*ps->p != ')') {
        ps->error = "missing )";
        return NULL;
    }
    ps->p++;
    return n;
}

static rx_node *rx_parse_atom(rx_parser *ps) {
    char c = *ps->p++;
    switch (c) {
    case '(': return rx_parse_group(ps);
    case '[': return rx_parse_class(ps);
    case '.': return rx_new_node(ps, RX_ANY);
    case '^': return rx_new_node(ps, RX_BOL);
    case '$': return rx_new_node(ps, RX_EOL);
    case '\\': return rx_parse_escape(ps);
    case '*': case '+': case '?': case '{':
        ps->error = "quantifier without anything to repeat";
        return NULL;
    default: ps->p--; return rx_parse_literal(ps);
    }
}

static int rx_parse_int(rx_parser *ps, int *out) {
    if (*ps->p < '0' || *ps->p > '9') return 0;
    long v = 0;
    while (*ps->p >= '0' && *ps->p <= '9') {
        v = v * 10 + (*ps->p++ - '0');
        if (v > 100000) {
            ps->error = "repetition count too large";
            return 0;
        }
    }
    *out = (int)v;
    return 1;
}

/* Parses {n}, {n,}, {n,m} after the '{'. */
static int rx_parse_braces(rx_parser *ps, rx_node *n) {
    if (!rx_parse_int(ps, &n->min)) goto bad;
    n->max = n->min;
    if (*ps->p == ',') {
        ps->p++;
        n->max = -1;
        if (*ps->p != '}' && !rx_parse_int(ps, &n->max)) goto bad;
    }
    if (*ps->p != '}' || (n->max >= 0 && n->max < n->min)) goto bad;
    ps->p++;
    return 1;
bad:
    if (!ps->error) ps->error = "bad {n,m} quantifier";
    return 0;
}

static int rx_parse_quant(rx_parser *ps, rx_node *n) {
    char q = *ps->p;
    if (q != '*' && q != '+' && q != '?' && q != '{') return 1;
    if (n->kind == RX_BOL || n->kind == RX_EOL) {
        ps->error = "quantifier after an anchor";
        return 0;
    }
    ps->p++;
    if (q == '*') { n->min = 0; n->max = -1; }
    if (q == '+') { n->min = 1; n->max = -1; }
    if (q == '?') { n->min = 0; n->max = 1; }
    if (q == '{' && !rx_parse_braces(ps, n)) return 0;
    if (*ps->p == '?' || *ps->p == '*' || *ps->p == '+' || *ps->p == '{') {
        ps->error = "lazy or stacked quantifiers are not in the subset";
        return 0;
    }
    return 1;
}

static rx_alt *rx_parse_alts(rx_parser *ps) {
    rx_alt *head = rx_new_alt(ps), *alt = head;
    if (!head) return NULL;
    rx_node **tail = &alt->first;
    while (*ps->p && *ps->p != ')') {
        if (*ps->p == '|') {
            ps->p++;
            alt->next = rx_new_alt(ps);
            if (!alt->next) return NULL;
            alt = alt->next;
            tail = &alt->first;
            continue;
        }
        rx_node *n = rx_parse_atom(ps);
        if (!n || !rx_parse_quant(ps, n)) return NULL;
        *tail = n;
        tail = &n->next;
    }
    return head;
}

static void rx_free(rx *re) {
    free(re->nodes);
    free(re->altv);
}

/* Compiles `pattern`; returns 0, or -1 with *why set to a static reason. */
static int rx_compile(rx *re, const char *pattern, const char **why) {
    memset(re, 0, sizeof *re);
    re->cap = strlen(pattern) + 2;
    re->nodes = calloc(re->cap, sizeof *re->nodes);
    re->altv = calloc(re->cap, sizeof *re->altv);
    if (!re->nodes || !re->altv) {
        rx_free(re);
        *why = "out of memory";
        return -1;
    }
    rx_parser ps = {pattern, re, NULL};
    re->root.kind = RX_GROUP;
    re->root.min = re->root.max = 1;
    re->root.alts = rx_parse_alts(&ps);
    if (!ps.error && *ps.p == ')') ps.error = "unbalanced )";
    if (ps.error || !re->root.alts) {
        *why = ps.error ? ps.error : "invalid pattern";
        rx_free(re);
        return -1;
    }
    return 0;
}

typedef struct rx_frame {
    const rx_node *node;
    int count;
    size_t start;
    const struct rx_frame *up;
} rx_frame;

typedef struct rx_run {
    const unsigned char *s;
    size_t len;
    long budget;
    int depth;
    int exhausted;
} rx_run;

/* Bytes one simple atom consumes at pos, or 0 when it does not match. A
 * "unit" is a lead byte plus up to three continuation bytes. */
static size_t rx_unit_len(const rx_run *r, size_t pos) {
    size_t n = 1;
    while (n < 4 && pos + n < r->len && (r->s[pos + n] & 0xc0) == 0x80) n++;
    return n;
}

static size_t rx_atom_len(const rx_run *r, const rx_node *n, size_t pos) {
    if (pos >= r->len) return 0;
    unsigned char c = r->s[pos];
    switch (n->kind) {
    case RX_CHAR:
        if (pos + (size_t)n->nbytes > r->len) return 0;
        return memcmp(r->s + pos, n->bytes, (size_t)n->nbytes) == 0 ? (size_t)n->nbytes : 0;
    case RX_ANY: return c == '\n' ? 0 : rx_unit_len(r, pos);
    case RX_SET:
        if (c >= 0x80) return n->negate ? rx_unit_len(r, pos) : 0;
        return (((n->set[c >> 3] >> (c & 7)) & 1) != n->negate) ? 1 : 0;
    default: return 0;
    }
}

static int rx_seq(rx_run *r, const rx_node *n, size_t pos, const rx_frame *k);

/* Greedy repetition of a one-unit atom: match as many as allowed, then
 * give back one at a time. Positions are recorded rather than recomputed
 * backwards, which invalid UTF-8 would make ambiguous. */
static int rx_simple_rep(rx_run *r, const rx_node *n, size_t pos, const rx_frame *k) {
    size_t local[64], *at = local, cap = 64, l;
    int cnt = 0, ok = 0;
    at[0] = pos;
    while ((n->max < 0 || cnt < n->max) && (l = rx_atom_len(r, n, at[cnt])) > 0) {
        if (--r->budget < 0) {
            r->exhausted = 1;
            goto done;
        }
        if ((size_t)cnt + 1 >= cap) {
            size_t *grown = malloc(2 * cap * sizeof *grown);
            if (!grown) {
                r->exhausted = 1;
                goto done;
            }
            memcpy(grown, at, cap * sizeof *grown);
            if (at != local) free(at);
            at = grown;
            cap *= 2;
        }
        at[cnt + 1] = at[cnt] + l;
        cnt++;
    }
    for (; cnt >= n->min && !r->exhausted; cnt--) {
        if (rx_seq(r, n->next, at[cnt], k)) {
            ok = 1;
            break;
        }
        if (cnt == 0) break;
    }
done:
    if (at != local) free(at);
    return ok;
}

/* Group `n` matched `count` times ending at pos: try another iteration,
 * then (greedy) fall back to moving on. */
static int rx_group_rep(rx_run *r, const rx_node *n, int count, size_t pos, const rx_frame *k) {
    if (n->max < 0 || count < n->max) {
        rx_frame f = {n, count, pos, k};
        for (const rx_alt *a = n->alts; a; a = a->next)
            if (rx_seq(r, a->first, pos, &f)) return 1;
    }
    if (count >= n->min) return rx_seq(r, n->next, pos, k);
    return 0;
}

/* One iteration of the group in frame f ended at pos. An empty iteration
 * past the minimum is pruned, so (a*)* terminates. */
static int rx_group_next(rx_run *r, const rx_frame *f, size_t pos) {
    const rx_node *n = f->node;
    if (pos == f->start) {
        if (f->count >= n->min) return 0;
        return rx_seq(r, n->next, pos, f->up);
    }
    return rx_group_rep(r, n, f->count + 1, pos, f->up);
}

static int rx_seq(rx_run *r, const rx_node *n, size_t pos, const rx_frame *k) {
    if (--r->budget < 0 || r->depth >= RX_MAX_RECURSION) {
        r->exhausted = 1;
        return 0;
    }
    int ok;
    r->depth++;
    if (!n) {
        ok = k ? rx_group_next(r, k, pos) : 1;
    } else {
        switch (n->kind) {
        case RX_BOL: ok = pos == 0 && rx_seq(r, n->next, pos, k); break;
        case RX_EOL: ok = pos == r->len && rx_seq(r, n->next, pos, k); break;
        case RX_GROUP: ok = rx_group_rep(r, n, 0, pos, k); break;
        default: ok = rx_simple_rep(r, n, pos, k); break;
        }
    }
    r->depth--;
    return ok;
}

/* Search semantics: 1 when the pattern matches anywhere in s, 0 when not,
 * -1 when the step budget ran out. */
static int rx_search(const rx *re, const char *s, size_t len) {
    rx_run r = {(const unsigned char *)s, len, RX_STEP_BUDGET, 0, 0};
    for (size_t pos = 0; pos <= len; pos += (pos < len ? rx_unit_len(&r, pos) : 1)) {
        if (rx_group_rep(&r, &re->root, 0, pos, NULL)) return 1;
        if (r.exhausted) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The set                                                                   */
/* ------------------------------------------------------------------------ */

schema_set *schema_set_new(void) { return calloc(1, sizeof(schema_set)); }

void schema_set_free(schema_set *s) {
    if (!s) return;
    for (size_t i = 0; i < s->count; i++) {
        free(s->docs[i].name);
        free(s->docs[i].id);
        cJSON_Delete(s->docs[i].root);
    }
    free(s->docs);
    free(s);
}

size_t schema_set_count(const schema_set *s) { return s ? s->count : 0; }

static const schema_doc *find_doc(const schema_set *s, const char *key) {
    for (size_t i = 0; i < s->count; i++)
        if ((s->docs[i].id && strcmp(s->docs[i].id, key) == 0) || strcmp(s->docs[i].name, key) == 0)
            return &s->docs[i];
    return NULL;
}

static const char *const UNSUPPORTED_KEYWORDS[] = {
    "if", "then", "else", "dependentRequired", "dependentSchemas", "uniqueItems", "contains",
    "minContains", "maxContains", "minProperties", "maxProperties", "propertyNames",
    "unevaluatedProperties", "unevaluatedItems", "$anchor", "$dynamicRef", "$dynamicAnchor", NULL};

/* Keywords whose value is a schema / an array of schemas / a map of them. */
static const char *const SCHEMA_KEYWORDS[] = {"items", "additionalProperties", "not", NULL};
static const char *const SCHEMA_ARRAY_KEYWORDS[] = {"prefixItems", "allOf", "anyOf", "oneOf", NULL};
static const char *const SCHEMA_MAP_KEYWORDS[] = {"properties", "patternProperties", "$defs", NULL};

static int in_list(const char *const *list, const char *s) {
    for (; *list; list++)
        if (strcmp(*list, s) == 0) return 1;
    return 0;
}

static int check_pattern(const char *pattern, const char *where, char *err, size_t errlen) {
    rx re;
    const char *why = NULL;
    if (rx_compile(&re, pattern, &why) != 0) {
        set_err(err, errlen, "%s: pattern \"%s\": %s", where, pattern, why);
        return -1;
    }
    rx_free(&re);
    return 0;
}

/* Walks a schema, refusing keywords the validator would silently skip (a
 * schema using them would accept what it means to reject) and patterns
 * outside the regex subset. `where` names the spot for messages. */
static int check_node(const cJSON *node, const char *where, int depth, char *err, size_t errlen) {
    if (cJSON_IsBool(node)) return 0;
    if (!cJSON_IsObject(node)) {
        set_err(err, errlen, "%s: a schema must be an object or a boolean", where);
        return -1;
    }
    if (depth > SCHEMA_MAX_DEPTH) {
        set_err(err, errlen, "%s: schema nested too deeply", where);
        return -1;
    }
    char sub[SCHEMA_PATH_MAX];
    const cJSON *kw;
    cJSON_ArrayForEach(kw, node) {
        const char *k = kw->string;
        snprintf(sub, sizeof sub, "%s/%s", where, k);
        if (in_list(UNSUPPORTED_KEYWORDS, k)) {
            set_err(err, errlen, "%s: keyword \"%s\" is not supported by this validator", where, k);
            return -1;
        }
        if (strcmp(k, "pattern") == 0 && cJSON_IsString(kw) && check_pattern(kw->valuestring, sub, err, errlen))
            return -1;
        if (in_list(SCHEMA_KEYWORDS, k) && check_node(kw, sub, depth + 1, err, errlen)) return -1;
        if (in_list(SCHEMA_ARRAY_KEYWORDS, k) || in_list(SCHEMA_MAP_KEYWORDS, k)) {
            const cJSON *child;
            cJSON_ArrayForEach(child, kw) {
                if (strcmp(k, "patternProperties") == 0 && check_pattern(child->string, sub, err, errlen))
                    return -1;
                if (check_node(child, sub, depth + 1, err, errlen)) return -1;
            }
        }
    }
    return 0;
}

static int add_doc(schema_set *s, const char *name, cJSON *root, char *err, size_t errlen) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "$id");
    if (id && !cJSON_IsString(id)) {
        set_err(err, errlen, "%s: $id must be a string", name);
        return -1;
    }
    if (find_doc(s, name) || (id && find_doc(s, id->valuestring))) {
        set_err(err, errlen, "%s: duplicate schema name or $id", name);
        return -1;
    }
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        schema_doc *d = realloc(s->docs, cap * sizeof *d);
        if (!d) goto oom;
        s->docs = d;
        s->cap = cap;
    }
    schema_doc *d = &s->docs[s->count];
    d->name = str_dup(name);
    d->id = id ? str_dup(id->valuestring) : NULL;
    if (!d->name || (id && !d->id)) {
        free(d->name);
        free(d->id);
        goto oom;
    }
    d->root = root;
    s->count++;
    return 0;
oom:
    set_err(err, errlen, "%s: out of memory", name);
    return -1;
}

int schema_set_add_json(schema_set *s, const char *name, const char *text, char *err, size_t errlen) {
    cJSON *root = cJSON_Parse(text);
    if (!root) {
        set_err(err, errlen, "%s: not valid JSON", name);
        return -1;
    }
    if (check_node(root, name, 0, err, errlen) != 0 || add_doc(s, name, root, err, errlen) != 0) {
        cJSON_Delete(root);
        return -1;
    }
    return 0;
}

static char *read_file(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, errlen, "%s: cannot open", path);
        return NULL;
    }
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0) buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = 0;
    } else {
        free(buf);
        buf = NULL;
        set_err(err, errlen, "%s: cannot read", path);
    }
    fclose(f);
    return buf;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int load_file(schema_set *s, const char *dir, const char *rel, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    char *text = read_file(path, err, errlen);
    if (!text) return -1;
    int rc = schema_set_add_json(s, rel, text, err, errlen);
    free(text);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct name_list {
    char **v;
    size_t n, cap;
} name_list;

static int name_list_add(name_list *l, const char *rel, const char *entry) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    size_t len = strlen(rel) + strlen(entry) + 2;
    char *s = malloc(len);
    if (!s) return -1;
    snprintf(s, len, "%s%s%s", rel, *rel ? "/" : "", entry);
    l->v[l->n++] = s;
    return 0;
}

/* Collects *.json paths (relative to dir) under dir/rel; subfolders are
 * returned with a trailing '/' marker resolved by the caller's recursion. */
static int list_dir(const char *dir, const char *rel, name_list *files, int depth) {
    if (depth > 8) return 0;
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", dir, *rel ? "/" : "", rel);
    name_list subdirs = {0};
#ifdef _WIN32
    char pattern[4200];
    snprintf(pattern, sizeof pattern, "%s\\*", path);
    WIN32_FIND_DATAA fd;
    HANDLE h = FindFirstFileA(pattern, &fd);
    if (h == INVALID_HANDLE_VALUE) return -1;
    do {
        const char *e = fd.cFileName;
        if (e[0] == '.') continue;
        int is_dir = (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) != 0;
        if (is_dir ? name_list_add(&subdirs, rel, e) : ends_with(e, ".json") ? name_list_add(files, rel, e) : 0)
            break;
    } while (FindNextFileA(h, &fd));
    FindClose(h);
#else
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        const char *e = ent->d_name;
        if (e[0] == '.') continue;
        char full[4200];
        struct stat st;
        snprintf(full, sizeof full, "%.3900s/%.255s", path, e);
        if (stat(full, &st) != 0) continue;
        int rc = S_ISDIR(st.st_mode) ? name_list_add(&subdirs, rel, e)
                 : ends_with(e, ".json") ? name_list_add(files, rel, e) : 0;
        if (rc) break;
    }
    closedir(d);
#endif
    int rc = 0;
    for (size_t i = 0; i < subdirs.n; i++) {
        if (rc == 0) rc = list_dir(dir, subdirs.v[i], files, depth + 1);
        free(subdirs.v[i]);
    }
    free(subdirs.v);
    return rc;
}

schema_set *schema_set_load_dir(const char *dir, char *err, size_t errlen) {
    name_list files = {0};
    if (list_dir(dir, "", &files, 0) != 0) {
        set_err(err, errlen, "%s: cannot list the schema folder", dir);
        for (size_t i = 0; i < files.n; i++) free(files.v[i]);
        free(files.v);
        return NULL;
    }
    if (files.n) qsort(files.v, files.n, sizeof *files.v, cmp_str);
    schema_set *s = schema_set_new();
    int rc = s ? 0 : -1;
    if (!s) set_err(err, errlen, "%s: out of memory", dir);
    for (size_t i = 0; i < files.n; i++) {
        if (rc == 0) rc = load_file(s, dir, files.v[i], err, errlen);
        free(files.v[i]);
    }
    free(files.v);
    if (rc != 0) {
        schema_set_free(s);
        return NULL;
    }
    return s;
}

const char *schema_for_message(const schema_set *s, const char *type) {
    if (!s || !type) return NULL;
    char name[256];
    if ((size_t)snprintf(name, sizeof name, "messages/%s.json", type) >= sizeof name) return NULL;
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->docs[i].name, name) == 0) return s->docs[i].id ? s->docs[i].id : s->docs[i].name;
    return NULL;
}

const cJSON *schema_message_doc(const schema_set *s, const char *type) {
    if (!s || !type) return NULL;
    char name[256];
    if ((size_t)snprintf(name, sizeof name, "messages/%s.json", type) >= sizeof name) return NULL;
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->docs[i].name, name) == 0) return s->docs[i].root;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* $ref resolution                                                           */
/* ------------------------------------------------------------------------ */

/* Removes "." and ".." segments from the path part of uri (in place). */
static void normalize_dots(char *uri) {
    char *path = strstr(uri, "://");
    path = path ? strchr(path + 3, '/') : uri;
    if (!path) return;
    char *out = path, *in = path;
    while (*in) {
        if (strncmp(in, "./", 2) == 0 && (in == path || in[-1] == '/')) {
            in += 2;
        } else if (strncmp(in, "../", 3) == 0 && (in == path || in[-1] == '/')) {
            in += 3;
            if (out > path) out--; /* drop the '/' that ends the last kept segment */
            while (out > path && out[-1] != '/') out--;
        } else {
            *out++ = *in++;
        }
    }
    *out = 0;
}

/* The absolute form of reference `uri` seen from document `base`. */
static void join_uri(const schema_doc *base, const char *uri, char *out, size_t outlen) {
    const char *b = base->id ? base->id : base->name;
    if (strstr(uri, "://") || strncmp(uri, "urn:", 4) == 0 || !strrchr(b, '/')) {
        snprintf(out, outlen, "%s", uri);
    } else {
        int dirlen = (int)(strrchr(b, '/') - b) + 1;
        snprintf(out, outlen, "%.*s%s", dirlen, b, uri);
    }
    normalize_dots(out);
}

/* Decodes one JSON-pointer token (~0, ~1 and %XX escapes). */
static void pointer_token(const char *src, size_t n, char *out, size_t outlen) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < outlen; i++) {
        char c = src[i];
        if (c == '~' && i + 1 < n && (src[i + 1] == '0' || src[i + 1] == '1')) {
            c = src[++i] == '0' ? '~' : '/';
        } else if (c == '%' && i + 2 < n) {
            char hex[3] = {src[i + 1], src[i + 2], 0};
            c = (char)strtol(hex, NULL, 16);
            i += 2;
        }
        out[o++] = c;
    }
    out[o] = 0;
}

static const cJSON *follow_pointer(const cJSON *node, const char *ptr) {
    while (node && *ptr == '/') {
        ptr++;
        size_t n = strcspn(ptr, "/");
        char tok[256];
        pointer_token(ptr, n, tok, sizeof tok);
        ptr += n;
        if (cJSON_IsArray(node)) {
            char *end;
            long idx = strtol(tok, &end, 10);
            node = (*tok && !*end && idx >= 0) ? cJSON_GetArrayItem(node, (int)idx) : NULL;
        } else {
            node = cJSON_GetObjectItemCaseSensitive(node, tok);
        }
    }
    return *ptr ? NULL : node;
}

/* Resolves `ref` seen from document *doc: updates *doc to the target's
 * document and returns the target node, or NULL. */
static const cJSON *resolve_ref(const schema_set *s, const schema_doc **doc, const char *ref) {
    const char *hash = strchr(ref, '#');
    size_t urilen = hash ? (size_t)(hash - ref) : strlen(ref);
    const schema_doc *target = *doc;
    if (urilen > 0) {
        char uri[1024], abs[1200];
        if (urilen >= sizeof uri) return NULL;
        memcpy(uri, ref, urilen);
        uri[urilen] = 0;
        join_uri(*doc, uri, abs, sizeof abs);
        target = find_doc(s, abs);
        if (!target) target = find_doc(s, uri);
        if (!target) return NULL;
    }
    const cJSON *node = follow_pointer(target->root, hash ? hash + 1 : "");
    if (node) *doc = target;
    return node;
}

static int check_refs_in(const schema_set *s, const schema_doc *doc, const cJSON *node, char *err, size_t errlen) {
    if (!cJSON_IsObject(node) && !cJSON_IsArray(node)) return 0;
    const cJSON *ref = cJSON_IsObject(node) ? cJSON_GetObjectItemCaseSensitive(node, "$ref") : NULL;
    if (ref && cJSON_IsString(ref)) {
        const schema_doc *d = doc;
        if (!resolve_ref(s, &d, ref->valuestring)) {
            set_err(err, errlen, "%s: $ref \"%s\" does not resolve", doc->name, ref->valuestring);
            return -1;
        }
    }
    const cJSON *child;
    cJSON_ArrayForEach(child, node) {
        /* enum/const/default/examples hold data, not schemas */
        if (child->string && (strcmp(child->string, "enum") == 0 || strcmp(child->string, "const") == 0 ||
                              strcmp(child->string, "default") == 0 || strcmp(child->string, "examples") == 0))
            continue;
        if (check_refs_in(s, doc, child, err, errlen)) return -1;
    }
    return 0;
}

int schema_set_check_refs(const schema_set *s, char *err, size_t errlen) {
    for (size_t i = 0; i < s->count; i++)
        if (check_refs_in(s, &s->docs[i], s->docs[i].root, err, errlen)) return -1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Values                                                                    */
/* ------------------------------------------------------------------------ */

static int is_integer(const cJSON *v) {
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble == floor(v->valuedouble);
}

static const char *type_name(const cJSON *v) {
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "boolean";
    if (cJSON_IsNumber(v)) return "number";
    if (cJSON_IsString(v)) return "string";
    if (cJSON_IsArray(v)) return "array";
    if (cJSON_IsObject(v)) return "object";
    return "invalid";
}

static int has_type(const cJSON *v, const char *t) {
    if (strcmp(t, "integer") == 0) return is_integer(v);
    return strcmp(t, type_name(v)) == 0;
}

static void fmt_number(double d, char *out, size_t n) {
    if (d == floor(d) && fabs(d) < 1e15) {
        snprintf(out, n, "%.0f", d);
        return;
    }
    snprintf(out, n, "%.15g", d);
    if (strtod(out, NULL) != d) snprintf(out, n, "%.17g", d);
}

/* A short rendering of a value for messages. */
static void fmt_value(const cJSON *v, char *out, size_t n) {
    if (cJSON_IsNumber(v)) {
        fmt_number(v->valuedouble, out, n);
    } else if (cJSON_IsString(v)) {
        size_t len = strlen(v->valuestring);
        snprintf(out, n, "\"%.40s%s\"", v->valuestring, len > 40 ? "..." : "");
    } else if (cJSON_IsBool(v)) {
        snprintf(out, n, "%s", cJSON_IsTrue(v) ? "true" : "false");
    } else if (cJSON_IsNull(v)) {
        snprintf(out, n, "null");
    } else {
        char *text = cJSON_PrintUnformatted(v);
        size_t len = text ? strlen(text) : 0;
        if (text) snprintf(out, n, "%.40s%s", text, len > 40 ? "..." : "");
        else snprintf(out, n, "an %s", type_name(v));
        free(text);
    }
}

static int json_equal(const cJSON *a, const cJSON *b);

static int object_equal(const cJSON *a, const cJSON *b) {
    if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b)) return 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, a) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(b, m->string);
        if (!o || !json_equal(m, o)) return 0;
    }
    return 1;
}

static int json_equal(const cJSON *a, const cJSON *b) {
    if (strcmp(type_name(a), type_name(b)) != 0) return 0;
    if (cJSON_IsNumber(a)) return a->valuedouble == b->valuedouble;
    if (cJSON_IsString(a)) return strcmp(a->valuestring, b->valuestring) == 0;
    if (cJSON_IsBool(a)) return cJSON_IsTrue(a) == cJSON_IsTrue(b);
    if (cJSON_IsNull(a)) return 1;
    if (cJSON_IsObject(a)) return object_equal(a, b);
    if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b)) return 0;
    for (const cJSON *x = a->child, *y = b->child; x && y; x = x->next, y = y->next)
        if (!json_equal(x, y)) return 0;
    return 1;
}

static size_t utf8_codepoints(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80) n++;
    return n;
}

/* ------------------------------------------------------------------------ */
/* Validation                                                                */
/* ------------------------------------------------------------------------ */

/* The first failure found on one path through the schema. */
typedef struct verr {
    char msg[SCHEMA_MSG_MAX];
    size_t pathlen;      /* how deep into the instance it failed */
    int type_only;       /* failed on "type" at that spot */
    int rank;            /* how telling: 0 type, 1 const/enum, 2 anything else */
    char expected[128];  /* the types "type" asked for, "string or object" */
} verr;

typedef struct vctx {
    const schema_set *set;
    char path[SCHEMA_PATH_MAX];
    size_t pathlen;
    int depth;
    int broken; /* the schema, not the instance, is at fault */
    int secret; /* the instance's schema says "writeOnly": its value is never echoed */
    verr *e;
} vctx;

static void vfail(vctx *c, const char *fmt, ...) SCHEMA_PRINTF(2, 3);

static void vfail(vctx *c, const char *fmt, ...) {
    char msg[SCHEMA_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->e->msg, sizeof c->e->msg, "%.250s: %.250s", c->pathlen ? c->path : "(root)", msg);
    c->e->pathlen = c->pathlen;
    c->e->type_only = 0;
    c->e->rank = 2;
}

static void vbroken(vctx *c, const char *fmt, const char *arg) {
    char msg[SCHEMA_MSG_MAX];
    snprintf(msg, sizeof msg, fmt, arg);
    snprintf(c->e->msg, sizeof c->e->msg, "schema error at %.200s: %.250s", c->pathlen ? c->path : "(root)", msg);
    c->broken = 1;
}

static size_t push_key(vctx *c, const char *key) {
    size_t old = c->pathlen;
    int n = snprintf(c->path + old, sizeof c->path - old, old ? ".%s" : "%s", key);
    c->pathlen = n < 0 ? old : (old + (size_t)n < sizeof c->path ? old + (size_t)n : sizeof c->path - 1);
    return old;
}

static size_t push_index(vctx *c, int i) {
    size_t old = c->pathlen;
    int n = snprintf(c->path + old, sizeof c->path - old, "[%d]", i);
    c->pathlen = n < 0 ? old : (old + (size_t)n < sizeof c->path ? old + (size_t)n : sizeof c->path - 1);
    return old;
}

static void pop_path(vctx *c, size_t old) {
    c->pathlen = old;
    c->path[old] = 0;
}

static int v_schema(vctx *c, const schema_doc *doc, const cJSON *schema, const cJSON *inst);

static int v_child(vctx *c, const schema_doc *doc, const cJSON *schema, const cJSON *inst, size_t old) {
    int rc = v_schema(c, doc, schema, inst);
    pop_path(c, old);
    return rc;
}

static const cJSON *kw(const cJSON *schema, const char *name) {
    return cJSON_GetObjectItemCaseSensitive(schema, name);
}

static void types_text(const cJSON *t, char *out, size_t n) {
    if (cJSON_IsString(t)) {
        snprintf(out, n, "%s", t->valuestring);
        return;
    }
    size_t o = 0;
    int i = 0, count = cJSON_GetArraySize(t);
    const cJSON *x;
    out[0] = 0;
    cJSON_ArrayForEach(x, t) {
        if (!cJSON_IsString(x) || o >= n) continue;
        const char *sep = i == 0 ? "" : (i == count - 1 ? " or " : ", ");
        int w = snprintf(out + o, n - o, "%s%s", sep, x->valuestring);
        o += w > 0 ? (size_t)w : 0;
        i++;
    }
}

static int v_type(vctx *c, const cJSON *t, const cJSON *inst) {
    int ok = 0;
    if (cJSON_IsString(t)) {
        ok = has_type(inst, t->valuestring);
    } else {
        const cJSON *x;
        cJSON_ArrayForEach(x, t) ok |= cJSON_IsString(x) && has_type(inst, x->valuestring);
    }
    if (ok) return 0;
    char want[128], got[64] = "";
    types_text(t, want, sizeof want);
    if (cJSON_IsNumber(inst) && !c->secret) fmt_value(inst, got, sizeof got);
    vfail(c, "expected %s, got %s%s%s", want, type_name(inst), *got ? " " : "", got);
    c->e->type_only = 1;
    c->e->rank = 0;
    snprintf(c->e->expected, sizeof c->e->expected, "%.120s", want);
    return 1;
}

static int v_enum(vctx *c, const cJSON *e, const cJSON *inst) {
    const cJSON *x;
    cJSON_ArrayForEach(x, e) if (json_equal(x, inst)) return 0;
    char got[64], list[256] = "", item[64];
    size_t o = 0;
    int i = 0;
    cJSON_ArrayForEach(x, e) {
        if (i++ == 8) {
            snprintf(list + o, sizeof list - o, ", ...");
            break;
        }
        fmt_value(x, item, sizeof item);
        int w = snprintf(list + o, sizeof list - o, "%s%s", o ? ", " : "", item);
        if (w < 0 || (size_t)w >= sizeof list - o) break;
        o += (size_t)w;
    }
    fmt_value(inst, got, sizeof got);
    vfail(c, "%s is not one of %s", got, list);
    c->e->rank = 1;
    return 1;
}

static int v_const(vctx *c, const cJSON *k, const cJSON *inst) {
    if (json_equal(k, inst)) return 0;
    char got[64], want[64];
    fmt_value(inst, got, sizeof got);
    fmt_value(k, want, sizeof want);
    vfail(c, "%s is not the required value %s", got, want);
    c->e->rank = 1;
    return 1;
}

static int v_bound(vctx *c, const cJSON *schema, const char *name, double x, int fails_when_cmp,
                   int strict, const char *text) {
    const cJSON *b = kw(schema, name);
    if (!cJSON_IsNumber(b)) return 0;
    double lim = b->valuedouble;
    int bad = fails_when_cmp < 0 ? (strict ? x <= lim : x < lim) : (strict ? x >= lim : x > lim);
    if (!bad) return 0;
    char xs[48], ls[48];
    fmt_number(x, xs, sizeof xs);
    fmt_number(lim, ls, sizeof ls);
    vfail(c, "%s %s %s", xs, text, ls);
    return 1;
}

static int v_number(vctx *c, const cJSON *schema, const cJSON *inst) {
    double x = inst->valuedouble;
    if (v_bound(c, schema, "minimum", x, -1, 0, "is less than the minimum")) return 1;
    if (v_bound(c, schema, "maximum", x, 1, 0, "is greater than the maximum")) return 1;
    if (v_bound(c, schema, "exclusiveMinimum", x, -1, 1, "is not greater than the exclusive minimum")) return 1;
    if (v_bound(c, schema, "exclusiveMaximum", x, 1, 1, "is not less than the exclusive maximum")) return 1;
    const cJSON *m = kw(schema, "multipleOf");
    if (cJSON_IsNumber(m) && m->valuedouble > 0) {
        /* The quotient test matches Python's jsonschema for float divisors
         * and is exact for integers below 2^53. */
        double q = x / m->valuedouble;
        if (!isfinite(q) || q != trunc(q)) {
            char xs[48], ms[48];
            fmt_number(x, xs, sizeof xs);
            fmt_number(m->valuedouble, ms, sizeof ms);
            vfail(c, "%s is not a multiple of %s", xs, ms);
            return 1;
        }
    }
    return 0;
}

static int v_pattern(vctx *c, const char *pattern, const char *s, int *matched) {
    rx re;
    const char *why = NULL;
    if (rx_compile(&re, pattern, &why) != 0) {
        vbroken(c, "bad pattern: %s", why);
        return 1;
    }
    int r = rx_search(&re, s, strlen(s));
    rx_free(&re);
    if (r < 0) {
        vfail(c, "too costly to match against the pattern \"%.60s\"", pattern);
        return 1;
    }
    *matched = r;
    return 0;
}

static int v_string(vctx *c, const cJSON *schema, const cJSON *inst) {
    size_t n = utf8_codepoints(inst->valuestring);
    const cJSON *lo = kw(schema, "minLength"), *hi = kw(schema, "maxLength"), *p = kw(schema, "pattern");
    if (cJSON_IsNumber(lo) && (double)n < lo->valuedouble) {
        vfail(c, "is %lu characters long, shorter than the minimum length %.0f", (unsigned long)n, lo->valuedouble);
        return 1;
    }
    if (cJSON_IsNumber(hi) && (double)n > hi->valuedouble) {
        vfail(c, "is %lu characters long, longer than the maximum length %.0f", (unsigned long)n, hi->valuedouble);
        return 1;
    }
    if (cJSON_IsString(p)) {
        int matched = 0;
        if (v_pattern(c, p->valuestring, inst->valuestring, &matched)) return 1;
        if (!matched) {
            char got[64];
            fmt_value(inst, got, sizeof got);
            vfail(c, "%s does not match the pattern \"%.80s\"", got, p->valuestring);
            return 1;
        }
    }
    return 0;
}

static int v_required(vctx *c, const cJSON *req, const cJSON *inst) {
    const cJSON *r;
    cJSON_ArrayForEach(r, req) {
        if (cJSON_IsString(r) && !cJSON_GetObjectItemCaseSensitive(inst, r->valuestring)) {
            vfail(c, "missing required property \"%s\"", r->valuestring);
            return 1;
        }
    }
    return 0;
}

/* Applies patternProperties to member m; *hit says whether any matched. */
static int v_pattern_props(vctx *c, const schema_doc *doc, const cJSON *pp, const cJSON *m, int *hit) {
    const cJSON *p;
    cJSON_ArrayForEach(p, pp) {
        int matched = 0;
        if (v_pattern(c, p->string, m->string, &matched)) return 1;
        if (!matched) continue;
        *hit = 1;
        if (v_child(c, doc, p, m, push_key(c, m->string))) return 1;
    }
    return 0;
}

static int v_object(vctx *c, const schema_doc *doc, const cJSON *schema, const cJSON *inst) {
    const cJSON *req = kw(schema, "required"), *props = kw(schema, "properties");
    const cJSON *pp = kw(schema, "patternProperties"), *ap = kw(schema, "additionalProperties");
    if (req && v_required(c, req, inst)) return 1;
    const cJSON *m;
    cJSON_ArrayForEach(m, inst) {
        const cJSON *ps = cJSON_IsObject(props) ? cJSON_GetObjectItemCaseSensitive(props, m->string) : NULL;
        int hit = ps != NULL;
        if (ps && v_child(c, doc, ps, m, push_key(c, m->string))) return 1;
        if (cJSON_IsObject(pp) && v_pattern_props(c, doc, pp, m, &hit)) return 1;
        if (hit || !ap) continue;
        if (cJSON_IsFalse(ap)) {
            vfail(c, "unknown property \"%s\" (additional properties are not allowed)", m->string);
            return 1;
        }
        if (v_child(c, doc, ap, m, push_key(c, m->string))) return 1;
    }
    return 0;
}

static int v_array(vctx *c, const schema_doc *doc, const cJSON *schema, const cJSON *inst) {
    int n = cJSON_GetArraySize(inst);
    const cJSON *lo = kw(schema, "minItems"), *hi = kw(schema, "maxItems");
    if (cJSON_IsNumber(lo) && n < lo->valuedouble) {
        vfail(c, "has %d items, fewer than the minimum %.0f", n, lo->valuedouble);
        return 1;
    }
    if (cJSON_IsNumber(hi) && n > hi->valuedouble) {
        vfail(c, "has %d items, more than the maximum %.0f", n, hi->valuedouble);
        return 1;
    }
    const cJSON *prefix = kw(schema, "prefixItems"), *items = kw(schema, "items");
    int nprefix = cJSON_IsArray(prefix) ? cJSON_GetArraySize(prefix) : 0;
    const cJSON *p = cJSON_IsArray(prefix) ? prefix->child : NULL;
    int i = 0;
    for (const cJSON *x = inst->child; x; x = x->next, i++) {
        const cJSON *s = i < nprefix ? p : items;
        if (i < nprefix) p = p->next;
        if (!s) continue;
        if (cJSON_IsFalse(s) && i >= nprefix) {
            vfail(c, "has %d items, but only %d are allowed", n, nprefix);
            return 1;
        }
        if (v_child(c, doc, s, x, push_index(c, i))) return 1;
    }
    return 0;
}

/* Runs `branch` on inst into its own error slot; 0 when it passes. */
static int v_branch(vctx *c, const schema_doc *doc, const cJSON *branch, const cJSON *inst, verr *slot) {
    verr *saved = c->e;
    c->e = slot;
    slot->msg[0] = 0;
    int rc = v_schema(c, doc, branch, inst);
    c->e = saved;
    return rc;
}

/* Picks the message for "no alternative matched": when every alternative
 * failed on type right here, one "expected A or B" line; otherwise the
 * alternative that got deepest, then the one whose failure says most (the
 * one the caller most likely meant). */
static void report_no_match(vctx *c, const verr *errs, int n, const cJSON *inst, const char *keyword) {
    int all_type = 1, best = 0;
    for (int i = 0; i < n; i++) {
        if (!errs[i].type_only || errs[i].pathlen != c->pathlen) all_type = 0;
        if (errs[i].pathlen > errs[best].pathlen ||
            (errs[i].pathlen == errs[best].pathlen && errs[i].rank > errs[best].rank))
            best = i;
    }
    if (n > 0 && all_type) {
        char want[256] = "";
        size_t o = 0;
        for (int i = 0; i < n && o < sizeof want; i++) {
            int w = snprintf(want + o, sizeof want - o, "%s%s", i ? " or " : "", errs[i].expected);
            o += w > 0 ? (size_t)w : 0;
        }
        char got[64] = "";
        if (cJSON_IsNumber(inst)) fmt_value(inst, got, sizeof got);
        vfail(c, "expected %s, got %s%s%s", want, type_name(inst), *got ? " " : "", got);
        c->e->type_only = 1;
        c->e->rank = 0;
        snprintf(c->e->expected, sizeof c->e->expected, "%.120s", want);
        return;
    }
    if (n > 0 && (errs[best].pathlen > c->pathlen || errs[best].rank > 0)) {
        *c->e = errs[best];
        return;
    }
    if (n > 0) {
        vfail(c, "matches none of the %s alternatives (first: %s)", keyword, errs[0].msg);
        return;
    }
    vfail(c, "matches none of the %s alternatives", keyword);
}

static int v_anyof(vctx *c, const schema_doc *doc, const cJSON *list, const cJSON *inst, int one) {
    int n = cJSON_GetArraySize(list);
    verr *errs = calloc(n > 0 ? (size_t)n : 1, sizeof *errs);
    if (!errs) {
        vbroken(c, "%s", "out of memory");
        return 1;
    }
    int passed = 0, first_pass = -1, second_pass = -1, i = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, list) {
        if (v_branch(c, doc, b, inst, &errs[i]) == 0) {
            passed++;
            if (first_pass < 0) first_pass = i; else if (second_pass < 0) second_pass = i;
            if (!one) break;
        }
        if (c->broken) {
            *c->e = errs[i];
            free(errs);
            return 1;
        }
        i++;
    }
    int rc = 0;
    if (passed == 0) {
        report_no_match(c, errs, n, inst, one ? "oneOf" : "anyOf");
        rc = 1;
    } else if (one && passed > 1) {
        vfail(c, "matches more than one oneOf alternative (%d and %d)", first_pass, second_pass);
        rc = 1;
    }
    free(errs);
    return rc;
}

static int v_combinators(vctx *c, const schema_doc *doc, const cJSON *schema, const cJSON *inst) {
    const cJSON *all = kw(schema, "allOf"), *any = kw(schema, "anyOf"), *one = kw(schema, "oneOf");
    const cJSON *not = kw(schema, "not"), *b;
    if (cJSON_IsArray(all)) {
        cJSON_ArrayForEach(b, all) if (v_schema(c, doc, b, inst)) return 1;
    }
    if (cJSON_IsArray(any) && v_anyof(c, doc, any, inst, 0)) return 1;
    if (cJSON_IsArray(one) && v_anyof(c, doc, one, inst, 1)) return 1;
    if (not) {
        verr tmp;
        if (v_branch(c, doc, not, inst, &tmp) == 0) {
            vfail(c, "must not match the schema in \"not\"");
            return 1;
        }
        if (c->broken) {
            *c->e = tmp;
            return 1;
        }
    }
    return 0;
}

static int v_ref(vctx *c, const schema_doc *doc, const cJSON *ref, const cJSON *inst) {
    if (!cJSON_IsString(ref)) {
        vbroken(c, "%s", "$ref must be a string");
        return 1;
    }
    const schema_doc *target = doc;
    const cJSON *node = resolve_ref(c->set, &target, ref->valuestring);
    if (!node) {
        vbroken(c, "$ref \"%s\" does not resolve", ref->valuestring);
        return 1;
    }
    return v_schema(c, target, node, inst);
}

static int v_keywords(vctx *c, const schema_doc *doc, const cJSON *schema, const cJSON *inst) {
    const cJSON *k;
    if ((k = kw(schema, "$ref")) && v_ref(c, doc, k, inst)) return 1;
    /* writeOnly (a password): messages name the field, never its value. */
    int secret = c->secret;
    c->secret = cJSON_IsTrue(kw(schema, "writeOnly"));
    int bad = (k = kw(schema, "type")) && v_type(c, k, inst);
    c->secret = secret;
    if (bad) return 1;
    if ((k = kw(schema, "const")) && v_const(c, k, inst)) return 1;
    if ((k = kw(schema, "enum")) && cJSON_IsArray(k) && v_enum(c, k, inst)) return 1;
    if (cJSON_IsNumber(inst) && v_number(c, schema, inst)) return 1;
    if (cJSON_IsString(inst) && v_string(c, schema, inst)) return 1;
    if (cJSON_IsObject(inst) && v_object(c, doc, schema, inst)) return 1;
    if (cJSON_IsArray(inst) && v_array(c, doc, schema, inst)) return 1;
    return v_combinators(c, doc, schema, inst);
}

static int v_schema(vctx *c, const schema_doc *doc, const cJSON *schema, const cJSON *inst) {
    if (cJSON_IsTrue(schema)) return 0;
    if (cJSON_IsFalse(schema)) {
        vfail(c, "no value is allowed here");
        return 1;
    }
    if (!cJSON_IsObject(schema)) {
        vbroken(c, "%s", "a schema must be an object or a boolean");
        return 1;
    }
    if (c->depth >= SCHEMA_MAX_DEPTH) {
        vbroken(c, "%s", "schema recursion too deep (a $ref cycle?)");
        return 1;
    }
    c->depth++;
    int rc = v_keywords(c, doc, schema, inst);
    c->depth--;
    return rc;
}

int schema_validate_at(const schema_set *s, const char *schema_id, const cJSON *doc, const char *root,
                       char *err, size_t errlen) {
    const schema_doc *d = (s && schema_id) ? find_doc(s, schema_id) : NULL;
    if (!d) {
        set_err(err, errlen, "no schema \"%s\"", schema_id ? schema_id : "(null)");
        return -1;
    }
    verr e;
    memset(&e, 0, sizeof e);
    vctx c;
    memset(&c, 0, sizeof c);
    c.set = s;
    c.e = &e;
    snprintf(c.path, sizeof c.path, "%s", root ? root : "");
    c.pathlen = strlen(c.path);
    int rc = v_schema(&c, d, d->root, doc);
    if (rc == 0) {
        if (err && errlen) err[0] = 0;
        return 0;
    }
    set_err(err, errlen, "%s", e.msg);
    return c.broken ? -1 : 1;
}

int schema_validate(const schema_set *s, const char *schema_id, const cJSON *doc, char *err, size_t errlen) {
    return schema_validate_at(s, schema_id, doc, "data", err, errlen);
}
