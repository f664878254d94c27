/* tests/postprocess/test_postprocess.c - PNG output with metadata, unique
 * naming, output-root checks, image input (PNG/JPEG/WebP/data: URIs, bad
 * data), A1111 parameter text, previews. No compute device needed. */
#include <fcntl.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
/* jpeglib.h needs size_t and FILE first */
#include <jpeglib.h>
#include <webp/encode.h>
#include <zlib.h>

#include "fake_host.h"
#include "harness.h"
#include "pp.h"

static pp_plugin g_plugin;

static pp_plugin *plugin(const char *root) {
    memset(&g_plugin, 0, sizeof g_plugin);
    g_plugin.api = fake_host_api();
    pthread_mutex_init(&g_plugin.lock, NULL);
    fake_host_set_output_root(root);
    return &g_plugin;
}

/* A deterministic test image [h,w,3] in [0,1]. */
static float *gradient(int h, int w) {
    float *rgb = malloc(sizeof(float) * h * w * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                rgb[(y * w + x) * 3 + c] = (float)((x * 7 + y * 13 + c * 50) % 256) / 255.f;
    return rgb;
}

typedef struct png_back {
    int w, h, color, depth;
    uint8_t *px;
    char *params, *sdrt;
} png_back;

/* Reads a PNG with plain libpng (independent of the plugin's reader). */
static int read_back(const char *path, png_back *b) {
    memset(b, 0, sizeof *b);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_read_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    b->w = (int)png_get_image_width(png, info);
    b->h = (int)png_get_image_height(png, info);
    b->color = png_get_color_type(png, info);
    b->depth = png_get_bit_depth(png, info);
    png_bytepp rows = png_get_rows(png, info);
    b->px = malloc((size_t)b->w * b->h * 3);
    for (int y = 0; y < b->h; y++) memcpy(b->px + (size_t)y * b->w * 3, rows[y], (size_t)b->w * 3);
    png_textp text;
    int n = 0;
    png_get_text(png, info, &text, &n);
    for (int i = 0; i < n; i++) {
        if (strcmp(text[i].key, "parameters") == 0) b->params = strdup(text[i].text);
        if (strcmp(text[i].key, "sdrt") == 0) b->sdrt = strdup(text[i].text);
    }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return 0;
}

static void free_back(png_back *b) {
    free(b->px), free(b->params), free(b->sdrt);
}

static void test_png_roundtrip(void) {
    const char *root = test_tmpdir();
    pp_plugin *p = plugin(root);
    int h = 24, w = 40;
    float *rgb = gradient(h, w);
    rgb[0] = -0.5f, rgb[1] = 1.7f, rgb[2] = 0.5f / 255.f; /* clamps, and rounding half to even */
    const char *params = "a red fox\nNegative prompt: blurry\nSteps: 8, Sampler: Euler, CFG scale: 7.5, Seed: 42";
    const char *req = "{\"prompt\":\"a red fox\",\"seed\":42}";
    char *path = NULL;
    sdrt_error *e = pp_write_png(p, rgb, h, w, "out", "sdrt-42", params, req, &path);
    REQUIRE(!e, "write_png: %s", e->message);
    char want[4096];
    snprintf(want, sizeof want, "%s/out/sdrt-42-00000.png", root);
    CHECK(strcmp(path, want) == 0, "path %s, want %s", path, want);
    png_back b;
    REQUIRE(read_back(path, &b) == 0, "cannot read back %s", path);
    CHECK(b.w == w && b.h == h && b.color == PNG_COLOR_TYPE_RGB && b.depth == 8, "%dx%d color %d depth %d", b.w,
          b.h, b.color, b.depth);
    int bad = 0;
    for (int i = 0; i < w * h * 3; i++) bad += b.px[i] != pp_to_u8(rgb[i]);
    CHECK(bad == 0, "%d bytes differ", bad);
    CHECK(b.px[0] == 0 && b.px[1] == 255 && b.px[2] == 0, "clamp/round: %d %d %d", b.px[0], b.px[1], b.px[2]);
    CHECK(b.params && strcmp(b.params, params) == 0, "parameters chunk: %s", b.params ? b.params : "(none)");
    CHECK(b.sdrt && strcmp(b.sdrt, req) == 0, "sdrt chunk: %s", b.sdrt ? b.sdrt : "(none)");
    free_back(&b);
    free(path);
    free(rgb);
}

/* Non-Latin-1 text goes in iTXt and comes back as the same UTF-8. */
static void test_png_utf8_text(void) {
    pp_plugin *p = plugin(test_tmpdir());
    float *rgb = gradient(8, 8);
    const char *params = "\xe7\x8b\x90\xe7\x8b\xb8 in snow \xf0\x9f\xa6\x8a\nSteps: 1";
    char *path = NULL;
    sdrt_error *e = pp_write_png(p, rgb, 8, 8, ".", NULL, params, NULL, &path);
    REQUIRE(!e, "write_png: %s", e->message);
    CHECK(strstr(path, "/sdrt-00000.png") != NULL, "default prefix: %s", path);
    png_back b;
    REQUIRE(read_back(path, &b) == 0, "read back");
    CHECK(b.params && strcmp(b.params, params) == 0, "iTXt parameters: %s", b.params ? b.params : "(none)");
    CHECK(b.sdrt == NULL, "no sdrt chunk when request_json is NULL");
    free_back(&b);
    free(path);
    free(rgb);
}

static void test_unique_naming(void) {
    const char *root = test_tmpdir();
    pp_plugin *p = plugin(root);
    float *rgb = gradient(4, 4);
    char *paths[3] = {0};
    for (int i = 0; i < 3; i++) {
        sdrt_error *e = pp_write_png(p, rgb, 4, 4, "o", "img-7", NULL, NULL, &paths[i]);
        REQUIRE(!e, "write %d: %s", i, e->message);
    }
    CHECK(strstr(paths[0], "img-7-00000.png") && strstr(paths[1], "img-7-00001.png") &&
              strstr(paths[2], "img-7-00002.png"),
          "names %s %s %s", paths[0], paths[1], paths[2]);
    /* a file at a higher number moves the counter past it; another prefix
     * sharing a stem does not count */
    char path[4096];
    snprintf(path, sizeof path, "%s/o/img-7-00041.png", root);
    close(open(path, O_CREAT | O_WRONLY, 0644));
    snprintf(path, sizeof path, "%s/o/img-7-x-00090.png", root);
    close(open(path, O_CREAT | O_WRONLY, 0644));
    char *next = NULL;
    sdrt_error *e = pp_write_png(p, rgb, 4, 4, "o", "img-7", NULL, NULL, &next);
    REQUIRE(!e, "write: %s", e->message);
    CHECK(strstr(next, "img-7-00042.png") != NULL, "after 00041: %s", next);
    /* the existing file is never overwritten */
    struct stat st;
    snprintf(path, sizeof path, "%s/o/img-7-00041.png", root);
    CHECK(stat(path, &st) == 0 && st.st_size == 0, "00041 untouched");
    for (int i = 0; i < 3; i++) free(paths[i]);
    free(next);
    free(rgb);
}

static void test_output_checks(void) {
    pp_plugin *p = plugin(test_tmpdir());
    float *rgb = gradient(4, 4);
    char *path = (char *)1;
    sdrt_error *e = pp_write_png(p, rgb, 4, 4, "../../escape", "x", NULL, NULL, &path);
    CHECK(e && e->code == SDRT_PERMISSION_DENIED, "outside the root: %s", e ? e->message : "accepted");
    CHECK(path == NULL, "path_out cleared on failure");
    fake_host_api()->error_free(e);
    e = pp_write_png(p, rgb, 4, 4, "/etc", "x", NULL, NULL, NULL);
    CHECK(e && e->code == SDRT_PERMISSION_DENIED, "absolute outside: %s", e ? e->message : "accepted");
    fake_host_api()->error_free(e);
    e = pp_write_png(p, rgb, 4, 4, "o", "../x", NULL, NULL, NULL);
    CHECK(e && e->code == SDRT_INVALID_ARGUMENT && strstr(e->message, "prefix"), "bad prefix: %s",
          e ? e->message : "accepted");
    fake_host_api()->error_free(e);
    e = pp_write_png(p, rgb, 0, 4, "o", "x", NULL, NULL, NULL);
    CHECK(e && e->code == SDRT_INVALID_ARGUMENT, "empty image accepted");
    fake_host_api()->error_free(e);
    free(rgb);
}

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*len);
    if (fread(b, 1, *len, f) != *len) *len = 0;
    fclose(f);
    return b;
}

static void test_read_png_and_data_uri(void) {
    const char *root = test_tmpdir();
    pp_plugin *p = plugin(root);
    int h = 16, w = 24;
    float *rgb = gradient(h, w);
    char *path = NULL;
    sdrt_error *e = pp_write_png(p, rgb, h, w, ".", "in", NULL, NULL, &path);
    REQUIRE(!e, "write: %s", e->message);
    float *back = NULL;
    int bh = 0, bw = 0;
    e = pp_read_image(p, "in-00000.png", &back, &bh, &bw);
    REQUIRE(!e, "read_image: %s", e->message);
    CHECK(bh == h && bw == w, "size %dx%d", bw, bh);
    CHECK(test_max_abs(back, rgb, (size_t)h * w * 3) <= 0.5 / 255 + 1e-6, "pixels differ by %g",
          test_max_abs(back, rgb, (size_t)h * w * 3));
    free(back);
    /* the same bytes as a data: URI */
    size_t len = 0;
    uint8_t *bytes = slurp(path, &len);
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *uri = malloc(len * 2 + 64), *o = uri + sprintf(uri, "data:image/png;base64,");
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)bytes[i] << 16 | (i + 1 < len ? bytes[i + 1] << 8 : 0) | (i + 2 < len ? bytes[i + 2] : 0);
        *o++ = tbl[v >> 18 & 63], *o++ = tbl[v >> 12 & 63];
        *o++ = i + 1 < len ? tbl[v >> 6 & 63] : '=';
        *o++ = i + 2 < len ? tbl[v & 63] : '=';
        if (i % 57 == 54) *o++ = '\n'; /* line-wrapped base64 is accepted */
    }
    *o = '\0';
    e = pp_read_image(p, uri, &back, &bh, &bw);
    REQUIRE(!e, "data URI: %s", e->message);
    CHECK(bh == h && bw == w && test_max_abs(back, rgb, (size_t)h * w * 3) <= 0.5 / 255 + 1e-6, "data URI pixels");
    free(back);
    /* outside the roots */
    e = pp_read_image(p, "/etc/passwd", &back, &bh, &bw);
    CHECK(e && e->code == SDRT_PERMISSION_DENIED, "outside root: %s", e ? e->message : "accepted");
    fake_host_api()->error_free(e);
    e = pp_read_image(p, "missing.png", &back, &bh, &bw);
    CHECK(e && e->code == SDRT_NOT_FOUND, "missing file: %s", e ? e->message : "accepted");
    fake_host_api()->error_free(e);
    free(uri), free(bytes), free(path), free(rgb);
}

/* init_image / mask_image files: a FIFO in the root is refused at once (it
 * used to block the worker in open(2) forever), and a symlink in the root
 * leading outside it is refused by the real path, not read. */
static void test_image_inputs_confined(void) {
    const char *root = test_tmpdir();
    pp_plugin *p = plugin(root);
    char path[4300];
    snprintf(path, sizeof path, "%s/pipe.png", root);
    REQUIRE(mkfifo(path, 0600) == 0, "mkfifo %s", path);
    snprintf(path, sizeof path, "%s/link.png", root);
    REQUIRE(symlink("/etc/passwd", path) == 0, "symlink %s", path);
    float *back = NULL;
    int bh = 0, bw = 0;
    alarm(20); /* a blocking open would hang here */
    sdrt_error *e = pp_read_image(p, "pipe.png", &back, &bh, &bw);
    CHECK(e && e->code == SDRT_INVALID_ARGUMENT && strstr(e->message, "FIFO"), "FIFO: %s", e ? e->message : "read");
    fake_host_api()->error_free(e);
    alarm(0);
    e = pp_read_image(p, "link.png", &back, &bh, &bw);
    CHECK(e && e->code == SDRT_PERMISSION_DENIED && strstr(e->message, "/etc/passwd"), "link out: %s",
          e ? e->message : "read");
    fake_host_api()->error_free(e);
    free(back);
}

static uint8_t *jpeg_encode(const uint8_t *px, int w, int h, unsigned long *len) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    unsigned char *out = NULL;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, len);
    c.image_width = (JDIMENSION)w, c.image_height = (JDIMENSION)h, c.input_components = 3, c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 100, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)c.next_scanline * w * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return out;
}

static void test_read_jpeg_webp(void) {
    int h = 32, w = 48;
    float *rgb = malloc(sizeof(float) * h * w * 3); /* smooth: JPEG's chroma subsampling keeps it */
    for (int i = 0; i < h * w; i++)
        for (int c = 0; c < 3; c++) rgb[i * 3 + c] = (float)((i % w) * 3 + (i / w) * 2 + c * 20) / 255.f;
    uint8_t *px = malloc((size_t)h * w * 3);
    pp_rgb_to_u8(rgb, (size_t)h * w * 3, px);
    unsigned long jlen = 0;
    uint8_t *jpg = jpeg_encode(px, w, h, &jlen);
    pp_image img;
    char err[256];
    sdrt_status st = pp_image_decode(jpg, jlen, &img, err, sizeof err);
    REQUIRE(st == SDRT_OK, "jpeg: %s", err);
    double mae = 0;
    for (int i = 0; i < w * h * 3; i++) mae += abs(img.rgb[i] - px[i]);
    mae /= w * h * 3;
    CHECK(img.w == w && img.h == h && mae < 3, "jpeg %dx%d mean abs %.2f", img.w, img.h, mae);
    free(img.rgb);
    /* truncated JPEG: refused, not silently gray-filled */
    st = pp_image_decode(jpg, jlen / 2, &img, err, sizeof err);
    CHECK(st == SDRT_INVALID_ARGUMENT && img.rgb == NULL, "truncated jpeg: status %d (%s)", st, err);
    free(jpg);
    uint8_t *webp = NULL;
    size_t wlen = WebPEncodeLosslessRGB(px, w, h, w * 3, &webp);
    REQUIRE(wlen > 0, "webp encode");
    st = pp_image_decode(webp, wlen, &img, err, sizeof err);
    REQUIRE(st == SDRT_OK, "webp: %s", err);
    CHECK(img.w == w && img.h == h && memcmp(img.rgb, px, (size_t)w * h * 3) == 0, "webp lossless pixels");
    free(img.rgb);
    st = pp_image_decode(webp, wlen - 10, &img, err, sizeof err);
    CHECK(st != SDRT_OK, "truncated webp accepted");
    WebPFree(webp);
    free(px), free(rgb);
}

static void test_bad_images(void) {
    pp_image img;
    char err[256];
    static const uint8_t garbage[64] = "this is not an image at all, just some text bytes...";
    CHECK(pp_image_decode(garbage, sizeof garbage, &img, err, sizeof err) == SDRT_INVALID_ARGUMENT &&
              strstr(err, "unknown format"),
          "garbage: %s", err);
    CHECK(pp_image_decode(garbage, 3, &img, err, sizeof err) == SDRT_INVALID_ARGUMENT, "too short");
    static const uint8_t gif[16] = "GIF89a\x01\x00\x01\x00\x00\x00\x00\x00\x00";
    CHECK(pp_image_decode(gif, sizeof gif, &img, err, sizeof err) == SDRT_UNSUPPORTED && strstr(err, "GIF"), "gif: %s",
          err);
    /* a valid PNG header claiming 100000 x 8 pixels: refused by the bound
     * before any allocation (IHDR CRC computed below) */
    uint8_t png[45] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                       0, 1, 0x86, 0xA0, 0, 0, 0, 8, 8, 2, 0, 0, 0, 0, 0, 0, 0,
                       0, 0, 0, 0, 'I', 'D', 'A', 'T'}; /* then an empty IDAT */
    uint32_t crc = (uint32_t)crc32(0, png + 12, 17);
    png[29] = (uint8_t)(crc >> 24), png[30] = (uint8_t)(crc >> 16), png[31] = (uint8_t)(crc >> 8), png[32] = (uint8_t)crc;
    crc = (uint32_t)crc32(0, png + 37, 4);
    png[41] = (uint8_t)(crc >> 24), png[42] = (uint8_t)(crc >> 16), png[43] = (uint8_t)(crc >> 8), png[44] = (uint8_t)crc;
    sdrt_status st = pp_image_decode(png, sizeof png, &img, err, sizeof err);
    CHECK(st == SDRT_INVALID_ARGUMENT && strstr(err, "exceeds"), "huge png: %d %s", st, err);
    /* data URIs */
    CHECK(pp_image_read_data_uri("data:image/png,abc", &img, err, sizeof err) == SDRT_INVALID_ARGUMENT &&
              strstr(err, "base64"),
          "non-base64 URI: %s", err);
    CHECK(pp_image_read_data_uri("data:image/png;base64,iVBO*Rw0", &img, err, sizeof err) == SDRT_INVALID_ARGUMENT &&
              strstr(err, "invalid character"),
          "bad base64: %s", err);
    CHECK(pp_image_read_data_uri("data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==", &img, err, sizeof err) ==
              SDRT_INVALID_ARGUMENT,
          "truncated png in URI: %s", err);
}

static void test_a1111_parameters(void) {
    char err[256];
    char *t = pp_format_parameters(
        "{\"prompt\":\"A beautiful landscape, masterpiece\",\"negative_prompt\":\"blurry\","
        "\"num_inference_steps\":30,\"guidance_scale\":7.5,\"scheduler\":\"DPMSolverMultistepScheduler\","
        "\"scheduler_config\":{\"use_karras_sigmas\":true},\"width\":1024,\"height\":1024,"
        "\"model_id\":\"/models/sd_xl_base_1.0.safetensors\"}",
        42, err, sizeof err);
    REQUIRE(t, "format: %s", err);
    const char *want = "A beautiful landscape, masterpiece\nNegative prompt: blurry\n"
                       "Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 42, "
                       "Size: 1024x1024, Model: sd_xl_base_1.0, Version: sdrt";
    CHECK(strcmp(t, want) == 0, "got:\n%s\nwant:\n%s", t, want);
    free(t);
    t = pp_format_parameters("{\"prompt\":\"fox\",\"scheduler\":\"Euler a\",\"guidance_scale\":7}", 7, err, sizeof err);
    REQUIRE(t, "format: %s", err);
    CHECK(strcmp(t, "fox\nSteps: 30, Sampler: Euler a, CFG scale: 7, Seed: 7, Version: sdrt") == 0, "got: %s", t);
    free(t);
    t = pp_format_parameters("[1]", 1, err, sizeof err);
    CHECK(!t && strstr(err, "object"), "non-object accepted");
}

static void test_preview(void) {
    pp_plugin *p = plugin(test_tmpdir());
    int h = 8, w = 12;
    float *lat = malloc(sizeof(float) * 4 * h * w);
    for (int i = 0; i < 4 * h * w; i++) lat[i] = (float)((i * 37) % 17) / 8.f - 1.f;
    uint8_t *png = NULL;
    size_t len = 0;
    sdrt_error *e = pp_preview_png(p, lat, 4, h, w, "sdxl", &png, &len);
    REQUIRE(!e, "preview: %s", e->message);
    pp_image img;
    char err[256];
    REQUIRE(pp_image_decode(png, len, &img, err, sizeof err) == SDRT_OK, "decode preview: %s", err);
    CHECK(img.w == w && img.h == h, "preview %dx%d", img.w, img.h);
    /* pixel 0 by hand: SDXL factors and bias */
    float v = 0.1084f + lat[0] * 0.3651f + lat[h * w] * -0.2533f + lat[2 * h * w] * 0.1076f + lat[3 * h * w] * -0.3165f;
    CHECK(img.rgb[0] == pp_to_u8((v + 1) / 2), "pixel 0 red %d want %d", img.rgb[0], pp_to_u8((v + 1) / 2));
    free(img.rgb);
    free(png);
    e = pp_preview_png(p, lat, 4, h, w, "flux", &png, &len);
    CHECK(e && e->code == SDRT_INVALID_ARGUMENT, "unknown arch accepted");
    fake_host_api()->error_free(e);
    free(lat);
}

const test_entry TESTS[] = {
    {"image_inputs_confined", test_image_inputs_confined},
    {"png_roundtrip", test_png_roundtrip},
    {"png_utf8_text", test_png_utf8_text},
    {"unique_naming", test_unique_naming},
    {"output_checks", test_output_checks},
    {"read_png_and_data_uri", test_read_png_and_data_uri},
    {"read_jpeg_webp", test_read_jpeg_webp},
    {"bad_images", test_bad_images},
    {"a1111_parameters", test_a1111_parameters},
    {"preview", test_preview},
    {0},
};
