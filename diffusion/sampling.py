"""Samplers and schedules as pure functions (k-diffusion style).

`sample_*(denoiser, x, timesteps, *, cond, guidance, generator, callback) -> x0`
integrates the rectified-flow ODE dx/dt = v from timesteps[0] (noise end) to
timesteps[-1] = 0. No state lives on the model; randomness only through
`generator`. Known frames (cond["mask"] = 1) are held clean at cond["known"] along
the path, exactly as the model saw them in training.

Guidance: a float applies classifier-free guidance against the fully
unconditional prediction (tags, text and controls dropped, the known frames
kept); a dict {"tags": w, "text": w, "controls": w, "rhythm": w, ...} guides each
condition group separately: v = v_full + sum_g (w_g - 1) (v_full - v_without_g).
`guidance_interval=(lo, hi)` applies guidance only at times lo < t <= hi and takes the
conditional velocity elsewhere (Kynkaanniemi et al., "Applying guidance in a limited
interval improves sample and distribution quality in diffusion models", 2024): the
unguided steps cost one network pass instead of two.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Denoiser = Callable[..., torch.Tensor]
GUIDANCE_GROUPS = ("tags", "text", "controls", "rhythm", "harmony", "bass", "melody", "drums", "form")


def linear_timesteps(steps: int, *, start: float = 1.0) -> torch.Tensor:
    """`steps + 1` times from `start` down to 0, evenly spaced."""
    return torch.linspace(start, 0.0, steps + 1)


def shifted_timesteps(steps: int, *, start: float = 1.0, shift: float = 2.0) -> torch.Tensor:
    """Times warped toward the noisy end (t' = s t / (1 + (s - 1) t)), as SD3 samples."""
    t = torch.linspace(start, 0.0, steps + 1)
    return shift * t / (1 + (shift - 1) * t)


def drop_condition(cond: dict, group: str, group_names: tuple[str, ...]) -> dict:
    """`cond` without one condition group ("all" drops tags, text and controls)."""
    out = dict(cond)
    if group in ("tags", "all") and out.get("tags") is not None:
        out["tags"] = torch.zeros_like(out["tags"])
    if group in ("text", "all") and out.get("text") is not None:
        out["text_present"] = torch.zeros(out["text"].shape[0])
    if group in ("controls", "all") and out.get("controls") is not None:
        out["control_groups"] = torch.zeros(out["controls"].shape[0], len(group_names))
    elif group in group_names and out.get("controls") is not None:
        flags = out.get("control_groups", torch.ones(out["controls"].shape[0], len(group_names))).clone()
        flags[:, group_names.index(group)] = 0
        out["control_groups"] = flags
    return out


def _stack_conds(conds: list[dict]) -> dict:
    keys = set().union(*conds)
    out = {}
    for key in keys:
        values = [c.get(key) for c in conds]
        out[key] = None if any(v is None for v in values) else torch.cat(values, dim=0)
    return out


def guided_velocity(denoiser: Denoiser, x: torch.Tensor, t: torch.Tensor, *, cond: dict,
                    guidance: float | dict[str, float] | None,
                    group_names: tuple[str, ...] = ("rhythm", "harmony", "bass", "melody", "drums", "form"),
                    guidance_interval: tuple[float, float] | None = None) -> torch.Tensor:
    """The (guided) velocity at x, t; all guidance passes run as one batch."""
    outside = guidance_interval is not None and not guidance_interval[0] < float(t.reshape(-1)[0]) <= guidance_interval[1]
    if outside or guidance is None or (not isinstance(guidance, dict) and guidance == 1.0):
        return denoiser(x, t, cond=cond)
    weights = {"all": float(guidance)} if not isinstance(guidance, dict) else \
        {g: float(w) for g, w in guidance.items() if float(w) != 1.0}
    if not weights:
        return denoiser(x, t, cond=cond)
    conds = [cond] + [drop_condition(cond, g, group_names) for g in weights]
    n = len(conds)
    batched = denoiser(x.repeat(n, 1, 1), t.repeat(n), cond=_stack_conds(conds))
    full, *without = batched.chunk(n, dim=0)
    velocity = full
    for (_, weight), v_without in zip(weights.items(), without):
        velocity = velocity + (weight - 1.0) * (full - v_without)
    return velocity


def _hold_known(x: torch.Tensor, t: float, cond: dict, noise: torch.Tensor) -> torch.Tensor:
    """Known frames stay clean at every step, exactly as the model saw them in training."""
    mask = cond.get("mask")
    if mask is None or cond.get("known") is None:
        return x
    return torch.where(mask.bool(), cond["known"], x)


def _times(timesteps: torch.Tensor, x: torch.Tensor, i: int) -> tuple[float, float, torch.Tensor]:
    t_now, t_next = float(timesteps[i]), float(timesteps[i + 1])
    return t_now, t_next, torch.full((x.shape[0],), t_now)


@torch.no_grad()
def sample_euler(denoiser: Denoiser, x: torch.Tensor, timesteps: torch.Tensor, *, cond: dict,
                 guidance: float | dict[str, float] | None = None, generator: torch.Generator | None = None,
                 callback: Callable[[dict], None] | None = None, **kwargs) -> torch.Tensor:
    """First-order Euler steps. `x` is the state at timesteps[0]."""
    noise = x.clone()
    for i in range(len(timesteps) - 1):
        t_now, t_next, t = _times(timesteps, x, i)
        x = _hold_known(x, t_now, cond, noise)
        v = guided_velocity(denoiser, x, t, cond=cond, guidance=guidance, **kwargs)
        x = x + (t_next - t_now) * v
        if callback:
            callback({"step": i, "t": t_now, "x": x})
    return _hold_known(x, 0.0, cond, noise)


@torch.no_grad()
def sample_heun(denoiser: Denoiser, x: torch.Tensor, timesteps: torch.Tensor, *, cond: dict,
                guidance: float | dict[str, float] | None = None, generator: torch.Generator | None = None,
                callback: Callable[[dict], None] | None = None, **kwargs) -> torch.Tensor:
    """Second-order Heun (trapezoidal) steps; two evaluations a step except the last."""
    noise = x.clone()
    for i in range(len(timesteps) - 1):
        t_now, t_next, t = _times(timesteps, x, i)
        x = _hold_known(x, t_now, cond, noise)
        v = guided_velocity(denoiser, x, t, cond=cond, guidance=guidance, **kwargs)
        x_euler = x + (t_next - t_now) * v
        if t_next > 0:
            x_euler = _hold_known(x_euler, t_next, cond, noise)
            v_next = guided_velocity(denoiser, x_euler, torch.full_like(t, t_next), cond=cond,
                                     guidance=guidance, **kwargs)
            x = x + (t_next - t_now) * 0.5 * (v + v_next)
        else:
            x = x_euler
        if callback:
            callback({"step": i, "t": t_now, "x": x})
    return _hold_known(x, 0.0, cond, noise)


@torch.no_grad()
def sample_multistep(denoiser: Denoiser, x: torch.Tensor, timesteps: torch.Tensor, *, cond: dict,
                     guidance: float | dict[str, float] | None = None, generator: torch.Generator | None = None,
                     callback: Callable[[dict], None] | None = None, **kwargs) -> torch.Tensor:
    """Second-order Adams-Bashforth multistep (DPM-Solver++(2M)-like): one evaluation a step."""
    noise = x.clone()
    previous_v, previous_h = None, None
    for i in range(len(timesteps) - 1):
        t_now, t_next, t = _times(timesteps, x, i)
        x = _hold_known(x, t_now, cond, noise)
        v = guided_velocity(denoiser, x, t, cond=cond, guidance=guidance, **kwargs)
        h = t_next - t_now
        if previous_v is None:
            x = x + h * v
        else:  # variable-step AB2
            ratio = h / previous_h
            x = x + h * ((1 + 0.5 * ratio) * v - 0.5 * ratio * previous_v)
        previous_v, previous_h = v, h
        if callback:
            callback({"step": i, "t": t_now, "x": x})
    return _hold_known(x, 0.0, cond, noise)


@torch.no_grad()
def invert(denoiser: Denoiser, x0: torch.Tensor, timesteps: torch.Tensor, *, cond: dict,
           guidance: float | dict[str, float] | None = None, **kwargs) -> torch.Tensor:
    """Run the ODE backwards (Euler) from clean latents to noise: timesteps ascend to 1."""
    x = x0
    for i in range(len(timesteps) - 1):
        t_now, t_next = float(timesteps[i]), float(timesteps[i + 1])
        v = guided_velocity(denoiser, x, torch.full((x.shape[0],), t_now), cond=cond, guidance=guidance, **kwargs)
        x = x + (t_next - t_now) * v
    return x


SAMPLERS = {"euler": sample_euler, "heun": sample_heun, "multistep": sample_multistep}


def get_sampler(name: str):
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r} (known: {', '.join(SAMPLERS)})")
    return SAMPLERS[name]
