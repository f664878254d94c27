/* host/ledger.h - the request ledger shared between the serving process and
 * its supervisor (ledger.c, supervisor.c). Internal to the host. */
#ifndef SDRT_HOST_LEDGER_H
#define SDRT_HOST_LEDGER_H

#include <stdatomic.h>
#include <stddef.h>

#include "host.h"

#define LEDGER_READ_BYTES 65536           /* one read of the input */
#define LEDGER_OUT_BYTES (1u << 20)       /* output staged for one write */
#define LEDGER_OUT_SLOTS 16384            /* final answers staged at once */
#define LEDGER_ID_BYTES (PROTO_ID_MAX_CHARS * 4 + 8)
#define LEDGER_NO_LINE ((size_t)-1)
#define LEDGER_SKIP_REST 2                /* ledger_commit: skip the rest of the line */

enum { LE_FREE = 0, LE_LIVE = 1 };
enum { LE_ID_NULL = 0, LE_ID_STRING = 1, LE_ID_RAW = 2 };

/* What is written per request comes first (state, type, the start of the
 * id: two cache lines for a short id); `plugin` only when a worker runs it. */
typedef struct ledger_entry {
    atomic_int state;
    unsigned char proto;      /* job_proto */
    unsigned char id_kind;    /* LE_ID_*: how to write `id` back */
    unsigned char has_plugin; /* `plugin` is set */
    char type[57];
    char id[LEDGER_ID_BYTES]; /* request_id, or the JSON-RPC id (0xFF = NUL) */
    char plugin[96];          /* the plugin running it */
} ledger_entry;

typedef struct ledger_shm {
    atomic_int lock;          /* 0, or the owning thread's id */
    atomic_int ready;         /* the serving process finished start-up */
    atomic_int clean_exit;    /* its stdio loop finished: an exit, not a crash */
    volatile int crash_sig;   /* set by the crash handler; -1: a sanitizer's report */
    int crash_slot;           /* the entry the crashing thread ran, or -1 */
    char crash_plugin[96];
    char crash_type[64];
    size_t total_bytes;
    /* input: bytes [in_start, in_len) of the input area are read and not yet
     * handled (a partial line included); in_skipping: the rest of an
     * over-long line is being skipped. */
    size_t in_cap, in_start, in_len;
    int in_skipping;
    /* output: bytes [out_done, out_len) of the output area are staged and
     * not yet written; the final answers among them are out_slots[0..n). */
    size_t out_len, out_done;
    int out_nslots;
    int out_line_cut;         /* a line longer than the area is half written */
    size_t in_off, out_off, slots_off, entries_off;
    int n_entries;
    int n_used;               /* entries [0, n_used) were ever used; the rest are
                                 free and never touched (no pages) */
} ledger_shm;

/* Creates the shared ledger (serve mode, before the first fork). 0 or -1. */
int ledger_create(size_t max_line_bytes, int queue_limit, int workers);
/* The ledger, or NULL outside serve mode (then every call below is a no-op). */
ledger_shm *ledger_get(void);
char *ledger_in_buf(ledger_shm *L);
char *ledger_out_buf(ledger_shm *L);
int *ledger_out_slots(ledger_shm *L);
ledger_entry *ledger_entries(ledger_shm *L);
/* In a new serving process: resets the lock and crash record, rebuilds the
 * free list from the entries left free. */
void ledger_attach_child(void);
/* Routes SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT to the crash handler. */
void ledger_catch_crashes(void);
void ledger_set_ready(void);
/* The stdio loop finished: the exit that follows is not a crash. */
void ledger_set_clean_exit(void);
void ledger_lock(void);
void ledger_unlock(void);
/* Takes the line ending at input offset `line_end` (LEDGER_NO_LINE: not an
 * input line) and, when `answered`, registers the request; one step under
 * the lock; `answered | LEDGER_SKIP_REST` also starts skipping the rest of
 * an over-long line. Returns the entry index or -1 (none, or ledger full). */
int ledger_commit(const proto_request *req, size_t line_end, int answered);
/* Frees an entry once its answer is written. Caller holds the lock. */
void ledger_release_locked(int slot);
/* The calling worker runs entry `slot` in plugin `plugin_id` (static
 * storage of the plugin's descriptor) until ledger_leave. */
void ledger_enter(int slot, const char *plugin_id);
void ledger_leave(void);

#endif
