/* plugins/device/messages.h - the JSON answers of device.list,
 * device.info and device.memory, built from the inventory. Thread-safe:
 * they only read the inventory (memory figures are read live). */
#ifndef SDRT_DEVICE_MESSAGES_H
#define SDRT_DEVICE_MESSAGES_H

#include <cjson/cJSON.h>

#include "inventory.h"

/* {devices:[{id, backend, name, type, memory_total, memory_free, features,
 *  compute}], backends:{cpu:{...}, cuda:{available, reason?...},
 *  vulkan:{...}}, compute_backends:[...], default_device} */
cJSON *devmsg_list(const dev_inventory *inv);

/* Everything known about one device. */
cJSON *devmsg_info(const dev_inventory *inv, const dev_record *r);

/* {devices:[{id, memory_total, memory_free}]}: every device, or only `r`
 * when non-NULL. CUDA figures come from `cuda` (borrowed for the call; the
 * caller re-reads them out of process, see gpu_probe.h), NULL = the
 * inventory's. */
cJSON *devmsg_memory(const dev_inventory *inv, const dev_record *r, const cudaprobe_report *cuda);

#endif
