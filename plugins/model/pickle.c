/* plugins/model/pickle.c - the restricted unpickler for torch.save files
 * (see pickle.h). The zip container is read here too (stored entries only,
 * zip64 aware) since torch's writer is its only producer we accept. */
#include "pickle.h"

#include "sdrt/file.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- zip container ---------------------------------------------------- */

typedef struct zentry {
    const char *name;   /* not terminated: name_len bytes */
    size_t name_len;
    const uint8_t *data;
    uint64_t size;
} zentry;

typedef struct zarchive {
    zentry *e;
    size_t n;
} zarchive;

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Applies a zip64 extended-information extra field to the fields that were
 * saturated at 0xFFFFFFFF, in the order the format lists them. */
static int zip64_extra(const uint8_t *ex, size_t exlen, uint64_t *usize, uint64_t *csize,
                       uint64_t *off) {
    size_t i = 0;
    while (i + 4 <= exlen) {
        uint16_t id = rd16(ex + i), sz = rd16(ex + i + 2);
        if (i + 4 + sz > exlen) return -1;
        if (id == 1) {
            const uint8_t *q = ex + i + 4;
            size_t left = sz;
            uint64_t *f[3] = {usize, csize, off};
            for (int k = 0; k < 3; k++) {
                if (*f[k] != 0xFFFFFFFFu) continue;
                if (left < 8) return -1;
                *f[k] = rd64(q);
                q += 8;
                left -= 8;
            }
            return 0;
        }
        i += 4 + (size_t)sz;
    }
    return 0;
}

static int zip_read(const uint8_t *b, size_t len, zarchive *z, char *err, size_t errlen) {
    memset(z, 0, sizeof *z);
    if (len < 22) return fail(err, errlen, "not a zip archive (too short)");
    size_t lo = len > 22 + 65535 ? len - 22 - 65535 : 0, eocd = (size_t)-1;
    for (size_t i = len - 22 + 1; i-- > lo;)
        if (rd32(b + i) == 0x06054b50u) { eocd = i; break; }
    if (eocd == (size_t)-1) return fail(err, errlen, "not a zip archive (no end of central directory)");
    uint64_t n = rd16(b + eocd + 10), cd_size = rd32(b + eocd + 12), cd_off = rd32(b + eocd + 16);
    if (eocd >= 20 && rd32(b + eocd - 20) == 0x07064b50u) {
        uint64_t z64 = rd64(b + eocd - 20 + 8);
        if (z64 > len || len - z64 < 56 || rd32(b + z64) != 0x06064b50u)
            return fail(err, errlen, "zip64 end of central directory out of bounds");
        n = rd64(b + z64 + 32);
        cd_size = rd64(b + z64 + 40);
        cd_off = rd64(b + z64 + 48);
    }
    if (cd_off > len || cd_size > len - cd_off) return fail(err, errlen, "zip central directory out of bounds");
    if (n > cd_size / 46) return fail(err, errlen, "zip central directory too small for %llu entries",
                                      (unsigned long long)n);
    z->e = calloc(n ? (size_t)n : 1, sizeof *z->e);
    if (!z->e) return fail(err, errlen, "out of memory");
    const uint8_t *p = b + cd_off, *end = b + cd_off + cd_size;
    for (uint64_t i = 0; i < n; i++) {
        if (end - p < 46 || rd32(p) != 0x02014b50u) return fail(err, errlen, "zip central directory entry %llu malformed", (unsigned long long)i);
        uint16_t method = rd16(p + 10), nl = rd16(p + 28), el = rd16(p + 30), cl = rd16(p + 32);
        uint64_t csize = rd32(p + 20), usize = rd32(p + 24), off = rd32(p + 42);
        if ((size_t)(end - p) < 46u + nl + el + cl) return fail(err, errlen, "zip central directory entry %llu malformed", (unsigned long long)i);
        if (zip64_extra(p + 46 + nl, el, &usize, &csize, &off) != 0)
            return fail(err, errlen, "zip entry %llu: malformed zip64 field", (unsigned long long)i);
        zentry *e = &z->e[z->n++];
        e->name = (const char *)p + 46;
        e->name_len = nl;
        if (method != 0)
            return fail(err, errlen, "zip entry '%.*s' is compressed (method %u); torch.save writes stored entries only",
                        (int)nl, e->name, method);
        if (csize != usize) return fail(err, errlen, "zip entry '%.*s': sizes disagree", (int)nl, e->name);
        if (off > len || len - off < 30 || rd32(b + off) != 0x04034b50u)
            return fail(err, errlen, "zip entry '%.*s': local header out of bounds", (int)nl, e->name);
        uint64_t data = off + 30 + (uint64_t)rd16(b + off + 26) + rd16(b + off + 28);
        if (data > len || usize > len - data)
            return fail(err, errlen, "zip entry '%.*s': data out of bounds", (int)nl, e->name);
        e->data = b + data;
        e->size = usize;
        p += 46 + nl + el + cl;
    }
    return 0;
}

/* The entry "<prefix>/<rest>", or NULL. */
static const zentry *zip_find(const zarchive *z, const char *prefix, size_t plen, const char *rest) {
    size_t rl = strlen(rest);
    for (size_t i = 0; i < z->n; i++) {
        const zentry *e = &z->e[i];
        if (e->name_len == plen + 1 + rl && memcmp(e->name, prefix, plen) == 0 &&
            e->name[plen] == '/' && memcmp(e->name + plen + 1, rest, rl) == 0)
            return e;
    }
    return NULL;
}

/* ---- values ------------------------------------------------------------ */

typedef enum pv_kind {
    PV_MARK, PV_NONE, PV_BOOL, PV_INT, PV_FLOAT, PV_STR, PV_BYTES, PV_TUPLE, PV_LIST, PV_DICT,
    PV_GLOBAL, PV_STORAGE, PV_TENSOR
} pv_kind;

typedef enum pv_global {
    G_ORDERED_DICT, G_REBUILD_TENSOR, G_REBUILD_PARAM, G_STORAGE
} pv_global;

typedef struct pv {
    pv_kind k;
    int64_t i;              /* INT, BOOL; GLOBAL: pv_global; STORAGE/GLOBAL: st_dtype in dt */
    double f;
    int dt;
    char *s;                /* STR/BYTES (terminated), len in slen */
    size_t slen;
    struct pv **it;         /* TUPLE/LIST items; DICT: key, value pairs */
    size_t n, cap;
    const uint8_t *sdata;   /* STORAGE: bytes, numel elements */
    uint64_t numel;
    struct pv *storage;     /* TENSOR */
    int64_t off;
    int ndim;
    int64_t shape[ST_MAX_DIMS], stride[ST_MAX_DIMS];
} pv;

typedef struct vm {
    const uint8_t *b;
    size_t len, pos;
    pv **all;            /* every value, freed at the end */
    size_t n_all, cap_all;
    pv **stack;
    size_t sp, cap_stack;
    pv **memo;
    size_t n_memo;       /* slots allocated */
    size_t memo_len;     /* slots set: MEMOIZE's next index */
    const zarchive *z;
    const char *prefix;
    size_t plen;
    char *err;
    size_t errlen;
} vm;

static pv *newv(vm *m, pv_kind k) {
    if (m->n_all >= PT_MAX_VALUES) { fail(m->err, m->errlen, "pickle: too many objects"); return NULL; }
    if (m->n_all == m->cap_all) {
        size_t c = m->cap_all ? m->cap_all * 2 : 256;
        pv **a = realloc(m->all, c * sizeof *a);
        if (!a) { fail(m->err, m->errlen, "out of memory"); return NULL; }
        m->all = a;
        m->cap_all = c;
    }
    pv *v = calloc(1, sizeof *v);
    if (!v) { fail(m->err, m->errlen, "out of memory"); return NULL; }
    v->k = k;
    m->all[m->n_all++] = v;
    return v;
}

static int additem(vm *m, pv *c, pv *x) {
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 4;
        pv **a = realloc(c->it, nc * sizeof *a);
        if (!a) return fail(m->err, m->errlen, "out of memory");
        c->it = a;
        c->cap = nc;
    }
    c->it[c->n++] = x;
    return 0;
}

static int push(vm *m, pv *v) {
    if (!v) return -1;
    if (m->sp == m->cap_stack) {
        size_t c = m->cap_stack ? m->cap_stack * 2 : 64;
        pv **a = realloc(m->stack, c * sizeof *a);
        if (!a) return fail(m->err, m->errlen, "out of memory");
        m->stack = a;
        m->cap_stack = c;
    }
    m->stack[m->sp++] = v;
    return 0;
}

static pv *pop(vm *m) {
    if (m->sp == 0 || m->stack[m->sp - 1]->k == PV_MARK) {
        fail(m->err, m->errlen, "pickle: stack underflow at offset %zu", m->pos);
        return NULL;
    }
    return m->stack[--m->sp];
}

/* Index of the topmost MARK, or -1 with err set. */
static long find_mark(vm *m) {
    for (size_t i = m->sp; i-- > 0;)
        if (m->stack[i]->k == PV_MARK) return (long)i;
    fail(m->err, m->errlen, "pickle: no mark at offset %zu", m->pos);
    return -1;
}

static const uint8_t *take(vm *m, size_t n) {
    if (m->len - m->pos < n) {
        fail(m->err, m->errlen, "pickle: truncated at offset %zu", m->pos);
        return NULL;
    }
    const uint8_t *p = m->b + m->pos;
    m->pos += n;
    return p;
}

/* A text line (GLOBAL, INT, PUT, GET of protocol 0/1), without the '\n'. */
static const char *line(vm *m, size_t *n) {
    const uint8_t *s = m->b + m->pos, *nl = memchr(s, '\n', m->len - m->pos);
    if (!nl) { fail(m->err, m->errlen, "pickle: unterminated line at offset %zu", m->pos); return NULL; }
    *n = (size_t)(nl - s);
    m->pos += *n + 1;
    return (const char *)s;
}

static pv *newstr(vm *m, pv_kind k, const uint8_t *p, size_t n) {
    pv *v = newv(m, k);
    if (!v) return NULL;
    v->s = malloc(n + 1);
    if (!v->s) { fail(m->err, m->errlen, "out of memory"); return NULL; }
    memcpy(v->s, p, n);
    v->s[n] = 0;
    v->slen = n;
    return v;
}

static int memo_put(vm *m, uint64_t idx) {
    if (m->sp == 0) return fail(m->err, m->errlen, "pickle: memo put on empty stack");
    /* The pickler numbers memo entries in order, so an index beyond the
     * objects made so far is hostile; refusing it bounds the memo. */
    if (idx > m->n_all) return fail(m->err, m->errlen, "pickle: memo index %llu too large", (unsigned long long)idx);
    if (idx >= m->n_memo) {
        size_t c = (size_t)idx + 1 > m->n_memo * 2 ? (size_t)idx + 1 : m->n_memo * 2;
        pv **a = realloc(m->memo, c * sizeof *a);
        if (!a) return fail(m->err, m->errlen, "out of memory");
        memset(a + m->n_memo, 0, (c - m->n_memo) * sizeof *a);
        m->memo = a;
        m->n_memo = c;
    }
    if (!m->memo[idx]) m->memo_len++;
    m->memo[idx] = m->stack[m->sp - 1];
    return 0;
}

static int memo_get(vm *m, uint64_t idx) {
    if (idx >= m->n_memo || !m->memo[idx])
        return fail(m->err, m->errlen, "pickle: memo index %llu unset at offset %zu", (unsigned long long)idx, m->pos);
    return push(m, m->memo[idx]);
}

static const struct { const char *name; st_dtype dt; } k_storages[] = {
    {"FloatStorage", ST_F32}, {"HalfStorage", ST_F16}, {"BFloat16Storage", ST_BF16},
    {"DoubleStorage", ST_F64}, {"LongStorage", ST_I64}, {"IntStorage", ST_I32},
    {"ShortStorage", ST_I16}, {"CharStorage", ST_I8}, {"ByteStorage", ST_U8}, {"BoolStorage", ST_BOOL},
};

/* The allow list: anything else is refused by name, before it is used. */
static int global(vm *m, const char *mod, size_t modl, const char *name, size_t namel) {
    pv *v = newv(m, PV_GLOBAL);
    if (!v) return -1;
#define IS(a, s) (a##l == strlen(s) && memcmp(a, s, a##l) == 0)
    if (IS(mod, "collections") && IS(name, "OrderedDict")) v->i = G_ORDERED_DICT;
    else if (IS(mod, "torch._utils") && IS(name, "_rebuild_tensor_v2")) v->i = G_REBUILD_TENSOR;
    else if (IS(mod, "torch._utils") && (IS(name, "_rebuild_parameter") || IS(name, "_rebuild_parameter_with_state")))
        v->i = G_REBUILD_PARAM;
    else {
        int found = 0;
        if (IS(mod, "torch"))
            for (size_t i = 0; i < sizeof k_storages / sizeof k_storages[0]; i++)
                if (IS(name, k_storages[i].name)) { v->i = G_STORAGE; v->dt = (int)k_storages[i].dt; found = 1; }
        if (!found)
            return fail(m->err, m->errlen,
                        "refused global '%.*s.%.*s' at offset %zu: only tensors, storages and plain containers are read from .pt files",
                        (int)(modl > 200 ? 200 : modl), mod, (int)(namel > 200 ? 200 : namel), name, m->pos);
    }
#undef IS
    return push(m, v);
}

static int as_int(vm *m, const pv *v, int64_t *out, const char *what) {
    if (v->k != PV_INT) return fail(m->err, m->errlen, "_rebuild_tensor_v2: %s is not an int", what);
    *out = v->i;
    return 0;
}

/* persistent id ('storage', StorageType, key, location, numel) -> STORAGE. */
static int persid(vm *m) {
    pv *t = pop(m);
    if (!t) return -1;
    if (t->k != PV_TUPLE || t->n < 5 || t->it[0]->k != PV_STR || strcmp(t->it[0]->s, "storage") != 0)
        return fail(m->err, m->errlen, "pickle: persistent id is not a ('storage', ...) tuple");
    const pv *ty = t->it[1], *key = t->it[2], *numel = t->it[4];
    if (ty->k != PV_GLOBAL || ty->i != G_STORAGE) return fail(m->err, m->errlen, "pickle: persistent id names no storage type");
    if (key->k != PV_STR || key->slen == 0 || key->slen > 64 || strchr(key->s, '/'))
        return fail(m->err, m->errlen, "pickle: storage key is not a plain name");
    if (numel->k != PV_INT || numel->i < 0) return fail(m->err, m->errlen, "pickle: storage '%s' has no element count", key->s);
    char rest[80];
    snprintf(rest, sizeof rest, "data/%s", key->s);
    const zentry *e = zip_find(m->z, m->prefix, m->plen, rest);
    if (!e) return fail(m->err, m->errlen, "storage '%s': no entry %.*s/%s in the archive", key->s, (int)m->plen, m->prefix, rest);
    size_t es = st_dtype_size((st_dtype)ty->dt);
    if ((uint64_t)numel->i > e->size / es)
        return fail(m->err, m->errlen, "storage '%s': %lld elements of %zu bytes exceed its %llu-byte entry",
                    key->s, (long long)numel->i, es, (unsigned long long)e->size);
    pv *s = newv(m, PV_STORAGE);
    if (!s) return -1;
    s->dt = ty->dt;
    s->sdata = e->data;
    s->numel = (uint64_t)numel->i;
    return push(m, s);
}

static int int_tuple(vm *m, const pv *t, int64_t *out, int *n, const char *what) {
    if (t->k != PV_TUPLE) return fail(m->err, m->errlen, "_rebuild_tensor_v2: %s is not a tuple", what);
    if (t->n > ST_MAX_DIMS) return fail(m->err, m->errlen, "_rebuild_tensor_v2: %s has %zu dims (at most %d)", what, t->n, ST_MAX_DIMS);
    for (size_t i = 0; i < t->n; i++) {
        if (as_int(m, t->it[i], &out[i], what) != 0) return -1;
        if (out[i] < 0) return fail(m->err, m->errlen, "_rebuild_tensor_v2: negative %s", what);
    }
    *n = (int)t->n;
    return 0;
}

static int rebuild_tensor(vm *m, const pv *a) {
    if (a->n < 6) return fail(m->err, m->errlen, "_rebuild_tensor_v2: %zu arguments (expected 6 or 7)", a->n);
    const pv *st = a->it[0];
    if (st->k != PV_STORAGE) return fail(m->err, m->errlen, "_rebuild_tensor_v2: first argument is not a storage");
    pv *t = newv(m, PV_TENSOR);
    if (!t) return -1;
    int ns = 0;
    if (as_int(m, a->it[1], &t->off, "storage_offset") != 0 || int_tuple(m, a->it[2], t->shape, &t->ndim, "size") != 0 ||
        int_tuple(m, a->it[3], t->stride, &ns, "stride") != 0)
        return -1;
    if (t->off < 0) return fail(m->err, m->errlen, "_rebuild_tensor_v2: negative storage offset");
    if (ns != t->ndim) return fail(m->err, m->errlen, "_rebuild_tensor_v2: size has %d dims, stride %d", t->ndim, ns);
    /* The highest element index the view touches must lie in the storage. */
    uint64_t numel = 1, last = (uint64_t)t->off;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] > (int64_t)1 << 40 || t->stride[d] > (int64_t)1 << 40)
            return fail(m->err, m->errlen, "_rebuild_tensor_v2: size or stride too large");
        numel *= (uint64_t)t->shape[d];
        if (numel > (uint64_t)1 << 40) return fail(m->err, m->errlen, "_rebuild_tensor_v2: too many elements");
        if (t->shape[d] > 0) last += (uint64_t)(t->shape[d] - 1) * (uint64_t)t->stride[d];
    }
    if (numel > 0 && last >= st->numel)
        return fail(m->err, m->errlen, "_rebuild_tensor_v2: view reaches element %llu of a %llu-element storage",
                    (unsigned long long)last, (unsigned long long)st->numel);
    t->storage = (pv *)st;
    t->dt = st->dt;
    return push(m, t);
}

static int reduce(vm *m, int newobj) {
    pv *args = pop(m), *fn = args ? pop(m) : NULL;
    if (!fn) return -1;
    if (fn->k != PV_GLOBAL) return fail(m->err, m->errlen, "pickle: call of a non-global at offset %zu", m->pos);
    if (args->k != PV_TUPLE) return fail(m->err, m->errlen, "pickle: call arguments are not a tuple");
    switch ((pv_global)fn->i) {
    case G_ORDERED_DICT:
        if (args->n != 0) return fail(m->err, m->errlen, "OrderedDict: only the empty constructor is read");
        return push(m, newv(m, PV_DICT));
    case G_REBUILD_TENSOR:
        if (newobj) break;
        return rebuild_tensor(m, args);
    case G_REBUILD_PARAM:
        if (newobj) break;
        if (args->n < 1 || args->it[0]->k != PV_TENSOR) return fail(m->err, m->errlen, "_rebuild_parameter: first argument is not a tensor");
        return push(m, args->it[0]);
    case G_STORAGE:
        break;
    }
    return fail(m->err, m->errlen, "pickle: this global cannot be called here (offset %zu)", m->pos);
}

static int run(vm *m, pv **result) {
    size_t ops = 0;
    for (;;) {
        if (++ops > PT_MAX_OPS) return fail(m->err, m->errlen, "pickle: too many opcodes");
        const uint8_t *p = take(m, 1);
        if (!p) return -1;
        uint8_t op = *p;
        size_t n;
        const char *s;
        pv *v, *x, *y;
        long mk;
        switch (op) {
        case 0x80: /* PROTO */
            if (!(p = take(m, 1))) return -1;
            if (*p > 5) return fail(m->err, m->errlen, "pickle: protocol %u unknown", *p);
            break;
        case 0x95: /* FRAME: a size hint only */
            if (!take(m, 8)) return -1;
            break;
        case '.': /* STOP */
            if (!(v = pop(m))) return -1;
            *result = v;
            return 0;
        case '(': if (push(m, newv(m, PV_MARK))) return -1; break;
        case '0': if (!pop(m)) return -1; break;
        case '1': if ((mk = find_mark(m)) < 0) return -1; m->sp = (size_t)mk; break;
        case '2': if (!(v = pop(m)) || push(m, v) || push(m, v)) return -1; break;
        case 'N': if (push(m, newv(m, PV_NONE))) return -1; break;
        case 0x88: case 0x89:
            if (!(v = newv(m, PV_BOOL))) return -1;
            v->i = op == 0x88;
            if (push(m, v)) return -1;
            break;
        case 'J': case 'K': case 'M':
            if (!(p = take(m, op == 'J' ? 4 : op == 'K' ? 1 : 2)) || !(v = newv(m, PV_INT))) return -1;
            v->i = op == 'J' ? (int32_t)rd32(p) : op == 'K' ? p[0] : rd16(p);
            if (push(m, v)) return -1;
            break;
        case 0x8a: case 0x8b: { /* LONG1, LONG4: little-endian two's complement */
            const uint8_t *q = take(m, op == 0x8a ? 1 : 4);
            if (!q) return -1;
            size_t nb = op == 0x8a ? q[0] : rd32(q);
            if (nb > 8) return fail(m->err, m->errlen, "pickle: integer of %zu bytes too large", nb);
            if (!(q = take(m, nb)) || !(v = newv(m, PV_INT))) return -1;
            uint64_t u = 0;
            for (size_t i = 0; i < nb; i++) u |= (uint64_t)q[i] << (8 * i);
            if (nb > 0 && nb < 8 && (q[nb - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * nb);
            v->i = (int64_t)u;
            if (push(m, v)) return -1;
            break;
        }
        case 'I': case 'L': { /* INT / LONG as text (protocol 0) */
            if (!(s = line(m, &n)) || !(v = newv(m, PV_INT))) return -1;
            char buf[32];
            if (n == 0 || n >= sizeof buf) return fail(m->err, m->errlen, "pickle: bad integer literal");
            memcpy(buf, s, n);
            buf[n] = 0;
            if (buf[n - 1] == 'L') buf[n - 1] = 0;
            char *e;
            v->i = strtoll(buf, &e, 10);
            if (*e) { if (strcmp(buf, "00") == 0 || strcmp(buf, "01") == 0) { v->k = PV_BOOL; v->i = buf[1] == '1'; }
                      else return fail(m->err, m->errlen, "pickle: bad integer literal"); }
            if (push(m, v)) return -1;
            break;
        }
        case 'G': {
            if (!(p = take(m, 8)) || !(v = newv(m, PV_FLOAT))) return -1;
            uint64_t u = 0;
            for (int i = 0; i < 8; i++) u = u << 8 | p[i];
            memcpy(&v->f, &u, 8);
            if (push(m, v)) return -1;
            break;
        }
        case 'X': case 0x8c: case 0x8d: case 'T': case 'U': case 'B': case 'C': case 0x8e: {
            size_t w = (op == 0x8c || op == 'U' || op == 'C') ? 1 : (op == 0x8d || op == 0x8e) ? 8 : 4;
            const uint8_t *q = take(m, w);
            if (!q) return -1;
            uint64_t sz = w == 1 ? q[0] : w == 4 ? rd32(q) : rd64(q);
            if (sz > m->len - m->pos) return fail(m->err, m->errlen, "pickle: string runs past the end (offset %zu)", m->pos);
            q = take(m, (size_t)sz);
            int bytes = op == 'B' || op == 'C' || op == 0x8e;
            if (push(m, newstr(m, bytes ? PV_BYTES : PV_STR, q, (size_t)sz))) return -1;
            break;
        }
        case ')': if (push(m, newv(m, PV_TUPLE))) return -1; break;
        case ']': if (push(m, newv(m, PV_LIST))) return -1; break;
        case '}': if (push(m, newv(m, PV_DICT))) return -1; break;
        case 0x85: case 0x86: case 0x87: {
            size_t k = (size_t)(op - 0x84);
            if (m->sp < k) return fail(m->err, m->errlen, "pickle: stack underflow at offset %zu", m->pos);
            if (!(v = newv(m, PV_TUPLE))) return -1;
            for (size_t i = m->sp - k; i < m->sp; i++) {
                if (m->stack[i]->k == PV_MARK) return fail(m->err, m->errlen, "pickle: mark inside a tuple");
                if (additem(m, v, m->stack[i])) return -1;
            }
            m->sp -= k;
            if (push(m, v)) return -1;
            break;
        }
        case 't': case 'l': case 'd': case 'e': case 'u': {
            if ((mk = find_mark(m)) < 0) return -1;
            size_t first = (size_t)mk + 1, cnt = m->sp - first;
            if (op == 't' || op == 'l' || op == 'd') {
                if (!(v = newv(m, op == 't' ? PV_TUPLE : op == 'l' ? PV_LIST : PV_DICT))) return -1;
                if (op == 'd' && cnt % 2) return fail(m->err, m->errlen, "pickle: odd item count for a dict");
                for (size_t i = first; i < m->sp; i++)
                    if (additem(m, v, m->stack[i])) return -1;
                m->sp = (size_t)mk;
                if (push(m, v)) return -1;
            } else {
                if (mk == 0) return fail(m->err, m->errlen, "pickle: nothing to add items to");
                v = m->stack[mk - 1];
                if (op == 'e' ? v->k != PV_LIST : v->k != PV_DICT)
                    return fail(m->err, m->errlen, "pickle: %s on a non-%s", op == 'e' ? "APPENDS" : "SETITEMS", op == 'e' ? "list" : "dict");
                if (op == 'u' && cnt % 2) return fail(m->err, m->errlen, "pickle: odd item count for SETITEMS");
                for (size_t i = first; i < m->sp; i++)
                    if (additem(m, v, m->stack[i])) return -1;
                m->sp = (size_t)mk;
            }
            break;
        }
        case 'a':
            if (!(x = pop(m)) || !(v = pop(m))) return -1;
            if (v->k != PV_LIST) return fail(m->err, m->errlen, "pickle: APPEND on a non-list");
            if (additem(m, v, x) || push(m, v)) return -1;
            break;
        case 's':
            if (!(y = pop(m)) || !(x = pop(m)) || !(v = pop(m))) return -1;
            if (v->k != PV_DICT) return fail(m->err, m->errlen, "pickle: SETITEM on a non-dict");
            if (additem(m, v, x) || additem(m, v, y) || push(m, v)) return -1;
            break;
        case 'c': {
            size_t ml, nl;
            const char *mod = line(m, &ml), *name = mod ? line(m, &nl) : NULL;
            if (!name || global(m, mod, ml, name, nl)) return -1;
            break;
        }
        case 0x93:
            if (!(y = pop(m)) || !(x = pop(m))) return -1;
            if (x->k != PV_STR || y->k != PV_STR) return fail(m->err, m->errlen, "pickle: STACK_GLOBAL of non-strings");
            if (global(m, x->s, x->slen, y->s, y->slen)) return -1;
            break;
        case 'R': if (reduce(m, 0)) return -1; break;
        case 0x81: if (reduce(m, 1)) return -1; break;
        case 'b': /* BUILD: only a dict's attribute state (OrderedDict._metadata) is accepted, and dropped */
            if (!(x = pop(m)) || !(v = pop(m))) return -1;
            if (v->k != PV_DICT && v->k != PV_TENSOR)
                return fail(m->err, m->errlen, "pickle: BUILD on an object that is not a dict or tensor");
            if (push(m, v)) return -1;
            break;
        case 'Q': if (persid(m)) return -1; break;
        case 'q': if (!(p = take(m, 1)) || memo_put(m, p[0])) return -1; break;
        case 'r': if (!(p = take(m, 4)) || memo_put(m, rd32(p))) return -1; break;
        case 0x94: if (memo_put(m, m->memo_len)) return -1; break;
        case 'h': if (!(p = take(m, 1)) || memo_get(m, p[0])) return -1; break;
        case 'j': if (!(p = take(m, 4)) || memo_get(m, rd32(p))) return -1; break;
        case 'p': case 'g': {
            if (!(s = line(m, &n))) return -1;
            char buf[24];
            if (n == 0 || n >= sizeof buf) return fail(m->err, m->errlen, "pickle: bad memo index");
            memcpy(buf, s, n);
            buf[n] = 0;
            char *e;
            unsigned long long idx = strtoull(buf, &e, 10);
            if (*e) return fail(m->err, m->errlen, "pickle: bad memo index");
            if (op == 'p' ? memo_put(m, idx) : memo_get(m, idx)) return -1;
            break;
        }
        default:
            return fail(m->err, m->errlen, "pickle: opcode 0x%02x at offset %zu is not supported", op, m->pos - 1);
        }
    }
}

/* ---- flattening to named tensors ----------------------------------------- */

typedef struct out_list {
    st_tensor *t;
    size_t n, cap;
} out_list;

static int add_tensor(vm *m, pt_file *f, out_list *o, const char *name, const pv *t) {
    size_t es = st_dtype_size((st_dtype)t->dt);
    uint64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) numel *= (uint64_t)t->shape[d];
    int contiguous = 1;
    int64_t want = 1;
    for (int d = t->ndim; d-- > 0;) {
        if (t->shape[d] != 1 && t->stride[d] != want) contiguous = 0;
        want *= t->shape[d];
    }
    if (o->n == o->cap) {
        size_t c = o->cap ? o->cap * 2 : 64;
        st_tensor *a = realloc(o->t, c * sizeof *a);
        if (!a) return fail(m->err, m->errlen, "out of memory");
        o->t = a;
        o->cap = c;
    }
    st_tensor *d = &o->t[o->n];
    memset(d, 0, sizeof *d);
    d->name = strdup(name);
    if (!d->name) return fail(m->err, m->errlen, "out of memory");
    o->n++;
    d->dtype = (st_dtype)t->dt;
    d->ndim = t->ndim;
    memcpy(d->shape, t->shape, sizeof d->shape);
    d->begin = 0;
    d->end = numel * es;
    if (contiguous || numel == 0) {
        d->data = t->storage->sdata + (uint64_t)t->off * es;
        return 0;
    }
    uint8_t *c = malloc((size_t)(numel * es));
    void **cp = realloc(f->copies, (f->n_copies + 1) * sizeof *cp);
    if (!c || !cp) { free(c); if (cp) f->copies = cp; return fail(m->err, m->errlen, "out of memory"); }
    f->copies = cp;
    f->copies[f->n_copies++] = c;
    int64_t idx[ST_MAX_DIMS] = {0};
    for (uint64_t i = 0; i < numel; i++) {
        uint64_t src = (uint64_t)t->off;
        for (int k = 0; k < t->ndim; k++) src += (uint64_t)idx[k] * (uint64_t)t->stride[k];
        memcpy(c + i * es, t->storage->sdata + src * es, es);
        for (int k = t->ndim; k-- > 0;) {
            if (++idx[k] < t->shape[k]) break;
            idx[k] = 0;
        }
    }
    d->data = c;
    return 0;
}

static int flatten(vm *m, pt_file *f, out_list *o, const pv *v, char *name, size_t nlen, int depth) {
    if (depth > PT_MAX_DEPTH) return fail(m->err, m->errlen, "pickle: containers nested deeper than %d", PT_MAX_DEPTH);
    if (v->k == PV_TENSOR) {
        if (nlen == 0) return fail(m->err, m->errlen, "pickle: the file holds a bare tensor, not a dict of tensors");
        return add_tensor(m, f, o, name, v);
    }
    if (v->k != PV_DICT && v->k != PV_LIST && v->k != PV_TUPLE) return 0;
    size_t step = v->k == PV_DICT ? 2 : 1;
    for (size_t i = 0; i + step - 1 < v->n; i += step) {
        char key[64];
        const char *kp;
        size_t kl;
        if (v->k == PV_DICT) {
            const pv *k = v->it[i];
            if (k->k == PV_STR) { kp = k->s; kl = k->slen; }
            else if (k->k == PV_INT) { kl = (size_t)snprintf(key, sizeof key, "%lld", (long long)k->i); kp = key; }
            else continue; /* other keys cannot name a tensor; their values are skipped */
        } else {
            kl = (size_t)snprintf(key, sizeof key, "%zu", i);
            kp = key;
        }
        size_t sep = nlen ? 1 : 0;
        if (nlen + sep + kl >= PT_MAX_NAME) return fail(m->err, m->errlen, "pickle: a tensor name exceeds %d bytes", PT_MAX_NAME);
        if (memchr(kp, 0, kl)) return fail(m->err, m->errlen, "pickle: a key contains a NUL byte");
        if (sep) name[nlen] = '.';
        memcpy(name + nlen + sep, kp, kl);
        name[nlen + sep + kl] = 0;
        if (flatten(m, f, o, v->it[i + step - 1], name, nlen + sep + kl, depth + 1)) return -1;
        name[nlen] = 0;
    }
    return 0;
}

static int cmp_tensor(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

int pt_sniff(const void *buf, size_t len) {
    const uint8_t *b = buf;
    return len >= 4 && ((b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4) || (b[0] == 0x80 && b[1] <= 5));
}

void pt_close(pt_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (size_t i = 0; i < f->n_copies; i++) free(f->copies[i]);
    free(f->copies);
    free(f->owned);
    free(f->path);
    free(f);
}

static int parse(const uint8_t *b, size_t len, const char *path, pt_file **out, char *err, size_t errlen) {
    char e2[400];
    *out = NULL;
    if (len >= 2 && b[0] == 0x80)
        return fail(err, errlen, "%s: legacy torch.save format (torch < 1.6, not a zip) is not read; re-save it with a current torch or convert it to .safetensors", path);
    zarchive z;
    if (zip_read(b, len, &z, e2, sizeof e2) != 0) {
        free(z.e);
        return fail(err, errlen, "%s: %s", path, e2);
    }
    const zentry *pk = NULL;
    for (size_t i = 0; i < z.n && !pk; i++)
        if (z.e[i].name_len >= 9 && memcmp(z.e[i].name + z.e[i].name_len - 9, "/data.pkl", 9) == 0) pk = &z.e[i];
    if (!pk) {
        free(z.e);
        return fail(err, errlen, "%s: no <archive>/data.pkl entry: not a torch.save file", path);
    }
    vm m = {.b = pk->data, .len = (size_t)pk->size, .z = &z, .prefix = pk->name, .plen = pk->name_len - 9,
            .err = e2, .errlen = sizeof e2};
    pt_file *f = calloc(1, sizeof *f);
    out_list o = {0};
    pv *top = NULL;
    int rc = -1;
    char *name = malloc(PT_MAX_NAME);
    if (!f || !name) { fail(e2, sizeof e2, "out of memory"); goto done; }
    name[0] = 0;
    if (run(&m, &top) != 0 || flatten(&m, f, &o, top, name, 0, 0) != 0) goto done;
    if (o.n == 0 && top->k != PV_DICT) { fail(e2, sizeof e2, "the pickle holds no dict of tensors"); goto done; }
    if (o.n) qsort(o.t, o.n, sizeof *o.t, cmp_tensor); /* o.t is NULL for an empty dict */
    for (size_t i = 1; i < o.n; i++)
        if (strcmp(o.t[i - 1].name, o.t[i].name) == 0) { fail(e2, sizeof e2, "tensor name '%s' occurs twice", o.t[i].name); goto done; }
    f->tensors = o.t;
    f->n_tensors = o.n;
    o.t = NULL;
    o.n = 0;
    f->path = strdup(path);
    if (!f->path) { fail(e2, sizeof e2, "out of memory"); goto done; }
    *out = f;
    f = NULL;
    rc = 0;
done:
    if (rc != 0) fail(err, errlen, "%s: %s", path, e2);
    for (size_t i = 0; i < o.n; i++) free(o.t[i].name);
    free(o.t);
    pt_close(f);
    for (size_t i = 0; i < m.n_all; i++) { free(m.all[i]->s); free(m.all[i]->it); free(m.all[i]); }
    free(m.all);
    free(m.stack);
    free(m.memo);
    free(name);
    free(z.e);
    return rc;
}

int pt_parse(const void *buf, size_t len, pt_file **out, char *err, size_t errlen) {
    return parse(buf, len, "<memory>", out, err, errlen);
}

int pt_open(const char *path, pt_file **out, char *err, size_t errlen) {
    return pt_open_scoped(path, NULL, NULL, out, err, errlen);
}

int pt_open_scoped(const char *path, const char *field, const sdrt_file_scope *scope, pt_file **out, char *err,
                   size_t errlen) {
    *out = NULL;
    FILE *fp = sdrt_file_fopen(path, field, scope, NULL, err, errlen);
    if (!fp) return -1;
    uint8_t *buf = NULL;
    long sz = -1;
    if (fseek(fp, 0, SEEK_END) == 0) sz = ftell(fp);
    if (sz < 0 || fseek(fp, 0, SEEK_SET) != 0) { fclose(fp); return fail(err, errlen, "%s: cannot read", path); }
    buf = malloc(sz ? (size_t)sz : 1);
    if (!buf) { fclose(fp); return fail(err, errlen, "%s: out of memory (%ld bytes)", path, sz); }
    size_t got = fread(buf, 1, (size_t)sz, fp);
    fclose(fp);
    if (got != (size_t)sz) { free(buf); return fail(err, errlen, "%s: short read", path); }
    if (parse(buf, (size_t)sz, path, out, err, errlen) != 0) { free(buf); return -1; }
    (*out)->owned = buf;
    return 0;
}

const st_tensor *pt_find(const pt_file *f, const char *name) {
    size_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(f->tensors[mid].name, name);
        if (c == 0) return &f->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}
