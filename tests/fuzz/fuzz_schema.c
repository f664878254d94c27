/* tests/fuzz/fuzz_schema.c - libFuzzer target for host/schema.c.
 *
 * Input without a NUL byte: a JSON instance, validated against every schema
 * of the real set (schemas/, loaded once). Input "SCHEMA\0INSTANCE": the
 * first part is added as a schema (exercising the loader's checks, the
 * regex compiler, $ref resolution and cycles) and the second validated
 * against it. Every call must return without crashing, leaking or hanging,
 * and an invalid verdict must come with a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"

#ifndef SDRT_SOURCE_DIR
#define SDRT_SOURCE_DIR "."
#endif

static schema_set *real_set(void) {
    static schema_set *set;
    static int tried;
    if (tried) return set;
    tried = 1;
    const char *src = getenv("SDRT_SOURCE_DIR");
    char dir[4096], err[512];
    strncpy(dir, src ? src : SDRT_SOURCE_DIR, sizeof dir - 16);
    dir[sizeof dir - 16] = 0;
    strcat(dir, "/schemas");
    set = schema_set_load_dir(dir, err, sizeof err);
    return set;
}

static void check_verdict(const schema_set *s, const char *id, const cJSON *doc) {
    char err[512];
    err[0] = 0;
    int rc = schema_validate(s, id, doc, err, sizeof err);
    if (rc != 0 && err[0] == 0) abort(); /* a failure must say why */
}

static void against_real_set(const char *text) {
    schema_set *s = real_set();
    cJSON *doc = cJSON_Parse(text);
    if (!s || !doc) {
        cJSON_Delete(doc);
        return;
    }
    static const char *const ids[] = {"envelope.schema.json", "config.schema.json", NULL};
    for (int i = 0; ids[i]; i++) check_verdict(s, ids[i], doc);
    static const char *const types[] = {"inference.run", "model.load", "host.cancel", "device.info",
                                        "scheduler.sigmas", "conditioning.tokenize", NULL};
    for (int i = 0; types[i]; i++) {
        const char *id = schema_for_message(s, types[i]);
        if (id) check_verdict(s, id, doc);
    }
    cJSON_Delete(doc);
}

static void against_own_schema(const char *schema_text, const char *instance_text) {
    schema_set *s = schema_set_new();
    char err[512];
    cJSON *doc = cJSON_Parse(instance_text);
    if (s && doc && schema_set_add_json(s, "fuzz.json", schema_text, err, sizeof err) == 0) {
        schema_set_check_refs(s, err, sizeof err);
        check_verdict(s, "fuzz.json", doc);
    }
    cJSON_Delete(doc);
    schema_set_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    size_t first = strlen(buf);
    if (first == size) against_real_set(buf);
    else against_own_schema(buf, buf + first + 1);
    free(buf);
    return 0;
}
