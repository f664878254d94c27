/* plugins/processing/workflow.h - workflows: built-in templates, user
 * workflows as JSON, their validation and the $ref values between steps. */
#ifndef SDRT_PROCESSING_WORKFLOW_H
#define SDRT_PROCESSING_WORKFLOW_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "sdrt/plugin.h"

/* Most steps one workflow may have. */
#define WF_MAX_STEPS 64

/* The list of templates for processing.workflows (new object). */
cJSON *wf_template_list(void);
/* One template's description (new object), or NULL when `id` is unknown. */
cJSON *wf_template_describe(const char *id);
/* The steps array (new) of template `id` filled from `inputs`; NULL with
 * *err set (INVALID_ARGUMENT naming the input, NOT_FOUND for the id).
 * Inputs the template does not know are warned about through warn(job). */
cJSON *wf_template_steps(const sdrt_host_api *api, sdrt_job *job, const char *id, const cJSON *inputs,
                         sdrt_error **err);

/* Checks a steps array before anything runs: shape, unique ids, each
 * step's type served by a plugin (api->call check mode), every $ref naming
 * an existing other step and, for known step types, an output it has, and
 * no cycle. On success fills order[] with the step indices in run order and
 * returns NULL; else an error naming the step ("workflow.steps[2] ('up'):
 * ..."). */
sdrt_error *wf_validate(const sdrt_host_api *api, sdrt_job *job, const cJSON *steps, int order[WF_MAX_STEPS]);

/* A copy of `data` with every {"$ref":"<step>.<path>"} replaced by that
 * step's output (results: object step id -> result). NULL with *err set
 * when a path is missing from the result. */
cJSON *wf_resolve_refs(const sdrt_host_api *api, const cJSON *data, const cJSON *results, const char *step_id,
                       sdrt_error **err);

#endif
