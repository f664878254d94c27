/* tests/lora/fake_host.h - host services for the lora tests: an interface
 * registry (the lora plugin acquires sdrt.model/1), settings, path checks
 * against model_roots, cancellation and collected warnings. */
#ifndef SDRT_TEST_LORA_FAKE_HOST_H
#define SDRT_TEST_LORA_FAKE_HOST_H

#include "sdrt/plugin.h"

extern const char *lora_fake_settings; /* borrowed JSON */
extern int lora_fake_cancel;           /* is_cancelled answer */
extern int lora_fake_n_warnings;       /* api->warn calls so far */
const sdrt_host_api *lora_fake_api(void);
void lora_fake_reset(void);

#endif
