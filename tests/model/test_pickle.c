/* tests/model/test_pickle.c - the restricted pickle reader against files
 * written by torch.save (tests/model/make_pt.py; expected values in
 * data/pt/expected.json as torch printed them), and its refusals. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include "harness.h"
#include "pickle.h"
#include "sdrt/half.h"

static char *data_path(const char *name) {
    static char buf[4200];
    const char *src = getenv("SDRT_SOURCE_DIR");
    snprintf(buf, sizeof buf, "%s/tests/model/data/pt/%s", src ? src : ".", name);
    return buf;
}

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

static double elem(const st_tensor *t, size_t i) {
    const uint8_t *p = t->data + i * st_dtype_size(t->dtype);
    switch (t->dtype) {
    case ST_F32: { float v; memcpy(&v, p, 4); return v; }
    case ST_F64: { double v; memcpy(&v, p, 8); return v; }
    case ST_F16: { uint16_t v; memcpy(&v, p, 2); return sdrt_f16_to_f32(v); }
    case ST_BF16: { uint16_t v; memcpy(&v, p, 2); uint32_t u = (uint32_t)v << 16; float f; memcpy(&f, &u, 4); return f; }
    case ST_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case ST_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    default: return NAN;
    }
}

static const char *dtname(st_dtype d) {
    switch (d) {
    case ST_F32: return "float32";
    case ST_F16: return "float16";
    case ST_BF16: return "bfloat16";
    case ST_F64: return "float64";
    case ST_I64: return "int64";
    default: return "?";
    }
}

void test_pt_against_torch(void) {
    size_t len;
    char *js = (char *)slurp(data_path("expected.json"), &len);
    REQUIRE(js, "expected.json missing (run tests/model/make_pt.py)");
    js[len] = 0;
    cJSON *root = cJSON_Parse(js);
    REQUIRE(root, "expected.json");
    int files = 0, tensors = 0;
    for (cJSON *file = root->child; file; file = file->next) {
        pt_file *f = NULL;
        char err[512];
        REQUIRE(pt_open(data_path(file->string), &f, err, sizeof err) == 0, "%s", err);
        CHECK(f->n_tensors == (size_t)cJSON_GetArraySize(file), "%s: %zu tensors, expected %d", file->string,
              f->n_tensors, cJSON_GetArraySize(file));
        for (cJSON *t = file->child; t; t = t->next) {
            const st_tensor *g = pt_find(f, t->string);
            CHECK(g != NULL, "%s: no tensor '%s'", file->string, t->string);
            if (!g) continue;
            CHECK(!strcmp(dtname(g->dtype), cJSON_GetObjectItem(t, "dtype")->valuestring), "%s dtype %s", t->string,
                  dtname(g->dtype));
            cJSON *shape = cJSON_GetObjectItem(t, "shape"), *vals = cJSON_GetObjectItem(t, "values");
            CHECK(g->ndim == cJSON_GetArraySize(shape), "%s ndim", t->string);
            for (int d = 0; d < g->ndim && d < cJSON_GetArraySize(shape); d++)
                CHECK(g->shape[d] == (int64_t)cJSON_GetArrayItem(shape, d)->valuedouble, "%s shape[%d]", t->string, d);
            size_t n = (size_t)cJSON_GetArraySize(vals);
            CHECK(st_tensor_bytes(g) == n * st_dtype_size(g->dtype), "%s byte size", t->string);
            size_t i = 0;
            for (cJSON *v = vals->child; v && i < n; v = v->next, i++)
                if (elem(g, i) != v->valuedouble) {
                    CHECK(0, "%s[%zu] = %.9g, torch %.9g", t->string, i, elem(g, i), v->valuedouble);
                    break;
                }
            tensors++;
        }
        pt_close(f);
        files++;
    }
    CHECK(files == 3 && tensors == 13, "covered %d files, %d tensors", files, tensors);
    cJSON_Delete(root);
    free(js);
}

void test_pt_refusals(void) {
    pt_file *f = NULL;
    char err[512] = "";
    CHECK(pt_open(data_path("evil.pt"), &f, err, sizeof err) == -1 && f == NULL, "evil.pt accepted");
    CHECK(strstr(err, "refused global 'posix.system'") || strstr(err, "refused global 'nt.system'"), "%s", err);
    CHECK(pt_open(data_path("legacy.pt"), &f, err, sizeof err) == -1 && strstr(err, "legacy torch.save format"), "%s", err);
    CHECK(pt_open(data_path("missing.pt"), &f, err, sizeof err) == -1 && strstr(err, "missing.pt: cannot open"), "%s", err);
    CHECK(pt_parse("hello world, not a zip at all", 29, &f, err, sizeof err) == -1 && strstr(err, "not a zip"), "%s", err);
}

/* Every truncation and a sweep of single-byte corruptions of a real file
 * fail cleanly or parse into tensors inside the buffer (ASan checks the
 * reads); no prefix of the file is accepted. */
void test_pt_corruptions(void) {
    size_t len;
    uint8_t *b = slurp(data_path("state_dict.pt"), &len);
    REQUIRE(b, "state_dict.pt");
    char err[512];
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *c = malloc(cut ? cut : 1);
        memcpy(c, b, cut);
        pt_file *f = NULL;
        int rc = pt_parse(c, cut, &f, err, sizeof err);
        CHECK(rc == -1 && f == NULL, "prefix of %zu bytes accepted", cut);
        pt_close(f);
        free(c);
    }
    uint32_t seed = 12345;
    for (int k = 0; k < 4000; k++) {
        uint8_t *c = malloc(len);
        memcpy(c, b, len);
        seed = seed * 1664525u + 1013904223u;
        c[(seed >> 8) % len] ^= (uint8_t)(1u << (seed & 7));
        pt_file *f = NULL;
        if (pt_parse(c, len, &f, err, sizeof err) == 0) {
            for (size_t i = 0; i < f->n_tensors; i++) {
                const st_tensor *t = &f->tensors[i];
                volatile uint8_t last = t->end ? t->data[t->end - 1] : 0;
                (void)last;
            }
            pt_close(f);
        }
        free(c);
    }
    free(b);
}
