/* tests/processing/test_processing.c - processing.execute of the hires_fix
 * template on the tiny SD1.5 reference model through the real sdrt binary
 * and plugins: the second step must receive the first step's image (the
 * session's resolved inputs name it, and the same img2img sent alone with
 * that image gives the same file, bit for bit), at twice the size. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "host_proc.h"

static char *read_all_file(const char *path, long *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)*n + 1);
    if (b && fread(b, 1, (size_t)*n, f) != (size_t)*n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

/* Width and height from a PNG's IHDR. */
static int png_size(const char *path, int *w, int *h) {
    long n = 0;
    unsigned char *b = (unsigned char *)read_all_file(path, &n);
    if (!b || n < 24 || memcmp(b + 1, "PNG", 3) != 0) {
        free(b);
        return -1;
    }
    *w = (b[16] << 24) | (b[17] << 16) | (b[18] << 8) | b[19];
    *h = (b[20] << 24) | (b[21] << 16) | (b[22] << 8) | b[23];
    free(b);
    return 0;
}

/* The concatenated IDAT chunks of a PNG (malloc'd): the image data, without
 * the text chunks (whose JSON key order differs between a workflow step and
 * the same request sent alone). The same encoder writes the same stream for
 * the same pixels. */
static unsigned char *png_idat(const char *path, long *out_n) {
    long n = 0;
    unsigned char *b = (unsigned char *)read_all_file(path, &n);
    if (!b || n < 8) {
        free(b);
        return NULL;
    }
    unsigned char *out = malloc((size_t)n);
    long o = 0;
    for (long i = 8; i + 12 <= n;) {
        long len = ((long)b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3];
        if (len < 0 || i + 12 + len > n) break;
        if (memcmp(b + i + 4, "IDAT", 4) == 0) {
            memcpy(out + o, b + i + 8, (size_t)len);
            o += len;
        }
        i += 12 + len;
    }
    free(b);
    *out_n = o;
    return out;
}

/* The final response with this id (events skipped), parsed; NULL on timeout. */
static cJSON *final_of(host_proc *h, const char *id, double timeout_s) {
    char needle[128];
    snprintf(needle, sizeof needle, "\"request_id\":\"%s\"", id);
    /* An answer read while waiting for another one is among h->lines. */
    for (int i = 0; i < h->n_lines; i++) {
        if (!strstr(h->lines[i], needle) || !strstr(h->lines[i], "\"type\":\"response\"")) continue;
        cJSON *o = cJSON_Parse(h->lines[i]);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
        if (cJSON_IsString(t) && strcmp(t->valuestring, "response") == 0) return o;
        cJSON_Delete(o);
    }
    for (;;) {
        const char *l = host_wait_for(h, needle, timeout_s);
        if (!l) return NULL;
        cJSON *o = cJSON_Parse(l);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
        if (cJSON_IsString(t) && strcmp(t->valuestring, "response") == 0) return o;
        cJSON_Delete(o);
    }
}

static const cJSON *at(const cJSON *o, const char *a, const char *b, const char *c) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b) v = cJSON_GetObjectItemCaseSensitive(v, b);
    if (c) v = cJSON_GetObjectItemCaseSensitive(v, c);
    return v;
}

static void test_hires_fix_tiny_sd15(void) {
    const char *ref = test_path("SDRT_REFERENCE", "");
    char model_root[4096], plugins[4096], out_dir[] = "/tmp/sdrt-processing-XXXXXX";
    snprintf(model_root, sizeof model_root, "%s", ref);
    struct stat st;
    if (stat(model_root, &st) != 0) {
        printf("# skipped: no reference data at %s\n", model_root);
        return;
    }
    REQUIRE(mkdtemp(out_dir), "mkdtemp");
    snprintf(plugins, sizeof plugins, "plugin_paths=[\"%s\"]", test_path("SDRT_BUILD_DIR", "lib/sdrt/plugins"));
    const char *args[] = {"serve", "--set", plugins, "--model-root", model_root, "--output-root", out_dir, NULL};
    host_proc h;
    REQUIRE(host_start(&h, args) == 0, "cannot start sdrt");
    /* A fresh seed each run: the equality below must hold for any. */
    srand((unsigned)getpid());
    int seed = rand() % 100000;
    char line[2048];
    snprintf(line, sizeof line,
             "{\"type\":\"processing.execute\",\"request_id\":\"wf\",\"data\":{\"workflow_id\":\"hires_fix\","
             "\"inputs\":{\"model_id\":\"tiny-sd15/diffusers\",\"prompt\":\"a red fox in the snow\",\"width\":64,"
             "\"height\":64,\"num_inference_steps\":4,\"seed\":%d,\"strength\":0.5,\"scale\":2}}}",
             seed);
    REQUIRE(host_send(&h, line) == 0, "send");
    cJSON *r = final_of(&h, "wf", 300);
    REQUIRE(r, "no answer to the workflow; stderr:\n%s", host_stderr(&h));
    char *text = cJSON_PrintUnformatted(r);
    REQUIRE(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "success")), "workflow failed: %s", text);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(r, "data");
    const cJSON *base_img = cJSON_GetArrayItem(at(d, "results", "base", "images"), 0);
    const cJSON *hires_img = cJSON_GetArrayItem(at(d, "results", "hires", "images"), 0);
    const cJSON *hires_init = at(d, "inputs", "hires", "init_image");
    REQUIRE(cJSON_IsString(base_img) && cJSON_IsString(hires_img), "no images: %s", text);
    /* The second step ran with the first step's image. */
    CHECK(cJSON_IsString(hires_init) && strcmp(hires_init->valuestring, base_img->valuestring) == 0,
          "hires init_image %s, base image %s", cJSON_GetStringValue(hires_init), base_img->valuestring);
    int w = 0, hh = 0;
    CHECK(png_size(base_img->valuestring, &w, &hh) == 0 && w == 64 && hh == 64, "base image %dx%d", w, hh);
    CHECK(png_size(hires_img->valuestring, &w, &hh) == 0 && w == 128 && hh == 128, "hires image %dx%d", w, hh);
    CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "status")), "completed") == 0, "status: %s",
          text);
    /* Independent: the same img2img alone, from the base image. */
    snprintf(line, sizeof line,
             "{\"type\":\"inference.run\",\"request_id\":\"alone\",\"data\":{\"model_id\":\"tiny-sd15/diffusers\","
             "\"prompt\":\"a red fox in the snow\",\"width\":128,\"height\":128,\"num_inference_steps\":4,"
             "\"seed\":%d,\"strength\":0.5,\"init_image\":\"%s\"}}",
             seed, base_img->valuestring);
    REQUIRE(host_send(&h, line) == 0, "send");
    cJSON *a = final_of(&h, "alone", 300);
    REQUIRE(a, "no answer to the lone img2img");
    const cJSON *alone_img = cJSON_GetArrayItem(at(a, "data", "images", NULL), 0);
    REQUIRE(cJSON_IsString(alone_img), "lone img2img failed: %s", cJSON_PrintUnformatted(a));
    long n1 = 0, n2 = 0;
    unsigned char *b1 = png_idat(hires_img->valuestring, &n1), *b2 = png_idat(alone_img->valuestring, &n2);
    CHECK(b1 && b2 && n1 > 0 && n1 == n2 && memcmp(b1, b2, (size_t)n1) == 0,
          "the workflow's second image (%ld bytes of pixels) differs from the same img2img alone (%ld)", n1, n2);
    free(b1);
    free(b2);
    cJSON_Delete(a);
    free(text);
    cJSON_Delete(r);
    host_finish(&h, 30);
    host_free(&h);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out_dir);
    if (system(cmd) != 0) printf("# could not remove %s\n", out_dir);
}

/* The steps of the last inference progress event of request `id`. */
static int last_steps(const host_proc *h, const char *id) {
    char needle[128];
    snprintf(needle, sizeof needle, "\"request_id\":\"%s\"", id);
    int steps = -1;
    for (int i = 0; i < h->n_lines; i++) {
        if (!strstr(h->lines[i], needle) || !strstr(h->lines[i], "\"stage\":\"inference\"")) continue;
        cJSON *o = cJSON_Parse(h->lines[i]);
        const cJSON *s = at(o, "data", "steps", NULL);
        if (cJSON_IsNumber(s)) steps = s->valueint;
        cJSON_Delete(o);
    }
    return steps;
}

/* "quality": "fast" on SD1 is Euler a, 15 steps, CFG 7 (docs/protocol.md):
 * the same image as those fields given explicitly; a field the request
 * gives wins over the preset. */
static void test_quality_preset_tiny_sd15(void) {
    const char *ref = test_path("SDRT_REFERENCE", "");
    struct stat st;
    if (stat(ref, &st) != 0) {
        printf("# skipped: no reference data at %s\n", ref);
        return;
    }
    char plugins[4096], out_dir[] = "/tmp/sdrt-quality-XXXXXX";
    REQUIRE(mkdtemp(out_dir), "mkdtemp");
    snprintf(plugins, sizeof plugins, "plugin_paths=[\"%s\"]", test_path("SDRT_BUILD_DIR", "lib/sdrt/plugins"));
    const char *args[] = {"serve", "--set", plugins, "--model-root", ref, "--output-root", out_dir, NULL};
    host_proc h;
    REQUIRE(host_start(&h, args) == 0, "cannot start sdrt");
    srand((unsigned)getpid() * 7u);
    int seed = rand() % 100000;
    const char *common = "\"model_id\":\"tiny-sd15/diffusers\",\"prompt\":\"a red fox\",\"width\":64,\"height\":64";
    char line[1024];
    snprintf(line, sizeof line, "{\"type\":\"inference.run\",\"request_id\":\"preset\",\"data\":{%s,\"seed\":%d,\"quality\":\"fast\"}}",
             common, seed);
    REQUIRE(host_send(&h, line) == 0, "send");
    snprintf(line, sizeof line,
             "{\"type\":\"inference.run\",\"request_id\":\"explicit\",\"data\":{%s,\"seed\":%d,\"scheduler\":\"Euler a\","
             "\"num_inference_steps\":15,\"guidance_scale\":7}}",
             common, seed);
    REQUIRE(host_send(&h, line) == 0, "send");
    snprintf(line, sizeof line,
             "{\"type\":\"inference.run\",\"request_id\":\"override\",\"data\":{%s,\"seed\":%d,\"quality\":\"high\","
             "\"num_inference_steps\":3}}",
             common, seed);
    REQUIRE(host_send(&h, line) == 0, "send");
    cJSON *p = final_of(&h, "preset", 300), *e = final_of(&h, "explicit", 300), *o = final_of(&h, "override", 300);
    REQUIRE(p && e && o, "missing answers; stderr:\n%s", host_stderr(&h));
    const cJSON *pi = cJSON_GetArrayItem(at(p, "data", "images", NULL), 0);
    const cJSON *ei = cJSON_GetArrayItem(at(e, "data", "images", NULL), 0);
    REQUIRE(cJSON_IsString(pi) && cJSON_IsString(ei), "failed: %s / %s", cJSON_PrintUnformatted(p),
            cJSON_PrintUnformatted(e));
    long n1 = 0, n2 = 0;
    unsigned char *b1 = png_idat(pi->valuestring, &n1), *b2 = png_idat(ei->valuestring, &n2);
    CHECK(b1 && b2 && n1 > 0 && n1 == n2 && memcmp(b1, b2, (size_t)n1) == 0,
          "quality fast differs from Euler a / 15 steps / CFG 7 given explicitly");
    free(b1);
    free(b2);
    CHECK(last_steps(&h, "preset") == 15, "preset ran %d steps, expected 15", last_steps(&h, "preset"));
    CHECK(last_steps(&h, "override") == 3, "num_inference_steps 3 with quality high ran %d steps",
          last_steps(&h, "override"));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "success")), "override failed");
    cJSON_Delete(p);
    cJSON_Delete(e);
    cJSON_Delete(o);
    host_finish(&h, 30);
    host_free(&h);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out_dir);
    if (system(cmd) != 0) printf("# could not remove %s\n", out_dir);
}

/* processing.execute with "wait": false on the tiny SD1.5 model: the
 * answer (session_id, run_request_id) comes before any line of the run,
 * the run's final response holds the generated image, and the session
 * (processing.session) holds the same result; the image equals the one
 * inference.run makes alone with the same data. */
static void test_nowait_tiny_sd15(void) {
    const char *ref = test_path("SDRT_REFERENCE", "");
    struct stat st;
    if (stat(ref, &st) != 0) {
        printf("# skipped: no reference data at %s\n", ref);
        return;
    }
    char plugins[4096], out_dir[] = "/tmp/sdrt-nowait-XXXXXX";
    REQUIRE(mkdtemp(out_dir), "mkdtemp");
    snprintf(plugins, sizeof plugins, "plugin_paths=[\"%s\"]", test_path("SDRT_BUILD_DIR", "lib/sdrt/plugins"));
    const char *args[] = {"serve", "--set", plugins, "--model-root", ref, "--output-root", out_dir, NULL};
    host_proc h;
    REQUIRE(host_start(&h, args) == 0, "cannot start sdrt");
    srand((unsigned)getpid() * 31u);
    int seed = rand() % 100000;
    char gen[512], line[2048];
    snprintf(gen, sizeof gen,
             "\"model_id\":\"tiny-sd15/diffusers\",\"prompt\":\"a lighthouse at dusk\",\"width\":64,\"height\":64,"
             "\"num_inference_steps\":3,\"seed\":%d",
             seed);
    snprintf(line, sizeof line,
             "{\"type\":\"processing.execute\",\"request_id\":\"nw\",\"data\":{\"wait\":false,\"workflow_id\":\"txt2img\","
             "\"inputs\":{%s}}}",
             gen);
    REQUIRE(host_send(&h, line) == 0, "send");
    cJSON *a = final_of(&h, "nw", 60);
    REQUIRE(a, "no answer to the execute; stderr:\n%s", host_stderr(&h));
    const char *run = cJSON_GetStringValue(at(a, "data", "run_request_id", NULL));
    const char *sid = cJSON_GetStringValue(at(a, "data", "session_id", NULL));
    REQUIRE(run && sid, "execute answer without run_request_id/session_id: %s", cJSON_PrintUnformatted(a));
    CHECK(strcmp(cJSON_GetStringValue(at(a, "data", "status", NULL)), "queued") == 0, "status not queued");
    cJSON *r = final_of(&h, run, 300);
    REQUIRE(r, "no final response of the run %s; stderr:\n%s", run, host_stderr(&h));
    /* Order: no line of the run before the execute's answer. */
    char needle[300];
    snprintf(needle, sizeof needle, "\"request_id\":\"%s\"", run);
    int first_run = -1, answer = -1;
    for (int i = 0; i < h.n_lines; i++) {
        if (first_run < 0 && strstr(h.lines[i], needle)) first_run = i;
        if (answer < 0 && strstr(h.lines[i], "\"request_id\":\"nw\"") && strstr(h.lines[i], "\"type\":\"response\""))
            answer = i;
    }
    CHECK(answer >= 0 && first_run > answer, "the run's first line (%d) came before the execute's answer (%d)",
          first_run, answer);
    const cJSON *img =
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(at(r, "data", "results", "generate"), "images"), 0);
    REQUIRE(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "success")) && cJSON_IsString(img),
            "run failed: %s", cJSON_PrintUnformatted(r));
    /* The session holds the same result. */
    snprintf(line, sizeof line, "{\"type\":\"processing.session\",\"request_id\":\"ps\",\"data\":{\"session_id\":\"%s\"}}",
             sid);
    REQUIRE(host_send(&h, line) == 0, "send");
    cJSON *ps = final_of(&h, "ps", 30);
    const cJSON *simg =
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(at(ps, "data", "results", "generate"), "images"), 0);
    CHECK(ps && strcmp(cJSON_GetStringValue(at(ps, "data", "status", NULL)), "completed") == 0 &&
              cJSON_IsString(simg) && strcmp(simg->valuestring, img->valuestring) == 0,
          "session %s does not hold the run's result", ps ? cJSON_PrintUnformatted(ps) : "(none)");
    /* Independent: the same generation alone. */
    snprintf(line, sizeof line, "{\"type\":\"inference.run\",\"request_id\":\"alone\",\"data\":{%s}}", gen);
    REQUIRE(host_send(&h, line) == 0, "send");
    cJSON *al = final_of(&h, "alone", 300);
    const cJSON *aimg = cJSON_GetArrayItem(at(al, "data", "images", NULL), 0);
    REQUIRE(cJSON_IsString(aimg), "inference alone failed");
    long n1 = 0, n2 = 0;
    unsigned char *b1 = png_idat(img->valuestring, &n1), *b2 = png_idat(aimg->valuestring, &n2);
    CHECK(b1 && b2 && n1 > 0 && n1 == n2 && memcmp(b1, b2, (size_t)n1) == 0,
          "the session's image differs from the same inference.run alone");
    free(b1);
    free(b2);
    cJSON_Delete(a);
    cJSON_Delete(r);
    cJSON_Delete(ps);
    cJSON_Delete(al);
    host_finish(&h, 30);
    host_free(&h);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out_dir);
    if (system(cmd) != 0) printf("# could not remove %s\n", out_dir);
}

/* metrics.device_memory_mb on the strict test device (memory the host
 * cannot touch, counted by the device): non-null on a final response of an
 * inference.run, at least the UNet's weights (the device holds them, in
 * float32 or float16: half the file is a floor) and at most the device's
 * configured memory; null on a CPU-only host. */
static void test_device_memory_metrics(void) {
    const char *ref = test_path("SDRT_REFERENCE", "");
    const char *strict = getenv("SDRT_TEST_BACKEND_MODULE");
    struct stat st, unet;
    char unet_path[4096];
    snprintf(unet_path, sizeof unet_path, "%s/tiny-sd15/diffusers/unet/diffusion_pytorch_model.safetensors", ref);
    if (stat(ref, &st) != 0 || stat(unet_path, &unet) != 0 || !strict || !*strict) {
        printf("# skipped: no reference data at %s or no strict backend (SDRT_TEST_BACKEND_MODULE)\n", ref);
        return;
    }
    const double device_mib = 512;
    char plugins[4096], device[8192], out_dir[] = "/tmp/sdrt-devmem-XXXXXX";
    REQUIRE(mkdtemp(out_dir), "mkdtemp");
    snprintf(plugins, sizeof plugins, "plugin_paths=[\"%s\"]", test_path("SDRT_BUILD_DIR", "lib/sdrt/plugins"));
    snprintf(device, sizeof device,
             "plugins.device.config={\"device\":\"strict:0\",\"extra_backends\":[\"%s\"],"
             "\"backends\":{\"strict\":{\"threads\":2,\"memory_bytes\":%.0f}}}",
             strict, device_mib * 1024 * 1024);
    srand((unsigned)getpid() * 13u);
    char line[1024];
    snprintf(line, sizeof line,
             "{\"type\":\"inference.run\",\"request_id\":\"dm\",\"data\":{\"model_id\":\"tiny-sd15/diffusers\","
             "\"prompt\":\"a red fox\",\"width\":64,\"height\":64,\"num_inference_steps\":3,\"seed\":%d}}",
             rand() % 100000);
    for (int with_device = 1; with_device >= 0; with_device--) {
        const char *args_dev[] = {"serve", "--set", plugins, "--set", device, "--model-root", ref,
                                  "--output-root", out_dir, NULL};
        const char *args_cpu[] = {"serve", "--set", plugins, "--model-root", ref, "--output-root", out_dir, NULL};
        host_proc h;
        REQUIRE(host_start(&h, with_device ? args_dev : args_cpu) == 0, "cannot start sdrt");
        REQUIRE(host_send(&h, line) == 0, "send");
        cJSON *r = final_of(&h, "dm", 300);
        REQUIRE(r, "no answer; stderr:\n%s", host_stderr(&h));
        char *text = cJSON_PrintUnformatted(r);
        CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "success")), "inference failed: %s", text);
        const cJSON *dm = at(r, "metrics", "device_memory_mb", NULL);
        if (with_device) {
            double floor_mib = (double)unet.st_size / 2 / (1024.0 * 1024.0);
            CHECK(cJSON_IsNumber(dm) && dm->valuedouble >= floor_mib && dm->valuedouble <= device_mib,
                  "device_memory_mb %s: expected %.2f..%.0f MiB (half the UNet file .. the device)",
                  dm ? cJSON_PrintUnformatted(dm) : "absent", floor_mib, device_mib);
            const cJSON *mu = at(r, "metrics", "memory_usage_mb", NULL);
            printf("# strict device: device_memory_mb %.1f (UNet file %.2f MiB), memory_usage_mb %.1f\n",
                   cJSON_IsNumber(dm) ? dm->valuedouble : -1, (double)unet.st_size / 1048576.0,
                   cJSON_IsNumber(mu) ? mu->valuedouble : -1);
            /* host.* answers carry the current figure: the model stays
             * cached on the device, so it is non-null and not above the
             * request's peak. */
            REQUIRE(host_send(&h, "{\"type\":\"host.health\",\"request_id\":\"hh\"}") == 0, "send");
            cJSON *hh = final_of(&h, "hh", 30);
            const cJSON *now = at(hh, "metrics", "device_memory_mb", NULL);
            CHECK(cJSON_IsNumber(now) && cJSON_IsNumber(dm) && now->valuedouble > 0 &&
                      now->valuedouble <= dm->valuedouble + 0.05,
                  "host.health device_memory_mb %s after a peak of %s", now ? cJSON_PrintUnformatted(now) : "absent",
                  dm ? cJSON_PrintUnformatted(dm) : "absent");
            cJSON_Delete(hh);
        } else {
            CHECK(cJSON_IsNull(dm), "CPU only: device_memory_mb %s, expected null",
                  dm ? cJSON_PrintUnformatted(dm) : "absent");
        }
        free(text);
        cJSON_Delete(r);
        host_finish(&h, 30);
        host_free(&h);
    }
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out_dir);
    if (system(cmd) != 0) printf("# could not remove %s\n", out_dir);
}

const test_entry TESTS[] = {
    {"hires_fix_tiny_sd15", test_hires_fix_tiny_sd15},
    {"quality_preset_tiny_sd15", test_quality_preset_tiny_sd15},
    {"nowait_tiny_sd15", test_nowait_tiny_sd15},
    {"device_memory_metrics", test_device_memory_metrics},
    {NULL, NULL},
};
