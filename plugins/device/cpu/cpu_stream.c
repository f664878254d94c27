/* cpu_stream.c - CPU streams: synchronous, each with its own thread pool,
 * scratch memory and compute precision ({"threads":N}, default the online
 * cores; {"precision":"int8"|"bf16"}, cpu_lowp.c). Every op
 * has finished when compute returns, so the ABI 1.1 async members are the
 * synchronous copies and an event is complete the moment it is recorded. */
#include "cpu_internal.h"

#include "sdrt/precision.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const sdrt_host_api *g_cpu_log_api;

void cpu_log_set(const sdrt_host_api *api) { g_cpu_log_api = api; }

void cpu_logf(sdrt_log_level level, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (g_cpu_log_api && g_cpu_log_api->log) g_cpu_log_api->log(NULL, level, "%s", line);
    else if (level <= SDRT_LOG_WARN) fprintf(stderr, "%s\n", line);
}

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
    [SDRT_OP_LEAKY_RELU] = cpu_op_sr,
    [SDRT_OP_PRELU] = cpu_op_sr,
    [SDRT_OP_PIXEL_SHUFFLE] = cpu_op_sr,
    [SDRT_OP_PIXEL_UNSHUFFLE] = cpu_op_sr,
    [SDRT_OP_UPSAMPLE_NEAREST] = cpu_op_sr,
};

static void cpu_stream_free(sdrt_stream *s) {
    if (!s) return;
    cpu_stream_ctx *sc = s->context;
    cpu_ctx_release(&sc->ctx);
    free(sc);
}

sdrt_status cpu_op_dispatch(cpu_ctx *ctx, const sdrt_op *op) {
    if (!op || op->struct_size < SDRT_STRUCT_SIZE(sdrt_op, fparams)) return SDRT_INVALID_ARGUMENT;
    if (!cpu_supports_op(op)) return SDRT_UNSUPPORTED;
    return g_cpu_ops[op->kind](ctx, op);
}

static sdrt_status cpu_stream_compute(sdrt_stream *s, const sdrt_op *op) {
    cpu_stream_ctx *sc = s->context;
    return cpu_op_dispatch(&sc->ctx, op);
}

/* The whole graph in one call: each op is one parallel dispatch of the
 * stream's pool (ops are already synchronous, so there is nothing to
 * batch beyond that). */
static sdrt_status cpu_stream_graph_compute(sdrt_stream *s, const sdrt_graph *g) {
    if (!g || (g->n_ops && !g->ops)) return SDRT_INVALID_ARGUMENT;
    for (size_t i = 0; i < g->n_ops; i++) {
        sdrt_status st = cpu_stream_compute(s, &g->ops[i]);
        if (st != SDRT_OK) return st;
    }
    return SDRT_OK;
}

static int cpu_host_buffer(const sdrt_buffer *buf) {
    return buf && buf->type && sdrt_buffer_type_is_host(buf->type);
}

static sdrt_status cpu_stream_write_async(sdrt_stream *s, sdrt_buffer *buf, void *dst, const void *src, size_t size) {
    buf->iface->write(buf, dst, src, size);
    return SDRT_OK;
}

static sdrt_status cpu_stream_read_async(sdrt_stream *s, sdrt_buffer *buf, void *dst, const void *src, size_t size) {
    buf->iface->read(buf, dst, src, size);
    return SDRT_OK;
}

static sdrt_status cpu_stream_copy_async(sdrt_stream *s, sdrt_buffer *dst_buf, void *dst, sdrt_buffer *src_buf,
                                         const void *src, size_t size) {
    if (!cpu_host_buffer(dst_buf) || !cpu_host_buffer(src_buf)) return SDRT_UNSUPPORTED;
    if (size) memmove(dst, src, size);
    return SDRT_OK;
}

/* Recorded events are already complete: one static marker stands for all
 * of them (non-NULL, so callers take the event path). */
static char g_cpu_event_marker;

static sdrt_event *cpu_stream_event_record(sdrt_stream *s) { return (sdrt_event *)(void *)&g_cpu_event_marker; }
static void cpu_stream_event_synchronize(sdrt_stream *s, sdrt_event *ev) {}
static void cpu_stream_event_wait(sdrt_stream *s, sdrt_event *ev) {}
static void cpu_stream_event_free(sdrt_stream *s, sdrt_event *ev) {}

static const sdrt_stream_iface g_cpu_stream_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_stream_iface, event_free),
    .free = cpu_stream_free,
    .compute = cpu_stream_compute,
    .synchronize = NULL, /* synchronous */
    .graph_compute = cpu_stream_graph_compute,
    .write_async = cpu_stream_write_async,
    .read_async = cpu_stream_read_async,
    .copy_async = cpu_stream_copy_async,
    .event_record = cpu_stream_event_record,
    .event_synchronize = cpu_stream_event_synchronize,
    .event_wait = cpu_stream_event_wait,
    .event_free = cpu_stream_event_free,
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

sdrt_status cpu_stream_open(sdrt_device *dev, const char *params_json, int default_threads, sdrt_stream **out,
                            char *msg, size_t msg_size) {
    *out = NULL;
    /* "precision" (sdrt/precision.h): auto/f32, int8, bf16 where the CPU
     * has AVX-512 BF16 (cpu_lowp.c); f16 is refused */
    cpu_precision prec;
    char why[256];
    sdrt_status st = cpu_precision_parse(params_json, &prec, why, sizeof why);
    if (st != SDRT_OK) {
        cpu_logf(SDRT_LOG_WARN, "cpu backend: stream refused on cpu:0: %s", why);
        if (msg) snprintf(msg, msg_size, "%s (on cpu:0)", why);
        return st;
    }
    int threads = cpu_json_threads(params_json);
    if (threads <= 0) threads = default_threads;
    cpu_stream_ctx *sc = calloc(1, sizeof *sc);
    if (!sc || cpu_ctx_init(&sc->ctx, threads) != 0) {
        free(sc);
        if (msg) snprintf(msg, msg_size, "cpu:0: cannot start a stream of %d threads", threads);
        return SDRT_RESOURCE_EXHAUSTED;
    }
    sc->ctx.precision = prec;
    if (prec != CPU_PREC_F32)
        cpu_logf(SDRT_LOG_INFO, "cpu backend: stream precision %s (kernel %s)", cpu_precision_name(prec),
                 cpu_lp_kernel_best(prec)->name);
    sc->stream.iface = &g_cpu_stream_iface;
    sc->stream.context = sc;
    sc->stream.device = dev;
    *out = &sc->stream;
    return SDRT_OK;
}

sdrt_stream *cpu_stream_new(sdrt_device *dev, const char *params_json, int default_threads) {
    sdrt_stream *s = NULL;
    cpu_stream_open(dev, params_json, default_threads, &s, NULL, 0);
    return s;
}
