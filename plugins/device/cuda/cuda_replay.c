/* cuda_replay.c - which captured CUDA graph a stream replays (cuda_plan.h). */
#include "cuda_plan.h"

#include <string.h>

void cuda_replay_init(cuda_replay *r, cuda_replay_destroy_fn destroy, void *ctx) {
    memset(r, 0, sizeof *r);
    r->destroy = destroy;
    r->ctx = ctx;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t fnv_tensor(uint64_t h, const sdrt_tensor *t) {
    if (!t) return fnv(h, "-", 1);
    h = fnv(h, &t->dtype, sizeof t->dtype);
    h = fnv(h, &t->ndim, sizeof t->ndim);
    int nd = t->ndim > 0 && t->ndim <= SDRT_MAX_DIMS ? t->ndim : 0;
    h = fnv(h, t->shape, (size_t)nd * sizeof t->shape[0]);
    h = fnv(h, t->strides, (size_t)nd * sizeof t->strides[0]);
    return fnv(h, &t->data, sizeof t->data);
}

uint64_t cuda_replay_fingerprint(const sdrt_graph *g) {
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv(h, &g->n_ops, sizeof g->n_ops);
    for (size_t i = 0; i < g->n_ops; i++) {
        const sdrt_op *op = &g->ops[i];
        h = fnv(h, &op->kind, sizeof op->kind);
        for (int s = 0; s < SDRT_OP_MAX_SRC; s++) h = fnv_tensor(h, op->src[s]);
        h = fnv_tensor(h, op->dst);
        h = fnv(h, op->iparams, sizeof op->iparams);
        h = fnv(h, op->fparams, sizeof op->fparams);
    }
    return h;
}

static void replay_empty(cuda_replay *r, cuda_replay_slot *s) {
    if (s->exec && r->destroy) r->destroy(r->ctx, s->exec);
    memset(s, 0, sizeof *s);
}

cuda_replay_action cuda_replay_begin(cuda_replay *r, const sdrt_graph *g, int *slot) {
    *slot = -1;
    if (g->replay_key == 0 || g->n_ops == 0) {
        r->direct++;
        return CUDA_REPLAY_DIRECT;
    }
    uint64_t fp = cuda_replay_fingerprint(g);
    r->tick++;
    int victim = 0;
    for (int i = 0; i < CUDA_REPLAY_SLOTS; i++) {
        cuda_replay_slot *s = &r->slots[i];
        if (s->key == g->replay_key) {
            if (s->fingerprint == fp && s->failed) {
                s->last_use = r->tick;
                r->direct++;
                return CUDA_REPLAY_DIRECT;
            }
            if (s->fingerprint == fp && s->exec) {
                s->last_use = r->tick;
                *slot = i;
                r->launches++;
                return CUDA_REPLAY_LAUNCH;
            }
            victim = i; /* the key now names another graph: capture again here */
            goto capture;
        }
        if (r->slots[i].last_use < r->slots[victim].last_use) victim = i;
    }
capture:
    replay_empty(r, &r->slots[victim]);
    r->slots[victim].key = g->replay_key;
    r->slots[victim].fingerprint = fp;
    r->slots[victim].last_use = r->tick;
    *slot = victim;
    r->captures++;
    return CUDA_REPLAY_CAPTURE;
}

void cuda_replay_end_capture(cuda_replay *r, int slot, void *exec) {
    if (slot < 0 || slot >= CUDA_REPLAY_SLOTS) return;
    r->slots[slot].exec = exec;
    r->slots[slot].failed = exec == NULL;
}

void cuda_replay_clear(cuda_replay *r) {
    for (int i = 0; i < CUDA_REPLAY_SLOTS; i++) replay_empty(r, &r->slots[i]);
}
