/* plugins/device/cpu_probe.c - see cpu_probe.h. x86 features come from
 * cpuid and are reported only when XGETBV shows the OS saves the matching
 * register state: a CPU with AVX-512 under an OS that does not enable it
 * must not get AVX-512 kernels. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "cpu_probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>
#else
#include <sched.h>
#include <unistd.h>
#endif

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#define CPUPROBE_X86 1
#if defined(_MSC_VER)
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif

static void trim(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t')) s[--n] = 0;
    size_t lead = strspn(s, " \t");
    if (lead) memmove(s, s + lead, n - lead + 1);
}

static void add_feature(cpuprobe_info *info, const char *name) {
    if (info->nfeatures < CPUPROBE_MAX_FEATURES) info->features[info->nfeatures++] = name;
}

int cpuprobe_has(const cpuprobe_info *info, const char *name) {
    for (int i = 0; i < info->nfeatures; i++)
        if (strcmp(info->features[i], name) == 0) return 1;
    return 0;
}

#ifdef CPUPROBE_X86

static void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
#if defined(_MSC_VER)
    int regs[4];
    __cpuidex(regs, (int)leaf, (int)sub);
    for (int i = 0; i < 4; i++) r[i] = (unsigned)regs[i];
#else
    r[0] = r[1] = r[2] = r[3] = 0;
    __get_cpuid_count(leaf, sub, &r[0], &r[1], &r[2], &r[3]);
#endif
}

/* XCR0: which register states the OS saves on context switch. */
static uint64_t xgetbv0(void) {
#if defined(_MSC_VER)
    return _xgetbv(0);
#else
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
#endif
}

static void x86_identity(cpuprobe_info *info, unsigned max_leaf, const unsigned r0[4]) {
    memcpy(info->vendor, &r0[1], 4);
    memcpy(info->vendor + 4, &r0[3], 4);
    memcpy(info->vendor + 8, &r0[2], 4);
    info->vendor[12] = 0;
    unsigned ext[4];
    cpuid(0x80000000u, 0, ext);
    if (ext[0] < 0x80000004u) return;
    unsigned brand[12];
    for (unsigned i = 0; i < 3; i++) cpuid(0x80000002u + i, 0, &brand[i * 4]);
    memcpy(info->model, brand, sizeof brand);
    info->model[sizeof brand] = 0;
    trim(info->model);
    (void)max_leaf;
}

static void x86_features(cpuprobe_info *info) {
    unsigned r0[4], r1[4] = {0}, r7[4] = {0}, r71[4] = {0};
    cpuid(0, 0, r0);
    unsigned max_leaf = r0[0];
    x86_identity(info, max_leaf, r0);
    if (max_leaf >= 1) cpuid(1, 0, r1);
    if (max_leaf >= 7) {
        cpuid(7, 0, r7);
        if (r7[0] >= 1) cpuid(7, 1, r71);
    }
    int osxsave = (r1[2] >> 27) & 1;
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    int os_avx = (xcr0 & 0x6) == 0x6;            /* XMM + YMM */
    int os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0; /* opmask + ZMM */
    int os_amx = (xcr0 & 0x60000) == 0x60000;    /* XTILECFG + XTILEDATA */
    if ((r1[2] >> 20) & 1) add_feature(info, "sse4.2");
    if (os_avx && ((r1[2] >> 28) & 1)) add_feature(info, "avx");
    if (os_avx && ((r7[1] >> 5) & 1)) add_feature(info, "avx2");
    if (os_avx && ((r1[2] >> 12) & 1)) add_feature(info, "fma");
    if (os_avx && ((r1[2] >> 29) & 1)) add_feature(info, "f16c");
    if (os_avx512 && ((r7[1] >> 16) & 1)) add_feature(info, "avx512f");
    if (os_avx512 && ((r7[1] >> 30) & 1)) add_feature(info, "avx512bw");
    if (os_avx512 && ((r7[1] >> 31) & 1)) add_feature(info, "avx512vl");
    if (os_avx512 && ((r71[0] >> 5) & 1)) add_feature(info, "avx512_bf16");
    if (os_avx512 && ((r7[2] >> 11) & 1)) add_feature(info, "avx512_vnni");
    if (os_amx && ((r7[3] >> 24) & 1)) add_feature(info, "amx");
}

#endif /* CPUPROBE_X86 */

static void set_arch(cpuprobe_info *info) {
#if defined(__x86_64__) || defined(_M_X64)
    snprintf(info->arch, sizeof info->arch, "x86_64");
#elif defined(__aarch64__) || defined(_M_ARM64)
    snprintf(info->arch, sizeof info->arch, "aarch64");
#elif defined(__i386__)
    snprintf(info->arch, sizeof info->arch, "x86");
#else
    snprintf(info->arch, sizeof info->arch, "unknown");
#endif
}

int cpuprobe_parse_meminfo(const char *text, uint64_t *total, uint64_t *available) {
    uint64_t t = 0, avail = 0, fre = 0, buffers = 0, cached = 0;
    int have_total = 0, have_avail = 0;
    for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        unsigned long long kb;
        if (sscanf(line, "MemTotal: %llu", &kb) == 1) { t = kb * 1024; have_total = 1; }
        else if (sscanf(line, "MemAvailable: %llu", &kb) == 1) { avail = kb * 1024; have_avail = 1; }
        else if (sscanf(line, "MemFree: %llu", &kb) == 1) fre = kb * 1024;
        else if (sscanf(line, "Buffers: %llu", &kb) == 1) buffers = kb * 1024;
        else if (sscanf(line, "Cached: %llu", &kb) == 1) cached = kb * 1024;
    }
    if (!have_total) return -1;
    *total = t;
    *available = have_avail ? avail : fre + buffers + cached;
    return 0;
}

#ifdef _WIN32

int cpuprobe_memory(uint64_t *total, uint64_t *available) {
    MEMORYSTATUSEX st;
    st.dwLength = sizeof st;
    if (!GlobalMemoryStatusEx(&st)) return -1;
    *total = st.ullTotalPhys;
    *available = st.ullAvailPhys;
    return 0;
}

static void count_cpus(cpuprobe_info *info) {
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    info->threads = info->threads_available = (int)si.dwNumberOfProcessors;
    info->cores = info->threads;
}

#else

int cpuprobe_memory(uint64_t *total, uint64_t *available) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return cpuprobe_parse_meminfo(buf, total, available);
}

/* Physical cores: distinct (physical id, core id) pairs in /proc/cpuinfo. */
static int count_cores(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return 0;
    enum { MAX_PAIRS = 4096 };
    static long pairs[MAX_PAIRS];
    int npairs = 0;
    long phys = 0, core = -1;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "physical id : %ld", &phys);
        if (sscanf(line, "core id : %ld", &core) != 1) continue;
        long key = phys * 100000 + core;
        int seen = 0;
        for (int i = 0; i < npairs && !seen; i++) seen = pairs[i] == key;
        if (!seen && npairs < MAX_PAIRS) pairs[npairs++] = key;
    }
    fclose(f);
    return npairs;
}

/* The brand from /proc/cpuinfo where cpuid has none (non-x86). */
static void model_from_cpuinfo(cpuprobe_info *info) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon || (strncmp(line, "model name", 10) != 0 && strncmp(line, "Model", 5) != 0)) continue;
        snprintf(info->model, sizeof info->model, "%s", colon + 1);
        trim(info->model);
        break;
    }
    fclose(f);
}

static void count_cpus(cpuprobe_info *info) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    info->threads = online > 0 ? (int)online : 1;
    info->threads_available = info->threads;
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) info->threads_available = CPU_COUNT(&set);
#endif
    info->cores = count_cores();
    if (info->cores <= 0 || info->cores > info->threads) info->cores = info->threads;
    if (!info->model[0]) model_from_cpuinfo(info);
}

#endif

void cpuprobe_run(cpuprobe_info *info) {
    memset(info, 0, sizeof *info);
    set_arch(info);
#ifdef CPUPROBE_X86
    x86_features(info);
#endif
    count_cpus(info);
    if (!info->model[0]) snprintf(info->model, sizeof info->model, "%s CPU", info->arch);
    cpuprobe_memory(&info->mem_total, &info->mem_available);
}
