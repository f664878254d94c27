/* tests/device/fake_gpu_probe.c - an sdrt-gpu-probe that misbehaves on
 * purpose, to prove the device plugin survives its probe helper.
 * SDRT_FAKE_GPU_PROBE = FAULT or FAULT:FAMILY (only that family misbehaves;
 * the others run the real helper). Unset: always the real helper.
 *   hang     never answers (the plugin must kill it at its timeout)
 *   crash    dies of SIGSEGV before writing anything
 *   short    writes 5 bytes and exits 0
 *   foreign  writes a full-size record with the wrong magic
 *   fail     exits 3 without a word */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probe_wire.h"

static void write_foreign(probewire_family f) {
    static unsigned char junk[sizeof(probewire_vulkan) + sizeof(probewire_cuda)];
    memset(junk, 0xab, sizeof junk);
    if (write(STDOUT_FILENO, junk, probewire_size(f)) < 0) perror("fake-gpu-probe: write");
}

static int misbehave(const char *fault, probewire_family f) {
    if (strcmp(fault, "hang") == 0)
        for (;;) pause();
    if (strcmp(fault, "crash") == 0) {
        signal(SIGSEGV, SIG_DFL); /* past any sanitizer's handler: a real death by signal */
        raise(SIGSEGV);
    }
    if (strcmp(fault, "short") == 0) return write(STDOUT_FILENO, "SDGP!", 5) == 5 ? 0 : 1;
    if (strcmp(fault, "foreign") == 0) write_foreign(f);
    if (strcmp(fault, "fail") == 0) return 3;
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = getenv("SDRT_FAKE_GPU_PROBE");
    const char *family = argc > 1 ? argv[1] : "";
    char fault[32] = "";
    if (mode) snprintf(fault, sizeof fault, "%s", mode);
    char *only = strchr(fault, ':');
    if (only) *only++ = 0;
    if (!fault[0] || (only && strcmp(only, family) != 0)) {
        execv(SDRT_GPU_PROBE_HELPER, argv);
        perror("fake-gpu-probe: execv " SDRT_GPU_PROBE_HELPER);
        return 127;
    }
    return misbehave(fault, probewire_family_named(family));
}
