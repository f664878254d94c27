/* sdrt/plugin.h - the plugin ABI: entry symbol, descriptor, host services.
 *
 * A plugin is a shared object exporting exactly one symbol,
 * `sdrt_plugin_entry`, that returns a pointer to static const data.
 *
 * Versioning rules (read them before changing anything here):
 *  - Every struct that crosses the boundary starts with `uint32_t struct_size`
 *    set by its producer to SDRT_SIZEOF_*(...), the offset of the end of its
 *    last member (padding never counts).
 *  - A reader only reads members that lie inside the producer's struct_size;
 *    members beyond it read as zero, and zero always means "default".
 *  - A struct is never refused for being larger than the reader knows.
 *  - Members are only appended. Removing or reordering is a major bump.
 *  - abi_major must equal the host's. abi_minor in a descriptor is the lowest
 *    host minor the plugin needs; a host older than that refuses it, naming
 *    both versions.
 *
 * Threads: the host has one dispatch thread (reads stdin, answers control
 * messages) and a pool of worker threads (runs `handle`). Each function below
 * says which thread calls it.
 */
#ifndef SDRT_PLUGIN_H
#define SDRT_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "sdrt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SDRT_ABI_MAJOR 1
#define SDRT_ABI_MINOR 1

/* The size a producer writes into struct_size: end of the named last member. */
#define SDRT_STRUCT_SIZE(type, last_member) \
    ((uint32_t)(offsetof(type, last_member) + sizeof(((type *)0)->last_member)))

/* True when a struct whose producer wrote `size` contains `member` entirely. */
#define SDRT_HAS_MEMBER(ptr, type, member) \
    ((ptr)->struct_size >= SDRT_STRUCT_SIZE(type, member))

#if defined(_WIN32)
#define SDRT_EXPORT __declspec(dllexport)
#define SDRT_IMPORT __declspec(dllimport)
#elif defined(__GNUC__)
#define SDRT_EXPORT __attribute__((visibility("default")))
#define SDRT_IMPORT
#else
#define SDRT_EXPORT
#define SDRT_IMPORT
#endif

#if defined(__MINGW32__)
/* The host formats with a C99 vsnprintf (mingw: __USE_MINGW_ANSI_STDIO), so
 * %zu and %lld are checked as GNU formats, not MSVCRT ones. */
#define SDRT_PRINTF(fmt_idx, arg_idx) __attribute__((format(gnu_printf, fmt_idx, arg_idx)))
#elif defined(__GNUC__)
#define SDRT_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#else
#define SDRT_PRINTF(fmt_idx, arg_idx)
#endif

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/* An error object. NULL always means success. Created only through
 * sdrt_host_api.error_new (so one allocator owns it) and freed by whoever
 * receives it, through sdrt_host_api.error_free, or handed on (returned) to
 * the next caller, which then owns it. There is no global "last error". */
typedef struct sdrt_error {
    uint32_t struct_size;
    sdrt_status code;
    /* Human text naming the field or file and the reason, e.g.
     * "width: 1004 is not a multiple of 8". Never NULL. Owned by the error. */
    const char *message;
    /* Optional JSON (object) with machine-readable details, sent as
     * `error_data`. NULL when none. Owned by the error. */
    const char *data_json;
} sdrt_error;

/* ------------------------------------------------------------------------ */
/* Opaque host objects                                                       */
/* ------------------------------------------------------------------------ */

/* The host's record of one loaded plugin. Passed to init; valid until the
 * plugin's shutdown returns. Identifies the caller to the registry. */
typedef struct sdrt_host sdrt_host;

/* One request in flight (a "job"). Valid from the call of `handle` until
 * `handle` returns; a plugin must not keep it. Interfaces that do long work
 * take it so that progress and cancellation reach the right request. May be
 * NULL where a function documents it (no progress, never cancelled). */
typedef struct sdrt_job sdrt_job;

typedef enum sdrt_log_level {
    SDRT_LOG_ERROR = 0,
    SDRT_LOG_WARN = 1,
    SDRT_LOG_INFO = 2,
    SDRT_LOG_DEBUG = 3
} sdrt_log_level;

/* Progress of the current operation, sent as a `progress` event. */
typedef struct sdrt_progress {
    uint32_t struct_size;
    double progress;       /* 0..1, or negative for "unknown" */
    const char *stage;     /* e.g. "inference", "decode"; NULL = keep last */
    int32_t step;          /* 0 when not step-based */
    int32_t steps;
    const char *message;   /* NULL = none */
} sdrt_progress;

/* ------------------------------------------------------------------------ */
/* Host services                                                             */
/* ------------------------------------------------------------------------ */

/* The table of host services given to init. Valid for the whole process
 * lifetime; every function is thread-safe unless it says otherwise. */
typedef struct sdrt_host_api {
    uint32_t struct_size;
    uint32_t abi_major;
    uint32_t abi_minor;

    /* Writes one line to stderr, prefixed with level and plugin id. `host`
     * may be NULL (no prefix). Lines above the configured level are dropped. */
    void (*log)(sdrt_host *host, sdrt_log_level level, const char *fmt, ...) SDRT_PRINTF(3, 4);

    /* Creates an error. `data_json` (may be NULL) is copied and must be a
     * JSON object text. `fmt` is a printf format for the message. Returns a
     * new error owned by the caller; never NULL (falls back to a static
     * out-of-memory error that error_free ignores). */
    sdrt_error *(*error_new)(sdrt_status code, const char *data_json, const char *fmt, ...) SDRT_PRINTF(3, 4);
    /* Frees an error from error_new. NULL is a no-op. */
    void (*error_free)(sdrt_error *err);

    /* Reports progress of `job` (NULL: ignored). Worker thread of the job.
     * `p` is borrowed for the call. */
    void (*progress)(sdrt_job *job, const sdrt_progress *p);
    /* Sends an event named `event_name` with JSON object `data_json` (both
     * borrowed) for `job` before its final response. NULL job: ignored. */
    void (*event)(sdrt_job *job, const char *event_name, const char *data_json);
    /* Adds a human-readable warning to the job's final response (`warnings`).
     * Borrowed; copied. NULL job: logged instead. */
    void (*warn)(sdrt_job *job, const char *message);
    /* True once the job was cancelled or passed its deadline, or the host
     * is shutting down past its grace period. Cheap (an atomic load): call
     * it between steps and inside long loops. NULL job: always false. */
    int (*is_cancelled)(sdrt_job *job);
    /* Blocks while the job is paused (host.pause) and returns non-zero if it
     * was cancelled meanwhile. Call between steps. NULL job: returns 0. */
    int (*wait_if_paused)(sdrt_job *job);

    /* Interface registry. Interfaces are native vtables identified by a
     * versioned string id, "sdrt.model/1", "org.example.thing/2".
     * publish: makes `iface` (static or instance data owned by the plugin,
     *   valid until its shutdown) available under `id`. Any thread during
     *   init or later. Fails with ALREADY_EXISTS if another plugin published
     *   that id. Returns NULL on success.
     * acquire: returns the interface published under `id`, or NULL with
     *   *err (if err non-NULL) set to NOT_FOUND. Lazy: works whatever the load
     *   order, once the provider's init ran. The provider is not unloaded
     *   while any acquire is not matched by a release.
     * release: undoes one acquire. */
    sdrt_error *(*publish)(sdrt_host *host, const char *id, const void *iface);
    const void *(*acquire)(sdrt_host *host, const char *id, sdrt_error **err);
    void (*release)(sdrt_host *host, const char *id);

    /* Memory that crosses the boundary (result JSON texts). Thread-safe. */
    void *(*alloc)(size_t size);
    void (*free)(void *ptr);

    /* The deployment's settings, as a JSON object text owned by the host and
     * valid for the process lifetime: {"model_roots":[...],
     * "output_roots":[...], "allow_any_path":bool, "threads":n, ...}.
     * See docs/protocol.md "Host settings". */
    const char *(*settings_json)(sdrt_host *host);

    /* Resolves `path` against the configured roots of `kind` ("model" or
     * "output") and checks that it lies inside one of them (after
     * resolving "..", symlinks of existing parts). "model" roots include
     * the Hugging Face caches (hf_cache, $HF_HOME/hub or
     * ~/.cache/huggingface/hub). Returns a malloc'd (sdrt_host_api.alloc)
     * absolute path, or NULL with *err set to PERMISSION_DENIED (outside
     * the roots, or none of that kind configured; the message names the
     * kind of path and the roots, not a request field: callers prefix
     * their field) or INVALID_ARGUMENT. Opening the file afterwards: use
     * sdrt_file_open (sdrt/file.h), which also checks the real path of
     * what was opened. */
    char *(*resolve_path)(sdrt_host *host, const char *kind, const char *path, sdrt_error **err);

    /* True once host.cancel asked the job to stop at its next item boundary
     * ({"when":"after_image"}), or once is_cancelled is true. A plugin that
     * produces results one after another (inference.batch items) finishes
     * the current one, keeps what is done and returns it; work that cannot
     * stop between items just runs on. Cheap (atomic loads); any thread.
     * NULL job: 0. Appended after ABI 1.0 shipped: check
     * SDRT_HAS_MEMBER(api, sdrt_host_api, stop_requested) before calling. */
    int (*stop_requested)(sdrt_job *job);

    /* --- appended in ABI 1.1 (check SDRT_HAS_MEMBER before calling) --- */
    /* One user pointer per job, so code that wraps host functions (an
     * sdrt_host_api copy whose progress/warn re-label what an inner call
     * reports, as inference.batch does per item) finds its own state from
     * the job alone, with no global table. The slot belongs to the plugin
     * whose `handle` received the job; it starts NULL, is not interpreted
     * or freed by the host, and dies with the job (after handle returns).
     * Any thread; NULL job: set is ignored, get returns NULL. */
    void (*job_set_user)(sdrt_job *job, void *user);
    void *(*job_user)(sdrt_job *job);

    /* --- appended after ABI 1.1 shipped (check SDRT_HAS_MEMBER(api,
     * sdrt_host_api, call) before calling) --- */
    /* An internal request: runs the message `type` with `data_json` (a JSON
     * object text; NULL = "{}") as if a client had sent it, synchronously on
     * the calling thread (a worker inside `handle`), and returns its
     * outcome. Lets a plugin that coordinates others (processing.*) drive
     * them without a protocol round trip.
     * - Routing and checks as for a client request: the plugin serving
     *   `type` (canonical types only; no legacy renames), the data checked
     *   against schemas/messages/<type>.json. Only host.health, host.info,
     *   host.plugins, host.jobs, host.cancel, host.pause and host.resume of
     *   the host.* messages (answered at once).
     * - `job` (the caller's, required for plugin messages) is the parent:
     *   the inner request's progress and events go out under the parent's
     *   request id, its warnings into the parent's `warnings`, and it sees
     *   the parent's cancel, deadline, pause and stop_requested.
     * - result_json non-NULL: on success *result_json is the result object
     *   text, allocated with `alloc` (the caller frees it with `free`), and
     *   NULL is returned; on failure the error (owned by the caller) and
     *   *result_json NULL.
     * - result_json NULL: a check only, nothing runs: NULL when a plugin
     *   serves `type` and `data_json` (when not NULL) passes its schema,
     *   else the error (UNKNOWN_TYPE, INVALID_ARGUMENT) the request would get.
     * Ownership: every argument is borrowed for the call. Thread: any worker
     * thread; may nest (the callee may call again). Lifetime: the inner
     * request lives for the duration of the call only. */
    sdrt_error *(*call)(sdrt_job *job, const char *type, const char *data_json, char **result_json);

    /* --- appended after `call` shipped (check SDRT_HAS_MEMBER(api,
     * sdrt_host_api, start) before calling) --- */
    /* A request of its own: queues the message `type` with `data_json` (a
     * JSON object text; NULL = "{}") under `request_id` as if the client of
     * `job` had sent it, and returns at once. It is queued when `job`'s
     * request has written its final response (so that answer, which may
     * name it, reaches the client before any line of it) and runs like
     * any request (queue limit, priority of `job`'s request, no deadline)
     * and its events and its one final response go to that client under
     * `request_id`; host.cancel / host.pause / host.resume name it by that
     * id. Lets a plugin answer now and go on working (processing.execute
     * with "wait": false).
     * - Routing and checks as for `call` (plugin messages only).
     * - Returns NULL once accepted (checked now, queued as said above),
     *   else the error a client would get: UNKNOWN_TYPE, INVALID_ARGUMENT
     *   (schema, missing id), BUSY (queue full), ALREADY_EXISTS
     *   (request_id in flight), UNAVAILABLE (the host is shutting down),
     *   UNSUPPORTED (host.* types). Should the queue fill up between the
     *   check and the caller's answer, the request is answered BUSY under
     *   `request_id`. Until then host.cancel does not find it.
     * Ownership: every argument is borrowed. Thread: a worker thread inside
     * `handle` (job is the caller's, required). The new request outlives
     * the caller's. */
    sdrt_error *(*start)(sdrt_job *job, const char *type, const char *data_json, const char *request_id);
} sdrt_host_api;

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */
/* ------------------------------------------------------------------------ */

/* One request as the plugin sees it: already normalised (legacy forms mapped
 * to the canonical type and fields) and validated against its schema. All
 * members are borrowed for the duration of `handle`. */
typedef struct sdrt_request {
    uint32_t struct_size;
    const char *type;        /* canonical message type, e.g. "model.load" */
    const char *request_id;  /* never NULL; host-generated if the client sent none */
    const char *data_json;   /* the `data` object as JSON text; "{}" if absent */
    sdrt_job *job;           /* for progress, events, warnings, cancellation */
    double deadline;         /* seconds since the host's start; 0 = none */
} sdrt_request;

/* ------------------------------------------------------------------------ */
/* Descriptor                                                                */
/* ------------------------------------------------------------------------ */

typedef struct sdrt_plugin_vtable {
    uint32_t struct_size;

    /* Dispatch thread, once, before any other call. `host_api` and `host` are
     * valid until shutdown returns. `config_json` is the plugin's config
     * object from the deployment ("{}" if none), borrowed for the call.
     * On success stores the plugin's instance (may be NULL) and returns NULL.
     * On failure returns an error; the host reports it, unloads the plugin
     * and keeps serving with the others. */
    sdrt_error *(*init)(const sdrt_host_api *host_api, sdrt_host *host,
                        const char *config_json, void **instance);

    /* Dispatch thread, once, after every handle call has returned and every
     * interface this plugin acquired was released by it. Frees everything. */
    void (*shutdown)(void *instance);

    /* Worker thread; may run concurrently for different requests (the plugin
     * serialises internally where it must). `req` is borrowed for the call.
     * On success returns NULL and sets *result_json to a JSON object text
     * allocated with host_api->alloc (the host frees it), or to NULL for
     * "{}". On failure returns an error and leaves *result_json NULL. Long
     * work checks host_api->is_cancelled(req->job) and returns CANCELLED. */
    sdrt_error *(*handle)(void *instance, const sdrt_request *req, char **result_json);

    /* Any thread. Returns this plugin's native interface for `id`, or NULL.
     * Equivalent to what the plugin publishes; lets a host query one plugin
     * directly (validate-plugin). May be NULL (no interfaces). */
    const void *(*get_interface)(void *instance, const char *id);
} sdrt_plugin_vtable;

typedef struct sdrt_plugin_desc {
    uint32_t struct_size;
    uint32_t abi_major;             /* must equal the host's SDRT_ABI_MAJOR */
    uint32_t abi_minor;             /* lowest host minor this plugin needs */
    const char *id;                 /* reverse-DNS, e.g. "org.sdrt.model" */
    const char *version;            /* the plugin's own semver */
    const char *domain;             /* message prefix, e.g. "model" */
    const char *description;        /* one line */
    const char *const *message_types; /* NULL-terminated, full names "model.load" */
    const sdrt_plugin_vtable *vtable;
} sdrt_plugin_desc;

/* The single exported symbol. Returns static data valid while the shared
 * object is loaded. Called on the dispatch thread, possibly several times. */
typedef const sdrt_plugin_desc *(*sdrt_plugin_entry_fn)(void);
#define SDRT_PLUGIN_ENTRY_SYMBOL "sdrt_plugin_entry"

/* Defines the entry points of a plugin named `name` whose descriptor is the
 * static object `desc`. Emits `sdrt_plugin_entry` (dynamic loading) and, when
 * SDRT_PLUGIN_STATIC is defined, only `sdrt_plugin_<name>_entry` (static
 * linking of several plugins into one binary). */
#ifdef SDRT_PLUGIN_STATIC
#define SDRT_PLUGIN_DEFINE(name, desc) \
    const sdrt_plugin_desc *sdrt_plugin_##name##_entry(void) { return &(desc); }
#else
#define SDRT_PLUGIN_DEFINE(name, desc)                                           \
    const sdrt_plugin_desc *sdrt_plugin_##name##_entry(void) { return &(desc); } \
    SDRT_EXPORT const sdrt_plugin_desc *sdrt_plugin_entry(void) { return &(desc); }
#endif

#ifdef __cplusplus
}
#endif

#endif /* SDRT_PLUGIN_H */
