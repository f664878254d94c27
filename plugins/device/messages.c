/* plugins/device/messages.c - see messages.h. Sizes are bytes; an unknown
 * free size is null rather than a guess. */
#include "messages.h"

#include <stdio.h>
#include <string.h>

typedef struct mem_figures {
    double total, free;
    int free_known;
} mem_figures;

static mem_figures record_memory(const dev_inventory *inv, const dev_record *r, const cudaprobe_report *cuda) {
    mem_figures m = {0, 0, 0};
    if (r->compute && r->compute->iface->memory) {
        size_t fre = 0, total = 0;
        r->compute->iface->memory(r->compute, &fre, &total);
        m.total = (double)total;
        m.free = (double)fre;
        m.free_known = 1;
    } else if (strcmp(r->backend, "cpu") == 0) {
        uint64_t total = inv->cpu.mem_total, avail = inv->cpu.mem_available;
        cpuprobe_memory(&total, &avail);
        m.total = (double)total;
        m.free = (double)avail;
        m.free_known = 1;
    } else if (strcmp(r->backend, "cuda") == 0 && r->probe >= 0) {
        m.total = (double)cuda->dev[r->probe].mem_total;
        m.free = (double)cuda->dev[r->probe].mem_free;
        m.free_known = cuda->dev[r->probe].mem_free_known;
    } else if (strcmp(r->backend, "vulkan") == 0 && r->probe >= 0) {
        const vkprobe_device *d = &inv->vk.dev[r->probe];
        /* lavapipe and other host-memory devices have no device-local heap */
        m.total = (double)(d->device_local_bytes ? d->device_local_bytes : (d->nheaps ? d->heaps[0].size : 0));
    }
    return m;
}

static void add_memory(cJSON *o, mem_figures m) {
    cJSON_AddNumberToObject(o, "memory_total", m.total);
    if (m.free_known) cJSON_AddNumberToObject(o, "memory_free", m.free);
    else cJSON_AddNullToObject(o, "memory_free");
}

static cJSON *features_of(const dev_inventory *inv, const dev_record *r) {
    cJSON *a = cJSON_CreateArray();
    if (strcmp(r->backend, "cpu") == 0 && r->index == 0) {
        for (int i = 0; i < inv->cpu.nfeatures; i++) cJSON_AddItemToArray(a, cJSON_CreateString(inv->cpu.features[i]));
    } else if (strcmp(r->backend, "cuda") == 0 && r->probe >= 0) {
        const cudaprobe_device *d = &inv->cuda.dev[r->probe];
        int cc = d->cc_major * 10 + d->cc_minor;
        if (cc >= 53) cJSON_AddItemToArray(a, cJSON_CreateString("fp16"));
        if (cc >= 70) cJSON_AddItemToArray(a, cJSON_CreateString("tensor_cores"));
        if (cc >= 80) cJSON_AddItemToArray(a, cJSON_CreateString("bf16"));
        if (cc >= 89) cJSON_AddItemToArray(a, cJSON_CreateString("fp8"));
    }
    return a;
}

static cJSON *device_summary(const dev_inventory *inv, const dev_record *r, const cudaprobe_report *cuda) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "backend", r->backend);
    cJSON_AddStringToObject(o, "name", r->name);
    cJSON_AddStringToObject(o, "type", r->type ? r->type : "other");
    add_memory(o, record_memory(inv, r, cuda));
    cJSON_AddItemToObject(o, "features", features_of(inv, r));
    cJSON_AddBoolToObject(o, "compute", r->compute != NULL);
    cJSON_AddBoolToObject(o, "default", inv->default_rec >= 0 && &inv->rec[inv->default_rec] == r);
    return o;
}

static cJSON *runtime_status(int available, const char *reason, const dev_inventory *inv, const char *family) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "available", available);
    if (!available) cJSON_AddStringToObject(o, "reason", reason);
    cJSON_AddBoolToObject(o, "compute", devbackends_find(&inv->backends, family) != NULL);
    return o;
}

static void version_text(int v, char *out, size_t n) { snprintf(out, n, "%d.%d", v / 1000, (v % 1000) / 10); }

static cJSON *backends_status(const dev_inventory *inv) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddItemToObject(b, "cpu", runtime_status(1, "", inv, "cpu"));
    cJSON *cuda = runtime_status(inv->cuda.available, inv->cuda.reason, inv, "cuda");
    char v[32];
    if (inv->cuda.driver_version) {
        version_text(inv->cuda.driver_version, v, sizeof v);
        cJSON_AddStringToObject(cuda, "driver_version", v);
    }
    if (inv->cuda.runtime_version) {
        version_text(inv->cuda.runtime_version, v, sizeof v);
        cJSON_AddStringToObject(cuda, "runtime_version", v);
    }
    cJSON_AddItemToObject(b, "cuda", cuda);
    cJSON *vk = runtime_status(inv->vk.available, inv->vk.reason, inv, "vulkan");
    if (inv->vk.loader_lib[0]) {
        vkprobe_version_text(inv->vk.instance_version, v, sizeof v);
        cJSON_AddStringToObject(vk, "instance_version", v);
    }
    cJSON_AddItemToObject(b, "vulkan", vk);
    return b;
}

static cJSON *compute_backends(const dev_inventory *inv) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < inv->backends.count; i++) {
        const devbackend *fam = &inv->backends.items[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", fam->family);
        cJSON_AddStringToObject(o, "path", fam->path);
        cJSON_AddNumberToObject(o, "devices", (double)fam->reg->iface->device_count(fam->reg));
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

cJSON *devmsg_list(const dev_inventory *inv) {
    cJSON *root = cJSON_CreateObject();
    cJSON *devs = cJSON_AddArrayToObject(root, "devices");
    for (int i = 0; i < inv->count; i++) cJSON_AddItemToArray(devs, device_summary(inv, &inv->rec[i], &inv->cuda));
    cJSON_AddItemToObject(root, "backends", backends_status(inv));
    cJSON_AddItemToObject(root, "compute_backends", compute_backends(inv));
    if (inv->default_rec >= 0) cJSON_AddStringToObject(root, "default_device", inv->rec[inv->default_rec].id);
    else cJSON_AddNullToObject(root, "default_device");
    return root;
}

static void cpu_details(const dev_inventory *inv, cJSON *o) {
    cJSON_AddStringToObject(o, "arch", inv->cpu.arch);
    cJSON_AddStringToObject(o, "vendor", inv->cpu.vendor);
    cJSON_AddNumberToObject(o, "cores", inv->cpu.cores);
    cJSON_AddNumberToObject(o, "threads", inv->cpu.threads);
    cJSON_AddNumberToObject(o, "threads_available", inv->cpu.threads_available);
}

static void cuda_details(const cudaprobe_device *d, cJSON *o) {
    char cc[16];
    snprintf(cc, sizeof cc, "%d.%d", d->cc_major, d->cc_minor);
    cJSON_AddStringToObject(o, "compute_capability", cc);
    cJSON_AddNumberToObject(o, "multiprocessors", d->multiprocessors);
    cJSON_AddStringToObject(o, "pci_bus_id", d->pci_bus_id);
}

static void vulkan_details(const vkprobe_device *d, cJSON *o) {
    char v[32];
    vkprobe_version_text(d->api_version, v, sizeof v);
    cJSON_AddStringToObject(o, "api_version", v);
    cJSON_AddNumberToObject(o, "driver_version", d->driver_version);
    cJSON_AddNumberToObject(o, "vendor_id", d->vendor_id);
    cJSON_AddNumberToObject(o, "device_id", d->device_id);
    cJSON_AddStringToObject(o, "vulkan_type", d->type);
    cJSON *heaps = cJSON_AddArrayToObject(o, "heaps");
    for (int i = 0; i < d->nheaps; i++) {
        cJSON *h = cJSON_CreateObject();
        cJSON_AddNumberToObject(h, "size", (double)d->heaps[i].size);
        cJSON_AddBoolToObject(h, "device_local", d->heaps[i].device_local);
        cJSON_AddItemToArray(heaps, h);
    }
}

static void backend_details(const dev_record *r, cJSON *o) {
    if (!r->compute) return;
    sdrt_device *d = r->compute;
    cJSON *b = cJSON_AddObjectToObject(o, "backend_device");
    cJSON_AddStringToObject(b, "name", d->iface->name(d));
    if (d->iface->description) cJSON_AddStringToObject(b, "description", d->iface->description(d));
    const char *info = d->iface->info_json ? d->iface->info_json(d) : NULL;
    cJSON *parsed = info ? cJSON_Parse(info) : NULL;
    if (parsed) cJSON_AddItemToObject(b, "info", parsed);
}

cJSON *devmsg_info(const dev_inventory *inv, const dev_record *r) {
    cJSON *o = device_summary(inv, r, &inv->cuda);
    if (strcmp(r->backend, "cpu") == 0 && r->index == 0) cpu_details(inv, o);
    if (strcmp(r->backend, "cuda") == 0 && r->probe >= 0) cuda_details(&inv->cuda.dev[r->probe], o);
    if (strcmp(r->backend, "vulkan") == 0 && r->probe >= 0) vulkan_details(&inv->vk.dev[r->probe], o);
    backend_details(r, o);
    return o;
}

cJSON *devmsg_memory(const dev_inventory *inv, const dev_record *only, const cudaprobe_report *cuda) {
    if (!cuda) cuda = &inv->cuda;
    cJSON *root = cJSON_CreateObject();
    cJSON *devs = cJSON_AddArrayToObject(root, "devices");
    for (int i = 0; i < inv->count; i++) {
        const dev_record *r = &inv->rec[i];
        if (only && only != r) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", r->id);
        add_memory(o, record_memory(inv, r, cuda));
        cJSON_AddItemToArray(devs, o);
    }
    return root;
}
