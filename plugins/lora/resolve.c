/* plugins/lora/resolve.c - adapter model_id -> file, as the model plugin
 * resolves models (its lookup_resolve: paths are checked against the model
 * roots by the host), over the LoRA folders first. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plugin.h"

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* A diffusers save_lora_weights folder holds one known file name. */
static sdrt_status in_folder(char **path, char *err, size_t errlen) {
    char *f;
    if (asprintf(&f, "%s/pytorch_lora_weights.safetensors", *path) < 0) return SDRT_RESOURCE_EXHAUSTED;
    struct stat sb;
    if (stat(f, &sb) != 0) {
        snprintf(err, errlen, "lora '%s': a folder without pytorch_lora_weights.safetensors", *path);
        free(f);
        return SDRT_NOT_FOUND;
    }
    free(*path);
    *path = f;
    return SDRT_OK;
}

sdrt_status lora_resolve(const lora_plugin *p, const char *id, char **path, char *err, size_t errlen) {
    *path = NULL;
    sdrt_status st = lookup_resolve(&p->lookup, id, path, err, errlen);
    if (st == SDRT_NOT_FOUND && id && *id && !has_suffix(id, ".safetensors")) {
        char *with = NULL, err2[512];
        if (asprintf(&with, "%s.safetensors", id) < 0) return SDRT_RESOURCE_EXHAUSTED;
        sdrt_status st2 = lookup_resolve(&p->lookup, with, path, err2, sizeof err2);
        free(with);
        if (st2 != SDRT_NOT_FOUND) {
            st = st2;
            if (st2 != SDRT_OK) snprintf(err, errlen, "%s", err2);
        }
    }
    if (st == SDRT_NOT_FOUND)
        snprintf(err, errlen, "lora '%s': not found as a path or as a name (with or without .safetensors) under "
                              "%zu LoRA folder(s) and %zu model root(s)", id ? id : "", p->n_lora_dirs,
                 p->lookup.n_roots - p->n_lora_dirs);
    if (st != SDRT_OK && st != SDRT_NOT_FOUND && !strncmp(err, "model_id: ", 10)) {
        /* lookup speaks of models; say which adapter it was */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", err + 10);
        snprintf(err, errlen, "lora '%s': %s", id, msg);
    }
    if (st == SDRT_OK && is_dir(*path)) st = in_folder(path, err, errlen);
    if (st != SDRT_OK) {
        free(*path);
        *path = NULL;
    }
    return st;
}
