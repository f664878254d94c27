/* tests/unet/fixture.c - see fixture.h. */
#define _POSIX_C_SOURCE 200809L
#include "fixture.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "sdrt/half.h"
#include "sdrt/npy.h"

static void fx_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fixture: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void fx_log(sdrt_host *host, sdrt_log_level level, const char *fmt, ...) {
    va_list ap;
    if (level > SDRT_LOG_WARN) return;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static sdrt_error *fx_error_new(sdrt_status code, const char *data_json, const char *fmt, ...) {
    sdrt_error *e = calloc(1, sizeof *e);
    char *msg = malloc(1024);
    va_list ap;
    if (!e || !msg) fx_die("out of memory");
    va_start(ap, fmt);
    vsnprintf(msg, 1024, fmt, ap);
    va_end(ap);
    e->struct_size = sizeof *e;
    e->code = code;
    e->message = msg;
    e->data_json = data_json ? strdup(data_json) : NULL;
    return e;
}

static void fx_error_free(sdrt_error *e) {
    if (!e) return;
    free((char *)e->message);
    free((char *)e->data_json);
    free(e);
}

static void *fx_alloc(size_t n) {
    return malloc(n);
}

static void fx_free(void *p) {
    free(p);
}

const sdrt_host_api *fx_host_api(void) {
    static sdrt_host_api api;
    if (!api.struct_size) {
        api.abi_major = SDRT_ABI_MAJOR;
        api.abi_minor = SDRT_ABI_MINOR;
        api.log = fx_log;
        api.error_new = fx_error_new;
        api.error_free = fx_error_free;
        api.alloc = fx_alloc;
        api.free = fx_free;
        api.struct_size = sizeof api;
    }
    return &api;
}

sdrt_device *fx_cpu_device(void) {
    static sdrt_device *dev;
    if (dev) return dev;
    const char *build = getenv("SDRT_BUILD_DIR");
    char path[4096];
    /* SDRT_TEST_BACKEND_MODULE: another family's module (the strict test
     * device in unet-strict); its device 0 is used. */
    const char *mod = getenv("SDRT_TEST_BACKEND_MODULE");
    if (mod && *mod) snprintf(path, sizeof path, "%s", mod);
    else snprintf(path, sizeof path, "%s/lib/sdrt/backends/sdrt_backend_cpu.so", build ? build : ".");
    void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!so) fx_die("dlopen %s: %s", path, dlerror());
    sdrt_backend_entry_fn entry = (sdrt_backend_entry_fn)(uintptr_t)dlsym(so, SDRT_BACKEND_ENTRY_SYMBOL);
    if (!entry) fx_die("%s: no %s", path, SDRT_BACKEND_ENTRY_SYMBOL);
    sdrt_backend_reg *reg = entry(fx_host_api(), "{}");
    if (!reg || reg->iface->device_count(reg) < 1) fx_die("%s: no CPU device", path);
    dev = reg->iface->device_get(reg, 0);
    return dev;
}

struct fx_weights {
    st_file *file;
    sdrt_tensor *tensors;    /* one per file tensor, same order */
    uint16_t **f16;          /* converted copies, or NULL */
};

static void fx_describe(sdrt_tensor *t, const st_tensor *s) {
    memset(t, 0, sizeof *t);
    t->struct_size = sizeof *t;
    t->dtype = (sdrt_dtype)st_to_sdrt_dtype(s->dtype);
    t->ndim = s->ndim;
    int64_t stride = 1;
    for (int d = SDRT_MAX_DIMS - 1; d >= 0; d--) t->shape[d] = 1;
    for (int d = s->ndim - 1; d >= 0; d--) {
        t->shape[d] = s->shape[d];
        t->strides[d] = stride;
        stride *= s->shape[d];
    }
    t->data = (void *)s->data;
}

static uint16_t *fx_to_f16(sdrt_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    uint16_t *h = malloc((size_t)n * sizeof *h);
    if (!h) fx_die("out of memory");
    const float *f = t->data;
    for (int64_t i = 0; i < n; i++) h[i] = sdrt_f32_to_f16(f[i]);
    t->dtype = SDRT_DTYPE_F16;
    t->data = h;
    return h;
}

fx_weights *fx_weights_open(const char *path, int to_f16) {
    char err[512];
    fx_weights *w = calloc(1, sizeof *w);
    if (!w) fx_die("out of memory");
    if (st_open(path, &w->file, err, sizeof err) != 0) fx_die("%s", err);
    w->tensors = calloc(w->file->n_tensors, sizeof *w->tensors);
    w->f16 = calloc(w->file->n_tensors, sizeof *w->f16);
    if (!w->tensors || !w->f16) fx_die("out of memory");
    for (size_t i = 0; i < w->file->n_tensors; i++) {
        fx_describe(&w->tensors[i], &w->file->tensors[i]);
        if (to_f16 && w->tensors[i].dtype == SDRT_DTYPE_F32 && w->tensors[i].ndim >= 2)
            w->f16[i] = fx_to_f16(&w->tensors[i]);
    }
    return w;
}

const sdrt_tensor *fx_weights_get(void *weights, const char *name) {
    fx_weights *w = weights;
    const st_tensor *s = st_find(w->file, name);
    return s ? &w->tensors[s - w->file->tensors] : NULL;
}

void fx_weights_close(fx_weights *w) {
    if (!w) return;
    for (size_t i = 0; i < w->file->n_tensors; i++) free(w->f16[i]);
    free(w->f16);
    free(w->tensors);
    st_close(w->file);
    free(w);
}

char *fx_read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    fclose(f);
    if (s) s[n] = '\0';
    return s;
}

float *fx_npy(const char *path, int64_t *shape, int *ndim, size_t *n) {
    char err[512];
    float *data = NULL;
    int64_t shp[SDRT_NPY_MAX_DIMS];
    int nd = 0;
    if (sdrt_npy_read_f32(path, &data, shp, &nd, err, sizeof err) != 0) fx_die("%s", err);
    size_t count = 1;
    for (int d = 0; d < nd; d++) {
        count *= (size_t)shp[d];
        if (shape) shape[d] = shp[d];
    }
    if (ndim) *ndim = nd;
    if (n) *n = count;
    return data;
}
