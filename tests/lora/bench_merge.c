/* tests/lora/bench_merge.c - cost of merging a rank-r LoRA into full-size
 * SDXL weights (f16), for docs/PERFORMANCE.md. Not a test.
 *
 * A kohya SDXL LoRA with the default targets patches every Linear of the
 * UNet's transformer blocks (attn1/attn2 q,k,v,out, GEGLU ff, proj_in/out)
 * and of both text encoders' attention and MLP. Each distinct weight shape
 * is merged for real (random f16 base, random factors, the plugin's own
 * lora_merge_rows split over threads as lora_set_build does), timed
 * (best of --reps), and multiplied by how often SDXL has it. Memory added
 * = the merged copies (f16, the base dtype). Allocation and first touch of
 * the output pages are inside the timing, as in prepare.
 *
 *   bench-lora-merge [--rank 32] [--threads 2] [--reps 3]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "merge.h"
#include "sdrt/half.h"

typedef struct layer {
    const char *what;
    int64_t out, in;
    int count;
} layer;

/* SDXL base: transformer blocks 10 at 640 ch, 60 at 1280 ch (down 2x2 +
 * 2x10, mid 10, up 3x10 + 3x2); Transformer2DModels 5 at 640, 6 at 1280;
 * cross-attention width 2048; CLIP-L 12 layers (768), OpenCLIP-G 32 (1280). */
static const layer SDXL[] = {
    {"attn q/k/v/out + attn2 q/out (640)", 640, 640, 6 * 10},
    {"attn2 k/v (640x2048)", 640, 2048, 2 * 10},
    {"ff.net.0.proj (5120x640)", 5120, 640, 10},
    {"ff.net.2 (640x2560)", 640, 2560, 10},
    {"proj_in/out (640)", 640, 640, 2 * 5},
    {"attn q/k/v/out + attn2 q/out (1280)", 1280, 1280, 6 * 60},
    {"attn2 k/v (1280x2048)", 1280, 2048, 2 * 60},
    {"ff.net.0.proj (10240x1280)", 10240, 1280, 60},
    {"ff.net.2 (1280x5120)", 1280, 5120, 60},
    {"proj_in/out (1280)", 1280, 1280, 2 * 6},
    {"te1 q/k/v/out (768)", 768, 768, 4 * 12},
    {"te1 fc1 (3072x768)", 3072, 768, 12},
    {"te1 fc2 (768x3072)", 768, 3072, 12},
    {"te2 q/k/v/out (1280)", 1280, 1280, 4 * 32},
    {"te2 fc1 (5120x1280)", 5120, 1280, 32},
    {"te2 fc2 (1280x5120)", 1280, 5120, 32},
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 88172645463325252ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 - 0.5);
}

static void fill_f16(uint16_t *p, size_t n, float s) {
    for (size_t i = 0; i < n; i++) p[i] = sdrt_f32_to_f16(s * frand());
}

typedef struct span {
    const lora_target *t;
    int64_t r0, r1;
} span;

static void *run_span(void *arg) {
    span *s = arg;
    float *scratch = malloc((size_t)(LORA_SCRATCH_ROWS * s->t->cols) * sizeof *scratch);
    lora_merge_rows(s->t, s->r0, s->r1, scratch);
    free(scratch);
    return NULL;
}

static void merge_threads(const lora_target *t, int threads) {
    pthread_t th[64];
    span sp[64];
    int64_t per = (t->rows + threads - 1) / threads;
    for (int i = 0; i < threads; i++) {
        int64_t r0 = i * per, r1 = r0 + per < t->rows ? r0 + per : t->rows;
        sp[i] = (span){t, r0, r1 > r0 ? r1 : r0};
        if (i) pthread_create(&th[i], NULL, run_span, &sp[i]);
    }
    run_span(&sp[0]);
    for (int i = 1; i < threads; i++) pthread_join(th[i], NULL);
}

/* Best time of `reps` merges of one out x in f16 weight at `rank`. */
static double time_layer(int64_t out, int64_t in, int rank, int threads, int reps, double *free_s) {
    size_t n = (size_t)(out * in);
    uint16_t *base = malloc(n * 2), *down = malloc((size_t)(rank * in) * 2),
             *up = malloc((size_t)(out * rank) * 2);
    fill_f16(base, n, 0.04f);
    fill_f16(down, (size_t)(rank * in), 0.1f);
    fill_f16(up, (size_t)(out * rank), 0.1f);
    st_tensor sd = {.name = "down", .dtype = ST_F16, .ndim = 2, .shape = {rank, in}, .data = (uint8_t *)down};
    st_tensor su = {.name = "up", .dtype = ST_F16, .ndim = 2, .shape = {out, rank}, .data = (uint8_t *)up};
    float alpha = (float)rank / 2;
    st_tensor sa = {.name = "alpha", .dtype = ST_F32, .ndim = 0, .data = (uint8_t *)&alpha};
    lora_module m;
    memset(&m, 0, sizeof m);
    m.base = "bench";
    m.algo = ALGO_LORA;
    m.rank = rank;
    m.has_alpha = 1;
    m.alpha = alpha;
    m.part[PART_DOWN] = &sd;
    m.part[PART_UP] = &su;
    m.part[PART_ALPHA] = &sa;
    sdrt_tensor bt = {sizeof bt, SDRT_DTYPE_F16, 2, {out, in}, {in, 1}, base, NULL};
    lora_target t;
    memset(&t, 0, sizeof t);
    t.name = "bench.weight";
    t.base = &bt;
    char err[256];
    if (lora_target_init(&t, err, sizeof err) != SDRT_OK) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        /* what prepare does per tensor: convert factors, allocate, merge */
        lora_contrib c;
        memset(&c, 0, sizeof c);
        c.m = &m;
        c.file = "bench";
        c.scale = 0.8f;
        if (lora_contrib_prepare(&c, &t, err, sizeof err) != SDRT_OK) exit(1);
        t.c = &c;
        t.nc = 1;
        t.out = bt;
        t.out.data = malloc(n * 2); /* fresh pages each time, as prepare allocates them */
        merge_threads(&t, threads);
        lora_contrib_free(&c);
        double dt = now() - t0, t1 = now();
        free(t.out.data); /* what destroy does */
        *free_s = now() - t1;
        best = dt < best ? dt : best;
    }
    free(base);
    free(down);
    free(up);
    return best;
}

int main(int argc, char **argv) {
    int rank = 32, threads = 2, reps = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rank")) rank = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    }
    if (threads < 1 || threads > 64 || rank < 1) return 2;
    double total = 0, bytes = 0, flops = 0, freed = 0, fs = 0;
    printf("%-40s %6s %9s %10s %8s\n", "layer", "count", "ms each", "ms total", "GFLOP/s");
    for (size_t i = 0; i < sizeof SDXL / sizeof SDXL[0]; i++) {
        const layer *l = &SDXL[i];
        double s = time_layer(l->out, l->in, rank, threads, reps, &fs);
        freed += fs * l->count;
        double f = 2.0 * (double)rank * (double)(l->out * l->in);
        printf("%-40s %6d %9.3f %10.1f %8.1f\n", l->what, l->count, 1e3 * s, 1e3 * s * l->count, f / s * 1e-9);
        total += s * l->count;
        bytes += 2.0 * (double)(l->out * l->in) * l->count;
        flops += f * l->count;
    }
    printf("SDXL rank %d, %d threads: %.2f s to apply (%.0f GFLOP, %.1f GFLOP/s), %.2f GB added (f16 merged copies); "
           "removing (freeing them): %.3f s\n", rank, threads, total, flops * 1e-9, flops / total * 1e-9, bytes * 1e-9,
           freed);
    return 0;
}
