/* strict.h - the strict test backend family ("strict"): private parts.
 *
 * A device whose memory the host cannot touch, as a discrete GPU's:
 *  - a buffer's addresses lie inside a PROT_NONE reservation, so host code
 *    that dereferences a tensor's data faults at once; the real bytes live
 *    in separate storage that only this family reaches (strict_buf_at);
 *  - ops run on the CPU kernels after translating every operand, and are
 *    refused (supports_op 0, compute UNSUPPORTED) unless every operand
 *    lies in a buffer of this device;
 *  - write_async is deferred until the stream next needs it (an op, a copy,
 *    a read, a synchronize) and read_async lands in host memory only at
 *    synchronize / event_synchronize, so a caller that reads early or
 *    changes its source early gets wrong results, as on a real GPU;
 *  - every host -> device byte is counted (sdrt_strict_get_counters).
 * Config (the device plugin's "backends": {"strict": {...}}):
 *   "threads": N            compute threads per stream (default: cores)
 *   "memory_bytes": N       device memory; allocations beyond it fail
 *                           (default 0: the host's RAM, no limit)
 *   "max_buffer_bytes": N   largest single buffer (max_size; default 0:
 *                           none)
 *   "poison": bool          new buffers hold 0xFF bytes (NaN), as a GPU's
 *                           fresh memory holds garbage (default true)
 * graph_compute checks the replay_key promise: a key seen before with a
 * different graph (ops, parameters, shapes, addresses) is refused with
 * INVALID_ARGUMENT, where a real GPU would replay stale work silently.
 */
#ifndef SDRT_STRICT_H
#define SDRT_STRICT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu_internal.h"
#include "strict_hook.h"

typedef struct strict_device {
    int threads;
    int poison; /* fill new buffers with 0xFF (NaN) bytes */
    size_t memory_bytes, max_buffer_bytes;
    _Atomic uint64_t h2d, d2h, d2d, live, peak, allocs;
} strict_device;

extern strict_device g_strict;
extern sdrt_device g_strict_dev;

/* ---- buffers (strict_buffer.c) ------------------------------------------ */

typedef struct strict_buf {
    sdrt_buffer buf; /* buf.context == this */
    char *fake;      /* PROT_NONE reservation: the addresses handed out */
    size_t reserved;
    char *real;      /* the bytes */
    int usage;
} strict_buf;

extern const sdrt_buffer_type_iface strict_buffer_type_iface;
extern const sdrt_buffer_iface strict_buffer_iface;

/* The strict buffer behind `buf`, or NULL when it is not one of ours. */
strict_buf *strict_buf_of(sdrt_buffer *buf);
/* The real storage of device addresses [addr, addr+size) of `b`; NULL when
 * the range is not inside the buffer. */
char *strict_buf_at(strict_buf *b, const void *addr, size_t size);
/* Same, but a range outside the buffer is a caller bug: logged, abort(). */
char *strict_buf_at_or_die(strict_buf *b, const void *addr, size_t size, const char *what);

/* ---- streams (strict_stream.c) ------------------------------------------ */

sdrt_stream *strict_stream_new(sdrt_device *dev, const char *params_json);
/* `op` with every operand translated to host storage (into `hosts`);
 * SDRT_UNSUPPORTED when an operand is not in a buffer of this device,
 * SDRT_INVALID_ARGUMENT when it reaches outside its buffer. */
sdrt_status strict_translate_op(const sdrt_op *op, sdrt_op *out, sdrt_tensor hosts[SDRT_OP_MAX_SRC + 1]);

#endif
