#!/usr/bin/env python3
"""Generates tests/scheduler/goldens/*.json from Hugging Face diffusers.

Run with the dev venv (diffusers 0.42, torch, scipy):
    /work/venv/bin/python tests/scheduler/gen_goldens.py

For every case (scheduler class x base config x overrides) it records what
the diffusers object holds after set_timesteps(N) for several N, and for a
few N a full trajectory driven by a deterministic synthetic model:

    x = randn(1,4,8,8, generator=manual_seed(SEED)) * init_noise_sigma
    for t in timesteps:
        xin = scale_model_input(x, t)
        eps = 0.3*xin + 0.5*sin(xin) + 0.1*t/1000
        x = step(eps, t, x, generator=Generator().manual_seed(STEP_SEED))
    (every x after a step is recorded)

The C test (test_scheduler.c) replays the same loop with sdrt_rng and
compares step by step (relative L2 <= 1e-5).

DPMSolverSDEScheduler needs torchsde in the venv (dev only); its cases set
noise_sampler_seed, since diffusers otherwise seeds the Brownian tree from
torch's global generator.
"""
import inspect
import json
import math
import os
import sys
import warnings

import numpy as np
import torch
import diffusers

warnings.filterwarnings("ignore")
torch.set_num_threads(1)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "goldens")
SHAPE = (1, 4, 4, 4)
SEED = 1234
STEP_SEED = 77
SCHEDULE_STEPS = [1, 2, 8, 25, 50]
TRAJ_STEPS = [8, 25]

# The SD1.5 model config (as in ../shared/reference/tiny-sd15) and a SDXL one.
SD15 = {"_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
        "beta_start": 0.00085, "clip_sample": False, "num_train_timesteps": 1000,
        "prediction_type": "epsilon", "set_alpha_to_one": False, "skip_prk_steps": True,
        "steps_offset": 1, "timestep_spacing": "leading", "trained_betas": None}
SDXL = {"_class_name": "EulerDiscreteScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
        "beta_start": 0.00085, "clip_sample": False, "interpolation_type": "linear",
        "num_train_timesteps": 1000, "prediction_type": "epsilon", "rescale_betas_zero_snr": False,
        "sample_max_value": 1.0, "set_alpha_to_one": False, "sigma_max": None, "sigma_min": None,
        "skip_prk_steps": True, "steps_offset": 1, "timestep_spacing": "leading",
        "timestep_type": "discrete", "trained_betas": None, "use_karras_sigmas": False}
BASES = {"none": None, "sd15": SD15, "sdxl": SDXL}

VPRED_ZSNR = {"prediction_type": "v_prediction", "rescale_betas_zero_snr": True, "timestep_spacing": "trailing"}

# (case name, class, base, overrides, step kwargs, extra schedule steps)
CASES = [
    ("euler_sd15", "EulerDiscreteScheduler", "sd15", {}, {}, [1000]),
    ("euler_sdxl", "EulerDiscreteScheduler", "sdxl", {}, {}, []),
    ("euler_default", "EulerDiscreteScheduler", "none", {}, {}, [1000]),
    ("euler_karras", "EulerDiscreteScheduler", "sd15", {"use_karras_sigmas": True}, {}, []),
    ("euler_exponential", "EulerDiscreteScheduler", "sd15", {"use_exponential_sigmas": True}, {}, []),
    ("euler_beta", "EulerDiscreteScheduler", "sd15", {"use_beta_sigmas": True}, {}, []),
    ("euler_trailing", "EulerDiscreteScheduler", "sd15", {"timestep_spacing": "trailing"}, {}, []),
    ("euler_vpred_zsnr", "EulerDiscreteScheduler", "sd15", VPRED_ZSNR, {}, []),
    ("euler_sigma_min", "EulerDiscreteScheduler", "sd15", {"final_sigmas_type": "sigma_min", "timestep_spacing": "linspace"}, {}, []),
    ("euler_cosine", "EulerDiscreteScheduler", "none", {"beta_schedule": "squaredcos_cap_v2"}, {}, []),
    ("euler_log_linear", "EulerDiscreteScheduler", "sd15", {"interpolation_type": "log_linear", "timestep_spacing": "linspace"}, {}, []),
    ("euler_continuous_v", "EulerDiscreteScheduler", "sd15", {"timestep_type": "continuous", "prediction_type": "v_prediction"}, {}, []),
    ("euler_sample", "EulerDiscreteScheduler", "sd15", {"prediction_type": "sample"}, {}, []),
    ("euler_a_sd15", "EulerAncestralDiscreteScheduler", "sd15", {}, {}, [1000]),
    ("euler_a_default", "EulerAncestralDiscreteScheduler", "none", {}, {}, []),
    ("euler_a_vpred_zsnr", "EulerAncestralDiscreteScheduler", "sd15", VPRED_ZSNR, {}, []),
    ("dpmpp_2m_sd15", "DPMSolverMultistepScheduler", "sd15", {}, {}, [1000]),
    ("dpmpp_2m_default", "DPMSolverMultistepScheduler", "none", {}, {}, []),
    ("dpmpp_2m_karras", "DPMSolverMultistepScheduler", "sd15", {"use_karras_sigmas": True}, {}, [1000]),
    ("dpmpp_3m", "DPMSolverMultistepScheduler", "sd15", {"solver_order": 3}, {}, []),
    ("dpmpp_1", "DPMSolverMultistepScheduler", "sd15", {"solver_order": 1}, {}, []),
    ("dpmpp_2m_heun", "DPMSolverMultistepScheduler", "sd15", {"solver_type": "heun"}, {}, []),
    ("dpmpp_2m_sde", "DPMSolverMultistepScheduler", "sd15", {"algorithm_type": "sde-dpmsolver++"}, {}, []),
    ("dpmpp_2m_sde_karras", "DPMSolverMultistepScheduler", "sd15", {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True}, {}, []),
    ("dpmpp_3m_sde", "DPMSolverMultistepScheduler", "sd15", {"algorithm_type": "sde-dpmsolver++", "solver_order": 3}, {}, []),
    ("dpmpp_2m_sde_heun", "DPMSolverMultistepScheduler", "sd15", {"algorithm_type": "sde-dpmsolver++", "solver_type": "heun"}, {}, []),
    ("dpm_2m", "DPMSolverMultistepScheduler", "sd15", {"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min"}, {}, []),
    ("dpm_3m", "DPMSolverMultistepScheduler", "sd15", {"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min", "solver_order": 3}, {}, []),
    ("sde_dpm_2m", "DPMSolverMultistepScheduler", "sd15", {"algorithm_type": "sde-dpmsolver", "final_sigmas_type": "sigma_min"}, {}, []),
    ("dpmpp_2m_lu", "DPMSolverMultistepScheduler", "sd15", {"use_lu_lambdas": True}, {}, []),
    ("dpmpp_2m_exponential", "DPMSolverMultistepScheduler", "sd15", {"use_exponential_sigmas": True}, {}, []),
    ("dpmpp_2m_beta", "DPMSolverMultistepScheduler", "sd15", {"use_beta_sigmas": True}, {}, []),
    ("dpmpp_2m_trailing", "DPMSolverMultistepScheduler", "sd15", {"timestep_spacing": "trailing"}, {}, []),
    ("dpmpp_2m_vpred", "DPMSolverMultistepScheduler", "sd15", {"prediction_type": "v_prediction", "euler_at_final": True}, {}, []),
    ("dpmpp_2m_sigma_min", "DPMSolverMultistepScheduler", "sd15", {"final_sigmas_type": "sigma_min", "lower_order_final": False}, {}, []),
    ("dpmpp_2m_clipped", "DPMSolverMultistepScheduler", "none", {"lambda_min_clipped": -5.1, "beta_schedule": "squaredcos_cap_v2", "use_karras_sigmas": True}, {}, []),
    ("ddim_sd15", "DDIMScheduler", "sd15", {}, {}, [1000]),
    ("ddim_default", "DDIMScheduler", "none", {}, {}, []),
    ("ddim_linspace", "DDIMScheduler", "sd15", {"timestep_spacing": "linspace"}, {}, []),
    ("ddim_vpred_zsnr", "DDIMScheduler", "sd15", VPRED_ZSNR, {}, []),
    ("ddim_eta", "DDIMScheduler", "sd15", {"eta": 0.5}, {"eta": 0.5}, []),
    ("heun_sd15", "HeunDiscreteScheduler", "sd15", {}, {}, [1000]),
    ("heun_karras", "HeunDiscreteScheduler", "sd15", {"use_karras_sigmas": True}, {}, []),
    ("heun_default", "HeunDiscreteScheduler", "none", {}, {}, []),
    ("heun_vpred", "HeunDiscreteScheduler", "sd15", {"prediction_type": "v_prediction", "timestep_spacing": "trailing"}, {}, []),
    ("lms_sd15", "LMSDiscreteScheduler", "sd15", {}, {}, [1000]),
    ("lms_karras", "LMSDiscreteScheduler", "sd15", {"use_karras_sigmas": True}, {}, []),
    ("lms_default", "LMSDiscreteScheduler", "none", {}, {}, []),
    ("ddpm_sd15", "DDPMScheduler", "sd15", {}, {}, [1000]),
    ("ddpm_default", "DDPMScheduler", "none", {}, {}, []),
    ("ddpm_fixed_large", "DDPMScheduler", "sd15", {"variance_type": "fixed_large", "timestep_spacing": "trailing"}, {}, []),
    ("unipc_sd15", "UniPCMultistepScheduler", "sd15", {}, {}, [1000]),
    ("unipc_bh1", "UniPCMultistepScheduler", "sd15", {"solver_type": "bh1", "final_sigmas_type": "sigma_min"}, {}, []),
    ("unipc_default", "UniPCMultistepScheduler", "none", {}, {}, []),
    ("unipc_karras_3", "UniPCMultistepScheduler", "sd15", {"use_karras_sigmas": True, "solver_order": 3}, {}, []),
    ("unipc_vpred", "UniPCMultistepScheduler", "sd15", {"prediction_type": "v_prediction", "timestep_spacing": "trailing"}, {}, []),
    ("unipc_noise_pred", "UniPCMultistepScheduler", "sd15", {"predict_x0": False, "final_sigmas_type": "sigma_min"}, {}, []),
    ("unipc_disable_corrector", "UniPCMultistepScheduler", "sd15", {"disable_corrector": [0, 2]}, {}, []),
    ("dpm_single_sd15", "DPMSolverSinglestepScheduler", "sd15", {}, {}, [1000]),
    ("dpm_single_3", "DPMSolverSinglestepScheduler", "sd15", {"solver_order": 3}, {}, []),
    ("dpm_single_karras", "DPMSolverSinglestepScheduler", "sd15", {"use_karras_sigmas": True, "lower_order_final": True}, {}, []),
    ("deis_sd15", "DEISMultistepScheduler", "sd15", {}, {}, [1000]),
    ("deis_3", "DEISMultistepScheduler", "sd15", {"solver_order": 3}, {}, []),
    ("deis_karras", "DEISMultistepScheduler", "sd15", {"use_karras_sigmas": True}, {}, []),
    ("kdpm2_sd15", "KDPM2DiscreteScheduler", "sd15", {}, {}, [1000]),
    ("kdpm2_karras", "KDPM2DiscreteScheduler", "sd15", {"use_karras_sigmas": True}, {}, []),
    ("kdpm2_a_sd15", "KDPM2AncestralDiscreteScheduler", "sd15", {}, {}, [1000]),
    ("kdpm2_a_karras", "KDPM2AncestralDiscreteScheduler", "sd15", {"use_karras_sigmas": True}, {}, []),
    ("pndm_sd15", "PNDMScheduler", "sd15", {}, {}, [1000]),
    ("pndm_prk", "PNDMScheduler", "none", {}, {}, []),
    ("lcm_sd15", "LCMScheduler", "sd15", {}, {}, []),
    ("lcm_default", "LCMScheduler", "none", {}, {}, []),
    ("tcd_sd15", "TCDScheduler", "sd15", {}, {}, []),
    ("tcd_gamma", "TCDScheduler", "sd15", {"gamma": 0.5}, {"eta": 0.5}, []),
    ("tcd_gamma0", "TCDScheduler", "sd15", {"gamma": 0.0}, {"eta": 0.0}, []),
    ("lms_vpred", "LMSDiscreteScheduler", "sd15", {"prediction_type": "v_prediction", "timestep_spacing": "trailing"}, {}, []),
    ("ddpm_small_log", "DDPMScheduler", "sd15", {"variance_type": "fixed_small_log", "prediction_type": "v_prediction"}, {}, []),
    ("unipc_bh1_3", "UniPCMultistepScheduler", "sd15", {"solver_type": "bh1", "solver_order": 3, "lower_order_final": False}, {}, []),
    ("unipc_noise_bh2_3", "UniPCMultistepScheduler", "sd15", {"predict_x0": False, "solver_order": 3, "final_sigmas_type": "sigma_min"}, {}, []),
    ("dpm_single_sde", "DPMSolverSinglestepScheduler", "sd15", {"algorithm_type": "sde-dpmsolver++"}, {}, []),
    ("dpm_single_dpm_heun_3", "DPMSolverSinglestepScheduler", "sd15", {"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min", "solver_type": "heun", "solver_order": 3}, {}, []),
    ("dpm_single_exp", "DPMSolverSinglestepScheduler", "none", {"use_exponential_sigmas": True, "solver_order": 1}, {}, []),
    ("deis_1_vpred", "DEISMultistepScheduler", "sd15", {"solver_order": 1, "prediction_type": "v_prediction", "timestep_spacing": "trailing"}, {}, []),
    ("kdpm2_vpred", "KDPM2DiscreteScheduler", "sd15", {"prediction_type": "v_prediction", "timestep_spacing": "trailing"}, {}, []),
    ("kdpm2_a_default", "KDPM2AncestralDiscreteScheduler", "none", {}, {}, []),
    ("pndm_prk_vpred", "PNDMScheduler", "sd15", {"prediction_type": "v_prediction", "skip_prk_steps": False}, {}, []),
    ("pndm_trailing", "PNDMScheduler", "sd15", {"timestep_spacing": "trailing"}, {}, []),
    ("lcm_orig_25", "LCMScheduler", "sd15", {"original_inference_steps": 25, "prediction_type": "v_prediction"}, {}, []),
    # Align Your Steps (sdrt's align_your_steps/ays_model fields; see ays_kwargs)
    ("euler_ays_sd15", "EulerDiscreteScheduler", "sd15", {"align_your_steps": True, "ays_model": "sd1"}, {}, [10]),
    ("euler_ays_sdxl", "EulerDiscreteScheduler", "sdxl", {"align_your_steps": True, "ays_model": "sdxl"}, {}, [10]),
    ("dpmpp_2m_ays_sd15", "DPMSolverMultistepScheduler", "sd15", {"align_your_steps": True, "ays_model": "sd1"}, {}, [10]),
    ("dpmpp_2m_ays_sdxl", "DPMSolverMultistepScheduler", "sdxl", {"align_your_steps": True, "ays_model": "sdxl"}, {}, [10]),
    ("dpmpp_2m_sde_ays", "DPMSolverMultistepScheduler", "sdxl", {"align_your_steps": True, "ays_model": "sdxl", "algorithm_type": "sde-dpmsolver++"}, {}, [10]),
    ("dpm_single_ays", "DPMSolverSinglestepScheduler", "sd15", {"align_your_steps": True, "ays_model": "sd1"}, {}, [10]),
    ("heun_ays_sdxl", "HeunDiscreteScheduler", "sdxl", {"align_your_steps": True, "ays_model": "sdxl"}, {}, [10]),
    # DPMSolverSDE: noise_sampler_seed fixed so torchsde's Brownian tree is
    # reproducible (sdrt defaults it to the request seed; diffusers draws one)
    ("dpmsde_default", "DPMSolverSDEScheduler", "none", {"noise_sampler_seed": 42}, {}, []),
    ("dpmsde_sd15", "DPMSolverSDEScheduler", "sd15", {"noise_sampler_seed": 42}, {}, [1000]),
    ("dpmsde_karras", "DPMSolverSDEScheduler", "sd15", {"use_karras_sigmas": True, "noise_sampler_seed": 1099511627781}, {}, []),
    ("dpmsde_vpred", "DPMSolverSDEScheduler", "sd15", {"prediction_type": "v_prediction", "timestep_spacing": "trailing", "noise_sampler_seed": 7}, {}, []),
    ("dpmsde_exponential", "DPMSolverSDEScheduler", "none", {"use_exponential_sigmas": True, "noise_sampler_seed": 0}, {}, []),
]

# cases whose trajectories cover more step counts than TRAJ_STEPS
TRAJ_OVERRIDE = {
    "dpmsde_default": [1, 2, 8, 25],
    "dpmsde_karras": [1, 2, 8, 25],
    "dpmsde_vpred": [1, 2, 8, 25],
}

# NVIDIA's Align Your Steps noise levels as ComfyUI's AlignYourStepsScheduler
# holds them (11 levels, the 10-step schedule before the final 0).
AYS_NOISE_LEVELS = {
    "sd1": [14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092,
            0.9642583904, 0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582],
    "sdxl": [14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141,
             0.5550693289, 0.3798540708, 0.2332364134, 0.1114188177, 0.0291671582],
}
AYS_DIFFUSERS = {"sd1": "StableDiffusion", "sdxl": "StableDiffusionXL"}
# classes whose set_timesteps takes sigmas= (the others take timesteps=)
AYS_SIGMA_CLASSES = {"EulerDiscreteScheduler"}

# sdrt takes step() keyword arguments (eta) as config fields; the AYS
# fields become set_timesteps(timesteps=/sigmas=) arguments.
STEP_KW_FIELDS = {"eta", "gamma", "align_your_steps", "ays_model"}


def loglinear_interp(t_steps, num_steps):
    """ComfyUI's AlignYourStepsScheduler interpolation (NVIDIA's how-to)."""
    xs = np.linspace(0, 1, len(t_steps))
    ys = np.log(t_steps[::-1])
    new_xs = np.linspace(0, 1, num_steps)
    new_ys = np.interp(new_xs, xs, ys)
    return np.exp(new_ys)[::-1].copy()


def ays_kwargs(cls, s, overrides, n):
    """set_timesteps arguments for AYS: diffusers' AysSchedules lists for 10
    steps; otherwise the log-linear interpolation of the noise levels to n+1
    points (last set to 0), given as sigmas, or for timestep-only classes
    mapped to integer timesteps by round(_sigma_to_t)."""
    if not overrides.get("align_your_steps"):
        return {"num_inference_steps": n}
    model = overrides["ays_model"]
    kind = "Sigmas" if cls in AYS_SIGMA_CLASSES else "Timesteps"
    if n == 10:
        return {kind.lower(): list(diffusers.schedulers.AysSchedules[AYS_DIFFUSERS[model] + kind])}
    sig = loglinear_interp(AYS_NOISE_LEVELS[model], n + 1)
    sig[-1] = 0.0
    if kind == "Sigmas":
        return {"sigmas": [float(v) for v in sig]}
    log_sigmas = np.log(np.array(((1 - s.alphas_cumprod) / s.alphas_cumprod) ** 0.5))
    return {"timesteps": [int(np.round(s._sigma_to_t(v, log_sigmas))) for v in sig[:-1]]}


def make(cls, base, overrides):
    c = getattr(diffusers, cls)
    over = {k: v for k, v in overrides.items() if k not in STEP_KW_FIELDS}
    if base is None:
        return c(**over)
    return c.from_config(base, **over)


def floats(t):
    return [r9(v) for v in np.asarray(t, dtype=np.float64).reshape(-1)]


def r8(v):
    return float("%.8g" % v)


def r9(v):
    # float32 values survive a round trip through 9 significant digits
    return float("%.9g" % v)


def schedule(cls, base, overrides, n):
    s = make(cls, base, overrides)
    try:
        s.set_timesteps(**ays_kwargs(cls, s, overrides, n))
    except Exception as e:  # diffusers refuses some combinations
        return {"steps": n, "error": str(e)[:200]}
    sig = getattr(s, "sigmas", None)
    # DDIM/DDPM/PNDM/LCM/TCD have no sigmas in diffusers
    has_sig = cls not in ("DDIMScheduler", "DDPMScheduler", "PNDMScheduler", "LCMScheduler", "TCDScheduler")
    return {"steps": n, "timesteps": floats(s.timesteps),
            "sigmas": floats(sig) if has_sig and sig is not None else None,
            "init_noise_sigma": float(s.init_noise_sigma), "order": int(s.order)}


def model(xin, t):
    return 0.3 * xin + 0.5 * torch.sin(xin) + 0.1 * t / 1000


def trajectory(cls, base, overrides, step_kw, n):
    try:
        return run_trajectory(cls, base, overrides, step_kw, n)
    except Exception as e:  # diffusers itself fails on some combinations
        return {"steps": n, "error": repr(e)[:200]}


def run_trajectory(cls, base, overrides, step_kw, n):
    s = make(cls, base, overrides)
    s.set_timesteps(**ays_kwargs(cls, s, overrides, n))
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(SEED)) * s.init_noise_sigma
    g = torch.Generator().manual_seed(STEP_SEED)
    if "generator" in inspect.signature(s.step).parameters:
        step_kw = dict(step_kw, generator=g)
    steps = []
    for t in s.timesteps:
        xin = s.scale_model_input(x, t)
        eps = model(xin, t)
        x = s.step(eps, t, x, **step_kw).prev_sample
        steps.append([r8(v) for v in x.reshape(-1).tolist()])
    return {"steps": n, "latents": steps}


def main():
    os.makedirs(OUT, exist_ok=True)
    only = set(sys.argv[1:])
    index = []
    for name, cls, base, over, step_kw, extra in CASES:
        if only and name not in only:
            continue
        traj = TRAJ_STEPS if extra else TRAJ_STEPS[:1]
        if over.get("align_your_steps"):
            traj = [10] + TRAJ_STEPS[:1]
        traj = TRAJ_OVERRIDE.get(name, traj)
        rec = {"name": name, "class": cls, "base": base, "overrides": over,
               "shape": list(SHAPE), "seed": SEED, "step_seed": STEP_SEED,
               "model": "0.3*xin + 0.5*sin(xin) + 0.1*t/1000",
               "diffusers": diffusers.__version__,
               "schedules": [schedule(cls, BASES[base], over, n) for n in SCHEDULE_STEPS + extra],
               "trajectories": [trajectory(cls, BASES[base], over, step_kw, n) for n in traj]}
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(rec, f, separators=(",", ":"))
        index.append(name)
        print(name, file=sys.stderr)
    if only:
        # keep the index whole when regenerating a few cases
        names = [c[0] for c in CASES]
        with open(os.path.join(OUT, "index.json")) as f:
            known = set(json.load(f)["cases"])
        index = [n for n in names if n in known or n in only]
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump({"cases": index, "bases": BASES}, f, indent=1)


if __name__ == "__main__":
    main()
