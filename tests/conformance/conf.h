/* conf.h - the backend conformance test: op cases (conf_cases.c), the
 * independent naive reference (conf_ref.c) and the runner that puts every
 * operand on a device through its buffers (test_conformance.c). */
#ifndef SDRT_TEST_CONF_H
#define SDRT_TEST_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "sdrt/backend.h"

/* One operand: logical shape and dtype, and how it is laid out in its
 * buffer. perm: storage dim i holds logical dim perm[i] (identity =
 * contiguous; anything else is a strided view). pad: extra elements after
 * each innermost storage run (rows with a gap). lo..hi: random range. */
typedef struct conf_tensor {
    int used;
    sdrt_dtype dtype;
    int ndim;
    int64_t shape[SDRT_MAX_DIMS];
    int perm[SDRT_MAX_DIMS];
    int64_t pad;
    float lo, hi;
} conf_tensor;

typedef struct conf_case {
    char name[192];
    sdrt_op_kind kind;
    conf_tensor src[SDRT_OP_MAX_SRC];
    conf_tensor dst;
    int32_t ip[SDRT_OP_MAX_PARAMS];
    float fp[SDRT_OP_MAX_PARAMS];
    /* Every other case of each op kind runs through write_async, a one-op
     * graph and read_async; the others through write, compute and read. */
    int async;
} conf_case;

/* ---- random numbers (seeded from SDRT_TEST_SEED, printed) ---------------- */
uint64_t conf_rand_u64(void);
int conf_rand_int(int lo, int hi); /* inclusive */
float conf_rand_float(float lo, float hi);

/* ---- cases ------------------------------------------------------------------- */

/* Appends the cases of every op (fresh random shapes) to *cases; returns
 * the count. Free with free(). */
size_t conf_cases_make(conf_case **cases);
/* A contiguous tensor descriptor of `dtype`. */
conf_tensor conf_t(sdrt_dtype dtype, int ndim, const int64_t *shape);
int64_t conf_numel(const conf_tensor *t);
/* Element strides of t's layout and the storage span in elements. */
int64_t conf_strides(const conf_tensor *t, int64_t *strides);
size_t conf_dtype_size(sdrt_dtype dt);
/* Rounds v to what dtype `dt` stores. */
float conf_quantize(sdrt_dtype dt, float v);

/* ---- reference ---------------------------------------------------------------- */

/* Computes the case's dst (logical order, float, rounded to the dst dtype)
 * from logical float inputs in[i] in double precision. Returns 0, or -1 if
 * the reference does not cover the case. */
int conf_reference(const conf_case *c, const float *const *in, float *out);

/* Relative L2 tolerance of an op kind. */
double conf_tolerance(const conf_case *c);

#endif
