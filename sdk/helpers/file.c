/* sdk/helpers/file.c - non-blocking, regular-file-only, root-confined opens
 * of the files requests name (see sdrt/file.h for the guarantees). */
#if !defined(_WIN32)
#define _GNU_SOURCE
#endif
#include "sdrt/file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#if defined(_WIN32)
#include <io.h>
#define file_close _close
#else
#include <unistd.h>
#define file_close close
#endif

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

static sdrt_status fail(sdrt_status st, char *err, size_t errlen, const char *fmt, ...) SDRT_PRINTF(4, 5);
static sdrt_status fail(sdrt_status st, char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

static const char *type_name(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISCHR(m)) return "a character device";
#ifdef S_ISBLK
    if (S_ISBLK(m)) return "a block device";
#endif
#ifdef S_ISFIFO
    if (S_ISFIFO(m)) return "a FIFO (named pipe)";
#endif
#ifdef S_ISSOCK
    if (S_ISSOCK(m)) return "a socket";
#endif
    return "a special file";
}

/* The real path of an open descriptor, from the kernel where it can say
 * (so it names the file actually opened, whatever links led there);
 * otherwise realpath() of the name, which is what the name resolves to now.
 * Returns 0 or -1. */
static int fd_real_path(int fd, const char *path, char *out, size_t n) {
#if defined(__linux__)
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, out, n - 1);
    if (len > 0 && (size_t)len < n - 1 && out[0] == '/') {
        out[len] = '\0';
        return 0;
    }
#elif defined(__APPLE__) && defined(F_GETPATH)
    if (n >= PATH_MAX && fcntl(fd, F_GETPATH, out) == 0) return 0;
#endif
#if defined(_WIN32)
    (void)fd;
    return _fullpath(out, path, n) ? 0 : -1;
#else
    (void)fd;
    char *r = realpath(path, NULL);
    if (!r) return -1;
    int ok = strlen(r) < n;
    if (ok) memcpy(out, r, strlen(r) + 1);
    free(r);
    return ok ? 0 : -1;
#endif
}

static int inside_extra(const char *real, const sdrt_file_scope *scope) {
    for (size_t i = 0; i < scope->n_extra_roots; i++) {
#if defined(_WIN32)
        char root[PATH_MAX];
        if (!scope->extra_roots[i] || !_fullpath(root, scope->extra_roots[i], sizeof root)) continue;
#else
        char *root = scope->extra_roots[i] ? realpath(scope->extra_roots[i], NULL) : NULL;
        if (!root) continue;
#endif
        size_t n = strlen(root);
        int ok = strncmp(real, root, n) == 0 && (real[n] == '/' || real[n] == '\\' || real[n] == '\0' ||
                                                 (n > 0 && (root[n - 1] == '/' || root[n - 1] == '\\')));
#if !defined(_WIN32)
        free(root);
#endif
        if (ok) return 1;
    }
    return 0;
}

/* The real path must lie inside the roots of scope->kind; the host's
 * resolve_path holds the one definition of "inside" (and of allow_any_path). */
static sdrt_status check_scope(int fd, const char *path, const char *field, const sdrt_file_scope *scope,
                               char *err, size_t errlen) {
    if (!scope || !scope->api || !scope->kind || !scope->api->resolve_path) return SDRT_OK;
    char real[PATH_MAX];
    if (fd_real_path(fd, path, real, sizeof real) != 0)
        return fail(SDRT_IO_ERROR, err, errlen, "%s: '%s': cannot determine where the file lies", field, path);
    sdrt_error *e = NULL;
    char *ok = scope->api->resolve_path(scope->host, scope->kind, real, &e);
    if (ok) {
        scope->api->free(ok);
        return SDRT_OK;
    }
    if (inside_extra(real, scope)) {
        if (e) scope->api->error_free(e);
        return SDRT_OK;
    }
    sdrt_status st = e ? e->code : SDRT_PERMISSION_DENIED;
    if (st == SDRT_PERMISSION_DENIED) {
        if (strcmp(real, path) == 0)
            fail(st, err, errlen, "%s: '%s' is outside the allowed %s roots", field, path, scope->kind);
        else
            fail(st, err, errlen, "%s: '%s' leads to '%s', outside the allowed %s roots (a symlink points out)",
                 field, path, real, scope->kind);
    } else {
        fail(st, err, errlen, "%s: '%s': %s", field, path, e && e->message ? e->message : "refused");
    }
    if (e) scope->api->error_free(e);
    return st;
}

sdrt_status sdrt_file_open(const char *path, const char *field, const sdrt_file_scope *scope, int *fd_out,
                           char *err, size_t errlen) {
    if (fd_out) *fd_out = -1;
    if (!field) field = "file";
    if (!path || !*path) return fail(SDRT_INVALID_ARGUMENT, err, errlen, "%s: empty path", field);
    if (!fd_out) return fail(SDRT_INVALID_ARGUMENT, err, errlen, "%s: no descriptor to return", field);
#if defined(_WIN32)
    /* Windows has no FIFOs in the file namespace; named pipes and devices
     * are refused by the type check below. */
    int fd = _open(path, _O_RDONLY | _O_BINARY | _O_NOINHERIT);
#else
    /* O_NONBLOCK: opening a FIFO with no writer returns at once instead of
     * parking the worker; O_NOCTTY: a terminal device never becomes ours. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
#endif
    if (fd < 0) {
        int en = errno;
        struct stat ls;
        /* A socket cannot be opened at all (ENXIO): still say what it is. */
        if (stat(path, &ls) == 0 && !S_ISREG(ls.st_mode) && !S_ISDIR(ls.st_mode))
            return fail(SDRT_INVALID_ARGUMENT, err, errlen, "%s: '%s' is %s, not a regular file", field, path,
                        type_name(ls.st_mode));
        sdrt_status st = en == ENOENT || en == ENOTDIR ? SDRT_NOT_FOUND
                         : en == EACCES || en == EPERM ? SDRT_PERMISSION_DENIED
                         : en == EISDIR               ? SDRT_INVALID_ARGUMENT
                                                      : SDRT_IO_ERROR;
        if (en == EISDIR) return fail(st, err, errlen, "%s: '%s' is a directory, not a regular file", field, path);
        return fail(st, err, errlen, "%s: cannot open '%s': %s", field, path, strerror(en));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int en = errno;
        file_close(fd);
        return fail(SDRT_IO_ERROR, err, errlen, "%s: cannot stat '%s': %s", field, path, strerror(en));
    }
    if (!S_ISREG(sb.st_mode)) {
        file_close(fd);
        return fail(SDRT_INVALID_ARGUMENT, err, errlen, "%s: '%s' is %s, not a regular file", field, path,
                    type_name(sb.st_mode));
    }
    sdrt_status st = check_scope(fd, path, field, scope, err, errlen);
    if (st != SDRT_OK) {
        file_close(fd);
        return st;
    }
#if !defined(_WIN32)
    /* A regular file never blocks, but later readers expect plain blocking
     * semantics (stdio, mmap users): drop the flag. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
#endif
    *fd_out = fd;
    return SDRT_OK;
}

FILE *sdrt_file_fopen(const char *path, const char *field, const sdrt_file_scope *scope, sdrt_status *status,
                      char *err, size_t errlen) {
    int fd;
    sdrt_status st = sdrt_file_open(path, field, scope, &fd, err, errlen);
    FILE *f = NULL;
    if (st == SDRT_OK) {
#if defined(_WIN32)
        f = _fdopen(fd, "rb");
#else
        f = fdopen(fd, "rb");
#endif
        if (!f) {
            int en = errno;
            file_close(fd);
            st = fail(SDRT_RESOURCE_EXHAUSTED, err, errlen, "%s: '%s': %s", field ? field : "file", path,
                      strerror(en));
        }
    }
    if (status) *status = st;
    return f;
}

char *sdrt_file_read_all(const char *path, const char *field, const sdrt_file_scope *scope, size_t max_bytes,
                         size_t *len_out, sdrt_status *status, char *err, size_t errlen) {
    sdrt_status st;
    if (len_out) *len_out = 0;
    FILE *f = sdrt_file_fopen(path, field, scope, &st, err, errlen);
    char *buf = NULL;
    size_t n = 0, cap = 0;
    while (f) {
        if (n == cap) {
            if (cap > max_bytes) {
                st = fail(SDRT_INVALID_ARGUMENT, err, errlen, "%s: '%s' is larger than %zu bytes", field ? field : "file",
                          path, max_bytes);
                break;
            }
            /* One byte past the limit tells "exactly max_bytes" from "more". */
            size_t limit = max_bytes < SIZE_MAX / 4 ? max_bytes + 1 : SIZE_MAX / 4;
            size_t ncap = cap ? (cap < limit / 2 ? cap * 2 : limit) : 65536;
            if (ncap > limit) ncap = limit;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                st = fail(SDRT_RESOURCE_EXHAUSTED, err, errlen, "%s: '%s': out of memory", field ? field : "file", path);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                st = fail(SDRT_IO_ERROR, err, errlen, "%s: cannot read '%s'", field ? field : "file", path);
            else if (n > max_bytes)
                st = fail(SDRT_INVALID_ARGUMENT, err, errlen, "%s: '%s' is larger than %zu bytes",
                          field ? field : "file", path, max_bytes);
            break;
        }
    }
    if (f) fclose(f);
    if (st != SDRT_OK) {
        free(buf);
        buf = NULL;
    } else {
        if (!buf) buf = malloc(1);
        if (buf) buf[n] = '\0';
        if (len_out) *len_out = n;
    }
    if (status) *status = st;
    return buf;
}
