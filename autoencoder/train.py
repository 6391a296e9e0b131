"""Codec training maths: reconstruction losses on audio windows, one step at a time.

The caller supplies batches (`[B, channels, samples]` float tensors or `LatentBatch`es)
and runs the loop (`composer.train.loop`); this module knows nothing of files or songs.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass

import torch
from torch import nn

from autoencoder.codec import LatentCodec
from autoencoder.discriminator import (
    DiscriminatorConfig,
    MultiScaleSTFTDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
)
from autoencoder.losses import (
    ReconstructionLoss,
    bass_onset_distance,
    mel_distance,
    onset_distance,
    pitch_distance,
    si_sdr,
)

log = logging.getLogger(__name__)


def module_device(module: nn.Module) -> torch.device:
    """Where a module's parameters are (the CPU for one without any)."""
    return next((p.device for p in module.parameters()), torch.device("cpu"))


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
    freeze_decoder: bool = False  # train the encoder only: what the decoder makes of any latents stays as it is
    anchor_weight: float = 0.0  # keeps the encoder's latents near the initial encoder's (in latent std units)
    stft_sizes: tuple[int, ...] = (512, 1024, 2048)  # add 4096 to resolve pitch in the low mids
    waveform_weight: float = 1.0  # 0 for a decoder whose absolute phase is free (the spectral one)
    pitch_weight: float = 0.0  # semitone-band loss (`pitch_distance`): keeps roots and thirds, so keys and chords
    onset_weight: float = 0.0  # spectral-flux loss (`onset_distance`): notes start when they should
    bass_onset_weight: float = 0.0  # the same in semitone bands E1..D#4 (`bass_onset_distance`): the bass on time
    # A multi-scale STFT discriminator (`autoencoder.discriminator`) judges the decoder's output: 0 is off.
    adversarial_weight: float = 0.0  # the decoder's hinge loss against it
    feature_weight: float = 1.0  # its feature-matching loss (with adversarial_weight > 0)
    adversarial_start: int = 200  # steps in which the discriminator learns alone, before it teaches the decoder
    adversarial_window: float = 0.5  # seconds of each window it judges (one aligned crop of output and target)
    discriminator_filters: int = 16
    discriminator_lr: float = 1e-4  # constant after a 200-step warm-up: it keeps up with a decoder that changes
    noise_weight: float = 0.0  # L1 of a noise path's band shares to the target's band noisiness (`band_noisiness`)


@torch.no_grad()
def evaluate_codec(codec: LatentCodec, batches: list[torch.Tensor]) -> dict[str, float]:
    """Mean mel, semitone-band pitch, onset and bass-onset distances and SI-SDR of the round trip over `batches`."""
    codec.eval()
    device = module_device(codec)
    mels, pitches, onsets, basses, sdrs = [], [], [], [], []
    for audio in batches:
        audio = audio.to(device)
        output = codec.raw_decode(codec.raw_encode(audio))[..., : audio.shape[-1]]
        mels.append(float(mel_distance(output, audio, codec.sample_rate)))
        pitches.append(float(pitch_distance(output, audio, codec.sample_rate)))
        onsets.append(float(onset_distance(output, audio, codec.sample_rate)))
        basses.append(float(bass_onset_distance(output, audio, codec.sample_rate)))
        sdrs.append(float(si_sdr(output, audio).mean()))
    count = max(1, len(mels))
    return {"mel_distance": sum(mels) / count, "pitch_distance": sum(pitches) / count,
            "onset_distance": sum(onsets) / count, "bass_onset_distance": sum(basses) / count,
            "si_sdr": sum(sdrs) / count}


class CodecTrainer:
    """One optimisation step of the codec at a time (`step`), and its validation (`validate`).

    The loop around it (batches, logging, checkpoints, resuming, time budget) is the
    caller's: `composer.train.loop.run_training`.
    """

    def __init__(self, codec: LatentCodec, config: CodecTrainConfig, device: torch.device | str | None = None):
        torch.manual_seed(config.seed)
        self.device = torch.device(device or "cpu")
        self.codec, self.config = codec.to(self.device), config
        self.is_main = True
        self.loss_fn = ReconstructionLoss(codec.sample_rate, waveform=config.waveform_weight,
                                          pitch=config.pitch_weight, onset=config.onset_weight,
                                          bass_onset=config.bass_onset_weight, stft_sizes=config.stft_sizes)
        if config.freeze_encoder and config.freeze_decoder:
            raise ValueError("freeze_encoder and freeze_decoder together leave nothing to train")
        codec.encoder_module.requires_grad_(not config.freeze_encoder)
        codec.decoder_module.requires_grad_(not config.freeze_decoder)
        self.params = [] if config.freeze_decoder else list(codec.decoder_module.parameters())
        if not config.freeze_encoder:
            self.params += list(codec.encoder_module.parameters())
        # The encoder as it started, frozen: its latents are the anchor that keeps a fine-tuned
        # encoder in the latent space that diffusion models were trained on.
        self.anchor = None
        if config.anchor_weight > 0 and not config.freeze_encoder:
            self.anchor = copy.deepcopy(codec.encoder_module).requires_grad_(False).eval()
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, betas=(0.8, 0.99), weight_decay=1e-4)
        self.discriminator, self.discriminator_optimizer = None, None
        if config.adversarial_weight > 0:
            if config.freeze_decoder:
                raise ValueError("an adversarial loss trains the decoder: it cannot be combined with freeze_decoder")
            self.discriminator = MultiScaleSTFTDiscriminator(
                DiscriminatorConfig(filters=config.discriminator_filters)).to(self.device)
            self.discriminator_optimizer = torch.optim.AdamW(self.discriminator.parameters(), lr=config.discriminator_lr,
                                                             betas=(0.5, 0.9), weight_decay=1e-4)

    @property
    def model(self) -> nn.Module:
        return self.codec

    def extra_modules(self) -> dict[str, nn.Module]:
        return {} if self.discriminator is None else {"discriminator": self.discriminator}

    def extra_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {} if self.discriminator is None else {"discriminator": self.discriminator_optimizer}

    def generators(self) -> dict[str, torch.Generator]:
        return {}  # the noise comes from torch's global RNG, which the loop saves

    def learning_rate(self, step: int) -> float:
        warmup = min(1.0, (step + 1) / 200)
        return self.config.lr * warmup * 0.5 * (1 + math.cos(math.pi * min(1.0, step / self.config.steps)))

    def step(self, batch: torch.Tensor | LatentBatch, step: int) -> dict[str, float]:
        """Train on `batch` (audio `[B, channels, samples]` or a `LatentBatch`); the losses."""
        codec, config = self.codec, self.config
        codec.train()
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(step)
        if isinstance(batch, LatentBatch):  # latents given (a frozen encoder's cache), with context frames
            audio, z, skip = batch.audio.to(self.device), batch.latents.to(self.device), batch.context * codec.hop_length
        else:
            audio, skip = batch.to(self.device), 0
            with torch.set_grad_enabled(not config.freeze_encoder):
                z = codec.raw_encode(audio)
        # drawn on the CPU (torch's global RNG, which a resumed run restores) whatever the device
        noise = torch.randn(z.shape, dtype=z.dtype).to(z.device)
        z_noisy = z + config.latent_noise * z.detach().std() * noise
        decoder = codec.spectral
        teach_noise = (config.noise_weight > 0 and not config.freeze_decoder and decoder is not None
                       and decoder.noise_head is not None)
        if teach_noise:  # one pass of the decoder gives the audio and the noise path's shares
            collected: list[torch.Tensor] = []
            decoded = decoder.decode_chunked(z_noisy, chunk=z_noisy.shape[-1], shares_out=collected)
            output = decoded[..., : z_noisy.shape[-1] * codec.hop_length][..., skip: skip + audio.shape[-1]]
        else:
            output = codec.raw_decode(z_noisy)[..., skip: skip + audio.shape[-1]]
        losses = self.loss_fn(output, audio)
        loss = losses["loss"] + (0.0 if config.freeze_encoder else config.latent_penalty * z.pow(2).mean())
        if self.anchor is not None:
            with torch.no_grad():
                reference = self.anchor(codec._pad_to_hop(audio))
            losses["anchor"] = ((z - reference) / codec.latent_std[None, :, None]).pow(2).mean()
            loss = loss + config.anchor_weight * losses["anchor"]
        if teach_noise:
            from autoencoder.spectral import band_noisiness

            first = skip // codec.hop_length
            shares = collected[0][..., first:]
            target = band_noisiness(audio, decoder)
            frames = min(shares.shape[-1], target.shape[-1])
            losses["noise"] = (shares[..., :frames] - target[..., :frames]).abs().mean()
            loss = loss + config.noise_weight * losses["noise"]
        if self.discriminator is not None:
            loss = loss + self._adversarial_step(output, audio, step, losses)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        return {**{k: round(float(v.detach()), 5) for k, v in losses.items()},
                "lr": self.optimizer.param_groups[0]["lr"]}

    def _adversarial_step(self, output: torch.Tensor, audio: torch.Tensor, step: int,
                          losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """Train the discriminator on one aligned crop of `output` and `audio` `[B, 1, samples]`;
        the decoder's adversarial + feature-matching loss on the same crop (0 before `adversarial_start`)."""
        config, discriminator = self.config, self.discriminator
        length = min(audio.shape[-1], max(1, int(round(config.adversarial_window * self.codec.sample_rate))))
        # the crop's start from torch's global RNG (drawn on the CPU), which a resumed run restores
        offset = int(torch.randint(0, audio.shape[-1] - length + 1, ()))
        real, fake = audio[..., offset: offset + length], output[..., offset: offset + length]
        for group in self.discriminator_optimizer.param_groups:
            group["lr"] = config.discriminator_lr * min(1.0, (step + 1) / 200)
        discriminator.requires_grad_(True)
        losses["discriminator"] = discriminator_loss(discriminator(real), discriminator(fake.detach()))
        self.discriminator_optimizer.zero_grad(set_to_none=True)
        losses["discriminator"].backward()
        torch.nn.utils.clip_grad_norm_(discriminator.parameters(), 1.0)
        self.discriminator_optimizer.step()
        if step < config.adversarial_start:
            return output.new_zeros(())
        discriminator.requires_grad_(False)  # the decoder's loss flows through it, not into it
        with torch.no_grad():
            judged_real = discriminator(real)
        judged_fake = discriminator(fake)
        losses["adversarial"] = generator_loss(judged_fake)
        losses["feature"] = feature_matching_loss(judged_real, judged_fake)
        return config.adversarial_weight * losses["adversarial"] + config.feature_weight * losses["feature"]

    def validate(self, batches: list[torch.Tensor], step: int) -> dict[str, float]:
        metrics = evaluate_codec(self.codec, batches)
        if self.anchor is not None:
            metrics["anchor_drift"] = anchor_drift(self.codec, self.anchor, batches)
        self.codec.train()
        return metrics

    def finish(self) -> LatentCodec:
        return self.codec.cpu().eval()


@torch.no_grad()
def anchor_drift(codec: LatentCodec, anchor: nn.Module, batches: list[torch.Tensor]) -> float:
    """RMS distance of the codec's latents from `anchor`'s (another encoder), in latent std units."""
    codec.eval()
    total, count = 0.0, 0
    for audio in batches:
        padded = codec._pad_to_hop(audio.to(module_device(codec)))
        difference = (codec.encoder_module(padded) - anchor(padded)) / codec.latent_std[None, :, None]
        total, count = total + float(difference.pow(2).sum()), count + difference.numel()
    return math.sqrt(total / max(1, count))


@torch.no_grad()
def fit_latent_statistics(codec: LatentCodec, batches: list[torch.Tensor]) -> None:
    """Set the per-channel latent mean/std from `batches` (after training)."""
    codec.eval()
    device = module_device(codec)
    z = torch.cat([codec.raw_encode(a.to(device)).transpose(0, 1).reshape(codec.latent_dim, -1) for a in batches],
                  dim=1)
    codec.latent_mean.copy_(z.mean(dim=1))
    codec.latent_std.copy_(z.std(dim=1).clamp(min=1e-4))
