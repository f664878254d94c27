/* test_conformance.c - backend conformance: every loaded backend family,
 * every device, every op case it claims in supports_op, on fresh random
 * inputs, against the CPU backend (and the CPU backend against the naive
 * reference in conf_ref.c), as ggml's test-backend-ops does.
 *
 * Families: every sdrt_backend_*.so in $SDRT_BUILD_DIR/lib/sdrt/backends,
 * plus each module named in SDRT_CONFORMANCE_BACKENDS (':'-separated paths,
 * e.g. the strict test family). A family whose runtime is missing (the
 * entry returns NULL) is reported as skipped. Reproduce a failure with the
 * printed SDRT_TEST_SEED; SDRT_CONFORMANCE_ONLY=<family> limits the run.
 *
 * Operands reach a device only through its buffers (write / write_async,
 * read / read_async): device addresses are never dereferenced here. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends.h"
#include "conf.h"
#include "harness.h"
#include "sdrt/half.h"

/* ---- loading families ------------------------------------------------------ */

static void conf_log(sdrt_host *host, sdrt_log_level level, const char *fmt, ...) {
    if (level > SDRT_LOG_INFO) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "# ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static const sdrt_host_api g_api = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_host_api, log), .abi_major = SDRT_ABI_MAJOR,
    .abi_minor = SDRT_ABI_MINOR, .log = conf_log};

static devbackends g_fams;
static int g_loaded;

static devbackends *conf_families(void) {
    if (g_loaded) return &g_fams;
    g_loaded = 1;
    devcfg cfg;
    char err[256];
    devcfg_parse(&cfg, "{\"backends\":{\"cpu\":{\"threads\":2}}}", ".", err, sizeof err);
    const char *build = getenv("SDRT_BUILD_DIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/lib/sdrt/backends", build ? build : ".");
    devbackends_load(&g_fams, dir, &g_api, NULL, &cfg);
    const char *extra = getenv("SDRT_CONFORMANCE_BACKENDS");
    if (extra && *extra) {
        char *list = strdup(extra), *save = NULL;
        for (char *p = strtok_r(list, ":", &save); p; p = strtok_r(NULL, ":", &save))
            devbackends_load_file(&g_fams, p, &g_api, NULL, &cfg);
        free(list);
    }
    devcfg_free(&cfg);
    return &g_fams;
}

static sdrt_device *conf_cpu(void) { return devbackends_device(conf_families(), "cpu", 0); }

static int conf_selected(const char *family) {
    const char *only = getenv("SDRT_CONFORMANCE_ONLY");
    return !only || !*only || strcmp(only, family) == 0 || strcmp(family, "cpu") == 0;
}

/* ---- host side of a case: logical values and storage bytes ------------------ */

typedef struct conf_host {
    float *vals[SDRT_OP_MAX_SRC];      /* logical order, already rounded to dtype */
    unsigned char *bytes[SDRT_OP_MAX_SRC]; /* storage layout */
    size_t nbytes[SDRT_OP_MAX_SRC];
    size_t dst_bytes;
    float *want;      /* naive reference (logical, dst dtype), NULL if none */
    float *cpu;       /* the CPU family's result, NULL until run */
} conf_host;

static void store_elem(unsigned char *base, sdrt_dtype dt, int64_t i, float v) {
    if (dt == SDRT_DTYPE_F32) memcpy(base + 4 * i, &v, 4);
    else {
        uint16_t h = dt == SDRT_DTYPE_F16 ? sdrt_f32_to_f16(v) : sdrt_f32_to_bf16(v);
        memcpy(base + 2 * i, &h, 2);
    }
}

static float load_elem(const unsigned char *base, sdrt_dtype dt, int64_t i) {
    if (dt == SDRT_DTYPE_F32) {
        float v;
        memcpy(&v, base + 4 * i, 4);
        return v;
    }
    uint16_t h;
    memcpy(&h, base + 2 * i, 2);
    return dt == SDRT_DTYPE_F16 ? sdrt_f16_to_f32(h) : sdrt_bf16_to_f32(h);
}

/* Storage offset of logical element `flat`. */
static int64_t conf_offset(const conf_tensor *t, const int64_t *strides, int64_t flat) {
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (flat % t->shape[d]) * strides[d];
        flat /= t->shape[d];
    }
    return off;
}

static void conf_host_make(const conf_case *c, conf_host *h) {
    memset(h, 0, sizeof *h);
    const float *in[SDRT_OP_MAX_SRC] = {0};
    for (int i = 0; i < SDRT_OP_MAX_SRC; i++) {
        const conf_tensor *t = &c->src[i];
        if (!t->used) continue;
        int64_t n = conf_numel(t), strides[SDRT_MAX_DIMS], span = conf_strides(t, strides);
        h->vals[i] = malloc((size_t)(n ? n : 1) * sizeof(float));
        if (sdrt_dtype_is_quantized(t->dtype)) {
            /* Contiguous blocks only; the reference sees the dequantised values. */
            h->nbytes[i] = (size_t)sdrt_dtype_bytes(t->dtype, n);
            h->bytes[i] = calloc(h->nbytes[i] ? h->nbytes[i] : 1, 1);
            conf_quant_fill(t->dtype, n, h->vals[i], h->bytes[i]);
            in[i] = h->vals[i];
            continue;
        }
        h->nbytes[i] = (size_t)span * conf_dtype_size(t->dtype);
        h->bytes[i] = calloc(h->nbytes[i] ? h->nbytes[i] : 1, 1);
        for (int64_t e = 0; e < n; e++) {
            float v = conf_quantize(t->dtype, conf_rand_float(t->lo, t->hi));
            h->vals[i][e] = v;
            store_elem(h->bytes[i], t->dtype, conf_offset(t, strides, e), v);
        }
        in[i] = h->vals[i];
    }
    int64_t strides[SDRT_MAX_DIMS];
    h->dst_bytes = (size_t)conf_strides(&c->dst, strides) * conf_dtype_size(c->dst.dtype);
    h->want = malloc((size_t)conf_numel(&c->dst) * sizeof(float));
    if (conf_reference(c, in, h->want) != 0) {
        free(h->want);
        h->want = NULL;
    }
}

static void conf_host_free(conf_host *h) {
    for (int i = 0; i < SDRT_OP_MAX_SRC; i++) {
        free(h->vals[i]);
        free(h->bytes[i]);
    }
    free(h->want);
    free(h->cpu);
}

/* ---- running a case on a device --------------------------------------------- */

enum { RUN_OK, RUN_UNCLAIMED, RUN_FAILED };

static size_t align_up(size_t x, size_t a) { return a ? (x + a - 1) / a * a : x; }

static void conf_desc(const conf_tensor *ct, void *data, sdrt_buffer *buf, sdrt_tensor *t) {
    memset(t, 0, sizeof *t);
    t->struct_size = sizeof *t;
    t->dtype = ct->dtype;
    t->ndim = ct->ndim;
    for (int d = 0; d < SDRT_MAX_DIMS; d++) t->shape[d] = d < ct->ndim ? ct->shape[d] : 1;
    conf_strides(ct, t->strides);
    t->data = data;
    t->buffer = buf;
}

/* Runs case `ci` on `s`: every operand in one buffer of the device at
 * aligned offsets (as an arena would place them), dst pre-filled with NaN
 * bytes so unwritten elements show. c->async picks buffer write / compute
 * / read or write_async / a one-op graph / read_async. On RUN_OK, *got holds the logical result (malloc'd). */
static int conf_run(sdrt_stream *s, const conf_case *c, const conf_host *h, float **got, char *why,
                    size_t whylen) {
    sdrt_device *dev = s->device;
    sdrt_buffer_type *bt = dev->iface->buffer_type(dev);
    size_t al = bt->iface->alignment ? bt->iface->alignment(bt) : 64, off[SDRT_OP_MAX_SRC + 1], total = 0;
    for (int i = 0; i <= SDRT_OP_MAX_SRC; i++) {
        size_t n = i < SDRT_OP_MAX_SRC ? h->nbytes[i] : h->dst_bytes;
        if (i < SDRT_OP_MAX_SRC && !c->src[i].used) n = 0;
        off[i] = total;
        total = align_up(total + (n ? n : 1), al ? al : 1);
    }
    sdrt_buffer *buf = sdrt_buffer_alloc(bt, total);
    if (!buf) {
        snprintf(why, whylen, "buffer alloc of %zu bytes failed", total);
        return RUN_FAILED;
    }
    char *base = buf->iface->base(buf);
    sdrt_tensor t[SDRT_OP_MAX_SRC], y;
    sdrt_op op = {.struct_size = sizeof op, .kind = c->kind};
    int async = c->async, rc = RUN_OK;
    for (int i = 0; i < SDRT_OP_MAX_SRC; i++) {
        if (!c->src[i].used) continue;
        conf_desc(&c->src[i], base + off[i], buf, &t[i]);
        op.src[i] = &t[i];
        if (async) sdrt_stream_write_async(s, buf, base + off[i], h->bytes[i], h->nbytes[i]);
        else buf->iface->write(buf, base + off[i], h->bytes[i], h->nbytes[i]);
    }
    unsigned char *dbytes = malloc(h->dst_bytes ? h->dst_bytes : 1);
    memset(dbytes, 0xFF, h->dst_bytes);
    buf->iface->write(buf, base + off[SDRT_OP_MAX_SRC], dbytes, h->dst_bytes);
    conf_desc(&c->dst, base + off[SDRT_OP_MAX_SRC], buf, &y);
    op.dst = &y;
    memcpy(op.iparams, c->ip, sizeof op.iparams);
    memcpy(op.fparams, c->fp, sizeof op.fparams);
    if (!sdrt_device_supports_op(dev, &op)) {
        sdrt_stream_synchronize(s);
        rc = RUN_UNCLAIMED;
        goto done;
    }
    sdrt_status st;
    if (async) {
        sdrt_graph g = {.struct_size = sizeof g, .n_ops = 1, .ops = &op};
        st = sdrt_stream_graph_compute(s, &g);
    } else {
        st = sdrt_stream_compute(s, &op);
    }
    if (st != SDRT_OK) {
        sdrt_stream_synchronize(s);
        snprintf(why, whylen, "claimed in supports_op but compute returned %s", sdrt_status_name(st));
        rc = RUN_FAILED;
        goto done;
    }
    memset(dbytes, 0, h->dst_bytes);
    if (async) sdrt_stream_read_async(s, buf, dbytes, base + off[SDRT_OP_MAX_SRC], h->dst_bytes);
    sdrt_stream_synchronize(s);
    if (!async) buf->iface->read(buf, dbytes, base + off[SDRT_OP_MAX_SRC], h->dst_bytes);
    /* Logical result, and storage outside the view must be untouched. */
    int64_t strides[SDRT_MAX_DIMS], n = conf_numel(&c->dst);
    conf_strides(&c->dst, strides);
    size_t es = conf_dtype_size(c->dst.dtype);
    unsigned char *mask = calloc(h->dst_bytes / es + 1, 1);
    *got = malloc((size_t)(n ? n : 1) * sizeof(float));
    for (int64_t e = 0; e < n; e++) {
        int64_t o = conf_offset(&c->dst, strides, e);
        (*got)[e] = load_elem(dbytes, c->dst.dtype, o);
        mask[o] = 1;
    }
    for (size_t o = 0; o < h->dst_bytes / es; o++) {
        if (mask[o]) continue;
        for (size_t b = 0; b < es; b++)
            if (dbytes[o * es + b] != 0xFF) {
                snprintf(why, whylen, "wrote outside the dst view (storage element %zu)", o);
                rc = RUN_FAILED;
                free(*got);
                *got = NULL;
                goto masked;
            }
    }
masked:
    free(mask);
done:
    free(dbytes);
    sdrt_buffer_free(buf);
    return rc;
}

/* ---- the op test over every device -------------------------------------------- */

typedef struct conf_tally {
    int run[SDRT_OP_COUNT_], unclaimed[SDRT_OP_COUNT_], failed[SDRT_OP_COUNT_];
} conf_tally;

static const char *const k_op_names[] = {
#define CONF_OP_NAME_(name) #name,
    SDRT_OP_LIST(CONF_OP_NAME_)
#undef CONF_OP_NAME_
};

static void conf_device(const char *family, sdrt_device *dev, size_t di, conf_case *cases, conf_host *hosts,
                        size_t n) {
    sdrt_stream *s = dev->iface->stream_new(dev, "{\"threads\":2}");
    REQUIRE(s, "%s:%zu: stream_new failed", family, di);
    int is_cpu = strcmp(family, "cpu") == 0;
    conf_tally tally = {0};
    for (size_t i = 0; i < n; i++) {
        const conf_case *c = &cases[i];
        conf_host *h = &hosts[i];
        float *got = NULL;
        char why[256] = "";
        int rc = conf_run(s, c, h, &got, why, sizeof why);
        if (rc == RUN_UNCLAIMED) {
            tally.unclaimed[c->kind]++;
            continue;
        }
        tally.run[c->kind]++;
        if (rc == RUN_OK) {
            /* CPU: against the naive reference; others: against the CPU
             * (or the reference where the CPU does not claim the case). */
            const float *want = is_cpu || !h->cpu ? h->want : h->cpu;
            const char *against = is_cpu || !h->cpu ? "reference" : "cpu";
            int64_t ne = conf_numel(&c->dst);
            double tol = conf_tolerance(c), rel = want ? test_rel_l2(got, want, (size_t)ne) : 0.0;
            if (!want) {
                snprintf(why, sizeof why, "no reference for this case");
                rc = RUN_FAILED;
            } else if (!(rel <= tol)) {
                snprintf(why, sizeof why, "rel L2 %.3g > %.3g against %s (max abs %.3g)", rel, tol, against,
                         test_max_abs(got, want, (size_t)ne));
                rc = RUN_FAILED;
            }
            if (is_cpu && rc == RUN_OK && !h->cpu) {
                h->cpu = got;
                got = NULL;
            }
        }
        free(got);
        if (rc == RUN_FAILED) {
            tally.failed[c->kind]++;
            test_fail_(__FILE__, __LINE__, "%s:%zu %s: %s", family, di, c->name, why);
        }
    }
    sdrt_stream_free(s);
    printf("# %s:%zu (%s):", family, di, dev->iface->name(dev));
    for (int k = 0; k < SDRT_OP_COUNT_; k++)
        if (tally.run[k] || tally.unclaimed[k])
            printf(" %s %d/%d%s", k_op_names[k], tally.run[k] - tally.failed[k], tally.run[k] + tally.unclaimed[k],
                   tally.failed[k] ? "!" : "");
    printf("  (passed/cases; the rest not claimed)\n");
}

static void test_families(void) {
    devbackends *f = conf_families();
    REQUIRE(f->count > 0, "no backend family loaded (looked in $SDRT_BUILD_DIR/lib/sdrt/backends)");
    CHECK(conf_cpu() != NULL, "the cpu family is not loaded: nothing to compare against");
    for (int i = 0; i < f->count; i++) {
        sdrt_backend_reg *reg = f->items[i].reg;
        CHECK(strcmp(reg->iface->name(reg), f->items[i].family) == 0, "%s: registry names itself %s",
              f->items[i].family, reg->iface->name(reg));
        size_t nd = reg->iface->device_count(reg);
        printf("# family %s: %zu device(s), ABI %u.%u (%s)\n", f->items[i].family, nd, reg->abi_major,
               reg->abi_minor, f->items[i].path);
        for (size_t d = 0; d < nd; d++) {
            sdrt_device *dev = reg->iface->device_get(reg, d);
            CHECK(dev && dev->reg == reg, "%s:%zu: device_get gave no device or one of another family",
                  f->items[i].family, d);
            if (!dev) continue;
            sdrt_buffer_type *bt = dev->iface->buffer_type(dev);
            CHECK(bt && bt->device == dev, "%s:%zu: buffer type missing or not this device's", f->items[i].family, d);
        }
    }
    /* A module named explicitly must load: its absence is a build bug. */
    const char *extra = getenv("SDRT_CONFORMANCE_BACKENDS");
    if (extra && *extra) {
        char *list = strdup(extra), *save = NULL;
        for (char *p = strtok_r(list, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
            int found = 0;
            for (int i = 0; i < f->count; i++) found |= strcmp(f->items[i].path, p) == 0;
            CHECK(found, "SDRT_CONFORMANCE_BACKENDS names %s but it did not load (see the log above)", p);
        }
        free(list);
    }
    static const char *const known[] = {"cpu", "cuda", "vulkan"};
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        if (!devbackends_find(f, known[k])) printf("# family %s: skipped (not built or its runtime is absent)\n", known[k]);
}

static void test_ops(void) {
    devbackends *f = conf_families();
    REQUIRE(conf_cpu(), "no cpu family");
    conf_case *cases = NULL;
    size_t n = conf_cases_make(&cases);
    conf_host *hosts = calloc(n, sizeof *hosts);
    for (size_t i = 0; i < n; i++) conf_host_make(&cases[i], &hosts[i]);
    printf("# %zu op cases\n", n);
    /* The CPU first: the other families compare against its results. */
    conf_device("cpu", conf_cpu(), 0, cases, hosts, n);
    for (int i = 0; i < f->count; i++) {
        const char *fam = f->items[i].family;
        if (strcmp(fam, "cpu") == 0 || !conf_selected(fam)) continue;
        sdrt_backend_reg *reg = f->items[i].reg;
        for (size_t d = 0; d < reg->iface->device_count(reg); d++)
            conf_device(fam, reg->iface->device_get(reg, d), d, cases, hosts, n);
    }
    for (size_t i = 0; i < n; i++) conf_host_free(&hosts[i]);
    free(hosts);
    free(cases);
}

/* ---- buffers, copies, events, graphs --------------------------------------------- */

static void fill_rand(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = conf_rand_float(-1.0f, 1.0f);
}

/* Buffer write/read at offsets, memset, buffer-to-buffer copies (same
 * device and through the CPU), async copies and events. */
static void conf_buffers(const char *family, sdrt_device *dev, size_t di) {
    sdrt_buffer_type *bt = dev->iface->buffer_type(dev);
    sdrt_stream *s = dev->iface->stream_new(dev, NULL);
    REQUIRE(s, "%s:%zu: stream_new failed", family, di);
    enum { N = 4099 };
    float src[N], back[N], zero[N];
    fill_rand(src, N);
    memset(zero, 0, sizeof zero);
    sdrt_buffer *a = sdrt_buffer_alloc(bt, 2 * N * sizeof(float)), *b = sdrt_buffer_alloc(bt, N * sizeof(float));
    REQUIRE(a && b, "%s:%zu: alloc failed", family, di);
    CHECK(a->size >= 2 * N * sizeof(float) && a->type == bt, "%s:%zu: buffer size/type wrong", family, di);
    size_t al = bt->iface->alignment(bt);
    CHECK(al && ((uintptr_t)a->iface->base(a) % al) == 0, "%s:%zu: base not aligned to %zu", family, di, al);
    char *ba = a->iface->base(a), *bb = b->iface->base(b);
    /* Offsets: write the second half, read it back. */
    a->iface->write(a, ba + N * sizeof(float), src, sizeof src);
    a->iface->read(a, back, ba + N * sizeof(float), sizeof back);
    CHECK(memcmp(src, back, sizeof src) == 0, "%s:%zu: write/read at an offset differ", family, di);
    /* memset (the wrapper defaults it). */
    if (SDRT_IFACE_HAS_(a->iface, sdrt_buffer_iface, memset)) {
        a->iface->memset(a, ba, 0, N * sizeof(float));
        a->iface->read(a, back, ba, sizeof back);
        CHECK(memcmp(back, zero, sizeof zero) == 0, "%s:%zu: memset 0 left non-zero bytes", family, di);
    }
    /* Device-to-device copy, then through the CPU device's buffers. */
    CHECK(sdrt_buffer_copy(b, bb, a, ba + N * sizeof(float), N * sizeof(float)) == SDRT_OK, "%s: copy", family);
    b->iface->read(b, back, bb, sizeof back);
    CHECK(memcmp(src, back, sizeof src) == 0, "%s:%zu: buffer copy differs", family, di);
    sdrt_device *cpu = conf_cpu();
    sdrt_buffer *h = cpu ? sdrt_buffer_alloc(cpu->iface->buffer_type(cpu), N * sizeof(float)) : NULL;
    if (h) {
        CHECK(sdrt_buffer_copy(h, h->iface->base(h), b, bb, N * sizeof(float)) == SDRT_OK, "%s: copy to cpu", family);
        h->iface->read(h, back, h->iface->base(h), sizeof back);
        CHECK(memcmp(src, back, sizeof src) == 0, "%s:%zu: copy into a CPU buffer differs", family, di);
        fill_rand(src, N);
        h->iface->write(h, h->iface->base(h), src, sizeof src);
        CHECK(sdrt_buffer_copy(a, ba, h, h->iface->base(h), N * sizeof(float)) == SDRT_OK, "%s: copy", family);
        a->iface->read(a, back, ba, sizeof back);
        CHECK(memcmp(src, back, sizeof src) == 0, "%s:%zu: copy from a CPU buffer differs", family, di);
        sdrt_buffer_free(h);
    }
    /* Async: write, device copy, read, then an event; the host sees the
     * data only after the event completed. */
    float src2[N];
    fill_rand(src2, N);
    CHECK(sdrt_stream_write_async(s, a, ba, src2, sizeof src2) == SDRT_OK, "%s: write_async", family);
    CHECK(sdrt_stream_copy_async(s, b, bb, a, ba, sizeof src2) == SDRT_OK, "%s: copy_async", family);
    memset(back, 0, sizeof back);
    CHECK(sdrt_stream_read_async(s, b, back, bb, sizeof back) == SDRT_OK, "%s: read_async", family);
    sdrt_event *ev = sdrt_stream_event_record(s);
    sdrt_event_synchronize(s, ev);
    sdrt_event_free(s, ev);
    CHECK(memcmp(src2, back, sizeof back) == 0, "%s:%zu: async write/copy/read differ after the event", family, di);
    /* Second stream waits on an event of the first. */
    sdrt_stream *s2 = dev->iface->stream_new(dev, NULL);
    if (s2) {
        fill_rand(src2, N);
        sdrt_stream_write_async(s, a, ba, src2, sizeof src2);
        ev = sdrt_stream_event_record(s);
        sdrt_stream_wait_event(s2, s, ev);
        sdrt_stream_read_async(s2, a, back, ba, sizeof back);
        sdrt_stream_synchronize(s2);
        sdrt_event_free(s, ev);
        sdrt_stream_synchronize(s);
        CHECK(memcmp(src2, back, sizeof back) == 0, "%s:%zu: stream 2 did not see stream 1's write after event_wait",
              family, di);
        sdrt_stream_free(s2);
    }
    sdrt_buffer_set_usage(a, SDRT_BUFFER_USAGE_WEIGHTS);
    size_t max = sdrt_buffer_type_max_size(bt);
    CHECK(max == 0 || max >= 1u << 20, "%s:%zu: max_size %zu implausibly small", family, di, max);
    sdrt_buffer_type *hbt = sdrt_device_host_buffer_type(dev);
    if (hbt) {
        CHECK(sdrt_buffer_type_is_host(hbt), "%s:%zu: host_buffer_type is not host memory", family, di);
        sdrt_buffer *pin = sdrt_buffer_alloc(hbt, 256);
        CHECK(pin != NULL, "%s:%zu: host buffer alloc failed", family, di);
        sdrt_buffer_free(pin);
    }
    sdrt_buffer_free(a);
    sdrt_buffer_free(b);
    sdrt_stream_free(s);
}

/* A chain recorded as one graph (LAYER_NORM -> MATMUL+bias -> SILU -> ADD
 * residual) with every intermediate in one arena buffer, against the same
 * chain op by op on the CPU. */
static void conf_graph(const char *family, sdrt_device *dev, size_t di) {
    enum { R = 19, D = 48, O = 48 };
    static float x[R * D], w[O * D], bias[O], out[R * O], want[R * O];
    fill_rand(x, R * D), fill_rand(w, O * D), fill_rand(bias, O);
    sdrt_device *devs[2] = {conf_cpu(), dev};
    for (int pass = 0; pass < 2; pass++) {
        sdrt_device *d = devs[pass];
        sdrt_buffer_type *bt = d->iface->buffer_type(d);
        sdrt_stream *s = d->iface->stream_new(d, NULL);
        REQUIRE(s, "%s: stream_new failed", family);
        size_t seg = 8192 * sizeof(float);
        sdrt_buffer *arena = sdrt_buffer_alloc(bt, 6 * seg);
        REQUIRE(arena, "%s: arena alloc failed", family);
        sdrt_buffer_set_usage(arena, SDRT_BUFFER_USAGE_COMPUTE);
        char *base = arena->iface->base(arena);
        int64_t xs[2] = {R, D}, ws[2] = {O, D}, bs[1] = {O}, ys[2] = {R, O};
        sdrt_tensor t[6];
        const int64_t *shapes[6] = {xs, ws, bs, xs, ys, ys};
        int nds[6] = {2, 2, 1, 2, 2, 2};
        for (int i = 0; i < 6; i++) {
            conf_tensor ct = conf_t(SDRT_DTYPE_F32, nds[i], shapes[i]);
            conf_desc(&ct, base + i * seg, arena, &t[i]);
        }
        sdrt_stream_write_async(s, arena, t[0].data, x, sizeof x);
        sdrt_stream_write_async(s, arena, t[1].data, w, sizeof w);
        sdrt_stream_write_async(s, arena, t[2].data, bias, sizeof bias);
        sdrt_op ops[4] = {
            {.struct_size = sizeof(sdrt_op), .kind = SDRT_OP_LAYER_NORM, .src = {&t[0]}, .dst = &t[3]},
            {.struct_size = sizeof(sdrt_op), .kind = SDRT_OP_MATMUL, .src = {&t[3], &t[1], &t[2]}, .dst = &t[4],
             .iparams = {1}},
            {.struct_size = sizeof(sdrt_op), .kind = SDRT_OP_SILU, .src = {&t[4]}, .dst = &t[5]},
            {.struct_size = sizeof(sdrt_op), .kind = SDRT_OP_ADD, .src = {&t[5], &t[0]}, .dst = &t[4]},
        };
        int claimed = 1;
        for (int i = 0; i < 4; i++) claimed &= sdrt_device_supports_op(d, &ops[i]);
        if (claimed) {
            sdrt_status st;
            if (pass == 0) {
                st = SDRT_OK;
                for (int i = 0; i < 4 && st == SDRT_OK; i++) st = sdrt_stream_compute(s, &ops[i]);
            } else {
                sdrt_graph g = {.struct_size = sizeof g, .n_ops = 4, .ops = ops, .replay_key = 0x5d17};
                st = sdrt_stream_graph_compute(s, &g);
                /* Replaying the same key with new input data. */
                if (st == SDRT_OK) st = sdrt_stream_graph_compute(s, &g);
            }
            CHECK(st == SDRT_OK, "%s:%zu graph: %s", family, di, sdrt_status_name(st));
            sdrt_stream_read_async(s, arena, pass ? out : want, t[4].data, sizeof out);
            sdrt_stream_synchronize(s);
        } else {
            printf("# %s:%zu graph: chain not claimed\n", family, di);
        }
        sdrt_buffer_free(arena);
        sdrt_stream_free(s);
        if (!claimed) return;
    }
    double rel = test_rel_l2(out, want, R * O);
    CHECK(rel < 1e-5, "%s:%zu graph: rel L2 %.3g against the CPU op by op", family, di, rel);
}

/* allocated_bytes (what the host reports as metrics.device_memory_mb):
 * grows by at least what is allocated, by not much more (alignment), and
 * returns to where it was once that is freed. */
static void conf_allocated(const char *family, sdrt_device *dev, size_t di) {
    if (!SDRT_IFACE_HAS_(dev->iface, sdrt_device_iface, allocated_bytes)) return;
    size_t sz = (size_t)(1 + rand() % 64) * 65536 + (size_t)(rand() % 4096);
    uint64_t before = dev->iface->allocated_bytes(dev);
    sdrt_buffer *b = sdrt_buffer_alloc(dev->iface->buffer_type(dev), sz);
    REQUIRE(b, "%s:%zu: alloc of %zu bytes failed", family, di, sz);
    uint64_t during = dev->iface->allocated_bytes(dev);
    sdrt_buffer_free(b);
    uint64_t after = dev->iface->allocated_bytes(dev);
    CHECK(during >= before + sz && during <= before + 2 * sz + 65536,
          "%s:%zu: allocated_bytes %llu -> %llu for a %zu-byte buffer", family, di, (unsigned long long)before,
          (unsigned long long)during, sz);
    CHECK(after == before, "%s:%zu: allocated_bytes %llu after the free, %llu before the alloc", family, di,
          (unsigned long long)after, (unsigned long long)before);
}

static void test_buffers_and_graphs(void) {
    devbackends *f = conf_families();
    REQUIRE(conf_cpu(), "no cpu family");
    for (int i = 0; i < f->count; i++) {
        const char *fam = f->items[i].family;
        if (!conf_selected(fam)) continue;
        sdrt_backend_reg *reg = f->items[i].reg;
        for (size_t d = 0; d < reg->iface->device_count(reg); d++) {
            conf_buffers(fam, reg->iface->device_get(reg, d), d);
            conf_allocated(fam, reg->iface->device_get(reg, d), d);
            conf_graph(fam, reg->iface->device_get(reg, d), d);
        }
    }
}

const test_entry TESTS[] = {
    {"families", test_families},
    {"ops", test_ops},
    {"buffers_and_graphs", test_buffers_and_graphs},
    {0, 0},
};
