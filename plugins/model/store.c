/* plugins/model/store.c - loading a model into the one internal layout.
 *
 * A diffusers folder is read as it is (its names are already the internal
 * names); single-file checkpoints go through singlefile.c. Either way each
 * tensor is a view into a read-only mmap, so loading costs the headers. */
#define _GNU_SOURCE
#include "store.h"

#include "gguf.h"
#include "sdrt/quant.h"
#include "sdrt/weight_store.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
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
    static const char *names[] = {"F32",  "F16",  "BF16", "I32",  "I64",  "U8",   "F64",  "Q4_0", "Q4_1",
                                  "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"};
    _Static_assert(sizeof names / sizeof names[0] == SDRT_DTYPE_COUNT_, "a name per dtype");
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

/* A config file of the model, or NULL when it cannot be read (missing,
 * too large, not a regular file, or leading outside the roots: the
 * component then loads without it, or its absence is reported). */
static char *read_text(const struct sdrt_model *m, const char *path) {
    char err[512];
    return sdrt_file_read_all(path, NULL, &m->scope, CONFIG_MAX_BYTES, NULL, NULL, err, sizeof err);
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

int store_split_weight_type(const char *id, char **base) {
    *base = NULL;
    const char *h = strrchr(id, '#');
    if (!h || is_file(id) || is_dir(id)) return -1;
    int wt = sdrt_dtype_from_ggml_name(h + 1);
    if (wt < 0 || !sdrt_quant_can_write((sdrt_dtype)wt)) return -1;
    if (!(*base = strndup(id, (size_t)(h - id)))) return -2;
    return wt;
}

void *store_alloc(struct sdrt_model *m, size_t bytes) {
    void **grown = realloc(m->owned, (m->n_owned + 1) * sizeof *grown);
    if (!grown) return NULL;
    m->owned = grown;
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (p) {
        m->owned[m->n_owned++] = p;
        m->bytes += bytes;
    }
    return p;
}

int store_is_gemm_weight(const char *name, const sdrt_tensor *t) {
    size_t n = strlen(name);
    if (n < 7 || strcmp(name + n - 7, ".weight") != 0) return 0;
    /* Token and position tables are read row by row on the host. */
    if (strstr(name, "embeddings.") || strstr(name, "embedding.weight")) return 0;
    return t->ndim == 2 || t->ndim == 4;
}

int store_dequantise(struct sdrt_model *m, sdrt_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    sdrt_dtype to = n > (1 << 20) ? SDRT_DTYPE_F16 : SDRT_DTYPE_F32;
    void *dst = store_alloc(m, (size_t)sdrt_dtype_bytes(to, n) + 1);
    float *tmp = to == SDRT_DTYPE_F32 ? dst : malloc((size_t)n * sizeof *tmp);
    if (!dst || !tmp) return -1;
    sdrt_dequant_row(t->dtype, t->data, tmp, n);
    if (to == SDRT_DTYPE_F16) {
        sdrt_quant_row(SDRT_DTYPE_F16, tmp, dst, n);
        free(tmp);
    }
    t->dtype = to;
    t->data = dst;
    int64_t s = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        t->strides[d] = s;
        s *= t->shape[d];
    }
    return 0;
}

/* Components whose matrices weight_type quantises: the VAE keeps its
 * dtype (its decode is the image; its convolutions dominate no budget). */
static int quantisable_component(const char *name) {
    return strcmp(name, "unet") == 0 || strcmp(name, "text_encoder") == 0 || strcmp(name, "text_encoder_2") == 0;
}

/* Rows of K elements for a MATMUL ([N,K]) or CONV2D ([O,C,kh,kw], K =
 * C*kh*kw) weight laid out contiguously; 0 otherwise. */
static int64_t gemm_k(const sdrt_tensor *t) {
    int64_t k = 1;
    for (int d = t->ndim - 1; d >= 1; d--) {
        if (t->shape[d] != 1 && t->strides[d] != k) return 0;
        k *= t->shape[d];
    }
    return t->strides[0] == k || t->shape[0] == 1 ? k : 0;
}

sdrt_status store_quantise(struct sdrt_model *m, sdrt_dtype wt, char *err, size_t errlen) {
    int64_t be = sdrt_dtype_block_elems(wt);
    for (int c = 0; c < m->n_comps; c++) {
        store_component *comp = &m->comps[c];
        if (!quantisable_component(comp->name)) continue;
        for (size_t i = 0; i < comp->n; i++) {
            sdrt_tensor *t = &comp->entries[i].t;
            if (t->dtype == wt || sdrt_dtype_is_quantized(t->dtype) || !store_is_gemm_weight(comp->entries[i].name, t))
                continue;
            if (t->dtype != SDRT_DTYPE_F32 && t->dtype != SDRT_DTYPE_F16 && t->dtype != SDRT_DTYPE_BF16) continue;
            int64_t k = gemm_k(t), rows = t->shape[0];
            if (k <= 0 || k % be || rows * k < 1024) continue;
            uint64_t in_row = sdrt_dtype_bytes(t->dtype, k), out_row = sdrt_dtype_bytes(wt, k);
            char *dst = store_alloc(m, (size_t)(out_row * (uint64_t)rows));
            float *row = malloc((size_t)k * sizeof *row);
            if (!dst || !row) {
                free(row);
                return fail(err, errlen, SDRT_RESOURCE_EXHAUSTED, "%s: out of memory quantising %s/%s", m->id,
                            comp->name, comp->entries[i].name);
            }
            for (int64_t r = 0; r < rows; r++) {
                sdrt_dequant_row(t->dtype, (const char *)t->data + r * in_row, row, k);
                sdrt_quant_row(wt, row, dst + r * out_row, k);
            }
            free(row);
            /* The source pages were read once: return them, so resident
             * memory holds the quantised copy only (they are file-backed
             * and fault back in if anything reads them again). */
            uintptr_t pg = 4096, lo = ((uintptr_t)t->data + pg - 1) & ~(pg - 1),
                      hi = ((uintptr_t)t->data + (uintptr_t)(in_row * (uint64_t)rows)) & ~(pg - 1);
            if ((m->n_files || m->gguf) && hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
            m->bytes_by_dtype[t->dtype] -= in_row * (uint64_t)rows <= m->bytes_by_dtype[t->dtype] ? in_row * (uint64_t)rows : m->bytes_by_dtype[t->dtype];
            m->bytes_by_dtype[wt] += out_row * (uint64_t)rows;
            t->dtype = wt;
            t->data = dst;
            int64_t s = 1;
            for (int d = t->ndim - 1; d >= 0; d--) {
                t->strides[d] = s;
                s *= t->shape[d];
            }
        }
    }
    return SDRT_OK;
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
    sdrt_weight_store_free(m->resident);
    for (size_t i = 0; i < m->n_files; i++) st_close(m->files[i]);
    free(m->files);
    gguf_close(m->gguf);
    for (size_t i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
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
    sdrt_status ost = st_open_scoped(path, NULL, &m->scope, &f, err, errlen);
    if (ost != SDRT_OK) return ost;
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
    if (st_index_shards(index, &m->scope, &shards, &n, err, errlen) != 0) return SDRT_INVALID_ARGUMENT;
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
    if (cfg_path && is_file(cfg_path)) c->config_json = read_text(m, cfg_path);
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
    char *text = idx ? read_text(m, idx) : NULL;
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
static int standalone_kind(const struct sdrt_model *m, const char *path, const char **arch) {
    char *cfg = join(path, "config.json");
    char *text = cfg && is_file(cfg) ? read_text(m, cfg) : NULL;
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
    c->config_json = cfg ? read_text(m, cfg) : NULL;
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

/* Neither a folder nor a regular file: say what it is (a FIFO, a device)
 * through the one open path, which refuses it without blocking. */
static sdrt_status not_a_model(const struct sdrt_model *m, const char *path, char *err, size_t errlen) {
    struct stat sb;
    if (stat(path, &sb) != 0) return fail(err, errlen, SDRT_NOT_FOUND, "%s: no such model file or folder", path);
    int fd;
    sdrt_status st = sdrt_file_open(path, "model_id", &m->scope, &fd, err, errlen);
    if (st == SDRT_OK) {
        close(fd);
        st = fail(err, errlen, SDRT_INVALID_ARGUMENT, "%s: not a model file or folder", path);
    }
    return st;
}

sdrt_status store_load(const char *path, struct sdrt_model **out, char *err, size_t errlen) {
    return store_load_scoped(path, NULL, out, err, errlen);
}

sdrt_status store_load_scoped(const char *path, const sdrt_file_scope *scope, struct sdrt_model **out, char *err,
                              size_t errlen) {
    *out = NULL;
    double t0 = now_s();
    struct sdrt_model *m = calloc(1, sizeof *m);
    if (!m || !(m->id = strdup(path))) {
        free(m);
        return fail(err, errlen, SDRT_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (scope) m->scope = *scope;
    sdrt_status st;
    /* "<path>#<weight_type>": load <path>, then quantise (model.load's
     * weight_type; the suffix keeps each variant its own cache entry). */
    char *base = NULL;
    int wt = store_split_weight_type(path, &base);
    if (wt == -2) {
        store_free(m);
        return fail(err, errlen, SDRT_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (base) path = base;
    int kind = 0;
    const char *arch = NULL;
    char *idx = join(path, "model_index.json");
    if (is_dir(path) && idx && is_file(idx)) st = load_diffusers(m, path, err, errlen);
    else if (is_file(path) && has_suffix(path, ".safetensors")) st = singlefile_load(m, path, err, errlen);
    else if (is_file(path) && (has_suffix(path, ".gguf") || gguf_is_gguf(path))) st = gguf_load(m, path, err, errlen);
    else if (is_file(path) && (has_suffix(path, ".ckpt") || has_suffix(path, ".pt") || has_suffix(path, ".bin")))
        st = fail(err, errlen, SDRT_UNSUPPORTED, "%s: pickle checkpoints are not loaded (unsafe); convert to .safetensors", path);
    else if (is_dir(path) && (kind = standalone_kind(m, path, &arch)) != 0)
        st = load_standalone_folder(m, path, kind, arch, err, errlen);
    else if (is_dir(path))
        st = fail(err, errlen, SDRT_INVALID_ARGUMENT, "%s: folder has no model_index.json (not a diffusers model)", path);
    else st = not_a_model(m, path, err, errlen);
    free(idx);
    if (st == SDRT_OK && wt >= 0) st = store_quantise(m, (sdrt_dtype)wt, err, errlen);
    free(base);
    for (int i = 0; st == SDRT_OK && i < m->n_comps; i++) store_sort(&m->comps[i]);
    if (st != SDRT_OK) {
        store_free(m);
        return st;
    }
    m->load_time_s = now_s() - t0;
    *out = m;
    return SDRT_OK;
}

int store_resident_init(struct sdrt_model *m, sdrt_weight_budget *b) {
    m->resident = sdrt_weight_store_new(b, NULL);
    if (!m->resident) return -1;
    for (size_t i = 0; i < m->n_files; i++) {
        const st_file *f = m->files[i];
        if (f->map) {
            if (sdrt_weight_store_add_range(m->resident, f->map, f->map_len) != 0) return -1;
            continue;
        }
        for (size_t k = 0; k < f->n_tensors; k++) /* st_parse'd memory: each tensor */
            if (sdrt_weight_store_add_range(m->resident, f->tensors[k].data, st_tensor_bytes(&f->tensors[k])) != 0)
                return -1;
    }
    return 0;
}
