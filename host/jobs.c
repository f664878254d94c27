/* host/jobs.c - the job table, the bounded priority queue, the worker pool
 * and the watchdog that enforces deadlines. Every job gets exactly one final
 * response: job_respond() lets only its first caller through. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host.h"
#include "ledger.h"
#include "os.h"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_work = PTHREAD_COND_INITIALIZER;
static pthread_cond_t g_idle = PTHREAD_COND_INITIALIZER;
static pthread_cond_t g_watch = PTHREAD_COND_INITIALIZER; /* wakes the watchdog */
static int g_queued;
static sdrt_job *g_table;        /* every job not yet finished by its worker */
static int g_in_flight;          /* jobs not yet answered */
static pthread_t *g_workers;
static int g_n_workers;          /* workers actually started */
static pthread_t g_watchdog;
static int g_watchdog_started;
static int g_stop;
static const host_config *g_cfg;
static double g_t0;
/* Workers stuck in a plugin that ignores cancel are replaced (bounded by
 * max_stuck_workers): g_stuck of them are still inside the plugin, g_extra
 * replacement workers run (detached), and g_retire of those should end now
 * that the worker they replaced came back. All guarded by g_lock. */
static int g_stuck, g_extra, g_retire;

double host_now(void) { return os_monotonic_s() - g_t0; }

__attribute__((constructor)) static void jobs_clock_init(void) { g_t0 = os_monotonic_s(); }

void job_release(sdrt_job *job) {
    if (!job || atomic_fetch_sub(&job->refs, 1) != 1) return;
    free(job->request_id);
    free(job->track_id);
    free(job->type);
    free(job->data_json);
    cJSON_Delete(job->rpc_id);
    cJSON_Delete(job->warnings);
    free(job->reply_extra);
    free(job);
}

void job_add_warning(sdrt_job *job, const char *message) {
    pthread_mutex_lock(&g_lock);
    cJSON_AddItemToArray(job->warnings, cJSON_CreateString(message));
    pthread_mutex_unlock(&g_lock);
}

static atomic_long g_rss_kb;       /* last sample of os_resident_kb */
static _Atomic double g_rss_time;  /* host clock of that sample */

static long sample_rss(void) {
    long kb = os_resident_kb();
    atomic_store(&g_rss_kb, kb);
    atomic_store(&g_rss_time, host_now());
    return kb;
}

long jobs_resident_kb_recent(void) {
    double t = atomic_load(&g_rss_time);
    if (t <= 0 || host_now() - t > 1.0) return sample_rss();
    return atomic_load(&g_rss_kb);
}

/* Raises the job's peak resident size to `kb`. */
static void note_rss(sdrt_job *job, long kb) {
    long cur = atomic_load(&job->peak_rss_kb);
    while (kb > cur && !atomic_compare_exchange_weak(&job->peak_rss_kb, &cur, kb)) {
    }
}

/* Raises the job's peak device allocation to `bytes` (< 0: no device
 * reports one). */
static void note_dev(sdrt_job *job, int64_t bytes) {
    if (bytes < 0) return;
    int64_t cur = atomic_load(&job->peak_dev_bytes);
    while (bytes > cur && !atomic_compare_exchange_weak(&job->peak_dev_bytes, &cur, bytes)) {
    }
    atomic_store(&job->dev_seen, 1);
}

/* The state word a final answer moves the job to. */
static const char *final_status(const sdrt_error *err) {
    if (!err) return "completed";
    return err->code == SDRT_CANCELLED ? "cancelled" : "failed";
}

static void release_held(sdrt_job *held);

int job_respond(sdrt_job *job, const char *result_json, const sdrt_error *err) {
    if (atomic_exchange(&job->responded, 1)) return 0;
    double now = host_now();
    note_rss(job, sample_rss());
    note_dev(job, registry_device_allocated_bytes());
    long peak = atomic_load(&job->peak_rss_kb);
    proto_metrics m = {
        .processing_s = now - job->t_submit,
        .execution_s = job->t_start > 0 ? now - job->t_start : 0,
        .peak_rss_mb = peak > 0 ? (double)peak / 1024.0 : -1,
        .device_mb = (double)atomic_load(&job->peak_dev_bytes) / (1024.0 * 1024.0),
        .device_known = atomic_load(&job->dev_seen),
    };
    /* The last event before the final line says how the job ended. */
    events_status_final(job, final_status(err), atomic_load(&job->state) == JOB_QUEUED ? "queued" : "running");
    pthread_mutex_lock(&g_lock);
    cJSON *warnings = cJSON_Duplicate(job->warnings, 1);
    pthread_mutex_unlock(&g_lock);
    char *line = err ? proto_format_error(job->proto, job->request_id, job->rpc_id, err, warnings, &m)
                     : proto_format_success(job->proto, job->request_id, job->rpc_id, result_json, warnings, &m);
    cJSON_Delete(warnings);
    char *with = line && job->reply_extra ? legacy_reply_line(line, job->reply_extra) : NULL;
    if (with) {
        free(line);
        line = with;
    }
    if (line && job->sink && job->sink->line) job->sink->line(job->sink->ctx, line, job->slot);
    free(line);
    /* The requests it started go out after its answer, which names them
     * (before the in-flight count drops: a shutdown waiting for idle must
     * not slip between). */
    pthread_mutex_lock(&g_lock);
    sdrt_job *held = job->held;
    job->held = NULL;
    pthread_mutex_unlock(&g_lock);
    release_held(held);
    pthread_mutex_lock(&g_lock);
    g_in_flight--;
    pthread_cond_broadcast(&g_idle);
    pthread_mutex_unlock(&g_lock);
    return 1;
}

static void table_remove(sdrt_job *job) {
    for (sdrt_job **pp = &g_table; *pp; pp = &(*pp)->next)
        if (*pp == job) {
            *pp = job->next;
            job->next = NULL;
            return;
        }
}

/* The queue links through a separate list per priority; reuse `next` for the
 * table only, so queue nodes are kept in a small side array. */
typedef struct qnode {
    sdrt_job *job;
    struct qnode *next;
} qnode;
static qnode *g_qhead[PRIORITY_LEVELS], *g_qtail[PRIORITY_LEVELS];

static void queue_push(sdrt_job *job) {
    qnode *n = calloc(1, sizeof *n);
    n->job = job;
    int p = job->priority;
    if (g_qtail[p]) g_qtail[p]->next = n;
    else g_qhead[p] = n;
    g_qtail[p] = n;
    g_queued++;
}

static sdrt_job *queue_pop(void) {
    for (int p = PRIORITY_LEVELS - 1; p >= 0; p--) {
        qnode *n = g_qhead[p];
        if (!n) continue;
        g_qhead[p] = n->next;
        if (!g_qhead[p]) g_qtail[p] = NULL;
        sdrt_job *job = n->job;
        free(n);
        g_queued--;
        return job;
    }
    return NULL;
}

static int queue_remove(sdrt_job *job) {
    for (int p = 0; p < PRIORITY_LEVELS; p++) {
        qnode *prev = NULL;
        for (qnode *n = g_qhead[p]; n; prev = n, n = n->next) {
            if (n->job != job) continue;
            if (prev) prev->next = n->next;
            else g_qhead[p] = n->next;
            if (g_qtail[p] == n) g_qtail[p] = prev;
            free(n);
            g_queued--;
            return 1;
        }
    }
    return 0;
}

static sdrt_job *table_find_live(const char *track_id) {
    for (sdrt_job *j = g_table; j; j = j->next)
        if (!atomic_load(&j->responded) && strcmp(j->track_id, track_id) == 0) return j;
    return NULL;
}

static sdrt_error *cancel_error(const sdrt_job *job) {
    int why = atomic_load(&job->cancelled);
    if (why == 2) {
        double t = job->deadline - job->t_submit;
        return error_new(SDRT_DEADLINE_EXCEEDED, NULL, "timeout: %s exceeded its %.3g s timeout", job->type, t);
    }
    if (why == 3) return error_new(SDRT_CANCELLED, NULL, "%s cancelled: the host is shutting down", job->type);
    return error_new(SDRT_CANCELLED, NULL, "%s cancelled by host.cancel", job->type);
}

static void run_job(sdrt_job *job) {
    job->t_start = host_now();
    note_rss(job, sample_rss());
    note_dev(job, registry_device_allocated_bytes());
    atomic_store(&job->state, JOB_RUNNING);
    events_status(job, "running", "queued");
    /* The first stage of every job, before the plugin reports its own
     * (loading, inference, decode, postprocessing). */
    sdrt_progress init = {.struct_size = SDRT_STRUCT_SIZE(sdrt_progress, message), .progress = 0, .stage = "initialization"};
    services_api()->progress(job, &init);
    host_plugin *p = job->plugin;
    sdrt_request req = {
        .struct_size = SDRT_STRUCT_SIZE(sdrt_request, deadline),
        .type = job->type,
        .request_id = job->track_id,
        .data_json = job->data_json,
        .job = job,
        .deadline = job->deadline,
    };
    char *result = NULL;
    atomic_fetch_add(&p->active_calls, 1);
    ledger_enter(job->slot, p->desc->id); /* a crash now names this plugin and request */
    sdrt_error *err = p->desc->vtable->handle(p->instance, &req, &result);
    ledger_leave();
    atomic_fetch_sub(&p->active_calls, 1);
    int why = atomic_load(&job->cancelled);
    if (why == 2 || (why && err)) {
        /* A deadline always reads as DEADLINE_EXCEEDED; a cancel as CANCELLED
         * whatever error the plugin chose to return for it. */
        error_free(err);
        err = cancel_error(job);
    }
    job_respond(job, result, err);
    error_free(err);
    free(result);
}

static void *worker_main(void *arg) {
    int extra = arg != NULL;
    pthread_mutex_lock(&g_lock);
    for (;;) {
        while (!g_stop && g_queued == 0 && !(extra && g_retire > 0)) pthread_cond_wait(&g_work, &g_lock);
        if (extra && g_retire > 0) {
            g_retire--; /* the worker this one replaced is back */
            g_extra--;
            break;
        }
        if (g_queued == 0 && g_stop) break;
        sdrt_job *job = queue_pop();
        pthread_mutex_unlock(&g_lock);
        if (atomic_load(&job->cancelled)) {
            sdrt_error *e = cancel_error(job);
            job_respond(job, NULL, e);
            error_free(e);
        } else {
            run_job(job);
        }
        pthread_mutex_lock(&g_lock);
        table_remove(job);
        if (job->abandoned == 2) {
            /* Back from a plugin that ignored cancel: a replacement took this
             * worker's place, so one worker retires. */
            g_stuck--;
            g_retire++;
            pthread_cond_broadcast(&g_work);
        }
        pthread_mutex_unlock(&g_lock);
        job_release(job); /* the table's reference */
        pthread_mutex_lock(&g_lock);
    }
    pthread_mutex_unlock(&g_lock);
    return NULL;
}

static int start_extra_worker(void *arg) {
    (void)arg;
    pthread_t t;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) return -1;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, worker_main, (void *)1);
    pthread_attr_destroy(&attr);
    return rc == 0 ? 0 : -1;
}

/* A worker stays inside a plugin that ignored cancel after its job was
 * answered: start another so the host keeps its full capacity. Caller holds
 * g_lock. */
static void replace_stuck_worker(sdrt_job *j) {
    if (j->abandoned || atomic_load(&j->state) != JOB_RUNNING) return;
    j->abandoned = 1;
    if (g_stop || g_stuck >= g_cfg->max_stuck_workers) {
        log_msg(NULL, SDRT_LOG_WARN, "%s '%s' ignores cancel; max_stuck_workers (%d) reached, not replacing its worker",
                j->type, j->track_id, g_cfg->max_stuck_workers);
        return;
    }
    /* New threads inherit the mask: keep stop signals for the dispatch thread. */
    if (os_with_stop_blocked(start_extra_worker, NULL) != 0) return;
    j->abandoned = 2;
    g_stuck++;
    g_extra++;
    log_msg(NULL, SDRT_LOG_WARN, "%s '%s' ignores cancel: answered, its worker replaced (%d stuck)", j->type,
            j->track_id, g_stuck);
}

/* A pause past max_pause_s ends: the job resumes, and says so. Caller holds
 * g_lock. */
static void bound_pause(sdrt_job *j, double now) {
    if (!atomic_load(&j->paused) || g_cfg->max_pause_s <= 0 || now - j->paused_at < g_cfg->max_pause_s) return;
    atomic_store(&j->paused, 0);
    j->paused_at = 0;
    events_status(j, "resumed", "paused");
    char msg[160];
    snprintf(msg, sizeof msg, "host.pause: paused longer than max_pause_s (%g s), resumed", g_cfg->max_pause_s);
    cJSON_AddItemToArray(j->warnings, cJSON_CreateString(msg));
}

void jobs_tick(void) {
    double now = host_now();
    sdrt_job *to_answer[64];
    int n = 0;
    /* Peak memory of running jobs, sampled at the watchdog's 10 ms tick. */
    long rss = g_table ? sample_rss() : 0;
    int64_t dev = g_table ? registry_device_allocated_bytes() : -1;
    pthread_mutex_lock(&g_lock);
    for (sdrt_job *j = g_table; j && n < 64; j = j->next) {
        if (atomic_load(&j->responded)) continue;
        if (atomic_load(&j->state) == JOB_RUNNING) {
            note_rss(j, rss);
            note_dev(j, dev);
        }
        bound_pause(j, now);
        if (j->deadline > 0 && now >= j->deadline && !atomic_load(&j->cancelled)) {
            atomic_store(&j->cancelled, 2);
            j->cancel_time = now;
        }
        if (!atomic_load(&j->cancelled)) continue;
        if (atomic_load(&j->state) == JOB_QUEUED && queue_remove(j)) {
            /* Answered here; the table keeps it until removed below. */
            atomic_fetch_add(&j->refs, 1);
            to_answer[n++] = j;
        } else if (now - j->cancel_time >= g_cfg->cancel_grace_s) {
            /* The plugin ignores cancellation: answer for it. */
            atomic_fetch_add(&j->refs, 1);
            to_answer[n++] = j;
            replace_stuck_worker(j);
        }
    }
    pthread_mutex_unlock(&g_lock);
    for (int i = 0; i < n; i++) {
        sdrt_job *j = to_answer[i];
        sdrt_error *e = cancel_error(j);
        job_respond(j, NULL, e);
        error_free(e);
        if (atomic_load(&j->state) == JOB_QUEUED) {
            pthread_mutex_lock(&g_lock);
            table_remove(j);
            pthread_mutex_unlock(&g_lock);
            job_release(j); /* table's */
        }
        job_release(j);
    }
}

/* Ticks every 10 ms while some job is in the table (deadlines, ignored
 * cancels) and sleeps on g_watch otherwise, so an idle host does not wake
 * up 100 times a second. */
static void *watchdog_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&g_lock);
    while (!g_stop) {
        if (!g_table) {
            pthread_cond_wait(&g_watch, &g_lock);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g_watch, &g_lock, &ts);
        if (g_stop) break;
        pthread_mutex_unlock(&g_lock);
        jobs_tick();
        pthread_mutex_lock(&g_lock);
    }
    pthread_mutex_unlock(&g_lock);
    return NULL;
}

/* The watchdog only formats and writes error lines: a small stack is plenty
 * and keeps its reservation out of the way. Workers keep the default size
 * because plugin code (the whole inference pipeline) runs on them. */
#define WATCHDOG_STACK_BYTES (256 * 1024)

static int start_watchdog(void) {
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) return -1;
    pthread_attr_setstacksize(&attr, WATCHDOG_STACK_BYTES);
    int rc = pthread_create(&g_watchdog, &attr, watchdog_main, NULL);
    pthread_attr_destroy(&attr);
    g_watchdog_started = rc == 0;
    return rc == 0 ? 0 : -1;
}

static int start_threads(void *arg) {
    const host_config *cfg = arg;
    for (int i = 0; i < cfg->workers; i++) {
        if (pthread_create(&g_workers[i], NULL, worker_main, NULL) != 0) return -1;
        g_n_workers++;
    }
    return start_watchdog();
}

int jobs_start(const host_config *cfg) {
    g_cfg = cfg;
    g_stop = 0;
    g_n_workers = 0;
    g_workers = calloc((size_t)cfg->workers, sizeof *g_workers);
    if (!g_workers) return -1;
    /* SIGTERM/SIGINT go to the dispatch thread, whose poll they interrupt,
     * not to a worker (the threads inherit the blocked mask). */
    return os_with_stop_blocked(start_threads, (void *)cfg);
}

/* Workers that are stuck in a plugin that ignores cancellation are left
 * behind (detached): the process exits without waiting for them. Safe after
 * a jobs_start that failed part way. */
void jobs_stop(void) {
    pthread_mutex_lock(&g_lock);
    g_stop = 1;
    pthread_cond_broadcast(&g_work);
    pthread_cond_broadcast(&g_watch);
    pthread_mutex_unlock(&g_lock);
    if (g_watchdog_started) pthread_join(g_watchdog, NULL);
    g_watchdog_started = 0;
    for (int i = 0; i < g_n_workers; i++) pthread_detach(g_workers[i]);
    free(g_workers);
    g_workers = NULL;
    g_n_workers = 0;
}

sdrt_status jobs_submit(sdrt_job *job) {
    static atomic_int auto_id;
    pthread_mutex_lock(&g_lock);
    if (job->request_id && table_find_live(job->request_id)) {
        pthread_mutex_unlock(&g_lock);
        return SDRT_ALREADY_EXISTS;
    }
    if (g_queued >= g_cfg->queue_limit) {
        pthread_mutex_unlock(&g_lock);
        return SDRT_BUSY;
    }
    if (!job->track_id) {
        char buf[32];
        snprintf(buf, sizeof buf, "auto-%d", atomic_fetch_add(&auto_id, 1) + 1);
        job->track_id = strdup(job->request_id ? job->request_id : buf);
    }
    atomic_store(&job->refs, 1);
    atomic_store(&job->state, JOB_QUEUED);
    job->t_submit = host_now();
    if (!g_table) pthread_cond_signal(&g_watch); /* the watchdog sleeps while the table is empty */
    job->next = g_table;
    g_table = job;
    g_in_flight++;
    /* Before the push: a worker may take the job at once and say "running". */
    events_status(job, "queued", NULL);
    queue_push(job);
    pthread_cond_signal(&g_work);
    pthread_mutex_unlock(&g_lock);
    return SDRT_OK;
}

sdrt_status jobs_submit_after(sdrt_job *parent, sdrt_job *job) {
    pthread_mutex_lock(&g_lock);
    if (atomic_load(&parent->responded)) { /* answered already (abandoned by the watchdog) */
        pthread_mutex_unlock(&g_lock);
        return jobs_submit(job);
    }
    int dup = job->request_id && table_find_live(job->request_id) != NULL;
    for (sdrt_job *h = parent->held; h && !dup; h = h->next)
        dup = job->request_id && h->request_id && strcmp(h->request_id, job->request_id) == 0;
    sdrt_status st = dup ? SDRT_ALREADY_EXISTS : g_queued >= g_cfg->queue_limit ? SDRT_BUSY : SDRT_OK;
    if (st == SDRT_OK) {
        job->next = parent->held;
        parent->held = job;
    }
    pthread_mutex_unlock(&g_lock);
    return st;
}

/* Queues the held requests in the order they were started; one the queue
 * no longer takes (full since, or its id sent meanwhile) is answered here
 * under its id. */
static void release_held(sdrt_job *held) {
    sdrt_job *order = NULL;
    while (held) { /* newest first -> oldest first */
        sdrt_job *n = held->next;
        held->next = order;
        order = held;
        held = n;
    }
    while (order) {
        sdrt_job *j = order;
        order = j->next;
        j->next = NULL;
        sdrt_status st = jobs_submit(j);
        if (st == SDRT_OK) continue;
        sdrt_error *e = st == SDRT_BUSY ? error_new(SDRT_BUSY, NULL, "queue full (queue_limit %d requests waiting): "
                                                                     "retry later", g_cfg->queue_limit)
                                        : error_new(SDRT_ALREADY_EXISTS, NULL, "request_id: '%s' is already in flight",
                                                    j->request_id);
        char *line = proto_format_error(j->proto, j->request_id, j->rpc_id, e, NULL, NULL);
        if (line && j->sink && j->sink->line) j->sink->line(j->sink->ctx, line, -1);
        free(line);
        error_free(e);
        atomic_store(&j->refs, 1);
        job_release(j);
    }
}

int jobs_is_live(const char *request_id) {
    pthread_mutex_lock(&g_lock);
    int live = table_find_live(request_id) != NULL;
    pthread_mutex_unlock(&g_lock);
    return live;
}

sdrt_status jobs_cancel(const char *request_id) {
    pthread_mutex_lock(&g_lock);
    sdrt_job *j = table_find_live(request_id);
    if (j && !atomic_load(&j->cancelled)) {
        j->cancel_time = host_now();
        atomic_store(&j->cancelled, 1);
    }
    pthread_mutex_unlock(&g_lock);
    if (j) jobs_tick(); /* a queued job is answered at once */
    return j ? SDRT_OK : SDRT_NOT_FOUND;
}

sdrt_status jobs_stop_after_item(const char *request_id) {
    pthread_mutex_lock(&g_lock);
    sdrt_job *j = table_find_live(request_id);
    int queued = j && atomic_load(&j->state) == JOB_QUEUED;
    if (j) atomic_store(&j->stop_after, 1);
    pthread_mutex_unlock(&g_lock);
    if (queued) return jobs_cancel(request_id);
    return j ? SDRT_OK : SDRT_NOT_FOUND;
}

sdrt_status jobs_pause(const char *request_id, int pause) {
    pthread_mutex_lock(&g_lock);
    sdrt_job *j = table_find_live(request_id);
    int changed = 0;
    if (j) {
        if (pause && !atomic_load(&j->paused)) j->paused_at = host_now();
        if (!pause) j->paused_at = 0;
        changed = atomic_exchange(&j->paused, pause) != pause;
        if (changed) events_status(j, pause ? "paused" : "resumed", pause ? "running" : "paused");
    }
    pthread_mutex_unlock(&g_lock);
    return j ? SDRT_OK : SDRT_NOT_FOUND;
}

void jobs_cancel_all(int reason) {
    double now = host_now();
    pthread_mutex_lock(&g_lock);
    for (sdrt_job *j = g_table; j; j = j->next) {
        if (atomic_load(&j->cancelled)) continue;
        j->cancel_time = now;
        atomic_store(&j->cancelled, reason);
    }
    pthread_mutex_unlock(&g_lock);
    jobs_tick();
}

static const char *state_name(job_state s) {
    return s == JOB_QUEUED ? "queued" : s == JOB_RUNNING ? "running" : "done";
}

cJSON *jobs_list(void) {
    cJSON *arr = cJSON_CreateArray();
    double now = host_now();
    pthread_mutex_lock(&g_lock);
    for (sdrt_job *j = g_table; j; j = j->next) {
        if (atomic_load(&j->responded)) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "request_id", j->track_id);
        cJSON_AddStringToObject(o, "type", j->type);
        cJSON_AddStringToObject(o, "state", atomic_load(&j->paused) ? "paused" : state_name(atomic_load(&j->state)));
        cJSON_AddStringToObject(o, "stage", j->stage[0] ? j->stage : state_name(atomic_load(&j->state)));
        cJSON_AddNumberToObject(o, "progress", j->progress);
        if (j->steps > 0) {
            cJSON_AddNumberToObject(o, "step", j->step);
            cJSON_AddNumberToObject(o, "steps", j->steps);
        }
        cJSON_AddNumberToObject(o, "age_s", now - j->t_submit);
        if (atomic_load(&j->paused)) {
            /* Since when, and when max_pause_s ends the pause. */
            proto_add_fixed(o, "paused_s", now - j->paused_at, 3);
            if (g_cfg->max_pause_s > 0)
                proto_add_fixed(o, "resumes_in_s", g_cfg->max_pause_s - (now - j->paused_at), 3);
        }
        cJSON_AddBoolToObject(o, "cancel_requested", atomic_load(&j->cancelled) != 0);
        cJSON_AddItemToArray(arr, o);
    }
    pthread_mutex_unlock(&g_lock);
    return arr;
}

int jobs_queue_depth(void) {
    pthread_mutex_lock(&g_lock);
    int n = g_queued;
    pthread_mutex_unlock(&g_lock);
    return n;
}

int jobs_in_flight(void) {
    pthread_mutex_lock(&g_lock);
    int n = g_in_flight;
    pthread_mutex_unlock(&g_lock);
    return n;
}

int jobs_wait_idle(double until) {
    pthread_mutex_lock(&g_lock);
    while (g_in_flight > 0 && host_now() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g_idle, &g_lock, &ts);
    }
    int n = g_in_flight;
    pthread_mutex_unlock(&g_lock);
    return n;
}
