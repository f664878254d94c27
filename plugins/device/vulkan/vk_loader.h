/* vk_loader.h - the Vulkan loader, opened at run time.
 *
 * Neither the host nor this family links libvulkan: vk_loader_open()
 * dlopens it and fills one table of entry points (global, instance and
 * device level, all resolved through vkGetInstanceProcAddr / the device's
 * vkGetDeviceProcAddr). A machine without a loader just gets NULL. */
#ifndef SDRT_VK_LOADER_H
#define SDRT_VK_LOADER_H

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

/* X(name): instance-level entry points (resolved with the instance). */
#define VKL_INSTANCE_FNS(X)                       \
    X(vkDestroyInstance)                          \
    X(vkEnumeratePhysicalDevices)                 \
    X(vkGetPhysicalDeviceProperties)              \
    X(vkGetPhysicalDeviceProperties2)             \
    X(vkGetPhysicalDeviceMemoryProperties)        \
    X(vkGetPhysicalDeviceMemoryProperties2)       \
    X(vkGetPhysicalDeviceQueueFamilyProperties)   \
    X(vkGetPhysicalDeviceFeatures)                \
    X(vkEnumerateDeviceExtensionProperties)       \
    X(vkCreateDevice)                             \
    X(vkGetDeviceProcAddr)

/* Device-level entry points. */
#define VKL_DEVICE_FNS(X)              \
    X(vkDestroyDevice)                 \
    X(vkGetDeviceQueue)                \
    X(vkDeviceWaitIdle)                \
    X(vkAllocateMemory)                \
    X(vkFreeMemory)                    \
    X(vkMapMemory)                     \
    X(vkUnmapMemory)                   \
    X(vkCreateBuffer)                  \
    X(vkDestroyBuffer)                 \
    X(vkGetBufferMemoryRequirements)   \
    X(vkBindBufferMemory)              \
    X(vkCreateShaderModule)            \
    X(vkDestroyShaderModule)           \
    X(vkCreatePipelineCache)           \
    X(vkDestroyPipelineCache)          \
    X(vkGetPipelineCacheData)          \
    X(vkCreateComputePipelines)        \
    X(vkDestroyPipeline)               \
    X(vkCreatePipelineLayout)          \
    X(vkDestroyPipelineLayout)         \
    X(vkCreateDescriptorSetLayout)     \
    X(vkDestroyDescriptorSetLayout)    \
    X(vkCreateDescriptorPool)          \
    X(vkDestroyDescriptorPool)         \
    X(vkResetDescriptorPool)           \
    X(vkAllocateDescriptorSets)        \
    X(vkUpdateDescriptorSets)          \
    X(vkCreateCommandPool)             \
    X(vkDestroyCommandPool)            \
    X(vkResetCommandPool)              \
    X(vkAllocateCommandBuffers)        \
    X(vkBeginCommandBuffer)            \
    X(vkEndCommandBuffer)              \
    X(vkCmdBindPipeline)               \
    X(vkCmdBindDescriptorSets)         \
    X(vkCmdPushConstants)              \
    X(vkCmdDispatch)                   \
    X(vkCmdPipelineBarrier)            \
    X(vkCmdCopyBuffer)                 \
    X(vkCmdFillBuffer)                 \
    X(vkCreateFence)                   \
    X(vkDestroyFence)                  \
    X(vkResetFences)                   \
    X(vkWaitForFences)                 \
    X(vkGetFenceStatus)                \
    X(vkQueueSubmit)

typedef struct vkl_table {
    PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr;
    PFN_vkCreateInstance vkCreateInstance;
    PFN_vkEnumerateInstanceVersion vkEnumerateInstanceVersion; /* NULL on a 1.0 loader */
#define VKL_DECL_(name) PFN_##name name;
    VKL_INSTANCE_FNS(VKL_DECL_)
#undef VKL_DECL_
} vkl_table;

typedef struct vkl_device_table {
#define VKL_DECL_(name) PFN_##name name;
    VKL_DEVICE_FNS(VKL_DECL_)
#undef VKL_DECL_
} vkl_device_table;

/* Opens the loader and resolves the global entry points. Returns 0, or -1
 * with the reason in why. Not thread-safe (the family's entry calls it). */
int vkl_open(vkl_table *t, char *why, size_t whylen);

/* Resolves the instance-level entry points; -1 naming the first missing
 * one (vkGetPhysicalDevice*2 may be NULL on a 1.0 instance). */
int vkl_load_instance(vkl_table *t, VkInstance inst, char *why, size_t whylen);

/* Resolves the device-level entry points; -1 naming the first missing. */
int vkl_load_device(const vkl_table *t, VkDevice dev, vkl_device_table *d, char *why, size_t whylen);

/* Called after every instance is destroyed. The loader stays mapped:
 * drivers keep threads and atexit handlers past vkDestroyInstance. */
void vkl_close(void);

#endif
