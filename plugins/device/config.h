/* plugins/device/config.h - the device plugin's config object:
 *   {"backends_dir": "...",          where sdrt_backend_*.so live
 *                                    (default: ../backends beside this .so)
 *    "device": "auto"|"cpu"|"cuda:0"|"vulkan:0",   the default compute device
 *                                    (else the host's top-level "device")
 *    "threads": N,                   compute threads (0 = backend default)
 *    "backends": {"cpu": {...}, ...},  per-family config passed to
 *                                    sdrt_backend_entry ("threads" added
 *                                    when the family's own has none)
 *    "extra_backends": ["/path/sdrt_backend_strict.so", ...]}
 *                                    family modules outside backends_dir,
 *                                    loaded after it (test-only families
 *                                    such as the strict device; default
 *                                    none, so production loads only
 *                                    backends_dir) */
#ifndef SDRT_DEVICE_CONFIG_H
#define SDRT_DEVICE_CONFIG_H

#include <stddef.h>

#include <cjson/cJSON.h>

#define DEVCFG_MAX_EXTRA 4

typedef struct devcfg {
    char backends_dir[4096];
    char extra_backends[DEVCFG_MAX_EXTRA][4096];
    int extra_count;
    char device[64];
    /* where device came from: "default" ("auto"), "config" (the plugin's
     * "device") or "host" (the top-level "device") */
    const char *device_source;
    char host_device[64]; /* the top-level "device", "" when none */
    int threads;
    cJSON *backends; /* owned; NULL when absent */
} devcfg;

/* Parses `json` (NULL or "" = {}) into *cfg. `self_dir` is the plugin's own
 * folder for the backends_dir default. Returns 0, or -1 with a message
 * naming the field and the reason. */
int devcfg_parse(devcfg *cfg, const char *json, const char *self_dir, char *err, size_t errlen);

/* After devcfg_parse: `host_device` (may be NULL: nothing to do) is the
 * host config's top-level "device" (`sdrt serve --set device=vulkan:0`),
 * used when the plugin's config named none: the plugin's own key wins
 * (device_source says which applied). Returns 0, or -1 with a message
 * when the value is not a device id. */
int devcfg_host_device(devcfg *cfg, const char *host_device, char *err, size_t errlen);

/* The config text for family `name` (malloc'd, caller frees). */
char *devcfg_family_json(const devcfg *cfg, const char *name);

void devcfg_free(devcfg *cfg);

#endif
