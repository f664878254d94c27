/* plugins/model/convert.c - model.convert (see convert.h). Tensors are
 * converted one at a time, row by row, from the source mapping into the
 * GGUF writer. */
#define _GNU_SOURCE
#include "convert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "gguf_write.h"
#include "safetensors.h"
#include "sdrt/quant.h"

typedef struct src_tensor {
    const char *name;
    sdrt_dtype dtype;
    int ndim;
    int64_t shape[4];
    const void *data;
} src_tensor;

typedef struct conv_ctx {
    src_tensor *src;
    gguf_wtensor *out;
} conv_ctx;

int convert_applies(const char *name, int ndim, const int64_t *shape, sdrt_dtype dt) {
    size_t n = strlen(name);
    int64_t be = sdrt_dtype_block_elems(dt);
    if (n < 7 || strcmp(name + n - 7, ".weight") != 0) return 0;
    if (strstr(name, "embeddings.") || strstr(name, "embedding.weight")) return 0; /* token/position tables */
    return ndim == 2 && be > 0 && shape[1] % be == 0 && shape[0] * shape[1] >= 1024;
}

static int is_float(sdrt_dtype d) {
    return d == SDRT_DTYPE_F32 || d == SDRT_DTYPE_F16 || d == SDRT_DTYPE_BF16 || sdrt_dtype_is_quantized(d);
}

static int produce(void *vctx, size_t i, void *out, char *err, size_t errlen) {
    conv_ctx *c = vctx;
    const src_tensor *s = &c->src[i];
    const gguf_wtensor *o = &c->out[i];
    if (s->dtype == o->dtype) {
        memcpy(out, s->data, (size_t)gguf_w_bytes(o));
        return 0;
    }
    int64_t k = s->shape[s->ndim - 1], rows = 1;
    for (int d = 0; d < s->ndim - 1; d++) rows *= s->shape[d];
    float *row = malloc((size_t)k * sizeof *row);
    if (!row) {
        snprintf(err, errlen, "out of memory converting '%s'", s->name);
        return -1;
    }
    uint64_t in_row = sdrt_dtype_bytes(s->dtype, k), out_row = sdrt_dtype_bytes(o->dtype, k);
    for (int64_t r = 0; r < rows; r++) {
        sdrt_dequant_row(s->dtype, (const char *)s->data + r * in_row, row, k);
        sdrt_quant_row(o->dtype, row, (char *)out + r * out_row, k);
    }
    free(row);
    return 0;
}

static int from_st(const st_tensor *t, src_tensor *s) {
    int dt = st_to_sdrt_dtype(t->dtype);
    if (dt < 0 || dt == SDRT_DTYPE_U8 || t->ndim > 4) return -1;
    *s = (src_tensor){.name = t->name, .dtype = (sdrt_dtype)dt, .ndim = t->ndim, .data = t->data};
    for (int d = 0; d < t->ndim; d++) s->shape[d] = t->shape[d];
    if (t->ndim == 0) {
        s->ndim = 1;
        s->shape[0] = 1;
    }
    return 0;
}

sdrt_status model_convert(const char *src, const char *dst, sdrt_dtype wt, convert_stats *stats, char *err,
                          size_t errlen) {
    memset(stats, 0, sizeof *stats);
    if (!sdrt_quant_can_write(wt)) {
        snprintf(err, errlen, "weight_type %s: sdrt writes f32, f16, bf16, q8_0, q5_1, q5_0, q4_1, q4_0 or q4_K",
                 sdrt_dtype_ggml_name(wt) ? sdrt_dtype_ggml_name(wt) : "?");
        return SDRT_INVALID_ARGUMENT;
    }
    st_file *sf = NULL;
    gguf_file *gf = NULL;
    size_t n = 0;
    if (gguf_is_gguf(src)) {
        if (gguf_open(src, &gf, err, errlen) != 0) return SDRT_INVALID_ARGUMENT;
        n = gf->n_tensors;
    } else {
        if (st_open(src, &sf, err, errlen) != 0) return SDRT_INVALID_ARGUMENT;
        n = sf->n_tensors;
    }
    src_tensor *s = calloc(n ? n : 1, sizeof *s);
    gguf_wtensor *o = calloc(n ? n : 1, sizeof *o);
    sdrt_status st = s && o ? SDRT_OK : SDRT_RESOURCE_EXHAUSTED;
    size_t m = 0;
    for (size_t i = 0; st == SDRT_OK && i < n; i++) {
        if (gf) {
            const gguf_tensor *g = &gf->tensors[i];
            if (g->dtype < 0) {
                snprintf(err, errlen, "%s: tensor '%s' has ggml type %s, which sdrt cannot convert", src, g->name,
                         gguf_type_name(g->ggml_type));
                st = SDRT_UNSUPPORTED;
                break;
            }
            s[m] = (src_tensor){.name = g->name, .dtype = (sdrt_dtype)g->dtype, .ndim = g->ndim, .data = g->data};
            memcpy(s[m].shape, g->shape, sizeof s[m].shape);
            stats->bytes_in += g->bytes;
        } else {
            if (from_st(&sf->tensors[i], &s[m]) != 0) {
                stats->skipped++;
                continue;
            }
            stats->bytes_in += st_tensor_bytes(&sf->tensors[i]);
        }
        o[m] = (gguf_wtensor){.name = s[m].name, .dtype = s[m].dtype, .ndim = s[m].ndim};
        memcpy(o[m].shape, s[m].shape, sizeof o[m].shape);
        if (is_float(s[m].dtype) && convert_applies(s[m].name, s[m].ndim, s[m].shape, wt)) {
            o[m].dtype = wt;
            stats->quantised++;
        }
        stats->bytes_out += gguf_w_bytes(&o[m]);
        m++;
    }
    stats->tensors = m;
    if (st == SDRT_OK) {
        const char *arch = "sdrt-sd";
        gguf_wmeta meta = {.arch = arch, .weight_type = sdrt_dtype_ggml_name(wt)};
        conv_ctx c = {s, o};
        if (gguf_write(dst, &meta, o, m, produce, &c, err, errlen) != 0) st = SDRT_IO_ERROR;
    } else if (st == SDRT_RESOURCE_EXHAUSTED) {
        snprintf(err, errlen, "out of memory");
    }
    free(s);
    free(o);
    st_close(sf);
    gguf_close(gf);
    return st;
}
