/* plugins/inference/run_internal.h - the state of one inference.run, shared
 * by the run stages (run.c) and the conditioning stage (run_cond.c). */
#ifndef SDRT_INFERENCE_RUN_INTERNAL_H
#define SDRT_INFERENCE_RUN_INTERNAL_H

#include "denoise.h"
#include "request.h"
#include "response.h"
#include "run.h"
#include "sdrt/backend.h"
#include "sdrt/cond.h"
#include "sdrt/model.h"
#include "sdrt/postprocess.h"
#include "sdrt/rng.h"
#include "sdrt/scheduler.h"
#include "unet.h"

typedef struct run_ctx {
    const infer_plugin *p;
    const sdrt_host_api *api;
    sdrt_job *job;
    const char *data_json;    /* the request's data, borrowed */
    infer_request r;
    double t0, loop_start;

    /* Interfaces (acquired, released at the end). */
    const sdrt_model_iface *model;
    const sdrt_backend_iface *backend;
    const sdrt_scheduler_iface *sched;
    const sdrt_cond_iface *cond;
    const sdrt_postprocess_iface *post;

    sdrt_model *m;
    const char *arch;
    int is_sdxl;
    unet *u;
    sdrt_sched *state;
    sdrt_nn *nn;

    /* Conditioning rows for the UNet ([uncond x batch, cond x batch]). */
    infer_cond cond_rows;
    float *cond_buf;          /* context, pooled and time ids, one block */

    uint64_t seed;
    sdrt_rng rng;
    int channels, lh, lw;
    size_t n_latents;
    float *latents;
    infer_output *outs;
} run_ctx;

/* run_cond.c: prompt embeddings through sdrt.cond/1 into cond_rows. */
sdrt_error *run_conditioning(run_ctx *c);
void run_cond_free(run_ctx *c);

#endif /* SDRT_INFERENCE_RUN_INTERNAL_H */
