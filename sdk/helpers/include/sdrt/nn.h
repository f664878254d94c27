/* sdrt/nn.h - neural-network building blocks over the compute ABI.
 *
 * A small static helper library (`sdrt_helpers`) that model code (CLIP, UNet,
 * VAE) uses instead of filling sdrt_op structs by hand. It is not part of the
 * binary ABI: each plugin links its own copy; only sdrt_tensor and the
 * backend vtables cross plugin boundaries.
 *
 * An sdrt_nn context binds one device and one stream and allocates result
 * tensors on that device. Errors are sticky per context (cairo-style): once
 * an op fails, sdrt_nn_status() returns the first failure, later ops return
 * NULL and do nothing, so model code checks once per block. There is no
 * global state.
 *
 * Eager mode (the default) runs each op when it is called, every result in
 * its own device buffer. Graph mode (sdrt_nn_graph_begin/end around a
 * forward pass) records the ops instead; at graph_end the intermediates are
 * placed in one arena per context by liveness (a tensor's memory is reused
 * once sdrt_nn_drop marked its end, as ggml-alloc does), the plan is cached
 * per graph shape, and the whole graph is submitted with
 * sdrt_stream_graph_compute (replay_key set when the graph repeats exactly,
 * e.g. every UNet step).
 *
 * Thread: a context is used by one thread at a time.
 * Ownership: every sdrt_tensor * returned by an op or by sdrt_nn_new_tensor is
 * owned by the context and lives until sdrt_nn_drop(t) or sdrt_nn_free();
 * the arena belongs to the context (grown when a plan needs more, reused
 * by every later graph);
 * views (sdrt_nn_view_*) share their source's memory and must not outlive it.
 * Inputs are borrowed for the call.
 */
#ifndef SDRT_NN_H
#define SDRT_NN_H

#include "sdrt/backend.h"
#include "sdrt/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sdrt_nn sdrt_nn;

/* Defined since graph mode and weight stores exist (for code built against
 * several SDK versions, e.g. benchmarks comparing commits). */
#define SDRT_NN_HAS_GRAPH 1

/* New context on `dev` (borrowed; must outlive the context). `params_json`
 * (borrowed, may be NULL) is passed to stream_new, e.g. {"threads":2}.
 * `is_cancelled`/`job` (may be NULL) are polled between ops: once it returns
 * non-zero the context fails with SDRT_CANCELLED. Returns NULL on failure. */
sdrt_nn *sdrt_nn_new(sdrt_device *dev, const char *params_json,
                     int (*is_cancelled)(sdrt_job *job), sdrt_job *job);
/* sdrt_nn_new with the reason of a failure: returns SDRT_OK and sets *out,
 * or the status of the device's stream_open (sdrt/backend.h:
 * INVALID_ARGUMENT, UNSUPPORTED - e.g. a "precision" the device cannot do,
 * the message naming it and the device -, RESOURCE_EXHAUSTED, UNAVAILABLE)
 * with *out NULL and a message in msg (msg_size bytes; may be NULL). A
 * family without stream_open (it predates "precision") runs "auto" and
 * "f32" as it always computed (f32 activations, weights as stored) and
 * gets UNSUPPORTED for any other value. Any thread. */
sdrt_status sdrt_nn_create(sdrt_device *dev, const char *params_json, int (*is_cancelled)(sdrt_job *job),
                           sdrt_job *job, sdrt_nn **out, char *msg, size_t msg_size);
void sdrt_nn_free(sdrt_nn *nn);

/* First failure since creation or the last sdrt_nn_clear_status, SDRT_OK if
 * none; `message` (may be NULL) receives a static or context-owned text. */
sdrt_status sdrt_nn_status(const sdrt_nn *nn, const char **message);
void sdrt_nn_clear_status(sdrt_nn *nn);

/* A new contiguous tensor on the device, uninitialised. */
sdrt_tensor *sdrt_nn_new_tensor(sdrt_nn *nn, sdrt_dtype dtype, int ndim, const int64_t *shape);
/* A device copy of host data (contiguous, `dtype` as given). */
sdrt_tensor *sdrt_nn_from_host(sdrt_nn *nn, sdrt_dtype dtype, int ndim, const int64_t *shape,
                               const void *data);
/* A tensor usable as an operand for a weight in host memory (e.g. mmap'd):
 * on host-memory devices the host tensor itself (no copy); on others the
 * resident copy of the first added weight store covering its bytes (shared
 * with every context and request using that store, pinned until
 * sdrt_nn_free), else an upload private to this context (until
 * sdrt_nn_free). On devices the copy is in the dtype the stream's
 * precision asks for (sdrt_stream_weight_dtype: e.g. an F32 weight becomes
 * F16 in an f16 stream), so the operand's dtype may differ from the host
 * tensor's; stores keep each form apart (acquire_as). Lookups are a hash
 * map keyed by (data, dtype, shape). Valid in eager and graph mode
 * (weights are never in the arena). */
const sdrt_tensor *sdrt_nn_weight(sdrt_nn *nn, const sdrt_tensor *host_weight);
/* Adds a weight store (borrowed; must stay valid until sdrt_nn_free, which
 * unpins it) consulted by sdrt_nn_weight, in the order added; at most 4.
 * NULL store: ignored. Returns 0, or -1 when full or invalid. */
int sdrt_nn_add_weight_store(sdrt_nn *nn, sdrt_weight_store *ws);
/* Weight bytes this context copied to its device: resident copies it made
 * plus private uploads (0 on host-memory devices). */
uint64_t sdrt_nn_weight_bytes_uploaded(const sdrt_nn *nn);
/* How sdrt_nn_weight places weights on a device that is not host memory
 * (sdrt_offload, sdrt/model.h; default SDRT_OFFLOAD_NONE):
 *  NONE: the covering store's resident copy (shared, pinned until
 *    sdrt_nn_free or sdrt_nn_release_weights), else a private upload.
 *  MODEL: always a private upload (counted for the job through the covering
 *    store), held until sdrt_nn_release_weights or sdrt_nn_free; stores are
 *    never pinned.
 *  SEQUENTIAL: a private upload, freed as soon as a later op needs a weight
 *    that is not held: before uploading, every weight no op since the last
 *    submitted one asked for is freed, so the device holds the weights of
 *    one op. Ops run eagerly: graph_begin/graph_end only synchronise (a
 *    recorded graph would need all its weights at once), with the same
 *    kernels and results.
 * In every mode a device allocation that fails first frees the stores'
 * unpinned copies on the device (trim) and tries once more. Releases the
 * weights held so far (as sdrt_nn_release_weights). INVALID_ARGUMENT for
 * an unknown mode, FAILED_PRECONDITION while a graph is recorded. Host-memory
 * devices ignore the mode (weights are read where they lie). */
sdrt_status sdrt_nn_set_offload(sdrt_nn *nn, int mode);
/* Waits for the ops submitted so far, frees every private weight upload,
 * forgets the weight map and unpins the stores, so the next use of a weight
 * uploads or acquires it again. Tensors (activations) are untouched. For a
 * component that is done while its context lives on (model offload).
 * No-op while a graph is recorded. NULL: no-op. */
void sdrt_nn_release_weights(sdrt_nn *nn);
/* Device bytes of private weight uploads this context holds now. */
uint64_t sdrt_nn_weight_bytes_held(const sdrt_nn *nn);
/* Frees the graph arena when no tensor lives in it (every output of the
 * last graph dropped), e.g. the UNet's before the VAE runs on the same
 * device; the next graph allocates one again. Returns the bytes freed
 * (0 when there is none, a graph is recorded, or outputs still live in it). */
size_t sdrt_nn_release_arena(sdrt_nn *nn);
/* Copies a tensor's elements to host memory as contiguous float32.
 * FAILED_PRECONDITION while a graph is recorded (values exist after end). */
sdrt_status sdrt_nn_to_host_f32(sdrt_nn *nn, const sdrt_tensor *t, float *out);
/* Waits until every op submitted so far has completed, so that the
 * context's tensors may be read by another context's stream on the same
 * device (a tensor handed to another plugin). FAILED_PRECONDITION while a
 * graph is recorded. */
sdrt_status sdrt_nn_synchronize(sdrt_nn *nn);
/* Releases a tensor returned by this context. NULL: no-op. While a graph
 * is recorded it marks the tensor's last use: no op recorded later may read
 * it, and its arena memory is reused. */
void sdrt_nn_drop(sdrt_nn *nn, sdrt_tensor *t);

/* Graph mode. Between begin and end, ops and from_host/new_tensor return
 * placeholders: their data are not readable and views of them are valid
 * only as operands inside the same graph. graph_end plans, uploads the
 * from_host inputs, runs the graph and waits for it; then every tensor not
 * dropped is an output with real data (it stays in the arena until the next
 * graph_begin, which moves survivors into buffers of their own: take views
 * of outputs again after that). On failure (recorded errors included) the
 * status is sticky as in eager mode and outputs have no data. Returns the
 * context status. begin fails (FAILED_PRECONDITION) when already recording.
 * Cancellation is polled while recording, not while the graph runs. */
sdrt_status sdrt_nn_graph_begin(sdrt_nn *nn);
sdrt_status sdrt_nn_graph_end(sdrt_nn *nn);
int sdrt_nn_graph_recording(const sdrt_nn *nn);
/* The last graph's arena bytes, the peak of its live intermediates (the
 * lower bound for any plan; both aligned to 256 bytes) and its replay key. */
void sdrt_nn_graph_stats(const sdrt_nn *nn, size_t *arena_bytes, size_t *peak_live_bytes, uint64_t *replay_key);

/* Views (no copy; share memory with `t`). Returned by value. */
sdrt_tensor sdrt_nn_view_reshape(const sdrt_tensor *t, int ndim, const int64_t *shape); /* t contiguous */
sdrt_tensor sdrt_nn_view_permute(const sdrt_tensor *t, const int *perm);
sdrt_tensor sdrt_nn_view_slice(const sdrt_tensor *t, int dim, int64_t start, int64_t len);
int64_t sdrt_nn_numel(const sdrt_tensor *t);
int sdrt_nn_is_contiguous(const sdrt_tensor *t);
/* Host tensor `t` (any non-negative strides; borrowed) into `out`
 * (numel x element size bytes, caller-owned) contiguous in logical order,
 * same dtype. Any thread. */
void sdrt_nn_host_gather(const sdrt_tensor *t, void *out);
/* sdrt_nn_host_gather converting to `dtype` (F32, F16 or BF16 both ways,
 * round to nearest even) into `out` (numel x its size). Returns 0, or -1
 * for another dtype pair or out of host memory. Any thread. */
int sdrt_nn_host_convert(const sdrt_tensor *t, sdrt_dtype dtype, void *out);

/* Ops (see backend.h for the exact semantics). Each returns a new tensor
 * owned by the context, or NULL after a failure. Optional operands may be
 * NULL. */
sdrt_tensor *sdrt_nn_linear(sdrt_nn *nn, const sdrt_tensor *x, const sdrt_tensor *w, const sdrt_tensor *b);
sdrt_tensor *sdrt_nn_matmul(sdrt_nn *nn, const sdrt_tensor *a, const sdrt_tensor *b, int transpose_b, float alpha);
sdrt_tensor *sdrt_nn_conv2d(sdrt_nn *nn, const sdrt_tensor *x, const sdrt_tensor *w, const sdrt_tensor *b,
                            int stride, int padding);
sdrt_tensor *sdrt_nn_group_norm(sdrt_nn *nn, const sdrt_tensor *x, const sdrt_tensor *gamma,
                                const sdrt_tensor *beta, int groups, float eps, int fuse_silu);
sdrt_tensor *sdrt_nn_layer_norm(sdrt_nn *nn, const sdrt_tensor *x, const sdrt_tensor *gamma,
                                const sdrt_tensor *beta, float eps);
sdrt_tensor *sdrt_nn_softmax(sdrt_nn *nn, const sdrt_tensor *x, float scale);
/* q [B,H,Lq,D], k [B,H,Lk,D], v [B,H,Lk,Dv] (strided views allowed). */
sdrt_tensor *sdrt_nn_attention(sdrt_nn *nn, const sdrt_tensor *q, const sdrt_tensor *k,
                               const sdrt_tensor *v, float scale, int causal);
sdrt_tensor *sdrt_nn_gelu(sdrt_nn *nn, const sdrt_tensor *x);
sdrt_tensor *sdrt_nn_gelu_tanh(sdrt_nn *nn, const sdrt_tensor *x);
sdrt_tensor *sdrt_nn_quick_gelu(sdrt_nn *nn, const sdrt_tensor *x);
sdrt_tensor *sdrt_nn_silu(sdrt_nn *nn, const sdrt_tensor *x);
sdrt_tensor *sdrt_nn_geglu(sdrt_nn *nn, const sdrt_tensor *x);
sdrt_tensor *sdrt_nn_add(sdrt_nn *nn, const sdrt_tensor *a, const sdrt_tensor *b);
sdrt_tensor *sdrt_nn_mul(sdrt_nn *nn, const sdrt_tensor *a, const sdrt_tensor *b);
sdrt_tensor *sdrt_nn_scale(sdrt_nn *nn, const sdrt_tensor *x, float scale, float bias);
sdrt_tensor *sdrt_nn_concat(sdrt_nn *nn, const sdrt_tensor *a, const sdrt_tensor *b, int dim);
sdrt_tensor *sdrt_nn_upsample2x(sdrt_nn *nn, const sdrt_tensor *x);
/* The super-resolution ops (backend.h; x contiguous). slope != 0; slopes
 * holds C or 1 values; r >= 1. */
sdrt_tensor *sdrt_nn_leaky_relu(sdrt_nn *nn, const sdrt_tensor *x, float slope);
sdrt_tensor *sdrt_nn_prelu(sdrt_nn *nn, const sdrt_tensor *x, const sdrt_tensor *slopes);
sdrt_tensor *sdrt_nn_pixel_shuffle(sdrt_nn *nn, const sdrt_tensor *x, int r);
sdrt_tensor *sdrt_nn_pixel_unshuffle(sdrt_nn *nn, const sdrt_tensor *x, int r);
sdrt_tensor *sdrt_nn_upsample_nearest(sdrt_nn *nn, const sdrt_tensor *x, int r);
sdrt_tensor *sdrt_nn_timestep_embedding(sdrt_nn *nn, const sdrt_tensor *t, int dim, int flip_sin_to_cos,
                                        float downscale_freq_shift);
/* Contiguous copy in logical order, converting to `dtype`. */
sdrt_tensor *sdrt_nn_copy(sdrt_nn *nn, const sdrt_tensor *x, sdrt_dtype dtype);

#ifdef __cplusplus
}
#endif

#endif /* SDRT_NN_H */
