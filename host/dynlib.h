/* host/dynlib.h - loading shared objects: dlopen on POSIX, LoadLibraryExW
 * on Windows. No other host dependency, so it cross-compiles alone. */
#ifndef SDRT_HOST_DYNLIB_H
#define SDRT_HOST_DYNLIB_H

#include <stddef.h>

/* Opens `path` (UTF-8) with its symbols kept local and resolved now.
 * Returns a handle, or NULL with the system's reason in err. */
void *dynlib_open(const char *path, char *err, size_t errlen);
/* The address of exported symbol `name`, or NULL. */
void *dynlib_sym(void *lib, const char *name);
void dynlib_close(void *lib);

#endif
