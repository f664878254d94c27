/* normalize.h - CLIPTokenizer's text clean-up (see normalize.c). */
#ifndef SDRT_COND_NORMALIZE_H
#define SDRT_COND_NORMALIZE_H

#include <stddef.h>

/* whitespace_clean(ftfy.fix_text(text)).lower() for `len` bytes of UTF-8
 * (invalid bytes read as U+FFFD). Returns a malloc'd NUL-terminated string
 * (caller frees), or NULL when out of memory. Thread-safe. */
char *cond_clean_text(const char *text, size_t len);

#endif
