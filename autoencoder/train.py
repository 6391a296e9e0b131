"""Codec training: reconstruction losses on random audio windows, resumable, validated.

The caller supplies batches (`[B, channels, samples]` float tensors); this module
knows nothing of files or songs. Checkpoints: `OUT/last/` (weights + optimiser
state, for `--resume`) and `OUT/` itself (the model at the end, float32), all
safetensors + JSON.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from autoencoder.codec import EncodecCodec
from autoencoder.losses import ReconstructionLoss, mel_distance, pitch_distance, si_sdr

log = logging.getLogger(__name__)


@dataclass
class LatentBatch:
    """A training batch whose latents are already known (a frozen encoder): the decoder sees
    `context` extra latent frames on each side of the audio it must reproduce."""

    latents: torch.Tensor  # [B, latent_dim, frames + 2 * context], raw (un-normalised)
    audio: torch.Tensor  # [B, channels, frames * hop]
    context: int


@dataclass
class CodecTrainConfig:
    steps: int = 20000
    lr: float = 1e-3
    batch_size: int = 8
    latent_noise: float = 0.1  # noise added to latents (x their std): a decoder robust to sampling errors
    latent_penalty: float = 1e-3  # keeps raw latents small and centred
    log_every: int = 50
    validate_every: int = 500
    save_every: int = 250
    seed: int = 0
    max_minutes: float | None = None  # stop after this wall time (a CPU budget)
    freeze_encoder: bool = False  # train the decoder only: the latent space stays as it is
    stft_sizes: tuple[int, ...] = (512, 1024, 2048)  # add 4096 to resolve pitch in the low mids
    waveform_weight: float = 1.0  # 0 for a decoder whose absolute phase is free (the spectral one)
    pitch_weight: float = 0.0  # semitone-band loss (`pitch_distance`): keeps roots and thirds, so keys and chords


def _optimizer_state_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten Adam's state into tensors + JSON (so resuming never needs pickle)."""
    tensors, meta = {}, {"param_groups": []}
    state = optimizer.state_dict()
    for index, values in state["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{name}"] = value.contiguous()
    meta["param_groups"] = state["param_groups"]
    return tensors, meta


def _load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_training_state(directory: Path, model: torch.nn.Module, optimizer, step: int, extra: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(directory.name + ".tmp")
    tmp.mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    tensors, meta = _optimizer_state_tensors(optimizer)
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    rng = torch.get_rng_state()
    save_file({"torch_rng": rng}, str(tmp / "rng.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"step": step, "optimizer": meta, **extra}))
    for child in tmp.iterdir():  # move file by file: a kill leaves either old or new files
        child.replace(directory / child.name)
    tmp.rmdir()


def load_training_state(directory: Path, model: torch.nn.Module, optimizer) -> dict:
    model.load_state_dict(load_file(str(directory / "model.safetensors")))
    meta = json.loads((directory / "state.json").read_text())
    _load_optimizer_state(optimizer, load_file(str(directory / "optimizer.safetensors")), meta["optimizer"])
    torch.set_rng_state(load_file(str(directory / "rng.safetensors"))["torch_rng"])
    return meta


@torch.no_grad()
def evaluate_codec(codec: EncodecCodec, batches: list[torch.Tensor]) -> dict[str, float]:
    """Mean mel distance, semitone-band pitch distance and SI-SDR of the round trip over `batches`."""
    codec.eval()
    mels, pitches, sdrs = [], [], []
    for audio in batches:
        output = codec.raw_decode(codec.raw_encode(audio))[..., : audio.shape[-1]]
        mels.append(float(mel_distance(output, audio, codec.sample_rate)))
        pitches.append(float(pitch_distance(output, audio, codec.sample_rate)))
        sdrs.append(float(si_sdr(output, audio).mean()))
    count = max(1, len(mels))
    return {"mel_distance": sum(mels) / count, "pitch_distance": sum(pitches) / count, "si_sdr": sum(sdrs) / count}


def train_codec(codec: EncodecCodec, batches: Iterator[torch.Tensor], *, out_dir: str | Path,
                config: CodecTrainConfig, validation: list[torch.Tensor] | None = None,
                resume: bool = False, progress: bool = True,
                on_validate: Callable[[int, dict], None] | None = None) -> dict:
    """Train `codec` in place; returns the final metrics. Writes OUT/last and OUT/log.jsonl.

    `batches` yields audio `[B, channels, samples]` (encoded on the fly) or `LatentBatch`es.
    """
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    loss_fn = ReconstructionLoss(codec.sample_rate, waveform=config.waveform_weight, pitch=config.pitch_weight,
                                 stft_sizes=config.stft_sizes)
    codec.encoder_module.requires_grad_(not config.freeze_encoder)
    params = list(codec.decoder_module.parameters())
    if not config.freeze_encoder:
        params += list(codec.encoder_module.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, betas=(0.8, 0.99), weight_decay=1e-4)
    step, metrics = 0, {}
    if resume and (out / "last" / "state.json").exists():
        meta = load_training_state(out / "last", codec, optimizer)
        step, metrics = meta["step"], meta.get("metrics", {})
        log.info("resumed codec training at step %d", step)
    schedule = lambda s: min(1.0, (s + 1) / 200) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / config.steps)))  # noqa: E731
    started = time.monotonic()
    log_file = (out / "log.jsonl").open("a")
    bar = tqdm(total=config.steps, initial=step, desc="codec", unit="step", disable=not progress)
    codec.train()
    while step < config.steps:
        batch = next(batches)
        for group in optimizer.param_groups:
            group["lr"] = config.lr * schedule(step)
        if isinstance(batch, LatentBatch):  # latents given (a frozen encoder's cache), with context frames
            audio, z, skip = batch.audio, batch.latents, batch.context * codec.hop_length
        else:
            audio, skip = batch, 0
            with torch.set_grad_enabled(not config.freeze_encoder):
                z = codec.raw_encode(audio)
        z_noisy = z + config.latent_noise * z.detach().std() * torch.randn_like(z)
        output = codec.raw_decode(z_noisy)[..., skip: skip + audio.shape[-1]]
        losses = loss_fn(output, audio)
        loss = losses["loss"] + (0.0 if config.freeze_encoder else config.latent_penalty * z.pow(2).mean())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        bar.update()
        if step % config.log_every == 0:
            row = {"step": step, **{k: round(float(v.detach()), 5) for k, v in losses.items()},
                   "lr": optimizer.param_groups[0]["lr"], "minutes": round((time.monotonic() - started) / 60, 2)}
            log_file.write(json.dumps(row) + "\n")
            log_file.flush()
            bar.set_postfix(loss=f"{row['loss']:.3f}", mel=f"{row['mel']:.3f}")
        out_of_time = config.max_minutes is not None and (time.monotonic() - started) / 60 >= config.max_minutes
        if validation and (step % config.validate_every == 0 or step == config.steps or out_of_time):
            metrics = evaluate_codec(codec, validation)
            codec.train()
            log_file.write(json.dumps({"step": step, "validation": metrics}) + "\n")
            log_file.flush()
            if on_validate:
                on_validate(step, metrics)
        if step % config.save_every == 0 or step == config.steps or out_of_time:
            save_training_state(out / "last", codec, optimizer, step, {"metrics": metrics})
        if out_of_time:
            log.info("codec training stopped at its time budget (step %d)", step)
            break
    bar.close()
    log_file.close()
    codec.eval()
    return {"step": step, **metrics}


@torch.no_grad()
def fit_latent_statistics(codec: EncodecCodec, batches: list[torch.Tensor]) -> None:
    """Set the per-channel latent mean/std from `batches` (after training)."""
    codec.eval()
    z = torch.cat([codec.raw_encode(a).transpose(0, 1).reshape(codec.latent_dim, -1) for a in batches], dim=1)
    codec.latent_mean.copy_(z.mean(dim=1))
    codec.latent_std.copy_(z.std(dim=1).clamp(min=1e-4))
