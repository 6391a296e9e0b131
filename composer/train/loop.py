"""The training loop both trainers share: batches in, one `trainer.step` each, a JSONL loss log,
validation, resumable checkpoints (`state.py`) and a wall-time budget.

A trainer (`autoencoder.train.CodecTrainer`, `diffusion.train.DiffusionTrainer`) owns the
maths: `model`, `optimizer`, `extra_modules()`, `generators()`, optionally `extra_optimizers()`, `step(batch, step) -> dict`,
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


def run_recipe(**options) -> dict:
    """A run's recipe from its options: a path as its folder's name (a project moved, or a run
    carried to another machine, resumes; another folder of the same name is not told apart),
    sets and tuples as lists."""
    def plain(value):
        if isinstance(value, Path):
            return value.resolve().name
        if isinstance(value, (set, frozenset)):
            return sorted(plain(v) for v in value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return {k: plain(v) for k, v in options.items()}


def check_training_options(output: str, resume: bool, **values) -> None:
    """The options a run is made of, checked before any data work: whole numbers of at least 1
    (steps, batch size, threads, widths), times and rates above 0; and --resume only where a run
    was saved (a mistyped folder started a new run from nothing). InputError names the option."""
    from composer.errors import InputError
    from composer.train.state import saved_state

    for name, value in values.items():
        option = "--" + name.replace("_", "-").removesuffix("-seconds")
        if value is None:
            continue
        if isinstance(value, tuple):
            if not value or any(v < 1 for v in value):
                raise InputError(f"{option} {','.join(map(str, value))}: every width must be 1 or more")
        elif isinstance(value, int):
            if value < 1:
                raise InputError(f"{option}: {value} must be 1 or more")
        elif not 0 < value < float("inf"):  # NaN is not either
            raise InputError(f"{option}: {value} must be a number above 0")
    if resume and saved_state(Path(output) / "training" / "last") is None:
        raise InputError(f"--resume: {output} holds no saved run to continue; leave out --resume to start one")


def check_run_folder(out: str | Path, *, resume: bool, recipe: dict | None, folder: str | Path | None = None):
    """The saved state a run into `out` continues (None: it starts afresh), or InputError: a saved
    run there without `resume`, or one of another recipe. Commands call it before their data work."""
    from composer.errors import InputError

    named = folder if folder is not None else out
    saved = saved_state(Path(out) / "last")
    if saved is None:
        return None
    state = json.loads((saved / "state.json").read_text())
    if not resume:
        raise InputError(f"{named}: holds a training run (saved at step {state.get('step')}); pass --resume to "
                         "continue it, or name a new folder")
    kept = state.get("recipe")
    if kept is not None and recipe is not None:
        # steps: the learning rate's schedule spans them, so another count is another run (a run saved
        # before its recipe held them resumes as it did)
        changed = sorted(k for k in set(kept) | set(recipe) if kept.get(k) != recipe.get(k)
                         and not (k == "steps" and k not in kept))
        if changed:
            raise InputError(f"{named}: its run was trained with " + ", ".join(f"{k}={kept.get(k)!r}" for k in changed)
                             + "; this one asks " + ", ".join(f"{k}={recipe.get(k)!r}" for k in changed)
                             + " (give the same options to continue it, or name a new folder)")
    return saved


def run_training(trainer, batches: Iterator, *, out_dir: str | Path, schedule: LoopSchedule,
                 validation: list | None = None, resume: bool = False, progress: bool = True, desc: str = "training",
                 on_validate: Callable[[int, dict], None] | None = None, recipe: dict | None = None,
                 folder: str | Path | None = None) -> tuple[object, dict]:
    """Train until `schedule.steps` (or the time budget); returns (trainer.finish(), metrics with "step").

    Writes OUT/log.jsonl and OUT/last/ (weights, optimiser, RNG and extra modules such as
    the EMA); with `resume`, continues from OUT/last/ when it exists: the batches the run
    had drawn are drawn again and dropped (`batches` is a seeded stream), so the resumed run
    ends with the weights an uninterrupted one would. `recipe`: what defines the run (its
    options but the step count and budget), kept with the state: a resume that asks for
    another recipe is refused, as is a new run over a saved one without `resume`.
    `folder`: the name the user gave for OUT's run, for those messages.
    """
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last"
    step, metrics, minutes = 0, {}, 0.0
    saved = check_run_folder(out, resume=resume, recipe=recipe, folder=folder)
    if saved is not None:
        meta = load_training_state(last, trainer.model, trainer.optimizer, trainer.extra_modules(),
                                   trainer.generators(), optimizers=_extra_optimizers(trainer),
                                   folder=folder if folder is not None else out)
        step, metrics, minutes = meta["step"], meta.get("metrics", {}), float(meta.get("minutes", 0.0))
        log.info("resumed %s at step %d (drawing its %d batches again)", desc, step, step)
        for _ in range(step):  # the stream where the run stopped: the same batches from here on
            next(batches)
        if trainer.is_main:
            _drop_rows_after(out / "log.jsonl", step)
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
                _write(log_file, {"step": step, **values,
                                  "minutes": round(minutes + (time.monotonic() - started) / 60, 2)})
                bar.set_postfix(loss=f"{values['loss']:.4f}")
            if validation and (step % schedule.validate_every == 0 or step == schedule.steps or out_of_time):
                metrics = trainer.validate(validation, step)
                _write(log_file, {"step": step, "validation": metrics})
                if on_validate:
                    on_validate(step, metrics)
            if step % schedule.save_every == 0 or step == schedule.steps or out_of_time:
                save_training_state(last, trainer.model, trainer.optimizer, step,
                                    {"metrics": metrics, "recipe": recipe,
                                     "minutes": round(minutes + (time.monotonic() - started) / 60, 3)},
                                    modules=trainer.extra_modules(), generators=trainer.generators(),
                                    optimizers=_extra_optimizers(trainer))
            if out_of_time:
                log.info("%s stopped at its time budget (step %d)", desc, step)
                break
    finally:
        bar.close()
        if log_file:
            log_file.close()
    return trainer.finish(), {"step": step, **metrics}


def _extra_optimizers(trainer) -> dict:
    """A trainer's optimisers beside its model's (a discriminator's), saved and restored with it."""
    extra = getattr(trainer, "extra_optimizers", None)
    return extra() if extra is not None else {}


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


def _drop_rows_after(path: Path, step: int) -> None:
    """The log as the saved state knew it: rows a killed run wrote after its last save go
    (the resumed run writes them again)."""
    from composer.data.audio import write_text_atomic

    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut by the kill
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            kept.append(line + "\n")
    write_text_atomic(path, "".join(kept))


def _write(log_file, row: dict) -> None:
    log_file.write(json.dumps(row) + "\n")
    log_file.flush()
