/* tests/device/test_device.c - the device plugin's probes and messages. */
#define _GNU_SOURCE
#include "harness.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "backends.h"
#include "config.h"
#include "cpu_probe.h"
#include "cuda_probe.h"
#include "fake_host.h"
#include "gpu_probe.h"
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

/* --- in-process probes, each in a forked child ----------------------------
 *
 * The probe functions themselves (cudaprobe_run, vkprobe_run) are checked
 * directly, but never in this process: loading a GPU stack here maps it for
 * good (the lazy check below relies on that not happening), and the Vulkan
 * loader unloads Mesa's lavapipe again at vkDestroyInstance, which leaves a
 * buffer lavapipe allocated once (pthread_once) unreachable; LeakSanitizer
 * then reports 256 bytes "from <unknown module>" at exit and fails the ASan
 * stage. The child runs the probe exactly as the caller asked, hands the
 * report struct back through a pipe and leaves with _exit, like the real
 * helper sdrt-gpu-probe does: its driver stack dies with it. The reports
 * hold pointers only to string literals of this executable (vkprobe_device.
 * type), which the forked child shares at the same addresses. */

static int read_full(int fd, void *buf, size_t n) {
    char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Runs cudaprobe_run(cuda_libs, cuda) and/or vkprobe_run(vk_loaders, vk)
 * (NULL report = not run) in a forked child. Returns 0, or -1 after
 * recording a test failure. */
static int probe_in_child(const cudaprobe_libs *cuda_libs, cudaprobe_report *cuda, const char *const *vk_loaders,
                          vkprobe_report *vk) {
    int fds[2];
    if (pipe(fds) != 0) {
        test_fail_(__FILE__, __LINE__, "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        test_fail_(__FILE__, __LINE__, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        int rc = 0;
        if (cuda) {
            cudaprobe_run(cuda_libs, cuda);
            rc |= write_full(fds[1], cuda, sizeof *cuda);
        }
        if (vk) {
            vkprobe_run(vk_loaders, vk);
            rc |= write_full(fds[1], vk, sizeof *vk);
        }
        _exit(rc == 0 ? 0 : 1);
    }
    close(fds[1]);
    int bad = (cuda && read_full(fds[0], cuda, sizeof *cuda) != 0) || (vk && read_full(fds[0], vk, sizeof *vk) != 0);
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (bad || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        test_fail_(__FILE__, __LINE__, "in-process probe child failed (status 0x%x, short report %d)", status, bad);
        return -1;
    }
    return 0;
}

static void local_cuda(const cudaprobe_libs *libs, cudaprobe_report *r) {
    if (probe_in_child(libs, r, NULL, NULL) != 0) memset(r, 0, sizeof *r);
}

static void local_vulkan(const char *const *loaders, vkprobe_report *r) {
    if (probe_in_child(NULL, NULL, loaders, r) != 0) memset(r, 0, sizeof *r);
}

static void test_cuda_missing(void) {
    static const char *const none[] = {"libcuda_missing_for_test.so.9", NULL};
    cudaprobe_libs libs = {none, none, none};
    cudaprobe_report r;
    local_cuda(&libs, &r);
    CHECK(!r.available, "CUDA available through a missing library");
    CHECK(r.count == 0, "count %d", r.count);
    CHECK(strstr(r.reason, "not found") != NULL, "reason '%s'", r.reason);
    /* the default probe must also come back with a verdict, whatever the machine */
    local_cuda(NULL, &r);
    CHECK(r.available ? r.count > 0 && r.dev[0].mem_total > 0 : r.reason[0] != 0, "default probe: %d '%s'",
          r.available, r.reason);
    if (r.available)
        fprintf(stderr, "# CUDA: %s cc %d.%d, %llu MiB\n", r.dev[0].name, r.dev[0].cc_major, r.dev[0].cc_minor,
                (unsigned long long)(r.dev[0].mem_total >> 20));
}

static void test_vulkan_probe(void) {
    static vkprobe_report r;
    local_vulkan(NULL, &r);
    if (!r.available && strstr(r.reason, "loader not found")) {
        fprintf(stderr, "# no Vulkan loader: Vulkan probe check skipped (%s)\n", r.reason);
        return;
    }
    int lavapipe = access("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json", F_OK) == 0 ||
                   access("/usr/share/vulkan/icd.d/lvp_icd.aarch64.json", F_OK) == 0;
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
    local_vulkan(none, &r);
    CHECK(!r.available && strstr(r.reason, "not found"), "missing loader: %d '%s'", r.available, r.reason);
}

/* --- the GPU probes out of process ---------------------------------------- */

static void same_cuda(const cudaprobe_report *a, const cudaprobe_report *b) {
    CHECK(a->available == b->available && a->count == b->count, "CUDA: helper %d/%d, in process %d/%d",
          a->available, a->count, b->available, b->count);
    CHECK(strcmp(a->reason, b->reason) == 0, "CUDA reason: helper '%s', in process '%s'", a->reason, b->reason);
    CHECK(strcmp(a->driver_lib, b->driver_lib) == 0 && a->driver_version == b->driver_version &&
          a->runtime_version == b->runtime_version, "CUDA driver/runtime differ");
    for (int i = 0; i < a->count && i < b->count; i++) {
        const cudaprobe_device *x = &a->dev[i], *y = &b->dev[i];
        /* free memory moves between the two probes: only totals compare */
        CHECK(strcmp(x->name, y->name) == 0 && strcmp(x->pci_bus_id, y->pci_bus_id) == 0 &&
              x->cc_major == y->cc_major && x->cc_minor == y->cc_minor && x->multiprocessors == y->multiprocessors &&
              x->mem_total == y->mem_total && x->mem_free_known == y->mem_free_known, "CUDA device %d differs", i);
    }
}

static void same_vulkan(const vkprobe_report *a, const vkprobe_report *b) {
    CHECK(a->available == b->available && a->count == b->count, "Vulkan: helper %d/%d, in process %d/%d",
          a->available, a->count, b->available, b->count);
    CHECK(strcmp(a->reason, b->reason) == 0, "Vulkan reason: helper '%s', in process '%s'", a->reason, b->reason);
    CHECK(strcmp(a->loader_lib, b->loader_lib) == 0 && a->instance_version == b->instance_version,
          "Vulkan loader differs: '%s' %u vs '%s' %u", a->loader_lib, a->instance_version, b->loader_lib,
          b->instance_version);
    for (int i = 0; i < a->count && i < b->count; i++) {
        const vkprobe_device *x = &a->dev[i], *y = &b->dev[i];
        CHECK(strcmp(x->name, y->name) == 0 && strcmp(x->type, y->type) == 0, "Vulkan device %d: '%s' %s vs '%s' %s",
              i, x->name, x->type, y->name, y->type);
        CHECK(x->api_version == y->api_version && x->driver_version == y->driver_version &&
              x->vendor_id == y->vendor_id && x->device_id == y->device_id, "Vulkan device %d ids differ", i);
        CHECK(x->nheaps == y->nheaps && x->device_local_bytes == y->device_local_bytes &&
              memcmp(x->heaps, y->heaps, sizeof x->heaps) == 0, "Vulkan device %d heaps differ", i);
    }
}

/* Every child the probe started has been reaped. */
static void check_no_children(void) {
    errno = 0;
    CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, "a probe helper was left behind");
}

static void test_gpu_probe_same(void) {
    static cudaprobe_report cuda_helper, cuda_local;
    static vkprobe_report vk_helper, vk_local;
    gpuprobe_run(SDRT_GPU_PROBE_HELPER, GPUPROBE_TIMEOUT_MS, &cuda_helper, &vk_helper);
    check_no_children();
    local_cuda(NULL, &cuda_local);
    local_vulkan(NULL, &vk_local);
    same_cuda(&cuda_helper, &cuda_local);
    same_vulkan(&vk_helper, &vk_local);
    fprintf(stderr, "# helper: CUDA %s; Vulkan %d device(s)%s%s\n", cuda_helper.available ? "yes" : cuda_helper.reason,
            vk_helper.count, vk_helper.available ? "" : ": ", vk_helper.reason);
    /* one family alone leaves the other untouched */
    memset(&vk_helper, 0x5a, sizeof vk_helper);
    gpuprobe_run(SDRT_GPU_PROBE_HELPER, GPUPROBE_TIMEOUT_MS, &cuda_helper, NULL);
    same_cuda(&cuda_helper, &cuda_local);
    CHECK(vk_helper.count == 0x5a5a5a5a, "Vulkan report written though not asked for");
}

static void test_gpu_probe_missing_helper(void) {
    static cudaprobe_report cuda;
    static vkprobe_report vk;
    gpuprobe_run("/nonexistent/sdrt-gpu-probe", 1000, &cuda, &vk);
    CHECK(!cuda.available && cuda.count == 0 && strstr(cuda.reason, "CUDA not probed") &&
          strstr(cuda.reason, "/nonexistent/sdrt-gpu-probe") && strstr(cuda.reason, "No such file"),
          "CUDA reason '%s'", cuda.reason);
    CHECK(!vk.available && vk.count == 0 && strstr(vk.reason, "Vulkan not probed"), "Vulkan reason '%s'", vk.reason);
    gpuprobe_run(NULL, 1000, NULL, &vk);
    CHECK(!vk.available && strstr(vk.reason, "folder is unknown"), "no helper path: '%s'", vk.reason);
}

/* Without NVML or a driver every figure comes back unknown, never stale. */
static void test_gpu_probe_cuda_memory(void) {
    static cudaprobe_report r;
    memset(&r, 0, sizeof r);
    r.count = 2;
    for (int i = 0; i < r.count; i++) {
        snprintf(r.dev[i].pci_bus_id, sizeof r.dev[i].pci_bus_id, "00000000:0%d:00.0", i + 1);
        r.dev[i].mem_free = 123;
        r.dev[i].mem_free_known = 1;
    }
    gpuprobe_cuda_memory(SDRT_GPU_PROBE_HELPER, GPUPROBE_TIMEOUT_MS, &r);
    CHECK(r.dev[0].mem_free_known && r.dev[0].mem_free == 123, "an unavailable report was refreshed");
    r.available = 1;
    gpuprobe_cuda_memory(SDRT_GPU_PROBE_HELPER, GPUPROBE_TIMEOUT_MS, &r);
    check_no_children();
    static cudaprobe_report local;
    local_cuda(NULL, &local);
    if (local.available) {
        fprintf(stderr, "# a CUDA driver is present: the fake bus ids may match nothing or a real GPU\n");
        return;
    }
    for (int i = 0; i < r.count; i++)
        CHECK(!r.dev[i].mem_free_known && r.dev[i].mem_free == 0, "device %d: free %llu known %d", i,
              (unsigned long long)r.dev[i].mem_free, r.dev[i].mem_free_known);
    r.dev[0].mem_free_known = 1;
    gpuprobe_cuda_memory("/nonexistent/sdrt-gpu-probe", 1000, &r);
    CHECK(!r.dev[0].mem_free_known, "a missing helper left a free figure known");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Runs the fake helper in `mode` with a 300 ms budget; returns the seconds
 * it took. */
static double faulty_probe(const char *mode, cudaprobe_report *cuda, vkprobe_report *vk) {
    setenv("SDRT_FAKE_GPU_PROBE", mode, 1);
    double t0 = now_s();
    gpuprobe_run(SDRT_FAKE_GPU_PROBE_PATH, 300, cuda, vk);
    double dt = now_s() - t0;
    unsetenv("SDRT_FAKE_GPU_PROBE");
    check_no_children();
    return dt;
}

static void test_gpu_probe_faults(void) {
    static cudaprobe_report cuda, cuda_local;
    static vkprobe_report vk;
    double dt = faulty_probe("hang", &cuda, &vk);
    CHECK(dt >= 0.29 && dt < 2.0, "a hung helper held the probe %.3f s (budget 0.3 s, both families at once)", dt);
    CHECK(!cuda.available && strstr(cuda.reason, "CUDA probe timed out after 300 ms"), "hang: '%s'", cuda.reason);
    CHECK(!vk.available && strstr(vk.reason, "Vulkan probe timed out"), "hang: '%s'", vk.reason);
    faulty_probe("crash", &cuda, &vk);
    CHECK(!vk.available && vk.count == 0 && strstr(vk.reason, "Vulkan probe crashed") &&
          strstr(vk.reason, "signal 11"), "crash: '%s'", vk.reason);
    faulty_probe("short", &cuda, &vk);
    CHECK(!vk.available && strstr(vk.reason, "exited with status 0 after 5 of"), "short: '%s'", vk.reason);
    faulty_probe("fail", &cuda, &vk);
    CHECK(!cuda.available && strstr(cuda.reason, "exited with status 3"), "fail: '%s'", cuda.reason);
    faulty_probe("foreign", &cuda, &vk);
    CHECK(!vk.available && vk.count == 0 && strstr(vk.reason, "reinstall sdrt-gpu-probe"), "foreign: '%s'", vk.reason);
    /* a crash in one family's driver is that family's error only */
    faulty_probe("crash:vulkan", &cuda, &vk);
    local_cuda(NULL, &cuda_local);
    same_cuda(&cuda, &cuda_local);
    CHECK(!vk.available && strstr(vk.reason, "Vulkan probe crashed"), "crash:vulkan: '%s'", vk.reason);
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
    /* extra_backends: test-only families outside backends_dir, whose
     * devices "device" may then name. */
    CHECK(devcfg_parse(&cfg, "{\"extra_backends\":[\"/t/sdrt_backend_strict.so\"],\"device\":\"strict:0\"}", ".",
                       err, sizeof err) == 0, "%s", err);
    CHECK(cfg.extra_count == 1 && strcmp(cfg.extra_backends[0], "/t/sdrt_backend_strict.so") == 0 &&
              strcmp(cfg.device, "strict:0") == 0, "extra %d %s device %s", cfg.extra_count, cfg.extra_backends[0],
          cfg.device);
    devcfg_free(&cfg);
    CHECK(devcfg_parse(&cfg, "{\"device\":\"strict:0\"}", ".", err, sizeof err) != 0 && strncmp(err, "device:", 7) == 0,
          "a family not in extra_backends accepted: '%s'", err);
    CHECK(devcfg_parse(&cfg, "{\"extra_backends\":\"/t/x.so\"}", ".", err, sizeof err) != 0 &&
              strncmp(err, "extra_backends:", 15) == 0, "string extra_backends: '%s'", err);
    CHECK(devcfg_parse(&cfg, "{\"extra_backends\":[3]}", ".", err, sizeof err) != 0 &&
              strncmp(err, "extra_backends[0]:", 18) == 0, "number in extra_backends: '%s'", err);
}

/* The host's top-level "device" (sdrt serve --set device=vulkan:0): used
 * when the plugin config names none, the plugin's own key wins, a value
 * that is no device id is refused naming the top-level key. */
static void test_config_host_device(void) {
    devcfg cfg;
    char err[256] = "";
    REQUIRE(devcfg_parse(&cfg, "{\"threads\":2}", ".", err, sizeof err) == 0, "%s", err);
    CHECK(devcfg_host_device(&cfg, "vulkan:0", err, sizeof err) == 0 && strcmp(cfg.device, "vulkan:0") == 0 &&
              strcmp(cfg.device_source, "host") == 0, "top-level only: %s (%s) %s", cfg.device, cfg.device_source, err);
    devcfg_free(&cfg);
    REQUIRE(devcfg_parse(&cfg, "{\"device\":\"cpu\"}", ".", err, sizeof err) == 0, "%s", err);
    CHECK(devcfg_host_device(&cfg, "vulkan:0", err, sizeof err) == 0 && strcmp(cfg.device, "cpu") == 0 &&
              strcmp(cfg.device_source, "config") == 0 && strcmp(cfg.host_device, "vulkan:0") == 0,
          "both: %s (%s)", cfg.device, cfg.device_source);
    devcfg_free(&cfg);
    REQUIRE(devcfg_parse(&cfg, NULL, ".", err, sizeof err) == 0, "%s", err);
    CHECK(devcfg_host_device(&cfg, NULL, err, sizeof err) == 0 && strcmp(cfg.device, "auto") == 0 &&
              strcmp(cfg.device_source, "default") == 0, "neither: %s", cfg.device);
    CHECK(devcfg_host_device(&cfg, "gpu please", err, sizeof err) != 0 && strstr(err, "device (top-level)") &&
              strstr(err, "gpu please"), "bad top-level device: '%s'", err);
    devcfg_free(&cfg);
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

static int load_plugin_at(loaded_plugin *lp, const char *path, const char *config) {
    memset(lp, 0, sizeof *lp);
    lp->so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lp->so) {
        test_fail_(__FILE__, __LINE__, "dlopen %s: %s", path, dlerror());
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

static int load_plugin(loaded_plugin *lp, const char *config) {
    return load_plugin_at(lp, SDRT_DEVICE_PLUGIN_PATH, config);
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

/* Non-zero if this process maps a Vulkan loader or LLVM (lavapipe). */
static int gpu_stack_mapped(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return 0;
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) found = strstr(line, "libvulkan") || strstr(line, "libLLVM");
    fclose(f);
    return found;
}

/* The point of the lazy, out-of-process probe: neither init nor the
 * device.* answers map a GPU stack into the host. Runs first, so that a
 * failure of no_gpu_stack_here (last) is not mistaken for one of this. */
static void test_plugin_lazy(void) {
    if (gpu_stack_mapped()) {
        fprintf(stderr, "# a GPU stack is already mapped in this process: lazy check skipped\n");
        return;
    }
    loaded_plugin lp;
    if (load_plugin(&lp, "{}") != 0) {
        unload_plugin(&lp);
        return;
    }
    CHECK(!gpu_stack_mapped(), "init mapped a GPU stack");
    CHECK(fake_host_logged("Vulkan:") == 0 && fake_host_logged("CUDA:") == 0, "init probed the GPUs");
    sdrt_status code;
    char msg[512];
    cJSON *r = send(&lp, "device.list", "{}", &code, msg, sizeof msg);
    CHECK(r != NULL, "device.list: %s", msg);
    cJSON_Delete(r);
    r = send(&lp, "device.memory", "{}", &code, msg, sizeof msg);
    CHECK(r != NULL, "device.memory: %s", msg);
    cJSON_Delete(r);
    CHECK(!gpu_stack_mapped(), "device.list mapped a GPU stack into the host");
    check_no_children();
    unload_plugin(&lp);
}

/* The plugin as device.list answers it: the vulkan entry, the list of ids. */
static void list_vulkan_and_ids(cJSON *r, const cJSON **vulkan, char *ids, size_t n) {
    *vulkan = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "backends"), "vulkan");
    const cJSON *d;
    size_t o = 0;
    ids[0] = 0;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(r, "devices")) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(d, "id");
        int w = snprintf(ids + o, n - o, "%s ", cJSON_IsString(id) ? id->valuestring : "?");
        o += w > 0 && (size_t)w < n - o ? (size_t)w : 0;
    }
}

/* The plugin alone in a fresh folder (with `helper` linked in as its
 * sdrt-gpu-probe when non-NULL), serving with the built CPU backend. */
static int load_plugin_alone(loaded_plugin *lp, const char *helper) {
    const char *dir = test_tmpdir();
    char so[4096], cmd[8400], cfg[4200], link[4200];
    snprintf(so, sizeof so, "%s/sdrt_device.so", dir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", SDRT_DEVICE_PLUGIN_PATH, so);
    if (system(cmd) != 0) {
        test_fail_(__FILE__, __LINE__, "%s failed", cmd);
        return -1;
    }
    snprintf(link, sizeof link, "%s/" GPUPROBE_HELPER_NAME, dir);
    if (helper && symlink(helper, link) != 0) {
        test_fail_(__FILE__, __LINE__, "symlink %s: %s", link, strerror(errno));
        return -1;
    }
    snprintf(cfg, sizeof cfg, "{\"backends_dir\":\"%s\"}", SDRT_BACKENDS_DIR);
    return load_plugin_at(lp, so, cfg);
}

static void test_plugin_helper_missing(void) {
    loaded_plugin lp;
    if (load_plugin_alone(&lp, NULL) != 0) {
        unload_plugin(&lp);
        return;
    }
    sdrt_status code;
    char msg[512], ids[512];
    cJSON *r = send(&lp, "device.list", "{}", &code, msg, sizeof msg);
    REQUIRE(r, "device.list without a helper failed: %s", msg);
    const cJSON *vk, *reason;
    list_vulkan_and_ids(r, &vk, ids, sizeof ids);
    reason = cJSON_GetObjectItemCaseSensitive(vk, "reason");
    CHECK(strncmp(ids, "cpu:0 ", 6) == 0 && !strstr(ids, "vulkan"), "devices without a helper: %s", ids);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(vk, "available")) && cJSON_IsString(reason) &&
          strstr(reason->valuestring, GPUPROBE_HELPER_NAME ": No such file"), "vulkan without a helper: %s",
          cJSON_IsString(reason) ? reason->valuestring : "(no reason)");
    check_runtime_shape(cJSON_GetObjectItemCaseSensitive(r, "backends"), "cuda");
    cJSON_Delete(r);
    r = send(&lp, "device.info", "{\"device\":\"cpu:0\"}", &code, msg, sizeof msg);
    CHECK(r != NULL, "device.info cpu:0 without a helper: %s", msg);
    cJSON_Delete(r);
    unload_plugin(&lp);
}

static void test_plugin_probe_crash(void) {
    loaded_plugin lp;
    if (load_plugin_alone(&lp, SDRT_FAKE_GPU_PROBE_PATH) != 0) {
        unload_plugin(&lp);
        return;
    }
    setenv("SDRT_FAKE_GPU_PROBE", "crash", 1);
    sdrt_status code;
    char msg[512], ids[512];
    cJSON *r = send(&lp, "device.list", "{}", &code, msg, sizeof msg);
    unsetenv("SDRT_FAKE_GPU_PROBE");
    REQUIRE(r, "device.list with a crashing probe failed: %s", msg);
    const cJSON *vk, *reason;
    list_vulkan_and_ids(r, &vk, ids, sizeof ids);
    reason = cJSON_GetObjectItemCaseSensitive(vk, "reason");
    CHECK(strcmp(ids, "cpu:0 ") == 0, "devices with a crashing probe: %s", ids);
    CHECK(cJSON_IsString(reason) && strstr(reason->valuestring, "Vulkan probe crashed"), "vulkan reason: %s",
          cJSON_IsString(reason) ? reason->valuestring : "(none)");
    CHECK(fake_host_logged("CUDA probe crashed"), "the CUDA crash was not logged");
    cJSON_Delete(r);
    /* the verdict is cached: no second probe, the same answer */
    r = send(&lp, "device.list", "{}", &code, msg, sizeof msg);
    list_vulkan_and_ids(r, &vk, ids, sizeof ids);
    CHECK(r && strcmp(ids, "cpu:0 ") == 0, "second device.list: %s", ids);
    cJSON_Delete(r);
    check_no_children();
    unload_plugin(&lp);
}

/* The Vulkan compute family (when built and a Vulkan device exists, e.g.
 * lavapipe): vulkan:0 lists "compute": true, "device": "vulkan:0" makes it
 * the default device, DirectML's "privateuseone:0" maps to it with a
 * warning naming the mapping. */
static void plugin_vulkan_compute_body(void) {
    static const char *const configs[2] = {"{\"device\":\"vulkan:0\"}", "{\"device\":\"privateuseone:0\"}"};
    for (int c = 0; c < 2; c++) {
        loaded_plugin lp;
        if (load_plugin(&lp, configs[c]) != 0) {
            unload_plugin(&lp);
            return;
        }
        const sdrt_backend_iface *bi = lp.desc->vtable->get_interface(lp.inst, SDRT_BACKEND_IFACE_ID);
        int have = 0;
        for (size_t i = 0; bi && i < bi->reg_count(bi->self); i++)
            have |= strcmp(bi->reg_get(bi->self, i)->iface->name(bi->reg_get(bi->self, i)), "vulkan") == 0;
        if (!have) {
            fprintf(stderr, "# no vulkan family loaded (not built, or no Vulkan device): skipped\n");
            unload_plugin(&lp);
            return;
        }
        sdrt_status code;
        char msg[512];
        cJSON *r = send(&lp, "device.list", "{}", &code, msg, sizeof msg);
        REQUIRE(r, "device.list: %s", msg);
        const cJSON *d, *vk0 = NULL;
        cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(r, "devices")) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(d, "id");
            if (cJSON_IsString(id) && strcmp(id->valuestring, "vulkan:0") == 0) vk0 = d;
        }
        REQUIRE(vk0, "vulkan:0 missing from device.list");
        CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(vk0, "compute")), "vulkan:0 has no compute");
        const cJSON *def = cJSON_GetObjectItemCaseSensitive(r, "default_device");
        CHECK(cJSON_IsString(def) && strcmp(def->valuestring, "vulkan:0") == 0, "%s: default_device %s", configs[c],
              cJSON_IsString(def) ? def->valuestring : "(none)");
        sdrt_device *dev = bi->default_device(bi->self);
        CHECK(dev && strcmp(dev->reg->iface->name(dev->reg), "vulkan") == 0, "%s: default device not Vulkan's",
              configs[c]);
        if (c == 1) CHECK(fake_host_logged("privateuseone:0\" is DirectML's id: mapped to vulkan:0"),
                          "the privateuseone mapping was not logged");
        cJSON_Delete(r);
        unload_plugin(&lp);
    }
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

/* Every probe above ran in a child (a helper or a fork): none of them left
 * a GPU stack in this process, whose exit LeakSanitizer checks. Runs last. */
static void test_no_gpu_stack_here(void) {
    CHECK(!gpu_stack_mapped(), "a GPU stack was mapped into the test process");
}

/* The device plugin with a Vulkan compute device maps the Vulkan loader and
 * driver into the process; run it in a forked child so this process keeps
 * no GPU stack (no_gpu_stack_here) and the driver's unload cannot reach
 * LeakSanitizer here. The child reports its failures by its exit status. */
static void test_plugin_vulkan_compute(void) {
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        plugin_vulkan_compute_body();
        fflush(NULL);
        _exit(test_failed_() ? 1 : 0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "vulkan compute child failed (status 0x%x)", status);
}

const test_entry TESTS[] = {
    {"plugin_lazy", test_plugin_lazy}, /* first */
    {"cpu_probe", test_cpu_probe},
    {"meminfo_parse", test_meminfo_parse},
    {"cuda_missing", test_cuda_missing},
    {"vulkan_probe", test_vulkan_probe},
    {"gpu_probe_same", test_gpu_probe_same},
    {"gpu_probe_missing_helper", test_gpu_probe_missing_helper},
    {"gpu_probe_cuda_memory", test_gpu_probe_cuda_memory},
    {"gpu_probe_faults", test_gpu_probe_faults},
    {"config", test_config},
    {"config_host_device", test_config_host_device},
    {"backend_names", test_backend_names},
    {"plugin_list", test_plugin_list},
    {"plugin_info_memory", test_plugin_info_memory},
    {"plugin_helper_missing", test_plugin_helper_missing},
    {"plugin_probe_crash", test_plugin_probe_crash},
    {"plugin_vulkan_compute", test_plugin_vulkan_compute},
    {"plugin_bad_config", test_plugin_bad_config},
    {"no_gpu_stack_here", test_no_gpu_stack_here}, /* last */
    {0},
};
