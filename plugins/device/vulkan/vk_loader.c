/* vk_loader.c - see vk_loader.h. Uses the device plugin's dynlib for the
 * platform's dlopen, compiled into this family too (one implementation). */
#include "vk_loader.h"

#include <stdio.h>
#include <string.h>

#include "dynlib.h"

static devlib *g_lib;

int vkl_open(vkl_table *t, char *why, size_t whylen) {
    memset(t, 0, sizeof *t);
#if defined(_WIN32)
    static const char *const names[] = {"vulkan-1.dll", NULL};
#elif defined(__APPLE__)
    static const char *const names[] = {"libvulkan.1.dylib", "libMoltenVK.dylib", NULL};
#else
    static const char *const names[] = {"libvulkan.so.1", "libvulkan.so", NULL};
#endif
    if (!g_lib) g_lib = devlib_open(names, NULL, why, whylen);
    if (!g_lib) return -1;
    t->vkGetInstanceProcAddr = (PFN_vkGetInstanceProcAddr)devlib_sym(g_lib, "vkGetInstanceProcAddr");
    if (!t->vkGetInstanceProcAddr) {
        snprintf(why, whylen, "the Vulkan loader has no vkGetInstanceProcAddr");
        return -1;
    }
    t->vkCreateInstance = (PFN_vkCreateInstance)t->vkGetInstanceProcAddr(NULL, "vkCreateInstance");
    t->vkEnumerateInstanceVersion =
        (PFN_vkEnumerateInstanceVersion)t->vkGetInstanceProcAddr(NULL, "vkEnumerateInstanceVersion");
    if (!t->vkCreateInstance) {
        snprintf(why, whylen, "the Vulkan loader has no vkCreateInstance");
        return -1;
    }
    return 0;
}

int vkl_load_instance(vkl_table *t, VkInstance inst, char *why, size_t whylen) {
#define VKL_LOAD_(name) t->name = (PFN_##name)t->vkGetInstanceProcAddr(inst, #name);
    VKL_INSTANCE_FNS(VKL_LOAD_)
#undef VKL_LOAD_
    /* the *2 queries are core 1.1; everything else must be there */
#define VKL_CHECK_(name)                                                                           \
    if (!t->name && strcmp(#name, "vkGetPhysicalDeviceProperties2") != 0 &&                        \
        strcmp(#name, "vkGetPhysicalDeviceMemoryProperties2") != 0) {                              \
        snprintf(why, whylen, "the Vulkan instance lacks %s", #name);                              \
        return -1;                                                                                 \
    }
    VKL_INSTANCE_FNS(VKL_CHECK_)
#undef VKL_CHECK_
    return 0;
}

int vkl_load_device(const vkl_table *t, VkDevice dev, vkl_device_table *d, char *why, size_t whylen) {
#define VKL_LOAD_(name)                                                   \
    d->name = (PFN_##name)t->vkGetDeviceProcAddr(dev, #name);             \
    if (!d->name) {                                                       \
        snprintf(why, whylen, "the Vulkan device lacks %s", #name);       \
        return -1;                                                        \
    }
    VKL_DEVICE_FNS(VKL_LOAD_)
#undef VKL_LOAD_
    return 0;
}

/* The loader stays mapped: drivers register atexit handlers and thread
 * pools that outlive vkDestroyInstance (Mesa never unloads), and a later
 * entry reuses the handle. Only the table is forgotten. */
void vkl_close(void) {}
