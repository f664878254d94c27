/* plugins/lora/messages.h - the lora.* messages. */
#ifndef SDRT_LORA_MESSAGES_H
#define SDRT_LORA_MESSAGES_H

#include <cjson/cJSON.h>

#include "lora_file.h"
#include "plugin.h"

/* {"loras":[{name, path, format, algorithms, architecture, rank, alpha, ...}],
 * "folders":[...]}: LoRA files under the LoRA folders (recursively, broken
 * ones with "error") and at the top of the model roots. */
sdrt_error *lora_msg_list(lora_plugin *p, const cJSON *data, cJSON **out);
/* {"lora": name|path, "model_id"?: base model}: the file's summary, its
 * ignored keys and metadata; with model_id, also compatibility and the
 * keys matched / not matched (with the reason). */
sdrt_error *lora_msg_inspect(lora_plugin *p, const cJSON *data, sdrt_job *job, cJSON **out);
/* What a file says about itself (caller deletes). */
cJSON *lora_file_summary(const lora_file *f);

#endif
