/* plugins/scheduler/registry.c - the list of implemented schedulers. */
#include <string.h>

#include "sched.h"

extern const sched_kind sched_kind_euler, sched_kind_euler_ancestral, sched_kind_dpmsolver, sched_kind_ddim,
    sched_kind_heun, sched_kind_lms, sched_kind_ddpm, sched_kind_unipc, sched_kind_deis,
    sched_kind_dpm_single, sched_kind_kdpm2, sched_kind_kdpm2_ancestral,
    sched_kind_pndm, sched_kind_lcm, sched_kind_tcd;

const sched_kind *const sched_kinds[] = {
    &sched_kind_euler,
    &sched_kind_euler_ancestral,
    &sched_kind_dpmsolver,
    &sched_kind_ddim,
    &sched_kind_heun,
    &sched_kind_lms,
    &sched_kind_ddpm,
    &sched_kind_unipc,
    &sched_kind_deis,
    &sched_kind_dpm_single,
    &sched_kind_kdpm2,
    &sched_kind_kdpm2_ancestral,
    &sched_kind_pndm,
    &sched_kind_lcm,
    &sched_kind_tcd,
    NULL,
};

/* Classes the alias table knows that sdrt does not implement, and why. */
static const struct {
    const char *cls, *reason;
} g_unimplemented[] = {
    {"DPMSolverSDEScheduler",
     "its noise comes from torchsde's BrownianInterval (seeds derived through numpy's SeedSequence, adaptive "
     "bisection to tol 1e-6 with an LRU cache, Brownian-bridge sampling), which sdrt does not reproduce bit for bit, "
     "so a seed could not give diffusers' image; use 'DPM++ 2M SDE' (DPMSolverMultistepScheduler, "
     "sde-dpmsolver++) instead"},
};

const char *sched_unimplemented_reason(const char *class_name) {
    for (size_t i = 0; i < sizeof g_unimplemented / sizeof g_unimplemented[0]; i++)
        if (strcmp(g_unimplemented[i].cls, class_name) == 0) return g_unimplemented[i].reason;
    return "it is not implemented";
}

const sched_kind *sched_kind_find(const char *class_name) {
    for (const sched_kind *const *k = sched_kinds; *k; k++)
        if (strcmp((*k)->name, class_name) == 0) return *k;
    return NULL;
}
