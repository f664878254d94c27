/* cuda_stream.c - CUDA streams: ops enqueued on a non-blocking stream,
 * async copies, events, and graph_compute, which captures the op sequence
 * of a replay_key into a CUDA graph the first time and replays it after
 * (cuda_replay.c decides which). A sticky device fault is reported by the
 * next call on the stream as SDRT_UNAVAILABLE until the device is reset;
 * streams of a reset device only release their host memory. */
#define _POSIX_C_SOURCE 200809L
#include "cuda_internal.h"

#include <cjson/cJSON.h>
#include "cuda_blas.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CUDA_WORKSPACE_BYTES ((size_t)32 << 20)

typedef struct cuda_stream_ctx {
    sdrt_stream stream;
    cuda_device_ctx *d;
    uint64_t generation;
    cudaStream_t cs;
    cublasHandle_t cublas;
    void *workspace;
    cuda_exec ex;
    cuda_replay replay;
    sdrt_status deferred; /* an asynchronous failure seen by synchronize or an event */
} cuda_stream_ctx;

struct sdrt_event {
    cudaEvent_t ev;
    uint64_t generation;
};

typedef sdrt_status (*cuda_op_fn)(const cuda_exec *ex, const sdrt_op *op);

static const cuda_op_fn g_cuda_ops[SDRT_OP_COUNT_] = {
    [SDRT_OP_MATMUL] = cuda_op_matmul,
    [SDRT_OP_CONV2D] = cuda_op_conv2d,
    [SDRT_OP_GROUP_NORM] = cuda_op_group_norm,
    [SDRT_OP_LAYER_NORM] = cuda_op_layer_norm,
    [SDRT_OP_SOFTMAX] = cuda_op_softmax,
    [SDRT_OP_ATTENTION] = cuda_op_attention,
    [SDRT_OP_GELU] = cuda_op_elementwise,
    [SDRT_OP_GELU_TANH] = cuda_op_elementwise,
    [SDRT_OP_QUICK_GELU] = cuda_op_elementwise,
    [SDRT_OP_SILU] = cuda_op_elementwise,
    [SDRT_OP_GEGLU] = cuda_op_geglu,
    [SDRT_OP_ADD] = cuda_op_elementwise,
    [SDRT_OP_MUL] = cuda_op_elementwise,
    [SDRT_OP_SCALE] = cuda_op_elementwise,
    [SDRT_OP_CONCAT] = cuda_op_concat,
    [SDRT_OP_UPSAMPLE2X] = cuda_op_layout,
    [SDRT_OP_TIMESTEP_EMB] = cuda_op_timestep_emb,
    [SDRT_OP_COPY] = cuda_op_copy,
    [SDRT_OP_LEAKY_RELU] = cuda_op_elementwise,
    [SDRT_OP_PRELU] = cuda_op_elementwise,
    [SDRT_OP_PIXEL_SHUFFLE] = cuda_op_layout,
    [SDRT_OP_PIXEL_UNSHUFFLE] = cuda_op_layout,
    [SDRT_OP_UPSAMPLE_NEAREST] = cuda_op_layout,
};

static cuda_stream_ctx *cuda_sc(sdrt_stream *s) { return s->context; }

/* SDRT_OK when the stream may run work; else why not. */
static sdrt_status cuda_stream_ready(cuda_stream_ctx *sc) {
    if (sc->generation != cuda_device_generation(sc->d) || cuda_device_faulted(sc->d)) return SDRT_UNAVAILABLE;
    if (sc->deferred != SDRT_OK) {
        sdrt_status st = sc->deferred;
        if (st != SDRT_UNAVAILABLE) sc->deferred = SDRT_OK; /* reported once; faults stay */
        return st;
    }
    cudaSetDevice(cuda_device_ordinal(sc->d));
    return SDRT_OK;
}

static sdrt_status cuda_launch(cuda_stream_ctx *sc, const sdrt_op *op) {
    if (!op || op->struct_size < SDRT_STRUCT_SIZE(sdrt_op, fparams)) return SDRT_INVALID_ARGUMENT;
    if (!cuda_supports_op(op, cuda_device_vram_type(sc->d), cuda_device_pinned_type(sc->d))) return SDRT_UNSUPPORTED;
    sdrt_status st = g_cuda_ops[op->kind](&sc->ex, op);
    if (st != SDRT_OK) return st;
    return cuda_check(sc->d, cudaGetLastError(), "kernel launch");
}

static sdrt_status cuda_stream_compute(sdrt_stream *s, const sdrt_op *op) {
    cuda_stream_ctx *sc = cuda_sc(s);
    sdrt_status st = cuda_stream_ready(sc);
    return st != SDRT_OK ? st : cuda_launch(sc, op);
}

static void cuda_stream_synchronize(sdrt_stream *s) {
    cuda_stream_ctx *sc = cuda_sc(s);
    if (sc->generation != cuda_device_generation(sc->d)) return;
    cudaSetDevice(cuda_device_ordinal(sc->d));
    sdrt_status st = cuda_check(sc->d, cudaStreamSynchronize(sc->cs), "stream synchronize");
    if (st != SDRT_OK && sc->deferred == SDRT_OK) sc->deferred = st;
}

static sdrt_status cuda_graph_direct(cuda_stream_ctx *sc, const sdrt_graph *g) {
    for (size_t i = 0; i < g->n_ops; i++) {
        sdrt_status st = cuda_launch(sc, &g->ops[i]);
        if (st != SDRT_OK) return st;
    }
    return SDRT_OK;
}

/* Captures g into an executable graph and launches it; a capture that the
 * driver refuses (an op that is not capturable) marks the key direct and
 * runs the ops one by one. */
static sdrt_status cuda_graph_capture(cuda_stream_ctx *sc, const sdrt_graph *g, int slot) {
    for (size_t i = 0; i < g->n_ops; i++) {
        const sdrt_op *op = &g->ops[i];
        if (!op || op->struct_size < SDRT_STRUCT_SIZE(sdrt_op, fparams)) {
            cuda_replay_end_capture(&sc->replay, slot, NULL);
            return SDRT_INVALID_ARGUMENT;
        }
        if (!cuda_supports_op(op, cuda_device_vram_type(sc->d), cuda_device_pinned_type(sc->d))) {
            cuda_replay_end_capture(&sc->replay, slot, NULL);
            return SDRT_UNSUPPORTED;
        }
    }
    cudaError_t e = cudaStreamBeginCapture(sc->cs, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        cudaGetLastError();
        cuda_replay_end_capture(&sc->replay, slot, NULL);
        return cuda_graph_direct(sc, g);
    }
    sdrt_status st = SDRT_OK;
    for (size_t i = 0; i < g->n_ops && st == SDRT_OK; i++) st = g_cuda_ops[g->ops[i].kind](&sc->ex, &g->ops[i]);
    cudaGraph_t graph = NULL;
    e = cudaStreamEndCapture(sc->cs, &graph);
    if (st != SDRT_OK) {
        if (graph) cudaGraphDestroy(graph);
        cudaGetLastError();
        cuda_replay_end_capture(&sc->replay, slot, NULL);
        return st;
    }
    cudaGraphExec_t exec = NULL;
    if (e == cudaSuccess) e = cudaGraphInstantiate(&exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
        cudaGetLastError();
        cuda_log(SDRT_LOG_INFO, "%s: graph of %zu ops not capturable (%s): it runs op by op",
                 cuda_device_label(sc->d), g->n_ops, cudaGetErrorString(e));
        cuda_replay_end_capture(&sc->replay, slot, NULL);
        return cuda_graph_direct(sc, g);
    }
    cuda_replay_end_capture(&sc->replay, slot, exec);
    return cuda_check(sc->d, cudaGraphLaunch(exec, sc->cs), "graph launch");
}

static sdrt_status cuda_stream_graph_compute(sdrt_stream *s, const sdrt_graph *g) {
    cuda_stream_ctx *sc = cuda_sc(s);
    sdrt_status st = cuda_stream_ready(sc);
    if (st != SDRT_OK) return st;
    if (!g || g->struct_size < SDRT_STRUCT_SIZE(sdrt_graph, replay_key) || (g->n_ops && !g->ops))
        return SDRT_INVALID_ARGUMENT;
    int slot = -1;
    switch (cuda_replay_begin(&sc->replay, g, &slot)) {
    case CUDA_REPLAY_LAUNCH:
        return cuda_check(sc->d, cudaGraphLaunch((cudaGraphExec_t)sc->replay.slots[slot].exec, sc->cs),
                          "graph launch");
    case CUDA_REPLAY_CAPTURE:
        return cuda_graph_capture(sc, g, slot);
    default:
        return cuda_graph_direct(sc, g);
    }
}

/* ---- copies ------------------------------------------------------------------- */

static sdrt_status cuda_stream_copy(cuda_stream_ctx *sc, void *dst, const void *src, size_t size, const char *what) {
    sdrt_status st = cuda_stream_ready(sc);
    if (st != SDRT_OK || !size) return st;
    return cuda_check(sc->d, cudaMemcpyAsync(dst, src, size, cudaMemcpyDefault, sc->cs), what);
}

static sdrt_status cuda_stream_write_async(sdrt_stream *s, sdrt_buffer *buf, void *dst, const void *src, size_t size) {
    return cuda_stream_copy(cuda_sc(s), dst, src, size, "async write");
}

static sdrt_status cuda_stream_read_async(sdrt_stream *s, sdrt_buffer *buf, void *dst, const void *src, size_t size) {
    return cuda_stream_copy(cuda_sc(s), dst, src, size, "async read");
}

static sdrt_status cuda_stream_copy_async(sdrt_stream *s, sdrt_buffer *dst_buf, void *dst, sdrt_buffer *src_buf,
                                          const void *src, size_t size) {
    cuda_stream_ctx *sc = cuda_sc(s);
    if (!cuda_buffer_is_ours(dst_buf) || !cuda_buffer_is_ours(src_buf) || dst_buf->type->device != s->device ||
        src_buf->type->device != s->device)
        return SDRT_UNSUPPORTED;
    return cuda_stream_copy(sc, dst, src, size, "device copy");
}

/* ---- events ------------------------------------------------------------------- */

static sdrt_event *cuda_event_record(sdrt_stream *s) {
    cuda_stream_ctx *sc = cuda_sc(s);
    if (cuda_stream_ready(sc) != SDRT_OK) return NULL;
    sdrt_event *ev = calloc(1, sizeof *ev);
    if (!ev) return NULL;
    ev->generation = sc->generation;
    if (cudaEventCreateWithFlags(&ev->ev, cudaEventDisableTiming) != cudaSuccess ||
        cudaEventRecord(ev->ev, sc->cs) != cudaSuccess) {
        cudaGetLastError();
        if (ev->ev) cudaEventDestroy(ev->ev);
        free(ev);
        return NULL;
    }
    return ev;
}

static void cuda_event_synchronize(sdrt_stream *s, sdrt_event *ev) {
    cuda_stream_ctx *sc = cuda_sc(s);
    if (ev->generation != cuda_device_generation(sc->d)) return;
    cudaSetDevice(cuda_device_ordinal(sc->d));
    sdrt_status st = cuda_check(sc->d, cudaEventSynchronize(ev->ev), "event synchronize");
    if (st != SDRT_OK && sc->deferred == SDRT_OK) sc->deferred = st;
}

static void cuda_event_wait(sdrt_stream *s, sdrt_event *ev) {
    cuda_stream_ctx *sc = cuda_sc(s);
    if (ev->generation != cuda_device_generation(sc->d) || cuda_stream_ready(sc) != SDRT_OK) return;
    sdrt_status st = cuda_check(sc->d, cudaStreamWaitEvent(sc->cs, ev->ev, 0), "event wait");
    if (st != SDRT_OK && sc->deferred == SDRT_OK) sc->deferred = st;
}

static void cuda_event_free(sdrt_stream *s, sdrt_event *ev) {
    if (!ev) return;
    if (ev->generation == cuda_device_generation(cuda_sc(s)->d)) cudaEventDestroy(ev->ev);
    free(ev);
}

/* ---- lifetime ----------------------------------------------------------------- */

static void cuda_replay_destroy_cb(void *ctx, void *exec) { cudaGraphExecDestroy((cudaGraphExec_t)exec); }

static void cuda_stream_free(sdrt_stream *s) {
    if (!s) return;
    cuda_stream_ctx *sc = cuda_sc(s);
    if (sc->generation == cuda_device_generation(sc->d)) {
        cudaSetDevice(cuda_device_ordinal(sc->d));
        cudaStreamSynchronize(sc->cs);
        cuda_replay_clear(&sc->replay);
        if (sc->cublas) cuda_blas()->destroy(sc->cublas);
        if (sc->workspace) cudaFree(sc->workspace);
        cudaStreamDestroy(sc->cs);
        cudaGetLastError();
    }
    free(sc);
}

static const sdrt_stream_iface g_cuda_stream_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_stream_iface, event_free),
    .free = cuda_stream_free,
    .compute = cuda_stream_compute,
    .synchronize = cuda_stream_synchronize,
    .graph_compute = cuda_stream_graph_compute,
    .write_async = cuda_stream_write_async,
    .read_async = cuda_stream_read_async,
    .copy_async = cuda_stream_copy_async,
    .event_record = cuda_event_record,
    .event_synchronize = cuda_event_synchronize,
    .event_wait = cuda_event_wait,
    .event_free = cuda_event_free,
};

/* The stream params' "precision" (sdrt/precision.h in the SDK helpers)
 * over the device's (config) default: absent or "auto" = the device's,
 * "f32", "f16" (the mixed mode: F16/BF16 activations with f32
 * accumulation; "mixed" is its older name). "bf16" and "int8" have no mode
 * here (UNSUPPORTED); other values are INVALID_ARGUMENT. */
static sdrt_status cuda_stream_precision(const char *params_json, const cuda_device_ctx *d, cuda_precision *out,
                                         char *msg, size_t msg_size) {
    *out = cuda_device_precision(d);
    cJSON *root = params_json ? cJSON_Parse(params_json) : NULL;
    const cJSON *p = root ? cJSON_GetObjectItemCaseSensitive(root, "precision") : NULL;
    const char *v = cJSON_IsString(p) ? p->valuestring : NULL;
    sdrt_status st = SDRT_OK;
    if (p && !v) {
        if (msg) snprintf(msg, msg_size, "precision: must be a string");
        st = SDRT_INVALID_ARGUMENT;
    } else if (!v || strcmp(v, "auto") == 0) {
    } else if (strcmp(v, "f32") == 0) {
        *out = CUDA_PRECISION_F32;
    } else if (strcmp(v, "f16") == 0 || strcmp(v, "mixed") == 0) {
        *out = CUDA_PRECISION_MIXED;
    } else if (strcmp(v, "bf16") == 0 || strcmp(v, "int8") == 0) {
        if (msg)
            snprintf(msg, msg_size, "precision: \"%s\" is not supported on %s (it runs \"auto\", \"f32\" and \"f16\")",
                     v, cuda_device_label(d));
        st = SDRT_UNSUPPORTED;
    } else {
        if (msg)
            snprintf(msg, msg_size, "precision: '%.64s' is not one of \"auto\", \"f32\", \"f16\", \"bf16\" or \"int8\"",
                     v);
        st = SDRT_INVALID_ARGUMENT;
    }
    cJSON_Delete(root);
    return st;
}

sdrt_status cuda_stream_open(sdrt_device *dev, cuda_device_ctx *d, const char *params_json, sdrt_stream **out,
                             char *msg, size_t msg_size) {
    *out = NULL;
    cuda_precision prec;
    sdrt_status pst = cuda_stream_precision(params_json, d, &prec, msg, msg_size);
    if (pst != SDRT_OK) return pst;
    cuda_stream_ctx *sc = calloc(1, sizeof *sc);
    if (!sc) return SDRT_RESOURCE_EXHAUSTED;
    sc->d = d;
    sc->generation = cuda_device_generation(d);
    cudaSetDevice(cuda_device_ordinal(d));
    if (cuda_check(d, cudaStreamCreateWithFlags(&sc->cs, cudaStreamNonBlocking), "stream create") != SDRT_OK) {
        free(sc);
        if (msg) snprintf(msg, msg_size, "%s: cannot create a CUDA stream", cuda_device_label(d));
        return SDRT_UNAVAILABLE;
    }
    /* A fixed cuBLAS workspace: cuBLAS then never allocates inside a graph
     * capture. Without cuBLAS (not installed) the kernels do every MATMUL. */
    const cuda_blas_api *blas = cuda_blas();
    if (blas && (blas->create(&sc->cublas) != CUBLAS_STATUS_SUCCESS ||
                 cuda_check(d, cudaMalloc(&sc->workspace, CUDA_WORKSPACE_BYTES), "cuBLAS workspace") != SDRT_OK ||
                 blas->set_stream(sc->cublas, sc->cs) != CUBLAS_STATUS_SUCCESS ||
                 blas->set_workspace(sc->cublas, sc->workspace, CUDA_WORKSPACE_BYTES) != CUBLAS_STATUS_SUCCESS)) {
        cuda_log(SDRT_LOG_ERROR, "%s: cannot set up cuBLAS for a new stream", cuda_device_label(d));
        if (sc->cublas) blas->destroy(sc->cublas);
        if (sc->workspace) cudaFree(sc->workspace);
        cudaStreamDestroy(sc->cs);
        free(sc);
        if (msg) snprintf(msg, msg_size, "%s: cannot set up cuBLAS for a new stream", cuda_device_label(d));
        return SDRT_RESOURCE_EXHAUSTED;
    }
    sc->ex = (cuda_exec){.stream = sc->cs, .cublas = sc->cublas, .workspace = sc->workspace,
                         .workspace_size = CUDA_WORKSPACE_BYTES,
                         .precision = prec,
                         .sm = cuda_device_sm(d), .smem_optin = cuda_device_smem_optin(d)};
    cuda_replay_init(&sc->replay, cuda_replay_destroy_cb, NULL);
    sc->stream = (sdrt_stream){.iface = &g_cuda_stream_iface, .context = sc, .device = dev};
    *out = &sc->stream;
    return SDRT_OK;
}

sdrt_stream *cuda_stream_new(sdrt_device *dev, cuda_device_ctx *d, const char *params_json) {
    sdrt_stream *s = NULL;
    cuda_stream_open(dev, d, params_json, &s, NULL, 0);
    return s;
}
