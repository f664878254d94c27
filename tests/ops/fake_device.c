/* fake_device.c - see fake_device.h. */
#include "fake_device.h"

#include <stdlib.h>
#include <string.h>

typedef struct fake_buf {
    fake_device *f;
    size_t size;
    void *mem;
} fake_buf;

static void fb_free(sdrt_buffer *b) {
    fake_buf *fb = b->context;
    fb->f->live_bytes -= fb->size;
    free(fb->mem);
    free(fb);
    free(b);
}
static void *fb_base(sdrt_buffer *b) { return ((fake_buf *)b->context)->mem; }
static void fb_write(sdrt_buffer *b, void *dst, const void *src, size_t n) {
    ((fake_buf *)b->context)->f->written += n;
    memcpy(dst, src, n);
}
static void fb_read(sdrt_buffer *b, void *dst, const void *src, size_t n) {
    (void)b;
    memcpy(dst, src, n);
}
static const sdrt_buffer_iface g_fb_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_buffer_iface, read),
    .free = fb_free, .base = fb_base, .write = fb_write, .read = fb_read,
};

static const char *fbt_name(sdrt_buffer_type *bt) { (void)bt; return "FAKE"; }
static sdrt_buffer *fbt_alloc(sdrt_buffer_type *bt, size_t size) {
    fake_device *f = bt->context;
    if (f->limit && f->live_bytes + size > f->limit) return NULL;
    sdrt_buffer *b = calloc(1, sizeof *b);
    fake_buf *fb = calloc(1, sizeof *fb);
    void *mem = aligned_alloc(64, (size + 63) / 64 * 64);
    if (!b || !fb || !mem) {
        free(b), free(fb), free(mem);
        return NULL;
    }
    *fb = (fake_buf){f, size, mem};
    *b = (sdrt_buffer){&g_fb_iface, fb, bt, size};
    f->live_bytes += size;
    f->n_allocs++;
    return b;
}
static size_t fbt_alignment(sdrt_buffer_type *bt) { (void)bt; return 64; }
static int fbt_is_host(sdrt_buffer_type *bt) { (void)bt; return 0; }
static const sdrt_buffer_type_iface g_fbt_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_buffer_type_iface, is_host),
    .name = fbt_name, .alloc = fbt_alloc, .alignment = fbt_alignment, .is_host = fbt_is_host,
};

static const char *fd_name(sdrt_device *d) { (void)d; return "FAKE0"; }
static const char *fd_desc(sdrt_device *d) { (void)d; return "non-host test device over the CPU kernels"; }
static sdrt_device_type fd_type(sdrt_device *d) { (void)d; return SDRT_DEVICE_GPU; }
static void fd_memory(sdrt_device *d, size_t *free_b, size_t *total) {
    fake_device *f = d->context;
    *total = f->limit;
    *free_b = f->limit ? f->limit - f->live_bytes : 0;
}
static sdrt_buffer_type *fd_bt(sdrt_device *d) { return &((fake_device *)d->context)->bt; }
/* The stream hands the CPU kernels the operands as borrowed host memory
 * (the CPU backend refuses buffers that are not host-visible). */
static sdrt_tensor fs_host(const sdrt_tensor *t) {
    sdrt_tensor h = *t;
    h.buffer = NULL;
    return h;
}
static sdrt_status fs_compute(sdrt_stream *s, const sdrt_op *op) {
    sdrt_stream *cpu = s->context;
    sdrt_op o = *op;
    sdrt_tensor src[SDRT_OP_MAX_SRC], dst = fs_host(op->dst);
    for (int i = 0; i < SDRT_OP_MAX_SRC; i++)
        if (op->src[i]) src[i] = fs_host(op->src[i]), o.src[i] = &src[i];
    o.dst = &dst;
    return cpu->iface->compute(cpu, &o);
}
static void fs_free(sdrt_stream *s) {
    sdrt_stream_free(s->context);
    free(s);
}
static const sdrt_stream_iface g_fs_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_stream_iface, synchronize),
    .free = fs_free, .compute = fs_compute,
};
static sdrt_stream *fd_stream(sdrt_device *d, const char *params) {
    sdrt_device *cpu = ((fake_device *)d->context)->cpu;
    if (!cpu) return NULL;
    sdrt_stream *inner = cpu->iface->stream_new(cpu, params), *s = calloc(1, sizeof *s);
    if (!inner || !s) {
        sdrt_stream_free(inner);
        free(s);
        return NULL;
    }
    *s = (sdrt_stream){&g_fs_iface, inner, d};
    return s;
}
static int fd_supports(sdrt_device *d, const sdrt_op *op) {
    sdrt_device *cpu = ((fake_device *)d->context)->cpu;
    sdrt_op o = *op;
    sdrt_tensor src[SDRT_OP_MAX_SRC], dst = fs_host(op->dst);
    for (int i = 0; i < SDRT_OP_MAX_SRC; i++)
        if (op->src[i]) src[i] = fs_host(op->src[i]), o.src[i] = &src[i];
    o.dst = &dst;
    return cpu->iface->supports_op(cpu, &o);
}
static const sdrt_device_iface g_fd_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_device_iface, supports_op),
    .name = fd_name, .description = fd_desc, .type = fd_type, .memory = fd_memory,
    .buffer_type = fd_bt, .stream_new = fd_stream, .supports_op = fd_supports,
};

void fake_device_init(fake_device *f, sdrt_device *cpu) {
    memset(f, 0, sizeof *f);
    f->cpu = cpu;
    f->dev = (sdrt_device){&g_fd_iface, f, cpu ? cpu->reg : NULL};
    f->bt = (sdrt_buffer_type){&g_fbt_iface, f, &f->dev};
}
