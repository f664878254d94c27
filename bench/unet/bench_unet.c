/* bench/unet/bench_unet.c - UNet step time on the CPU backend.
 *
 *   bench-unet UNET_DIR|CKPT.safetensors [--size WxH] [--batch N] [--iters K]
 *              [--threads T] [--f16] [--ctx L] [--mode eager|graph|both]
 *
 * UNET_DIR is a diffusers `unet` folder (config.json +
 * diffusion_pytorch_model.safetensors); a .safetensors file is read as a
 * single-file checkpoint through the model plugin's store (config derived
 * from the shapes, as model.load does). --mode graph runs each call as one
 * recorded nn graph (arena planned by liveness; prints the arena size and
 * the peak of live intermediates), both alternates eager and graph calls
 * in one run for a side-by-side comparison. --size is the image size in pixels
 * (latent = size / 8), --batch the UNet batch (2 = one image with CFG),
 * --f16 converts float32 weights of 2+ dims to float16 on load, --ctx the
 * text length (77). Inputs are random; prints one line per iteration and a
 * summary with the model's FLOPs (2 x multiply-accumulates of the matmuls
 * and convolutions) and the achieved rate. Each call is also timed in
 * process CPU time (all threads; `cpu`, `best cpu`): on a shared machine
 * that measures the work where wall time measures the wait. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fixture.h"
#include "sdrt/rng.h"
#include "store.h"
#include "unet.h"

typedef struct bench_args {
    const char *dir;
    int width, height, batch, iters, threads, f16, ctx;
    int mode; /* 0 eager, 1 graph, 2 both */
} bench_args;

static const sdrt_tensor *ckpt_weight(void *ctx, const char *name) {
    return store_tensor(ctx, "unet", name);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of the whole process (all threads): on a shared machine it
 * tracks the work done better than wall time, which waits for other jobs. */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int parse_args(int argc, char **argv, bench_args *a) {
    *a = (bench_args){.width = 512, .height = 512, .batch = 2, .iters = 3, .threads = 2, .ctx = 77};
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(s, "--f16") == 0) a->f16 = 1;
        else if (strcmp(s, "--size") == 0 && v && sscanf(v, "%dx%d", &a->width, &a->height) == 2) i++;
        else if (strcmp(s, "--batch") == 0 && v) a->batch = atoi(argv[++i]);
        else if (strcmp(s, "--iters") == 0 && v) a->iters = atoi(argv[++i]);
        else if (strcmp(s, "--threads") == 0 && v) a->threads = atoi(argv[++i]);
        else if (strcmp(s, "--ctx") == 0 && v) a->ctx = atoi(argv[++i]);
        else if (strcmp(s, "--mode") == 0 && v) {
            i++;
            a->mode = !strcmp(v, "eager") ? 0 : !strcmp(v, "graph") ? 1 : !strcmp(v, "both") ? 2 : -1;
            if (a->mode < 0) return 0;
        }
        else if (s[0] != '-' && !a->dir) a->dir = s;
        else return 0;
    }
    return a->dir && a->batch > 0 && a->batch <= 64 && a->iters > 0 && a->width % 8 == 0 && a->height % 8 == 0;
}

static sdrt_tensor *random_tensor(sdrt_nn *nn, sdrt_rng *g, int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    float *data = malloc((size_t)n * sizeof *data);
    sdrt_rng_randn(g, data, (size_t)n);
    sdrt_tensor *t = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, ndim, shape, data);
    free(data);
    return t;
}

static int run(const bench_args *a) {
#ifndef SDRT_NN_HAS_GRAPH
    if (a->mode != 0) {
        fprintf(stderr, "bench-unet: this SDK has no nn graph mode\n");
        return 2;
    }
#endif
    char path[4096], err[512] = "";
    size_t dl = strlen(a->dir);
    int ckpt = dl > 12 && strcmp(a->dir + dl - 12, ".safetensors") == 0;
    fx_weights *w = NULL;
    struct sdrt_model *m = NULL;
    char *cfg = NULL;
    unet *u = NULL;
    if (ckpt) {
        if (store_load(a->dir, &m, err, sizeof err) != SDRT_OK) {
            fprintf(stderr, "bench-unet: %s\n", err);
            return 1;
        }
        const store_component *uc = store_component_get(m, "unet");
        cfg = uc && uc->config_json ? strdup(uc->config_json) : NULL;
    } else {
        snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", a->dir);
        w = fx_weights_open(path, a->f16);
        snprintf(path, sizeof path, "%s/config.json", a->dir);
        cfg = fx_read_text(path);
    }
    if (!cfg || unet_new(cfg, ckpt ? ckpt_weight : fx_weights_get, ckpt ? (void *)m : (void *)w, &u, err,
                         sizeof err) != SDRT_OK) {
        fprintf(stderr, "bench-unet: %s\n", cfg ? err : "cannot read config.json");
        return 1;
    }
    const unet_config *c = unet_get_config(u);
    char params[64];
    snprintf(params, sizeof params, "{\"threads\":%d}", a->threads);
    sdrt_nn *nn = sdrt_nn_new(fx_cpu_device(), params, NULL, NULL);
    sdrt_rng g;
    sdrt_rng_seed(&g, 0);
    int h = a->height / 8, wl = a->width / 8;
    int64_t sshape[4] = {a->batch, c->in_channels, h, wl}, cshape[3] = {a->batch, a->ctx, c->cross_dim[0]};
    int64_t pshape[2] = {a->batch, c->add_embed_in - 6 * c->addition_time_embed_dim};
    sdrt_tensor *sample = random_tensor(nn, &g, 4, sshape), *ctx = random_tensor(nn, &g, 3, cshape);
    sdrt_tensor *pooled = c->text_time ? random_tensor(nn, &g, 2, pshape) : NULL;
    float ts[64], ids[64 * 6];
    for (int b = 0; b < a->batch && b < 64; b++) {
        ts[b] = 500.0f;
        float row[6] = {(float)a->height, (float)a->width, 0, 0, (float)a->height, (float)a->width};
        memcpy(ids + 6 * b, row, sizeof row);
    }
    unet_inputs in = {.sample = sample, .timesteps = ts, .context = ctx, .text_embeds = pooled, .time_ids = ids};
    double flops = 2.0 * unet_macs(u, a->batch, h, wl, a->ctx), best[2] = {1e30, 1e30}, total[2] = {0, 0};
    double best_cpu[2] = {1e30, 1e30};
    int calls[2] = {0, 0};
    for (int it = 0; it < a->iters * (a->mode == 2 ? 2 : 1); it++) {
        int graph = a->mode == 2 ? it % 2 : a->mode;
        sdrt_tensor *out = NULL;
        double t0 = now_s(), c0 = cpu_s();
#ifdef SDRT_NN_HAS_GRAPH
        if (graph) sdrt_nn_graph_begin(nn);
#endif
        sdrt_status st = unet_forward(u, nn, &in, &out, err, sizeof err);
#ifdef SDRT_NN_HAS_GRAPH
        if (graph) {
            sdrt_status gst = sdrt_nn_graph_end(nn);
            const char *msg = NULL;
            sdrt_nn_status(nn, &msg);
            if (st == SDRT_OK && gst != SDRT_OK) snprintf(err, sizeof err, "%s", msg), st = gst;
        }
#endif
        double dt = now_s() - t0, dc = cpu_s() - c0;
        sdrt_nn_drop(nn, out);
        if (st != SDRT_OK) {
            fprintf(stderr, "bench-unet: %s\n", err);
            return 1;
        }
#ifdef SDRT_NN_HAS_GRAPH
        if (graph) {
            size_t arena = 0, peak = 0;
            uint64_t key = 0;
            sdrt_nn_graph_stats(nn, &arena, &peak, &key);
            printf("iter %d graph: %.3f s, cpu %.3f s, arena %.1f MiB, peak live intermediates %.1f MiB "
                   "(arena/peak %.3f), replay key %llu\n", it, dt, dc, arena / 1048576.0, peak / 1048576.0, peak ? (double)arena / peak : 0.0,
                   (unsigned long long)key);
        } else
#endif
        {
            printf("iter %d eager: %.3f s, cpu %.3f s\n", it, dt, dc);
            fflush(stdout);
        }
        best[graph] = dt < best[graph] ? dt : best[graph];
        best_cpu[graph] = dc < best_cpu[graph] ? dc : best_cpu[graph];
        total[graph] += dt;
        calls[graph]++;
    }
    fflush(stdout);
    for (int g = 0; g < 2; g++) {
        if (!calls[g]) continue;
        printf("unet %s %dx%d batch %d threads %d weights %s mode %s: best %.3f s, mean %.3f s, best cpu %.3f s, %.1f "
               "GFLOP/call, %.1f GFLOP/s\n", a->dir, a->width, a->height, a->batch, a->threads, a->f16 ? "f16" : "stored",
               g ? "graph" : "eager", best[g], total[g] / calls[g], best_cpu[g], flops * 1e-9, flops * 1e-9 / best[g]);
    }
    sdrt_nn_free(nn);
    unet_free(u);
    if (w) fx_weights_close(w);
    store_free(m);
    free(cfg);
    return 0;
}

int main(int argc, char **argv) {
    bench_args a;
    if (!parse_args(argc, argv, &a)) {
        fprintf(stderr, "usage: bench-unet UNET_DIR|CKPT.safetensors [--size WxH] [--batch N] [--iters K] [--threads T] [--f16] "
                        "[--ctx L] [--mode eager|graph|both]\n");
        return 2;
    }
    return run(&a);
}
