/* plugins/scheduler/config.c - the scheduler config store.
 *
 * A scheduler's config is the set of diffusers __init__ arguments of its
 * class, each starting at diffusers' default. It is layered like
 * `Class.from_config(model_config, **overrides)`: class defaults, then the
 * model's scheduler_config.json (fields of other classes silently ignored,
 * as diffusers does), then alias overrides, then the request's overrides
 * (unknown fields warned about). Wrong types and values are errors naming
 * the field.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"

static const char *const g_names[SCHED_F_COUNT] = {
#define SCHED_FIELD_NAME_(id, name, type) name,
    SCHED_FIELD_LIST(SCHED_FIELD_NAME_)
#undef SCHED_FIELD_NAME_
};

static const sched_ftype g_types[SCHED_F_COUNT] = {
#define SCHED_FIELD_TYPE_(id, name, type) SCHED_T_##type,
    SCHED_FIELD_LIST(SCHED_FIELD_TYPE_)
#undef SCHED_FIELD_TYPE_
};

const char *sched_field_name(sched_field f) { return g_names[f]; }
sched_ftype sched_field_type(sched_field f) { return g_types[f]; }

int cfg_is(const sched_config *c, sched_field f, const char *s) {
    return !c->v[f].is_null && strcmp(c->v[f].str, s) == 0;
}

/* ---- diagnostics ---- */

void sched_warn(sched_diag *d, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char **w = realloc(d->warnings, (d->n_warnings + 1) * sizeof *w);
    if (!w) return;
    d->warnings = w;
    w[d->n_warnings] = strdup(buf);
    if (w[d->n_warnings]) d->n_warnings++;
}

sdrt_status sched_fail(sched_diag *d, sdrt_status code, const char *fmt, ...) {
    if (d->code != SDRT_OK) return d->code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->error, sizeof d->error, fmt, ap);
    va_end(ap);
    d->code = code;
    return code;
}

void sched_diag_free(sched_diag *d) {
    for (uint32_t i = 0; i < d->n_warnings; i++) free(d->warnings[i]);
    free(d->warnings);
    d->warnings = NULL;
    d->n_warnings = 0;
}

/* ---- values ---- */

static void value_clear(sched_value *v) {
    free(v->arr);
    v->arr = NULL;
    v->n_arr = 0;
    v->is_null = 0;
    v->num = 0;
    v->str[0] = 0;
}

static int field_by_name(const char *name) {
    for (int f = 0; f < SCHED_F_COUNT; f++)
        if (strcmp(g_names[f], name) == 0) return f;
    return -1;
}

static int json_is_integral(const cJSON *j) {
    return cJSON_IsNumber(j) && isfinite(j->valuedouble) && floor(j->valuedouble) == j->valuedouble;
}

/* Reads an array of numbers (ints_only: integers) into v. */
static sdrt_status set_array(sched_value *v, const cJSON *j, int ints_only, const char *origin,
                             const char *name, sched_diag *d) {
    int n = cJSON_GetArraySize(j);
    float *a = n > 0 ? malloc((size_t)n * sizeof *a) : NULL;
    if (n > 0 && !a) return sched_fail(d, SDRT_RESOURCE_EXHAUSTED, "%s.%s: out of memory", origin, name);
    int k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
        if (!(ints_only ? json_is_integral(e) : cJSON_IsNumber(e))) {
            free(a);
            return sched_fail(d, SDRT_INVALID_ARGUMENT, "%s.%s[%d]: expected %s", origin, name, k,
                              ints_only ? "an integer" : "a number");
        }
        a[k++] = (float)e->valuedouble;
    }
    value_clear(v);
    v->arr = a;
    v->n_arr = (uint32_t)n;
    return SDRT_OK;
}

/* Sets one field from JSON, checking its type (not yet class-specific
 * ranges: kinds check those in setup with the same field naming). */
static sdrt_status set_value(sched_value *v, sched_field f, const cJSON *j, const char *origin,
                             sched_diag *d) {
    const char *name = g_names[f];
    switch (g_types[f]) {
    case SCHED_T_BOOL:
        if (cJSON_IsNull(j)) { value_clear(v); return SDRT_OK; }
        if (!cJSON_IsBool(j))
            return sched_fail(d, SDRT_INVALID_ARGUMENT, "%s.%s: expected true or false", origin, name);
        value_clear(v);
        v->num = cJSON_IsTrue(j) ? 1.0 : 0.0;
        return SDRT_OK;
    case SCHED_T_INT:
        if (!json_is_integral(j))
            return sched_fail(d, SDRT_INVALID_ARGUMENT, "%s.%s: expected an integer", origin, name);
        value_clear(v);
        v->num = j->valuedouble;
        return SDRT_OK;
    case SCHED_T_FLOAT:
    case SCHED_T_FLOAT_NULL:
        if (cJSON_IsNull(j) && g_types[f] == SCHED_T_FLOAT_NULL) {
            value_clear(v);
            v->is_null = 1;
            return SDRT_OK;
        }
        if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble))
            return sched_fail(d, SDRT_INVALID_ARGUMENT, "%s.%s: expected a number%s", origin, name,
                              g_types[f] == SCHED_T_FLOAT_NULL ? " or null" : "");
        value_clear(v);
        v->num = j->valuedouble;
        return SDRT_OK;
    case SCHED_T_STR:
    case SCHED_T_STR_NULL:
        if (cJSON_IsNull(j) && g_types[f] == SCHED_T_STR_NULL) {
            value_clear(v);
            v->is_null = 1;
            return SDRT_OK;
        }
        if (!cJSON_IsString(j) || strlen(j->valuestring) >= sizeof v->str)
            return sched_fail(d, SDRT_INVALID_ARGUMENT, "%s.%s: expected a string%s", origin, name,
                              g_types[f] == SCHED_T_STR_NULL ? " or null" : "");
        value_clear(v);
        strcpy(v->str, j->valuestring);
        return SDRT_OK;
    case SCHED_T_FLOATS_NULL:
        if (cJSON_IsNull(j)) {
            value_clear(v);
            v->is_null = 1;
            return SDRT_OK;
        }
        if (!cJSON_IsArray(j))
            return sched_fail(d, SDRT_INVALID_ARGUMENT, "%s.%s: expected an array of numbers or null",
                              origin, name);
        return set_array(v, j, 0, origin, name, d);
    case SCHED_T_INTS:
        if (!cJSON_IsArray(j))
            return sched_fail(d, SDRT_INVALID_ARGUMENT, "%s.%s: expected an array of integers", origin,
                              name);
        return set_array(v, j, 1, origin, name, d);
    }
    return SDRT_OK;
}

void sched_config_defaults(sched_config *cfg, const sched_field_default *fields) {
    memset(cfg, 0, sizeof *cfg);
    sched_diag d = {0};
    for (const sched_field_default *fd = fields; fd->json; fd++) {
        cJSON *j = cJSON_Parse(fd->json);
        cfg->v[fd->field].present = 1;
        if (j) set_value(&cfg->v[fd->field], fd->field, j, "default", &d);
        /* lambda_min_clipped defaults to -inf, which JSON cannot spell */
        if (!j && strcmp(fd->json, "-inf") == 0) cfg->v[fd->field].num = -INFINITY;
        cJSON_Delete(j);
    }
    sched_diag_free(&d);
}

/* Python's json module writes -inf as the bare token -Infinity (diffusers'
 * saved DPM configs contain "lambda_min_clipped": -Infinity). cJSON rejects
 * it, so such tokens outside strings become null (-inf for that field). */
static char *python_json_to_strict(const char *json) {
    size_t n = strlen(json);
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t o = 0;
    int in_str = 0;
    for (size_t i = 0; i < n;) {
        char c = json[i];
        if (in_str) {
            out[o++] = c;
            if (c == '\\' && i + 1 < n) out[o++] = json[++i];
            else if (c == '"') in_str = 0;
            i++;
            continue;
        }
        if (c == '"') in_str = 1;
        const char *tok[] = {"-Infinity", "Infinity", "NaN"};
        int hit = 0;
        for (int t = 0; t < 3 && !hit; t++) {
            size_t tl = strlen(tok[t]);
            if (strncmp(json + i, tok[t], tl) == 0) {
                memcpy(out + o, "null", 4);
                o += 4;
                i += tl;
                hit = 1;
            }
        }
        if (!hit) out[o++] = json[i++];
    }
    out[o] = 0;
    return out;
}

sdrt_status sched_config_apply(sched_config *cfg, const char *json, const char *origin, int warn_unknown,
                               const char *class_name, sched_diag *d) {
    if (!json) return SDRT_OK;
    char *strict = python_json_to_strict(json);
    if (!strict) return sched_fail(d, SDRT_RESOURCE_EXHAUSTED, "%s: out of memory", origin);
    cJSON *root = cJSON_Parse(strict);
    free(strict);
    if (!root) return sched_fail(d, SDRT_INVALID_ARGUMENT, "%s: not valid JSON", origin);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sched_fail(d, SDRT_INVALID_ARGUMENT, "%s: expected a JSON object", origin);
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        if (!it->string || it->string[0] == '_') continue; /* _class_name, _diffusers_version */
        int f = field_by_name(it->string);
        if (f < 0 || !cfg->v[f].present) {
            if (warn_unknown == 2) {
                sched_fail(d, SDRT_UNSUPPORTED, "%s: %s has no field %s, so this variant or schedule type is not "
                           "available for it", origin, class_name, it->string);
                break;
            }
            if (warn_unknown)
                sched_warn(d, "%s.%s: not a field of %s, ignored", origin, it->string, class_name);
            continue;
        }
        /* -inf has no JSON spelling: null means it for lambda_min_clipped */
        if (f == SCHED_F_LAMBDA_MIN_CLIPPED && cJSON_IsNull(it)) {
            value_clear(&cfg->v[f]);
            cfg->v[f].num = -INFINITY;
            continue;
        }
        if (set_value(&cfg->v[f], (sched_field)f, it, origin, d) != SDRT_OK) break;
    }
    cJSON_Delete(root);
    return d->code;
}

void sched_config_free(sched_config *cfg) {
    for (int f = 0; f < SCHED_F_COUNT; f++) value_clear(&cfg->v[f]);
}

static cJSON *value_to_json(const sched_value *v, sched_field f) {
    if (v->is_null) return cJSON_CreateNull();
    switch (g_types[f]) {
    case SCHED_T_BOOL: return cJSON_CreateBool(v->num != 0.0);
    case SCHED_T_INT: return cJSON_CreateNumber(v->num);
    case SCHED_T_FLOAT:
    case SCHED_T_FLOAT_NULL:
        return isfinite(v->num) ? cJSON_CreateNumber(v->num) : cJSON_CreateNull();
    case SCHED_T_STR:
    case SCHED_T_STR_NULL: return cJSON_CreateString(v->str);
    case SCHED_T_FLOATS_NULL:
    case SCHED_T_INTS:
        return v->n_arr ? cJSON_CreateFloatArray(v->arr, (int)v->n_arr) : cJSON_CreateArray();
    }
    return cJSON_CreateNull();
}

char *sched_config_to_json(const sched_config *cfg, const sched_field_default *fields) {
    cJSON *o = cJSON_CreateObject();
    for (const sched_field_default *fd = fields; fd->json; fd++)
        cJSON_AddItemToObject(o, g_names[fd->field], value_to_json(&cfg->v[fd->field], fd->field));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}
