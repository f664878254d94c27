/* tests/model/test_safetensors.c - the safetensors validator, one
 * hand-built malformed file per rule, plus the happy paths. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "safetensors.h"

/* header JSON + `data` bytes of zeros, as one malloc'd image of exact size
 * (so ASan catches any read past it). */
static uint8_t *image(const char *header, size_t data, size_t *len) {
    size_t h = strlen(header);
    *len = 8 + h + data;
    uint8_t *b = calloc(1, *len);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    return b;
}

static void expect(const char *header, size_t data, const char *needle) {
    size_t len;
    uint8_t *b = image(header, data, &len);
    st_file *f = NULL;
    char err[512] = "";
    int rc = st_parse(b, len, &f, err, sizeof err);
    CHECK(rc == -1 && f == NULL, "accepted: %s", header);
    CHECK(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err, needle);
    st_close(f);
    free(b);
}

void test_st_rules(void) {
    expect("[1,2]", 0, "not a JSON object");
    expect("{\"a\":", 0, "not valid JSON");
    expect("{} x", 0, "trailing bytes");
    expect("{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 'a': unknown dtype 'Q4'");
    expect("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "fp8");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "tensor 'a': shape[0] is not");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "shape[0]");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 4, "shape is not an array");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, "overflows");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "max 8");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "past the data region");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8, "span 4 bytes, shape and dtype F32 need 8");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 8, "end 0 < begin 4");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 8, "not [begin, end]");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlaps");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
           "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "tensor 'a' appears twice");
    expect("{\"__metadata__\":{\"format\":1}}", 0, "__metadata__.format is not a string");
    expect("{\"__metadata__\":[]}", 0, "__metadata__ is not an object");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "unknown field 'x'");
    expect("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype missing");
    expect("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "shape missing");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets missing");
    expect("{\"a\":7}", 0, "entry is not an object");
}

void test_st_header_length(void) {
    uint8_t small[4] = {0};
    st_file *f;
    char err[256];
    CHECK(st_parse(small, 4, &f, err, sizeof err) == -1 && strstr(err, "shorter than"), "%s", err);
    size_t len;
    uint8_t *b = image("{}", 0, &len);
    b[0] = 3; /* claims 3 bytes, file has 2 after the length */
    CHECK(st_parse(b, len, &f, err, sizeof err) == -1 && strstr(err, "exceeds the file"), "%s", err);
    b[0] = 0;
    b[4] = 1; /* 2^32: above the 100 MB limit */
    CHECK(st_parse(b, len, &f, err, sizeof err) == -1 && strstr(err, "limit"), "%s", err);
    free(b);
}

void test_st_valid(void) {
    size_t len;
    uint8_t *b = image("{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"w\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[16,28]},"
                       "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,16]},"
                       "\"b\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[0,2]}}   ", 32, &len);
    st_file *f = NULL;
    char err[256];
    REQUIRE(st_parse(b, len, &f, err, sizeof err) == 0, "%s", err);
    CHECK(f->n_tensors == 3, "n %zu", f->n_tensors);
    const st_tensor *w = st_find(f, "w");
    REQUIRE(w, "w missing");
    CHECK(w->dtype == ST_F16 && w->ndim == 2 && w->shape[1] == 3, "w shape");
    CHECK(w->data == b + len - 32 + 16, "w data pointer");
    CHECK(st_find(f, "b")->ndim == 0, "scalar");
    CHECK(f->metadata_json && strstr(f->metadata_json, "\"pt\""), "metadata");
    CHECK(st_find(f, "nope") == NULL, "found nonexistent");
    st_close(f);
    free(b);
}

void test_st_open_file(void) {
    char path[4200], err[512];
    st_file *f;
    CHECK(st_open("/nonexistent/m.safetensors", &f, err, sizeof err) == -1 &&
              strstr(err, "cannot open '/nonexistent/m.safetensors'"), "%s", err);
    snprintf(path, sizeof path, "%s/x.safetensors", test_tmpdir());
    size_t len;
    uint8_t *b = image("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, &len);
    float v[2] = {1.5f, -2.0f};
    memcpy(b + len - 8, v, 8);
    FILE *fp = fopen(path, "wb");
    REQUIRE(fp, "create %s", path);
    fwrite(b, 1, len, fp);
    fclose(fp);
    free(b);
    REQUIRE(st_open(path, &f, err, sizeof err) == 0, "%s", err);
    float got[2];
    memcpy(got, st_find(f, "t")->data, 8);
    CHECK(got[0] == 1.5f && got[1] == -2.0f, "values through the mmap");
    st_close(f);
}

void test_st_index(void) {
    const char *dir = test_tmpdir();
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE *fp = fopen(path, "w");
    REQUIRE(fp, "create");
    fputs("{\"metadata\":{},\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\",\"c\":\"s1.safetensors\"}}", fp);
    fclose(fp);
    char **sh;
    size_t n;
    REQUIRE(st_index_shards(path, NULL, &sh, &n, err, sizeof err) == 0, "%s", err);
    CHECK(n == 2 && !strcmp(sh[0], "s1.safetensors") && !strcmp(sh[1], "s2.safetensors"), "shards");
    for (size_t i = 0; i < n; i++) free(sh[i]);
    free(sh);
    fp = fopen(path, "w");
    fputs("{\"weight_map\":{\"a\":\"../../etc/passwd\"}}", fp);
    fclose(fp);
    CHECK(st_index_shards(path, NULL, &sh, &n, err, sizeof err) == -1 && strstr(err, "weight_map['a']"), "%s", err);
}
