/* cuda_blas.c - see cuda_blas.h. The soname carries the major version the
 * family was built against (cuBLAS keeps its ABI within a major version);
 * the toolkit's library folder is tried by full path if the loader's
 * search (RUNPATH, LD_LIBRARY_PATH, ld.so.cache) does not find it. */
#define _POSIX_C_SOURCE 200809L
#include "cuda_blas.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define CUDA_STR_(x) #x
#define CUDA_STR(x) CUDA_STR_(x)
#define CUDA_BLAS_SONAME "libcublas.so." CUDA_STR(CUBLAS_VER_MAJOR)

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static cuda_blas_api g_blas;
static int g_ok;
static char g_why[512];

static void *blas_sym(void *so, const char *name) {
    void *p = dlsym(so, name);
    if (!p && !g_why[0]) snprintf(g_why, sizeof g_why, "%s lacks %s", CUDA_BLAS_SONAME, name);
    return p;
}

static void blas_load(void) {
    void *so = dlopen(CUDA_BLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
#ifdef SDRT_CUDA_LIBDIR
    if (!so) so = dlopen(SDRT_CUDA_LIBDIR "/" CUDA_BLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
#endif
    if (!so) {
        const char *e = dlerror();
        snprintf(g_why, sizeof g_why, "%s", e ? e : "cannot open " CUDA_BLAS_SONAME);
        return;
    }
    /* Object pointers to function pointers through memcpy: ISO C forbids
     * the direct cast, POSIX guarantees the representation. */
    void *p[5] = {blas_sym(so, "cublasCreate_v2"), blas_sym(so, "cublasDestroy_v2"),
                  blas_sym(so, "cublasSetStream_v2"), blas_sym(so, "cublasSetWorkspace_v2"),
                  blas_sym(so, "cublasSgemmStridedBatched")};
    for (int i = 0; i < 5; i++)
        if (!p[i]) {
            dlclose(so);
            return;
        }
    memcpy(&g_blas.create, &p[0], sizeof p[0]);
    memcpy(&g_blas.destroy, &p[1], sizeof p[1]);
    memcpy(&g_blas.set_stream, &p[2], sizeof p[2]);
    memcpy(&g_blas.set_workspace, &p[3], sizeof p[3]);
    memcpy(&g_blas.sgemm_strided_batched, &p[4], sizeof p[4]);
    g_ok = 1; /* kept open for the process: handles may outlive any unload order */
}

const cuda_blas_api *cuda_blas_open(char *why, size_t whylen) {
    pthread_once(&g_once, blas_load);
    if (!g_ok && why) snprintf(why, whylen, "%s", g_why);
    return g_ok ? &g_blas : NULL;
}

const cuda_blas_api *cuda_blas(void) { return g_ok ? &g_blas : NULL; }
