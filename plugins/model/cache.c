/* plugins/model/cache.c - the LRU model cache.
 *
 * Loads are serialised (one at a time) so that two requests for the same
 * model never map it twice and the budget check sees every model; lookups
 * of cached models never wait for a load. */
#include "cache.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cache_init(model_cache *c, uint64_t budget) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->budget = budget;
    c->weights = sdrt_weight_budget_new(0);
    return c->weights ? 0 : -1;
}

void cache_set_device_budget(model_cache *c, uint64_t bytes) {
    sdrt_weight_budget_set_limit(c->weights, bytes);
}

void cache_destroy(model_cache *c) {
    struct sdrt_model *m = c->head;
    while (m) {
        struct sdrt_model *next = m->next;
        store_free(m);
        m = next;
    }
    sdrt_weight_budget_free(c->weights);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

static void unlink_model(model_cache *c, struct sdrt_model *m) {
    if (m->prev) m->prev->next = m->next;
    else c->head = m->next;
    if (m->next) m->next->prev = m->prev;
    m->prev = m->next = NULL;
}

static void push_front(model_cache *c, struct sdrt_model *m) {
    m->prev = NULL;
    m->next = c->head;
    if (c->head) c->head->prev = m;
    c->head = m;
    m->last_used = ++c->clock;
}

static struct sdrt_model *find(model_cache *c, const char *id) {
    for (struct sdrt_model *m = c->head; m; m = m->next)
        if (strcmp(m->id, id) == 0) return m;
    return NULL;
}

static struct sdrt_model *lru_unpinned(model_cache *c) {
    struct sdrt_model *victim = NULL;
    for (struct sdrt_model *m = c->head; m; m = m->next)
        if (m->pins == 0) victim = m; /* the list is MRU first: keep the last */
    return victim;
}

/* Evicts until `need` more bytes fit; 0, or -1 when pinned models block. */
static int make_room(model_cache *c, uint64_t need) {
    while (c->bytes + need > c->budget) {
        struct sdrt_model *v = lru_unpinned(c);
        if (!v) return -1;
        unlink_model(c, v);
        c->bytes -= v->bytes;
        store_free(v);
    }
    return 0;
}

static sdrt_status admit(model_cache *c, struct sdrt_model *m, char *err, size_t errlen) {
    if (m->bytes > c->budget) {
        snprintf(err, errlen, "%s: %llu bytes exceed the model cache budget of %llu bytes", m->id,
                 (unsigned long long)m->bytes, (unsigned long long)c->budget);
        return SDRT_RESOURCE_EXHAUSTED;
    }
    if (make_room(c, m->bytes) != 0) {
        snprintf(err, errlen, "%s: %llu bytes do not fit: pinned (open) models hold %llu of the %llu-byte budget",
                 m->id, (unsigned long long)m->bytes, (unsigned long long)c->bytes, (unsigned long long)c->budget);
        return SDRT_RESOURCE_EXHAUSTED;
    }
    push_front(c, m);
    c->bytes += m->bytes;
    return SDRT_OK;
}

sdrt_status cache_open(model_cache *c, const char *id, cache_loader load, const sdrt_file_scope *scope,
                       struct sdrt_model **out, int *loaded, char *err, size_t errlen) {
    *out = NULL;
    if (loaded) *loaded = 0;
    pthread_mutex_lock(&c->mu);
    struct sdrt_model *m;
    while (!(m = find(c, id)) && c->loading) pthread_cond_wait(&c->cv, &c->mu);
    if (m) {
        unlink_model(c, m);
        push_front(c, m);
        m->pins++;
        pthread_mutex_unlock(&c->mu);
        *out = m;
        return SDRT_OK;
    }
    c->loading = 1;
    pthread_mutex_unlock(&c->mu);
    sdrt_status st = load(id, scope, &m, err, errlen);
    pthread_mutex_lock(&c->mu);
    c->loading = 0;
    if (st == SDRT_OK && !m->resident && store_resident_init(m, c->weights) != 0) {
        snprintf(err, errlen, "out of memory");
        st = SDRT_RESOURCE_EXHAUSTED;
        store_free(m);
    }
    if (st == SDRT_OK) {
        st = admit(c, m, err, errlen);
        if (st == SDRT_OK) m->pins = 1;
        else store_free(m);
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (st != SDRT_OK) return st;
    if (loaded) *loaded = 1;
    *out = m;
    return SDRT_OK;
}

void cache_close(model_cache *c, struct sdrt_model *m) {
    if (!m) return;
    pthread_mutex_lock(&c->mu);
    if (m->pins > 0) m->pins--;
    m->last_used = ++c->clock;
    pthread_mutex_unlock(&c->mu);
}

sdrt_status cache_unload(model_cache *c, const char *id, char *err, size_t errlen) {
    pthread_mutex_lock(&c->mu);
    struct sdrt_model *m = find(c, id);
    sdrt_status st = SDRT_OK;
    if (!m) {
        snprintf(err, errlen, "model_id: '%s' is not loaded", id);
        st = SDRT_NOT_FOUND;
    } else if (m->pins > 0) {
        snprintf(err, errlen, "model_id: '%s' is in use (%d open handles)", id, m->pins);
        st = SDRT_FAILED_PRECONDITION;
    } else {
        unlink_model(c, m);
        c->bytes -= m->bytes;
        store_free(m);
    }
    pthread_mutex_unlock(&c->mu);
    return st;
}

static const char *device_name(sdrt_device *d) {
    return d->iface && d->iface->name ? d->iface->name(d) : "?";
}

static void add_resident(void *u, sdrt_device *d, uint64_t bytes, size_t n) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "device", device_name(d));
    cJSON_AddNumberToObject(e, "bytes", (double)bytes);
    cJSON_AddNumberToObject(e, "tensors", (double)n);
    cJSON_AddItemToArray(u, e);
}

static void add_device(void *u, sdrt_device *d, uint64_t bytes) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "device", device_name(d));
    cJSON_AddNumberToObject(e, "resident_bytes", (double)bytes);
    cJSON_AddItemToArray(u, e);
}

char *cache_list_json(model_cache *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "models");
    pthread_mutex_lock(&c->mu);
    for (struct sdrt_model *m = c->head; m; m = m->next) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "id", m->id);
        cJSON_AddStringToObject(e, "architecture", m->arch);
        cJSON_AddNumberToObject(e, "bytes", (double)m->bytes);
        cJSON_AddNumberToObject(e, "last_used", (double)m->last_used);
        cJSON_AddBoolToObject(e, "pinned", m->pins > 0);
        cJSON *res = cJSON_AddArrayToObject(e, "resident");
        if (m->resident) sdrt_weight_store_each_device(m->resident, add_resident, res);
        cJSON_AddItemToArray(arr, e);
    }
    cJSON_AddNumberToObject(o, "cache_bytes", (double)c->bytes);
    cJSON_AddNumberToObject(o, "budget_bytes", (double)c->budget);
    pthread_mutex_unlock(&c->mu);
    cJSON *devs = cJSON_AddArrayToObject(o, "devices");
    sdrt_weight_budget_each_device(c->weights, add_device, devs);
    cJSON_AddNumberToObject(o, "device_budget_bytes", (double)sdrt_weight_budget_limit(c->weights));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}
