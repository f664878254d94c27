/* tests/loader/host_proc.h - runs the real sdrt binary as a child with its
 * stdin and stdout on pipes (stderr to a file), the way an orchestrator
 * does, and reads its stdout line by line. */
#ifndef SDRT_TEST_HOST_PROC_H
#define SDRT_TEST_HOST_PROC_H

typedef struct host_proc {
    int pid;
    int in_fd;          /* its stdin; -1 once closed */
    int out_fd;         /* its stdout */
    char *buf;          /* stdout bytes not yet returned as lines */
    int len, cap;
    char **lines;       /* every stdout line read so far, in order */
    int n_lines;
    char err_path[4096];
} host_proc;

/* Starts $SDRT_BUILD_DIR/bin/sdrt with argv (args[0] is the subcommand;
 * NULL-terminated). Returns 0 or -1. */
int host_start(host_proc *h, const char *const *args);
/* Writes one request line (a newline is added). */
int host_send(host_proc *h, const char *line);
/* The next stdout line, or NULL on EOF or after timeout_s. Owned by h. */
const char *host_next_line(host_proc *h, double timeout_s);
/* Waits for a line containing `needle`, skipping others; NULL on timeout. */
const char *host_wait_for(host_proc *h, const char *needle, double timeout_s);
/* Closes stdin, reads the rest of stdout and reaps the child. Returns its
 * exit status (128+signal when killed, -1 when it had to be killed after
 * timeout_s). */
int host_finish(host_proc *h, double timeout_s);
/* Everything it wrote to stderr (static buffer, truncated at 64 KiB). */
const char *host_stderr(const host_proc *h);
/* All stdout lines joined with '\n' (malloc'd). */
char *host_stdout_text(const host_proc *h);
void host_free(host_proc *h);

#endif
