/* tests/postprocess/fake_host.h - a minimal host services table for driving
 * the postprocess plugin's internals (and the CPU backend) in-process. */
#ifndef TEST_PP_FAKE_HOST_H
#define TEST_PP_FAKE_HOST_H

#include "sdrt/plugin.h"

/* The table; resolve_path("output", p) accepts paths under the root set by
 * fake_host_set_output_root (absolute or relative to it) and answers
 * PERMISSION_DENIED otherwise. acquire returns what fake_host_provide set. */
const sdrt_host_api *fake_host_api(void);
void fake_host_set_output_root(const char *root);
void fake_host_provide(const char *id, const void *iface);
/* Number of acquire calls not matched by release. */
int fake_host_outstanding(void);

#endif
