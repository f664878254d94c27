/* test_prompt.c - A1111 prompt syntax: weights, escapes, BREAK, LoRA tags,
 * chunking with comma backtracking. Weights are hand-computed (products of
 * 1.1, 1/1.1 and explicit values, in double as A1111's Python does). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "prompt.h"

static bpe_tokenizer *tok(void) {
    char v[1024], m[1024], c[1024], s[1024], err[512];
    const char *dir = test_path("SDRT_REFERENCE", "tokenizer");
    snprintf(v, sizeof v, "%s/vocab.json", dir);
    snprintf(m, sizeof m, "%s/merges.txt", dir);
    snprintf(c, sizeof c, "%s/tokenizer_config.json", dir);
    snprintf(s, sizeof s, "%s/special_tokens_map.json", dir);
    bpe_tokenizer *t = bpe_load(v, m, c, s, err, sizeof err);
    if (!t) test_fail_(__FILE__, __LINE__, "tokenizer: %s", err);
    return t;
}

typedef struct want_piece {
    const char *text;
    double weight; /* -1: BREAK */
} want_piece;

static void expect_pieces(const char *prompt, const want_piece *want, size_t n) {
    prompt_parsed p;
    char err[256];
    REQUIRE(prompt_parse(prompt, &p, err, sizeof err) == 0, "parse \"%s\": %s", prompt, err);
    CHECK(p.npieces == n, "\"%s\": %zu pieces, want %zu", prompt, p.npieces, n);
    for (size_t i = 0; i < n && i < p.npieces; i++) {
        if (want[i].weight < 0) {
            CHECK(p.pieces[i].is_break, "\"%s\" piece %zu: want BREAK", prompt, i);
            continue;
        }
        CHECK(!p.pieces[i].is_break && strcmp(p.pieces[i].text, want[i].text) == 0,
              "\"%s\" piece %zu: text \"%s\", want \"%s\"", prompt, i, p.pieces[i].text, want[i].text);
        CHECK(fabs(p.pieces[i].weight - want[i].weight) < 1e-12, "\"%s\" piece %zu: weight %.17g, want %.17g",
              prompt, i, p.pieces[i].weight, want[i].weight);
    }
    prompt_free(&p);
}

static void test_emphasis(void) {
    expect_pieces("a (cat) dog", (want_piece[]){{"a ", 1.0}, {"cat", 1.1}, {" dog", 1.0}}, 3);
    expect_pieces("((cat))", (want_piece[]){{"cat", 1.1 * 1.1}}, 1);
    expect_pieces("(cat:1.3)", (want_piece[]){{"cat", 1.3}}, 1);
    expect_pieces("( cat : 0.5 )", (want_piece[]){{" cat ", 0.5}}, 1);
    expect_pieces("[cat]", (want_piece[]){{"cat", 1 / 1.1}}, 1);
    expect_pieces("[[cat]]", (want_piece[]){{"cat", (1 / 1.1) * (1 / 1.1)}}, 1);
    expect_pieces("((a) b:1.5)", (want_piece[]){{"a", 1.1 * 1.5}, {" b", 1.5}}, 2);
    expect_pieces("(cat", (want_piece[]){{"cat", 1.1}}, 1);        /* unclosed: as if closed */
    expect_pieces("cat)", (want_piece[]){{"cat)", 1.0}}, 1);       /* stray closer is text */
    expect_pieces("a:b", (want_piece[]){{"a:b", 1.0}}, 1);
    expect_pieces("x:1.5)", (want_piece[]){{"x:1.5)", 1.0}}, 1);   /* weight without '(' */
    expect_pieces("(red:1.2) fox, [blue] sky",
                  (want_piece[]){{"red", 1.2}, {" fox, ", 1.0}, {"blue", 1 / 1.1}, {" sky", 1.0}}, 4);
    expect_pieces("", (want_piece[]){{"", 1.0}}, 1);
}

static void test_escapes(void) {
    expect_pieces("\\(escaped parens\\) and \\[brackets\\]",
                  (want_piece[]){{"(escaped parens) and [brackets]", 1.0}}, 1);
    expect_pieces("a \\\\ b", (want_piece[]){{"a \\ b", 1.0}}, 1);
    expect_pieces("(a\\)b)", (want_piece[]){{"a)b", 1.1}}, 1);
    expect_pieces("lone\\x", (want_piece[]){{"lonex", 1.0}}, 1); /* A1111 drops a lone backslash */
}

static void test_break(void) {
    expect_pieces("cat BREAK dog", (want_piece[]){{"cat", 1.0}, {"", -1}, {"dog", 1.0}}, 3);
    expect_pieces("catBREAK dog", (want_piece[]){{"catBREAK dog", 1.0}}, 1); /* \b required */
    expect_pieces("(a BREAK b)", (want_piece[]){{"a", 1.1}, {"", -1}, {"b", 1.1}}, 3);
    expect_pieces("cat break dog", (want_piece[]){{"cat break dog", 1.0}}, 1);
}

static void test_lora_tags(void) {
    prompt_parsed p;
    char err[256];
    REQUIRE(prompt_parse("<lora:myLora:0.8> a cat, <lyco:other> <hypernet:h:1>dog", &p, err, sizeof err) == 0,
            "%s", err);
    CHECK(p.nloras == 2, "%zu loras", p.nloras);
    if (p.nloras == 2) {
        CHECK(strcmp(p.loras[0].name, "myLora") == 0 && fabsf(p.loras[0].weight - 0.8f) < 1e-7f, "lora 0");
        CHECK(strcmp(p.loras[1].name, "other") == 0 && p.loras[1].weight == 1.0f, "lora 1 default weight");
    }
    CHECK(strcmp(p.stripped, " a cat,  dog") == 0, "stripped \"%s\"", p.stripped);
    CHECK(prompt_is_plain(&p), "tags removed, no syntax: plain");
    prompt_free(&p);
    CHECK(prompt_parse("<lora:x:abc> cat", &p, err, sizeof err) == -1, "bad weight accepted");
    CHECK(strstr(err, "weight \"abc\" is not a number") != NULL, "error: %s", err);
    REQUIRE(prompt_parse("<|endoftext|> a", &p, err, sizeof err) == 0, "%s", err);
    CHECK(p.nloras == 0 && strcmp(p.stripped, "<|endoftext|> a") == 0, "special token is not a tag");
    prompt_free(&p);
}

static void test_plain(void) {
    const char *plain[] = {"a red fox in the snow", "", "cat, dog: bird"};
    const char *fancy[] = {"a (red) fox", "a \\(b\\)", "cat BREAK dog", "[x]"};
    prompt_parsed p;
    char err[64];
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++) {
        REQUIRE(prompt_parse(plain[i], &p, err, sizeof err) == 0, "%s", err);
        CHECK(prompt_is_plain(&p), "\"%s\" should be plain", plain[i]);
        prompt_free(&p);
    }
    for (size_t i = 0; i < sizeof fancy / sizeof *fancy; i++) {
        REQUIRE(prompt_parse(fancy[i], &p, err, sizeof err) == 0, "%s", err);
        CHECK(!prompt_is_plain(&p), "\"%s\" should not be plain", fancy[i]);
        prompt_free(&p);
    }
}

static int32_t id_of(bpe_tokenizer *t, const char *word) {
    int32_t *ids;
    size_t n;
    if (bpe_encode(t, word, strlen(word), &ids, &n) || n != 1) return -1;
    int32_t id = ids[0];
    free(ids);
    return id;
}

static char *repeat(const char *word, int n) {
    size_t l = strlen(word);
    char *s = malloc(l * (size_t)n + 1);
    for (int i = 0; i < n; i++) memcpy(s + l * (size_t)i, word, l);
    s[l * (size_t)n] = 0;
    return s;
}

static prompt_chunks chunk_of(bpe_tokenizer *t, const char *text) {
    prompt_parsed p;
    prompt_chunks c;
    memset(&c, 0, sizeof c);
    char err[64];
    if (prompt_parse(text, &p, err, sizeof err) == 0) {
        if (prompt_chunk(t, &p, 20, &c)) test_fail_(__FILE__, __LINE__, "chunk failed");
        prompt_free(&p);
    }
    return c;
}

static void test_chunking(void) {
    bpe_tokenizer *t = tok();
    REQUIRE(t, "no tokenizer");
    int32_t cat = id_of(t, "cat"), dog = id_of(t, "dog"), comma = id_of(t, ",");
    REQUIRE(cat > 0 && dog > 0 && comma == 267, "ids cat=%d dog=%d comma=%d", cat, dog, comma);

    char *s = repeat("cat ", 100);
    prompt_chunks c = chunk_of(t, s);
    CHECK(c.nchunks == 2 && c.len == 77, "100 cats: %zu chunks", c.nchunks);
    if (c.nchunks == 2) {
        CHECK(c.ids[0] == 49406 && c.ids[75] == cat && c.ids[76] == 49407, "chunk 0 frame");
        CHECK(c.ids[77] == 49406 && c.ids[77 + 25] == cat && c.ids[77 + 26] == 49407 && c.ids[77 + 76] == 49407,
              "chunk 1: 25 cats then EOS padding");
    }
    prompt_chunks_free(&c);
    free(s);

    /* 70 cats, a comma, 10 dogs: the chunk fills at 75 with the comma 5
     * tokens back, so the 4 dogs after it move to the next chunk. */
    char buf[2048];
    char *cats = repeat("cat ", 70), *dogs = repeat("dog ", 10);
    snprintf(buf, sizeof buf, "%s, %s", cats, dogs);
    c = chunk_of(t, buf);
    CHECK(c.nchunks == 2, "comma backtrack: %zu chunks", c.nchunks);
    if (c.nchunks == 2) {
        CHECK(c.ids[70] == cat && c.ids[71] == comma && c.ids[72] == 49407, "chunk 0 ends at the comma");
        CHECK(c.ids[77 + 1] == dog && c.ids[77 + 10] == dog && c.ids[77 + 11] == 49407, "chunk 1: 10 dogs");
    }
    prompt_chunks_free(&c);
    free(cats);
    free(dogs);

    c = chunk_of(t, "(cat:1.5) [dog] BREAK cat");
    CHECK(c.nchunks == 2, "BREAK: %zu chunks", c.nchunks);
    if (c.nchunks == 2) {
        CHECK(c.ids[1] == cat && c.weights[1] == (float)1.5 && c.ids[2] == dog && c.weights[2] == (float)(1 / 1.1),
              "weights %g %g", c.weights[1], c.weights[2]);
        CHECK(c.weights[0] == 1.0f && c.weights[3] == 1.0f, "BOS/EOS weight 1");
        CHECK(c.ids[78] == cat && c.weights[78] == 1.0f, "after BREAK");
    }
    prompt_chunks_free(&c);

    c = chunk_of(t, "BREAK cat");
    CHECK(c.nchunks == 2 && c.ids[1] == 49407 && c.ids[78] == cat, "leading BREAK gives an empty chunk");
    prompt_chunks_free(&c);

    REQUIRE(prompt_chunk_plain(t, "cat", &c) == 0, "plain");
    REQUIRE(prompt_chunks_pad(t, &c, 2) == 0, "pad");
    CHECK(c.nchunks == 3 && c.ids[77] == 49406 && c.ids[78] == 49407 && c.ids[3 * 77 - 1] == 49407, "padding chunks");
    prompt_chunks_free(&c);
    bpe_free(t);
}

const test_entry TESTS[] = {
    {"emphasis", test_emphasis},
    {"escapes", test_escapes},
    {"break", test_break},
    {"lora_tags", test_lora_tags},
    {"plain", test_plain},
    {"chunking", test_chunking},
    {0},
};
