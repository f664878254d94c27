/* bench/scheduler/bench_scheduler.c - microseconds per scheduler step.
 *
 * One 4x128x128 latent (SDXL 1024x1024), a synthetic model output, 50 steps
 * per scheduler, best of 5 runs. Prints one line per scheduler:
 *   <name> <us/step> <us scale_model_input>
 * Usage: bench-scheduler [steps]
 */
#define _POSIX_C_SOURCE 199309L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched.h"
#include "sdrt/rng.h"

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void bench(const char *name, int steps, size_t n, const float *x0, const float *eps) {
    float *x = malloc(n * sizeof *x), *xin = malloc(n * sizeof *xin);
    double best_step = INFINITY, best_scale = INFINITY;
    for (int run = 0; run < 5; run++) {
        sdrt_scheduler_params p;
        sdrt_scheduler_params_init(&p);
        p.name = name;
        p.num_inference_steps = steps;
        sdrt_sched *s = NULL;
        char err[512];
        if (sched_create(&p, &s, err, sizeof err)) {
            printf("%-24s error: %s\n", name, err);
            free(x), free(xin);
            return;
        }
        sdrt_rng g;
        sdrt_rng_seed(&g, 42);
        memcpy(x, x0, n * sizeof *x);
        double t_step = 0, t_scale = 0;
        for (uint32_t i = 0; i < s->n_ts; i++) {
            double a = now_us();
            sched_scale_model_input(s, i, x, xin, n);
            double b = now_us();
            sched_step(s, i, eps, x, n, &g);
            double c = now_us();
            t_scale += b - a;
            t_step += c - b;
        }
        t_step /= s->n_ts;
        t_scale /= s->n_ts;
        if (t_step < best_step) best_step = t_step;
        if (t_scale < best_scale) best_scale = t_scale;
        sched_destroy(s);
    }
    printf("%-24s %10.1f %10.1f\n", name, best_step, best_scale);
    free(x), free(xin);
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 50;
    const size_t n = 4 * 128 * 128;
    float *x0 = malloc(n * sizeof *x0), *eps = malloc(n * sizeof *eps);
    sdrt_rng g;
    sdrt_rng_seed(&g, 1);
    sdrt_rng_randn(&g, x0, n);
    sdrt_rng_randn(&g, eps, n);
    static const char *const names[] = {"Euler",        "Euler a", "DPM++ 2M", "DPM++ 2M Karras", "DPM++ 2M SDE",
                                        "DPM++ 3M SDE", "DDIM",    "Heun",     "LMS",             "DPM2",
                                        "DPM2 a",       "DPM++ 2S", "DEIS",    "UniPC",           "uni_pc",
                                        "DDPM",         "PLMS",    "PNDMScheduler", "LCM",        "TCD",
                                        "DPM++ SDE",    "DPM++ SDE Karras", NULL};
    printf("# latent 4x128x128 (%zu floats), %d steps, best of 5\n", n, steps);
    printf("%-24s %10s %10s\n", "# scheduler", "us/step", "us/scale");
    for (const char *const *nm = names; *nm; nm++) bench(*nm, steps, n, x0, eps);
    free(x0), free(eps);
    return 0;
}
