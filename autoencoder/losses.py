"""Reconstruction losses and metrics: multi-resolution STFT, log-mel distance, SI-SDR."""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

STFT_SIZES = (512, 1024, 2048)
MEL_SIZES = (512, 1024, 2048)


@functools.lru_cache(maxsize=16)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    import librosa

    return torch.from_numpy(librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=0.0,
                                                fmax=sample_rate / 2).astype(np.float32))


def _magnitude(audio: torch.Tensor, n_fft: int) -> torch.Tensor:
    """|STFT| of `[B, channels, samples]` -> `[B * channels, bins, frames]`."""
    flat = audio.reshape(-1, audio.shape[-1])
    window = torch.hann_window(n_fft, device=audio.device)
    spec = torch.stft(flat, n_fft, hop_length=n_fft // 4, window=window, return_complex=True)
    return spec.abs().clamp(min=1e-7)


def multi_resolution_stft_loss(prediction: torch.Tensor, target: torch.Tensor,
                               sizes: tuple[int, ...] = STFT_SIZES) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1, averaged over STFT sizes (long ones resolve pitch)."""
    total = prediction.new_zeros(())
    for n_fft in sizes:
        p, t = _magnitude(prediction, n_fft), _magnitude(target, n_fft)
        convergence = torch.linalg.norm(t - p) / torch.linalg.norm(t).clamp(min=1e-7)
        total = total + convergence + (p.log() - t.log()).abs().mean()
    return total / len(sizes)


def mel_distance(prediction: torch.Tensor, target: torch.Tensor, sample_rate: int,
                 n_mels: int = 80) -> torch.Tensor:
    """Multi-resolution log-mel L1 distance (log10 of magnitudes; lower is better)."""
    total = prediction.new_zeros(())
    for n_fft in MEL_SIZES:
        basis = _mel_basis(sample_rate, n_fft, n_mels).to(prediction.device)
        p = (basis @ _magnitude(prediction, n_fft)).clamp(min=1e-5).log10()
        t = (basis @ _magnitude(target, n_fft)).clamp(min=1e-5).log10()
        total = total + (p - t).abs().mean()
    return total / len(MEL_SIZES)


def si_sdr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Scale-invariant SDR in dB per item of `[B, channels, samples]` (higher is better)."""
    p = prediction.reshape(prediction.shape[0], -1)
    t = target.reshape(target.shape[0], -1)
    p, t = p - p.mean(-1, keepdim=True), t - t.mean(-1, keepdim=True)
    scale = (p * t).sum(-1, keepdim=True) / (t.pow(2).sum(-1, keepdim=True) + 1e-8)
    projection = scale * t
    noise = p - projection
    return 10 * torch.log10(projection.pow(2).sum(-1) / (noise.pow(2).sum(-1) + 1e-8) + 1e-8)


class ReconstructionLoss(nn.Module):
    """Waveform L1 + multi-resolution STFT + mel, with fixed weights."""

    def __init__(self, sample_rate: int, *, waveform: float = 1.0, stft: float = 1.0, mel: float = 1.0,
                 stft_sizes: tuple[int, ...] = STFT_SIZES):
        super().__init__()
        self.sample_rate, self.weights, self.stft_sizes = sample_rate, (waveform, stft, mel), tuple(stft_sizes)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        waveform = (prediction - target).abs().mean()
        stft = multi_resolution_stft_loss(prediction, target, self.stft_sizes)
        mel = mel_distance(prediction, target, self.sample_rate)
        w, s, m = self.weights
        return {"loss": w * waveform + s * stft + m * mel, "waveform": waveform, "stft": stft, "mel": mel}
