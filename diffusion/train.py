"""Diffusion training maths: the flow-matching step, EMA, validation loss.

The caller supplies batches `(x0 [B, D, frames], cond)` and runs the loop
(`composer.train.loop`); this module knows no files. It runs single-process on the CPU,
or under `torchrun` with DistributedDataParallel (each rank draws its own batches).
"""

from __future__ import annotations

import copy
import logging
import math
import os
from dataclasses import dataclass

import torch
from torch import nn

from diffusion.model import DiffusionModel

log = logging.getLogger(__name__)


@dataclass
class DiffusionTrainConfig:
    steps: int = 20000
    lr: float = 4e-4
    warmup: int = 200
    ema_decay: float = 0.999
    log_every: int = 50
    validate_every: int = 500
    save_every: int = 250
    seed: int = 0
    max_minutes: float | None = None


class EMA:
    """Exponential moving average of a model's parameters (the weights that ship)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))  # warm start
        for ema_p, p in zip(self.shadow.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1 - decay)
        for ema_b, b in zip(self.shadow.buffers(), model.buffers()):
            ema_b.copy_(b)


def _distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size) under torchrun (the process group started: NCCL for CUDA devices,
    gloo for the CPU), else (0, 1)."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def batch_to(batch: tuple[torch.Tensor, dict], device: torch.device) -> tuple[torch.Tensor, dict]:
    """A `(x0, cond)` batch on `device`."""
    x0, cond = batch
    return x0.to(device), {k: v.to(device) if torch.is_tensor(v) else v for k, v in cond.items()}


@torch.no_grad()
def validation_loss(model: DiffusionModel, batches: list[tuple[torch.Tensor, dict]], seed: int) -> float:
    """Mean loss over fixed batches with a fixed generator (comparable across steps)."""
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    device = next(model.parameters()).device
    losses = []
    for batch in batches:
        x0, cond = batch_to(batch, device)
        losses.append(float(model.loss(x0, cond, generator=generator)))
    return sum(losses) / max(1, len(losses))


class DiffusionTrainer:
    """One optimisation step of the denoiser at a time (`step`), with EMA, and validation.

    The loop around it (batches, logging, checkpoints, resuming, time budget) is the
    caller's: `composer.train.loop.run_training`. Under `torchrun` each rank draws its
    own batches and gradients are averaged; only rank 0 (`is_main`) logs and saves.
    """

    def __init__(self, model: DiffusionModel, config: DiffusionTrainConfig, device: torch.device | str | None = None):
        self.device = torch.device(device or "cpu")
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.rank, self.world = _distributed(self.device)
        self.is_main = self.rank == 0
        torch.manual_seed(config.seed + self.rank)
        self.config = config
        self.model = model.to(self.device)
        self.generator = torch.Generator().manual_seed(config.seed * 1000 + self.rank)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
        self.ema = EMA(model, config.ema_decay)
        self.trained: nn.Module = _LossForward(model)
        if self.world > 1:  # gradients are averaged across ranks through the wrapper's forward
            self.trained = nn.parallel.DistributedDataParallel(
                self.trained, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.running: float | None = None

    def extra_modules(self) -> dict[str, nn.Module]:
        return {"ema": self.ema.shadow}

    def generators(self) -> dict[str, torch.Generator]:
        return {"noise": self.generator}  # the flow's times and noise

    def learning_rate(self, step: int) -> float:
        config = self.config
        return config.lr * min(1.0, (step + 1) / config.warmup) * 0.5 * (
            1 + math.cos(math.pi * min(1.0, step / config.steps)))

    def step(self, batch: tuple[torch.Tensor, dict], step: int) -> dict[str, float]:
        """Train on `(x0 [B, D, frames], cond)`; the running loss and the learning rate."""
        x0, cond = batch_to(batch, self.device)
        self.model.train()
        lr = self.learning_rate(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss = self.trained(x0, cond, self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.ema.update(self.model, step)
        value = loss.item()
        self.running = value if self.running is None else 0.98 * self.running + 0.02 * value
        return {"loss": round(self.running, 5), "lr": lr}

    def validate(self, batches: list[tuple[torch.Tensor, dict]], step: int) -> dict[str, float]:
        metrics = {"validation_loss": validation_loss(self.ema.shadow, batches, self.config.seed),
                   "train_loss": self.running, "step": step}
        self.model.train()
        return metrics

    def finish(self) -> DiffusionModel:
        """The EMA weights (on the CPU): what ships."""
        return self.ema.shadow.cpu()


class _LossForward(nn.Module):
    """forward() = the model's loss, so DistributedDataParallel can wrap training."""

    def __init__(self, model: DiffusionModel):
        super().__init__()
        self.model = model

    def forward(self, x0: torch.Tensor, cond: dict, generator: torch.Generator) -> torch.Tensor:
        return self.model.loss(x0, cond, generator=generator)
