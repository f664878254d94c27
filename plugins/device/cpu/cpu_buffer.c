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

static void cpu_buffer_memset(sdrt_buffer *buf, void *dst, int value, size_t size) {
    if (size) memset(dst, value, size);
}

/* Any buffer whose addresses are host pointers (this family's, or another
 * family's host buffer type) is copied with memcpy; device memory of
 * another family is not addressable here: 0 lets the wrapper go through
 * that buffer's read. */
static int cpu_buffer_copy_from(sdrt_buffer *buf, void *dst, sdrt_buffer *src_buf, const void *src, size_t size) {
    if (!src_buf || !src_buf->type || !sdrt_buffer_type_is_host(src_buf->type)) return 0;
    if (size) memmove(dst, src, size);
    return 1;
}

static const sdrt_buffer_iface g_cpu_buffer_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_buffer_iface, copy_from),
    .free = cpu_buffer_free,
    .base = cpu_buffer_base,
    .write = cpu_buffer_write,
    .read = cpu_buffer_read,
    .memset = cpu_buffer_memset,
    .copy_from = cpu_buffer_copy_from,
    /* set_usage absent: every CPU buffer is the same memory. */
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
