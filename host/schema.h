/* host/schema.h - a compact JSON Schema 2020-12 validator over cJSON.
 *
 * Internal to the host (not part of the plugin ABI). Supports the keywords
 * sdrt's own schemas use:
 *   type (string or array; "integer" = a number with no fraction), enum,
 *   const, properties, required, additionalProperties (bool or schema),
 *   patternProperties, items, prefixItems, minItems, maxItems, minimum,
 *   maximum, exclusiveMinimum, exclusiveMaximum, multipleOf, minLength,
 *   maxLength (in code points), pattern, allOf, anyOf, oneOf, not, $ref,
 *   $defs, and the boolean schemas true/false.
 * Annotations (title, description, default, examples, $comment, $schema)
 * and any other keyword are ignored, as the specification requires for
 * unknown keywords.
 *
 * $ref: "#", "#/json/pointer" into the current document, and "<uri>" or
 * "<uri>#/pointer" naming another loaded schema by its top-level $id, either
 * absolute or relative to the current document's $id ("../common.json").
 * Only top-level $id is honoured ($id inside subschemas and $anchor are not
 * supported).
 *
 * pattern / patternProperties use a documented regex subset (ECMA-262
 * syntax, search semantics like JSON Schema requires):
 *   literals, ".", [...] and [^...] with ranges, escapes \d \D \w \W \s \S
 *   and \<punctuation>, \n \r \t, ^ and $ (input start/end, no multiline),
 *   groups (...) and (?:...), alternation |, quantifiers * + ? {n} {n,}
 *   {n,m} (greedy only). "." and negated classes consume one UTF-8 code
 *   point. Lookaround, backreferences, lazy quantifiers and \b are
 *   rejected when the schema set is loaded. Matching has a step budget; a
 *   pattern that exceeds it counts as a failure with its own message.
 *
 * Threads: a loaded schema_set is immutable; schema_validate may run on any
 * number of threads at once. Loading and freeing are single-threaded.
 */
#ifndef SDRT_HOST_SCHEMA_H
#define SDRT_HOST_SCHEMA_H

#include <stddef.h>

#include <cjson/cJSON.h>

typedef struct schema_set schema_set;

/* A new empty set, or NULL when out of memory. Free with schema_set_free. */
schema_set *schema_set_new(void);

/* Adds one schema document (JSON text) under the file name `name` (e.g.
 * "messages/inference.run.json"); it is also indexed by its $id when it has
 * one. Returns 0, or non-zero with a message in err (names `name` and the
 * reason: not JSON, not a schema, duplicate $id or name, bad pattern). */
int schema_set_add_json(schema_set *s, const char *name, const char *text, char *err, size_t errlen);

/* Loads every *.json file under `dir` (recursively) into a new set, each
 * named by its path relative to `dir` with '/' separators. Returns the set
 * (owned by the caller), or NULL with a message naming the file and the
 * reason in err. Call schema_set_check_refs afterwards for a full check. */
schema_set *schema_set_load_dir(const char *dir, char *err, size_t errlen);

/* Checks that every $ref in the set resolves. Returns 0, or non-zero with
 * a message naming the schema and the reference. */
int schema_set_check_refs(const schema_set *s, char *err, size_t errlen);

/* Frees the set. NULL is a no-op. */
void schema_set_free(schema_set *s);

/* Number of documents in the set. */
size_t schema_set_count(const schema_set *s);

/* Validates `doc` against the schema named by `schema_id` (its $id, or its
 * file name). The instance's root is called "data" in messages:
 *   "data.width: 10000 is greater than the maximum 8192"
 *   "data.prompt: expected string, got number"
 *   "data: missing required property \"model_id\""
 * Returns 0 when valid; 1 when invalid, with the message in err; -1 when
 * `schema_id` is unknown or the schema itself is broken (unresolvable
 * $ref, recursion too deep), with the message in err. */
int schema_validate(const schema_set *s, const char *schema_id, const cJSON *doc, char *err, size_t errlen);

/* Same, naming the instance root `root` in messages ("config", "request").
 * An empty root gives paths without a prefix and "(root)" for the root. */
int schema_validate_at(const schema_set *s, const char *schema_id, const cJSON *doc, const char *root,
                       char *err, size_t errlen);

/* The schema id to validate the `data` of message `type` with: the $id (or
 * else the name) of the document "messages/<type>.json". Borrowed from the
 * set, valid until schema_set_free. NULL when the set has none. */
const char *schema_for_message(const schema_set *s, const char *type);

/* The parsed document "messages/<type>.json" (borrowed, valid until
 * schema_set_free), or NULL. */
const cJSON *schema_message_doc(const schema_set *s, const char *type);

#endif /* SDRT_HOST_SCHEMA_H */
