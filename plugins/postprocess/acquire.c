/* acquire.c - the interfaces the postprocess plugin uses (compute backend,
 * model store), acquired on first use because plugin load order is
 * arbitrary, and released at shutdown. */
#include "pp.h"

/* Acquires `id` once into *slot under the lock. */
static sdrt_error *acquire_once(pp_plugin *p, const char *id, const void **slot, const void **out) {
    sdrt_error *e = NULL;
    pthread_mutex_lock(&p->lock);
    if (!*slot) *slot = p->api->acquire(p->host, id, &e);
    *out = *slot;
    pthread_mutex_unlock(&p->lock);
    if (*out) {
        if (e) p->api->error_free(e);
        return NULL;
    }
    if (e) p->api->error_free(e);
    return p->api->error_new(SDRT_FAILED_PRECONDITION, NULL, "postprocess: interface %s is not available (is its plugin loaded?)", id);
}

sdrt_error *pp_backend(pp_plugin *p, const sdrt_backend_iface **out) {
    return acquire_once(p, SDRT_BACKEND_IFACE_ID, (const void **)&p->backend, (const void **)out);
}

sdrt_error *pp_model(pp_plugin *p, const sdrt_model_iface **out) {
    return acquire_once(p, SDRT_MODEL_IFACE_ID, (const void **)&p->model, (const void **)out);
}

