/* plugins/device/dynlib.c - see dynlib.h. */
#ifndef _WIN32
#define _GNU_SOURCE /* dladdr */
#endif
#include "dynlib.h"

#include <stdio.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>
#else
#include <dlfcn.h>
#endif

#ifdef _WIN32

static void last_error(char *why, size_t whylen) {
    if (why && whylen) snprintf(why, whylen, "error %lu", (unsigned long)GetLastError());
}

devlib *devlib_open_path(const char *path, char *why, size_t whylen) {
    wchar_t wpath[MAX_PATH * 2];
    if (!MultiByteToWideChar(CP_UTF8, 0, path, -1, wpath, (int)(sizeof wpath / sizeof wpath[0]))) {
        last_error(why, whylen);
        return NULL;
    }
    HMODULE h = LoadLibraryExW(wpath, NULL, LOAD_LIBRARY_SEARCH_DEFAULT_DIRS | LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR);
    if (!h) last_error(why, whylen);
    return (devlib *)h;
}

void *devlib_sym(devlib *lib, const char *symbol) {
    return lib ? (void *)GetProcAddress((HMODULE)lib, symbol) : NULL;
}

void devlib_close(devlib *lib) {
    if (lib) FreeLibrary((HMODULE)lib);
}

int devlib_dir_of(const void *addr, char *out, size_t outlen) {
    HMODULE mod = NULL;
    if (!GetModuleHandleExA(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                            (LPCSTR)addr, &mod))
        return -1;
    char path[MAX_PATH * 2];
    DWORD n = GetModuleFileNameA(mod, path, (DWORD)sizeof path);
    if (n == 0 || n >= sizeof path) return -1;
    char *slash = strrchr(path, '\\');
    if (!slash) return -1;
    *slash = 0;
    snprintf(out, outlen, "%s", path);
    return 0;
}

#else

devlib *devlib_open_path(const char *path, char *why, size_t whylen) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h && why && whylen) {
        const char *e = dlerror();
        snprintf(why, whylen, "%s", e ? e : "dlopen failed");
    }
    return (devlib *)h;
}

void *devlib_sym(devlib *lib, const char *symbol) { return lib ? dlsym(lib, symbol) : NULL; }

void devlib_close(devlib *lib) {
    if (lib) dlclose(lib);
}

int devlib_dir_of(const void *addr, char *out, size_t outlen) {
    Dl_info info;
    if (!dladdr(addr, &info) || !info.dli_fname) return -1;
    const char *slash = strrchr(info.dli_fname, '/');
    if (!slash) return snprintf(out, outlen, ".") < 0 ? -1 : 0;
    int n = snprintf(out, outlen, "%.*s", (int)(slash - info.dli_fname), info.dli_fname);
    return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}

#endif

devlib *devlib_open(const char *const *names, const char **which, char *why, size_t whylen) {
    char later[256];
    for (const char *const *n = names; n && *n; n++) {
        /* report the first name's failure: it is the canonical one */
        int first = n == names;
        devlib *lib = devlib_open_path(*n, first ? why : later, first ? whylen : sizeof later);
        if (lib) {
            if (which) *which = *n;
            return lib;
        }
    }
    return NULL;
}
