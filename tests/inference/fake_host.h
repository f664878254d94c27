/* tests/inference/fake_host.h - just enough host to run the real plugins
 * in one test process: loads plugin modules from the build tree, gives them
 * a services table with an interface registry, settings (model and output
 * roots), path resolution, and per-job progress / warnings / cancellation. */
#ifndef SDRT_TESTS_INFERENCE_FAKE_HOST_H
#define SDRT_TESTS_INFERENCE_FAKE_HOST_H

#include "sdrt/plugin.h"

/* What the fake host recorded for one request. */
struct sdrt_job {
    int progress_events;
    int last_step, last_steps;
    int warnings;
    int cancel_at_step;   /* > 0: is_cancelled turns true once this step was reported */
    int cancelled;
    int stop_after;       /* host.cancel {"when":"after_image"} */
    void *user;           /* sdrt_host_api.job_set_user */
    /* Events by name ("preview", ...): counted always; with keep_events the
     * last one's data JSON is kept (malloc'd; the test frees it). */
    int events;
    int keep_events;
    char last_event_name[32];
    char *last_event_data;
};

/* Loads and inits the named plugins (e.g. "device", "model") from
 * $SDRT_BUILD_DIR/lib/sdrt/plugins with output_root as the only output
 * root; configs[i] (NULL or a NULL entry = "{}") is plugin i's config.
 * Returns 0, or -1 after printing why. */
int fake_host_start(const char *const *plugins, const char *const *configs, const char *output_root);
void fake_host_stop(void);

const sdrt_host_api *fake_host_api(void);
/* The sdrt_host handle to give a plugin initialised outside the loader. */
sdrt_host *fake_host_handle(void);

#endif
