/* normalize.c - the text clean-up CLIPTokenizer applies before BPE.
 *
 * transformers' (slow) CLIPTokenizer with ftfy installed, which produced the
 * reference ids, runs  whitespace_clean(ftfy.fix_text(text)).lower().  We
 * reproduce the parts of ftfy.fix_text (6.1, default config) that change
 * prompt text:
 *   unescape_html ("auto": off from the first line containing '<'),
 *   fix_c1_controls, fix_latin_ligatures, fix_character_width,
 *   uncurl_quotes, fix_line_breaks, remove_terminal_escapes,
 *   remove_control_chars and NFC, repeated until nothing changes (ftfy loops
 *   the same way, so "&amp;lt;" becomes "<"),
 * per line, as ftfy does. Not reproduced: fix_encoding (mojibake repair by
 * heuristics, e.g. "Ã©" -> "é"); such text is tokenized as written.
 * transformers without ftfy uses BasicTokenizer instead, which splits CJK
 * ideographs into single tokens and keeps "&amp;": the reference ids show
 * the ftfy path, so that is the one implemented (docs/prompt-syntax.md).
 */
#include "normalize.h"

#include <stdlib.h>
#include <string.h>

#include "unicode.h"

typedef struct cps {
    uint32_t *v;
    size_t n, cap;
} cps;

static int cps_push(cps *a, uint32_t c) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        uint32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) return -1;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = c;
    return 0;
}

static int cps_push_utf8(cps *a, const char *s) {
    size_t len = strlen(s);
    while (len) {
        uint32_t c;
        size_t k = uni_decode(s, len, &c);
        if (cps_push(a, c)) return -1;
        s += k;
        len -= k;
    }
    return 0;
}

static int cps_from_utf8(cps *a, const char *s, size_t len) {
    while (len) {
        uint32_t c;
        size_t k = uni_decode(s, len, &c);
        if (cps_push(a, c)) return -1;
        s += k;
        len -= k;
    }
    return 0;
}

/* Windows-1252 for 0x80..0x9F; the five undefined bytes map to themselves
 * (ftfy's "sloppy" codec, and html's _invalid_charrefs). */
static const uint16_t CP1252_C1[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
    0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

static int is_alnum_ascii(uint32_t c) {
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

/* Python's html._replace_charref for a numeric reference; NULL-free result
 * appended to out. */
static int push_charref(cps *out, unsigned long long num) {
    if (num == 0) return cps_push(out, 0xFFFD);
    if (num == 0x0D) return cps_push(out, 0x0D);
    if (num >= 0x80 && num <= 0x9F) return cps_push(out, CP1252_C1[num - 0x80]);
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return cps_push(out, 0xFFFD);
    if ((num >= 0x1 && num <= 0x8) || num == 0xB || (num >= 0xE && num <= 0x1F) ||
        (num >= 0x7F && num <= 0x9F) || (num >= 0xFDD0 && num <= 0xFDEF) ||
        (num & 0xFFFE) == 0xFFFE)
        return 0; /* html.unescape drops these */
    return cps_push(out, (uint32_t)num);
}

/* Numeric "&#123;" / "&#x7B;" (body = the chars between "&#" and ";").
 * Returns 1 if replaced, 0 if the reference stays as written. */
static int try_numeric(cps *out, const uint32_t *body, size_t n) {
    int hex = n > 0 && (body[0] | 0x20) == 'x';
    size_t i = hex ? 1 : 0;
    unsigned long long num = 0;
    if (i == n) return 0;
    for (; i < n; i++) {
        uint32_t c = body[i];
        int d;
        if (c >= '0' && c <= '9') d = (int)(c - '0');
        else if (hex && (c | 0x20) >= 'a' && (c | 0x20) <= 'f') d = (int)((c | 0x20) - 'a' + 10);
        else return 0;
        num = num * (hex ? 16 : 10) + (unsigned)d;
        if (num > 0x10FFFFFULL) num = 0x10FFFFFULL; /* saturate: anything above is U+FFFD */
    }
    return push_charref(out, num) ? -1 : 1;
}

/* ftfy.fixes.unescape_html: "&#?[0-9A-Za-z]{1,24};" replaced when it names
 * an HTML5 entity (or an upper-case form ftfy adds) or a numeric reference. */
static int unescape_html(const cps *in, cps *out) {
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->v[i];
        if (c != '&') { if (cps_push(out, c)) return -1; continue; }
        size_t j = i + 1, start;
        if (j < in->n && in->v[j] == '#') j++;
        start = j;
        while (j < in->n && j - start < 25 && is_alnum_ascii(in->v[j])) j++;
        size_t len = j - start;
        if (len < 1 || len > 24 || j >= in->n || in->v[j] != ';') {
            if (cps_push(out, c)) return -1;
            continue;
        }
        char name[32];
        size_t nn = 0;
        for (size_t k = i; k <= j; k++) name[nn++] = (char)in->v[k];
        const char *val = uni_html_entity(name, nn);
        if (val) {
            if (cps_push_utf8(out, val)) return -1;
            i = j;
            continue;
        }
        if (start == i + 2) {
            int r = try_numeric(out, in->v + start, len);
            if (r < 0) return -1;
            if (r) { i = j; continue; }
        }
        if (cps_push(out, c)) return -1;
    }
    return 0;
}

/* The single-character fixers, applied in ftfy's order in one pass each. */
static int map_chars(const cps *in, cps *out, int step) {
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->v[i];
        const char *rep = NULL;
        switch (step) {
        case 0: if (c >= 0x80 && c <= 0x9F) c = CP1252_C1[c - 0x80]; break;
        case 1: rep = uni_map_find(uni_ligature, uni_ligature_len, c); break;
        case 2: if (c == 0x3000 || (c >= 0xFF01 && c <= 0xFFEF))
                    rep = uni_map_find(uni_width, uni_width_len, c);
                break;
        case 3: if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) c = '\'';
                else if (c >= 0x201C && c <= 0x201F) c = '"';
                break;
        default: break;
        }
        if (rep ? cps_push_utf8(out, rep) : cps_push(out, c)) return -1;
    }
    return 0;
}

static int fix_line_breaks(const cps *in, cps *out) {
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->v[i];
        if (c == '\r' && i + 1 < in->n && in->v[i + 1] == '\n') continue;
        if (c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85) c = '\n';
        if (cps_push(out, c)) return -1;
    }
    return 0;
}

/* ANSI "\033[" digits-or-';' letter sequences are removed. */
static int remove_terminal_escapes(const cps *in, cps *out) {
    for (size_t i = 0; i < in->n; i++) {
        if (in->v[i] == 0x1B && i + 1 < in->n && in->v[i + 1] == '[') {
            size_t j = i + 2;
            while (j < in->n && ((in->v[j] >= '0' && in->v[j] <= '9') || in->v[j] == ';')) j++;
            if (j < in->n && (in->v[j] | 0x20) >= 'a' && (in->v[j] | 0x20) <= 'z') {
                i = j;
                continue;
            }
        }
        if (cps_push(out, in->v[i])) return -1;
    }
    return 0;
}

static int is_removed_control(uint32_t c) {
    return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
           (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

static int remove_control_chars(const cps *in, cps *out) {
    for (size_t i = 0; i < in->n; i++)
        if (!is_removed_control(in->v[i]) && cps_push(out, in->v[i])) return -1;
    return 0;
}

static int decompose_into(cps *out, uint32_t c, int depth) {
    uint32_t d[2];
    int k = depth < 8 ? uni_decompose(c, d) : 0;
    if (!k) return cps_push(out, c);
    if (decompose_into(out, d[0], depth + 1)) return -1;
    return k == 2 ? decompose_into(out, d[1], depth + 1) : 0;
}

/* Canonical ordering: stable insertion sort of each run of non-starters. */
static void canonical_order(cps *a) {
    for (size_t i = 1; i < a->n; i++) {
        uint8_t cc = uni_combining_class(a->v[i]);
        if (!cc) continue;
        size_t j = i;
        uint32_t c = a->v[i];
        while (j > 0) {
            uint8_t pc = uni_combining_class(a->v[j - 1]);
            if (pc <= cc) break;
            a->v[j] = a->v[j - 1];
            j--;
        }
        a->v[j] = c;
    }
}

/* Canonical composition (UAX #15): a character combines with the last
 * starter unless blocked by an intervening character of equal or higher
 * class (or any character, when the last one was a starter). */
static void compose(cps *a) {
    if (!a->n) return;
    size_t starter = 0, w = 1;
    int last_cc = uni_combining_class(a->v[0]) ? 256 : 0;
    if (last_cc) starter = (size_t)-1;
    for (size_t i = 1; i < a->n; i++) {
        uint32_t c = a->v[i];
        int cc = uni_combining_class(c);
        if (starter != (size_t)-1) {
            int blocked = (w - 1 != starter) && (last_cc == 0 || last_cc >= cc);
            uint32_t comp = blocked ? 0 : uni_compose(a->v[starter], c);
            if (comp) { a->v[starter] = comp; continue; }
        }
        if (cc == 0) starter = w;
        last_cc = cc;
        a->v[w++] = c;
    }
    a->n = w;
}

static int nfc(const cps *in, cps *out) {
    for (size_t i = 0; i < in->n; i++)
        if (decompose_into(out, in->v[i], 0)) return -1;
    canonical_order(out);
    compose(out);
    return 0;
}

typedef int (*fixer_fn)(const cps *in, cps *out);

static int run_fixer(cps *text, fixer_fn fn, int step) {
    cps out = {0};
    int r = fn ? fn(text, &out) : map_chars(text, &out, step);
    if (r) { free(out.v); return -1; }
    free(text->v);
    *text = out;
    return 0;
}

static int cps_equal(const cps *a, const cps *b) {
    return a->n == b->n && (a->n == 0 || memcmp(a->v, b->v, a->n * sizeof *a->v) == 0);
}

/* ftfy.fix_and_explain on one line: every fixer, until a fixed point. */
static int fix_segment(cps *seg, int html) {
    for (int round = 0; round < 16; round++) {
        cps before = {0};
        if (seg->n) {
            before.v = malloc(seg->n * sizeof *seg->v);
            if (!before.v) return -1;
            memcpy(before.v, seg->v, seg->n * sizeof *seg->v);
            before.n = before.cap = seg->n;
        }
        int r = (html && run_fixer(seg, unescape_html, 0)) ||
                run_fixer(seg, NULL, 0) || run_fixer(seg, NULL, 1) ||
                run_fixer(seg, NULL, 2) || run_fixer(seg, NULL, 3) ||
                run_fixer(seg, fix_line_breaks, 0) ||
                run_fixer(seg, remove_terminal_escapes, 0) ||
                run_fixer(seg, remove_control_chars, 0) || run_fixer(seg, nfc, 0);
        int same = !r && cps_equal(&before, seg);
        free(before.v);
        if (r) return -1;
        if (same) break;
    }
    return 0;
}

static int contains(const uint32_t *v, size_t n, uint32_t c) {
    for (size_t i = 0; i < n; i++)
        if (v[i] == c) return 1;
    return 0;
}

/* ftfy.fix_text: lines (each keeps its '\n') fixed one by one; HTML
 * unescaping stops for good at the first line that contains '<'. */
static int fix_text(const cps *in, cps *out) {
    int html = 1;
    size_t pos = 0;
    while (pos < in->n) {
        size_t end = pos;
        while (end < in->n && in->v[end] != '\n') end++;
        if (end < in->n) end++;
        if (contains(in->v + pos, end - pos, '<')) html = 0;
        cps seg = {0};
        for (size_t i = pos; i < end; i++)
            if (cps_push(&seg, in->v[i])) { free(seg.v); return -1; }
        int r = fix_segment(&seg, html);
        for (size_t i = 0; !r && i < seg.n; i++) r = cps_push(out, seg.v[i]);
        free(seg.v);
        if (r) return -1;
        pos = end;
    }
    return 0;
}

/* whitespace_clean: re.sub(r"\s+", " ", text).strip() */
static void whitespace_clean(cps *a) {
    size_t w = 0;
    int pending = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (uni_is_space(a->v[i])) { pending = w > 0; continue; }
        if (pending) a->v[w++] = ' ';
        pending = 0;
        a->v[w++] = a->v[i];
    }
    a->n = w;
}

/* CPython's Final_Sigma condition for the capital sigma at index i. */
static int final_sigma(const cps *a, size_t i) {
    size_t j = i;
    while (j > 0 && uni_is_case_ignorable(a->v[j - 1])) j--;
    if (j == 0 || !uni_is_cased(a->v[j - 1])) return 0;
    j = i + 1;
    while (j < a->n && uni_is_case_ignorable(a->v[j])) j++;
    return j == a->n || !uni_is_cased(a->v[j]);
}

/* str.lower(): one-to-one mappings, U+0130 and Final_Sigma. */
static int lower(const cps *in, cps *out) {
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->v[i];
        const char *sp = c >= 0x80 ? uni_map_find(uni_lower_special, uni_lower_special_len, c) : NULL;
        int r;
        if (sp) r = cps_push_utf8(out, sp);
        else if (c == 0x03A3) r = cps_push(out, final_sigma(in, i) ? 0x03C2 : 0x03C3);
        else r = cps_push(out, uni_to_lower(c));
        if (r) return -1;
    }
    return 0;
}

static char *to_utf8(const cps *a) {
    char *s = malloc(a->n * 4 + 1);
    if (!s) return NULL;
    size_t n = 0;
    for (size_t i = 0; i < a->n; i++) n += uni_encode(a->v[i], s + n);
    s[n] = 0;
    return s;
}

char *cond_clean_text(const char *text, size_t len) {
    cps in = {0}, fixed = {0}, low = {0};
    char *res = NULL;
    if (cps_from_utf8(&in, text, len) || fix_text(&in, &fixed)) goto done;
    whitespace_clean(&fixed);
    if (lower(&fixed, &low)) goto done;
    res = to_utf8(&low);
done:
    free(in.v);
    free(fixed.v);
    free(low.v);
    return res;
}
