"""`composer train diffusion`: datasets on disk -> a diffusion checkpoint with its model card."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from composer.errors import InputError
from composer.train.cards import machine_summary, write_model_card
from composer.train.codec import schedule_of
from composer.train.data import consent_summary, latent_items, latent_windows, licence_summary
from composer.train.loop import check_run_folder, run_recipe, run_training


def train_diffusion(model, batches, *, out_dir: str | Path, config, validation: list | None = None,
                    resume: bool = False, progress: bool = True, device=None, recipe: dict | None = None,
                    folder: str | Path | None = None) -> tuple[object, dict]:
    """Train (`diffusion.train.DiffusionTrainer` in the shared loop, on `device`, default the
    CPU); returns (EMA model, on the CPU; metrics). Writes OUT/last (with the EMA) and OUT/log.jsonl."""
    from diffusion.train import DiffusionTrainer

    return run_training(DiffusionTrainer(model, config, device), batches, out_dir=out_dir, schedule=schedule_of(config),
                        validation=validation, resume=resume, progress=progress, desc="diffusion", recipe=recipe,
                        folder=folder)


def _digest(names: list[str]) -> str:
    """A short fingerprint of a list of names (a persona's thousands of accepted songs)."""
    import hashlib

    return hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()[:16]


def _init_name(init: str) -> str:
    """How a model names the model it was fine-tuned from: "bundled", or the folder."""
    from composer.models import bundled_model_path

    return "bundled" if Path(init).resolve() == bundled_model_path().resolve() else str(Path(init).resolve())


def train_diffusion_command(data: list[str], codec_dir: str | None, out_dir: str, *, steps: int,
                            channels: tuple[int, ...], blocks: int, batch_size: int, lr: float, seed: int,
                            resume: bool, max_minutes: float | None, threads: int | None, command: str,
                            init: str | None = None, objective: str = "rectified_flow",
                            unconfident: str = "exclude", balance: bool = False, device: str = "auto",
                            only: set[str] | None = None, analysed_groups: tuple[str, ...] | None = None,
                            labels: str | None = None) -> dict:
    """Train (or fine-tune, with `init`) the diffusion model on `device` (auto, cpu, cuda,
    cuda:N; `composer.train.device`); writes a half-precision checkpoint. only: the file names
    (as `metadata.jsonl` gives them) that may be learnt, when a full `composer data check`
    already chose them (a persona: the files its check refused are never read).
    analysed_groups: the control groups learnt from rows labelled by analysis (default
    `ANALYSIS_GROUPS`; `composer.train.data.trusted_groups`). labels: a folder an analysis of the
    data was written into, beside it (`composer.data.labelling.analyze_dataset(into=)`: a persona's)."""
    from composer.conditioning import ANALYSIS_GROUPS, unet_layout
    from composer.models import load_codec
    from composer.train.device import training_device
    from diffusion.flow import FlowConfig
    from diffusion.model import DiffusionModel, ModelConfig
    from diffusion.train import DiffusionTrainConfig
    from diffusion.unet import UNetConfig

    where = training_device(device)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    codec = load_codec(codec_dir)
    out = Path(out_dir)
    recipe = run_recipe(data=[Path(d) for d in data], codec=codec.latent_identity(), init=init and Path(init), steps=steps,
                        channels=channels, blocks=blocks, batch_size=batch_size, lr=lr, seed=seed, objective=objective,
                        unconfident=unconfident, balance=balance,
                        analysed_groups=ANALYSIS_GROUPS if analysed_groups is None else analysed_groups,
                        only=None if only is None else _digest(sorted(only)))
    check_run_folder(out / "training", resume=resume, recipe=recipe, folder=out_dir)  # before the data work
    train_rows, val_rows, items, val_items = latent_items(data, codec, out / "training" / "cache",
                                                          unconfident=unconfident, only=only,
                                                          analysed_groups=analysed_groups, labels=labels)
    if init:  # fine-tune: start from a model, grow its vocabulary with the new fields
        model = DiffusionModel.from_pretrained(init)
        if model.config.codec and model.config.codec != codec.latent_identity():
            raise InputError(f"--init {init}: trained on the latents of codec {model.config.codec}, "
                             f"not {codec.latent_identity()}")
        model.grow_tags([it["tags"] for it in items])
    else:
        unet = UNetConfig(latent_dim=codec.latent_dim, channels=tuple(channels), blocks_per_level=blocks,
                          **unet_layout())
        config = ModelConfig(unet=unet, flow=FlowConfig(objective=objective), frame_rate=codec.frame_rate,
                             codec=codec.latent_identity())
        config.tags = {}
        model = DiffusionModel(config)
        model.grow_tags([it["tags"] for it in items])
    frames = model.config.window_frames
    batches = latent_windows(items, model, frames=frames, batch_size=batch_size, generator=np.random.default_rng(seed),
                             balance=balance)
    val_stream = latent_windows(val_items, model, frames=frames, batch_size=16,
                                generator=np.random.default_rng(seed + 1))
    validation = [next(val_stream) for _ in range(4)]
    started = time.monotonic()
    train_config = DiffusionTrainConfig(steps=steps, lr=lr, seed=seed, max_minutes=max_minutes)
    ema_model, metrics = train_diffusion(model, batches, out_dir=out / "training", config=train_config,
                                         validation=validation, resume=resume, device=where, recipe=recipe,
                                         folder=out_dir)
    ema_model.config.training = {
        "command": command, "seed": seed, "steps": metrics["step"],
        "minutes": round((time.monotonic() - started) / 60, 1), "data": data, "files": len(train_rows),
        "validation_files": len(val_rows), "balanced_sources": balance,
        **({"analysed_groups": list(analysed_groups)} if analysed_groups is not None else {}), "licences": licence_summary(train_rows + val_rows),
        "consents": consent_summary(train_rows + val_rows),
        "validation": {k: v for k, v in metrics.items() if k != "step"}, "codec": codec.identity(),
        "codec_latent_identity": codec.latent_identity(),
        "parameters": sum(p.numel() for p in ema_model.parameters()), "machine": machine_summary(where),
        "device": str(where),
        **({"init": _init_name(init)} if init else {}),
    }
    # what it learnt, searchable: every render of this model is checked against it
    from composer.originality import build_index

    index = build_index(data, command=command, only=only, labels=labels)
    index.save(out)
    ema_model.config.training["originality"] = {
        "index": "originality.json", "files": len(index.files), "windows": len(index.vectors),
        "melodies": len(index.melodies), "data_identity": index.meta["data_identity"],
        "thresholds": index.thresholds}
    ema_model.save_pretrained(out, dtype=torch.float16)
    write_model_card(out, "diffusion", ema_model.config.training, extra=ema_model.config.to_dict(),
                     log_path=out / "training" / "log.jsonl")
    return metrics
