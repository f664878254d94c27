/* output_name.c - output files that never overwrite: "<dir>/<prefix>-<n>.png"
 * created with O_EXCL, n starting after the highest number in use. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pp.h"

int pp_mkdirs(const char *path, char *err, size_t errlen) {
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf) {
        snprintf(err, errlen, "output.dir: path empty or too long");
        return -1;
    }
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "output.dir: cannot create %s: %s", buf, strerror(errno));
            return -1;
        }
        *p = saved;
        if (saved == '\0') break;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "output.dir: %s is not a directory", path);
        return -1;
    }
    return 0;
}

/* The number n in "<prefix>-<n><ext>", or -1 when name is not of that form. */
static long parse_index(const char *name, const char *prefix, const char *ext) {
    size_t pl = strlen(prefix), el = strlen(ext), nl = strlen(name);
    if (nl <= pl + 1 + el || strncmp(name, prefix, pl) != 0 || name[pl] != '-') return -1;
    if (strcmp(name + nl - el, ext) != 0) return -1;
    long v = 0;
    for (size_t i = pl + 1; i < nl - el; i++) {
        if (name[i] < '0' || name[i] > '9' || v > 100000000) return -1;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

/* One past the highest index in use: a hint only, O_EXCL decides. */
static long next_index(const char *dir, const char *prefix, const char *ext) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    long next = 0;
    for (struct dirent *e; (e = readdir(d));) {
        long v = parse_index(e->d_name, prefix, ext);
        if (v >= next) next = v + 1;
    }
    closedir(d);
    return next;
}

int pp_prefix_ok(const char *prefix) {
    if (!prefix[0] || strlen(prefix) > 128 || strcmp(prefix, ".") == 0 || strcmp(prefix, "..") == 0)
        return 0;
    for (const char *p = prefix; *p; p++)
        if (*p == '/' || *p == '\\' || (unsigned char)*p < 0x20) return 0;
    return 1;
}

int pp_create_unique(const char *dir, const char *prefix, const char *ext, char *path, size_t pathlen,
                     int *fd_out, char *err, size_t errlen) {
    long n = next_index(dir, prefix, ext);
    for (int tries = 0; tries < 100000; tries++, n++) {
        int len = snprintf(path, pathlen, "%s/%s-%05ld%s", dir, prefix, n, ext);
        if (len < 0 || (size_t)len >= pathlen) {
            snprintf(err, errlen, "output.dir: path too long");
            return -1;
        }
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) {
            *fd_out = fd;
            return 0;
        }
        if (errno != EEXIST) {
            snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
            return -1;
        }
    }
    snprintf(err, errlen, "output.dir: no free file name for prefix %s in %s", prefix, dir);
    return -1;
}
