"""The diffusion training loop: flow-matching loss, EMA, validation, resumable checkpoints.

The caller supplies batches `(x0 [B, D, frames], cond)`; this module knows no files
beyond its own checkpoint folder. It runs single-process on the CPU, or under
`torchrun` with DistributedDataParallel (each rank draws its own batches; rank 0
logs, validates and saves).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from autoencoder.train import load_training_state, save_training_state
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


def _distributed() -> tuple[int, int]:
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo" if not torch.cuda.is_available() else "nccl")
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@torch.no_grad()
def validation_loss(model: DiffusionModel, batches: list[tuple[torch.Tensor, dict]], seed: int) -> float:
    """Mean loss over fixed batches with a fixed generator (comparable across steps)."""
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    losses = [float(model.loss(x0, cond, generator=generator)) for x0, cond in batches]
    return sum(losses) / max(1, len(losses))


def train_diffusion(model: DiffusionModel, batches: Iterator[tuple[torch.Tensor, dict]], *, out_dir: str | Path,
                    config: DiffusionTrainConfig, validation: list[tuple[torch.Tensor, dict]] | None = None,
                    resume: bool = False, progress: bool = True) -> tuple[DiffusionModel, dict]:
    """Train; returns (EMA model, metrics). Writes OUT/last, OUT/ema and OUT/log.jsonl."""
    from tqdm import tqdm

    rank, world = _distributed()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed + rank)
    generator = torch.Generator().manual_seed(config.seed * 1000 + rank)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    ema = EMA(model, config.ema_decay)
    step, metrics = 0, {}
    if resume and (out / "last" / "state.json").exists():
        meta = load_training_state(out / "last", model, optimizer)
        ema.shadow.load_state_dict(load_training_ema(out / "ema"))
        step, metrics = meta["step"], meta.get("metrics", {})
        generator.manual_seed(config.seed * 1000 + rank + step)
        log.info("resumed diffusion training at step %d", step)
    trained: nn.Module = _LossForward(model)
    if world > 1:  # gradients are averaged across ranks through the wrapper's forward
        trained = nn.parallel.DistributedDataParallel(trained)
    started = time.monotonic()
    log_file = (out / "log.jsonl").open("a") if rank == 0 else None
    bar = tqdm(total=config.steps, initial=step, desc="diffusion", unit="step", disable=not progress or rank != 0)
    model.train()
    running = None
    while step < config.steps:
        x0, cond = next(batches)
        lr = config.lr * min(1.0, (step + 1) / config.warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / config.steps)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = trained(x0, cond, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        ema.update(model, step)
        step += 1
        value = loss.item()
        running = value if running is None else 0.98 * running + 0.02 * value
        bar.update()
        out_of_time = config.max_minutes is not None and (time.monotonic() - started) / 60 >= config.max_minutes
        if rank == 0:
            if step % config.log_every == 0:
                log_file.write(json.dumps({"step": step, "loss": round(running, 5), "lr": lr,
                                           "minutes": round((time.monotonic() - started) / 60, 2)}) + "\n")
                log_file.flush()
                bar.set_postfix(loss=f"{running:.4f}")
            if validation and (step % config.validate_every == 0 or step == config.steps or out_of_time):
                metrics = {"validation_loss": validation_loss(ema.shadow, validation, config.seed),
                           "train_loss": running, "step": step}
                model.train()
                log_file.write(json.dumps({"step": step, "validation": metrics}) + "\n")
                log_file.flush()
            if step % config.save_every == 0 or step == config.steps or out_of_time:
                save_training_state(out / "last", model, optimizer, step, {"metrics": metrics})
                save_training_ema(out / "ema", ema.shadow)
        if out_of_time:
            log.info("diffusion training stopped at its time budget (step %d)", step)
            break
    bar.close()
    if log_file:
        log_file.close()
    return ema.shadow, {"step": step, **metrics}


class _LossForward(nn.Module):
    """forward() = the model's loss, so DistributedDataParallel can wrap training."""

    def __init__(self, model: DiffusionModel):
        super().__init__()
        self.model = model

    def forward(self, x0: torch.Tensor, cond: dict, generator: torch.Generator) -> torch.Tensor:
        return self.model.loss(x0, cond, generator=generator)


def save_training_ema(directory: Path, shadow: nn.Module) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "ema.safetensors.tmp"
    save_file({k: v.contiguous() for k, v in shadow.state_dict().items()}, str(tmp))
    tmp.replace(directory / "ema.safetensors")


def load_training_ema(directory: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(directory / "ema.safetensors"))
