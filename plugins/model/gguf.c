/* plugins/model/gguf.c - the GGUF container: header, metadata, tensor
 * infos. Every read goes through a cursor that checks the remaining
 * length first, so a malformed file fails with a message, never a read
 * past the end. */
#define _GNU_SOURCE
#include "gguf.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_ARRAY_DEPTH 4
#define GGUF_MAX_NAME 1024

/* ggml type ids: sizes for every type a file may hold (so foreign types
 * are still skipped precisely), and the sdrt dtype where one exists. */
typedef struct ggml_type_info {
    const char *name;
    int block, bytes, dtype;
} ggml_type_info;

static const ggml_type_info GGML_TYPES[] = {
    [0] = {"f32", 1, 4, SDRT_DTYPE_F32},       [1] = {"f16", 1, 2, SDRT_DTYPE_F16},
    [2] = {"q4_0", 32, 18, SDRT_DTYPE_Q4_0},   [3] = {"q4_1", 32, 20, SDRT_DTYPE_Q4_1},
    [6] = {"q5_0", 32, 22, SDRT_DTYPE_Q5_0},   [7] = {"q5_1", 32, 24, SDRT_DTYPE_Q5_1},
    [8] = {"q8_0", 32, 34, SDRT_DTYPE_Q8_0},   [9] = {"q8_1", 32, 36, -1},
    [10] = {"q2_K", 256, 84, SDRT_DTYPE_Q2_K}, [11] = {"q3_K", 256, 110, SDRT_DTYPE_Q3_K},
    [12] = {"q4_K", 256, 144, SDRT_DTYPE_Q4_K}, [13] = {"q5_K", 256, 176, SDRT_DTYPE_Q5_K},
    [14] = {"q6_K", 256, 210, SDRT_DTYPE_Q6_K}, [15] = {"q8_K", 256, 292, -1},
    [16] = {"iq2_xxs", 256, 66, -1},           [17] = {"iq2_xs", 256, 74, -1},
    [18] = {"iq3_xxs", 256, 98, -1},           [19] = {"iq1_s", 256, 50, -1},
    [20] = {"iq4_nl", 32, 18, -1},             [21] = {"iq3_s", 256, 110, -1},
    [22] = {"iq2_s", 256, 82, -1},             [23] = {"iq4_xs", 256, 136, -1},
    [24] = {"i8", 1, 1, -1},                   [25] = {"i16", 1, 2, -1},
    [26] = {"i32", 1, 4, SDRT_DTYPE_I32},      [27] = {"i64", 1, 8, SDRT_DTYPE_I64},
    [28] = {"f64", 1, 8, SDRT_DTYPE_F64},      [29] = {"iq1_m", 256, 56, -1},
    [30] = {"bf16", 1, 2, SDRT_DTYPE_BF16},    [34] = {"tq1_0", 256, 54, -1},
    [35] = {"tq2_0", 256, 66, -1},
};
#define GGML_TYPE_COUNT (sizeof GGML_TYPES / sizeof GGML_TYPES[0])

const char *gguf_type_name(uint32_t t) { return t < GGML_TYPE_COUNT ? GGML_TYPES[t].name : NULL; }

int gguf_type_of_dtype(sdrt_dtype dt) {
    for (uint32_t t = 0; t < GGML_TYPE_COUNT; t++)
        if (GGML_TYPES[t].name && GGML_TYPES[t].dtype == (int)dt) return (int)t;
    return -1;
}

typedef struct cursor {
    const uint8_t *p;
    size_t len, pos;
    const char *path;
    char *err;
    size_t errlen;
} cursor;

static int fail(cursor *c, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s: %s", c->path, msg);
    return -1;
}

static int take(cursor *c, size_t n, const uint8_t **out, const char *what) {
    *out = NULL;
    if (n > c->len - c->pos) return fail(c, "truncated at byte %zu reading %s", c->pos, what);
    *out = c->p + c->pos;
    c->pos += n;
    return 0;
}

static uint64_t le(const uint8_t *b, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

static int u32(cursor *c, uint32_t *v, const char *what) {
    const uint8_t *b = NULL;
    if (take(c, 4, &b, what)) return -1;
    *v = (uint32_t)le(b, 4);
    return 0;
}

static int u64(cursor *c, uint64_t *v, const char *what) {
    const uint8_t *b = NULL;
    if (take(c, 8, &b, what)) return -1;
    *v = le(b, 8);
    return 0;
}

/* A string's bytes (not NUL-terminated) after checking its length. */
static int str(cursor *c, const uint8_t **s, uint64_t *n, const char *what) {
    if (u64(c, n, what)) return -1;
    if (*n > c->len - c->pos) return fail(c, "%s: string length %llu runs past the end of the file", what, (unsigned long long)*n);
    return take(c, (size_t)*n, s, what);
}

enum { KV_U8, KV_I8, KV_U16, KV_I16, KV_U32, KV_I32, KV_F32, KV_BOOL, KV_STRING, KV_ARRAY, KV_U64, KV_I64, KV_F64, KV_COUNT };
static const int KV_SIZE[KV_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

/* Skips (and bounds-checks) one value of `type`; *scalar gets integer
 * values for the keys that matter. */
static int skip_value(cursor *c, uint32_t type, int depth, const char *key, uint64_t *scalar) {
    if (type >= KV_COUNT) return fail(c, "metadata '%s': value type %u out of range (0..12)", key, type);
    if (type == KV_STRING) {
        const uint8_t *s;
        uint64_t n;
        return str(c, &s, &n, key);
    }
    if (type == KV_ARRAY) {
        if (depth >= GGUF_MAX_ARRAY_DEPTH) return fail(c, "metadata '%s': arrays nested deeper than %d", key, GGUF_MAX_ARRAY_DEPTH);
        uint32_t et;
        uint64_t n;
        if (u32(c, &et, key) || u64(c, &n, key)) return -1;
        if (et >= KV_COUNT) return fail(c, "metadata '%s': array element type %u out of range (0..12)", key, et);
        if (KV_SIZE[et]) {
            if (n > (c->len - c->pos) / (uint64_t)KV_SIZE[et])
                return fail(c, "metadata '%s': array of %llu elements runs past the end of the file", key, (unsigned long long)n);
            c->pos += (size_t)n * (size_t)KV_SIZE[et];
            return 0;
        }
        /* Strings take >= 8 bytes each, arrays >= 12: bound n first. */
        if (n > (c->len - c->pos) / 8)
            return fail(c, "metadata '%s': array of %llu elements runs past the end of the file", key, (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++)
            if (skip_value(c, et, depth + 1, key, NULL)) return -1;
        return 0;
    }
    const uint8_t *b = NULL;
    if (take(c, (size_t)KV_SIZE[type], &b, key)) return -1;
    if (scalar) *scalar = le(b, KV_SIZE[type]);
    return 0;
}

static int read_metadata(cursor *c, gguf_file *f, uint64_t n_kv) {
    /* A key-value pair takes at least 8 + 4 + 1 bytes. */
    if (n_kv > (c->len - c->pos) / 13)
        return fail(c, "metadata count %llu exceeds what the file can hold", (unsigned long long)n_kv);
    for (uint64_t i = 0; i < n_kv; i++) {
        const uint8_t *k;
        uint64_t kn;
        uint32_t type;
        if (str(c, &k, &kn, "metadata key")) return -1;
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(kn < 127 ? kn : 127), (const char *)k);
        if (u32(c, &type, key)) return -1;
        if (strcmp(key, "general.alignment") == 0) {
            uint64_t a = 0;
            if (type != KV_U32) return fail(c, "general.alignment must be a uint32 (type %u)", type);
            if (skip_value(c, type, 0, key, &a)) return -1;
            if (a == 0 || (a & (a - 1)) || a > 65536) return fail(c, "general.alignment %llu is not a power of two <= 65536", (unsigned long long)a);
            f->alignment = (uint32_t)a;
        } else if (strcmp(key, "general.architecture") == 0 && type == KV_STRING) {
            const uint8_t *s;
            uint64_t n;
            if (str(c, &s, &n, key)) return -1;
            free(f->arch);
            if (!(f->arch = strndup((const char *)s, (size_t)n))) return fail(c, "out of memory");
        } else if (skip_value(c, type, 0, key, NULL)) {
            return -1;
        }
    }
    return 0;
}

static int read_tensor_info(cursor *c, gguf_tensor *t, uint64_t idx) {
    const uint8_t *s;
    uint64_t n;
    char what[64];
    snprintf(what, sizeof what, "tensor %llu name", (unsigned long long)idx);
    if (str(c, &s, &n, what)) return -1;
    if (n == 0 || n > GGUF_MAX_NAME) return fail(c, "tensor %llu: name length %llu not in 1..%d", (unsigned long long)idx, (unsigned long long)n, GGUF_MAX_NAME);
    if (memchr(s, 0, (size_t)n)) return fail(c, "tensor %llu: name contains a NUL byte", (unsigned long long)idx);
    if (!(t->name = strndup((const char *)s, (size_t)n))) return fail(c, "out of memory");
    uint32_t nd, type;
    if (u32(c, &nd, t->name)) return -1;
    if (nd < 1 || nd > GGUF_MAX_DIMS) return fail(c, "tensor '%s': %u dims (1..%d)", t->name, nd, GGUF_MAX_DIMS);
    t->ndim = (int)nd;
    uint64_t numel = 1, ne[GGUF_MAX_DIMS];
    for (uint32_t d = 0; d < nd; d++) {
        if (u64(c, &ne[d], t->name)) return -1;
        if (ne[d] == 0 || ne[d] > (uint64_t)INT64_MAX / numel)
            return fail(c, "tensor '%s': dim %u is %llu (zero, or the element count overflows)", t->name, d, (unsigned long long)ne[d]);
        numel *= ne[d];
        t->shape[nd - 1 - d] = (int64_t)ne[d];
    }
    if (u32(c, &type, t->name) || u64(c, &t->offset, t->name)) return -1;
    if (type >= GGML_TYPE_COUNT || !GGML_TYPES[type].name)
        return fail(c, "tensor '%s': ggml type %u out of range", t->name, type);
    const ggml_type_info *ti = &GGML_TYPES[type];
    if (ne[0] % (uint64_t)ti->block)
        return fail(c, "tensor '%s': inner dim %llu is not a multiple of the %s block (%d)", t->name, (unsigned long long)ne[0], ti->name, ti->block);
    t->ggml_type = type;
    t->dtype = ti->dtype;
    uint64_t blocks = numel / (uint64_t)ti->block;
    if (blocks > UINT64_MAX / (uint64_t)ti->bytes) return fail(c, "tensor '%s': byte size overflows", t->name);
    t->bytes = blocks * (uint64_t)ti->bytes;
    return 0;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const gguf_tensor *)a)->name, ((const gguf_tensor *)b)->name);
}

static int by_offset(const void *a, const void *b) {
    const gguf_tensor *x = *(const gguf_tensor *const *)a, *y = *(const gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int check_layout(cursor *c, gguf_file *f, size_t data_start) {
    size_t data_len = c->len - data_start;
    for (size_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        if (t->offset % f->alignment) return fail(c, "tensor '%s': offset %llu not aligned to %u", t->name, (unsigned long long)t->offset, f->alignment);
        if (t->offset > data_len || t->bytes > data_len - t->offset)
            return fail(c, "tensor '%s': data [%llu, +%llu) runs past the end of the file (data region %zu bytes: truncated?)", t->name,
                        (unsigned long long)t->offset, (unsigned long long)t->bytes, data_len);
        t->data = c->p + data_start + t->offset;
    }
    if (f->n_tensors < 2) return 0;
    gguf_tensor **order = malloc(f->n_tensors * sizeof *order);
    if (!order) return fail(c, "out of memory");
    for (size_t i = 0; i < f->n_tensors; i++) order[i] = &f->tensors[i];
    if (f->n_tensors) qsort(order, f->n_tensors, sizeof *order, by_offset);
    int rc = 0;
    for (size_t i = 1; i < f->n_tensors && !rc; i++)
        if (order[i - 1]->offset + order[i - 1]->bytes > order[i]->offset)
            rc = fail(c, "tensors '%s' and '%s' overlap", order[i - 1]->name, order[i]->name);
    free(order);
    if (rc) return rc;
    if (f->n_tensors) qsort(f->tensors, f->n_tensors, sizeof *f->tensors, by_name);
    for (size_t i = 1; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0) return fail(c, "tensor '%s' appears twice", f->tensors[i].name);
    return 0;
}

static int parse(gguf_file *f, const uint8_t *p, size_t len, char *err, size_t errlen) {
    cursor c = {.p = p, .len = len, .path = f->path, .err = err, .errlen = errlen};
    const uint8_t *magic;
    if (len < 4 || memcmp(p, GGUF_MAGIC, 4) != 0) return fail(&c, "not a GGUF file (bad magic)");
    take(&c, 4, &magic, "magic");
    uint64_t n_tensors, n_kv;
    if (u32(&c, &f->version, "version")) return -1;
    if (f->version != 2 && f->version != 3)
        return fail(&c, "GGUF version %u is not supported (2 or 3; version 1 files predate 64-bit counts: re-convert)", f->version);
    if (u64(&c, &n_tensors, "tensor count") || u64(&c, &n_kv, "metadata count")) return -1;
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (read_metadata(&c, f, n_kv)) return -1;
    /* A tensor info takes at least 8 + 1 + 4 + 8 + 4 + 8 bytes. */
    if (n_tensors > (c.len - c.pos) / 33)
        return fail(&c, "tensor count %llu exceeds what the file can hold", (unsigned long long)n_tensors);
    f->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *f->tensors);
    if (!f->tensors) return fail(&c, "out of memory");
    for (uint64_t i = 0; i < n_tensors; i++) {
        f->n_tensors = (size_t)i + 1;
        if (read_tensor_info(&c, &f->tensors[i], i)) return -1;
    }
    size_t data_start = (c.pos + f->alignment - 1) / f->alignment * f->alignment;
    if (data_start > len) {
        if (n_tensors) return fail(&c, "file ends before its data region (truncated)");
        data_start = len;
    }
    return check_layout(&c, f, data_start);
}

static gguf_file *new_file(const char *path) {
    gguf_file *f = calloc(1, sizeof *f);
    if (f && !(f->path = strdup(path))) {
        free(f);
        return NULL;
    }
    return f;
}

int gguf_parse(const void *buf, size_t len, gguf_file **out, char *err, size_t errlen) {
    *out = NULL;
    gguf_file *f = new_file("<memory>");
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (parse(f, buf, len, err, errlen)) {
        gguf_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

int gguf_is_gguf(const char *path) {
    char b[4];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, b, 4);
    close(fd);
    return n == 4 && memcmp(b, GGUF_MAGIC, 4) == 0;
}

int gguf_open(const char *path, gguf_file **out, char *err, size_t errlen) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s: cannot open as a regular file", path);
        if (fd >= 0) close(fd);
        return -1;
    }
    gguf_file *f = new_file(path);
    if (!f) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t len = (size_t)sb.st_size;
    void *map = len ? mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (len && map == MAP_FAILED) {
        gguf_close(f);
        snprintf(err, errlen, "%s: mmap failed", path);
        return -1;
    }
    f->map = map;
    f->map_len = len;
    if (parse(f, map, len, err, errlen)) {
        gguf_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    if (f->map) munmap(f->map, f->map_len);
    free(f->arch);
    free(f->path);
    free(f);
}

const gguf_tensor *gguf_find(const gguf_file *f, const char *name) {
    gguf_tensor key = {.name = (char *)name};
    return f->n_tensors ? bsearch(&key, f->tensors, f->n_tensors, sizeof *f->tensors, by_name) : NULL;
}
