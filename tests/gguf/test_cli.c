/* tests/gguf/test_cli.c - `sdrt convert` (host/convert.c) through the
 * real binary and the model plugin: the written file reads back with the
 * GGUF reader, and argument and request errors exit non-zero naming the
 * problem. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "gguf.h"
#include "harness.h"

/* Exit status; stdout and stderr together in out. */
static int run_sdrt(const char *args, char *out, size_t outlen) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "\"%s/bin/sdrt\" %s </dev/null 2>&1", getenv("SDRT_BUILD_DIR"), args);
    FILE *f = popen(cmd, "r");
    size_t n = f ? fread(out, 1, outlen - 1, f) : 0;
    out[n] = '\0';
    int st = f ? pclose(f) : -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void test_cli_convert(void) {
    const char *src = test_path("SDRT_REFERENCE", "tiny-sdxl/tiny-sdxl.safetensors");
    char dst[4096], args[9000], out[8192], err[512];
    snprintf(dst, sizeof dst, "%s/cli-q5_1.gguf", test_tmpdir());
    snprintf(args, sizeof args, "convert --model %s --type q5_1 -o %s", src, dst);
    int rc = run_sdrt(args, out, sizeof out);
    REQUIRE(rc == 0 && strstr(out, dst) && strstr(out, "quantised to q5_1"), "convert: exit %d: %s", rc, out);
    gguf_file *f;
    REQUIRE(gguf_open(dst, &f, err, sizeof err) == 0, "%s", err);
    size_t q = 0;
    for (size_t i = 0; i < f->n_tensors; i++) q += f->tensors[i].dtype == SDRT_DTYPE_Q5_1;
    const gguf_tensor *t = gguf_find(f, "model.diffusion_model.input_blocks.0.0.weight");
    CHECK(q > 100 && t && t->dtype == SDRT_DTYPE_F32, "%zu q5_1 tensors; conv_in as stored (f32)", q);
    gguf_close(f);
    rc = run_sdrt(args, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "exists"), "second run refuses to overwrite: %d %s", rc, out);
    snprintf(args, sizeof args, "convert --model %s --type q5_1 -o %s --overwrite", src, dst);
    rc = run_sdrt(args, out, sizeof out);
    CHECK(rc == 0, "--overwrite: %d %s", rc, out);
    snprintf(args, sizeof args, "convert --model %s --type q9_9 -o %s --overwrite", src, dst);
    rc = run_sdrt(args, out, sizeof out);
    CHECK(rc != 0 && strstr(out, "weight_type"), "bad type: %d %s", rc, out);
    rc = run_sdrt("convert --model x.safetensors", out, sizeof out);
    CHECK(rc == 2 && strstr(out, "required"), "missing args: %d %s", rc, out);
}
