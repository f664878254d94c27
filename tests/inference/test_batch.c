/* tests/inference/test_batch.c - inference.batch with the real plugins on
 * the tiny reference models: items give the same final latents as the same
 * requests run alone (bit for bit: same code, same seed), per-item errors,
 * cancel in the middle keeping finished items, the pause/cancel check
 * between items, per-item progress events, and the envelope's errors.
 *
 * infer_batch is driven directly; the inference plugin gets a copy of the
 * fake host's table whose `event` records what the batch sends and can
 * cancel at a given step of a given item. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "batch.h"
#include "fake_host.h"
#include "harness.h"
#include "infer_fixture.h"
#include "run.h"

static sdrt_host_api g_api;
static int g_started = -1;
static char g_out[1024];
static char g_sd15[1024], g_sdxl[1024];

/* What the batch sent, and when to cancel. */
static struct {
    int progress_events, with_items, max_item, items, last_step[4];
    int item_events, item_done[4];
    int cancel_item, cancel_step;   /* cancel_step > 0: cancel at that step of cancel_item */
    int cancel_after_item;          /* >= 0: cancel in the wait after that item finished */
    int stop_item, stop_step;       /* stop_step > 0: "after_image" cancel at that step of stop_item */
    int waits_after_item;           /* wait_if_paused calls after an item finished */
} g_rec;

static void rec_reset(void) {
    memset(&g_rec, 0, sizeof g_rec);
    g_rec.cancel_after_item = -1;
    g_rec.max_item = -1;
}

static int json_int(const cJSON *o, const char *name, int fallback) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? (int)v->valuedouble : fallback;
}

static void rec_progress(sdrt_job *job, const cJSON *d) {
    int item = json_int(d, "item", -1), step = json_int(d, "step", 0);
    g_rec.progress_events++;
    if (item < 0 || item > 3) return;
    g_rec.with_items++;
    g_rec.items = json_int(d, "items", 0);
    if (item > g_rec.max_item) g_rec.max_item = item;
    if (step > g_rec.last_step[item]) g_rec.last_step[item] = step;
    if (g_rec.cancel_step > 0 && item == g_rec.cancel_item && step >= g_rec.cancel_step) job->cancelled = 1;
    if (g_rec.stop_step > 0 && item == g_rec.stop_item && step >= g_rec.stop_step) job->stop_after = 1;
}

static void rec_event(sdrt_job *job, const char *name, const char *data_json) {
    cJSON *d = cJSON_Parse(data_json);
    if (strcmp(name, "progress") == 0) rec_progress(job, d);
    if (strcmp(name, "batch_item") == 0) {
        int item = json_int(d, "item", -1);
        g_rec.item_events++;
        if (item >= 0 && item < 4) g_rec.item_done[item] = 1;
    }
    cJSON_Delete(d);
}

/* The batch's wait between items (and the steps' waits): counts the calls
 * after a finished item and cancels there when asked, as a host.cancel sent
 * while the batch is paused between items would. */
static int rec_wait_if_paused(sdrt_job *job) {
    int after = g_rec.cancel_after_item;
    if (g_rec.item_events > 0) g_rec.waits_after_item++;
    if (after >= 0 && after < 4 && g_rec.item_done[after]) job->cancelled = 1;
    return job->cancelled;
}

static int start(void) {
    if (g_started >= 0) return g_started;
    g_started = ifx_start();
    snprintf(g_out, sizeof g_out, "%s", ifx_out_dir());
    snprintf(g_sd15, sizeof g_sd15, "%s", test_path("SDRT_REFERENCE", "tiny-sd15/diffusers"));
    snprintf(g_sdxl, sizeof g_sdxl, "%s", test_path("SDRT_REFERENCE", "tiny-sdxl/diffusers"));
    g_api = *fake_host_api();
    g_api.event = rec_event;
    g_api.wait_if_paused = rec_wait_if_paused;
    ifx_plugin()->api = &g_api;
    return g_started;
}


/* One tiny inference.run data object (4 steps, 64x64, latents saved). */
static void item_json(char *out, size_t n, const char *model, int seed, const char *scheduler, const char *extra) {
    snprintf(out, n,
             "{\"model_id\":\"%s\",\"prompt\":\"a red fox in the snow\",\"negative_prompt\":\"blurry\","
             "\"width\":64,\"height\":64,\"num_inference_steps\":4,\"seed\":%d,\"scheduler\":\"%s\"%s,"
             "\"output\":{\"dir\":\"%s\",\"save_latents\":true}}",
             model, seed, scheduler, extra, g_out);
}

static const cJSON *item_at(const cJSON *data, int i) {
    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(data, "items"), i);
}

static const char *item_string(const cJSON *item, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}


/* The latents of batch item `i` against the same request run alone. */
static void check_same_as_alone(const cJSON *batch, int i, const char *item_data) {
    const cJSON *it = item_at(batch, i);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(it, "data");
    struct sdrt_job job = {0};
    ifx_result alone = ifx_call("inference.run", item_data, &job);
    REQUIRE(alone.status == SDRT_OK, "item %d alone: %s", i, alone.message);
    size_t n_batch = 0, n_alone = 0;
    float *a = ifx_load_npy(ifx_json_string_at(data, "latents", 0), &n_batch);
    float *b = ifx_load_npy(ifx_json_string_at(alone.data, "latents", 0), &n_alone);
    CHECK(a && b && n_batch == n_alone && n_batch > 0, "item %d: latents missing (%zu vs %zu)", i, n_batch, n_alone);
    if (a && b && n_batch == n_alone)
        CHECK(memcmp(a, b, n_batch * sizeof *a) == 0, "item %d: latents differ from the run alone (rel L2 %.3g)", i,
              test_rel_l2(a, b, n_batch));
    free(a);
    free(b);
    cJSON_Delete(alone.data);
}

static void test_items_match_single_runs(void) {
    REQUIRE(start(), "plugins did not load (see stderr)");
    char a[4096], b[4096], data[16384];
    item_json(a, sizeof a, g_sd15, 42, "EulerDiscreteScheduler", "");
    item_json(b, sizeof b, g_sdxl, 7, "DPMSolverMultistepScheduler", "");
    snprintf(data, sizeof data, "{\"requests\":[%s,%s]}", a, b);
    rec_reset();
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.batch", data, &job);
    REQUIRE(r.status == SDRT_OK, "batch: %s", r.message);
    CHECK(json_int(r.data, "succeeded", -1) == 2 && json_int(r.data, "failed", -1) == 0, "counts");
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r.data, "stopped")), "stopped should be null");
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(r.data, "processing_time")), "processing_time");
    for (int i = 0; i < 2; i++) {
        const cJSON *it = item_at(r.data, i);
        CHECK(json_int(it, "index", -1) == i && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "success")) &&
                  strcmp(item_string(it, "status"), "succeeded") == 0,
              "item %d: not a success", i);
        CHECK(ifx_file_exists(ifx_json_string_at(cJSON_GetObjectItemCaseSensitive(it, "data"), "images", 0)), "item %d: no PNG", i);
        CHECK(g_rec.last_step[i] == 4, "item %d: progress reached step %d of 4", i, g_rec.last_step[i]);
    }
    CHECK(g_rec.items == 2 && g_rec.max_item == 1, "progress events: items %d, last item %d", g_rec.items,
          g_rec.max_item);
    CHECK(g_rec.item_events == 2, "batch_item events: %d", g_rec.item_events);
    check_same_as_alone(r.data, 0, a);
    check_same_as_alone(r.data, 1, b);
    cJSON_Delete(r.data);
}

/* A field error and a missing model fail their own items; the others run. */
static void test_item_errors(void) {
    REQUIRE(start(), "plugins did not load");
    char good[4096], bad_width[4096], data[16384];
    item_json(good, sizeof good, g_sd15, 3, "EulerDiscreteScheduler", "");
    snprintf(bad_width, sizeof bad_width, "{\"model_id\":\"%s\",\"prompt\":\"x\",\"width\":100}", g_sd15);
    snprintf(data, sizeof data,
             "{\"requests\":[%s,{\"model_id\":\"/nonexistent/model\",\"prompt\":\"x\"},%s],\"continue_on_error\":true}",
             bad_width, good);
    rec_reset();
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.batch", data, &job);
    REQUIRE(r.status == SDRT_OK, "batch: %s", r.message);
    const cJSON *i0 = item_at(r.data, 0), *i1 = item_at(r.data, 1), *i2 = item_at(r.data, 2);
    CHECK(strncmp(item_string(i0, "error"), "requests[0].width: ", 19) == 0, "item 0 error: %s",
          item_string(i0, "error"));
    CHECK(strcmp(item_string(i0, "error_code"), "INVALID_ARGUMENT") == 0, "item 0: %s", item_string(i0, "error_code"));
    CHECK(strcmp(item_string(i1, "error_code"), "NOT_FOUND") == 0 && strncmp(item_string(i1, "error"), "requests[1]", 11) == 0,
          "item 1: %s %s", item_string(i1, "error_code"), item_string(i1, "error"));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(i2, "success")), "item 2 failed: %s", item_string(i2, "error"));
    CHECK(json_int(r.data, "succeeded", -1) == 1 && json_int(r.data, "failed", -1) == 2, "counts");
    cJSON_Delete(r.data);
}

/* continue_on_error false: a failure at run time skips the rest. */
static void test_stop_on_error(void) {
    REQUIRE(start(), "plugins did not load");
    char good[4096], data[16384];
    item_json(good, sizeof good, g_sd15, 3, "EulerDiscreteScheduler", "");
    snprintf(data, sizeof data,
             "{\"requests\":[{\"model_id\":\"/nonexistent/model\",\"prompt\":\"x\"},%s],\"continue_on_error\":false}",
             good);
    rec_reset();
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.batch", data, &job);
    REQUIRE(r.status == SDRT_OK, "batch: %s", r.message);
    CHECK(strcmp(item_string(item_at(r.data, 0), "status"), "failed") == 0, "item 0 should fail");
    CHECK(strcmp(item_string(item_at(r.data, 1), "status"), "skipped") == 0, "item 1 should be skipped");
    CHECK(strcmp(item_string(r.data, "stopped"), "error") == 0, "stopped: %s", item_string(r.data, "stopped"));
    /* Item 0 reports its "loading" stage before it fails; item 1 nothing. */
    CHECK(g_rec.max_item < 1, "item 1 ran (progress of item %d seen)", g_rec.max_item);
    cJSON_Delete(r.data);
}

/* Cancel at step 2 of item 1: item 0's image is kept, items 1 and 2 are
 * cancelled, and the response is still one success. */
static void test_cancel_in_item(void) {
    REQUIRE(start(), "plugins did not load");
    char a[4096], data[16384];
    item_json(a, sizeof a, g_sd15, 5, "EulerDiscreteScheduler", "");
    snprintf(data, sizeof data, "{\"requests\":[%s,%s,%s]}", a, a, a);
    rec_reset();
    g_rec.cancel_item = 1;
    g_rec.cancel_step = 2;
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.batch", data, &job);
    REQUIRE(r.status == SDRT_OK, "batch: %s", r.message);
    const cJSON *i0 = item_at(r.data, 0), *i1 = item_at(r.data, 1), *i2 = item_at(r.data, 2);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(i0, "success")), "item 0 lost");
    CHECK(ifx_file_exists(ifx_json_string_at(cJSON_GetObjectItemCaseSensitive(i0, "data"), "images", 0)), "item 0: no PNG");
    CHECK(strcmp(item_string(i1, "status"), "cancelled") == 0 && strcmp(item_string(i1, "error_code"), "CANCELLED") == 0,
          "item 1: %s %s", item_string(i1, "status"), item_string(i1, "error_code"));
    CHECK(strcmp(item_string(i2, "status"), "cancelled") == 0, "item 2: %s", item_string(i2, "status"));
    CHECK(g_rec.last_step[1] == 2 && g_rec.last_step[2] == 0, "ran item 1 to step %d, item 2 to %d",
          g_rec.last_step[1], g_rec.last_step[2]);
    CHECK(strcmp(item_string(r.data, "stopped"), "cancelled") == 0, "stopped: %s", item_string(r.data, "stopped"));
    CHECK(json_int(r.data, "succeeded", -1) == 1 && json_int(r.data, "cancelled", -1) == 2, "counts");
    cJSON_Delete(r.data);
}

/* host.cancel {"when":"after_image"} at step 2 of item 1: item 1 runs to
 * its last step and is kept with item 0; item 2 never starts. */
static void test_stop_after_item(void) {
    REQUIRE(start(), "plugins did not load");
    char a[4096], data[16384];
    item_json(a, sizeof a, g_sd15, 6, "EulerDiscreteScheduler", "");
    snprintf(data, sizeof data, "{\"requests\":[%s,%s,%s]}", a, a, a);
    rec_reset();
    g_rec.stop_item = 1;
    g_rec.stop_step = 2;
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.batch", data, &job);
    REQUIRE(r.status == SDRT_OK, "batch: %s", r.message);
    const cJSON *i1 = item_at(r.data, 1), *i2 = item_at(r.data, 2);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(i1, "success")), "item 1 should finish: %s",
          item_string(i1, "status"));
    CHECK(ifx_file_exists(ifx_json_string_at(cJSON_GetObjectItemCaseSensitive(i1, "data"), "images", 0)),
          "item 1: no PNG");
    CHECK(g_rec.last_step[1] == 4 && g_rec.last_step[2] == 0, "ran item 1 to step %d, item 2 to %d",
          g_rec.last_step[1], g_rec.last_step[2]);
    CHECK(strcmp(item_string(i2, "status"), "cancelled") == 0, "item 2: %s", item_string(i2, "status"));
    CHECK(strcmp(item_string(r.data, "stopped"), "after_image") == 0, "stopped: %s", item_string(r.data, "stopped"));
    CHECK(json_int(r.data, "succeeded", -1) == 2 && json_int(r.data, "cancelled", -1) == 1, "counts");
    cJSON_Delete(r.data);
}

/* The batch waits (pause) between items: a cancel arriving there stops it
 * before item 1 starts. Cancelled during item 0: nothing to keep, so the
 * answer is CANCELLED. */
static void test_wait_between_items(void) {
    REQUIRE(start(), "plugins did not load");
    char a[4096], data[16384];
    item_json(a, sizeof a, g_sd15, 9, "EulerDiscreteScheduler", "");
    snprintf(data, sizeof data, "{\"requests\":[%s,%s]}", a, a);
    rec_reset();
    g_rec.cancel_after_item = 0;
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.batch", data, &job);
    REQUIRE(r.status == SDRT_OK, "batch: %s", r.message);
    CHECK(g_rec.waits_after_item >= 1, "no wait between items");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(item_at(r.data, 0), "success")), "item 0 lost");
    CHECK(strcmp(item_string(item_at(r.data, 1), "status"), "cancelled") == 0 && g_rec.last_step[1] == 0,
          "item 1 should not have started");
    cJSON_Delete(r.data);

    rec_reset();
    g_rec.cancel_item = 0;
    g_rec.cancel_step = 1;
    struct sdrt_job job2 = {0};
    r = ifx_call("inference.batch", data, &job2);
    CHECK(r.status == SDRT_CANCELLED, "status %d (%s), want CANCELLED", r.status, r.message);
    cJSON_Delete(r.data);
}

static void expect_envelope_error(const char *data, const char *prefix) {
    rec_reset();
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.batch", data, &job);
    CHECK(r.status == SDRT_INVALID_ARGUMENT && strncmp(r.message, prefix, strlen(prefix)) == 0,
          "%.60s: status %d, message '%s', want '%s...'", data, r.status, r.message, prefix);
    CHECK(g_rec.progress_events == 0, "%.60s: something ran", data);
    cJSON_Delete(r.data);
}

static void test_envelope_errors(void) {
    REQUIRE(start(), "plugins did not load");
    expect_envelope_error("[]", "data: must be a JSON object");
    expect_envelope_error("{}", "requests: is required");
    expect_envelope_error("{\"requests\":{}}", "requests: must be an array");
    expect_envelope_error("{\"requests\":[]}", "requests: must not be empty");
    expect_envelope_error("{\"requests\":[{},3]}", "requests[1]: must be an object");
    expect_envelope_error("{\"requests\":[{}],\"continue_on_error\":1}", "continue_on_error: must be a boolean");
    char data[4096];
    snprintf(data, sizeof data,
             "{\"requests\":[{\"model_id\":\"%s\",\"prompt\":\"x\"},{\"model_id\":\"%s\",\"width\":100}],"
             "\"continue_on_error\":false}",
             g_sd15, g_sd15);
    expect_envelope_error(data, "requests[1].width: ");
    /* One past the maximum, of empty objects. */
    size_t n = 64 + 3 * (INFER_BATCH_MAX_ITEMS + 1);
    char *big = malloc(n);
    REQUIRE(big, "out of memory");
    size_t k = (size_t)snprintf(big, n, "{\"requests\":[");
    for (int i = 0; i <= INFER_BATCH_MAX_ITEMS; i++) k += (size_t)snprintf(big + k, n - k, i ? ",{}" : "{}");
    snprintf(big + k, n - k, "]}");
    expect_envelope_error(big, "requests: 257 items exceed the limit of 256");
    free(big);
}

static void test_shutdown(void) {
    ifx_stop();
}

const test_entry TESTS[] = {
    {"envelope_errors", test_envelope_errors},
    {"items_match_single_runs", test_items_match_single_runs},
    {"item_errors", test_item_errors},
    {"stop_on_error", test_stop_on_error},
    {"cancel_in_item", test_cancel_in_item},
    {"stop_after_item", test_stop_after_item},
    {"wait_between_items", test_wait_between_items},
    {"shutdown", test_shutdown},
    {0},
};
