/* host/output.c - the single stdout writer. At start the host duplicates fd
 * 1 for protocol lines and points fd 1 at stderr, so stray prints from
 * plugins or libraries cannot corrupt the protocol.
 *
 * Lines are written whole and in the order output_write_line was called.
 * While the dispatch thread works through one chunk of input it opens a
 * batch: the lines produced meanwhile (its own answers and any worker's)
 * are queued and go out in one write when the chunk is done, so pipelined
 * requests cost one write per chunk instead of one per line. Outside a batch
 * each line is written at once, so an idle host adds no latency. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "host.h"

/* The pipe's default capacity: a bigger write would only block longer. */
#define OUTPUT_BATCH_BYTES 65536

static int g_out_fd = -1;
static pthread_mutex_t g_out_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_batching;                  /* guarded by g_out_lock */
static size_t g_pending_len;            /* guarded by g_out_lock */
static char g_pending[OUTPUT_BATCH_BYTES];

void output_init(int fd) { g_out_fd = fd; }

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return; /* reader went away: nothing useful left to do */
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Caller holds g_out_lock. */
static void flush_pending(void) {
    if (g_pending_len == 0) return;
    write_all(g_out_fd, g_pending, g_pending_len);
    g_pending_len = 0;
}

/* Caller holds g_out_lock and has flushed what was queued before. */
static void write_line_now(const char *line, size_t n) {
    if (n + 1 <= sizeof g_pending) {
        /* The line and its newline in one write keep lines whole on the pipe. */
        memcpy(g_pending, line, n);
        g_pending[n] = '\n';
        write_all(g_out_fd, g_pending, n + 1);
        return;
    }
    write_all(g_out_fd, line, n);
    write_all(g_out_fd, "\n", 1);
}

void output_write_line(const char *line) {
    if (g_out_fd < 0 || !line) return;
    size_t n = strlen(line);
    pthread_mutex_lock(&g_out_lock);
    if (g_batching && g_pending_len + n + 1 <= sizeof g_pending) {
        memcpy(g_pending + g_pending_len, line, n);
        g_pending[g_pending_len + n] = '\n';
        g_pending_len += n + 1;
    } else {
        flush_pending(); /* order: what was queued goes first */
        write_line_now(line, n);
    }
    pthread_mutex_unlock(&g_out_lock);
}

void output_batch_begin(void) {
    pthread_mutex_lock(&g_out_lock);
    g_batching = 1;
    pthread_mutex_unlock(&g_out_lock);
}

void output_batch_end(void) {
    pthread_mutex_lock(&g_out_lock);
    flush_pending();
    g_batching = 0;
    pthread_mutex_unlock(&g_out_lock);
}
