/* test_strict.c - the strict test device keeps its promises: device
 * addresses fault when the host dereferences them, host operands are
 * refused, async copies land only when the stream says so, transfers are
 * counted, and its memory limit gives out-of-memory as a GPU would. */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "sdrt/backend.h"
#include "strict_hook.h"

static void *g_lib;
static sdrt_backend_entry_fn g_entry;
static sdrt_strict_get_counters_fn g_counters;
static sdrt_strict_reset_counters_fn g_reset;

static sdrt_device *strict_dev(const char *config) {
    if (!g_lib) {
        const char *path = getenv("SDRT_STRICT_BACKEND");
        g_lib = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
        if (!g_lib) {
            test_fail_(__FILE__, __LINE__, "cannot load SDRT_STRICT_BACKEND=%s: %s", path ? path : "(unset)",
                       dlerror());
            return NULL;
        }
        g_entry = (sdrt_backend_entry_fn)dlsym(g_lib, SDRT_BACKEND_ENTRY_SYMBOL);
        g_counters = (sdrt_strict_get_counters_fn)dlsym(g_lib, SDRT_STRICT_COUNTERS_SYMBOL);
        g_reset = (sdrt_strict_reset_counters_fn)dlsym(g_lib, SDRT_STRICT_RESET_SYMBOL);
    }
    if (!g_entry || !g_counters || !g_reset) return NULL;
    sdrt_backend_reg *reg = g_entry(NULL, config ? config : "{\"threads\":1}");
    return reg ? reg->iface->device_get(reg, 0) : NULL;
}

static sdrt_tensor vec(void *data, sdrt_buffer *buf, int64_t n) {
    sdrt_tensor t = {.struct_size = sizeof t, .dtype = SDRT_DTYPE_F32, .ndim = 1, .shape = {n, 1, 1, 1, 1, 1},
                     .strides = {1}, .data = data, .buffer = buf};
    return t;
}

static void on_fault(int sig) { _exit(42); }

static void test_deref_faults(void) {
    sdrt_device *dev = strict_dev(NULL);
    REQUIRE(dev, "no strict device");
    sdrt_buffer_type *bt = dev->iface->buffer_type(dev);
    CHECK(!sdrt_buffer_type_is_host(bt), "strict buffers claim to be host memory");
    sdrt_buffer *buf = sdrt_buffer_alloc(bt, 4096);
    REQUIRE(buf, "alloc failed");
    float one = 1.0f;
    buf->iface->write(buf, buf->iface->base(buf), &one, sizeof one);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* Our own handler, so the fault is seen the same way with or
         * without a sanitizer's handler installed. */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_fault;
        sigaction(SIGSEGV, &sa, NULL);
        sigaction(SIGBUS, &sa, NULL);
        volatile float *p = buf->iface->base(buf);
        float v = *p; /* must fault */
        _exit(v == 1.0f ? 0 : 3);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 42,
          "reading a device address from the host did not fault (status %d)", status);
    sdrt_buffer_free(buf);
}

static void test_host_operands_refused(void) {
    sdrt_device *dev = strict_dev(NULL);
    REQUIRE(dev, "no strict device");
    sdrt_stream *s = dev->iface->stream_new(dev, NULL);
    sdrt_buffer *buf = sdrt_buffer_alloc(dev->iface->buffer_type(dev), 1024);
    REQUIRE(s && buf, "stream/buffer");
    char *base = buf->iface->base(buf);
    float host[8] = {0};
    sdrt_tensor dx = vec(base, buf, 8), dy = vec(base + 256, buf, 8), hx = vec(host, NULL, 8);
    sdrt_op op = {.struct_size = sizeof op, .kind = SDRT_OP_SILU, .src = {&dx}, .dst = &dy};
    CHECK(sdrt_device_supports_op(dev, &op), "device operands refused");
    CHECK(sdrt_stream_compute(s, &op) == SDRT_OK, "device operands: compute failed");
    op.src[0] = &hx;
    CHECK(!sdrt_device_supports_op(dev, &op), "host memory operand claimed");
    CHECK(sdrt_stream_compute(s, &op) == SDRT_UNSUPPORTED, "host memory operand computed");
    /* A buffer of the host staging type is host memory too. */
    sdrt_buffer *hb = sdrt_buffer_alloc(sdrt_device_host_buffer_type(dev), 64);
    REQUIRE(hb, "host buffer");
    sdrt_tensor hbx = vec(hb->iface->base(hb), hb, 8);
    op.src[0] = &hbx;
    CHECK(sdrt_stream_compute(s, &op) == SDRT_UNSUPPORTED, "staging buffer operand computed");
    /* Past the end of the buffer. */
    sdrt_tensor over = vec(base + 1000, buf, 8);
    op.src[0] = &over;
    CHECK(sdrt_stream_compute(s, &op) == SDRT_INVALID_ARGUMENT, "operand past the buffer end accepted");
    sdrt_buffer_free(hb);
    sdrt_buffer_free(buf);
    sdrt_stream_free(s);
}

static void test_async_lands_late(void) {
    sdrt_device *dev = strict_dev(NULL);
    REQUIRE(dev, "no strict device");
    sdrt_stream *s = dev->iface->stream_new(dev, NULL);
    sdrt_buffer *buf = sdrt_buffer_alloc(dev->iface->buffer_type(dev), 1024);
    REQUIRE(s && buf, "stream/buffer");
    char *base = buf->iface->base(buf);
    float src[4] = {1, 2, 3, 4}, dst[4] = {0};
    sdrt_stream_write_async(s, buf, base, src, sizeof src);
    src[0] = 10; /* a caller bug: the source changed before the stream ran */
    sdrt_stream_read_async(s, buf, dst, base, sizeof dst);
    CHECK(dst[0] == 0 && dst[3] == 0, "read_async reached host memory before synchronize");
    sdrt_event *ev = sdrt_stream_event_record(s);
    CHECK(ev != NULL, "no events");
    sdrt_event_synchronize(s, ev);
    sdrt_event_free(s, ev);
    CHECK(dst[0] == 10 && dst[3] == 4, "after the event: %g %g (the write must read its source late)", dst[0], dst[3]);
    sdrt_buffer_free(buf);
    sdrt_stream_free(s);
}

static void test_counters(void) {
    sdrt_device *dev = strict_dev(NULL);
    REQUIRE(dev, "no strict device");
    sdrt_stream *s = dev->iface->stream_new(dev, NULL);
    sdrt_buffer *a = sdrt_buffer_alloc(dev->iface->buffer_type(dev), 4096);
    sdrt_buffer *b = sdrt_buffer_alloc(dev->iface->buffer_type(dev), 4096);
    REQUIRE(s && a && b, "stream/buffers");
    g_reset();
    static char host[3000];
    a->iface->write(a, a->iface->base(a), host, 1000);
    sdrt_stream_write_async(s, a, (char *)a->iface->base(a) + 1000, host, 2000);
    sdrt_stream_copy_async(s, b, b->iface->base(b), a, a->iface->base(a), 3000);
    sdrt_stream_read_async(s, b, host, b->iface->base(b), 500);
    sdrt_stream_synchronize(s);
    sdrt_strict_counters c;
    g_counters(&c);
    CHECK(c.h2d_bytes == 3000 && c.d2d_bytes == 3000 && c.d2h_bytes == 500,
          "counters h2d %llu d2d %llu d2h %llu, want 3000 3000 500", (unsigned long long)c.h2d_bytes,
          (unsigned long long)c.d2d_bytes, (unsigned long long)c.d2h_bytes);
    CHECK(c.live_bytes >= 8192, "live bytes %llu", (unsigned long long)c.live_bytes);
    const char *info = dev->iface->info_json(dev);
    CHECK(info && strstr(info, "\"h2d_bytes\":3000"), "info_json lacks the counters: %s", info ? info : "NULL");
    sdrt_buffer_free(a);
    sdrt_buffer_free(b);
    sdrt_stream_free(s);
}

static void test_memory_limit(void) {
    sdrt_device *dev = strict_dev("{\"threads\":1,\"memory_bytes\":1048576,\"max_buffer_bytes\":786432}");
    REQUIRE(dev, "no strict device");
    sdrt_buffer_type *bt = dev->iface->buffer_type(dev);
    CHECK(sdrt_buffer_type_max_size(bt) == 786432, "max_size %zu", sdrt_buffer_type_max_size(bt));
    CHECK(sdrt_buffer_alloc(bt, 800000) == NULL, "a buffer above max_buffer_bytes was allocated");
    sdrt_buffer *a = sdrt_buffer_alloc(bt, 600000);
    CHECK(a != NULL, "600 kB of 1 MiB refused");
    sdrt_buffer *b = sdrt_buffer_alloc(bt, 600000);
    CHECK(b == NULL, "allocated past memory_bytes");
    sdrt_buffer_free(a);
    b = sdrt_buffer_alloc(bt, 600000);
    CHECK(b != NULL, "memory not returned by free");
    sdrt_buffer_free(b);
    strict_dev(NULL); /* back to no limit */
}

static void test_replay_key_and_poison(void) {
    sdrt_device *dev = strict_dev(NULL);
    REQUIRE(dev, "no strict device");
    sdrt_stream *s = dev->iface->stream_new(dev, NULL);
    sdrt_buffer *buf = sdrt_buffer_alloc(dev->iface->buffer_type(dev), 1024);
    REQUIRE(s && buf, "stream/buffer");
    char *base = buf->iface->base(buf);
    float fresh[4];
    buf->iface->read(buf, fresh, base, sizeof fresh);
    CHECK(fresh[0] != fresh[0], "fresh device memory is not poisoned with NaN: %g", fresh[0]);
    float x[8] = {1, -2, 3, -4, 5, -6, 7, -8};
    buf->iface->write(buf, base, x, sizeof x);
    sdrt_tensor dx = vec(base, buf, 8), dy = vec(base + 256, buf, 8);
    sdrt_op op = {.struct_size = sizeof op, .kind = SDRT_OP_SILU, .src = {&dx}, .dst = &dy};
    sdrt_graph g = {.struct_size = sizeof g, .n_ops = 1, .ops = &op, .replay_key = 77};
    CHECK(sdrt_stream_graph_compute(s, &g) == SDRT_OK, "first graph with key 77");
    CHECK(sdrt_stream_graph_compute(s, &g) == SDRT_OK, "same graph replayed with key 77");
    op.kind = SDRT_OP_GELU;
    CHECK(sdrt_stream_graph_compute(s, &g) == SDRT_INVALID_ARGUMENT, "key 77 reused for another graph accepted");
    g.replay_key = 0;
    CHECK(sdrt_stream_graph_compute(s, &g) == SDRT_OK, "graph without a key");
    sdrt_buffer_free(buf);
    sdrt_stream_free(s);
}

const test_entry TESTS[] = {
    {"replay_key_and_poison", test_replay_key_and_poison},
    {"deref_faults", test_deref_faults},
    {"host_operands_refused", test_host_operands_refused},
    {"async_lands_late", test_async_lands_late},
    {"counters", test_counters},
    {"memory_limit", test_memory_limit},
    {0, 0},
};
