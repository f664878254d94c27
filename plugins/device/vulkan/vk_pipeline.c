/* vk_pipeline.c - which kernel variant each device runs (from its subgroup
 * properties and the config, vk_select.h), and the compute pipelines from
 * the embedded SPIR-V, made on first use, through a VkPipelineCache kept
 * on disk (cache_dir/vulkan-<vendor>-<device>-<driver>-<cache uuid>.bin),
 * so a second start reuses what the driver compiled. Creation feedback
 * (Vulkan 1.3) counts cache hits. */
#define _POSIX_C_SOURCE 200809L
#include "vk_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int vk_pipeline_select(vk_device *d, char *why, size_t whylen) {
    vk_family *f = d->fam;
    vk_caps c = {.cpu_type = d->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU};
    if (f->fn.vkGetPhysicalDeviceProperties2 && d->props.apiVersion >= VK_API_VERSION_1_1) {
        VkPhysicalDeviceSubgroupProperties sp = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
        VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sp};
        f->fn.vkGetPhysicalDeviceProperties2(d->phys, &p2);
        c.sg_size = sp.subgroupSize;
        c.sg_ops = sp.supportedOperations;
        c.sg_stages = sp.supportedStages;
    }
    d->caps = c;
    if (vk_select(&c, f->gemm, f->subgroups, &d->choice, why, whylen) != 0) return -1;
    d->cpu_like = d->choice.direct;
    return 0;
}

vk_kernel vk_pipeline_gemm(const vk_device *d, int conv) {
    static const vk_kernel k[2][2][2] = { /* [conv][direct][subgroup] */
        {{VK_K_matmul, VK_K_matmul_sg}, {VK_K_matmul_direct, VK_K_matmul_direct_sg}},
        {{VK_K_conv2d, VK_K_conv2d_sg}, {VK_K_conv2d_direct, VK_K_conv2d_direct_sg}}};
    return k[conv != 0][d->choice.direct != 0][d->choice.sg_gemm != 0];
}

vk_kernel vk_pipeline_attention(const vk_device *d) { return d->choice.sg_attn ? VK_K_attention_sg : VK_K_attention; }

static void vk_mkdirs(const char *path) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        mkdir(tmp, 0755);
        *p = '/';
    }
    mkdir(tmp, 0755);
}

static void *vk_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    void *data = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n > 0 && fseek(f, 0, SEEK_SET) == 0 && (data = malloc((size_t)n)) != NULL &&
            fread(data, 1, (size_t)n, f) != (size_t)n) {
            free(data);
            data = NULL;
        }
        *len = data ? (size_t)n : 0;
    }
    fclose(f);
    return data;
}

int vk_pipeline_init(vk_device *d) {
    VkDescriptorSetLayoutBinding b[6];
    for (uint32_t i = 0; i < 6; i++)
        b[i] = (VkDescriptorSetLayoutBinding){.binding = i, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                              .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo dl = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                          .bindingCount = 6, .pBindings = b};
    if (d->fn.vkCreateDescriptorSetLayout(d->dev, &dl, NULL, &d->dsl) != VK_SUCCESS) return -1;
    VkPushConstantRange pr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = 4};
    VkPipelineLayoutCreateInfo pl = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                     .pSetLayouts = &d->dsl, .pushConstantRangeCount = 1, .pPushConstantRanges = &pr};
    if (d->fn.vkCreatePipelineLayout(d->dev, &pl, NULL, &d->layout) != VK_SUCCESS) return -1;
    d->cache_path[0] = 0;
    const char *dir = d->fam->cache_dir;
    void *data = NULL;
    size_t len = 0;
    if (dir[0]) {
        const uint8_t *u = d->props.pipelineCacheUUID;
        char uuid[33];
        for (int i = 0; i < 16; i++) snprintf(uuid + 2 * i, 3, "%02x", u[i]);
        snprintf(d->cache_path, sizeof d->cache_path, "%s/vulkan-%04x-%04x-%u-%s.bin", dir, d->props.vendorID,
                 d->props.deviceID, d->props.driverVersion, uuid);
        data = vk_read_file(d->cache_path, &len);
    }
    /* the driver validates the header (vendor, device, UUID) and ignores a
     * foreign or corrupt blob */
    VkPipelineCacheCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO, .initialDataSize = len,
                                    .pInitialData = data};
    VkResult r = d->fn.vkCreatePipelineCache(d->dev, &ci, NULL, &d->cache);
    if (r != VK_SUCCESS && data) {
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        r = d->fn.vkCreatePipelineCache(d->dev, &ci, NULL, &d->cache);
    }
    free(data);
    d->cache_loaded = r == VK_SUCCESS && ci.pInitialData ? len : 0;
    if (r != VK_SUCCESS) d->cache = VK_NULL_HANDLE;
    d->cache_dirty = 0;
    d->cache_hits = d->cache_misses = 0;
    memset(d->pipes, 0, sizeof d->pipes);
    return 0;
}

void vk_pipeline_cache_save(vk_device *d) {
    if (!d->cache || !d->cache_dirty || !d->cache_path[0]) return;
    size_t len = 0;
    if (d->fn.vkGetPipelineCacheData(d->dev, d->cache, &len, NULL) != VK_SUCCESS || !len) return;
    void *data = malloc(len);
    if (!data) return;
    if (d->fn.vkGetPipelineCacheData(d->dev, d->cache, &len, data) == VK_SUCCESS) {
        vk_mkdirs(d->fam->cache_dir);
        char tmp[1210];
        snprintf(tmp, sizeof tmp, "%s.tmp", d->cache_path);
        FILE *f = fopen(tmp, "wb");
        int ok = f && fwrite(data, 1, len, f) == len;
        if (f && fclose(f) != 0) ok = 0;
        /* rename is atomic: a concurrent start reads the old or the new file */
        if (ok && rename(tmp, d->cache_path) == 0) d->cache_dirty = 0;
        else {
            vk_log(d->fam, SDRT_LOG_WARN, "%s: cannot write pipeline cache %s: %s", d->name, d->cache_path,
                   strerror(errno));
            remove(tmp);
        }
    }
    free(data);
}

void vk_pipeline_fini(vk_device *d) {
    for (int k = 0; k < VK_K_COUNT; k++)
        if (d->pipes[k]) d->fn.vkDestroyPipeline(d->dev, d->pipes[k], NULL);
    memset(d->pipes, 0, sizeof d->pipes);
    if (d->cache) d->fn.vkDestroyPipelineCache(d->dev, d->cache, NULL);
    if (d->layout) d->fn.vkDestroyPipelineLayout(d->dev, d->layout, NULL);
    if (d->dsl) d->fn.vkDestroyDescriptorSetLayout(d->dev, d->dsl, NULL);
    d->cache = VK_NULL_HANDLE;
    d->layout = VK_NULL_HANDLE;
    d->dsl = VK_NULL_HANDLE;
}

static const char *const g_kernel_names[VK_K_COUNT] = {
#define VK_KERNEL_NAME_(n) #n,
    VK_KERNEL_LIST(VK_KERNEL_NAME_)
#undef VK_KERNEL_NAME_
};

VkPipeline vk_pipeline_get(vk_device *d, vk_kernel k) {
    pthread_mutex_lock(&d->lock);
    VkPipeline p = d->pipes[k];
    if (p) {
        pthread_mutex_unlock(&d->lock);
        return p;
    }
    VkShaderModuleCreateInfo mi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                   .codeSize = vk_shader_spirv[k].size, .pCode = vk_shader_spirv[k].code};
    VkShaderModule mod;
    if (d->fn.vkCreateShaderModule(d->dev, &mi, NULL, &mod) != VK_SUCCESS) {
        pthread_mutex_unlock(&d->lock);
        vk_log(d->fam, SDRT_LOG_ERROR, "%s: kernel %s: vkCreateShaderModule failed", d->name, g_kernel_names[k]);
        return VK_NULL_HANDLE;
    }
    VkPipelineCreationFeedback fb = {0};
    VkPipelineCreationFeedbackCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CREATION_FEEDBACK_CREATE_INFO,
                                                .pPipelineCreationFeedback = &fb};
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .pNext = d->has_feedback ? &fci : NULL,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = mod, .pName = "main"},
        .layout = d->layout};
    VkResult r = d->fn.vkCreateComputePipelines(d->dev, d->cache, 1, &ci, NULL, &p);
    d->fn.vkDestroyShaderModule(d->dev, mod, NULL);
    if (r != VK_SUCCESS) {
        pthread_mutex_unlock(&d->lock);
        vk_log(d->fam, SDRT_LOG_ERROR, "%s: kernel %s: vkCreateComputePipelines failed (VkResult %d)", d->name,
               g_kernel_names[k], (int)r);
        return VK_NULL_HANDLE;
    }
    d->pipes[k] = p;
    int hit = (fb.flags & VK_PIPELINE_CREATION_FEEDBACK_VALID_BIT) &&
              (fb.flags & VK_PIPELINE_CREATION_FEEDBACK_APPLICATION_PIPELINE_CACHE_HIT_BIT);
    if (hit) d->cache_hits++;
    else {
        d->cache_misses++;
        d->cache_dirty = 1;
        vk_pipeline_cache_save(d); /* at most once per kernel per start */
    }
    pthread_mutex_unlock(&d->lock);
    return p;
}
