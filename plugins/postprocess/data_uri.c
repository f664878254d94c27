/* data_uri.c - RFC 2397 data: URIs with base64 payloads (images sent inline
 * in a request). Accepts the standard and the URL-safe alphabet, optional
 * padding, and whitespace (line-wrapped base64). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pp.h"

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

static int is_space(unsigned char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

int pp_base64_decode(const char *s, size_t n, uint8_t **out, size_t *out_len, char *err, size_t errlen) {
    uint8_t *buf = malloc(n / 4 * 3 + 3);
    if (!buf) {
        snprintf(err, errlen, "base64: out of memory");
        return -1;
    }
    size_t len = 0, i = 0;
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_space(c)) continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || pad) {
            free(buf);
            snprintf(err, errlen, "base64: invalid character at offset %zu", i);
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[len++] = (uint8_t)(acc >> bits);
        }
    }
    if (bits >= 6 || pad > 2) {
        free(buf);
        snprintf(err, errlen, "base64: truncated input");
        return -1;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

int pp_data_uri_decode(const char *uri, uint8_t **out, size_t *out_len, char *err, size_t errlen) {
    if (strncasecmp(uri, "data:", 5) != 0) {
        snprintf(err, errlen, "data URI: does not start with data:");
        return -1;
    }
    const char *comma = strchr(uri + 5, ',');
    if (!comma) {
        snprintf(err, errlen, "data URI: no ',' before the payload");
        return -1;
    }
    size_t meta_len = (size_t)(comma - (uri + 5));
    if (meta_len < 7 || strncasecmp(comma - 7, ";base64", 7) != 0) {
        snprintf(err, errlen, "data URI: only ;base64 payloads are supported");
        return -1;
    }
    size_t n = strlen(comma + 1);
    if (n > (size_t)PP_IMAGE_MAX_FILE / 3 * 4 + 4) {
        snprintf(err, errlen, "data URI: payload larger than %d MiB", PP_IMAGE_MAX_FILE >> 20);
        return -1;
    }
    return pp_base64_decode(comma + 1, n, out, out_len, err, errlen);
}
