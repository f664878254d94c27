/* host/main.c - the `sdrt` executable: subcommand dispatch. The very first
 * thing it does is take fd 1 for the protocol (see output.c). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "host.h"
#include "ledger.h"
#include "os.h"
#ifdef SDRT_HAVE_HIREDIS
#include "redis_pool.h"
int cmd_worker(int argc, char **argv);
int cmd_submit(int argc, char **argv);
int cmd_pool(int argc, char **argv);
#endif

static FILE *g_stdout;

FILE *cli_stdout(void) { return g_stdout; }

static void protect_stdout(void) {
    int fd = os_protect_stdout();
    /* "b": the descriptor is binary on Windows; POSIX ignores the flag. */
    g_stdout = fdopen(fd, "wb");
    output_init(fd);
}

static int push(const char ***list, int *n, const char *v) {
    *list = realloc(*list, sizeof **list * (size_t)(*n + 1));
    (*list)[(*n)++] = v;
    return 1;
}

int cli_take_host_option(host_cli_overrides *ov, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    static const char *const opts[] = {"--config", "--set", "--model-root", "--output-root", "--plugin-path", "--embedding-root", NULL};
    int which = -1;
    for (int k = 0; opts[k]; k++)
        if (strcmp(a, opts[k]) == 0) which = k;
    if (which < 0) return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "sdrt: %s needs a value\n", a);
        return -1;
    }
    const char *v = argv[++*i];
    switch (which) {
    case 0: ov->config_path = v; return 1;
    case 1: return push(&ov->sets, &ov->n_sets, v);
    case 2: return push(&ov->model_roots, &ov->n_model_roots, v);
    case 3: return push(&ov->output_roots, &ov->n_output_roots, v);
    case 4: return push(&ov->plugin_paths, &ov->n_plugin_paths, v);
    default: return push(&ov->embedding_roots, &ov->n_embedding_roots, v);
    }
}

void cli_overrides_free(host_cli_overrides *ov) {
    free(ov->sets);
    free(ov->model_roots);
    free(ov->output_roots);
    free(ov->plugin_paths);
    free(ov->embedding_roots);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: sdrt <command> [options]\n"
            "  serve             answer JSON requests on stdin/stdout (one per line)\n"
            "  generate          make an image: --model M --prompt P [-W 512 -H 512 --steps 30 --cfg 7.5\n"
            "                    --sampler NAME --seed N --negative-prompt P -o DIR]\n"
            "  convert           write GGUF: --model M --type q8_0|q5_1|q5_0|q4_1|q4_0|q4_K|f16 -o OUT.gguf [--overwrite]\n"
            "  plugins           list loaded and refused plugins\n"
            "  validate-plugin PATH [--data TYPE=JSON]...\n"
            "                    check a plugin shared object against the ABI contract; --data gives\n"
            "                    a message an input that runs long, for the cancel-while-running check\n"
            "  version           print versions\n"
            "  worker --redis URL [--pool NAME] [--consumer NAME]\n"
            "                    serve requests from a Redis pool (docs/scale-out.md)\n"
            "  submit --redis URL [--pool NAME]\n"
            "                    the stdio protocol in front of a pool\n"
            "  pool status --redis URL [--pool NAME]\n"
            "                    the pool's workers and streams\n"
            "sdrt <command> --help tells more about each.\n"
            "host options (serve, generate, convert, plugins):\n"
            "  --config FILE  --set key=value  --model-root DIR  --output-root DIR  --plugin-path DIR\n"
            "                 --embedding-root DIR\n"
            "  (SDRT_CONFIG=FILE also selects the config)\n");
}

static const char HOST_OPTIONS[] =
    "host options:\n"
    "  --config FILE        config file (else $SDRT_CONFIG, else config/default.json)\n"
    "  --set key=value      override a config key (value parsed as JSON, else a string)\n"
    "  --model-root DIR     add a model root\n"
    "  --output-root DIR    add an output root\n"
    "  --plugin-path DIR    add a plugin folder\n";

/* `sdrt <command> --help`: the command's usage on stdout. 1 if `cmd` has one. */
static int command_help(const char *cmd) {
    FILE *out = cli_stdout();
    if (strcmp(cmd, "serve") == 0)
        fprintf(out, "usage: sdrt serve [host options]\n"
                     "Answers JSON requests, one per line, on stdin with one JSON line per answer on stdout\n"
                     "(docs/protocol.md). Ends on end of input, host.shutdown or SIGTERM; exit status 0, or 1\n"
                     "when answers could not be delivered or the host could not start.\n%s",
                HOST_OPTIONS);
    else if (strcmp(cmd, "generate") == 0)
        fprintf(out, "usage: sdrt generate --model M --prompt P [options] [host options]\n"
                     "Makes images from the terminal; prints the written files.\n"
                     "  -m, --model M              model folder or file (relative to the working directory),\n"
                     "                             or a name under the model roots\n"
                     "  -p, --prompt P             prompt (A1111 syntax)\n"
                     "  -n, --negative-prompt P    negative prompt\n"
                     "  -W, --width N   -H, --height N   image size (multiples of 8)\n"
                     "  -s, --steps N              inference steps\n"
                     "  -c, --cfg X                guidance scale\n"
                     "  --sampler, --scheduler S   scheduler name (docs/schedulers.md)\n"
                     "  -S, --seed N               seed (-1 draws one)\n"
                     "  -b, --batch N              images per prompt\n"
                     "  --clip-skip N              CLIP layers to skip\n"
                     "  --precision P              auto, f32, f16, bf16 or int8 (docs/devices.md, Precision)\n"
                     "  -o, --output DIR           output folder (default: outputs)\n%s",
                HOST_OPTIONS);
    else if (strcmp(cmd, "convert") == 0)
        fprintf(out, "usage: sdrt convert --model M --type T -o OUT.gguf [--overwrite] [host options]\n"
                     "Writes a GGUF file of a model, its matrices stored as T (f32, f16, bf16, q8_0, q5_1,\n"
                     "q5_0, q4_1, q4_0, q4_K) as model.convert does (docs/protocol.md).\n"
                     "  -m, --model M     model folder or file, or a name under the model roots\n"
                     "  -t, --type T      weight type of the matrices\n"
                     "  -o, --output F    the GGUF file to write (inside the output roots)\n"
                     "  --overwrite       replace an existing file\n%s",
                HOST_OPTIONS);
    else if (strcmp(cmd, "plugins") == 0)
        fprintf(out, "usage: sdrt plugins [host options]\n"
                     "Lists the plugins the host loads, their message types, and the refused ones with why.\n%s",
                HOST_OPTIONS);
    else if (strcmp(cmd, "validate-plugin") == 0)
        fprintf(out, "usage: sdrt validate-plugin PATH [--data TYPE=JSON]...\n"
                     "Checks a plugin shared object against the ABI contract in a child process.\n"
                     "  --data TYPE=JSON   an input for TYPE that runs long, for the cancel-while-running check\n");
#ifdef SDRT_HAVE_HIREDIS
    else if (strcmp(cmd, "worker") == 0)
        fprintf(out, "usage: sdrt worker --redis URL [--pool NAME] [--consumer NAME] [options] [host options]\n"
                     "Joins the pool's consumer group and runs its requests like serve (docs/scale-out.md).\n"
                     "  --consumer NAME           consumer name (default host-pid); reuse it to take over the\n"
                     "                            pending entries of a worker that died\n"
                     "  --visibility-timeout S    claim entries idle this long on a worker whose heartbeat\n"
                     "                            expired (default 30)\n"
                     "  --max-deliveries N        dead-letter an entry delivered more often (default 3)\n"
                     "  --heartbeat S             heartbeat period (default 1; expires after 3 periods)\n%s%s",
                POOL_OPTIONS_HELP, HOST_OPTIONS);
    else if (strcmp(cmd, "submit") == 0)
        fprintf(out, "usage: sdrt submit --redis URL [--pool NAME] [--config FILE] [--set pool.KEY=VALUE]\n"
                     "Reads request lines on stdin, sends them to the pool and prints their events and final\n"
                     "responses on stdout, like serve; exits once every request sent has its final response\n"
                     "(status 1 when Redis refuses its password or certificate).\n%s",
                POOL_OPTIONS_HELP);
    else if (strcmp(cmd, "pool") == 0)
        fprintf(out, "usage: sdrt pool status --redis URL [--pool NAME] [--config FILE] [--set pool.KEY=VALUE]\n"
                     "Prints the pool's workers and streams.\n%s",
                POOL_OPTIONS_HELP);
#endif
    else if (strcmp(cmd, "version") == 0)
        fprintf(out, "usage: sdrt version\nPrints the host version and the plugin ABI version.\n");
    else
        return 0;
    fflush(out);
    return 1;
}

static int wants_help(int argc, char **argv) {
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
    return 0;
}

static int parse_host_args(host_cli_overrides *ov, int argc, char **argv) {
    for (int i = 2; i < argc; i++) {
        int r = cli_take_host_option(ov, argc, argv, &i);
        if (r < 0) return -1;
        if (r == 0) {
            fprintf(stderr, "sdrt %s: unknown option '%s'\n", argv[1], argv[i]);
            return -1;
        }
    }
    return 0;
}

/* The serving process (supervisor.c forks it): plugins, workers, stdio loop. */
static int serve_child(void *arg) {
    const host_cli_overrides *ov = arg;
    host_ctx h;
    if (host_init(&h, ov, 0) != 0) {
        ledger_set_clean_exit(); /* a start-up error, reported: not a crash */
        return 1;
    }
    log_msg(NULL, SDRT_LOG_INFO, "ready in %.1f ms: %d plugin(s), %d refused", h.t_ready * 1e3, h.plugins.count,
            h.plugins.n_refused);
    ledger_set_ready();
    int rc = server_run(&h, 0, 1);
    ledger_set_clean_exit(); /* what follows (plugin shutdown) is no longer serving */
    host_fini(&h);
    return rc;
}

static int cmd_serve(int argc, char **argv) {
    os_block_stop_signals(); /* until the stdio loop catches them */
    host_cli_overrides ov = {0};
    if (parse_host_args(&ov, argc, argv) != 0) {
        cli_overrides_free(&ov);
        return 2;
    }
    /* The supervisor reads the config only for its limits; a bad config
     * stops here with the message the serving process would give. */
    host_config cfg;
    char err[2048];
    if (config_load(&cfg, &ov, err, sizeof err) != 0) {
        log_msg(NULL, SDRT_LOG_ERROR, "%s", err);
        cli_overrides_free(&ov);
        return 1;
    }
    output_make_bounded();
    int rc = supervisor_serve(&cfg, serve_child, &ov);
    output_fini();
    config_free(&cfg);
    cli_overrides_free(&ov);
    return rc;
}

static int cmd_plugins(int argc, char **argv) {
    host_cli_overrides ov = {0};
    if (parse_host_args(&ov, argc, argv) != 0) {
        cli_overrides_free(&ov);
        return 2;
    }
    host_ctx h;
    if (host_init(&h, &ov, 1) != 0) {
        cli_overrides_free(&ov);
        return 1;
    }
    FILE *out = cli_stdout();
    for (int i = 0; i < h.plugins.count; i++) {
        const sdrt_plugin_desc *d = h.plugins.items[i]->desc;
        fprintf(out, "%-28s %-8s abi %u.%u  %s\n", d->id, d->version, d->abi_major, d->abi_minor,
                h.plugins.items[i]->path);
        fprintf(out, "    ");
        for (int j = 0; d->message_types[j]; j++) fprintf(out, "%s%s", j ? " " : "", d->message_types[j]);
        fprintf(out, "\n");
    }
    for (int i = 0; i < h.plugins.n_refused; i++) {
        const host_refusal *r = &h.plugins.refused[i];
        fprintf(out, "REFUSED %s [%s]: %s\n", r->path, status_name(r->code), r->reason);
        if (r->data_json) fprintf(out, "    error_data: %s\n", r->data_json);
    }
    fflush(out);
    host_fini(&h);
    cli_overrides_free(&ov);
    return 0;
}

static int cmd_version(void) {
    FILE *out = cli_stdout();
    fprintf(out, "sdrt %s (plugin ABI %d.%d)\n", SDRT_HOST_VERSION, SDRT_ABI_MAJOR, SDRT_ABI_MINOR);
    fflush(out);
    return 0;
}

int main(int argc, char **argv) {
    protect_stdout();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (wants_help(argc, argv) && command_help(cmd)) return 0;
    if ((strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) && argc > 2 &&
        command_help(argv[2]))
        return 0;
    if (strcmp(cmd, "serve") == 0) return cmd_serve(argc, argv);
    if (strcmp(cmd, "generate") == 0) return cmd_generate(argc, argv);
    if (strcmp(cmd, "convert") == 0) return cmd_convert(argc, argv);
    if (strcmp(cmd, "plugins") == 0) return cmd_plugins(argc, argv);
    if (strcmp(cmd, "validate-plugin") == 0) return cmd_validate_plugin(argc, argv);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) return cmd_version();
    if (strcmp(cmd, "worker") == 0 || strcmp(cmd, "submit") == 0 || strcmp(cmd, "pool") == 0) {
#ifdef SDRT_HAVE_HIREDIS
        if (strcmp(cmd, "worker") == 0) return cmd_worker(argc, argv);
        if (strcmp(cmd, "submit") == 0) return cmd_submit(argc, argv);
        return cmd_pool(argc, argv);
#else
        fprintf(stderr, "sdrt %s: this sdrt was built without hiredis (the Redis pool commands)\n", cmd);
        return 2;
#endif
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(cli_stdout());
        fflush(cli_stdout());
        return 0;
    }
    fprintf(stderr, "sdrt: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
