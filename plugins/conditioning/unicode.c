/* unicode.c - lookups over the generated Unicode tables. */
#include "unicode.h"

#include <string.h>

/* Hangul syllables compose algorithmically (Unicode 3.12), so they are not
 * in the generated decomposition tables. */
enum { H_SBASE = 0xAC00, H_LBASE = 0x1100, H_VBASE = 0x1161, H_TBASE = 0x11A7,
       H_LCOUNT = 19, H_VCOUNT = 21, H_TCOUNT = 28, H_NCOUNT = 588, H_SCOUNT = 11172 };

size_t uni_decode(const char *str, size_t len, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)str;
    size_t n;
    uint32_t c, min;
    if (s[0] < 0x80) { *cp = s[0]; return 1; }
    if ((s[0] & 0xE0) == 0xC0) { n = 2; c = s[0] & 0x1F; min = 0x80; }
    else if ((s[0] & 0xF0) == 0xE0) { n = 3; c = s[0] & 0x0F; min = 0x800; }
    else if ((s[0] & 0xF8) == 0xF0) { n = 4; c = s[0] & 0x07; min = 0x10000; }
    else { *cp = 0xFFFD; return 1; }
    if (len < n) { *cp = 0xFFFD; return 1; }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) { *cp = 0xFFFD; return 1; }
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) { *cp = 0xFFFD; return 1; }
    *cp = c;
    return n;
}

size_t uni_encode(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

int uni_is_letter(uint32_t cp) {
    if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    return in_ranges(uni_letter, uni_letter_len, cp);
}

int uni_is_number(uint32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return in_ranges(uni_number, uni_number_len, cp);
}

int uni_is_space(uint32_t cp) { return in_ranges(uni_space, uni_space_len, cp); }
int uni_is_cased(uint32_t cp) { return in_ranges(uni_cased, uni_cased_len, cp); }
int uni_is_case_ignorable(uint32_t cp) {
    return in_ranges(uni_case_ignorable, uni_case_ignorable_len, cp);
}

int uni_is_word(uint32_t cp) { return cp == '_' || uni_is_letter(cp) || uni_is_number(cp); }

/* Binary search in a table whose rows start with the key code point. */
static long find_row(const uint32_t *rows, size_t n, size_t width, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint32_t k = rows[mid * width];
        if (cp < k) hi = mid;
        else if (cp > k) lo = mid + 1;
        else return (long)mid;
    }
    return -1;
}

uint32_t uni_to_lower(uint32_t cp) {
    if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    long i = find_row(&uni_lower[0][0], uni_lower_len, 2, cp);
    return i < 0 ? cp : uni_lower[i][1];
}

const char *uni_map_find(const uni_str_map *map, size_t len, uint32_t cp) {
    size_t lo = 0, hi = len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < map[mid].cp) hi = mid;
        else if (cp > map[mid].cp) lo = mid + 1;
        else return map[mid].utf8;
    }
    return NULL;
}

uint8_t uni_combining_class(uint32_t cp) {
    if (cp < 0x300) return 0;
    long i = find_row(&uni_ccc[0][0], uni_ccc_len, 2, cp);
    return i < 0 ? 0 : (uint8_t)uni_ccc[i][1];
}

int uni_decompose(uint32_t cp, uint32_t out[2]) {
    if (cp >= H_SBASE && cp < H_SBASE + H_SCOUNT) {
        uint32_t s = cp - H_SBASE, t = s % H_TCOUNT;
        if (t) { out[0] = cp - t; out[1] = H_TBASE + t; }
        else { out[0] = H_LBASE + s / H_NCOUNT; out[1] = H_VBASE + (s % H_NCOUNT) / H_TCOUNT; }
        return 2;
    }
    if (cp < 0xC0) return 0;
    long i = find_row(&uni_decomp[0][0], uni_decomp_len, 3, cp);
    if (i < 0) return 0;
    out[0] = uni_decomp[i][1];
    out[1] = uni_decomp[i][2];
    return out[1] ? 2 : 1;
}

uint32_t uni_compose(uint32_t a, uint32_t b) {
    if (a >= H_LBASE && a < H_LBASE + H_LCOUNT && b >= H_VBASE && b < H_VBASE + H_VCOUNT)
        return H_SBASE + ((a - H_LBASE) * H_VCOUNT + (b - H_VBASE)) * H_TCOUNT;
    if (a >= H_SBASE && a < H_SBASE + H_SCOUNT && (a - H_SBASE) % H_TCOUNT == 0 &&
        b > H_TBASE && b < H_TBASE + H_TCOUNT)
        return a + (b - H_TBASE);
    size_t lo = 0, hi = uni_comp_len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const uint32_t *r = uni_comp[mid];
        if (a < r[0] || (a == r[0] && b < r[1])) hi = mid;
        else if (a > r[0] || b > r[1]) lo = mid + 1;
        else return r[2];
    }
    return 0;
}

static int name_cmp(const char *a, const char *b, size_t bn) {
    int c = strncmp(a, b, bn);
    if (c) return c;
    return a[bn] ? 1 : 0; /* a longer than the key */
}

const char *uni_html_entity(const char *name, size_t n) {
    size_t lo = 0, hi = uni_html_len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = name_cmp(uni_html[mid].name, name, n);
        if (c > 0) hi = mid;
        else if (c < 0) lo = mid + 1;
        else return uni_html[mid].utf8;
    }
    return NULL;
}
