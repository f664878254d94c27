/* json_scan.c - see json_scan.h. A small scanner, not a validator: what it
 * cannot follow reads as "not an object" rather than a guess. */
#include "json_scan.h"

#include <stdio.h>
#include <string.h>

static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

static int hex4(const char *p, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16u;
        if (d == 16) return -1;
        *v = *v * 16 + d;
    }
    return 0;
}

/* Appends code point cp as UTF-8; returns 0, or -1 when out is full. */
static int put_utf8(unsigned cp, char *out, size_t outlen, size_t *n) {
    char b[4];
    size_t k = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (k == 1) b[0] = (char)cp;
    else if (k == 2) b[0] = (char)(0xC0 | cp >> 6);
    else if (k == 3) b[0] = (char)(0xE0 | cp >> 12);
    else b[0] = (char)(0xF0 | cp >> 18);
    for (size_t i = 1; i < k; i++) b[i] = (char)(0x80 | ((cp >> (6 * (k - 1 - i))) & 0x3F));
    if (*n + k >= outlen) return -1;
    memcpy(out + *n, b, k);
    *n += k;
    return 0;
}

/* Reads the \u escape at p (after the backslash-u) including a following
 * low surrogate; returns the code point or -1, advancing *pp. */
static long read_u_escape(const char **pp) {
    unsigned hi, lo;
    const char *p = *pp;
    if (hex4(p, &hi) != 0) return -1;
    p += 4;
    if (hi >= 0xD800 && hi <= 0xDBFF) {
        if (p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) return -1;
        p += 6;
        hi = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
    } else if (hi >= 0xDC00 && hi <= 0xDFFF) {
        return -1;
    }
    *pp = p;
    return (long)hi;
}

/* Decodes the string literal at *pp (on its opening quote) into out, or
 * only skips it when out is NULL. Returns 0, -1 malformed, -2 too long,
 * -3 contains U+0000. */
static int read_string(const char **pp, char *out, size_t outlen) {
    const char *p = *pp + 1;
    size_t n = 0;
    int rc = 0;
    while (*p != '"') {
        long cp;
        int raw = *p != '\\';
        if (*p == '\0' || (unsigned char)*p < 0x20) return -1;
        if (raw) cp = (unsigned char)*p++;
        else if (p[1] == 'u') {
            p += 2;
            if ((cp = read_u_escape(&p)) < 0) return -1;
        } else {
            static const char esc[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
            const char *e = p[1] ? strchr(esc, p[1]) : NULL;
            if (!e || (e - esc) % 2 != 0) return -1;
            cp = (unsigned char)e[1];
            p += 2;
        }
        if (cp == 0) rc = rc ? rc : -3;
        if (!out || rc != 0) continue;
        /* Raw bytes are already UTF-8: copied as they are. */
        if (raw && n + 1 < outlen) out[n++] = (char)cp;
        else if (raw || put_utf8((unsigned)cp, out, outlen, &n) != 0) rc = -2;
    }
    if (out && outlen) out[n < outlen ? n : outlen - 1] = '\0';
    *pp = p + 1;
    return rc;
}

/* Skips any JSON value; returns 0 or -1 when malformed. */
static int skip_value(const char **pp) {
    const char *p = skip_ws(*pp);
    int depth = 0;
    do {
        if (*p == '"') {
            if (read_string(&p, NULL, 0) == -1) return -1;
        } else if (*p == '{' || *p == '[') {
            depth++;
            p++;
        } else if (*p == '}' || *p == ']') {
            if (--depth < 0) return -1;
            p++;
        } else if (*p == '\0') {
            return -1;
        } else if (depth == 0 && (*p == ',')) {
            return -1;
        } else {
            /* numbers, true/false/null, and inside containers ',' ':' */
            const char *start = p;
            while (*p && !strchr("\"{}[]", *p) && (depth > 0 || !strchr(", \t\r\n", *p))) p++;
            if (p == start) return -1;
        }
        p = skip_ws(p);
    } while (depth > 0);
    *pp = p;
    return 0;
}

json_scan_result json_scan_string(const char *json, const char *key, char *out, size_t outlen) {
    const char *p = skip_ws(json);
    if (*p++ != '{') return JSON_SCAN_NOT_OBJECT;
    json_scan_result found = JSON_SCAN_MISSING;
    for (p = skip_ws(p); *p != '}'; p = skip_ws(p)) {
        char name[256];
        if (*p != '"' || read_string(&p, name, sizeof name) != 0) return JSON_SCAN_NOT_OBJECT;
        p = skip_ws(p);
        if (*p++ != ':') return JSON_SCAN_NOT_OBJECT;
        p = skip_ws(p);
        /* The last duplicate wins, as in most JSON libraries. */
        if (strcmp(name, key) == 0 && *p == '"') {
            int rc = read_string(&p, out, outlen);
            if (rc == -1) return JSON_SCAN_NOT_OBJECT;
            found = rc == 0 ? JSON_SCAN_FOUND : rc == -2 ? JSON_SCAN_TOO_LONG : JSON_SCAN_NOT_STRING;
        } else {
            if (strcmp(name, key) == 0) found = JSON_SCAN_NOT_STRING;
            if (skip_value(&p) != 0) return JSON_SCAN_NOT_OBJECT;
        }
        p = skip_ws(p);
        if (*p == ',') p = skip_ws(p + 1);
        else if (*p != '}') return JSON_SCAN_NOT_OBJECT;
    }
    return *skip_ws(p + 1) == '\0' ? found : JSON_SCAN_NOT_OBJECT;
}

size_t json_scan_quote(const char *s, char *out, size_t outlen) {
    size_t n = 0;
#define PUT(c) do { if (n + 1 < outlen) out[n] = (c); n++; } while (0)
    PUT('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            PUT('\\');
            PUT((char)c);
        } else if (c < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", c);
            for (int i = 0; esc[i]; i++) PUT(esc[i]);
        } else {
            PUT((char)c);
        }
    }
    PUT('"');
#undef PUT
    if (outlen) out[n < outlen ? n : outlen - 1] = '\0';
    return n;
}
