/* plugins/processing/store.c - sessions and batches kept in memory. The
 * bounds (max_sessions, max_batches) keep finished records like ComfyUI's
 * history: the oldest finished ones go first; running ones are never
 * dropped. */
#define _GNU_SOURCE
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const NAMES[] = {"queued", "running", "paused", "completed", "failed", "cancelled"};

const char *pstate_name(pstate s) { return NAMES[s]; }

int pstate_from_name(const char *name) {
    for (int i = 0; name && i < 6; i++)
        if (strcmp(NAMES[i], name) == 0) return i;
    return -1;
}

int pstate_finished(pstate s) { return s == PS_COMPLETED || s == PS_FAILED || s == PS_CANCELLED; }

void store_init(store *st, int max_sessions, int max_batches) {
    memset(st, 0, sizeof *st);
    pthread_mutex_init(&st->lock, NULL);
    st->max_sessions = max_sessions;
    st->max_batches = max_batches;
}

static void session_free(session *s) {
    free(s->request_id);
    free(s->workflow_id);
    cJSON_Delete(s->steps);
    cJSON_Delete(s->results);
    cJSON_Delete(s->inputs);
    free(s->error);
    free(s->error_code);
    free(s->failed_step);
    free(s);
}

void store_batch_free(batch *b) {
    for (int i = 0; i < b->n; i++) {
        free(b->items[i].type);
        cJSON_Delete(b->items[i].data);
        cJSON_Delete(b->items[i].result);
        free(b->items[i].error);
        free(b->items[i].error_code);
    }
    free(b->items);
    free(b->priority);
    free(b);
}

void store_fini(store *st) {
    while (st->sessions) {
        session *n = st->sessions->next;
        session_free(st->sessions);
        st->sessions = n;
    }
    while (st->batches) {
        batch *n = st->batches->next;
        store_batch_free(st->batches);
        st->batches = n;
    }
    pthread_mutex_destroy(&st->lock);
}

session *store_session_new(store *st, double now) {
    session *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    snprintf(s->id, sizeof s->id, "session-%lu", ++st->next_session);
    s->t_created = now;
    s->results = cJSON_CreateObject();
    s->inputs = cJSON_CreateObject();
    s->next = st->sessions;
    st->sessions = s;
    return s;
}

session *store_session_find(store *st, const char *id) {
    for (session *s = st->sessions; id && s; s = s->next)
        if (strcmp(s->id, id) == 0) return s;
    return NULL;
}

void store_session_remove(store *st, session *s) {
    for (session **pp = &st->sessions; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            session_free(s);
            return;
        }
}

void store_sessions_trim(store *st) {
    int n = 0;
    for (session *s = st->sessions; s; s = s->next) n++;
    while (n > st->max_sessions) {
        session *oldest = NULL;
        for (session *s = st->sessions; s; s = s->next)
            if (pstate_finished(s->state)) oldest = s; /* the list is newest first */
        if (!oldest) return;
        store_session_remove(st, oldest);
        n--;
    }
}

cJSON *store_session_json(const session *s, double now, int full) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "session_id", s->id);
    cJSON_AddStringToObject(o, "workflow_id", s->workflow_id ? s->workflow_id : "custom");
    cJSON_AddStringToObject(o, "status", pstate_name(s->state));
    cJSON_AddNumberToObject(o, "current_step", s->current);
    cJSON_AddNumberToObject(o, "total_steps", s->total);
    double progress = s->total > 0 ? (double)s->current / s->total : 0;
    if (s->state == PS_COMPLETED) progress = 1;
    cJSON_AddNumberToObject(o, "progress", progress);
    double elapsed = s->t_start > 0 ? (s->t_end > 0 ? s->t_end : now) - s->t_start : 0;
    cJSON_AddNumberToObject(o, "elapsed_s", elapsed);
    /* ETA from the mean time per finished step. */
    if (!pstate_finished(s->state) && s->current > 0)
        cJSON_AddNumberToObject(o, "eta_s", elapsed / s->current * (s->total - s->current));
    else
        cJSON_AddNullToObject(o, "eta_s");
    if (s->request_id) cJSON_AddStringToObject(o, "request_id", s->request_id);
    cJSON *res = cJSON_AddObjectToObject(o, "resources");
    cJSON_AddNumberToObject(res, "steps_run", cJSON_GetArraySize(s->results));
    cJSON_AddNumberToObject(res, "cpu_time_s", elapsed);
    if (s->error) {
        cJSON_AddStringToObject(o, "error", s->error);
        cJSON_AddStringToObject(o, "error_code", s->error_code ? s->error_code : "INTERNAL");
        if (s->failed_step) cJSON_AddStringToObject(o, "failed_step", s->failed_step);
    }
    if (full) {
        cJSON_AddItemToObject(o, "steps", cJSON_Duplicate(s->steps, 1));
        cJSON_AddItemToObject(o, "inputs", cJSON_Duplicate(s->inputs, 1));
        cJSON_AddItemToObject(o, "results", cJSON_Duplicate(s->results, 1));
    }
    return o;
}

batch *store_batch_new(store *st, double now) {
    batch *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    snprintf(b->id, sizeof b->id, "batch-%lu", ++st->next_batch);
    b->t_created = now;
    b->next = st->batches;
    st->batches = b;
    return b;
}

batch *store_batch_find(store *st, const char *id) {
    for (batch *b = st->batches; id && b; b = b->next)
        if (strcmp(b->id, id) == 0) return b;
    return NULL;
}

void store_batch_remove(store *st, batch *b) {
    for (batch **pp = &st->batches; *pp; pp = &(*pp)->next)
        if (*pp == b) {
            *pp = b->next;
            if (b->state == PS_RUNNING) b->deleted = 1;
            else store_batch_free(b);
            return;
        }
}

void store_batches_trim(store *st) {
    int n = 0;
    for (batch *b = st->batches; b; b = b->next) n++;
    while (n > st->max_batches) {
        batch *oldest = NULL;
        for (batch *b = st->batches; b; b = b->next)
            if (pstate_finished(b->state)) oldest = b;
        if (!oldest) return;
        store_batch_remove(st, oldest);
        n--;
    }
}

cJSON *store_batch_json(const batch *b, int full) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "batch_id", b->id);
    cJSON_AddStringToObject(o, "status", pstate_name(b->state));
    cJSON_AddStringToObject(o, "priority", b->priority ? b->priority : "normal");
    int counts[6] = {0};
    for (int i = 0; i < b->n; i++) counts[b->items[i].state]++;
    cJSON_AddNumberToObject(o, "total", b->n);
    for (int k = 0; k < 6; k++)
        if (k != PS_PAUSED) cJSON_AddNumberToObject(o, pstate_name((pstate)k), counts[k]);
    if (!full) return o;
    cJSON *items = cJSON_AddArrayToObject(o, "items");
    for (int i = 0; i < b->n; i++) {
        const batch_item *it = &b->items[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "index", i);
        cJSON_AddStringToObject(x, "type", it->type);
        cJSON_AddStringToObject(x, "status", pstate_name(it->state));
        if (it->result) cJSON_AddItemToObject(x, "result", cJSON_Duplicate(it->result, 1));
        if (it->error) {
            cJSON_AddStringToObject(x, "error", it->error);
            cJSON_AddStringToObject(x, "error_code", it->error_code ? it->error_code : "INTERNAL");
        }
        cJSON_AddItemToArray(items, x);
    }
    return o;
}
