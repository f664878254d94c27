/* plugins/processing/plugin.c - the processing domain: workflows run as
 * sessions, batches of requests, and the instructor's status of every
 * plugin. It runs other plugins' messages through sdrt_host_api.call, on
 * the worker thread of its own request, so an execute's progress, events,
 * warnings, cancel and pause are those of the request that runs it.
 *
 * Messages: processing.workflows, .workflow, .execute, .sessions, .session,
 * .control, .delete, .batch_create, .batch_execute, .batch, .batches,
 * .batch_delete, .status (docs/protocol.md, "Processing"). */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sdrt/plugin.h"
#include "sdrt/status.h"
#include "store.h"
#include "workflow.h"

typedef struct plugin {
    const sdrt_host_api *api;
    sdrt_host *host;
    store st;
} plugin;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cfg_int(const cJSON *cfg, const char *k, int dflt, int lo, int hi) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, k);
    if (!cJSON_IsNumber(v)) return dflt;
    int x = (int)v->valuedouble;
    return x < lo ? lo : x > hi ? hi : x;
}

static sdrt_error *init(const sdrt_host_api *api, sdrt_host *host, const char *config_json, void **instance) {
    if (!SDRT_HAS_MEMBER(api, sdrt_host_api, call))
        return api->error_new(SDRT_ABI_MISMATCH, NULL, "processing: the host has no sdrt_host_api.call");
    plugin *pl = calloc(1, sizeof *pl);
    if (!pl) return api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "processing: out of memory");
    pl->api = api;
    pl->host = host;
    cJSON *cfg = cJSON_Parse(config_json ? config_json : "{}");
    store_init(&pl->st, cfg_int(cfg, "max_sessions", 100, 1, 100000), cfg_int(cfg, "max_batches", 100, 1, 100000));
    cJSON_Delete(cfg);
    *instance = pl;
    return NULL;
}

static void shutdown(void *instance) {
    plugin *pl = instance;
    if (!pl) return;
    store_fini(&pl->st);
    free(pl);
}

/* ---- helpers ------------------------------------------------------------ */

static char *to_host(const sdrt_host_api *api, cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *h = api->alloc(n);
    if (h) memcpy(h, s, n);
    free(s);
    return h;
}

static const char *str_field(const cJSON *d, const char *k) {
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, k));
}

static void event(plugin *pl, sdrt_job *job, const char *name, cJSON *data) {
    char *s = cJSON_PrintUnformatted(data);
    cJSON_Delete(data);
    if (s) pl->api->event(job, name, s);
    free(s);
}

static void session_event_id(plugin *pl, sdrt_job *job, const char *id, const char *status, const char *previous) {
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "session_id", id);
    cJSON_AddStringToObject(d, "status", status);
    if (previous) cJSON_AddStringToObject(d, "previous", previous);
    else cJSON_AddNullToObject(d, "previous");
    event(pl, job, "session_status", d);
}

static void session_event(plugin *pl, sdrt_job *job, const session *s, const char *status, const char *previous) {
    session_event_id(pl, job, s->id, status, previous);
}

static void set_str(char **dst, const char *v) {
    free(*dst);
    *dst = v ? strdup(v) : NULL;
}

/* ---- workflows ---------------------------------------------------------- */

static sdrt_error *h_workflows(plugin *pl, char **result) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "workflows", wf_template_list());
    cJSON *cats = cJSON_AddArrayToObject(o, "categories");
    cJSON_AddItemToArray(cats, cJSON_CreateString("generation"));
    cJSON_AddItemToArray(cats, cJSON_CreateString("transformation"));
    *result = to_host(pl->api, o);
    return NULL;
}

static sdrt_error *h_workflow(plugin *pl, const cJSON *d, char **result) {
    const char *id = str_field(d, "workflow_id");
    if (!id) return pl->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "workflow_id: is required");
    cJSON *w = wf_template_describe(id);
    if (!w)
        return pl->api->error_new(SDRT_NOT_FOUND, NULL, "workflow_id: '%s' is not a workflow (see processing.workflows)",
                                  id);
    *result = to_host(pl->api, w);
    return NULL;
}

/* The steps of an execute: a template's, or the request's own. The old
 * pipeline_manager sent them as `stages`. */
static cJSON *steps_of(plugin *pl, sdrt_job *job, const cJSON *d, char **workflow_id, sdrt_error **err) {
    *err = NULL;
    const char *tid = str_field(d, "workflow_id");
    const cJSON *wf = cJSON_GetObjectItemCaseSensitive(d, "workflow");
    const cJSON *stages = cJSON_GetObjectItemCaseSensitive(d, "stages");
    if (tid && (wf || stages)) {
        *err = pl->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "workflow_id: give either workflow_id or workflow, not both");
        return NULL;
    }
    if (tid) {
        *workflow_id = strdup(tid);
        const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(d, "inputs");
        cJSON *empty = inputs ? NULL : cJSON_CreateObject();
        cJSON *steps = wf_template_steps(pl->api, job, tid, inputs ? inputs : empty, err);
        cJSON_Delete(empty);
        return steps;
    }
    if (wf && !cJSON_IsObject(wf)) {
        *err = pl->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "workflow: expected an object {steps: [...]}");
        return NULL;
    }
    const cJSON *steps = wf ? cJSON_GetObjectItemCaseSensitive(wf, "steps") : stages;
    if (!steps) {
        *err = pl->api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                  wf ? "workflow.steps: is required" : "workflow_id or workflow: one is required");
        return NULL;
    }
    *workflow_id = strdup("custom");
    return cJSON_Duplicate(steps, 1);
}

/* Runs a session's steps in `order` on this request. The session is
 * already in the store; its state changes under the lock. Returns the
 * error that ended it, or NULL. */
static sdrt_error *run_session(plugin *pl, sdrt_job *job, session *s, const int *order, const char *request_id) {
    const sdrt_host_api *api = pl->api;
    pthread_mutex_lock(&pl->st.lock);
    set_str(&s->request_id, request_id);
    pstate prev = s->state;
    s->state = PS_RUNNING;
    s->current = 0;
    s->cancel = 0;
    s->t_start = now_s();
    s->t_end = 0;
    cJSON_Delete(s->results);
    s->results = cJSON_CreateObject();
    cJSON_Delete(s->inputs);
    s->inputs = cJSON_CreateObject();
    set_str(&s->error, NULL);
    set_str(&s->error_code, NULL);
    set_str(&s->failed_step, NULL);
    int total = s->total;
    cJSON *steps = cJSON_Duplicate(s->steps, 1);
    pthread_mutex_unlock(&pl->st.lock);
    session_event(pl, job, s, "running", pstate_name(prev));
    sdrt_error *err = NULL;
    const char *failed = NULL;
    for (int k = 0; k < total && !err; k++) {
        const cJSON *st = cJSON_GetArrayItem(steps, order[k]);
        const char *sid = str_field(st, "id"), *type = str_field(st, "type");
        if (api->wait_if_paused(job) || api->is_cancelled(job)) {
            err = api->error_new(SDRT_CANCELLED, NULL, "workflow cancelled before step '%s'", sid);
            failed = sid;
            break;
        }
        cJSON *ev = cJSON_CreateObject();
        cJSON_AddStringToObject(ev, "session_id", s->id);
        cJSON_AddStringToObject(ev, "step", sid);
        cJSON_AddStringToObject(ev, "type", type);
        cJSON_AddNumberToObject(ev, "index", k);
        cJSON_AddNumberToObject(ev, "steps", total);
        cJSON_AddStringToObject(ev, "status", "running");
        event(pl, job, "workflow_step", ev);
        pthread_mutex_lock(&pl->st.lock);
        cJSON *data = wf_resolve_refs(api, cJSON_GetObjectItemCaseSensitive(st, "data"), s->results, sid, &err);
        if (data) cJSON_AddItemToObject(s->inputs, sid, cJSON_Duplicate(data, 1));
        pthread_mutex_unlock(&pl->st.lock);
        if (!data) {
            failed = sid;
            break;
        }
        char *text = cJSON_PrintUnformatted(data);
        cJSON_Delete(data);
        char *res = NULL;
        sdrt_error *ce = api->call(job, type, text, &res);
        free(text);
        if (ce) {
            err = api->error_new(ce->code, ce->data_json, "workflow step '%s' (%s): %s", sid, type, ce->message);
            api->error_free(ce);
            failed = sid;
            break;
        }
        cJSON *r = cJSON_Parse(res ? res : "{}");
        api->free(res);
        pthread_mutex_lock(&pl->st.lock);
        cJSON_AddItemToObject(s->results, sid, r ? r : cJSON_CreateObject());
        s->current = k + 1;
        pthread_mutex_unlock(&pl->st.lock);
        cJSON *done = cJSON_CreateObject();
        cJSON_AddStringToObject(done, "session_id", s->id);
        cJSON_AddStringToObject(done, "step", sid);
        cJSON_AddNumberToObject(done, "index", k);
        cJSON_AddNumberToObject(done, "steps", total);
        cJSON_AddStringToObject(done, "status", "completed");
        event(pl, job, "workflow_step", done);
        sdrt_progress p = {.struct_size = SDRT_STRUCT_SIZE(sdrt_progress, message),
                           .progress = (double)(k + 1) / total, .stage = "workflow", .step = k + 1, .steps = total,
                           .message = sid};
        api->progress(job, &p);
    }
    pthread_mutex_lock(&pl->st.lock);
    s->t_end = now_s();
    int cancelled = err && (err->code == SDRT_CANCELLED || s->cancel || api->is_cancelled(job));
    s->state = !err ? PS_COMPLETED : cancelled ? PS_CANCELLED : PS_FAILED;
    if (err) {
        set_str(&s->error, err->message);
        set_str(&s->error_code, sdrt_status_name(cancelled ? SDRT_CANCELLED : err->code));
        set_str(&s->failed_step, failed);
    }
    set_str(&s->request_id, NULL);
    const char *final = pstate_name(s->state);
    /* `failed` points into `steps`; the session may be trimmed (or deleted)
     * once the lock is released: keep its id for the event. */
    cJSON_Delete(steps);
    char *sid_copy = strdup(s->id);
    store_sessions_trim(&pl->st);
    pthread_mutex_unlock(&pl->st.lock);
    if (!cancelled && sid_copy) session_event_id(pl, job, sid_copy, final, "running");
    free(sid_copy);
    return err;
}

/* The answer of a finished run: session_id, status and each step's result. */
static char *session_result(plugin *pl, const char *id) {
    pthread_mutex_lock(&pl->st.lock);
    session *s = store_session_find(&pl->st, id);
    cJSON *o = s ? store_session_json(s, now_s(), 1) : cJSON_CreateObject();
    pthread_mutex_unlock(&pl->st.lock);
    cJSON_DeleteItemFromObjectCaseSensitive(o, "request_id");
    return to_host(pl->api, o);
}

/* A failure that names the session, so a client can look it up. */
static sdrt_error *with_session(plugin *pl, sdrt_error *err, const char *sid) {
    cJSON *d = err->data_json ? cJSON_Parse(err->data_json) : NULL;
    if (!cJSON_IsObject(d)) {
        cJSON_Delete(d);
        d = cJSON_CreateObject();
    }
    cJSON_DeleteItemFromObjectCaseSensitive(d, "session_id");
    cJSON_AddStringToObject(d, "session_id", sid);
    char *dj = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    sdrt_error *e = pl->api->error_new(err->code, dj, "%s", err->message);
    free(dj);
    pl->api->error_free(err);
    return e;
}

/* The follow-up request of an execute with "wait": false (started by it
 * through sdrt_host_api.start under the session's run id): runs the
 * queued session and answers as a waiting execute would. */
static sdrt_error *run_queued(plugin *pl, const sdrt_request *req, const char *id, char **result) {
    pthread_mutex_lock(&pl->st.lock);
    session *s = store_session_find(&pl->st, id);
    if (!s) {
        pthread_mutex_unlock(&pl->st.lock);
        return pl->api->error_new(SDRT_NOT_FOUND, NULL, "session_id: no session '%s'", id);
    }
    if (s->state != PS_QUEUED || !s->request_id || !req->request_id || strcmp(s->request_id, req->request_id) != 0) {
        char msg[400];
        snprintf(msg, sizeof msg,
                 "session_id: session '%s' is %s; processing.execute with a session_id only runs a queued session "
                 "as the request that processing.execute with \"wait\": false started for it (%s)",
                 id, pstate_name(s->state), s->request_id ? s->request_id : "none");
        pthread_mutex_unlock(&pl->st.lock);
        return pl->api->error_new(SDRT_FAILED_PRECONDITION, NULL, "%s", msg);
    }
    pthread_mutex_unlock(&pl->st.lock);
    int seq[WF_MAX_STEPS];
    for (int k = 0; k < WF_MAX_STEPS; k++) seq[k] = k;
    sdrt_error *err = run_session(pl, req->job, s, seq, req->request_id);
    if (err) return with_session(pl, err, id);
    *result = session_result(pl, id);
    return NULL;
}

/* "wait": false: the session runs as a request of its own, `run_id`,
 * whose events and final response go to this client; this request
 * answers at once with the session id and that request id. */
static sdrt_error *start_detached(plugin *pl, const sdrt_request *req, const char *sid, char **result) {
    const sdrt_host_api *api = pl->api;
    char run_id[256];
    snprintf(run_id, sizeof run_id, "%s/%s", req->request_id ? req->request_id : "processing", sid);
    pthread_mutex_lock(&pl->st.lock);
    session *s = store_session_find(&pl->st, sid);
    if (s) set_str(&s->request_id, run_id); /* cancel/pause reach the run, queued or running */
    int total = s ? s->total : 0;
    pthread_mutex_unlock(&pl->st.lock);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "session_id", sid);
    char *text = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    sdrt_error *err = api->start(req->job, "processing.execute", text, run_id);
    free(text);
    if (err) {
        pthread_mutex_lock(&pl->st.lock);
        s = store_session_find(&pl->st, sid);
        if (s) {
            s->state = PS_FAILED;
            set_str(&s->error, err->message);
            set_str(&s->error_code, sdrt_status_name(err->code));
            set_str(&s->request_id, NULL);
        }
        pthread_mutex_unlock(&pl->st.lock);
        return with_session(pl, err, sid);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "session_id", sid);
    cJSON_AddStringToObject(o, "status", "queued");
    cJSON_AddStringToObject(o, "run_request_id", run_id);
    cJSON_AddNumberToObject(o, "total_steps", total);
    *result = to_host(api, o);
    return NULL;
}

static sdrt_error *h_execute(plugin *pl, const sdrt_request *req, const cJSON *d, char **result) {
    const sdrt_host_api *api = pl->api;
    const cJSON *wait = cJSON_GetObjectItemCaseSensitive(d, "wait");
    if (wait && !cJSON_IsBool(wait)) return api->error_new(SDRT_INVALID_ARGUMENT, NULL, "wait: expected a boolean");
    const char *run_sid = str_field(d, "session_id");
    if (run_sid) {
        if (cJSON_GetObjectItemCaseSensitive(d, "workflow_id") || cJSON_GetObjectItemCaseSensitive(d, "workflow") ||
            cJSON_GetObjectItemCaseSensitive(d, "stages") || wait)
            return api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                  "session_id: runs a session created by \"wait\": false; give it alone");
        return run_queued(pl, req, run_sid, result);
    }
    int detach = cJSON_IsFalse(wait);
    if (detach && !SDRT_HAS_MEMBER(api, sdrt_host_api, start))
        return api->error_new(SDRT_UNSUPPORTED, NULL,
                              "wait: false needs a host with sdrt_host_api.start (a request of its own for the run)");
    char *wid = NULL;
    sdrt_error *err = NULL;
    cJSON *steps = steps_of(pl, req->job, d, &wid, &err);
    if (!steps) {
        free(wid);
        return err;
    }
    int order[WF_MAX_STEPS];
    err = wf_validate(api, req->job, steps, order); /* nothing runs before this passes */
    if (err) {
        cJSON_Delete(steps);
        free(wid);
        return err;
    }
    pthread_mutex_lock(&pl->st.lock);
    session *s = store_session_new(&pl->st, now_s());
    if (!s) {
        pthread_mutex_unlock(&pl->st.lock);
        cJSON_Delete(steps);
        free(wid);
        return api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "processing: out of memory");
    }
    s->workflow_id = wid;
    s->steps = steps;
    s->total = cJSON_GetArraySize(steps);
    s->state = PS_QUEUED;
    char sid[32];
    snprintf(sid, sizeof sid, "%s", s->id);
    /* The steps are kept in run order, so a restart runs them as they are. */
    cJSON *sorted = cJSON_CreateArray();
    for (int k = 0; k < s->total; k++) cJSON_AddItemToArray(sorted, cJSON_Duplicate(cJSON_GetArrayItem(steps, order[k]), 1));
    cJSON_Delete(s->steps);
    s->steps = sorted;
    pthread_mutex_unlock(&pl->st.lock);
    session_event(pl, req->job, s, "queued", NULL);
    if (detach) return start_detached(pl, req, sid, result);
    int seq[WF_MAX_STEPS];
    for (int k = 0; k < WF_MAX_STEPS; k++) seq[k] = k;
    err = run_session(pl, req->job, s, seq, req->request_id);
    if (err) return with_session(pl, err, sid);
    *result = session_result(pl, sid);
    return NULL;
}

/* ---- sessions ----------------------------------------------------------- */

static sdrt_error *h_sessions(plugin *pl, const cJSON *d, char **result) {
    const char *status = str_field(d, "status");
    if (status && pstate_from_name(status) < 0)
        return pl->api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                  "status: '%s' is not one of queued, running, paused, completed, failed, cancelled",
                                  status);
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "sessions");
    pthread_mutex_lock(&pl->st.lock);
    double t = now_s();
    for (session *s = pl->st.sessions; s; s = s->next)
        if (!status || strcmp(pstate_name(s->state), status) == 0) cJSON_AddItemToArray(arr, store_session_json(s, t, 0));
    cJSON_AddNumberToObject(o, "max_sessions", pl->st.max_sessions);
    pthread_mutex_unlock(&pl->st.lock);
    *result = to_host(pl->api, o);
    return NULL;
}

static sdrt_error *need_session_id(plugin *pl, const cJSON *d, const char **id) {
    *id = str_field(d, "session_id");
    return *id ? NULL : pl->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "session_id: is required");
}

static sdrt_error *h_session(plugin *pl, const cJSON *d, char **result) {
    const char *id;
    sdrt_error *e = need_session_id(pl, d, &id);
    if (e) return e;
    pthread_mutex_lock(&pl->st.lock);
    session *s = store_session_find(&pl->st, id);
    cJSON *o = s ? store_session_json(s, now_s(), 1) : NULL;
    pthread_mutex_unlock(&pl->st.lock);
    if (!o) return pl->api->error_new(SDRT_NOT_FOUND, NULL, "session_id: no session '%s'", id);
    *result = to_host(pl->api, o);
    return NULL;
}

/* host.pause / host.resume / host.cancel of the request running a session. */
static sdrt_error *control_request(plugin *pl, sdrt_job *job, const char *type, const char *request_id) {
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "request_id", request_id);
    char *text = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    char *res = NULL;
    sdrt_error *e = pl->api->call(job, type, text, &res);
    free(text);
    pl->api->free(res);
    return e;
}

static sdrt_error *h_control(plugin *pl, const sdrt_request *req, const cJSON *d, char **result) {
    const sdrt_host_api *api = pl->api;
    const char *id;
    sdrt_error *e = need_session_id(pl, d, &id);
    if (e) return e;
    const char *action = str_field(d, "action");
    if (!action) action = str_field(d, "command");
    if (!action) return api->error_new(SDRT_INVALID_ARGUMENT, NULL, "action: is required (pause, resume, cancel, restart)");
    int op = strcmp(action, "pause") == 0 ? 0 : strcmp(action, "resume") == 0 ? 1
           : strcmp(action, "cancel") == 0 ? 2 : strcmp(action, "restart") == 0 ? 3 : -1;
    if (op < 0)
        return api->error_new(SDRT_INVALID_ARGUMENT, NULL, "action: '%s' is not one of pause, resume, cancel, restart",
                              action);
    pthread_mutex_lock(&pl->st.lock);
    session *s = store_session_find(&pl->st, id);
    if (!s) {
        pthread_mutex_unlock(&pl->st.lock);
        return api->error_new(SDRT_NOT_FOUND, NULL, "session_id: no session '%s'", id);
    }
    pstate state = s->state;
    char *rid = s->request_id ? strdup(s->request_id) : NULL;
    static const pstate need[4][3] = {{PS_RUNNING, PS_RUNNING, PS_RUNNING},
                                      {PS_PAUSED, PS_PAUSED, PS_PAUSED},
                                      {PS_RUNNING, PS_PAUSED, PS_QUEUED},
                                      {PS_COMPLETED, PS_FAILED, PS_CANCELLED}};
    int ok = state == need[op][0] || state == need[op][1] || state == need[op][2];
    if (!ok) {
        pthread_mutex_unlock(&pl->st.lock);
        free(rid);
        static const char *const wants[] = {"a running session", "a paused session",
                                            "a queued, running or paused session",
                                            "a completed, failed or cancelled session"};
        return api->error_new(SDRT_FAILED_PRECONDITION, NULL, "action: %s needs %s; session '%s' is %s", action,
                              wants[op], id, pstate_name(state));
    }
    if (op == 3) { /* restart: the same steps again, on this request */
        s->state = PS_QUEUED;
        pthread_mutex_unlock(&pl->st.lock);
        free(rid);
        session_event(pl, req->job, s, "queued", pstate_name(state));
        int seq[WF_MAX_STEPS];
        for (int k = 0; k < WF_MAX_STEPS; k++) seq[k] = k;
        char sid[32];
        snprintf(sid, sizeof sid, "%s", id);
        e = run_session(pl, req->job, s, seq, req->request_id);
        if (e) return with_session(pl, e, sid);
        *result = session_result(pl, sid);
        return NULL;
    }
    if (op == 2) s->cancel = 1;
    pthread_mutex_unlock(&pl->st.lock);
    const char *type = op == 0 ? "host.pause" : op == 1 ? "host.resume" : "host.cancel";
    e = rid ? control_request(pl, req->job, type, rid) : NULL;
    free(rid);
    if (e) return e;
    pthread_mutex_lock(&pl->st.lock);
    s = store_session_find(&pl->st, id);
    pstate now_state = op == 0 ? PS_PAUSED : op == 1 ? PS_RUNNING : PS_CANCELLED;
    if (s && !pstate_finished(s->state)) s->state = now_state;
    pthread_mutex_unlock(&pl->st.lock);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "session_id", id);
    cJSON_AddStringToObject(o, "action", action);
    cJSON_AddStringToObject(o, "previous", pstate_name(state));
    cJSON_AddStringToObject(o, "status", pstate_name(now_state));
    *result = to_host(api, o);
    return NULL;
}

static sdrt_error *h_delete(plugin *pl, const cJSON *d, char **result) {
    const char *id;
    sdrt_error *e = need_session_id(pl, d, &id);
    if (e) return e;
    pthread_mutex_lock(&pl->st.lock);
    session *s = store_session_find(&pl->st, id);
    if (!s) {
        pthread_mutex_unlock(&pl->st.lock);
        return pl->api->error_new(SDRT_NOT_FOUND, NULL, "session_id: no session '%s'", id);
    }
    if (!pstate_finished(s->state)) {
        const char *st = pstate_name(s->state);
        pthread_mutex_unlock(&pl->st.lock);
        return pl->api->error_new(SDRT_FAILED_PRECONDITION, NULL,
                                  "session_id: session '%s' is %s; cancel it (processing.control) before deleting it",
                                  id, st);
    }
    store_session_remove(&pl->st, s);
    pthread_mutex_unlock(&pl->st.lock);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "session_id", id);
    cJSON_AddTrueToObject(o, "deleted");
    *result = to_host(pl->api, o);
    return NULL;
}

/* ---- batches ------------------------------------------------------------ */

static sdrt_error *run_batch(plugin *pl, sdrt_job *job, batch *b);

static sdrt_error *h_batch_create(plugin *pl, const sdrt_request *req, const cJSON *d, char **result) {
    const sdrt_host_api *api = pl->api;
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(d, "items");
    if (!items) items = cJSON_GetObjectItemCaseSensitive(d, "requests");
    int n = cJSON_GetArraySize(items);
    if (!cJSON_IsArray(items) || n < 1 || n > 1024)
        return api->error_new(SDRT_INVALID_ARGUMENT, NULL, "items: expected 1 to 1024 items");
    const char *prio = str_field(d, "priority");
    if (prio && strcmp(prio, "low") && strcmp(prio, "normal") && strcmp(prio, "high") && strcmp(prio, "urgent"))
        return api->error_new(SDRT_INVALID_ARGUMENT, NULL, "priority: '%s' is not one of low, normal, high, urgent", prio);
    const char *dtype = str_field(d, "type");
    if (!dtype) dtype = "inference.run";
    /* Every item checked before the batch exists: {type?, data} or the
     * data of `type` itself. */
    for (int i = 0; i < n; i++) {
        const cJSON *it = cJSON_GetArrayItem(items, i);
        if (!cJSON_IsObject(it)) return api->error_new(SDRT_INVALID_ARGUMENT, NULL, "items[%d]: expected an object", i);
        const char *t = cJSON_GetObjectItemCaseSensitive(it, "data") ? str_field(it, "type") : NULL;
        sdrt_error *ce = api->call(req->job, t ? t : dtype, NULL, NULL);
        if (ce) {
            sdrt_error *e = api->error_new(ce->code, NULL, "items[%d].type: %s", i, ce->message);
            api->error_free(ce);
            return e;
        }
    }
    pthread_mutex_lock(&pl->st.lock);
    batch *b = store_batch_new(&pl->st, now_s());
    b->items = calloc((size_t)n, sizeof *b->items);
    b->n = n;
    b->priority = strdup(prio ? prio : "normal");
    for (int i = 0; i < n; i++) {
        const cJSON *it = cJSON_GetArrayItem(items, i);
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(it, "data");
        const char *t = data ? str_field(it, "type") : NULL;
        b->items[i].type = strdup(t ? t : dtype);
        b->items[i].data = cJSON_Duplicate(data ? data : it, 1);
        b->items[i].state = PS_QUEUED;
    }
    store_batches_trim(&pl->st);
    char bid[32];
    snprintf(bid, sizeof bid, "%s", b->id);
    pthread_mutex_unlock(&pl->st.lock);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "execute"))) {
        /* Create and run at once (the old pipeline_manager "batch"). */
        pthread_mutex_lock(&pl->st.lock);
        b = store_batch_find(&pl->st, bid);
        if (b) b->state = PS_RUNNING;
        pthread_mutex_unlock(&pl->st.lock);
        sdrt_error *e = b ? run_batch(pl, req->job, b) : NULL;
        if (e) return e;
        pthread_mutex_lock(&pl->st.lock);
        b = store_batch_find(&pl->st, bid);
        cJSON *o = b ? store_batch_json(b, 1) : cJSON_CreateObject();
        pthread_mutex_unlock(&pl->st.lock);
        *result = to_host(api, o);
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "batch_id", bid);
    cJSON_AddStringToObject(o, "status", "queued");
    cJSON_AddNumberToObject(o, "total", n);
    *result = to_host(api, o);
    return NULL;
}

/* Runs the items in order, each alone: a failing item fails alone. Called
 * with b->state already PS_RUNNING (so delete defers its free). */
static sdrt_error *run_batch(plugin *pl, sdrt_job *job, batch *b) {
    const sdrt_host_api *api = pl->api;
    pthread_mutex_lock(&pl->st.lock);
    b->t_start = now_s();
    int n = b->n;
    pthread_mutex_unlock(&pl->st.lock);
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&pl->st.lock);
        int stop = b->cancel || api->is_cancelled(job);
        batch_item *it = &b->items[i];
        if (stop || it->state != PS_QUEUED) {
            if (it->state == PS_QUEUED) it->state = PS_CANCELLED;
            pthread_mutex_unlock(&pl->st.lock);
            continue;
        }
        it->state = PS_RUNNING;
        char *text = cJSON_PrintUnformatted(it->data);
        char *type = strdup(it->type);
        pthread_mutex_unlock(&pl->st.lock);
        api->wait_if_paused(job);
        char *res = NULL;
        sdrt_error *e = api->call(job, type, text, &res);
        free(text);
        free(type);
        pthread_mutex_lock(&pl->st.lock);
        if (e) {
            it->state = e->code == SDRT_CANCELLED ? PS_CANCELLED : PS_FAILED;
            it->error = strdup(e->message);
            it->error_code = strdup(sdrt_status_name(e->code));
        } else {
            it->state = PS_COMPLETED;
            it->result = cJSON_Parse(res ? res : "{}");
        }
        pstate st = it->state;
        pthread_mutex_unlock(&pl->st.lock);
        api->free(res);
        cJSON *ev = cJSON_CreateObject();
        cJSON_AddStringToObject(ev, "batch_id", b->id);
        cJSON_AddNumberToObject(ev, "item", i);
        cJSON_AddNumberToObject(ev, "items", n);
        cJSON_AddStringToObject(ev, "status", pstate_name(st));
        if (e) cJSON_AddStringToObject(ev, "error_code", sdrt_status_name(e->code));
        event(pl, job, "batch_item", ev);
        api->error_free(e);
    }
    pthread_mutex_lock(&pl->st.lock);
    int counts[6] = {0};
    for (int i = 0; i < n; i++) counts[b->items[i].state]++;
    b->state = counts[PS_CANCELLED] ? PS_CANCELLED : counts[PS_COMPLETED] == 0 ? PS_FAILED : PS_COMPLETED;
    b->t_end = now_s();
    int gone = b->deleted;
    pthread_mutex_unlock(&pl->st.lock);
    if (gone) {
        store_batch_free(b);
        return api->error_new(SDRT_CANCELLED, NULL, "batch deleted while it ran (processing.batch_delete)");
    }
    return NULL;
}

static sdrt_error *need_batch(plugin *pl, const cJSON *d, const char **id) {
    *id = str_field(d, "batch_id");
    return *id ? NULL : pl->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "batch_id: is required");
}

static sdrt_error *h_batch_execute(plugin *pl, const sdrt_request *req, const cJSON *d, char **result) {
    const char *id;
    sdrt_error *e = need_batch(pl, d, &id);
    if (e) return e;
    pthread_mutex_lock(&pl->st.lock);
    batch *b = store_batch_find(&pl->st, id);
    if (!b) {
        pthread_mutex_unlock(&pl->st.lock);
        return pl->api->error_new(SDRT_NOT_FOUND, NULL, "batch_id: no batch '%s'", id);
    }
    if (b->state != PS_QUEUED) {
        const char *st = pstate_name(b->state);
        pthread_mutex_unlock(&pl->st.lock);
        return pl->api->error_new(SDRT_FAILED_PRECONDITION, NULL, "batch_id: batch '%s' is %s; only a queued batch runs",
                                  id, st);
    }
    b->state = PS_RUNNING;
    pthread_mutex_unlock(&pl->st.lock);
    e = run_batch(pl, req->job, b);
    if (e) return e;
    pthread_mutex_lock(&pl->st.lock);
    b = store_batch_find(&pl->st, id);
    cJSON *o = b ? store_batch_json(b, 1) : cJSON_CreateObject();
    pthread_mutex_unlock(&pl->st.lock);
    *result = to_host(pl->api, o);
    return NULL;
}

static sdrt_error *h_batch(plugin *pl, const cJSON *d, char **result) {
    const char *id;
    sdrt_error *e = need_batch(pl, d, &id);
    if (e) return e;
    pthread_mutex_lock(&pl->st.lock);
    batch *b = store_batch_find(&pl->st, id);
    cJSON *o = b ? store_batch_json(b, 1) : NULL;
    pthread_mutex_unlock(&pl->st.lock);
    if (!o) return pl->api->error_new(SDRT_NOT_FOUND, NULL, "batch_id: no batch '%s'", id);
    *result = to_host(pl->api, o);
    return NULL;
}

static sdrt_error *h_batches(plugin *pl, const cJSON *d, char **result) {
    const char *status = str_field(d, "status");
    if (status && pstate_from_name(status) < 0)
        return pl->api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                  "status: '%s' is not one of queued, running, completed, failed, cancelled", status);
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "batches");
    pthread_mutex_lock(&pl->st.lock);
    for (batch *b = pl->st.batches; b; b = b->next)
        if (!status || strcmp(pstate_name(b->state), status) == 0) cJSON_AddItemToArray(arr, store_batch_json(b, 0));
    pthread_mutex_unlock(&pl->st.lock);
    *result = to_host(pl->api, o);
    return NULL;
}

static sdrt_error *h_batch_delete(plugin *pl, const cJSON *d, char **result) {
    const char *id;
    sdrt_error *e = need_batch(pl, d, &id);
    if (e) return e;
    pthread_mutex_lock(&pl->st.lock);
    batch *b = store_batch_find(&pl->st, id);
    if (!b) {
        pthread_mutex_unlock(&pl->st.lock);
        return pl->api->error_new(SDRT_NOT_FOUND, NULL, "batch_id: no batch '%s'", id);
    }
    /* Items not run are cancelled; finished outputs (files) are kept and
     * listed in the answer. */
    int cancelled = 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "batch_id", id);
    cJSON_AddTrueToObject(o, "deleted");
    cJSON *kept = cJSON_AddArrayToObject(o, "kept");
    for (int i = 0; i < b->n; i++) {
        if (b->items[i].state == PS_QUEUED) {
            b->items[i].state = PS_CANCELLED;
            cancelled++;
        }
        if (b->items[i].state == PS_COMPLETED && b->items[i].result) {
            cJSON *k = cJSON_CreateObject();
            cJSON_AddNumberToObject(k, "index", i);
            cJSON_AddItemToObject(k, "result", cJSON_Duplicate(b->items[i].result, 1));
            cJSON_AddItemToArray(kept, k);
        }
    }
    b->cancel = 1;
    cJSON_AddNumberToObject(o, "cancelled_items", cancelled);
    cJSON_AddBoolToObject(o, "was_running", b->state == PS_RUNNING);
    store_batch_remove(&pl->st, b);
    pthread_mutex_unlock(&pl->st.lock);
    *result = to_host(pl->api, o);
    return NULL;
}

/* ---- status ------------------------------------------------------------- */

/* One plugin's answer inside the status, or {"error", "error_code"}. */
static void add_call(plugin *pl, sdrt_job *job, cJSON *o, const char *key, const char *type) {
    char *res = NULL;
    sdrt_error *e = pl->api->call(job, type, "{}", &res);
    if (e) {
        cJSON *x = cJSON_AddObjectToObject(o, key);
        cJSON_AddStringToObject(x, "error", e->message);
        cJSON_AddStringToObject(x, "error_code", sdrt_status_name(e->code));
        pl->api->error_free(e);
        return;
    }
    cJSON *r = cJSON_Parse(res ? res : "{}");
    pl->api->free(res);
    cJSON_AddItemToObject(o, key, r ? r : cJSON_CreateObject());
}

static sdrt_error *h_status(plugin *pl, const sdrt_request *req, char **result) {
    cJSON *o = cJSON_CreateObject();
    add_call(pl, req->job, o, "host", "host.health");
    add_call(pl, req->job, o, "jobs", "host.jobs");
    add_call(pl, req->job, o, "plugins", "host.plugins");
    add_call(pl, req->job, o, "models", "model.list");
    add_call(pl, req->job, o, "devices", "device.list");
    cJSON *ss = cJSON_AddObjectToObject(o, "sessions");
    cJSON *bs = cJSON_AddObjectToObject(o, "batches");
    int sc[6] = {0}, bc[6] = {0};
    pthread_mutex_lock(&pl->st.lock);
    for (session *s = pl->st.sessions; s; s = s->next) sc[s->state]++;
    for (batch *b = pl->st.batches; b; b = b->next) bc[b->state]++;
    pthread_mutex_unlock(&pl->st.lock);
    for (int k = 0; k < 6; k++) {
        cJSON_AddNumberToObject(ss, pstate_name((pstate)k), sc[k]);
        cJSON_AddNumberToObject(bs, pstate_name((pstate)k), bc[k]);
    }
    *result = to_host(pl->api, o);
    return NULL;
}

/* ---- dispatch ----------------------------------------------------------- */

static sdrt_error *handle(void *instance, const sdrt_request *req, char **result) {
    plugin *pl = instance;
    *result = NULL;
    cJSON *d = cJSON_Parse(req->data_json ? req->data_json : "{}");
    if (!cJSON_IsObject(d)) {
        cJSON_Delete(d);
        return pl->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "data: expected a JSON object");
    }
    const char *t = req->type;
    sdrt_error *e;
    if (strcmp(t, "processing.workflows") == 0) e = h_workflows(pl, result);
    else if (strcmp(t, "processing.workflow") == 0) e = h_workflow(pl, d, result);
    else if (strcmp(t, "processing.execute") == 0) e = h_execute(pl, req, d, result);
    else if (strcmp(t, "processing.sessions") == 0) e = h_sessions(pl, d, result);
    else if (strcmp(t, "processing.session") == 0) e = h_session(pl, d, result);
    else if (strcmp(t, "processing.control") == 0) e = h_control(pl, req, d, result);
    else if (strcmp(t, "processing.delete") == 0) e = h_delete(pl, d, result);
    else if (strcmp(t, "processing.batch_create") == 0) e = h_batch_create(pl, req, d, result);
    else if (strcmp(t, "processing.batch_execute") == 0) e = h_batch_execute(pl, req, d, result);
    else if (strcmp(t, "processing.batch") == 0) e = h_batch(pl, d, result);
    else if (strcmp(t, "processing.batches") == 0) e = h_batches(pl, d, result);
    else if (strcmp(t, "processing.batch_delete") == 0) e = h_batch_delete(pl, d, result);
    else if (strcmp(t, "processing.status") == 0) e = h_status(pl, req, result);
    else e = pl->api->error_new(SDRT_UNKNOWN_TYPE, NULL, "type: '%s' is not served by the processing plugin", t);
    cJSON_Delete(d);
    return e;
}

static const sdrt_plugin_vtable vtable = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_plugin_vtable, get_interface),
    .init = init,
    .shutdown = shutdown,
    .handle = handle,
    .get_interface = NULL,
};

static const char *const message_types[] = {
    "processing.workflows", "processing.workflow",     "processing.execute",       "processing.sessions",
    "processing.session",   "processing.control",      "processing.delete",        "processing.batch_create",
    "processing.batch_execute", "processing.batch",    "processing.batches",       "processing.batch_delete",
    "processing.status",    NULL};

static const sdrt_plugin_desc desc = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable),
    .abi_major = SDRT_ABI_MAJOR,
    .abi_minor = 1,
    .id = "org.sdrt.processing",
    .version = "0.1.0",
    .domain = "processing",
    .description = "Workflows (templates and user steps) run as sessions, batches of requests, aggregated status",
    .message_types = message_types,
    .vtable = &vtable,
};

SDRT_PLUGIN_DEFINE(processing, desc)
