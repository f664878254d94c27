/* plugins/device/dynlib.h - run-time loading of shared libraries.
 *
 * The device plugin finds GPU runtimes (CUDA, Vulkan) and backend families
 * at run time, so a machine without them still starts. POSIX: dlopen /
 * dlsym; Windows: LoadLibraryExW / GetProcAddress.
 */
#ifndef SDRT_DEVICE_DYNLIB_H
#define SDRT_DEVICE_DYNLIB_H

#include <stddef.h>

typedef struct devlib devlib;

/* Opens the first library of the NULL-terminated `names` that loads
 * (RTLD_NOW | RTLD_LOCAL). Returns the handle, or NULL with the last
 * loader message in why (may be NULL). `which` (may be NULL) receives the
 * name that loaded. */
devlib *devlib_open(const char *const *names, const char **which, char *why, size_t whylen);

/* Opens exactly `path`; NULL with the reason in why on failure. */
devlib *devlib_open_path(const char *path, char *why, size_t whylen);

/* The address of `symbol`, or NULL. */
void *devlib_sym(devlib *lib, const char *symbol);

/* Closes a handle from devlib_open*. NULL is a no-op. */
void devlib_close(devlib *lib);

/* The folder of the shared object (or executable) containing `addr`,
 * without a trailing separator. Returns 0, or -1 when unknown. */
int devlib_dir_of(const void *addr, char *out, size_t outlen);

#endif
