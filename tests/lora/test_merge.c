/* tests/lora/test_merge.c - merged weights against diffusers, through the
 * real model plugin (core library) and the lora plugin's sdrt.lora/1, plus
 * the errors for malformed, empty and wrong-architecture files.
 *
 * Goldens: tests/lora/gen_goldens.py (diffusers load_lora_weights +
 * fuse_lora; LoHa/LoKr by the LyCORIS formulas in float64). Tolerance:
 * relative L2 <= 1e-5 per tensor (float32 merge; the order of the rank sum
 * differs from PyTorch's GEMM). */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "../model/fake_host.h"
#include "harness.h"
#include "plugin.h"
#include "sdrt/half.h"
#include "fake_device.h"
#include "sdrt/lora.h"
#include "sdrt/npy.h"

#include "../../plugins/model/plugin.h"

typedef struct env {
    void *model_inst, *lora_inst;
    const sdrt_model_iface *mi;
    const sdrt_lora_iface *li;
    char settings[4096];
} env;

static const char *data_dir(void) { return test_path("SDRT_SOURCE_DIR", "tests/lora/data"); }

/* `first_root` NULL: the test data folder. */
static int env_up_at(env *e, const char *first_root) {
    memset(e, 0, sizeof *e);
    fake_host_reset();
    snprintf(e->settings, sizeof e->settings, "{\"model_roots\":[\"%s\",\"%s\"],\"threads\":2}",
             first_root ? first_root : data_dir(), getenv("SDRT_REFERENCE") ? getenv("SDRT_REFERENCE") : ".");
    fake_settings = e->settings;
    const sdrt_host_api *api = fake_host_api();
    sdrt_error *err = model_plugin_init(api, NULL, "{}", &e->model_inst);
    if (!err) err = lora_plugin_init(api, NULL, "{}", &e->lora_inst);
    if (err) {
        fprintf(stderr, "init: %s\n", err->message);
        api->error_free(err);
        return -1;
    }
    e->mi = api->acquire(NULL, SDRT_MODEL_IFACE_ID, NULL);
    e->li = api->acquire(NULL, SDRT_LORA_IFACE_ID, NULL);
    return e->mi && e->li ? 0 : -1;
}

static int env_up(env *e) { return env_up_at(e, NULL); }

static void env_down(env *e) {
    lora_plugin_shutdown(e->lora_inst);
    model_plugin_shutdown(e->model_inst);
}

static sdrt_model *open_model(env *e, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/diffusers", getenv("SDRT_REFERENCE"), name);
    sdrt_model *m = NULL;
    sdrt_error *err = e->mi->open(e->mi->self, path, NULL, &m);
    if (err) {
        fprintf(stderr, "open %s: %s\n", path, err->message);
        fake_host_api()->error_free(err);
    }
    return m;
}

static float elem(const sdrt_tensor *t, size_t i) {
    if (t->dtype == SDRT_DTYPE_F32) return ((const float *)t->data)[i];
    uint16_t h = ((const uint16_t *)t->data)[i];
    return t->dtype == SDRT_DTYPE_F16 ? sdrt_f16_to_f32(h) : sdrt_bf16_to_f32(h);
}

static size_t numel(const sdrt_tensor *t) {
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}

static cJSON *load_cases(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/cases.json", data_dir());
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return cJSON_Parse(buf);
}

/* Prepares the case's adapters on its model and checks every tensor. */
/* The set's weight store: a device copy of each merged tensor (bytes equal
 * to the merge), counted for the job through the model's store, the base
 * weights not covered (they are the model's). */
static fake_device g_fake;

static void check_set_store(env *e, sdrt_model *m, sdrt_lora_set *set, const cJSON *tensors) {
    sdrt_weight_store *ws = sdrt_lora_weights(e->li, set);
    REQUIRE(ws, "set without a weight store");
    fake_device_init(&g_fake, NULL);
    sdrt_job *job = (sdrt_job *)(uintptr_t)0x51;
    ws->iface->pin(ws, &g_fake.dev);
    uint64_t total = 0;
    for (const cJSON *t = tensors->child; t; t = t->next) {
        const char *comp = cJSON_GetObjectItemCaseSensitive(t, "component")->valuestring;
        const char *name = cJSON_GetObjectItemCaseSensitive(t, "name")->valuestring;
        const sdrt_tensor *w = e->li->tensor(set, comp, name), *d = NULL, *base = e->mi->tensor(m, comp, name);
        uint64_t up = 0;
        size_t bytes = numel(w) * (w->dtype == SDRT_DTYPE_F32 ? 4 : 2);
        CHECK(ws->iface->acquire(ws, &g_fake.dev, w, job, &d, &up) == SDRT_OK && up == bytes, "%s: upload", name);
        CHECK(d && memcmp(d->data, w->data, bytes) == 0, "%s: device copy differs from the merge", name);
        CHECK(!ws->iface->covers(ws, base->data, bytes), "%s: base weight covered by the set", name);
        total += up;
    }
    ws->iface->unpin(ws, &g_fake.dev);
    CHECK(sdrt_model_take_uploaded_bytes(e->mi, job) == total, "set uploads reach the model's per-job count");
}

static void run_case(const char *case_name) {
    cJSON *cases = load_cases();
    REQUIRE(cases, "cases.json missing: run tests/lora/gen_goldens.py");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cases, "cases"), case_name);
    env e;
    if (!c || env_up(&e) != 0) {
        cJSON_Delete(cases);
        CHECK(0, "case %s: setup failed", case_name);
        return;
    }
    sdrt_model *m = open_model(&e, cJSON_GetObjectItemCaseSensitive(c, "model")->valuestring);
    const cJSON *ads = cJSON_GetObjectItemCaseSensitive(c, "adapters");
    sdrt_lora_adapter a[4];
    char paths[4][1024];
    int n = 0;
    for (const cJSON *x = ads->child; x && n < 4; x = x->next, n++) {
        sdrt_lora_adapter_init(&a[n]);
        snprintf(paths[n], sizeof paths[n], "%s/%s", data_dir(),
                 cJSON_GetObjectItemCaseSensitive(x, "file")->valuestring);
        a[n].model_id = paths[n];
        a[n].weight = (float)cJSON_GetObjectItemCaseSensitive(x, "weight")->valuedouble;
    }
    sdrt_lora_set *set = NULL;
    sdrt_error *err = m ? e.li->prepare(e.li->self, m, a, (size_t)n, NULL, &set) : NULL;
    CHECK(m && !err && set, "case %s: prepare: %s", case_name, err ? err->message : "no model");
    if (err) fake_host_api()->error_free(err);
    char gpath[1024], gerr[256];
    snprintf(gpath, sizeof gpath, "%s/%s.golden.npy", data_dir(), case_name);
    float *gold = NULL;
    int64_t gshape[4];
    int gnd = 0;
    CHECK(sdrt_npy_read_f32(gpath, &gold, gshape, &gnd, gerr, sizeof gerr) == 0, "%s", gerr);
    const cJSON *tensors = cJSON_GetObjectItemCaseSensitive(c, "tensors");
    if (set && gold) {
        CHECK(e.li->n_patched(set) == (size_t)cJSON_GetArraySize(tensors), "case %s: %zu patched, golden has %d",
              case_name, e.li->n_patched(set), cJSON_GetArraySize(tensors));
        double worst = 0;
        for (const cJSON *t = tensors->child; t; t = t->next) {
            const char *comp = cJSON_GetObjectItemCaseSensitive(t, "component")->valuestring;
            const char *name = cJSON_GetObjectItemCaseSensitive(t, "name")->valuestring;
            size_t off = (size_t)cJSON_GetObjectItemCaseSensitive(t, "offset")->valuedouble;
            const sdrt_tensor *w = e.li->tensor(set, comp, name);
            CHECK(w, "case %s: %s.%s not patched", case_name, comp, name);
            if (!w) continue;
            size_t k = numel(w);
            float *got = malloc(k * sizeof *got);
            for (size_t i = 0; i < k; i++) got[i] = elem(w, i);
            double rel = test_rel_l2(got, gold + off, k);
            worst = rel > worst ? rel : worst;
            CHECK(rel <= 1e-5, "case %s: %s.%s rel L2 %.3g", case_name, comp, name, rel);
            const sdrt_tensor *base = e.mi->tensor(m, comp, name);
            CHECK(base && base->data != w->data, "case %s: %s merged in place", case_name, name);
            free(got);
        }
        fprintf(stderr, "  %s: %zu tensors, worst rel L2 %.3g, %zu warnings\n", case_name, e.li->n_patched(set),
                worst, e.li->n_warnings(set));
        CHECK(e.li->n_warnings(set) == 0, "case %s: unexpected warning %s", case_name, e.li->warning(set, 0));
    }
    free(gold);
    if (set) check_set_store(&e, m, set, tensors);
    e.li->destroy(e.li->self, set);
    e.mi->close(e.mi->self, m);
    env_down(&e);
    cJSON_Delete(cases);
    CHECK(g_fake.live_bytes == 0, "case %s: the set's device copies outlived destroy (%zu bytes)", case_name,
          g_fake.live_bytes);
}

static void test_sd15_kohya(void) { run_case("sd15_kohya"); }
static void test_sd15_peft(void) { run_case("sd15_peft"); }
static void test_sd15_locon(void) { run_case("sd15_locon"); }
static void test_sdxl_kohya_sgm(void) { run_case("sdxl_kohya"); }
static void test_sdxl_diffusers(void) { run_case("sdxl_peft"); }
static void test_two_adapters(void) { run_case("sd15_two"); }
static void test_loha(void) { run_case("sd15_loha"); }
static void test_lokr(void) { run_case("sd15_lokr"); }
static void test_lycoris_two(void) { run_case("sd15_lyco_two"); }

/* ---- errors ------------------------------------------------------------------ */

/* prepare with one adapter; returns the status, copies the message. */
static sdrt_status prepare_one(const char *model, const char *file, float w, char *msg, size_t n, size_t *warnings) {
    env e;
    if (env_up(&e) != 0) return SDRT_INTERNAL;
    sdrt_model *m = open_model(&e, model);
    sdrt_lora_adapter a;
    sdrt_lora_adapter_init(&a);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", data_dir(), file);
    a.model_id = file[0] == '/' ? file : strchr(file, '.') ? path : file;
    a.weight = w;
    sdrt_lora_set *set = NULL;
    sdrt_error *err = e.li->prepare(e.li->self, m, &a, 1, (sdrt_job *)1, &set);
    sdrt_status st = err ? err->code : SDRT_OK;
    snprintf(msg, n, "%s", err ? err->message : "");
    if (warnings) *warnings = set ? e.li->n_warnings(set) : 0;
    if (err) fake_host_api()->error_free(err);
    e.li->destroy(e.li->self, set);
    e.mi->close(e.mi->self, m);
    env_down(&e);
    return st;
}

static void test_empty_file(void) {
    char msg[1024];
    sdrt_status st = prepare_one("tiny-sd15", "empty.safetensors", 1, msg, sizeof msg, NULL);
    CHECK(st == SDRT_INVALID_ARGUMENT && strstr(msg, "empty.safetensors") && strstr(msg, "no LoRA tensors"),
          "%d %s", st, msg);
}

static void test_garbage_file(void) {
    char msg[1024];
    sdrt_status st = prepare_one("tiny-sd15", "garbage.safetensors", 1, msg, sizeof msg, NULL);
    CHECK(st == SDRT_INVALID_ARGUMENT && strstr(msg, "garbage.safetensors") && strstr(msg, "safetensors"), "%d %s",
          st, msg);
}

static void test_orphan_down(void) {
    char msg[1024];
    sdrt_status st = prepare_one("tiny-sd15", "orphan_down.safetensors", 1, msg, sizeof msg, NULL);
    CHECK(st == SDRT_INVALID_ARGUMENT && strstr(msg, "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q") &&
              strstr(msg, "without"),
          "%d %s", st, msg);
}

static void test_dora_unsupported(void) {
    char msg[1024];
    sdrt_status st = prepare_one("tiny-sd15", "dora.safetensors", 1, msg, sizeof msg, NULL);
    CHECK(st == SDRT_UNSUPPORTED && strstr(msg, "dora_scale") && strstr(msg, "DoRA"), "%d %s", st, msg);
}

static void test_wrong_architecture(void) {
    char msg[1024];
    sdrt_status st = prepare_one("tiny-sd15", "sdxl_kohya.safetensors", 1, msg, sizeof msg, NULL);
    CHECK(st == SDRT_INVALID_ARGUMENT && strstr(msg, "sdxl_kohya.safetensors") && strstr(msg, "made for sdxl") &&
              strstr(msg, "key 'lora_") && strstr(msg, "is sd1"),
          "%d %s", st, msg);
    st = prepare_one("tiny-sdxl", "sd15_kohya.safetensors", 1, msg, sizeof msg, NULL);
    CHECK(st == SDRT_INVALID_ARGUMENT && strstr(msg, "made for sd1") && strstr(msg, "is sdxl"), "%d %s", st, msg);
}

static void test_unmatched_keys_warn(void) {
    char msg[1024];
    size_t w = 0;
    int before = 0;
    sdrt_status st = prepare_one("tiny-sd15", "unknown_keys.safetensors", 1, msg, sizeof msg, &w);
    CHECK(st == SDRT_OK, "%d %s", st, msg);
    /* one module that matches no tensor, one tensor that is no LoRA key */
    CHECK(w == 2, "warnings %zu", w);
    CHECK(fake_n_warnings - before == 2, "job warnings %d", fake_n_warnings);
}

static void test_not_found_and_roots(void) {
    char msg[1024];
    sdrt_status st = prepare_one("tiny-sd15", "no_such_lora", 1, msg, sizeof msg, NULL);
    CHECK(st == SDRT_NOT_FOUND && strstr(msg, "no_such_lora"), "%d %s", st, msg);
    st = prepare_one("tiny-sd15", "sd15_kohya", 1, msg, sizeof msg, NULL); /* a name: .safetensors added */
    CHECK(st == SDRT_OK, "%d %s", st, msg);
    st = prepare_one("tiny-sd15", "/etc/passwd", 1, msg, sizeof msg, NULL);
    CHECK(st == SDRT_PERMISSION_DENIED || st == SDRT_NOT_FOUND, "%d %s", st, msg);
}

static void test_cancel(void) {
    env e;
    REQUIRE(env_up(&e) == 0, "setup");
    sdrt_model *m = open_model(&e, "tiny-sd15");
    sdrt_lora_adapter a;
    sdrt_lora_adapter_init(&a);
    a.model_id = "sd15_kohya";
    fake_cancel = 1;
    sdrt_lora_set *set = NULL;
    sdrt_error *err = e.li->prepare(e.li->self, m, &a, 1, NULL, &set);
    CHECK(err && err->code == SDRT_CANCELLED && !set, "cancel: %s", err ? err->message : "none");
    fake_host_api()->error_free(err);
    a.weight = NAN;
    fake_cancel = 0;
    err = e.li->prepare(e.li->self, m, &a, 1, NULL, &set);
    CHECK(err && err->code == SDRT_INVALID_ARGUMENT && strstr(err->message, "weight"), "nan weight");
    fake_host_api()->error_free(err);
    e.mi->close(e.mi->self, m);
    env_down(&e);
}

/* Applying never writes the model: the base tensor bytes are unchanged after
 * destroy, and a second set on the same model starts from them. */
static void test_exact_restore(void) {
    env e;
    REQUIRE(env_up(&e) == 0, "setup");
    sdrt_model *m = open_model(&e, "tiny-sd15");
    const char *name = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight";
    const sdrt_tensor *base = e.mi->tensor(m, "unet", name);
    REQUIRE(base, "no base tensor");
    size_t n = numel(base) * (base->dtype == SDRT_DTYPE_F32 ? 4 : 2);
    void *copy = malloc(n);
    memcpy(copy, base->data, n);
    sdrt_lora_adapter a;
    sdrt_lora_adapter_init(&a);
    a.model_id = "sd15_kohya";
    for (int round = 0; round < 2; round++) {
        sdrt_lora_set *set = NULL;
        sdrt_error *err = e.li->prepare(e.li->self, m, &a, 1, NULL, &set);
        CHECK(!err && e.li->tensor(set, "unet", name), "prepare round %d", round);
        CHECK(!e.li->tensor(set, "unet", "conv_in.weight"), "unpatched tensor returned");
        CHECK(e.li->bytes(set) > 0, "bytes");
        fake_host_api()->error_free(err);
        e.li->destroy(e.li->self, set);
        CHECK(memcmp(copy, base->data, n) == 0, "base changed after round %d", round);
    }
    free(copy);
    e.mi->close(e.mi->self, m);
    env_down(&e);
}

/* ---- messages ---------------------------------------------------------------- */

static cJSON *handle(env *e, const char *type, const char *data, sdrt_status *st) {
    sdrt_request r = {sizeof r, type, "t", data, NULL, 0};
    char *out = NULL;
    sdrt_error *err = lora_plugin_handle(e->lora_inst, &r, &out);
    *st = err ? err->code : SDRT_OK;
    if (err) fprintf(stderr, "  %s: %s\n", type, err->message);
    fake_host_api()->error_free(err);
    cJSON *j = out ? cJSON_Parse(out) : NULL;
    free(out);
    return j;
}

static void test_inspect(void) {
    env e;
    REQUIRE(env_up(&e) == 0, "setup");
    sdrt_status st;
    cJSON *j = handle(&e, "lora.inspect", "{\"lora\":\"sdxl_kohya\"}", &st);
    REQUIRE(j && st == SDRT_OK, "inspect without model");
    CHECK(!strcmp(cJSON_GetObjectItem(j, "architecture")->valuestring, "sdxl"), "arch");
    CHECK(cJSON_GetObjectItem(j, "rank")->valuedouble == 4, "rank");
    CHECK(cJSON_GetObjectItem(j, "alpha")->valuedouble == 8, "alpha");
    CHECK(!strcmp(cJSON_GetObjectItem(j, "unet_naming")->valuestring, "sgm"), "naming");
    CHECK(!cJSON_GetObjectItem(j, "matched"), "matched without a model");
    cJSON_Delete(j);
    char req[2048];
    snprintf(req, sizeof req, "{\"lora\":\"unknown_keys\",\"model_id\":\"%s/tiny-sd15/diffusers\"}",
             getenv("SDRT_REFERENCE"));
    j = handle(&e, "lora.inspect", req, &st);
    REQUIRE(j && st == SDRT_OK, "inspect with model");
    CHECK(cJSON_GetObjectItem(j, "matched")->valuedouble == 1, "matched");
    CHECK(cJSON_GetObjectItem(j, "not_matched")->valuedouble == 1, "not matched");
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "ignored_keys")) == 1, "ignored");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "compatible")), "compatible");
    cJSON_Delete(j);
    snprintf(req, sizeof req, "{\"lora\":\"sd15_lokr\",\"model_id\":\"%s/tiny-sdxl/diffusers\"}",
             getenv("SDRT_REFERENCE"));
    j = handle(&e, "lora.inspect", req, &st);
    CHECK(j && cJSON_GetObjectItem(j, "not_matched")->valuedouble >= 1, "lokr on sdxl: misfits reported");
    cJSON_Delete(j);
    j = handle(&e, "lora.inspect", "{}", &st);
    CHECK(!j && st == SDRT_INVALID_ARGUMENT, "missing lora");
    j = handle(&e, "lora.inspect", "{\"lora\":\"garbage\"}", &st);
    CHECK(!j && st == SDRT_INVALID_ARGUMENT, "garbage");
    env_down(&e);
}

static void test_list(void) {
    env e;
    REQUIRE(env_up(&e) == 0, "setup");
    sdrt_status st;
    cJSON *j = handle(&e, "lora.list", "{}", &st);
    REQUIRE(j && st == SDRT_OK, "list");
    int found = 0, broken = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(j, "loras")) {
        const char *n = cJSON_GetObjectItem(x, "name")->valuestring;
        if (!strcmp(n, "sd15_loha")) found++;
        if (cJSON_GetObjectItem(x, "error")) broken++;
    }
    CHECK(found == 1, "sd15_loha listed %d times", found);
    CHECK(broken == 0, "model-root files that are no LoRA are not listed");
    cJSON_Delete(j);
    env_down(&e);
}

/* A LoRA file whose one module names no tensor of any SD model. */
static void write_unmatched_lora(const char *path) {
    static const char hdr[] =
        "{\"lora_unet_no_such_block_proj.lora_down.weight\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,32]},"
        "\"lora_unet_no_such_block_proj.lora_up.weight\":{\"dtype\":\"F32\",\"shape\":[4,2],\"data_offsets\":[32,64]}}";
    FILE *f = fopen(path, "wb");
    REQUIRE(f, "create %s", path);
    uint64_t n = sizeof hdr - 1;
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(n >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(hdr, 1, n, f);
    float data[16];
    for (int i = 0; i < 16; i++) data[i] = 0.01f * (float)(i + 1);
    fwrite(data, sizeof data[0], 16, f);
    fclose(f);
}

/* lora.inspect: an adapter that matches nothing is not compatible, and a
 * FIFO named as a LoRA is refused at once instead of blocking the worker. */
static void test_inspect_unmatched_and_fifo(void) {
    char root[4200], p[4400], req[4800];
    snprintf(root, sizeof root, "%s", test_tmpdir());
    snprintf(p, sizeof p, "%s/nomatch.safetensors", root);
    write_unmatched_lora(p);
    snprintf(p, sizeof p, "%s/pipe.safetensors", root);
    REQUIRE(mkfifo(p, 0600) == 0, "mkfifo %s", p);
    env e;
    REQUIRE(env_up_at(&e, root) == 0, "setup");
    sdrt_status st;
    snprintf(req, sizeof req, "{\"lora\":\"nomatch\",\"model_id\":\"%s/tiny-sd15/diffusers\"}",
             getenv("SDRT_REFERENCE"));
    cJSON *j = handle(&e, "lora.inspect", req, &st);
    REQUIRE(j && st == SDRT_OK, "inspect");
    CHECK(cJSON_GetObjectItem(j, "matched")->valuedouble == 0, "matched");
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(j, "compatible")), "0 matched keys reported compatible");
    const cJSON *why = cJSON_GetObjectItem(j, "incompatibility");
    CHECK(cJSON_IsString(why) && strstr(why->valuestring, "matches"), "reason: %s",
          cJSON_IsString(why) ? why->valuestring : "(none)");
    cJSON_Delete(j);
    alarm(20); /* a blocking open would hang: fail loudly instead */
    j = handle(&e, "lora.inspect", "{\"lora\":\"pipe\"}", &st);
    CHECK(!j && st == SDRT_INVALID_ARGUMENT, "FIFO as a LoRA: %d", st);
    j = handle(&e, "lora.list", "{}", &st);
    CHECK(j && st == SDRT_OK, "list with a FIFO in a root");
    cJSON_Delete(j);
    alarm(0);
    env_down(&e);
}

const test_entry TESTS[] = {
    {"inspect_unmatched_and_fifo", test_inspect_unmatched_and_fifo},
    {"sd15_kohya", test_sd15_kohya},
    {"sd15_peft", test_sd15_peft},
    {"sd15_locon", test_sd15_locon},
    {"sdxl_kohya_sgm", test_sdxl_kohya_sgm},
    {"sdxl_diffusers", test_sdxl_diffusers},
    {"two_adapters", test_two_adapters},
    {"loha", test_loha},
    {"lokr", test_lokr},
    {"lycoris_two", test_lycoris_two},
    {"empty_file", test_empty_file},
    {"garbage_file", test_garbage_file},
    {"orphan_down", test_orphan_down},
    {"dora_unsupported", test_dora_unsupported},
    {"wrong_architecture", test_wrong_architecture},
    {"unmatched_keys_warn", test_unmatched_keys_warn},
    {"not_found_and_roots", test_not_found_and_roots},
    {"cancel", test_cancel},
    {"exact_restore", test_exact_restore},
    {"inspect", test_inspect},
    {"list", test_list},
    {0},
};
