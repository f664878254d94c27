/* tests/model/fake_host.h - the few host services the model plugin uses,
 * enough to run it without the host. */
#ifndef SDRT_TEST_FAKE_HOST_H
#define SDRT_TEST_FAKE_HOST_H

#include "sdrt/plugin.h"

/* Settings JSON returned by settings_json (borrowed, must outlive use). */
extern const char *fake_settings;
/* Interfaces published so far (the last one). */
extern const void *fake_published;
const sdrt_host_api *fake_host_api(void);

#endif
