/* bench/protocol/trivial-responder.c - the reference point for the stdio
 * protocol: the simplest correct responder a person would write. It reads
 * its input with stdio and answers each line as soon as it has read it, with
 * a fixed host.health-sized response line written by one write(2) (so a
 * client waiting for that answer gets it at once); no parsing, no threads.
 * bench-protocol drives it exactly as it drives `sdrt serve`, and
 * compare.sh runs both in turn, so the ratio is the host's cost over this.
 * usage: trivial-responder [serve] [--batch]
 *   --batch: answer all the lines of one read(2) with one write(2) instead,
 *   no stdio: the ceiling for a responder, not a plausible server. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char RESPONSE[] =
    "{\"type\":\"response\",\"request_id\":\"b\",\"success\":true,\"data\":{\"status\":\"ok\",\"uptime_s\":1.234567,"
    "\"plugins\":[],\"queue_depth\":0,\"in_flight\":0,\"workers\":2},\"warnings\":[],\"execution_time\":0,"
    "\"metrics\":{\"execution_time_ms\":0}}\n";

static int batched(void) {
    static char in[65536], out[65536 * 8];
    const size_t rl = sizeof RESPONSE - 1;
    for (;;) {
        ssize_t n = read(0, in, sizeof in);
        if (n <= 0) return 0;
        size_t used = 0;
        for (ssize_t i = 0; i < n; i++) {
            if (in[i] != '\n') continue;
            if (used + rl > sizeof out) {
                if (write(1, out, used) != (ssize_t)used) return 1;
                used = 0;
            }
            memcpy(out + used, RESPONSE, rl);
            used += rl;
        }
        if (used && write(1, out, used) != (ssize_t)used) return 1;
    }
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--batch") == 0) return batched();
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, stdin) > 0)
        if (write(1, RESPONSE, sizeof RESPONSE - 1) != (ssize_t)(sizeof RESPONSE - 1)) return 1;
    free(line);
    return 0;
}
