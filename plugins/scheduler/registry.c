/* plugins/scheduler/registry.c - the list of implemented schedulers. */
#include <string.h>

#include "sched.h"

extern const sched_kind sched_kind_euler, sched_kind_euler_ancestral, sched_kind_dpmsolver, sched_kind_ddim,
    sched_kind_heun;

const sched_kind *const sched_kinds[] = {
    &sched_kind_euler,
    &sched_kind_euler_ancestral,
    &sched_kind_dpmsolver,
    &sched_kind_ddim,
    &sched_kind_heun,
    NULL,
};

const sched_kind *sched_kind_find(const char *class_name) {
    for (const sched_kind *const *k = sched_kinds; *k; k++)
        if (strcmp((*k)->name, class_name) == 0) return *k;
    return NULL;
}
