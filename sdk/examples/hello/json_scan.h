/* json_scan.h - reads one top-level string member of a JSON object, and
 * writes JSON string literals. Just enough for the example, so that it
 * builds against the sdrt SDK alone; a real plugin would use a JSON library
 * (cJSON, yyjson, ...) linked into the plugin. */
#ifndef HELLO_JSON_SCAN_H
#define HELLO_JSON_SCAN_H

#include <stddef.h>

typedef enum json_scan_result {
    JSON_SCAN_FOUND = 0,      /* a string; decoded into out */
    JSON_SCAN_MISSING = 1,    /* no such member */
    JSON_SCAN_NOT_STRING = 2, /* present but another type */
    JSON_SCAN_NOT_OBJECT = 3, /* the text is not a well-formed object */
    JSON_SCAN_TOO_LONG = 4    /* the string does not fit in out */
} json_scan_result;

/* Finds member `key` of the object `json` and decodes its string value as
 * UTF-8 into out (NUL-terminated). A value containing U+0000 counts as
 * JSON_SCAN_NOT_STRING: it cannot be a C string. */
json_scan_result json_scan_string(const char *json, const char *key, char *out, size_t outlen);

/* Writes `s` as a quoted JSON string literal into out; returns the length
 * needed (like snprintf). */
size_t json_scan_quote(const char *s, char *out, size_t outlen);

#endif
