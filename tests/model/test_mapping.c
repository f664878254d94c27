/* tests/model/test_mapping.c - single-file -> diffusers mapping: the tiny
 * reference models tensor by tensor (names, shapes, values through the view
 * strides), derived configs against diffusers' own, and key coverage of the
 * full-size SD1.5 and SDXL layouts. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_map.h"
#include "harness.h"
#include "store.h"

static size_t esize(sdrt_dtype d) {
    static const size_t s[] = {4, 2, 2, 4, 8, 1, 8};
    return s[d];
}

/* Element-wise equality of two views of any strides. */
static int same_values(const sdrt_tensor *a, const sdrt_tensor *b) {
    if (a->dtype != b->dtype || a->ndim != b->ndim) return 0;
    size_t n = 1, es = esize(a->dtype);
    for (int i = 0; i < a->ndim; i++) {
        if (a->shape[i] != b->shape[i]) return 0;
        n *= (size_t)a->shape[i];
    }
    for (size_t lin = 0; lin < n; lin++) {
        size_t rem = lin;
        int64_t oa = 0, ob = 0;
        for (int i = a->ndim - 1; i >= 0; i--) {
            int64_t idx = (int64_t)(rem % (size_t)a->shape[i]);
            rem /= (size_t)a->shape[i];
            oa += idx * a->strides[i];
            ob += idx * b->strides[i];
        }
        if (memcmp((const char *)a->data + oa * (int64_t)es, (const char *)b->data + ob * (int64_t)es, es)) return 0;
    }
    return 1;
}

static void check_pair(const char *dir_rel, const char *file_rel, const char *arch) {
    char err[1024];
    struct sdrt_model *d = NULL, *s = NULL;
    sdrt_status st = store_load(test_path("SDRT_REFERENCE", dir_rel), &d, err, sizeof err);
    REQUIRE(st == SDRT_OK, "diffusers %s: %s", dir_rel, err);
    st = store_load(test_path("SDRT_REFERENCE", file_rel), &s, err, sizeof err);
    if (st != SDRT_OK) store_free(d);
    REQUIRE(st == SDRT_OK, "single file %s: %s", file_rel, err);
    CHECK(!strcmp(s->arch, arch) && !strcmp(d->arch, arch), "arch %s / %s, want %s", s->arch, d->arch, arch);
    CHECK(s->n_unmapped == 0, "%zu tensors of %s unmapped", s->n_unmapped, file_rel);
    size_t compared = 0;
    for (int c = 0; c < d->n_comps; c++) {
        store_component *dc = &d->comps[c];
        if (dc->n == 0) continue;
        store_component *sc = store_component_get(s, dc->name);
        CHECK(sc != NULL, "%s: component %s missing", file_rel, dc->name);
        if (!sc) continue;
        CHECK(sc->n == dc->n, "%s: %s has %zu tensors, diffusers %zu", file_rel, dc->name, sc->n, dc->n);
        for (size_t k = 0; k < dc->n; k++) {
            const sdrt_tensor *t = store_tensor(s, dc->name, dc->entries[k].name);
            CHECK(t != NULL, "%s: %s '%s' not produced by the mapping", file_rel, dc->name, dc->entries[k].name);
            if (!t) continue;
            CHECK(same_values(t, &dc->entries[k].t), "%s: %s '%s' differs", file_rel, dc->name, dc->entries[k].name);
            compared++;
        }
    }
    CHECK(compared == d->n_tensors, "compared %zu of %zu", compared, d->n_tensors);
    store_free(d);
    store_free(s);
}

void test_map_tiny_sd15(void) {
    check_pair("tiny-sd15/diffusers", "tiny-sd15/tiny-sd15.safetensors", "sd1");
}

void test_map_tiny_sdxl(void) {
    check_pair("tiny-sdxl/diffusers", "tiny-sdxl/tiny-sdxl.safetensors", "sdxl");
}

/* Every field the single-file config derives must equal diffusers' value. */
static void check_config(struct sdrt_model *s, struct sdrt_model *d, const char *comp, const char *const *keys) {
    cJSON *a = cJSON_Parse(store_component_get(s, comp)->config_json);
    cJSON *b = cJSON_Parse(store_component_get(d, comp)->config_json);
    for (size_t i = 0; keys[i]; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, keys[i]);
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, keys[i]);
        CHECK(x && y && cJSON_Compare(x, y, 1), "%s.%s: derived %s, diffusers %s", comp, keys[i],
              x ? cJSON_PrintUnformatted(x) : "absent", y ? cJSON_PrintUnformatted(y) : "absent");
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
}

static void configs_of(const char *dir_rel, const char *file_rel, int xl) {
    static const char *const UNET[] = {"block_out_channels", "layers_per_block", "cross_attention_dim",
        "attention_head_dim", "use_linear_projection", "transformer_layers_per_block", "down_block_types",
        "up_block_types", "in_channels", "out_channels", "mid_block_type", NULL};
    static const char *const UNET_XL[] = {"addition_embed_type", "addition_time_embed_dim",
        "projection_class_embeddings_input_dim", NULL};
    static const char *const VAE[] = {"block_out_channels", "latent_channels", "layers_per_block",
        "scaling_factor", "in_channels", "out_channels", "down_block_types", NULL};
    static const char *const TEXT[] = {"hidden_size", "num_attention_heads", "num_hidden_layers",
        "intermediate_size", "hidden_act", "max_position_embeddings", "vocab_size", NULL};
    char err[1024];
    struct sdrt_model *d = NULL, *s = NULL;
    REQUIRE(store_load(test_path("SDRT_REFERENCE", dir_rel), &d, err, sizeof err) == SDRT_OK, "%s", err);
    if (store_load(test_path("SDRT_REFERENCE", file_rel), &s, err, sizeof err) != SDRT_OK) {
        store_free(d);
        REQUIRE(0, "%s", err);
    }
    check_config(s, d, "unet", UNET);
    if (xl) check_config(s, d, "unet", UNET_XL);
    check_config(s, d, "vae", VAE);
    check_config(s, d, "text_encoder", TEXT);
    if (xl) check_config(s, d, "text_encoder_2", TEXT);
    CHECK(store_component_get(s, "scheduler") && store_component_get(s, "scheduler")->config_json, "scheduler config");
    store_free(d);
    store_free(s);
}

void test_config_tiny(void) {
    configs_of("tiny-sd15/diffusers", "tiny-sd15/tiny-sd15.safetensors", 0);
    configs_of("tiny-sdxl/diffusers", "tiny-sdxl/tiny-sdxl.safetensors", 1);
}

/* The names of a keys.txt (name TAB dtype TAB shape per line). */
static char **read_keys(const char *path, size_t *n) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char line[1024], **names = NULL;
    size_t cap = 0;
    *n = 0;
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = 0;
        if (*n == cap) names = realloc(names, (cap = cap ? cap * 2 : 1024) * sizeof *names);
        names[(*n)++] = strdup(line);
    }
    fclose(f);
    return names;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void coverage(const char *rel, ckpt_arch want, size_t want_unet, size_t want_text2) {
    size_t n;
    char **names = read_keys(test_path("SDRT_REFERENCE", rel), &n);
    REQUIRE(names, "cannot read %s", rel);
    ckpt_arch a = ckpt_detect((const char *const *)names, n);
    CHECK(a == want, "%s: arch %s", rel, ckpt_arch_name(a));
    ckpt_layout L;
    ckpt_layout_build(&L, a, (const char *const *)names, n);
    char **targets = malloc(n * 3 * sizeof *targets);
    size_t nt = 0, per_comp[COMP_COUNT] = {0}, unused = 0;
    for (size_t i = 0; i < n; i++) {
        ckpt_target t[3];
        int k = ckpt_map_name(&L, names[i], t);
        CHECK(k >= 0, "%s: '%s' is not mapped", rel, names[i]);
        if (k == 0) unused++;
        for (int j = 0; j < k; j++) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s/%s", ckpt_comp_name(t[j].comp), t[j].name);
            targets[nt++] = strdup(buf);
            per_comp[t[j].comp]++;
        }
    }
    qsort(targets, nt, sizeof *targets, cmp_str);
    for (size_t i = 1; i < nt; i++) CHECK(strcmp(targets[i - 1], targets[i]), "%s: two keys map to %s", rel, targets[i]);
    /* Expected counts: those of the diffusers model of that architecture. */
    CHECK(per_comp[COMP_UNET] == want_unet, "%s: %zu unet tensors, want %zu", rel, per_comp[COMP_UNET], want_unet);
    CHECK(per_comp[COMP_VAE] == 248, "%s: %zu vae tensors, want 248", rel, per_comp[COMP_VAE]);
    CHECK(per_comp[COMP_TEXT] == 196, "%s: %zu text_encoder tensors, want 196", rel, per_comp[COMP_TEXT]);
    CHECK(per_comp[COMP_TEXT2] == want_text2, "%s: %zu text_encoder_2 tensors, want %zu", rel, per_comp[COMP_TEXT2], want_text2);
    fprintf(stderr, "    %s: %zu keys, %zu targets, %zu known unused\n", rel, n, nt, unused);
    for (size_t i = 0; i < nt; i++) free(targets[i]);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(targets);
    free(names);
}

void test_full_key_coverage(void) {
    coverage("full/sd15-random.keys.txt", CKPT_SD1, 686, 0);
    coverage("full/sdxl-random.keys.txt", CKPT_SDXL, 1680, 517);
}
