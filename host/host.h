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
    double max_pause_s;         /* 0 = pauses are not bounded */
    int max_stuck_workers;      /* stuck workers replaced, at most */
    int events_default;         /* "events": progress/status events for requests that do not say */
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
/* The same without requiring the configured roots to exist: for the pool
 * clients (sdrt submit, sdrt pool status), which read only the "pool"
 * section of a config that may name a worker machine's folders. */
int config_load_settings(host_config *cfg, const host_cli_overrides *ov, char *err, size_t errlen);
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
/* The bytes sdrt holds on devices (other than the CPU family's) now, as the device plugin's
 * published sdrt.backend/1 interface reports them (device_allocated_bytes),
 * read under the registry lock so the provider cannot go meanwhile; -1
 * when no device reports one. Any thread; cheap (the watchdog samples it). */
int64_t registry_device_allocated_bytes(void);
void registry_drop_plugin(const host_plugin *p);

/* ---- paths (paths.c) ---------------------------------------------------- */

/* Resolves `path` under `roots` (relative paths against roots[0]); returns a
 * malloc'd absolute path inside one of the roots, or NULL with err set. */
char *paths_resolve(const char *path, char **roots, int n_roots, int allow_any,
                    const char *what, sdrt_error **err);

/* ---- jobs (jobs.c) ------------------------------------------------------ */

/* Queue levels: low, normal, high, urgent (the old orchestrator's word
 * above high). */
#define PRIORITY_LEVELS 4

typedef enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE } job_state;
typedef enum job_proto { PROTO_ENVELOPE, PROTO_JSONRPC } job_proto;

/* Where a job's events and final response go: stdout lines in serve mode,
 * a callback in `sdrt generate`. */
typedef struct host_sink {
    /* A complete JSON line; `slot` is the request's ledger entry when the
     * line is its final response, else -1 (events). */
    void (*line)(void *ctx, const char *line, int slot);
    void *ctx;
} host_sink;

struct sdrt_job {
    char *request_id;          /* as sent, or NULL */
    char *track_id;            /* request_id or a generated "auto-N" */
    char *type;
    char *data_json;
    cJSON *rpc_id;             /* JSON-RPC id (any JSON), or NULL */
    job_proto proto;
    int priority;              /* 0 low, 1 normal, 2 high, 3 urgent */
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
    int slot;                  /* ledger entry (ledger.h), -1 = none */
    double paused_at;          /* host clock when paused, 0 = not paused */
    int abandoned;             /* answered while its plugin ignored cancel */
    int events;                /* 0: only the final line is written (request "events": false) */
    atomic_long peak_rss_kb;   /* highest resident size seen while it ran (watchdog samples) */
    _Atomic int64_t peak_dev_bytes; /* highest device allocation seen while it ran; */
    atomic_int dev_seen;       /* ... valid once a device reported one */
    char *reply_extra;         /* proto_request.reply_extra, owned */
    struct sdrt_job *parent;   /* an inner request (sdrt_host_api.call): the job it runs for */
    struct sdrt_job *held;     /* requests it started (sdrt_host_api.start), queued once it has
                                  answered (so its answer, which names them, comes first);
                                  linked by `next`, newest first; guarded by the jobs lock */
};

double host_now(void);         /* seconds since start, monotonic */

int jobs_start(const host_config *cfg);
void jobs_stop(void);
/* Takes ownership of job. Returns SDRT_OK, SDRT_BUSY (queue full) or
 * SDRT_ALREADY_EXISTS (duplicate in-flight request_id) without taking it. */
sdrt_status jobs_submit(struct sdrt_job *job);
/* The same for a request a plugin starts while `parent` (a queued job, the
 * root of the caller) runs: checked now (SDRT_ALREADY_EXISTS, SDRT_BUSY,
 * without taking it) and queued when `parent` has written its final
 * response, at once if it has already. Takes ownership on SDRT_OK. */
sdrt_status jobs_submit_after(struct sdrt_job *parent, struct sdrt_job *job);
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
/* The process's resident size in KiB as last sampled (jobs sample it at
 * start, end and every watchdog tick), read again when older than 1 s: host.*
 * answers report it without a /proc read each. */
long jobs_resident_kb_recent(void);
/* 1 when a job with this id is queued or running (not yet answered). */
int jobs_is_live(const char *request_id);

/* ---- events (events.c) -------------------------------------------------- */

/* The outermost job of an inner request's chain (the job itself when it has
 * no parent). */
struct sdrt_job *job_root(struct sdrt_job *job);
/* sdrt_host_api.call (call.c). */
sdrt_error *call_internal(struct sdrt_job *job, const char *type, const char *data_json, char **result_json);
/* sdrt_host_api.start (call.c). */
sdrt_error *call_detached(struct sdrt_job *job, const char *type, const char *data_json, const char *request_id);

/* Writes one event line of the job, unless it asked for no events or was
 * answered already. Any thread. */
void events_emit(struct sdrt_job *job, const char *event_name, const char *data_json);
/* A `status_change` event: {"status", "previous", "type"}; `previous` may
 * be NULL. */
void events_status(struct sdrt_job *job, const char *status, const char *previous);
/* The same for the final state, written by job_respond just before the final
 * line (after it has claimed the answer). */
void events_status_final(struct sdrt_job *job, const char *status, const char *previous);
/* The host's warnings on a request's data: each top-level field of `data`
 * that the message's schema does not name, with the nearest known name when
 * one is close ("data.negative_promt: unknown field (did you mean
 * 'negative_prompt'?)"). Appended to *warnings (created when NULL). */
void fields_check_unknown(const void *schemas, const char *type, const cJSON *data, cJSON **warnings);
/* The old device manager's memory switches (attention_slicing, vae_slicing,
 * vae_tiling, cpu_offload, sequential_cpu_offload, at the top of data or in
 * a memory / memory_optimization / optimizations object), mapped onto
 * inference.run's fields: cpu_offload -> offload "model",
 * sequential_cpu_offload -> offload "sequential", vae_slicing / vae_tiling
 * -> the fields of those names (real at the top of data already);
 * attention_slicing is taken out with a warning saying why it does not
 * apply. A field the request gives itself wins (the switch is named in a
 * warning). For inference.run data; for inference.batch, in each item of
 * data.requests ("data.requests[i].cpu_offload"). */
void fields_memory_switches(const char *type, cJSON *data, cJSON **warnings);

/* ---- UTF-8 and NULs in protocol text (utf8.c) --------------------------- */

/* The longest request_id accepted, in characters (schemas/common.schema.json). */
#define PROTO_ID_MAX_CHARS 256
/* The longest message type (envelope.schema.json: type, message_type, method). */
#define PROTO_TYPE_MAX_CHARS 128
/* Offset of the first byte of `s` (n bytes) that is not valid UTF-8, or n. */
size_t utf8_check(const char *s, size_t n);
/* Characters (code points) of a NUL-terminated UTF-8 string; the 0xFF that
 * stands for a NUL counts as one. */
size_t utf8_chars(const char *s);
/* `line` with every `\u0000` escape inside a string replaced by the byte
 * 0xFF (malloc'd, its length in *out_len), or NULL when it has none. Only
 * for a line already checked to be valid UTF-8. */
char *utf8_nul_in(const char *line, size_t len, size_t *out_len);
/* `json` with each 0xFF turned back into `\u0000` (malloc'd), or NULL when
 * it has none. */
char *utf8_nul_json(const char *json);
/* An output line made valid UTF-8: 0xFF becomes `\u0000`, any other invalid
 * byte U+FFFD. NULL when `line` is valid as it is (the common case). */
char *utf8_clean_line(const char *line, size_t n, size_t *out_n);
/* A copy of `s` with each invalid byte (0xFF included) replaced by U+FFFD. */
char *utf8_replace_invalid(const char *s);

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
    int slot;                  /* ledger entry of the request (server.c), -1 = none */
    int events;                /* "events": 1 yes, 0 final line only, -1 not said (config default) */
    cJSON *warnings;           /* the host's own warnings on the request (unknown fields), or NULL */
    char *reply_extra;         /* members added to the final line (versioned envelope), or NULL */
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
/* Rewrites the older top-level shapes (versioned envelope, C# {Id,Type,Data},
 * workers {worker_type,method,parameters}, old processing names) into the
 * seed envelope, in place (legacy_shapes.c). *reply_extra: members (JSON
 * text without braces, malloc'd) the final line must carry, or NULL.
 * Returns SDRT_OK or a status with a message naming the field. */
sdrt_status legacy_reshape(cJSON *root, char **reply_extra, char *err, size_t errlen);
/* `line` (one JSON object) with reply_extra and a "timestamp" (UTC, ISO
 * 8601) added (malloc'd), or NULL when there is nothing to add. */
char *legacy_reply_line(const char *line, const char *reply_extra);
/* The processing type an old operation name stands for ("get_workflows" ->
 * "processing.workflows"), or NULL. */
const char *legacy_processing_type(const char *old);
/* What every final response reports in `metrics` (docs/protocol.md). */
typedef struct proto_metrics {
    double processing_s;       /* request received to answer (queue wait included) */
    double execution_s;        /* running time (0 for a job answered before it ran) */
    double peak_rss_mb;        /* peak resident memory of the host process while the
                                  request ran; < 0 = unknown */
    double device_mb;          /* peak bytes held on non-CPU devices while it ran (MiB) */
    int device_known;          /* 0: no device reports its memory (device_memory_mb null) */
} proto_metrics;

/* `m` NULL: `metrics` holds the execution time 0 only (host.* answers). */
char *proto_format_success(job_proto proto, const char *request_id, const cJSON *rpc_id,
                           const char *result_json, const cJSON *warnings, const proto_metrics *m);
/* Same with the result as a cJSON object, which it takes ownership of (the
 * host's own messages: no print and re-parse of the result), or a cJSON raw
 * item holding an object's JSON text (host.health). */
char *proto_format_result(job_proto proto, const char *request_id, const cJSON *rpc_id, cJSON *result,
                          const cJSON *warnings, const proto_metrics *m);
/* Adds `value` rounded to `decimals` (0..9) places as a JSON number in its
 * shortest form ("1.93", "0"). */
void proto_add_fixed(cJSON *o, const char *key, double value, int decimals);
/* The text proto_add_fixed adds, into text (48 bytes); -1 when the value is
 * out of the exact range. */
int proto_fixed_text(char *text, double value, int decimals);
/* Decimal digits of v into text (21 bytes); returns their count. */
int proto_uint_text(char *text, unsigned long long v);
/* Adds an integer as a JSON number (cheaper than cJSON_AddNumberToObject). */
void proto_add_int(cJSON *o, const char *key, long long value);
/* A failure; `warnings` (may be NULL or empty) and `m` (NULL = none: the
 * supervisor's answers for a crashed process, which has no timing) ride
 * along as on a success. */
char *proto_format_error(job_proto proto, const char *request_id, const cJSON *rpc_id,
                         const sdrt_error *err, const cJSON *warnings, const proto_metrics *m);
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
/* Checks a message's data against schemas/messages/<type>.json: NULL, or
 * the INVALID_ARGUMENT error naming the field. Any thread. */
sdrt_error *server_validate(host_ctx *h, const char *type, const cJSON *data);
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
/* The same for a request's final response: its ledger entry `slot` (-1 =
 * none) is freed once the line is written. */
void output_write_final(const char *line, int slot);
/* A line staged (and made valid) by a serving process that died, written
 * as it is by the supervisor. */
void output_write_staged(const char *line);
void output_init(int fd);
/* Serve mode: puts the protocol fd, when a pipe or socket, in non-blocking
 * mode so that writes can be bounded (other commands print to it with stdio). */
void output_make_bounded(void);
/* Restores blocking mode on the protocol fd (it may be shared). */
void output_fini(void);
/* After a stop request the writer waits for a reader at most this long. */
void output_set_grace(double seconds);
/* From host time `t` on, lines that cannot be written at once are dropped. */
void output_set_deadline(double t);
/* A stop was requested in a process that does not use os_catch_stop_requests
 * (the supervisor): writes give up shutdown grace from now. Async-signal-safe. */
void output_note_stop(void);
/* How many writes were given up (no reader, or past the deadline). */
long output_lost(void);
/* Dispatch thread, around the handling of one chunk of input: lines written
 * in between are queued and sent in one write by output_batch_end (sooner
 * when the queue fills). Nothing stays queued once output_batch_end returns. */
void output_batch_begin(void);
void output_batch_end(void);

/* ---- crash containment (supervisor.c) ----------------------------------- */

/* Runs serve(arg) in a child process, restarting it after a crash and
 * answering what it left (see supervisor.c). Returns the exit status. */
int supervisor_serve(const host_config *cfg, int (*serve)(void *), void *arg);

/* ---- commands ----------------------------------------------------------- */

int cmd_generate(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_validate_plugin(int argc, char **argv);

#endif
