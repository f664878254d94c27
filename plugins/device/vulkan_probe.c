/* plugins/device/vulkan_probe.c - see vulkan_probe.h. The few Vulkan types
 * used are declared here with the layouts of the Vulkan 1.0 ABI. */
#include "vulkan_probe.h"

#include <stdio.h>
#include <string.h>

#include "dynlib.h"

typedef int32_t vk_result; /* VK_SUCCESS = 0 */
typedef void *vk_instance;
typedef void *vk_physical_device;
typedef void (*vk_void_fn)(void);

#if defined(_WIN32) && !defined(_WIN64)
#define VKCALL __stdcall
#else
#define VKCALL
#endif

typedef struct vk_application_info {
    int32_t s_type; /* VK_STRUCTURE_TYPE_APPLICATION_INFO = 0 */
    const void *next;
    const char *application_name;
    uint32_t application_version;
    const char *engine_name;
    uint32_t engine_version;
    uint32_t api_version;
} vk_application_info;

typedef struct vk_instance_create_info {
    int32_t s_type; /* VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO = 1 */
    const void *next;
    uint32_t flags;
    const vk_application_info *application_info;
    uint32_t layer_count;
    const char *const *layers;
    uint32_t extension_count;
    const char *const *extensions;
} vk_instance_create_info;

/* VkPhysicalDeviceProperties: the members read here, then padding past the
 * real size (824 bytes) so the driver may write the whole struct. */
typedef union vk_device_properties {
    struct {
        uint32_t api_version;
        uint32_t driver_version;
        uint32_t vendor_id;
        uint32_t device_id;
        int32_t device_type;
        char device_name[256];
    } head;
    uint64_t raw[512];
} vk_device_properties;

typedef struct vk_memory_type {
    uint32_t property_flags;
    uint32_t heap_index;
} vk_memory_type;

typedef struct vk_memory_heap {
    uint64_t size;
    uint32_t flags; /* VK_MEMORY_HEAP_DEVICE_LOCAL_BIT = 1 */
} vk_memory_heap;

typedef struct vk_memory_properties {
    uint32_t type_count;
    vk_memory_type types[32];
    uint32_t heap_count;
    vk_memory_heap heaps[16];
} vk_memory_properties;

typedef vk_void_fn(VKCALL *pfn_get_proc)(vk_instance, const char *);
typedef vk_result(VKCALL *pfn_create_instance)(const vk_instance_create_info *, const void *, vk_instance *);
typedef vk_result(VKCALL *pfn_instance_version)(uint32_t *);
typedef void(VKCALL *pfn_destroy_instance)(vk_instance, const void *);
typedef vk_result(VKCALL *pfn_enum_devices)(vk_instance, uint32_t *, vk_physical_device *);
typedef void(VKCALL *pfn_properties)(vk_physical_device, vk_device_properties *);
typedef void(VKCALL *pfn_memory_properties)(vk_physical_device, vk_memory_properties *);

#ifdef _WIN32
static const char *const LOADER_NAMES[] = {"vulkan-1.dll", NULL};
#else
static const char *const LOADER_NAMES[] = {"libvulkan.so.1", "libvulkan.so", NULL};
#endif

#define VK_API(major, minor) (((uint32_t)(major) << 22) | ((uint32_t)(minor) << 12))

void vkprobe_version_text(uint32_t v, char *out, unsigned outlen) {
    snprintf(out, outlen, "%u.%u.%u", (v >> 22) & 0x7fu, (v >> 12) & 0x3ffu, v & 0xfffu);
}

static const char *type_name(int32_t t) {
    switch (t) {
    case 1: return "integrated";
    case 2: return "discrete";
    case 3: return "virtual";
    case 4: return "cpu";
    default: return "other";
    }
}

static void describe(vk_physical_device pd, pfn_properties props, pfn_memory_properties mprops, vkprobe_device *d) {
    vk_device_properties p;
    vk_memory_properties m;
    memset(&p, 0, sizeof p);
    memset(&m, 0, sizeof m);
    props(pd, &p);
    mprops(pd, &m);
    memset(d, 0, sizeof *d);
    memcpy(d->name, p.head.device_name, sizeof d->name - 1);
    d->type = type_name(p.head.device_type);
    d->api_version = p.head.api_version;
    d->driver_version = p.head.driver_version;
    d->vendor_id = p.head.vendor_id;
    d->device_id = p.head.device_id;
    d->nheaps = m.heap_count > VKPROBE_MAX_HEAPS ? VKPROBE_MAX_HEAPS : (int)m.heap_count;
    for (int i = 0; i < d->nheaps; i++) {
        d->heaps[i].size = m.heaps[i].size;
        d->heaps[i].device_local = (m.heaps[i].flags & 1u) != 0;
        if (d->heaps[i].device_local) d->device_local_bytes += m.heaps[i].size;
    }
}

static vk_instance create_instance(pfn_get_proc gpa, vkprobe_report *r) {
    pfn_instance_version version = (pfn_instance_version)gpa(NULL, "vkEnumerateInstanceVersion");
    r->instance_version = VK_API(1, 0);
    if (version) version(&r->instance_version);
    pfn_create_instance create = (pfn_create_instance)gpa(NULL, "vkCreateInstance");
    if (!create) {
        snprintf(r->reason, sizeof r->reason, "%s has no vkCreateInstance", r->loader_lib);
        return NULL;
    }
    vk_application_info app = {0, NULL, "sdrt device probe", 1, "sdrt", 1,
                               r->instance_version >= VK_API(1, 1) ? VK_API(1, 1) : VK_API(1, 0)};
    vk_instance_create_info info = {1, NULL, 0, &app, 0, NULL, 0, NULL};
    vk_instance inst = NULL;
    vk_result rc = create(&info, NULL, &inst);
    if (rc != 0) {
        snprintf(r->reason, sizeof r->reason, "vkCreateInstance failed (VkResult %d): no Vulkan driver installed?",
                 (int)rc);
        return NULL;
    }
    return inst;
}

static void enumerate(pfn_get_proc gpa, vk_instance inst, vkprobe_report *r) {
    pfn_enum_devices enum_devices = (pfn_enum_devices)gpa(inst, "vkEnumeratePhysicalDevices");
    pfn_properties props = (pfn_properties)gpa(inst, "vkGetPhysicalDeviceProperties");
    pfn_memory_properties mprops = (pfn_memory_properties)gpa(inst, "vkGetPhysicalDeviceMemoryProperties");
    if (!enum_devices || !props || !mprops) {
        snprintf(r->reason, sizeof r->reason, "the Vulkan loader lacks core 1.0 entry points");
        return;
    }
    vk_physical_device devs[VKPROBE_MAX_DEVICES];
    uint32_t n = VKPROBE_MAX_DEVICES;
    vk_result rc = enum_devices(inst, &n, devs);
    if (rc < 0 || n == 0) {
        snprintf(r->reason, sizeof r->reason, "no Vulkan physical devices (VkResult %d)", (int)rc);
        return;
    }
    r->count = (int)n;
    for (uint32_t i = 0; i < n; i++) describe(devs[i], props, mprops, &r->dev[i]);
    r->available = 1;
}

void vkprobe_run(const char *const *loader_names, vkprobe_report *r) {
    memset(r, 0, sizeof *r);
    const char *which = NULL;
    char why[200] = "";
    devlib *lib = devlib_open(loader_names ? loader_names : LOADER_NAMES, &which, why, sizeof why);
    if (!lib) {
        snprintf(r->reason, sizeof r->reason, "Vulkan loader not found: %s", why);
        return;
    }
    snprintf(r->loader_lib, sizeof r->loader_lib, "%s", which);
    pfn_get_proc gpa = (pfn_get_proc)devlib_sym(lib, "vkGetInstanceProcAddr");
    if (!gpa) {
        snprintf(r->reason, sizeof r->reason, "%s has no vkGetInstanceProcAddr", which);
        return;
    }
    vk_instance inst = create_instance(gpa, r);
    if (!inst) return;
    enumerate(gpa, inst, r);
    pfn_destroy_instance destroy = (pfn_destroy_instance)gpa(inst, "vkDestroyInstance");
    if (destroy) destroy(inst, NULL);
}
