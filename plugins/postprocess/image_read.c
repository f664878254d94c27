/* image_read.c - decoding PNG (libpng), JPEG (libjpeg) and WebP (libwebp)
 * from memory into RGB8, with bounded dimensions; the entry point for
 * img2img inputs and the fuzz target. */
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* jpeglib.h needs size_t and FILE declared first */
#include <jpeglib.h>
#include <png.h>
#include <webp/decode.h>

#include "pp.h"

static int check_size(const char *fmt, long w, long h, char *err, size_t errlen) {
    if (w < 1 || h < 1) {
        snprintf(err, errlen, "%s image: empty (%ldx%ld)", fmt, w, h);
        return -1;
    }
    if (w > PP_IMAGE_MAX_SIDE || h > PP_IMAGE_MAX_SIDE || (uint64_t)w * (uint64_t)h > PP_IMAGE_MAX_PIXELS) {
        snprintf(err, errlen, "%s image: %ldx%ld exceeds the limit of %d px per side or %llu pixels", fmt,
                 w, h, PP_IMAGE_MAX_SIDE, (unsigned long long)PP_IMAGE_MAX_PIXELS);
        return -1;
    }
    return 0;
}

static sdrt_status decode_png(const uint8_t *buf, size_t len, pp_image *out, char *err, size_t errlen) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&img, buf, len)) {
        snprintf(err, errlen, "PNG image: %s", img.message);
        png_image_free(&img);
        return SDRT_INVALID_ARGUMENT;
    }
    if (check_size("PNG", (long)img.width, (long)img.height, err, errlen)) {
        png_image_free(&img);
        return SDRT_INVALID_ARGUMENT;
    }
    img.format = PNG_FORMAT_RGB; /* palette, gray, 16-bit and alpha are converted */
    uint8_t *rgb = malloc(PNG_IMAGE_SIZE(img));
    if (!rgb) {
        png_image_free(&img);
        snprintf(err, errlen, "PNG image: out of memory");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    if (!png_image_finish_read(&img, NULL, rgb, 0, NULL)) {
        snprintf(err, errlen, "PNG image: %s", img.message);
        png_image_free(&img);
        free(rgb);
        return SDRT_INVALID_ARGUMENT;
    }
    out->rgb = rgb;
    out->w = (int)img.width;
    out->h = (int)img.height;
    png_image_free(&img);
    return SDRT_OK;
}

typedef struct jpeg_err {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    cinfo->err->format_message(cinfo, e->message);
    longjmp(e->jump, 1);
}

static void jpeg_on_message(j_common_ptr cinfo) { (void)cinfo; /* never print to stdout/stderr */ }

static sdrt_status decode_jpeg(const uint8_t *buf, size_t len, pp_image *out, char *err, size_t errlen) {
    struct jpeg_decompress_struct cinfo;
    jpeg_err je;
    /* volatile: modified between setjmp and a possible longjmp */
    uint8_t *volatile rgb = NULL;
    cinfo.err = jpeg_std_error(&je.mgr);
    je.mgr.error_exit = jpeg_on_error;
    je.mgr.output_message = jpeg_on_message;
    if (setjmp(je.jump)) {
        snprintf(err, errlen, "JPEG image: %s", je.message);
        jpeg_destroy_decompress(&cinfo);
        free(rgb);
        return SDRT_INVALID_ARGUMENT;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    if (check_size("JPEG", (long)cinfo.image_width, (long)cinfo.image_height, err, errlen)) {
        jpeg_destroy_decompress(&cinfo);
        return SDRT_INVALID_ARGUMENT;
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)cinfo.output_width * 3;
    rgb = malloc(stride * cinfo.output_height);
    if (!rgb) {
        jpeg_destroy_decompress(&cinfo);
        snprintf(err, errlen, "JPEG image: out of memory");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = rgb + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    /* libjpeg only warns on truncated or corrupt data and fills the rest
     * with gray; an img2img input like that is refused */
    if (je.mgr.num_warnings > 0) {
        snprintf(err, errlen, "JPEG image: corrupt or truncated data");
        jpeg_destroy_decompress(&cinfo);
        free(rgb);
        return SDRT_INVALID_ARGUMENT;
    }
    out->rgb = rgb;
    out->w = (int)cinfo.output_width;
    out->h = (int)cinfo.output_height;
    jpeg_destroy_decompress(&cinfo);
    return SDRT_OK;
}

static sdrt_status decode_webp(const uint8_t *buf, size_t len, pp_image *out, char *err, size_t errlen) {
    WebPBitstreamFeatures feat;
    VP8StatusCode st = WebPGetFeatures(buf, len, &feat);
    if (st != VP8_STATUS_OK) {
        snprintf(err, errlen, "WebP image: corrupt header (status %d)", (int)st);
        return SDRT_INVALID_ARGUMENT;
    }
    if (feat.has_animation) {
        snprintf(err, errlen, "WebP image: animated WebP is not supported");
        return SDRT_UNSUPPORTED;
    }
    if (check_size("WebP", feat.width, feat.height, err, errlen)) return SDRT_INVALID_ARGUMENT;
    size_t stride = (size_t)feat.width * 3, size = stride * (size_t)feat.height;
    uint8_t *rgb = malloc(size);
    if (!rgb) {
        snprintf(err, errlen, "WebP image: out of memory");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    if (!WebPDecodeRGBInto(buf, len, rgb, size, (int)stride)) {
        free(rgb);
        snprintf(err, errlen, "WebP image: corrupt data");
        return SDRT_INVALID_ARGUMENT;
    }
    out->rgb = rgb;
    out->w = feat.width;
    out->h = feat.height;
    return SDRT_OK;
}

static const char *other_format(const uint8_t *b, size_t len) {
    if (len >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0)) return "GIF";
    if (len >= 2 && b[0] == 'B' && b[1] == 'M') return "BMP";
    if (len >= 4 && (memcmp(b, "II*\0", 4) == 0 || memcmp(b, "MM\0*", 4) == 0)) return "TIFF";
    return NULL;
}

sdrt_status pp_image_decode(const uint8_t *buf, size_t len, pp_image *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (!buf || len < 12) {
        snprintf(err, errlen, "image: %zu bytes is too short to be an image", len);
        return SDRT_INVALID_ARGUMENT;
    }
    if (memcmp(buf, png_sig, 8) == 0) return decode_png(buf, len, out, err, errlen);
    if (buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF) return decode_jpeg(buf, len, out, err, errlen);
    if (memcmp(buf, "RIFF", 4) == 0 && memcmp(buf + 8, "WEBP", 4) == 0)
        return decode_webp(buf, len, out, err, errlen);
    const char *fmt = other_format(buf, len);
    if (fmt) {
        snprintf(err, errlen, "image: %s is not supported (PNG, JPEG or WebP)", fmt);
        return SDRT_UNSUPPORTED;
    }
    snprintf(err, errlen, "image: unknown format (not PNG, JPEG or WebP)");
    return SDRT_INVALID_ARGUMENT;
}

sdrt_status pp_image_read_file(const char *path, const sdrt_file_scope *scope, pp_image *out, char *err,
                               size_t errlen) {
    memset(out, 0, sizeof *out);
    sdrt_status ost;
    FILE *f = sdrt_file_fopen(path, "image", scope, &ost, err, errlen);
    if (!f) return ost;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    sdrt_status st = SDRT_OK;
    for (;;) {
        if (len == cap) {
            if (cap >= PP_IMAGE_MAX_FILE) {
                snprintf(err, errlen, "image %s: larger than %d MiB", path, PP_IMAGE_MAX_FILE >> 20);
                st = SDRT_INVALID_ARGUMENT;
                break;
            }
            cap = cap ? cap * 2 : 65536;
            uint8_t *p = realloc(buf, cap);
            if (!p) {
                snprintf(err, errlen, "image %s: out of memory", path);
                st = SDRT_RESOURCE_EXHAUSTED;
                break;
            }
            buf = p;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    fclose(f);
    if (st == SDRT_OK) {
        char inner[256];
        st = pp_image_decode(buf, len, out, inner, sizeof inner);
        if (st != SDRT_OK) snprintf(err, errlen, "image %s: %s", path, inner);
    }
    free(buf);
    return st;
}

sdrt_status pp_image_read_data_uri(const char *uri, pp_image *out, char *err, size_t errlen) {
    uint8_t *bytes = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    if (pp_data_uri_decode(uri, &bytes, &len, err, errlen)) return SDRT_INVALID_ARGUMENT;
    sdrt_status st = pp_image_decode(bytes, len, out, err, errlen);
    free(bytes);
    return st;
}
