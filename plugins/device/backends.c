/* plugins/device/backends.c - see backends.h. */
#define _POSIX_C_SOURCE 200809L
#include "backends.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>
#define BACKEND_SUFFIX ".dll"
#elif defined(__APPLE__)
#include <dirent.h>
#define BACKEND_SUFFIX ".dylib"
#else
#include <dirent.h>
#define BACKEND_SUFFIX ".so"
#endif

#define BACKEND_PREFIX "sdrt_backend_"

int devbackends_match(const char *file, char *family, size_t familylen) {
    size_t n = strlen(file), pre = strlen(BACKEND_PREFIX), suf = strlen(BACKEND_SUFFIX);
    if (n <= pre + suf || strncmp(file, BACKEND_PREFIX, pre) != 0 || strcmp(file + n - suf, BACKEND_SUFFIX) != 0)
        return 0;
    size_t flen = n - pre - suf;
    if (flen >= familylen) return 0;
    memcpy(family, file + pre, flen);
    family[flen] = 0;
    return 1;
}

static int cmp_names(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

typedef char module_name[256];

/* Up to `max` module file names in dir, sorted. Returns the count, or -1
 * when the folder cannot be read. */
static int list_modules(const char *dir, module_name *names, int max) {
    int n = 0;
    char family[32];
#ifdef _WIN32
    char pattern[4200];
    snprintf(pattern, sizeof pattern, "%s\\" BACKEND_PREFIX "*" BACKEND_SUFFIX, dir);
    WIN32_FIND_DATAA fd;
    HANDLE h = FindFirstFileA(pattern, &fd);
    if (h == INVALID_HANDLE_VALUE) return -1;
    do {
        if (n < max && devbackends_match(fd.cFileName, family, sizeof family))
            snprintf(names[n++], sizeof names[0], "%s", fd.cFileName);
    } while (FindNextFileA(h, &fd));
    FindClose(h);
#else
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (n < max && devbackends_match(e->d_name, family, sizeof family))
            snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    closedir(d);
#endif
    qsort(names, (size_t)n, sizeof names[0], cmp_names);
    return n;
}

static int reg_usable(const sdrt_backend_reg *reg, char *why, size_t whylen) {
    if (reg->abi_major != SDRT_ABI_MAJOR) {
        snprintf(why, whylen, "ABI %u.%u, host %d.%d: major differs", reg->abi_major, reg->abi_minor,
                 SDRT_ABI_MAJOR, SDRT_ABI_MINOR);
        return 0;
    }
    if (reg->abi_minor > SDRT_ABI_MINOR) {
        snprintf(why, whylen, "needs ABI minor %u, host has %d", reg->abi_minor, SDRT_ABI_MINOR);
        return 0;
    }
    if (!reg->iface || !reg->iface->name || !reg->iface->device_count || !reg->iface->device_get) {
        snprintf(why, whylen, "registry vtable lacks name/device_count/device_get");
        return 0;
    }
    return 1;
}

/* Loads one module; fills *out and returns 0, or logs why and returns -1. */
static int load_one(const char *dir, const char *file, const sdrt_host_api *api, sdrt_host *host,
                    const devcfg *cfg, devbackend *out) {
    memset(out, 0, sizeof *out);
    devbackends_match(file, out->family, sizeof out->family);
    snprintf(out->path, sizeof out->path, "%s/%s", dir, file);
    char why[512] = "";
    out->lib = devlib_open_path(out->path, why, sizeof why);
    if (!out->lib) {
        api->log(host, SDRT_LOG_WARN, "backend %s skipped: cannot load %s: %s", out->family, out->path, why);
        return -1;
    }
    sdrt_backend_entry_fn entry = (sdrt_backend_entry_fn)devlib_sym(out->lib, SDRT_BACKEND_ENTRY_SYMBOL);
    char *conf = entry ? devcfg_family_json(cfg, out->family) : NULL;
    out->reg = entry ? entry(api, conf ? conf : "{}") : NULL;
    free(conf);
    if (!entry || !out->reg) {
        api->log(host, SDRT_LOG_INFO, "backend %s skipped: %s", out->family,
                 entry ? "its runtime is not available (the entry returned NULL)"
                       : "no " SDRT_BACKEND_ENTRY_SYMBOL " symbol");
        devlib_close(out->lib);
        return -1;
    }
    if (!reg_usable(out->reg, why, sizeof why)) {
        api->log(host, SDRT_LOG_WARN, "backend %s skipped: %s", out->family, why);
        /* never unload a module whose state we cannot release */
        return -1;
    }
    return 0;
}

int devbackends_load(devbackends *b, const char *dir, const sdrt_host_api *api, sdrt_host *host,
                     const devcfg *cfg) {
    memset(b, 0, sizeof *b);
    module_name names[DEVBACKENDS_MAX];
    int n = list_modules(dir, names, DEVBACKENDS_MAX);
    if (n < 0) {
        api->log(host, SDRT_LOG_WARN, "no compute backends: cannot read backends_dir %s", dir);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        if (load_one(dir, names[i], api, host, cfg, &b->items[b->count]) != 0) continue;
        devbackend *fam = &b->items[b->count++];
        api->log(host, SDRT_LOG_INFO, "backend %s: %lu device(s) from %s", fam->family,
                 (unsigned long)fam->reg->iface->device_count(fam->reg), fam->path);
    }
    if (b->count == 0) api->log(host, SDRT_LOG_WARN, "no compute backend loaded from %s", dir);
    return b->count;
}

int devbackends_load_file(devbackends *b, const char *path, const sdrt_host_api *api, sdrt_host *host,
                          const devcfg *cfg) {
    const char *slash = strrchr(path, '/');
#ifdef _WIN32
    const char *bslash = strrchr(path, '\\');
    if (bslash && (!slash || bslash > slash)) slash = bslash;
#endif
    char dir[4096], family[32];
    const char *file = slash ? slash + 1 : path;
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    if (!devbackends_match(file, family, sizeof family)) {
        api->log(host, SDRT_LOG_WARN, "backend %s skipped: the file name is not sdrt_backend_<family>" BACKEND_SUFFIX,
                 path);
        return -1;
    }
    if (devbackends_find(b, family)) {
        api->log(host, SDRT_LOG_WARN, "backend %s skipped: family %s is already loaded", path, family);
        return -1;
    }
    if (b->count >= DEVBACKENDS_MAX) {
        api->log(host, SDRT_LOG_WARN, "backend %s skipped: more than %d families", path, DEVBACKENDS_MAX);
        return -1;
    }
    if (load_one(dir, file, api, host, cfg, &b->items[b->count]) != 0) return -1;
    devbackend *fam = &b->items[b->count++];
    api->log(host, SDRT_LOG_INFO, "backend %s: %lu device(s) from %s", fam->family,
             (unsigned long)fam->reg->iface->device_count(fam->reg), fam->path);
    return 0;
}

void devbackends_unload(devbackends *b) {
    for (int i = 0; i < b->count; i++) {
        devbackend *fam = &b->items[i];
        if (fam->reg->iface->unload) {
            fam->reg->iface->unload(fam->reg);
            devlib_close(fam->lib);
        }
        /* without unload the family may still own threads: keep it mapped */
    }
    b->count = 0;
}

const devbackend *devbackends_find(const devbackends *b, const char *name) {
    for (int i = 0; i < b->count; i++)
        if (strcmp(b->items[i].family, name) == 0) return &b->items[i];
    return NULL;
}

sdrt_device *devbackends_device(const devbackends *b, const char *name, size_t index) {
    const devbackend *fam = devbackends_find(b, name);
    if (!fam || index >= fam->reg->iface->device_count(fam->reg)) return NULL;
    return fam->reg->iface->device_get(fam->reg, index);
}
