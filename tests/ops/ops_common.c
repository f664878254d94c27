/* ops_common.c - fixtures for test-ops. */
#include "ops_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "sdrt/npy.h"

static sdrt_device *g_dev;
static sdrt_stream *g_streams[9];
static uint64_t g_rng;

sdrt_device *ops_device(void) {
    if (!g_dev) {
        sdrt_backend_reg *reg = sdrt_backend_entry(NULL, NULL);
        g_dev = reg ? reg->iface->device_get(reg, 0) : NULL;
    }
    return g_dev;
}

sdrt_stream *ops_stream(int threads) {
    if (threads < 1 || threads > 8) threads = 1;
    if (!g_streams[threads]) {
        char params[32];
        snprintf(params, sizeof params, "{\"threads\":%d}", threads);
        g_streams[threads] = ops_device()->iface->stream_new(ops_device(), params);
    }
    return g_streams[threads];
}

size_t ops_numel(int ndim, const int64_t *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    return n;
}

sdrt_tensor ops_tensor(void *data, sdrt_dtype dt, int ndim, const int64_t *shape) {
    sdrt_tensor t = {.struct_size = sizeof(sdrt_tensor), .dtype = dt, .ndim = ndim, .data = data};
    int64_t s = 1;
    for (int d = SDRT_MAX_DIMS - 1; d >= 0; d--) {
        t.shape[d] = d < ndim ? shape[d] : 1;
        t.strides[d] = d < ndim ? s : 0;
        if (d < ndim) s *= shape[d];
    }
    return t;
}

sdrt_tensor ops_tensor_perm(void *data, int ndim, const int64_t *shape, const int *perm) {
    sdrt_tensor t = ops_tensor(data, SDRT_DTYPE_F32, ndim, shape);
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t.strides[perm[i]] = s;
        s *= shape[perm[i]];
    }
    return t;
}

uint64_t ops_rand_u64(void) {
    if (!g_rng) g_rng = test_seed() * 0x9E3779B97F4A7C15ull | 1;
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

int ops_rand_int(int lo, int hi) { return lo + (int)(ops_rand_u64() % (uint64_t)(hi - lo + 1)); }

void ops_rand(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * (2.0f * (float)(ops_rand_u64() >> 40) / (float)(1 << 24) - 1.0f);
}

sdrt_status ops_run(sdrt_stream *s, sdrt_op_kind kind, const sdrt_tensor *s0, const sdrt_tensor *s1,
                    const sdrt_tensor *s2, sdrt_tensor *dst, const int32_t *ip, const float *fp) {
    sdrt_op op = {.struct_size = sizeof(sdrt_op), .kind = kind, .src = {s0, s1, s2}, .dst = dst};
    if (ip) memcpy(op.iparams, ip, sizeof op.iparams);
    if (fp) memcpy(op.fparams, fp, sizeof op.fparams);
    return sdrt_stream_compute(s, &op);
}

float *ops_golden(const char *cas, const char *name, int64_t *shape, int *ndim) {
    char rel[256], err[256];
    snprintf(rel, sizeof rel, "%s__%s.npy", cas, name);
    char path[4096];
    const char *dir = getenv("SDRT_OPS_DATA"), *src = getenv("SDRT_SOURCE_DIR");
    if (dir) snprintf(path, sizeof path, "%s/%s", dir, rel);
    else snprintf(path, sizeof path, "%s/tests/ops/data/%s", src ? src : ".", rel);
    float *data = NULL;
    int64_t shp[SDRT_NPY_MAX_DIMS];
    int nd = 0;
    if (sdrt_npy_read_f32(path, &data, shp, &nd, err, sizeof err) != 0) {
        test_fail_(__FILE__, __LINE__, "golden %s: %s", rel, err);
        return NULL;
    }
    if (shape) memcpy(shape, shp, sizeof(int64_t) * (size_t)(nd < SDRT_MAX_DIMS ? nd : SDRT_MAX_DIMS));
    if (ndim) *ndim = nd;
    return data;
}

int ops_close(const char *what, const float *got, const float *want, size_t n, double tol) {
    double rel = test_rel_l2(got, want, n);
    if (!(rel <= tol)) {
        test_fail_(__FILE__, __LINE__, "%s: rel L2 %.3g > %.3g (max abs %.3g)", what, rel, tol,
                   test_max_abs(got, want, n));
        return 0;
    }
    return 1;
}
