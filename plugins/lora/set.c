/* plugins/lora/set.c - LoRA sets: matching, then a parallel row-wise merge. */
#define _GNU_SOURCE
#include "set.h"

#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Rows per work item: about 256 K elements, so each item costs well under
 * a millisecond at rank 32 and cancellation is noticed quickly. */
#define CHUNK_ELEMS (256 * 1024)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- warnings ------------------------------------------------------------- */

static int add_warning(sdrt_lora_set *s, const lora_set_input *in, char *text) {
    if (!text) return -1;
    char **g = realloc(s->warnings, (s->n_warnings + 1) * sizeof *g);
    if (!g) {
        free(text);
        return -1;
    }
    s->warnings = g;
    g[s->n_warnings++] = text;
    if (in->api && in->api->warn && in->job) in->api->warn(in->job, text);
    return 0;
}

static char *fmt(const char *f, ...) SDRT_PRINTF(1, 2);
static char *fmt(const char *f, ...) {
    char *s = NULL;
    va_list ap;
    va_start(ap, f);
    if (vasprintf(&s, f, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

/* ---- targets -------------------------------------------------------------- */

static lora_target *find_target(sdrt_lora_set *s, int comp, const char *name) {
    for (size_t i = 0; i < s->n; i++)
        if (s->t[i].component == comp && !strcmp(s->t[i].name, name)) return &s->t[i];
    return NULL;
}

static lora_target *add_target(sdrt_lora_set *s, const lora_match *mt, size_t *cap, char *err, size_t errlen,
                               sdrt_status *st) {
    if (s->n == *cap) {
        size_t nc = *cap ? 2 * *cap : 64;
        lora_target *g = realloc(s->t, nc * sizeof *g);
        if (!g) return *st = SDRT_RESOURCE_EXHAUSTED, NULL;
        s->t = g;
        *cap = nc;
    }
    lora_target *t = &s->t[s->n];
    memset(t, 0, sizeof *t);
    t->component = mt->component;
    t->base = mt->base;
    if (!(t->name = strdup(mt->name))) return *st = SDRT_RESOURCE_EXHAUSTED, NULL;
    s->n++;
    *st = lora_target_init(t, err, errlen);
    return *st == SDRT_OK ? t : NULL;
}

static sdrt_status add_contrib(lora_target *t, const lora_module *m, const char *file, float weight, char *err,
                               size_t errlen) {
    lora_contrib *g = realloc(t->c, (t->nc + 1) * sizeof *g);
    if (!g) return SDRT_RESOURCE_EXHAUSTED;
    t->c = g;
    lora_contrib *c = &g[t->nc++];
    memset(c, 0, sizeof *c);
    c->m = m;
    c->file = file;
    c->scale = weight;
    return lora_contrib_prepare(c, t, err, errlen);
}

static sdrt_status match_file(sdrt_lora_set *s, const lora_set_input *in, const lora_file *f, float weight,
                              size_t *cap, char *err, size_t errlen) {
    for (size_t i = 0; i < f->n_ignored; i++)
        if (add_warning(s, in, fmt("lora '%s': %s", f->path, f->ignored[i]))) return SDRT_RESOURCE_EXHAUSTED;
    for (size_t i = 0; i < f->n_mods; i++) {
        const lora_module *m = &f->mods[i];
        lora_match mt;
        if (lora_match_module(in->model, m, &mt) != 0) {
            if (add_warning(s, in, fmt("lora '%s': key '%s' matches no tensor of model '%s' (looked for %s.%s)",
                                       f->path, m->base, in->model_id, LORA_COMPONENTS[mt.component], mt.name)))
                return SDRT_RESOURCE_EXHAUSTED;
            continue;
        }
        if (weight == 0.0f) continue; /* checked and reported, not applied */
        sdrt_status st = SDRT_OK;
        lora_target *t = find_target(s, mt.component, mt.name);
        if (!t) t = add_target(s, &mt, cap, err, errlen, &st);
        if (st == SDRT_OK) st = add_contrib(t, m, f->path, weight, err, errlen);
        if (st != SDRT_OK) return st;
    }
    return SDRT_OK;
}

/* ---- merge ---------------------------------------------------------------- */

typedef struct work_item {
    lora_target *t;
    int64_t r0, r1;
} work_item;

typedef struct merge_job {
    work_item *items;
    size_t n;
    atomic_size_t next;
    atomic_int cancelled;
    int64_t max_cols;
    const lora_set_input *in;
    atomic_int failed;
} merge_job;

static void *merge_worker(void *arg) {
    merge_job *j = arg;
    float *scratch = malloc((size_t)(LORA_SCRATCH_ROWS * j->max_cols) * sizeof *scratch);
    if (!scratch) {
        atomic_store(&j->failed, 1);
        return NULL;
    }
    for (;;) {
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n || atomic_load(&j->cancelled) || atomic_load(&j->failed)) break;
        if (j->in->api && j->in->api->is_cancelled && j->in->api->is_cancelled(j->in->job)) {
            atomic_store(&j->cancelled, 1);
            break;
        }
        lora_merge_rows(j->items[i].t, j->items[i].r0, j->items[i].r1, scratch);
    }
    free(scratch);
    return NULL;
}

static sdrt_status alloc_outputs(sdrt_lora_set *s, size_t *n_items, int64_t *max_cols) {
    *n_items = 0;
    *max_cols = 1;
    for (size_t i = 0; i < s->n; i++) {
        lora_target *t = &s->t[i];
        size_t esz = t->base->dtype == SDRT_DTYPE_F32 ? 4 : 2;
        size_t bytes = (size_t)(t->rows * t->cols) * esz;
        t->out = *t->base;
        t->out.struct_size = SDRT_STRUCT_SIZE(sdrt_tensor, buffer);
        t->out.buffer = NULL;
        int64_t stride = 1;
        for (int d = t->out.ndim - 1; d >= 0; d--) {
            t->out.strides[d] = stride;
            stride *= t->out.shape[d];
        }
        if (!(t->out.data = malloc(bytes))) return SDRT_RESOURCE_EXHAUSTED;
        s->bytes += bytes;
        int64_t rows_per = t->cols >= CHUNK_ELEMS ? 1 : CHUNK_ELEMS / t->cols;
        *n_items += (size_t)((t->rows + rows_per - 1) / rows_per);
        if (t->cols > *max_cols) *max_cols = t->cols;
    }
    return SDRT_OK;
}

static sdrt_status run_merge(sdrt_lora_set *s, const lora_set_input *in, char *err, size_t errlen) {
    merge_job j;
    memset(&j, 0, sizeof j);
    j.in = in;
    if (alloc_outputs(s, &j.n, &j.max_cols) != SDRT_OK) {
        snprintf(err, errlen, "lora: out of memory for %zu merged tensors", s->n);
        return SDRT_RESOURCE_EXHAUSTED;
    }
    j.items = calloc(j.n + 1, sizeof *j.items);
    if (!j.items) return SDRT_RESOURCE_EXHAUSTED;
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        lora_target *t = &s->t[i];
        int64_t rows_per = t->cols >= CHUNK_ELEMS ? 1 : CHUNK_ELEMS / t->cols;
        for (int64_t r = 0; r < t->rows; r += rows_per)
            j.items[k++] = (work_item){t, r, r + rows_per < t->rows ? r + rows_per : t->rows};
    }
    int nt = in->threads < 1 ? 1 : in->threads > 64 ? 64 : in->threads;
    pthread_t th[64];
    int started = 0;
    for (int i = 1; i < nt; i++)
        if (pthread_create(&th[started], NULL, merge_worker, &j) == 0) started++;
    merge_worker(&j);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    free(j.items);
    if (atomic_load(&j.cancelled)) {
        snprintf(err, errlen, "lora: cancelled while merging");
        return SDRT_CANCELLED;
    }
    if (atomic_load(&j.failed)) {
        snprintf(err, errlen, "lora: out of memory for merge scratch");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    return SDRT_OK;
}

static int cmp_target(const void *a, const void *b) {
    const lora_target *x = a, *y = b;
    if (x->component != y->component) return x->component < y->component ? -1 : 1;
    return strcmp(x->name, y->name);
}

static void free_factors(sdrt_lora_set *s) {
    for (size_t i = 0; i < s->n; i++) {
        for (size_t c = 0; c < s->t[i].nc; c++) lora_contrib_free(&s->t[i].c[c]);
        free(s->t[i].c);
        s->t[i].c = NULL;
        s->t[i].nc = 0;
    }
}

sdrt_status lora_set_build(const lora_set_input *in, sdrt_lora_set **out, char *err, size_t errlen) {
    *out = NULL;
    sdrt_lora_set *s = calloc(1, sizeof *s);
    if (!s) return SDRT_RESOURCE_EXHAUSTED;
    size_t cap = 0;
    sdrt_status st = SDRT_OK;
    for (size_t i = 0; i < in->n && st == SDRT_OK; i++)
        st = match_file(s, in, in->files[i], in->weights[i], &cap, err, errlen);
    double t0 = now_s();
    if (st == SDRT_OK && s->n) st = run_merge(s, in, err, errlen);
    s->merge_s = now_s() - t0;
    free_factors(s); /* merged: the file's factors are no longer needed */
    if (st == SDRT_RESOURCE_EXHAUSTED && err && !*err) snprintf(err, errlen, "lora: out of memory");
    if (st != SDRT_OK) {
        lora_set_free(s);
        return st;
    }
    if (s->n) qsort(s->t, s->n, sizeof *s->t, cmp_target);
    *out = s;
    return SDRT_OK;
}

int lora_set_resident_init(sdrt_lora_set *s, sdrt_weight_store *parent) {
    s->resident = sdrt_weight_store_new(NULL, parent);
    if (!s->resident) return -1;
    for (size_t i = 0; i < s->n; i++) {
        const sdrt_tensor *t = &s->t[i].out;
        size_t bytes = (size_t)(s->t[i].rows * s->t[i].cols) * (t->dtype == SDRT_DTYPE_F32 ? 4 : 2);
        if (sdrt_weight_store_add_range(s->resident, t->data, bytes) != 0) return -1;
    }
    return 0;
}

void lora_set_free(sdrt_lora_set *s) {
    if (!s) return;
    sdrt_weight_store_free(s->resident); /* before the host tensors it mirrors */
    free_factors(s);
    for (size_t i = 0; i < s->n; i++) {
        free(s->t[i].name);
        free(s->t[i].out.data);
    }
    for (size_t i = 0; i < s->n_warnings; i++) free(s->warnings[i]);
    free(s->t);
    free(s->warnings);
    free(s);
}

const sdrt_tensor *lora_set_tensor(const sdrt_lora_set *s, const char *component, const char *name) {
    if (!s || !component || !name) return NULL;
    int comp = -1;
    for (int i = 0; i < 3; i++)
        if (!strcmp(component, LORA_COMPONENTS[i])) comp = i;
    if (comp < 0) return NULL;
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const lora_target *t = &s->t[mid];
        int c = t->component != comp ? (t->component < comp ? -1 : 1) : strcmp(t->name, name);
        if (c == 0) return &t->out;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}
