/* cpu_pool.c - a fixed pool of worker threads running one parallel-for at a
 * time. Tasks are handed out through an atomic counter so uneven tasks
 * balance themselves; the calling thread works too (thread index 0). */
#include "cpu_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct cpu_pool {
    int size;
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_cond_t idle;
    uint64_t generation; /* bumped per run; workers wait for a change */
    int running;         /* workers still inside the current run */
    int quit;
    cpu_task_fn fn;
    void *ctx;
    int64_t n_tasks;
    _Atomic int64_t next;
};

typedef struct cpu_worker_arg {
    cpu_pool *pool;
    int index;
} cpu_worker_arg;

static void cpu_pool_drain(cpu_pool *p, int thread) {
    for (;;) {
        int64_t t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= p->n_tasks) return;
        p->fn(p->ctx, t, thread);
    }
}

static void *cpu_pool_worker(void *argp) {
    cpu_worker_arg *arg = argp;
    cpu_pool *p = arg->pool;
    int index = arg->index;
    free(arg);
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->generation == seen) pthread_cond_wait(&p->wake, &p->mu);
        if (p->quit) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        cpu_pool_drain(p, index);
        pthread_mutex_lock(&p->mu);
        if (--p->running == 0) pthread_cond_signal(&p->idle);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void cpu_pool_stop(cpu_pool *p, int started) {
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < started; i++) pthread_join(p->workers[i], NULL);
}

cpu_pool *cpu_pool_new(int threads) {
    if (threads < 1) threads = 1;
    cpu_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->size = threads;
    p->workers = calloc((size_t)threads, sizeof *p->workers);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->idle, NULL);
    if (!p->workers) goto fail;
    for (int i = 1; i < threads; i++) {
        cpu_worker_arg *arg = malloc(sizeof *arg);
        if (!arg) goto fail_started;
        arg->pool = p;
        arg->index = i;
        if (pthread_create(&p->workers[i - 1], NULL, cpu_pool_worker, arg) != 0) {
            free(arg);
            goto fail_started;
        }
        continue;
    fail_started:
        cpu_pool_stop(p, i - 1);
        goto fail;
    }
    return p;
fail:
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->idle);
    free(p->workers);
    free(p);
    return NULL;
}

void cpu_pool_free(cpu_pool *p) {
    if (!p) return;
    cpu_pool_stop(p, p->size - 1);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->idle);
    free(p->workers);
    free(p);
}

int cpu_pool_size(const cpu_pool *p) { return p ? p->size : 1; }

void cpu_pool_run(cpu_pool *p, int64_t n_tasks, cpu_task_fn fn, void *ctx) {
    if (n_tasks <= 0) return;
    /* One task or one thread: no hand-off cost at all. */
    if (!p || p->size == 1 || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    p->running = p->size - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    cpu_pool_drain(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->running > 0) pthread_cond_wait(&p->idle, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
