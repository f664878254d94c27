/* bench/protocol/trivial-responder.c - the reference point for the stdio
 * protocol: the simplest correct responder a person would write. It reads
 * its input with stdio and answers each line as soon as it has read it, with
 * a fixed host.health-sized response line written by one write(2) (so a
 * client waiting for that answer gets it at once); no parsing, no threads.
 * bench-protocol drives it exactly as it drives `sdrt serve`, and
 * compare.sh runs both in turn, so the ratio is the host's cost over this.
 * usage: trivial-responder serve   (any arguments are ignored) */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char RESPONSE[] =
    "{\"type\":\"response\",\"request_id\":\"b\",\"success\":true,\"data\":{\"status\":\"ok\",\"uptime_s\":1.234567,"
    "\"plugins\":[],\"queue_depth\":0,\"in_flight\":0,\"workers\":2},\"warnings\":[],\"execution_time\":0,"
    "\"metrics\":{\"execution_time_ms\":0}}\n";

int main(void) {
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, stdin) > 0)
        if (write(1, RESPONSE, sizeof RESPONSE - 1) != (ssize_t)(sizeof RESPONSE - 1)) return 1;
    free(line);
    return 0;
}
