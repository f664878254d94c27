/* host/events.c - event lines of a job (progress, status_change, error, and
 * the plugins' own), honouring the request's "events" choice. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

static void write_event(sdrt_job *job, const char *event_name, const char *data_json) {
    if (!job->events) return; /* "events": false: the final line only */
    char *line = proto_format_event(job->proto, job->request_id, job->rpc_id, event_name, data_json);
    if (line && job->sink && job->sink->line) job->sink->line(job->sink->ctx, line, -1);
    free(line);
}

sdrt_job *job_root(sdrt_job *job) {
    while (job && job->parent) job = job->parent;
    return job;
}

void events_emit(sdrt_job *job, const char *event_name, const char *data_json) {
    /* Events only before the final response (an inner request's: before
     * its outermost caller's). */
    if (!job || atomic_load(&job->responded) || atomic_load(&job_root(job)->responded)) return;
    write_event(job, event_name, data_json ? data_json : "{}");
}

static char *status_json(const sdrt_job *job, const char *status, const char *previous) {
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "status", status);
    if (previous) cJSON_AddStringToObject(d, "previous", previous);
    else cJSON_AddNullToObject(d, "previous");
    cJSON_AddStringToObject(d, "type", job->type);
    char *s = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    return s;
}

void events_status(sdrt_job *job, const char *status, const char *previous) {
    if (!job || !job->events || atomic_load(&job->responded)) return;
    char *s = status_json(job, status, previous);
    if (s) write_event(job, "status_change", s);
    free(s);
}

void events_status_final(sdrt_job *job, const char *status, const char *previous) {
    if (!job || !job->events) return;
    char *s = status_json(job, status, previous);
    if (s) write_event(job, "status_change", s);
    free(s);
}
