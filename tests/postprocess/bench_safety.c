/* tests/postprocess/bench_safety.c - safety checker timing (a benchmark,
 * not a test): bench-safety FOLDER [N [REPEAT]]
 *
 * Opens the checker of pipeline FOLDER (safety_checker/ +
 * feature_extractor/; e.g. the tiny test checker, or a full-size ViT-L/14
 * random-weight one from tests/postprocess/bench_safety.py), then checks N
 * random 512x512 images REPEAT times on the CPU backend: preprocessing
 * (resize 512 -> 224, crop, normalise), the vision tower and projection,
 * the concept scores. Prints the best wall time per check and the peak RSS.
 * bench_safety.py times diffusers' checker on the same folder. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "fake_host.h"
#include "safety.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: %s FOLDER [N [REPEAT]]\n", argv[0]), 2;
    int n = argc > 2 ? atoi(argv[2]) : 1, repeat = argc > 3 ? atoi(argv[3]) : 3;
    char so[4096];
    const char *build = getenv("SDRT_BUILD_DIR");
    snprintf(so, sizeof so, "%s/lib/sdrt/backends/sdrt_backend_cpu.so", build ? build : ".");
    void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    sdrt_backend_entry_fn entry = lib ? (sdrt_backend_entry_fn)dlsym(lib, SDRT_BACKEND_ENTRY_SYMBOL) : NULL;
    sdrt_backend_reg *reg = entry ? entry(fake_host_api(), "{}") : NULL;
    if (!reg) return fprintf(stderr, "cannot load %s (set SDRT_BUILD_DIR)\n", so), 1;
    sdrt_device *dev = reg->iface->device_get(reg, 0);
    sc_model *m = NULL;
    char err[1200];
    if (sc_model_open(argv[1], NULL, &m, err, sizeof err) != SDRT_OK) return fprintf(stderr, "%s\n", err), 1;
    int S = m->cfg.image_size, W = 512, d = m->cfg.projection_dim;
    uint8_t *img = malloc((size_t)n * W * W * 3);
    float *px = malloc((size_t)n * 3 * S * S * sizeof *px), *emb = malloc((size_t)n * d * sizeof *emb);
    float *scores = malloc((size_t)(m->n_concepts + m->n_special) * sizeof *scores);
    srand(1);
    for (size_t i = 0; i < (size_t)n * W * W * 3; i++) img[i] = (uint8_t)(rand() & 255);
    sdrt_nn *nn = sdrt_nn_new(dev, NULL, NULL, NULL);
    if (m->ws) sdrt_nn_add_weight_store(nn, m->ws);
    double best = 1e30;
    int flagged = 0;
    for (int r = 0; r < repeat; r++) {
        double t0 = now();
        for (int i = 0; i < n; i++)
            if (sc_prep_run(&m->prep, img + (size_t)i * W * W * 3, W, W, px + (size_t)i * 3 * S * S, err, sizeof err))
                return fprintf(stderr, "%s\n", err), 1;
        if (sc_model_embed(m, nn, px, n, emb, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
        flagged = 0;
        for (int i = 0; i < n; i++) {
            sc_verdict v = {scores, scores + m->n_special, 0, 0};
            sc_concepts_score(m, emb + (size_t)i * d, &v);
            flagged += v.nsfw;
        }
        double dt = now() - t0;
        best = dt < best ? dt : best;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("safety checker hidden %d, %d layers, %dx%d patches of %d: %d image(s) of 512x512: best %.3f s per call "
           "(%.3f s per image) over %d, %d flagged, peak RSS %.0f MiB\n",
           m->cfg.hidden, m->cfg.layers, S / m->cfg.patch, S / m->cfg.patch, m->cfg.patch, n, best, best / n, repeat,
           flagged, ru.ru_maxrss / 1024.0);
    sdrt_nn_free(nn);
    sc_model_close(m);
    free(img);
    free(px);
    free(emb);
    free(scores);
    return 0;
}
