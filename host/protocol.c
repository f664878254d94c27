/* host/protocol.c - parsing request lines and formatting response, error
 * and event lines, in the seed envelope or in JSON-RPC 2.0 shape. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

/* Envelope keys that are not part of a legacy top-level payload. */
static const char *const ENVELOPE_KEYS[] = {"type", "message_type", "request_id", "message_id", "priority",
                                            "timeout", "data", "jsonrpc", "id", "method", "params", "events", NULL};

static int is_envelope_key(const char *k) {
    for (int i = 0; ENVELOPE_KEYS[i]; i++)
        if (strcmp(ENVELOPE_KEYS[i], k) == 0) return 1;
    return 0;
}

static char *id_text(const cJSON *v) {
    if (cJSON_IsString(v)) return strdup(v->valuestring);
    if (cJSON_IsNumber(v)) {
        char buf[64];
        snprintf(buf, sizeof buf, "%.17g", v->valuedouble);
        return strdup(buf);
    }
    return NULL;
}

/* A string id longer than PROTO_ID_MAX_CHARS is refused: it is echoed in
 * every answer and event and kept in the job table and the crash ledger. */
static int id_too_long(const cJSON *v, const char *field, char *err, size_t errlen) {
    if (!cJSON_IsString(v)) return 0;
    size_t n = utf8_chars(v->valuestring);
    if (n <= PROTO_ID_MAX_CHARS) return 0;
    snprintf(err, errlen, "%s: %zu characters exceed the limit of %d", field, n, PROTO_ID_MAX_CHARS);
    return 1;
}

static int parse_priority_at(const cJSON *p, const char *field, int *out, char *err, size_t errlen) {
    *out = 1;
    if (!p || cJSON_IsNull(p)) return 0;
    if (cJSON_IsString(p)) {
        if (strcmp(p->valuestring, "low") == 0) *out = 0;
        else if (strcmp(p->valuestring, "normal") == 0) *out = 1;
        else if (strcmp(p->valuestring, "high") == 0) *out = 2;
        else if (strcmp(p->valuestring, "urgent") == 0) *out = 3;
        else {
            snprintf(err, errlen, "%s: '%s' is not one of low, normal, high, urgent", field, p->valuestring);
            return -1;
        }
        return 0;
    }
    if (cJSON_IsNumber(p) && p->valuedouble >= 0 && p->valuedouble < PRIORITY_LEVELS &&
        p->valuedouble == floor(p->valuedouble)) {
        *out = (int)p->valuedouble;
        return 0;
    }
    snprintf(err, errlen, "%s: expected \"low\", \"normal\", \"high\" or \"urgent\"", field);
    return -1;
}

static int parse_priority(const cJSON *p, int *out, char *err, size_t errlen) {
    return parse_priority_at(p, "priority", out, err, errlen);
}

/* The old orchestrator put priority inside data: honoured when the envelope
 * has none (the envelope's wins). It stays in data, where a message may
 * give it a meaning of its own (processing.batch_create records it). */
static int take_data_priority(cJSON *data, const cJSON *root_priority, int *out, char *err, size_t errlen) {
    cJSON *dp = cJSON_IsObject(data) ? cJSON_GetObjectItemCaseSensitive(data, "priority") : NULL;
    if (!dp || (root_priority && !cJSON_IsNull(root_priority))) return 0;
    return parse_priority_at(dp, "data.priority", out, err, errlen);
}

static int parse_events(const cJSON *e, int *out, char *err, size_t errlen) {
    *out = -1;
    if (!e || cJSON_IsNull(e)) return 0;
    if (!cJSON_IsBool(e)) {
        snprintf(err, errlen, "events: expected true or false");
        return -1;
    }
    *out = cJSON_IsTrue(e);
    return 0;
}

static int parse_timeout(const cJSON *t, double *out, char *err, size_t errlen) {
    *out = 0;
    if (!t || cJSON_IsNull(t)) return 0;
    if (!cJSON_IsNumber(t) || !(t->valuedouble >= 0) || t->valuedouble > 1e7) {
        snprintf(err, errlen, "timeout: expected a number of seconds in 0..10000000");
        return -1;
    }
    *out = t->valuedouble;
    return 0;
}

static sdrt_status parse_jsonrpc(cJSON *root, proto_request *req, char *err, size_t errlen) {
    req->proto = PROTO_JSONRPC;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (id) {
        req->rpc_id = cJSON_Duplicate(id, 1);
        req->request_id = id_text(id);
        if (id_too_long(id, "id", err, errlen)) return SDRT_INVALID_REQUEST;
    } else {
        req->is_notification = 1;
    }
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "jsonrpc");
    if (!cJSON_IsString(ver) || strcmp(ver->valuestring, "2.0") != 0) {
        snprintf(err, errlen, "jsonrpc: must be \"2.0\"");
        return SDRT_INVALID_REQUEST;
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "method");
    if (!cJSON_IsString(m) || !*m->valuestring) {
        snprintf(err, errlen, "method: missing or not a string");
        return SDRT_INVALID_REQUEST;
    }
    if (utf8_chars(m->valuestring) > PROTO_TYPE_MAX_CHARS) {
        snprintf(err, errlen, "method: longer than %d characters", PROTO_TYPE_MAX_CHARS);
        return SDRT_INVALID_REQUEST;
    }
    req->type = strdup(m->valuestring);
    cJSON *params = cJSON_DetachItemFromObjectCaseSensitive(root, "params");
    if (params && !cJSON_IsObject(params)) {
        cJSON_Delete(params);
        snprintf(err, errlen, "params: expected an object (by-name parameters)");
        return SDRT_INVALID_ARGUMENT;
    }
    req->data = params ? params : cJSON_CreateObject();
    /* sdrt extensions ride in params' siblings, as in the envelope. */
    if (parse_priority(cJSON_GetObjectItemCaseSensitive(root, "priority"), &req->priority, err, errlen) != 0)
        return SDRT_INVALID_ARGUMENT;
    if (parse_timeout(cJSON_GetObjectItemCaseSensitive(root, "timeout"), &req->timeout_s, err, errlen) != 0)
        return SDRT_INVALID_ARGUMENT;
    if (parse_events(cJSON_GetObjectItemCaseSensitive(root, "events"), &req->events, err, errlen) != 0)
        return SDRT_INVALID_ARGUMENT;
    if (strcmp(req->type, "$/cancelRequest") == 0) {
        free(req->type);
        req->type = strdup("host.cancel");
        cJSON *target = cJSON_GetObjectItemCaseSensitive(req->data, "id");
        char *t = target ? id_text(target) : NULL;
        if (t) {
            cJSON_DeleteItemFromObjectCaseSensitive(req->data, "request_id");
            cJSON_AddStringToObject(req->data, "request_id", t);
            free(t);
        }
    }
    return SDRT_OK;
}

/* Legacy workers sent the payload next to the envelope keys, not in data. */
static cJSON *take_data(cJSON *root) {
    cJSON *data = cJSON_DetachItemFromObjectCaseSensitive(root, "data");
    if (data) return data;
    data = cJSON_CreateObject();
    cJSON *it = root->child;
    while (it) {
        cJSON *next = it->next;
        if (it->string && !is_envelope_key(it->string))
            cJSON_AddItemToObject(data, it->string, cJSON_DetachItemViaPointer(root, it));
        it = next;
    }
    return data;
}

static sdrt_status parse_envelope(cJSON *root, proto_request *req, char *err, size_t errlen) {
    req->proto = PROTO_ENVELOPE;
    const cJSON *rid = cJSON_GetObjectItemCaseSensitive(root, "request_id");
    if (!rid) rid = cJSON_GetObjectItemCaseSensitive(root, "message_id");
    if (rid && !cJSON_IsNull(rid)) {
        req->request_id = id_text(rid);
        if (!req->request_id) {
            snprintf(err, errlen, "request_id: expected a string");
            return SDRT_INVALID_REQUEST;
        }
        if (id_too_long(rid, cJSON_GetObjectItemCaseSensitive(root, "request_id") ? "request_id" : "message_id", err,
                        errlen))
            return SDRT_INVALID_REQUEST;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "type");
    const cJSON *mtype = cJSON_GetObjectItemCaseSensitive(root, "message_type");
    if (!type && cJSON_IsString(mtype)) type = mtype;
    if (!type) {
        snprintf(err, errlen, "type: missing");
        return SDRT_INVALID_REQUEST;
    }
    if (!cJSON_IsString(type) || !*type->valuestring) {
        snprintf(err, errlen, "type: expected a non-empty string");
        return SDRT_INVALID_REQUEST;
    }
    if (utf8_chars(type->valuestring) > PROTO_TYPE_MAX_CHARS) {
        snprintf(err, errlen, "type: longer than %d characters", PROTO_TYPE_MAX_CHARS);
        return SDRT_INVALID_REQUEST;
    }
    req->type = strdup(type->valuestring);
    if (parse_priority(cJSON_GetObjectItemCaseSensitive(root, "priority"), &req->priority, err, errlen) != 0)
        return SDRT_INVALID_ARGUMENT;
    if (parse_timeout(cJSON_GetObjectItemCaseSensitive(root, "timeout"), &req->timeout_s, err, errlen) != 0)
        return SDRT_INVALID_ARGUMENT;
    if (parse_events(cJSON_GetObjectItemCaseSensitive(root, "events"), &req->events, err, errlen) != 0)
        return SDRT_INVALID_ARGUMENT;
    req->data = take_data(root);
    if (!cJSON_IsObject(req->data)) {
        snprintf(err, errlen, "data: expected an object, got %s",
                 cJSON_IsArray(req->data) ? "an array" : cJSON_IsString(req->data) ? "a string" : "a non-object");
        return SDRT_INVALID_ARGUMENT;
    }
    if (take_data_priority(req->data, cJSON_GetObjectItemCaseSensitive(root, "priority"), &req->priority, err,
                           errlen) != 0)
        return SDRT_INVALID_ARGUMENT;
    return SDRT_OK;
}

/* The id of a line refused for its bytes, so the refusal can carry it
 * (the writer replaces its invalid bytes). */
static void read_id_only(cJSON *root, proto_request *req) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (cJSON_GetObjectItemCaseSensitive(root, "jsonrpc")) {
        req->proto = PROTO_JSONRPC;
        if (id) {
            req->rpc_id = cJSON_Duplicate(id, 1);
            req->request_id = id_text(id);
        }
        return;
    }
    id = cJSON_GetObjectItemCaseSensitive(root, "request_id");
    if (!id) id = cJSON_GetObjectItemCaseSensitive(root, "message_id");
    if (!id) id = cJSON_GetObjectItemCaseSensitive(root, "Id");
    if (id) req->request_id = id_text(id);
}

/* The id of a line with invalid bytes is echoed with U+FFFD in their place
 * (a raw 0xFF must not read as the NUL stand-in). */
static void replace_invalid_id(proto_request *req) {
    if (req->request_id) {
        char *r = utf8_replace_invalid(req->request_id);
        free(req->request_id);
        req->request_id = r;
    }
    if (cJSON_IsString(req->rpc_id)) {
        char *r = utf8_replace_invalid(req->rpc_id->valuestring);
        cJSON_Delete(req->rpc_id);
        req->rpc_id = cJSON_CreateString(r ? r : "");
        free(r);
    }
}

sdrt_status proto_parse(const char *line, size_t len, proto_request *req, char *err, size_t errlen) {
    memset(req, 0, sizeof *req);
    req->priority = 1;
    req->events = -1;
    const char *end = NULL;
    size_t bad = utf8_check(line, len);
    size_t nul_len = 0;
    char *nul_line = bad == len ? utf8_nul_in(line, len, &nul_len) : NULL;
    const char *text = nul_line ? nul_line : line;
    size_t text_len = nul_line ? nul_len : len;
    cJSON *root = cJSON_ParseWithLengthOpts(text, text_len, &end, 0);
    long at = end ? (long)(end - text) : 0L;
    if (root) {
        while (end && (size_t)(end - text) < text_len && (*end == ' ' || *end == '\t' || *end == '\r')) end++;
        if (end && (size_t)(end - text) < text_len) {
            cJSON_Delete(root);
            free(nul_line);
            snprintf(err, errlen, "not valid JSON: trailing characters at byte %ld", (long)(end - text));
            return SDRT_PARSE_ERROR;
        }
    }
    free(nul_line); /* cJSON copied every string */
    if (!root) {
        snprintf(err, errlen, "not valid JSON (at byte %ld)", at);
        return SDRT_PARSE_ERROR;
    }
    if (bad < len) {
        if (cJSON_IsObject(root)) read_id_only(root, req);
        replace_invalid_id(req);
        cJSON_Delete(root);
        snprintf(err, errlen, "the line is not valid UTF-8 (at byte %zu)", bad);
        return SDRT_INVALID_REQUEST;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        snprintf(err, errlen, "request must be a JSON object");
        return SDRT_INVALID_REQUEST;
    }
    sdrt_status st;
    if (cJSON_GetObjectItemCaseSensitive(root, "jsonrpc")) {
        st = parse_jsonrpc(root, req, err, errlen);
    } else {
        st = legacy_reshape(root, &req->reply_extra, err, errlen);
        if (st == SDRT_OK) st = parse_envelope(root, req, err, errlen);
        else read_id_only(root, req);
    }
    if (st == SDRT_OK) legacy_normalise(req, root);
    cJSON_Delete(root);
    return st;
}

void proto_request_free(proto_request *req) {
    free(req->type);
    free(req->request_id);
    cJSON_Delete(req->rpc_id);
    cJSON_Delete(req->data);
    cJSON_Delete(req->warnings);
    free(req->reply_extra);
    memset(req, 0, sizeof *req);
}

static void add_request_id(cJSON *o, const char *request_id) {
    if (request_id) cJSON_AddStringToObject(o, "request_id", request_id);
    else cJSON_AddNullToObject(o, "request_id");
}

static char *print_and_free(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* result_json comes from a plugin: a non-object (or broken text) is wrapped. */
static cJSON *parse_result(const char *result_json) {
    if (!result_json) return cJSON_CreateObject();
    cJSON *r = cJSON_Parse(result_json);
    if (cJSON_IsObject(r)) return r;
    cJSON_Delete(r);
    return NULL;
}

/* `seconds` rounded to `decimals` (<= 9) places as a JSON number in the
 * shortest form ("1.93", "0"), into text (48 bytes). Written with integer
 * arithmetic: cJSON prints every number, integers included, with printf
 * %1.15g and then sscanf to check the round trip, the largest cost of a
 * small response. Returns 0, or -1 outside the exact range. */
int proto_fixed_text(char *text, double seconds, int decimals) {
    long long scale = 1;
    for (int i = 0; i < decimals; i++) scale *= 10;
    double scaled = round(seconds * (double)scale);
    if (!isfinite(scaled) || fabs(scaled) > 9e15) return -1;
    long long v = (long long)scaled;
    unsigned long long a = (unsigned long long)(v < 0 ? -v : v);
    unsigned long long whole = a / (unsigned long long)scale, frac = a % (unsigned long long)scale;
    char *p = text;
    if (v < 0) *p++ = '-';
    p += proto_uint_text(p, whole);
    if (frac) {
        int d = decimals;
        while (frac % 10 == 0) {
            frac /= 10;
            d--;
        }
        *p++ = '.';
        for (int i = d - 1; i >= 0; i--) {
            p[i] = (char)('0' + frac % 10);
            frac /= 10;
        }
        p += d;
    }
    *p = '\0';
    return 0;
}

/* Decimal digits of v into text (21 bytes); returns their count. */
int proto_uint_text(char *text, unsigned long long v) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++) text[i] = tmp[n - 1 - i];
    text[n] = '\0';
    return n;
}

void proto_add_fixed(cJSON *o, const char *key, double seconds, int decimals) {
    char text[48];
    if (proto_fixed_text(text, seconds, decimals) != 0) {
        cJSON_AddNumberToObject(o, key, seconds); /* out of the exact range: let cJSON print it */
        return;
    }
    cJSON_AddRawToObject(o, key, text);
}

void proto_add_int(cJSON *o, const char *key, long long value) {
    char text[24];
    text[0] = '-';
    proto_uint_text(text + (value < 0), value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value);
    cJSON_AddRawToObject(o, key, text);
}

/* A growing text buffer for the response lines written without cJSON. */
typedef struct text_buf {
    char *p;
    size_t n, cap;
} text_buf;

static void tb_put(text_buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) return;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void tb_puts(text_buf *b, const char *s) { tb_put(b, s, strlen(s)); }

/* A JSON string, escaped as cJSON escapes (bytes >= 0x80 as they are: the
 * writer makes the line valid UTF-8). */
static void tb_json_string(text_buf *b, const char *s) {
    tb_put(b, "\"", 1);
    const char *run = s;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        tb_put(b, run, (size_t)(p - run));
        char esc[8];
        switch (c) {
        case '"': tb_put(b, "\\\"", 2); break;
        case '\\': tb_put(b, "\\\\", 2); break;
        case '\b': tb_put(b, "\\b", 2); break;
        case '\f': tb_put(b, "\\f", 2); break;
        case '\n': tb_put(b, "\\n", 2); break;
        case '\r': tb_put(b, "\\r", 2); break;
        case '\t': tb_put(b, "\\t", 2); break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", c);
            tb_put(b, esc, 6);
        }
        run = p + 1;
    }
    tb_puts(b, run);
    tb_put(b, "\"", 1);
}

/* metrics as JSON text into b: {"processing_time_ms","execution_time_ms",
 * "memory_usage_mb","gpu_utilization"}. gpu_utilization is null: no
 * backend reports a utilisation figure. */
static void tb_metrics(struct text_buf *b, const proto_metrics *m);

char *proto_format_result(job_proto proto, const char *request_id, const cJSON *rpc_id, cJSON *result,
                          const cJSON *warnings, const proto_metrics *m) {
    double exec_time = m ? m->execution_s : 0;
    if (proto == PROTO_JSONRPC) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "jsonrpc", "2.0");
        cJSON_AddItemToObject(o, "id", rpc_id ? cJSON_Duplicate(rpc_id, 1) : cJSON_CreateNull());
        if (warnings && cJSON_GetArraySize(warnings) > 0) {
            if (cJSON_IsRaw(result)) { /* a host text result: make it an object again */
                cJSON *parsed = cJSON_Parse(result->valuestring);
                cJSON_Delete(result);
                result = parsed ? parsed : cJSON_CreateObject();
            }
            cJSON_AddItemToObject(result, "_warnings", cJSON_Duplicate(warnings, 1));
        }
        cJSON_AddItemToObject(o, "result", result);
        if (m) { /* beside result: a JSON-RPC result's members are the method's */
            text_buf mb = {0};
            tb_metrics(&mb, m);
            cJSON *mj = mb.p ? cJSON_Parse(mb.p) : NULL;
            free(mb.p);
            if (mj) cJSON_AddItemToObject(result, "_metrics", mj);
        }
        return print_and_free(o);
    }
    /* The envelope is written as text around the printed result: building
     * it as cJSON items (and freeing them) cost more than the result. A
     * result that is a cJSON raw item is already JSON text (host.health). */
    char *printed = cJSON_IsRaw(result) ? NULL : cJSON_PrintUnformatted(result);
    const char *result_text = cJSON_IsRaw(result) ? result->valuestring : printed;
    char *warn_text = warnings && cJSON_GetArraySize(warnings) > 0 ? cJSON_PrintUnformatted(warnings) : NULL;
    text_buf b = {0};
    tb_puts(&b, "{\"type\":\"response\",\"request_id\":");
    if (request_id) tb_json_string(&b, request_id);
    else tb_puts(&b, "null");
    tb_puts(&b, ",\"success\":true,\"data\":");
    tb_puts(&b, result_text ? result_text : "{}");
    tb_puts(&b, ",\"warnings\":");
    tb_puts(&b, warn_text ? warn_text : "[]");
    char num[48];
    tb_puts(&b, ",\"execution_time\":");
    if (proto_fixed_text(num, exec_time, 6) != 0) snprintf(num, sizeof num, "0");
    tb_puts(&b, num);
    tb_puts(&b, ",\"metrics\":");
    tb_metrics(&b, m);
    tb_puts(&b, "}");
    free(printed);
    free(warn_text);
    cJSON_Delete(result);
    return b.p;
}

static void tb_num(text_buf *b, double v, int decimals) {
    char num[48];
    if (proto_fixed_text(num, v, decimals) != 0) snprintf(num, sizeof num, "0");
    tb_puts(b, num);
}

static void tb_metrics(text_buf *b, const proto_metrics *m) {
    proto_metrics none = {0, 0, -1, 0, 0};
    if (!m) m = &none;
    tb_puts(b, "{\"processing_time_ms\":");
    tb_num(b, m->processing_s * 1e3, 3);
    tb_puts(b, ",\"execution_time_ms\":");
    tb_num(b, m->execution_s * 1e3, 3);
    tb_puts(b, ",\"memory_usage_mb\":");
    if (m->peak_rss_mb >= 0) tb_num(b, m->peak_rss_mb, 1);
    else tb_puts(b, "null");
    tb_puts(b, ",\"device_memory_mb\":");
    if (m->device_known) tb_num(b, m->device_mb, 1);
    else tb_puts(b, "null");
    tb_puts(b, ",\"gpu_utilization\":null}");
}

char *proto_format_success(job_proto proto, const char *request_id, const cJSON *rpc_id, const char *result_json,
                           const cJSON *warnings, const proto_metrics *m) {
    cJSON *result = parse_result(result_json);
    if (!result) {
        sdrt_error *e = error_new(SDRT_INTERNAL, NULL, "plugin returned a result that is not a JSON object");
        char *s = proto_format_error(proto, request_id, rpc_id, e, warnings, m);
        error_free(e);
        return s;
    }
    return proto_format_result(proto, request_id, rpc_id, result, warnings, m);
}

static cJSON *metrics_json(const proto_metrics *m) {
    text_buf b = {0};
    tb_metrics(&b, m);
    cJSON *o = b.p ? cJSON_Parse(b.p) : NULL;
    free(b.p);
    return o ? o : cJSON_CreateObject();
}

char *proto_format_error(job_proto proto, const char *request_id, const cJSON *rpc_id, const sdrt_error *err,
                         const cJSON *warnings, const proto_metrics *m) {
    cJSON *data = err->data_json ? cJSON_Parse(err->data_json) : NULL;
    if (data && !cJSON_IsObject(data)) {
        cJSON_Delete(data);
        data = NULL;
    }
    cJSON *o = cJSON_CreateObject();
    if (proto == PROTO_JSONRPC) {
        cJSON_AddStringToObject(o, "jsonrpc", "2.0");
        cJSON_AddItemToObject(o, "id", rpc_id ? cJSON_Duplicate(rpc_id, 1) : cJSON_CreateNull());
        cJSON *e = cJSON_AddObjectToObject(o, "error");
        proto_add_int(e, "code", status_rpc_code(err->code));
        cJSON_AddStringToObject(e, "message", err->message);
        if (!data) data = cJSON_CreateObject();
        cJSON_AddStringToObject(data, "status", status_name(err->code));
        if (warnings && cJSON_GetArraySize(warnings) > 0 && !cJSON_GetObjectItemCaseSensitive(data, "_warnings"))
            cJSON_AddItemToObject(data, "_warnings", cJSON_Duplicate(warnings, 1));
        if (m) cJSON_AddItemToObject(data, "_metrics", metrics_json(m));
        cJSON_AddItemToObject(e, "data", data);
        return print_and_free(o);
    }
    cJSON_AddStringToObject(o, "type", "response");
    add_request_id(o, request_id);
    cJSON_AddFalseToObject(o, "success");
    cJSON_AddStringToObject(o, "error", err->message);
    cJSON_AddStringToObject(o, "error_code", status_name(err->code));
    if (data) cJSON_AddItemToObject(o, "error_data", data);
    if (m) {
        cJSON_AddItemToObject(o, "warnings", warnings ? cJSON_Duplicate(warnings, 1) : cJSON_CreateArray());
        proto_add_fixed(o, "execution_time", m->execution_s, 6);
        cJSON_AddItemToObject(o, "metrics", metrics_json(m));
    }
    return print_and_free(o);
}

char *proto_format_event(job_proto proto, const char *request_id, const cJSON *rpc_id, const char *event_name,
                         const char *data_json) {
    cJSON *data = data_json ? cJSON_Parse(data_json) : cJSON_CreateObject();
    if (!data) data = cJSON_CreateObject();
    cJSON *o = cJSON_CreateObject();
    if (proto == PROTO_JSONRPC) {
        cJSON_AddStringToObject(o, "jsonrpc", "2.0");
        int is_progress = strcmp(event_name, "progress") == 0;
        cJSON_AddStringToObject(o, "method", is_progress ? "$/progress" : "$/event");
        cJSON *params = cJSON_AddObjectToObject(o, "params");
        cJSON_AddItemToObject(params, "id", rpc_id ? cJSON_Duplicate(rpc_id, 1) : cJSON_CreateNull());
        if (!is_progress) cJSON_AddStringToObject(params, "event_name", event_name);
        cJSON_AddItemToObject(params, is_progress ? "value" : "data", data);
        return print_and_free(o);
    }
    cJSON_AddStringToObject(o, "type", "event");
    add_request_id(o, request_id);
    cJSON_AddStringToObject(o, "event_name", event_name);
    cJSON_AddItemToObject(o, "data", data);
    return print_and_free(o);
}
