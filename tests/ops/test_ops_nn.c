/* test_ops_nn.c - the nn helper's own contract: sticky errors,
 * cancellation, zero-copy weights on host devices, views. */
#include <string.h>

#include "harness.h"
#include "ops_common.h"
#include "sdrt/nn.h"

static int g_cancel;
static int cancel_flag(sdrt_job *job) { return g_cancel; }

void test_nn_sticky_and_cancel(void) {
    sdrt_nn *nn = sdrt_nn_new(ops_device(), "{\"threads\":1}", cancel_flag, NULL);
    REQUIRE(nn, "nn_new");
    float a[6] = {1, 2, 3, 4, 5, 6};
    int64_t s23[2] = {2, 3}, s22[2] = {2, 2};
    sdrt_tensor *x = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 2, s23, a);
    sdrt_tensor *bad = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 2, s22, a);
    CHECK(sdrt_nn_matmul(nn, x, bad, 0, 1.0f) == NULL, "mismatched matmul must fail");
    const char *msg = NULL;
    CHECK(sdrt_nn_status(nn, &msg) == SDRT_INVALID_ARGUMENT, "status INVALID_ARGUMENT");
    CHECK(msg && strstr(msg, "MATMUL"), "message names the op: %s", msg ? msg : "(null)");
    CHECK(sdrt_nn_silu(nn, x) == NULL, "sticky: later ops do nothing");
    CHECK(sdrt_nn_status(nn, NULL) == SDRT_INVALID_ARGUMENT, "first failure kept");
    sdrt_nn_clear_status(nn);
    sdrt_tensor *y = sdrt_nn_silu(nn, x);
    CHECK(y != NULL && sdrt_nn_status(nn, NULL) == SDRT_OK, "works after clear");
    g_cancel = 1;
    CHECK(sdrt_nn_silu(nn, x) == NULL && sdrt_nn_status(nn, NULL) == SDRT_CANCELLED, "cancel polled between ops");
    g_cancel = 0;
    sdrt_nn_drop(nn, y);
    sdrt_nn_free(nn);
}

void test_nn_views_and_weights(void) {
    sdrt_nn *nn = sdrt_nn_new(ops_device(), NULL, NULL, NULL);
    REQUIRE(nn, "nn_new");
    float w[6] = {1, 2, 3, 4, 5, 6};
    int64_t s23[2] = {2, 3};
    sdrt_tensor host = ops_tensor(w, SDRT_DTYPE_F32, 2, s23);
    const sdrt_tensor *wt = sdrt_nn_weight(nn, &host);
    CHECK(wt && wt->data == (void *)w, "host device: weight is a zero-copy view");
    sdrt_tensor *x = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 2, s23, w);
    sdrt_tensor col = sdrt_nn_view_slice(x, 1, 1, 2); /* [[2,3],[5,6]] */
    int perm[2] = {1, 0};
    sdrt_tensor tr = sdrt_nn_view_permute(&col, perm); /* [[2,5],[3,6]] */
    CHECK(!sdrt_nn_is_contiguous(&tr) && sdrt_nn_numel(&tr) == 4, "view props");
    float out[4];
    CHECK(sdrt_nn_to_host_f32(nn, &tr, out) == SDRT_OK, "to_host strided");
    CHECK(out[0] == 2 && out[1] == 5 && out[2] == 3 && out[3] == 6, "slice+permute values %g %g %g %g", out[0],
          out[1], out[2], out[3]);
    int64_t s6[1] = {6};
    sdrt_tensor flat = sdrt_nn_view_reshape(x, 1, s6);
    CHECK(flat.data == x->data && flat.ndim == 1, "reshape view");
    sdrt_tensor bad = sdrt_nn_view_reshape(&tr, 1, s6);
    CHECK(bad.data == NULL, "reshape of a strided view is refused");
    sdrt_nn_free(nn);
}

