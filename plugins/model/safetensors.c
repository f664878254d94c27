/* plugins/model/safetensors.c - safetensors parsing and validation.
 *
 * The file is untrusted input (downloaded checkpoints, fuzzing), so every
 * number is checked before use and every violation is reported with the
 * tensor and field it concerns. Gaps between tensors are tolerated (some
 * writers align data); overlaps and out-of-range offsets are not. */
#define _GNU_SOURCE
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct { const char *name; size_t size; int sdrt; } DTYPES[ST_DTYPE_COUNT] = {
    [ST_F64] = {"F64", 8, SDRT_DTYPE_F64},   [ST_F32] = {"F32", 4, SDRT_DTYPE_F32},
    [ST_F16] = {"F16", 2, SDRT_DTYPE_F16},   [ST_BF16] = {"BF16", 2, SDRT_DTYPE_BF16},
    [ST_I64] = {"I64", 8, SDRT_DTYPE_I64},   [ST_I32] = {"I32", 4, SDRT_DTYPE_I32},
    [ST_I16] = {"I16", 2, -1},               [ST_I8] = {"I8", 1, -1},
    [ST_U8] = {"U8", 1, SDRT_DTYPE_U8},      [ST_BOOL] = {"BOOL", 1, -1},
};

size_t st_dtype_size(st_dtype d) { return DTYPES[d].size; }
const char *st_dtype_name(st_dtype d) { return DTYPES[d].name; }
int st_to_sdrt_dtype(st_dtype d) { return DTYPES[d].sdrt; }

uint64_t st_tensor_bytes(const st_tensor *t) { return t->end - t->begin; }

static int st_fail(char *err, size_t errlen, const char *path, const char *fmt, ...) {
    if (err && errlen) {
        int k = snprintf(err, errlen, "%s: ", path);
        if (k >= 0 && (size_t)k < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

void st_close(st_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    free(f->metadata_json);
    if (f->map) munmap(f->map, f->map_len);
    free(f->path);
    free(f);
}

static int parse_dtype(const char *s, st_dtype *out) {
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (strcmp(s, DTYPES[i].name) == 0) {
            *out = (st_dtype)i;
            return 0;
        }
    return -1;
}

/* A JSON number that is a non-negative integer exactly representable. */
static int json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d > 9007199254740992.0 || d != (double)(uint64_t)d) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int check_metadata(const cJSON *meta, st_file *f, char *err, size_t errlen) {
    if (!cJSON_IsObject(meta)) return st_fail(err, errlen, f->path, "__metadata__ is not an object");
    for (const cJSON *m = meta->child; m; m = m->next)
        if (!cJSON_IsString(m))
            return st_fail(err, errlen, f->path, "__metadata__.%s is not a string", m->string);
    f->metadata_json = cJSON_PrintUnformatted(meta);
    return f->metadata_json ? 0 : st_fail(err, errlen, f->path, "out of memory");
}

static int parse_shape(const cJSON *shape, st_tensor *t, uint64_t *numel, const char *path, char *err,
                       size_t errlen) {
    if (!cJSON_IsArray(shape)) return st_fail(err, errlen, path, "tensor '%s': shape is not an array", t->name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > ST_MAX_DIMS) return st_fail(err, errlen, path, "tensor '%s': shape has %d dims (max %d)", t->name, nd, ST_MAX_DIMS);
    uint64_t n = 1;
    t->ndim = 0;
    for (const cJSON *d = shape->child; d; d = d->next) {
        uint64_t v;
        if (json_u64(d, &v) != 0)
            return st_fail(err, errlen, path, "tensor '%s': shape[%d] is not a non-negative integer", t->name, t->ndim);
        if (v != 0 && n > UINT64_MAX / 16 / v)
            return st_fail(err, errlen, path, "tensor '%s': element count overflows", t->name);
        n *= v;
        t->shape[t->ndim++] = (int64_t)v;
    }
    *numel = n;
    return 0;
}

static int parse_offsets(const cJSON *off, st_tensor *t, const char *path, char *err, size_t errlen) {
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return st_fail(err, errlen, path, "tensor '%s': data_offsets is not [begin, end]", t->name);
    if (json_u64(off->child, &t->begin) != 0 || json_u64(off->child->next, &t->end) != 0)
        return st_fail(err, errlen, path, "tensor '%s': data_offsets are not non-negative integers", t->name);
    if (t->end < t->begin)
        return st_fail(err, errlen, path, "tensor '%s': data_offsets end %llu < begin %llu", t->name,
                       (unsigned long long)t->end, (unsigned long long)t->begin);
    return 0;
}

static int parse_entry(const cJSON *e, st_tensor *t, const st_file *f, const uint8_t *data, char *err,
                       size_t errlen) {
    t->name = strdup(e->string);
    if (!t->name) return st_fail(err, errlen, f->path, "out of memory");
    if (!cJSON_IsObject(e)) return st_fail(err, errlen, f->path, "tensor '%s': entry is not an object", t->name);
    for (const cJSON *k = e->child; k; k = k->next)
        if (strcmp(k->string, "dtype") && strcmp(k->string, "shape") && strcmp(k->string, "data_offsets"))
            return st_fail(err, errlen, f->path, "tensor '%s': unknown field '%s'", t->name, k->string);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!cJSON_IsString(dt)) return st_fail(err, errlen, f->path, "tensor '%s': dtype missing or not a string", t->name);
    if (parse_dtype(dt->valuestring, &t->dtype) != 0) {
        if (strncmp(dt->valuestring, "F8_", 3) == 0)
            return st_fail(err, errlen, f->path, "tensor '%s': dtype %s (fp8) is not supported", t->name, dt->valuestring);
        return st_fail(err, errlen, f->path, "tensor '%s': unknown dtype '%s'", t->name, dt->valuestring);
    }
    uint64_t numel = 0;
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!shape) return st_fail(err, errlen, f->path, "tensor '%s': shape missing", t->name);
    if (parse_shape(shape, t, &numel, f->path, err, errlen) != 0) return -1;
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!off) return st_fail(err, errlen, f->path, "tensor '%s': data_offsets missing", t->name);
    if (parse_offsets(off, t, f->path, err, errlen) != 0) return -1;
    if (t->end > f->data_len)
        return st_fail(err, errlen, f->path, "tensor '%s': data_offsets end %llu is past the data region (%zu bytes)",
                       t->name, (unsigned long long)t->end, f->data_len);
    uint64_t want = numel * DTYPES[t->dtype].size;
    if (t->end - t->begin != want)
        return st_fail(err, errlen, f->path, "tensor '%s': data_offsets span %llu bytes, shape and dtype %s need %llu",
                       t->name, (unsigned long long)(t->end - t->begin), DTYPES[t->dtype].name,
                       (unsigned long long)want);
    t->data = data + t->begin;
    return 0;
}

static int cmp_by_offset(const void *a, const void *b) {
    const st_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int cmp_by_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* Zero-byte tensors occupy nothing and cannot overlap. */
static int check_overlaps(st_file *f, char *err, size_t errlen) {
    if (f->n_tensors) qsort(f->tensors, f->n_tensors, sizeof *f->tensors, cmp_by_offset);
    const st_tensor *prev = NULL;
    for (size_t i = 0; i < f->n_tensors; i++) {
        const st_tensor *t = &f->tensors[i];
        if (t->begin == t->end) continue;
        if (prev && t->begin < prev->end)
            return st_fail(err, errlen, f->path, "tensor '%s' [%llu,%llu) overlaps tensor '%s' [%llu,%llu)", t->name,
                           (unsigned long long)t->begin, (unsigned long long)t->end, prev->name,
                           (unsigned long long)prev->begin, (unsigned long long)prev->end);
        prev = t;
    }
    return 0;
}

static int check_unique(st_file *f, char *err, size_t errlen) {
    if (f->n_tensors) qsort(f->tensors, f->n_tensors, sizeof *f->tensors, cmp_by_name);
    for (size_t i = 1; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0)
            return st_fail(err, errlen, f->path, "tensor '%s' appears twice in the header", f->tensors[i].name);
    return 0;
}

static int parse_header_json(const cJSON *root, st_file *f, const uint8_t *data, char *err, size_t errlen) {
    if (!cJSON_IsObject(root)) return st_fail(err, errlen, f->path, "header is not a JSON object");
    size_t n = 0;
    for (const cJSON *e = root->child; e; e = e->next) n++;
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    if (!f->tensors) return st_fail(err, errlen, f->path, "out of memory for %zu tensors", n);
    int seen_meta = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (seen_meta++) return st_fail(err, errlen, f->path, "__metadata__ appears twice");
            if (check_metadata(e, f, err, errlen) != 0) return -1;
            continue;
        }
        st_tensor *t = &f->tensors[f->n_tensors++];
        if (parse_entry(e, t, f, data, err, errlen) != 0) return -1;
    }
    if (check_overlaps(f, err, errlen) != 0) return -1;
    return check_unique(f, err, errlen);
}

/* Validates buf[0..len) as a whole safetensors image into f. */
static int parse_image(const uint8_t *buf, size_t len, st_file *f, char *err, size_t errlen) {
    if (len < 8) return st_fail(err, errlen, f->path, "file is %zu bytes, shorter than the 8-byte header length", len);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)buf[i] << (8 * i);
    if (hlen > ST_MAX_HEADER)
        return st_fail(err, errlen, f->path, "header length %llu exceeds the %llu-byte limit", (unsigned long long)hlen,
                       (unsigned long long)ST_MAX_HEADER);
    if (hlen > len - 8)
        return st_fail(err, errlen, f->path, "header length %llu exceeds the file (%zu bytes after the length)",
                       (unsigned long long)hlen, len - 8);
    if (hlen < 2 || buf[8] != '{') return st_fail(err, errlen, f->path, "header is not a JSON object");
    f->data_len = len - 8 - (size_t)hlen;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)buf + 8, (size_t)hlen, &end, 0);
    if (!root) return st_fail(err, errlen, f->path, "header is not valid JSON (near byte %td)",
                              end ? end - (const char *)buf : (ptrdiff_t)8);
    /* Only padding spaces may follow the JSON object inside the header. */
    for (const char *p = end; p && p < (const char *)buf + 8 + hlen; p++)
        if (*p != ' ' && *p != '\0') {
            cJSON_Delete(root);
            return st_fail(err, errlen, f->path, "header has trailing bytes after the JSON object");
        }
    int rc = parse_header_json(root, f, buf + 8 + hlen, err, errlen);
    cJSON_Delete(root);
    return rc;
}

int st_parse(const void *buf, size_t len, st_file **out, char *err, size_t errlen) {
    *out = NULL;
    st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup("<memory>"))) {
        free(f);
        return st_fail(err, errlen, "<memory>", "out of memory");
    }
    if (parse_image(buf, len, f, err, errlen) != 0) {
        st_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

int st_open(const char *path, st_file **out, char *err, size_t errlen) {
    return st_open_scoped(path, NULL, NULL, out, err, errlen) == SDRT_OK ? 0 : -1;
}

sdrt_status st_open_scoped(const char *path, const char *field, const sdrt_file_scope *scope, st_file **out,
                           char *err, size_t errlen) {
    *out = NULL;
    int fd;
    sdrt_status st = sdrt_file_open(path, field, scope, &fd, err, errlen);
    if (st != SDRT_OK) return st;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        st_fail(err, errlen, path, "cannot stat: %s", strerror(errno));
        return SDRT_IO_ERROR;
    }
    st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        close(fd);
        st_fail(err, errlen, path, "out of memory");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    f->map_len = (size_t)sb.st_size;
    if (f->map_len > 0) {
        /* Private read-only mapping: pages load on first touch, so opening
         * costs the header, not the file. */
        void *m = mmap(NULL, f->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            st_close(f);
            st_fail(err, errlen, path, "mmap failed: %s", strerror(errno));
            return SDRT_IO_ERROR;
        }
        f->map = m;
    }
    close(fd);
    if (parse_image(f->map ? f->map : (void *)"", f->map_len, f, err, errlen) != 0) {
        st_close(f);
        return SDRT_INVALID_ARGUMENT;
    }
    *out = f;
    return SDRT_OK;
}

const st_tensor *st_find(const st_file *f, const char *name) {
    size_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->tensors[mid].name, name);
        if (c == 0) return &f->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static char *read_text(const char *path, const sdrt_file_scope *scope, size_t max, char *err, size_t errlen) {
    return sdrt_file_read_all(path, NULL, scope, max, NULL, NULL, err, errlen);
}

static int shard_name_ok(const char *s) {
    return s[0] && !strchr(s, '/') && !strchr(s, '\\') && strcmp(s, ".") && strcmp(s, "..");
}

int st_index_shards(const char *index_path, const sdrt_file_scope *scope, char ***shards, size_t *n, char *err,
                    size_t errlen) {
    *shards = NULL;
    *n = 0;
    char *text = read_text(index_path, scope, 64u << 20, err, errlen);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return st_fail(err, errlen, index_path, root ? "weight_map missing or not an object" : "not valid JSON");
    }
    char **list = NULL;
    size_t count = 0;
    int rc = 0;
    for (const cJSON *e = wm->child; e && rc == 0; e = e->next) {
        if (!cJSON_IsString(e) || !shard_name_ok(e->valuestring)) {
            rc = st_fail(err, errlen, index_path, "weight_map['%s'] is not a plain shard file name", e->string);
            break;
        }
        size_t i = 0;
        while (i < count && strcmp(list[i], e->valuestring)) i++;
        if (i < count) continue;
        char **grown = realloc(list, (count + 1) * sizeof *list);
        if (!grown || !(grown[count] = strdup(e->valuestring))) {
            list = grown ? grown : list;
            rc = st_fail(err, errlen, index_path, "out of memory");
            break;
        }
        list = grown;
        count++;
    }
    cJSON_Delete(root);
    if (rc != 0) {
        for (size_t i = 0; i < count; i++) free(list[i]);
        free(list);
        return -1;
    }
    *shards = list;
    *n = count;
    return 0;
}
