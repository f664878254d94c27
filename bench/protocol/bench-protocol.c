/* bench/protocol/bench-protocol.c - stdio round trip and throughput of the
 * real sdrt binary, driven over pipes like an orchestrator would.
 * usage: bench-protocol [path/to/sdrt] [serve args...]
 * Prints: start-up to first answer, idle RSS, host.health round trip
 * (median, p99) one at a time, and pipelined throughput of 10,000 requests. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

typedef struct conn {
    int in, out;
    pid_t pid;
    char buf[1 << 16];
    size_t len;
} conn;

static void start(conn *c, char **argv) {
    int in[2], out[2];
    if (pipe(in) || pipe(out)) exit(1);
    c->pid = fork();
    if (c->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    c->in = in[1];
    c->out = out[0];
    c->len = 0;
}

/* Reads until `n` newlines arrived. */
static void read_lines(conn *c, int n) {
    while (n > 0) {
        ssize_t r = read(c->out, c->buf, sizeof c->buf);
        if (r <= 0) exit(2);
        for (ssize_t i = 0; i < r; i++)
            if (c->buf[i] == '\n') n--;
    }
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    char *default_argv[] = {"build/bin/sdrt", "serve", NULL};
    char **sargv = default_argv;
    char *built[64];
    if (argc > 1) {
        int k = 0;
        built[k++] = argv[1];
        built[k++] = "serve";
        for (int i = 2; i < argc && k < 62; i++) built[k++] = argv[i];
        built[k] = NULL;
        sargv = built;
    }
    const char *req = "{\"type\":\"host.health\",\"request_id\":\"b\"}\n";
    size_t rl = strlen(req);
    conn c;
    double t0 = now();
    start(&c, sargv);
    if (write(c.in, req, rl) != (ssize_t)rl) return 1;
    read_lines(&c, 1);
    double startup = now() - t0;

    const char *info = "{\"type\":\"host.info\",\"request_id\":\"i\"}\n";
    if (write(c.in, info, strlen(info)) < 0) return 1;
    ssize_t r = read(c.out, c.buf, sizeof c.buf - 1);
    c.buf[r > 0 ? r : 0] = '\0';
    char *rss = strstr(c.buf, "\"resident_kb\":");
    long rss_kb = rss ? atol(rss + 14) : -1;

    enum { N = 20000, P = 10000 };
    static double lat[N];
    for (int i = 0; i < 200; i++) { /* warm-up */
        if (write(c.in, req, rl) < 0) return 1;
        read_lines(&c, 1);
    }
    for (int i = 0; i < N; i++) {
        double s = now();
        if (write(c.in, req, rl) < 0) return 1;
        read_lines(&c, 1);
        lat[i] = now() - s;
    }
    qsort(lat, N, sizeof lat[0], cmp);

    char *batch = malloc(rl * P);
    for (int i = 0; i < P; i++) memcpy(batch + rl * (size_t)i, req, rl);
    double s = now();
    pid_t writer = fork();
    if (writer == 0) { /* a separate writer so the pipe never deadlocks */
        size_t off = 0, total = rl * P;
        while (off < total) {
            ssize_t w = write(c.in, batch + off, total - off);
            if (w <= 0) _exit(1);
            off += (size_t)w;
        }
        _exit(0);
    }
    read_lines(&c, P);
    double pipelined = now() - s;
    waitpid(writer, NULL, 0);
    close(c.in);
    waitpid(c.pid, NULL, 0);

    printf("startup_to_first_answer_ms %.2f\n", startup * 1e3);
    printf("idle_resident_kb %ld\n", rss_kb);
    printf("health_roundtrip_us median %.2f p99 %.2f (n=%d)\n", lat[N / 2] * 1e6, lat[N * 99 / 100] * 1e6, N);
    printf("pipelined %d requests in %.3f s = %.0f msg/s\n", P, pipelined, P / pipelined);
    free(batch);
    return 0;
}
