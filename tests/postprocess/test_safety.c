/* tests/postprocess/test_safety.c - the safety checker against diffusers'
 * StableDiffusionSafetyChecker on a small random-weight checker (reference
 * data by tests/postprocess/make_safety_ref.py: images that trip it, one
 * only through the special-care +0.01, and images that do not), through
 * the C code (preprocessing, network, concept logic), the
 * postprocess.safety_check message and the safety_check interface member;
 * the concept logic on a hand-computed case; and the refusals (wrong
 * shapes, missing or malformed files, unreadable images).
 *
 * Tolerances: concept and special-care scores within 1e-4 absolute (the
 * brief's bar; float32 accumulation order differs), image embeddings within
 * 1e-4 relative L2, preprocessed pixels within 1e-5 (same 8-bit resize,
 * then float32 arithmetic); flags equal (the generator keeps every score at
 * least 3e-3 from diffusers' rounding boundary). Runs on the CPU backend. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fake_host.h"
#include "harness.h"
#include "pp.h"
#include "safety.h"

static sdrt_device *g_dev;
static sdrt_backend_iface g_backend;
static pp_plugin g_plugin;
static cJSON *g_ref;

static sdrt_device *fx_default_device(void *self) { return self; }

static const char *data(const char *name) {
    static char buf[8][4600];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%.4000s/%.500s", test_path("SDRT_SOURCE_DIR", "tests/postprocess/data/safety"), name);
    return buf[k];
}

static int setup(void) {
    if (g_dev) return 0;
    const char *so = test_path("SDRT_BUILD_DIR", "lib/sdrt/backends/sdrt_backend_cpu.so");
    void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!lib) return fprintf(stderr, "# dlopen %s: %s\n", so, dlerror()), -1;
    sdrt_backend_entry_fn entry = (sdrt_backend_entry_fn)dlsym(lib, SDRT_BACKEND_ENTRY_SYMBOL);
    sdrt_backend_reg *reg = entry ? entry(fake_host_api(), "{}") : NULL;
    if (!reg || reg->iface->device_count(reg) < 1) return fprintf(stderr, "# no CPU device\n"), -1;
    g_dev = reg->iface->device_get(reg, 0);
    g_backend = (sdrt_backend_iface){.struct_size = SDRT_STRUCT_SIZE(sdrt_backend_iface, default_device),
                                     .self = g_dev, .default_device = fx_default_device};
    fake_host_provide(SDRT_BACKEND_IFACE_ID, &g_backend);
    g_plugin.api = fake_host_api();
    pthread_mutex_init(&g_plugin.lock, NULL);
    size_t n = 0;
    char err[256];
    char *text = sdrt_file_read_all(data("ref.json"), "ref.json", NULL, 1 << 24, &n, NULL, err, sizeof err);
    g_ref = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!g_ref) return fprintf(stderr, "# ref.json: %s\n", err), -1;
    return 0;
}

static const cJSON *ref_images(void) { return cJSON_GetObjectItem(g_ref, "images"); }

static int read_image(const char *name, pp_image *im) {
    char rel[300], err[512];
    snprintf(rel, sizeof rel, "images/%s", name);
    if (pp_image_read_file(data(rel), NULL, im, err, sizeof err) == SDRT_OK) return 0;
    fprintf(stderr, "# %s\n", err);
    return -1;
}

/* Scores of one verdict (or message entry) against the reference. */
static void check_scores(const char *name, const cJSON *want, const float *special, const float *concept, int nsfw,
                         int special_care) {
    const cJSON *ws = cJSON_GetObjectItem(want, "special_scores"), *wc = cJSON_GetObjectItem(want, "concept_scores");
    double worst = 0;
    for (int k = 0; k < cJSON_GetArraySize(ws); k++) {
        double d = fabs(special[k] - cJSON_GetArrayItem(ws, k)->valuedouble);
        worst = d > worst ? d : worst;
    }
    for (int k = 0; k < cJSON_GetArraySize(wc); k++) {
        double d = fabs(concept[k] - cJSON_GetArrayItem(wc, k)->valuedouble);
        worst = d > worst ? d : worst;
    }
    printf("# %s: nsfw %d special_care %d, worst score difference %.2g\n", name, nsfw, special_care, worst);
    CHECK(worst <= 1e-4, "%s: scores differ from diffusers' by %.3g", name, worst);
    CHECK(nsfw == cJSON_IsTrue(cJSON_GetObjectItem(want, "has_nsfw_concept")), "%s: flag %d differs", name, nsfw);
    CHECK(special_care == cJSON_IsTrue(cJSON_GetObjectItem(want, "special_care")), "%s: special_care %d differs", name,
          special_care);
}

/* ---- preprocessing ---- */

static void test_preprocess(void) {
    REQUIRE(setup() == 0, "setup");
    sc_model *m = NULL;
    char err[700];
    REQUIRE(sc_model_open(data("tiny-sd15-safety"), NULL, &m, err, sizeof err) == SDRT_OK, "%s", err);
    int S = m->cfg.image_size;
    float *px = malloc((size_t)3 * S * S * sizeof *px);
    for (const cJSON *it = ref_images()->child; it; it = it->next) {
        pp_image im;
        REQUIRE(read_image(it->string, &im) == 0, "%s", it->string);
        REQUIRE(sc_prep_run(&m->prep, im.rgb, im.w, im.h, px, err, sizeof err) == 0, "%s", err);
        const cJSON *mean = cJSON_GetObjectItem(it, "pixel_mean");
        for (int c = 0; c < 3; c++) {
            double s = 0;
            for (int i = 0; i < S * S; i++) s += px[(size_t)c * S * S + i];
            double want = cJSON_GetArrayItem(mean, c)->valuedouble;
            CHECK(fabs(s / (S * S) - want) <= 1e-5, "%s: channel %d mean %.7f, want %.7f", it->string, c, s / (S * S), want);
        }
        const cJSON *smp;
        cJSON_ArrayForEach(smp, cJSON_GetObjectItem(it, "pixel_samples")) {
            int c = cJSON_GetArrayItem(smp, 0)->valueint, y = cJSON_GetArrayItem(smp, 1)->valueint,
                x = cJSON_GetArrayItem(smp, 2)->valueint;
            double want = cJSON_GetArrayItem(smp, 3)->valuedouble, got = px[((size_t)c * S + y) * S + x];
            CHECK(fabs(got - want) <= 1e-5, "%s: pixel [%d,%d,%d] %.7f, want %.7f", it->string, c, y, x, got, want);
        }
        free(im.rgb);
    }
    free(px);
    sc_model_close(m);
}

/* Both preprocessor_config.json layouts give the same settings; an exact
 * resize without crop; defaults for an empty file (transformers'). */
static int prep_eq(const sc_prep *a, const sc_prep *b) {
    return a->do_resize == b->do_resize && a->shortest_edge == b->shortest_edge && a->size_h == b->size_h &&
           a->size_w == b->size_w && a->filter == b->filter && a->do_center_crop == b->do_center_crop &&
           a->crop_h == b->crop_h && a->crop_w == b->crop_w && a->do_rescale == b->do_rescale &&
           a->rescale_factor == b->rescale_factor && a->do_normalize == b->do_normalize &&
           !memcmp(a->mean, b->mean, sizeof a->mean) && !memcmp(a->std, b->std, sizeof a->std);
}

static void test_prep_layouts(void) {
    sc_prep a, b, c;
    char err[300];
    REQUIRE(sc_prep_parse("{\"size\": 224, \"crop_size\": 224, \"resample\": 3, \"do_center_crop\": true}", &a, err,
                          sizeof err) == 0, "%s", err);
    REQUIRE(sc_prep_parse("{\"size\": {\"shortest_edge\": 224}, \"crop_size\": {\"height\": 224, \"width\": 224}, "
                          "\"rescale_factor\": 0.00392156862745098, \"image_mean\": [0.48145466, 0.4578275, 0.40821073]}",
                          &b, err, sizeof err) == 0, "%s", err);
    REQUIRE(sc_prep_parse("{}", &c, err, sizeof err) == 0, "%s", err);
    CHECK(prep_eq(&a, &b) && prep_eq(&a, &c), "layouts differ");
    CHECK(a.shortest_edge == 224 && a.crop_h == 224 && a.filter == SDRT_RESAMPLE_BICUBIC && a.std[2] == 0.27577711f,
          "defaults");
    REQUIRE(sc_prep_parse("{\"size\": {\"height\": 8, \"width\": 6}, \"do_center_crop\": false, \"do_normalize\": false}",
                          &a, err, sizeof err) == 0, "%s", err);
    int oh, ow;
    sc_prep_out_size(&a, &oh, &ow);
    CHECK(oh == 8 && ow == 6, "exact size %dx%d", ow, oh);
    /* A 6x8 image at its own size: no resize, x / 255 only. */
    uint8_t px[8 * 6 * 3];
    float out[3 * 8 * 6];
    for (int i = 0; i < 8 * 6 * 3; i++) px[i] = (uint8_t)(i * 5);
    REQUIRE(sc_prep_run(&a, px, 6, 8, out, err, sizeof err) == 0, "%s", err);
    CHECK(out[0] == (float)(0 * (1.0 / 255)) && out[1] == (float)(15 * (1.0 / 255)) && out[48] == (float)(5 * (1.0 / 255)),
          "planar x/255: %g %g %g", out[0], out[1], out[48]);
    CHECK(sc_prep_parse("{\"size\": 100, \"crop_size\": 224}", &a, err, sizeof err) == -1 && strstr(err, "crop_size"),
          "%s", err);
    CHECK(sc_prep_parse("{\"image_std\": [1, 0, 1]}", &a, err, sizeof err) == -1 && strstr(err, "image_std"), "%s", err);
}

/* ---- the network and the concept logic ---- */

static void test_parity(void) {
    REQUIRE(setup() == 0, "setup");
    sc_model *m = NULL;
    char err[700];
    REQUIRE(sc_model_open(data("tiny-sd15-safety"), NULL, &m, err, sizeof err) == SDRT_OK, "%s", err);
    int n = cJSON_GetArraySize(ref_images()), S = m->cfg.image_size, d = m->cfg.projection_dim;
    CHECK(m->n_concepts == cJSON_GetObjectItem(g_ref, "concepts")->valueint &&
          m->n_special == cJSON_GetObjectItem(g_ref, "special")->valueint, "concept counts %d %d", m->n_concepts,
          m->n_special);
    float *px = malloc((size_t)n * 3 * S * S * sizeof *px), *emb = malloc((size_t)n * d * sizeof *emb);
    int i = 0;
    for (const cJSON *it = ref_images()->child; it; it = it->next, i++) {
        pp_image im;
        REQUIRE(read_image(it->string, &im) == 0, "%s", it->string);
        REQUIRE(sc_prep_run(&m->prep, im.rgb, im.w, im.h, px + (size_t)i * 3 * S * S, err, sizeof err) == 0, "%s", err);
        free(im.rgb);
    }
    /* All images in one batch, as the pipeline does. */
    sdrt_nn *nn = sdrt_nn_new(g_dev, NULL, NULL, NULL);
    REQUIRE(nn, "nn");
    sdrt_nn_add_weight_store(nn, m->ws);
    REQUIRE(sc_model_embed(m, nn, px, n, emb, err, sizeof err) == 0, "%s", err);
    int flagged = 0, clean = 0;
    float special[64], concept[64];
    i = 0;
    for (const cJSON *it = ref_images()->child; it; it = it->next, i++) {
        float want[64];
        const cJSON *we = cJSON_GetObjectItem(it, "image_embeds");
        for (int k = 0; k < d; k++) want[k] = (float)cJSON_GetArrayItem(we, k)->valuedouble;
        double rl = test_rel_l2(emb + (size_t)i * d, want, (size_t)d);
        CHECK(rl <= 1e-4, "%s: image embedding relative L2 %.3g", it->string, rl);
        sc_verdict v = {special, concept, 0, 0};
        sc_concepts_score(m, emb + (size_t)i * d, &v);
        check_scores(it->string, it, special, concept, v.nsfw, v.special_care);
        flagged += v.nsfw;
        clean += !v.nsfw;
    }
    CHECK(flagged > 0 && clean > 0, "the reference must have both verdicts (%d flagged, %d clean)", flagged, clean);
    /* One image alone gives what it gave in the batch. */
    float one[64];
    REQUIRE(sc_model_embed(m, nn, px + (size_t)1 * 3 * S * S, 1, one, err, sizeof err) == 0, "%s", err);
    CHECK(test_rel_l2(one, emb + d, (size_t)d) <= 1e-5, "batch of 1 vs batch of %d", n);
    /* The same weights named as transformers 5 writes them. */
    sc_model *m5 = NULL;
    REQUIRE(sc_model_open(data("new-layout"), NULL, &m5, err, sizeof err) == SDRT_OK, "new-layout: %s", err);
    REQUIRE(sc_model_embed(m5, nn, px + (size_t)1 * 3 * S * S, 1, one, err, sizeof err) == 0, "%s", err);
    CHECK(test_rel_l2(one, emb + d, (size_t)d) <= 1e-6, "transformers 5 names give other embeddings");
    sc_model_close(m5);
    sdrt_nn_free(nn);
    free(px);
    free(emb);
    sc_model_close(m);
}

/* The rule by hand: projection 2, one special concept, two concepts. */
static void test_concepts_by_hand(void) {
    float sp[2] = {1, 0}, cc[4] = {0, 1, 1, 0}, st[1] = {0.5f}, ct[2] = {0.7f, 0.605f};
    sc_model m = {.n_special = 1, .n_concepts = 2, .special_embeds = sp, .concept_embeds = cc, .special_thr = st,
                  .concept_thr = ct};
    m.cfg.projection_dim = 2;
    float s[1], c[2];
    sc_verdict v = {s, c, 0, 0};
    float e[2] = {3, 4}; /* unit (0.6, 0.8) */
    sc_concepts_score(&m, e, &v);
    /* special: 0.6 - 0.5 = 0.1 fires -> +0.01; concepts: 0.8-0.7+0.01, 0.6-0.605+0.01 = 0.005 */
    CHECK(fabsf(s[0] - 0.1f) < 1e-6f && v.special_care, "special %g", s[0]);
    CHECK(fabsf(c[0] - 0.11f) < 1e-6f && fabsf(c[1] - 0.005f) < 1e-6f && v.nsfw, "concepts %g %g", c[0], c[1]);
    st[0] = 0.7f; /* special no longer fires: concept 1 is -0.005 */
    ct[0] = 0.9f;
    sc_concepts_score(&m, e, &v);
    CHECK(!v.special_care && !v.nsfw && fabsf(c[1] + 0.005f) < 1e-6f, "no adjustment: %g %g", c[0], c[1]);
    /* diffusers rounds to 3 decimals before comparing with 0. */
    CHECK(!sc_score_fires(0.0004f) && sc_score_fires(0.0006f) && !sc_score_fires(-0.2f) && sc_score_fires(0.2f),
          "rounding rule");
}

/* ---- the message ---- */

static sdrt_error *call(const char *json, cJSON **res) {
    sdrt_request req = {sizeof req, "postprocess.safety_check", "t", json, NULL, 0};
    char *out = NULL;
    sdrt_error *e = pp_handle_safety_check(&g_plugin, &req, &out);
    *res = out ? cJSON_Parse(out) : NULL;
    free(out);
    return e;
}

static int all_zero(const pp_image *im) {
    for (size_t i = 0; i < (size_t)im->w * im->h * 3; i++)
        if (im->rgb[i]) return 0;
    return 1;
}

static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[65536];
    size_t n;
    while (a && b && (n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
    if (a) fclose(a);
    if (b) fclose(b);
}

/* The checker folder (no pipeline components: the message needs none) in
 * a fresh root that the fake host accepts; returns the root. */
static const char *message_root(void) {
    const char *root = test_tmpdir();
    static const char *const files[] = {"safety_checker/config.json", "safety_checker/model.safetensors",
                                        "feature_extractor/preprocessor_config.json"};
    char a[4400], b[4400];
    snprintf(a, sizeof a, "%s/m", root);
    mkdir(a, 0755);
    snprintf(a, sizeof a, "%s/m/safety_checker", root);
    mkdir(a, 0755);
    snprintf(a, sizeof a, "%s/m/feature_extractor", root);
    mkdir(a, 0755);
    for (int i = 0; i < 3; i++) {
        snprintf(a, sizeof a, "tiny-sd15-safety/%s", files[i]);
        snprintf(b, sizeof b, "%s/m/%s", root, files[i]);
        copy_file(data(a), b);
    }
    fake_host_set_output_root(root);
    return root;
}

static void message_run(const char *action) {
    const char *tmp = message_root();
    char *json = malloc(1 << 16);
    size_t len = (size_t)snprintf(json, 1 << 16, "{\"model_id\":\"%s/m\",\"safety_action\":\"%s\",\"output\":{\"dir\":\"%s\"},"
                                  "\"images\":[", tmp, action, tmp);
    int n = 0;
    for (const cJSON *it = ref_images()->child; it; it = it->next, n++) {
        char rel[300], dst[4400];
        snprintf(rel, sizeof rel, "images/%s", it->string);
        snprintf(dst, sizeof dst, "%s/%s", tmp, it->string);
        copy_file(data(rel), dst);
        len += (size_t)snprintf(json + len, (1 << 16) - len, "%s\"%s\"", n ? "," : "", it->string);
    }
    snprintf(json + len, (1 << 16) - len, "]}");
    cJSON *res = NULL;
    sdrt_error *e = call(json, &res);
    free(json);
    REQUIRE(!e, "%s", e ? e->message : "");
    const cJSON *list = cJSON_GetObjectItem(res, "images"), *flags = cJSON_GetObjectItem(res, "nsfw_content_detected");
    REQUIRE(cJSON_GetArraySize(list) == n && cJSON_GetArraySize(flags) == n, "one entry per image");
    int i = 0;
    for (const cJSON *it = ref_images()->child; it; it = it->next, i++) {
        const cJSON *o = cJSON_GetArrayItem(list, i);
        float sp[64], cc[64];
        const cJSON *a = cJSON_GetObjectItem(o, "special_scores"), *b = cJSON_GetObjectItem(o, "concept_scores");
        for (int k = 0; k < cJSON_GetArraySize(a); k++) sp[k] = (float)cJSON_GetArrayItem(a, k)->valuedouble;
        for (int k = 0; k < cJSON_GetArraySize(b); k++) cc[k] = (float)cJSON_GetArrayItem(b, k)->valuedouble;
        int nsfw = cJSON_IsTrue(cJSON_GetObjectItem(o, "nsfw_content_detected"));
        check_scores(it->string, it, sp, cc, nsfw, cJSON_IsTrue(cJSON_GetObjectItem(o, "special_care")));
        CHECK(nsfw == cJSON_IsTrue(cJSON_GetArrayItem(flags, i)), "top-level flag %d", i);
        /* The written image: black when flagged and blacking out, else the input's pixels. */
        pp_image out, in;
        char err[512], rel[300];
        snprintf(rel, sizeof rel, "images/%s", it->string);
        const cJSON *path = cJSON_GetObjectItem(o, "path");
        REQUIRE(cJSON_IsString(path), "path");
        REQUIRE(pp_image_read_file(path->valuestring, NULL, &out, err, sizeof err) == SDRT_OK, "%s", err);
        REQUIRE(pp_image_read_file(data(rel), NULL, &in, err, sizeof err) == SDRT_OK, "%s", err);
        if (nsfw && !strcmp(action, "black")) CHECK(all_zero(&out), "%s: flagged image not black", it->string);
        else CHECK(out.w == in.w && out.h == in.h && !memcmp(out.rgb, in.rgb, (size_t)in.w * in.h * 3),
                   "%s: image changed", it->string);
        free(out.rgb);
        free(in.rgb);
    }
    cJSON_Delete(res);
}

static void test_message(void) {
    REQUIRE(setup() == 0, "setup");
    message_run("black");
    message_run("flag");
}

/* ---- the interface member (what inference.run calls) ---- */

static const char *fm_id(sdrt_model *m) { return (const char *)m; }

static void test_iface(void) {
    REQUIRE(setup() == 0, "setup");
    static sdrt_model_iface mi;
    mi.struct_size = SDRT_STRUCT_SIZE(sdrt_model_iface, id);
    mi.id = fm_id;
    fake_host_provide(SDRT_MODEL_IFACE_ID, &mi);
    /* One batch of two 64x64 images: the txt2img output the checker was
     * made to flag, and a clean gradient. */
    const char *names[2] = {"t2i.png", "grad_64x64.png"};
    int want[2], w = 64, h = 64;
    float *rgb = malloc((size_t)2 * w * h * 3 * sizeof *rgb);
    for (int i = 0; i < 2; i++) {
        const cJSON *r = cJSON_GetObjectItem(ref_images(), names[i]);
        REQUIRE(r, "ref.json has %s", names[i]);
        want[i] = cJSON_IsTrue(cJSON_GetObjectItem(r, "has_nsfw_concept"));
        pp_image im;
        REQUIRE(read_image(names[i], &im) == 0 && im.w == w && im.h == h, "%s", names[i]);
        for (size_t k = 0; k < (size_t)w * h * 3; k++) rgb[(size_t)i * w * h * 3 + k] = im.rgb[k] / 255.0f;
        free(im.rgb);
    }
    CHECK(want[0] && !want[1], "the reference should flag t2i.png only (%d %d)", want[0], want[1]);
    int nsfw[2] = {-1, -1};
    char *details = NULL;
    static char mdir[4600];
    snprintf(mdir, sizeof mdir, "%.4000s/m", message_root());
    sdrt_error *e = pp_safety_check(&g_plugin, (sdrt_model *)mdir, rgb, 2, h, w, 1, NULL, nsfw, &details);
    REQUIRE(!e, "%s", e ? e->message : "");
    for (int i = 0; i < 2; i++) {
        CHECK(nsfw[i] == want[i], "%s: flag %d, want %d", names[i], nsfw[i], want[i]);
        double mx = 0;
        for (size_t k = 0; k < (size_t)w * h * 3; k++) mx = fmax(mx, rgb[(size_t)i * w * h * 3 + k]);
        CHECK(want[i] ? mx == 0 : mx > 0, "%s: black %d, flagged %d", names[i], mx == 0, want[i]);
    }
    cJSON *dj = details ? cJSON_Parse(details) : NULL;
    CHECK(cJSON_GetArraySize(dj) == 2 && cJSON_GetObjectItem(cJSON_GetArrayItem(dj, 0), "concept_scores"), "details %s",
          details ? details : "(none)");
    cJSON_Delete(dj);
    free(details);
    /* A model folder without safety_checker/: NOT_FOUND naming it. */
    e = pp_safety_check(&g_plugin, (sdrt_model *)test_tmpdir(), rgb, 1, h, w, 1, NULL, nsfw, NULL);
    CHECK(e && e->code == SDRT_NOT_FOUND && strstr(e->message, "has no safety_checker/ folder"), "%s",
          e ? e->message : "no error");
    if (e) g_plugin.api->error_free(e);
    free(rgb);
}

/* ---- refusals ---- */

static void write_text(const char *dir, const char *rel, const char *text) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static char *slurp(const char *path) {
    char err[256];
    return sdrt_file_read_all(path, "fixture", NULL, 1 << 20, NULL, NULL, err, sizeof err);
}

/* A copy of the good checker folder in a temp dir (weights symlinked). */
static const char *scratch_checker(void) {
    const char *t = test_tmpdir();
    char p[4400], q[4400];
    snprintf(p, sizeof p, "%s/safety_checker", t);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/feature_extractor", t);
    mkdir(p, 0755);
    char *cfg = slurp(data("tiny-sd15-safety/safety_checker/config.json"));
    char *fe = slurp(data("tiny-sd15-safety/feature_extractor/preprocessor_config.json"));
    write_text(t, "safety_checker/config.json", cfg ? cfg : "");
    write_text(t, "feature_extractor/preprocessor_config.json", fe ? fe : "");
    free(cfg);
    free(fe);
    snprintf(p, sizeof p, "%s/safety_checker/model.safetensors", t);
    snprintf(q, sizeof q, "%s", data("tiny-sd15-safety/safety_checker/model.safetensors"));
    if (symlink(q, p)) perror("symlink");
    return t;
}

static void expect_open_error(const char *dir, sdrt_status st, const char *a, const char *b) {
    sc_model *m = NULL;
    char err[700];
    sdrt_status got = sc_model_open(dir, NULL, &m, err, sizeof err);
    CHECK(got == st && strstr(err, a) && (!b || strstr(err, b)), "status %d, message \"%s\" (want %d with \"%s\"%s%s)",
          (int)got, got == SDRT_OK ? "" : err, (int)st, a, b ? " and " : "", b ? b : "");
    if (got == SDRT_OK) sc_model_close(m);
    else printf("# refused: %s\n", err);
}

static void test_bad_input(void) {
    REQUIRE(setup() == 0, "setup");
    /* config.json says hidden 48, the weights are 32 wide. */
    expect_open_error(data("bad-shapes"), SDRT_INVALID_ARGUMENT, "safety_checker/model.safetensors",
                      "patch_embedding.weight");
    expect_open_error(test_tmpdir(), SDRT_NOT_FOUND, "has no safety_checker/ folder", NULL);
    const char *t = scratch_checker();
    expect_open_error(t, SDRT_OK, "", NULL);
    write_text(t, "feature_extractor/preprocessor_config.json", "{\"resample\": 2}");
    expect_open_error(t, SDRT_INVALID_ARGUMENT, "feature_extractor/preprocessor_config.json", "resample");
    write_text(t, "feature_extractor/preprocessor_config.json", "{\"crop_size\": 112, \"size\": 112}");
    expect_open_error(t, SDRT_INVALID_ARGUMENT, "feature_extractor/preprocessor_config.json", "image_size 224");
    char p[4400];
    snprintf(p, sizeof p, "%s/feature_extractor/preprocessor_config.json", t);
    unlink(p);
    expect_open_error(t, SDRT_INVALID_ARGUMENT, "feature_extractor/preprocessor_config.json", NULL);
    write_text(t, "safety_checker/config.json", "{\"vision_config\": ");
    expect_open_error(t, SDRT_INVALID_ARGUMENT, "safety_checker/config.json", "not a JSON object");
    write_text(t, "safety_checker/config.json", "{\"vision_config\": {\"hidden_size\": 32, \"num_attention_heads\": 5}}");
    expect_open_error(t, SDRT_INVALID_ARGUMENT, "safety_checker/config.json", "num_attention_heads");
    t = scratch_checker();
    snprintf(p, sizeof p, "%s/safety_checker/model.safetensors", t);
    unlink(p);
    expect_open_error(t, SDRT_INVALID_ARGUMENT, "safety_checker/model.safetensors", "missing");
    write_text(t, "safety_checker/model.safetensors", "not a safetensors file");
    expect_open_error(t, SDRT_INVALID_ARGUMENT, "safety_checker/model.safetensors", NULL);

    /* Through the message: the second image cannot be read; the next call works. */
    const char *root = message_root();
    char a[4400], b[4400];
    copy_file(data("images/blocks_224.png"), (snprintf(a, sizeof a, "%s/in.png", root), a));
    /* A broken copy: bad-shapes' config.json over the good weights. */
    snprintf(a, sizeof a, "%s/bad", root);
    mkdir(a, 0755);
    snprintf(a, sizeof a, "%s/bad/safety_checker", root);
    mkdir(a, 0755);
    snprintf(a, sizeof a, "%s/bad/feature_extractor", root);
    mkdir(a, 0755);
    copy_file(data("bad-shapes/safety_checker/config.json"), (snprintf(b, sizeof b, "%s/bad/safety_checker/config.json", root), b));
    copy_file(data("tiny-sd15-safety/safety_checker/model.safetensors"),
              (snprintf(b, sizeof b, "%s/bad/safety_checker/model.safetensors", root), b));
    copy_file(data("tiny-sd15-safety/feature_extractor/preprocessor_config.json"),
              (snprintf(b, sizeof b, "%s/bad/feature_extractor/preprocessor_config.json", root), b));
    char json[9000];
    /* The second image cannot be read. */
    snprintf(json, sizeof json, "{\"model_id\":\"%s/m\",\"images\":[\"in.png\",\"nope.png\"],\"output\":{\"dir\":\"out\"}}",
             root);
    cJSON *res = NULL;
    sdrt_error *e = call(json, &res);
    CHECK(e && e->code == SDRT_NOT_FOUND && strstr(e->message, "images[1]") && strstr(e->message, "nope.png"), "%s",
          e ? e->message : "no error");
    if (e) printf("# refused: %s\n", e->message), g_plugin.api->error_free(e);
    cJSON_Delete(res);
    snprintf(json, sizeof json, "{\"model_id\":\"%s/bad\",\"image\":\"in.png\",\"output\":{\"dir\":\"out\"}}", root);
    e = call(json, &res);
    CHECK(e && e->code == SDRT_INVALID_ARGUMENT && strstr(e->message, "safety_checker: safety_checker/model.safetensors"),
          "%s", e ? e->message : "no error");
    if (e) printf("# refused: %s\n", e->message), g_plugin.api->error_free(e);
    cJSON_Delete(res);
    /* A model outside the roots. */
    snprintf(json, sizeof json, "{\"model_id\":\"%s\",\"image\":\"in.png\"}", data("tiny-sd15-safety"));
    e = call(json, &res);
    CHECK(e && e->code == SDRT_PERMISSION_DENIED && strstr(e->message, "model_id"), "%s", e ? e->message : "no error");
    if (e) printf("# refused: %s\n", e->message), g_plugin.api->error_free(e);
    e = call("{\"model_id\":\"x\",\"image\":\"a.png\",\"safety_action\":\"blur\"}", &res);
    CHECK(e && e->code == SDRT_INVALID_ARGUMENT && strstr(e->message, "safety_action"), "%s", e ? e->message : "no error");
    if (e) g_plugin.api->error_free(e);
    e = call("{\"model_id\":\"x\"}", &res);
    CHECK(e && e->code == SDRT_INVALID_ARGUMENT && strstr(e->message, "images"), "%s", e ? e->message : "no error");
    if (e) g_plugin.api->error_free(e);
    snprintf(json, sizeof json, "{\"model_id\":\"%s/m\",\"image\":\"in.png\",\"output\":{\"dir\":\"out\"}}", root);
    e = call(json, &res);
    CHECK(!e && cJSON_GetArraySize(cJSON_GetObjectItem(res, "images")) == 1, "after the refusals: %s",
          e ? e->message : "ok");
    if (e) g_plugin.api->error_free(e);
    cJSON_Delete(res);
}

const test_entry TESTS[] = {
    {"prep_layouts", test_prep_layouts},
    {"preprocess", test_preprocess},
    {"parity", test_parity},
    {"concepts_by_hand", test_concepts_by_hand},
    {"message", test_message},
    {"iface", test_iface},
    {"bad_input", test_bad_input},
    {0},
};
