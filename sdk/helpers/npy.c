/* sdk/helpers/npy.c - NumPy .npy reader and writer.
 *
 * The header is a Python dict literal; we parse exactly the grammar NumPy
 * writes ({'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }) and
 * treat everything else as an error, since the input may be hostile (files
 * named in requests, fuzzing). Every size is checked before it is used.
 */
#include "sdrt/npy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdrt/file.h"
#include "sdrt/half.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
/* NumPy itself refuses headers above 10000 bytes unless told otherwise;
 * we allow more, but bound it so a corrupt length cannot drive a huge scan. */
#define NPY_MAX_HEADER (1u << 20)
/* Files above this are refused by sdrt_npy_read_f32 before reading. */
#define NPY_MAX_FILE ((size_t)1 << 40)

typedef enum npy_kind { NPY_F2, NPY_F4, NPY_F8, NPY_I4, NPY_I8, NPY_U1, NPY_B1, NPY_I1 } npy_kind;

typedef struct npy_header {
    npy_kind kind;
    int big_endian;
    size_t itemsize;
    int fortran;
    int ndim;
    int64_t shape[SDRT_NPY_MAX_DIMS];
    size_t numel;
} npy_header;

/* Cursor over the header text. */
typedef struct npy_cur {
    const char *p;
    const char *end;
} npy_cur;

static int npy_fail(char *err, size_t errlen, const char *name, const char *fmt, ...) {
    if (err && errlen) {
        int k = snprintf(err, errlen, "%s: ", name);
        if (k < 0) k = 0;
        if ((size_t)k < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static void cur_skip_ws(npy_cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int cur_eat(npy_cur *c, char ch) {
    cur_skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted string without escapes (NumPy never writes any in headers). */
static int cur_string(npy_cur *c, char *out, size_t outlen) {
    cur_skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= outlen) return 0;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return 0;
    c->p++;
    out[n] = 0;
    return 1;
}

static int cur_word(npy_cur *c, const char *w) {
    cur_skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0) {
        c->p += n;
        return 1;
    }
    return 0;
}

/* Non-negative decimal integer (Python may append 'L' in old files). */
static int cur_dim(npy_cur *c, int64_t *out) {
    cur_skip_ws(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') return 0;
    int64_t v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        int d = *c->p++ - '0';
        if (v > (INT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    if (c->p < c->end && *c->p == 'L') c->p++;
    *out = v;
    return 1;
}

static int parse_descr(const char *d, npy_header *h) {
    static const struct { const char *code; npy_kind kind; size_t size; } table[] = {
        {"f2", NPY_F2, 2}, {"f4", NPY_F4, 4}, {"f8", NPY_F8, 8}, {"i4", NPY_I4, 4},
        {"i8", NPY_I8, 8}, {"u1", NPY_U1, 1}, {"b1", NPY_B1, 1}, {"i1", NPY_I1, 1},
    };
    if (strlen(d) != 3) return 0;
    char order = d[0];
    if (order != '<' && order != '>' && order != '|' && order != '=') return 0;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(d + 1, table[i].code) != 0) continue;
        /* '|' (not applicable) is only valid for single bytes. */
        if (order == '|' && table[i].size != 1) return 0;
        h->kind = table[i].kind;
        h->itemsize = table[i].size;
        h->big_endian = order == '>' && table[i].size > 1;
        return 1;
    }
    return 0;
}

static int parse_shape(npy_cur *c, npy_header *h, const char *name, char *err, size_t errlen) {
    if (!cur_eat(c, '(')) return npy_fail(err, errlen, name, "header: 'shape' is not a tuple");
    h->ndim = 0;
    h->numel = 1;
    if (cur_eat(c, ')')) return 0;
    for (;;) {
        int64_t d;
        if (!cur_dim(c, &d)) return npy_fail(err, errlen, name, "header: 'shape' has a non-integer or negative dimension");
        if (h->ndim >= SDRT_NPY_MAX_DIMS)
            return npy_fail(err, errlen, name, "header: 'shape' has more than %d dimensions", SDRT_NPY_MAX_DIMS);
        h->shape[h->ndim++] = d;
        if (d != 0 && h->numel > SIZE_MAX / (size_t)d)
            return npy_fail(err, errlen, name, "header: 'shape' element count overflows");
        h->numel *= (size_t)d;
        int comma = cur_eat(c, ',');
        if (cur_eat(c, ')')) break;
        if (!comma) return npy_fail(err, errlen, name, "header: 'shape' tuple is malformed");
    }
    if (h->numel > SIZE_MAX / 8) return npy_fail(err, errlen, name, "header: 'shape' element count overflows");
    return 0;
}

/* Parses the dict; exactly the keys descr, fortran_order and shape. */
static int parse_dict(npy_cur *c, npy_header *h, const char *name, char *err, size_t errlen) {
    int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
    if (!cur_eat(c, '{')) return npy_fail(err, errlen, name, "header: not a dict (no '{')");
    while (!cur_eat(c, '}')) {
        char key[32], val[32];
        if (!cur_string(c, key, sizeof key)) return npy_fail(err, errlen, name, "header: expected a quoted key");
        if (!cur_eat(c, ':')) return npy_fail(err, errlen, name, "header: expected ':' after key '%s'", key);
        if (strcmp(key, "descr") == 0 && !seen_descr) {
            seen_descr = 1;
            if (!cur_string(c, val, sizeof val)) return npy_fail(err, errlen, name, "header: 'descr' is not a string");
            if (!parse_descr(val, h))
                return npy_fail(err, errlen, name, "header: unsupported dtype '%s' (need <f4, <f8, <f2, <i8, <i4, |u1, |i1 or |b1)", val);
        } else if (strcmp(key, "fortran_order") == 0 && !seen_fortran) {
            seen_fortran = 1;
            if (cur_word(c, "False")) h->fortran = 0;
            else if (cur_word(c, "True")) h->fortran = 1;
            else return npy_fail(err, errlen, name, "header: 'fortran_order' is not True or False");
        } else if (strcmp(key, "shape") == 0 && !seen_shape) {
            seen_shape = 1;
            if (parse_shape(c, h, name, err, errlen) != 0) return -1;
        } else {
            return npy_fail(err, errlen, name, "header: unexpected or duplicate key '%s'", key);
        }
        if (!cur_eat(c, ',')) {
            if (!cur_eat(c, '}')) return npy_fail(err, errlen, name, "header: expected ',' or '}' after '%s'", key);
            break;
        }
    }
    if (!seen_descr || !seen_fortran || !seen_shape)
        return npy_fail(err, errlen, name, "header: missing key '%s'",
                        !seen_descr ? "descr" : !seen_fortran ? "fortran_order" : "shape");
    if (h->fortran) return npy_fail(err, errlen, name, "fortran_order arrays are not supported (write C order)");
    return 0;
}

static uint64_t load_le(const uint8_t *p, size_t n, int big) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)p[big ? n - 1 - i : i] << (8 * i);
    return v;
}

static float convert_one(const uint8_t *p, const npy_header *h) {
    uint64_t v = load_le(p, h->itemsize, h->big_endian);
    switch (h->kind) {
    case NPY_F2: return sdrt_f16_to_f32((uint16_t)v);
    case NPY_F4: { uint32_t u = (uint32_t)v; float f; memcpy(&f, &u, 4); return f; }
    case NPY_F8: { double d; memcpy(&d, &v, 8); return (float)d; }
    case NPY_I4: return (float)(int32_t)(uint32_t)v;
    case NPY_I8: return (float)(int64_t)v;
    case NPY_U1: return (float)(uint8_t)v;
    case NPY_I1: return (float)(int8_t)(uint8_t)v;
    case NPY_B1: return v ? 1.0f : 0.0f;
    }
    return 0.0f;
}

/* Reads magic, version and header length; returns the data offset or 0. */
static size_t parse_preamble(const uint8_t *b, size_t len, npy_cur *hdr, const char *name, char *err,
                             size_t errlen) {
    if (len < 10 || memcmp(b, NPY_MAGIC, NPY_MAGIC_LEN) != 0) {
        npy_fail(err, errlen, name, "not a .npy file (bad magic)");
        return 0;
    }
    uint8_t major = b[6];
    size_t pre = major == 1 ? 10 : 12;
    if (major < 1 || major > 3) {
        npy_fail(err, errlen, name, "unsupported .npy version %u.%u", b[6], b[7]);
        return 0;
    }
    if (len < pre) {
        npy_fail(err, errlen, name, "truncated preamble");
        return 0;
    }
    size_t hlen = major == 1 ? (size_t)load_le(b + 8, 2, 0) : (size_t)load_le(b + 8, 4, 0);
    if (hlen > NPY_MAX_HEADER || hlen > len - pre) {
        npy_fail(err, errlen, name, "header length %zu exceeds the file (%zu bytes) or the %u-byte limit", hlen,
                 len, NPY_MAX_HEADER);
        return 0;
    }
    hdr->p = (const char *)b + pre;
    hdr->end = hdr->p + hlen;
    return pre + hlen;
}

static int npy_parse_named(const void *buf, size_t len, const char *name, float **data, int64_t *shape,
                           int *ndim, char *err, size_t errlen) {
    const uint8_t *b = buf;
    npy_cur c;
    npy_header h;
    memset(&h, 0, sizeof h);
    *data = NULL;
    size_t off = parse_preamble(b, len, &c, name, err, errlen);
    if (off == 0) return -1;
    if (parse_dict(&c, &h, name, err, errlen) != 0) return -1;
    size_t need = h.numel * h.itemsize;
    if (len - off < need)
        return npy_fail(err, errlen, name, "data is %zu bytes, shape needs %zu", len - off, need);
    float *out = malloc(h.numel ? h.numel * sizeof(float) : 1);
    if (!out) return npy_fail(err, errlen, name, "out of memory for %zu elements", h.numel);
    for (size_t i = 0; i < h.numel; i++) out[i] = convert_one(b + off + i * h.itemsize, &h);
    for (int i = 0; i < h.ndim; i++) shape[i] = h.shape[i];
    *ndim = h.ndim;
    *data = out;
    return 0;
}

int sdrt_npy_parse_f32(const void *buf, size_t len, float **data, int64_t *shape, int *ndim, char *err,
                       size_t errlen) {
    if (!buf && len) return npy_fail(err, errlen, "<memory>", "NULL buffer");
    return npy_parse_named(buf ? buf : "", len, "<memory>", data, shape, ndim, err, errlen);
}

static int read_whole(const char *path, uint8_t **buf, size_t *len, char *err, size_t errlen) {
    /* Never blocks on a FIFO, refuses devices (sdrt/file.h): the path may
     * come from a request. */
    char why[512];
    FILE *f = sdrt_file_fopen(path, "latents", NULL, NULL, why, sizeof why);
    if (!f) return npy_fail(err, errlen, path, "%s", why);
    long sz = -1;
    if (fseek(f, 0, SEEK_END) == 0) sz = ftell(f);
    if (sz < 0 || (size_t)sz > NPY_MAX_FILE || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return npy_fail(err, errlen, path, "cannot determine size or file too large");
    }
    uint8_t *b = malloc((size_t)sz ? (size_t)sz : 1);
    if (!b) {
        fclose(f);
        return npy_fail(err, errlen, path, "out of memory reading %ld bytes", sz);
    }
    size_t got = fread(b, 1, (size_t)sz, f);
    fclose(f);
    if (got != (size_t)sz) {
        free(b);
        return npy_fail(err, errlen, path, "short read (%zu of %ld bytes)", got, sz);
    }
    *buf = b;
    *len = got;
    return 0;
}

int sdrt_npy_read_f32(const char *path, float **data, int64_t *shape, int *ndim, char *err, size_t errlen) {
    uint8_t *buf = NULL;
    size_t len = 0;
    *data = NULL;
    if (read_whole(path, &buf, &len, err, errlen) != 0) return -1;
    int rc = npy_parse_named(buf, len, path, data, shape, ndim, err, errlen);
    free(buf);
    return rc;
}

/* Header text padded with spaces so data starts 64-byte aligned. */
static size_t build_header(char *h, size_t cap, const int64_t *shape, int ndim) {
    int n = snprintf(h, cap, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < ndim; i++)
        n += snprintf(h + n, cap - (size_t)n, "%lld%s", (long long)shape[i], ndim == 1 ? "," : (i + 1 < ndim ? ", " : ""));
    n += snprintf(h + n, cap - (size_t)n, "), }");
    size_t total = 10 + (size_t)n + 1;
    size_t padded = (total + 63) / 64 * 64;
    while (10 + (size_t)n + 1 < padded) h[n++] = ' ';
    h[n++] = '\n';
    return (size_t)n;
}

static int write_le_f32(FILE *f, const float *data, size_t numel) {
    uint8_t chunk[4096];
    size_t k = 0;
    for (size_t i = 0; i < numel; i++) {
        uint32_t u;
        memcpy(&u, &data[i], 4);
        for (int b = 0; b < 4; b++) chunk[k++] = (uint8_t)(u >> (8 * b));
        if (k == sizeof chunk) {
            if (fwrite(chunk, 1, k, f) != k) return -1;
            k = 0;
        }
    }
    return k && fwrite(chunk, 1, k, f) != k ? -1 : 0;
}

int sdrt_npy_write_f32(const char *path, const float *data, const int64_t *shape, int ndim, char *err,
                       size_t errlen) {
    if (ndim < 0 || ndim > SDRT_NPY_MAX_DIMS) return npy_fail(err, errlen, path, "ndim %d out of range 0..%d", ndim, SDRT_NPY_MAX_DIMS);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return npy_fail(err, errlen, path, "shape[%d] is negative (%lld)", i, (long long)shape[i]);
        if (shape[i] && numel > SIZE_MAX / 4 / (size_t)shape[i]) return npy_fail(err, errlen, path, "element count overflows");
        numel *= (size_t)shape[i];
    }
    if (numel && !data) return npy_fail(err, errlen, path, "NULL data");
    char hdr[512];
    size_t hlen = build_header(hdr, sizeof hdr - 64, shape, ndim);
    uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(hlen & 0xff), (uint8_t)(hlen >> 8)};
    FILE *f = fopen(path, "wb");
    if (!f) return npy_fail(err, errlen, path, "cannot create: %s", strerror(errno));
    int bad = fwrite(pre, 1, 10, f) != 10 || fwrite(hdr, 1, hlen, f) != hlen || write_le_f32(f, data, numel) != 0;
    if (fclose(f) != 0) bad = 1;
    if (bad) return npy_fail(err, errlen, path, "write failed: %s", strerror(errno));
    return 0;
}
