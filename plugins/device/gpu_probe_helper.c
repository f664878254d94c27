/* plugins/device/gpu_probe_helper.c - sdrt-gpu-probe, the short-lived
 * process the device plugin runs to probe one GPU family:
 *
 *   sdrt-gpu-probe cuda|vulkan   > one probe_wire.h record on stdout
 *   sdrt-gpu-probe cuda-memory BUS-ID...   the CUDA record with only the
 *       free memory of those devices (in ordinal order) filled in
 *
 * Probing loads the vendor's stack (for Vulkan through lavapipe: LLVM, z3,
 * ICU... about 50 MB resident), and none of it can be unloaded again; here
 * it dies with this process instead of staying in `sdrt serve`. A driver
 * that crashes or hangs takes down only this process. Exit status: 0 after
 * a full record, 1 when the record could not be written, 2 on bad usage. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cuda_probe.h"
#include "probe_wire.h"
#include "vulkan_probe.h"

static int write_all(int fd, const void *buf, size_t n) {
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

static int report_cuda(void) {
    static cudaprobe_report r;
    static probewire_cuda wire;
    cudaprobe_run(NULL, &r);
    probewire_pack_cuda(&r, &wire);
    return write_all(STDOUT_FILENO, &wire, sizeof wire);
}

/* Free memory without a full probe: NVML needs no cuInit, which costs a
 * fresh process hundreds of milliseconds on a big machine. */
static int report_cuda_memory(int n, char **bus_ids) {
    static cudaprobe_report r;
    static probewire_cuda wire;
    r.available = 1;
    r.count = n < CUDAPROBE_MAX_DEVICES ? n : CUDAPROBE_MAX_DEVICES;
    for (int i = 0; i < r.count; i++) snprintf(r.dev[i].pci_bus_id, sizeof r.dev[i].pci_bus_id, "%s", bus_ids[i]);
    cudaprobe_refresh_memory(NULL, &r);
    probewire_pack_cuda(&r, &wire);
    return write_all(STDOUT_FILENO, &wire, sizeof wire);
}

static int report_vulkan(void) {
    static vkprobe_report r;
    static probewire_vulkan wire;
    vkprobe_run(NULL, &r);
    probewire_pack_vulkan(&r, &wire);
    return write_all(STDOUT_FILENO, &wire, sizeof wire);
}

static int usage(void) {
    fprintf(stderr, "usage: sdrt-gpu-probe cuda|vulkan|cuda-memory BUS-ID...  (run by the sdrt device plugin)\n");
    return 2;
}

int main(int argc, char **argv) {
    int rc;
    if (argc >= 2 && strcmp(argv[1], "cuda-memory") == 0) rc = report_cuda_memory(argc - 2, argv + 2);
    else if (argc != 2) return usage();
    else if (probewire_family_named(argv[1]) == PROBEWIRE_CUDA) rc = report_cuda();
    else if (probewire_family_named(argv[1]) == PROBEWIRE_VULKAN) rc = report_vulkan();
    else return usage();
    /* _exit: the report is out; driver and loader destructors (LLVM's among
     * them) only cost time here, and one that hangs would stall the plugin. */
    _exit(rc == 0 ? 0 : 1);
}
