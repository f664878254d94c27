/* tests/model/fake_host.h - the host services a plugin needs to run without
 * the host, for the model and lora tests: an interface registry (the lora
 * plugin acquires sdrt.model/1), settings, path checks against
 * model_roots, cancellation and counted warnings. Test main thread only. */
#ifndef SDRT_TEST_FAKE_HOST_H
#define SDRT_TEST_FAKE_HOST_H

#include "sdrt/plugin.h"

extern const char *fake_settings;   /* settings_json's answer (borrowed JSON, must outlive use) */
extern const void *fake_published;  /* the interface published last */
extern int fake_cancel;             /* is_cancelled's answer */
extern int fake_n_warnings;         /* api->warn calls so far */
const sdrt_host_api *fake_host_api(void);
/* Empties the registry and zeroes the counters and flags above. */
void fake_host_reset(void);

#endif
