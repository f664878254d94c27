/* bench_vulkan.c - throughput of MATMUL (f32 and f16 weights), CONV2D and
 * ATTENTION on the Vulkan family's device 0 and on the CPU family, shapes
 * from SD1.5 (64x64 latent at 512x512, 32x32 at 256x256). Operands live in device buffers;
 * each timing is one graph submission + synchronize, best of the runs
 * after a warm-up. Usage: bench-vulkan [runs [name filter [cpu: 0 = skip]]]
 * (GFLOP/s, 2 flops/MAC). Then a graph of many tiny element-wise ops,
 * submitted with and without a replay_key: ms in graph_compute (recording,
 * the host cost the replay saves) and ms to completion. SDRT_BENCH_VK_MODULE
 * names another build's sdrt_backend_vulkan to time (before/after in one
 * run); the family's own switches (SDRT_VULKAN_GEMM, SDRT_VULKAN_SUBGROUPS)
 * apply as usual. */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sdrt/backend.h"
#include "sdrt/half.h"

static void quiet(sdrt_host *h, sdrt_log_level l, const char *fmt, ...) {}
static const sdrt_host_api g_api = {.struct_size = SDRT_STRUCT_SIZE(sdrt_host_api, log),
                                    .abi_major = SDRT_ABI_MAJOR, .abi_minor = SDRT_ABI_MINOR, .log = quiet};

static sdrt_device *load(const char *path, const char *cfg) {
    void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    sdrt_backend_entry_fn e = so ? (sdrt_backend_entry_fn)dlsym(so, SDRT_BACKEND_ENTRY_SYMBOL) : NULL;
    sdrt_backend_reg *r = e ? e(&g_api, cfg) : NULL;
    return r && r->iface->device_count(r) ? r->iface->device_get(r, 0) : NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct bt {
    sdrt_tensor t;
    sdrt_buffer *b;
} bt;

static bt mk(sdrt_device *d, sdrt_dtype dt, int nd, const int64_t *sh) {
    bt r = {.t = {.struct_size = sizeof(sdrt_tensor), .dtype = dt, .ndim = nd}};
    int64_t n = 1;
    for (int i = nd - 1; i >= 0; i--) r.t.shape[i] = sh[i], r.t.strides[i] = n, n *= sh[i];
    size_t es = dt == SDRT_DTYPE_F32 ? 4 : 2, bytes = (size_t)n * es;
    r.b = sdrt_buffer_alloc(d->iface->buffer_type(d), bytes);
    if (!r.b) return r;
    r.t.buffer = r.b;
    r.t.data = r.b->iface->base(r.b);
    void *h = malloc(bytes);
    for (int64_t i = 0; i < n; i++) {
        float v = (float)rand() / (float)RAND_MAX - 0.5f;
        if (es == 4) ((float *)h)[i] = v;
        else ((uint16_t *)h)[i] = sdrt_f32_to_f16(v);
    }
    r.b->iface->write(r.b, r.t.data, h, bytes);
    free(h);
    return r;
}

/* Best time of `runs` graph submissions of op (after one warm-up). */
static double time_op(sdrt_device *d, sdrt_op *op, int runs) {
    sdrt_stream *s = d->iface->stream_new(d, NULL);
    sdrt_graph g = {.struct_size = sizeof g, .n_ops = 1, .ops = op};
    double best = 1e30;
    for (int r = 0; r <= runs; r++) {
        double t0 = now();
        if (sdrt_stream_graph_compute(s, &g) != SDRT_OK) {
            best = -1;
            break;
        }
        sdrt_stream_synchronize(s);
        double t = now() - t0;
        if (r > 0 && t < best) best = t;
    }
    sdrt_stream_free(s);
    return best;
}

/* A chain of NOPS element-wise ops over [4, 256] ping-ponging between two
 * buffers (tiny, so the per-dispatch costs show), submitted as one graph
 * with replay_key 0 (recorded every time) and with a key (recorded once,
 * then resubmitted): best ms spent in graph_compute, and to completion. */
static void graph_rows(sdrt_device *d, int runs) {
    enum { NOPS = 256 };
    int64_t sh[2] = {4, 256};
    bt a = mk(d, SDRT_DTYPE_F32, 2, sh), b = mk(d, SDRT_DTYPE_F32, 2, sh);
    static sdrt_op ops[NOPS];
    for (int i = 0; i < NOPS; i++)
        ops[i] = (sdrt_op){.struct_size = sizeof(sdrt_op), .kind = i % 2 ? SDRT_OP_SILU : SDRT_OP_SCALE,
                           .src = {i % 2 ? &b.t : &a.t}, .dst = i % 2 ? &a.t : &b.t, .fparams = {0.5f, 0.1f}};
    for (int keyed = 0; keyed < 2; keyed++) {
        sdrt_stream *s = d->iface->stream_new(d, NULL);
        sdrt_graph g = {.struct_size = sizeof g, .n_ops = NOPS, .ops = ops, .replay_key = keyed ? 0x9e : 0};
        double best = 1e30, best_enq = 1e30;
        for (int r = 0; r <= runs + 2; r++) {
            double t0 = now();
            if (sdrt_stream_graph_compute(s, &g) != SDRT_OK) {
                best = -1;
                break;
            }
            double t1 = now();
            sdrt_stream_synchronize(s);
            double t = now() - t0;
            if (r > 0 && t < best) best = t;
            if (r > 0 && t1 - t0 < best_enq) best_enq = t1 - t0;
        }
        sdrt_stream_free(s);
        printf("%-40s enqueue %8.3f ms, total %8.2f ms\n",
               keyed ? "graph 256 ew ops 4x256, replay_key" : "graph 256 ew ops 4x256, no key", best_enq * 1e3,
               best * 1e3);
    }
    sdrt_buffer_free(a.b);
    sdrt_buffer_free(b.b);
}

typedef struct shape {
    const char *name;
    sdrt_op_kind kind;
    int nsrc;
    sdrt_dtype dt[3];
    int nd[4];
    int64_t sh[4][4];
    int32_t ip[8];
    double flops;
} shape;

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 3;
    const char *vkmod = getenv("SDRT_BENCH_VK_MODULE");
    sdrt_device *vk = load(vkmod && *vkmod ? vkmod : SDRT_VK_MODULE, "{}"), *cpu = load(SDRT_CPU_MODULE, "{}");
    if (!vk || !cpu) {
        fprintf(stderr, "bench-vulkan: %s family has no device\n", vk ? "cpu" : "vulkan");
        return 1;
    }
    printf("vulkan: %s | cpu: %s\n", vk->iface->description(vk), cpu->iface->description(cpu));
    shape shapes[] = {
        {"matmul 1024x1024x1024 f32", SDRT_OP_MATMUL, 2, {0, 0}, {2, 2, 0, 2},
         {{1024, 1024}, {1024, 1024}, {0}, {1024, 1024}}, {0}, 2.0 * 1024 * 1024 * 1024},
        {"matmul 4096x320 @ f16[320,320]^T (SD1.5 attn proj)", SDRT_OP_MATMUL, 2, {0, SDRT_DTYPE_F16}, {2, 2, 0, 2},
         {{4096, 320}, {320, 320}, {0}, {4096, 320}}, {1}, 2.0 * 4096 * 320 * 320},
        {"matmul 4096x320 @ f16[2560,320]^T (SD1.5 GEGLU in)", SDRT_OP_MATMUL, 2, {0, SDRT_DTYPE_F16}, {2, 2, 0, 2},
         {{4096, 320}, {2560, 320}, {0}, {4096, 2560}}, {1}, 2.0 * 4096 * 2560 * 320},
        {"conv2d 320->320 3x3 64x64 f16 (SD1.5 resnet)", SDRT_OP_CONV2D, 2, {0, SDRT_DTYPE_F16}, {4, 4, 0, 4},
         {{1, 320, 64, 64}, {320, 320, 3, 3}, {0}, {1, 320, 64, 64}}, {1, 1, 1, 1}, 2.0 * 320 * 320 * 9 * 64 * 64},
        {"attention 2x8x1024x1024 D40 (SD1.5 self-attn 256^2)", SDRT_OP_ATTENTION, 3, {0, 0, 0}, {4, 4, 4, 4},
         {{2, 8, 1024, 40}, {2, 8, 1024, 40}, {2, 8, 1024, 40}, {2, 8, 1024, 40}}, {0}, 4.0 * 2 * 8 * 1024 * 1024 * 40},
        {"attention 2x8x4096x77 D40 (SD1.5 cross-attn 512^2)", SDRT_OP_ATTENTION, 3, {0, 0, 0}, {4, 4, 4, 4},
         {{2, 8, 4096, 40}, {2, 8, 77, 40}, {2, 8, 77, 40}, {2, 8, 4096, 40}}, {0}, 4.0 * 2 * 8 * 4096 * 77 * 40},
        {"attention 1x1x1024x1024 D512 (VAE mid-block 256^2)", SDRT_OP_ATTENTION, 3, {0, 0, 0}, {4, 4, 4, 4},
         {{1, 1, 1024, 512}, {1, 1, 1024, 512}, {1, 1, 1024, 512}, {1, 1, 1024, 512}}, {0}, 4.0 * 1024 * 1024 * 512},
    };
    printf("%-52s %12s %12s\n", "op", "vulkan GF/s", "cpu GF/s");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        shape *s = &shapes[i];
        if (argc > 2 && !strstr(s->name, argv[2])) continue;
        double gf[2] = {0, 0};
        sdrt_device *devs[2] = {vk, cpu};
        int ndev = argc > 3 && atoi(argv[3]) == 0 ? 1 : 2;
        for (int k = 0; k < ndev; k++) {
            bt src[3] = {0}, dst;
            sdrt_op op = {.struct_size = sizeof op, .kind = s->kind};
            memcpy(op.iparams, s->ip, sizeof op.iparams);
            for (int j = 0; j < s->nsrc; j++) {
                src[j] = mk(devs[k], s->dt[j], s->nd[j], s->sh[j]);
                op.src[j] = &src[j].t;
            }
            dst = mk(devs[k], SDRT_DTYPE_F32, s->nd[3], s->sh[3]);
            op.dst = &dst.t;
            double t = time_op(devs[k], &op, runs);
            gf[k] = t > 0 ? s->flops / t * 1e-9 : -1;
            for (int j = 0; j < 3; j++) sdrt_buffer_free(src[j].b);
            sdrt_buffer_free(dst.b);
        }
        printf("%-52s %12.2f %12.1f\n", s->name, gf[0], gf[1]);
        fflush(stdout);
    }
    if (argc <= 2 || strstr("graph", argv[2])) graph_rows(vk, runs);
    return 0;
}
