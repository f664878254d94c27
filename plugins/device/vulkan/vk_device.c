/* vk_device.c - one Vulkan physical device: logical device and queue,
 * memory types and sizes, the sdrt_device iface (memory with
 * VK_EXT_memory_budget, info_json, reset after a lost device). */
#include "vk_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int vk_has_ext(vk_device *d, const char *name) {
    vk_family *f = d->fam;
    uint32_t n = 0;
    if (f->fn.vkEnumerateDeviceExtensionProperties(d->phys, NULL, &n, NULL) != VK_SUCCESS) return 0;
    VkExtensionProperties *e = calloc(n ? n : 1, sizeof *e);
    int found = 0;
    if (e && f->fn.vkEnumerateDeviceExtensionProperties(d->phys, NULL, &n, e) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++) found = strcmp(e[i].extensionName, name) == 0;
    free(e);
    return found;
}

/* Device-local memory for blocks: on CPU and integrated devices one that is
 * also host-visible (so uploads are memcpy), on discrete ones plain VRAM. */
static int vk_choose_memory(vk_device *d, char *why, size_t whylen) {
    VkMemoryPropertyFlags local = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
    VkMemoryPropertyFlags hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    int unified = d->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU ||
                  d->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU;
    int t = unified ? vk_memory_type(d, ~0u, local | hv) : -1;
    if (t < 0) t = vk_memory_type(d, ~0u, local);
    if (t < 0) t = vk_memory_type(d, ~0u, 0);
    int h = vk_memory_type(d, ~0u, hv | VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
    if (h < 0) h = vk_memory_type(d, ~0u, hv);
    if (t < 0 || h < 0) {
        snprintf(why, whylen, "no device-local or host-visible memory type");
        return -1;
    }
    d->mem_type_local = (uint32_t)t;
    d->mem_type_host = (uint32_t)h;
    uint64_t range = d->props.limits.maxStorageBufferRange;
    d->max_alloc = range & ~(uint64_t)(VK_ALIGN - 1);
    d->block_size = 256ull << 20;
    if (d->block_size > d->max_alloc) d->block_size = d->max_alloc;
    d->limit = d->fam->limit;
    return 0;
}

int vk_device_init(vk_device *d, char *why, size_t whylen) {
    vk_family *f = d->fam;
    f->fn.vkGetPhysicalDeviceProperties(d->phys, &d->props);
    f->fn.vkGetPhysicalDeviceMemoryProperties(d->phys, &d->memprops);
    snprintf(d->name, sizeof d->name, "vulkan:%d", d->index);
    snprintf(d->desc, sizeof d->desc, "%s", d->props.deviceName);
    d->has_budget = vk_has_ext(d, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME) && f->fn.vkGetPhysicalDeviceMemoryProperties2;
    d->has_feedback = f->api13 && d->props.apiVersion >= VK_API_VERSION_1_3;
    if (vk_pipeline_select(d, why, whylen) != 0) return -1;
    uint32_t nq = 0;
    f->fn.vkGetPhysicalDeviceQueueFamilyProperties(d->phys, &nq, NULL);
    VkQueueFamilyProperties qp[32];
    if (nq > 32) nq = 32;
    f->fn.vkGetPhysicalDeviceQueueFamilyProperties(d->phys, &nq, qp);
    int qf = -1;
    for (uint32_t i = 0; i < nq && qf < 0; i++)
        if (qp[i].queueFlags & VK_QUEUE_COMPUTE_BIT) qf = (int)i;
    if (qf < 0) {
        snprintf(why, whylen, "no compute queue");
        return -1;
    }
    d->qfamily = (uint32_t)qf;
    if (vk_choose_memory(d, why, whylen) != 0) return -1;
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = d->qfamily,
                                   .queueCount = 1, .pQueuePriorities = &prio};
    const char *exts[1];
    uint32_t next = 0;
    if (d->has_budget) exts[next++] = VK_EXT_MEMORY_BUDGET_EXTENSION_NAME;
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .queueCreateInfoCount = 1,
                              .pQueueCreateInfos = &qci, .enabledExtensionCount = next,
                              .ppEnabledExtensionNames = exts};
    VkResult r = f->fn.vkCreateDevice(d->phys, &dci, NULL, &d->dev);
    if (r != VK_SUCCESS) {
        d->dev = VK_NULL_HANDLE;
        snprintf(why, whylen, "vkCreateDevice failed (VkResult %d)", (int)r);
        return -1;
    }
    if (vkl_load_device(&f->fn, d->dev, &d->fn, why, whylen) != 0) return -1;
    d->fn.vkGetDeviceQueue(d->dev, d->qfamily, 0, &d->queue);
    d->generation++;
    d->lost = 0;
    d->used = 0;
    d->sd = (sdrt_device){.iface = &vk_device_iface, .context = d, .reg = &f->reg};
    d->bt = (sdrt_buffer_type){.iface = &vk_buffer_type_iface, .context = d, .device = &d->sd};
    if (vk_pipeline_init(d) != 0) {
        snprintf(why, whylen, "cannot create the pipeline layout");
        return -1;
    }
    if (vk_transfer_init(d) != 0) {
        snprintf(why, whylen, "cannot create the transfer context");
        return -1;
    }
    return 0;
}

void vk_device_fini(vk_device *d) {
    if (!d->dev) return;
    d->fn.vkDeviceWaitIdle(d->dev);
    for (vk_stream *s = d->streams; s; s = s->next) vk_stream_destroy_objects(s);
    vk_pipeline_cache_save(d);
    vk_transfer_fini(d);
    vk_pipeline_fini(d);
    vk_free_blocks(d);
    d->fn.vkDestroyDevice(d->dev, NULL);
    d->dev = VK_NULL_HANDLE;
}

/* ---- sdrt_device iface ------------------------------------------------------- */

static vk_device *dev_of(sdrt_device *sd) { return sd->context; }

static const char *vk_dev_name(sdrt_device *sd) { return dev_of(sd)->name; }
static const char *vk_dev_description(sdrt_device *sd) { return dev_of(sd)->desc; }

static sdrt_device_type vk_dev_type(sdrt_device *sd) {
    switch (dev_of(sd)->props.deviceType) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return SDRT_DEVICE_GPU;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return SDRT_DEVICE_IGPU;
    default: return SDRT_DEVICE_CPU;
    }
}

/* Heap figures: budget/usage per heap where VK_EXT_memory_budget exists. */
static void vk_heaps(vk_device *d, VkDeviceSize *budget, VkDeviceSize *usage) {
    memset(budget, 0, sizeof(VkDeviceSize) * VK_MAX_MEMORY_HEAPS);
    memset(usage, 0, sizeof(VkDeviceSize) * VK_MAX_MEMORY_HEAPS);
    if (!d->has_budget) return;
    VkPhysicalDeviceMemoryBudgetPropertiesEXT b = {.sType =
                                                       VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2,
                                            .pNext = &b};
    d->fam->fn.vkGetPhysicalDeviceMemoryProperties2(d->phys, &p2);
    memcpy(budget, b.heapBudget, sizeof b.heapBudget);
    memcpy(usage, b.heapUsage, sizeof b.heapUsage);
}

static void vk_dev_memory(sdrt_device *sd, size_t *free_bytes, size_t *total_bytes) {
    vk_device *d = dev_of(sd);
    uint32_t heap = d->memprops.memoryTypes[d->mem_type_local].heapIndex;
    VkDeviceSize budget[VK_MAX_MEMORY_HEAPS], usage[VK_MAX_MEMORY_HEAPS];
    vk_heaps(d, budget, usage);
    uint64_t total = d->memprops.memoryHeaps[heap].size;
    uint64_t avail = d->has_budget ? (budget[heap] > usage[heap] ? budget[heap] - usage[heap] : 0)
                                   : (total > d->used ? total - d->used : 0);
    if (d->limit) {
        if (total > d->limit) total = d->limit;
        uint64_t left = d->limit > d->used ? d->limit - d->used : 0;
        if (avail > left) avail = left;
    }
    if (free_bytes) *free_bytes = (size_t)avail;
    if (total_bytes) *total_bytes = (size_t)total;
}

static sdrt_buffer_type *vk_dev_buffer_type(sdrt_device *sd) { return &dev_of(sd)->bt; }

static sdrt_status vk_dev_stream_open(sdrt_device *sd, const char *params_json, sdrt_stream **out, char *msg,
                                      size_t msg_size) {
    vk_device *d = dev_of(sd);
    sdrt_precision prec;
    *out = NULL;
    sdrt_status st = vk_precision_resolve(d, params_json, &prec, msg, msg_size);
    if (st != SDRT_OK) return st;
    if (!d->dev || d->lost) {
        if (msg) snprintf(msg, msg_size, "%s: the device is lost (reset pending)", d->name);
        return SDRT_UNAVAILABLE;
    }
    *out = vk_stream_new(d);
    if (!*out) {
        if (msg) snprintf(msg, msg_size, "%s: cannot create a command pool, buffer or fence for a stream", d->name);
        return SDRT_RESOURCE_EXHAUSTED;
    }
    ((vk_stream *)(*out)->context)->precision = prec;
    return SDRT_OK;
}

static sdrt_stream *vk_dev_stream_new(sdrt_device *sd, const char *params_json) {
    sdrt_stream *s = NULL;
    vk_dev_stream_open(sd, params_json, &s, NULL, 0);
    return s;
}

static int vk_dev_supports_op(sdrt_device *sd, const sdrt_op *op) { return vk_supports_op(dev_of(sd), op); }

static const char *vk_dev_info_json(sdrt_device *sd) {
    vk_device *d = dev_of(sd);
    VkDeviceSize budget[VK_MAX_MEMORY_HEAPS], usage[VK_MAX_MEMORY_HEAPS];
    vk_heaps(d, budget, usage);
    char heaps[768] = "";
    size_t used = 0;
    for (uint32_t i = 0; i < d->memprops.memoryHeapCount && used < sizeof heaps; i++) {
        const VkMemoryHeap *h = &d->memprops.memoryHeaps[i];
        used += (size_t)snprintf(heaps + used, sizeof heaps - used,
                                 "%s{\"size\":%llu,\"device_local\":%s,\"budget\":%llu,\"usage\":%llu}",
                                 i ? "," : "", (unsigned long long)h->size,
                                 (h->flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) ? "true" : "false",
                                 (unsigned long long)budget[i], (unsigned long long)usage[i]);
    }
    uint32_t av = d->props.apiVersion;
    pthread_mutex_lock(&d->lock);
    snprintf(d->info, sizeof d->info,
             "{\"api_version\":\"%u.%u.%u\",\"driver_version\":%u,\"vendor_id\":%u,\"device_id\":%u,"
             "\"memory_budget_ext\":%s,\"heaps\":[%s],\"allocated_bytes\":%llu,\"memory_limit\":%llu,"
             "\"block_bytes\":%llu,\"max_buffer_bytes\":%llu,\"max_shared_memory\":%u,\"gemm\":\"%s\","
             "\"subgroups\":{\"size\":%u,\"operations\":%u,\"gemm\":%s,\"attention\":%s},"
             "\"command_buffers\":{\"recorded\":%llu,\"replayed\":%llu},"
             "\"pipeline_cache\":{\"path\":\"%s\",\"loaded_bytes\":%zu,\"hits\":%u,\"compiled\":%u}}",
             VK_API_VERSION_MAJOR(av), VK_API_VERSION_MINOR(av), VK_API_VERSION_PATCH(av), d->props.driverVersion,
             d->props.vendorID, d->props.deviceID, d->has_budget ? "true" : "false", heaps,
             (unsigned long long)d->used, (unsigned long long)d->limit, (unsigned long long)d->block_size,
             (unsigned long long)d->max_alloc, d->props.limits.maxComputeSharedMemorySize,
             d->cpu_like ? "direct" : "tiled", d->caps.sg_size, d->caps.sg_ops,
             d->choice.sg_gemm ? "true" : "false", d->choice.sg_attn ? "true" : "false",
             (unsigned long long)__atomic_load_n(&d->cb_recorded, __ATOMIC_RELAXED),
             (unsigned long long)__atomic_load_n(&d->cb_replayed, __ATOMIC_RELAXED), d->cache_path,
             d->cache_loaded, d->cache_hits, d->cache_misses);
    pthread_mutex_unlock(&d->lock);
    return d->info;
}

/* Tears the logical device down and makes it again: every buffer and
 * stream of the device is invalid afterwards (their generation is stale:
 * compute answers UNAVAILABLE, free only releases the host struct). */
static sdrt_status vk_dev_reset(sdrt_device *sd) {
    vk_device *d = dev_of(sd);
    vk_device_fini(d);
    char why[256] = "";
    if (vk_device_init(d, why, sizeof why) != 0) {
        vk_log(d->fam, SDRT_LOG_ERROR, "%s: reset failed: %s", d->name, why);
        d->lost = 1;
        return SDRT_UNAVAILABLE;
    }
    vk_log(d->fam, SDRT_LOG_WARN, "%s: device re-initialised (generation %u)", d->name, d->generation);
    return SDRT_OK;
}

/* The suballocator's count (changed under its lock; a racy read of one
 * word is what a metric needs). */
static uint64_t vk_dev_allocated(sdrt_device *sd) { return __atomic_load_n(&dev_of(sd)->used, __ATOMIC_RELAXED); }

const sdrt_device_iface vk_device_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_device_iface, stream_open),
    .name = vk_dev_name,
    .description = vk_dev_description,
    .type = vk_dev_type,
    .memory = vk_dev_memory,
    .buffer_type = vk_dev_buffer_type,
    .stream_new = vk_dev_stream_new,
    .supports_op = vk_dev_supports_op,
    .info_json = vk_dev_info_json,
    .host_buffer_type = NULL,
    .reset = vk_dev_reset,
    .allocated_bytes = vk_dev_allocated,
    .stream_open = vk_dev_stream_open,
};
