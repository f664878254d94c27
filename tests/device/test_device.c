/* tests/device/test_device.c - the device plugin's probes and messages. */
#define _GNU_SOURCE
#include "harness.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "backends.h"
#include "config.h"
#include "cpu_probe.h"
#include "cuda_probe.h"
#include "fake_host.h"
#include "inventory.h"
#include "messages.h"
#include "vulkan_probe.h"

/* The value of the first "key : value" line of /proc/cpuinfo, trimmed. */
static int cpuinfo_field(const char *key, char *out, size_t n) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return 0;
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon || strncmp(line, key, strlen(key)) != 0) continue;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') v++;
        snprintf(out, n, "%s", v);
        size_t len = strlen(out);
        while (len && (out[len - 1] == '\n' || out[len - 1] == ' ')) out[--len] = 0;
        found = 1;
    }
    fclose(f);
    return found;
}

static int has_flag(const char *flags, const char *flag) {
    size_t n = strlen(flag);
    for (const char *p = flags; (p = strstr(p, flag)) != NULL; p += n)
        if ((p == flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0)) return 1;
    return 0;
}

static void test_cpu_probe(void) {
    cpuprobe_info info;
    cpuprobe_run(&info);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    CHECK(info.threads == online, "threads %d, sysconf says %ld", info.threads, online);
    CHECK(info.cores >= 1 && info.cores <= info.threads, "cores %d of %d threads", info.cores, info.threads);
    CHECK(info.threads_available >= 1 && info.threads_available <= info.threads, "available %d",
          info.threads_available);
    CHECK(info.mem_total > 0 && info.mem_available <= info.mem_total, "memory %llu / %llu",
          (unsigned long long)info.mem_available, (unsigned long long)info.mem_total);
    char model[256];
    if (cpuinfo_field("model name", model, sizeof model))
        CHECK(strcmp(model, info.model) == 0, "model '%s', /proc/cpuinfo says '%s'", info.model, model);
    char flags[8192];
    if (strcmp(info.arch, "x86_64") != 0 || !cpuinfo_field("flags", flags, sizeof flags)) {
        fprintf(stderr, "# not x86-64 Linux: feature check skipped\n");
        return;
    }
    /* our name -> the kernel's flag name */
    static const char *const map[][2] = {
        {"sse4.2", "sse4_2"}, {"avx", "avx"}, {"avx2", "avx2"}, {"fma", "fma"}, {"f16c", "f16c"},
        {"avx512f", "avx512f"}, {"avx512bw", "avx512bw"}, {"avx512vl", "avx512vl"},
        {"avx512_bf16", "avx512_bf16"}, {"avx512_vnni", "avx512_vnni"}, {"amx", "amx_tile"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        CHECK(cpuprobe_has(&info, map[i][0]) == has_flag(flags, map[i][1]), "%s: probe %d, /proc/cpuinfo %d",
              map[i][0], cpuprobe_has(&info, map[i][0]), has_flag(flags, map[i][1]));
}

static void test_meminfo_parse(void) {
    const char *modern = "MemTotal:       16318564 kB\nMemFree:          512000 kB\n"
                         "MemAvailable:   12000000 kB\nBuffers:          100000 kB\nCached:  2000000 kB\n";
    uint64_t total = 0, avail = 0;
    CHECK(cpuprobe_parse_meminfo(modern, &total, &avail) == 0, "modern meminfo refused");
    CHECK(total == 16318564ull * 1024 && avail == 12000000ull * 1024, "got %llu / %llu",
          (unsigned long long)total, (unsigned long long)avail);
    const char *old = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 20 kB\nCached: 300 kB\nSwapCached: 7 kB\n";
    CHECK(cpuprobe_parse_meminfo(old, &total, &avail) == 0, "old meminfo refused");
    CHECK(total == 1000 * 1024 && avail == 420 * 1024, "old: %llu / %llu", (unsigned long long)total,
          (unsigned long long)avail);
    CHECK(cpuprobe_parse_meminfo("MemFree: 1 kB\n", &total, &avail) == -1, "meminfo without MemTotal accepted");
    CHECK(cpuprobe_parse_meminfo("", &total, &avail) == -1, "empty meminfo accepted");
}

static void test_cuda_missing(void) {
    static const char *const none[] = {"libcuda_missing_for_test.so.9", NULL};
    cudaprobe_libs libs = {none, none, none};
    cudaprobe_report r;
    cudaprobe_run(&libs, &r);
    CHECK(!r.available, "CUDA available through a missing library");
    CHECK(r.count == 0, "count %d", r.count);
    CHECK(strstr(r.reason, "not found") != NULL, "reason '%s'", r.reason);
    /* the default probe must also come back with a verdict, whatever the machine */
    cudaprobe_run(NULL, &r);
    CHECK(r.available ? r.count > 0 && r.dev[0].mem_total > 0 : r.reason[0] != 0, "default probe: %d '%s'",
          r.available, r.reason);
    if (r.available)
        fprintf(stderr, "# CUDA: %s cc %d.%d, %llu MiB\n", r.dev[0].name, r.dev[0].cc_major, r.dev[0].cc_minor,
                (unsigned long long)(r.dev[0].mem_total >> 20));
}

static void test_vulkan_probe(void) {
    void *loader = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!loader) {
        fprintf(stderr, "# libvulkan.so.1 not present: Vulkan probe check skipped\n");
        return;
    }
    dlclose(loader);
    int lavapipe = access("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json", F_OK) == 0 ||
                   access("/usr/share/vulkan/icd.d/lvp_icd.aarch64.json", F_OK) == 0;
    vkprobe_report r;
    vkprobe_run(NULL, &r);
    if (!lavapipe && !r.available) {
        fprintf(stderr, "# no lavapipe ICD and no driver: %s\n", r.reason);
        return;
    }
    REQUIRE(r.available && r.count >= 1, "Vulkan probe found nothing: %s", r.reason);
    int cpu_type = 0;
    for (int i = 0; i < r.count; i++) {
        CHECK(r.dev[i].name[0] && r.dev[i].nheaps >= 1 && r.dev[i].heaps[0].size > 0, "device %d incomplete", i);
        CHECK(r.dev[i].api_version >= (1u << 22), "device %d api version %u", i, r.dev[i].api_version);
        cpu_type |= strcmp(r.dev[i].type, "cpu") == 0;
    }
    if (lavapipe) CHECK(cpu_type, "lavapipe did not show up as a cpu-type device");
    static const char *const none[] = {"libvulkan_missing_for_test.so.7", NULL};
    vkprobe_run(none, &r);
    CHECK(!r.available && strstr(r.reason, "not found"), "missing loader: %d '%s'", r.available, r.reason);
}

static void test_config(void) {
    devcfg cfg;
    char err[256] = "";
    CHECK(devcfg_parse(&cfg, NULL, "/opt/sdrt/lib/sdrt/plugins", err, sizeof err) == 0, "%s", err);
    CHECK(strcmp(cfg.backends_dir, "/opt/sdrt/lib/sdrt/plugins/../backends") == 0, "dir %s", cfg.backends_dir);
    CHECK(strcmp(cfg.device, "auto") == 0, "device %s", cfg.device);
    devcfg_free(&cfg);
    CHECK(devcfg_parse(&cfg, "{\"device\":\"cuda:1\",\"threads\":3,\"backends\":{\"cpu\":{\"x\":1}}}", ".", err,
                       sizeof err) == 0, "%s", err);
    char *fam = devcfg_family_json(&cfg, "cpu");
    CHECK(fam && strcmp(fam, "{\"x\":1,\"threads\":3}") == 0, "family json %s", fam ? fam : "(null)");
    free(fam);
    devcfg_free(&cfg);
    CHECK(devcfg_parse(&cfg, "{\"device\":\"tpu:0\"}", ".", err, sizeof err) != 0 && strncmp(err, "device:", 7) == 0,
          "bad device: '%s'", err);
    CHECK(devcfg_parse(&cfg, "{\"threads\":-2}", ".", err, sizeof err) != 0 && strncmp(err, "threads:", 8) == 0,
          "bad threads: '%s'", err);
    CHECK(devcfg_parse(&cfg, "[1]", ".", err, sizeof err) != 0, "array config accepted");
}

static void test_backend_names(void) {
    char fam[32];
    CHECK(devbackends_match("sdrt_backend_cpu.so", fam, sizeof fam) && strcmp(fam, "cpu") == 0, "cpu: %s", fam);
    CHECK(!devbackends_match("sdrt_backend_.so", fam, sizeof fam), "empty family accepted");
    CHECK(!devbackends_match("libfoo.so", fam, sizeof fam), "libfoo accepted");
    CHECK(!devbackends_match("sdrt_backend_cpu.so.1", fam, sizeof fam), "versioned name accepted");
    devbackends b;
    devcfg cfg;
    char err[64];
    devcfg_parse(&cfg, NULL, ".", err, sizeof err);
    CHECK(devbackends_load(&b, "/nonexistent/sdrt/backends", fake_host_api(), NULL, &cfg) == 0, "loaded from nowhere");
    CHECK(fake_host_logged("cannot read backends_dir"), "missing folder not logged");
    devbackends_unload(&b);
}

/* --- the built plugin through its entry point ------------------------------ */

typedef struct loaded_plugin {
    void *so;
    const sdrt_plugin_desc *desc;
    void *inst;
} loaded_plugin;

static int load_plugin(loaded_plugin *lp, const char *config) {
    memset(lp, 0, sizeof *lp);
    lp->so = dlopen(SDRT_DEVICE_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
    if (!lp->so) {
        test_fail_(__FILE__, __LINE__, "dlopen %s: %s", SDRT_DEVICE_PLUGIN_PATH, dlerror());
        return -1;
    }
    sdrt_plugin_entry_fn entry = (sdrt_plugin_entry_fn)dlsym(lp->so, SDRT_PLUGIN_ENTRY_SYMBOL);
    lp->desc = entry ? entry() : NULL;
    if (!lp->desc) return -1;
    sdrt_error *e = lp->desc->vtable->init(fake_host_api(), NULL, config, &lp->inst);
    if (e) {
        test_fail_(__FILE__, __LINE__, "init: %s", e->message);
        fake_host_api()->error_free(e);
        return -1;
    }
    return 0;
}

static void unload_plugin(loaded_plugin *lp) {
    if (lp->desc && lp->inst) lp->desc->vtable->shutdown(lp->inst);
    if (lp->so) dlclose(lp->so);
}

/* Sends one message; returns the parsed result, or NULL with *code set. */
static cJSON *send(loaded_plugin *lp, const char *type, const char *data, sdrt_status *code, char *msg, size_t n) {
    sdrt_request req = {SDRT_STRUCT_SIZE(sdrt_request, deadline), type, "t1", data, NULL, 0};
    char *out = NULL;
    sdrt_error *e = lp->desc->vtable->handle(lp->inst, &req, &out);
    *code = e ? e->code : SDRT_OK;
    if (e) {
        snprintf(msg, n, "%s", e->message);
        fake_host_api()->error_free(e);
        return NULL;
    }
    cJSON *r = cJSON_Parse(out ? out : "{}");
    free(out);
    return r;
}

static void check_device_shape(const cJSON *d) {
    static const char *const strings[] = {"id", "backend", "name", "type"};
    for (int i = 0; i < 4; i++)
        CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(d, strings[i])), "device.%s not a string", strings[i]);
    const cJSON *total = cJSON_GetObjectItemCaseSensitive(d, "memory_total");
    const cJSON *fre = cJSON_GetObjectItemCaseSensitive(d, "memory_free");
    CHECK(cJSON_IsNumber(total), "memory_total not a number");
    CHECK(cJSON_IsNumber(fre) || cJSON_IsNull(fre), "memory_free neither number nor null");
    CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(d, "features")), "features not an array");
    CHECK(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(d, "compute")), "compute not a boolean");
}

static void check_runtime_shape(const cJSON *backends, const char *name) {
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(backends, name);
    REQUIRE(cJSON_IsObject(b), "backends.%s missing", name);
    const cJSON *avail = cJSON_GetObjectItemCaseSensitive(b, "available");
    CHECK(cJSON_IsBool(avail), "backends.%s.available not a boolean", name);
    if (cJSON_IsFalse(avail))
        CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(b, "reason")), "backends.%s without a reason", name);
}

static void test_plugin_list(void) {
    loaded_plugin lp;
    if (load_plugin(&lp, "{}") != 0) {
        unload_plugin(&lp);
        return;
    }
    CHECK(strcmp(lp.desc->id, "org.sdrt.device") == 0 && strcmp(lp.desc->domain, "device") == 0, "descriptor");
    sdrt_status code;
    char msg[512];
    cJSON *r = send(&lp, "device.list", "{}", &code, msg, sizeof msg);
    REQUIRE(r, "device.list failed: %s", msg);
    const cJSON *devs = cJSON_GetObjectItemCaseSensitive(r, "devices"), *d;
    CHECK(cJSON_IsArray(devs) && cJSON_GetArraySize(devs) >= 1, "devices missing");
    int cpu0 = 0;
    cJSON_ArrayForEach(d, devs) {
        check_device_shape(d);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(d, "id");
        cpu0 |= cJSON_IsString(id) && strcmp(id->valuestring, "cpu:0") == 0;
    }
    CHECK(cpu0, "no cpu:0 in device.list");
    const cJSON *backends = cJSON_GetObjectItemCaseSensitive(r, "backends");
    check_runtime_shape(backends, "cuda");
    check_runtime_shape(backends, "vulkan");
    /* with the CPU backend built beside the plugin, cpu:0 computes by default */
    const sdrt_backend_iface *bi = lp.desc->vtable->get_interface(lp.inst, SDRT_BACKEND_IFACE_ID);
    REQUIRE(bi && fake_host_published(SDRT_BACKEND_IFACE_ID) == bi, "backend interface not published");
    if (bi->reg_count(bi->self) > 0) {
        const cJSON *def = cJSON_GetObjectItemCaseSensitive(r, "default_device");
        CHECK(bi->default_device(bi->self) != NULL, "no default device with %zu families", bi->reg_count(bi->self));
        CHECK(cJSON_IsString(def), "default_device not reported");
    } else {
        fprintf(stderr, "# no backend family built: compute checks skipped\n");
    }
    cJSON_Delete(r);
    unload_plugin(&lp);
}

static void test_plugin_info_memory(void) {
    loaded_plugin lp;
    if (load_plugin(&lp, "{\"device\":\"cuda:0\",\"threads\":1}") != 0) {
        unload_plugin(&lp);
        return;
    }
    sdrt_status code;
    char msg[512];
    cJSON *r = send(&lp, "device.info", "{\"device\":\"cpu:0\"}", &code, msg, sizeof msg);
    REQUIRE(r, "device.info cpu:0 failed: %s", msg);
    const cJSON *threads = cJSON_GetObjectItemCaseSensitive(r, "threads");
    CHECK(cJSON_IsNumber(threads) && threads->valuedouble == sysconf(_SC_NPROCESSORS_ONLN), "threads");
    cJSON_Delete(r);
    r = send(&lp, "device.info", "{\"device\":\"cuda:7\"}", &code, msg, sizeof msg);
    CHECK(!r && code == SDRT_NOT_FOUND && strstr(msg, "\"cuda:7\""), "unknown device: %d '%s'", (int)code, msg);
    cJSON_Delete(r);
    r = send(&lp, "device.info", "{}", &code, msg, sizeof msg);
    CHECK(!r && code == SDRT_INVALID_ARGUMENT && strncmp(msg, "device:", 7) == 0, "missing device: '%s'", msg);
    cJSON_Delete(r);
    r = send(&lp, "device.memory", "{}", &code, msg, sizeof msg);
    REQUIRE(r, "device.memory failed: %s", msg);
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "devices"), 0);
    const cJSON *total = cJSON_GetObjectItemCaseSensitive(first, "memory_total");
    CHECK(cJSON_IsNumber(total) && total->valuedouble > 0, "cpu memory_total");
    cJSON_Delete(r);
    r = send(&lp, "device.memory", "{\"device\":\"vulkan:99\"}", &code, msg, sizeof msg);
    CHECK(!r && code == SDRT_NOT_FOUND, "memory of an unknown device: %d", (int)code);
    cJSON_Delete(r);
    r = send(&lp, "device.frobnicate", "{}", &code, msg, sizeof msg);
    CHECK(!r && code == SDRT_UNKNOWN_TYPE, "unknown type: %d", (int)code);
    cJSON_Delete(r);
    unload_plugin(&lp);
}

static void test_plugin_bad_config(void) {
    void *so = dlopen(SDRT_DEVICE_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
    REQUIRE(so, "dlopen: %s", dlerror());
    const sdrt_plugin_desc *desc = ((sdrt_plugin_entry_fn)dlsym(so, SDRT_PLUGIN_ENTRY_SYMBOL))();
    void *inst = NULL;
    sdrt_error *e = desc->vtable->init(fake_host_api(), NULL, "{\"threads\":\"many\"}", &inst);
    CHECK(e && e->code == SDRT_INVALID_ARGUMENT && strstr(e->message, "threads"), "bad config accepted");
    fake_host_api()->error_free(e);
    /* a backends_dir that does not exist is a normal start without compute */
    e = desc->vtable->init(fake_host_api(), NULL, "{\"backends_dir\":\"/nonexistent\"}", &inst);
    CHECK(!e, "missing backends_dir failed the start");
    if (!e) desc->vtable->shutdown(inst);
    fake_host_api()->error_free(e);
    dlclose(so);
}

const test_entry TESTS[] = {
    {"cpu_probe", test_cpu_probe},
    {"meminfo_parse", test_meminfo_parse},
    {"cuda_missing", test_cuda_missing},
    {"vulkan_probe", test_vulkan_probe},
    {"config", test_config},
    {"backend_names", test_backend_names},
    {"plugin_list", test_plugin_list},
    {"plugin_info_memory", test_plugin_info_memory},
    {"plugin_bad_config", test_plugin_bad_config},
    {0},
};
