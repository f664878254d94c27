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

/* The old device manager's memory switches (diffusers' pipeline methods)
 * and sdrt's real equivalents (docs/devices.md "Memory modes"):
 *   cpu_offload            -> "offload": "model"       (enable_model_cpu_offload)
 *   sequential_cpu_offload -> "offload": "sequential"  (enable_sequential_cpu_offload)
 *   vae_slicing            -> "vae_slicing": true      (enable_vae_slicing)
 *   vae_tiling             -> "vae_tiling": true       (enable_vae_tiling)
 *   attention_slicing      -> nothing: a warning says why it does not apply.
 * At the top of data, offload is the real field and the two offload
 * switches map onto it; vae_slicing and vae_tiling are real fields there
 * already. Inside a memory / memory_optimization / optimizations object
 * every switch is taken out and mapped the same way. A switch set false
 * asks for the default and is dropped without a word; a field given
 * explicitly at the top wins over a switch, with a warning. */
typedef enum { MAP_OFFLOAD_MODEL, MAP_OFFLOAD_SEQUENTIAL, MAP_VAE_SLICING, MAP_VAE_TILING, MAP_NONE } switch_map;

static const struct {
    const char *name;
    switch_map map;
    int top_level_real; /* a field of inference.run at the top of data */
} SWITCHES[] = {
    {"cpu_offload", MAP_OFFLOAD_MODEL, 0},
    {"sequential_cpu_offload", MAP_OFFLOAD_SEQUENTIAL, 0},
    {"vae_slicing", MAP_VAE_SLICING, 1},
    {"vae_tiling", MAP_VAE_TILING, 1},
    {"attention_slicing", MAP_NONE, 0},
    {NULL, MAP_NONE, 0},
};

#define ATTENTION_SLICING_WHY                                                                                     \
    "sdrt's attention never holds the whole score matrix (a flash-style kernel on GPUs, strips of query rows on " \
    "the CPU), so slicing it has nothing to save; max_batch bounds a UNet call's memory"

static void warn(cJSON **warnings, const char *msg) {
    if (!*warnings) *warnings = cJSON_CreateArray();
    cJSON_AddItemToArray(*warnings, cJSON_CreateString(msg));
}

/* What the switches asked for, collected before data is changed. */
typedef struct switch_asks {
    int offload;             /* -1, 1 model, 2 sequential */
    char offload_from[160]; /* the switch that decided it */
    int vae_slicing, vae_tiling;
    char slicing_from[160], tiling_from[160];
} switch_asks;

static void take_switches(cJSON *obj, const char *prefix, int top, cJSON **warnings, switch_asks *a) {
    for (int i = 0; SWITCHES[i].name; i++) {
        if (top && SWITCHES[i].top_level_real) continue; /* the real field: the schema checks it */
        cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(obj, SWITCHES[i].name);
        if (!v) continue;
        char where[160];
        snprintf(where, sizeof where, "%s%s", prefix, SWITCHES[i].name);
        if (!cJSON_IsFalse(v)) { /* asking for it off needs no word */
            switch (SWITCHES[i].map) {
            case MAP_OFFLOAD_MODEL:
            case MAP_OFFLOAD_SEQUENTIAL: {
                int mode = SWITCHES[i].map == MAP_OFFLOAD_MODEL ? 1 : 2;
                if (mode > a->offload) { /* sequential is the stronger of the two, as in diffusers */
                    a->offload = mode;
                    snprintf(a->offload_from, sizeof a->offload_from, "%s", where);
                }
                break;
            }
            case MAP_VAE_SLICING:
                a->vae_slicing = 1;
                snprintf(a->slicing_from, sizeof a->slicing_from, "%s", where);
                break;
            case MAP_VAE_TILING:
                a->vae_tiling = 1;
                snprintf(a->tiling_from, sizeof a->tiling_from, "%s", where);
                break;
            case MAP_NONE: {
                char msg[512];
                snprintf(msg, sizeof msg, "%s: ignored: %s", where, ATTENTION_SLICING_WHY);
                warn(warnings, msg);
                break;
            }
            }
        }
        cJSON_Delete(v);
    }
}

/* Sets data.<field> = item unless the request gives the field itself (then
 * the switch is named in a warning). Takes `item`. */
static void apply(cJSON *data, const char *base, const char *field, cJSON *item, const char *from, cJSON **warnings) {
    if (cJSON_GetObjectItemCaseSensitive(data, field)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s: ignored: %s%s is given", from, base, field);
        warn(warnings, msg);
        cJSON_Delete(item);
        return;
    }
    cJSON_AddItemToObject(data, field, item);
}

/* One inference.run data object; `base` names it in warnings ("data."). */
static void map_switches(cJSON *data, const char *base, cJSON **warnings) {
    if (!cJSON_IsObject(data)) return;
    switch_asks a = {.offload = -1};
    take_switches(data, base, 1, warnings, &a);
    const char *groups[] = {"memory", "memory_optimization", "optimizations", NULL};
    for (int g = 0; groups[g]; g++) {
        cJSON *o = cJSON_GetObjectItemCaseSensitive(data, groups[g]);
        if (!cJSON_IsObject(o)) continue;
        char prefix[96];
        snprintf(prefix, sizeof prefix, "%s%s.", base, groups[g]);
        take_switches(o, prefix, 0, warnings, &a);
        if (!o->child) cJSON_DeleteItemFromObjectCaseSensitive(data, groups[g]); /* nothing else in it */
    }
    if (a.offload > 0)
        apply(data, base, "offload", cJSON_CreateString(a.offload == 2 ? "sequential" : "model"), a.offload_from,
              warnings);
    if (a.vae_slicing) apply(data, base, "vae_slicing", cJSON_CreateTrue(), a.slicing_from, warnings);
    if (a.vae_tiling) apply(data, base, "vae_tiling", cJSON_CreateTrue(), a.tiling_from, warnings);
}

void fields_memory_switches(const char *type, cJSON *data, cJSON **warnings) {
    if (strcmp(type, "inference.batch") != 0) {
        map_switches(data, "data.", warnings);
        return;
    }
    /* A batch's items are inference.run data objects. */
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(data, "requests")) {
        char base[64];
        snprintf(base, sizeof base, "data.requests[%d].", i++);
        map_switches((cJSON *)it, base, warnings);
    }
}
