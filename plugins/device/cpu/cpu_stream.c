/* cpu_stream.c - CPU streams: synchronous, each with its own thread pool
 * and scratch memory ({"threads":N}, default the online cores). */
#include "cpu_internal.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

typedef struct cpu_stream_ctx {
    sdrt_stream stream;
    cpu_ctx ctx;
} cpu_stream_ctx;

typedef sdrt_status (*cpu_op_fn)(cpu_ctx *ctx, const sdrt_op *op);

static const cpu_op_fn g_cpu_ops[SDRT_OP_COUNT_] = {
    [SDRT_OP_MATMUL] = cpu_op_matmul,
    [SDRT_OP_CONV2D] = cpu_op_conv2d,
    [SDRT_OP_GROUP_NORM] = cpu_op_group_norm,
    [SDRT_OP_LAYER_NORM] = cpu_op_layer_norm,
    [SDRT_OP_SOFTMAX] = cpu_op_softmax,
    [SDRT_OP_ATTENTION] = cpu_op_attention,
    [SDRT_OP_GELU] = cpu_op_activation,
    [SDRT_OP_GELU_TANH] = cpu_op_activation,
    [SDRT_OP_QUICK_GELU] = cpu_op_activation,
    [SDRT_OP_SILU] = cpu_op_activation,
    [SDRT_OP_GEGLU] = cpu_op_geglu,
    [SDRT_OP_ADD] = cpu_op_binary,
    [SDRT_OP_MUL] = cpu_op_binary,
    [SDRT_OP_SCALE] = cpu_op_activation,
    [SDRT_OP_CONCAT] = cpu_op_concat,
    [SDRT_OP_UPSAMPLE2X] = cpu_op_upsample2x,
    [SDRT_OP_TIMESTEP_EMB] = cpu_op_timestep_emb,
    [SDRT_OP_COPY] = cpu_op_copy,
};

static void cpu_stream_free(sdrt_stream *s) {
    if (!s) return;
    cpu_stream_ctx *sc = s->context;
    cpu_ctx_release(&sc->ctx);
    free(sc);
}

static sdrt_status cpu_stream_compute(sdrt_stream *s, const sdrt_op *op) {
    if (!op || op->struct_size < SDRT_STRUCT_SIZE(sdrt_op, fparams)) return SDRT_INVALID_ARGUMENT;
    if (!cpu_supports_op(op)) return SDRT_UNSUPPORTED;
    cpu_stream_ctx *sc = s->context;
    return g_cpu_ops[op->kind](&sc->ctx, op);
}

static const sdrt_stream_iface g_cpu_stream_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_stream_iface, synchronize),
    .free = cpu_stream_free,
    .compute = cpu_stream_compute,
    .synchronize = NULL, /* synchronous */
};

/* "threads" from a JSON object text; 0 when absent or malformed. */
int cpu_json_threads(const char *json) {
    if (!json) return 0;
    cJSON *root = cJSON_Parse(json);
    int n = 0;
    const cJSON *t = root ? cJSON_GetObjectItemCaseSensitive(root, "threads") : NULL;
    if (cJSON_IsNumber(t) && t->valuedouble >= 1 && t->valuedouble <= 1024) n = (int)t->valuedouble;
    cJSON_Delete(root);
    return n;
}

sdrt_stream *cpu_stream_new(sdrt_device *dev, const char *params_json, int default_threads) {
    int threads = cpu_json_threads(params_json);
    if (threads <= 0) threads = default_threads;
    cpu_stream_ctx *sc = calloc(1, sizeof *sc);
    if (!sc) return NULL;
    if (cpu_ctx_init(&sc->ctx, threads) != 0) {
        free(sc);
        return NULL;
    }
    sc->stream.iface = &g_cpu_stream_iface;
    sc->stream.context = sc;
    sc->stream.device = dev;
    return &sc->stream;
}
