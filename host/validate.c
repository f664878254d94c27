/* host/validate.c - `sdrt validate-plugin PATH`: the conformance checks any
 * plugin author can run. Behaviour checks run in a child process so that a
 * crash is reported as a failed check, not a crashed validator. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "host.h"

static int g_failures;
static int g_child_fd = -1;

/* The child reports its own crash before dying: some sandboxes and sanitizers
 * turn a fatal signal into an ordinary exit status, so the parent cannot rely
 * on WIFSIGNALED alone. Only async-signal-safe calls here. */
static void on_fatal_signal(int sig) {
    char line[80] = "FAIL behaviour checks: plugin crashed with signal ";
    size_t n = strlen(line);
    if (sig >= 10) line[n++] = (char)('0' + sig / 10);
    line[n++] = (char)('0' + sig % 10);
    line[n++] = '\n';
    ssize_t w = write(g_child_fd, line, n);
    (void)w;
    _exit(128 + sig);
}

static void catch_fatal_signals(int fd) {
    static const int SIGS[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    g_child_fd = fd;
    struct sigaction sa = {0};
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof SIGS / sizeof SIGS[0]; i++) sigaction(SIGS[i], &sa, NULL);
}

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

typedef struct call_ctx {
    host_plugin *p;
    const char *type;
    const char *data;
    int cancelled;
    sdrt_error *err;
    char *result;
    int finished;
} call_ctx;

static void *call_thread(void *arg) {
    call_ctx *c = arg;
    sdrt_job *job = fake_job(c->type, c->cancelled);
    sdrt_request req = {SDRT_STRUCT_SIZE(sdrt_request, deadline), c->type, "validate", c->data, job, 0};
    c->err = c->p->desc->vtable->handle(c->p->instance, &req, &c->result);
    c->finished = 1;
    job_release(job);
    return NULL;
}

/* Runs handle on a thread; returns 0 if it finished within `seconds`. */
static int timed_call(call_ctx *c, double seconds) {
    pthread_t t;
    pthread_create(&t, NULL, call_thread, c);
    double waited = 0;
    while (!c->finished && waited < seconds) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        waited += 0.01;
    }
    if (!c->finished) {
        pthread_detach(t);
        return -1;
    }
    pthread_join(t, NULL);
    return 0;
}

static void check_bad_input(FILE *out, host_plugin *p, const char *type) {
    static const char *const BAD[] = {"[]", "{\"model_id\":123,\"prompt\":7,\"width\":-5,\"steps\":\"x\"}",
                                      "{\"\\u0000\":{\"a\":[[[[[]]]]]}}", NULL};
    for (int i = 0; BAD[i]; i++) {
        call_ctx c = {.p = p, .type = type, .data = BAD[i]};
        char what[256];
        snprintf(what, sizeof what, "%s with bad input #%d answers", type, i + 1);
        if (timed_call(&c, 30) != 0) {
            report(out, 0, what, "no answer within 30 s");
            continue;
        }
        int ok = c.err ? (c.err->message && *c.err->message && (unsigned)c.err->code < SDRT_STATUS_COUNT_) : 1;
        char detail[512];
        snprintf(detail, sizeof detail, "%s%s%s", c.err ? status_name(c.err->code) : "success",
                 c.err ? " - " : "", c.err ? c.err->message : "");
        report(out, ok, what, detail);
        error_free(c.err);
        free(c.result);
    }
}

static void check_cancel(FILE *out, host_plugin *p, const char *type) {
    call_ctx c = {.p = p, .type = type, .data = "{}", .cancelled = 1};
    char what[256];
    snprintf(what, sizeof what, "%s returns promptly when already cancelled", type);
    int ok = timed_call(&c, 10) == 0;
    report(out, ok, what, ok ? (c.err ? status_name(c.err->code) : "success") : "still running after 10 s");
    if (ok) {
        error_free(c.err);
        free(c.result);
    }
}

static void behaviour_checks(FILE *out, host_plugin *p) {
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
        check_bad_input(out, p, d->message_types[i]);
        check_cancel(out, p, d->message_types[i]);
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

/* Runs the behaviour checks in a child so that a crash is a failed check. */
static void run_behaviour_checks(FILE *out, host_plugin *p) {
    fflush(out);
    pid_t pid = fork();
    if (pid == 0) {
        catch_fatal_signals(fileno(out));
        behaviour_checks(out, p);
        fflush(out);
        _exit(g_failures > 127 ? 127 : g_failures);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) {
        char detail[64];
        snprintf(detail, sizeof detail, "plugin crashed with signal %d", WTERMSIG(status));
        report(out, 0, "behaviour checks", detail);
    } else if (WEXITSTATUS(status) > 128) {
        g_failures++; /* on_fatal_signal already named the signal */
    } else if (WEXITSTATUS(status) != 0) {
        char detail[64];
        snprintf(detail, sizeof detail, "%d check(s) failed (child exit status %d)", WEXITSTATUS(status),
                 WEXITSTATUS(status));
        report(out, 0, "behaviour checks", detail);
    }
}

static int validate_path(FILE *out, const char *path) {
    sdrt_error *e = NULL;
    host_plugin *p = loader_open(path, &e);
    if (!p) {
        report(out, 0, "load and descriptor checks", e->message);
        fprintf(out, "result: %s [%s]\n", "refused", status_name(e->code));
        fflush(out);
        error_free(e);
        return 1;
    }
    static_checks(out, p);
    run_behaviour_checks(out, p);
    fprintf(out, "result: %s\n", g_failures ? "FAILED" : "conforms");
    fflush(out);
    loader_close(p);
    return g_failures ? 1 : 0;
}

int cmd_validate_plugin(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: sdrt validate-plugin PATH\n");
        return 2;
    }
    host_config cfg;
    char err[1024];
    host_cli_overrides ov = {0};
    /* Without a usable config the checks still run, with default settings. */
    int have_cfg = config_load(&cfg, &ov, err, sizeof err) == 0;
    if (have_cfg) services_configure(&cfg);
    log_set_level(SDRT_LOG_WARN);
    int rc = validate_path(cli_stdout(), argv[2]);
    if (have_cfg) config_free(&cfg);
    return rc;
}
