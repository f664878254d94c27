/* host/dynlib.c - see dynlib.h. */
#include "dynlib.h"

#include <stdio.h>

#ifdef _WIN32
#include <windows.h>

void *dynlib_open(const char *path, char *err, size_t errlen) {
    wchar_t wpath[4096];
    if (!MultiByteToWideChar(CP_UTF8, 0, path, -1, wpath, 4096)) {
        snprintf(err, errlen, "path is not valid UTF-8 or too long");
        return NULL;
    }
    /* Search the plugin's own folder for its dependencies, not the CWD. */
    HMODULE m = LoadLibraryExW(wpath, NULL, LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR | LOAD_LIBRARY_SEARCH_DEFAULT_DIRS);
    if (!m) snprintf(err, errlen, "LoadLibraryExW failed (error %lu)", (unsigned long)GetLastError());
    return (void *)m;
}

void *dynlib_sym(void *lib, const char *name) { return (void *)GetProcAddress((HMODULE)lib, name); }

void dynlib_close(void *lib) { FreeLibrary((HMODULE)lib); }

#else
#include <dlfcn.h>

void *dynlib_open(const char *path, char *err, size_t errlen) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) snprintf(err, errlen, "%s", dlerror());
    return h;
}

void *dynlib_sym(void *lib, const char *name) { return dlsym(lib, name); }

void dynlib_close(void *lib) { dlclose(lib); }
#endif
