/* test_ops_graph.c - nn graph mode (one arena planned by liveness, whole-
 * graph submission, replay keys) against eager mode, and resident weights
 * (sdrt/weight_store.h) on a non-host device: shared across contexts,
 * budgeted, evicted least-recently-used, never while pinned. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_device.h"
#include "harness.h"
#include "ops_common.h"
#include "sdrt/nn.h"
#include "sdrt/weight_store.h"

/* A small block with every kind of liveness: a residual kept across
 * several ops, views of intermediates as operands, attention. */
typedef struct net_w {
    float conv[8 * 4 * 3 * 3], conv_b[8], gn_g[8], gn_b[8], proj[8 * 8], proj2[8 * 4];
} net_w;

static sdrt_tensor *net(sdrt_nn *nn, const net_w *w, const float *x_host) {
    int64_t xs[4] = {2, 4, 6, 5}, cs[4] = {8, 4, 3, 3}, vs[1] = {8}, ps[2] = {8, 8}, p2s[2] = {8, 4};
    sdrt_tensor hc = ops_tensor((void *)w->conv, SDRT_DTYPE_F32, 4, cs);
    sdrt_tensor hb = ops_tensor((void *)w->conv_b, SDRT_DTYPE_F32, 1, vs);
    sdrt_tensor hg = ops_tensor((void *)w->gn_g, SDRT_DTYPE_F32, 1, vs);
    sdrt_tensor hbeta = ops_tensor((void *)w->gn_b, SDRT_DTYPE_F32, 1, vs);
    sdrt_tensor hp = ops_tensor((void *)w->proj, SDRT_DTYPE_F32, 2, ps);
    sdrt_tensor hp2 = ops_tensor((void *)w->proj2, SDRT_DTYPE_F32, 2, p2s);
    sdrt_tensor *x = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 4, xs, x_host);
    sdrt_tensor *c = sdrt_nn_conv2d(nn, x, sdrt_nn_weight(nn, &hc), sdrt_nn_weight(nn, &hb), 1, 1);
    sdrt_tensor *g = sdrt_nn_group_norm(nn, c, sdrt_nn_weight(nn, &hg), sdrt_nn_weight(nn, &hbeta), 2, 1e-5f, 1);
    sdrt_nn_drop(nn, c);
    /* [2,8,30] -> tokens [2,30,8] through a permuted view */
    int64_t s3[3] = {2, 8, 30};
    sdrt_tensor g3 = sdrt_nn_view_reshape(g, 3, s3);
    int perm[3] = {0, 2, 1};
    sdrt_tensor tok = sdrt_nn_view_permute(&g3, perm);
    sdrt_tensor *q = sdrt_nn_linear(nn, &tok, sdrt_nn_weight(nn, &hp), NULL);
    int64_t s4[4] = {2, 30, 2, 4};
    sdrt_tensor q4 = sdrt_nn_view_reshape(q, 4, s4);
    int hperm[4] = {0, 2, 1, 3};
    sdrt_tensor qh = sdrt_nn_view_permute(&q4, hperm);
    sdrt_tensor *a = sdrt_nn_attention(nn, &qh, &qh, &qh, 0.0f, 0);
    sdrt_nn_drop(nn, q);
    sdrt_tensor *ac = sdrt_nn_copy(nn, a, SDRT_DTYPE_F32);
    sdrt_nn_drop(nn, a);
    sdrt_tensor *y = sdrt_nn_linear(nn, ac, sdrt_nn_weight(nn, &hp2), NULL); /* [2,2,30,8] */
    sdrt_nn_drop(nn, ac);
    int64_t gs[2] = {120, 4}, ys[2] = {120, 8}, xs2[2] = {30, 8};
    sdrt_tensor gflat = sdrt_nn_view_reshape(g, 2, gs);
    sdrt_tensor *z = sdrt_nn_linear(nn, &gflat, sdrt_nn_weight(nn, &hp2), NULL); /* [120,8] */
    sdrt_nn_drop(nn, g);
    sdrt_tensor yflat = sdrt_nn_view_reshape(y, 2, ys);
    sdrt_tensor *yz = sdrt_nn_concat(nn, &yflat, z, 0);
    sdrt_nn_drop(nn, y);
    sdrt_nn_drop(nn, z);
    sdrt_tensor *xr = sdrt_nn_scale(nn, x, 0.5f, 0.0f); /* x lived since the start */
    sdrt_nn_drop(nn, x);
    sdrt_tensor xv = sdrt_nn_view_reshape(xr, 2, xs2);
    sdrt_tensor *sum = sdrt_nn_concat(nn, yz, &xv, 0);
    sdrt_nn_drop(nn, yz);
    sdrt_nn_drop(nn, xr);
    return sum;
}

static void net_rand(net_w *w, float *x) {
    ops_rand((float *)w, sizeof *w / sizeof(float), 0.5f);
    ops_rand(x, 2 * 4 * 6 * 5, 1.0f);
}

/* Runs net eagerly or as a graph; returns the output (malloc'd), n. */
static float *net_run(sdrt_device *dev, const net_w *w, const float *x, int graph, size_t *n) {
    sdrt_nn *nn = sdrt_nn_new(dev, "{\"threads\":1}", NULL, NULL);
    if (!nn) return NULL;
    if (graph) sdrt_nn_graph_begin(nn);
    sdrt_tensor *out = net(nn, w, x);
    if (graph) CHECK(sdrt_nn_graph_end(nn) == SDRT_OK, "graph_end");
    const char *msg = NULL;
    CHECK(sdrt_nn_status(nn, &msg) == SDRT_OK, "net: %s", msg);
    float *r = NULL;
    if (out) {
        *n = (size_t)sdrt_nn_numel(out);
        r = malloc(*n * sizeof *r);
        if (sdrt_nn_to_host_f32(nn, out, r) != SDRT_OK) free(r), r = NULL;
    }
    sdrt_nn_free(nn);
    return r;
}

void test_nn_graph_matches_eager(void) {
    static net_w w;
    float x[2 * 4 * 6 * 5];
    net_rand(&w, x);
    static fake_device fake;
    fake_device_init(&fake, ops_device());
    size_t n0 = 0, n1 = 0, n2 = 0;
    float *eager = net_run(ops_device(), &w, x, 0, &n0);
    float *graph = net_run(ops_device(), &w, x, 1, &n1);
    float *fgraph = net_run(&fake.dev, &w, x, 1, &n2);
    REQUIRE(eager && graph && fgraph && n0 == n1 && n0 == n2, "three runs");
    /* Same kernels, same order: bit-identical. */
    CHECK(memcmp(eager, graph, n0 * sizeof *eager) == 0, "graph == eager on the CPU");
    CHECK(memcmp(eager, fgraph, n0 * sizeof *eager) == 0, "graph on a non-host device == eager on the CPU");
    CHECK(fake.live_bytes == 0, "everything freed on the non-host device (%zu bytes left)", fake.live_bytes);
    free(eager), free(graph), free(fgraph);
}

/* The strict test device (SDRT_STRICT_BACKEND: its module; set by ctest):
 * graph mode there, twice (the second replays the first's key), with the
 * weights resident in a store, gives the CPU's eager bits exactly. */
void test_nn_graph_strict_matches_cpu(void) {
    const char *path = getenv("SDRT_STRICT_BACKEND");
    if (!path || !*path) {
        printf("# skipped: SDRT_STRICT_BACKEND not set\n");
        return;
    }
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    REQUIRE(lib, "dlopen %s: %s", path, dlerror());
    sdrt_backend_entry_fn entry = (sdrt_backend_entry_fn)(uintptr_t)dlsym(lib, SDRT_BACKEND_ENTRY_SYMBOL);
    sdrt_backend_reg *reg = entry ? entry(NULL, "{\"threads\":1}") : NULL;
    REQUIRE(reg && reg->iface->device_count(reg) > 0, "strict device");
    sdrt_device *dev = reg->iface->device_get(reg, 0);
    static net_w w;
    float x[2 * 4 * 6 * 5];
    net_rand(&w, x);
    size_t n0 = 0, n1 = 0;
    float *want = net_run(ops_device(), &w, x, 0, &n0);
    sdrt_weight_budget *b = sdrt_weight_budget_new(0);
    sdrt_weight_store *ws = sdrt_weight_store_new(b, NULL);
    sdrt_weight_store_add_range(ws, &w, sizeof w);
    sdrt_nn *nn = sdrt_nn_new(dev, "{\"threads\":1}", NULL, NULL);
    REQUIRE(nn && want, "contexts");
    sdrt_nn_add_weight_store(nn, ws);
    uint64_t keys[2] = {0, 0};
    for (int rep = 0; rep < 2; rep++) {
        sdrt_nn_graph_begin(nn);
        sdrt_tensor *out = net(nn, &w, x);
        const char *msg = NULL;
        CHECK(sdrt_nn_graph_end(nn) == SDRT_OK, "strict graph: %s", (sdrt_nn_status(nn, &msg), msg));
        sdrt_nn_graph_stats(nn, NULL, NULL, &keys[rep]);
        n1 = out ? (size_t)sdrt_nn_numel(out) : 0;
        float *got = n1 == n0 ? malloc(n1 * sizeof *got) : NULL;
        CHECK(got && sdrt_nn_to_host_f32(nn, out, got) == SDRT_OK && memcmp(got, want, n0 * sizeof *got) == 0,
              "rep %d: strict graph differs from CPU eager", rep);
        free(got);
        sdrt_nn_drop(nn, out);
    }
    CHECK(keys[0] && keys[0] == keys[1], "replayed graph keeps its key");
    CHECK(sdrt_nn_weight_bytes_uploaded(nn) == sizeof w, "weights uploaded once (%llu of %zu)",
          (unsigned long long)sdrt_nn_weight_bytes_uploaded(nn), sizeof w);
    sdrt_nn_free(nn);
    sdrt_weight_store_free(ws);
    sdrt_weight_budget_free(b);
    free(want);
}

/* A chain of k ops each dropping its input needs two tensors, not k. */
void test_nn_graph_arena_reuse(void) {
    enum { N = 1000, K = 20 };
    float x[N], out[N];
    ops_rand(x, N, 1.0f);
    int64_t s[1] = {N};
    sdrt_nn *nn = sdrt_nn_new(ops_device(), NULL, NULL, NULL);
    REQUIRE(nn, "nn_new");
    uint64_t keys[4];
    for (int rep = 0; rep < 4; rep++) {
        int64_t len = rep < 2 || rep == 3 ? N : N / 2;
        sdrt_nn_graph_begin(nn);
        sdrt_tensor *t = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 1, &len, x);
        for (int i = 0; i < K; i++) {
            sdrt_tensor *u = sdrt_nn_scale(nn, t, 2.0f, 0.0f);
            sdrt_nn_drop(nn, t);
            t = u;
        }
        REQUIRE(sdrt_nn_graph_end(nn) == SDRT_OK, "graph_end");
        size_t arena, peak;
        sdrt_nn_graph_stats(nn, &arena, &peak, &keys[rep]);
        size_t one = ((size_t)len * 4 + 255) / 256 * 256;
        CHECK(arena == 2 * one && peak == 2 * one, "rep %d: arena %zu, peak %zu, want %zu", rep, arena, peak, 2 * one);
        REQUIRE(sdrt_nn_to_host_f32(nn, t, out) == SDRT_OK, "read");
        int bad = 0;
        for (int64_t i = 0; i < len; i++) bad += out[i] != x[i] * (float)(1 << K); /* exact: powers of two */
        CHECK(bad == 0, "rep %d: %d wrong values", rep, bad);
        sdrt_nn_drop(nn, t);
    }
    (void)s;
    CHECK(keys[0] != 0 && keys[1] == keys[0], "identical graph keeps its replay key (%llu, %llu)",
          (unsigned long long)keys[0], (unsigned long long)keys[1]);
    CHECK(keys[2] != keys[1] && keys[2] != 0, "another shape gets another key");
    CHECK(keys[3] == keys[0], "the first graph again after another one: its key again");
    sdrt_nn_free(nn);
}

/* Outputs stay valid after graph_end and across the next graph, which
 * reuses the arena (survivors move out first). */
void test_nn_graph_outputs_survive(void) {
    float x[64], got[64];
    ops_rand(x, 64, 1.0f);
    int64_t s[1] = {64};
    static fake_device fake;
    fake_device_init(&fake, ops_device());
    sdrt_nn *nn = sdrt_nn_new(&fake.dev, NULL, NULL, NULL);
    REQUIRE(nn, "nn_new");
    sdrt_nn_graph_begin(nn);
    sdrt_tensor *in = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 1, s, x);
    sdrt_tensor *y = sdrt_nn_scale(nn, in, 3.0f, 1.0f);
    sdrt_nn_drop(nn, in);
    REQUIRE(sdrt_nn_graph_end(nn) == SDRT_OK, "graph 1");
    sdrt_nn_graph_begin(nn);
    sdrt_tensor *in2 = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 1, s, x);
    sdrt_tensor *z = sdrt_nn_add(nn, y, in2); /* y from the last graph */
    sdrt_nn_drop(nn, in2);
    sdrt_tensor *w = sdrt_nn_scale(nn, z, 0.0f, 5.0f); /* overwrites whatever arena slot */
    sdrt_nn_drop(nn, w);
    REQUIRE(sdrt_nn_graph_end(nn) == SDRT_OK, "graph 2");
    CHECK(sdrt_nn_release_arena(nn) == 0, "the arena holds z: not released");
    REQUIRE(sdrt_nn_to_host_f32(nn, y, got) == SDRT_OK, "read y");
    int bad = 0;
    for (int i = 0; i < 64; i++) bad += got[i] != x[i] * 3.0f + 1.0f;
    CHECK(bad == 0, "y survived the next graph: %d wrong", bad);
    REQUIRE(sdrt_nn_to_host_f32(nn, z, got) == SDRT_OK, "read z");
    bad = 0;
    for (int i = 0; i < 64; i++) bad += got[i] != (x[i] * 3.0f + 1.0f) + x[i];
    CHECK(bad == 0, "z = y + x: %d wrong", bad);
    sdrt_nn_free(nn);
    CHECK(fake.live_bytes == 0, "nothing leaked on the device (%zu)", fake.live_bytes);
}

void test_nn_graph_errors(void) {
    float a[6] = {1, 2, 3, 4, 5, 6};
    int64_t s23[2] = {2, 3}, s22[2] = {2, 2};
    sdrt_nn *nn = sdrt_nn_new(ops_device(), NULL, NULL, NULL);
    REQUIRE(nn, "nn_new");
    float out[6];
    CHECK(sdrt_nn_graph_end(nn) == SDRT_FAILED_PRECONDITION, "end without begin");
    sdrt_nn_clear_status(nn);
    sdrt_nn_graph_begin(nn);
    CHECK(sdrt_nn_graph_begin(nn) == SDRT_FAILED_PRECONDITION, "nested begin refused");
    sdrt_nn_clear_status(nn);
    sdrt_tensor *x = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 2, s23, a);
    CHECK(sdrt_nn_to_host_f32(nn, x, out) == SDRT_FAILED_PRECONDITION, "no reads while recording");
    sdrt_nn_clear_status(nn);
    sdrt_tensor *y = sdrt_nn_silu(nn, x);
    sdrt_tensor *bad = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 2, s22, a);
    CHECK(sdrt_nn_matmul(nn, x, bad, 0, 1.0f) == NULL, "shape error caught while recording");
    CHECK(sdrt_nn_graph_end(nn) == SDRT_INVALID_ARGUMENT, "graph_end reports the first failure");
    CHECK(y && y->data == NULL, "outputs of a failed graph have no data");
    CHECK(!sdrt_nn_graph_recording(nn), "recording ended");
    sdrt_nn_clear_status(nn);
    sdrt_nn_drop(nn, y);
    sdrt_nn_graph_begin(nn);
    sdrt_tensor *x2 = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 2, s23, a);
    sdrt_tensor *y2 = sdrt_nn_scale(nn, x2, 1.0f, 1.0f);
    CHECK(sdrt_nn_graph_end(nn) == SDRT_OK, "next graph works");
    CHECK(sdrt_nn_to_host_f32(nn, y2, out) == SDRT_OK && out[5] == 7.0f, "value %g", out[5]);
    sdrt_nn_free(nn);
}

/* ---- resident weights ------------------------------------------------------ */

/* linear(x, W) on `dev` with `ws` (may be NULL); returns the uploaded
 * bytes the context counted, out receives [4] floats. nn kept open when
 * keep != NULL (its pin held). */
static uint64_t run_linear(sdrt_device *dev, sdrt_weight_store *ws, const float *W, const float *x, float *out,
                           sdrt_job *job, sdrt_nn **keep) {
    sdrt_nn *nn = sdrt_nn_new(dev, NULL, NULL, job);
    if (!nn) return (uint64_t)-1;
    if (ws) sdrt_nn_add_weight_store(nn, ws);
    int64_t ws_shape[2] = {4, 64}, xs[2] = {1, 64};
    sdrt_tensor hw = ops_tensor((void *)W, SDRT_DTYPE_F32, 2, ws_shape);
    sdrt_tensor *xt = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 2, xs, x);
    sdrt_tensor *y = sdrt_nn_linear(nn, xt, sdrt_nn_weight(nn, &hw), NULL);
    const char *msg = NULL;
    CHECK(y && sdrt_nn_to_host_f32(nn, y, out) == SDRT_OK, "linear: %s",
          (sdrt_nn_status(nn, &msg), msg));
    uint64_t up = sdrt_nn_weight_bytes_uploaded(nn);
    if (keep) *keep = nn;
    else sdrt_nn_free(nn);
    return up;
}

static void ref_linear(const float *W, const float *x, float *out) {
    for (int o = 0; o < 4; o++) {
        double acc = 0;
        for (int i = 0; i < 64; i++) acc += (double)W[o * 64 + i] * x[i];
        out[o] = (float)acc;
    }
}

static int close4(const float *a, const float *b) {
    for (int i = 0; i < 4; i++)
        if (a[i] - b[i] > 1e-4f || b[i] - a[i] > 1e-4f) return 0;
    return 1;
}

static uint64_t resident_bytes(sdrt_weight_store *ws, sdrt_device *dev) {
    struct acc {
        sdrt_device *dev;
        uint64_t n;
    } a = {dev, 0};
    void fn(void *u, sdrt_device *d, uint64_t bytes, size_t n);
    sdrt_weight_store_each_device(ws, fn, &a);
    return a.n;
}
void fn(void *u, sdrt_device *d, uint64_t bytes, size_t n) {
    struct acc {
        sdrt_device *dev;
        uint64_t n;
    } *a = u;
    (void)n;
    if (d == a->dev) a->n += bytes;
}

void test_nn_weights_resident(void) {
    static float W[3][4 * 64];
    float x[64], want[4], got[4];
    ops_rand(&W[0][0], sizeof W / sizeof(float), 0.5f);
    ops_rand(x, 64, 1.0f);
    static fake_device fake;
    fake_device_init(&fake, ops_device());
    const uint64_t wb = sizeof W[0];
    sdrt_weight_budget *b = sdrt_weight_budget_new(wb * 5 / 2); /* two weights fit */
    sdrt_weight_store *st[3];
    for (int i = 0; i < 3; i++) {
        st[i] = sdrt_weight_store_new(b, NULL);
        REQUIRE(st[i] && sdrt_weight_store_add_range(st[i], W[i], sizeof W[i]) == 0, "store");
    }
    sdrt_job *job1 = (sdrt_job *)(uintptr_t)0x1000, *job2 = (sdrt_job *)(uintptr_t)0x2000;
    /* First request uploads the weight, the second (another context) none. */
    ref_linear(W[0], x, want);
    CHECK(run_linear(&fake.dev, st[0], W[0], x, got, job1, NULL) == wb && close4(got, want), "first: uploads");
    CHECK(run_linear(&fake.dev, st[0], W[0], x, got, job2, NULL) == 0 && close4(got, want), "second: resident");
    CHECK(sdrt_weight_budget_take_job(b, job1) == wb && sdrt_weight_budget_take_job(b, job2) == 0,
          "per-job upload counts");
    CHECK(sdrt_weight_budget_take_job(b, job1) == 0, "take forgets the job");
    /* Host devices never copy. */
    CHECK(run_linear(ops_device(), st[0], W[0], x, got, job1, NULL) == 0 && close4(got, want), "CPU: zero copies");
    CHECK(resident_bytes(st[0], ops_device()) == 0, "nothing resident for the CPU");
    /* LRU: W1 then W2 -> W0 (least recently used) goes. */
    run_linear(&fake.dev, st[1], W[1], x, got, NULL, NULL);
    run_linear(&fake.dev, st[2], W[2], x, got, NULL, NULL);
    CHECK(resident_bytes(st[0], &fake.dev) == 0 && resident_bytes(st[1], &fake.dev) == wb &&
              resident_bytes(st[2], &fake.dev) == wb, "W0 evicted first");
    /* Pinned copies stay: hold W1 and W2 in open contexts, then W0 cannot
     * be resident and runs from a private copy (counted as uploaded). */
    sdrt_nn *k1, *k2;
    run_linear(&fake.dev, st[1], W[1], x, got, NULL, &k1);
    run_linear(&fake.dev, st[2], W[2], x, got, NULL, &k2);
    ref_linear(W[0], x, want);
    CHECK(run_linear(&fake.dev, st[0], W[0], x, got, job1, NULL) == wb && close4(got, want), "private fallback");
    CHECK(resident_bytes(st[1], &fake.dev) == wb && resident_bytes(st[2], &fake.dev) == wb, "pinned kept");
    CHECK(sdrt_weight_budget_take_job(b, job1) == wb, "private upload counted for the job");
    sdrt_nn_free(k1);
    sdrt_nn_free(k2);
    /* Device out of memory: eviction makes room. */
    fake.limit = fake.live_bytes + wb / 2;
    CHECK(run_linear(&fake.dev, st[0], W[0], x, got, NULL, NULL) == wb && close4(got, want), "evicts on device OOM");
    CHECK(resident_bytes(st[0], &fake.dev) == wb, "W0 resident after eviction");
    /* Nothing evictable and no room: RESOURCE_EXHAUSTED, then recovery. */
    fake.limit = 1;
    sdrt_nn *nn = sdrt_nn_new(&fake.dev, NULL, NULL, NULL);
    int64_t xs[2] = {1, 64};
    CHECK(sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 2, xs, x) == NULL &&
              sdrt_nn_status(nn, NULL) == SDRT_RESOURCE_EXHAUSTED, "device OOM -> RESOURCE_EXHAUSTED");
    sdrt_nn_free(nn);
    fake.limit = 0;
    CHECK(run_linear(&fake.dev, st[0], W[0], x, got, NULL, NULL) == 0 && close4(got, want), "next request works");
    for (int i = 0; i < 3; i++) sdrt_weight_store_free(st[i]);
    sdrt_weight_budget_free(b);
    CHECK(fake.live_bytes == 0, "stores freed every copy (%zu left)", fake.live_bytes);
}

/* A reshaped view of a weight shares the copy; bytes outside a store's
 * ranges are private uploads; a parentless store without budget counts
 * through its parent. */
void test_nn_weights_views_and_ranges(void) {
    static float W[4 * 64], other[4 * 64];
    ops_rand(W, 4 * 64, 0.5f);
    ops_rand(other, 4 * 64, 0.5f);
    static fake_device fake;
    fake_device_init(&fake, ops_device());
    sdrt_weight_budget *b = sdrt_weight_budget_new(0);
    sdrt_weight_store *model = sdrt_weight_store_new(b, NULL);
    sdrt_weight_store *lora = sdrt_weight_store_new(NULL, model);
    sdrt_weight_store_add_range(model, W, sizeof W);
    sdrt_weight_store_add_range(lora, other, sizeof other);
    sdrt_job *job = (sdrt_job *)(uintptr_t)0x3000;
    sdrt_nn *nn = sdrt_nn_new(&fake.dev, NULL, NULL, job);
    sdrt_nn_add_weight_store(nn, model);
    sdrt_nn_add_weight_store(nn, lora);
    int64_t s2[2] = {4, 64}, s4[4] = {4, 64, 1, 1};
    sdrt_tensor h2 = ops_tensor(W, SDRT_DTYPE_F32, 2, s2), h4 = ops_tensor(W, SDRT_DTYPE_F32, 4, s4);
    const sdrt_tensor *a = sdrt_nn_weight(nn, &h2), *c = sdrt_nn_weight(nn, &h4);
    CHECK(a && c && a->data == c->data && c->ndim == 4 && a->ndim == 2, "views share one device copy");
    CHECK(sdrt_nn_weight(nn, &h2) == a, "lookup hits the map");
    sdrt_tensor ho = ops_tensor(other, SDRT_DTYPE_F32, 2, s2);
    const sdrt_tensor *o = sdrt_nn_weight(nn, &ho);
    CHECK(o && o->data != (void *)other, "lora store copy");
    CHECK(sdrt_nn_weight_bytes_uploaded(nn) == 2 * sizeof W, "two uploads (%llu)",
          (unsigned long long)sdrt_nn_weight_bytes_uploaded(nn));
    CHECK(sdrt_weight_budget_take_job(b, job) == 2 * sizeof W, "the lora set's upload reaches the model's count");
    float loose[8] = {0};
    int64_t s8[1] = {8};
    sdrt_tensor hl = ops_tensor(loose, SDRT_DTYPE_F32, 1, s8);
    CHECK(sdrt_nn_weight(nn, &hl) != NULL && sdrt_nn_weight_bytes_uploaded(nn) == 2 * sizeof W + sizeof loose,
          "uncovered weight: private upload");
    sdrt_nn_free(nn);
    sdrt_weight_store_free(lora);
    sdrt_weight_store_free(model);
    sdrt_weight_budget_free(b);
    CHECK(fake.live_bytes == 0, "freed (%zu left)", fake.live_bytes);
}

/* ---- offload modes ----------------------------------------------------------- */

enum { OFF_L = 5, OFF_D = 16 };

/* A chain of OFF_L linears (weights W[k], B[k]) inside graph_begin/end, then
 * W[0] once more (without bias); after each op checks what the context
 * holds: SEQUENTIAL the weights of that op only, MODEL every private upload
 * so far, NONE none (the store's copies are not the context's). */
static float *offload_chain(sdrt_device *dev, sdrt_weight_store *ws, int mode, const float (*W)[OFF_D * OFF_D],
                            const float (*B)[OFF_D], const float *x, uint64_t *uploaded, sdrt_nn **keep) {
    sdrt_nn *nn = sdrt_nn_new(dev, NULL, NULL, NULL);
    if (!nn) return NULL;
    sdrt_nn_add_weight_store(nn, ws);
    CHECK(sdrt_nn_set_offload(nn, mode) == SDRT_OK, "set_offload %d", mode);
    const uint64_t wb = sizeof W[0], bb = sizeof B[0];
    int64_t ws_shape[2] = {OFF_D, OFF_D}, bs[1] = {OFF_D}, xs[2] = {2, OFF_D};
    sdrt_nn_graph_begin(nn);
    CHECK(sdrt_nn_graph_recording(nn) == (mode != SDRT_OFFLOAD_SEQUENTIAL), "mode %d: recording %d", mode,
          sdrt_nn_graph_recording(nn));
    sdrt_tensor *y = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 2, xs, x);
    for (int k = 0; k < OFF_L; k++) {
        sdrt_tensor hw = ops_tensor((void *)W[k], SDRT_DTYPE_F32, 2, ws_shape);
        sdrt_tensor hb = ops_tensor((void *)B[k], SDRT_DTYPE_F32, 1, bs);
        sdrt_tensor *h = sdrt_nn_linear(nn, y, sdrt_nn_weight(nn, &hw), sdrt_nn_weight(nn, &hb));
        sdrt_nn_drop(nn, y);
        y = h;
        uint64_t held = sdrt_nn_weight_bytes_held(nn),
                 want = mode == SDRT_OFFLOAD_SEQUENTIAL ? wb + bb : mode == SDRT_OFFLOAD_MODEL ? (k + 1) * (wb + bb) : 0;
        CHECK(held == want, "mode %d, op %d: %llu weight bytes held, want %llu", mode, k, (unsigned long long)held,
              (unsigned long long)want);
    }
    sdrt_tensor hw0 = ops_tensor((void *)W[0], SDRT_DTYPE_F32, 2, ws_shape);
    sdrt_tensor *z = sdrt_nn_linear(nn, y, sdrt_nn_weight(nn, &hw0), NULL);
    sdrt_nn_drop(nn, y);
    const char *msg = NULL;
    CHECK(sdrt_nn_graph_end(nn) == SDRT_OK, "mode %d: %s", mode, (sdrt_nn_status(nn, &msg), msg));
    float *out = malloc(sizeof(float) * 2 * OFF_D);
    if (!z || sdrt_nn_to_host_f32(nn, z, out) != SDRT_OK) free(out), out = NULL;
    sdrt_nn_drop(nn, z);
    *uploaded = sdrt_nn_weight_bytes_uploaded(nn);
    if (keep) *keep = nn;
    else sdrt_nn_free(nn);
    return out;
}

/* The three modes give the same bits; what each uploads and holds; trim
 * frees unpinned copies, and a failed allocation trims and retries. */
void test_nn_offload_modes(void) {
    static float W[OFF_L][OFF_D * OFF_D], B[OFF_L][OFF_D];
    float x[2 * OFF_D];
    ops_rand(&W[0][0], sizeof W / sizeof(float), 0.3f);
    ops_rand(&B[0][0], sizeof B / sizeof(float), 0.3f);
    ops_rand(x, 2 * OFF_D, 1.0f);
    static fake_device fake;
    fake_device_init(&fake, ops_device());
    sdrt_weight_budget *b = sdrt_weight_budget_new(0);
    sdrt_weight_store *ws = sdrt_weight_store_new(b, NULL);
    sdrt_weight_store_add_range(ws, W, sizeof W);
    sdrt_weight_store_add_range(ws, B, sizeof B);
    const uint64_t all = sizeof W + sizeof B;
    uint64_t up[3];
    float *out[3];
    out[SDRT_OFFLOAD_NONE] = offload_chain(&fake.dev, ws, SDRT_OFFLOAD_NONE, W, B, x, &up[0], NULL);
    CHECK(resident_bytes(ws, &fake.dev) == all, "none: the store holds every weight");
    size_t live_resident = fake.live_bytes;
    sdrt_nn *held = NULL;
    out[SDRT_OFFLOAD_MODEL] = offload_chain(&fake.dev, ws, SDRT_OFFLOAD_MODEL, W, B, x, &up[1], &held);
    CHECK(fake.live_bytes >= live_resident + all, "model: private copies alive until released");
    size_t arena_before = fake.live_bytes;
    size_t arena = sdrt_nn_release_arena(held);
    CHECK(arena > 0 && arena_before - fake.live_bytes == arena, "release_arena freed %zu of %zu bytes", arena,
          arena_before - fake.live_bytes);
    size_t before = fake.live_bytes;
    sdrt_nn_release_weights(held);
    CHECK(sdrt_nn_weight_bytes_held(held) == 0 && before - fake.live_bytes == all,
          "model: release_weights frees every private copy (%zu bytes freed, want %llu)", before - fake.live_bytes,
          (unsigned long long)all);
    sdrt_nn_free(held);
    out[SDRT_OFFLOAD_SEQUENTIAL] = offload_chain(&fake.dev, ws, SDRT_OFFLOAD_SEQUENTIAL, W, B, x, &up[2], NULL);
    REQUIRE(out[0] && out[1] && out[2], "three runs");
    CHECK(memcmp(out[0], out[1], sizeof x) == 0, "model offload == resident, bit for bit");
    CHECK(memcmp(out[0], out[2], sizeof x) == 0, "sequential (eager) == resident graph, bit for bit");
    CHECK(up[0] == all && up[1] == all, "each weight uploaded once: none %llu, model %llu, want %llu",
          (unsigned long long)up[0], (unsigned long long)up[1], (unsigned long long)all);
    CHECK(up[2] == all + sizeof W[0], "sequential uploads W[0] again for its second use: %llu, want %llu",
          (unsigned long long)up[2], (unsigned long long)(all + sizeof W[0]));
    CHECK(resident_bytes(ws, &fake.dev) == all, "offloading contexts leave the store alone");
    /* The device full of unpinned resident copies: model offload's private
     * uploads trim them and succeed, with the same bits. */
    fake.limit = fake.live_bytes + sizeof W[0] / 2;
    float *again = offload_chain(&fake.dev, ws, SDRT_OFFLOAD_MODEL, W, B, x, &up[1], NULL);
    CHECK(again && memcmp(again, out[0], sizeof x) == 0, "model offload on a full device");
    CHECK(resident_bytes(ws, &fake.dev) == 0, "the unpinned copies were trimmed");
    fake.limit = 0;
    free(again);
    /* trim directly: every unpinned set on the device, bytes returned */
    free(offload_chain(&fake.dev, ws, SDRT_OFFLOAD_NONE, W, B, x, &up[0], NULL));
    CHECK(ws->iface->trim(ws, &fake.dev) == all && resident_bytes(ws, &fake.dev) == 0, "trim frees the copies");
    sdrt_nn *nn = sdrt_nn_new(&fake.dev, NULL, NULL, NULL);
    CHECK(sdrt_nn_set_offload(nn, 7) == SDRT_INVALID_ARGUMENT, "unknown mode refused");
    sdrt_nn_free(nn);
    for (int i = 0; i < 3; i++) free(out[i]);
    sdrt_weight_store_free(ws);
    sdrt_weight_budget_free(b);
    CHECK(fake.live_bytes == 0, "nothing left on the device (%zu)", fake.live_bytes);
}
