/* tests/lora/test_cond_hook.c - a LoRA applied to the text encoder through
 * the conditioning plugin's weight hooks (sdrt_cond_params.prepare_weights /
 * weight), driven the way inference will drive it: the prompt's
 * <lora:name:w> tag builds the set, encode reads the merged weights.
 *
 * The real conditioning plugin (dlopen'd from the build tree) runs on the
 * CPU backend behind a fake sdrt.backend/1; the model and lora plugins run
 * from their core libraries. Golden: diffusers' text_encoder output with
 * sd15_kohya fused (gen_goldens.py). Tolerance: relative L2 <= 1e-4 (the
 * text-encoder tolerance of ../shared/reference/README.md). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/fake_host.h"
#include "harness.h"
#include "plugin.h"
#include "sdrt/backend.h"
#include "sdrt/cond.h"
#include "sdrt/lora.h"
#include "sdrt/npy.h"

#include "../../plugins/model/plugin.h"

static sdrt_device *cpu_device(void) {
    static sdrt_device *dev;
    if (dev) return dev;
    void *so = dlopen(test_path("SDRT_BUILD_DIR", "lib/sdrt/backends/sdrt_backend_cpu.so"), RTLD_NOW | RTLD_LOCAL);
    sdrt_backend_entry_fn entry = so ? (sdrt_backend_entry_fn)dlsym(so, SDRT_BACKEND_ENTRY_SYMBOL) : NULL;
    sdrt_backend_reg *reg = entry ? entry(fake_host_api(), "{}") : NULL;
    if (reg && reg->iface->device_count(reg) > 0) dev = reg->iface->device_get(reg, 0);
    return dev;
}

static size_t fb_count(void *self) { (void)self; return 0; }
static sdrt_backend_reg *fb_get(void *self, size_t i) { (void)self, (void)i; return NULL; }
static sdrt_device *fb_default(void *self) { (void)self; return cpu_device(); }

static const sdrt_backend_iface FAKE_BACKEND = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_backend_iface, default_device), .reg_count = fb_count, .reg_get = fb_get,
    .default_device = fb_default};

/* What inference would keep for one request. */
typedef struct request_loras {
    const sdrt_lora_iface *li;
    sdrt_model *m;
    sdrt_lora_set *set;
    int calls;
} request_loras;

static sdrt_error *hook_prepare(void *ctx, const sdrt_cond_lora *tags, size_t n) {
    request_loras *r = ctx;
    r->calls++;
    if (n == 0) return NULL;
    sdrt_lora_adapter a[8];
    for (size_t i = 0; i < n && i < 8; i++) {
        sdrt_lora_adapter_init(&a[i]);
        a[i].model_id = tags[i].name;
        a[i].weight = tags[i].weight;
    }
    return r->li->prepare(r->li->self, r->m, a, n < 8 ? n : 8, NULL, &r->set);
}

static const sdrt_tensor *hook_weight(void *ctx, const char *component, const char *name) {
    request_loras *r = ctx;
    return r->li->tensor(r->set, component, name);
}

static void test_prompt_tag_applies_lora(void) {
    char settings[2048];
    snprintf(settings, sizeof settings, "{\"model_roots\":[\"%s\",\"%s\"],\"threads\":2}",
             test_path("SDRT_SOURCE_DIR", "tests/lora/data"), getenv("SDRT_REFERENCE"));
    fake_host_reset();
    fake_settings = settings;
    const sdrt_host_api *api = fake_host_api();
    REQUIRE(cpu_device(), "no CPU backend");
    REQUIRE(!api->publish(NULL, SDRT_BACKEND_IFACE_ID, &FAKE_BACKEND), "publish backend");
    void *mp = NULL, *lp = NULL, *cp = NULL;
    REQUIRE(!model_plugin_init(api, NULL, "{}", &mp) && !lora_plugin_init(api, NULL, "{}", &lp), "init");
    void *so = dlopen(test_path("SDRT_BUILD_DIR", "lib/sdrt/plugins/sdrt_conditioning.so"), RTLD_NOW | RTLD_LOCAL);
    REQUIRE(so, "dlopen conditioning: %s", dlerror());
    const sdrt_plugin_desc *(*entry)(void) = (const sdrt_plugin_desc *(*)(void))dlsym(so, SDRT_PLUGIN_ENTRY_SYMBOL);
    const sdrt_plugin_desc *d = entry();
    char tok[2048];
    snprintf(tok, sizeof tok, "{\"tokenizer_dir\":\"%s/tokenizer\",\"threads\":2}", getenv("SDRT_REFERENCE"));
    REQUIRE(!d->vtable->init(api, NULL, tok, &cp), "conditioning init");
    const sdrt_model_iface *mi = api->acquire(NULL, SDRT_MODEL_IFACE_ID, NULL);
    const sdrt_cond_iface *ci = api->acquire(NULL, SDRT_COND_IFACE_ID, NULL);
    request_loras r = {api->acquire(NULL, SDRT_LORA_IFACE_ID, NULL), NULL, NULL, 0};
    char model[1024];
    snprintf(model, sizeof model, "%s/tiny-sd15/diffusers", getenv("SDRT_REFERENCE"));
    sdrt_error *e = mi->open(mi->self, model, NULL, &r.m);
    REQUIRE(!e, "open model");

    float *gold = NULL;
    int64_t shape[4];
    int nd = 0;
    char err[256];
    REQUIRE(!sdrt_npy_read_f32(test_path("SDRT_SOURCE_DIR", "tests/lora/data/sd15_kohya.te_out.npy"), &gold, shape,
                               &nd, err, sizeof err), "%s", err);
    size_t n = (size_t)(shape[0] * shape[1] * shape[2]);
    double rel[2];
    for (int with = 0; with < 2; with++) {
        sdrt_cond_params p;
        sdrt_cond_params_init(&p);
        p.prompt = with ? "a red fox in the snow <lora:sd15_kohya:1>" : "a red fox in the snow";
        p.do_cfg = 0;
        p.prepare_weights = hook_prepare;
        p.weight = hook_weight;
        p.weights_ctx = &r;
        sdrt_cond_result *out = NULL;
        e = ci->encode(ci->self, r.m, &p, NULL, &out);
        CHECK(!e && out, "encode: %s", e ? e->message : "");
        api->error_free(e);
        rel[with] = out && (size_t)(out->seq * out->dim) == n ? test_rel_l2(out->prompt_embeds, gold, n) : 1.0;
        CHECK(!with || (out && out->n_loras == 1 && !strcmp(out->loras[0].name, "sd15_kohya")), "tag returned");
        ci->result_free(ci->self, out);
        r.li->destroy(r.li->self, r.set);
        r.set = NULL;
    }
    fprintf(stderr, "  text encoder vs diffusers fused LoRA: rel L2 %.3g (without the LoRA: %.3g)\n", rel[1], rel[0]);
    CHECK(rel[1] <= 1e-4, "with LoRA: rel L2 %.3g", rel[1]);
    CHECK(rel[0] > 1e-3, "the LoRA changes nothing measurable (%.3g)", rel[0]);
    CHECK(r.calls == 2, "prepare_weights called %d times", r.calls);

    /* A tag naming no file fails the encode with the lora plugin's error. */
    sdrt_cond_params p;
    sdrt_cond_params_init(&p);
    p.prompt = "a fox <lora:no_such_lora:0.5>";
    p.prepare_weights = hook_prepare;
    p.weight = hook_weight;
    p.weights_ctx = &r;
    sdrt_cond_result *out = NULL;
    e = ci->encode(ci->self, r.m, &p, NULL, &out);
    CHECK(e && e->code == SDRT_NOT_FOUND && strstr(e->message, "no_such_lora") && !out, "bad tag: %s",
          e ? e->message : "no error");
    api->error_free(e);

    free(gold);
    mi->close(mi->self, r.m);
    d->vtable->shutdown(cp);
    lora_plugin_shutdown(lp);
    model_plugin_shutdown(mp);
}

const test_entry TESTS[] = {
    {"prompt_tag_applies_lora", test_prompt_tag_applies_lora},
    {0},
};
