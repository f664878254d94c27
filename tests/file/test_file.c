/* tests/file/test_file.c - sdrt_file_open (sdk/helpers/file.c): the one way
 * plugins open files a request names. Fixtures (FIFO, socket, symlinks in
 * and out of a root) are made here in a fresh temp folder; the root check
 * goes through a resolve_path that, like the host's, accepts real paths
 * under one root. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "sdrt/file.h"

static char g_root[4096];

static sdrt_error *f_error_new(sdrt_status code, const char *data, const char *fmt, ...) {
    (void)data;
    sdrt_error *e = calloc(1, sizeof *e);
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
    va_end(ap);
    e->code = code;
    e->message = msg;
    return e;
}

static void f_error_free(sdrt_error *e) {
    if (!e) return;
    free((char *)e->message);
    free(e);
}

static char *f_resolve(sdrt_host *h, const char *kind, const char *path, sdrt_error **err) {
    (void)h, (void)kind;
    char *real = realpath(path, NULL), *root = realpath(g_root, NULL);
    size_t n = root ? strlen(root) : 0;
    int ok = real && root && strncmp(real, root, n) == 0 && (real[n] == '/' || real[n] == 0);
    free(root);
    if (ok) return real;
    free(real);
    *err = f_error_new(SDRT_PERMISSION_DENIED, NULL, "outside");
    return NULL;
}

static sdrt_host_api fake_api(void) {
    sdrt_host_api a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.error_new = f_error_new;
    a.error_free = f_error_free;
    a.resolve_path = f_resolve;
    a.alloc = malloc;
    a.free = free;
    return a;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    REQUIRE(f, "create %s", path);
    fputs(text, f);
    fclose(f);
}

static void test_special_files_refused_without_blocking(void) {
    char p[4300];
    snprintf(p, sizeof p, "%s/pipe", test_tmpdir());
    REQUIRE(mkfifo(p, 0600) == 0, "mkfifo");
    char err[512];
    int fd = 99;
    alarm(20); /* a blocking open(2) on the FIFO would hang here */
    sdrt_status st = sdrt_file_open(p, "init_image", NULL, &fd, err, sizeof err);
    CHECK(st == SDRT_INVALID_ARGUMENT && fd == -1, "FIFO: status %d fd %d", st, fd);
    CHECK(strstr(err, "init_image") && strstr(err, "FIFO") && strstr(err, p), "FIFO message: %s", err);
    st = sdrt_file_open("/dev/zero", "mask_image", NULL, &fd, err, sizeof err);
    CHECK(st == SDRT_INVALID_ARGUMENT && strstr(err, "mask_image") && strstr(err, "character device"), "device: %s",
          err);
    st = sdrt_file_open(test_tmpdir(), "lora", NULL, &fd, err, sizeof err);
    CHECK(st == SDRT_INVALID_ARGUMENT && strstr(err, "directory"), "directory: %s", err);
    /* A socket cannot even be opened (ENXIO); it must not succeed. */
    char sock[4300];
    snprintf(sock, sizeof sock, "%s/s", test_tmpdir());
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(sock) < sizeof a.sun_path) {
        snprintf(a.sun_path, sizeof a.sun_path, "%s", sock);
        if (bind(s, (struct sockaddr *)&a, sizeof a) == 0) {
            st = sdrt_file_open(sock, "lora", NULL, &fd, err, sizeof err);
            CHECK(st == SDRT_INVALID_ARGUMENT && fd == -1 && strstr(err, "socket"), "socket: %d %s", st, err);
        }
    }
    close(s);
    /* A symlink to a FIFO is followed and refused the same way. */
    char link[4300];
    snprintf(link, sizeof link, "%s/link", test_tmpdir());
    REQUIRE(symlink(p, link) == 0, "symlink");
    st = sdrt_file_open(link, "vocab", NULL, &fd, err, sizeof err);
    CHECK(st == SDRT_INVALID_ARGUMENT && strstr(err, "FIFO"), "link to FIFO: %s", err);
    alarm(0);
    st = sdrt_file_open("/nonexistent/x.png", "init_image", NULL, &fd, err, sizeof err);
    CHECK(st == SDRT_NOT_FOUND && strstr(err, "init_image"), "missing: %d %s", st, err);
}

static void test_regular_file_blocking_again(void) {
    char p[4300], err[512];
    snprintf(p, sizeof p, "%s/a.txt", test_tmpdir());
    write_text(p, "hello");
    int fd = -1;
    REQUIRE(sdrt_file_open(p, "f", NULL, &fd, err, sizeof err) == SDRT_OK, "%s", err);
    int fl = fcntl(fd, F_GETFL);
    CHECK(fl >= 0 && !(fl & O_NONBLOCK), "O_NONBLOCK left set");
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC, "close-on-exec");
    close(fd);
    size_t n = 0;
    sdrt_status st;
    char *t = sdrt_file_read_all(p, "f", NULL, 100, &n, &st, err, sizeof err);
    CHECK(t && n == 5 && strcmp(t, "hello") == 0 && st == SDRT_OK, "read_all");
    free(t);
    t = sdrt_file_read_all(p, "f", NULL, 4, &n, &st, err, sizeof err);
    CHECK(!t && st == SDRT_INVALID_ARGUMENT && strstr(err, "larger than 4 bytes"), "limit: %s", err);
    t = sdrt_file_read_all(p, "f", NULL, 5, &n, &st, err, sizeof err);
    CHECK(t && n == 5, "exactly at the limit");
    free(t);
}

/* The real path of what was opened must lie in the root, whatever name led
 * there: a folder or file symlinked from inside the root to outside is
 * PERMISSION_DENIED naming both; links that stay inside are fine. */
static void test_symlinks_out_of_the_root(void) {
    char outside[4300], in_file[4300], p[4400], err[1024];
    snprintf(g_root, sizeof g_root, "%s/root", test_tmpdir());
    REQUIRE(mkdir(g_root, 0755) == 0, "mkdir");
    snprintf(outside, sizeof outside, "%s/secret", test_tmpdir());
    REQUIRE(mkdir(outside, 0755) == 0, "mkdir");
    snprintf(p, sizeof p, "%s/vocab.json", outside);
    write_text(p, "{}");
    snprintf(in_file, sizeof in_file, "%s/inside.json", g_root);
    write_text(in_file, "{}");
    sdrt_host_api api = fake_api();
    sdrt_file_scope scope = {.api = &api, .kind = "model"};

    char tok[4400], link[4500];
    snprintf(tok, sizeof tok, "%s/tokenizer", g_root);
    REQUIRE(mkdir(tok, 0755) == 0, "mkdir");
    snprintf(link, sizeof link, "%s/vocab.json", tok);
    REQUIRE(symlink(p, link) == 0, "symlink");
    int fd = -1;
    sdrt_status st = sdrt_file_open(link, "tokenizer/vocab.json", &scope, &fd, err, sizeof err);
    CHECK(st == SDRT_PERMISSION_DENIED && fd == -1, "file link out: %d", st);
    CHECK(strstr(err, "tokenizer/vocab.json") && strstr(err, outside) && strstr(err, "outside the allowed model roots"),
          "message: %s", err);

    snprintf(link, sizeof link, "%s/unet", g_root);
    REQUIRE(symlink(outside, link) == 0, "symlink dir");
    snprintf(link, sizeof link, "%s/unet/vocab.json", g_root);
    st = sdrt_file_open(link, NULL, &scope, &fd, err, sizeof err);
    CHECK(st == SDRT_PERMISSION_DENIED, "folder link out: %d %s", st, err);

    st = sdrt_file_open("/etc/passwd", "vocab", &scope, &fd, err, sizeof err);
    CHECK(st == SDRT_PERMISSION_DENIED, "absolute outside: %d", st);

    snprintf(link, sizeof link, "%s/alias.json", g_root);
    REQUIRE(symlink(in_file, link) == 0, "symlink in");
    st = sdrt_file_open(link, "x", &scope, &fd, err, sizeof err);
    CHECK(st == SDRT_OK && fd >= 0, "a link inside the root: %s", err);
    if (fd >= 0) close(fd);

    /* An extra root (a trusted HF cache) admits what the host roots do not. */
    char *extra[] = {outside};
    scope.extra_roots = extra;
    scope.n_extra_roots = 1;
    snprintf(link, sizeof link, "%s/vocab.json", tok);
    st = sdrt_file_open(link, "x", &scope, &fd, err, sizeof err);
    CHECK(st == SDRT_OK, "extra root: %s", err);
    if (fd >= 0) close(fd);
}

const test_entry TESTS[] = {
    {"special_files_refused_without_blocking", test_special_files_refused_without_blocking},
    {"regular_file_blocking_again", test_regular_file_blocking_again},
    {"symlinks_out_of_the_root", test_symlinks_out_of_the_root},
    {NULL, NULL},
};
