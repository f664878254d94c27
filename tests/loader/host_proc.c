/* tests/loader/host_proc.c - see host_proc.h. */
#define _GNU_SOURCE
#include "host_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void exec_child(const char *const *args, int in_fd, int out_fd, int err_fd) {
    dup2(in_fd, 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    const char *argv[64];
    int n = 0;
    argv[n++] = test_path("SDRT_BUILD_DIR", "bin/sdrt");
    for (int i = 0; args[i] && n < 63; i++) argv[n++] = args[i];
    argv[n] = NULL;
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

int host_start(host_proc *h, const char *const *args) {
    memset(h, 0, sizeof *h);
    snprintf(h->err_path, sizeof h->err_path, "%s/stderr.txt", test_tmpdir());
    int in[2], out[2];
    int err_fd = open(h->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (err_fd < 0 || pipe(in) != 0 || pipe(out) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(in[1]);
        close(out[0]);
        exec_child(args, in[0], out[1], err_fd);
    }
    close(in[0]);
    close(out[1]);
    close(err_fd);
    h->pid = pid;
    h->in_fd = in[1];
    h->out_fd = out[0];
    signal(SIGPIPE, SIG_IGN); /* a host that died must fail a check, not kill us */
    return 0;
}

int host_send(host_proc *h, const char *line) {
    size_t n = strlen(line);
    char *copy = malloc(n + 1);
    memcpy(copy, line, n);
    copy[n] = '\n';
    ssize_t w = h->in_fd >= 0 ? write(h->in_fd, copy, n + 1) : -1;
    free(copy);
    return w == (ssize_t)(n + 1) ? 0 : -1;
}

/* Moves one complete line out of buf into lines; returns it or NULL. */
static const char *take_line(host_proc *h) {
    char *nl = h->buf ? memchr(h->buf, '\n', (size_t)h->len) : NULL;
    if (!nl) return NULL;
    int n = (int)(nl - h->buf);
    char *line = strndup(h->buf, (size_t)n);
    memmove(h->buf, nl + 1, (size_t)(h->len - n - 1));
    h->len -= n + 1;
    h->lines = realloc(h->lines, sizeof *h->lines * (size_t)(h->n_lines + 1));
    h->lines[h->n_lines++] = line;
    return line;
}

/* Reads what is available within `wait_s`; returns bytes read, 0 on EOF,
 * -1 on timeout. */
static int fill(host_proc *h, double wait_s) {
    struct pollfd p = {h->out_fd, POLLIN, 0};
    int r = poll(&p, 1, (int)(wait_s * 1000) + 1);
    if (r <= 0) return -1;
    if (h->cap - h->len < 65536) {
        h->cap = h->len + 65536 * 2;
        h->buf = realloc(h->buf, (size_t)h->cap);
    }
    ssize_t n = read(h->out_fd, h->buf + h->len, 65536);
    if (n < 0) return errno == EINTR ? -1 : 0;
    h->len += (int)n;
    return (int)n;
}

const char *host_next_line(host_proc *h, double timeout_s) {
    double until = now_s() + timeout_s;
    for (;;) {
        const char *line = take_line(h);
        if (line) return line;
        double left = until - now_s();
        if (left <= 0) return NULL;
        int r = fill(h, left);
        if (r == 0) return NULL; /* EOF; a last partial line stays in buf */
    }
}

const char *host_wait_for(host_proc *h, const char *needle, double timeout_s) {
    double until = now_s() + timeout_s;
    const char *line;
    while ((line = host_next_line(h, until - now_s())))
        if (strstr(line, needle)) return line;
    return NULL;
}

int host_finish(host_proc *h, double timeout_s) {
    if (h->in_fd >= 0) close(h->in_fd);
    h->in_fd = -1;
    double until = now_s() + timeout_s;
    while (now_s() < until && fill(h, until - now_s()) != 0) {
    }
    while (take_line(h)) {
    }
    if (h->len > 0) { /* a final line without newline is a protocol error */
        test_fail_(__FILE__, __LINE__, "stdout ends with a partial line: '%.*s'", h->len, h->buf);
        h->len = 0;
    }
    int status;
    for (;;) {
        pid_t r = waitpid(h->pid, &status, WNOHANG);
        if (r == h->pid) break;
        if (now_s() >= until) {
            kill(h->pid, SIGKILL);
            waitpid(h->pid, &status, 0);
            return -1;
        }
        usleep(10000);
    }
    close(h->out_fd);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

const char *host_stderr(const host_proc *h) {
    static char text[65536];
    FILE *f = fopen(h->err_path, "rb");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f) fclose(f);
    text[n] = '\0';
    return text;
}

char *host_stdout_text(const host_proc *h) {
    size_t n = 1;
    for (int i = 0; i < h->n_lines; i++) n += strlen(h->lines[i]) + 1;
    char *out = calloc(1, n);
    for (int i = 0; i < h->n_lines; i++) {
        strcat(out, h->lines[i]);
        strcat(out, "\n");
    }
    return out;
}

void host_free(host_proc *h) {
    for (int i = 0; i < h->n_lines; i++) free(h->lines[i]);
    free(h->lines);
    free(h->buf);
    memset(h, 0, sizeof *h);
}
