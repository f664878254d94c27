/* tests/protocol/transcript.c - protocol transcript tests against the real
 * build/bin/sdrt binary.
 *
 * A transcript file holds:
 *   # args: <extra sdrt serve arguments; $BUILD and $SRC are expanded>
 *   > <a request line sent as is>
 *   ! sleep <seconds>            (pause before sending the next line)
 *   < <expected JSON>            (a subset of one output line)
 *   >x <a request line with \xNN escapes for raw bytes>
 *   = responses <n>             (exact number of final responses)
 *   <~ <text>                   (some output line contains text verbatim)
 * Expected JSON matches an output line when every key it names is present
 * with an equal value (objects recursively, arrays element-wise with the
 * same length); "*" matches any value and "~text" any string containing
 * text. Each expectation consumes one distinct output line, in any order,
 * since workers finish in any order. Every output line must parse as JSON
 * and be valid UTF-8. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static int match(const cJSON *exp, const cJSON *act) {
    if (cJSON_IsString(exp) && strcmp(exp->valuestring, "*") == 0) return act != NULL;
    if (!act) return 0;
    if (cJSON_IsString(exp) && exp->valuestring[0] == '~')
        return cJSON_IsString(act) && strstr(act->valuestring, exp->valuestring + 1) != NULL;
    if (cJSON_IsObject(exp)) {
        if (!cJSON_IsObject(act)) return 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, exp) {
            if (!match(it, cJSON_GetObjectItemCaseSensitive(act, it->string))) return 0;
        }
        return 1;
    }
    if (cJSON_IsArray(exp)) {
        if (!cJSON_IsArray(act) || cJSON_GetArraySize(exp) != cJSON_GetArraySize(act)) return 0;
        for (int i = 0; i < cJSON_GetArraySize(exp); i++)
            if (!match(cJSON_GetArrayItem(exp, i), cJSON_GetArrayItem(act, i))) return 0;
        return 1;
    }
    return cJSON_Compare(exp, act, 1);
}

/* RFC 3629 UTF-8, written here independently of the host's checker. */
static int valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t need;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            need = 1;
            min = 0x80;
            c &= 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            need = 2;
            min = 0x800;
            c &= 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            need = 3;
            min = 0x10000;
            c &= 0x07;
        } else {
            return 0;
        }
        for (size_t k = 1; k <= need; k++) {
            if (i + k >= n || (s[i + k] & 0xC0) != 0x80) return 0;
            c = (c << 6) | (s[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
        i += need + 1;
    }
    return 1;
}

/* ">x" lines: \xNN becomes the byte NN, the rest is sent as is. */
static size_t unescape_bytes(const char *in, char *out) {
    size_t o = 0;
    for (const char *p = in; *p;) {
        unsigned v;
        if (p[0] == '\\' && p[1] == 'x' && sscanf(p + 2, "%2x", &v) == 1) {
            out[o++] = (char)v;
            p += 4;
        } else {
            out[o++] = *p++;
        }
    }
    return o;
}

static char *expand(const char *s) {
    const char *build = getenv("SDRT_BUILD_DIR"), *src = getenv("SDRT_SOURCE_DIR");
    char *out = malloc(strlen(s) * 4 + 4096), *o = out;
    for (const char *p = s; *p;) {
        if (strncmp(p, "$BUILD", 6) == 0) {
            o += sprintf(o, "%s", build ? build : ".");
            p += 6;
        } else if (strncmp(p, "$SRC", 4) == 0) {
            o += sprintf(o, "%s", src ? src : ".");
            p += 4;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

typedef struct transcript {
    char **lines;
    int n;
} transcript;

static void load(transcript *t, const char *path) {
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    t->lines = NULL;
    t->n = 0;
    while (f && (len = getline(&line, &cap, f)) > 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        t->lines = realloc(t->lines, sizeof(char *) * (size_t)(t->n + 1));
        t->lines[t->n++] = expand(line);
    }
    free(line);
    if (f) fclose(f);
}

/* Runs sdrt serve with `args`, feeding the > lines; returns its stdout. */
static char *run_host(const transcript *t, const char *args) {
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) return NULL;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "exec \"%s/bin/sdrt\" serve %s", getenv("SDRT_BUILD_DIR"), args);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < t->n; i++) {
        const char *l = t->lines[i];
        if (strncmp(l, "> ", 2) == 0) {
            if (write(in[1], l + 2, strlen(l + 2)) < 0 || write(in[1], "\n", 1) < 0) break;
        } else if (strncmp(l, ">x ", 3) == 0) {
            char *raw = malloc(strlen(l) + 2);
            size_t n = unescape_bytes(l + 3, raw);
            raw[n++] = '\n';
            ssize_t w = write(in[1], raw, n);
            free(raw);
            if (w < 0) break;
        } else if (strncmp(l, "! sleep ", 8) == 0) {
            double s = atof(l + 8);
            struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
            nanosleep(&ts, NULL);
        }
    }
    close(in[1]);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    ssize_t n;
    while ((n = read(out[0], buf + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (cap - len < 4096) buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    close(out[0]);
    int status;
    waitpid(pid, &status, 0);
    /* 0: every answer was written (docs/protocol.md, exit status); a leak
     * report in a sanitizer build also shows here. */
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "sdrt exited with status %d, expected 0", status);
    return buf;
}

static void check_transcript(const char *path) {
    transcript t;
    load(&t, path);
    const char *args = "";
    for (int i = 0; i < t.n; i++)
        if (strncmp(t.lines[i], "# args:", 7) == 0) args = t.lines[i] + 7;
    char *output = run_host(&t, args);
    REQUIRE(output, "%s: could not run sdrt", path);
    for (int i = 0; i < t.n; i++)
        if (strncmp(t.lines[i], "<~ ", 3) == 0)
            CHECK(strstr(output, t.lines[i] + 3), "%s: no output line contains %s", path, t.lines[i] + 3);
    cJSON *lines[4096];
    int used[4096] = {0}, n = 0, responses = 0;
    for (char *save = NULL, *l = strtok_r(output, "\n", &save); l && n < 4096; l = strtok_r(NULL, "\n", &save)) {
        CHECK(valid_utf8((const unsigned char *)l, strlen(l)), "%s: stdout line is not valid UTF-8: %s", path, l);
        lines[n] = cJSON_Parse(l);
        CHECK(lines[n], "%s: stdout line is not JSON: %s", path, l);
        if (!lines[n]) continue;
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(lines[n], "type");
        if ((cJSON_IsString(type) && strcmp(type->valuestring, "response") == 0) ||
            cJSON_GetObjectItemCaseSensitive(lines[n], "result") || cJSON_GetObjectItemCaseSensitive(lines[n], "error"))
            responses++;
        n++;
    }
    for (int i = 0; i < t.n; i++) {
        if (strncmp(t.lines[i], "= responses ", 12) == 0)
            CHECK(responses == atoi(t.lines[i] + 12), "%s: %d final responses, expected %s", path, responses,
                  t.lines[i] + 12);
        if (strncmp(t.lines[i], "< ", 2) != 0) continue;
        cJSON *exp = cJSON_Parse(t.lines[i] + 2);
        REQUIRE(exp, "%s: bad expectation: %s", path, t.lines[i]);
        int found = 0;
        for (int k = 0; k < n && !found; k++)
            if (!used[k] && match(exp, lines[k])) used[k] = found = 1;
        if (!found) {
            fprintf(stderr, "    output was:\n");
            for (int k = 0; k < n; k++) {
                char *s = cJSON_PrintUnformatted(lines[k]);
                fprintf(stderr, "      %s\n", s);
                free(s);
            }
        }
        CHECK(found, "%s: no output line matches %s", path, t.lines[i] + 2);
        cJSON_Delete(exp);
    }
    for (int k = 0; k < n; k++) cJSON_Delete(lines[k]);
    for (int i = 0; i < t.n; i++) free(t.lines[i]);
    free(t.lines);
    free(output);
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void test_transcripts(void) {
    const char *dir = test_path("SDRT_SOURCE_DIR", "tests/protocol/transcripts");
    char dirbuf[4096];
    snprintf(dirbuf, sizeof dirbuf, "%s", dir);
    DIR *d = opendir(dirbuf);
    REQUIRE(d, "cannot open %s", dirbuf);
    char *names[256];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 256)
        if (strstr(de->d_name, ".txt")) names[n++] = strdup(de->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp);
    const char *only = getenv("SDRT_TRANSCRIPT");
    for (int i = 0; i < n; i++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dirbuf, names[i]);
        if (!only || strstr(names[i], only)) {
            fprintf(stderr, "  transcript %s\n", names[i]);
            check_transcript(path);
        }
        free(names[i]);
    }
    CHECK(n >= 5, "expected transcripts, found %d", n);
}

const test_entry TESTS[] = {
    {"transcripts", test_transcripts},
    {NULL, NULL},
};
