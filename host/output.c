/* host/output.c - the single stdout writer. At start the host duplicates fd
 * 1 for protocol lines and points fd 1 at stderr, so stray prints from
 * plugins or libraries cannot corrupt the protocol.
 *
 * Lines are written whole and in the order they were given, each made valid
 * UTF-8 first (utf8_clean_line). While the dispatch thread works through one
 * chunk of input it opens a batch: the lines produced meanwhile (its own
 * answers and any worker's) are staged and go out in one write when the
 * chunk is done, so pipelined requests cost one write per chunk instead of
 * one per line. Outside a batch each line is written at once.
 *
 * In serve mode the staging area is the ledger's (ledger.h), shared with the
 * supervisor: after a crash it writes what was staged and not yet written,
 * and knows which final answers went out. A final answer's ledger entry is
 * freed only once its bytes are written.
 *
 * Writes are bounded: a pipe or socket is put in non-blocking mode and the
 * writer waits for room in slices; once a stop was requested, or a deadline
 * set (output_set_deadline), it gives up at that deadline, so a client that
 * does not read cannot hold the host past shutdown_grace_s. Lines given up
 * are counted (output_lost). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#endif
#include <unistd.h>

#include "host.h"
#include "ledger.h"
#include "os.h"

/* Without a ledger (sdrt generate, tests): a private staging area. */
#define LOCAL_OUT_BYTES 65536

static int g_out_fd = -1;
#ifndef _WIN32
static int g_nonblocking; /* Windows writes block: no bound there */
#endif
static pthread_mutex_t g_out_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_batching;          /* guarded by g_out_lock */
static double g_grace_s = 10;   /* wait after a stop request before giving up */
static double g_deadline;       /* host clock; 0 = none yet */
static int g_gave_up;
static volatile sig_atomic_t g_stop_noted; /* output_note_stop, from a signal handler */
static atomic_long g_lost;
static char g_local[LOCAL_OUT_BYTES];
static size_t g_local_len, g_local_done;

void output_init(int fd) { g_out_fd = fd; }

void output_make_bounded(void) {
#ifndef _WIN32
    int fd = g_out_fd;
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
        int fl = fcntl(fd, F_GETFL);
        /* Only pipes and sockets: a terminal's description is shared with the
         * shell, which would then see EAGAIN itself. */
        if (fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0) g_nonblocking = 1;
    }
#endif
}

void output_fini(void) {
#ifndef _WIN32
    if (g_nonblocking) {
        int fl = fcntl(g_out_fd, F_GETFL);
        if (fl >= 0) fcntl(g_out_fd, F_SETFL, fl & ~O_NONBLOCK);
        g_nonblocking = 0;
    }
#endif
}

void output_set_grace(double seconds) { g_grace_s = seconds; }

void output_set_deadline(double host_time) {
    pthread_mutex_lock(&g_out_lock);
    if (g_deadline == 0 || host_time < g_deadline) g_deadline = host_time;
    pthread_mutex_unlock(&g_out_lock);
}

long output_lost(void) { return atomic_load(&g_lost); }

void output_note_stop(void) { g_stop_noted = 1; }

#ifndef _WIN32
/* Caller holds g_out_lock. 1 when the writer must stop waiting for room. */
static int past_deadline(void) {
    if (g_gave_up) return 1;
    if (g_deadline == 0 && (os_stop_requested() || g_stop_noted)) g_deadline = host_now() + g_grace_s;
    if (g_deadline > 0 && host_now() >= g_deadline) g_gave_up = 1;
    return g_gave_up;
}
#endif

/* Writes p[0..n), adding each step to *done under the ledger lock. Returns 0,
 * or -1 when the reader is gone or the deadline passed. */
static int write_bounded(const char *p, size_t n, size_t *done) {
    while (n > 0) {
        if (g_gave_up) return -1;
        ledger_lock();
        ssize_t w = write(g_out_fd, p, n);
        if (w > 0) *done += (size_t)w;
        ledger_unlock();
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
#ifndef _WIN32
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (past_deadline()) return -1;
            struct pollfd pfd = {g_out_fd, POLLOUT, 0};
            poll(&pfd, 1, 100); /* slices, to see a stop request or the deadline */
            continue;
        }
#endif
        g_gave_up = 1; /* EPIPE and the like: nobody reads any more */
        return -1;
    }
    return 0;
}

static char *stage_buf(size_t *cap, size_t **len, size_t **done) {
    ledger_shm *L = ledger_get();
    if (L) {
        *cap = LEDGER_OUT_BYTES;
        *len = &L->out_len;
        *done = &L->out_done;
        return ledger_out_buf(L);
    }
    *cap = sizeof g_local;
    *len = &g_local_len;
    *done = &g_local_done;
    return g_local;
}

/* Caller holds g_out_lock: writes what is staged, then frees the entries of
 * the final answers in it (also when the write was given up: no one will
 * read them). */
static void flush_staged(void) {
    size_t cap, *len, *done;
    char *buf = stage_buf(&cap, &len, &done);
    ledger_shm *L = ledger_get();
    if (*len > *done && write_bounded(buf + *done, *len - *done, done) != 0) {
        atomic_fetch_add(&g_lost, 1);
    }
    ledger_lock();
    if (L) {
        int *slots = ledger_out_slots(L);
        for (int i = 0; i < L->out_nslots; i++) ledger_release_locked(slots[i]);
        L->out_nslots = 0;
    }
    *len = *done = 0;
    ledger_unlock();
}

/* Caller holds g_out_lock; the line fits the staging area. */
static void stage(const char *line, size_t n, int slot) {
    size_t cap, *len, *done;
    char *buf = stage_buf(&cap, &len, &done);
    ledger_shm *L = ledger_get();
    if (*len + n + 1 > cap || (L && slot >= 0 && L->out_nslots >= LEDGER_OUT_SLOTS)) flush_staged();
    memcpy(buf + *len, line, n);
    buf[*len + n] = '\n';
    ledger_lock();
    *len += n + 1;
    if (L && slot >= 0) ledger_out_slots(L)[L->out_nslots++] = slot;
    ledger_unlock();
}

/* Caller holds g_out_lock: a line longer than the staging area goes out in
 * pieces through it; a crash between pieces cuts the line (the supervisor
 * ends it and answers the request). */
static void write_long_line(const char *line, size_t n, int slot) {
    size_t cap, *len, *done;
    char *buf = stage_buf(&cap, &len, &done);
    ledger_shm *L = ledger_get();
    flush_staged();
    if (L) L->out_line_cut = 1;
    size_t off = 0;
    while (off <= n) {
        size_t piece = n + 1 - off < cap ? n + 1 - off : cap;
        memcpy(buf, line + off, piece > n - off ? n - off : piece);
        if (off + piece == n + 1) buf[piece - 1] = '\n';
        ledger_lock();
        *len = piece;
        *done = 0;
        ledger_unlock();
        int rc = write_bounded(buf, piece, done); /* progress in the ledger, for a crash */
        ledger_lock();
        *len = *done = 0;
        ledger_unlock();
        if (rc != 0) {
            atomic_fetch_add(&g_lost, 1);
            break;
        }
        off += piece;
    }
    ledger_lock();
    if (L) L->out_line_cut = 0;
    if (slot >= 0) ledger_release_locked(slot);
    ledger_unlock();
}

/* `clean`: make the line valid UTF-8 first; 0 for bytes already staged once
 * (a crashed process's rest of a line may start inside a character). */
static void write_line(const char *line, int slot, int clean_it) {
    if (g_out_fd < 0 || !line) return;
    size_t n = strlen(line), clean_n;
    char *clean = clean_it ? utf8_clean_line(line, n, &clean_n) : NULL;
    if (clean) {
        line = clean;
        n = clean_n;
    }
    size_t cap, *len, *done;
    pthread_mutex_lock(&g_out_lock);
    stage_buf(&cap, &len, &done);
    if (n + 1 <= cap) {
        stage(line, n, slot);
        if (!g_batching) flush_staged();
    } else {
        write_long_line(line, n, slot);
    }
    pthread_mutex_unlock(&g_out_lock);
    free(clean);
}

void output_write_final(const char *line, int slot) { write_line(line, slot, 1); }

void output_write_line(const char *line) { write_line(line, -1, 1); }

void output_write_staged(const char *line) { write_line(line, -1, 0); }

void output_batch_begin(void) {
    pthread_mutex_lock(&g_out_lock);
    g_batching = 1;
    pthread_mutex_unlock(&g_out_lock);
}

void output_batch_end(void) {
    pthread_mutex_lock(&g_out_lock);
    flush_staged();
    g_batching = 0;
    pthread_mutex_unlock(&g_out_lock);
}
