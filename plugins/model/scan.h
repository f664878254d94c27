/* plugins/model/scan.h - model.scan over the model roots. */
#ifndef SDRT_MODEL_SCAN_H
#define SDRT_MODEL_SCAN_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "sdrt/file.h"

/* {"models":[{path, kind, architecture?}]}; caller deletes. Checkpoint
 * headers are read through sdrt_file_open under `scope` (NULL: type checks
 * only), so a file linked from a root to elsewhere is listed as "invalid"
 * without being parsed, and a FIFO never blocks the scan. */
cJSON *scan_roots(char *const *roots, size_t n, const sdrt_file_scope *scope);

#endif
