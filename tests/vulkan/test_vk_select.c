/* test_vk_select.c - the Vulkan family's kernel-variant choice
 * (plugins/device/vulkan/vk_select.c) on fabricated subgroup properties:
 * the drivers CI lacks (NVIDIA 32 lanes, AMD 64, Intel, a 1.0 device, odd
 * sizes, missing operations) and the switches that force or forbid the
 * subgroup kernels. Expectations follow the kernels' stated requirements
 * (gemm_core.glsl: shuffles, power-of-two size 4..64; attention.comp:
 * arithmetic ops, the same sizes). */
#include <string.h>

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

#include "harness.h"
#include "vk_select.h"

#define ALL_OPS                                                                                        \
    (VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_VOTE_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT | \
     VK_SUBGROUP_FEATURE_BALLOT_BIT | VK_SUBGROUP_FEATURE_SHUFFLE_BIT |                                 \
     VK_SUBGROUP_FEATURE_SHUFFLE_RELATIVE_BIT | VK_SUBGROUP_FEATURE_CLUSTERED_BIT | VK_SUBGROUP_FEATURE_QUAD_BIT)
#define COMPUTE (VK_SHADER_STAGE_COMPUTE_BIT | VK_SHADER_STAGE_FRAGMENT_BIT)

static vk_choice pick(vk_caps c, int gemm, int sg, int *rc, char *why) {
    vk_choice ch;
    memset(&ch, 0x55, sizeof ch); /* every field must be written */
    why[0] = 0;
    *rc = vk_select(&c, gemm, sg, &ch, why, 256);
    return ch;
}

static void test_auto(void) {
    char why[256];
    int rc;
    /* discrete GPUs with every operation: tiled + both subgroup kernels */
    uint32_t sizes[] = {4, 8, 16, 32, 64};
    for (int i = 0; i < 5; i++) {
        vk_choice ch = pick((vk_caps){0, sizes[i], ALL_OPS, COMPUTE}, VK_GEMM_AUTO, VK_SG_AUTO, &rc, why);
        CHECK(rc == 0, "size %u: rc %d (%s)", sizes[i], rc, why);
        CHECK(ch.direct == 0, "size %u: a GPU gets the tiled GEMM", sizes[i]);
        CHECK(ch.sg_gemm == 1, "size %u: subgroup GEMM expected", sizes[i]);
        CHECK(ch.sg_attn == 1, "size %u: subgroup attention expected", sizes[i]);
    }
    /* lavapipe-like: CPU type, 8 lanes */
    vk_choice ch = pick((vk_caps){1, 8, ALL_OPS, VK_SHADER_STAGE_COMPUTE_BIT}, VK_GEMM_AUTO, VK_SG_AUTO, &rc, why);
    CHECK(rc == 0 && ch.direct == 1 && ch.sg_gemm == 1 && ch.sg_attn == 1, "lavapipe-like: %d %d %d", ch.direct,
          ch.sg_gemm, ch.sg_attn);
    /* sizes the kernels cannot tile: not a power of two, too large, unknown */
    uint32_t bad[] = {0, 1, 2, 3, 12, 24, 48, 128};
    for (int i = 0; i < 8; i++) {
        ch = pick((vk_caps){0, bad[i], ALL_OPS, COMPUTE}, VK_GEMM_AUTO, VK_SG_AUTO, &rc, why);
        CHECK(rc == 0 && ch.sg_gemm == 0 && ch.sg_attn == 0, "size %u: no subgroup kernels (%d %d)", bad[i],
              ch.sg_gemm, ch.sg_attn);
    }
    /* no compute stage */
    ch = pick((vk_caps){0, 32, ALL_OPS, VK_SHADER_STAGE_FRAGMENT_BIT}, VK_GEMM_AUTO, VK_SG_AUTO, &rc, why);
    CHECK(rc == 0 && !ch.sg_gemm && !ch.sg_attn, "fragment-only subgroups: none");
    /* shuffles without arithmetic, and the other way round */
    ch = pick((vk_caps){0, 32, VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_SHUFFLE_BIT, COMPUTE},
              VK_GEMM_AUTO, VK_SG_AUTO, &rc, why);
    CHECK(rc == 0 && ch.sg_gemm == 1 && ch.sg_attn == 0, "shuffle only: gemm %d attn %d", ch.sg_gemm, ch.sg_attn);
    ch = pick((vk_caps){0, 32, VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT, COMPUTE},
              VK_GEMM_AUTO, VK_SG_AUTO, &rc, why);
    CHECK(rc == 0 && ch.sg_gemm == 0 && ch.sg_attn == 1, "arithmetic only: gemm %d attn %d", ch.sg_gemm, ch.sg_attn);
    /* basic missing: nothing */
    ch = pick((vk_caps){0, 32, ALL_OPS & ~(uint32_t)VK_SUBGROUP_FEATURE_BASIC_BIT, COMPUTE}, VK_GEMM_AUTO, VK_SG_AUTO,
              &rc, why);
    CHECK(rc == 0 && !ch.sg_gemm && !ch.sg_attn, "no basic: none");
}

static void test_switches(void) {
    char why[256];
    int rc;
    vk_caps gpu = {0, 32, ALL_OPS, COMPUTE}, cpu = {1, 8, ALL_OPS, COMPUTE};
    vk_choice ch = pick(gpu, VK_GEMM_DIRECT, VK_SG_AUTO, &rc, why);
    CHECK(rc == 0 && ch.direct == 1 && ch.sg_gemm == 1, "gemm direct on a GPU");
    ch = pick(cpu, VK_GEMM_TILED, VK_SG_AUTO, &rc, why);
    CHECK(rc == 0 && ch.direct == 0 && ch.sg_gemm == 1, "gemm tiled on a CPU device");
    ch = pick(gpu, VK_GEMM_AUTO, VK_SG_OFF, &rc, why);
    CHECK(rc == 0 && !ch.sg_gemm && !ch.sg_attn, "subgroups off");
    ch = pick(gpu, VK_GEMM_AUTO, VK_SG_ON, &rc, why);
    CHECK(rc == 0 && ch.sg_gemm && ch.sg_attn, "subgroups on where available");
    /* forced on where unavailable: an error naming what is missing */
    ch = pick((vk_caps){0, 32, VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT, COMPUTE},
              VK_GEMM_AUTO, VK_SG_ON, &rc, why);
    CHECK(rc == -1 && strstr(why, "shuffle") && strstr(why, "forced"), "forced, no shuffle: rc %d why \"%s\"", rc,
          why);
    ch = pick((vk_caps){0, 128, ALL_OPS, COMPUTE}, VK_GEMM_AUTO, VK_SG_ON, &rc, why);
    CHECK(rc == -1 && strstr(why, "4..64") && strstr(why, "it has 128"), "forced, 128 lanes: why \"%s\"", why);
    ch = pick((vk_caps){0, 0, 0, 0}, VK_GEMM_AUTO, VK_SG_ON, &rc, why);
    CHECK(rc == -1 && strstr(why, "compute"), "forced on a 1.0 device: why \"%s\"", why);
    ch = pick((vk_caps){0, 0, 0, 0}, VK_GEMM_AUTO, VK_SG_AUTO, &rc, why);
    CHECK(rc == 0 && !ch.sg_gemm && !ch.sg_attn && why[0] == 0, "auto on a 1.0 device: none, no error");
}

const test_entry TESTS[] = {
    {"auto", test_auto},
    {"switches", test_switches},
    {0, 0},
};
