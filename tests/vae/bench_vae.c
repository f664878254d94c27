/* tests/vae/bench_vae.c - VAE decode/encode timing (a benchmark, not a
 * test): bench-vae MODEL [SIZE] [REPEATS]
 *
 * MODEL is a diffusers folder or a single-file checkpoint with a VAE, e.g.
 * full-size random weights from
 *   grep first_stage_model ../shared/reference/full/sd15-random.keys.txt > vae.keys
 *   sdrt-mkckpt vae.keys sd15-vae.safetensors --dtype f32
 * Decodes [1,4,SIZE/8,SIZE/8] latents (default 512 px) untiled and tiled,
 * then encodes the image, on the CPU backend, printing the best of REPEATS. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake_host.h"
#include "pp.h"
#include "sdrt/rng.h"
#include "store.h"

static const char *cfg_json(sdrt_model *m, const char *comp) {
    store_component *c = store_component_get(m, comp);
    return c ? c->config_json : NULL;
}
static const sdrt_tensor *tensor(sdrt_model *m, const char *comp, const char *name) {
    return store_tensor(m, comp, name);
}
static const char *model_id(sdrt_model *m) { return m->id; }
static sdrt_device *default_device(void *self) { return self; }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static sdrt_device *cpu_device(const char *argv0) {
    char so[4096];
    const char *build = getenv("SDRT_BUILD_DIR");
    snprintf(so, sizeof so, "%s/lib/sdrt/backends/sdrt_backend_cpu.so", build ? build : ".");
    void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    sdrt_backend_entry_fn entry = lib ? (sdrt_backend_entry_fn)dlsym(lib, SDRT_BACKEND_ENTRY_SYMBOL) : NULL;
    sdrt_backend_reg *reg = entry ? entry(fake_host_api(), "{}") : NULL;
    if (!reg) fprintf(stderr, "%s: cannot load %s (set SDRT_BUILD_DIR)\n", argv0, so);
    return reg ? reg->iface->device_get(reg, 0) : NULL;
}

/* Best wall time of `reps` decodes with the given tiling. */
static double time_decode(pp_plugin *p, sdrt_model *m, const float *lat, int lh, int tiling, int reps) {
    double best = 1e30;
    sdrt_vae_options o;
    sdrt_vae_options_init(&o);
    o.tiling = tiling;
    for (int r = 0; r < reps; r++) {
        float *rgb = NULL;
        double t0 = now();
        sdrt_error *e = pp_decode(p, m, lat, 1, 4, lh, lh, &o, NULL, &rgb, NULL, NULL);
        double dt = now() - t0;
        if (e) return fprintf(stderr, "decode: %s\n", e->message), -1;
        free(rgb);
        if (dt < best) best = dt;
    }
    return best;
}

static double time_encode(pp_plugin *p, sdrt_model *m, int size, int reps) {
    float *rgb = malloc(sizeof(float) * size * size * 3);
    for (int i = 0; i < size * size * 3; i++) rgb[i] = (float)(i % 251) / 250.f;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        float *lat = NULL;
        double t0 = now();
        sdrt_error *e = pp_encode(p, m, rgb, 1, size, size, NULL, NULL, NULL, &lat, NULL);
        double dt = now() - t0;
        if (e) return free(rgb), fprintf(stderr, "encode: %s\n", e->message), -1;
        free(lat);
        if (dt < best) best = dt;
    }
    free(rgb);
    return best;
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: %s MODEL [SIZE] [REPEATS]\n", argv[0]), 2;
    int size = argc > 2 ? atoi(argv[2]) : 512, reps = argc > 3 ? atoi(argv[3]) : 3;
    sdrt_device *dev = cpu_device(argv[0]);
    if (!dev || size < 64 || size % 64) return 1;
    sdrt_model *m = NULL;
    char err[512];
    if (store_load(argv[1], &m, err, sizeof err) != SDRT_OK) return fprintf(stderr, "%s\n", err), 1;
    static sdrt_model_iface mi = {.struct_size = SDRT_STRUCT_SIZE(sdrt_model_iface, id), .config_json = cfg_json,
                                  .tensor = tensor, .id = model_id};
    sdrt_backend_iface bi = {.struct_size = SDRT_STRUCT_SIZE(sdrt_backend_iface, default_device), .self = dev, .default_device = default_device};
    fake_host_provide(SDRT_MODEL_IFACE_ID, &mi);
    fake_host_provide(SDRT_BACKEND_IFACE_ID, &bi);
    pp_plugin p = {.api = fake_host_api()};
    pthread_mutex_init(&p.lock, NULL);
    int lh = size / 8;
    float *lat = malloc(sizeof(float) * 4 * lh * lh);
    sdrt_rng g;
    sdrt_rng_seed(&g, 1);
    sdrt_rng_randn(&g, lat, (size_t)4 * lh * lh);
    printf("device: %s\n", dev->iface->description ? dev->iface->description(dev) : dev->iface->name(dev));
    printf("decode %dx%d untiled:           %.3f s\n", size, size, time_decode(&p, m, lat, lh, SDRT_VAE_TILING_OFF, reps));
    printf("decode %dx%d tiled (512/128):   %.3f s\n", size, size, time_decode(&p, m, lat, lh, SDRT_VAE_TILING_ON, reps));
    printf("encode %dx%d untiled (auto):    %.3f s\n", size, size, time_encode(&p, m, size, reps));
    free(lat);
    store_free(m);
    return 0;
}
