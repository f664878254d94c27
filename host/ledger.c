/* host/ledger.c - the request ledger: every request line the serving process
 * has taken from its input and not yet answered on stdout, kept in memory
 * shared with the supervising parent (supervisor.c) together with the input
 * not yet handled and the output not yet written. When the serving process
 * dies (a plugin crashed), the parent finishes the write that was under way,
 * answers every request still in the ledger, and starts a new serving
 * process, which goes on with the input where the old one stopped. So each
 * request gets exactly one final response, crash or not.
 *
 * Consistency: the ledger lock (a spin lock in the shared page, owner = the
 * thread id) covers each step that changes what the parent would read: a
 * line taken (entry registered and input start moved in one step), the input
 * compacted, bytes written, entries released. The crash handler takes the
 * lock before the process exits (waiting a bounded time), so the parent finds
 * no half-done step. The serving process is the only one using the ledger
 * while it lives; the parent reads it only after the child is gone. */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifndef _WIN32
#include <dlfcn.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#endif

#include "host.h"
#include "ledger.h"

static ledger_shm *g_ledger;
static int *g_free;          /* this process's stack of free entry indices */
static int g_n_free;

/* The thread's running job, for the crash handler. */
static _Thread_local int t_slot = -1;
static _Thread_local const char *t_plugin;

ledger_shm *ledger_get(void) { return g_ledger; }

static size_t round_page(size_t n) { return (n + 4095) & ~(size_t)4095; }

/* The thread's id, asked of the kernel once per thread (the lock is taken
 * several times per request). Async-signal-safe after the first call; the
 * crash handler's thread has normally taken the lock before. */
static _Thread_local int t_tid;

static int self_tid(void) {
    if (!t_tid) {
#ifdef SYS_gettid
        t_tid = (int)syscall(SYS_gettid);
#else
        t_tid = 1;
#endif
    }
    return t_tid;
}

int ledger_create(size_t max_line_bytes, int queue_limit, int workers) {
    size_t in_cap = max_line_bytes + 2 * LEDGER_READ_BYTES + 1;
    int n_entries = queue_limit + 4 * workers + LEDGER_OUT_SLOTS + 64;
    size_t head = round_page(sizeof(ledger_shm));
    size_t in_off = head, out_off = in_off + round_page(in_cap);
    size_t slots_off = out_off + round_page(LEDGER_OUT_BYTES);
    size_t entries_off = slots_off + round_page(sizeof(int) * LEDGER_OUT_SLOTS);
    size_t total = entries_off + round_page(sizeof(ledger_entry) * (size_t)n_entries);
#ifdef _WIN32
    /* No fork: nothing to share, the ledger only stages the writer's output. */
    void *mem = calloc(1, total);
    if (!mem) return -1;
#else
    /* Shared with the supervisor; pages are touched only when used (the
     * input area is as large as the longest line allowed). */
    void *mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) return -1;
#endif
    ledger_shm *L = mem;
    L->total_bytes = total;
    L->in_cap = in_cap;
    L->in_off = in_off;
    L->out_off = out_off;
    L->slots_off = slots_off;
    L->entries_off = entries_off;
    L->n_entries = n_entries;
    L->crash_slot = -1;
    g_ledger = L;
    return 0;
}

char *ledger_in_buf(ledger_shm *L) { return (char *)L + L->in_off; }
char *ledger_out_buf(ledger_shm *L) { return (char *)L + L->out_off; }
int *ledger_out_slots(ledger_shm *L) { return (int *)((char *)L + L->slots_off); }
ledger_entry *ledger_entries(ledger_shm *L) { return (ledger_entry *)((char *)L + L->entries_off); }

void ledger_attach_child(void) {
    ledger_shm *L = g_ledger;
    if (!L) return;
    atomic_store(&L->lock, 0);
    L->crash_sig = 0;
    L->crash_slot = -1;
    L->crash_plugin[0] = L->crash_type[0] = '\0';
    atomic_store(&L->ready, 0);
    atomic_store(&L->clean_exit, 0);
    free(g_free);
    g_free = malloc(sizeof(int) * (size_t)L->n_entries);
    g_n_free = 0;
    ledger_entry *e = ledger_entries(L);
    /* Only the entries ever used: reading the others would map their pages. */
    for (int i = L->n_used - 1; i >= 0; i--)
        if (atomic_load(&e[i].state) == LE_FREE) g_free[g_n_free++] = i;
}

void ledger_lock(void) {
    ledger_shm *L = g_ledger;
    if (!L) return;
    int me = self_tid(), zero = 0;
    while (!atomic_compare_exchange_weak(&L->lock, &zero, me)) {
        zero = 0;
        sched_yield();
    }
}

void ledger_unlock(void) {
    if (g_ledger) atomic_store(&g_ledger->lock, 0);
}

#ifndef _WIN32
/* Only async-signal-safe calls: waits up to ~0.5 s for a step in progress on
 * another thread, then keeps the lock so that nothing changes until exit. */
static void lock_for_crash(void) {
    ledger_shm *L = g_ledger;
    int me = self_tid();
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int cur = 0;
        if (atomic_compare_exchange_strong(&L->lock, &cur, me) || cur == me) return;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) * 1e-9 > 0.5) return;
    }
}

#endif

static void copy_text(char *dst, size_t cap, const char *src) {
    size_t i = 0;
    if (src)
        for (; src[i] && i + 1 < cap; i++) dst[i] = src[i];
    dst[i] = '\0';
}

#ifndef _WIN32
static void on_crash(int sig) {
    ledger_shm *L = g_ledger;
    if (L) {
        L->crash_slot = t_slot;
        copy_text(L->crash_plugin, sizeof L->crash_plugin, t_plugin);
        if (t_slot >= 0) copy_text(L->crash_type, sizeof L->crash_type, ledger_entries(L)[t_slot].type);
        L->crash_sig = sig;
        lock_for_crash();
    }
    /* An exit status above 128 with crash_sig set reads as this crash, also
     * where a sanitizer would have turned the signal into an exit. */
    _exit(128 + sig);
}

/* Sanitizer builds: a report (UBSan's halt_on_error, ASan) ends the process
 * with an exit status, not a signal; the runtime calls this first. */
extern void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

static void on_sanitizer_death(void) {
    ledger_shm *L = g_ledger;
    if (!L || L->crash_sig) return;
    L->crash_slot = t_slot;
    copy_text(L->crash_plugin, sizeof L->crash_plugin, t_plugin);
    if (t_slot >= 0) copy_text(L->crash_type, sizeof L->crash_type, ledger_entries(L)[t_slot].type);
    L->crash_sig = -1;
    lock_for_crash();
}

/* Each sanitizer runtime loaded as a shared object (GCC's libasan and
 * libubsan are two, each with its own death callback) gets the callback. */
static int set_death_callback_in(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size;
    (void)arg;
    if (!info->dlpi_name || !strstr(info->dlpi_name, "san")) return 0;
    void *h = dlopen(info->dlpi_name, RTLD_NOLOAD | RTLD_LAZY);
    if (!h) return 0;
    void *sym = dlsym(h, "__sanitizer_set_death_callback");
    if (sym) {
        void (*set)(void (*)(void));
        memcpy(&set, &sym, sizeof set);
        set(on_sanitizer_death);
    }
    dlclose(h);
    return 0;
}

void ledger_catch_crashes(void) {
    static const int SIGS[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    struct sigaction sa = {0};
    sa.sa_handler = on_crash;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof SIGS / sizeof SIGS[0]; i++) sigaction(SIGS[i], &sa, NULL);
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(on_sanitizer_death); /* linked in */
    dl_iterate_phdr(set_death_callback_in, NULL);
}
#else
void ledger_catch_crashes(void) {}
#endif

void ledger_set_ready(void) {
    if (g_ledger) atomic_store(&g_ledger->ready, 1);
}

void ledger_set_clean_exit(void) {
    if (g_ledger) atomic_store(&g_ledger->clean_exit, 1);
}

int ledger_commit(const proto_request *req, size_t line_end, int answered) {
    ledger_shm *L = g_ledger;
    if (!L) return -1;
    int slot = -1;
    ledger_lock();
    if (answered && (g_n_free > 0 || L->n_used < L->n_entries)) {
        slot = g_n_free > 0 ? g_free[--g_n_free] : L->n_used++;
        ledger_entry *e = &ledger_entries(L)[slot];
        e->proto = (unsigned char)req->proto;
        e->id_kind = LE_ID_NULL;
        e->id[0] = '\0';
        if (req->proto == PROTO_JSONRPC && req->rpc_id && !cJSON_IsNull(req->rpc_id)) {
            if (cJSON_IsString(req->rpc_id)) {
                e->id_kind = LE_ID_STRING;
                copy_text(e->id, sizeof e->id, req->rpc_id->valuestring);
            } else if (req->request_id) {
                e->id_kind = LE_ID_RAW; /* a number, as id_text wrote it */
                copy_text(e->id, sizeof e->id, req->request_id);
            }
        } else if (req->proto == PROTO_ENVELOPE && req->request_id) {
            e->id_kind = LE_ID_STRING;
            copy_text(e->id, sizeof e->id, req->request_id);
        }
        copy_text(e->type, sizeof e->type, req->type);
        e->has_plugin = 0;
        atomic_store(&e->state, LE_LIVE);
    }
    if (line_end != LEDGER_NO_LINE && line_end > L->in_start) L->in_start = line_end;
    if (answered & LEDGER_SKIP_REST) L->in_skipping = 1;
    ledger_unlock();
    return slot;
}

void ledger_release_locked(int slot) {
    ledger_shm *L = g_ledger;
    if (!L || slot < 0 || slot >= L->n_entries) return;
    ledger_entry *e = &ledger_entries(L)[slot];
    if (atomic_exchange(&e->state, LE_FREE) == LE_FREE) return;
    if (g_free) g_free[g_n_free++] = slot;
}

void ledger_enter(int slot, const char *plugin_id) {
    t_slot = slot;
    t_plugin = plugin_id;
    ledger_shm *L = g_ledger;
    if (L && slot >= 0) {
        ledger_entry *e = &ledger_entries(L)[slot];
        copy_text(e->plugin, sizeof e->plugin, plugin_id);
        e->has_plugin = 1;
    }
}

void ledger_leave(void) {
    t_slot = -1;
    t_plugin = NULL;
}
