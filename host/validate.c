/* host/validate.c - `sdrt validate-plugin PATH`: the conformance checks any
 * plugin author can run. Behaviour checks run in a child process so that a
 * crash is reported as a failed check, not a crashed validator. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "host.h"
#include "os.h"

static int g_failures;

/* What the child writes before dying of a crash; os.h appends the cause. */
#define CRASH_PREFIX "FAIL behaviour checks: plugin crashed with "

static void report(FILE *out, int ok, const char *what, const char *detail) {
    fprintf(out, "%s %s%s%s\n", ok ? "PASS" : "FAIL", what, detail && *detail ? ": " : "", detail ? detail : "");
    if (!ok) g_failures++;
    fflush(out);
}

static sdrt_job *fake_job(const char *type, int cancelled) {
    sdrt_job *j = calloc(1, sizeof *j);
    j->track_id = strdup("validate");
    j->type = strdup(type);
    j->warnings = cJSON_CreateArray();
    atomic_store(&j->cancelled, cancelled);
    atomic_store(&j->refs, 1);
    atomic_store(&j->responded, 1); /* events are dropped */
    return j;
}

/* One handle call on its own thread. Shared by the checker and the thread;
 * the last of the two to let go frees it, so a call that never returns (a
 * plugin that ignores cancel) can be abandoned safely. */
typedef struct call_ctx {
    host_plugin *p;
    const char *type;
    const char *data;
    sdrt_job *job;
    sdrt_error *err;
    char *result;
    atomic_int finished;
    atomic_int owners;
} call_ctx;

static call_ctx *call_new(host_plugin *p, const char *type, const char *data, int cancelled) {
    call_ctx *c = calloc(1, sizeof *c);
    c->p = p;
    c->type = type;
    c->data = data;
    c->job = fake_job(type, cancelled);
    atomic_store(&c->owners, 2);
    return c;
}

static void call_release(call_ctx *c) {
    if (atomic_fetch_sub(&c->owners, 1) != 1) return;
    error_free(c->err);
    free(c->result);
    job_release(c->job);
    free(c);
}

static void *call_thread(void *arg) {
    call_ctx *c = arg;
    sdrt_request req = {SDRT_STRUCT_SIZE(sdrt_request, deadline), c->type, "validate", c->data, c->job, 0};
    c->err = c->p->desc->vtable->handle(c->p->instance, &req, &c->result);
    atomic_store(&c->finished, 1);
    call_release(c);
    return NULL;
}

/* Waits up to `seconds` for the call; returns 1 if it has finished. */
static int call_wait(call_ctx *c, double seconds) {
    for (double waited = 0; !atomic_load(&c->finished) && waited < seconds; waited += 0.01) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return atomic_load(&c->finished);
}

static void call_start(call_ctx *c) {
    pthread_t t;
    if (pthread_create(&t, NULL, call_thread, c) != 0) {
        c->err = error_new(SDRT_INTERNAL, NULL, "validate-plugin: cannot start a thread");
        atomic_store(&c->finished, 1);
        call_release(c); /* the thread's share */
        return;
    }
    pthread_detach(t);
}

/* Runs handle on a thread; returns the finished call (release it), or NULL
 * when it did not finish within `seconds` (it is abandoned). */
static call_ctx *timed_call(host_plugin *p, const char *type, const char *data, int cancelled, double seconds) {
    call_ctx *c = call_new(p, type, data, cancelled);
    call_start(c);
    if (call_wait(c, seconds)) return c;
    call_release(c);
    return NULL;
}

static void check_bad_input(FILE *out, host_plugin *p, const char *type) {
    static const char *const BAD[] = {"[]", "{\"model_id\":123,\"prompt\":7,\"width\":-5,\"steps\":\"x\"}",
                                      "{\"\\u0000\":{\"a\":[[[[[]]]]]}}", NULL};
    for (int i = 0; BAD[i]; i++) {
        char what[256];
        snprintf(what, sizeof what, "%s with bad input #%d answers", type, i + 1);
        call_ctx *c = timed_call(p, type, BAD[i], 0, 30);
        if (!c) {
            report(out, 0, what, "no answer within 30 s");
            continue;
        }
        int ok = c->err ? (c->err->message && *c->err->message && (unsigned)c->err->code < SDRT_STATUS_COUNT_) : 1;
        char detail[512];
        snprintf(detail, sizeof detail, "%s%s%s", c->err ? status_name(c->err->code) : "success",
                 c->err ? " - " : "", c->err ? c->err->message : "");
        report(out, ok, what, detail);
        call_release(c);
    }
}

/* How long a request may run on after is_cancelled turned true. */
#define CANCEL_GRACE_S 5.0
/* A request still running after this long is cancelled mid-run. */
#define CANCEL_AFTER_S 0.2

static void check_cancel(FILE *out, host_plugin *p, const char *type, const char *data) {
    char what[256];
    snprintf(what, sizeof what, "%s returns promptly when already cancelled", type);
    call_ctx *c = timed_call(p, type, data, 1, 10);
    report(out, c != NULL, what, c ? (c->err ? status_name(c->err->code) : "success") : "still running after 10 s");
    if (c) call_release(c);
}

/* The cancel a running request gets from host.cancel or a timeout: the
 * request must notice is_cancelled and return within CANCEL_GRACE_S. A
 * request that answers before CANCEL_AFTER_S never reaches the point, so it
 * passes, saying so; `--data TYPE=JSON` gives an input that runs long. */
static void check_cancel_running(FILE *out, host_plugin *p, const char *type, const char *data) {
    char what[256], detail[256];
    snprintf(what, sizeof what, "%s stops within %.0f s when cancelled while running", type, CANCEL_GRACE_S);
    call_ctx *c = call_new(p, type, data, 0);
    call_start(c);
    if (call_wait(c, CANCEL_AFTER_S)) {
        snprintf(detail, sizeof detail, "answered within %.1f s, before a cancel (%s)", CANCEL_AFTER_S,
                 c->err ? status_name(c->err->code) : "success");
        report(out, 1, what, detail);
        call_release(c);
        return;
    }
    atomic_store(&c->job->cancelled, 1);
    int stopped = call_wait(c, CANCEL_GRACE_S);
    if (stopped)
        snprintf(detail, sizeof detail, "%s", c->err ? status_name(c->err->code) : "success (result dropped)");
    else
        snprintf(detail, sizeof detail, "still running %.0f s after the cancel", CANCEL_GRACE_S);
    report(out, stopped, what, detail);
    call_release(c);
}

/* Inputs given with --data TYPE=JSON, for the cancel checks ("{}" otherwise). */
typedef struct sample_inputs {
    const char **types;
    const char **data;
    int n;
} sample_inputs;

static const char *sample_for(const sample_inputs *in, const char *type) {
    for (int i = 0; i < in->n; i++)
        if (strcmp(in->types[i], type) == 0) return in->data[i];
    return "{}";
}

static void behaviour_checks(FILE *out, host_plugin *p, const sample_inputs *in) {
    sdrt_error *e = loader_init(p, "{}");
    report(out, e == NULL, "init with an empty config", e ? e->message : "");
    if (e) {
        error_free(e);
        return;
    }
    const sdrt_plugin_desc *d = p->desc;
    if (d->vtable->get_interface)
        report(out, d->vtable->get_interface(p->instance, "org.sdrt.validate.nonexistent/0") == NULL,
               "get_interface returns NULL for an unknown id", "");
    for (int i = 0; d->message_types[i]; i++) {
        const char *sample = sample_for(in, d->message_types[i]);
        check_bad_input(out, p, d->message_types[i]);
        check_cancel(out, p, d->message_types[i], sample);
        check_cancel_running(out, p, d->message_types[i], sample);
    }
    d->vtable->shutdown(p->instance);
    p->initialised = 0;
    report(out, 1, "shutdown returns", "");
}

static void static_checks(FILE *out, host_plugin *p) {
    const sdrt_plugin_desc *d = p->desc;
    char detail[512];
    snprintf(detail, sizeof detail, "%s %s, ABI %u.%u (host %d.%d), domain '%s'", d->id, d->version, d->abi_major,
             d->abi_minor, SDRT_ABI_MAJOR, SDRT_ABI_MINOR, d->domain);
    report(out, 1, "descriptor and ABI version", detail);
    report(out, p->manifest != NULL, "manifest (plugin.json beside the shared object) present and agrees",
           p->manifest ? "" : "missing: tools cannot inspect this plugin without running it");
    int n = 0;
    while (d->message_types[n]) n++;
    snprintf(detail, sizeof detail, "%d message type(s)", n);
    report(out, n > 0, "serves at least one message type", detail);
}

typedef struct behaviour_args {
    FILE *out;
    host_plugin *p;
    const sample_inputs *in;
} behaviour_args;

/* The child's work: its exit status carries the failure count. */
static int behaviour_child(void *arg) {
    behaviour_args *a = arg;
    behaviour_checks(a->out, a->p, a->in);
    return g_failures;
}

static void report_child(FILE *out, const os_child_result *r) {
    char detail[192];
    switch (r->outcome) {
    case OS_CHILD_NOT_STARTED: report(out, 0, "behaviour checks", r->detail); break;
    case OS_CHILD_CRASHED:
        snprintf(detail, sizeof detail, "plugin crashed with %s", r->detail);
        report(out, 0, "behaviour checks", detail);
        break;
    case OS_CHILD_CRASH_REPORTED: g_failures++; break; /* the child already named the cause */
    case OS_CHILD_EXITED:
        snprintf(detail, sizeof detail,
                 "plugin ended the process during the checks (exit status %d; a sanitizer report, if any, is on "
                 "stderr)", r->code);
        report(out, 0, "behaviour checks", detail);
        break;
    case OS_CHILD_FINISHED:
        if (r->code == 0) break;
        snprintf(detail, sizeof detail, "%d check(s) failed (child exit status %d)", r->code, r->code);
        report(out, 0, "behaviour checks", detail);
        break;
    }
}

/* Runs the behaviour checks in a child so that a crash is a failed check.
 * On Windows the child is this program started again: it arrives here with
 * os_is_child() set, runs the checks itself and exits. */
static void run_behaviour_checks(FILE *out, host_plugin *p, const sample_inputs *in) {
    behaviour_args a = {out, p, in};
    if (os_is_child()) os_child_main(out, CRASH_PREFIX, behaviour_child, &a);
    os_child_result r;
    os_run_in_child(out, CRASH_PREFIX, behaviour_child, &a, &r);
    report_child(out, &r);
}

static int validate_path(FILE *out, const char *path, const sample_inputs *in) {
    sdrt_error *e = NULL;
    host_plugin *p = loader_open(path, &e);
    if (!p) {
        report(out, 0, "load and descriptor checks", e->message);
        fprintf(out, "result: %s [%s]\n", "refused", status_name(e->code));
        fflush(out);
        error_free(e);
        return 1;
    }
    if (!os_is_child()) static_checks(out, p); /* the parent made them already */
    run_behaviour_checks(out, p, in);
    fprintf(out, "result: %s\n", g_failures ? "FAILED" : "conforms");
    fflush(out);
    loader_close(p);
    return g_failures ? 1 : 0;
}

static void samples_free(sample_inputs *in) {
    for (int i = 0; i < in->n; i++) free((void *)in->types[i]);
    free(in->types);
    free(in->data);
}

/* The first n bytes of s as a string, malloc'd (strndup, which the Windows
 * C runtime lacks). */
static char *copy_prefix(const char *s, size_t n) {
    char *out = malloc(n + 1);
    if (!out) return NULL;
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

/* --data TYPE=JSON (repeatable) after PATH. Returns 0, or -1 with a message. */
static int parse_samples(int argc, char **argv, sample_inputs *in) {
    for (int i = 3; i < argc; i++) {
        const char *eq = i + 1 < argc ? strchr(argv[i + 1], '=') : NULL;
        if (strcmp(argv[i], "--data") != 0 || !eq || eq == argv[i + 1]) {
            fprintf(stderr, "sdrt validate-plugin: expected --data TYPE=JSON, got '%s'\n", argv[i]);
            return -1;
        }
        cJSON *j = cJSON_Parse(eq + 1);
        int is_obj = cJSON_IsObject(j);
        cJSON_Delete(j);
        if (!is_obj) {
            fprintf(stderr, "sdrt validate-plugin: --data %s: the value is not a JSON object\n", argv[i + 1]);
            return -1;
        }
        in->types = realloc(in->types, sizeof *in->types * (size_t)(in->n + 1));
        in->data = realloc(in->data, sizeof *in->data * (size_t)(in->n + 1));
        in->types[in->n] = copy_prefix(argv[i + 1], (size_t)(eq - argv[i + 1]));
        in->data[in->n++] = eq + 1;
        i++;
    }
    return 0;
}

int cmd_validate_plugin(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: sdrt validate-plugin PATH [--data TYPE=JSON]...\n");
        return 2;
    }
    sample_inputs in = {0};
    if (parse_samples(argc, argv, &in) != 0) {
        samples_free(&in);
        return 2;
    }
    host_config cfg;
    char err[1024];
    host_cli_overrides ov = {0};
    /* Without a usable config the checks still run, with default settings. */
    int have_cfg = config_load(&cfg, &ov, err, sizeof err) == 0;
    if (have_cfg) services_configure(&cfg);
    log_set_level(SDRT_LOG_WARN);
    int rc = validate_path(cli_stdout(), argv[2], &in);
    if (have_cfg) config_free(&cfg);
    samples_free(&in);
    return rc;
}
