/* vk_select.h - which kernel variants a Vulkan device gets, as pure
 * functions of the properties it reports and the family config, kept out
 * of the device code so a unit test (tests/vulkan/test_vk_select.c) can
 * feed them fabricated property lists (drivers this CI does not have).
 *
 * GEMM (MATMUL, CONV2D): "tiled" (shared-memory tiles, for GPUs) or
 * "direct" (operands straight from the buffers, for CPU-type devices such
 * as lavapipe), each with or without subgroup shuffles sharing the A
 * operand (gemm_core.glsl). ATTENTION: the online-softmax step with or
 * without subgroup clustered reductions (attention.comp).
 *
 * Thread safety: none needed (no state). Strings: `why` is written only on
 * failure, NUL-terminated and truncated to whylen. */
#ifndef SDRT_VK_SELECT_H
#define SDRT_VK_SELECT_H

#include <stddef.h>
#include <stdint.h>

/* config / env values */
enum { VK_GEMM_AUTO = 0, VK_GEMM_TILED = 1, VK_GEMM_DIRECT = 2 };
enum { VK_SG_AUTO = 0, VK_SG_ON = 1, VK_SG_OFF = 2 };

/* What the device reports (VkPhysicalDeviceProperties.deviceType ==
 * VK_PHYSICAL_DEVICE_TYPE_CPU, VkPhysicalDeviceSubgroupProperties). */
typedef struct vk_caps {
    int cpu_type;
    uint32_t sg_size;   /* subgroupSize; 0 = unknown (a 1.0 device) */
    uint32_t sg_ops;    /* supportedOperations (VkSubgroupFeatureFlags) */
    uint32_t sg_stages; /* supportedStages (VkShaderStageFlags) */
} vk_caps;

/* The variants a device runs. */
typedef struct vk_choice {
    int direct;  /* GEMM: 1 direct, 0 tiled */
    int sg_gemm; /* GEMM with subgroup shuffles */
    int sg_attn; /* attention with subgroup reductions */
} vk_choice;

/* 1 when the subgroup GEMM variants can run on `c` (compute stage, basic +
 * shuffle operations, a power-of-two size 4..64 so the 256-invocation
 * workgroup holds whole subgroups and lane groups of min(size, 16) share
 * a tile row), else 0 with the missing property in why (may be NULL). */
int vk_sg_gemm_ok(const vk_caps *c, char *why, size_t whylen);

/* The same for the subgroup attention (basic + arithmetic operations, a
 * power-of-two size 4..64 like the GEMM's, so both switch together; the
 * kernel itself takes any size). */
int vk_sg_attn_ok(const vk_caps *c, char *why, size_t whylen);

/* Resolves the config (gemm: VK_GEMM_*, subgroups: VK_SG_*) against `c`.
 * auto: direct on CPU-type devices, tiled elsewhere; subgroup variants
 * wherever they can run. VK_SG_ON forces them: returns -1 (why names the
 * missing property) when the device cannot run both; otherwise 0. */
int vk_select(const vk_caps *c, int gemm, int subgroups, vk_choice *out, char *why, size_t whylen);

#endif
