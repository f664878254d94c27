/* plugins/model/lookup.c - model_id resolution. */
#define _GNU_SOURCE
#include "lookup.h"

#include "sdrt/file.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int push(char ***list, size_t *n, const char *s) {
    char **g = realloc(*list, (*n + 1) * sizeof *g);
    if (!g) return -1;
    *list = g;
    if (!(g[*n] = strdup(s))) return -1;
    (*n)++;
    return 0;
}

static int push_strings(char ***list, size_t *n, const cJSON *v) {
    if (cJSON_IsString(v)) return push(list, n, v->valuestring);
    if (!cJSON_IsArray(v)) return 0;
    for (const cJSON *e = v->child; e; e = e->next)
        if (cJSON_IsString(e) && push(list, n, e->valuestring) != 0) return -1;
    return 0;
}

int lookup_init(lookup_cfg *c, const sdrt_host_api *api, sdrt_host *host) {
    memset(c, 0, sizeof *c);
    c->api = api;
    c->host = host;
    const char *s = api && api->settings_json ? api->settings_json(host) : NULL;
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    int rc = push_strings(&c->roots, &c->n_roots, cJSON_GetObjectItemCaseSensitive(j, "model_roots"));
    if (rc == 0) rc = push_strings(&c->hf_dirs, &c->n_hf, cJSON_GetObjectItemCaseSensitive(j, "hf_cache"));
    c->allow_any_path = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "allow_any_path"));
    cJSON_Delete(j);
    char buf[PATH_MAX];
    const char *hf = getenv("HF_HOME"), *home = getenv("HOME");
    if (rc == 0 && hf && *hf) {
        snprintf(buf, sizeof buf, "%s/hub", hf);
        rc = push(&c->hf_dirs, &c->n_hf, buf);
    } else if (rc == 0 && home && *home) {
        snprintf(buf, sizeof buf, "%s/.cache/huggingface/hub", home);
        rc = push(&c->hf_dirs, &c->n_hf, buf);
    }
    return rc;
}

void lookup_free(lookup_cfg *c) {
    for (size_t i = 0; i < c->n_roots; i++) free(c->roots[i]);
    for (size_t i = 0; i < c->n_hf; i++) free(c->hf_dirs[i]);
    free(c->roots);
    free(c->hf_dirs);
    memset(c, 0, sizeof *c);
}

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void chomp(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) s[--n] = 0;
}

static int safe_component(const char *s) {
    return *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static char *newest_snapshot(const char *snaps) {
    DIR *d = opendir(snaps);
    if (!d) return NULL;
    char *best = NULL;
    time_t best_t = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *p;
        struct stat sb;
        if (asprintf(&p, "%s/%s", snaps, e->d_name) < 0) break;
        if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode) && (!best || sb.st_mtime > best_t)) {
            free(best);
            best = p;
            best_t = sb.st_mtime;
        } else {
            free(p);
        }
    }
    closedir(d);
    return best;
}

char *lookup_hf_snapshot(const char *hub, const char *repo) {
    const char *slash = strchr(repo, '/');
    if (!slash || strchr(slash + 1, '/') || slash == repo || !safe_component(slash + 1)) return NULL;
    char *base;
    if (asprintf(&base, "%s/models--%.*s--%s", hub, (int)(slash - repo), repo, slash + 1) < 0) return NULL;
    char ref[256] = "", *p = NULL, *snap = NULL;
    if (asprintf(&p, "%s/refs/main", base) >= 0) {
        /* Non-blocking, regular files only: a FIFO here must not park the worker. */
        FILE *f = sdrt_file_fopen(p, "refs/main", NULL, NULL, NULL, 0);
        if (f) {
            if (!fgets(ref, sizeof ref, f)) ref[0] = 0;
            fclose(f);
        }
        free(p);
    }
    chomp(ref);
    if (safe_component(ref) && asprintf(&snap, "%s/snapshots/%s", base, ref) >= 0 && !exists(snap)) {
        free(snap);
        snap = NULL;
    }
    if (!snap && asprintf(&p, "%s/snapshots", base) >= 0) {
        snap = newest_snapshot(p);
        free(p);
    }
    free(base);
    return snap;
}

/* Canonical path of an existing `p`, enforcing the roots unless any path is
 * allowed. */
static sdrt_status checked(const lookup_cfg *c, const char *p, char **out, char *err, size_t errlen) {
    if (c->allow_any_path || !c->api || !c->api->resolve_path) {
        char *r = realpath(p, NULL);
        if (!r) {
            snprintf(err, errlen, "model_id: '%s' cannot be resolved", p);
            return SDRT_NOT_FOUND;
        }
        *out = r;
        return SDRT_OK;
    }
    /* An existing relative path means the file from the working directory
     * (as exists() found it); resolve_path would look for it under the
     * roots instead ("<root>/demo-model/demo-model"). The root check then
     * applies to the absolute path. */
    char *cwd_abs = p[0] != '/' ? realpath(p, NULL) : NULL;
    sdrt_error *e = NULL;
    char *r = c->api->resolve_path(c->host, "model", cwd_abs ? cwd_abs : p, &e);
    free(cwd_abs);
    if (!r) {
        sdrt_status code = e ? e->code : SDRT_PERMISSION_DENIED;
        snprintf(err, errlen, "model_id: %s", e ? e->message : "outside the model roots");
        if (e) c->api->error_free(e);
        return code;
    }
    *out = strdup(r);
    c->api->free(r);
    return *out ? SDRT_OK : SDRT_RESOURCE_EXHAUSTED;
}

static int looks_like_path(const char *id) {
    return id[0] == '/' || !strncmp(id, "./", 2) || !strncmp(id, "../", 3) || !strncmp(id, "~/", 2);
}

sdrt_status lookup_resolve(const lookup_cfg *c, const char *id, char **path, char *err, size_t errlen) {
    *path = NULL;
    if (!id || !*id) {
        snprintf(err, errlen, "model_id: empty");
        return SDRT_INVALID_ARGUMENT;
    }
    if (looks_like_path(id) || exists(id)) {
        if (exists(id)) return checked(c, id, path, err, errlen);
        if (looks_like_path(id)) {
            snprintf(err, errlen, "model_id: '%s' does not exist", id);
            return SDRT_NOT_FOUND;
        }
    }
    for (size_t i = 0; i < c->n_roots; i++) {
        char *p;
        if (asprintf(&p, "%s/%s", c->roots[i], id) < 0) return SDRT_RESOURCE_EXHAUSTED;
        int found = exists(p);
        sdrt_status st = found ? checked(c, p, path, err, errlen) : SDRT_NOT_FOUND;
        free(p);
        if (found) return st;
    }
    for (size_t i = 0; i < c->n_hf; i++) {
        char *snap = lookup_hf_snapshot(c->hf_dirs[i], id);
        if (!snap) continue;
        /* HF caches are trusted locations from the deployment's settings or
         * environment, not request input: no root check. */
        *path = realpath(snap, NULL);
        free(snap);
        if (*path) return SDRT_OK;
    }
    snprintf(err, errlen, "model_id: '%s' not found as a path, under %zu model root(s), or in %zu Hugging Face cache(s)",
             id, c->n_roots, c->n_hf);
    return SDRT_NOT_FOUND;
}
