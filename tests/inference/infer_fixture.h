/* tests/inference/infer_fixture.h - what the inference tests share: a fake
 * host with the real plugins (device, model, scheduler, conditioning,
 * postprocess, lora) loaded from the build tree, the inference plugin
 * instance bound to it, and helpers to call it and read what it wrote.
 *
 * Single-threaded test code: call from the test's main thread only. */
#ifndef SDRT_TEST_INFER_FIXTURE_H
#define SDRT_TEST_INFER_FIXTURE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "fake_host.h"
#include "run.h"

/* Starts the plugins once per process; returns 1 when they loaded. Single
 * files carry no tokenizer, so conditioning gets the reference tokenizers;
 * LoRA names resolve in tests/lora/data. */
int ifx_start(void);
/* The inference plugin instance; tests may point its `api` at their own
 * copy of the fake host's table. Valid after ifx_start. */
infer_plugin *ifx_plugin(void);
/* The fresh output folder of this process. */
const char *ifx_out_dir(void);
/* Stops the plugins (the last test of a file calls it). */
void ifx_stop(void);

typedef struct ifx_result {
    sdrt_status status;
    char message[1024];
    cJSON *data; /* the result object on success, else NULL; caller deletes */
} ifx_result;

/* Runs `type` ("inference.run" or "inference.batch") with `data_json` on the
 * calling thread, as the host's worker would. */
ifx_result ifx_call(const char *type, const char *data_json, sdrt_job *job);

/* A float32 .npy file's values (malloc'd; NULL, count 0, on error or a
 * NULL path) and count. */
float *ifx_load_npy(const char *path, size_t *n);
/* data[field][i] when it is a string, else NULL. */
const char *ifx_json_string_at(const cJSON *data, const char *field, int i);
/* Non-zero when `path` is a non-empty file. NULL is not. */
int ifx_file_exists(const char *path);

/* Environment of the device-parity runs (tests/inference/CMakeLists.txt):
 *   SDRT_TEST_PRECISION     "precision" added to every inference.run that
 *                           names none (ifx_call);
 *   SDRT_TEST_SAVE_LATENTS  a folder: ifx_check_latents writes each case's
 *                           latents there as <key>.npy (the CPU run);
 *   SDRT_TEST_CPU_LATENTS   that folder: cases are checked against the
 *                           CPU backend's latents within SDRT_TEST_CPU_TOL
 *                           (default 1e-3) instead of diffusers'. */
/* Checks the final latents `got` (n floats) of case `key` (unique within
 * the test program) as the environment says: against the CPU run's, else
 * against diffusers' `want` (n_want floats, may be NULL) within `tol`.
 * Returns the relative L2 error it checked. */
double ifx_check_latents(const char *key, const float *got, size_t n, const float *want, size_t n_want, double tol);

#endif /* SDRT_TEST_INFER_FIXTURE_H */
