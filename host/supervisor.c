/* host/supervisor.c - crash containment for `sdrt serve`. The process that
 * owns the client's stdin and stdout forks a serving process, which loads the
 * plugins and does all the work, and waits. The two share the request ledger
 * (ledger.c): the input read and not yet handled, the output staged and not
 * yet written, and every request taken and not yet answered.
 *
 * When the serving process dies of a signal (a plugin crashed), this process
 * writes what was staged, answers every request left in the ledger with
 * INTERNAL naming the plugin and the signal, and forks a new serving
 * process, which goes on with the input where the old one stopped. The
 * client sees one final response per request and the service goes on.
 *
 * It stays single-threaded and loads no plugin, so fork is safe and cheap.
 * Stop requests (SIGTERM, SIGINT; blocked from the start of `sdrt serve`,
 * os_block_stop_signals, so none is lost in start-up) are passed on to the
 * serving process; if
 * that does not end within shutdown_grace_s + cancel_grace_s (+2 s), it is
 * killed and its requests answered UNAVAILABLE. Exit status: the serving
 * process's (0 clean; 1 when answers could not be delivered or it could not
 * start). On Windows (no fork) the host serves in one process. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifndef _WIN32
#include <sys/wait.h>
#endif
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "host.h"
#include "ledger.h"

#ifndef _WIN32

static volatile sig_atomic_t g_child;
static volatile sig_atomic_t g_stop_sig;

static void on_stop(int sig) {
    g_stop_sig = sig;
    output_note_stop(); /* its own answers must not block shutdown either */
    if (g_child > 0) kill((pid_t)g_child, sig);
}

static const char *signal_name(int sig) {
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    case SIGABRT: return "SIGABRT";
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    default: return "signal";
    }
}

/* Answers one ledger entry, in its request's shape. */
static void answer_entry(ledger_entry *e, int slot, sdrt_status code, const char *message, const char *data_json) {
    cJSON *rpc_id = NULL;
    const char *request_id = NULL;
    if (e->id_kind == LE_ID_STRING) {
        request_id = e->id;
        if (e->proto == PROTO_JSONRPC) rpc_id = cJSON_CreateString(e->id);
    } else if (e->id_kind == LE_ID_RAW) {
        request_id = e->id;
        rpc_id = cJSON_Parse(e->id);
    }
    sdrt_error *err = error_new(code, data_json, "%s", message);
    char *line = proto_format_error((job_proto)e->proto, request_id, rpc_id, err);
    output_write_final(line, slot);
    free(line);
    error_free(err);
    cJSON_Delete(rpc_id);
}

/* After the serving process is gone: the staged output first (those answers
 * were given), then every request still in the ledger. */
static int recover(ledger_shm *L, int sig, int crashed, const char *cause) {
    atomic_store(&L->lock, 0); /* the dead process's crash handler held it */
    /* Write the staged rest through the writer itself, which frees the
     * answers' entries once written. */
    if (L->out_len > L->out_done || L->out_nslots > 0) {
        size_t rest = L->out_len - L->out_done;
        char *copy = malloc(rest + 1);
        int nslots = L->out_nslots;
        int *slots = malloc(sizeof(int) * (size_t)(nslots + 1));
        if (copy && slots) {
            memcpy(copy, ledger_out_buf(L) + L->out_done, rest);
            memcpy(slots, ledger_out_slots(L), sizeof(int) * (size_t)nslots);
            L->out_len = L->out_done = 0;
            L->out_nslots = 0;
            /* The staged bytes are whole lines, except after a cut long line. */
            size_t start = 0;
            for (size_t i = 0; i < rest; i++) {
                if (copy[i] != '\n') continue;
                copy[i] = '\0';
                output_write_staged(copy + start);
                start = i + 1;
            }
            ledger_lock();
            for (int i = 0; i < nslots; i++) ledger_release_locked(slots[i]);
            ledger_unlock();
        }
        free(copy);
        free(slots);
    }
    if (L->out_line_cut) {
        output_write_line(""); /* ends a line cut by the crash; its request is answered below */
        L->out_line_cut = 0;
    }
    ledger_entry *e = ledger_entries(L);
    int answered = 0;
    char msg[512], data[512];
    for (int i = 0; i < L->n_used; i++) {
        if (atomic_load(&e[i].state) != LE_LIVE) continue;
        const char *plugin = L->crash_plugin;
        if (!e[i].has_plugin) e[i].plugin[0] = '\0';
        if (crashed) {
            if (i == L->crash_slot)
                snprintf(msg, sizeof msg,
                         "plugin '%s' crashed (%s) handling this %s request; the host restarted its serving process",
                         plugin, cause, e[i].type);
            else if (*plugin)
                snprintf(msg, sizeof msg,
                         "lost: plugin '%s' crashed (%s) handling another request (%s); the host restarted its "
                         "serving process",
                         plugin, cause, L->crash_type);
            else if (e[i].plugin[0])
                snprintf(msg, sizeof msg,
                         "lost: the serving process crashed (%s) while this request ran in plugin '%s'; the host "
                         "restarted it",
                         cause, e[i].plugin);
            else
                snprintf(msg, sizeof msg, "lost: the serving process crashed (%s); the host restarted it", cause);
            cJSON *d = cJSON_CreateObject();
            cJSON_AddStringToObject(d, "plugin", *plugin ? plugin : e[i].plugin);
            if (sig > 0) {
                proto_add_int(d, "signal", sig);
                cJSON_AddStringToObject(d, "signal_name", signal_name(sig));
            }
            cJSON_AddStringToObject(d, "cause", cause);
            cJSON_AddBoolToObject(d, "crashed_here", i == L->crash_slot);
            char *dj = cJSON_PrintUnformatted(d);
            snprintf(data, sizeof data, "%s", dj ? dj : "{}");
            free(dj);
            cJSON_Delete(d);
            answer_entry(&e[i], i, SDRT_INTERNAL, msg, data);
        } else {
            snprintf(msg, sizeof msg, "%s: the host is shutting down and its serving process ended first", e[i].type);
            answer_entry(&e[i], i, SDRT_UNAVAILABLE, msg, NULL);
        }
        answered++;
    }
    return answered;
}

static double mono(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

int supervisor_serve(const host_config *cfg, int (*serve)(void *), void *arg) {
    if (ledger_create(cfg->max_line_bytes, cfg->queue_limit, cfg->workers) != 0) {
        log_msg(NULL, SDRT_LOG_WARN, "cannot share memory for crash containment: serving in one process");
        return serve(arg);
    }
    ledger_shm *L = ledger_get();
    output_set_grace(cfg->shutdown_grace_s);
    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    double last_crash = -1e9, backoff = 0;
    /* Stop signals stay blocked from before the fork until the serving
     * process's stdio loop catches them (os_catch_stop_requests unblocks
     * them): one that arrives while it starts up waits, and then gets the
     * lines already sent answered instead of killing it. */
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGINT);
    for (;;) {
        sigprocmask(SIG_BLOCK, &stops, NULL);
        pid_t pid = fork();
        if (pid < 0) {
            sigprocmask(SIG_UNBLOCK, &stops, NULL);
            log_msg(NULL, SDRT_LOG_ERROR, "cannot start the serving process: %s", strerror(errno));
            return 1;
        }
        if (pid == 0) {
            signal(SIGTERM, SIG_DFL);
            signal(SIGINT, SIG_DFL);
#ifdef __linux__
            /* A supervisor killed outright (SIGKILL) takes its child along. */
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() == 1) _exit(1);
#endif
            ledger_attach_child();
            ledger_catch_crashes();
            int rc = serve(arg);
            exit(rc); /* exit, not _exit: stdio flushed, leak checkers run */
        }
        g_child = pid;
        sigprocmask(SIG_UNBLOCK, &stops, NULL); /* a pending stop is passed on now */
        if (g_stop_sig) kill(pid, g_stop_sig);
        int status = 0;
        double kill_at = 0;
        for (;;) {
            if (g_stop_sig && kill_at == 0) {
                kill_at = mono() + cfg->shutdown_grace_s + cfg->cancel_grace_s + 2.0;
                close(0); /* only the serving process reads on */
            }
            pid_t w = waitpid(pid, &status, kill_at ? WNOHANG : 0);
            if (w == pid) break;
            if (w < 0 && errno != EINTR) {
                status = 0;
                break;
            }
            if (kill_at && mono() > kill_at) {
                log_msg(NULL, SDRT_LOG_WARN, "shutdown: the serving process did not end in time; killing it");
                kill(pid, SIGKILL);
            }
            if (kill_at) sleep_s(0.01);
        }
        g_child = 0;
        /* How it ended: a signal (its own crash handler exits 128 + sig after
         * recording it), a sanitizer's report (the death callback recorded
         * -1), or an exit that did not come from a finished stdio loop. */
        int sig = WIFSIGNALED(status) ? WTERMSIG(status) : L->crash_sig;
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        int crashed = !g_stop_sig && (sig != 0 || !atomic_load(&L->clean_exit));
        char cause[96];
        if (sig > 0) snprintf(cause, sizeof cause, "signal %d, %s", sig, signal_name(sig));
        else if (sig < 0) snprintf(cause, sizeof cause, "a sanitizer report, exit status %d", code);
        else snprintf(cause, sizeof cause, "exit status %d before its stdio loop finished", code);
        if (!crashed) {
            /* Ended (or was ended): whatever it left unanswered is answered. */
            output_set_deadline(host_now() + cfg->shutdown_grace_s);
            int n = recover(L, sig, 0, cause);
            if (n) log_msg(NULL, SDRT_LOG_WARN, "answered %d request(s) the serving process left", n);
            if (WIFSIGNALED(status)) return 1;
            return code;
        }
        int ready = atomic_load(&L->ready);
        int n = recover(L, sig, 1, cause);
        log_msg(NULL, SDRT_LOG_ERROR, "%s%s%s crashed (%s); %d request(s) answered INTERNAL%s",
                L->crash_plugin[0] ? "plugin '" : "the serving process", L->crash_plugin,
                L->crash_plugin[0] ? "'" : "", cause, n, ready ? ", restarting" : "");
        if (!ready) {
            log_msg(NULL, SDRT_LOG_ERROR, "the serving process crashed during start-up: not restarting");
            return 1;
        }
        /* Crashing again at once backs off (up to 1 s), so a poisoned client
         * cannot spin the machine; each of its requests is still answered. */
        double now = mono();
        backoff = now - last_crash < 1.0 ? (backoff < 0.01 ? 0.01 : backoff * 2) : 0;
        if (backoff > 1.0) backoff = 1.0;
        last_crash = now;
        if (backoff > 0) sleep_s(backoff);
        L->crash_sig = 0;
        L->crash_slot = -1;
        L->crash_plugin[0] = L->crash_type[0] = '\0';
    }
}

#else

int supervisor_serve(const host_config *cfg, int (*serve)(void *), void *arg) {
    (void)cfg;
    return serve(arg); /* no fork: one process (see the file comment) */
}

#endif
