/* host/os_win32.c - os.h on Windows (mingw-w64): a stdin reader thread,
 * CreateProcess of this executable for validate-plugin's child, the
 * process-status API, a console control handler. Paths cross the Win32 API
 * as UTF-16 and come back UTF-8 with '/' separators. */
#ifdef _WIN32
#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0600 /* Vista: GetFinalPathNameByHandleW, SRW locks, CancelSynchronousIo */
#endif
#include "os.h"

#include <time.h>

#include <fcntl.h>
#include <io.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>
#include <psapi.h>

/* ---- UTF-8 <-> UTF-16 ---- */

static wchar_t *to_wide(const char *s) {
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
    wchar_t *w = n > 0 ? malloc(sizeof *w * (size_t)n) : NULL;
    if (w && !MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n)) {
        free(w);
        return NULL;
    }
    return w;
}

/* UTF-8 copy of `w` with '\\' turned into '/', malloc'd. */
static char *to_utf8_slashes(const wchar_t *w) {
    int n = WideCharToMultiByte(CP_UTF8, 0, w, -1, NULL, 0, NULL, NULL);
    char *s = n > 0 ? malloc((size_t)n) : NULL;
    if (s && !WideCharToMultiByte(CP_UTF8, 0, w, -1, s, n, NULL, NULL)) {
        free(s);
        return NULL;
    }
    for (char *p = s; p && *p; p++)
        if (*p == '\\') *p = '/';
    return s;
}

/* ---- time and memory ---- */

double os_monotonic_s(void) {
    static LARGE_INTEGER freq; /* constant after boot; racing writers store the same value */
    if (freq.QuadPart == 0) QueryPerformanceFrequency(&freq);
    LARGE_INTEGER t;
    QueryPerformanceCounter(&t);
    return (double)(t.QuadPart / freq.QuadPart) + (double)(t.QuadPart % freq.QuadPart) / (double)freq.QuadPart;
}

long os_resident_kb(void) {
    PROCESS_MEMORY_COUNTERS pmc;
    if (!GetProcessMemoryInfo(GetCurrentProcess(), &pmc, sizeof pmc)) return 0;
    return (long)(pmc.WorkingSetSize / 1024);
}

int os_platform(char *buf, size_t n) {
    SYSTEM_INFO si;
    GetNativeSystemInfo(&si);
    const char *machine = "unknown";
    switch (si.wProcessorArchitecture) {
    case PROCESSOR_ARCHITECTURE_AMD64: machine = "x86_64"; break;
    case PROCESSOR_ARCHITECTURE_INTEL: machine = "x86"; break;
#ifdef PROCESSOR_ARCHITECTURE_ARM64
    case PROCESSOR_ARCHITECTURE_ARM64: machine = "aarch64"; break;
#endif
    default: break;
    }
    snprintf(buf, n, "Windows %s", machine);
    return 0;
}

/* ---- paths ---- */

int os_is_sep(char c) { return c == '/' || c == '\\'; }

size_t os_path_root_len(const char *path) {
    if (os_is_sep(path[0]) && os_is_sep(path[1])) return 2; /* UNC: //server/share */
    int drive = (path[0] | 0x20) >= 'a' && (path[0] | 0x20) <= 'z' && path[1] == ':';
    return drive && os_is_sep(path[2]) ? 3 : 0;
}

int os_path_is_absolute(const char *path) { return os_path_root_len(path) > 0; }

char *os_path_last_sep(const char *path) {
    const char *last = NULL;
    for (const char *p = path; *p; p++)
        if (os_is_sep(*p)) last = p;
    return (char *)last;
}

/* "\\?\C:\x" -> "C:\x", "\\?\UNC\srv\x" -> "\\srv\x", in place. */
static void strip_verbatim_prefix(wchar_t *w) {
    if (wcsncmp(w, L"\\\\?\\UNC\\", 8) == 0) {
        memmove(w + 2, w + 8, (wcslen(w + 8) + 1) * sizeof *w);
        return;
    }
    if (wcsncmp(w, L"\\\\?\\", 4) == 0) memmove(w, w + 4, (wcslen(w + 4) + 1) * sizeof *w);
}

/* Opening the file (or directory: backup semantics) and asking for its final
 * name resolves links and the real case as realpath does, and fails for a
 * path that does not exist; GetFullPathNameW alone would only normalise
 * the text. */
char *os_realpath(const char *path) {
    wchar_t *w = to_wide(path);
    if (!w) return NULL;
    HANDLE h = CreateFileW(w, 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL, OPEN_EXISTING,
                           FILE_FLAG_BACKUP_SEMANTICS, NULL);
    free(w);
    if (h == INVALID_HANDLE_VALUE) return NULL;
    DWORD n = GetFinalPathNameByHandleW(h, NULL, 0, FILE_NAME_NORMALIZED | VOLUME_NAME_DOS);
    wchar_t *full = n ? malloc(sizeof *full * (n + 1)) : NULL;
    DWORD got = full ? GetFinalPathNameByHandleW(h, full, n + 1, FILE_NAME_NORMALIZED | VOLUME_NAME_DOS) : 0;
    CloseHandle(h);
    if (!got || got > n) {
        free(full);
        return NULL;
    }
    strip_verbatim_prefix(full);
    char *out = to_utf8_slashes(full);
    free(full);
    return out;
}

char *os_getcwd(void) {
    DWORD n = GetCurrentDirectoryW(0, NULL);
    wchar_t *w = n ? malloc(sizeof *w * n) : NULL;
    if (!w || !GetCurrentDirectoryW(n, w)) {
        free(w);
        return NULL;
    }
    char *out = to_utf8_slashes(w);
    free(w);
    return out;
}

int os_mkdir(const char *path) {
    wchar_t *w = to_wide(path);
    int ok = w && CreateDirectoryW(w, NULL);
    free(w);
    return ok ? 0 : -1;
}

int os_exe_dir(char *buf, size_t n) {
    wchar_t w[32768]; /* the longest path Windows has */
    DWORD len = GetModuleFileNameW(NULL, w, sizeof w / sizeof w[0]);
    char *s = len > 0 && len < sizeof w / sizeof w[0] ? to_utf8_slashes(w) : NULL;
    if (!s || strlen(s) >= n) {
        free(s);
        snprintf(buf, n, ".");
        return -1;
    }
    char *slash = strrchr(s, '/');
    if (slash) *slash = '\0';
    snprintf(buf, n, "%s", s);
    free(s);
    return 0;
}

/* ---- stdio ---- */

int os_protect_stdout(void) {
    int fd = _dup(1);
    /* The protocol is "\n"-delimited: no "\r\n" translation on this fd. */
    if (fd >= 0) _setmode(fd, _O_BINARY);
    _dup2(2, 1);
    /* Plugins may write to the Win32 handle directly, bypassing the CRT. */
    SetStdHandle(STD_OUTPUT_HANDLE, GetStdHandle(STD_ERROR_HANDLE));
    return fd;
}

/* One lock and condition for the reader, the consumer and the control
 * handler: there is one stdin, and the handler must wake the consumer. */
static SRWLOCK g_lock = SRWLOCK_INIT;
static CONDITION_VARIABLE g_cond = CONDITION_VARIABLE_INIT;
static volatile LONG g_stop;

#define INPUT_CHUNK 65536

struct os_input {
    HANDLE file;
    HANDLE thread;
    int is_pipe;
    char chunk[INPUT_CHUNK]; /* handed from the reader to the consumer */
    size_t len, off;         /* guarded by g_lock */
    int eof, closing;        /* guarded by g_lock */
};

/* Hands `n` bytes (0: end of input) to the consumer once it took the last
 * chunk. Returns 0 when the reader should stop. */
static int reader_hand_over(os_input *in, const char *data, DWORD n) {
    AcquireSRWLockExclusive(&g_lock);
    while (in->off < in->len && !in->closing) SleepConditionVariableSRW(&g_cond, &g_lock, INFINITE, 0);
    int go_on = !in->closing && n > 0;
    if (!in->closing && n == 0) in->eof = 1;
    if (go_on) {
        memcpy(in->chunk, data, n);
        in->len = n;
        in->off = 0;
    }
    WakeAllConditionVariable(&g_cond);
    ReleaseSRWLockExclusive(&g_lock);
    return go_on;
}

/* Pipes and consoles cannot be polled on Windows, so this thread blocks in
 * ReadFile and the consumer waits on the condition with a timeout. */
static DWORD WINAPI reader_main(void *arg) {
    os_input *in = arg;
    static char buf[INPUT_CHUNK]; /* one reader per process: stdin */
    for (;;) {
        DWORD got = 0;
        BOOL ok = ReadFile(in->file, buf, sizeof buf, &got, NULL);
        /* A zero-byte write on a pipe reads as 0 bytes without being EOF;
         * the end of a pipe is ERROR_BROKEN_PIPE (ok == FALSE). */
        if (ok && got == 0 && in->is_pipe) continue;
        if (!reader_hand_over(in, buf, ok ? got : 0)) break;
    }
    return 0;
}

os_input *os_input_open(int fd) {
    HANDLE file = (HANDLE)_get_osfhandle(fd);
    if (file == INVALID_HANDLE_VALUE) return NULL;
    os_input *in = calloc(1, sizeof *in);
    if (!in) return NULL;
    in->file = file;
    in->is_pipe = GetFileType(file) == FILE_TYPE_PIPE;
    in->thread = CreateThread(NULL, 0, reader_main, in, 0, NULL);
    if (!in->thread) {
        free(in);
        return NULL;
    }
    return in;
}

long os_input_read(os_input *in, char *buf, size_t cap, int timeout_ms) {
    AcquireSRWLockExclusive(&g_lock);
    /* One wait, not a loop: a spurious wake-up reads as idle and the caller
     * simply asks again. */
    if (in->off == in->len && !in->eof && !g_stop)
        SleepConditionVariableSRW(&g_cond, &g_lock, (DWORD)timeout_ms, 0);
    long rc = OS_INPUT_IDLE;
    if (in->off < in->len) {
        size_t n = in->len - in->off < cap ? in->len - in->off : cap;
        memcpy(buf, in->chunk + in->off, n);
        in->off += n;
        if (in->off == in->len) WakeAllConditionVariable(&g_cond); /* the reader may hand over more */
        rc = (long)n;
    } else if (in->eof) {
        rc = OS_INPUT_END;
    }
    ReleaseSRWLockExclusive(&g_lock);
    return rc;
}

int os_input_wait(os_input *in, int timeout_ms) {
    AcquireSRWLockExclusive(&g_lock);
    if (in->off == in->len && !in->eof && !g_stop)
        SleepConditionVariableSRW(&g_cond, &g_lock, (DWORD)timeout_ms, 0);
    int ready = in->off < in->len || in->eof;
    ReleaseSRWLockExclusive(&g_lock);
    return ready;
}

/* The reader is usually blocked in ReadFile: CancelSynchronousIo ends that
 * read. If it still does not stop within a second (a console read that
 * ignores the cancel), `in` is left to it rather than freed under it; the
 * process is exiting then. */
void os_input_close(os_input *in) {
    if (!in) return;
    AcquireSRWLockExclusive(&g_lock);
    in->closing = 1;
    WakeAllConditionVariable(&g_cond);
    ReleaseSRWLockExclusive(&g_lock);
    CancelSynchronousIo(in->thread);
    DWORD w = WaitForSingleObject(in->thread, 1000);
    CloseHandle(in->thread);
    if (w == WAIT_OBJECT_0) free(in);
}

void os_close_input(int fd) { (void)fd; /* the reader thread owns the handle; it closes at exit */ }

/* ---- stop requests ---- */

/* Runs on a thread the system creates. For a console close the system ends
 * the process soon after this returns, so the shutdown there is best effort. */
static BOOL WINAPI on_console_ctrl(DWORD type) {
    (void)type;
    AcquireSRWLockExclusive(&g_lock);
    InterlockedExchange(&g_stop, 1);
    WakeAllConditionVariable(&g_cond);
    ReleaseSRWLockExclusive(&g_lock);
    return TRUE;
}

void os_catch_stop_requests(void) { SetConsoleCtrlHandler(on_console_ctrl, TRUE); }

int os_stop_requested(void) { return InterlockedCompareExchange(&g_stop, 0, 0) != 0; }

void os_block_stop_signals(void) { /* the console control handler runs on its own thread */ }

int os_with_stop_blocked(int (*fn)(void *), void *arg) { return fn(arg); }

/* ---- isolated child ---- */

/* The child's exit codes: high bits that neither exit(n) from a plugin nor
 * an NTSTATUS exception code carries, so the parent can tell "fn returned"
 * and "crash already reported" from a plugin ending the process. */
#define CHILD_FINISHED_BASE 0x5D7E0000u
#define CHILD_REPORTED_CRASH 0x5D7F0000u
#define CHILD_TAG_MASK 0xFFFF0000u
#define CHILD_ENV L"SDRT_OS_CHILD"

static int g_child_fd = -1;
static const char *g_crash_prefix = "";

static void hex32(char *out, unsigned long v) {
    static const char DIGITS[] = "0123456789ABCDEF";
    for (int i = 7; i >= 0; i--, v >>= 4) out[i] = DIGITS[v & 15];
}

/* Reports the crash on `out` before dying, as the POSIX child does from its
 * signal handler. The heap may be broken: no allocation here. */
static LONG WINAPI on_unhandled_exception(EXCEPTION_POINTERS *ep) {
    char line[160];
    size_t n = strlen(g_crash_prefix);
    if (n > sizeof line - 24) n = sizeof line - 24;
    memcpy(line, g_crash_prefix, n);
    memcpy(line + n, "exception 0x", 12);
    n += 12;
    hex32(line + n, (unsigned long)ep->ExceptionRecord->ExceptionCode);
    n += 8;
    line[n++] = '\n';
    DWORD w;
    WriteFile((HANDLE)_get_osfhandle(g_child_fd), line, (DWORD)n, &w, NULL);
    TerminateProcess(GetCurrentProcess(), CHILD_REPORTED_CRASH);
    return EXCEPTION_EXECUTE_HANDLER;
}

int os_is_child(void) { return GetEnvironmentVariableW(CHILD_ENV, NULL, 0) > 0; }

void os_child_main(FILE *out, const char *crash_prefix, os_child_fn fn, void *arg) {
    g_child_fd = _fileno(out);
    g_crash_prefix = crash_prefix;
    SetErrorMode(SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX); /* no crash dialog waiting for a click */
    SetUnhandledExceptionFilter(on_unhandled_exception);
    int result = fn(arg);
    fflush(out);
    ExitProcess(CHILD_FINISHED_BASE | (unsigned)(result > 127 ? 127 : result < 0 ? 0 : result));
}

static HANDLE inheritable(HANDLE h) {
    HANDLE dup = NULL;
    if (!h || h == INVALID_HANDLE_VALUE) return NULL;
    if (!DuplicateHandle(GetCurrentProcess(), h, GetCurrentProcess(), &dup, 0, TRUE, DUPLICATE_SAME_ACCESS))
        return NULL;
    return dup;
}

/* Starts this executable again with the same command line, `out` as its
 * stdout and the marker set. Returns the process handle, or NULL with the
 * system's error code in *err. */
static HANDLE start_self(FILE *out, DWORD *err) {
    wchar_t exe[32768];
    DWORD len = GetModuleFileNameW(NULL, exe, sizeof exe / sizeof exe[0]);
    if (len == 0 || len >= sizeof exe / sizeof exe[0]) {
        *err = GetLastError();
        return NULL;
    }
    wchar_t *cmdline = _wcsdup(GetCommandLineW()); /* CreateProcessW may write to it */
    STARTUPINFOW si = {0};
    si.cb = sizeof si;
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = inheritable(GetStdHandle(STD_INPUT_HANDLE));
    si.hStdOutput = inheritable((HANDLE)_get_osfhandle(_fileno(out)));
    si.hStdError = inheritable((HANDLE)_get_osfhandle(2));
    PROCESS_INFORMATION pi = {0};
    /* The child inherits the environment: the marker is set only around the call. */
    SetEnvironmentVariableW(CHILD_ENV, L"1");
    BOOL ok = cmdline && CreateProcessW(exe, cmdline, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi);
    *err = ok ? 0 : GetLastError(); /* before the clean-up calls overwrite it */
    SetEnvironmentVariableW(CHILD_ENV, NULL);
    free(cmdline);
    HANDLE handles[] = {si.hStdInput, si.hStdOutput, si.hStdError};
    for (size_t i = 0; i < sizeof handles / sizeof handles[0]; i++)
        if (handles[i]) CloseHandle(handles[i]);
    if (!ok) return NULL;
    CloseHandle(pi.hThread);
    return pi.hProcess;
}

static void classify(DWORD code, os_child_result *r) {
    if ((code & CHILD_TAG_MASK) == CHILD_FINISHED_BASE) {
        r->outcome = OS_CHILD_FINISHED;
        r->code = (int)(code & 0xFF);
    } else if (code == CHILD_REPORTED_CRASH) {
        r->outcome = OS_CHILD_CRASH_REPORTED;
    } else if (code >= 0xC0000000u) { /* an NTSTATUS error: an exception nobody handled */
        r->outcome = OS_CHILD_CRASHED;
        snprintf(r->detail, sizeof r->detail, "exception 0x%08lX", (unsigned long)code);
    } else {
        r->outcome = OS_CHILD_EXITED;
        r->code = (int)code;
    }
}

void os_run_in_child(FILE *out, const char *crash_prefix, os_child_fn fn, void *arg, os_child_result *r) {
    (void)crash_prefix; /* the child gets it from its own call to os_child_main */
    (void)fn;
    (void)arg;
    memset(r, 0, sizeof *r);
    fflush(out);
    DWORD err = 0;
    HANDLE proc = start_self(out, &err);
    if (!proc) {
        r->outcome = OS_CHILD_NOT_STARTED;
        snprintf(r->detail, sizeof r->detail, "cannot start the checking process (error %lu)", (unsigned long)err);
        return;
    }
    WaitForSingleObject(proc, INFINITE);
    DWORD code = 0;
    if (!GetExitCodeProcess(proc, &code)) code = 1;
    CloseHandle(proc);
    classify(code, r);
}

int os_utc_now(struct tm *out) {
    time_t now = time(NULL);
    return gmtime_s(out, &now) == 0 ? 0 : -1;
}

#endif
