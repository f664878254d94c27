/* host/os_posix.c - os.h on POSIX: poll, fork, signals, /proc. This is the
 * code the host always ran on Linux, moved here unchanged in behaviour. */
#ifndef _WIN32
#define _GNU_SOURCE
#include "os.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- time and memory ---- */

double os_monotonic_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

long os_resident_kb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

int os_platform(char *buf, size_t n) {
    struct utsname u;
    if (uname(&u) != 0) return -1;
    snprintf(buf, n, "%s %s", u.sysname, u.machine);
    return 0;
}

/* ---- paths ---- */

int os_is_sep(char c) { return c == '/'; }

size_t os_path_root_len(const char *path) { return path[0] == '/' ? 1 : 0; }

int os_path_is_absolute(const char *path) { return os_path_root_len(path) > 0; }

char *os_path_last_sep(const char *path) { return strrchr(path, '/'); }

char *os_realpath(const char *path) { return realpath(path, NULL); }

char *os_getcwd(void) {
    char cwd[PATH_MAX];
    return getcwd(cwd, sizeof cwd) ? strdup(cwd) : NULL;
}

int os_mkdir(const char *path) { return mkdir(path, 0755) == 0 ? 0 : -1; }

int os_exe_dir(char *buf, size_t n) {
    ssize_t len = n > 1 ? readlink("/proc/self/exe", buf, n - 1) : -1;
    if (len <= 0) {
        snprintf(buf, n, ".");
        return -1;
    }
    buf[len] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash) *slash = '\0';
    return 0;
}

/* ---- stdio ---- */

int os_protect_stdout(void) {
    int fd = dup(1);
    dup2(2, 1);
    return fd;
}

struct os_input {
    int fd;
};

os_input *os_input_open(int fd) {
    os_input *in = malloc(sizeof *in);
    if (in) in->fd = fd;
    return in;
}

long os_input_read(os_input *in, char *buf, size_t cap, int timeout_ms) {
    /* A stop signal interrupts poll (no SA_RESTART): that reads as idle and
     * the caller checks os_stop_requested. */
    struct pollfd pfd = {in->fd, POLLIN, 0};
    int pr = poll(&pfd, 1, timeout_ms);
    if (pr < 0 && errno != EINTR) return OS_INPUT_END;
    if (pr <= 0) return OS_INPUT_IDLE;
    ssize_t n = read(in->fd, buf, cap);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return OS_INPUT_RETRY;
    if (n <= 0) return OS_INPUT_END;
    return (long)n;
}

int os_input_wait(os_input *in, int timeout_ms) {
    struct pollfd pfd = {in->fd, POLLIN, 0};
    return poll(&pfd, 1, timeout_ms) > 0; /* input, end or error: a read returns at once */
}

void os_input_close(os_input *in) { free(in); }

void os_close_input(int fd) { close(fd); }

/* ---- stop requests ---- */

static volatile sig_atomic_t g_stop;

static void on_stop_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

void os_catch_stop_requests(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* The supervisor starts the serving process with them blocked, so that
     * one sent during start-up waits for this handler. */
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &stops, NULL);
}

int os_stop_requested(void) { return g_stop != 0; }

void os_block_stop_signals(void) {
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stops, NULL);
}

int os_with_stop_blocked(int (*fn)(void *), void *arg) {
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, &old);
    int rc = fn(arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* ---- isolated child ---- */

static int g_child_fd = -1;
static const char *g_crash_prefix = "";

/* The child reports its own crash before dying: some sandboxes and sanitizers
 * turn a fatal signal into an ordinary exit status, so the parent cannot rely
 * on WIFSIGNALED alone. Only async-signal-safe calls here. */
static void on_fatal_signal(int sig) {
    char line[160];
    size_t n = strlen(g_crash_prefix);
    if (n > sizeof line - 16) n = sizeof line - 16;
    memcpy(line, g_crash_prefix, n);
    memcpy(line + n, "signal ", 7);
    n += 7;
    if (sig >= 10) line[n++] = (char)('0' + sig / 10);
    line[n++] = (char)('0' + sig % 10);
    line[n++] = '\n';
    ssize_t w = write(g_child_fd, line, n);
    (void)w;
    _exit(128 + sig);
}

static void catch_fatal_signals(int fd, const char *crash_prefix) {
    static const int SIGS[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    g_child_fd = fd;
    g_crash_prefix = crash_prefix;
    struct sigaction sa = {0};
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof SIGS / sizeof SIGS[0]; i++) sigaction(SIGS[i], &sa, NULL);
}

/* 1 when the child wrote its "fn returned" byte before exiting. A child that
 * exits without it was ended by the plugin (exit()) or by a sanitizer report
 * about the plugin (UBSan's halt_on_error exits with status 1, which would
 * otherwise read as fn's result). */
static int child_finished(int fd) {
    char c;
    return fd >= 0 && read(fd, &c, 1) == 1;
}

static void classify(int status, int finished, os_child_result *r) {
    if (WIFSIGNALED(status)) {
        r->outcome = OS_CHILD_CRASHED;
        snprintf(r->detail, sizeof r->detail, "signal %d", WTERMSIG(status));
    } else if (WEXITSTATUS(status) > 128) {
        r->outcome = OS_CHILD_CRASH_REPORTED; /* on_fatal_signal named the signal */
    } else {
        r->outcome = finished ? OS_CHILD_FINISHED : OS_CHILD_EXITED;
        r->code = WEXITSTATUS(status);
    }
}

void os_run_in_child(FILE *out, const char *crash_prefix, os_child_fn fn, void *arg, os_child_result *r) {
    memset(r, 0, sizeof *r);
    fflush(out);
    int done[2] = {-1, -1};
    if (pipe(done) != 0) done[0] = done[1] = -1;
    pid_t pid = fork();
    if (pid == 0) {
        if (done[0] >= 0) close(done[0]);
        catch_fatal_signals(fileno(out), crash_prefix);
        int result = fn(arg);
        fflush(out);
        ssize_t w = done[1] >= 0 ? write(done[1], "D", 1) : 1;
        (void)w;
        _exit(result > 127 ? 127 : result);
    }
    if (done[1] >= 0) close(done[1]);
    if (pid < 0) {
        if (done[0] >= 0) close(done[0]);
        r->outcome = OS_CHILD_NOT_STARTED;
        snprintf(r->detail, sizeof r->detail, "cannot fork the checking process");
        return;
    }
    int status = 0;
    waitpid(pid, &status, 0);
    /* Without the pipe, a clean exit status is taken as finished. */
    int finished = done[0] >= 0 ? child_finished(done[0]) : 1;
    if (done[0] >= 0) close(done[0]);
    classify(status, finished, r);
}

int os_is_child(void) { return 0; }

void os_child_main(FILE *out, const char *crash_prefix, os_child_fn fn, void *arg) {
    /* Never reached on POSIX (os_is_child is 0); kept total for the API. */
    catch_fatal_signals(fileno(out), crash_prefix);
    int result = fn(arg);
    fflush(out);
    _exit(result > 127 ? 127 : result);
}

int os_utc_now(struct tm *out) {
    time_t now = time(NULL);
    return gmtime_r(&now, out) ? 0 : -1;
}

#endif
