/* plugins/conditioning/cond_err.h - the err/errlen convention of the
 * conditioning modules: a failing function writes a message naming what
 * failed into the caller's buffer and returns a status. */
#ifndef SDRT_COND_ERR_H
#define SDRT_COND_ERR_H

#include <stddef.h>

#include "sdrt/plugin.h"

/* printf into err[errlen]; nothing when err is NULL or errlen 0. */
void cond_set_err(char *err, size_t errlen, const char *fmt, ...) SDRT_PRINTF(3, 4);

#endif
