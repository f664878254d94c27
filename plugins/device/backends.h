/* plugins/device/backends.h - loading compute backend families
 * (sdrt_backend_<family>.so) from a folder. A family whose module is
 * missing, does not load, lacks the entry symbol, returns NULL (its runtime
 * is missing) or has an incompatible ABI is logged and skipped: the host
 * must start on a machine with no GPU stack at all. */
#ifndef SDRT_DEVICE_BACKENDS_H
#define SDRT_DEVICE_BACKENDS_H

#include "sdrt/backend.h"

#include "config.h"
#include "dynlib.h"

#define DEVBACKENDS_MAX 8

typedef struct devbackend {
    char family[32]; /* from the file name: sdrt_backend_<family>.so */
    char path[4096];
    devlib *lib;
    sdrt_backend_reg *reg;
} devbackend;

typedef struct devbackends {
    devbackend items[DEVBACKENDS_MAX];
    int count;
} devbackends;

/* Loads every family module in `dir`, in name order. `api` and `host` are
 * used for logging and passed to each entry. Returns the number loaded
 * (0 is not an error). */
int devbackends_load(devbackends *b, const char *dir, const sdrt_host_api *api, sdrt_host *host,
                     const devcfg *cfg);

/* Loads one more family module from `path` (a file named
 * sdrt_backend_<family>.so, e.g. a test-only family) into an already
 * loaded set. A family already present, a full set or a module that does
 * not load is logged and skipped. Returns 0 when loaded, else -1. */
int devbackends_load_file(devbackends *b, const char *path, const sdrt_host_api *api, sdrt_host *host,
                          const devcfg *cfg);

/* Releases every family (reg->iface->unload) and closes modules that could
 * be unloaded. */
void devbackends_unload(devbackends *b);

/* The loaded family `name` ("cpu"), or NULL. */
const devbackend *devbackends_find(const devbackends *b, const char *name);

/* Device `index` of family `name`, or NULL. */
sdrt_device *devbackends_device(const devbackends *b, const char *name, size_t index);

/* Non-zero if `file` names a family module for this platform; stores the
 * family name in family[familylen]. */
int devbackends_match(const char *file, char *family, size_t familylen);

#endif
