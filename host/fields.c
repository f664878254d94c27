/* host/fields.c - "nothing dropped silently": the top-level fields of a
 * request's data that its message schema does not know become warnings.
 * The schemas in schemas/messages are the one list of known fields. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "schema.h"

/* Levenshtein distance, capped: names longer than 64 bytes are not compared. */
static int edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 64 || m > 64) return 1000;
    int prev[65], cur[65];
    for (size_t j = 0; j <= m; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof(int) * (m + 1));
    }
    return prev[m];
}

/* Collects the property names a schema node declares (its own properties
 * and those of allOf/anyOf/oneOf members). Returns 0 when the node accepts
 * any other name (additionalProperties or patternProperties given as a
 * schema): then nothing is unknown and no warning is given. */
static int collect(const cJSON *node, const cJSON **names, int *n, int cap) {
    if (!cJSON_IsObject(node)) return 1;
    const cJSON *ap = cJSON_GetObjectItemCaseSensitive(node, "additionalProperties");
    if (cJSON_IsObject(ap) || cJSON_IsTrue(ap) || cJSON_GetObjectItemCaseSensitive(node, "patternProperties")) return 0;
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(node, "properties"), *it;
    cJSON_ArrayForEach(it, props) {
        if (*n < cap) names[(*n)++] = it;
    }
    const char *comb[] = {"allOf", "anyOf", "oneOf", NULL};
    for (int c = 0; comb[c]; c++) {
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(node, comb[c])) {
            if (!collect(it, names, n, cap)) return 0;
        }
    }
    return 1;
}

void fields_check_unknown(const void *schemas, const char *type, const cJSON *data, cJSON **warnings) {
    if (!cJSON_IsObject(data) || !data->child) return; /* no field, nothing unknown (most host.* messages) */
    const cJSON *doc = schema_message_doc(schemas, type);
    if (!doc) return;
    /* additionalProperties false: the validator refuses unknown names itself. */
    if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(doc, "additionalProperties"))) return;
    const cJSON *names[512];
    int n = 0;
    if (!collect(doc, names, &n, 512) || n == 0) return;
    const cJSON *f;
    cJSON_ArrayForEach(f, data) {
        /* data.priority is the host's (the request's queue priority). */
        if (strcmp(f->string, "priority") == 0) continue;
        int known = 0, best = 1000;
        const char *nearest = NULL;
        for (int i = 0; i < n && !known; i++) {
            if (strcmp(names[i]->string, f->string) == 0) {
                known = 1;
                break;
            }
            int d = edit_distance(f->string, names[i]->string);
            if (d < best) {
                best = d;
                nearest = names[i]->string;
            }
        }
        if (known) continue;
        /* Close: at most 2 edits, and fewer than a third of the name. */
        size_t len = strlen(f->string);
        char msg[512];
        if (nearest && best <= 2 && (size_t)best * 3 <= len)
            snprintf(msg, sizeof msg, "data.%s: unknown field, ignored (did you mean '%s'?)", f->string, nearest);
        else
            snprintf(msg, sizeof msg, "data.%s: unknown field, ignored", f->string);
        if (!*warnings) *warnings = cJSON_CreateArray();
        cJSON_AddItemToArray(*warnings, cJSON_CreateString(msg));
    }
}

/* The old device manager's memory switches and why each has no effect in
 * sdrt (there is no switch to map them to). */
static const struct {
    const char *name;
    const char *why;
} SWITCHES[] = {
    {"attention_slicing", "sdrt has no attention-slicing mode; a UNet call's memory is bounded by max_batch "
                          "(images per UNet call; default from the device's free memory)"},
    {"vae_slicing", "the VAE decodes in tiles by itself when its activations do not fit the memory budget"},
    {"cpu_offload", "sdrt has no offload mode: a model's weights stay on the device that runs it (the model "
                    "cache's budget is the model plugin's cache_bytes)"},
    {"sequential_cpu_offload", "sdrt has no offload mode: a model's weights stay on the device that runs it "
                               "(the model cache's budget is the model plugin's cache_bytes)"},
    {NULL, NULL},
};

static void take_switches(cJSON *obj, const char *prefix, cJSON **warnings) {
    for (int i = 0; SWITCHES[i].name; i++) {
        cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(obj, SWITCHES[i].name);
        if (!v) continue;
        if (!cJSON_IsFalse(v)) { /* asking for it off needs no word */
            char msg[512];
            snprintf(msg, sizeof msg, "%s%s: ignored: %s", prefix, SWITCHES[i].name, SWITCHES[i].why);
            if (!*warnings) *warnings = cJSON_CreateArray();
            cJSON_AddItemToArray(*warnings, cJSON_CreateString(msg));
        }
        cJSON_Delete(v);
    }
}

void fields_memory_switches(cJSON *data, cJSON **warnings) {
    if (!cJSON_IsObject(data)) return;
    take_switches(data, "data.", warnings);
    const char *groups[] = {"memory", "memory_optimization", "optimizations", NULL};
    for (int g = 0; groups[g]; g++) {
        cJSON *o = cJSON_GetObjectItemCaseSensitive(data, groups[g]);
        if (!cJSON_IsObject(o)) continue;
        char prefix[64];
        snprintf(prefix, sizeof prefix, "data.%s.", groups[g]);
        take_switches(o, prefix, warnings);
        if (!o->child) cJSON_DeleteItemFromObjectCaseSensitive(data, groups[g]); /* nothing else in it */
    }
}
