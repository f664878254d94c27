/* plugins/scheduler/betappf.c - scipy.stats.beta.ppf for use_beta_sigmas.
 *
 * The regularised incomplete beta I_x(a, b) by its continued fraction
 * (modified Lentz), inverted by bisection to full double precision. Only
 * called num_inference_steps times per schedule, so speed does not matter.
 */
#include <math.h>

#include "sched.h"

/* Continued fraction of I_x(a,b), valid for x < (a+1)/(a+b+2). */
static double incbeta_cf(double x, double a, double b) {
    const double tiny = 1e-300;
    double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
    if (fabs(d) < tiny) d = tiny;
    d = 1.0 / d;
    double f = d;
    for (int m = 1; m <= 500; m++) {
        double m2 = 2.0 * m;
        double num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
        d = 1.0 + num * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1.0 + num / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        f *= d * c;
        num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
        d = 1.0 + num * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1.0 + num / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        double delta = d * c;
        f *= delta;
        if (fabs(delta - 1.0) < 1e-16) break;
    }
    return f;
}

static double incbeta(double x, double a, double b) {
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    double lbeta = lgamma(a + b) - lgamma(a) - lgamma(b);
    double front = exp(lbeta + a * log(x) + b * log1p(-x));
    if (x < (a + 1.0) / (a + b + 2.0)) return front * incbeta_cf(x, a, b) / a;
    return 1.0 - front * incbeta_cf(1.0 - x, b, a) / b;
}

double sched_beta_ppf(double q, double a, double b) {
    if (q <= 0) return 0;
    if (q >= 1) return 1;
    double lo = 0, hi = 1;
    for (int i = 0; i < 200 && hi - lo > 0; i++) {
        double mid = 0.5 * (lo + hi);
        if (mid == lo || mid == hi) break;
        if (incbeta(mid, a, b) < q) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}
