/* host/paths.c - confining file paths to the configured roots. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"

/* realpath() of the longest existing prefix of `path`, with the missing tail
 * appended. Refuses ".." in the missing tail (it could climb out after the
 * directories are created). Returns malloc'd or NULL. */
static char *resolve_partial(const char *path) {
    char *copy = strdup(path);
    if (!copy) return NULL;
    size_t len = strlen(copy);
    const char *tail = NULL;
    for (;;) {
        char *real = realpath(copy, NULL);
        if (real) {
            if (!tail) {
                free(copy);
                return real;
            }
            if (strstr(tail, "..")) {
                free(real);
                free(copy);
                return NULL;
            }
            size_t n = strlen(real) + strlen(tail) + 2;
            char *out = malloc(n);
            if (out) snprintf(out, n, "%s/%s", strcmp(real, "/") == 0 ? "" : real, tail);
            free(real);
            free(copy);
            return out;
        }
        char *slash = strrchr(copy, '/');
        if (!slash || slash == copy) {
            free(copy);
            return NULL;
        }
        *slash = '\0';
        tail = path + (slash - copy) + 1;
        (void)len;
    }
}

static int is_inside(const char *path, const char *root) {
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/') return 1;
    return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static char *absolute_under(const char *path, const char *base) {
    if (path[0] == '/' || !base) return strdup(path);
    size_t n = strlen(base) + strlen(path) + 2;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%s/%s", base, path);
    return out;
}

/* A relative path is looked up under each root in order; the first root
 * where it exists wins, else it is placed under the first existing root
 * (an output that does not exist yet), else under the working directory. */
static char *absolute_candidate(const char *path, char **roots, int n_roots) {
    if (path[0] == '/') return strdup(path);
    for (int i = 0; i < n_roots; i++) {
        char *abs = absolute_under(path, roots[i]);
        char *real = abs ? realpath(abs, NULL) : NULL;
        free(real);
        if (real) return abs;
        free(abs);
    }
    for (int i = 0; i < n_roots; i++) {
        char *root = realpath(roots[i], NULL);
        if (!root) continue;
        char *abs = absolute_under(path, root);
        free(root);
        return abs;
    }
    char cwd[PATH_MAX];
    return absolute_under(path, getcwd(cwd, sizeof cwd) ? cwd : "/");
}

char *paths_resolve(const char *path, char **roots, int n_roots, int allow_any, const char *what,
                    sdrt_error **err) {
    if (!path || !*path) {
        *err = error_new(SDRT_INVALID_ARGUMENT, NULL, "%s: empty path", what);
        return NULL;
    }
    char *abs = absolute_candidate(path, roots, n_roots);
    char *real = abs ? resolve_partial(abs) : NULL;
    free(abs);
    if (!real) {
        *err = error_new(SDRT_INVALID_ARGUMENT, NULL, "%s: cannot resolve path '%s'", what, path);
        return NULL;
    }
    if (allow_any) return real;
    for (int i = 0; i < n_roots; i++) {
        char *root = realpath(roots[i], NULL);
        int ok = root && is_inside(real, root);
        free(root);
        if (ok) return real;
    }
    *err = error_new(SDRT_PERMISSION_DENIED, NULL, "%s: '%s' is outside the allowed %s roots", what, path, what);
    free(real);
    return NULL;
}
