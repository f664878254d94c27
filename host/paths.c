/* host/paths.c - confining file paths to the configured roots. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "os.h"

/* "<dir>/<tail>", without doubling a separator that ends `dir` (the root
 * "/", or "C:/" on Windows). Returns malloc'd or NULL. */
static char *join(const char *dir, const char *tail) {
    size_t len = strlen(dir), n = len + strlen(tail) + 2;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%s%s%s", dir, len > 0 && os_is_sep(dir[len - 1]) ? "" : "/", tail);
    return out;
}

/* os_realpath() of the longest existing prefix of `path`, with the missing tail
 * appended. Refuses ".." in the missing tail (it could climb out after the
 * directories are created). Returns malloc'd or NULL. */
static char *resolve_partial(const char *path) {
    char *copy = strdup(path);
    if (!copy) return NULL;
    size_t len = strlen(copy);
    const char *tail = NULL;
    for (;;) {
        char *real = os_realpath(copy);
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
            char *out = join(real, tail);
            free(real);
            free(copy);
            return out;
        }
        char *slash = os_path_last_sep(copy);
        /* Only the root is left ("/", "C:/"): nothing of the path exists. */
        if (!slash || (size_t)(slash - copy) < os_path_root_len(copy)) {
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
    if (strncmp(path, root, n) != 0) return 0;
    /* A root ending in a separator ("/", "C:/") contains all that it prefixes. */
    return (n > 0 && os_is_sep(root[n - 1])) || path[n] == '\0' || os_is_sep(path[n]);
}

static char *absolute_under(const char *path, const char *base) {
    if (os_path_is_absolute(path) || !base) return strdup(path);
    return join(base, path);
}

/* A relative path is looked up under each root in order; the first root
 * where it exists wins, else it is placed under the first existing root
 * (an output that does not exist yet), else under the working directory. */
static char *absolute_candidate(const char *path, char **roots, int n_roots) {
    if (os_path_is_absolute(path)) return strdup(path);
    for (int i = 0; i < n_roots; i++) {
        char *abs = absolute_under(path, roots[i]);
        char *real = abs ? os_realpath(abs) : NULL;
        free(real);
        if (real) return abs;
        free(abs);
    }
    for (int i = 0; i < n_roots; i++) {
        char *root = os_realpath(roots[i]);
        if (!root) continue;
        char *abs = absolute_under(path, root);
        free(root);
        return abs;
    }
    char *cwd = os_getcwd();
    char *abs = absolute_under(path, cwd ? cwd : "/");
    free(cwd);
    return abs;
}

/* "[a, b]" of the roots, for messages; static-size, truncated. */
static void roots_text(char **roots, int n_roots, char *out, size_t n) {
    size_t at = 0;
    out[0] = '\0';
    for (int i = 0; i < n_roots && at + 1 < n; i++) {
        int w = snprintf(out + at, n - at, "%s'%s'", i ? ", " : "", roots[i]);
        if (w < 0) break;
        at += (size_t)w;
    }
}

char *paths_resolve(const char *path, char **roots, int n_roots, int allow_any, const char *what,
                    sdrt_error **err) {
    if (!path || !*path) {
        *err = error_new(SDRT_INVALID_ARGUMENT, NULL, "empty %s path", what);
        return NULL;
    }
    if (!allow_any && n_roots == 0) {
        *err = error_new(SDRT_PERMISSION_DENIED, NULL,
                         "%s path '%s': no %s roots are configured (start sdrt with --%s-root DIR or set %s_roots)",
                         what, path, what, what, what);
        return NULL;
    }
    char *abs = absolute_candidate(path, roots, n_roots);
    char *real = abs ? resolve_partial(abs) : NULL;
    free(abs);
    if (!real) {
        *err = error_new(SDRT_INVALID_ARGUMENT, NULL, "%s path '%s' cannot be resolved", what, path);
        return NULL;
    }
    if (allow_any) return real;
    for (int i = 0; i < n_roots; i++) {
        char *root = os_realpath(roots[i]);
        int ok = root && is_inside(real, root);
        free(root);
        if (ok) return real;
    }
    char list[1024];
    roots_text(roots, n_roots, list, sizeof list);
    *err = error_new(SDRT_PERMISSION_DENIED, NULL, "%s path '%s' is outside the allowed %s roots (%s)", what, path,
                     what, list);
    free(real);
    return NULL;
}
