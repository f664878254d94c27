/* bpe_vocab.c - a small CLIP-style byte-level BPE vocabulary of our own:
 * the 256 byte tokens (GPT-2's bytes_to_unicode order), their "</w>" forms,
 * a few dozen English merges, then <|startoftext|> and <|endoftext|>, laid
 * out exactly as CLIPTokenizer expects vocab.json and merges.txt. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mkdemo.h"

/* Merges in rank order; each side is a byte token or an earlier result. */
static const char *const merges[] = {
    "t h", "th e</w>", "i n", "in g</w>", "a n", "an d</w>", "e r", "e r</w>", "o n", "o n</w>",
    "r e", "a t", "e n", "e d</w>", "o r", "e s", "s t", "a r", "a l", "o f</w>",
    "i n</w>", "t o</w>", "i s</w>", "re d</w>", "f o", "fo x</w>", "s n", "o w</w>", "sn ow</w>",
    "a t</w>", "c at</w>", "d o", "do g</w>", "l i", "g h", "li gh", "ligh t</w>", "s k", "sk y</w>",
    "b e", "a u", "t i", "f u", "fu l</w>", "be au", "beau ti", "beauti ful</w>", "l a", "n d",
    "s c", "a p", "la nd", "land sc", "landsc ap", "landscap e</w>", "b l", "u r", "r y</w>",
    "bl ur", "blur ry</w>", "p h", "o t", "ph ot", "phot o</w>", "m a", "st er", "ma st", "mast er",
    "p i", "e c", "pi ec", "piec e</w>", "master piec", "masterpiec e</w>",
};
#define N_MERGES (sizeof merges / sizeof merges[0])

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the
 * rest to 256+n, so every token is printable text. order[i] is the byte of
 * vocabulary id i. */
static void byte_order(int order[256], int cp[256]) {
    int k = 0, n = 0, used[256] = {0};
    for (int b = '!'; b <= '~'; b++) order[k++] = b, used[b] = 1;
    for (int b = 0xA1; b <= 0xAC; b++) order[k++] = b, used[b] = 1;
    for (int b = 0xAE; b <= 0xFF; b++) order[k++] = b, used[b] = 1;
    for (int b = 0; b < 256; b++) cp[b] = b;
    for (int b = 0; b < 256; b++)
        if (!used[b]) order[k++] = b, cp[b] = 256 + n++;
}

/* Writes code point c as UTF-8, escaping for JSON. */
static void put_cp(FILE *f, int c) {
    if (c == '"' || c == '\\') fputc('\\', f), fputc(c, f);
    else if (c < 0x80) fputc(c, f);
    else if (c < 0x800) fputc(0xC0 | (c >> 6), f), fputc(0x80 | (c & 0x3F), f);
    else fputc(0xE0 | (c >> 12), f), fputc(0x80 | ((c >> 6) & 0x3F), f), fputc(0x80 | (c & 0x3F), f);
}

int md_vocab_size(void) { return 512 + (int)N_MERGES + 2; }

static void write_merge_token(FILE *f, const char *m) {
    fputc('"', f);
    for (const char *p = m; *p; p++)
        if (*p != ' ') put_cp(f, (unsigned char)*p);
    fputc('"', f);
}

static int write_vocab(const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int order[256], cp[256], id = 0;
    byte_order(order, cp);
    fputc('{', f);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 256; i++) {
            fputs(id ? ",\"" : "\"", f);
            put_cp(f, cp[order[i]]);
            fprintf(f, "%s\":%d", pass ? "</w>" : "", id++);
        }
    for (size_t i = 0; i < N_MERGES; i++) {
        fputc(',', f);
        write_merge_token(f, merges[i]);
        fprintf(f, ":%d", id++);
    }
    fprintf(f, ",\"<|startoftext|>\":%d,\"<|endoftext|>\":%d}", id, id + 1);
    return fclose(f) == 0 ? 0 : -1;
}

static int write_merges(const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs("#version: 0.2\n", f);
    for (size_t i = 0; i < N_MERGES; i++) fprintf(f, "%s\n", merges[i]);
    return fclose(f) == 0 ? 0 : -1;
}

int md_write_tokenizer_vocab(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%.3800s/vocab.json", dir);
    int rc = write_vocab(path);
    snprintf(path, sizeof path, "%.3800s/merges.txt", dir);
    if (!rc) rc = write_merges(path);
    if (rc) fprintf(stderr, "sdrt-mkdemo: cannot write the tokenizer files in %s\n", dir);
    return rc ? -1 : md_vocab_size();
}
