/* plugins/device/inventory.c - see inventory.h. Backend devices are paired
 * with probed devices by ordinal: the CUDA backend and the probe both use
 * CUDA ordinals, the Vulkan backend enumerates physical devices in loader
 * order like the probe. */
#include "inventory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dev_record *add(dev_inventory *inv, const char *backend, int index) {
    if (inv->count >= DEVINV_MAX) return NULL;
    dev_record *r = &inv->rec[inv->count++];
    memset(r, 0, sizeof *r);
    snprintf(r->backend, sizeof r->backend, "%s", backend);
    snprintf(r->id, sizeof r->id, "%s:%d", backend, index);
    r->index = index;
    r->probe = index;
    r->compute = devbackends_device(&inv->backends, backend, (size_t)index);
    return r;
}

static const char *vk_type(const char *probe_type) {
    if (strcmp(probe_type, "discrete") == 0) return "gpu";
    if (strcmp(probe_type, "integrated") == 0) return "igpu";
    return probe_type; /* "cpu", "virtual", "other" */
}

static const char *backend_type(sdrt_device *dev) {
    switch (dev->iface->type ? dev->iface->type(dev) : SDRT_DEVICE_CPU) {
    case SDRT_DEVICE_GPU: return "gpu";
    case SDRT_DEVICE_IGPU: return "igpu";
    default: return "cpu";
    }
}

static int has_record(const dev_inventory *inv, const char *backend, int index) {
    for (int i = 0; i < inv->count; i++)
        if (strcmp(inv->rec[i].backend, backend) == 0 && inv->rec[i].index == index) return 1;
    return 0;
}

/* Devices a backend serves that no probe saw (e.g. a backend with its own
 * driver path): listed from what the backend says about them. */
static void add_backend_only(dev_inventory *inv) {
    for (int b = 0; b < inv->backends.count; b++) {
        const devbackend *fam = &inv->backends.items[b];
        size_t n = fam->reg->iface->device_count(fam->reg);
        for (size_t i = 0; i < n && i < 16; i++) {
            if (has_record(inv, fam->family, (int)i)) continue;
            dev_record *r = add(inv, fam->family, (int)i);
            if (!r || !r->compute) continue;
            const char *desc = r->compute->iface->description ? r->compute->iface->description(r->compute) : NULL;
            snprintf(r->name, sizeof r->name, "%s", desc ? desc : r->compute->iface->name(r->compute));
            r->type = backend_type(r->compute);
            r->probe = -1;
        }
    }
}

void devinv_build(dev_inventory *inv) {
    inv->count = 0;
    dev_record *cpu = add(inv, "cpu", 0);
    snprintf(cpu->name, sizeof cpu->name, "%s", inv->cpu.model);
    cpu->type = "cpu";
    for (int i = 0; i < inv->cuda.count; i++) {
        dev_record *r = add(inv, "cuda", i);
        if (!r) break;
        snprintf(r->name, sizeof r->name, "%s", inv->cuda.dev[i].name);
        r->type = "gpu";
    }
    for (int i = 0; i < inv->vk.count; i++) {
        dev_record *r = add(inv, "vulkan", i);
        if (!r) break;
        snprintf(r->name, sizeof r->name, "%s", inv->vk.dev[i].name);
        r->type = vk_type(inv->vk.dev[i].type);
    }
    add_backend_only(inv);
    inv->default_rec = -1;
    inv->default_device = NULL;
}

const dev_record *devinv_find(const dev_inventory *inv, const char *id) {
    if (!id) return NULL;
    char full[40];
    snprintf(full, sizeof full, "%s%s", id, strchr(id, ':') ? "" : ":0");
    for (int i = 0; i < inv->count; i++)
        if (strcmp(inv->rec[i].id, full) == 0) return &inv->rec[i];
    return NULL;
}

static int first_compute(const dev_inventory *inv, const char *backend, int gpu_only) {
    for (int i = 0; i < inv->count; i++) {
        const dev_record *r = &inv->rec[i];
        if (!r->compute || (backend && strcmp(r->backend, backend) != 0)) continue;
        if (gpu_only && strcmp(r->type, "gpu") != 0 && strcmp(r->type, "igpu") != 0) continue;
        return i;
    }
    return -1;
}

/* The first Vulkan compute device of `type` ("gpu" = discrete, "igpu"). */
static int first_vulkan_of(const dev_inventory *inv, const char *type) {
    for (int i = 0; i < inv->count; i++) {
        const dev_record *r = &inv->rec[i];
        if (r->compute && strcmp(r->backend, "vulkan") == 0 && strcmp(r->type, type) == 0) return i;
    }
    return -1;
}

/* auto: a CUDA GPU, then a discrete Vulkan GPU, then an integrated one,
 * then the CPU backend; a CPU-type Vulkan device (lavapipe) never beats
 * the native CPU backend. */
static int choose_auto(const dev_inventory *inv) {
    int i = first_compute(inv, "cuda", 0);
    if (i < 0) i = first_vulkan_of(inv, "gpu");
    if (i < 0) i = first_vulkan_of(inv, "igpu");
    if (i < 0) i = first_compute(inv, "cpu", 0);
    if (i < 0) i = first_compute(inv, NULL, 0);
    return i;
}

/* DirectML's "privateuseone:N" (torch-directml) was the Nth adapter: the Nth
 * Vulkan device in loader order that has compute, GPUs first as DirectML
 * lists them (discrete, integrated, then the rest). -1 when there is none. */
static int map_privateuseone(const dev_inventory *inv, long n) {
    static const char *const order[] = {"gpu", "igpu", NULL};
    int seen = 0;
    for (int pass = 0; pass < 3; pass++)
        for (int i = 0; i < inv->count; i++) {
            const dev_record *r = &inv->rec[i];
            if (!r->compute || strcmp(r->backend, "vulkan") != 0) continue;
            int is_gpu = strcmp(r->type, "gpu") == 0 || strcmp(r->type, "igpu") == 0;
            if (pass < 2 ? strcmp(r->type, order[pass]) != 0 : is_gpu) continue;
            if (seen++ == n) return i;
        }
    return -1;
}

void devinv_choose_default(dev_inventory *inv, const char *choice, char *warn, size_t warnlen) {
    if (warn && warnlen) warn[0] = 0;
    int i = -1;
    if (strcmp(choice, "auto") == 0) {
        i = choose_auto(inv);
    } else if (strncmp(choice, "privateuseone:", 14) == 0) {
        long n = strtol(choice + 14, NULL, 10);
        i = map_privateuseone(inv, n);
        if (i >= 0) {
            snprintf(warn, warnlen, "device \"%s\" is DirectML's id: mapped to %s (%s)", choice, inv->rec[i].id,
                     inv->rec[i].name);
        } else {
            i = first_compute(inv, "cpu", 0);
            if (i < 0) i = first_compute(inv, NULL, 0);
            snprintf(warn, warnlen, "device \"%s\" (DirectML) has no Vulkan GPU to map to; using %s", choice,
                     i >= 0 ? inv->rec[i].id : "none");
        }
    } else {
        const dev_record *r = devinv_find(inv, choice);
        if (r && r->compute) {
            i = (int)(r - inv->rec);
        } else {
            i = first_compute(inv, "cpu", 0);
            if (i < 0) i = first_compute(inv, NULL, 0);
            snprintf(warn, warnlen, "device \"%s\" has no compute backend; using %s", choice,
                     i >= 0 ? inv->rec[i].id : "none");
        }
    }
    inv->default_rec = i;
    inv->default_device = i >= 0 ? inv->rec[i].compute : NULL;
}
