/* tests/model - the model plugin: safetensors validation
 * (test_safetensors.c), the single-file mapping (test_mapping.c), the LRU
 * cache, model_id lookup with a fake HF cache, and the messages through a
 * fake host. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "fake_host.h"
#include "harness.h"
#include "lookup.h"
#include "plugin.h"

void test_st_rules(void);
void test_st_header_length(void);
void test_st_valid(void);
void test_st_open_file(void);
void test_st_index(void);
void test_pt_against_torch(void);
void test_pt_refusals(void);
void test_pt_corruptions(void);
void test_map_tiny_sd15(void);
void test_map_tiny_sdxl(void);
void test_config_tiny(void);
void test_full_key_coverage(void);

/* ---- cache --------------------------------------------------------------- */

/* Fake loader: the id is "<name>:<bytes>". */
static int g_loads;
static sdrt_status fake_load(const char *id, struct sdrt_model **out, char *err, size_t errlen) {
    struct sdrt_model *m = calloc(1, sizeof *m);
    m->id = strdup(id);
    m->arch = "sd1";
    m->source = "diffusers";
    m->bytes = strtoull(strchr(id, ':') + 1, NULL, 10);
    g_loads++;
    *out = m;
    return SDRT_OK;
}

static int cached(model_cache *c, const char *id) {
    for (struct sdrt_model *m = c->head; m; m = m->next)
        if (!strcmp(m->id, id)) return 1;
    return 0;
}

static struct sdrt_model *open_ok(model_cache *c, const char *id) {
    struct sdrt_model *m = NULL;
    char err[256];
    sdrt_status st = cache_open(c, id, fake_load, &m, NULL, err, sizeof err);
    CHECK(st == SDRT_OK, "open %s: %s", id, err);
    return m;
}

static void test_cache_lru_order(void) {
    model_cache c;
    cache_init(&c, 100);
    cache_close(&c, open_ok(&c, "a:40"));
    cache_close(&c, open_ok(&c, "b:40"));
    cache_close(&c, open_ok(&c, "a:40")); /* a is now more recent than b */
    CHECK(g_loads == 2, "reopening a cached model must not load it (%d loads)", g_loads);
    cache_close(&c, open_ok(&c, "c:40")); /* evicts b, the LRU */
    CHECK(cached(&c, "a:40") && !cached(&c, "b:40") && cached(&c, "c:40"), "b should be evicted");
    CHECK(c.bytes == 80, "bytes %llu", (unsigned long long)c.bytes);
    cache_close(&c, open_ok(&c, "d:100")); /* evicts everything */
    CHECK(!cached(&c, "a:40") && !cached(&c, "c:40") && cached(&c, "d:100"), "all evicted for d");
    cache_destroy(&c);
}

static void test_cache_pinning(void) {
    model_cache c;
    cache_init(&c, 100);
    struct sdrt_model *a = open_ok(&c, "a:60"); /* stays pinned */
    cache_close(&c, open_ok(&c, "b:30"));
    cache_close(&c, open_ok(&c, "c:30")); /* must evict b, not the pinned a */
    CHECK(cached(&c, "a:60") && !cached(&c, "b:30") && cached(&c, "c:30"), "pinned a evicted?");
    struct sdrt_model *m = NULL;
    char err[256];
    sdrt_status st = cache_open(&c, "d:50", fake_load, &m, NULL, err, sizeof err);
    CHECK(st == SDRT_RESOURCE_EXHAUSTED && m == NULL, "d should not fit beside pinned a (st %d)", st);
    CHECK(strstr(err, "pinned"), "error: %s", err);
    CHECK(cached(&c, "a:60"), "a must survive");
    st = cache_open(&c, "e:500", fake_load, &m, NULL, err, sizeof err);
    CHECK(st == SDRT_RESOURCE_EXHAUSTED && strstr(err, "exceed"), "over budget alone: %s", err);
    CHECK(cache_unload(&c, "a:60", err, sizeof err) == SDRT_FAILED_PRECONDITION, "unloaded a pinned model");
    cache_close(&c, a);
    CHECK(cache_unload(&c, "a:60", err, sizeof err) == SDRT_OK, "%s", err);
    CHECK(cache_unload(&c, "a:60", err, sizeof err) == SDRT_NOT_FOUND, "double unload");
    char *list = cache_list_json(&c);
    CHECK(list && strstr(list, "\"budget_bytes\":100"), "list %s", list);
    free(list);
    cache_destroy(&c);
}

/* ---- lookup -------------------------------------------------------------- */

static void mkdirs(const char *path) {
    char buf[4200];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
    mkdir(buf, 0755);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_hf_cache_lookup(void) {
    const char *hub = test_tmpdir();
    char p[4200];
    snprintf(p, sizeof p, "%s/models--org--name/snapshots/abc123", hub);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/models--org--name/snapshots/old999", hub);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/models--org--name/refs", hub);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/models--org--name/refs/main", hub);
    write_file(p, "abc123\n");
    char *snap = lookup_hf_snapshot(hub, "org/name");
    CHECK(snap && strstr(snap, "/snapshots/abc123"), "snapshot %s", snap ? snap : "(null)");
    free(snap);
    unlink(p); /* no refs/main: the newest snapshot */
    snap = lookup_hf_snapshot(hub, "org/name");
    CHECK(snap != NULL, "fallback snapshot");
    free(snap);
    CHECK(lookup_hf_snapshot(hub, "org/../name") == NULL, "traversal accepted");
    CHECK(lookup_hf_snapshot(hub, "missing/repo") == NULL, "missing repo found");

    /* Through the resolver, with the hub in settings. */
    char settings[4400];
    snprintf(settings, sizeof settings, "{\"model_roots\":[],\"hf_cache\":[\"%s\"]}", hub);
    fake_settings = settings;
    lookup_cfg cfg;
    REQUIRE(lookup_init(&cfg, fake_host_api(), NULL) == 0, "init");
    char *path = NULL, err[512];
    sdrt_status st = lookup_resolve(&cfg, "org/name", &path, err, sizeof err);
    CHECK(st == SDRT_OK && path && strstr(path, "models--org--name/snapshots/"), "resolve: %s", err);
    free(path);
    st = lookup_resolve(&cfg, "org/other", &path, err, sizeof err);
    CHECK(st == SDRT_NOT_FOUND && strstr(err, "'org/other'"), "not found: %s", err);
    lookup_free(&cfg);
    fake_settings = "{}";
}

/* ---- plugin through the fake host ---------------------------------------- */

static sdrt_error *call(void *inst, const char *type, const char *data, cJSON **out) {
    sdrt_request req = {sizeof req, type, "r1", data, NULL, 0};
    char *res = NULL;
    sdrt_error *e = model_plugin_handle(inst, &req, &res);
    *out = res ? cJSON_Parse(res) : NULL;
    free(res);
    return e;
}

static double num(const cJSON *o, const char *k) { return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, k)); }
static const char *str(const cJSON *o, const char *k) { return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k)); }

static void test_plugin_messages(void) {
    char settings[4400];
    snprintf(settings, sizeof settings, "{\"model_roots\":[\"%s\"],\"allow_any_path\":false,\"hf_cache\":[]}",
             test_path("SDRT_REFERENCE", "tiny-sd15"));
    fake_settings = settings;
    const sdrt_host_api *api = fake_host_api();
    void *inst = NULL;
    sdrt_error *e = model_plugin_init(api, NULL, "{\"cache_bytes\": 1000000000}", &inst);
    REQUIRE(!e, "init: %s", e->message);
    CHECK(fake_published == model_plugin_get_interface(inst, SDRT_MODEL_IFACE_ID), "published iface");
    cJSON *r;
    e = call(inst, "model.load", "{\"model_id\":\"diffusers\"}", &r);
    CHECK(!e, "load by name: %s", e ? e->message : "");
    CHECK(r && !strcmp(str(r, "architecture"), "sd1") && !strcmp(str(r, "source"), "diffusers"), "load reply");
    CHECK(r && num(r, "tensors") > 600, "tensor count %g", num(r, "tensors"));
    cJSON_Delete(r);
    api->error_free(e);
    e = call(inst, "model.load", "{\"model_id\":\"tiny-sd15.safetensors\"}", &r);
    CHECK(!e && r && !strcmp(str(r, "source"), "single_file"), "single file: %s", e ? e->message : "");
    cJSON_Delete(r);
    api->error_free(e);
    e = call(inst, "model.list", "{}", &r);
    CHECK(!e && r && cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "models")) == 2, "list");
    cJSON_Delete(r);
    e = call(inst, "model.info", "{\"model_id\":\"tiny-sd15.safetensors\"}", &r);
    CHECK(!e && r && cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "component_details")) == 4, "info");
    cJSON_Delete(r);
    api->error_free(e);
    e = call(inst, "model.scan", "{}", &r);
    char *scan = r ? cJSON_PrintUnformatted(r) : NULL;
    CHECK(!e && scan && strstr(scan, "\"kind\":\"diffusers\"") && strstr(scan, "\"architecture\":\"sd1\""), "scan %s", scan);
    free(scan);
    cJSON_Delete(r);
    e = call(inst, "model.load", "{\"model_id\":\"/etc/passwd\"}", &r);
    CHECK(e && e->code == SDRT_PERMISSION_DENIED, "outside roots: %s", e ? e->message : "accepted");
    api->error_free(e);
    e = call(inst, "model.load", "{\"model_id\":\"nope/nothing\"}", &r);
    CHECK(e && e->code == SDRT_NOT_FOUND && strstr(e->message, "nope/nothing"), "not found: %s", e ? e->message : "");
    api->error_free(e);
    e = call(inst, "model.load", "{\"model_id\":3}", &r);
    CHECK(e && e->code == SDRT_INVALID_ARGUMENT && strstr(e->message, "model_id"), "bad type");
    api->error_free(e);
    e = call(inst, "model.unload", "{\"model_id\":\"diffusers\"}", &r);
    CHECK(!e, "unload: %s", e ? e->message : "");
    cJSON_Delete(r);
    api->error_free(e);
    e = call(inst, "model.unload", "{\"model_id\":\"diffusers\"}", &r);
    CHECK(e && e->code == SDRT_NOT_FOUND, "second unload");
    api->error_free(e);

    /* The native interface: tokenizer paths, configs and a tensor. */
    const sdrt_model_iface *mi = model_plugin_get_interface(inst, SDRT_MODEL_IFACE_ID);
    sdrt_model *m = NULL;
    e = mi->open(mi->self, "diffusers", NULL, &m);
    REQUIRE(!e && m, "open: %s", e ? e->message : "");
    CHECK(mi->file_path(m, "tokenizer", "vocab.json") != NULL, "tokenizer vocab path");
    CHECK(mi->file_path(m, "tokenizer", "../unet/config.json") == NULL, "path escape");
    CHECK(mi->config_json(m, "scheduler") && strstr(mi->config_json(m, "scheduler"), "PNDMScheduler"), "sched cfg");
    const sdrt_tensor *t = mi->tensor(m, "unet", "conv_in.weight");
    CHECK(t && t->ndim == 4 && t->shape[0] == 32 && t->dtype == SDRT_DTYPE_F32, "conv_in");
    mi->close(mi->self, m);
    model_plugin_shutdown(inst);
    fake_settings = "{}";
}

static void test_bad_file_is_invalid_argument(void) {
    char dir[4200], p[4300], settings[4400];
    snprintf(dir, sizeof dir, "%s", test_tmpdir());
    snprintf(p, sizeof p, "%s/broken.safetensors", dir);
    static const char img[] = "\x11\x00\x00\x00\x00\x00\x00\x00{\"a\":{\"dtype\":1}}";
    FILE *f = fopen(p, "wb");
    REQUIRE(f, "create %s", p);
    fwrite(img, 1, sizeof img - 1, f);
    fclose(f);
    snprintf(settings, sizeof settings, "{\"model_roots\":[\"%s\"]}", dir);
    fake_settings = settings;
    void *inst = NULL;
    sdrt_error *e = model_plugin_init(fake_host_api(), NULL, "{}", &inst);
    REQUIRE(!e, "init");
    cJSON *r;
    e = call(inst, "model.load", "{\"model_id\":\"broken.safetensors\"}", &r);
    CHECK(e && e->code == SDRT_INVALID_ARGUMENT && strstr(e->message, "broken.safetensors") &&
              strstr(e->message, "tensor 'a'"), "error: %s", e ? e->message : "accepted");
    fake_host_api()->error_free(e);
    model_plugin_shutdown(inst);
    e = model_plugin_init(fake_host_api(), NULL, "{\"cache_bytes\":\"lots\"}", &inst);
    CHECK(e && e->code == SDRT_INVALID_ARGUMENT && strstr(e->message, "cache_bytes"), "bad config accepted");
    fake_host_api()->error_free(e);
    fake_settings = "{}";
}

const test_entry TESTS[] = {
    {"st_rules", test_st_rules},
    {"st_header_length", test_st_header_length},
    {"st_valid", test_st_valid},
    {"st_open_file", test_st_open_file},
    {"st_index", test_st_index},
    {"pt_against_torch", test_pt_against_torch},
    {"pt_refusals", test_pt_refusals},
    {"pt_corruptions", test_pt_corruptions},
    {"map_tiny_sd15", test_map_tiny_sd15},
    {"map_tiny_sdxl", test_map_tiny_sdxl},
    {"config_tiny", test_config_tiny},
    {"full_key_coverage", test_full_key_coverage},
    {"cache_lru_order", test_cache_lru_order},
    {"cache_pinning", test_cache_pinning},
    {"hf_cache_lookup", test_hf_cache_lookup},
    {"plugin_messages", test_plugin_messages},
    {"bad_file_is_invalid_argument", test_bad_file_is_invalid_argument},
    {0},
};
