/* cpu_features.c - SIMD features detected at run time (cpuid + xgetbv).
 * A feature counts only when the OS also saves its registers (XCR0), so a
 * kernel chosen here never faults. */
#include "cpu_internal.h"

#include <pthread.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t cpu_xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void cpu_features_detect(cpu_features *f) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    int osxsave = (c >> 27) & 1;
    uint64_t xcr0 = osxsave ? cpu_xgetbv0() : 0;
    int ymm_ok = (xcr0 & 0x6) == 0x6;
    int zmm_ok = ymm_ok && (xcr0 & 0xe0) == 0xe0;
    f->sse42 = (c >> 20) & 1;
    f->avx = ymm_ok && ((c >> 28) & 1);
    f->fma = f->avx && ((c >> 12) & 1);
    f->f16c = f->avx && ((c >> 29) & 1);
    if (__get_cpuid_max(0, NULL) < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    f->avx2 = f->avx && ((b >> 5) & 1);
    f->avx512f = zmm_ok && ((b >> 16) & 1);
    f->avx512dq = f->avx512f && ((b >> 17) & 1);
    f->avx512bw = f->avx512f && ((b >> 30) & 1);
    f->avx512vl = f->avx512f && ((b >> 31) & 1);
    f->avx512fp16 = f->avx512f && ((d >> 23) & 1);
    f->amx_bf16 = (d >> 22) & 1;
    f->avx512vnni = f->avx512f && ((c >> 11) & 1);
    __cpuid_count(7, 1, a, b, c, d);
    f->avx512bf16 = f->avx512f && ((a >> 5) & 1);
    f->avx_vnni = f->avx && ((a >> 4) & 1);
}
#else
static void cpu_features_detect(cpu_features *f) { (void)f; }
#endif

static cpu_features g_features;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void cpu_features_once(void) { cpu_features_detect(&g_features); }

const cpu_features *cpu_features_get(void) {
    pthread_once(&g_once, cpu_features_once);
    return &g_features;
}
