/* tools/mkckpt - writes a random-weight single-file checkpoint from a key
 * list (name TAB dtype TAB [d0, d1, ...] per line, as in
 * the keys.txt files in ../shared/reference/full), for benchmarks and loader tests.
 *
 *   sdrt-mkckpt KEYS.txt OUT.safetensors [--dtype f16|f32|keep] [--seed N]
 *
 * Float tensors get uniform values in [-0.05, 0.05) from a per-tensor
 * xorshift stream (deterministic for a seed, independent of tensor order
 * cost); integer tensors (position_ids) get 0, 1, 2, ... */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdrt/half.h"

typedef struct key {
    char *name;
    char dtype[8];
    int ndim;
    int64_t shape[8];
    uint64_t numel;
} key;

static size_t dtype_size(const char *d) {
    if (!strcmp(d, "F32") || !strcmp(d, "I32")) return 4;
    if (!strcmp(d, "F16") || !strcmp(d, "BF16")) return 2;
    if (!strcmp(d, "I64") || !strcmp(d, "F64")) return 8;
    return 1;
}

static int parse_line(char *line, key *k, const char *force) {
    char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
    if (!t2) return -1;
    *t1 = *t2 = 0;
    k->name = strdup(line);
    snprintf(k->dtype, sizeof k->dtype, "%s", t1 + 1);
    int is_float = k->dtype[0] == 'F' || k->dtype[0] == 'B';
    if (force && is_float) snprintf(k->dtype, sizeof k->dtype, "%s", force);
    k->ndim = 0;
    k->numel = 1;
    for (char *p = strchr(t2 + 1, '['); p && *p && *p != ']' && k->ndim < 8;) {
        p++;
        while (*p == ' ') p++;
        if (*p < '0' || *p > '9') break;
        k->shape[k->ndim] = strtoll(p, &p, 10);
        k->numel *= (uint64_t)k->shape[k->ndim++];
    }
    return 0;
}

static uint64_t xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static int write_tensor(FILE *f, const key *k, uint64_t seed, uint8_t *buf, size_t cap) {
    size_t es = dtype_size(k->dtype), per = cap / es, fill = 0;
    uint64_t s = seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(strlen(k->name) + k->numel)) ^ (uint64_t)k->name[0];
    if (!s) s = 1;
    for (uint64_t i = 0; i < k->numel; i++) {
        uint8_t *e = buf + fill * es;
        float v = (float)((xorshift(&s) >> 40) * (1.0 / 16777216.0) * 0.1 - 0.05);
        if (!strcmp(k->dtype, "F32")) memcpy(e, &v, 4);
        else if (!strcmp(k->dtype, "F16")) { uint16_t h = sdrt_f32_to_f16(v); memcpy(e, &h, 2); }
        else if (!strcmp(k->dtype, "BF16")) { uint16_t h = sdrt_f32_to_bf16(v); memcpy(e, &h, 2); }
        else if (!strcmp(k->dtype, "I64")) { int64_t x = (int64_t)i; memcpy(e, &x, 8); }
        else memset(e, 0, es);
        if (++fill == per) {
            if (fwrite(buf, es, fill, f) != fill) return -1;
            fill = 0;
        }
    }
    return fill && fwrite(buf, es, fill, f) != fill ? -1 : 0;
}

static char *build_header(const key *keys, size_t n, size_t *len) {
    size_t cap = 256 + n * 256, off = 0;
    char *h = malloc(cap);
    int k = snprintf(h, cap, "{\"__metadata__\":{\"format\":\"pt\",\"generator\":\"sdrt-mkckpt\"}");
    uint64_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t bytes = keys[i].numel * dtype_size(keys[i].dtype);
        k += snprintf(h + k, cap - (size_t)k, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", keys[i].name, keys[i].dtype);
        for (int d = 0; d < keys[i].ndim; d++)
            k += snprintf(h + k, cap - (size_t)k, "%s%" PRId64, d ? "," : "", keys[i].shape[d]);
        k += snprintf(h + k, cap - (size_t)k, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", pos, pos + bytes);
        pos += bytes;
    }
    k += snprintf(h + k, cap - (size_t)k, "}");
    off = (size_t)k;
    while (off % 8) h[off++] = ' '; /* data starts 8-byte aligned */
    *len = off;
    return h;
}

int main(int argc, char **argv) {
    const char *force = "F16";
    uint64_t seed = 1;
    if (argc < 3) {
        fprintf(stderr, "usage: %s KEYS.txt OUT.safetensors [--dtype f16|f32|keep] [--seed N]\n", argv[0]);
        return 2;
    }
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dtype")) force = !strcmp(argv[i + 1], "f32") ? "F32" : !strcmp(argv[i + 1], "keep") ? NULL : "F16";
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
    }
    FILE *in = fopen(argv[1], "r");
    if (!in) { perror(argv[1]); return 1; }
    key *keys = NULL;
    size_t n = 0, cap = 0;
    char line[2048];
    while (fgets(line, sizeof line, in)) {
        line[strcspn(line, "\n")] = 0;
        if (n == cap) keys = realloc(keys, (cap = cap ? cap * 2 : 1024) * sizeof *keys);
        if (parse_line(line, &keys[n], force) == 0) n++;
    }
    fclose(in);
    size_t hlen;
    char *header = build_header(keys, n, &hlen);
    FILE *out = fopen(argv[2], "wb");
    if (!out) { perror(argv[2]); return 1; }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    fwrite(len8, 1, 8, out);
    fwrite(header, 1, hlen, out);
    size_t bufcap = 1 << 22;
    uint8_t *buf = malloc(bufcap);
    for (size_t i = 0; i < n; i++)
        if (write_tensor(out, &keys[i], seed, buf, bufcap) != 0) { perror("write"); return 1; }
    if (fclose(out) != 0) { perror(argv[2]); return 1; }
    fprintf(stderr, "%s: %zu tensors, header %zu bytes\n", argv[2], n, hlen);
    for (size_t i = 0; i < n; i++) free(keys[i].name);
    free(keys);
    free(header);
    free(buf);
    return 0;
}
