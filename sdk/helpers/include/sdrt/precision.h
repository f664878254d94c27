/* sdrt/precision.h - the compute precision of a stream: names, parsing and
 * the stream params text that carries it.
 *
 * Helper library (sdrt_helpers), not ABI. The contract it serves is the
 * stream params key "precision" (sdrt/backend.h, stream_new): requests and
 * configs name a precision, the computing plugins put it into the params
 * they give sdrt_nn_new / stream_open, and each backend family decides
 * what it means and which it can do:
 *   "auto"  the device's default (CPU f32, Vulkan f16, CUDA its config);
 *   "f32"   float32 weights and compute (parity runs);
 *   "f16"   weights stored as IEEE half on the device, f32 accumulation;
 *   "bf16"  weights as bfloat16, f32 accumulation;
 *   "int8"  8-bit weights with activations quantized on the fly.
 * A family that cannot do a value refuses the stream with SDRT_UNSUPPORTED
 * and a message naming `precision` and the device
 * (sdrt_precision_refusal); a value outside the list is
 * SDRT_INVALID_ARGUMENT.
 *
 * Threads: every function is pure (any thread). */
#ifndef SDRT_PRECISION_H
#define SDRT_PRECISION_H

#include <stddef.h>

#include "sdrt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sdrt_precision {
    SDRT_PRECISION_AUTO = 0,
    SDRT_PRECISION_F32 = 1,
    SDRT_PRECISION_F16 = 2,
    SDRT_PRECISION_BF16 = 3,
    SDRT_PRECISION_INT8 = 4
} sdrt_precision;

/* The accepted names, for messages. */
#define SDRT_PRECISION_CHOICES "\"auto\", \"f32\", \"f16\", \"bf16\" or \"int8\""

/* "auto", "f32", ...; "?" for a value outside the enum. Static text. */
const char *sdrt_precision_name(sdrt_precision p);

/* Parses a name (case-sensitive). `value` NULL: AUTO. Returns SDRT_OK, or
 * SDRT_INVALID_ARGUMENT with "<field>: '<value>' is not one of ..." in msg
 * (`field` NULL = "precision"; msg may be NULL). */
sdrt_status sdrt_precision_parse(const char *value, const char *field, sdrt_precision *out, char *msg,
                                 size_t msg_size);

/* The stream params object text {"threads":N,"precision":"f16"} into out
 * (threads <= 0 and AUTO are left out, so a context with neither gets
 * "{}"). Returns out, or NULL when out is too small. */
const char *sdrt_stream_params_format(char *out, size_t out_size, int threads, sdrt_precision p);

/* The refusal text of a family that cannot run `p` on `device` ("vulkan:0"):
 * "precision: \"int8\" is not supported on vulkan:0 (it runs <supported>)".
 * Returns msg. */
const char *sdrt_precision_refusal(char *msg, size_t msg_size, sdrt_precision p, const char *device,
                                   const char *supported);

#ifdef __cplusplus
}
#endif

#endif /* SDRT_PRECISION_H */
