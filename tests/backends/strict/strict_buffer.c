/* strict_buffer.c - buffers of the strict device: the address range handed
 * out is a PROT_NONE reservation (any host load or store faults), the
 * bytes live in separate storage reached only through strict_buf_at. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "strict.h"

#define STRICT_ALIGN 256 /* what a GPU asks of storage-buffer offsets */

strict_buf *strict_buf_of(sdrt_buffer *buf) {
    return buf && buf->iface == &strict_buffer_iface ? (strict_buf *)buf->context : NULL;
}

char *strict_buf_at(strict_buf *b, const void *addr, size_t size) {
    uintptr_t a = (uintptr_t)addr, lo = (uintptr_t)b->fake;
    if (a < lo || a - lo > b->buf.size || size > b->buf.size - (a - lo)) return NULL;
    return b->real + (a - lo);
}

char *strict_buf_at_or_die(strict_buf *b, const void *addr, size_t size, const char *what) {
    char *p = strict_buf_at(b, addr, size);
    if (!p) {
        fprintf(stderr, "strict device: %s of %zu bytes at %p is outside its buffer [%p, +%zu)\n", what, size, addr,
                (void *)b->fake, b->buf.size);
        abort();
    }
    return p;
}

static void strict_account_free(size_t size) { atomic_fetch_sub(&g_strict.live, size); }

static void strict_buffer_free(sdrt_buffer *buf) {
    strict_buf *b = strict_buf_of(buf);
    if (!b) return;
    munmap(b->fake, b->reserved);
    cpu_aligned_free(b->real);
    strict_account_free(buf->size);
    free(b);
}

static void *strict_buffer_base(sdrt_buffer *buf) { return strict_buf_of(buf)->fake; }

static void strict_buffer_write(sdrt_buffer *buf, void *dst, const void *src, size_t size) {
    char *p = strict_buf_at_or_die(strict_buf_of(buf), dst, size, "write");
    if (size) memcpy(p, src, size);
    atomic_fetch_add(&g_strict.h2d, size);
}

static void strict_buffer_read(sdrt_buffer *buf, void *dst, const void *src, size_t size) {
    const char *p = strict_buf_at_or_die(strict_buf_of(buf), src, size, "read");
    if (size) memcpy(dst, p, size);
    atomic_fetch_add(&g_strict.d2h, size);
}

static void strict_buffer_memset(sdrt_buffer *buf, void *dst, int value, size_t size) {
    char *p = strict_buf_at_or_die(strict_buf_of(buf), dst, size, "memset");
    if (size) memset(p, value, size);
}

/* Only from another strict buffer (device memory of this device); 0 for
 * anything else, so the wrapper goes through host memory. */
static int strict_buffer_copy_from(sdrt_buffer *buf, void *dst, sdrt_buffer *src_buf, const void *src, size_t size) {
    strict_buf *from = strict_buf_of(src_buf);
    if (!from) return 0;
    char *d = strict_buf_at_or_die(strict_buf_of(buf), dst, size, "copy_from destination");
    const char *s = strict_buf_at_or_die(from, src, size, "copy_from source");
    if (size) memmove(d, s, size);
    atomic_fetch_add(&g_strict.d2d, size);
    return 1;
}

static void strict_buffer_set_usage(sdrt_buffer *buf, int usage) { strict_buf_of(buf)->usage = usage; }

const sdrt_buffer_iface strict_buffer_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_buffer_iface, set_usage),
    .free = strict_buffer_free,
    .base = strict_buffer_base,
    .write = strict_buffer_write,
    .read = strict_buffer_read,
    .memset = strict_buffer_memset,
    .copy_from = strict_buffer_copy_from,
    .set_usage = strict_buffer_set_usage,
};

static const char *strict_bt_name(sdrt_buffer_type *bt) { return "STRICT"; }

/* NULL (out of memory, as a GPU reports it) past memory_bytes or
 * max_buffer_bytes. */
static sdrt_buffer *strict_bt_alloc(sdrt_buffer_type *bt, size_t size) {
    if (g_strict.max_buffer_bytes && size > g_strict.max_buffer_bytes) return NULL;
    uint64_t live = atomic_fetch_add(&g_strict.live, size) + size;
    if (g_strict.memory_bytes && live > g_strict.memory_bytes) {
        strict_account_free(size);
        return NULL;
    }
    strict_buf *b = calloc(1, sizeof *b);
    long page = sysconf(_SC_PAGESIZE);
    size_t reserved = ((size ? size : 1) + (size_t)page - 1) / (size_t)page * (size_t)page;
    void *fake = b ? mmap(NULL, reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) : MAP_FAILED;
    char *real = fake != MAP_FAILED ? cpu_aligned_alloc(size) : NULL;
    if (!real) {
        if (fake != MAP_FAILED) munmap(fake, reserved);
        free(b);
        strict_account_free(size);
        return NULL;
    }
    /* Fresh device memory holds garbage on a GPU: NaN bytes here, so code
     * that reads what it never wrote (an arena slot, a padded row) sees it. */
    if (g_strict.poison && size) memset(real, 0xFF, size);
    b->fake = fake;
    b->reserved = reserved;
    b->real = real;
    b->buf = (sdrt_buffer){.iface = &strict_buffer_iface, .context = b, .type = bt, .size = size};
    atomic_fetch_add(&g_strict.allocs, 1);
    uint64_t peak = atomic_load(&g_strict.peak);
    while (live > peak && !atomic_compare_exchange_weak(&g_strict.peak, &peak, live)) {
    }
    return &b->buf;
}

static size_t strict_bt_alignment(sdrt_buffer_type *bt) { return STRICT_ALIGN; }
static int strict_bt_is_host(sdrt_buffer_type *bt) { return 0; }
static size_t strict_bt_max_size(sdrt_buffer_type *bt) { return g_strict.max_buffer_bytes; }

const sdrt_buffer_type_iface strict_buffer_type_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_buffer_type_iface, max_size),
    .name = strict_bt_name,
    .alloc = strict_bt_alloc,
    .alignment = strict_bt_alignment,
    .is_host = strict_bt_is_host,
    .max_size = strict_bt_max_size,
};
