/* test_ops.c - the test table of test-ops (CPU backend ops and nn.h). */
#include "harness.h"

void test_golden_matmul(void);
void test_golden_conv2d(void);
void test_golden_norms(void);
void test_golden_attention(void);
void test_golden_elementwise(void);
void test_golden_layout(void);
void test_golden_timestep(void);
void test_gemm_kernels(void);
void test_matmul_strided(void);
void test_conv2d_random(void);
void test_attention_random(void);
void test_attention_4096(void);
void test_threads_identical(void);
void test_rows_strided(void);
void test_groupnorm_nhwc(void);
void test_binary_and_copy(void);
void test_supports_op(void);
void test_param_dtypes(void);
void test_pack_kcontig(void);
void test_activation_simd(void);
void test_gemm_odd_shapes(void);
void test_conv2d_batched(void);
void test_nn_sticky_and_cancel(void);
void test_nn_views_and_weights(void);
void test_nn_param_to_f32(void);

const test_entry TESTS[] = {
    {"golden_matmul", test_golden_matmul},
    {"golden_conv2d", test_golden_conv2d},
    {"golden_norms", test_golden_norms},
    {"golden_attention", test_golden_attention},
    {"golden_elementwise", test_golden_elementwise},
    {"golden_layout", test_golden_layout},
    {"golden_timestep", test_golden_timestep},
    {"gemm_kernels", test_gemm_kernels},
    {"matmul_strided", test_matmul_strided},
    {"conv2d_random", test_conv2d_random},
    {"attention_random", test_attention_random},
    {"attention_4096", test_attention_4096},
    {"threads_identical", test_threads_identical},
    {"rows_strided", test_rows_strided},
    {"groupnorm_nhwc", test_groupnorm_nhwc},
    {"binary_and_copy", test_binary_and_copy},
    {"supports_op", test_supports_op},
    {"param_dtypes", test_param_dtypes},
    {"pack_kcontig", test_pack_kcontig},
    {"activation_simd", test_activation_simd},
    {"gemm_odd_shapes", test_gemm_odd_shapes},
    {"conv2d_batched", test_conv2d_batched},
    {"nn_sticky_and_cancel", test_nn_sticky_and_cancel},
    {"nn_views_and_weights", test_nn_views_and_weights},
    {"nn_param_to_f32", test_nn_param_to_f32},
    {0, 0},
};
