/* tests/schema/test_schema.c - host/schema.c: the real schemas load, the
 * corpus verdicts agree with Python's jsonschema, messages name the path. */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"
#include "schema.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf) buf[n] = 0;
    fclose(f);
    return buf;
}

static schema_set *load_real(void) {
    char err[512] = "";
    schema_set *s = schema_set_load_dir(test_path("SDRT_SOURCE_DIR", "schemas"), err, sizeof err);
    if (!s) test_fail_(__FILE__, __LINE__, "load: %s", err);
    return s;
}

static void test_load_dir(void) {
    schema_set *s = load_real();
    REQUIRE(s, "schemas did not load");
    char err[512] = "";
    CHECK(schema_set_check_refs(s, err, sizeof err) == 0, "refs: %s", err);
    CHECK(schema_set_count(s) >= 25, "only %zu schemas", schema_set_count(s));
    schema_set_free(s);
}

static void test_message_map(void) {
    static const char *const types[] = {
        "host.health", "host.info", "host.plugins", "host.jobs", "host.cancel", "host.shutdown",
        "host.pause", "host.resume", "device.list", "device.info", "device.memory", "model.load",
        "model.unload", "model.list", "model.scan", "model.info", "model.convert", "scheduler.list", "scheduler.sigmas",
        "conditioning.tokenize", "conditioning.encode", "inference.run", "postprocess.decode", "postprocess.upscale",
        "postprocess.safety_check", NULL};
    schema_set *s = load_real();
    REQUIRE(s, "schemas did not load");
    for (int i = 0; types[i]; i++) {
        const char *id = schema_for_message(s, types[i]);
        CHECK(id != NULL, "no schema for %s", types[i]);
        if (id) CHECK(strstr(id, types[i]) != NULL, "%s maps to %s", types[i], id);
    }
    CHECK(schema_for_message(s, "nope.nothing") == NULL, "unknown type has a schema");
    schema_set_free(s);
}

/* The message for `json` against `id`; "" when valid. */
static const char *message_for(schema_set *s, const char *id, const char *json) {
    static char err[512];
    cJSON *doc = cJSON_Parse(json);
    if (!doc) return "(bad test json)";
    int rc = schema_validate(s, id, doc, err, sizeof err);
    cJSON_Delete(doc);
    if (rc == 0) err[0] = 0;
    return err;
}

static void test_messages(void) {
    schema_set *s = load_real();
    REQUIRE(s, "schemas did not load");
    const char *run = schema_for_message(s, "inference.run");
    const char *m = message_for(s, run, "{\"model_id\":\"m\",\"width\":10000}");
    CHECK(strcmp(m, "data.width: 10000 is greater than the maximum 8192") == 0, "got '%s'", m);
    m = message_for(s, run, "{\"model_id\":\"m\",\"prompt\":5}");
    CHECK(strcmp(m, "data.prompt: expected string, got number 5") == 0, "got '%s'", m);
    m = message_for(s, run, "{\"prompt\":\"x\"}");
    CHECK(strcmp(m, "data: missing required property \"model_id\"") == 0, "got '%s'", m);
    m = message_for(s, run, "{\"model_id\":\"m\",\"lora\":{\"adapters\":[{\"model_id\":\"a\",\"weight\":\"x\"}]}}");
    CHECK(strcmp(m, "data.lora.adapters[0].weight: expected number, got string") == 0, "got '%s'", m);
    m = message_for(s, run, "{\"model_id\":\"m\",\"seed\":-2}");
    CHECK(strcmp(m, "data.seed: -2 is less than the minimum -1") == 0, "got '%s'", m);
    m = message_for(s, "messages/device.info.json", "{\"device\":\"tpu:0\"}");
    CHECK(strstr(m, "data.device: \"tpu:0\" does not match the pattern") == m, "got '%s'", m);
    const char *up = schema_for_message(s, "postprocess.upscale");
    m = message_for(s, up, "{\"image\":\"a.png\",\"upscaler\":\"x\",\"tile\":-1}");
    CHECK(strcmp(m, "data.tile: -1 is less than the minimum 0") == 0, "got '%s'", m);
    m = message_for(s, up, "{\"image\":\"a.png\",\"output\":{\"save_npy\":1}}");
    CHECK(strstr(m, "data.output.save_npy") == m, "got '%s'", m);
    m = message_for(s, up, "{\"image\":\"a.png\",\"upscaler\":\"lanczos\",\"scale\":2.5,\"output\":{\"dir\":\"o\",\"save_npy\":true}}");
    CHECK(m[0] == 0, "valid upscale refused: '%s'", m);
    cJSON *doc = cJSON_Parse("{\"log_level\":\"loud\"}");
    char err[512];
    CHECK(schema_validate_at(s, "config.schema.json", doc, "config", err, sizeof err) == 1, "bad config passed");
    CHECK(strcmp(err, "config.log_level: \"loud\" is not one of \"error\", \"warn\", \"info\", \"debug\"") == 0,
          "got '%s'", err);
    cJSON_Delete(doc);
    CHECK(schema_validate(s, "no-such-schema", NULL, err, sizeof err) == -1, "unknown id accepted");
    schema_set_free(s);
}

/* Every corpus document gets the verdict Python's jsonschema gave it, and
 * an invalid one's message starts with a path jsonschema reported, or one
 * below it: jsonschema reports a failing `false` subschema (properties
 * {"a": false}) at the parent object, where sdrt names the member. */
static void check_case(schema_set *s, const char *file, const cJSON *c, const cJSON *verdict) {
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(c, "schema");
    const cJSON *doc = cJSON_GetObjectItemCaseSensitive(c, "doc");
    char name[300], err[512] = "";
    snprintf(name, sizeof name, "corpus/%s", file);
    const char *id = cJSON_IsString(schema) ? schema->valuestring : name;
    if (!cJSON_IsString(schema)) {
        char *text = cJSON_PrintUnformatted(schema);
        int rc = schema_set_add_json(s, name, text, err, sizeof err);
        free(text);
        if (rc != 0) {
            test_fail_(__FILE__, __LINE__, "%s: inline schema refused: %s", file, err);
            return;
        }
    }
    int rc = schema_validate(s, id, doc, err, sizeof err);
    int want_valid = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(verdict, "valid"));
    CHECK(rc >= 0, "%s: schema error: %s", file, err);
    CHECK((rc == 0) == want_valid, "%s: C says %s (%s), jsonschema says %s", file, rc == 0 ? "valid" : "invalid",
          err, want_valid ? "valid" : "invalid");
    if (rc <= 0 || want_valid) return;
    const cJSON *p;
    int named = 0;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(verdict, "paths")) {
        size_t n = strlen(p->valuestring);
        if (strncmp(err, p->valuestring, n) != 0) continue;
        if (strncmp(err + n, ": ", 2) == 0 || err[n] == '.' || err[n] == '[') named = 1;
    }
    CHECK(named, "%s: message '%s' names none of jsonschema's paths", file, err);
}

static void test_corpus(void) {
    schema_set *s = load_real();
    REQUIRE(s, "schemas did not load");
    char *vtext = read_text(test_path("SDRT_SOURCE_DIR", "tests/schema/verdicts.json"));
    cJSON *verdicts = vtext ? cJSON_Parse(vtext) : NULL;
    free(vtext);
    const char *dir = test_path("SDRT_SOURCE_DIR", "tests/schema/corpus");
    DIR *d = opendir(dir);
    if (!verdicts || !d) {
        test_fail_(__FILE__, __LINE__, "cannot read verdicts.json or %s", dir);
        if (d) closedir(d);
        cJSON_Delete(verdicts);
        schema_set_free(s);
        return;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *text = read_text(path);
        cJSON *c = text ? cJSON_Parse(text) : NULL;
        free(text);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(verdicts, e->d_name);
        CHECK(c && v, "%s: unreadable or without a verdict (rerun gen_verdicts.py)", e->d_name);
        if (c && v) check_case(s, e->d_name, c, v);
        cJSON_Delete(c);
        n++;
    }
    closedir(d);
    CHECK(n >= 60 && n == cJSON_GetArraySize(verdicts), "%d corpus files, %d verdicts", n,
          cJSON_GetArraySize(verdicts));
    cJSON_Delete(verdicts);
    schema_set_free(s);
}

static int add_inline(schema_set *s, const char *name, const char *text, char *err, size_t n) {
    return schema_set_add_json(s, name, text, err, n);
}

static void test_load_refusals(void) {
    schema_set *s = schema_set_new();
    char err[512];
    CHECK(add_inline(s, "a.json", "{\"pattern\":\"(?=x)\"}", err, sizeof err) != 0, "lookahead accepted");
    CHECK(strstr(err, "a.json") && strstr(err, "pattern"), "message '%s'", err);
    CHECK(add_inline(s, "b.json", "{\"properties\":{\"x\":{\"if\":{}}}}", err, sizeof err) != 0, "if accepted");
    CHECK(strstr(err, "\"if\""), "message '%s'", err);
    CHECK(add_inline(s, "c.json", "{\"type\":", err, sizeof err) != 0, "broken JSON accepted");
    CHECK(add_inline(s, "d.json", "{\"$ref\":\"other.json#/x\"}", err, sizeof err) == 0, "d: %s", err);
    CHECK(schema_set_check_refs(s, err, sizeof err) != 0 && strstr(err, "other.json"), "message '%s'", err);
    CHECK(add_inline(s, "d.json", "{}", err, sizeof err) != 0, "duplicate name accepted");
    /* enum values are data: a "pattern" member inside them is not checked */
    CHECK(add_inline(s, "e.json", "{\"enum\":[{\"pattern\":\"(?=\"}]}", err, sizeof err) == 0, "e: %s", err);
    schema_set_free(s);
}

static void test_hostile_inputs(void) {
    schema_set *s = schema_set_new();
    char err[512];
    REQUIRE(add_inline(s, "cycle.json", "{\"$ref\":\"#\"}", err, sizeof err) == 0, "%s", err);
    REQUIRE(add_inline(s, "evil.json", "{\"pattern\":\"^(a+)+$\"}", err, sizeof err) == 0, "%s", err);
    REQUIRE(add_inline(s, "tree.json", "{\"items\":{\"$ref\":\"#\"}}", err, sizeof err) == 0, "%s", err);
    cJSON *num = cJSON_CreateNumber(1);
    CHECK(schema_validate(s, "cycle.json", num, err, sizeof err) == -1 && strstr(err, "recursion"), "'%s'", err);
    cJSON_Delete(num);
    char text[64];
    memset(text, 'a', 40);
    strcpy(text + 40, "b");
    cJSON *str = cJSON_CreateString(text);
    CHECK(schema_validate(s, "evil.json", str, err, sizeof err) == 1 && strstr(err, "too costly"), "'%s'", err);
    cJSON_Delete(str);
    /* an instance nested deeper than the depth limit fails cleanly */
    char deep[2 * 400 + 1];
    memset(deep, '[', 400);
    memset(deep + 400, ']', 400);
    deep[800] = 0;
    cJSON *arr = cJSON_Parse(deep);
    REQUIRE(arr, "deep array did not parse");
    CHECK(schema_validate(s, "tree.json", arr, err, sizeof err) == -1, "deep instance: '%s'", err);
    cJSON_Delete(arr);
    schema_set_free(s);
}

const test_entry TESTS[] = {
    {"load_dir", test_load_dir},
    {"message_map", test_message_map},
    {"messages", test_messages},
    {"corpus", test_corpus},
    {"load_refusals", test_load_refusals},
    {"hostile_inputs", test_hostile_inputs},
    {0},
};
