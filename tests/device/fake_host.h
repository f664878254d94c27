/* tests/device/fake_host.h - a minimal sdrt_host_api for driving the
 * device plugin without the real host: logs to stderr, real error objects,
 * a one-slot interface registry. */
#ifndef SDRT_TEST_FAKE_HOST_H
#define SDRT_TEST_FAKE_HOST_H

#include "sdrt/plugin.h"

const sdrt_host_api *fake_host_api(void);
/* The interface last published under `id`, or NULL. */
const void *fake_host_published(const char *id);
/* Lines logged so far containing `needle` (0 if none). */
int fake_host_logged(const char *needle);

#endif
