/* plugins/lora/messages.c - lora.list and lora.inspect. */
#define _GNU_SOURCE
#include "messages.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lora_file.h"
#include "match.h"
#include "merge.h"

#define ERR_LEN 1024
#define LIST_MAX_DEPTH 4
#define LIST_MAX_FILES 10000

/* ---- what a file says about itself ----------------------------------------- */

static void add_range(cJSON *o, const char *key, double lo, double hi, int any) {
    if (!any) cJSON_AddNullToObject(o, key);
    else if (lo == hi) cJSON_AddNumberToObject(o, key, lo);
    else {
        cJSON *r = cJSON_AddObjectToObject(o, key);
        cJSON_AddNumberToObject(r, "min", lo);
        cJSON_AddNumberToObject(r, "max", hi);
    }
}

/* LoCon: LoRA on a convolution with a real kernel (kohya already factors
 * 1x1 convolutions such as SD1's proj_in in plain LoRA). */
static const char *module_algo(const lora_module *m) {
    const st_tensor *d = m->part[PART_DOWN];
    int locon = m->algo == ALGO_LORA && m->conv && d && (d->shape[2] > 1 || d->shape[3] > 1);
    return locon ? "locon" : lora_algo_name(m->algo);
}

static void add_algorithms(cJSON *o, const lora_file *f) {
    static const char *const ALL[] = {"lora", "locon", "loha", "lokr", "diff"};
    cJSON *a = cJSON_AddArrayToObject(o, "algorithms");
    for (int k = 0; k < 5; k++)
        for (size_t i = 0; i < f->n_mods; i++)
            if (!strcmp(module_algo(&f->mods[i]), ALL[k])) {
                cJSON_AddItemToArray(a, cJSON_CreateString(ALL[k]));
                break;
            }
}

cJSON *lora_file_summary(const lora_file *f) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", f->path);
    cJSON *fmt = cJSON_AddArrayToObject(o, "format");
    for (int s = STYLE_KOHYA; s <= STYLE_PEFT; s++)
        if (f->styles & (1u << s)) cJSON_AddItemToArray(fmt, cJSON_CreateString(lora_style_name((lora_style)s)));
    add_algorithms(o, f);
    cJSON_AddStringToObject(o, "unet_naming", f->sgm ? "sgm" : "diffusers");
    cJSON_AddStringToObject(o, "architecture", f->arch);
    if (f->arch_reason) cJSON_AddStringToObject(o, "architecture_from", f->arch_reason);
    double rlo = 1e30, rhi = 0, alo = 1e30, ahi = -1e30;
    int nr = 0, na = 0, comps[3] = {0, 0, 0};
    for (size_t i = 0; i < f->n_mods; i++) {
        const lora_module *m = &f->mods[i];
        comps[m->key.component]++;
        if (m->rank > 0) {
            nr++;
            rlo = m->rank < rlo ? m->rank : rlo;
            rhi = m->rank > rhi ? m->rank : rhi;
        }
        if (m->has_alpha) {
            na++;
            alo = m->alpha < alo ? m->alpha : alo;
            ahi = m->alpha > ahi ? m->alpha : ahi;
        }
    }
    add_range(o, "rank", rlo, rhi, nr);
    add_range(o, "alpha", alo, ahi, na);
    cJSON_AddNumberToObject(o, "modules", (double)f->n_mods);
    cJSON *c = cJSON_AddObjectToObject(o, "components");
    for (int i = 0; i < 3; i++)
        if (comps[i]) cJSON_AddNumberToObject(c, LORA_COMPONENTS[i], comps[i]);
    struct stat sb;
    if (stat(f->path, &sb) == 0) cJSON_AddNumberToObject(o, "bytes", (double)sb.st_size);
    return o;
}

/* ---- lora.list ----------------------------------------------------------------- */

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* One listed file: LoRA folders list every .safetensors (a broken one with
 * its error); model roots only those that are LoRA files. */
static void list_file(const lora_plugin *p, cJSON *arr, const char *path, const char *rel, int lora_dir) {
    char err[ERR_LEN];
    lora_file *f = NULL;
    sdrt_status st = lora_file_open_scoped(path, &p->scope, &f, err, sizeof err);
    if (st != SDRT_OK && !lora_dir) return;
    cJSON *o = st == SDRT_OK ? lora_file_summary(f) : cJSON_CreateObject();
    char *name = strndup(rel, strlen(rel) - strlen(".safetensors"));
    cJSON_AddStringToObject(o, "name", name ? name : rel);
    free(name);
    if (st != SDRT_OK) {
        cJSON_AddStringToObject(o, "path", path);
        cJSON_AddStringToObject(o, "error", err);
    }
    lora_file_close(f);
    cJSON_AddItemToArray(arr, o);
}

static void walk(const lora_plugin *p, cJSON *arr, const char *dir, const char *rel, int depth, int lora_dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) && cJSON_GetArraySize(arr) < LIST_MAX_FILES) {
        if (e->d_name[0] == '.') continue;
        char *path = NULL, *r = NULL;
        if (asprintf(&path, "%s/%s", dir, e->d_name) < 0) break;
        if (asprintf(&r, "%s%s%s", rel, *rel ? "/" : "", e->d_name) < 0) {
            free(path);
            break;
        }
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) && lora_dir && depth < LIST_MAX_DEPTH)
            walk(p, arr, path, r, depth + 1, lora_dir);
        else if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && ends_with(e->d_name, ".safetensors"))
            list_file(p, arr, path, r, lora_dir);
        free(path);
        free(r);
    }
    closedir(d);
}

static int cmp_name(const void *a, const void *b) {
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(cJSON_GetObjectItemCaseSensitive(x, "name")->valuestring,
                  cJSON_GetObjectItemCaseSensitive(y, "name")->valuestring);
}

/* Sorted by name so the answer does not depend on directory order. */
static cJSON *sorted(cJSON *arr) {
    int n = cJSON_GetArraySize(arr);
    cJSON **items = calloc((size_t)n + 1, sizeof *items);
    if (!items) return arr;
    for (int i = n - 1; i >= 0; i--) items[i] = cJSON_DetachItemFromArray(arr, i);
    qsort(items, (size_t)n, sizeof *items, cmp_name);
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, items[i]);
    free(items);
    return arr;
}

sdrt_error *lora_msg_list(lora_plugin *p, const cJSON *data, cJSON **out) {
    (void)data;
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "loras");
    cJSON *roots = cJSON_AddArrayToObject(o, "folders");
    for (size_t i = 0; i < p->lookup.n_roots; i++) {
        int lora_dir = i < p->n_lora_dirs;
        struct stat sb;
        if (stat(p->lookup.roots[i], &sb) != 0 || !S_ISDIR(sb.st_mode)) continue;
        cJSON_AddItemToArray(roots, cJSON_CreateString(p->lookup.roots[i]));
        walk(p, arr, p->lookup.roots[i], "", 0, lora_dir);
    }
    sorted(arr);
    *out = o;
    return NULL;
}

/* ---- lora.inspect -------------------------------------------------------------- */

static const char *str_field(const cJSON *data, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, key);
    return cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL;
}

/* Whether module m fits the tensor it matched (the check prepare makes). */
static sdrt_status fits(const lora_module *m, const lora_file *f, const lora_match *mt, char *err, size_t errlen) {
    lora_target t;
    memset(&t, 0, sizeof t);
    t.component = mt->component;
    t.name = (char *)mt->name;
    t.base = mt->base;
    sdrt_status st = lora_target_init(&t, err, errlen);
    if (st != SDRT_OK) return st;
    lora_contrib c;
    memset(&c, 0, sizeof c);
    c.m = m;
    c.file = f->path;
    c.scale = 1.0f;
    st = lora_contrib_prepare(&c, &t, err, errlen);
    lora_contrib_free(&c);
    return st;
}

static void add_matches(cJSON *o, const lora_file *f, const lora_model_ref *ref) {
    cJSON *yes = cJSON_CreateArray(), *no = cJSON_CreateArray();
    for (size_t i = 0; i < f->n_mods; i++) {
        const lora_module *m = &f->mods[i];
        lora_match mt;
        char err[ERR_LEN];
        cJSON *k = cJSON_CreateObject();
        cJSON_AddStringToObject(k, "key", m->base);
        int ok = lora_match_module(ref, m, &mt) == 0;
        char *full = NULL;
        if (asprintf(&full, "%s.%s", LORA_COMPONENTS[mt.component], mt.name) < 0) full = NULL;
        cJSON_AddStringToObject(k, "tensor", full ? full : mt.name);
        free(full);
        if (!ok) cJSON_AddStringToObject(k, "reason", "no such tensor in the model");
        else if (fits(m, f, &mt, err, sizeof err) != SDRT_OK) {
            ok = 0;
            cJSON_AddStringToObject(k, "reason", err);
        }
        cJSON_AddItemToArray(ok ? yes : no, k);
    }
    cJSON_AddNumberToObject(o, "matched", cJSON_GetArraySize(yes));
    cJSON_AddNumberToObject(o, "not_matched", cJSON_GetArraySize(no));
    cJSON_AddItemToObject(o, "matched_keys", yes);
    cJSON_AddItemToObject(o, "not_matched_keys", no);
}

static sdrt_error *inspect_against(lora_plugin *p, cJSON *o, const lora_file *f, const char *model_id, sdrt_job *job) {
    sdrt_error *e = NULL;
    const sdrt_model_iface *mi = p->api->acquire(p->host, SDRT_MODEL_IFACE_ID, &e);
    if (!mi) return e ? e : p->api->error_new(SDRT_UNAVAILABLE, NULL, "lora: no model plugin (sdrt.model/1)");
    sdrt_model *m = NULL;
    e = mi->open(mi->self, model_id, job, &m);
    if (!e) {
        char err[ERR_LEN];
        cJSON_AddStringToObject(o, "model_id", mi->id(m));
        cJSON_AddStringToObject(o, "model_architecture", mi->arch(m));
        int compatible = lora_check_arch(f, mi->arch(m), mi->id(m), err, sizeof err) == SDRT_OK;
        lora_model_ref ref;
        lora_model_ref_init(&ref, mi, m);
        add_matches(o, f, &ref);
        /* An adapter none of whose keys finds a weight would change nothing:
         * applying it is not "compatible", whatever the architecture says. */
        double matched = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "matched"));
        if (compatible && !(matched > 0)) {
            compatible = 0;
            snprintf(err, sizeof err, "none of the %zu LoRA modules matches a weight of model '%s' (%s)", f->n_mods,
                     mi->id(m), mi->arch(m));
        }
        cJSON_AddBoolToObject(o, "compatible", compatible);
        if (!compatible) cJSON_AddStringToObject(o, "incompatibility", err);
        mi->close(mi->self, m);
    }
    p->api->release(p->host, SDRT_MODEL_IFACE_ID);
    return e;
}

sdrt_error *lora_msg_inspect(lora_plugin *p, const cJSON *data, sdrt_job *job, cJSON **out) {
    *out = NULL;
    const char *id = str_field(data, "lora");
    if (!id) return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "lora: missing or not a non-empty string");
    const cJSON *mv = cJSON_GetObjectItemCaseSensitive(data, "model_id");
    if (mv && !cJSON_IsNull(mv) && (!cJSON_IsString(mv) || !*mv->valuestring))
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "model_id: must be a non-empty string");
    char err[ERR_LEN], *path = NULL;
    lora_file *f = NULL;
    sdrt_status st = lora_resolve(p, id, &path, err, sizeof err);
    if (st == SDRT_OK) st = lora_file_open_scoped(path, &p->scope, &f, err, sizeof err);
    free(path);
    if (st != SDRT_OK) return p->api->error_new(st, NULL, "%s", err);
    cJSON *o = lora_file_summary(f);
    cJSON *ign = cJSON_AddArrayToObject(o, "ignored_keys");
    for (size_t i = 0; i < f->n_ignored; i++) cJSON_AddItemToArray(ign, cJSON_CreateString(f->ignored[i]));
    if (f->st->metadata_json) {
        cJSON *meta = cJSON_Parse(f->st->metadata_json);
        if (meta) cJSON_AddItemToObject(o, "metadata", meta);
    }
    sdrt_error *e = cJSON_IsString(mv) ? inspect_against(p, o, f, mv->valuestring, job) : NULL;
    lora_file_close(f);
    if (e) {
        cJSON_Delete(o);
        return e;
    }
    *out = o;
    return NULL;
}
