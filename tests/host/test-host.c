/* tests/host/test-host.c - unit tests of the host's protocol path:
 * envelope and JSON-RPC parsing, legacy forms, status table, path roots,
 * config validation (through the real binary). */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "host.h"
#include "schema.h"

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

/* Roots: explicit ones replace the working-directory defaults, a named root
 * that does not exist stops the start naming it, a missing default is left
 * out, and refusals say which roots they mean. */
static void test_roots(void) {
    char out[8192], cwd[4096], dir[4200], outputs[4300];
    int rc = run_sdrt("serve --output-root /nonexistent/sdrt-out", out, sizeof out);
    CHECK(rc != 0 && strstr(out, "output_roots") && strstr(out, "/nonexistent/sdrt-out"),
          "a missing --output-root must stop the start naming it: exit %d, %s", rc, out);
    rc = run_sdrt("serve --set 'model_roots=[\"/nonexistent/sdrt-models\"]'", out, sizeof out);
    CHECK(rc != 0 && strstr(out, "model_roots") && strstr(out, "/nonexistent/sdrt-models"),
          "a missing configured model root must stop the start: exit %d, %s", rc, out);

    /* In a working directory whose outputs/ exists, the default root is
     * used; --output-root replaces it (does not add to it). */
    REQUIRE(getcwd(cwd, sizeof cwd), "getcwd");
    snprintf(dir, sizeof dir, "%s", test_tmpdir());
    snprintf(outputs, sizeof outputs, "%s/outputs", dir);
    REQUIRE(mkdir(outputs, 0755) == 0 && chdir(dir) == 0, "fixture");
    unsetenv("SDRT_CONFIG");
    host_config cfg;
    char err[1024];
    REQUIRE(config_load(&cfg, NULL, err, sizeof err) == 0, "defaults: %s", err);
    CHECK(cfg.n_output_roots == 1 && strcmp(cfg.output_roots[0], "outputs") == 0, "default output root kept");
    CHECK(cfg.n_model_roots == 0, "the missing default models/ is left out, not an error (%d)", cfg.n_model_roots);
    config_free(&cfg);
    const char *named[] = {dir};
    host_cli_overrides ov = {0};
    ov.output_roots = named;
    ov.n_output_roots = 1;
    ov.model_roots = named;
    ov.n_model_roots = 1;
    REQUIRE(config_load(&cfg, &ov, err, sizeof err) == 0, "explicit: %s", err);
    CHECK(cfg.n_output_roots == 1 && strcmp(cfg.output_roots[0], dir) == 0,
          "--output-root replaces the default (%d roots, first %s)", cfg.n_output_roots,
          cfg.n_output_roots ? cfg.output_roots[0] : "-");
    CHECK(cfg.n_model_roots == 1 && strcmp(cfg.model_roots[0], dir) == 0, "--model-root replaces the default");
    config_free(&cfg);
    REQUIRE(chdir(cwd) == 0, "chdir back");

    /* Refusals name the kind of path and the roots, not a field "output:". */
    sdrt_error *e = NULL;
    char *p = paths_resolve("x.png", NULL, 0, 0, "output", &e);
    CHECK(!p && e && e->code == SDRT_PERMISSION_DENIED && strstr(e->message, "no output roots are configured"),
          "no roots: %s", e ? e->message : "accepted");
    error_free(e);
    e = NULL;
    char *roots[] = {dir};
    p = paths_resolve("/etc/passwd", roots, 1, 0, "output", &e);
    CHECK(!p && e && strstr(e->message, "outside the allowed output roots") && strstr(e->message, dir) &&
              strncmp(e->message, "output:", 7) != 0,
          "outside: %s", e ? e->message : "accepted");
    error_free(e);
}

/* A model named by a path relative to the working directory is that file
 * (it used to be looked up under the model roots: "<root>/m/m"). */
static void test_relative_model_path(void) {
    char cwd[4096], args[4600], out[8192], dir[4200];
    REQUIRE(getcwd(cwd, sizeof cwd), "getcwd");
    snprintf(dir, sizeof dir, "%s", test_tmpdir());
    REQUIRE(chdir(test_path("SDRT_REFERENCE", "tiny-sd15")) == 0, "chdir to the reference model");
    snprintf(args, sizeof args, "generate --model diffusers --prompt fox -W 64 -H 64 -s 1 -o %s", dir);
    int rc = run_sdrt(args, out, sizeof out);
    CHECK(rc == 0, "--model diffusers: exit %d: %s", rc, out);
    snprintf(args, sizeof args, "generate --model ./tiny-sd15.safetensors --prompt fox -W 64 -H 64 -s 1 -o %s", dir);
    rc = run_sdrt(args, out, sizeof out);
    CHECK(rc == 0, "--model ./tiny-sd15.safetensors: exit %d: %s", rc, out);
    REQUIRE(chdir(cwd) == 0, "chdir back");
}

/* Runs `sdrt serve ARGS` with one request line on stdin; its stdout in out. */
static int serve_one(const char *args, const char *request, char *out, size_t outlen) {
    char req_path[4300], cmd[16384];
    snprintf(req_path, sizeof req_path, "%s/request.jsonl", test_tmpdir());
    FILE *rf = fopen(req_path, "w");
    if (!rf) return -1;
    fprintf(rf, "%s\n", request);
    fclose(rf);
    snprintf(cmd, sizeof cmd, "\"%s/bin/sdrt\" serve %s <%s 2>/dev/null", getenv("SDRT_BUILD_DIR"), args, req_path);
    FILE *f = popen(cmd, "r");
    size_t n = f ? fread(out, 1, outlen - 1, f) : 0;
    out[n] = '\0';
    int st = f ? pclose(f) : -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* With the real host and plugins: a model folder inside the root whose
 * unet/ links outside it is refused naming the file, and a FIFO named as
 * init_image answers at once. */
static void test_confinement_end_to_end(void) {
    char root[2048], p[4096], args[4600], req[8192], out[16384];
    snprintf(root, sizeof root, "%s", test_tmpdir());
    snprintf(p, sizeof p, "%s/m", root);
    REQUIRE(mkdir(p, 0755) == 0, "mkdir %s", p);
    snprintf(p, sizeof p, "%s/m/model_index.json", root);
    write_text(p, "{\"_class_name\":\"StableDiffusionPipeline\",\"unet\":[\"diffusers\",\"UNet2DConditionModel\"]}");
    snprintf(p, sizeof p, "%s/m/unet", root);
    REQUIRE(symlink(test_path("SDRT_REFERENCE", "tiny-sd15/diffusers/unet"), p) == 0, "symlink %s", p);
    snprintf(p, sizeof p, "%s/in.png", root);
    REQUIRE(mkfifo(p, 0600) == 0, "mkfifo %s", p);
    snprintf(args, sizeof args, "--model-root %s --output-root %s", root, root);
    snprintf(req, sizeof req, "{\"type\":\"model.load\",\"request_id\":\"u\",\"data\":{\"model_id\":\"m\"}}");
    int rc = serve_one(args, req, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "\"PERMISSION_DENIED\"") && strstr(out, "unet/diffusion_pytorch_model.safetensors"),
          "unet/ linking out: exit %d: %s", rc, out);
    snprintf(req, sizeof req,
             "{\"type\":\"inference.run\",\"request_id\":\"f\",\"data\":{\"model_id\":\"%s\",\"prompt\":\"x\","
             "\"init_image\":\"in.png\",\"width\":64,\"height\":64,\"num_inference_steps\":1}}",
             test_path("SDRT_REFERENCE", "tiny-sd15/tiny-sd15.safetensors"));
    snprintf(args, sizeof args, "--model-root %s --model-root %s --output-root %s", root,
             test_path("SDRT_REFERENCE", "tiny-sd15"), root);
    alarm(60); /* the worker used to block in open(2) and the host never answered */
    rc = serve_one(args, req, out, sizeof out);
    alarm(0);
    CHECK(rc == 0 && strstr(out, "\"request_id\":\"f\"") && strstr(out, "FIFO") && strstr(out, "init_image"),
          "FIFO init_image: exit %d: %s", rc, out);
}

/* `sdrt generate --model demo-model` and `--model ./demo-model` name a folder
 * in the working directory: the request must carry its absolute path (the
 * fakerun plugin answers with what resolve_path makes of model_id). */
static void test_generate_relative_model(void) {
    char dir[4096], model[4200], cmd[20000];
    snprintf(dir, sizeof dir, "%s/gen-rel", test_tmpdir());
    mkdir(dir, 0755);
    snprintf(model, sizeof model, "%s/demo-model", dir);
    mkdir(model, 0755);
    char *real = realpath(model, NULL);
    REQUIRE(real, "cannot make %s", model);
    const char *forms[] = {"demo-model", "./demo-model", "../gen-rel/demo-model"};
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd,
                 "cd '%s' && \"%s/bin/sdrt\" generate --set 'plugin_paths=[\"%s/tests/plugins/fakerun\"]' "
                 "--model %s --prompt x -o out </dev/null 2>/dev/null",
                 dir, getenv("SDRT_BUILD_DIR"), getenv("SDRT_BUILD_DIR"), forms[i]);
        FILE *f = popen(cmd, "r");
        char out[8192] = {0};
        size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
        out[n] = '\0';
        int st = f ? pclose(f) : -1;
        while (n > 0 && out[n - 1] == '\n') out[--n] = '\0';
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "--model %s: exit status %d", forms[i], st);
        CHECK(strcmp(out, real) == 0, "--model %s reached the plugin as '%s', expected '%s'", forms[i], out, real);
    }
    free(real);
}

/* Every command answers --help with its usage on stdout and status 0. */
static void test_every_command_has_help(void) {
    const char *cmds[] = {"--help", "serve --help", "generate --help", "plugins --help", "validate-plugin --help",
                          "version --help", "generate -h"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "\"%s/bin/sdrt\" %s </dev/null 2>/dev/null", getenv("SDRT_BUILD_DIR"), cmds[i]);
        FILE *f = popen(cmd, "r");
        char out[8192] = {0};
        size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
        int st = f ? pclose(f) : -1;
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "sdrt %s: exit status %d", cmds[i], st);
        CHECK(n > 0 && strstr(out, "usage: sdrt"), "sdrt %s: no usage on stdout", cmds[i]);
    }
}

/* The id limit is one rule: schemas/envelope.schema.json (through
 * common.schema.json) and proto_parse accept and refuse the same ids,
 * counted in characters, for both envelope and JSON-RPC. */
static void test_id_limit_schema_and_parser_agree(void) {
    char err[1024];
    schema_set *s = schema_set_load_dir(test_path("SDRT_SOURCE_DIR", "schemas"), err, sizeof err);
    REQUIRE(s, "schemas: %s", err);
    const char *units[] = {"x", "\xc3\xa9", "\xf0\x9f\x98\x80"}; /* 1-, 2- and 4-byte characters */
    for (int u = 0; u < 3; u++)
        for (int n = 255; n <= 257; n++)
            for (int rpc = 0; rpc < 2; rpc++) {
                char id[2048] = "";
                for (int i = 0; i < n; i++) strcat(id, units[u]);
                char line[2300];
                snprintf(line, sizeof line,
                         rpc ? "{\"jsonrpc\":\"2.0\",\"id\":\"%s\",\"method\":\"host.health\"}"
                             : "{\"type\":\"host.health\",\"request_id\":\"%s\"}",
                         id);
                cJSON *doc = cJSON_Parse(line);
                int schema_ok = schema_validate(s, "envelope.schema.json", doc, err, sizeof err) == 0;
                cJSON_Delete(doc);
                proto_request req;
                int parse_ok = proto_parse(line, strlen(line), &req, err, sizeof err) == SDRT_OK;
                if (!parse_ok)
                    CHECK(strstr(err, "exceed the limit of 256"), "%d chars: parser says '%s'", n, err);
                proto_request_free(&req);
                CHECK(schema_ok == (n <= 256), "%s, %d characters of %zu bytes: schema %s", rpc ? "jsonrpc" : "envelope",
                      n, strlen(units[u]), schema_ok ? "accepts" : "refuses");
                CHECK(parse_ok == (n <= 256), "%s, %d characters of %zu bytes: parser %s", rpc ? "jsonrpc" : "envelope",
                      n, strlen(units[u]), parse_ok ? "accepts" : "refuses");
            }
    schema_set_free(s);
}

/* Responses are written as text now (proto_format_result): for random ids
 * (control characters, quotes, backslashes, multi-byte UTF-8), random
 * results and warnings, the line must parse back with cJSON to exactly the
 * id, result, warnings and timing given. */
static void test_response_text_round_trip(void) {
    unsigned seed = (unsigned)time(NULL);
    fprintf(stderr, "    seed %u\n", seed);
    srand(seed);
    static const char *const pieces[] = {"a", "\"", "\\", "\n", "\t", "\x01", "\x1f", "/", "\xc3\xa9", "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80", " ", "\x7f", "{", "}"};
    for (int iter = 0; iter < 500; iter++) {
        char id[512] = "";
        int n = rand() % 40;
        for (int i = 0; i < n; i++) strcat(id, pieces[rand() % 15]);
        cJSON *result = cJSON_CreateObject();
        cJSON_AddStringToObject(result, "text", id);
        cJSON_AddNumberToObject(result, "n", rand() % 1000);
        cJSON *warnings = cJSON_CreateArray();
        if (rand() % 2) cJSON_AddItemToArray(warnings, cJSON_CreateString(id));
        cJSON *expect_result = cJSON_Duplicate(result, 1);
        double t = (double)(rand() % 10000000) / 1e6;
        double rss = rand() % 3 ? (double)(rand() % 100000) / 10.0 : -1;
        int dev_known = rand() % 2;
        double dev = (double)(rand() % 100000) / 10.0;
        proto_metrics m = {t + (double)(rand() % 1000) / 1e3, t, rss, dev, dev_known};
        char *line = proto_format_result(PROTO_ENVELOPE, rand() % 5 ? id : NULL, NULL, result, warnings, &m);
        cJSON *o = cJSON_Parse(line);
        REQUIRE(o, "not JSON: %s", line);
        const cJSON *rid = cJSON_GetObjectItemCaseSensitive(o, "request_id");
        CHECK(cJSON_IsNull(rid) || (cJSON_IsString(rid) && strcmp(rid->valuestring, id) == 0), "id differs: %s", line);
        CHECK(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(o, "data"), expect_result, 1), "data differs: %s", line);
        CHECK(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(o, "warnings"), warnings, 1), "warnings differ: %s",
              line);
        const cJSON *et = cJSON_GetObjectItemCaseSensitive(o, "execution_time");
        CHECK(cJSON_IsNumber(et) && fabs(et->valuedouble - t) < 1e-6, "execution_time %s for %f", line, t);
        CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "success")), "success: %s", line);
        /* metrics: every member, in ms, the memory null when unknown. */
        const cJSON *mj = cJSON_GetObjectItemCaseSensitive(o, "metrics");
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(mj, "processing_time_ms");
        const cJSON *xt = cJSON_GetObjectItemCaseSensitive(mj, "execution_time_ms");
        const cJSON *mu = cJSON_GetObjectItemCaseSensitive(mj, "memory_usage_mb");
        CHECK(cJSON_IsNumber(pt) && fabs(pt->valuedouble - m.processing_s * 1e3) < 1e-3, "processing_time_ms: %s", line);
        CHECK(cJSON_IsNumber(xt) && fabs(xt->valuedouble - t * 1e3) < 1e-3, "execution_time_ms: %s", line);
        CHECK(rss < 0 ? cJSON_IsNull(mu) : cJSON_IsNumber(mu) && fabs(mu->valuedouble - rss) < 0.051,
              "memory_usage_mb: %s for %f", line, rss);
        const cJSON *dm = cJSON_GetObjectItemCaseSensitive(mj, "device_memory_mb");
        CHECK(!dev_known ? cJSON_IsNull(dm) : cJSON_IsNumber(dm) && fabs(dm->valuedouble - dev) < 0.051,
              "device_memory_mb: %s for %f (known %d)", line, dev, dev_known);
        CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(mj, "gpu_utilization")), "gpu_utilization: %s", line);
        cJSON_Delete(o);
        cJSON_Delete(expect_result);
        cJSON_Delete(warnings);
        free(line);
    }
}

const test_entry TESTS[] = {
    {"confinement_end_to_end", test_confinement_end_to_end},
    {"relative_model_path", test_relative_model_path},
    {"roots", test_roots},
    {"response_text_round_trip", test_response_text_round_trip},
    {"id_limit_schema_and_parser_agree", test_id_limit_schema_and_parser_agree},
    {"generate_relative_model", test_generate_relative_model},
    {"every_command_has_help", test_every_command_has_help},
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
