/* host/config.c - the deployment config: file + SDRT_CONFIG + CLI overrides,
 * validated against schemas/config.schema.json. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host.h"
#include "os.h"
#include "schema.h"

#ifndef SDRT_SOURCE_DIR
#define SDRT_SOURCE_DIR "."
#endif

const char *config_exe_dir(void) {
    static char dir[PATH_MAX];
    if (dir[0]) return dir;
    os_exe_dir(dir, sizeof dir); /* "." when unknown */
    return dir;
}

char *host_read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf) buf[n] = '\0';
    fclose(f);
    return buf;
}

static int file_exists(const char *p) { return access(p, R_OK) == 0; }

/* "$ORIGIN/x" -> "<dir of the sdrt executable>/x", as rpath does. */
static char *expand_origin(const char *s) {
    if (strncmp(s, "$ORIGIN", 7) != 0) return strdup(s);
    size_t n = strlen(config_exe_dir()) + strlen(s);
    char *out = malloc(n);
    snprintf(out, n, "%s%s", config_exe_dir(), s + 7);
    return out;
}

static const char *default_config_path(void) {
    static char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/../share/sdrt/config/default.json", config_exe_dir());
    if (file_exists(path)) return path;
    snprintf(path, sizeof path, "%s/config/default.json", SDRT_SOURCE_DIR);
    if (file_exists(path)) return path;
    return NULL;
}

static int set_dotted(cJSON *root, const char *assignment, char *err, size_t errlen) {
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment) {
        snprintf(err, errlen, "--set '%s': expected key=value", assignment);
        return -1;
    }
    char key[512];
    snprintf(key, sizeof key, "%.*s", (int)(eq - assignment), assignment);
    cJSON *value = cJSON_Parse(eq + 1);
    if (!value) value = cJSON_CreateString(eq + 1); /* bare words are strings */
    cJSON *obj = root;
    char *save = NULL;
    char *part = strtok_r(key, ".", &save);
    while (part) {
        char *next = strtok_r(NULL, ".", &save);
        if (!next) {
            cJSON_DeleteItemFromObjectCaseSensitive(obj, part);
            cJSON_AddItemToObject(obj, part, value);
            return 0;
        }
        cJSON *child = cJSON_GetObjectItemCaseSensitive(obj, part);
        if (!child) child = cJSON_AddObjectToObject(obj, part);
        if (!cJSON_IsObject(child)) {
            snprintf(err, errlen, "--set %s: '%s' is not an object", assignment, part);
            cJSON_Delete(value);
            return -1;
        }
        obj = child;
        part = next;
    }
    cJSON_Delete(value);
    return -1;
}

/* Replaces root[key] by the items (roots given on the command line replace
 * the config's: a deployment that names its roots means exactly those). */
static void replace_strings(cJSON *root, const char *key, const char **items, int n) {
    if (n == 0) return;
    cJSON_DeleteItemFromObjectCaseSensitive(root, key);
    cJSON *arr = cJSON_AddArrayToObject(root, key);
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(items[i]));
}

static void append_strings(cJSON *root, const char *key, const char **items, int n) {
    if (n == 0) return;
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsArray(arr)) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, key);
        arr = cJSON_AddArrayToObject(root, key);
    }
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(items[i]));
}

static char **string_list(const cJSON *root, const char *key, int *n) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, key);
    *n = 0;
    if (!cJSON_IsArray(arr)) return NULL;
    char **out = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof *out);
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (cJSON_IsString(it)) out[(*n)++] = expand_origin(it->valuestring);
    }
    return out;
}

static double num_or(const cJSON *root, const char *key, double def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static char *find_schemas_dir(const cJSON *root) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "schemas_dir");
    if (cJSON_IsString(v)) return expand_origin(v->valuestring);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/../share/sdrt/schemas/config.schema.json", config_exe_dir());
    if (file_exists(path)) {
        snprintf(path, sizeof path, "%s/../share/sdrt/schemas", config_exe_dir());
        return strdup(path);
    }
    snprintf(path, sizeof path, "%s/schemas", SDRT_SOURCE_DIR);
    return strdup(path);
}

static int validate_config(host_config *cfg, char *err, size_t errlen) {
    char msg[1024];
    schema_set *set = schema_set_load_dir(cfg->schemas_dir, msg, sizeof msg);
    if (!set) {
        snprintf(err, errlen, "cannot load schemas from %s: %s", cfg->schemas_dir, msg);
        return -1;
    }
    cfg->schemas = set; /* loaded once: host_init reuses it for requests */
    /* A $ref that does not resolve would only surface as INTERNAL on the
     * first request that reaches it: refuse the deployment at start instead. */
    if (schema_set_check_refs(set, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "schemas in %s: %s", cfg->schemas_dir, msg);
        return -1;
    }
    int rc = schema_validate_at(set, "config.schema.json", cfg->root, "config", msg, sizeof msg);
    if (rc != 0) {
        snprintf(err, errlen, "config %s: %s", cfg->path, msg);
        return -1;
    }
    return 0;
}

static int apply_fields(host_config *cfg, char *err, size_t errlen) {
    cJSON *r = cfg->root;
    cfg->plugin_paths = string_list(r, "plugin_paths", &cfg->n_plugin_paths);
    if (cfg->n_plugin_paths == 0) {
        free(cfg->plugin_paths);
        cfg->plugin_paths = calloc(2, sizeof(char *));
        cfg->plugin_paths[0] = expand_origin("$ORIGIN/../lib/sdrt/plugins");
        cfg->n_plugin_paths = 1;
    }
    cfg->model_roots = string_list(r, "model_roots", &cfg->n_model_roots);
    cfg->output_roots = string_list(r, "output_roots", &cfg->n_output_roots);
    cfg->allow_any_path = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "allow_any_path"));
    cfg->workers = (int)num_or(r, "workers", 2);
    cfg->queue_limit = (int)num_or(r, "queue_limit", 64);
    cfg->max_line_bytes = (size_t)num_or(r, "max_line_bytes", 16.0 * 1024 * 1024);
    cfg->default_timeout_s = num_or(r, "default_timeout_s", 0);
    cfg->shutdown_grace_s = num_or(r, "shutdown_grace_s", 30);
    cfg->cancel_grace_s = num_or(r, "cancel_grace_s", 5);
    cfg->max_pause_s = num_or(r, "max_pause_s", 600);
    cfg->max_stuck_workers = (int)num_or(r, "max_stuck_workers", 8);
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(r, "events");
    cfg->events_default = ev ? cJSON_IsTrue(ev) : 1;
    const cJSON *lvl = cJSON_GetObjectItemCaseSensitive(r, "log_level");
    cfg->log_level = cJSON_IsString(lvl) ? log_level_from_name(lvl->valuestring) : SDRT_LOG_INFO;
    if (cfg->log_level < 0) {
        snprintf(err, errlen, "config %s: log_level: '%s' is not one of error, warn, info, debug", cfg->path,
                 lvl->valuestring);
        return -1;
    }
    if (cfg->workers < 1 || cfg->queue_limit < 1 || cfg->max_line_bytes < 64) {
        snprintf(err, errlen, "config %s: workers, queue_limit must be >= 1 and max_line_bytes >= 64", cfg->path);
        return -1;
    }
    return 0;
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* True when `key` still holds what the shipped default.json says: no
 * --config/SDRT_CONFIG file, no --set of the key, no command-line root. */
static int key_is_default(const host_config *cfg, const host_cli_overrides *ov, const char *key, int n_cli) {
    const char *def = default_config_path();
    if (!def || strcmp(cfg->path, def) != 0 || n_cli > 0) return 0;
    size_t n = strlen(key);
    for (int i = 0; ov && i < ov->n_sets; i++)
        if (strncmp(ov->sets[i], key, n) == 0 && ov->sets[i][n] == '=') return 0;
    return 1;
}

/* Roots a deployment named must exist at start: a typo would otherwise
 * surface only when a request fails after its work is done. The shipped
 * defaults (models/, outputs/ under the working directory) are optional:
 * a missing one is left out, and requests that need it get a message
 * saying no root of that kind is configured. */
static int check_roots(host_config *cfg, const host_cli_overrides *ov, const char *key, char **roots, int *n,
                       int n_cli, char *err, size_t errlen) {
    int optional = key_is_default(cfg, ov, key, n_cli), kept = 0;
    for (int i = 0; i < *n; i++) {
        if (is_dir(roots[i])) {
            roots[kept++] = roots[i];
            continue;
        }
        if (!optional) {
            snprintf(err, errlen, "config %s: %s: '%s' does not exist or is not a directory", cfg->path, key, roots[i]);
            for (int j = i; j < *n; j++) roots[kept++] = roots[j]; /* config_free frees them all */
            *n = kept;
            return -1;
        }
        free(roots[i]);
    }
    *n = kept;
    return 0;
}

/* Fills cfg; on -1 the caller frees the partial result with config_free.
 * `roots`: whether the configured roots must exist (not for pool clients). */
static int config_build(host_config *cfg, const host_cli_overrides *ov, int roots, char *err, size_t errlen) {
    const char *path = ov && ov->config_path ? ov->config_path : getenv("SDRT_CONFIG");
    if (!path || !*path) path = default_config_path();
    char *text = path ? host_read_file(path) : strdup("{}");
    if (!text) {
        snprintf(err, errlen, "config %s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    cfg->path = strdup(path ? path : "(built-in)");
    const char *parse_end = NULL;
    cfg->root = cJSON_ParseWithOpts(text, &parse_end, 0);
    long at = parse_end ? (long)(parse_end - text) : -1L; /* before text is freed */
    free(text);
    if (!cJSON_IsObject(cfg->root)) {
        snprintf(err, errlen, "config %s: not a JSON object (syntax error near byte %ld)", cfg->path, at);
        return -1;
    }
    for (int i = 0; ov && i < ov->n_sets; i++)
        if (set_dotted(cfg->root, ov->sets[i], err, errlen) != 0) return -1;
    if (ov) {
        replace_strings(cfg->root, "model_roots", ov->model_roots, ov->n_model_roots);
        replace_strings(cfg->root, "output_roots", ov->output_roots, ov->n_output_roots);
        append_strings(cfg->root, "plugin_paths", ov->plugin_paths, ov->n_plugin_paths);
        append_strings(cfg->root, "embedding_roots", ov->embedding_roots, ov->n_embedding_roots);
    }
    cfg->schemas_dir = find_schemas_dir(cfg->root);
    if (validate_config(cfg, err, errlen) != 0) return -1;
    if (apply_fields(cfg, err, errlen) != 0) return -1;
    if (!roots) return 0;
    if (check_roots(cfg, ov, "model_roots", cfg->model_roots, &cfg->n_model_roots, ov ? ov->n_model_roots : 0, err,
                    errlen) != 0)
        return -1;
    return check_roots(cfg, ov, "output_roots", cfg->output_roots, &cfg->n_output_roots,
                       ov ? ov->n_output_roots : 0, err, errlen);
}

int config_load(host_config *cfg, const host_cli_overrides *ov, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    if (config_build(cfg, ov, 1, err, errlen) == 0) return 0;
    config_free(cfg); /* every exit path, so a refused config leaks nothing */
    return -1;
}

int config_load_settings(host_config *cfg, const host_cli_overrides *ov, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    if (config_build(cfg, ov, 0, err, errlen) == 0) return 0;
    config_free(cfg);
    return -1;
}

static void free_list(char **l, int n) {
    for (int i = 0; i < n; i++) free(l[i]);
    free(l);
}

void config_free(host_config *cfg) {
    cJSON_Delete(cfg->root);
    free(cfg->path);
    free(cfg->schemas_dir);
    schema_set_free(cfg->schemas);
    free_list(cfg->plugin_paths, cfg->n_plugin_paths);
    free_list(cfg->model_roots, cfg->n_model_roots);
    free_list(cfg->output_roots, cfg->n_output_roots);
    memset(cfg, 0, sizeof *cfg);
}
