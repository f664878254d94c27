/* host/main.c - the `sdrt` executable: subcommand dispatch. The very first
 * thing it does is take fd 1 for the protocol (see output.c). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "host.h"
#include "os.h"

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
            "  plugins           list loaded and refused plugins\n"
            "  validate-plugin PATH [--data TYPE=JSON]...\n"
            "                    check a plugin shared object against the ABI contract; --data gives\n"
            "                    a message an input that runs long, for the cancel-while-running check\n"
            "  version           print versions\n"
            "host options (serve, generate, plugins):\n"
            "  --config FILE  --set key=value  --model-root DIR  --output-root DIR  --plugin-path DIR\n"
            "                 --embedding-root DIR\n"
            "  (SDRT_CONFIG=FILE also selects the config)\n");
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

static int cmd_serve(int argc, char **argv) {
    host_cli_overrides ov = {0};
    if (parse_host_args(&ov, argc, argv) != 0) {
        cli_overrides_free(&ov);
        return 2;
    }
    host_ctx h;
    if (host_init(&h, &ov, 0) != 0) {
        cli_overrides_free(&ov);
        return 1;
    }
    log_msg(NULL, SDRT_LOG_INFO, "ready in %.1f ms: %d plugin(s), %d refused", h.t_ready * 1e3, h.plugins.count,
            h.plugins.n_refused);
    int rc = server_run(&h, 0, 1);
    host_fini(&h);
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
    if (strcmp(cmd, "serve") == 0) return cmd_serve(argc, argv);
    if (strcmp(cmd, "generate") == 0) return cmd_generate(argc, argv);
    if (strcmp(cmd, "plugins") == 0) return cmd_plugins(argc, argv);
    if (strcmp(cmd, "validate-plugin") == 0) return cmd_validate_plugin(argc, argv);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) return cmd_version();
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(cli_stdout());
        fflush(cli_stdout());
        return 0;
    }
    fprintf(stderr, "sdrt: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
