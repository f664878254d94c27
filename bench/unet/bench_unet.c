/* bench/unet/bench_unet.c - UNet step time on the CPU backend.
 *
 *   bench-unet UNET_DIR|CKPT.safetensors [--size WxH] [--batch N] [--iters K]
 *              [--threads T] [--f16] [--ctx L] [--mode eager|graph|both|plan]
 *              [--precision auto|f32|bf16|int8] [--quality STEPS]
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
 * and convolutions) and the achieved rate. --mode plan records one graph
 * and prints its memory plan without running it (the arena's allocation is
 * refused on purpose), so the activation memory of a size too slow to run
 * here (SDXL 1024²) is known exactly: docs/devices.md "Memory modes".
 * --precision sets the stream's
 * compute precision (the CPU backend's int8 / bf16 weight products; the
 * first call then includes packing the weights once). --quality STEPS runs
 * instead an Euler sampling loop of STEPS guided steps (CFG 7.5, sigmas of
 * the SD scaled-linear schedule at evenly spaced timesteps, random noise
 * and text context) once in f32 and once in --precision from the same
 * inputs, and prints the relative L2 of the final latents and both times. Each call
 * is also timed in process CPU time (all threads; `cpu`, `best cpu`): on a
 * shared machine that measures the work where wall time measures the wait. */
#include <math.h>
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
    int mode; /* 0 eager, 1 graph, 2 both, 3 plan only */
    const char *precision; /* NULL: the backend's default */
    int quality;           /* > 0: Euler steps of the quality comparison */
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
        else if (strcmp(s, "--precision") == 0 && v) a->precision = argv[++i];
        else if (strcmp(s, "--quality") == 0 && v) a->quality = atoi(argv[++i]);
        else if (strcmp(s, "--mode") == 0 && v) {
            i++;
            a->mode = !strcmp(v, "eager") ? 0 : !strcmp(v, "graph") ? 1 : !strcmp(v, "both") ? 2 : !strcmp(v, "plan") ? 3 : -1;
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

/* --mode plan: the CPU device with a buffer type that refuses allocations
 * of 64 MiB and more (the arena), everything else as the CPU's. */
static sdrt_buffer_type g_plan_bt;
static sdrt_buffer_type_iface g_plan_bt_iface;
static sdrt_device_iface g_plan_dev_iface;
static sdrt_device g_plan_dev;
static sdrt_buffer_type *g_cpu_bt;

static sdrt_buffer *plan_alloc(sdrt_buffer_type *bt, size_t size) {
    (void)bt;
    return size >= ((size_t)64 << 20) ? NULL : g_cpu_bt->iface->alloc(g_cpu_bt, size);
}

static sdrt_buffer_type *plan_buffer_type(sdrt_device *dev) {
    (void)dev;
    return &g_plan_bt;
}

static sdrt_device *plan_device(sdrt_device *cpu) {
    sdrt_buffer_type *bt = cpu->iface->buffer_type(cpu);
    g_cpu_bt = bt;
    g_plan_bt_iface = *bt->iface;
    g_plan_bt_iface.alloc = plan_alloc;
    g_plan_bt = *bt;
    g_plan_bt.iface = &g_plan_bt_iface;
    g_plan_dev_iface = *cpu->iface;
    g_plan_dev_iface.buffer_type = plan_buffer_type;
    g_plan_dev = *cpu;
    g_plan_dev.iface = &g_plan_dev_iface;
    return &g_plan_dev;
}

/* Stream params: threads and, when given, the precision. */
static void stream_params(const bench_args *a, const char *precision, char *out, size_t len) {
    if (precision) snprintf(out, len, "{\"threads\":%d,\"precision\":\"%s\"}", a->threads, precision);
    else snprintf(out, len, "{\"threads\":%d}", a->threads);
}

static long peak_rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = atol(line + 6);
    if (f) fclose(f);
    return kb;
}

/* One Euler sampling loop with CFG on `nn`: x (host, [1, C, h, w]) is
 * denoised in place over the given sigmas / timesteps. 0 on success. */
static int euler_loop(unet *u, sdrt_nn *nn, const unet_inputs *proto, float *x, int64_t per, const double *sigmas,
                      const float *tsteps, int steps, int c, int h, int w, char *err, size_t errlen) {
    float *in = malloc(sizeof(float) * (size_t)(2 * per)), *out = malloc(sizeof(float) * (size_t)(2 * per));
    int rc = 0;
    for (int i = 0; i < steps && rc == 0; i++) {
        float scale = (float)(1.0 / sqrt(sigmas[i] * sigmas[i] + 1.0));
        for (int64_t j = 0; j < per; j++) in[j] = in[per + j] = x[j] * scale;
        int64_t shape[4] = {2, c, h, w};
        unet_inputs ui = *proto;
        ui.sample = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 4, shape, in);
        float ts[2] = {tsteps[i], tsteps[i]};
        ui.timesteps = ts;
        sdrt_tensor *o = NULL;
        if (unet_forward(u, nn, &ui, &o, err, errlen) != SDRT_OK || sdrt_nn_to_host_f32(nn, o, out) != SDRT_OK) {
            rc = -1;
        } else {
            /* [uncond, cond] -> guided eps; x += (sigma_next - sigma) * eps */
            for (int64_t j = 0; j < per; j++) {
                float eps = out[j] + 7.5f * (out[per + j] - out[j]);
                x[j] += (float)(sigmas[i + 1] - sigmas[i]) * eps;
            }
        }
        sdrt_nn_drop(nn, o);
        sdrt_nn_drop(nn, (sdrt_tensor *)ui.sample);
    }
    free(in);
    free(out);
    return rc;
}

/* --quality: the same sampling run in f32 and in a->precision. */
static int run_quality(const bench_args *a, unet *u) {
    const unet_config *c = unet_get_config(u);
    int h = a->height / 8, wl = a->width / 8, steps = a->quality;
    int64_t per = (int64_t)c->in_channels * h * wl;
    /* SD's scaled-linear betas; sigmas at evenly spaced timesteps, last 0. */
    double ac = 1.0, acs[1000], sigmas[257];
    float tsteps[256];
    if (steps < 1 || steps > 256) return 2;
    for (int t = 0; t < 1000; t++) {
        double b = sqrt(0.00085) + (sqrt(0.012) - sqrt(0.00085)) * t / 999.0;
        ac *= 1.0 - b * b;
        acs[t] = ac;
    }
    for (int i = 0; i < steps; i++) {
        int t = steps == 1 ? 999 : (int)lround(999.0 - 999.0 * i / (steps - 1));
        tsteps[i] = (float)t;
        sigmas[i] = sqrt((1.0 - acs[t]) / acs[t]);
    }
    sigmas[steps] = 0.0;
    sdrt_rng g;
    sdrt_rng_seed(&g, 42);
    float *noise = malloc(sizeof(float) * (size_t)per), *x[2];
    sdrt_rng_randn(&g, noise, (size_t)per);
    int64_t cshape[3] = {2, a->ctx, c->cross_dim[0]};
    int64_t pshape[2] = {2, c->add_embed_in - 6 * c->addition_time_embed_dim};
    int64_t cn = cshape[0] * cshape[1] * cshape[2], pn = pshape[0] * pshape[1];
    float *ctxv = malloc(sizeof(float) * (size_t)cn), *pooled = malloc(sizeof(float) * (size_t)(pn > 0 ? pn : 1));
    sdrt_rng_randn(&g, ctxv, (size_t)cn);
    if (c->text_time) sdrt_rng_randn(&g, pooled, (size_t)pn);
    float ids[12];
    for (int b = 0; b < 2; b++) {
        float row[6] = {(float)a->height, (float)a->width, 0, 0, (float)a->height, (float)a->width};
        memcpy(ids + 6 * b, row, sizeof row);
    }
    double secs[2];
    const char *precs[2] = {"f32", a->precision ? a->precision : "f32"};
    char err[512] = "";
    for (int r = 0; r < 2; r++) {
        char params[96];
        stream_params(a, precs[r], params, sizeof params);
        sdrt_nn *nn = sdrt_nn_new(fx_cpu_device(), params, NULL, NULL);
        if (!nn) {
            fprintf(stderr, "bench-unet: no stream for %s (refused precision?)\n", params);
            return 1;
        }
        x[r] = malloc(sizeof(float) * (size_t)per);
        for (int64_t j = 0; j < per; j++) x[r][j] = noise[j] * (float)sqrt(sigmas[0] * sigmas[0] + 1.0);
        unet_inputs proto = {.context = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 3, cshape, ctxv),
                             .text_embeds = c->text_time ? sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 2, pshape, pooled) : NULL,
                             .time_ids = ids};
        double t0 = now_s();
        int rc = euler_loop(u, nn, &proto, x[r], per, sigmas, tsteps, steps, c->in_channels, h, wl, err, sizeof err);
        secs[r] = now_s() - t0;
        sdrt_nn_free(nn);
        if (rc) {
            fprintf(stderr, "bench-unet: %s\n", err);
            return 1;
        }
    }
    double num = 0, den = 0;
    for (int64_t j = 0; j < per; j++) {
        double d = (double)x[1][j] - x[0][j];
        num += d * d;
        den += (double)x[0][j] * x[0][j];
    }
    printf("quality %s %dx%d, %d Euler steps CFG 7.5, threads %d: final latents rel L2 %s vs f32 = %.4g "
           "(f32 %.1f s, %s %.1f s incl. packing the weights once)\n", a->dir, a->width, a->height, steps,
           a->threads, precs[1], sqrt(num / (den > 0 ? den : 1)), secs[0], precs[1], secs[1]);
    free(noise), free(ctxv), free(pooled), free(x[0]), free(x[1]);
    return 0;
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
    if (a->quality > 0) {
        int rc = run_quality(a, u);
        unet_free(u);
        if (w) fx_weights_close(w);
        store_free(m);
        free(cfg);
        return rc;
    }
    char params[96];
    stream_params(a, a->precision, params, sizeof params);
    sdrt_nn *nn = sdrt_nn_new(a->mode == 3 ? plan_device(fx_cpu_device()) : fx_cpu_device(), params, NULL, NULL);
    if (!nn) {
        fprintf(stderr, "bench-unet: no stream for %s (refused precision?)\n", params);
        return 1;
    }
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
#ifdef SDRT_NN_HAS_GRAPH
    if (a->mode == 3) {
        sdrt_tensor *out = NULL;
        sdrt_nn_graph_begin(nn);
        sdrt_status st = unet_forward(u, nn, &in, &out, err, sizeof err);
        sdrt_status gst = sdrt_nn_graph_end(nn); /* refused: the arena is not allocated */
        size_t arena = 0, peak = 0;
        sdrt_nn_graph_stats(nn, &arena, &peak, NULL);
        printf("unet %s %dx%d batch %d plan: arena %.1f MiB, peak live intermediates %.1f MiB (%s)\n", a->dir,
               a->width, a->height, a->batch, arena / 1048576.0, peak / 1048576.0,
               st != SDRT_OK ? err : gst == SDRT_RESOURCE_EXHAUSTED ? "not run" : "ran: the arena fit in 64 MiB");
        sdrt_nn_free(nn);
        unet_free(u);
        if (w) fx_weights_close(w);
        store_free(m);
        free(cfg);
        return st == SDRT_OK ? 0 : 1;
    }
#endif
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
        printf("unet %s %dx%d batch %d threads %d weights %s precision %s mode %s: best %.3f s, mean %.3f s, "
               "best cpu %.3f s, %.1f GFLOP/call, %.1f GFLOP/s\n", a->dir, a->width, a->height, a->batch, a->threads,
               a->f16 ? "f16" : "stored", a->precision ? a->precision : "default", g ? "graph" : "eager", best[g],
               total[g] / calls[g], best_cpu[g], flops * 1e-9, flops * 1e-9 / best[g]);
    }
    printf("peak RSS %.2f GiB\n", peak_rss_kb() / 1048576.0);
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
                        "[--ctx L] [--mode eager|graph|both|plan] [--precision auto|f32|bf16|int8] [--quality STEPS]\n");
        return 2;
    }
    return run(&a);
}
