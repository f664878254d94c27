/* plugins/model/scan.c - model.scan: what lies under the model roots.
 * Two levels deep; diffusers folders by model_index.json, single files by
 * a header-only parse (the mmap touches no weight pages). */
#define _GNU_SOURCE
#include "scan.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt_map.h"
#include "safetensors.h"

static void add(cJSON *arr, const char *path, const char *kind, const char *arch) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "path", path);
    cJSON_AddStringToObject(e, "kind", kind);
    if (arch) cJSON_AddStringToObject(e, "architecture", arch);
    cJSON_AddItemToArray(arr, e);
}

static void scan_file(cJSON *arr, const char *path, const sdrt_file_scope *scope) {
    size_t n = strlen(path);
    if (n < 12 || strcmp(path + n - 12, ".safetensors") != 0) return;
    st_file *f;
    char err[256];
    if (st_open_scoped(path, NULL, scope, &f, err, sizeof err) != SDRT_OK) {
        add(arr, path, "invalid", NULL);
        return;
    }
    const char **names = malloc((f->n_tensors ? f->n_tensors : 1) * sizeof *names);
    if (names) {
        for (size_t i = 0; i < f->n_tensors; i++) names[i] = f->tensors[i].name;
        ckpt_arch a = ckpt_detect(names, f->n_tensors);
        add(arr, path, a == CKPT_UNKNOWN ? "safetensors" : "single_file", a == CKPT_UNKNOWN ? NULL : ckpt_arch_name(a));
        free(names);
    }
    st_close(f);
}

static void scan_dir(cJSON *arr, const char *dir, int depth, const sdrt_file_scope *scope) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *p;
        struct stat sb;
        if (asprintf(&p, "%s/%s", dir, e->d_name) < 0) break;
        if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) scan_file(arr, p, scope);
        else if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            char *idx;
            if (asprintf(&idx, "%s/model_index.json", p) >= 0) {
                if (stat(idx, &sb) == 0) add(arr, p, "diffusers", NULL);
                else if (depth > 0) scan_dir(arr, p, depth - 1, scope);
                free(idx);
            }
        }
        free(p);
    }
    closedir(d);
}

cJSON *scan_roots(char *const *roots, size_t n, const sdrt_file_scope *scope) {
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "models");
    for (size_t i = 0; i < n; i++) scan_dir(arr, roots[i], 1, scope);
    return o;
}
