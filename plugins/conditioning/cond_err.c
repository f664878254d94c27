/* plugins/conditioning/cond_err.c - see cond_err.h. */
#include "cond_err.h"

#include <stdarg.h>
#include <stdio.h>

void cond_set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
