/* tests/upscale/bench_upscale.c - upscaler timing and peak memory (a
 * benchmark, not a test): bench-upscale MODEL SIZE [TILE [OVERLAP]]
 *
 * Runs MODEL (.pth/.safetensors, e.g. full-size random RealESRGAN_x4plus
 * weights from tests/upscale/bench_upscale.py) on a random SIZE x SIZE image
 * on device 0 of the backend family SDRT_BENCH_BACKEND ("cpu" when unset;
 * "vulkan" for vulkan:0), tiled when TILE > 0, and prints the wall time and
 * the process's peak RSS. tests/upscale/bench_upscale.py runs spandrel on the
 * same file and size for the side-by-side numbers in docs/PERFORMANCE.md. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "fake_host.h"
#include "upscale.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 3) return fprintf(stderr, "usage: %s MODEL SIZE [TILE [OVERLAP]]\n", argv[0]), 2;
    int size = atoi(argv[2]), tile = argc > 3 ? atoi(argv[3]) : 0, overlap = argc > 4 ? atoi(argv[4]) : 16;
    char so[4096];
    const char *build = getenv("SDRT_BUILD_DIR"), *family = getenv("SDRT_BENCH_BACKEND");
    if (!family || !*family) family = "cpu";
    snprintf(so, sizeof so, "%s/lib/sdrt/backends/sdrt_backend_%s.so", build ? build : ".", family);
    void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    sdrt_backend_entry_fn entry = lib ? (sdrt_backend_entry_fn)dlsym(lib, SDRT_BACKEND_ENTRY_SYMBOL) : NULL;
    sdrt_backend_reg *reg = entry ? entry(fake_host_api(), "{}") : NULL;
    if (!reg || reg->iface->device_count(reg) < 1)
        return fprintf(stderr, "cannot load %s or it has no device (set SDRT_BUILD_DIR)\n", so), 1;
    sdrt_device *dev = reg->iface->device_get(reg, 0);
    up_model *m = NULL;
    char err[1200];
    if (up_model_open(argv[1], NULL, &m, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
    char desc[200];
    up_model_describe(m, desc, sizeof desc);
    size_t n = (size_t)size * size * 3, on = n * (size_t)m->scale * m->scale;
    float *in = malloc(n * sizeof *in), *out = malloc(on * sizeof *out);
    srand(1);
    for (size_t i = 0; i < n; i++) in[i] = (float)rand() / RAND_MAX;
    sdrt_nn *nn = sdrt_nn_new(dev, NULL, NULL, NULL);
    up_tiling t = {tile, overlap, NULL, NULL};
    double t0 = now();
    if (up_run_tiled(m, nn, &t, in, size, size, out, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
    double dt = now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%s on %s: %dx%d -> %dx%d, tile %d/%d: %.2f s, peak RSS %.0f MiB\n", desc, dev->iface->name(dev), size, size,
           size * m->scale, size * m->scale, tile, overlap, dt, ru.ru_maxrss / 1024.0);
    sdrt_nn_free(nn);
    up_model_close(m);
    free(in);
    free(out);
    return 0;
}
