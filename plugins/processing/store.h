/* plugins/processing/store.h - the processing plugin's sessions and
 * batches: records kept in memory, bounded, guarded by one mutex. */
#ifndef SDRT_PROCESSING_STORE_H
#define SDRT_PROCESSING_STORE_H

#include <cjson/cJSON.h>
#include <pthread.h>

/* Session and batch item states (the words of the protocol). */
typedef enum pstate { PS_QUEUED, PS_RUNNING, PS_PAUSED, PS_COMPLETED, PS_FAILED, PS_CANCELLED } pstate;
const char *pstate_name(pstate s);
int pstate_from_name(const char *name); /* -1 when not a state word */
int pstate_finished(pstate s);

typedef struct session {
    char id[32];
    char *request_id;     /* the request running it (for host.pause/cancel), NULL when none */
    char *workflow_id;    /* template id, or "custom" */
    cJSON *steps;         /* the validated steps */
    pstate state;
    int current, total;   /* steps done, steps */
    double t_created, t_start, t_end;
    cJSON *results;       /* step id -> result */
    cJSON *inputs;        /* step id -> the data it ran with ($ref values resolved) */
    char *error, *error_code;
    char *failed_step;
    int cancel;           /* processing.control cancel asked */
    struct session *next;
} session;

typedef struct batch_item {
    char *type;
    cJSON *data;
    pstate state;
    cJSON *result;
    char *error, *error_code;
} batch_item;

typedef struct batch {
    char id[32];
    char *priority;
    pstate state;
    int n;
    batch_item *items;
    double t_created, t_start, t_end;
    int cancel;           /* batch_delete while running: the rest is cancelled */
    int deleted;          /* removed from the list; freed by the runner */
    struct batch *next;
} batch;

typedef struct store {
    pthread_mutex_t lock;
    session *sessions;    /* newest first */
    batch *batches;       /* newest first */
    int max_sessions, max_batches;
    unsigned long next_session, next_batch;
} store;

void store_init(store *st, int max_sessions, int max_batches);
void store_fini(store *st);
/* Caller holds st->lock for the rest. */
session *store_session_new(store *st, double now);
session *store_session_find(store *st, const char *id);
void store_session_remove(store *st, session *s);
/* Drops the oldest finished sessions beyond max_sessions. */
void store_sessions_trim(store *st);
cJSON *store_session_json(const session *s, double now, int full);
batch *store_batch_new(store *st, double now);
batch *store_batch_find(store *st, const char *id);
/* Unlinks a batch; frees it unless running (the runner frees it then). */
void store_batch_remove(store *st, batch *b);
void store_batch_free(batch *b);
void store_batches_trim(store *st);
cJSON *store_batch_json(const batch *b, int full);

#endif
