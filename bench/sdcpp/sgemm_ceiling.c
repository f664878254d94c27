/* sgemm-ceiling - the machine's measured f32 GEMM ceiling: OpenBLAS
 * cblas_sgemm on large Stable Diffusion shapes at a given thread count.
 *
 *   sgemm-ceiling [--threads N] [--seconds S]
 *
 * Prints GFLOP/s (best of repeated calls over about S seconds, default 1)
 * per shape and the best of all shapes, which bench/sdcpp/compare.sh takes
 * as the ceiling a UNet step is compared with (docs/PERFORMANCE.md). The
 * kernel OpenBLAS picked is printed: set OPENBLAS_CORETYPE (Haswell,
 * SkylakeX, Cooperlake, Zen) to measure one ISA's kernels. Link-time
 * dependency on OpenBLAS only; it is not part of sdrt. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern void openblas_set_num_threads(int);
extern char *openblas_get_corename(void);

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct shape {
    int m, n, k;
    const char *what;
} shape;

int main(int argc, char **argv) {
    int threads = 2;
    double seconds = 1.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: sgemm-ceiling [--threads N] [--seconds S]\n");
            return 2;
        }
    }
    if (threads < 1 || seconds <= 0) {
        fprintf(stderr, "sgemm-ceiling: --threads and --seconds must be positive\n");
        return 2;
    }
    openblas_set_num_threads(threads);
    /* Linear layout C[M,N] = A[M,K] W[N,K]^T, the way a UNet uses them. */
    static const shape shapes[] = {
        {4096, 1280, 320, "SD1.5 ff up 64x64"},
        {4096, 320, 1280, "SD1.5 ff down 64x64"},
        {1024, 2560, 640, "GEGLU 32x32"},
        {2048, 2048, 2048, "square 2048"},
    };
    double ceiling = 0;
    printf("OpenBLAS core %s, %d threads\n", openblas_get_corename(), threads);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const shape *c = &shapes[s];
        size_t na = (size_t)c->m * c->k, nw = (size_t)c->n * c->k, nc = (size_t)c->m * c->n;
        float *a = malloc(na * sizeof *a), *w = malloc(nw * sizeof *w), *out = malloc(nc * sizeof *out);
        if (!a || !w || !out) {
            fprintf(stderr, "sgemm-ceiling: out of memory\n");
            return 1;
        }
        for (size_t i = 0; i < na; i++) a[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        for (size_t i = 0; i < nw; i++) w[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        double best = 1e30, start = now_s();
        for (int it = 0; it < 4 || now_s() - start < seconds; it++) { /* call 0 warms up */
            double t0 = now_s();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c->m, c->n, c->k, 1.0f, a, c->k, w, c->k, 0.0f, out,
                        c->n);
            double t = now_s() - t0;
            if (it > 0 && t < best) best = t;
            if (it > 200) break;
        }
        double gf = 2.0 * c->m * c->n * c->k / best * 1e-9;
        if (gf > ceiling) ceiling = gf;
        printf("%-22s %5dx%5dx%5d %8.1f GFLOP/s\n", c->what, c->m, c->n, c->k, gf);
        free(a);
        free(w);
        free(out);
    }
    printf("ceiling %.1f GFLOP/s\n", ceiling);
    return 0;
}
