/* tests/inference/infer_fixture.c - see infer_fixture.h. */
#define _POSIX_C_SOURCE 200809L
#include "infer_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "batch.h"
#include "harness.h"
#include "sdrt/npy.h"

static infer_plugin g_plugin;
static int g_started = -1;
static char g_out[1024];

int ifx_start(void) {
    static const char *const plugins[] = {"device", "model", "scheduler", "conditioning", "postprocess", "lora", NULL};
    static char cond_config[2048], lora_config[2048];
    /* SDRT_TEST_DEVICE_CONFIG: the device plugin's config, e.g. the strict
     * device ({"extra_backends":[".../sdrt_backend_strict.so"],
     * "device":"strict:0"}); default {} (the CPU). */
    const char *configs[] = {getenv("SDRT_TEST_DEVICE_CONFIG"), NULL, NULL, cond_config, NULL, lora_config, NULL};
    if (g_started >= 0) return g_started;
    snprintf(g_out, sizeof g_out, "%s", test_tmpdir());
    /* Textual-inversion embeddings of tests/conditioning (SD1.x width). */
    snprintf(cond_config, sizeof cond_config,
             "{\"tokenizer_dir\":\"%s\",\"tokenizer_2_dir\":\"%s\",\"embedding_roots\":[\"%s\"]}",
             test_path("SDRT_REFERENCE", "tokenizer"), test_path("SDRT_REFERENCE", "tokenizer_2"),
             test_path("SDRT_SOURCE_DIR", "tests/conditioning/data/emb/sd15"));
    /* Prompt tags name LoRAs by file name: tests/lora/data is a LoRA folder
     * under the fake host's model root "/". */
    snprintf(lora_config, sizeof lora_config, "{\"subdirs\":[\"%s\"]}",
             test_path("SDRT_SOURCE_DIR", "tests/lora/data") + 1);
    g_started = fake_host_start(plugins, configs, g_out) == 0;
    g_plugin.api = fake_host_api();
    g_plugin.host = fake_host_handle();
    g_plugin.stream_params = (char *)"{\"threads\":2}";
    return g_started;
}

infer_plugin *ifx_plugin(void) { return &g_plugin; }

const char *ifx_out_dir(void) { return g_out; }

void ifx_stop(void) {
    if (g_started == 1) fake_host_stop();
    g_started = 0;
}

/* data_json with "precision": SDRT_TEST_PRECISION added when it names
 * none (malloc'd), or NULL to use data_json as is. */
static char *with_test_precision(const char *type, const char *data_json) {
    const char *prec = getenv("SDRT_TEST_PRECISION");
    if (!prec || !*prec || strcmp(type, "inference.run") != 0) return NULL;
    cJSON *d = cJSON_Parse(data_json);
    char *out = NULL;
    if (cJSON_IsObject(d) && !cJSON_GetObjectItemCaseSensitive(d, "precision")) {
        cJSON_AddStringToObject(d, "precision", prec);
        out = cJSON_PrintUnformatted(d);
    }
    cJSON_Delete(d);
    return out;
}

ifx_result ifx_call(const char *type, const char *data_json, sdrt_job *job) {
    ifx_result r = {SDRT_OK, "", NULL};
    char *own = with_test_precision(type, data_json);
    if (own) data_json = own;
    sdrt_request req = {.struct_size = sizeof req, .type = type, .request_id = "t", .data_json = data_json, .job = job};
    char *result = NULL;
    sdrt_error *e = strcmp(type, "inference.batch") == 0 ? infer_batch(&g_plugin, &req, &result)
                                                         : infer_run(&g_plugin, &req, &result);
    cJSON_free(own);
    if (e) {
        r.status = e->code;
        snprintf(r.message, sizeof r.message, "%s", e->message);
        g_plugin.api->error_free(e);
        return r;
    }
    r.data = cJSON_Parse(result);
    g_plugin.api->free(result);
    return r;
}

float *ifx_load_npy(const char *path, size_t *n) {
    float *data = NULL;
    int64_t shape[8];
    int nd = 0;
    char err[256];
    *n = 0;
    if (!path || sdrt_npy_read_f32(path, &data, shape, &nd, err, sizeof err) != 0) return NULL;
    *n = 1;
    for (int d = 0; d < nd; d++) *n *= (size_t)shape[d];
    return data;
}

const char *ifx_json_string_at(const cJSON *data, const char *field, int i) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(data, field);
    const cJSON *s = cJSON_GetArrayItem(a, i);
    return cJSON_IsString(s) ? s->valuestring : NULL;
}

int ifx_file_exists(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && st.st_size > 0;
}

/* <dir>/<key>.npy into out. */
static void key_path(char *out, size_t n, const char *dir, const char *key) {
    snprintf(out, n, "%s/%s.npy", dir, key);
}

double ifx_check_latents(const char *key, const float *got, size_t n, const float *want, size_t n_want, double tol) {
    const char *save = getenv("SDRT_TEST_SAVE_LATENTS"), *cpu = getenv("SDRT_TEST_CPU_LATENTS");
    char path[2048], err[256];
    if (!got || !n) {
        CHECK(0, "%s: no latents", key);
        return 1.0;
    }
    if (save && *save) {
        int64_t shape[1] = {(int64_t)n};
        mkdir(save, 0755);
        key_path(path, sizeof path, save, key);
        CHECK(sdrt_npy_write_f32(path, got, shape, 1, err, sizeof err) == 0, "%s: %s", path, err);
    }
    double vs_ref = want && n_want == n ? test_rel_l2(got, want, n) : -1.0;
    if (!cpu || !*cpu) {
        CHECK(vs_ref >= 0, "%s: latents missing or wrong size (%zu vs %zu)", key, n, n_want);
        if (vs_ref >= 0) CHECK(vs_ref <= tol, "%s: rel L2 %.3g > %.0e (diffusers)", key, vs_ref, tol);
        return vs_ref < 0 ? 1.0 : vs_ref;
    }
    /* Against the CPU backend's latents of the same request. */
    const char *t = getenv("SDRT_TEST_CPU_TOL");
    double cpu_tol = t && *t ? strtod(t, NULL) : 1e-3;
    key_path(path, sizeof path, cpu, key);
    size_t n_cpu = 0;
    float *ref = ifx_load_npy(path, &n_cpu);
    CHECK(ref && n_cpu == n, "%s: CPU latents %s missing or of %zu values (want %zu)", key, path, n_cpu, n);
    double e = ref && n_cpu == n ? test_rel_l2(got, ref, n) : 1.0;
    printf("# %s: rel L2 %.3g against the CPU backend (bound %.0e), %.3g against diffusers\n", key, e, cpu_tol, vs_ref);
    CHECK(e <= cpu_tol, "%s: rel L2 %.3g > %.0e against the CPU backend", key, e, cpu_tol);
    free(ref);
    return e;
}
