"""`composer train codec`: datasets on disk -> a codec checkpoint with its model card."""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from composer.errors import InputError
from composer.train.cards import machine_summary, write_model_card
from composer.train.data import (
    accepted_rows,
    cached_latent_windows,
    consent_summary,
    encode_dataset,
    fixed_windows,
    licence_summary,
    load_audio_rows,
    random_audio_windows,
    row_folders,
    split_rows,
)
from composer.train.loop import LoopSchedule, check_run_folder, run_recipe, run_training


def schedule_of(config) -> LoopSchedule:
    """The loop schedule a trainer config asks for."""
    return LoopSchedule(steps=config.steps, log_every=config.log_every, validate_every=config.validate_every,
                        save_every=config.save_every, max_minutes=config.max_minutes)


def train_codec(codec, batches, *, out_dir: str | Path, config, validation: list | None = None,
                resume: bool = False, progress: bool = True, on_validate=None, device=None,
                recipe: dict | None = None, folder: str | Path | None = None) -> dict:
    """Train `codec` in place (`autoencoder.train.CodecTrainer` in the shared loop, on `device`,
    default the CPU; the codec ends on the CPU); the final metrics. Writes OUT/last and OUT/log.jsonl."""
    from autoencoder.train import CodecTrainer

    _, metrics = run_training(CodecTrainer(codec, config, device), batches, out_dir=out_dir, schedule=schedule_of(config),
                              validation=validation, resume=resume, progress=progress, desc="codec",
                              on_validate=on_validate, recipe=recipe, folder=folder)
    return metrics


def has_noise_path(init: str | Path) -> bool:
    """Whether the codec checkpoint at `init` has a spectral decoder with a noise path."""
    import json

    config = Path(init) / "config.json"
    return config.is_file() and bool(json.loads(config.read_text()).get("decoder", {}).get("noise_bands"))


def train_codec_command(data: list[str], out_dir: str, *, steps: int, num_filters: int, latent_dim: int,
                        batch_size: int, window_seconds: float, lr: float, seed: int, resume: bool,
                        max_minutes: float | None, threads: int | None, command: str,
                        init: str | None = None, freeze_encoder: bool = False, latent_noise: float = 0.1,
                        stft_sizes: tuple[int, ...] = (512, 1024, 2048), decoder: str | None = None,
                        decoder_dim: int = 256, decoder_layers: int = 8, encoder: str | None = None,
                        encoder_dim: int = 256, encoder_layers: int = 4, pitch_weight: float = 0.0,
                        decoder_fft: int | None = None, balance: bool = False, onset_weight: float = 0.0,
                        freeze_decoder: bool = False, anchor_weight: float = 0.0, device: str = "auto",
                        bass_onset_weight: float = 0.0, adversarial_weight: float = 0.0,
                        feature_weight: float = 1.0, adversarial_start: int = 200,
                        discriminator_filters: int = 16, discriminator_lr: float = 1e-4, noise_bands: int = 0,
                        noise_weight: float = 1.0) -> dict:
    """Train a codec on the datasets and write a half-precision checkpoint to `out_dir`.

    init: start from this codec checkpoint; freeze_encoder: train only its decoder, so
    the latent space (and every diffusion model trained on it) stays valid; its latents
    are then encoded once per song (cached) and the decoder learns from whole-song latents.
    decoder: "spectral" puts a fresh `SpectralDecoder` (ConvNeXt + ISTFT) in place of
    EnCodec's decoder; "encodec" (or None) keeps the one the codec has. encoder: "spectral"
    puts a fresh `SpectralEncoder` (log-magnitude STFT + ConvNeXt) in place of EnCodec's.
    balance: every --data folder gets the same share of the training windows (by default
    a folder's share is its hours). freeze_decoder: train only the encoder, so the decoder
    turns any latents (every render's) into the same audio as before; anchor_weight keeps
    the encoder's latents near the --init encoder's, so diffusion models trained on those
    stay at home (the drift is validated as `anchor_drift`, in latent std units).
    device: where it trains (`composer.train.device.training_device`: auto, cpu, cuda, cuda:N).
    adversarial_weight: the decoder also learns against a multi-scale STFT discriminator
    (`autoencoder.discriminator`), with feature matching at `feature_weight`, after
    `adversarial_start` steps in which the discriminator learns alone; its weights and
    optimiser are in the resumable state, not in the codec.
    noise_bands: add a noise path of that many bands to the spectral decoder (nearly shut at the
    start); noise_weight: the loss that teaches it where the target is noise (`band_noisiness`).
    """
    from autoencoder.codec import CodecConfig, LatentCodec
    from autoencoder.train import CodecTrainConfig, fit_latent_statistics
    from composer.train.device import training_device

    where = training_device(device)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    if freeze_encoder and not init:
        raise InputError("--freeze-encoder needs --init CODEC_DIR (the codec whose latent space to keep)")
    if freeze_decoder and not init:
        raise InputError("--freeze-decoder needs --init CODEC_DIR (the codec whose decoder to keep)")
    if freeze_encoder and freeze_decoder:
        raise InputError("--freeze-encoder with --freeze-decoder leaves nothing to train")
    for option, weight in (("--anchor-weight", anchor_weight), ("--pitch-weight", pitch_weight),
                           ("--onset-weight", onset_weight), ("--bass-onset-weight", bass_onset_weight),
                           ("--adversarial-weight", adversarial_weight), ("--feature-weight", feature_weight),
                           ("--noise-weight", noise_weight)):
        if not math.isfinite(weight) or weight < 0:
            raise InputError(f"{option} {weight:g}: must be a finite number >= 0")
    if adversarial_weight and freeze_decoder:
        raise InputError("--adversarial-weight trains the decoder: it cannot be combined with --freeze-decoder")
    if not math.isfinite(discriminator_lr) or discriminator_lr <= 0:
        raise InputError(f"--discriminator-lr {discriminator_lr:g}: must be a finite number > 0")
    if noise_bands < 0 or noise_bands == 1:
        raise InputError(f"--noise-bands {noise_bands}: must be 0 (none added) or at least 2")
    if noise_bands and freeze_decoder:
        raise InputError("--noise-bands adds to the decoder: it cannot be combined with --freeze-decoder")
    if adversarial_start < 0 or discriminator_filters < 1:
        raise InputError(f"--adversarial-start {adversarial_start} / --discriminator-filters {discriminator_filters}: "
                         "must be >= 0 / >= 1")
    if anchor_weight and (not init or freeze_encoder):
        raise InputError("--anchor-weight needs --init CODEC_DIR (the encoder to stay near) and a trained encoder")
    recipe = run_recipe(data=[Path(d) for d in data], init=init and Path(init), steps=steps, num_filters=num_filters,
                        latent_dim=latent_dim, batch_size=batch_size, window_seconds=window_seconds, lr=lr, seed=seed,
                        freeze_encoder=freeze_encoder, latent_noise=latent_noise, stft_sizes=stft_sizes,
                        decoder=decoder or (None if init else "encodec"), decoder_dim=decoder_dim,
                        decoder_layers=decoder_layers, encoder=encoder or (None if init else "encodec"),
                        encoder_dim=encoder_dim, encoder_layers=encoder_layers, pitch_weight=pitch_weight,
                        decoder_fft=decoder_fft, balance=balance, onset_weight=onset_weight,
                        freeze_decoder=freeze_decoder, anchor_weight=anchor_weight, bass_onset_weight=bass_onset_weight,
                        **({"adversarial_weight": adversarial_weight, "feature_weight": feature_weight,
                            "adversarial_start": adversarial_start, "discriminator_filters": discriminator_filters,
                            "discriminator_lr": discriminator_lr}
                           if adversarial_weight else {}),
                        **({"noise_bands": noise_bands} if noise_bands else {}))
    if not freeze_decoder and init and has_noise_path(init) or noise_bands:
        recipe["noise_weight"] = noise_weight
    check_run_folder(Path(out_dir) / "training", resume=resume, recipe=recipe, folder=out_dir)  # before the data work
    rows = accepted_rows(data)
    train_rows, val_rows = split_rows(rows)
    if init:
        codec = LatentCodec.from_pretrained(init)
        config = codec.config
        previous = dict(config.training)
    else:
        config = CodecConfig.small(num_filters=num_filters, latent_dim=latent_dim)
        codec = LatentCodec(config)
        previous = {}
    if encoder == "encodec" and codec.spectral_encoder is not None:
        raise InputError(f"--init {init}: has a spectral encoder; EnCodec's encoder cannot be put back")
    if encoder == "spectral" and codec.spectral_encoder is None:
        if freeze_encoder:
            raise InputError("--encoder spectral makes a new latent space: it cannot be combined with --freeze-encoder")
        codec.set_spectral_encoder({"dim": encoder_dim, "layers": encoder_layers})
    if decoder not in (None, "encodec", "spectral"):
        raise InputError(f"--decoder {decoder}: unknown (known: encodec, spectral)")
    if decoder == "spectral" and (codec.spectral is None or not init):
        codec.set_spectral_decoder({"dim": decoder_dim, "layers": decoder_layers,
                                    **({"n_fft": decoder_fft} if decoder_fft else {})})
    elif decoder == "encodec" and codec.spectral is not None:
        raise InputError(f"--init {init}: has a spectral decoder; EnCodec's decoder cannot be put back")
    elif decoder_fft and codec.spectral is None:
        raise InputError("--decoder-fft sets the frame of a spectral decoder: add --decoder spectral")
    elif decoder_fft and codec.spectral.n_fft != decoder_fft:
        hop = codec.hop_length
        if decoder_fft < hop or (decoder_fft - hop) % 2:
            raise InputError(f"--decoder-fft {decoder_fft}: must be >= the hop ({hop}) with an even difference")
        codec.resize_spectral_decoder(decoder_fft)
    if noise_bands:
        if codec.spectral is None:
            raise InputError("--noise-bands: the noise path belongs to a spectral decoder (add --decoder spectral)")
        if codec.spectral.noise_bands and codec.spectral.noise_bands != noise_bands:
            raise InputError(f"--init {init}: its decoder has a noise path of {codec.spectral.noise_bands} bands already")
        if not codec.spectral.noise_bands:
            codec.add_noise_path(noise_bands)
    frames = int(round(window_seconds * codec.frame_rate))
    samples = frames * codec.hop_length
    train_clips = load_audio_rows(train_rows, codec.sample_rate)
    val_clips = load_audio_rows(val_rows, codec.sample_rate)
    folders = row_folders(data, rows)
    groups = [str(folders[path]) for path, _ in train_rows] if balance else None
    if freeze_decoder and (decoder or decoder_fft):
        raise InputError("--freeze-decoder keeps the --init decoder: it cannot be combined with --decoder/--decoder-fft")
    if freeze_encoder:
        items = encode_dataset(train_rows, folders, codec, Path(out_dir) / "training" / "cache")
        batches = cached_latent_windows([it["latents"] for it in items], train_clips, codec, frames=frames,
                                        batch_size=batch_size, generator=np.random.default_rng(seed), groups=groups)
    else:
        batches = random_audio_windows(train_clips, samples=samples, batch_size=batch_size,
                                       generator=np.random.default_rng(seed), groups=groups)
    validation = fixed_windows(val_clips, samples=samples * 2, count=32, seed=seed + 1)
    train_config = CodecTrainConfig(steps=steps, lr=lr, batch_size=batch_size, seed=seed, max_minutes=max_minutes,
                                    freeze_encoder=freeze_encoder, freeze_decoder=freeze_decoder,
                                    anchor_weight=anchor_weight, latent_noise=latent_noise,
                                    stft_sizes=tuple(stft_sizes), pitch_weight=pitch_weight,
                                    onset_weight=onset_weight, bass_onset_weight=bass_onset_weight,
                                    adversarial_weight=adversarial_weight, feature_weight=feature_weight,
                                    adversarial_start=adversarial_start, discriminator_filters=discriminator_filters,
                                    discriminator_lr=discriminator_lr,
                                    noise_weight=0.0 if freeze_decoder else noise_weight, waveform_weight=0.0 if codec.spectral is not None else 1.0)
    started = time.monotonic()
    metrics = train_codec(codec, batches, out_dir=Path(out_dir) / "training", config=train_config,
                          validation=validation, resume=resume, device=where, recipe=recipe, folder=out_dir)
    if not (freeze_encoder or freeze_decoder or anchor_weight):
        # A frozen encoder keeps its statistics (the latents must not move); so does a frozen
        # decoder (it reads raw latents: renders would change) and an anchored encoder.
        fit_latent_statistics(codec, fixed_windows(train_clips, samples=samples * 4, count=64, seed=seed + 2))
    config.training = {
        **({"previous": previous} if previous else {}),
        "command": command, "seed": seed, "steps": metrics["step"],
        "minutes": round((time.monotonic() - started) / 60, 1),
        "data": data, "balanced_sources": balance, "files": len(train_rows), "validation_files": len(val_rows),
        "licences": licence_summary(train_rows + val_rows),
        "consents": consent_summary(train_rows + val_rows),
        "validation": {k: v for k, v in metrics.items() if k != "step"},
        "machine": machine_summary(where), "device": str(where), "latent_identity": codec.latent_identity(),
    }
    codec.save_pretrained(out_dir, dtype=torch.float16)
    write_model_card(Path(out_dir), "codec", config.training, extra=asdict(config),
                     log_path=Path(out_dir) / "training" / "log.jsonl")
    return metrics
