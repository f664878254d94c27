/* tests/fuzz/fuzz_request.c - the request path: one input line through
 * parsing, legacy normalisation, schema validation of its data and response
 * formatting. Nothing here may crash, leak or hang on any input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "schema.h"

static schema_set *schemas(void) {
    static schema_set *s;
    static int tried;
    if (!tried) {
        tried = 1;
        char err[512];
        const char *dir = getenv("SDRT_SCHEMAS_DIR");
        s = schema_set_load_dir(dir ? dir : SDRT_SOURCE_DIR "/schemas", err, sizeof err);
    }
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    proto_request req;
    char err[1024];
    sdrt_status st = proto_parse((const char *)data, size, &req, err, sizeof err);
    char *line;
    if (st != SDRT_OK) {
        sdrt_error *e = error_new(st, NULL, "%s", err);
        line = proto_format_error(req.proto, req.request_id, req.rpc_id, e, NULL, NULL);
        error_free(e);
    } else {
        schema_set *s = schemas();
        const char *sid = s ? schema_for_message(s, req.type) : NULL;
        if (sid) schema_validate(s, sid, req.data, err, sizeof err);
        char *data_json = cJSON_PrintUnformatted(req.data);
        proto_metrics m = {.processing_s = 0.5, .execution_s = 0.5, .peak_rss_mb = -1};
        line = proto_format_success(req.proto, req.request_id, req.rpc_id, data_json, NULL, &m);
        free(data_json);
    }
    free(line);
    proto_request_free(&req);
    return 0;
}
