/* tests/plugins/noisy.c - prints to stdout through stdio and through fd 1
 * in init and handle, like a chatty library would. The host owns the real
 * stdout, so none of this may reach the protocol stream. */
#include <stdio.h>
#include <unistd.h>

#include "trivial.h"

static void make_noise(const char *where) {
    printf("noisy: printf from %s\n", where);
    fflush(stdout);
    static const char raw[] = "noisy: raw write(1) without a newline... ";
    if (write(1, raw, sizeof raw - 1) < 0) perror("noisy");
}

static sdrt_error *noisy_init(const sdrt_host_api *api, sdrt_host *host, const char *config_json, void **instance) {
    make_noise("init");
    *instance = NULL;
    return NULL;
}

static sdrt_error *noisy_handle(void *instance, const sdrt_request *req, char **result_json) {
    make_noise("handle");
    *result_json = NULL;
    return NULL;
}

static const sdrt_plugin_vtable vtable = {
    SDRT_STRUCT_SIZE(sdrt_plugin_vtable, get_interface), noisy_init, trivial_shutdown, noisy_handle, NULL,
};
static const char *const types[] = {"noisy.run", NULL};
static const sdrt_plugin_desc desc = {
    SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable), SDRT_ABI_MAJOR, SDRT_ABI_MINOR, "org.sdrt.test.noisy", "1.0.0",
    "noisy", "test plugin: prints to stdout", types, &vtable,
};
SDRT_PLUGIN_DEFINE(noisy, desc)
