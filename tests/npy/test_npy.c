/* tests/npy - the .npy reader/writer: reference files written by NumPy,
 * round trips, every dtype, and malformed headers (errors, not crashes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "sdrt/npy.h"

/* A .npy image in memory: version 1.0 preamble + header text + payload. */
static size_t make_npy(uint8_t *out, const char *header, const void *payload, size_t plen) {
    size_t hlen = strlen(header);
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (uint8_t)(hlen & 0xff);
    out[9] = (uint8_t)(hlen >> 8);
    memcpy(out + 10, header, hlen);
    if (plen) memcpy(out + 10 + hlen, payload, plen);
    return 10 + hlen + plen;
}

static int parse(const uint8_t *buf, size_t len, float **data, int64_t *shape, int *ndim, char *err) {
    return sdrt_npy_parse_f32(buf, len, data, shape, ndim, err, 256);
}

static void test_reference_files(void) {
    static const struct { const char *rel; int ndim; int64_t d0, dl; } files[] = {
        {"tiny-sd15/t2i/euler_64x64.latents.npy", 4, 1, 8},
        {"tiny-sd15/t2i/euler_64x64.image.npy", 4, 1, 3},
        {"tiny-sd15/t2i/euler_64x64.intermediates/input_ids.npy", 2, 2, 77}, /* int64 */
        {"rng/randn_seed0_7.npy", 1, 7, 7},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        float *d;
        int64_t shape[SDRT_NPY_MAX_DIMS];
        int ndim;
        char err[256];
        int rc = sdrt_npy_read_f32(test_path("SDRT_REFERENCE", files[i].rel), &d, shape, &ndim, err, sizeof err);
        CHECK(rc == 0, "%s", err);
        if (rc) continue;
        CHECK(ndim == files[i].ndim && shape[0] == files[i].d0 && shape[ndim - 1] == files[i].dl,
              "%s: ndim %d shape[0] %lld", files[i].rel, ndim, (long long)shape[0]);
        free(d);
    }
    /* int64 token ids: the CLIP start token is 49406. */
    float *ids;
    int64_t shape[SDRT_NPY_MAX_DIMS];
    int ndim;
    char err[256];
    if (sdrt_npy_read_f32(test_path("SDRT_REFERENCE", "tiny-sd15/t2i/euler_64x64.intermediates/input_ids.npy"), &ids,
                          shape, &ndim, err, sizeof err) == 0) {
        CHECK(ids[0] == 49406.0f, "first id %g", ids[0]);
        free(ids);
    }
}

static void test_roundtrip(void) {
    const char *dir = test_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/a.npy", dir);
    int64_t shapes[4][4] = {{2, 3, 4, 5}, {7}, {0, 3}, {0}};
    int ndims[4] = {4, 1, 2, 0};
    for (int s = 0; s < 4; s++) {
        size_t n = 1;
        for (int i = 0; i < ndims[s]; i++) n *= (size_t)shapes[s][i];
        float *src = malloc((n ? n : 1) * sizeof *src);
        for (size_t i = 0; i < n; i++) src[i] = (float)i * 0.25f - 3.0f;
        char err[256];
        int rc = sdrt_npy_write_f32(path, src, shapes[s], ndims[s], err, sizeof err);
        CHECK(rc == 0, "write: %s", err);
        float *back;
        int64_t shape[SDRT_NPY_MAX_DIMS];
        int ndim = -1;
        rc = sdrt_npy_read_f32(path, &back, shape, &ndim, err, sizeof err);
        CHECK(rc == 0, "read: %s", err);
        if (rc) { free(src); continue; }
        CHECK(ndim == ndims[s], "ndim %d want %d", ndim, ndims[s]);
        for (int i = 0; i < ndim && i == 0; i++) CHECK(shape[i] == shapes[s][i], "shape[%d]", i);
        CHECK(n == 0 || memcmp(src, back, n * sizeof *src) == 0, "data differs (case %d)", s);
        free(src);
        free(back);
    }
    /* The data offset is 64-byte aligned as NumPy writes it. */
    FILE *f = fopen(path, "rb");
    REQUIRE(f, "reopen");
    uint8_t pre[10];
    CHECK(fread(pre, 1, 10, f) == 10, "short");
    fclose(f);
    CHECK((10 + (pre[8] | pre[9] << 8)) % 64 == 0, "header not aligned");
}

static void test_dtypes(void) {
    uint8_t buf[512];
    float *d;
    int64_t shape[SDRT_NPY_MAX_DIMS];
    int ndim;
    char err[256];
    double f8[2] = {1.5, -2.25};
    size_t n = make_npy(buf, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }\n", f8, sizeof f8);
    REQUIRE(parse(buf, n, &d, shape, &ndim, err) == 0, "%s", err);
    CHECK(d[0] == 1.5f && d[1] == -2.25f, "f8 %g %g", d[0], d[1]);
    free(d);
    uint16_t f2[2] = {0x3c00, 0xc000}; /* 1, -2 */
    n = make_npy(buf, "{\"descr\": \"<f2\", \"fortran_order\": False, \"shape\": (1, 2)}", f2, sizeof f2);
    REQUIRE(parse(buf, n, &d, shape, &ndim, err) == 0, "%s", err);
    CHECK(d[0] == 1.0f && d[1] == -2.0f && ndim == 2, "f2");
    free(d);
    int32_t i4[3] = {-7, 0, 123456};
    n = make_npy(buf, "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", i4, sizeof i4);
    REQUIRE(parse(buf, n, &d, shape, &ndim, err) == 0, "%s", err);
    CHECK(d[0] == -7.0f && d[2] == 123456.0f, "i4");
    free(d);
    uint8_t u1[2] = {255, 1};
    n = make_npy(buf, "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", u1, 2);
    REQUIRE(parse(buf, n, &d, shape, &ndim, err) == 0, "%s", err);
    CHECK(d[0] == 255.0f, "u1");
    free(d);
    n = make_npy(buf, "{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", u1, 2);
    REQUIRE(parse(buf, n, &d, shape, &ndim, err) == 0, "%s", err);
    CHECK(d[0] == 1.0f && d[1] == 1.0f, "b1");
    free(d);
    uint8_t be[4] = {0x3f, 0x80, 0, 0}; /* big-endian 1.0f */
    n = make_npy(buf, "{'descr': '>f4', 'fortran_order': False, 'shape': (), }", be, 4);
    REQUIRE(parse(buf, n, &d, shape, &ndim, err) == 0, "%s", err);
    CHECK(d[0] == 1.0f && ndim == 0, ">f4 scalar %g", d[0]);
    free(d);
}

/* Each malformed input must fail with a message containing `needle`. */
static void expect_fail(const uint8_t *buf, size_t len, const char *needle) {
    float *d = (float *)1;
    int64_t shape[SDRT_NPY_MAX_DIMS];
    int ndim;
    char err[256] = "";
    int rc = parse(buf, len, &d, shape, &ndim, err);
    CHECK(rc == -1, "accepted malformed input (want '%s')", needle);
    CHECK(d == NULL, "data not NULL on failure");
    CHECK(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err, needle);
    if (rc == 0) free(d);
}

static void test_malformed(void) {
    static const struct { const char *header; size_t payload; const char *needle; } cases[] = {
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 4, "data is 4 bytes"},
        {"{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16, "unsupported dtype"},
        {"{'descr': '|f4', 'fortran_order': False, 'shape': (2,), }", 16, "unsupported dtype"},
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", 8, "fortran_order"},
        {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }", 8, "True or False"},
        {"{'descr': '<f4', 'shape': (2,), }", 8, "missing key 'fortran_order'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8, "unexpected or duplicate key 'x'"},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", 8, "duplicate key 'descr'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", 8, "negative dimension"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2 3), }", 8, "malformed"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': [2], }", 8, "not a tuple"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }", 8, "overflows"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 8, "non-integer"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 8, "more than 8"},
        {"['descr', '<f4']", 8, "not a dict"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", 8, "expected ','"},
        {"{'descr: '<f4'}", 8, "expected ':'"},
        {"{descr: '<f4'}", 8, "quoted key"},
    };
    uint8_t buf[1024];
    uint8_t zeros[64] = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = make_npy(buf, cases[i].header, zeros, cases[i].payload);
        expect_fail(buf, n, cases[i].needle);
    }
    size_t n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", zeros, 8);
    expect_fail(buf, 5, "bad magic");
    buf[0] = 'X';
    expect_fail(buf, n, "bad magic");
    buf[0] = 0x93;
    buf[6] = 4;
    expect_fail(buf, n, "unsupported .npy version");
    buf[6] = 1;
    buf[8] = 0xff; buf[9] = 0xff;
    expect_fail(buf, n, "header length");
    buf[6] = 2; /* v2 reads a 4-byte length from bytes 8..11 */
    buf[10] = 0xff; buf[11] = 0x7f;
    expect_fail(buf, n, "header length");
    expect_fail((const uint8_t *)"", 0, "bad magic");
}

static void test_missing_file_names_it(void) {
    float *d;
    int64_t shape[SDRT_NPY_MAX_DIMS];
    int ndim;
    char err[256];
    CHECK(sdrt_npy_read_f32("/nonexistent/x.npy", &d, shape, &ndim, err, sizeof err) == -1, "opened?");
    CHECK(strstr(err, "/nonexistent/x.npy") != NULL, "error '%s' does not name the file", err);
    int64_t bad[1] = {-1};
    CHECK(sdrt_npy_write_f32("/tmp/never.npy", NULL, bad, 1, err, sizeof err) == -1, "wrote negative shape");
}

/* Every truncation of a valid file is rejected cleanly. */
static void test_truncations(void) {
    uint8_t buf[512];
    float payload[16] = {0};
    size_t n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), }", payload, sizeof payload);
    for (size_t len = 0; len < n; len++) {
        float *d = NULL;
        int64_t shape[SDRT_NPY_MAX_DIMS];
        int ndim;
        char err[256];
        uint8_t *copy = malloc(len ? len : 1); /* exact size so ASan sees overreads */
        memcpy(copy, buf, len);
        CHECK(parse(copy, len, &d, shape, &ndim, err) == -1, "accepted %zu of %zu bytes", len, n);
        free(copy);
        free(d);
    }
}

/* Latents named by a request (init_image handovers, postprocess.decode)
 * may be a FIFO or a device: refused at once, never a blocked read. */
static void test_special_files_refused(void) {
    char path[4300], err[512];
    snprintf(path, sizeof path, "%s/lat.npy", test_tmpdir());
    REQUIRE(mkfifo(path, 0600) == 0, "mkfifo %s", path);
    float *d = NULL;
    int64_t shape[SDRT_NPY_MAX_DIMS];
    int nd = 0;
    alarm(20);
    CHECK(sdrt_npy_read_f32(path, &d, shape, &nd, err, sizeof err) == -1 && strstr(err, "FIFO") && strstr(err, path),
          "FIFO: %s", err);
    CHECK(sdrt_npy_read_f32("/dev/zero", &d, shape, &nd, err, sizeof err) == -1 && strstr(err, "device"),
          "device: %s", err);
    alarm(0);
    free(d);
}

const test_entry TESTS[] = {
    {"special_files_refused", test_special_files_refused},
    {"reference_files", test_reference_files},
    {"roundtrip", test_roundtrip},
    {"dtypes", test_dtypes},
    {"malformed", test_malformed},
    {"missing_file_names_it", test_missing_file_names_it},
    {"truncations", test_truncations},
    {0},
};
