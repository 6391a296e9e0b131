"""Resumable training state without pickle: weights, optimiser state and RNG as safetensors,
the rest as JSON. A kill while saving leaves the old state or the new one whole, never a mix
(the new folder is written aside and swapped in by renames)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def _optimizer_state_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten the optimiser's state into tensors + JSON (so resuming never needs pickle)."""
    tensors, meta = {}, {"param_groups": []}
    state = optimizer.state_dict()
    for index, values in state["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
    meta["param_groups"] = state["param_groups"]
    return tensors, meta


def _load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def _previous(directory: Path) -> Path:
    return directory.with_name(directory.name + ".previous")


def saved_state(directory: Path) -> Path | None:
    """The folder holding the last complete state saved to `directory`: itself, or, after a
    kill between the two renames of a save, the state it replaced; None when there is none."""
    for folder in (directory, _previous(directory)):
        if (folder / "state.json").is_file():
            return folder
    return None


def save_training_state(directory: Path, model: torch.nn.Module, optimizer, step: int, extra: dict, *,
                        modules: dict[str, torch.nn.Module] | None = None,
                        generators: dict[str, torch.Generator] | None = None,
                        optimizers: dict[str, torch.optim.Optimizer] | None = None) -> None:
    """model.safetensors, optimizer.safetensors, rng.safetensors, NAME.safetensors for each of
    `modules` (an EMA, a discriminator), optimizer.NAME.safetensors for each of `optimizers`
    (the discriminator's), the RNG states (torch's and `generators`') and state.json (step,
    optimiser groups, `extra`)."""
    tmp = directory.with_name(directory.name + ".tmp")
    if tmp.exists():  # a save killed half way
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file(_weights(model), str(tmp / "model.safetensors"))
    for name, module in (modules or {}).items():
        save_file(_weights(module), str(tmp / f"{name}.safetensors"))
    tensors, meta = _optimizer_state_tensors(optimizer)
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    others = {}
    for name, other in (optimizers or {}).items():
        other_tensors, others[name] = _optimizer_state_tensors(other)
        save_file(other_tensors, str(tmp / f"optimizer.{name}.safetensors"))
    rng = {"torch_rng": torch.get_rng_state(), **{f"generator.{k}": g.get_state() for k, g in (generators or {}).items()}}
    save_file(rng, str(tmp / "rng.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"step": step, "optimizer": meta, **({"optimizers": others} if others else {}), **extra}))
    previous = _previous(directory)
    if (directory / "state.json").is_file():  # the old state stays whole until the new one is in place
        if previous.exists():
            shutil.rmtree(previous)
        directory.rename(previous)
    elif directory.exists():
        shutil.rmtree(directory)
    tmp.rename(directory)
    if previous.exists():
        shutil.rmtree(previous)


def load_training_state(directory: Path, model: torch.nn.Module, optimizer,
                        modules: dict[str, torch.nn.Module] | None = None,
                        generators: dict[str, torch.Generator] | None = None,
                        optimizers: dict[str, torch.optim.Optimizer] | None = None,
                        folder: str | Path | None = None) -> dict:
    """Restore what `save_training_state` wrote (RNG included); returns state.json.
    `folder`: the run's name as the user gave it, for the message when the state does not fit."""
    from composer.errors import InputError

    directory = saved_state(directory) or directory
    meta = json.loads((directory / "state.json").read_text())
    # a run saved by other options (one from before runs kept their recipe, so the recipe check
    # could not tell): say so in one line, not with a missing file or a key mismatch
    named = folder if folder is not None else directory.parent
    other_options = (f"{named}: its saved run (step {meta.get('step')}) was trained with other "
                     "options than these; continue it with the options it was started with, or name a new folder")
    missing = [f"{name}.safetensors" for name in (modules or {}) if not (directory / f"{name}.safetensors").is_file()]
    missing += [f"optimizer.{name}.safetensors" for name in (optimizers or {})
                if name not in meta.get("optimizers", {}) or not (directory / f"optimizer.{name}.safetensors").is_file()]
    if missing:
        raise InputError(f"{other_options} (it has no {', '.join(missing)})")
    try:
        model.load_state_dict(load_file(str(directory / "model.safetensors")))
        for name, module in (modules or {}).items():
            module.load_state_dict(load_file(str(directory / f"{name}.safetensors")))
    except RuntimeError as error:  # missing or unexpected weights, or other shapes
        if not str(error).startswith("Error(s) in loading state_dict"):
            raise
        first = str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else str(error)
        raise InputError(f"{other_options} ({first[:160]})") from None
    _load_optimizer_state(optimizer, load_file(str(directory / "optimizer.safetensors")), meta["optimizer"])
    for name, other in (optimizers or {}).items():
        _load_optimizer_state(other, load_file(str(directory / f"optimizer.{name}.safetensors")),
                              meta["optimizers"][name])
    rng = load_file(str(directory / "rng.safetensors"))
    torch.set_rng_state(rng["torch_rng"])
    for name, generator in (generators or {}).items():
        generator.set_state(rng[f"generator.{name}"])
    return meta
