/* plugins/device/gpu_probe.c - see gpu_probe.h. */
#ifndef _WIN32
#define _GNU_SOURCE /* pipe2, posix_spawn_file_actions_addclosefrom_np */
#endif
#include "gpu_probe.h"

#include <stdio.h>
#include <string.h>

#include "dynlib.h"
#include "probe_wire.h"

int gpuprobe_helper_beside(const void *addr, char *out, size_t outlen) {
    char dir[4096];
    if (devlib_dir_of(addr, dir, sizeof dir) != 0) return -1;
    int n = snprintf(out, outlen, "%s/%s", dir, GPUPROBE_HELPER_NAME);
    return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}

#ifdef _WIN32

void gpuprobe_run(const char *helper, int timeout_ms, cudaprobe_report *cuda, vkprobe_report *vk) {
    (void)helper;
    (void)timeout_ms;
    if (cuda) cudaprobe_run(NULL, cuda);
    if (vk) vkprobe_run(NULL, vk);
}

void gpuprobe_cuda_memory(const char *helper, int timeout_ms, cudaprobe_report *r) {
    (void)helper;
    (void)timeout_ms;
    cudaprobe_refresh_memory(NULL, r);
}

#else

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

typedef struct probe_child {
    probewire_family family;
    pid_t pid;     /* 0 when it never started */
    int fd;        /* read end of its stdout, -1 when none */
    char why[256]; /* why it did not start */
} probe_child;

typedef enum read_result { READ_OK, READ_SHORT, READ_TIMEOUT, READ_ERROR } read_result;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_1ms(void) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

/* The child starts with no blocked signals and default dispositions for
 * the ones the host changes (it ignores SIGPIPE, blocks SIGTERM in some
 * threads): the helper must die on them like any plain program. */
static void init_attrs(posix_spawnattr_t *attr) {
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGHUP);
    posix_spawnattr_init(attr);
    posix_spawnattr_setsigmask(attr, &none);
    posix_spawnattr_setsigdefault(attr, &defaults);
    posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
}

/* stdout is the report pipe, stdin /dev/null, stderr shared with the host's
 * log (driver warnings stay visible); nothing else of the host leaks in. */
static void init_actions(posix_spawn_file_actions_t *fa, int write_fd) {
    posix_spawn_file_actions_init(fa);
    posix_spawn_file_actions_adddup2(fa, write_fd, STDOUT_FILENO);
    posix_spawn_file_actions_addopen(fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    posix_spawn_file_actions_addclosefrom_np(fa, STDERR_FILENO + 1);
#endif
}

/* A pipe whose ends no concurrently spawned process inherits. */
static int pipe_cloexec(int fds[2]) {
#ifdef __linux__
    return pipe2(fds, O_CLOEXEC);
#else
    if (pipe(fds) != 0) return -1;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
#endif
}

static const char *family_arg(probewire_family f) { return f == PROBEWIRE_CUDA ? "cuda" : "vulkan"; }

/* Starts `helper` with argv (argv[0] is set here) for c->family; on failure
 * c->pid stays 0 and c->why says why. */
static void start_child(const char *helper, char **argv, probe_child *c) {
    c->pid = 0;
    c->fd = -1;
    int fds[2];
    if (!helper || access(helper, X_OK) != 0) {
        snprintf(c->why, sizeof c->why, "%s not probed: probe helper %s: %s", probewire_family_title(c->family),
                 helper ? helper : "(unknown path)", helper ? strerror(errno) : "the plugin's folder is unknown");
        return;
    }
    if (pipe_cloexec(fds) != 0) {
        snprintf(c->why, sizeof c->why, "%s not probed: pipe: %s", probewire_family_title(c->family), strerror(errno));
        return;
    }
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t fa;
    init_attrs(&attr);
    init_actions(&fa, fds[1]);
    argv[0] = (char *)helper;
    int rc = posix_spawn(&c->pid, helper, &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(fds[1]);
    if (rc == 0) {
        c->fd = fds[0];
        return;
    }
    c->pid = 0;
    close(fds[0]);
    snprintf(c->why, sizeof c->why, "%s not probed: cannot run %s: %s", probewire_family_title(c->family), helper,
             strerror(rc));
}

/* Reads exactly `size` bytes, or up to EOF, the deadline or an error. */
static read_result read_record(int fd, void *buf, size_t size, int64_t deadline, size_t *got) {
    *got = 0;
    while (*got < size) {
        int64_t left = deadline - now_ms();
        if (left <= 0) return READ_TIMEOUT;
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return READ_ERROR;
        if (r == 0) return READ_TIMEOUT;
        ssize_t n = read(fd, (char *)buf + *got, size - *got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return READ_ERROR;
        if (n == 0) return READ_SHORT;
        *got += (size_t)n;
    }
    return READ_OK;
}

/* Waits for the child until the deadline, then kills it, so that none is
 * left behind. Returns 0 with *status set, or -1 when it cannot be waited
 * for (someone else reaped it: the host set SIGCHLD to SIG_IGN). */
static int reap(pid_t pid, int64_t deadline, int *status) {
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid) return 0;
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (now_ms() >= deadline) break;
        sleep_1ms();
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, status, 0) < 0)
        if (errno != EINTR) return -1;
    return 0;
}

static void explain(const probe_child *c, read_result rr, size_t got, size_t size, int waited, int status,
                    int timeout_ms, char *why, size_t whylen) {
    const char *title = probewire_family_title(c->family);
    if (rr == READ_TIMEOUT)
        snprintf(why, whylen, "%s probe timed out after %d ms (a hung driver?); sdrt-gpu-probe was killed", title,
                 timeout_ms);
    else if (waited == 0 && WIFSIGNALED(status))
        snprintf(why, whylen, "%s probe crashed: sdrt-gpu-probe died of signal %d (%s) inside the driver stack",
                 title, WTERMSIG(status), strsignal(WTERMSIG(status)));
    else if (waited == 0 && WIFEXITED(status))
        snprintf(why, whylen, "%s probe failed: sdrt-gpu-probe exited with status %d after %zu of %zu report bytes",
                 title, WEXITSTATUS(status), got, size);
    else
        snprintf(why, whylen, "%s probe failed: sdrt-gpu-probe ended after %zu of %zu report bytes", title, got, size);
}

/* Reads the child's record into buf and reaps it. Returns 0 when the whole
 * record arrived (the exit status does not matter then), else -1 with why. */
static int finish(probe_child *c, void *buf, size_t size, int64_t deadline, int timeout_ms, char *why,
                  size_t whylen) {
    if (!c->pid) {
        snprintf(why, whylen, "%s", c->why);
        return -1;
    }
    size_t got = 0;
    read_result rr = read_record(c->fd, buf, size, deadline, &got);
    close(c->fd);
    c->fd = -1;
    if (rr == READ_TIMEOUT) kill(c->pid, SIGKILL);
    int status = 0;
    int waited = reap(c->pid, deadline, &status);
    c->pid = 0;
    if (rr == READ_OK) return 0;
    explain(c, rr, got, size, waited, status, timeout_ms, why, whylen);
    return -1;
}

static void collect_cuda(probe_child *c, int64_t deadline, int timeout_ms, cudaprobe_report *out) {
    probewire_cuda wire;
    char why[256] = "";
    if (finish(c, &wire, sizeof wire, deadline, timeout_ms, why, sizeof why) == 0 &&
        probewire_unpack_cuda(&wire, out, why, sizeof why) == 0)
        return;
    memset(out, 0, sizeof *out);
    snprintf(out->reason, sizeof out->reason, "%s", why);
}

static void collect_vulkan(probe_child *c, int64_t deadline, int timeout_ms, vkprobe_report *out) {
    probewire_vulkan wire;
    char why[256] = "";
    if (finish(c, &wire, sizeof wire, deadline, timeout_ms, why, sizeof why) == 0 &&
        probewire_unpack_vulkan(&wire, out, why, sizeof why) == 0)
        return;
    memset(out, 0, sizeof *out);
    snprintf(out->reason, sizeof out->reason, "%s", why);
}

void gpuprobe_run(const char *helper, int timeout_ms, cudaprobe_report *cuda, vkprobe_report *vk) {
    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : GPUPROBE_TIMEOUT_MS);
    probe_child cc = {PROBEWIRE_CUDA, 0, -1, ""}, vc = {PROBEWIRE_VULKAN, 0, -1, ""};
    char *cuda_argv[] = {NULL, (char *)family_arg(PROBEWIRE_CUDA), NULL};
    char *vk_argv[] = {NULL, (char *)family_arg(PROBEWIRE_VULKAN), NULL};
    /* both start before either is read, so the two probes overlap */
    if (cuda) start_child(helper, cuda_argv, &cc);
    if (vk) start_child(helper, vk_argv, &vc);
    if (cuda) collect_cuda(&cc, deadline, timeout_ms, cuda);
    if (vk) collect_vulkan(&vc, deadline, timeout_ms, vk);
}

void gpuprobe_cuda_memory(const char *helper, int timeout_ms, cudaprobe_report *r) {
    if (!r->available) return;
    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : GPUPROBE_TIMEOUT_MS);
    char *argv[CUDAPROBE_MAX_DEVICES + 3] = {NULL, "cuda-memory"};
    for (int i = 0; i < r->count; i++) argv[2 + i] = r->dev[i].pci_bus_id;
    probe_child c = {PROBEWIRE_CUDA, 0, -1, ""};
    start_child(helper, argv, &c);
    cudaprobe_report now;
    collect_cuda(&c, deadline, timeout_ms, &now);
    for (int i = 0; i < r->count; i++) {
        int same = now.available && i < now.count && strcmp(now.dev[i].pci_bus_id, r->dev[i].pci_bus_id) == 0;
        r->dev[i].mem_free = same ? now.dev[i].mem_free : 0;
        r->dev[i].mem_free_known = same && now.dev[i].mem_free_known;
    }
}

#endif
