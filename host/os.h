/* host/os.h - the host's portability layer: everything that differs between
 * POSIX and Windows, behind one small interface. os_posix.c implements it
 * with poll, fork, /proc and signals; os_win32.c with a reader thread,
 * CreateProcess, the process-status API and a console control handler. The
 * rest of the host includes no system header beyond the C library, pthreads
 * (winpthreads on mingw-w64) and <dirent.h>/<sys/stat.h> (both in mingw-w64).
 *
 * Paths are UTF-8 and use '/' as the separator in what these functions
 * return; on Windows '\\' is accepted as well on input. */
#ifndef SDRT_HOST_OS_H
#define SDRT_HOST_OS_H

#include <stddef.h>
#include <time.h>
#include <stdio.h>

/* ---- time and memory ---- */

/* Seconds on a monotonic clock, from an arbitrary fixed point. Any thread. */
double os_monotonic_s(void);
/* The process's resident memory in KiB (working set on Windows); 0 if unknown. */
long os_resident_kb(void);
/* Now as UTC calendar time (gmtime_r / gmtime_s). Returns 0, or -1. Any thread. */
int os_utc_now(struct tm *out);
/* "<system> <machine>", e.g. "Linux x86_64" or "Windows x86_64", into buf.
 * 0, or -1 when the system does not say. */
int os_platform(char *buf, size_t n);

/* ---- paths ---- */

/* 1 for a path separator: '/' (and '\\' on Windows). */
int os_is_sep(char c);
/* The length of the root that makes `path` absolute: 1 for "/x" (POSIX);
 * 3 for "C:/x" or "C:\\x", 2 for "//srv/x" (Windows); 0 when relative. */
size_t os_path_root_len(const char *path);
/* 1 when `path` is absolute (os_path_root_len > 0). */
int os_path_is_absolute(const char *path);
/* The last separator in `path`, or NULL (strrchr for both separators). */
char *os_path_last_sep(const char *path);
/* The canonical absolute form of an existing path, links resolved (realpath
 * on POSIX, GetFinalPathNameByHandleW on Windows). Returns malloc'd, or NULL
 * when the path does not exist or cannot be read. */
char *os_realpath(const char *path);
/* The working directory, malloc'd, or NULL. */
char *os_getcwd(void);
/* Creates one directory (mode 0755 on POSIX). 0, or -1 (also if it exists). */
int os_mkdir(const char *path);
/* The directory holding the running executable, into buf. 0, or -1 (buf is
 * then "."). */
int os_exe_dir(char *buf, size_t n);

/* ---- stdio ---- */

/* Takes the process's stdout for the protocol: returns a new descriptor for
 * it and points descriptor 1 (and on Windows the STD_OUTPUT_HANDLE that
 * plugins may write to) at stderr, so stray prints cannot corrupt the
 * protocol. The descriptor is in binary mode on Windows (lines end in "\n",
 * never "\r\n"). Call once, first thing in main. */
int os_protect_stdout(void);

/* Reads one input descriptor with a timeout, waking early for a stop
 * request. POSIX polls the descriptor; Windows cannot poll a pipe or a
 * console, so a reader thread blocks in ReadFile and hands chunks over. */
typedef struct os_input os_input;

#define OS_INPUT_IDLE 0   /* nothing within the timeout, or a stop request */
#define OS_INPUT_END (-1) /* end of input, or an error that ends it */
#define OS_INPUT_RETRY (-2) /* interrupted after input was ready: call again */

/* Starts reading `fd`. Returns NULL if out of memory or threads. */
os_input *os_input_open(int fd);
/* Waits up to timeout_ms for input; returns the bytes copied into buf (> 0),
 * or one of OS_INPUT_IDLE, OS_INPUT_END, OS_INPUT_RETRY. One caller at a time. */
long os_input_read(os_input *in, char *buf, size_t cap, int timeout_ms);
/* Waits up to timeout_ms until os_input_read(…, 0) would return at once
 * with input or the end; 1 then, 0 after the timeout or a stop request. */
int os_input_wait(os_input *in, int timeout_ms);
/* Stops reading and frees `in` (NULL is fine). */
void os_input_close(os_input *in);
/* Closes the input descriptor itself, so that a client still writing gets
 * EPIPE instead of having its lines silently unread (POSIX; on Windows the
 * reader thread owns the handle and it closes at exit). */
void os_close_input(int fd);

/* ---- stop requests ---- */

/* Routes SIGTERM/SIGINT (POSIX, and ignores SIGPIPE; then unblocks them in
 * the calling thread) or Ctrl-C, Ctrl-Break and console close (Windows) to a
 * flag that os_stop_requested reads and that wakes os_input_read. */
void os_catch_stop_requests(void);
/* Blocks SIGTERM/SIGINT in the calling thread (POSIX; nothing on Windows):
 * first thing in `sdrt serve`, so that a stop sent during start-up waits for
 * os_catch_stop_requests instead of killing the process. */
void os_block_stop_signals(void);
/* 1 once a stop was requested. Any thread. */
int os_stop_requested(void);
/* Runs fn(arg) with the stop signals blocked in this thread, so the threads
 * fn starts inherit the mask and the signal reaches the dispatch thread
 * (POSIX); on Windows the control handler has its own thread and fn simply
 * runs. Returns fn's result. */
int os_with_stop_blocked(int (*fn)(void *), void *arg);

/* ---- isolated child (validate-plugin) ---- */

typedef enum os_child_outcome {
    OS_CHILD_NOT_STARTED,    /* no child: `detail` says why */
    OS_CHILD_FINISHED,       /* fn returned: `code` is its result (capped at 127) */
    OS_CHILD_CRASH_REPORTED, /* crashed, and the child already wrote the line */
    OS_CHILD_CRASHED,        /* crashed without a word: `detail` names the cause */
    OS_CHILD_EXITED          /* ended before fn returned: `code` is the exit status */
} os_child_outcome;

typedef struct os_child_result {
    os_child_outcome outcome;
    int code;
    char detail[96];
} os_child_result;

typedef int (*os_child_fn)(void *arg);

/* Runs fn(arg) in a child process, so that a crash in plugin code fails a
 * check instead of killing the caller. `out` is flushed first and the child
 * writes to it too; when the child crashes it writes `crash_prefix` followed
 * by "signal N" or "exception 0xXXXXXXXX" and a newline to `out`.
 *
 * POSIX: fork(); the child runs fn and _exits.
 * Windows (no fork): this executable is started again with the same command
 * line and a marker in its environment; that process's main must reach the
 * same point, see os_is_child() there and call os_child_main instead. */
void os_run_in_child(FILE *out, const char *crash_prefix, os_child_fn fn, void *arg, os_child_result *r);
/* 1 in a process that os_run_in_child started on Windows; always 0 on POSIX
 * (its child is a fork that never returns to main). */
int os_is_child(void);
/* In that process: runs fn(arg) with crash reporting to `out`, flushes and
 * exits so that the parent reads OS_CHILD_FINISHED. Does not return. */
void os_child_main(FILE *out, const char *crash_prefix, os_child_fn fn, void *arg);

#endif
