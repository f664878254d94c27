/* plugins/scheduler/brownian.c - the Brownian tree behind
 * DPMSolverSDEScheduler's noise, a port of torchsde.BrownianInterval as
 * diffusers builds it (entropy = noise_sampler_seed, tol 1e-6, pool_size 24,
 * halfway_tree True, no Levy area), so a seed gives diffusers' noise.
 *
 * torchsde's tree: the root covers [round(t0), round(t1)] (round = Python's
 * round(x, 6)) and holds W = randn(seed A) * sqrt(t1 - t0). Every node splits
 * at round((start + end) / 2); a child's increment is the Brownian bridge
 * sample  left = W * ld / h + sqrt(ld * rd / h) * randn(seed of the parent),
 * right = W - left. The seeds come from numpy's SeedSequence(entropy,
 * spawn_key=(key, depth), pool_size=24), key = the path bits from the root.
 * A query [ta, tb] is the sum, left to right, of the nodes that tile it.
 *
 * Because every node's value is a pure function of its path (torchsde's
 * halfway tree makes it so), sdrt keeps no node objects: a node is its
 * (depth, key), its interval is recomputed from the key bits, and an LRU of
 * node values spares the levels that consecutive queries share.
 *
 * Float formats follow torchsde: interval arithmetic in double, tensors in
 * float32 with each Python scalar rounded to float32 by the tensor op.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

/* torchsde splits until a midpoint hits the query; with tol 1e-6 a range of
 * 1e6 needs 41 levels, so 62 (the bits of a key) is never reached. */
#define BT_MAX_DEPTH 62
#define BT_POOL 24
/* cached nodes: both children along two query paths of ~25 levels */
#define BT_CACHE 112

/* ---- numpy.random.SeedSequence ---------------------------------------- */

#define SS_INIT_A 0x43b0d7e5u
#define SS_MULT_A 0x931e8875u
#define SS_INIT_B 0x8b51f9ddu
#define SS_MULT_B 0x58f38dedu
#define SS_MIX_L 0xca01f9ddu
#define SS_MIX_R 0x4973f715u

static uint32_t ss_hashmix(uint32_t v, uint32_t *hc) {
    v ^= *hc;
    *hc *= SS_MULT_A;
    v *= *hc;
    return v ^ (v >> 16);
}

static uint32_t ss_mix(uint32_t x, uint32_t y) {
    uint32_t r = SS_MIX_L * x - SS_MIX_R * y;
    return r ^ (r >> 16);
}

/* numpy's _int_to_uint32_array: little-endian 32-bit words, [0] for 0. */
static uint32_t ss_words(uint64_t v, uint32_t *out) {
    uint32_t n = 0;
    do {
        out[n++] = (uint32_t)v;
        v >>= 32;
    } while (v);
    return n;
}

/* SeedSequence.mix_entropy into a pool of BT_POOL words. */
static void ss_pool(const uint32_t *ent, uint32_t n_ent, uint32_t *pool) {
    uint32_t hc = SS_INIT_A;
    for (uint32_t i = 0; i < BT_POOL; i++) pool[i] = ss_hashmix(i < n_ent ? ent[i] : 0u, &hc);
    for (uint32_t src = 0; src < BT_POOL; src++)
        for (uint32_t dst = 0; dst < BT_POOL; dst++)
            if (src != dst) pool[dst] = ss_mix(pool[dst], ss_hashmix(pool[src], &hc));
    for (uint32_t src = BT_POOL; src < n_ent; src++)
        for (uint32_t dst = 0; dst < BT_POOL; dst++) pool[dst] = ss_mix(pool[dst], ss_hashmix(ent[src], &hc));
}

/* SeedSequence.generate_state(n) (uint32 words). */
static void ss_generate(const uint32_t *pool, uint32_t n, uint32_t *out) {
    uint32_t hc = SS_INIT_B;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t v = pool[i % BT_POOL] ^ hc;
        hc *= SS_MULT_B;
        v *= hc;
        out[i] = v ^ (v >> 16);
    }
}

/* The first word of SeedSequence(entropy, spawn_key=(key, depth),
 * pool_size=24).generate_state(...): a node's W seed. With a spawn key,
 * numpy pads the run entropy with zeros to the pool size first. */
static uint32_t ss_node_seed(uint64_t entropy, uint64_t key, uint32_t depth) {
    uint32_t ent[BT_POOL + 6] = {0}, pool[BT_POOL], out;
    uint32_t n = ss_words(entropy, ent);
    if (n < BT_POOL) n = BT_POOL;
    n += ss_words(key, ent + n);
    n += ss_words(depth, ent + n);
    ss_pool(ent, n, pool);
    ss_generate(pool, 1, &out);
    return out;
}

/* ---- the tree -------------------------------------------------------- */

/* A cached node value: W of the node (depth, key). */
typedef struct bt_entry {
    uint64_t key;
    uint32_t depth;
    uint64_t used; /* LRU stamp; 0 = empty */
    float *w;
} bt_entry;

struct sched_brownian {
    uint64_t entropy;
    double start, end; /* rounded */
    size_t n;
    float *root_w;
    /* consecutive queries share an end point, so the nodes along the last
     * few query paths are what the next query needs (torchsde keeps an LRU
     * of 45 nodes for the same reason) */
    bt_entry cache[BT_CACHE];
    uint64_t clock;
    float *noise; /* scratch randn */
};

/* Python's round(x, 6): correctly rounded to 6 decimals, ties to even on the
 * exact binary value, as glibc's printf also rounds. */
static double bt_round(double x) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.6f", x);
    return strtod(buf, NULL);
}

/* torch.Generator().manual_seed(seed); torch.randn(n) */
static void bt_randn(uint32_t seed, float *out, size_t n) {
    sdrt_rng g;
    sdrt_rng_seed(&g, seed);
    sdrt_rng_randn(&g, out, n);
}

sdrt_status sched_brownian_create(uint64_t entropy, double t0, double t1, size_t n, sched_brownian **out) {
    *out = NULL;
    if (!(t0 <= t1) || n == 0) return SDRT_INVALID_ARGUMENT;
    sched_brownian *b = calloc(1, sizeof *b);
    float *w = b ? malloc(n * sizeof *w) : NULL;
    float *noise = w ? malloc(n * sizeof *noise) : NULL;
    if (!noise) {
        free(w);
        free(b);
        return SDRT_RESOURCE_EXHAUSTED;
    }
    b->entropy = entropy;
    b->start = bt_round(t0);
    b->end = bt_round(t1);
    b->n = n;
    b->noise = noise;
    /* SeedSequence(entropy, pool_size=24).generate_state(3)[0]; the scale
     * uses the unrounded ends, as torchsde does. */
    uint32_t ent[2], pool[BT_POOL], seed;
    ss_pool(ent, ss_words(entropy, ent), pool);
    ss_generate(pool, 1, &seed);
    bt_randn(seed, w, n);
    float scale = (float)sqrt(t1 - t0);
    for (size_t k = 0; k < n; k++) w[k] = w[k] * scale;
    b->root_w = w;
    *out = b;
    return SDRT_OK;
}

void sched_brownian_destroy(sched_brownian *b) {
    if (!b) return;
    for (uint32_t i = 0; i < BT_CACHE; i++) free(b->cache[i].w);
    free(b->root_w);
    free(b->noise);
    free(b);
}

/* A node: its interval, path key (one bit per level, 1 = right) and depth. */
typedef struct bt_node {
    double start, end;
    uint64_t key;
    uint32_t depth;
} bt_node;

static double bt_mid(const bt_node *nd) { return bt_round(0.5 * (nd->end + nd->start)); }

static bt_node bt_child(const bt_node *nd, int right) {
    double mid = bt_mid(nd);
    bt_node c = {right ? mid : nd->start, right ? nd->end : mid, 2 * nd->key + (uint64_t)right, nd->depth + 1};
    return c;
}

/* The children's W from their parent's W (torchsde's
 * _increment_and_space_time_levy_area without H); both come from the same
 * randn, so one draw serves both. Either output may be NULL. */
static void bt_children_w(sched_brownian *b, const bt_node *parent, const float *w, float *left, float *right) {
    size_t n = b->n;
    double mid = bt_mid(parent);
    double ld = mid - parent->start, rd = parent->end - mid;
    double h_rec = 1.0 / (parent->end - parent->start);
    float f_ld = (float)ld, f_h = (float)h_rec, f_sd = (float)sqrt(ld * rd * h_rec);
    bt_randn(ss_node_seed(b->entropy, parent->key, parent->depth), b->noise, n);
    for (size_t k = 0; k < n; k++) {
        float mean = w[k] * f_ld * f_h;
        float l = mean + f_sd * b->noise[k];
        if (left) left[k] = l;
        if (right) right[k] = w[k] - l;
    }
}

/* The cached entry of node (depth, key), touched; NULL when absent. */
static bt_entry *bt_find(sched_brownian *b, uint32_t depth, uint64_t key) {
    for (uint32_t i = 0; i < BT_CACHE; i++) {
        bt_entry *e = &b->cache[i];
        if (e->used && e->depth == depth && e->key == key) {
            e->used = ++b->clock;
            return e;
        }
    }
    return NULL;
}

/* An empty or the least recently used entry, with its buffer. The entry
 * just touched (a parent being extended) is never the one returned. */
static bt_entry *bt_slot(sched_brownian *b) {
    bt_entry *lru = &b->cache[0];
    for (uint32_t i = 0; i < BT_CACHE && lru->used; i++)
        if (b->cache[i].used < lru->used) lru = &b->cache[i];
    if (!lru->w) lru->w = malloc(b->n * sizeof(float));
    return lru->w ? lru : NULL;
}

/* W of nd: from its deepest cached ancestor (the root at worst) down,
 * caching each level. Valid until the next call. NULL: out of memory. */
static const float *bt_node_w(sched_brownian *b, const bt_node *nd) {
    uint32_t d = nd->depth, j = d;
    const float *w = b->root_w;
    for (; j > 0; j--) {
        bt_entry *e = bt_find(b, j, nd->key >> (d - j));
        if (e) {
            w = e->w;
            break;
        }
    }
    bt_node cur = {b->start, b->end, 0, 0};
    for (uint32_t k = 1; k <= j; k++) cur = bt_child(&cur, (int)((nd->key >> (d - k)) & 1u));
    for (uint32_t k = j + 1; k <= d; k++) {
        int right = (int)((nd->key >> (d - k)) & 1u);
        bt_node child = bt_child(&cur, right), sib = bt_child(&cur, !right);
        bt_entry *e = bt_slot(b), *se = NULL;
        if (!e) return NULL;
        e->used = ++b->clock; /* keeps bt_slot from handing it out again */
        /* the sibling is likely a tile of the same query */
        if (!bt_find(b, sib.depth, sib.key) && (se = bt_slot(b)) != NULL) {
            se->key = sib.key;
            se->depth = sib.depth;
            se->used = ++b->clock;
        }
        float *sw = se ? se->w : NULL;
        bt_children_w(b, &cur, w, right ? sw : e->w, right ? e->w : sw);
        e->key = child.key;
        e->depth = child.depth;
        e->used = ++b->clock;
        cur = child;
        w = e->w;
    }
    return w;
}

/* Adds W of nd to out (or sets it when *first); out = out + W as torch does. */
static sdrt_status bt_emit(sched_brownian *b, const bt_node *nd, float *out, int *first) {
    const float *w = bt_node_w(b, nd);
    if (!w) return SDRT_RESOURCE_EXHAUSTED;
    if (*first) memcpy(out, w, b->n * sizeof *out);
    else
        for (size_t k = 0; k < b->n; k++) out[k] = out[k] + w[k];
    *first = 0;
    return SDRT_OK;
}

/* torchsde's _loc_inner: the nodes tiling [ta, tb] inside nd, left first. */
static sdrt_status bt_cover(sched_brownian *b, const bt_node *nd, double ta, double tb, float *out, int *first) {
    if (ta == nd->start && tb == nd->end) return bt_emit(b, nd, out, first);
    if (nd->depth >= BT_MAX_DEPTH) return SDRT_INTERNAL;
    double mid = bt_mid(nd);
    bt_node left = bt_child(nd, 0), right = bt_child(nd, 1);
    if (tb <= mid) return bt_cover(b, &left, ta, tb, out, first);
    if (ta >= mid) return bt_cover(b, &right, ta, tb, out, first);
    sdrt_status st = bt_cover(b, &left, ta, mid, out, first);
    return st ? st : bt_cover(b, &right, mid, tb, out, first);
}

sdrt_status sched_brownian_increment(sched_brownian *b, double ta, double tb, float *out) {
    if (!(ta <= tb)) return SDRT_INVALID_ARGUMENT;
    /* torchsde clamps to the tree's range (with a warning) before rounding */
    ta = ta < b->start ? b->start : (ta > b->end ? b->end : ta);
    tb = tb < b->start ? b->start : (tb > b->end ? b->end : tb);
    ta = bt_round(ta);
    tb = bt_round(tb);
    /* torchsde returns zeros for ta == tb; a query that only becomes empty
     * by rounding (points under 1e-6 apart) has no tiling there either */
    if (ta == tb) {
        memset(out, 0, b->n * sizeof *out);
        return SDRT_OK;
    }
    bt_node root = {b->start, b->end, 0, 0};
    int first = 1;
    return bt_cover(b, &root, ta, tb, out, &first);
}
