/* strict_hook.h - the strict test family's test hook: transfer and memory
 * counters, read from a test through dlsym on the loaded module
 * (SDRT_STRICT_COUNTERS_SYMBOL) or by linking the module's sources. */
#ifndef SDRT_STRICT_HOOK_H
#define SDRT_STRICT_HOOK_H

#include <stdint.h>

typedef struct sdrt_strict_counters {
    uint64_t h2d_bytes;  /* host -> device: buffer write, write_async */
    uint64_t d2h_bytes;  /* device -> host: buffer read, read_async */
    uint64_t d2d_bytes;  /* device -> device: copy_from, copy_async */
    uint64_t live_bytes; /* allocated now */
    uint64_t peak_bytes; /* most allocated at once since the last reset */
    uint64_t allocs;     /* buffers allocated since the last reset */
} sdrt_strict_counters;

/* Any thread. A snapshot of the family's counters. */
typedef void (*sdrt_strict_get_counters_fn)(sdrt_strict_counters *out);
/* Zeroes the transfer counters and sets peak to the live bytes. */
typedef void (*sdrt_strict_reset_counters_fn)(void);
#define SDRT_STRICT_COUNTERS_SYMBOL "sdrt_strict_get_counters"
#define SDRT_STRICT_RESET_SYMBOL "sdrt_strict_reset_counters"

#endif
