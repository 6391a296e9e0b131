"""The objective: the one wrapper that owns the noising, the target and the loss.

Rectified flow (the default): x_t = (1 - t) x_0 + t noise, t in [0, 1]; the
network predicts the velocity v = noise - x_0, so dx/dt = v and sampling
integrates from t = 1 to t = 0. Training draws t from a logit-normal (more
weight mid-way, as in SD3).

v-diffusion (`objective="v_diffusion"`, Dance Diffusion's): a variance-preserving
cosine path x_s = cos(pi s / 2) x_0 + sin(pi s / 2) noise, s uniform, and the
network predicts v = alpha noise - sigma x_0. Samplers see one interface for
both: `velocity(x_t, t)` always answers in rectified-flow coordinates; for a
v-model the state is rescaled to the cosine path at the same signal-to-noise
ratio, and its x_0 and noise estimates give the flow velocity. So every sampler,
inversion and mask works unchanged, and the two objectives can be compared on
equal terms (`benchmarks/objective.py`).

Both train
trains in/outpainting: a random mask marks known frames, whose clean latents
are given as conditioning; the loss counts unknown frames fully and known ones
lightly. Condition dropout (tags, text, each control group) makes
classifier-free guidance and "pin only what you want" rendering possible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

MASK_KINDS = ("empty", "prefix", "suffix", "middle", "ends")
OBJECTIVES = ("rectified_flow", "v_diffusion")


@dataclass
class FlowConfig:
    tag_dropout: float = 0.2  # per item: all tags dropped
    text_dropout: float = 0.5
    control_group_dropout: float = 0.3  # per item and group
    all_controls_dropout: float = 0.1
    mask_probabilities: tuple[float, ...] = (0.3, 0.35, 0.1, 0.1, 0.15)  # MASK_KINDS order
    known_loss_weight: float = 0.1
    logit_normal_std: float = 1.0
    objective: str = "rectified_flow"  # or "v_diffusion"

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r} (known: {', '.join(OBJECTIVES)})")


def random_masks(batch: int, frames: int, generator: torch.Generator,
                 probabilities: tuple[float, ...]) -> torch.Tensor:
    """`[batch, 1, frames]` masks (1 = known) of kinds MASK_KINDS drawn with `probabilities`."""
    masks = torch.zeros(batch, 1, frames)
    kinds = torch.multinomial(torch.tensor(probabilities), batch, replacement=True, generator=generator)
    for b, kind in enumerate(kinds.tolist()):
        lo = int(torch.randint(4, max(5, frames // 2), (1,), generator=generator))
        hi = int(torch.randint(4, max(5, frames // 2), (1,), generator=generator))
        name = MASK_KINDS[kind]
        if name == "prefix":
            masks[b, :, :lo] = 1
        elif name == "suffix":
            masks[b, :, frames - hi:] = 1
        elif name == "ends":  # known both ends: fill the middle (seam repaint, loops)
            masks[b, :, : lo // 2] = 1
            masks[b, :, frames - hi // 2:] = 1
        elif name == "middle":  # known middle: extend both ways
            start = int(torch.randint(0, frames - lo, (1,), generator=generator))
            masks[b, :, start: start + lo] = 1
    return masks


class RectifiedFlow(nn.Module):
    """Wraps a velocity network; `loss` for training, `velocity` for sampling."""

    def __init__(self, network: nn.Module, config: FlowConfig | None = None):
        super().__init__()
        self.network = network
        self.config = config or FlowConfig()

    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, *, cond: dict) -> torch.Tensor:
        """The flow velocity (noise - x_0 estimate) at rectified-flow state `x_t`, time `t`."""
        if self.config.objective == "rectified_flow":
            return self.network(x_t, t, cond=cond)
        shape = (-1, *([1] * (x_t.dim() - 1)))
        t = t.clamp(0.0, 1.0)
        scale = torch.rsqrt((1 - t) ** 2 + t ** 2).view(shape)  # rectified-flow state -> cosine path, same SNR
        s = (2 / math.pi) * torch.atan2(t, 1 - t)
        x = scale * x_t
        if cond.get("mask") is not None and cond.get("known") is not None:
            x = torch.where(cond["mask"].bool(), cond["known"], x)  # known frames enter clean, as in training
        v = self.network(x, s, cond=cond)
        alpha, sigma = torch.cos(0.5 * math.pi * s).view(shape), torch.sin(0.5 * math.pi * s).view(shape)
        return (sigma * x + alpha * v) - (alpha * x - sigma * v)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, *, cond: dict) -> torch.Tensor:
        return self.velocity(x_t, t, cond=cond)

    @staticmethod
    def noised(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.view(-1, *([1] * (x0.dim() - 1)))
        return (1 - t) * x0 + t * noise

    @staticmethod
    def predicted_x0(x_t: torch.Tensor, t: torch.Tensor, velocity: torch.Tensor) -> torch.Tensor:
        return x_t - t.view(-1, *([1] * (x_t.dim() - 1))) * velocity

    def drop_conditions(self, cond: dict, generator: torch.Generator) -> dict:
        """Randomly drop tags, text and control groups (per item) for guidance-ready training."""
        c = self.config
        cond = dict(cond)
        reference = next(v for v in cond.values() if torch.is_tensor(v))
        batch, device = reference.shape[0], reference.device
        # the draws come from `generator` on the CPU whatever the device: the same run on any machine
        if cond.get("tags") is not None:
            keep = (torch.rand(batch, generator=generator) >= c.tag_dropout).long().to(device)
            cond["tags"] = cond["tags"] * keep[:, None]
        if cond.get("text") is not None:
            present = cond.get("text_present", torch.ones(batch, device=device))
            cond["text_present"] = present * (torch.rand(batch, generator=generator) >= c.text_dropout).float().to(device)
        if cond.get("controls") is not None:
            groups = len(self.network.config.control_groups)
            flags = cond.get("control_groups", torch.ones(batch, groups, device=device))
            flags = flags * (torch.rand(batch, groups, generator=generator) >= c.control_group_dropout).float().to(device)
            flags = flags * (torch.rand(batch, 1, generator=generator) >= c.all_controls_dropout).float().to(device)
            cond["control_groups"] = flags
        return cond

    def loss(self, x0: torch.Tensor, cond: dict, *, generator: torch.Generator) -> torch.Tensor:
        """Flow-matching loss on clean latents `x0` `[B, D, frames]` with conditioning."""
        batch, _, frames = x0.shape
        c = self.config
        if c.objective == "rectified_flow":
            t = torch.sigmoid(torch.randn(batch, generator=generator) * c.logit_normal_std)
        else:
            t = torch.rand(batch, generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        mask = random_masks(batch, frames, generator, c.mask_probabilities)
        # drawn on the CPU from `generator` (the same numbers on any device), used where x0 is
        t, noise, mask = t.to(x0.device), noise.to(x0.device), mask.to(x0.device)
        cond = self.drop_conditions({**cond, "known": x0, "mask": mask}, generator)
        if c.objective == "rectified_flow":
            x_t, target = self.noised(x0, noise, t), noise - x0
        else:
            shape = (-1, *([1] * (x0.dim() - 1)))
            alpha, sigma = torch.cos(0.5 * math.pi * t).view(shape), torch.sin(0.5 * math.pi * t).view(shape)
            x_t, target = alpha * x0 + sigma * noise, alpha * noise - sigma * x0
        x_t = torch.where(mask.bool(), x0, x_t)  # known frames enter clean, as at sampling time
        error = (self.network(x_t, t, cond=cond) - target).pow(2).mean(dim=1, keepdim=True)
        weights = torch.where(mask.bool(), c.known_loss_weight, 1.0)
        return (error * weights).sum() / weights.sum()
