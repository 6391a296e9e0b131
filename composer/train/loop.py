"""The training loop both trainers share: batches in, one `trainer.step` each, a JSONL loss log,
validation, resumable checkpoints (`state.py`) and a wall-time budget.

A trainer (`autoencoder.train.CodecTrainer`, `diffusion.train.DiffusionTrainer`) owns the
maths: `model`, `optimizer`, `extra_modules()`, `generators()`, `step(batch, step) -> dict`,
`validate(batches, step) -> dict`, `finish()` and `is_main`. A resumed run continues exactly
as an uninterrupted one would (weights, optimiser, EMA and every RNG are restored).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from composer.train.state import load_training_state, save_training_state, saved_state

log = logging.getLogger(__name__)


@dataclass
class LoopSchedule:
    steps: int
    log_every: int = 50
    validate_every: int = 500
    save_every: int = 250
    max_minutes: float | None = None  # stop after this wall time (a CPU budget)


def run_training(trainer, batches: Iterator, *, out_dir: str | Path, schedule: LoopSchedule,
                 validation: list | None = None, resume: bool = False, progress: bool = True, desc: str = "training",
                 on_validate: Callable[[int, dict], None] | None = None) -> tuple[object, dict]:
    """Train until `schedule.steps` (or the time budget); returns (trainer.finish(), metrics with "step").

    Writes OUT/log.jsonl and OUT/last/ (weights, optimiser, RNG and extra modules such as
    the EMA); with `resume`, continues from OUT/last/ when it exists.
    """
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last"
    step, metrics = 0, {}
    if resume and saved_state(last) is not None:
        meta = load_training_state(last, trainer.model, trainer.optimizer, trainer.extra_modules(),
                                   trainer.generators())
        step, metrics = meta["step"], meta.get("metrics", {})
        log.info("resumed %s at step %d", desc, step)
    main = trainer.is_main
    started = time.monotonic()
    log_file = (out / "log.jsonl").open("a") if main else None
    bar = tqdm(total=schedule.steps, initial=step, desc=desc, unit="step", disable=not progress or not main)
    try:
        while step < schedule.steps:
            values = trainer.step(next(batches), step)
            step += 1
            bar.update()
            out_of_time = schedule.max_minutes is not None and _agreed(
                (time.monotonic() - started) / 60 >= schedule.max_minutes, getattr(trainer, "device", None))
            if not main:
                if out_of_time:
                    break
                continue
            if step % schedule.log_every == 0:
                _write(log_file, {"step": step, **values, "minutes": round((time.monotonic() - started) / 60, 2)})
                bar.set_postfix(loss=f"{values['loss']:.4f}")
            if validation and (step % schedule.validate_every == 0 or step == schedule.steps or out_of_time):
                metrics = trainer.validate(validation, step)
                _write(log_file, {"step": step, "validation": metrics})
                if on_validate:
                    on_validate(step, metrics)
            if step % schedule.save_every == 0 or step == schedule.steps or out_of_time:
                save_training_state(last, trainer.model, trainer.optimizer, step, {"metrics": metrics},
                                    modules=trainer.extra_modules(), generators=trainer.generators())
            if out_of_time:
                log.info("%s stopped at its time budget (step %d)", desc, step)
                break
    finally:
        bar.close()
        if log_file:
            log_file.close()
    return trainer.finish(), {"step": step, **metrics}


def _agreed(flag: bool, device) -> bool:
    """`flag` if any rank raises it: under DistributedDataParallel every rank must stop at the
    same step (one that stopped alone would leave the others waiting in their next gradient
    all-reduce), and each rank's clock reaches the budget at its own step."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return flag
    value = torch.tensor([float(flag)], device=device or "cpu")
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def _write(log_file, row: dict) -> None:
    log_file.write(json.dumps(row) + "\n")
    log_file.flush()
