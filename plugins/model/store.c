/* plugins/model/store.c - loading a model into the one internal layout.
 *
 * A diffusers folder is read as it is (its names are already the internal
 * names); single-file checkpoints go through singlefile.c. Either way each
 * tensor is a view into a read-only mmap, so loading costs the headers. */
#define _GNU_SOURCE
#include "store.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CONFIG_MAX_BYTES (4u << 20)

static sdrt_status fail(char *err, size_t errlen, sdrt_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

const char *store_dtype_name(sdrt_dtype d) {
    static const char *names[] = {"F32", "F16", "BF16", "I32", "I64", "U8", "F64"};
    return (unsigned)d < SDRT_DTYPE_COUNT_ ? names[d] : "?";
}

static int is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static char *join(const char *a, const char *b) {
    char *s = NULL;
    return asprintf(&s, "%s/%s", a, b) < 0 ? NULL : s;
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(CONFIG_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, CONFIG_MAX_BYTES, f) : 0;
    fclose(f);
    if (buf) buf[n] = 0;
    return buf;
}

store_component *store_component_get(struct sdrt_model *m, const char *name) {
    for (int i = 0; i < m->n_comps; i++)
        if (strcmp(m->comps[i].name, name) == 0) return &m->comps[i];
    return NULL;
}

store_component *store_component_add(struct sdrt_model *m, const char *name) {
    store_component *c = store_component_get(m, name);
    if (c) return c;
    if (m->n_comps >= STORE_MAX_COMPONENTS) return NULL;
    c = &m->comps[m->n_comps];
    memset(c, 0, sizeof *c);
    if (!(c->name = strdup(name))) return NULL;
    m->n_comps++;
    return c;
}

int store_add(store_component *c, const char *name, const sdrt_tensor *t) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        store_entry *e = realloc(c->entries, cap * sizeof *e);
        if (!e) return -1;
        c->entries = e;
        c->cap = cap;
    }
    if (!(c->entries[c->n].name = strdup(name))) return -1;
    c->entries[c->n++].t = *t;
    return 0;
}

static int entry_cmp(const void *a, const void *b) {
    return strcmp(((const store_entry *)a)->name, ((const store_entry *)b)->name);
}

void store_sort(store_component *c) {
    if (c->n > 1) qsort(c->entries, c->n, sizeof *c->entries, entry_cmp);
}

const sdrt_tensor *store_tensor(struct sdrt_model *m, const char *comp, const char *name) {
    store_component *c = store_component_get(m, comp);
    if (!c || !name || c->n == 0) return NULL;
    store_entry key = {(char *)name, {0}};
    store_entry *e = bsearch(&key, c->entries, c->n, sizeof *c->entries, entry_cmp);
    return e ? &e->t : NULL;
}

/* Only plain file names inside the component folder are served. */
const char *store_file_path(struct sdrt_model *m, const char *comp, const char *file) {
    store_component *c = store_component_get(m, comp);
    if (!c || !c->dir || !file || !*file || strchr(file, '/') || strcmp(file, "..") == 0) return NULL;
    for (size_t i = 0; i < c->n_paths; i++) {
        const char *slash = strrchr(c->paths[i], '/');
        if (slash && strcmp(slash + 1, file) == 0) return c->paths[i];
    }
    char *p = join(c->dir, file);
    if (!p || !is_file(p)) {
        free(p);
        return NULL;
    }
    char **grown = realloc(c->paths, (c->n_paths + 1) * sizeof *grown);
    if (!grown) {
        free(p);
        return NULL;
    }
    c->paths = grown;
    c->paths[c->n_paths++] = p;
    return p;
}

void store_free(struct sdrt_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_comps; i++) {
        store_component *c = &m->comps[i];
        for (size_t k = 0; k < c->n; k++) free(c->entries[k].name);
        for (size_t k = 0; k < c->n_paths; k++) free(c->paths[k]);
        free(c->entries);
        free(c->paths);
        free(c->name);
        free(c->config_json);
        free(c->dir);
    }
    for (size_t i = 0; i < m->n_files; i++) st_close(m->files[i]);
    free(m->files);
    free(m->id);
    free(m);
}

static int keep_file(struct sdrt_model *m, st_file *f) {
    st_file **grown = realloc(m->files, (m->n_files + 1) * sizeof *grown);
    if (!grown) return -1;
    m->files = grown;
    m->files[m->n_files++] = f;
    m->bytes += f->map_len;
    return 0;
}

/* Contiguous view of a stored tensor (dtype as stored). */
static int view_of(const st_tensor *s, sdrt_tensor *t) {
    int dt = st_to_sdrt_dtype(s->dtype);
    if (dt < 0 || s->ndim > SDRT_MAX_DIMS) return -1;
    memset(t, 0, sizeof *t);
    t->struct_size = sizeof *t;
    t->dtype = (sdrt_dtype)dt;
    t->ndim = s->ndim;
    int64_t stride = 1;
    for (int i = SDRT_MAX_DIMS - 1; i >= 0; i--) {
        t->shape[i] = i < s->ndim ? s->shape[i] : 1;
        t->strides[i] = i < s->ndim ? stride : 0;
        if (i < s->ndim) stride *= s->shape[i];
    }
    t->data = (void *)s->data;
    return 0;
}

/* Used by singlefile.c too: the tensor's view or an error naming it. */
int store_view(const st_file *f, const st_tensor *s, sdrt_tensor *t, char *err, size_t errlen) {
    if (view_of(s, t) == 0) return 0;
    snprintf(err, errlen, "%s: tensor '%s': dtype %s or %d dims not representable as an sdrt tensor", f->path,
             s->name, st_dtype_name(s->dtype), s->ndim);
    return -1;
}

static sdrt_status add_file_tensors(struct sdrt_model *m, store_component *c, const char *path, char *err,
                                    size_t errlen) {
    st_file *f;
    if (st_open(path, &f, err, errlen) != 0) return SDRT_INVALID_ARGUMENT;
    if (keep_file(m, f) != 0) {
        st_close(f);
        return fail(err, errlen, SDRT_RESOURCE_EXHAUSTED, "%s: out of memory", path);
    }
    for (size_t i = 0; i < f->n_tensors; i++) {
        sdrt_tensor t;
        if (store_view(f, &f->tensors[i], &t, err, errlen) != 0) return SDRT_UNSUPPORTED;
        if (store_tensor(m, c->name, f->tensors[i].name))
            return fail(err, errlen, SDRT_INVALID_ARGUMENT, "%s: tensor '%s' is also in another shard", path,
                        f->tensors[i].name);
        if (store_add(c, f->tensors[i].name, &t) != 0) return fail(err, errlen, SDRT_RESOURCE_EXHAUSTED, "out of memory");
        m->bytes_by_dtype[t.dtype] += st_tensor_bytes(&f->tensors[i]);
        m->n_tensors++;
    }
    store_sort(c); /* keeps lookups (duplicate check across shards) valid */
    return SDRT_OK;
}

static sdrt_status load_sharded(struct sdrt_model *m, store_component *c, const char *index, char *err,
                                size_t errlen) {
    char **shards;
    size_t n;
    if (st_index_shards(index, &shards, &n, err, errlen) != 0) return SDRT_INVALID_ARGUMENT;
    sdrt_status st = SDRT_OK;
    for (size_t i = 0; i < n; i++) {
        char *p = st == SDRT_OK ? join(c->dir, shards[i]) : NULL;
        if (st == SDRT_OK && (!p || !is_file(p)))
            st = fail(err, errlen, SDRT_NOT_FOUND, "%s: shard '%s' listed in weight_map does not exist", index, shards[i]);
        if (st == SDRT_OK) st = add_file_tensors(m, c, p, err, errlen);
        free(p);
        free(shards[i]);
    }
    free(shards);
    return st;
}

/* The component's weights: one file, a sharded index, or (fp16 variant)
 * the same with ".fp16" before the extension. */
static sdrt_status load_component_weights(struct sdrt_model *m, store_component *c, char *err, size_t errlen) {
    static const char *const STEMS[] = {"diffusion_pytorch_model", "model"};
    static const char *const VARIANTS[] = {"", ".fp16"};
    for (size_t v = 0; v < 2; v++) {
        for (size_t s = 0; s < 2; s++) {
            char name[96];
            snprintf(name, sizeof name, "%s%s.safetensors", STEMS[s], VARIANTS[v]);
            char *p = join(c->dir, name);
            if (p && is_file(p)) {
                sdrt_status st = add_file_tensors(m, c, p, err, errlen);
                free(p);
                return st;
            }
            free(p);
            snprintf(name, sizeof name, "%s%s.safetensors.index.json", STEMS[s], VARIANTS[v]);
            p = join(c->dir, name);
            if (p && is_file(p)) {
                sdrt_status st = load_sharded(m, c, p, err, errlen);
                free(p);
                return st;
            }
            free(p);
        }
    }
    char *bin = join(c->dir, "diffusion_pytorch_model.bin");
    int has_bin = bin && is_file(bin);
    free(bin);
    return fail(err, errlen, has_bin ? SDRT_UNSUPPORTED : SDRT_NOT_FOUND,
                has_bin ? "%s: only pickle (.bin) weights; convert them to .safetensors" : "%s: no .safetensors weights",
                c->dir);
}

static sdrt_status load_component(struct sdrt_model *m, const char *root, const char *name, char *err,
                                  size_t errlen) {
    store_component *c = store_component_add(m, name);
    if (!c || !(c->dir = join(root, name))) return fail(err, errlen, SDRT_RESOURCE_EXHAUSTED, "out of memory");
    if (!is_dir(c->dir))
        return fail(err, errlen, SDRT_NOT_FOUND, "%s: model_index.json names component '%s' but the folder is missing",
                    root, name);
    const char *cfg = strcmp(name, "scheduler") == 0 ? "scheduler_config.json" : "config.json";
    char *cfg_path = join(c->dir, cfg);
    if (cfg_path && is_file(cfg_path)) c->config_json = read_text(cfg_path);
    free(cfg_path);
    int has_weights = !strncmp(name, "unet", 4) || !strncmp(name, "vae", 3) || !strncmp(name, "text_encoder", 12);
    return has_weights ? load_component_weights(m, c, err, errlen) : SDRT_OK;
}

static const char *diffusers_arch(struct sdrt_model *m, const char *class_name) {
    int has_te = store_component_get(m, "text_encoder") != NULL;
    int has_te2 = store_component_get(m, "text_encoder_2") != NULL;
    if (class_name && strstr(class_name, "XL")) return has_te ? "sdxl" : has_te2 ? "sdxl-refiner" : "sdxl";
    const sdrt_tensor *tok = store_tensor(m, "text_encoder", "text_model.embeddings.token_embedding.weight");
    return tok && tok->ndim == 2 && tok->shape[1] == 1024 ? "sd2" : "sd1";
}

static sdrt_status load_diffusers(struct sdrt_model *m, const char *root, char *err, size_t errlen) {
    char *idx = join(root, "model_index.json");
    char *text = idx ? read_text(idx) : NULL;
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        sdrt_status st = fail(err, errlen, SDRT_INVALID_ARGUMENT, "%s: not a JSON object", idx ? idx : root);
        free(idx);
        return st;
    }
    free(idx);
    sdrt_status st = SDRT_OK;
    for (const cJSON *e = j->child; e && st == SDRT_OK; e = e->next) {
        /* Components are ["library", "Class"]; null pairs mean "absent". */
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsString(cJSON_GetArrayItem(e, 1))) continue;
        if (strchr(e->string, '/') || e->string[0] == '.') continue;
        if (strcmp(e->string, "safety_checker") == 0 || strcmp(e->string, "feature_extractor") == 0 ||
            strcmp(e->string, "image_encoder") == 0)
            continue;
        st = load_component(m, root, e->string, err, errlen);
    }
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(j, "_class_name");
    m->arch = diffusers_arch(m, cJSON_IsString(cls) ? cls->valuestring : NULL);
    cJSON_Delete(j);
    m->source = "diffusers";
    return st;
}

/* A standalone model folder (config.json + weights) of one class: an
 * AutoencoderKL that overrides a pipeline's VAE (inference.run
 * model_id.vae: one "vae" component, arch "vae"), or a ControlNetModel (one
 * "controlnet" component; arch "controlnet-sdxl" when its config has the
 * SDXL text_time embedding, else "controlnet-sd1"). 0 when neither. */
static int standalone_kind(const char *path, const char **arch) {
    char *cfg = join(path, "config.json");
    char *text = cfg && is_file(cfg) ? read_text(cfg) : NULL;
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(j, "_class_name");
    const cJSON *add = cJSON_GetObjectItemCaseSensitive(j, "addition_embed_type");
    int r = 0;
    if (cJSON_IsString(cls) && strcmp(cls->valuestring, "AutoencoderKL") == 0) {
        r = 1;
        *arch = "vae";
    } else if (cJSON_IsString(cls) && strcmp(cls->valuestring, "ControlNetModel") == 0) {
        r = 2;
        *arch = cJSON_IsString(add) && strcmp(add->valuestring, "text_time") == 0 ? "controlnet-sdxl" : "controlnet-sd1";
    }
    cJSON_Delete(j);
    free(text);
    free(cfg);
    return r;
}

static sdrt_status load_standalone_folder(struct sdrt_model *m, const char *path, int kind, const char *arch,
                                          char *err, size_t errlen) {
    store_component *c = store_component_add(m, kind == 1 ? "vae" : "controlnet");
    if (!c || !(c->dir = strdup(path))) return fail(err, errlen, SDRT_RESOURCE_EXHAUSTED, "out of memory");
    char *cfg = join(path, "config.json");
    c->config_json = cfg ? read_text(cfg) : NULL;
    free(cfg);
    m->arch = arch;
    m->source = "diffusers";
    return load_component_weights(m, c, err, errlen);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

sdrt_status store_load(const char *path, struct sdrt_model **out, char *err, size_t errlen) {
    *out = NULL;
    double t0 = now_s();
    struct sdrt_model *m = calloc(1, sizeof *m);
    if (!m || !(m->id = strdup(path))) {
        free(m);
        return fail(err, errlen, SDRT_RESOURCE_EXHAUSTED, "out of memory");
    }
    sdrt_status st;
    int kind = 0;
    const char *arch = NULL;
    char *idx = join(path, "model_index.json");
    if (is_dir(path) && idx && is_file(idx)) st = load_diffusers(m, path, err, errlen);
    else if (is_file(path) && has_suffix(path, ".safetensors")) st = singlefile_load(m, path, err, errlen);
    else if (is_file(path) && (has_suffix(path, ".ckpt") || has_suffix(path, ".pt") || has_suffix(path, ".bin")))
        st = fail(err, errlen, SDRT_UNSUPPORTED, "%s: pickle checkpoints are not loaded (unsafe); convert to .safetensors", path);
    else if (is_dir(path) && (kind = standalone_kind(path, &arch)) != 0)
        st = load_standalone_folder(m, path, kind, arch, err, errlen);
    else if (is_dir(path))
        st = fail(err, errlen, SDRT_INVALID_ARGUMENT, "%s: folder has no model_index.json (not a diffusers model)", path);
    else st = fail(err, errlen, SDRT_NOT_FOUND, "%s: no such model file or folder", path);
    free(idx);
    for (int i = 0; st == SDRT_OK && i < m->n_comps; i++) store_sort(&m->comps[i]);
    if (st != SDRT_OK) {
        store_free(m);
        return st;
    }
    m->load_time_s = now_s() - t0;
    *out = m;
    return SDRT_OK;
}
