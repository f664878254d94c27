/* tests/fuzz/fuzz_image.c - libFuzzer target for the image readers of the
 * postprocess plugin (PNG via libpng, JPEG via libjpeg, WebP via libwebp,
 * base64 data: URIs). Any input must return a status without crashing,
 * leaking or reading past `size`; on success the pixels must be w*h*3 bytes
 * within the documented bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"

static void check(const pp_image *img) {
    if (img->w < 1 || img->h < 1 || img->w > PP_IMAGE_MAX_SIDE || img->h > PP_IMAGE_MAX_SIDE) abort();
    /* touch the last byte so ASan checks the allocation size */
    volatile uint8_t last = img->rgb[(size_t)img->w * img->h * 3 - 1];
    (void)last;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pp_image img;
    char err[256];
    if (size >= 5 && memcmp(data, "data:", 5) == 0) {
        /* the URI reader wants a NUL-terminated string */
        char *uri = malloc(size + 1);
        if (!uri) return 0;
        memcpy(uri, data, size);
        uri[size] = '\0';
        if (pp_image_read_data_uri(uri, &img, err, sizeof err) == SDRT_OK) check(&img), free(img.rgb);
        free(uri);
        return 0;
    }
    if (pp_image_decode(data, size, &img, err, sizeof err) == SDRT_OK) check(&img), free(img.rgb);
    return 0;
}
