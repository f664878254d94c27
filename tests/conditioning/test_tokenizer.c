/* test_tokenizer.c - CLIP BPE ids against transformers' goldens.
 *
 * Goldens: ../shared/reference/tokens.json (20 prompts, transformers 4.38
 * slow CLIPTokenizer with ftfy) and tests/conditioning/goldens.json (more
 * prompts, written by gen_goldens.py). Tolerance: ids identical. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bpe.h"
#include "harness.h"

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    if (buf) buf[n] = 0;
    fclose(f);
    return buf;
}

static bpe_tokenizer *load_dir(const char *dir) {
    char v[1024], m[1024], c[1024], s[1024], err[512];
    snprintf(v, sizeof v, "%s/vocab.json", dir);
    snprintf(m, sizeof m, "%s/merges.txt", dir);
    snprintf(c, sizeof c, "%s/tokenizer_config.json", dir);
    snprintf(s, sizeof s, "%s/special_tokens_map.json", dir);
    bpe_tokenizer *t = bpe_load(v, m, c, s, err, sizeof err);
    if (!t) test_fail_(__FILE__, __LINE__, "load %s: %s", dir, err);
    return t;
}

static int ids_equal(const cJSON *arr, const int32_t *ids, size_t n, const char *prompt, const char *what) {
    size_t k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (k >= n || it->valueint != ids[k]) {
            test_fail_(__FILE__, __LINE__, "%s of \"%.60s\": position %zu: got %d, want %d", what, prompt, k,
                       k < n ? ids[k] : -1, it->valueint);
            return 0;
        }
        k++;
    }
    if (k != n) {
        test_fail_(__FILE__, __LINE__, "%s of \"%.60s\": got %zu ids, want %zu", what, prompt, n, k);
        return 0;
    }
    return 1;
}

/* Checks every case of a goldens file; returns the number of cases. */
static int check_goldens(const char *path, bpe_tokenizer *t1, bpe_tokenizer *t2) {
    char *text = slurp(path);
    if (!text) { test_fail_(__FILE__, __LINE__, "cannot read %s", path); return 0; }
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases"), *c;
    int count = 0;
    cJSON_ArrayForEach(c, cases) {
        const char *prompt = cJSON_GetObjectItemCaseSensitive(c, "prompt")->valuestring;
        int32_t *ids = NULL, framed[77];
        size_t n = 0;
        CHECK(bpe_encode(t1, prompt, strlen(prompt), &ids, &n) == 0, "encode failed");
        int32_t *full = malloc((n + 2) * sizeof *full);
        full[0] = bpe_bos(t1);
        if (n) memcpy(full + 1, ids, n * sizeof *ids);
        full[n + 1] = bpe_eos(t1);
        ids_equal(cJSON_GetObjectItemCaseSensitive(c, "untruncated_ids"), full, n + 2, prompt, "untruncated_ids");
        bpe_frame(t1, ids, n, framed);
        ids_equal(cJSON_GetObjectItemCaseSensitive(c, "input_ids"), framed, 77, prompt, "input_ids");
        free(ids);
        free(full);
        CHECK(bpe_encode(t2, prompt, strlen(prompt), &ids, &n) == 0, "encode failed");
        bpe_frame(t2, ids, n, framed);
        ids_equal(cJSON_GetObjectItemCaseSensitive(c, "input_ids_pad_bang"), framed, 77, prompt,
                  "input_ids_pad_bang");
        free(ids);
        count++;
    }
    cJSON_Delete(root);
    return count;
}

static void test_reference_goldens(void) {
    bpe_tokenizer *t1 = load_dir(test_path("SDRT_REFERENCE", "tokenizer"));
    bpe_tokenizer *t2 = load_dir(test_path("SDRT_REFERENCE", "tokenizer_2"));
    REQUIRE(t1 && t2, "tokenizers did not load");
    CHECK(bpe_bos(t1) == 49406 && bpe_eos(t1) == 49407 && bpe_pad(t1) == 49407, "special ids of tokenizer");
    CHECK(bpe_pad(t2) == 0, "tokenizer_2 pads with '!' (0), got %d", bpe_pad(t2));
    CHECK(bpe_max_length(t1) == 77, "max length %d", bpe_max_length(t1));
    int n = check_goldens(test_path("SDRT_REFERENCE", "tokens.json"), t1, t2);
    CHECK(n == 20, "tokens.json has %d cases", n);
    bpe_free(t1);
    bpe_free(t2);
}

static void test_generated_goldens(void) {
    bpe_tokenizer *t1 = load_dir(test_path("SDRT_REFERENCE", "tokenizer"));
    bpe_tokenizer *t2 = load_dir(test_path("SDRT_REFERENCE", "tokenizer_2"));
    REQUIRE(t1 && t2, "tokenizers did not load");
    int n = check_goldens(test_path("SDRT_SOURCE_DIR", "tests/conditioning/goldens.json"), t1, t2);
    CHECK(n >= 20, "goldens.json has %d cases", n);
    bpe_free(t1);
    bpe_free(t2);
}

/* The cache must not change results: encode the same text twice. */
static void test_cache_consistent(void) {
    bpe_tokenizer *t = load_dir(test_path("SDRT_REFERENCE", "tokenizer"));
    REQUIRE(t, "tokenizer did not load");
    const char *p = "masterpiece masterpiece, masterpieces";
    int32_t *a, *b;
    size_t na, nb;
    REQUIRE(bpe_encode(t, p, strlen(p), &a, &na) == 0 && bpe_encode(t, p, strlen(p), &b, &nb) == 0, "encode");
    CHECK(na == nb && memcmp(a, b, na * sizeof *a) == 0, "second encode differs");
    CHECK(na == 4 && a[0] == a[1], "masterpiece twice: %zu ids", na);
    free(a);
    free(b);
    bpe_free(t);
}

static void expect_error(const char *vocab, const char *merges, const char *config, const char *needle) {
    char err[256] = "";
    bpe_tokenizer *t = bpe_load_mem(vocab, strlen(vocab), merges, strlen(merges), config, NULL, err, sizeof err);
    CHECK(t == NULL, "malformed input accepted (want \"%s\")", needle);
    CHECK(strstr(err, needle) != NULL, "error \"%s\" does not mention \"%s\"", err, needle);
    bpe_free(t);
}

/* A minimal valid vocabulary: the 512 byte symbols plus the specials. */
static char *tiny_vocab(void) {
    static char buf[65536];
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "{");
    for (int b = 0; b < 256; b++) {
        unsigned cp = (unsigned)b;
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        if (!printable) {
            int k = 0;
            for (int c = 0; c < b; c++)
                if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE))) k++;
            cp = 256u + (unsigned)k;
        }
        char u[8];
        int ul;
        if (cp < 0x80) { u[0] = (char)cp; ul = 1; }
        else { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); ul = 2; }
        const char *esc = (cp == '"' || cp == '\\') ? "\\" : "";
        n += (size_t)snprintf(buf + n, sizeof buf - n, "\"%s%.*s\":%d,\"%s%.*s</w>\":%d,", esc, ul, u, b, esc,
                              ul, u, 256 + b);
    }
    n += (size_t)snprintf(buf + n, sizeof buf - n, "\"ab</w>\":512,\"<|startoftext|>\":513,\"<|endoftext|>\":514}");
    return buf;
}

static void test_malformed_files(void) {
    const char *ok_merges = "#version: 0.2\na b</w>\n";
    expect_error("[1,2]", ok_merges, NULL, "vocab.json: not a JSON object");
    expect_error("{\"a\":", ok_merges, NULL, "vocab.json");
    expect_error("{\"a\":\"x\"}", ok_merges, NULL, "id is not a non-negative integer");
    expect_error("{\"a\":-3}", ok_merges, NULL, "\"a\"");
    expect_error("{\"a\":1}", ok_merges, NULL, "byte symbol");
    char *v = tiny_vocab();
    expect_error(v, "#version: 0.2\n", NULL, "merges.txt: no merges");
    expect_error(v, "#version: 0.2\nab\n", NULL, "merges.txt: line 2");
    expect_error(v, "#version: 0.2\na b</w>\nx y z\n", NULL, "merges.txt: line 3");
    expect_error(v, ok_merges, "{\"pad_token\":\"<pad>\"}", "pad_token \"<pad>\" is not in vocab.json");
    expect_error(v, ok_merges, "{\"model_max_length\":1e30}", "model_max_length");
    expect_error(v, ok_merges, "nope", "tokenizer_config.json: not a JSON object");

    char err[256];
    bpe_tokenizer *t = bpe_load_mem(v, strlen(v), ok_merges, strlen(ok_merges), NULL, NULL, err, sizeof err);
    REQUIRE(t, "tiny vocabulary: %s", err);
    int32_t *ids;
    size_t n;
    REQUIRE(bpe_encode(t, "ab a", 4, &ids, &n) == 0, "encode");
    CHECK(n == 2 && ids[0] == 512 && ids[1] == 256 + 'a', "tiny encode: n=%zu", n);
    free(ids);
    bpe_free(t);

    t = bpe_load("/nonexistent/vocab.json", "/nonexistent/merges.txt", NULL, NULL, err, sizeof err);
    CHECK(!t && strstr(err, "cannot open '/nonexistent/vocab.json'"), "missing file: %s", err);
}

/* The CLIP tokenizer shipped with sdrt (plugins/conditioning/clip_bpe,
 * copied beside the plugins by the build) gives transformers' ids in both
 * pad styles: the reference goldens, against the build-tree copy the
 * conditioning plugin falls back to. */
static void test_shipped_tokenizer(void) {
    char d1[4096], d2[4096];
    snprintf(d1, sizeof d1, "%s", test_path("SDRT_BUILD_DIR", "lib/sdrt/plugins/sdrt_conditioning.data/tokenizer"));
    snprintf(d2, sizeof d2, "%s", test_path("SDRT_BUILD_DIR", "lib/sdrt/plugins/sdrt_conditioning.data/tokenizer_2"));
    bpe_tokenizer *t1 = load_dir(d1), *t2 = load_dir(d2);
    REQUIRE(t1 && t2, "shipped tokenizers did not load");
    CHECK(bpe_vocab_size(t1) == 49408 && bpe_pad(t1) == 49407 && bpe_pad(t2) == 0, "vocab %zu, pads %d %d",
          bpe_vocab_size(t1), bpe_pad(t1), bpe_pad(t2));
    int n = check_goldens(test_path("SDRT_REFERENCE", "tokens.json"), t1, t2);
    CHECK(n == 20, "tokens.json has %d cases", n);
    bpe_free(t1);
    bpe_free(t2);
}

static const char *g_scope_root;

static sdrt_error *f_error_new(sdrt_status code, const char *data, const char *fmt, ...) {
    (void)data, (void)fmt;
    sdrt_error *e = calloc(1, sizeof *e);
    e->code = code;
    e->message = "outside";
    return e;
}

static void f_error_free(sdrt_error *e) { free(e); }

/* Like the host's resolve_path: real paths under g_scope_root only. */
static char *f_resolve(sdrt_host *h, const char *kind, const char *path, sdrt_error **err) {
    (void)h, (void)kind;
    char *real = realpath(path, NULL), *root = realpath(g_scope_root, NULL);
    size_t n = root ? strlen(root) : 0;
    int ok = real && root && strncmp(real, root, n) == 0 && (real[n] == '/' || real[n] == 0);
    free(root);
    if (ok) return real;
    free(real);
    *err = f_error_new(SDRT_PERMISSION_DENIED, NULL, "outside");
    return NULL;
}

/* A model's tokenizer/vocab.json that links to /etc/passwd is refused by
 * its real path, naming the file, instead of being opened and parsed. */
static void test_tokenizer_file_linked_out(void) {
    char root[4096], tok[4200], p[4300], err[1024];
    snprintf(root, sizeof root, "%s", test_tmpdir());
    snprintf(tok, sizeof tok, "%s/tokenizer", root);
    REQUIRE(mkdir(tok, 0755) == 0, "mkdir %s", tok);
    snprintf(p, sizeof p, "%s/vocab.json", tok);
    REQUIRE(symlink("/etc/passwd", p) == 0, "symlink %s", p);
    char m[4300];
    snprintf(m, sizeof m, "%s/merges.txt", tok);
    REQUIRE(symlink(test_path("SDRT_REFERENCE", "tokenizer/merges.txt"), m) == 0, "symlink %s", m);
    g_scope_root = root;
    sdrt_host_api api;
    memset(&api, 0, sizeof api);
    api.struct_size = sizeof api;
    api.error_new = f_error_new;
    api.error_free = f_error_free;
    api.resolve_path = f_resolve;
    api.free = free;
    sdrt_file_scope scope = {.api = &api, .kind = "model"};
    sdrt_status st = SDRT_OK;
    bpe_tokenizer *t = bpe_load_scoped(p, m, NULL, NULL, &scope, &st, err, sizeof err);
    CHECK(!t && st == SDRT_PERMISSION_DENIED && strstr(err, "vocab.json") && strstr(err, "/etc/passwd"),
          "status %d: %s", st, err);
    bpe_free(t);
}

const test_entry TESTS[] = {
    {"shipped_tokenizer", test_shipped_tokenizer},
    {"tokenizer_file_linked_out", test_tokenizer_file_linked_out},
    {"reference_goldens", test_reference_goldens},
    {"generated_goldens", test_generated_goldens},
    {"cache_consistent", test_cache_consistent},
    {"malformed_files", test_malformed_files},
    {0},
};
