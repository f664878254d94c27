/* tests/loader/test_loader.c - the plugin loader and `sdrt validate-plugin`
 * driven through the real binary, with the test plugins that misbehave on
 * purpose (tests/plugins). Each test writes its own config so that no
 * default plugin folder is searched. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "host_proc.h"
#include "sdrt/plugin.h"

/* ---- helpers -------------------------------------------------------------- */

static const char *plugin_dir(const char *name) {
    static char bufs[16][4096];
    static int next;
    char *b = bufs[next++ & 15];
    snprintf(b, sizeof bufs[0], "%s/tests/plugins/%s", getenv("SDRT_BUILD_DIR"), name);
    return b;
}

static const char *plugin_so(const char *name) {
    static char bufs[4][4096];
    static int next;
    char *b = bufs[next++ & 3];
    snprintf(b, sizeof bufs[0], "%s/sdrt_%s.so", plugin_dir(name), name);
    return b;
}

/* A config searching exactly the named test plugin folders, in order. */
static const char *write_config(const char *const *plugins) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/config.json", test_tmpdir());
    cJSON *root = cJSON_CreateObject();
    cJSON *paths = cJSON_AddArrayToObject(root, "plugin_paths");
    for (int i = 0; plugins[i]; i++) cJSON_AddItemToArray(paths, cJSON_CreateString(plugin_dir(plugins[i])));
    cJSON_AddStringToObject(root, "log_level", "info");
    cJSON_AddNumberToObject(root, "cancel_grace_s", 0.3);
    cJSON_AddNumberToObject(root, "shutdown_grace_s", 2);
    char *text = cJSON_Print(root);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    free(text);
    cJSON_Delete(root);
    return path;
}

static int start_serve(host_proc *h, const char *const *plugins) {
    const char *args[] = {"serve", "--config", write_config(plugins), NULL};
    return host_start(h, args);
}

/* Closes the session and checks the protocol promise: the host exits 0 and
 * every stdout line is one JSON object. */
static void finish_serve(host_proc *h) {
    int rc = host_finish(h, 10);
    CHECK(rc == 0, "sdrt serve exited with %d; stderr:\n%s", rc, host_stderr(h));
    for (int i = 0; i < h->n_lines; i++) {
        cJSON *j = cJSON_Parse(h->lines[i]);
        CHECK(cJSON_IsObject(j), "stdout line %d is not a JSON object: '%s'", i + 1, h->lines[i]);
        cJSON_Delete(j);
    }
    host_free(h);
}

/* Sends one request and returns its final response, parsed (caller frees). */
static cJSON *request(host_proc *h, const char *id, const char *line) {
    char needle[128];
    snprintf(needle, sizeof needle, "\"request_id\":\"%s\"", id);
    if (host_send(h, line) != 0) return NULL;
    for (;;) {
        const char *l = host_wait_for(h, needle, 10);
        if (!l) return NULL;
        cJSON *j = cJSON_Parse(l);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
        if (cJSON_IsString(type) && strcmp(type->valuestring, "response") == 0) return j;
        cJSON_Delete(j);
    }
}

static const char *str_at(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static int succeeded(const cJSON *resp) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "success")); }

/* The refusal recorded for test plugin `name`, or NULL. */
static const cJSON *refusal_of(const cJSON *plugins_resp, const char *name) {
    const cJSON *refused = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(plugins_resp, "data"), "refused");
    const cJSON *r;
    cJSON_ArrayForEach(r, refused) if (strstr(str_at(r, "path"), plugin_so(name))) return r;
    return NULL;
}

static void check_refused(const cJSON *resp, const char *name, const char *code, const char *const *words) {
    const cJSON *r = refusal_of(resp, name);
    REQUIRE(r, "%s is not in host.plugins refused", name);
    CHECK(strcmp(str_at(r, "error_code"), code) == 0, "%s: error_code %s, expected %s", name,
          str_at(r, "error_code"), code);
    for (int i = 0; words[i]; i++)
        CHECK(strstr(str_at(r, "reason"), words[i]), "%s: reason '%s' does not mention '%s'", name,
              str_at(r, "reason"), words[i]);
}

/* ---- tests ---------------------------------------------------------------- */

static const char *const REFUSING[] = {"echo", "badabi", "newminor", "noentry", "badmanifest", "dupe", "failinit", NULL};

static void test_refusals_reported(void) {
    host_proc h;
    REQUIRE(start_serve(&h, REFUSING) == 0, "cannot start sdrt");
    cJSON *resp = request(&h, "p", "{\"type\":\"host.plugins\",\"request_id\":\"p\"}");
    REQUIRE(resp && succeeded(resp), "host.plugins failed; stderr:\n%s", host_stderr(&h));
    char plugin_abi[16], host_abi[16], next_minor[16];
    snprintf(plugin_abi, sizeof plugin_abi, "%d.0", SDRT_ABI_MAJOR + 1);
    snprintf(host_abi, sizeof host_abi, "%d.%d", SDRT_ABI_MAJOR, SDRT_ABI_MINOR);
    snprintf(next_minor, sizeof next_minor, "%d.%d", SDRT_ABI_MAJOR, SDRT_ABI_MINOR + 1);
    check_refused(resp, "badabi", "ABI_MISMATCH", (const char *[]){plugin_abi, host_abi, NULL});
    check_refused(resp, "newminor", "ABI_MISMATCH", (const char *[]){next_minor, host_abi, NULL});
    check_refused(resp, "noentry", "ABI_MISMATCH", (const char *[]){"missing entry symbol", "sdrt_plugin_entry", NULL});
    check_refused(resp, "badmanifest", "ABI_MISMATCH",
                  (const char *[]){"manifest", "org.sdrt.test.somethingelse", "org.sdrt.test.badmanifest", NULL});
    check_refused(resp, "dupe", "ALREADY_EXISTS", (const char *[]){"echo.run", "org.sdrt.test.echo", NULL});
    check_refused(resp, "failinit", "FAILED_PRECONDITION", (const char *[]){"init failed", "tpu0", NULL});
    /* The plugin's error data rides with its refusal, as in a failure response. */
    const cJSON *fdata = cJSON_GetObjectItemCaseSensitive(refusal_of(resp, "failinit"), "error_data");
    CHECK(strcmp(str_at(fdata, "field"), "config.device") == 0, "failinit refusal lacks error_data.field");
    CHECK(!cJSON_GetObjectItemCaseSensitive(refusal_of(resp, "badabi"), "error_data"),
          "a refusal without error data should carry no error_data");
    const cJSON *loaded = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(resp, "data"), "plugins");
    CHECK(cJSON_GetArraySize(loaded) == 1 && strcmp(str_at(cJSON_GetArrayItem(loaded, 0), "id"), "org.sdrt.test.echo") == 0,
          "only echo should be loaded, got %d plugin(s)", cJSON_GetArraySize(loaded));
    cJSON_Delete(resp);
    /* The refusals cost the others nothing. */
    resp = request(&h, "e", "{\"type\":\"echo.run\",\"request_id\":\"e\",\"data\":{\"x\":[1,\"two\",null]}}");
    REQUIRE(resp, "no answer to echo.run");
    char *data = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(resp, "data"));
    CHECK(succeeded(resp) && data && strcmp(data, "{\"x\":[1,\"two\",null]}") == 0, "echo.run answered %s", data);
    free(data);
    cJSON_Delete(resp);
    resp = request(&h, "n", "{\"type\":\"failinit.run\",\"request_id\":\"n\"}");
    CHECK(resp && strcmp(str_at(resp, "error_code"), "UNKNOWN_TYPE") == 0,
          "a refused plugin's message should be UNKNOWN_TYPE, got %s", resp ? str_at(resp, "error_code") : "nothing");
    cJSON_Delete(resp);
    finish_serve(&h);
}

static void test_plugins_command(void) {
    host_proc h;
    const char *args[] = {"plugins", "--config", write_config(REFUSING), NULL};
    REQUIRE(host_start(&h, args) == 0, "cannot start sdrt");
    int rc = host_finish(&h, 10);
    char *out = host_stdout_text(&h);
    CHECK(rc == 0, "sdrt plugins exited with %d", rc);
    CHECK(strstr(out, "org.sdrt.test.echo") && strstr(out, "echo.run echo.slow echo.progress"),
          "sdrt plugins does not list echo and its types:\n%s", out);
    static const char *const expect[] = {"badabi/sdrt_badabi.so [ABI_MISMATCH]", "newminor/sdrt_newminor.so [ABI_MISMATCH]",
                                         "noentry/sdrt_noentry.so [ABI_MISMATCH]",
                                         "badmanifest/sdrt_badmanifest.so [ABI_MISMATCH]",
                                         "dupe/sdrt_dupe.so [ALREADY_EXISTS]",
                                         "failinit/sdrt_failinit.so [FAILED_PRECONDITION]", NULL};
    for (int i = 0; expect[i]; i++) CHECK(strstr(out, expect[i]), "no 'REFUSED …%s' line in:\n%s", expect[i], out);
    CHECK(strstr(out, "failinit/sdrt_failinit.so [FAILED_PRECONDITION]: org.sdrt.test.failinit: init failed: "
                      "config.device: no such device 'tpu0'\n    error_data: {\"field\":\"config.device\"}\n"),
          "sdrt plugins should show failinit's error_data under its refusal:\n%s", out);
    free(out);
    host_free(&h);
}

/* A line containing `needle` among those already read, else the next one
 * that arrives: a job's answer may come before the answer to the control
 * message that ended it (host.cancel), and request() skips past it. */
static const char *seen_or_wait(host_proc *h, const char *needle, double timeout_s) {
    for (int i = 0; i < h->n_lines; i++)
        if (strstr(h->lines[i], needle)) return h->lines[i];
    return host_wait_for(h, needle, timeout_s);
}

static int count_events(const host_proc *h, const char *id, const char *event) {
    char a[64], b[64];
    snprintf(a, sizeof a, "\"request_id\":\"%s\"", id);
    snprintf(b, sizeof b, "\"event_name\":\"%s\"", event);
    int n = 0;
    for (int i = 0; i < h->n_lines; i++) n += strstr(h->lines[i], a) && strstr(h->lines[i], b);
    return n;
}

static void test_echo_services(void) {
    host_proc h;
    REQUIRE(start_serve(&h, (const char *[]){"echo", NULL}) == 0, "cannot start sdrt");
    cJSON *r = request(&h, "p", "{\"type\":\"echo.progress\",\"request_id\":\"p\",\"data\":{\"n\":4}}");
    CHECK(r && succeeded(r), "echo.progress failed");
    /* The plugin's 4, after the host's own "initialization" one. */
    CHECK(count_events(&h, "p", "progress") == 5, "expected 5 progress events before the response, got %d",
          count_events(&h, "p", "progress"));
    cJSON_Delete(r);
    r = request(&h, "w", "{\"type\":\"echo.warn\",\"request_id\":\"w\"}");
    const cJSON *warnings = cJSON_GetObjectItemCaseSensitive(r, "warnings");
    CHECK(r && succeeded(r) && cJSON_GetArraySize(warnings) == 1, "echo.warn: expected one warning");
    cJSON_Delete(r);
    r = request(&h, "f", "{\"type\":\"echo.fail\",\"request_id\":\"f\",\"data\":{\"code\":\"PERMISSION_DENIED\","
                         "\"error_data\":{\"path\":\"/etc\"}}}");
    const cJSON *edata = cJSON_GetObjectItemCaseSensitive(r, "error_data");
    CHECK(r && !succeeded(r) && strcmp(str_at(r, "error_code"), "PERMISSION_DENIED") == 0 &&
              strcmp(str_at(edata, "path"), "/etc") == 0,
          "echo.fail did not carry its status and error_data");
    cJSON_Delete(r);
    /* A cooperative plugin stops at once; the host answers CANCELLED. */
    host_send(&h, "{\"type\":\"echo.slow\",\"request_id\":\"s\",\"data\":{\"seconds\":20}}");
    usleep(200 * 1000);
    cJSON_Delete(request(&h, "c", "{\"type\":\"host.cancel\",\"request_id\":\"c\",\"data\":{\"request_id\":\"s\"}}"));
    const char *l = seen_or_wait(&h, "\"type\":\"response\",\"request_id\":\"s\"", 3);
    CHECK(l && strstr(l, "\"error_code\":\"CANCELLED\""), "echo.slow after host.cancel: %s", l ? l : "no answer in 3 s");
    finish_serve(&h);
}

/* A plugin that ignores cancel still gets its request answered, by the host,
 * once cancel_grace_s (0.3 s here) has passed. */
static void test_stubborn_answered_by_host(void) {
    host_proc h;
    REQUIRE(start_serve(&h, (const char *[]){"stubborn", NULL}) == 0, "cannot start sdrt");
    host_send(&h, "{\"type\":\"stubborn.hang\",\"request_id\":\"s\",\"data\":{\"seconds\":3}}");
    usleep(200 * 1000);
    cJSON_Delete(request(&h, "c", "{\"type\":\"host.cancel\",\"request_id\":\"c\",\"data\":{\"request_id\":\"s\"}}"));
    const char *l = seen_or_wait(&h, "\"type\":\"response\",\"request_id\":\"s\"", 2);
    CHECK(l && strstr(l, "\"error_code\":\"CANCELLED\""), "stubborn.hang after host.cancel: %s",
          l ? l : "no answer within 2 s");
    finish_serve(&h);
}

static void test_noisy_keeps_stdout_clean(void) {
    host_proc h;
    REQUIRE(start_serve(&h, (const char *[]){"noisy", "echo", NULL}) == 0, "cannot start sdrt");
    cJSON *r = request(&h, "n", "{\"type\":\"noisy.run\",\"request_id\":\"n\"}");
    CHECK(r && succeeded(r), "noisy.run failed");
    cJSON_Delete(r);
    r = request(&h, "h", "{\"type\":\"host.health\",\"request_id\":\"h\"}");
    CHECK(r && succeeded(r), "host.health failed after noise");
    cJSON_Delete(r);
    /* The noise is not lost either: fd 1 of the plugin is the host's stderr. */
    const char *err = host_stderr(&h);
    CHECK(strstr(err, "noisy: printf from init") && strstr(err, "noisy: printf from handle"),
          "noisy output should reach stderr; stderr:\n%s", err);
    finish_serve(&h); /* checks every stdout line is one JSON object */
}

static char g_validate_stderr[8192]; /* of the last validate(), for failure messages */

/* Many requests in one chunk of input: the dispatch thread's answers and
 * the workers' are batched into few writes (host/output.c); every line must
 * still be one whole JSON object, each request answered once, and the host's
 * own answers in the order they were asked. */
static void test_pipelined_lines_whole_and_ordered(void) {
    enum { N = 600 }; /* ~40 KiB of input: fits the pipe, so one write */
    host_proc h;
    REQUIRE(start_serve(&h, (const char *[]){"echo", NULL}) == 0, "cannot start sdrt");
    size_t cap = (size_t)N * 96, used = 0;
    char *chunk = malloc(cap);
    for (int i = 0; i < N; i++) {
        const char *sep = i + 1 < N ? "\n" : ""; /* host_send adds the last newline */
        if (i % 2)
            used += (size_t)snprintf(chunk + used, cap - used,
                                     "{\"type\":\"echo.run\",\"request_id\":\"e%d\",\"data\":{\"i\":%d}}%s", i, i, sep);
        else
            used += (size_t)snprintf(chunk + used, cap - used, "{\"type\":\"host.health\",\"request_id\":\"h%d\"}%s", i,
                                     sep);
    }
    REQUIRE(host_send(&h, chunk) == 0, "cannot send the chunk");
    free(chunk);
    static char seen[N];
    memset(seen, 0, sizeof seen);
    int last_health = -1, answered = 0;
    while (answered < N) {
        const char *l = host_next_line(&h, 10);
        REQUIRE(l, "only %d of %d answers arrived", answered, N);
        cJSON *j = cJSON_Parse(l);
        if (strcmp(str_at(j, "type"), "event") == 0) { /* status_change before each answer */
            cJSON_Delete(j);
            continue;
        }
        const char *id = str_at(j, "request_id");
        REQUIRE(cJSON_IsObject(j) && (id[0] == 'h' || id[0] == 'e'), "not a whole answer line: '%.200s'", l);
        int i = atoi(id + 1);
        CHECK(i >= 0 && i < N && !seen[i], "request %s answered twice or unknown", id);
        if (i >= 0 && i < N) seen[i] = 1;
        if (id[0] == 'h') {
            CHECK(i > last_health, "host.health %s answered after h%d", id, last_health);
            last_health = i;
        }
        /* echo.run may find the queue (queue_limit) full: BUSY is its one answer then. */
        CHECK(succeeded(j) || (id[0] == 'e' && strcmp(str_at(j, "error_code"), "BUSY") == 0),
              "request %s failed: %.200s", id, l);
        cJSON_Delete(j);
        answered++;
    }
    finish_serve(&h);
}

/* Runs validate-plugin on a test plugin, with an optional "--data" argument
 * (TYPE=JSON, or NULL); returns its exit status and stdout. */
static int validate_with(const char *name, const char *data, char **out) {
    host_proc h;
    const char *args[] = {"validate-plugin", plugin_so(name), data ? "--data" : NULL, data, NULL};
    if (host_start(&h, args) != 0) return -1;
    int rc = host_finish(&h, 60);
    *out = host_stdout_text(&h);
    snprintf(g_validate_stderr, sizeof g_validate_stderr, "%s", host_stderr(&h));
    host_free(&h);
    return rc;
}

static int validate(const char *name, char **out) { return validate_with(name, NULL, out); }

static void test_validate_echo_conforms(void) {
    char *out;
    int rc = validate("echo", &out);
    CHECK(rc == 0, "validate-plugin echo exited %d:\n%s", rc, out);
    CHECK(strstr(out, "result: conforms") && !strstr(out, "FAIL"), "echo should conform:\n%s", out);
    CHECK(strstr(out, "PASS echo.slow returns promptly when already cancelled"), "no cancel check for echo.slow:\n%s", out);
    free(out);
}

/* With an input that runs long, the cancel-while-running check really
 * cancels a running request: echo notices is_cancelled, stubborn never does. */
static void test_validate_cancel_while_running(void) {
    char *out;
    int rc = validate_with("echo", "echo.slow={\"seconds\":30}", &out);
    CHECK(rc == 0 && strstr(out, "PASS echo.slow stops within 5 s when cancelled while running: CANCELLED"),
          "echo.slow should stop when cancelled while running (exit %d):\n%s", rc, out);
    CHECK(strstr(out, "PASS echo.run stops within 5 s when cancelled while running: answered within"),
          "a quick message should pass, saying it answered first:\n%s", out);
    free(out);
    rc = validate_with("stubborn", "stubborn.hang={\"seconds\":30}", &out);
    CHECK(rc == 1 && strstr(out, "FAIL stubborn.hang stops within 5 s when cancelled while running: still running"),
          "stubborn should fail the cancel-while-running check (exit %d):\n%s", rc, out);
    free(out);
    rc = validate_with("echo", "echo.slow=[1]", &out);
    CHECK(rc == 2, "--data with a non-object value should be a usage error, got exit %d", rc);
    free(out);
}

static void test_validate_badabi_refused(void) {
    char *out;
    int rc = validate("badabi", &out);
    CHECK(rc == 1, "validate-plugin badabi exited %d", rc);
    CHECK(strstr(out, "FAIL load and descriptor checks") && strstr(out, "result: refused [ABI_MISMATCH]"),
          "badabi should be refused:\n%s", out);
    free(out);
}

static void test_validate_crashy_signal(void) {
    char *out;
    int rc = validate("crashy", &out);
    CHECK(rc == 1, "validate-plugin crashy exited %d (the validator itself must not crash)", rc);
    /* SIGSEGV normally; under AddressSanitizer the fault becomes SIGABRT; with
     * UBSan's halt_on_error the null store is a report and an exit status. */
    CHECK((strstr(out, "FAIL behaviour checks: plugin crashed with signal ") ||
           strstr(out, "FAIL behaviour checks: plugin ended the process during the checks")) &&
              strstr(out, "result: FAILED"),
          "crashy should fail with a crash signal:\n%s\nstderr:\n%s", out, g_validate_stderr);
    free(out);
}

static void test_validate_stubborn_cancel_fails(void) {
    char *out;
    int rc = validate("stubborn", &out);
    CHECK(rc == 1, "validate-plugin stubborn exited %d", rc);
    CHECK(strstr(out, "FAIL stubborn.hang returns promptly when already cancelled"),
          "stubborn should fail the cancel check:\n%s", out);
    CHECK(strstr(out, "PASS stubborn.hang with bad input #1 answers"), "bad input should still pass:\n%s", out);
    free(out);
}

const test_entry TESTS[] = {
    {"refusals_reported", test_refusals_reported},
    {"plugins_command", test_plugins_command},
    {"echo_services", test_echo_services},
    {"stubborn_answered_by_host", test_stubborn_answered_by_host},
    {"noisy_keeps_stdout_clean", test_noisy_keeps_stdout_clean},
    {"pipelined_lines_whole_and_ordered", test_pipelined_lines_whole_and_ordered},
    {"validate_echo_conforms", test_validate_echo_conforms},
    {"validate_cancel_while_running", test_validate_cancel_while_running},
    {"validate_badabi_refused", test_validate_badabi_refused},
    {"validate_crashy_signal", test_validate_crashy_signal},
    {"validate_stubborn_cancel_fails", test_validate_stubborn_cancel_fails},
    {0},
};
