/* tests/unet/fixture.h - what the UNet and inference tests share: a minimal
 * host services table, the CPU backend loaded from the build tree, tiny
 * reference weights read through the model plugin's safetensors parser, and
 * .npy inputs. Every function aborts the process with a message when the
 * environment is broken (missing build output), which is a setup error,
 * not a test failure. */
#ifndef SDRT_TESTS_UNET_FIXTURE_H
#define SDRT_TESTS_UNET_FIXTURE_H

#include <stdint.h>

#include "sdrt/backend.h"
#include "sdrt/plugin.h"

/* Host services: log to stderr, error objects; no jobs, no registry. */
const sdrt_host_api *fx_host_api(void);

/* The first device of build/lib/sdrt/backends/sdrt_backend_cpu.so. */
sdrt_device *fx_cpu_device(void);

/* A safetensors file's tensors by name; `to_f16` converts float32 weights of
 * two or more dims to float16 copies (exercises the f16 weight path). */
typedef struct fx_weights fx_weights;
fx_weights *fx_weights_open(const char *path, int to_f16);
const sdrt_tensor *fx_weights_get(void *weights, const char *name);
void fx_weights_close(fx_weights *w);

/* The whole file as a NUL-terminated string (free()), or NULL. */
char *fx_read_text(const char *path);

/* A .npy as float32 (free()); aborts if unreadable. n receives numel. */
float *fx_npy(const char *path, int64_t *shape, int *ndim, size_t *n);

#endif
