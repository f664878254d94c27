/* vk_select.c - see vk_select.h. */
#include "vk_select.h"

#include <stdio.h>

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

static int vk_pow2_in(uint32_t v, uint32_t lo, uint32_t hi) { return v >= lo && v <= hi && (v & (v - 1)) == 0; }

static int vk_sg_common(const vk_caps *c, uint32_t ops, const char *opname, uint32_t lo, char *why, size_t whylen) {
    const char *miss = NULL;
    char buf[96];
    if (!(c->sg_stages & VK_SHADER_STAGE_COMPUTE_BIT)) miss = "subgroup operations in compute shaders";
    else if ((c->sg_ops & ops) != ops) miss = opname;
    else if (!vk_pow2_in(c->sg_size, lo, 64)) {
        snprintf(buf, sizeof buf, "a power-of-two subgroup size in %u..64 (it has %u)", lo, c->sg_size);
        miss = buf;
    }
    if (miss && why && whylen) snprintf(why, whylen, "the device lacks %s", miss);
    return miss == NULL;
}

int vk_sg_gemm_ok(const vk_caps *c, char *why, size_t whylen) {
    return vk_sg_common(c, VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_SHUFFLE_BIT,
                        "subgroup shuffle operations", 4, why, whylen);
}

int vk_sg_attn_ok(const vk_caps *c, char *why, size_t whylen) {
    return vk_sg_common(c, VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT,
                        "subgroup arithmetic operations", 4, why, whylen);
}

int vk_select(const vk_caps *c, int gemm, int subgroups, vk_choice *out, char *why, size_t whylen) {
    out->direct = gemm == VK_GEMM_DIRECT || (gemm == VK_GEMM_AUTO && c->cpu_type);
    out->sg_gemm = out->sg_attn = 0;
    if (subgroups == VK_SG_OFF) return 0;
    char w1[160] = "", w2[160] = "";
    int g = vk_sg_gemm_ok(c, w1, sizeof w1), a = vk_sg_attn_ok(c, w2, sizeof w2);
    if (subgroups == VK_SG_ON && (!g || !a)) {
        if (why && whylen)
            snprintf(why, whylen, "subgroup kernels forced on (\"subgroups\": \"on\" / SDRT_VULKAN_SUBGROUPS=on), but %s",
                     !g ? w1 : w2);
        return -1;
    }
    out->sg_gemm = g;
    out->sg_attn = a;
    return 0;
}
