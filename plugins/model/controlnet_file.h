/* plugins/model/controlnet_file.h - single-file ControlNets (see
 * controlnet_file.c). */
#ifndef SDRT_MODEL_CONTROLNET_FILE_H
#define SDRT_MODEL_CONTROLNET_FILE_H

#include "safetensors.h"
#include "store.h"

/* 1: original (control_model.*) layout, 2: diffusers names, 0: not a
 * ControlNet. */
int controlnet_file_sniff(const st_file *f);
/* Adds the "controlnet" component of `f` (owned by m already) to m, with its
 * derived config, and sets m->arch. Returns SDRT_OK or a status with err
 * naming the file. */
sdrt_status controlnet_file_load(struct sdrt_model *m, st_file *f, int kind, char *err, size_t errlen);

#endif
