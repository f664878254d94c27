/* tests/inference/bench_img2img.c - img2img cost against txt2img (not a
 * test; docs/PERFORMANCE.md "img2img" records its output).
 *
 *   bench-img2img MODEL [--size 256] [--steps 8] [--strength 0.5] [--threads 2]
 *
 * Runs inference.run end to end through the real plugins (fake host, as
 * the tests do): one txt2img request and one img2img request of the same
 * size and num_inference_steps, and prints each processing_time and the
 * steps the loop ran. The init image is tests/inference/data/init.png,
 * resized to the size (Lanczos). Needs SDRT_BUILD_DIR, SDRT_SOURCE_DIR and
 * SDRT_REFERENCE (as ctest sets them) for the plugins, the image and the
 * tokenizer files of single-file checkpoints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fake_host.h"
#include "run.h"

static double run_one(infer_plugin *p, const char *data, int *steps) {
    sdrt_request req = {.struct_size = sizeof req, .type = "inference.run", .request_id = "b", .data_json = data};
    struct sdrt_job job = {0};
    req.job = &job;
    char *result = NULL;
    sdrt_error *e = infer_run(p, &req, &result);
    if (e) {
        fprintf(stderr, "inference.run failed: %s\n", e->message);
        p->api->error_free(e);
        return -1.0;
    }
    cJSON *r = cJSON_Parse(result);
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(r, "processing_time");
    double t = cJSON_IsNumber(pt) ? pt->valuedouble : -1.0;
    cJSON_Delete(r);
    p->api->free(result);
    *steps = job.last_steps;
    return t;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [--size N] [--steps N] [--strength S] [--threads N]\n", argv[0]);
        return 2;
    }
    int size = 256, steps = 8, threads = 2;
    double strength = 0.5;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--strength")) strength = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    }
    const char *src = getenv("SDRT_SOURCE_DIR");
    char init[2048];
    snprintf(init, sizeof init, "%s/tests/inference/data/init.png", src ? src : ".");
    static const char *const plugins[] = {"device", "model", "scheduler", "conditioning", "postprocess", NULL};
    char out[] = "/tmp/sdrt-bench-img2img-XXXXXX", stream[64], data[4096];
    /* Single-file checkpoints carry no tokenizer: the reference's, as in the tests. */
    const char *ref = getenv("SDRT_REFERENCE");
    char cond[4200];
    snprintf(cond, sizeof cond, "{\"tokenizer_dir\":\"%s/tokenizer\",\"tokenizer_2_dir\":\"%s/tokenizer_2\"}",
             ref ? ref : ".", ref ? ref : ".");
    const char *configs[] = {NULL, NULL, NULL, cond, NULL, NULL};
    if (!mkdtemp(out) || fake_host_start(plugins, configs, out) != 0) return 1;
    snprintf(stream, sizeof stream, "{\"threads\":%d}", threads);
    infer_plugin p = {.api = fake_host_api(), .host = fake_host_handle(), .stream_params = stream};
    const char *common = "\"prompt\":\"a red fox in the snow\",\"seed\":1,\"scheduler\":\"euler\"";
    snprintf(data, sizeof data, "{\"model_id\":\"%s\",%s,\"width\":%d,\"height\":%d,\"num_inference_steps\":%d,"
             "\"output\":{\"dir\":\"%s\"}}", argv[1], common, size, size, steps, out);
    int s_t2i = 0, s_i2i = 0;
    double warm = run_one(&p, data, &s_t2i); /* loads the model into the cache */
    double t2i = run_one(&p, data, &s_t2i);
    snprintf(data, sizeof data, "{\"model_id\":\"%s\",%s,\"width\":%d,\"height\":%d,\"num_inference_steps\":%d,"
             "\"init_image\":\"%s\",\"strength\":%g,\"output\":{\"dir\":\"%s\"}}", argv[1], common, size, size, steps,
             init, strength, out);
    double i2i = run_one(&p, data, &s_i2i);
    printf("%dx%d, %d steps, threads %d (first run with loading %.2f s)\n", size, size, steps, threads, warm);
    printf("txt2img: %d steps, processing_time %.2f s\n", s_t2i, t2i);
    printf("img2img strength %g: %d steps, processing_time %.2f s (%.0f %% of txt2img)\n", strength, s_i2i, i2i,
           t2i > 0 ? 100.0 * i2i / t2i : 0.0);
    fake_host_stop();
    return t2i > 0 && i2i > 0 ? 0 : 1;
}
