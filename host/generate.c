/* host/generate.c - `sdrt generate`: one image from the terminal, through the
 * same router and plugins as stdio mode, with a progress bar on stderr. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "host.h"
#include "os.h"

typedef struct gen_state {
    pthread_mutex_t lock;
    pthread_cond_t done_cond;
    int done;
    int ok;
    char *final_line;
    int tty;
} gen_state;

static void draw_progress(gen_state *g, const cJSON *data) {
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(data, "step");
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(data, "steps");
    const cJSON *prog = cJSON_GetObjectItemCaseSensitive(data, "progress");
    const cJSON *stage = cJSON_GetObjectItemCaseSensitive(data, "stage");
    const cJSON *eta = cJSON_GetObjectItemCaseSensitive(data, "eta");
    double p = cJSON_IsNumber(prog) ? prog->valuedouble : 0;
    if (p < 0) p = 0;
    if (p > 1) p = 1;
    int filled = (int)(p * 30 + 0.5);
    char bar[31];
    for (int i = 0; i < 30; i++) bar[i] = i < filled ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "%s%-10s [%s] %3.0f%%", g->tty ? "\r" : "", cJSON_IsString(stage) ? stage->valuestring : "",
            bar, p * 100);
    if (cJSON_IsNumber(step) && cJSON_IsNumber(steps))
        fprintf(stderr, "  step %d/%d", step->valueint, steps->valueint);
    if (cJSON_IsNumber(eta)) fprintf(stderr, "  eta %.1fs", eta->valuedouble);
    fprintf(stderr, g->tty ? "   " : "\n");
    fflush(stderr);
}

static void gen_sink(void *ctx, const char *line, int slot) {
    gen_state *g = ctx;
    (void)slot;
    cJSON *o = cJSON_Parse(line);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "event") == 0) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "event_name");
        if (cJSON_IsString(name) && strcmp(name->valuestring, "progress") == 0)
            draw_progress(g, cJSON_GetObjectItemCaseSensitive(o, "data"));
        cJSON_Delete(o);
        return;
    }
    pthread_mutex_lock(&g->lock);
    g->final_line = strdup(line);
    g->ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "success"));
    g->done = 1;
    pthread_cond_signal(&g->done_cond);
    pthread_mutex_unlock(&g->lock);
    cJSON_Delete(o);
}

typedef struct gen_args {
    host_cli_overrides ov;
    cJSON *data;
    const char *out_dir;
    const char *model;
} gen_args;

static int need_value(int argc, char **argv, int i) {
    if (i + 1 < argc) return 1;
    fprintf(stderr, "sdrt generate: %s needs a value\n", argv[i]);
    return 0;
}

static int parse_number(const char *opt, const char *v, double *out) {
    char *end;
    *out = strtod(v, &end);
    if (*v && !*end) return 1;
    fprintf(stderr, "sdrt generate: %s: '%s' is not a number\n", opt, v);
    return 0;
}

static int parse_gen_args(gen_args *a, int argc, char **argv) {
    static const struct {
        const char *opt, *alt, *field;
        int numeric;
    } MAP[] = {
        {"--model", "-m", "model_id", 0},        {"--prompt", "-p", "prompt", 0},
        {"--negative-prompt", "-n", "negative_prompt", 0},
        {"--width", "-W", "width", 1},           {"--height", "-H", "height", 1},
        {"--steps", "-s", "num_inference_steps", 1}, {"--cfg", "-c", "guidance_scale", 1},
        {"--sampler", "--scheduler", "scheduler", 0}, {"--seed", "-S", "seed", 1},
        {"--batch", "-b", "batch_size", 1},      {"--clip-skip", NULL, "clip_skip", 1},
        {"--precision", NULL, "precision", 0},
        {NULL, NULL, NULL, 0},
    };
    a->data = cJSON_CreateObject();
    for (int i = 2; i < argc; i++) {
        int r = cli_take_host_option(&a->ov, argc, argv, &i);
        if (r < 0) return -1;
        if (r > 0) continue;
        if (strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) {
            if (!need_value(argc, argv, i)) return -1;
            a->out_dir = argv[++i];
            continue;
        }
        int k = 0;
        while (MAP[k].opt && strcmp(argv[i], MAP[k].opt) != 0 && !(MAP[k].alt && strcmp(argv[i], MAP[k].alt) == 0)) k++;
        if (!MAP[k].opt) {
            fprintf(stderr, "sdrt generate: unknown option '%s' (see sdrt help)\n", argv[i]);
            return -1;
        }
        if (!need_value(argc, argv, i)) return -1;
        const char *v = argv[++i];
        if (MAP[k].numeric) {
            double d;
            if (!parse_number(argv[i - 1], v, &d)) return -1;
            cJSON_AddNumberToObject(a->data, MAP[k].field, d);
        } else {
            cJSON_AddStringToObject(a->data, MAP[k].field, v);
        }
        if (strcmp(MAP[k].field, "model_id") == 0) a->model = v;
    }
    if (!a->model || !cJSON_GetObjectItemCaseSensitive(a->data, "prompt")) {
        fprintf(stderr, "sdrt generate: --model and --prompt are required\n");
        return -1;
    }
    return 0;
}

/* A person who names a model path or -o directory means to allow it. A
 * path that exists is taken from the working directory (`demo-model`,
 * `./demo-model`) and sent absolute, with its folder as a model root;
 * anything else is left to the model plugin (a name under the roots, a
 * Hugging Face repo id). */
static void allow_named_paths(gen_args *a, char *model_dir, size_t n) {
    struct stat st;
    char *abs = a->model && stat(a->model, &st) == 0 ? os_realpath(a->model) : NULL;
    if (abs) {
        snprintf(model_dir, n, "%s", abs);
        if (!S_ISDIR(st.st_mode)) {
            char *slash = os_path_last_sep(model_dir);
            if (slash && slash != model_dir) *slash = '\0';
        }
        cJSON_ReplaceItemInObjectCaseSensitive(a->data, "model_id", cJSON_CreateString(abs));
        free(abs);
        a->ov.model_roots = realloc(a->ov.model_roots, sizeof(char *) * (size_t)(a->ov.n_model_roots + 1));
        a->ov.model_roots[a->ov.n_model_roots++] = model_dir;
    }
    const char *dir = a->out_dir ? a->out_dir : "outputs";
    os_mkdir(dir); /* may exist already */
    a->ov.output_roots = realloc(a->ov.output_roots, sizeof(char *) * (size_t)(a->ov.n_output_roots + 1));
    a->ov.output_roots[a->ov.n_output_roots++] = dir;
    cJSON *out = cJSON_AddObjectToObject(a->data, "output");
    cJSON_AddStringToObject(out, "dir", dir);
}

static int print_result(gen_state *g) {
    cJSON *o = cJSON_Parse(g->final_line);
    FILE *out = cli_stdout();
    if (!g->ok) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "error_code");
        fprintf(stderr, "sdrt generate: %s [%s]\n", cJSON_IsString(e) ? e->valuestring : "failed",
                cJSON_IsString(c) ? c->valuestring : "?");
        cJSON_Delete(o);
        return 1;
    }
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(data, "images");
    const cJSON *it;
    cJSON_ArrayForEach(it, images) {
        if (cJSON_IsString(it)) fprintf(out, "%s\n", it->valuestring);
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(data, "processing_time");
    if (cJSON_IsNumber(t)) fprintf(stderr, "done in %.2f s\n", t->valuedouble);
    fflush(out);
    cJSON_Delete(o);
    return 0;
}

int cmd_generate(int argc, char **argv) {
    gen_args a = {0};
    if (parse_gen_args(&a, argc, argv) != 0) {
        cJSON_Delete(a.data);
        cli_overrides_free(&a.ov);
        return 2;
    }
    char model_dir[4096];
    allow_named_paths(&a, model_dir, sizeof model_dir);
    host_ctx h;
    if (host_init(&h, &a.ov, 1) != 0) return 1;
    gen_state g = {.lock = PTHREAD_MUTEX_INITIALIZER, .done_cond = PTHREAD_COND_INITIALIZER, .tty = isatty(2)};
    h.sink.line = gen_sink;
    h.sink.ctx = &g;
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "type", "inference.run");
    cJSON_AddStringToObject(req, "request_id", "generate");
    cJSON_AddItemToObject(req, "data", a.data);
    char *line = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    server_handle_line(&h, line, strlen(line));
    free(line);
    pthread_mutex_lock(&g.lock);
    while (!g.done) pthread_cond_wait(&g.done_cond, &g.lock);
    pthread_mutex_unlock(&g.lock);
    if (g.tty) fputc('\n', stderr);
    int rc = print_result(&g);
    free(g.final_line);
    host_fini(&h);
    cli_overrides_free(&a.ov);
    return rc;
}
