/* plugins/scheduler/sched.h - internals of the scheduler plugin.
 *
 * Not a public header. The run state (sdrt_sched), the config store, the
 * per-scheduler vtable ("kind") and the helpers the kinds share. Every
 * scheduler file (euler.c, dpmsolver.c, ...) defines one sched_kind.
 *
 * Numerics: diffusers keeps its schedule tensors in float32 (betas, alphas
 * cumprod, sigmas, timesteps) and computes some intermediate tables in
 * float64 numpy. We store the same float32 tables, compute the numpy parts in
 * double, and do the per-step scalar math in float32 in the same order as
 * diffusers, so trajectories agree to float32 rounding.
 */
#ifndef SDRT_SCHED_INTERNAL_H
#define SDRT_SCHED_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "sdrt/rng.h"
#include "sdrt/scheduler.h"
#include "sdrt/status.h"

/* ---- config fields ------------------------------------------------------ */

typedef enum sched_ftype {
    SCHED_T_BOOL,        /* true/false; null reads as false (diffusers' Optional[bool]) */
    SCHED_T_INT,
    SCHED_T_FLOAT,
    SCHED_T_FLOAT_NULL,  /* number or null */
    SCHED_T_STR,         /* one of the field's allowed values */
    SCHED_T_STR_NULL,    /* one of the allowed values or null */
    SCHED_T_FLOATS_NULL, /* array of numbers or null */
    SCHED_T_INTS         /* array of integers */
} sched_ftype;

/* name, type, allowed strings (NULL-terminated list, STR only), int range */
#define SCHED_FIELD_LIST(X)                                                          \
    X(NUM_TRAIN_TIMESTEPS, "num_train_timesteps", INT)                               \
    X(BETA_START, "beta_start", FLOAT)                                               \
    X(BETA_END, "beta_end", FLOAT)                                                   \
    X(BETA_SCHEDULE, "beta_schedule", STR)                                           \
    X(TRAINED_BETAS, "trained_betas", FLOATS_NULL)                                   \
    X(PREDICTION_TYPE, "prediction_type", STR)                                       \
    X(INTERPOLATION_TYPE, "interpolation_type", STR)                                 \
    X(USE_KARRAS_SIGMAS, "use_karras_sigmas", BOOL)                                  \
    X(USE_EXPONENTIAL_SIGMAS, "use_exponential_sigmas", BOOL)                        \
    X(USE_BETA_SIGMAS, "use_beta_sigmas", BOOL)                                      \
    X(USE_LU_LAMBDAS, "use_lu_lambdas", BOOL)                                        \
    X(USE_FLOW_SIGMAS, "use_flow_sigmas", BOOL)                                      \
    X(FLOW_SHIFT, "flow_shift", FLOAT)                                               \
    X(USE_DYNAMIC_SHIFTING, "use_dynamic_shifting", BOOL)                            \
    X(TIME_SHIFT_TYPE, "time_shift_type", STR)                                       \
    X(SHIFT_TERMINAL, "shift_terminal", FLOAT_NULL)                                  \
    X(SIGMA_MIN, "sigma_min", FLOAT_NULL)                                            \
    X(SIGMA_MAX, "sigma_max", FLOAT_NULL)                                            \
    X(TIMESTEP_SPACING, "timestep_spacing", STR)                                     \
    X(TIMESTEP_TYPE, "timestep_type", STR)                                           \
    X(STEPS_OFFSET, "steps_offset", INT)                                             \
    X(RESCALE_BETAS_ZERO_SNR, "rescale_betas_zero_snr", BOOL)                        \
    X(FINAL_SIGMAS_TYPE, "final_sigmas_type", STR)                                   \
    X(SOLVER_ORDER, "solver_order", INT)                                             \
    X(THRESHOLDING, "thresholding", BOOL)                                            \
    X(DYNAMIC_THRESHOLDING_RATIO, "dynamic_thresholding_ratio", FLOAT)               \
    X(SAMPLE_MAX_VALUE, "sample_max_value", FLOAT)                                   \
    X(ALGORITHM_TYPE, "algorithm_type", STR)                                         \
    X(SOLVER_TYPE, "solver_type", STR)                                               \
    X(LOWER_ORDER_FINAL, "lower_order_final", BOOL)                                  \
    X(EULER_AT_FINAL, "euler_at_final", BOOL)                                        \
    X(LAMBDA_MIN_CLIPPED, "lambda_min_clipped", FLOAT_NULL)                          \
    X(VARIANCE_TYPE, "variance_type", STR_NULL)                                      \
    X(CLIP_SAMPLE, "clip_sample", BOOL)                                              \
    X(CLIP_SAMPLE_RANGE, "clip_sample_range", FLOAT)                                 \
    X(SET_ALPHA_TO_ONE, "set_alpha_to_one", BOOL)                                    \
    X(SKIP_PRK_STEPS, "skip_prk_steps", BOOL)                                        \
    X(PREDICT_X0, "predict_x0", BOOL)                                                \
    X(DISABLE_CORRECTOR, "disable_corrector", INTS)                                  \
    X(SOLVER_P, "solver_p", STR_NULL)                                                \
    X(ORIGINAL_INFERENCE_STEPS, "original_inference_steps", INT)                     \
    X(TIMESTEP_SCALING, "timestep_scaling", FLOAT)                                   \
    X(NOISE_SAMPLER_SEED, "noise_sampler_seed", FLOAT_NULL)                          \
    X(ETA, "eta", FLOAT)                                                             \
    X(GAMMA, "gamma", FLOAT)                                                         \
    X(ALIGN_YOUR_STEPS, "align_your_steps", BOOL)                                    \
    X(AYS_MODEL, "ays_model", STR)

typedef enum sched_field {
#define SCHED_FIELD_ENUM_(id, name, type) SCHED_F_##id,
    SCHED_FIELD_LIST(SCHED_FIELD_ENUM_)
#undef SCHED_FIELD_ENUM_
    SCHED_F_COUNT
} sched_field;

typedef struct sched_value {
    int present;     /* the class has this field */
    int is_null;
    double num;      /* BOOL/INT/FLOAT */
    char str[32];    /* STR */
    float *arr;      /* FLOATS_NULL/INTS, owned */
    uint32_t n_arr;
} sched_value;

typedef struct sched_config {
    sched_value v[SCHED_F_COUNT];
} sched_config;

/* One field of a class with its default as JSON text (diffusers' default). */
typedef struct sched_field_default {
    sched_field field;
    const char *json;
} sched_field_default;

const char *sched_field_name(sched_field f);
sched_ftype sched_field_type(sched_field f);

/* Message sink: warnings and the first error, both with field names. */
typedef struct sched_diag {
    char **warnings;
    uint32_t n_warnings;
    sdrt_status code;     /* OK until the first error */
    char error[512];
} sched_diag;

void sched_warn(sched_diag *d, const char *fmt, ...);
/* Records the first error; later ones are dropped. Returns `code`. */
sdrt_status sched_fail(sched_diag *d, sdrt_status code, const char *fmt, ...);
void sched_diag_free(sched_diag *d);

/* Fills cfg with the class defaults. */
void sched_config_defaults(sched_config *cfg, const sched_field_default *fields);
/* Applies a JSON object text. `origin` names the source in messages
 * ("scheduler_config", "model scheduler_config.json"). Unknown fields:
 * warn_unknown 0 ignores them (a model's config was written for another
 * class), 1 warns, 2 fails UNSUPPORTED (alias overrides must apply).
 * Returns the diag code. */
sdrt_status sched_config_apply(sched_config *cfg, const char *json, const char *origin,
                               int warn_unknown, const char *class_name, sched_diag *d);
void sched_config_free(sched_config *cfg);
/* The class fields and values as a JSON object text (malloc'd). */
char *sched_config_to_json(const sched_config *cfg, const sched_field_default *fields);

static inline double cfg_num(const sched_config *c, sched_field f) { return c->v[f].num; }
static inline int cfg_bool(const sched_config *c, sched_field f) { return c->v[f].num != 0.0; }
static inline int cfg_null(const sched_config *c, sched_field f) { return c->v[f].is_null; }
int cfg_is(const sched_config *c, sched_field f, const char *s);

/* ---- run state ---------------------------------------------------------- */

typedef struct sched_kind sched_kind;

#define SCHED_MAX_BUFS 8

struct sdrt_sched {
    const sched_kind *kind;
    sched_config cfg;
    sched_diag diag;
    int32_t num_inference_steps; /* as requested */

    /* alphas_cumprod etc. over the training timesteps (float32 like torch) */
    uint32_t T;
    float *betas;
    float *alphas;
    float *alphas_cumprod;

    uint32_t n_ts;
    float *timesteps;
    uint32_t n_sigmas;  /* 0 for classes without sigmas */
    float *sigmas;
    float init_noise_sigma;

    uint32_t begin_index;
    uint32_t next_index; /* the index step() expects next */

    size_t n;                     /* latent element count, fixed by the first call */
    float *buf[SCHED_MAX_BUFS];   /* per-kind history buffers, n floats each */
    void *priv;                   /* per-kind extra state */

    int stochastic;     /* step() needs the generator */
    int32_t ctr[4];     /* per-kind counters (lower_order_nums, ...) */
    char *config_json; /* cached */
    const char *a1111_label;
    const char *a1111_schedule;
};

struct sched_kind {
    const char *name; /* diffusers class name */
    const sched_field_default *fields;
    uint32_t order;    /* diffusers' class attribute `order` */
    int stochastic;    /* step draws noise */
    int has_sigmas;
    /* Validates the config and computes timesteps/sigmas (set_timesteps). */
    sdrt_status (*setup)(sdrt_sched *s);
    /* NULL: scale_model_input is the identity. */
    void (*scale)(sdrt_sched *s, uint32_t i, const float *in, float *out, size_t n);
    sdrt_status (*step)(sdrt_sched *s, uint32_t i, const float *eps, float *x, size_t n, sdrt_rng *rng);
    /* NULL: x + noise * sigmas[i]. */
    void (*add_noise)(sdrt_sched *s, const float *x0, const float *noise, uint32_t i, float *out, size_t n);
    /* NULL: nothing. Frees priv. */
    void (*release)(sdrt_sched *s);
    uint32_t n_bufs; /* history buffers of n floats the step needs */
};

/* All kinds, NULL-terminated (registry.c). */
extern const sched_kind *const sched_kinds[];
const sched_kind *sched_kind_find(const char *class_name);

/* ---- shared math (betas.c, sigmas.c) ------------------------------------- */

/* Betas / alphas / alphas_cumprod in float32 as diffusers' __init__ does;
 * honours trained_betas, beta_schedule and rescale_betas_zero_snr. */
sdrt_status sched_make_betas(sdrt_sched *s);

/* torch.linspace(a, b, n) in float32, bit-exact with PyTorch's CPU kernel. */
void sched_torch_linspace_f32(float a, float b, uint32_t n, float *out);

/* Training-timestep sigmas sqrt((1-a)/a), float32, ascending with t. */
void sched_train_sigmas(const sdrt_sched *s, float *out);

/* Timesteps by timestep_spacing for num steps (float64, before any cast):
 * linspace / leading (+steps_offset) / trailing, descending. Returns the
 * count (== num except trailing with odd ratios). `out` holds num+1. */
uint32_t sched_spacing(const sdrt_sched *s, uint32_t num, double *out);

/* numpy.linspace(a, b, n) in double. */
void sched_np_linspace(double a, double b, uint32_t n, double *out);
/* numpy.interp(x, arange(n), fp) */
double sched_interp(double x, const float *fp, uint32_t n);
/* diffusers' _sigma_to_t: fractional timestep of a sigma (log-linear). */
double sched_sigma_to_t(double sigma, const double *log_sigmas, uint32_t n);
/* Karras / exponential / beta(0.6,0.6) sigma ramps between sigma_max and
 * sigma_min (config sigma_min/sigma_max override when present and set). */
void sched_karras(const sdrt_sched *s, double smin, double smax, uint32_t num, double *out);
void sched_exponential(const sdrt_sched *s, double smin, double smax, uint32_t num, double *out);
void sched_beta_sigmas(const sdrt_sched *s, double smin, double smax, uint32_t num, double *out);
/* The inverse regularised incomplete beta function (scipy.stats.beta.ppf). */
double sched_beta_ppf(double q, double a, double b);

/* Checks the common enum fields (beta_schedule, prediction_type,
 * timestep_spacing, ...) against what the kind supports. */
sdrt_status sched_check_prediction(sdrt_sched *s, int allow_sample);
sdrt_status sched_check_sigma_flags(sdrt_sched *s);

/* Allocates s->timesteps / s->sigmas (sigmas only when n_sigmas > 0). */
sdrt_status sched_alloc_tables(sdrt_sched *s, uint32_t n_ts, uint32_t n_sigmas);

/* Draws one randn of n floats into buf (the noise diffusers draws with
 * randn_tensor(model_output.shape, generator)). */
sdrt_status sched_noise(sdrt_sched *s, sdrt_rng *rng, float *buf, size_t n);

/* The default sigma-space scale_model_input: x / sqrt(sigma^2 + 1). */
void sched_scale_sigma(sdrt_sched *s, uint32_t i, const float *in, float *out, size_t n);
/* DDPM-style add_noise: sqrt(a_t) x0 + sqrt(1 - a_t) noise, t = timesteps[i]. */
void sched_add_noise_alpha(sdrt_sched *s, const float *x0, const float *noise, uint32_t i,
                           float *out, size_t n);
/* alphas_cumprod[t] for an integer timestep t (clamped). */
float sched_alpha_at(const sdrt_sched *s, int64_t t);

/* ---- the k-diffusion family (euler.c) ------------------------------------ */

/* EulerDiscrete's set_timesteps schedule in double: ts[0..N), sig[0..N).
 * Arrays hold num_inference_steps + 2. */
sdrt_status sched_build_sigmas(sdrt_sched *s, double *ts, double *sig, uint32_t *n_out);
/* The tables of the k-diffusion samplers that step on sched_build_sigmas'
 * schedule as is (Euler a, LMS): timesteps[0..N), sigmas[0..N] with a final
 * 0, and init_noise_sigma. */
sdrt_status sched_k_tables(sdrt_sched *s);
/* x0 from the model output at sigma, by prediction_type. */
void sched_k_x0(const sdrt_sched *s, float sigma, const float *e, const float *x, float *x0, size_t n);
/* max sigma, or sqrt(max^2+1) unless spacing is linspace/trailing. */
void sched_euler_init_noise_sigma(sdrt_sched *s);

/* ---- the DPM-Solver family (dpmsolver.c) --------------------------------- */

/* _sigma_to_alpha_sigma_t in float32: alpha = 1/sqrt(sigma^2+1), sigma*alpha. */
static inline void sched_alpha_sigma(float sigma, float *alpha_t, float *sigma_t) {
    *alpha_t = 1.0f / sqrtf(sigma * sigma + 1.0f);
    *sigma_t = sigma * *alpha_t;
}
/* The integer-timestep schedules of the multistep solvers (and of
 * DPMSolverSinglestep): spacing over N+1 points, interpolated or
 * karras/exponential/beta/lu sigmas, and a final sigma; the classes differ
 * in small details. */
typedef enum sched_dpm_variant { SCHED_VAR_DPM, SCHED_VAR_UNIPC, SCHED_VAR_DEIS, SCHED_VAR_SINGLE } sched_dpm_variant;
sdrt_status sched_dpm_schedule(sdrt_sched *s, sched_dpm_variant v);
/* add_noise of the solvers on alpha/sigma schedules (DPM-Solver multistep
 * and singlestep, UniPC, DEIS): alpha_t * x0 + sigma_t * noise at sigmas[i]. */
void sched_dpm_add_noise(sdrt_sched *s, const float *x0, const float *noise, uint32_t i, float *out, size_t n);

/* ---- the Brownian tree (brownian.c) ------------------------------------ */

/* torchsde.BrownianInterval(t0, t1, size=(n,), dtype=float32,
 * entropy=entropy, tol=1e-6, pool_size=24, halfway_tree=True), bit for bit:
 * numpy SeedSequence seeds, torch-exact randn, the same bridge arithmetic. */
typedef struct sched_brownian sched_brownian;
/* t0 <= t1. *out owned by the caller (sched_brownian_destroy). Returns OK,
 * INVALID_ARGUMENT (t0 > t1, n == 0) or RESOURCE_EXHAUSTED. */
sdrt_status sched_brownian_create(uint64_t entropy, double t0, double t1, size_t n, sched_brownian **out);
/* W(tb) - W(ta) for ta <= tb (clamped to [t0, t1] as torchsde does) into
 * out[0..n). Returns OK, INVALID_ARGUMENT (ta > tb), RESOURCE_EXHAUSTED or
 * INTERNAL (a tree deeper than 62 levels, which tol 1e-6 never needs). */
sdrt_status sched_brownian_increment(sched_brownian *b, double ta, double tb, float *out);
void sched_brownian_destroy(sched_brownian *b); /* NULL: nothing */

/* ---- Align Your Steps (ays.c) ------------------------------------------ */

/* The class has align_your_steps and it is on. */
int sched_ays_enabled(const sdrt_sched *s);
/* Checks the AYS fields (ays_model value, no other sigma ramp) and
 * resolves ays_model "auto" (to "sd1", with a warning). */
sdrt_status sched_ays_check(sdrt_sched *s);
/* The N+1 AYS sigmas, last 0, in double: diffusers' AysSchedules sigma list
 * for N = 10, else the log-linear interpolation of NVIDIA's 11 noise
 * levels to N+1 points (ComfyUI's AlignYourStepsScheduler). */
void sched_ays_sigmas(const sdrt_sched *s, uint32_t N, double *out);
/* The N AYS integer timesteps: diffusers' AysSchedules timestep list for
 * N = 10, else round(_sigma_to_t) of the first N interpolated sigmas. */
sdrt_status sched_ays_timesteps(sdrt_sched *s, uint32_t N, double *out);
/* diffusers' _sigma_to_t for a float32 sigma (the custom-sigmas path of
 * EulerDiscrete, where numpy keeps the arithmetic in float32). */
double sched_sigma_to_t_f32(float sigma, const float *log_sigmas, uint32_t n);

/* ---- alpha-space samplers (ddim.c) ---------------------------------------- */

/* x0 and epsilon from the model output at alphas_cumprod a. */
void sched_alpha_predict(const sdrt_sched *s, float a, const float *e, const float *x, float *x0, float *eps,
                         size_t n);
/* DDIM's integer timesteps (linspace rounded, leading, trailing). */
sdrt_status sched_ddim_timesteps(sdrt_sched *s);
/* LCM/TCD timesteps: a subset of the original_inference_steps
 * distillation schedule (lcm.c). */
sdrt_status sched_lcm_timesteps(sdrt_sched *s);

/* ---- the core API (state.c), also what the interface exposes ------------- */

sdrt_status sched_create(const sdrt_scheduler_params *p, sdrt_sched **out, char *err, size_t errlen);
void sched_destroy(sdrt_sched *s);
sdrt_status sched_set_begin_index(sdrt_sched *s, uint32_t k);
sdrt_status sched_scale_model_input(sdrt_sched *s, uint32_t i, const float *in, float *out, size_t n);
sdrt_status sched_step(sdrt_sched *s, uint32_t i, const float *eps, float *x, size_t n, sdrt_rng *rng);
sdrt_status sched_add_noise(sdrt_sched *s, const float *x0, const float *noise, uint32_t i, float *out,
                            size_t n);
uint32_t sched_begin_for_strength(const sdrt_sched *s, double strength);
uint32_t sched_begin_for_denoising_start(const sdrt_sched *s, double denoising_start);
uint32_t sched_end_for_denoising_end(const sdrt_sched *s, double denoising_end);

/* ---- aliases (alias.c) ------------------------------------------------- */

typedef struct sched_alias {
    const char *alias;
    const char *class_name;     /* NULL: a known name that is not supported */
    const char *overrides_json; /* NULL = none; for class NULL, the reason */
    const char *source;         /* "diffusers", "a1111", "comfyui", "sdcpp" */
} sched_alias;

/* Schedule types (A1111 "Schedule type", ComfyUI scheduler, sd.cpp
 * schedule) that can follow a sampler name. */
typedef struct sched_schedule {
    const char *name;
    const char *overrides_json; /* NULL with reason: unsupported */
    const char *reason;
} sched_schedule;

extern const sched_alias sched_aliases[];
extern const sched_schedule sched_schedules[];
/* Resolves a name (class, alias, "sampler schedule" combination).
 * On success sets *class_name and *overrides (static JSON text or NULL) and
 * returns SDRT_OK; else writes a message to err. */
sdrt_status sched_resolve(const char *name, const char **class_name, const char **overrides, char *err,
                          size_t errlen);
/* A1111 sampler label and schedule type ("Karras", "Automatic", ...) of a
 * resolved state, for image metadata. */
void sched_a1111_label(const sdrt_sched *s, const char **label, const char **schedule_type);

#endif
