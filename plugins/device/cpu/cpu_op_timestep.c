/* cpu_op_timestep.c - TIMESTEP_EMB, diffusers get_timestep_embedding.
 * Every intermediate is rounded to float in PyTorch's order (exponent,
 * exp, product, scale) because sin/cos of t*freq with t up to 1000
 * amplify any difference in the argument. */
#include "cpu_internal.h"

#include <math.h>

sdrt_status cpu_op_timestep_emb(cpu_ctx *ctx, const sdrt_op *op) {
    const sdrt_tensor *t = op->src[0], *y = op->dst;
    int64_t dim = op->iparams[0];
    if (t->ndim != 1 || y->ndim != 2 || dim <= 0 || y->shape[0] != t->shape[0] || y->shape[1] != dim)
        return SDRT_INVALID_ARGUMENT;
    int64_t half = dim / 2;
    int flip = op->iparams[1] == 1;
    float shift = op->fparams[0];
    float max_period = op->fparams[1] != 0.0f ? op->fparams[1] : 10000.0f;
    float scale = op->fparams[2] != 0.0f ? op->fparams[2] : 1.0f;
    float neg_log = (float)-log((double)max_period);
    float denom = (float)half - shift;
    for (int64_t n = 0; n < t->shape[0]; n++) {
        float ts = ((const float *)t->data)[n * t->strides[0]];
        float *row = (float *)y->data + n * y->strides[0];
        int64_t sy = y->strides[1];
        for (int64_t i = 0; i < half; i++) {
            float freq = expf(neg_log * (float)i / denom);
            float arg = scale * (ts * freq);
            float s = sinf(arg), c = cosf(arg);
            row[(flip ? half + i : i) * sy] = s;
            row[(flip ? i : half + i) * sy] = c;
        }
        if (dim % 2) row[(dim - 1) * sy] = 0.0f;
    }
    return SDRT_OK;
}
