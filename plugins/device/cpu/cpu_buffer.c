/* cpu_buffer.c - the host buffer type: 64-byte aligned malloc'd memory,
 * directly addressable (is_host), so transfers are memcpy. */
#include "cpu_internal.h"

#include <stdlib.h>
#include <string.h>

#define CPU_BUFFER_ALIGN 64

static void cpu_buffer_free(sdrt_buffer *buf) {
    if (!buf) return;
    cpu_aligned_free(buf->context);
    free(buf);
}

static void *cpu_buffer_base(sdrt_buffer *buf) { return buf->context; }

static void cpu_buffer_write(sdrt_buffer *buf, void *dst, const void *src, size_t size) {
    if (size) memcpy(dst, src, size);
}

static void cpu_buffer_read(sdrt_buffer *buf, void *dst, const void *src, size_t size) {
    if (size) memcpy(dst, src, size);
}

static const sdrt_buffer_iface g_cpu_buffer_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_buffer_iface, read),
    .free = cpu_buffer_free,
    .base = cpu_buffer_base,
    .write = cpu_buffer_write,
    .read = cpu_buffer_read,
};

static const char *cpu_bt_name(sdrt_buffer_type *bt) { return "CPU"; }

static sdrt_buffer *cpu_bt_alloc(sdrt_buffer_type *bt, size_t size) {
    sdrt_buffer *buf = calloc(1, sizeof *buf);
    if (!buf) return NULL;
    buf->context = cpu_aligned_alloc(size);
    if (!buf->context) {
        free(buf);
        return NULL;
    }
    buf->iface = &g_cpu_buffer_iface;
    buf->type = bt;
    buf->size = size;
    return buf;
}

static size_t cpu_bt_alignment(sdrt_buffer_type *bt) { return CPU_BUFFER_ALIGN; }

static int cpu_bt_is_host(sdrt_buffer_type *bt) { return 1; }

const sdrt_buffer_type_iface cpu_buffer_type_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_buffer_type_iface, is_host),
    .name = cpu_bt_name,
    .alloc = cpu_bt_alloc,
    .alignment = cpu_bt_alignment,
    .is_host = cpu_bt_is_host,
};
