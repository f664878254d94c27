/* fake_device.h - a device whose buffer type is not host-visible by
 * contract (is_host = 0), computing with the CPU kernels: it lets nn tests
 * see uploads (bytes written through buffers), allocations, and device
 * out-of-memory (an allocation limit) without a GPU. The memory is still
 * host memory underneath: the strict device (h/strict) is the one that
 * faults on host dereference. */
#ifndef SDRT_TEST_FAKE_DEVICE_H
#define SDRT_TEST_FAKE_DEVICE_H

#include "sdrt/backend.h"

typedef struct fake_device {
    sdrt_device dev;
    sdrt_buffer_type bt;
    sdrt_device *cpu;
    size_t limit;         /* live allocated bytes allowed; 0 = none */
    size_t live_bytes;    /* allocated now */
    size_t written;       /* bytes written host -> buffer since reset */
    size_t n_allocs;
} fake_device;

/* The fake device over the CPU device `cpu` (one per test, static);
 * `cpu` NULL: buffers only (stream_new fails). */
void fake_device_init(fake_device *f, sdrt_device *cpu);

#endif
