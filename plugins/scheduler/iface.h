/* plugins/scheduler/iface.h - building the interface table and the JSON
 * messages; kept apart from sched.h so tests can drive them without a host. */
#ifndef SDRT_SCHED_IFACE_H
#define SDRT_SCHED_IFACE_H

#include "sdrt/plugin.h"
#include "sdrt/scheduler.h"

/* Fills `it` with the vtable; errors are created with api->error_new. */
void sched_iface_fill(sdrt_scheduler_iface *it, const sdrt_host_api *api);

/* scheduler.list: malloc'd JSON object text. */
char *sched_msg_list(void);

/* scheduler.sigmas for parsed request fields. `model_config` is the
 * model's scheduler config text or NULL. On success returns SDRT_OK and a
 * malloc'd JSON text in *out and warnings appended through `warn`
 * (may be NULL). On failure writes the message into err. */
sdrt_status sched_msg_sigmas(const char *scheduler, int32_t steps, const char *overrides_json,
                             const char *model_config, char **out, void (*warn)(void *ctx, const char *msg),
                             void *warn_ctx, char *err, size_t errlen);

#endif
