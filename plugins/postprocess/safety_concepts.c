/* safety_concepts.c - StableDiffusionSafetyChecker.forward's verdict for one
 * image embedding (diffusers' safety_checker.py):
 *
 *   cos = normalize(image_embeds) @ normalize(embeds).T   (float32)
 *   adjustment = 0
 *   for each special-care concept k (in order):
 *       special_scores[k] = round(cos_s[k] - special_care_embeds_weights[k] + adjustment, 3)
 *       if special_scores[k] > 0: adjustment = 0.01     (later specials see it too)
 *   for each concept k:
 *       concept_scores[k] = round(cos_c[k] - concept_embeds_weights[k] + adjustment, 3)
 *       bad if concept_scores[k] > 0
 *   has_nsfw_concept = any bad
 *
 * The scores are reported unrounded (the rounding only decides the flags,
 * and an unrounded score compares across implementations to float
 * precision). */
#include <math.h>

#include "safety.h"

int sc_score_fires(float s) {
    /* Python's round(x, 3) on a numpy float32 is np.round: half to even on
     * x * 1000, which rint does in the default rounding mode. */
    return rint((double)s * 1000.0) > 0;
}

/* Cosine of the unit-length row `u` with `x` (normalised here as torch's
 * normalize does: x / max(||x||, 1e-12)), accumulated in double and rounded
 * to float32 as the float32 matmul result is. */
static float cosine(const float *x, double xnorm, const float *u, int d) {
    double dot = 0;
    for (int k = 0; k < d; k++) dot += (double)x[k] * u[k];
    return (float)(dot / xnorm);
}

void sc_concepts_score(const sc_model *m, const float *embed, sc_verdict *v) {
    int d = m->cfg.projection_dim;
    double ss = 0;
    for (int k = 0; k < d; k++) ss += (double)embed[k] * embed[k];
    double norm = sqrt(ss) < 1e-12 ? 1e-12 : sqrt(ss);
    float adjustment = 0.0f;
    v->special_care = 0;
    for (int k = 0; k < m->n_special; k++) {
        float cs = cosine(embed, norm, m->special_embeds + (size_t)k * d, d);
        v->special_scores[k] = cs - m->special_thr[k] + adjustment;
        if (sc_score_fires(v->special_scores[k])) {
            v->special_care = 1;
            adjustment = 0.01f;
        }
    }
    v->nsfw = 0;
    for (int k = 0; k < m->n_concepts; k++) {
        float cc = cosine(embed, norm, m->concept_embeds + (size_t)k * d, d);
        v->concept_scores[k] = cc - m->concept_thr[k] + adjustment;
        if (sc_score_fires(v->concept_scores[k])) v->nsfw = 1;
    }
}
