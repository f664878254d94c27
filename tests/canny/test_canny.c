/* tests/canny/test_canny.c - sdrt_canny against OpenCV's cv2.Canny
 * (gen_canny.py, opencv-python-headless): RGB and grayscale images, odd
 * sizes, swapped and fractional thresholds, a 3x2 image. Tolerance: no
 * mismatched edge pixel (the algorithm is integer arithmetic throughout). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "sdrt/canny.h"

static uint8_t *slurp(const char *path, size_t want) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *b = malloc(want ? want : 1);
    size_t n = b ? fread(b, 1, want, f) : 0;
    fclose(f);
    if (n != want) {
        free(b);
        return NULL;
    }
    return b;
}

static void test_opencv_goldens(void) {
    FILE *f = fopen(test_path("SDRT_SOURCE_DIR", "tests/canny/data/cases.txt"), "r");
    REQUIRE(f, "tests/canny/data/cases.txt missing");
    char name[64];
    int w, h, c, ncases = 0;
    double lo, hi;
    while (fscanf(f, "%63s %d %d %d %lf %lf", name, &w, &h, &c, &lo, &hi) == 6) {
        char rel[128];
        snprintf(rel, sizeof rel, "tests/canny/data/%s.in", name);
        uint8_t *in = slurp(test_path("SDRT_SOURCE_DIR", rel), (size_t)w * h * c);
        snprintf(rel, sizeof rel, "tests/canny/data/%s.out", name);
        uint8_t *want = slurp(test_path("SDRT_SOURCE_DIR", rel), (size_t)w * h);
        uint8_t *got = malloc((size_t)w * h);
        CHECK(in && want && got, "%s: data missing", name);
        if (in && want && got) {
            CHECK(sdrt_canny(in, w, h, c, lo, hi, got) == 0, "%s: failed", name);
            size_t bad = 0, edges = 0;
            for (size_t i = 0; i < (size_t)w * h; i++) {
                bad += got[i] != want[i];
                edges += want[i] != 0;
            }
            printf("# %s %dx%dx%d (%g, %g): %zu of %zu edge pixels, %zu mismatched\n", name, w, h, c, lo, hi, edges,
                   (size_t)w * h, bad);
            CHECK(bad == 0, "%s: %zu pixels differ from cv2.Canny", name, bad);
        }
        free(in);
        free(want);
        free(got);
        ncases++;
    }
    fclose(f);
    CHECK(ncases >= 5, "only %d cases", ncases);
}

/* A flat image has no edges; a vertical step gives one column of edges
 * (hand-computed: Sobel dx = 4 * 200 on both sides of the step, NMS keeps
 * the left of the two equal maxima). Bad arguments are refused. */
static void test_hand_cases(void) {
    enum { W = 8, H = 6 };
    uint8_t img[H * W], out[H * W];
    memset(img, 77, sizeof img);
    CHECK(sdrt_canny(img, W, H, 1, 10, 20, out) == 0, "flat");
    size_t n = 0;
    for (int i = 0; i < W * H; i++) n += out[i] != 0;
    CHECK(n == 0, "flat image gave %zu edge pixels", n);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) img[y * W + x] = x < 4 ? 0 : 200;
    CHECK(sdrt_canny(img, W, H, 1, 100, 200, out) == 0, "step");
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            CHECK((out[y * W + x] != 0) == (x == 3), "step edge at (%d, %d): %d", x, y, out[y * W + x]);
    CHECK(sdrt_canny(img, 0, H, 1, 1, 2, out) == -1 && sdrt_canny(img, W, H, 5, 1, 2, out) == -1, "bad args");
}

/* Time for a 1024x1024 RGB image (docs/PERFORMANCE.md). */
static void test_timing_1024(void) {
    size_t n = (size_t)1024 * 1024;
    uint8_t *img = malloc(n * 3), *out = malloc(n);
    REQUIRE(img && out, "oom");
    uint64_t s = test_seed();
    for (size_t i = 0; i < n * 3; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        img[i] = (uint8_t)((i / 3 % 1024) / 4 + (s >> 60));
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int r = sdrt_canny(img, 1024, 1024, 3, 100, 200, out);
    clock_gettime(CLOCK_MONOTONIC, &b);
    CHECK(r == 0, "canny 1024");
    printf("# canny 1024x1024 RGB: %.1f ms\n", (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6);
    free(img);
    free(out);
}

const test_entry TESTS[] = {
    {"opencv_goldens", test_opencv_goldens},
    {"hand_cases", test_hand_cases},
    {"timing_1024", test_timing_1024},
    {0},
};
