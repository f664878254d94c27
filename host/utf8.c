/* host/utf8.c - the UTF-8 rules of the protocol text: input lines must be
 * valid UTF-8 (RFC 8259), every output line is made valid, and a NUL inside
 * a JSON string (`\u0000`) survives the round trip through cJSON, whose
 * strings are NUL-terminated.
 *
 * The NUL trick: before parsing, each `\u0000` escape inside a string is
 * replaced by the single byte 0xFF, which never occurs in valid UTF-8 (the
 * line was checked first), so cJSON keeps the whole string and strcmp tells
 * "job\u0000A" from "job\u0000B". On output the writer turns every 0xFF back
 * into `\u0000`; plugin data gets the escape back before the plugin sees it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if invalid:
 * no overlongs, no surrogates, nothing above U+10FFFF. */
static size_t seq_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && s[1] > 0x9F) return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0; /* overlong */
        if (c == 0xF4 && s[1] > 0x8F) return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

size_t utf8_check(const char *text, size_t n) {
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < n) {
        /* ASCII runs, the common case, eight bytes at a time. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ULL) break;
            i += 8;
        }
        if (i >= n) break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = seq_len(s + i, n - i);
        if (!l) return i;
        i += l;
    }
    return n;
}

size_t utf8_chars(const char *text) {
    size_t n = 0;
    for (const unsigned char *s = (const unsigned char *)text; *s; s++)
        if ((*s & 0xC0) != 0x80) n++; /* 0xFF (a NUL) counts as one character */
    return n;
}

/* 1 when `\u0000` occurs in line (memmem is not in every C library). */
static int has_nul_escape(const char *line, size_t len) {
    for (const char *p = line, *end = line + len; (p = memchr(p, '\\', (size_t)(end - p))) != NULL; p++)
        if (end - p >= 6 && memcmp(p + 1, "u0000", 5) == 0) return 1;
    return 0;
}

char *utf8_nul_in(const char *line, size_t len, size_t *out_len) {
    if (!has_nul_escape(line, len)) return NULL;
    char *out = malloc(len + 1);
    if (!out) return NULL;
    size_t o = 0;
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = line[i];
        if (!in_string) {
            if (c == '"') in_string = 1;
            out[o++] = c;
            continue;
        }
        if (c == '"') {
            in_string = 0;
            out[o++] = c;
        } else if (c == '\\' && i + 1 < len) {
            if (i + 5 < len && memcmp(line + i + 1, "u0000", 5) == 0) {
                out[o++] = (char)0xFF;
                i += 5;
            } else {
                out[o++] = c; /* any other escape is copied, its second byte too */
                out[o++] = line[++i];
            }
        } else {
            out[o++] = c;
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

char *utf8_nul_json(const char *json) {
    if (!json || !strchr(json, (char)0xFF)) return NULL;
    size_t n = 0;
    for (const char *p = json; *p; p++) n += *p == (char)0xFF ? 6 : 1;
    char *out = malloc(n + 1), *o = out;
    if (!out) return NULL;
    for (const char *p = json; *p; p++) {
        if (*p == (char)0xFF) {
            memcpy(o, "\\u0000", 6);
            o += 6;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return out;
}

char *utf8_clean_line(const char *line, size_t n, size_t *out_n) {
    size_t bad = utf8_check(line, n);
    if (bad == n) return NULL;
    /* Worst case: every byte becomes a 6-byte escape. */
    char *out = malloc(n * 6 + 1), *o = out;
    if (!out) return NULL;
    const unsigned char *s = (const unsigned char *)line;
    memcpy(o, line, bad);
    o += bad;
    for (size_t i = bad; i < n;) {
        size_t l = s[i] < 0x80 ? 1 : seq_len(s + i, n - i);
        if (l) {
            memcpy(o, s + i, l);
            o += l;
            i += l;
        } else if (s[i] == 0xFF) {
            memcpy(o, "\\u0000", 6); /* a NUL carried through cJSON (see above) */
            o += 6;
            i++;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3); /* U+FFFD REPLACEMENT CHARACTER */
            o += 3;
            i++;
        }
    }
    *o = '\0';
    *out_n = (size_t)(o - out);
    return out;
}

char *utf8_replace_invalid(const char *text) {
    size_t n = strlen(text);
    char *out = malloc(n * 3 + 1), *o = out;
    if (!out) return NULL;
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < n;) {
        size_t l = seq_len(s + i, n - i);
        if (l) {
            memcpy(o, s + i, l);
            o += l;
            i += l;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    *o = '\0';
    return out;
}
