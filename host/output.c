/* host/output.c - the single stdout writer. At start the host duplicates fd
 * 1 for protocol lines and points fd 1 at stderr, so stray prints from
 * plugins or libraries cannot corrupt the protocol. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "host.h"

static int g_out_fd = -1;
static pthread_mutex_t g_out_lock = PTHREAD_MUTEX_INITIALIZER;

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

void output_write_line(const char *line) {
    if (g_out_fd < 0 || !line) return;
    size_t n = strlen(line);
    pthread_mutex_lock(&g_out_lock);
    /* The line and its newline in one write keep lines whole on the pipe. */
    char stackbuf[4096];
    if (n + 1 <= sizeof stackbuf) {
        memcpy(stackbuf, line, n);
        stackbuf[n] = '\n';
        write_all(g_out_fd, stackbuf, n + 1);
    } else {
        write_all(g_out_fd, line, n);
        write_all(g_out_fd, "\n", 1);
    }
    pthread_mutex_unlock(&g_out_lock);
}
