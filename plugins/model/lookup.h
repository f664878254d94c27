/* plugins/model/lookup.h - turning a model_id into a canonical path:
 * a path (checked against the model roots by the host), a name under a
 * model root, or a Hugging Face repo id in a local HF cache. */
#ifndef SDRT_MODEL_LOOKUP_H
#define SDRT_MODEL_LOOKUP_H

#include <stddef.h>

#include "sdrt/plugin.h"

typedef struct lookup_cfg {
    char **roots;
    size_t n_roots;
    char **hf_dirs; /* hub folders holding models--org--name/ */
    size_t n_hf;
    int allow_any_path;
    const sdrt_host_api *api;
    sdrt_host *host;
} lookup_cfg;

/* Reads host settings (model_roots, allow_any_path, hf_cache) and the
 * HF_HOME / ~/.cache/huggingface/hub defaults. 0 or -1 (out of memory). */
int lookup_init(lookup_cfg *c, const sdrt_host_api *api, sdrt_host *host);
void lookup_free(lookup_cfg *c);
/* *path (malloc'd, canonical absolute) or NOT_FOUND / PERMISSION_DENIED /
 * INVALID_ARGUMENT with err naming the id. */
sdrt_status lookup_resolve(const lookup_cfg *c, const char *id, char **path, char *err, size_t errlen);
/* The snapshot folder of `repo` ("org/name") in hub folder `hub`: the
 * revision named by refs/main, else the most recently modified snapshot.
 * malloc'd, or NULL. */
char *lookup_hf_snapshot(const char *hub, const char *repo);

#endif
