/* tests/host/test-host.c - unit tests of the host's protocol path:
 * envelope and JSON-RPC parsing, legacy forms, status table, path roots,
 * config validation (through the real binary). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "host.h"

static proto_request parse_ok(const char *line) {
    proto_request r;
    char err[512];
    sdrt_status st = proto_parse(line, strlen(line), &r, err, sizeof err);
    CHECK(st == SDRT_OK, "parse failed for %s: %s", line, err);
    return r;
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -12345;
}

static const char *str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void test_envelope(void) {
    proto_request r = parse_ok("{\"type\":\"inference.run\",\"message_id\":\"m1\",\"priority\":\"high\",\"timeout\":2.5,"
                               "\"data\":{\"prompt\":\"x\"}}");
    CHECK(strcmp(r.type, "inference.run") == 0, "type %s", r.type);
    CHECK(r.request_id && strcmp(r.request_id, "m1") == 0, "message_id is accepted for request_id");
    CHECK(r.priority == 2 && r.timeout_s == 2.5, "priority %d timeout %g", r.priority, r.timeout_s);
    CHECK(strcmp(str(r.data, "prompt"), "x") == 0, "data kept");
    proto_request_free(&r);
}

static void test_parse_errors(void) {
    static const struct {
        const char *line;
        sdrt_status code;
        const char *needle;
    } CASES[] = {
        {"{", SDRT_PARSE_ERROR, "not valid JSON"},
        {"{} trailing", SDRT_PARSE_ERROR, "trailing"},
        {"42", SDRT_INVALID_REQUEST, "object"},
        {"{\"request_id\":\"a\"}", SDRT_INVALID_REQUEST, "type: missing"},
        {"{\"type\":[]}", SDRT_INVALID_REQUEST, "type:"},
        {"{\"type\":\"a.b\",\"request_id\":{}}", SDRT_INVALID_REQUEST, "request_id"},
        {"{\"type\":\"a.b\",\"data\":\"s\"}", SDRT_INVALID_ARGUMENT, "data:"},
        {"{\"type\":\"a.b\",\"timeout\":\"soon\"}", SDRT_INVALID_ARGUMENT, "timeout"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1}", SDRT_INVALID_REQUEST, "method"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a.b\",\"params\":[1]}", SDRT_INVALID_ARGUMENT, "params"},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        proto_request r;
        char err[512] = "";
        sdrt_status st = proto_parse(CASES[i].line, strlen(CASES[i].line), &r, err, sizeof err);
        CHECK(st == CASES[i].code, "%s: status %s, expected %s", CASES[i].line, status_name(st),
              status_name(CASES[i].code));
        CHECK(strstr(err, CASES[i].needle) != NULL, "%s: message '%s' lacks '%s'", CASES[i].line, err, CASES[i].needle);
        proto_request_free(&r);
    }
    /* The id is reported even when the rest is broken. */
    proto_request r;
    char err[256];
    const char *line = "{\"request_id\":\"keep\",\"type\":7}";
    proto_parse(line, strlen(line), &r, err, sizeof err);
    CHECK(r.request_id && strcmp(r.request_id, "keep") == 0, "request_id read from a failing request");
    proto_request_free(&r);
}

static void test_jsonrpc(void) {
    proto_request r = parse_ok("{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"model.load\",\"params\":{\"model_id\":\"m\"}}");
    CHECK(r.proto == PROTO_JSONRPC && strcmp(r.type, "model.load") == 0 && cJSON_IsNumber(r.rpc_id), "rpc parsed");
    CHECK(strcmp(str(r.data, "model_id"), "m") == 0, "params become data");
    proto_request_free(&r);
    r = parse_ok("{\"jsonrpc\":\"2.0\",\"method\":\"$/cancelRequest\",\"params\":{\"id\":\"r7\"}}");
    CHECK(strcmp(r.type, "host.cancel") == 0 && strcmp(str(r.data, "request_id"), "r7") == 0 && r.is_notification,
          "$/cancelRequest maps to host.cancel of params.id");
    proto_request_free(&r);
}

static void test_legacy_types(void) {
    static const char *const PAIRS[][2] = {
        {"{\"type\":\"inference\"}", "inference.run"},
        {"{\"type\":\"health\"}", "host.health"},
        {"{\"type\":\"load_model\"}", "model.load"},
        {"{\"message_type\":\"inference_request\"}", "inference.run"},
        {"{\"message_type\":\"model_load_request\"}", "model.load"},
        {"{\"message_type\":\"status_request\"}", "host.health"},
    };
    for (size_t i = 0; i < sizeof PAIRS / sizeof PAIRS[0]; i++) {
        proto_request r = parse_ok(PAIRS[i][0]);
        CHECK(r.type && strcmp(r.type, PAIRS[i][1]) == 0, "%s -> %s, expected %s", PAIRS[i][0], r.type, PAIRS[i][1]);
        proto_request_free(&r);
    }
}

static void test_legacy_nested(void) {
    proto_request r = parse_ok("{\"message_type\":\"inference_request\",\"request_id\":\"q\",\"model_name\":\"sdxl\","
                               "\"prompt\":\"cat\",\"hyperparameters\":{\"num_inference_steps\":20,\"guidance_scale\":5,"
                               "\"seed\":7},\"dimensions\":{\"width\":768,\"height\":512}}");
    CHECK(strcmp(str(r.data, "model_id"), "sdxl") == 0, "model_name -> model_id");
    CHECK(num(r.data, "num_inference_steps") == 20 && num(r.data, "guidance_scale") == 5 && num(r.data, "seed") == 7,
          "hyperparameters flattened");
    CHECK(num(r.data, "width") == 768 && num(r.data, "height") == 512, "dimensions flattened");
    CHECK(!cJSON_GetObjectItemCaseSensitive(r.data, "hyperparameters"), "nested object removed");
    CHECK(strcmp(str(r.data, "prompt"), "cat") == 0 && !cJSON_GetObjectItemCaseSensitive(r.data, "request_id"),
          "top-level payload becomes data without envelope keys");
    proto_request_free(&r);
}

static void test_legacy_upscaler_worker(void) {
    proto_request r = parse_ok("{\"type\":\"upscaler_worker\",\"request_id\":\"u\",\"image_path\":\"a.png\","
                               "\"model_name\":\"RealESRGAN_x4plus\",\"scale_factor\":4,\"output_dir\":\"up\"}");
    CHECK(strcmp(r.type, "postprocess.upscale") == 0, "type %s", r.type);
    CHECK(strcmp(str(r.data, "image"), "a.png") == 0 && strcmp(str(r.data, "upscaler"), "RealESRGAN_x4plus") == 0 &&
              num(r.data, "scale") == 4 && strcmp(str(cJSON_GetObjectItemCaseSensitive(r.data, "output"), "dir"), "up") == 0,
          "fields mapped");
    proto_request_free(&r);
    /* An inference request naming the upscaler worker is no txt2img. */
    r = parse_ok("{\"type\":\"inference\",\"request_id\":\"v\",\"worker\":\"upscaler_worker\",\"image_path\":\"b.png\","
                 "\"model_name\":\"lanczos\",\"scale_factor\":2}");
    CHECK(strcmp(r.type, "postprocess.upscale") == 0 && strcmp(str(r.data, "upscaler"), "lanczos") == 0 &&
              !cJSON_GetObjectItemCaseSensitive(r.data, "worker"),
          "worker form: %s", r.type);
    proto_request_free(&r);
}

static void test_legacy_enhanced_sdxl(void) {
    proto_request r = parse_ok(
        "{\"type\":\"inference\",\"request_id\":\"e\",\"data\":{\"Model\":{\"Base\":\"base\",\"Refiner\":\"ref\","
        "\"Vae\":\"\"},\"Scheduler\":{\"Type\":\"DPM++ 2M Karras\",\"Steps\":25},\"Hyperparameters\":{"
        "\"GuidanceScale\":6.5,\"Seed\":42},\"Conditioning\":{\"Prompt\":\"p\",\"NegativePrompt\":\"n\",\"LoRAs\":["
        "{\"Name\":\"style\",\"Weight\":0.7}]}}}");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(r.data, "model_id");
    CHECK(cJSON_IsObject(m) && strcmp(str(m, "base"), "base") == 0 && strcmp(str(m, "refiner"), "ref") == 0 &&
              !cJSON_GetObjectItemCaseSensitive(m, "vae"),
          "Model{Base,Refiner} -> model_id{base,refiner}, empty Vae dropped");
    CHECK(strcmp(str(r.data, "scheduler"), "DPM++ 2M Karras") == 0 && num(r.data, "num_inference_steps") == 25,
          "Scheduler mapped");
    CHECK(num(r.data, "guidance_scale") == 6.5 && num(r.data, "seed") == 42, "Hyperparameters mapped");
    CHECK(strcmp(str(r.data, "prompt"), "p") == 0 && strcmp(str(r.data, "negative_prompt"), "n") == 0,
          "Conditioning mapped");
    const cJSON *lora = cJSON_GetObjectItemCaseSensitive(r.data, "lora");
    const cJSON *a0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(lora, "adapters"), 0);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(lora, "enabled")) && strcmp(str(a0, "model_id"), "style") == 0 &&
              num(a0, "weight") == 0.7,
          "LoRAs -> lora.adapters");
    proto_request_free(&r);
    r = parse_ok("{\"type\":\"inference\",\"data\":{\"Model\":{\"Base\":\"only\"}}}");
    CHECK(strcmp(str(r.data, "model_id"), "only") == 0, "a lone Base becomes a string model_id");
    proto_request_free(&r);
}

static void test_status_table(void) {
    CHECK(strcmp(status_name(SDRT_NOT_FOUND), "NOT_FOUND") == 0, "names");
    CHECK(status_rpc_code(SDRT_PARSE_ERROR) == -32700 && status_rpc_code(SDRT_INVALID_REQUEST) == -32600 &&
              status_rpc_code(SDRT_UNKNOWN_TYPE) == -32601 && status_rpc_code(SDRT_INVALID_ARGUMENT) == -32602 &&
              status_rpc_code(SDRT_INTERNAL) == -32603 && status_rpc_code(SDRT_CANCELLED) == -32800,
          "JSON-RPC codes as DESIGN.md section 5");
    for (int i = 0; i < SDRT_STATUS_COUNT_; i++) {
        CHECK((int)status_from_name(status_name((sdrt_status)i)) == i, "round trip %d", i);
        int c = status_rpc_code((sdrt_status)i);
        CHECK(i == 0 || c == -32700 || (c >= -32603 && c <= -32600) || c == -32800 || (c <= -32000 && c >= -32099),
              "%s code %d in the allowed ranges", status_name((sdrt_status)i), c);
    }
}

static void test_paths(void) {
    const char *root = test_tmpdir();
    char sub[4200], outside[4200];
    snprintf(sub, sizeof sub, "%s/models", root);
    mkdir(sub, 0755);
    char *roots[] = {sub};
    sdrt_error *e = NULL;
    char *p = paths_resolve("a/b.safetensors", roots, 1, 0, "model", &e);
    CHECK(p && strncmp(p, sub, strlen(sub)) == 0 && !e, "relative path resolves under the first root");
    free(p);
    p = paths_resolve("../escape", roots, 1, 0, "model", &e);
    CHECK(!p && e && e->code == SDRT_PERMISSION_DENIED, "'..' out of the root is refused");
    error_free(e);
    e = NULL;
    snprintf(outside, sizeof outside, "%s/elsewhere", root);
    p = paths_resolve(outside, roots, 1, 0, "output", &e);
    CHECK(!p && e && e->code == SDRT_PERMISSION_DENIED && strstr(e->message, "outside"), "absolute outside refused");
    error_free(e);
    e = NULL;
    p = paths_resolve(outside, roots, 1, 1, "output", &e);
    CHECK(p != NULL, "allow_any_path lets it through");
    free(p);
    char link[4300];
    snprintf(link, sizeof link, "%s/link", sub);
    CHECK(symlink("/etc", link) == 0, "symlink");
    p = paths_resolve("link/passwd", roots, 1, 0, "model", &e);
    CHECK(!p && e && e->code == SDRT_PERMISSION_DENIED, "a symlink out of the root is refused");
    error_free(e);
}

/* Runs the real binary; returns exit status and its stderr in err. */
static int run_sdrt(const char *args, char *err, size_t errlen) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "\"%s/bin/sdrt\" %s </dev/null 2>&1 >/dev/null", getenv("SDRT_BUILD_DIR"), args);
    FILE *f = popen(cmd, "r");
    size_t n = f ? fread(err, 1, errlen - 1, f) : 0;
    err[n] = '\0';
    int st = f ? pclose(f) : -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_bad_config(void) {
    const char *dir = test_tmpdir();
    char path[4200], args[8400], out[8192];
    static const struct {
        const char *json, *needle;
    } CASES[] = {
        {"{\"workers\":\"two\"}", "workers"},
        {"{\"workers\":0}", "workers"},
        {"{\"log_level\":\"loud\"}", "log_level"},
        {"{\"wrokers\":2}", "wrokers"},
        {"{\"plugins\":{\"device\":{\"enabled\":\"yes\"}}}", "enabled"},
        {"[1,2]", "config"},
        {"{not json", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        snprintf(path, sizeof path, "%s/c%zu.json", dir, i);
        FILE *f = fopen(path, "w");
        fputs(CASES[i].json, f);
        fclose(f);
        snprintf(args, sizeof args, "serve --config %s", path);
        int rc = run_sdrt(args, out, sizeof out);
        CHECK(rc != 0, "%s: exit %d, expected non-zero", CASES[i].json, rc);
        CHECK(strstr(out, CASES[i].needle) != NULL, "%s: stderr '%s' does not name '%s'", CASES[i].json, out,
              CASES[i].needle);
    }
    int rc = run_sdrt("serve --set workers=-1", out, sizeof out);
    CHECK(rc != 0 && strstr(out, "workers"), "--set is validated too: %s", out);
    setenv("SDRT_CONFIG", "/nonexistent/sdrt.json", 1);
    rc = run_sdrt("serve", out, sizeof out);
    unsetenv("SDRT_CONFIG");
    CHECK(rc != 0 && strstr(out, "/nonexistent/sdrt.json"), "SDRT_CONFIG is honoured: %s", out);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    REQUIRE(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* Every $ref of the schema set is resolved at start: a deployment whose
 * schemas are broken is refused before it serves, with the schema and the
 * reference named, instead of answering INTERNAL on some later request. */
static void test_schema_refs_checked_at_start(void) {
    char dir[4200], sub[4300], path[4400], args[9000], out[8192];
    snprintf(dir, sizeof dir, "%s/schemas", test_tmpdir());
    snprintf(sub, sizeof sub, "%s/messages", dir);
    REQUIRE(mkdir(dir, 0755) == 0 && mkdir(sub, 0755) == 0, "mkdir %s", sub);
    snprintf(path, sizeof path, "%s/config.schema.json", dir);
    write_text(path, "{\"$id\":\"config.schema.json\",\"type\":\"object\"}");
    snprintf(path, sizeof path, "%s/messages/echo.run.json", dir);
    write_text(path, "{\"$id\":\"https://sdrt.dev/t/messages/echo.run.json\",\"type\":\"object\",\"properties\":{\"x\":{\"$ref\":\"../common.schema.json#/$defs/gone\"}}}");
    snprintf(args, sizeof args, "serve --set 'plugin_paths=[\"/nonexistent\"]' --set schemas_dir=%s", dir);
    int rc = run_sdrt(args, out, sizeof out);
    CHECK(rc != 0, "a schema set with a dangling $ref should stop the start (exit %d)", rc);
    CHECK(strstr(out, "messages/echo.run.json") && strstr(out, "../common.schema.json#/$defs/gone"),
          "stderr should name the schema and the reference: %s", out);
    /* The same set with the reference resolvable starts and serves. */
    snprintf(path, sizeof path, "%s/common.schema.json", dir);
    write_text(path, "{\"$id\":\"https://sdrt.dev/t/common.schema.json\",\"$defs\":{\"gone\":{\"type\":\"string\"}}}");
    rc = run_sdrt(args, out, sizeof out);
    CHECK(rc == 0, "with the reference resolvable the host should start and exit 0 on EOF: %d %s", rc, out);
}

const test_entry TESTS[] = {
    {"envelope", test_envelope},
    {"parse_errors", test_parse_errors},
    {"jsonrpc", test_jsonrpc},
    {"legacy_types", test_legacy_types},
    {"legacy_nested", test_legacy_nested},
    {"legacy_upscaler_worker", test_legacy_upscaler_worker},
    {"legacy_enhanced_sdxl", test_legacy_enhanced_sdxl},
    {"status_table", test_status_table},
    {"paths", test_paths},
    {"bad_config", test_bad_config},
    {"schema_refs_checked_at_start", test_schema_refs_checked_at_start},
    {NULL, NULL},
};
