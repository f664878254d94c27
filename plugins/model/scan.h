/* plugins/model/scan.h - model.scan over the model roots. */
#ifndef SDRT_MODEL_SCAN_H
#define SDRT_MODEL_SCAN_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* {"models":[{path, kind, architecture?}]}; caller deletes. */
cJSON *scan_roots(char *const *roots, size_t n);

#endif
