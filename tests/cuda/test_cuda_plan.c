/* tests/cuda/test_cuda_plan - the CUDA family's host-side bookkeeping,
 * which runs without a GPU: the VRAM sub-allocator (against a fake device
 * that hands out address ranges and can run out) and the replay-key cache
 * of captured graphs. Expectations are written out by hand or checked
 * against a shadow model (a byte map of what is allocated). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_plan.h"
#include "harness.h"

/* ---- a fake device ------------------------------------------------------- */

typedef struct fake_dev {
    size_t capacity, reserved;
    uintptr_t next;
    int grows, releases;
} fake_dev;

static int fake_grow(void *ctx, size_t size, uintptr_t *base) {
    fake_dev *d = ctx;
    if (d->reserved + size > d->capacity) return -1;
    d->reserved += size;
    *base = d->next;
    d->next += size + (1u << 20); /* segments never adjoin: coalescing across them would be a bug */
    d->grows++;
    return 0;
}

static void fake_release(void *ctx, uintptr_t base, size_t size) {
    fake_dev *d = ctx;
    d->reserved -= size;
    d->releases++;
}

static void test_pool_basic(void) {
    fake_dev d = {.capacity = 1 << 30, .next = 0x100000000ull};
    cuda_pool p;
    cuda_pool_init(&p, 256, 1 << 20, fake_grow, fake_release, &d);
    uintptr_t a, b, c;
    REQUIRE(cuda_pool_alloc(&p, 1000, &a) == 0 && cuda_pool_alloc(&p, 1, &b) == 0, "alloc");
    CHECK(a % 256 == 0 && b % 256 == 0, "alignment");
    CHECK(b == a + 1024, "first fit packs: a=%#lx b=%#lx", (unsigned long)a, (unsigned long)b);
    CHECK(d.grows == 1 && p.reserved == (1u << 20) && p.in_use == 1024 + 256, "one segment, in_use %zu", p.in_use);
    /* A request above the granularity gets its own exact segment. */
    REQUIRE(cuda_pool_alloc(&p, 3u << 20, &c) == 0, "big alloc");
    CHECK(d.grows == 2 && p.reserved == (1u << 20) + (3u << 20), "reserved %zu", p.reserved);
    /* Freed ranges are reused without a new segment and coalesce. */
    cuda_pool_free(&p, a, 1000);
    cuda_pool_free(&p, b, 1);
    uintptr_t e;
    REQUIRE(cuda_pool_alloc(&p, 1280, &e) == 0, "reuse");
    CHECK(e == a && d.grows == 2, "coalesced a+b reused at %#lx", (unsigned long)e);
    cuda_pool_free(&p, e, 1280);
    cuda_pool_free(&p, c, 3u << 20);
    CHECK(p.in_use == 0, "in_use %zu after freeing all", p.in_use);
    CHECK(p.segs[0].n_free == 1 && p.segs[0].free[0].size == (1u << 20), "segment 0 fully coalesced");
    CHECK(cuda_pool_trim(&p) == (4u << 20) && d.reserved == 0 && p.n_segs == 0, "trim releases all");
    cuda_pool_destroy(&p);
}

/* Out of memory: free segments are released and the request retried once
 * with an exact-size segment; a request that cannot fit fails cleanly. */
static void test_pool_oom(void) {
    fake_dev d = {.capacity = 10u << 20, .next = 0x200000000ull};
    cuda_pool p;
    cuda_pool_init(&p, 512, 4u << 20, fake_grow, fake_release, &d);
    uintptr_t a, b, c;
    REQUIRE(cuda_pool_alloc(&p, 4u << 20, &a) == 0 && cuda_pool_alloc(&p, 4u << 20, &b) == 0, "two segments");
    cuda_pool_free(&p, a, 4u << 20);
    /* 6 MiB: neither segment has it, 8 MiB reserved of 10: trim frees a's
     * segment and the retry fits. */
    REQUIRE(cuda_pool_alloc(&p, 6u << 20, &c) == 0, "retry after trim");
    CHECK(d.releases == 1 && p.reserved == (10u << 20), "reserved %zu", p.reserved);
    uintptr_t x;
    CHECK(cuda_pool_alloc(&p, 1u << 20, &x) != 0, "full device must fail");
    CHECK(p.in_use == (10u << 20), "failed alloc changed in_use (%zu)", p.in_use);
    cuda_pool_destroy(&p);
    CHECK(d.reserved == 0, "destroy releases everything");
}

/* Random alloc/free against a shadow map: no two live ranges overlap,
 * everything stays inside reserved segments, in_use is exact. */
static void test_pool_random(void) {
    uint64_t seed = test_seed();
    srand((unsigned)seed);
    fake_dev d = {.capacity = 64u << 20, .next = 0x300000000ull};
    cuda_pool p;
    cuda_pool_init(&p, 256, 1u << 20, fake_grow, fake_release, &d);
    enum { N = 64 };
    uintptr_t addr[N] = {0};
    size_t size[N] = {0};
    size_t expect = 0;
    for (int it = 0; it < 4000; it++) {
        int i = rand() % N;
        if (size[i]) {
            cuda_pool_free(&p, addr[i], size[i]);
            expect -= cuda_pool_round(&p, size[i]);
            size[i] = 0;
            continue;
        }
        size_t s = (size_t)(rand() % 300000) + 1;
        if (cuda_pool_alloc(&p, s, &addr[i]) != 0) continue;
        size[i] = s;
        expect += cuda_pool_round(&p, s);
        for (int j = 0; j < N; j++) {
            if (j == i || !size[j]) continue;
            uintptr_t a0 = addr[i], a1 = a0 + cuda_pool_round(&p, s), b0 = addr[j],
                      b1 = b0 + cuda_pool_round(&p, size[j]);
            REQUIRE(a1 <= b0 || b1 <= a0, "overlap at iteration %d (seed %llu)", it, (unsigned long long)seed);
        }
        int inside = 0;
        for (size_t k = 0; k < p.n_segs; k++)
            inside |= addr[i] >= p.segs[k].base && addr[i] + s <= p.segs[k].base + p.segs[k].size;
        REQUIRE(inside, "range outside every segment");
        REQUIRE(p.in_use == expect, "in_use %zu, want %zu", p.in_use, expect);
    }
    cuda_pool_destroy(&p);
}

/* ---- replay cache ------------------------------------------------------- */

static int g_destroyed;
static void fake_destroy(void *ctx, void *exec) { g_destroyed++; }

typedef struct fake_graph {
    sdrt_tensor t[2];
    sdrt_op ops[2];
    sdrt_graph g;
} fake_graph;

static void fake_graph_init(fake_graph *f, uint64_t key, void *addr) {
    memset(f, 0, sizeof *f);
    for (int i = 0; i < 2; i++) {
        f->t[i] = (sdrt_tensor){.struct_size = sizeof(sdrt_tensor), .dtype = SDRT_DTYPE_F32, .ndim = 1,
                                .shape = {16}, .strides = {1}, .data = (char *)addr + 64 * i};
    }
    f->ops[0] = (sdrt_op){.struct_size = sizeof(sdrt_op), .kind = SDRT_OP_SILU, .src = {&f->t[0]}, .dst = &f->t[1]};
    f->ops[1] = (sdrt_op){.struct_size = sizeof(sdrt_op), .kind = SDRT_OP_SCALE, .src = {&f->t[1]}, .dst = &f->t[1],
                          .fparams = {2.0f}};
    f->g = (sdrt_graph){.struct_size = sizeof(sdrt_graph), .n_ops = 2, .ops = f->ops, .replay_key = key};
}

static void test_replay_keys(void) {
    cuda_replay r;
    g_destroyed = 0;
    cuda_replay_init(&r, fake_destroy, NULL);
    fake_graph a;
    fake_graph_init(&a, 0, (void *)0x1000);
    int slot;
    CHECK(cuda_replay_begin(&r, &a.g, &slot) == CUDA_REPLAY_DIRECT, "key 0 never captures");
    a.g.replay_key = 7;
    REQUIRE(cuda_replay_begin(&r, &a.g, &slot) == CUDA_REPLAY_CAPTURE, "first sight captures");
    cuda_replay_end_capture(&r, slot, (void *)0xE1);
    int s2;
    CHECK(cuda_replay_begin(&r, &a.g, &s2) == CUDA_REPLAY_LAUNCH && s2 == slot, "second sight replays");
    CHECK(r.slots[slot].exec == (void *)0xE1, "exec kept");
    /* Same key, different addresses: the key is reused for another graph. */
    fake_graph b;
    fake_graph_init(&b, 7, (void *)0x9000);
    CHECK(cuda_replay_begin(&r, &b.g, &s2) == CUDA_REPLAY_CAPTURE && s2 == slot, "changed graph recaptures");
    CHECK(g_destroyed == 1, "old exec destroyed (%d)", g_destroyed);
    cuda_replay_end_capture(&r, s2, (void *)0xE2);
    /* A changed parameter changes the fingerprint too. */
    b.ops[1].fparams[0] = 3.0f;
    CHECK(cuda_replay_begin(&r, &b.g, &s2) == CUDA_REPLAY_CAPTURE, "changed parameter recaptures");
    /* A failed capture runs that graph directly from then on. */
    cuda_replay_end_capture(&r, s2, NULL);
    CHECK(cuda_replay_begin(&r, &b.g, &s2) == CUDA_REPLAY_DIRECT, "failed key runs direct");
    cuda_replay_clear(&r);
    CHECK(g_destroyed == 2, "clear destroys what is left (%d)", g_destroyed);
}

/* LRU over CUDA_REPLAY_SLOTS keys: the least recently used is evicted. */
static void test_replay_lru(void) {
    cuda_replay r;
    g_destroyed = 0;
    cuda_replay_init(&r, fake_destroy, NULL);
    fake_graph f[CUDA_REPLAY_SLOTS + 1];
    int slot;
    for (int i = 0; i < CUDA_REPLAY_SLOTS; i++) {
        fake_graph_init(&f[i], 100 + i, (void *)(uintptr_t)(0x1000 * (i + 1)));
        REQUIRE(cuda_replay_begin(&r, &f[i].g, &slot) == CUDA_REPLAY_CAPTURE, "capture %d", i);
        cuda_replay_end_capture(&r, slot, (void *)(uintptr_t)(0xE0 + i));
    }
    /* Touch key 100, so 101 is now the oldest. */
    CHECK(cuda_replay_begin(&r, &f[0].g, &slot) == CUDA_REPLAY_LAUNCH, "replay 100");
    fake_graph_init(&f[CUDA_REPLAY_SLOTS], 999, (void *)0x99000);
    REQUIRE(cuda_replay_begin(&r, &f[CUDA_REPLAY_SLOTS].g, &slot) == CUDA_REPLAY_CAPTURE, "new key");
    CHECK(g_destroyed == 1, "one eviction");
    CHECK(cuda_replay_begin(&r, &f[1].g, &slot) == CUDA_REPLAY_CAPTURE, "101 was evicted");
    CHECK(cuda_replay_begin(&r, &f[0].g, &slot) == CUDA_REPLAY_LAUNCH, "100 kept");
    CHECK(r.captures == CUDA_REPLAY_SLOTS + 2 && r.launches == 2, "counters %llu/%llu",
          (unsigned long long)r.captures, (unsigned long long)r.launches);
    cuda_replay_clear(&r);
}

/* ---- MATMUL -> cuBLAS mapping --------------------------------------------- */

/* cublasSgemmStridedBatched as its documentation defines it (column-major,
 * op(X) = X or X^T), on host memory. */
static void emulate_sgemm(const cuda_blas_call *bc, float alpha, const float *A, const float *B, float *C) {
    for (int64_t b = 0; b < bc->batches; b++) {
        const float *Ab = A + b * bc->stride_a, *Bb = B + b * bc->stride_b;
        float *Cb = C + b * bc->stride_c;
        for (int64_t i = 0; i < bc->m; i++)
            for (int64_t j = 0; j < bc->n; j++) {
                double s = 0;
                for (int64_t l = 0; l < bc->k; l++) {
                    float x = bc->trans_a ? Ab[l + i * bc->lda] : Ab[i + l * bc->lda];
                    float y = bc->trans_b ? Bb[j + l * bc->ldb] : Bb[l + j * bc->ldb];
                    s += (double)x * y;
                }
                Cb[i + j * bc->ldc] = alpha * (float)s;
            }
    }
}

/* A tensor of `shape` whose storage order is `order` (outermost first) and
 * whose innermost stored dim is padded by `pad` elements. */
static sdrt_tensor mm_tensor(int nd, const int64_t *shape, const int *order, int64_t pad, float *data) {
    sdrt_tensor t = {.struct_size = sizeof t, .dtype = SDRT_DTYPE_F32, .ndim = nd, .data = data};
    int64_t s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        int d = order[i];
        t.shape[d] = shape[d];
        t.strides[d] = s;
        s *= shape[d] + (i == nd - 1 ? pad : 0);
    }
    return t;
}

static int64_t mm_span(const sdrt_tensor *t) {
    int64_t hi = 0;
    for (int d = 0; d < t->ndim; d++) hi += (t->shape[d] - 1) * t->strides[d];
    return hi + 1;
}

/* Random MATMUL layouts: whenever cuda_mm_plan_blas maps one onto cuBLAS,
 * the emulated call must give the row-major product computed straight from
 * the tensors' shapes and strides. */
static void test_mm_blas_mapping(void) {
    uint64_t seed = test_seed();
    srand((unsigned)seed ^ 0x5eed);
    int mapped = 0, linear_folded = 0, transposed = 0, refused = 0;
    for (int it = 0; it < 400; it++) {
        int64_t M = 1 + rand() % 9, N = 1 + rand() % 9, K = 1 + rand() % 9, B0 = 1 + rand() % 3, B1 = 1 + rand() % 2;
        int trans = rand() % 2, a_perm = rand() % 3, b_perm = rand() % 2, c_kind = rand() % 3, b2d = rand() % 3 == 0;
        int a_bcast = rand() % 4 == 0;
        static float A[4096], Bm[4096], C[4096], R[4096];
        int64_t ash[4] = {a_bcast ? 1 : B0, B1, M, K};
        int aord[3][4] = {{0, 1, 2, 3}, {0, 1, 3, 2}, {2, 0, 1, 3}}; /* plain, A^T stored, rows outermost */
        sdrt_tensor a = mm_tensor(4, ash, aord[a_perm], 0, A);
        int64_t bsh4[4] = {B0, B1, trans ? N : K, trans ? K : N}, bsh2[2] = {trans ? N : K, trans ? K : N};
        int bord4[2][4] = {{0, 1, 2, 3}, {0, 1, 3, 2}}, bord2[2][2] = {{0, 1}, {1, 0}};
        sdrt_tensor b = b2d ? mm_tensor(2, bsh2, bord2[b_perm], 0, Bm) : mm_tensor(4, bsh4, bord4[b_perm], 0, Bm);
        int64_t csh[4] = {B0, B1, M, N};
        int cord[2][4] = {{0, 1, 2, 3}, {0, 1, 3, 2}};
        sdrt_tensor c = mm_tensor(4, csh, cord[c_kind == 2], c_kind == 1 ? 3 : 0, C);
        REQUIRE(mm_span(&a) <= 4096 && mm_span(&b) <= 4096 && mm_span(&c) <= 4096, "test buffers too small");
        for (int i = 0; i < 4096; i++) A[i] = (float)(rand() % 17 - 8), Bm[i] = (float)(rand() % 13 - 6);
        sdrt_op op = {.struct_size = sizeof op, .kind = SDRT_OP_MATMUL, .src = {&a, &b}, .dst = &c,
                      .iparams = {trans}};
        cuda_mm_plan p;
        REQUIRE(cuda_mm_plan_make(&op, &p) == SDRT_OK, "plan refused a valid matmul (case %d)", it);
        cuda_blas_call bc;
        if (!cuda_mm_plan_blas(&p, &bc)) {
            refused++;
            continue;
        }
        mapped++;
        linear_folded += (b2d || B0 * B1 == 1) && bc.batches == 1 && bc.n == M * B0 * B1 && B0 * B1 > 1;
        transposed += bc.trans_a || bc.trans_b;
        memset(C, 0, sizeof C);
        emulate_sgemm(&bc, 0.5f, Bm, A, C);
        /* The reference, straight from the tensors. */
        for (int64_t i0 = 0; i0 < B0; i0++)
            for (int64_t i1 = 0; i1 < B1; i1++)
                for (int64_t m = 0; m < M; m++)
                    for (int64_t n = 0; n < N; n++) {
                        double s = 0;
                        for (int64_t k = 0; k < K; k++) {
                            float av = A[(a_bcast ? 0 : i0) * a.strides[0] + i1 * a.strides[1] + m * a.strides[2] +
                                         k * a.strides[3]];
                            int64_t bo = b2d ? 0 : i0 * b.strides[0] + i1 * b.strides[1];
                            int r = b.ndim - 2;
                            float bv = trans ? Bm[bo + n * b.strides[r] + k * b.strides[r + 1]]
                                             : Bm[bo + k * b.strides[r] + n * b.strides[r + 1]];
                            s += (double)av * bv;
                        }
                        R[0] = 0.5f * (float)s;
                        float got = C[i0 * c.strides[0] + i1 * c.strides[1] + m * c.strides[2] + n * c.strides[3]];
                        REQUIRE(got == R[0], "case %d (seed %llu): C[%lld,%lld,%lld,%lld] = %g, want %g", it,
                                (unsigned long long)seed, (long long)i0, (long long)i1, (long long)m, (long long)n,
                                got, R[0]);
                    }
    }
    printf("# %d layouts on cuBLAS (%d folded into M, %d transposed), %d left to the kernels\n", mapped,
           linear_folded, transposed, refused);
    CHECK(mapped > 100 && linear_folded > 5 && transposed > 20 && refused > 20, "coverage: %d/%d/%d/%d", mapped,
          linear_folded, transposed, refused);
}

/* Shape errors are refused with INVALID_ARGUMENT, as on the CPU. */
static void test_mm_plan_errors(void) {
    float d[64];
    int o4[4] = {0, 1, 2, 3}, o2[2] = {0, 1};
    sdrt_tensor a = mm_tensor(4, (const int64_t[]){2, 3, 4, 5}, o4, 0, d);
    sdrt_tensor b = mm_tensor(2, (const int64_t[]){5, 6}, o2, 0, d);
    sdrt_tensor c = mm_tensor(4, (const int64_t[]){2, 3, 4, 6}, o4, 0, d);
    sdrt_op op = {.struct_size = sizeof op, .kind = SDRT_OP_MATMUL, .src = {&a, &b}, .dst = &c};
    cuda_mm_plan p;
    CHECK(cuda_mm_plan_make(&op, &p) == SDRT_OK && p.batches == 6 && p.m == 4 && p.n == 6 && p.k == 5, "valid");
    op.iparams[0] = 1; /* B would be [6, 5]^T: K mismatch */
    CHECK(cuda_mm_plan_make(&op, &p) == SDRT_INVALID_ARGUMENT, "K mismatch with transposed B");
    op.iparams[0] = 0;
    sdrt_tensor b3 = mm_tensor(3, (const int64_t[]){4, 5, 6}, (int[]){0, 1, 2}, 0, d);
    op.src[1] = &b3;
    CHECK(cuda_mm_plan_make(&op, &p) == SDRT_INVALID_ARGUMENT, "batch dim 4 vs 3 does not broadcast");
}

const test_entry TESTS[] = {
    {"mm_blas_mapping", test_mm_blas_mapping},
    {"mm_plan_errors", test_mm_plan_errors},
    {"pool_basic", test_pool_basic},
    {"pool_oom", test_pool_oom},
    {"pool_random", test_pool_random},
    {"replay_keys", test_replay_keys},
    {"replay_lru", test_replay_lru},
    {0},
};
