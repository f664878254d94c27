/* plugins/device/config.c - see config.h. */
#include "config.h"

#include "backends.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether family `name` (n bytes) is one of the extra_backends modules. */
static int extra_family(const devcfg *cfg, const char *name, size_t n) {
    for (int i = 0; i < cfg->extra_count; i++) {
        const char *file = strrchr(cfg->extra_backends[i], '/');
        file = file ? file + 1 : cfg->extra_backends[i];
        char family[32];
        if (devbackends_match(file, family, sizeof family) && strlen(family) == n && strncmp(family, name, n) == 0)
            return 1;
    }
    return 0;
}

static int valid_device(const devcfg *cfg, const char *d) {
    if (strcmp(d, "auto") == 0 || strcmp(d, "cpu") == 0) return 1;
    const char *colon = strchr(d, ':');
    if (!colon || colon == d || !colon[1]) return 0;
    size_t n = (size_t)(colon - d);
    if (!((n == 3 && strncmp(d, "cpu", 3) == 0) || (n == 4 && strncmp(d, "cuda", 4) == 0) ||
          (n == 6 && strncmp(d, "vulkan", 6) == 0) || (n == 13 && strncmp(d, "privateuseone", 13) == 0) ||
          extra_family(cfg, d, n)))
        return 0;
    for (const char *p = colon + 1; *p; p++)
        if (*p < '0' || *p > '9') return 0;
    return 1;
}

/* "extra_backends": module paths of families outside backends_dir. */
static int parse_extra(devcfg *cfg, const cJSON *root, char *err, size_t errlen) {
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(root, "extra_backends");
    if (extra && !cJSON_IsArray(extra)) {
        snprintf(err, errlen, "extra_backends: expected an array of module paths");
        return -1;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, extra) {
        if (!cJSON_IsString(item) || !item->valuestring[0]) {
            snprintf(err, errlen, "extra_backends[%d]: expected a non-empty path string", cfg->extra_count);
            return -1;
        }
        if (cfg->extra_count >= DEVCFG_MAX_EXTRA) {
            snprintf(err, errlen, "extra_backends: at most %d entries", DEVCFG_MAX_EXTRA);
            return -1;
        }
        snprintf(cfg->extra_backends[cfg->extra_count++], sizeof cfg->extra_backends[0], "%s", item->valuestring);
    }
    return 0;
}

static int parse_fields(devcfg *cfg, const cJSON *root, char *err, size_t errlen) {
    const cJSON *dir = cJSON_GetObjectItemCaseSensitive(root, "backends_dir");
    const cJSON *dev = cJSON_GetObjectItemCaseSensitive(root, "device");
    const cJSON *thr = cJSON_GetObjectItemCaseSensitive(root, "threads");
    const cJSON *fam = cJSON_GetObjectItemCaseSensitive(root, "backends");
    if (parse_extra(cfg, root, err, errlen) != 0) return -1;
    if (dir && (!cJSON_IsString(dir) || !dir->valuestring[0])) {
        snprintf(err, errlen, "backends_dir: expected a non-empty string");
        return -1;
    }
    if (dir) snprintf(cfg->backends_dir, sizeof cfg->backends_dir, "%s", dir->valuestring);
    if (dev && (!cJSON_IsString(dev) || !valid_device(cfg, dev->valuestring))) {
        snprintf(err, errlen,
                 "device: expected \"auto\", \"cpu\", \"cuda:N\", \"vulkan:N\", \"privateuseone:N\" or "
                 "<extra family>:N");
        return -1;
    }
    if (dev) snprintf(cfg->device, sizeof cfg->device, "%s", dev->valuestring);
    if (thr && (!cJSON_IsNumber(thr) || thr->valuedouble < 0 || thr->valuedouble > 4096 ||
                thr->valuedouble != (int)thr->valuedouble)) {
        snprintf(err, errlen, "threads: expected an integer 0..4096");
        return -1;
    }
    if (thr) cfg->threads = (int)thr->valuedouble;
    if (fam && !cJSON_IsObject(fam)) {
        snprintf(err, errlen, "backends: expected an object of per-family configs");
        return -1;
    }
    if (fam) cfg->backends = cJSON_Duplicate(fam, 1);
    return 0;
}

int devcfg_parse(devcfg *cfg, const char *json, const char *self_dir, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->device, sizeof cfg->device, "auto");
    cfg->device_source = "default";
    snprintf(cfg->backends_dir, sizeof cfg->backends_dir, "%s/../backends", self_dir ? self_dir : ".");
    if (!json || !*json) return 0;
    cJSON *root = cJSON_Parse(json);
    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "config: expected a JSON object");
        cJSON_Delete(root);
        return -1;
    }
    int rc = parse_fields(cfg, root, err, errlen);
    if (rc == 0 && cJSON_GetObjectItemCaseSensitive(root, "device")) cfg->device_source = "config";
    cJSON_Delete(root);
    if (rc != 0) devcfg_free(cfg);
    return rc;
}

int devcfg_host_device(devcfg *cfg, const char *host_device, char *err, size_t errlen) {
    if (!host_device) return 0;
    snprintf(cfg->host_device, sizeof cfg->host_device, "%s", host_device);
    if (!valid_device(cfg, host_device)) {
        snprintf(err, errlen,
                 "device (top-level): '%s' is not \"auto\", \"cpu\", \"cuda:N\", \"vulkan:N\", \"privateuseone:N\" "
                 "or <extra family>:N",
                 host_device);
        return -1;
    }
    if (strcmp(cfg->device_source, "config") != 0) {
        snprintf(cfg->device, sizeof cfg->device, "%s", host_device);
        cfg->device_source = "host";
    }
    return 0;
}

char *devcfg_family_json(const devcfg *cfg, const char *name) {
    const cJSON *own = cfg->backends ? cJSON_GetObjectItemCaseSensitive(cfg->backends, name) : NULL;
    cJSON *obj = cJSON_IsObject(own) ? cJSON_Duplicate(own, 1) : cJSON_CreateObject();
    if (!obj) return NULL;
    if (cfg->threads > 0 && !cJSON_GetObjectItemCaseSensitive(obj, "threads"))
        cJSON_AddNumberToObject(obj, "threads", cfg->threads);
    char *text = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    return text;
}

void devcfg_free(devcfg *cfg) {
    cJSON_Delete(cfg->backends);
    cfg->backends = NULL;
}
