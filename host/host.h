/* host/host.h - internal declarations shared by the host's files.
 * Nothing here is ABI: plugins see only sdk/include/sdrt. */
#ifndef SDRT_HOST_INTERNAL_H
#define SDRT_HOST_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "sdrt/plugin.h"

#define SDRT_HOST_VERSION "0.1.0"

/* ---- config (config.c) -------------------------------------------------- */

typedef struct host_config {
    cJSON *root;                /* the merged, validated config document */
    char *path;                 /* file it came from ("" = built-in) */
    char **plugin_paths;
    int n_plugin_paths;
    char **model_roots;
    int n_model_roots;
    char **output_roots;
    int n_output_roots;
    int allow_any_path;
    int workers;
    int queue_limit;
    size_t max_line_bytes;
    double default_timeout_s;
    double shutdown_grace_s;
    double cancel_grace_s;
    int log_level;
    char *schemas_dir;
    void *schemas;              /* schema_set * loaded (and $refs checked) with the
                                   config; owned until host_init takes it */
} host_config;

typedef struct host_cli_overrides {
    const char *config_path;     /* --config, or NULL */
    const char **sets;           /* --set key=value */
    int n_sets;
    const char **model_roots;    /* --model-root */
    int n_model_roots;
    const char **output_roots;   /* --output-root */
    int n_output_roots;
    const char **plugin_paths;   /* --plugin-path */
    int n_plugin_paths;
    const char **embedding_roots; /* --embedding-root */
    int n_embedding_roots;
} host_cli_overrides;

/* Loads the config: --config, else $SDRT_CONFIG, else the default.json next
 * to the installed/build tree, and the schema set of its schemas_dir (every
 * $ref checked). Returns 0, or -1 with a message naming the key (or the
 * schema and the reference) and the problem in err; on -1 nothing is left
 * to free. */
int config_load(host_config *cfg, const host_cli_overrides *ov, char *err, size_t errlen);
void config_free(host_config *cfg);
/* A whole (text) file, NUL-terminated and malloc'd; NULL if it cannot be
 * opened or read. Any thread. */
char *host_read_file(const char *path);
/* The directory of the running executable (static storage). */
const char *config_exe_dir(void);

/* ---- logging (log.c) ---------------------------------------------------- */

void log_set_level(int level);
int log_level_from_name(const char *name);
void log_msg(const char *who, sdrt_log_level level, const char *fmt, ...) SDRT_PRINTF(3, 4);
void log_vmsg(const char *who, sdrt_log_level level, const char *fmt, va_list ap);

/* ---- errors (error.c) --------------------------------------------------- */

sdrt_error *error_new(sdrt_status code, const char *data_json, const char *fmt, ...) SDRT_PRINTF(3, 4);
sdrt_error *error_vnew(sdrt_status code, const char *data_json, const char *fmt, va_list ap);
void error_free(sdrt_error *err);
const char *status_name(sdrt_status code);
int status_rpc_code(sdrt_status code);
sdrt_status status_from_name(const char *name);

/* ---- plugins (loader.c) ------------------------------------------------- */

typedef struct host_plugin {
    struct sdrt_host *self;        /* the handle given to init */
    char *path;
    char *name;                    /* file stem without "sdrt_" */
    void *dl;                      /* dlopen handle; NULL for in-process ones */
    const sdrt_plugin_desc *desc;
    void *instance;
    cJSON *manifest;               /* plugin.json next to the .so, or NULL */
    int initialised;
    atomic_int active_calls;
} host_plugin;

typedef struct host_refusal {
    char *path;
    sdrt_status code;
    char *reason;
    char *data_json;               /* the error's JSON data (e.g. a failing init's), or NULL */
} host_refusal;

typedef struct host_plugins {
    host_plugin **items;
    int count;
    host_refusal *refused;
    int n_refused;
} host_plugins;

/* Loads one shared object and checks its descriptor (ABI versions, required
 * members, manifest agreement). Does not call init. On refusal returns NULL
 * and sets *err. */
host_plugin *loader_open(const char *path, sdrt_error **err);
/* Loads every sdrt_*.so in the config's plugin paths (minus disabled ones),
 * refuses duplicates, and calls init with each plugin's config. Refused and
 * failed plugins are logged and recorded in ps->refused. */
void loader_load_all(host_plugins *ps, const host_config *cfg);
/* Calls init on one opened plugin. */
sdrt_error *loader_init(host_plugin *p, const char *config_json);
void loader_unload_all(host_plugins *ps);
void loader_close(host_plugin *p);
/* The plugin serving `type` ("model.load"): exact message type match. Sets
 * *domain_known when some plugin serves the type's prefix. */
host_plugin *loader_find(const host_plugins *ps, const char *type, int *domain_known);
cJSON *loader_describe(const host_plugin *p);

/* ---- services (services.c) ---------------------------------------------- */

/* The process-wide host services table. */
const sdrt_host_api *services_api(void);
/* Sets what settings_json and resolve_path use. Called once at start. */
void services_configure(const host_config *cfg);
struct sdrt_host *services_host_new(host_plugin *p);
void services_host_free(struct sdrt_host *h);
/* Registry: the plugin that published `id`, or NULL. */
int registry_holders(const host_plugin *p);
void registry_drop_plugin(const host_plugin *p);

/* ---- paths (paths.c) ---------------------------------------------------- */

/* Resolves `path` under `roots` (relative paths against roots[0]); returns a
 * malloc'd absolute path inside one of the roots, or NULL with err set. */
char *paths_resolve(const char *path, char **roots, int n_roots, int allow_any,
                    const char *what, sdrt_error **err);

/* ---- jobs (jobs.c) ------------------------------------------------------ */

typedef enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE } job_state;
typedef enum job_proto { PROTO_ENVELOPE, PROTO_JSONRPC } job_proto;

/* Where a job's events and final response go: stdout lines in serve mode,
 * a callback in `sdrt generate`. */
typedef struct host_sink {
    void (*line)(void *ctx, const char *line);   /* a complete JSON line */
    void *ctx;
} host_sink;

struct sdrt_job {
    char *request_id;          /* as sent, or NULL */
    char *track_id;            /* request_id or a generated "auto-N" */
    char *type;
    char *data_json;
    cJSON *rpc_id;             /* JSON-RPC id (any JSON), or NULL */
    job_proto proto;
    int priority;              /* 0 low, 1 normal, 2 high */
    double t_submit;
    double t_start;
    double deadline;           /* host clock; 0 = none */
    atomic_int cancelled;      /* 1 cancel, 2 deadline, 3 shutdown */
    atomic_int paused;
    atomic_int stop_after;     /* host.cancel {"when":"after_image"} */
    atomic_int responded;
    _Atomic job_state state;
    host_plugin *plugin;
    cJSON *warnings;           /* array of strings; guarded by the jobs lock */
    double progress;
    char stage[32];
    int step, steps;
    double cancel_time;        /* when cancel was asked (host clock) */
    struct sdrt_job *next;     /* queue / table link */
    const host_sink *sink;
    atomic_int refs;
    _Atomic(void *) user;      /* sdrt_host_api.job_set_user; the handling plugin's */
};

double host_now(void);         /* seconds since start, monotonic */

int jobs_start(const host_config *cfg);
void jobs_stop(void);
/* Takes ownership of job. Returns SDRT_OK, SDRT_BUSY (queue full) or
 * SDRT_ALREADY_EXISTS (duplicate in-flight request_id) without taking it. */
sdrt_status jobs_submit(struct sdrt_job *job);
/* host.cancel: SDRT_OK or SDRT_NOT_FOUND. */
sdrt_status jobs_cancel(const char *request_id);
/* host.cancel {"when":"after_image"}: the job stops at its next item
 * boundary (sdrt_host_api.stop_requested); a queued job is cancelled at
 * once since nothing of it is finished. SDRT_OK or SDRT_NOT_FOUND. */
sdrt_status jobs_stop_after_item(const char *request_id);
sdrt_status jobs_pause(const char *request_id, int pause);
cJSON *jobs_list(void);
int jobs_queue_depth(void);
int jobs_in_flight(void);
/* Cancels queued and running jobs whose deadline passed, or forces the
 * response of cancelled jobs whose plugin ignores cancel. Dispatch thread. */
void jobs_tick(void);
/* Blocks until no job is in flight or `until` (host clock) passes. */
int jobs_wait_idle(double until);
/* Cancels every job (shutdown past the grace period). */
void jobs_cancel_all(int reason);
void job_release(struct sdrt_job *job);
/* Thread-safe append to the job's `warnings`. */
void job_add_warning(struct sdrt_job *job, const char *message);

/* ---- protocol (protocol.c, legacy.c) ------------------------------------ */

typedef struct proto_request {
    job_proto proto;
    char *type;                /* canonical */
    char *request_id;          /* NULL if none could be read */
    cJSON *rpc_id;
    cJSON *data;               /* owned */
    int priority;
    double timeout_s;          /* 0 = none given */
    int is_notification;       /* JSON-RPC without id */
} proto_request;

/* Parses one line. On failure returns the status and a message, with
 * req->request_id / rpc_id set when they could be read. */
sdrt_status proto_parse(const char *line, size_t len, proto_request *req, char *err, size_t errlen);
void proto_request_free(proto_request *req);
/* Maps legacy type names and request shapes to canonical ones, in place.
 * Appends human warnings for renamed fields to `warnings` (may be NULL). */
void legacy_normalise(proto_request *req, cJSON *root);
/* C# Conditioning.ControlNet / A1111 alwayson_scripts.controlnet.args ->
 * "controlnet" (legacy_controlnet.c), in place. */
void legacy_map_controlnet(cJSON *d);
char *proto_format_success(job_proto proto, const char *request_id, const cJSON *rpc_id,
                           const char *result_json, const cJSON *warnings, double exec_time);
/* Same with the result as a cJSON object, which it takes ownership of (the
 * host's own messages: no print and re-parse of the result). */
char *proto_format_result(job_proto proto, const char *request_id, const cJSON *rpc_id, cJSON *result,
                          const cJSON *warnings, double exec_time);
/* Adds `value` rounded to `decimals` (0..9) places as a JSON number in its
 * shortest form ("1.93", "0"). */
void proto_add_fixed(cJSON *o, const char *key, double value, int decimals);
/* Adds an integer as a JSON number (cheaper than cJSON_AddNumberToObject). */
void proto_add_int(cJSON *o, const char *key, long long value);
char *proto_format_error(job_proto proto, const char *request_id, const cJSON *rpc_id,
                         const sdrt_error *err);
char *proto_format_event(job_proto proto, const char *request_id, const cJSON *rpc_id,
                         const char *event_name, const char *data_json);

/* Sends the job's one final response (first caller wins). `result_json` or
 * `err` (borrowed). Returns 1 if this call sent it. */
int job_respond(struct sdrt_job *job, const char *result_json, const sdrt_error *err);

/* ---- the server (server.c) ---------------------------------------------- */

typedef struct host_ctx {
    host_config cfg;
    host_plugins plugins;
    void *schemas;             /* schema_set *, NULL if schemas not found */
    double t_ready;
    atomic_int shutting_down;
    host_sink sink;
} host_ctx;

extern host_ctx *g_host;

int host_init(host_ctx *h, const host_cli_overrides *ov, int quiet);
void host_fini(host_ctx *h);
/* Handles one input line (serve mode and generate). */
void server_handle_line(host_ctx *h, const char *line, size_t len);
/* Runs the stdio loop until EOF, host.shutdown or SIGTERM. Returns the
 * process exit status. */
int server_run(host_ctx *h, int in_fd, int out_fd);
/* host.* messages, answered on the dispatch thread. */
/* Sets *result (owned by the caller) or *err; returns 0 or -1. */
int builtin_handle(host_ctx *h, const proto_request *req, cJSON **result, sdrt_error **err);
/* Writes one protocol line (and its newline) to the protocol fd, whole and
 * in call order. Any thread. */
void output_write_line(const char *line);
void output_init(int fd);
/* Dispatch thread, around the handling of one chunk of input: lines written
 * in between are queued and sent in one write by output_batch_end (sooner
 * when the queue fills). Nothing stays queued once output_batch_end returns. */
void output_batch_begin(void);
void output_batch_end(void);

/* ---- commands ----------------------------------------------------------- */

int cmd_generate(int argc, char **argv);
int cmd_validate_plugin(int argc, char **argv);

#endif
