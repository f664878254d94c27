/* host/convert.c - `sdrt convert`: a checkpoint rewritten as GGUF with
 * quantised weights, through the model plugin's model.convert like any
 * request. The named model's folder joins the model roots and the output
 * file's folder the output roots for this run (naming them is consent). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "host.h"
#include "os.h"

typedef struct conv_state {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    char *line;
} conv_state;

static void conv_sink(void *ctx, const char *line, int slot) {
    (void)slot; /* no request ledger in a one-shot conversion */
    conv_state *s = ctx;
    cJSON *o = cJSON_Parse(line);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
    int event = cJSON_IsString(type) && strcmp(type->valuestring, "event") == 0;
    cJSON_Delete(o);
    if (event) return;
    pthread_mutex_lock(&s->lock);
    s->line = strdup(line);
    s->done = 1;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* The folder holding `path` (the path itself when it is a folder). */
static char *folder_of(const char *path) {
    char *d = strdup(path);
    struct stat st;
    if (d && !(stat(d, &st) == 0 && S_ISDIR(st.st_mode))) {
        char *slash = os_path_last_sep(d);
        if (slash) *slash = '\0';
        else strcpy(d, ".");
    }
    return d;
}

static void add_root(const char ***roots, int *n, const char *dir) {
    *roots = realloc(*roots, sizeof(char *) * (size_t)(*n + 1));
    (*roots)[(*n)++] = dir;
}

int cmd_convert(int argc, char **argv) {
    host_cli_overrides ov = {0};
    const char *model = NULL, *type = NULL, *out = NULL;
    int overwrite = 0;
    for (int i = 2; i < argc; i++) {
        int r = cli_take_host_option(&ov, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        const char **dst = !strcmp(argv[i], "--model") || !strcmp(argv[i], "-m")   ? &model
                           : !strcmp(argv[i], "--type") || !strcmp(argv[i], "-t")  ? &type
                           : !strcmp(argv[i], "-o") || !strcmp(argv[i], "--output") ? &out
                                                                                    : NULL;
        if (!strcmp(argv[i], "--overwrite")) {
            overwrite = 1;
        } else if (dst && i + 1 < argc) {
            *dst = argv[++i];
        } else {
            fprintf(stderr, "sdrt convert: %s '%s' (see sdrt help)\n", dst ? "missing value for" : "unknown option", argv[i]);
            cli_overrides_free(&ov);
            return 2;
        }
    }
    if (!model || !type || !out) {
        fprintf(stderr, "sdrt convert: --model, --type and -o are required\n");
        cli_overrides_free(&ov);
        return 2;
    }
    char *mdir = folder_of(model), *odir = folder_of(out);
    add_root(&ov.model_roots, &ov.n_model_roots, mdir);
    add_root(&ov.output_roots, &ov.n_output_roots, odir);
    host_ctx h;
    int rc = 1;
    if (host_init(&h, &ov, 1) == 0) {
        conv_state s = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
        h.sink.line = conv_sink;
        h.sink.ctx = &s;
        cJSON *req = cJSON_CreateObject(), *data = cJSON_AddObjectToObject(req, "data");
        cJSON_AddStringToObject(req, "type", "model.convert");
        cJSON_AddStringToObject(req, "request_id", "convert");
        cJSON_AddStringToObject(data, "model_id", model);
        cJSON_AddStringToObject(data, "output", out);
        cJSON_AddStringToObject(data, "weight_type", type);
        if (overwrite) cJSON_AddTrueToObject(data, "overwrite");
        char *line = cJSON_PrintUnformatted(req);
        cJSON_Delete(req);
        server_handle_line(&h, line, strlen(line));
        free(line);
        pthread_mutex_lock(&s.lock);
        while (!s.done) pthread_cond_wait(&s.cond, &s.lock);
        pthread_mutex_unlock(&s.lock);
        cJSON *o = cJSON_Parse(s.line);
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "data");
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "success"))) {
            FILE *f = cli_stdout();
            fprintf(f, "%s\n", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "output")));
            fflush(f);
            fprintf(stderr, "%g tensors, %g quantised to %s: %.1f MiB -> %.1f MiB\n",
                    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(d, "tensors")),
                    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(d, "quantised")), type,
                    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(d, "bytes_in")) / 1048576.0,
                    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(d, "bytes_out")) / 1048576.0);
            rc = 0;
        } else {
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
            fprintf(stderr, "sdrt convert: %s\n", cJSON_IsString(e) ? e->valuestring : "failed");
        }
        cJSON_Delete(o);
        free(s.line);
        host_fini(&h);
    }
    cli_overrides_free(&ov);
    free(mdir);
    free(odir);
    return rc;
}
