/* tests/protocol/lifecycle.c - shutdown with the real build/bin/sdrt over
 * pipes, where a transcript cannot reach: SIGTERM with thousands of
 * requests already written, and SIGTERM while the client does not read. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

typedef struct host {
    pid_t pid;
    int in, out;
} host;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* 1 once process `pid` blocks SIGTERM (bit 15 of SigBlk): sdrt serve's main
 * has started, and a SIGTERM from now on must not be lost. */
static int blocks_sigterm(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    int yes = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "SigBlk:", 7) == 0) yes = (strtoull(line + 7, NULL, 16) >> (SIGTERM - 1)) & 1;
    if (f) fclose(f);
    return yes;
}

static int start_host(host *h, const char *args) {
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) return -1;
    h->pid = fork();
    if (h->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        char cmd[8192];
        const char *b = getenv("SDRT_BUILD_DIR");
        snprintf(cmd, sizeof cmd, "exec \"%s/bin/sdrt\" serve --set log_level=warn %s", b ? b : ".", args);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    h->in = in[1];
    h->out = out[0];
    return 0;
}

/* Writes `n` lines, one write each (short lines: atomic on a pipe), and
 * counts those fully written before the host closed its input. */
typedef struct writer {
    int fd, n, written;
    const char *plugin_type; /* every 7th line asks for work, or NULL */
} writer;

static void *writer_main(void *arg) {
    writer *w = arg;
    for (int i = 0; i < w->n; i++) {
        char line[160];
        int len = w->plugin_type && i % 7 == 3
                      ? snprintf(line, sizeof line, "{\"type\":\"%s\",\"request_id\":\"r%d\",\"data\":{}}\n",
                                 w->plugin_type, i)
                      : snprintf(line, sizeof line, "{\"type\":\"host.health\",\"request_id\":\"r%d\"}\n", i);
        if (write(w->fd, line, (size_t)len) != len) break;
        w->written++;
    }
    close(w->fd);
    return NULL;
}

/* Writes one blob, then one more line, then closes. */
typedef struct writer_blob {
    int fd;
    const char *blob;
    size_t n;
    const char *then;
} writer_blob;

static void *blob_writer(void *arg) {
    writer_blob *w = arg;
    size_t off = 0;
    while (off < w->n) {
        ssize_t r = write(w->fd, w->blob + off, w->n - off);
        if (r <= 0) break;
        off += (size_t)r;
    }
    if (write(w->fd, w->then, strlen(w->then)) < 0) {
    }
    close(w->fd);
    return NULL;
}

static char *read_all(int fd, size_t *len) {
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    *len = 0;
    ssize_t r;
    while ((r = read(fd, buf + *len, cap - *len - 1)) > 0 || (r < 0 && errno == EINTR)) {
        if (r < 0) continue;
        *len += (size_t)r;
        if (cap - *len < 65536) buf = realloc(buf, cap *= 2);
    }
    buf[*len] = '\0';
    return buf;
}

/* The case: 5,000 pipelined requests, SIGTERM 20 ms after the first
 * write. Every line written before the host closed its input is answered
 * exactly once (work with UNAVAILABLE once stopping), and sdrt exits 0.
 * Rounds 3 and 4 send the SIGTERM while the host is still starting up (its
 * main has run: it blocks SIGTERM until its stdio loop catches it). */
static void test_sigterm_answers_everything_written(void) {
    signal(SIGPIPE, SIG_IGN);
    for (int round = 0; round < 5; round++) {
        host h;
        char args[4096];
        snprintf(args, sizeof args, "--set 'plugin_paths=[\"%s/tests/plugins/echo\"]'", getenv("SDRT_BUILD_DIR"));
        REQUIRE(start_host(&h, args) == 0, "cannot start sdrt");
        if (round < 3) sleep_s(0.15); /* started */
        else
            for (int k = 0; k < 2000 && !blocks_sigterm(h.pid); k++) sleep_s(0.0005); /* in start-up */
        writer w = {h.in, 5000, 0, "echo.run"};
        pthread_t t;
        pthread_create(&t, NULL, writer_main, &w);
        sleep_s(round < 3 ? 0.02 : 0.001);
        kill(h.pid, SIGTERM);
        size_t len;
        char *out = read_all(h.out, &len);
        pthread_join(t, NULL);
        int status = 0;
        waitpid(h.pid, &status, 0);
        close(h.out);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "round %d: exit status %d, expected 0", round, status);
        /* Exactly one final response per written request, by id. */
        char *seen = calloc((size_t)w.n, 1);
        int responses = 0, dup = 0, unavailable = 0, bad = 0;
        for (char *save = NULL, *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
            cJSON *o = cJSON_Parse(l);
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "request_id");
            const cJSON *code = cJSON_GetObjectItemCaseSensitive(o, "error_code");
            if (!cJSON_IsString(id) || id->valuestring[0] != 'r') {
                bad++;
                cJSON_Delete(o);
                continue;
            }
            int i = atoi(id->valuestring + 1);
            if (i >= 0 && i < w.n) {
                if (seen[i]) dup++;
                seen[i] = 1;
            }
            if (cJSON_IsString(code) && strcmp(code->valuestring, "UNAVAILABLE") == 0) unavailable++;
            responses++;
            cJSON_Delete(o);
        }
        int missing = 0;
        for (int i = 0; i < w.written; i++) missing += !seen[i];
        CHECK(bad == 0, "round %d: %d lines that are not responses to our ids", round, bad);
        CHECK(dup == 0, "round %d: %d duplicate responses", round, dup);
        CHECK(missing == 0, "round %d: %d of %d written requests never answered", round, missing, w.written);
        CHECK(responses == w.written, "round %d: %d responses for %d written requests", round, responses,
              w.written);
        fprintf(stderr, "    round %d: %d written, %d answered, %d UNAVAILABLE\n", round, w.written, responses,
                unavailable);
        free(seen);
        free(out);
    }
}

/* SIGTERM while the client never reads stdout: the host must not hang in
 * a pipe write; it ends within shutdown_grace_s (plus start-up slack) and
 * says by its exit status (1) that answers were lost. */
static void test_sigterm_while_client_does_not_read(void) {
    signal(SIGPIPE, SIG_IGN);
    host h;
    REQUIRE(start_host(&h, "--set 'plugin_paths=[]' --set shutdown_grace_s=1 --set cancel_grace_s=0.5") == 0,
            "cannot start sdrt");
    /* 20,000 answers (~4 MB) overflow the stdout pipe; nobody reads it. */
    writer w = {h.in, 20000, 0, NULL};
    pthread_t t;
    pthread_create(&t, NULL, writer_main, &w);
    sleep_s(0.5);
    double t0 = now_s();
    kill(h.pid, SIGTERM);
    int status = 0;
    pid_t r = 0;
    while ((r = waitpid(h.pid, &status, WNOHANG)) == 0 && now_s() - t0 < 10) sleep_s(0.01);
    double took = now_s() - t0;
    if (r == 0) {
        kill(h.pid, SIGKILL);
        waitpid(h.pid, &status, 0);
    }
    CHECK(r == h.pid, "sdrt still running %.1f s after SIGTERM with an unread stdout", took);
    CHECK(took < 1.0 + 1.0, "shutdown took %.2f s, shutdown_grace_s is 1", took);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1, "exit status %d, expected 1 (answers lost)", status);
    close(h.out); /* the writer thread now fails with EPIPE or already stopped */
    pthread_join(t, NULL);
    fprintf(stderr, "    exited %.2f s after SIGTERM, status %d\n", took, WEXITSTATUS(status));
}

/* A plugin crash names the plugin and the signal, the service restarts, and
 * a plugin that crashes again and again still gets every request answered,
 * each once (the others either served or, when in flight at a crash,
 * answered as lost to it), and the service serves afterwards. */
static void test_crash_names_plugin_and_signal(void) {
    signal(SIGPIPE, SIG_IGN);
    host h;
    char args[4096];
    const char *b = getenv("SDRT_BUILD_DIR");
    snprintf(args, sizeof args, "--set 'plugin_paths=[\"%s/tests/plugins/crashy\",\"%s/tests/plugins/echo\"]'", b, b);
    REQUIRE(start_host(&h, args) == 0, "cannot start sdrt");
    enum { N = 12 };
    for (int i = 0; i < N; i++) {
        char line[160];
        int len = snprintf(line, sizeof line, "{\"type\":\"%s\",\"request_id\":\"c%d\",\"data\":{}}\n",
                           i % 3 == 0 ? "crashy.segv" : i % 3 == 1 ? "echo.run" : "host.health", i);
        CHECK(write(h.in, line, (size_t)len) == len, "write");
        sleep_s(0.05);
    }
    sleep_s(1.5); /* restarted by now, also in a sanitizer build */
    const char *last = "{\"type\":\"echo.run\",\"request_id\":\"last\",\"data\":{\"ok\":1}}\n";
    CHECK(write(h.in, last, strlen(last)) == (ssize_t)strlen(last), "write");
    close(h.in);
    size_t len;
    char *out = read_all(h.out, &len);
    int status = 0;
    waitpid(h.pid, &status, 0);
    close(h.out);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d after EOF, expected 0", status);
    int seen[N] = {0}, crashes = 0, last_ok = 0;
    for (char *save = NULL, *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        cJSON *o = cJSON_Parse(l);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "request_id");
        if (cJSON_IsString(id) && strcmp(id->valuestring, "last") == 0)
            last_ok += cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "success"));
        int i = cJSON_IsString(id) && id->valuestring[0] == 'c' ? atoi(id->valuestring + 1) : -1;
        if (i >= 0 && i < N) seen[i]++;
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "error_data");
        if (i >= 0 && i % 3 == 0) {
            crashes++;
            const cJSON *plugin = cJSON_GetObjectItemCaseSensitive(data, "plugin");
            CHECK(cJSON_IsString(plugin) && strcmp(plugin->valuestring, "org.sdrt.test.crashy") == 0,
                  "c%d: the crash does not name the plugin: %s", i, l);
#if !defined(__SANITIZE_ADDRESS__)
            const cJSON *sig = cJSON_GetObjectItemCaseSensitive(data, "signal");
            const cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
            CHECK(cJSON_IsNumber(sig) && sig->valueint == SIGSEGV, "c%d: the crash does not name SIGSEGV: %s", i, l);
            CHECK(cJSON_IsString(err) && strstr(err->valuestring, "signal 11, SIGSEGV"), "c%d: message: %s", i, l);
#endif
        } else if (i >= 0 && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "success"))) {
            /* In flight when a crash came (a slow restart under a sanitizer):
             * answered as lost, naming the crash. */
            const cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
            CHECK(cJSON_IsString(err) && strstr(err->valuestring, "lost: plugin 'org.sdrt.test.crashy' crashed"),
                  "c%d failed otherwise than lost to the crash: %s", i, l);
        }
        cJSON_Delete(o);
    }
    for (int i = 0; i < N; i++) CHECK(seen[i] == 1, "c%d answered %d times", i, seen[i]);
    CHECK(crashes == N / 3, "%d crash answers, expected %d", crashes, N / 3);
    CHECK(last_ok == 1, "the request after the crashes was not served");
    free(out);
}

/* A response longer than the writer's 1 MiB staging area goes out in pieces:
 * it must arrive whole, in order with the lines around it. */
static void test_long_response_line(void) {
    signal(SIGPIPE, SIG_IGN);
    host h;
    char args[4096];
    snprintf(args, sizeof args, "--set 'plugin_paths=[\"%s/tests/plugins/echo\"]'", getenv("SDRT_BUILD_DIR"));
    REQUIRE(start_host(&h, args) == 0, "cannot start sdrt");
    size_t big = 3 * 1024 * 1024 + 17;
    char *text = malloc(big + 1);
    srand((unsigned)time(NULL));
    for (size_t i = 0; i < big; i++) text[i] = (char)('a' + rand() % 26);
    text[big] = '\0';
    char *line = malloc(big + 128);
    int n = snprintf(line, big + 128, "{\"type\":\"echo.run\",\"request_id\":\"big\",\"data\":{\"t\":\"%s\"}}\n", text);
    const char *after = "{\"type\":\"host.health\",\"request_id\":\"after\"}\n";
    writer_blob w = {h.in, line, (size_t)n, after};
    pthread_t t;
    pthread_create(&t, NULL, blob_writer, &w);
    size_t len;
    char *out = read_all(h.out, &len);
    pthread_join(t, NULL);
    int status = 0;
    waitpid(h.pid, &status, 0);
    close(h.out);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
    /* Two lines, in either order (host.health is answered at once). */
    int got_big = 0, got_after = 0, lines = 0;
    for (char *save = NULL, *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        lines++;
        cJSON *o = cJSON_Parse(l);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "request_id");
        if (cJSON_IsString(id) && strcmp(id->valuestring, "after") == 0) got_after++;
        if (cJSON_IsString(id) && strcmp(id->valuestring, "big") == 0) {
            const cJSON *t2 = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "data"), "t");
            CHECK(cJSON_IsString(t2) && strcmp(t2->valuestring, text) == 0,
                  "the long line did not come back whole (%zu bytes)", strlen(l));
            got_big++;
        }
        cJSON_Delete(o);
    }
    CHECK(lines == 2 && got_big == 1 && got_after == 1, "%d lines, big %d, after %d", lines, got_big, got_after);
    free(out);
    free(line);
    free(text);
}

/* Crashes in the middle of pipelined traffic: 3,000 lines written at once,
 * every 500th a crash. Whatever the serving process had read, handled,
 * staged or written when it died, each request is answered exactly once
 * (served, or INTERNAL for the crash and what was in flight), and the
 * lines it had read but not handled are served by the next one. */
static void test_crash_amid_pipelined_lines(void) {
    signal(SIGPIPE, SIG_IGN);
    host h;
    char args[4096];
    const char *b = getenv("SDRT_BUILD_DIR");
    snprintf(args, sizeof args, "--set 'plugin_paths=[\"%s/tests/plugins/crashy\",\"%s/tests/plugins/echo\"]' --set queue_limit=10000", b, b);
    REQUIRE(start_host(&h, args) == 0, "cannot start sdrt");
    enum { N = 3000 };
    size_t cap = (size_t)N * 96, n = 0;
    char *all = malloc(cap);
    for (int i = 0; i < N; i++)
        n += (size_t)snprintf(all + n, cap - n, "{\"type\":\"%s\",\"request_id\":\"p%d\",\"data\":{}}\n",
                              i % 500 == 250 ? "crashy.segv" : i % 2 ? "echo.run" : "host.health", i);
    writer_blob w = {h.in, all, n, ""};
    pthread_t t;
    pthread_create(&t, NULL, blob_writer, &w);
    size_t len;
    char *out = read_all(h.out, &len);
    pthread_join(t, NULL);
    int status = 0;
    waitpid(h.pid, &status, 0);
    close(h.out);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
    int *seen = calloc(N, sizeof *seen), served = 0, lost = 0, crashed = 0, other = 0;
    for (char *save = NULL, *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        cJSON *o = cJSON_Parse(l);
        CHECK(o != NULL, "not JSON: %.200s", l);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "request_id");
        int i = cJSON_IsString(id) && id->valuestring[0] == 'p' ? atoi(id->valuestring + 1) : -1;
        if (i >= 0 && i < N) seen[i]++;
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
        if (i % 500 == 250)
            CHECK(!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "success")), "p%d (a crash) succeeded", i);
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "success"))) served++;
        else if (cJSON_IsString(err) && strstr(err->valuestring, "lost: plugin 'org.sdrt.test.crashy' crashed")) lost++;
        else if (cJSON_IsString(err) && strstr(err->valuestring, "plugin 'org.sdrt.test.crashy' crashed")) crashed++;
        else {
            other++;
            fprintf(stderr, "    other: %.300s\n", l);
        }
        cJSON_Delete(o);
    }
    int missing = 0, dup = 0;
    for (int i = 0; i < N; i++) {
        missing += seen[i] == 0;
        dup += seen[i] > 1;
    }
    fprintf(stderr, "    %d served, %d crashed, %d lost to a crash\n", served, crashed, lost);
    CHECK(missing == 0 && dup == 0, "%d requests unanswered, %d answered twice", missing, dup);
    /* Each crashing request crashes, or is lost to another's crash first. */
    CHECK(crashed >= 1 && crashed <= N / 500, "%d crash answers, expected 1..%d", crashed, N / 500);
    CHECK(other == 0, "%d answers that are neither served nor the crash", other);
    free(seen);
    free(out);
    free(all);
}

const test_entry TESTS[] = {
    {"crash_amid_pipelined_lines", test_crash_amid_pipelined_lines},
    {"long_response_line", test_long_response_line},
    {"crash_names_plugin_and_signal", test_crash_names_plugin_and_signal},
    {"sigterm_answers_everything_written", test_sigterm_answers_everything_written},
    {"sigterm_while_client_does_not_read", test_sigterm_while_client_does_not_read},
    {0},
};
