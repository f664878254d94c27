/* plugins/inference/batch.h - inference.batch: a list of inference.run
 * requests run in order in one job, answered by one final response.
 *
 * Kept apart from plugin.c (like run.h) so tests drive a batch with a fake
 * host and the real plugins. */
#ifndef SDRT_INFERENCE_BATCH_H
#define SDRT_INFERENCE_BATCH_H

#include "run.h"

/* Most items one batch may hold: enough for a grid of seeds, small enough
 * that the single final response stays a sane protocol line. The schema's
 * maxItems; the config's max_batch_items (work_limits.h) may only lower it. */
#define INFER_BATCH_MAX_ITEMS 256

/* Worker thread. Runs the inference.batch request `req` (borrowed):
 * {"requests": [inference.run data, ...], "continue_on_error": bool}.
 *
 * Returns NULL and sets *result_json (allocated with p->api->alloc) to
 * {items: [{index, status, success, data | error, error_code}], succeeded,
 * failed, cancelled, skipped, stopped, processing_time} whenever the
 * envelope was valid: per-item failures and a host.cancel in the middle are
 * reported per item, so finished images are never lost (the host replaces
 * the error_data of any cancelled job's error, so a failure could not carry
 * them). Fails only for the envelope: INVALID_ARGUMENT naming the field
 * ("requests: ...", "requests[3]: ...", and with continue_on_error false
 * "requests[3].width: ..." before anything runs), CANCELLED when cancelled
 * before the first item started, RESOURCE_EXHAUSTED. */
sdrt_error *infer_batch(const infer_plugin *p, const sdrt_request *req, char **result_json);

#endif /* SDRT_INFERENCE_BATCH_H */
