"""Reconstruction losses and metrics: multi-resolution STFT, log-mel distance, semitone-band
(pitch) distance, onset (spectral flux) distance, SI-SDR."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import nn

STFT_SIZES = (512, 1024, 2048)
MEL_SIZES = (512, 1024, 2048)
PITCH_WINDOW = 0.34  # seconds: 8192 points at 24 kHz, 2.9 Hz bins, two or more bins per semitone from C2 up
PITCH_LOWEST = 65.406  # C2, in Hz
PITCH_BANDS = 60  # C2 .. B6: the bass, the chords and the melody
ONSET_FFT = 1024  # 43 ms at 24 kHz, hop 128 (5 ms): when each note starts, to within a few ms
ONSET_MELS = 64
ONSET_SILENCE = 1e-10  # band power floor of the onset loss (-100 dB)
BASS_FFT = 4096  # 171 ms at 24 kHz (5.9 Hz bins), hop 256 (11 ms): bass semitones apart and their starts in time
BASS_LOWEST = 41.203  # E1, the lowest string of a bass guitar
BASS_BANDS = 36  # E1 .. D#4


@functools.lru_cache(maxsize=16)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    return _slaney_mel(sample_rate, n_fft, n_mels, 0.0, sample_rate / 2)


def _slaney_mel(sample_rate: int, n_fft: int, n_mels: int, low: float, high: float) -> torch.Tensor:
    """`[n_mels, n_fft // 2 + 1]` Slaney-style mel filters (librosa's default, to within a float32
    rounding), from transformers, which the codec needs anyway: training then runs where PyTorch
    and transformers are all there is (a bare GPU machine) without librosa's audio stack."""
    from transformers.audio_utils import mel_filter_bank

    return torch.from_numpy(mel_filter_bank(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels,
                                            min_frequency=low, max_frequency=high, sampling_rate=sample_rate,
                                            norm="slaney", mel_scale="slaney").T.astype(np.float32))


@functools.lru_cache(maxsize=8)
def _pitch_basis(sample_rate: int, n_fft: int, lowest: float = PITCH_LOWEST, bands: int = PITCH_BANDS) -> torch.Tensor:
    """`[bands, bins]` triangular filters one semitone apart on a log-frequency axis, each
    reaching the centres of its neighbours and summing to 1 over the STFT bins."""
    frequencies = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    semitones = 12.0 * np.log2(np.maximum(frequencies, 1e-3) / lowest)  # [bins]
    basis = np.maximum(0.0, 1.0 - np.abs(semitones[None, :] - np.arange(bands)[:, None]))
    basis /= np.maximum(basis.sum(axis=1, keepdims=True), 1e-9)
    return torch.from_numpy(basis.astype(np.float32))


def _magnitude(audio: torch.Tensor, n_fft: int, hop_length: int | None = None) -> torch.Tensor:
    """|STFT| of `[B, channels, samples]` -> `[B * channels, bins, frames]`."""
    flat = audio.reshape(-1, audio.shape[-1])
    window = torch.hann_window(n_fft, device=audio.device)
    spec = torch.stft(flat, n_fft, hop_length=hop_length or n_fft // 4, window=window, return_complex=True)
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


def pitch_distance(prediction: torch.Tensor, target: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Log energy L1 (log10) in semitone bands C2..B6 of a long (0.34 s, 8192 points at 24 kHz) STFT.

    Key and chord analysis read pitch classes; a linear-frequency loss gives the bass and the
    low mids (the roots and thirds of the chords) a few percent of its bins and a mel loss
    merges their semitones, so a codec trained on those alone blurs them: measured on the
    bundled codec, guide renders lost their key to the dominant after the round trip
    (key score 0.73) while their own magnitudes, resynthesised, kept it (1.00). Audio shorter
    than the window is zero-padded (the STFT's own centring). Energies are floored 60 dB
    below each target clip's loudest band, so the loss weighs what can be heard.
    """
    n_fft = 2 ** round(math.log2(PITCH_WINDOW * sample_rate))
    basis = _pitch_basis(sample_rate, n_fft).to(prediction.device)
    short = max(0, n_fft - prediction.shape[-1])
    prediction, target = (nn.functional.pad(x, (0, short)) for x in (prediction, target))
    p = basis @ _magnitude(prediction, n_fft, n_fft // 8).pow(2)
    t = basis @ _magnitude(target, n_fft, n_fft // 8).pow(2)
    floor = t.detach().amax(dim=(1, 2), keepdim=True).clamp(min=1e-8) * 1e-6
    return (torch.maximum(p, floor).log10() - torch.maximum(t, floor).log10()).abs().mean()


@functools.lru_cache(maxsize=8)
def _onset_basis(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    return _slaney_mel(sample_rate, n_fft, n_mels, 30.0, min(8000.0, sample_rate / 2))


def onset_distance(prediction: torch.Tensor, target: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """L1 between the onset strengths (rectified spectral flux: how much each of 64 mel bands,
    30 Hz..8 kHz, rises from one 5-ms hop to the next, in log10) of two signals.

    The codec's long frames (2560 points) and its long-window losses keep a note's pitch but
    let its start smear: measured with a transcriber (`benchmarks/note_survival.py`), bass
    notes came back through the codec 70..300 ms late. Flux that rises at the wrong hop costs
    here. Levels are floored 60 dB below each target clip's loudest band, as in
    `pitch_distance` (and never below -100 dB), so the rises of noise are not matched. Per
    clip, relative to the clip's own flux: 0 when every rise is matched, about 2 when every
    rise is at the wrong hop; clips without onsets are left out. (The bundled codec was
    trained with an earlier form that divided by the whole batch's flux and had no absolute
    floor, so silent clips could dominate it; a review found that after the training.)
    """
    basis = _onset_basis(sample_rate, ONSET_FFT, ONSET_MELS).to(prediction.device)
    short = max(0, 2 * ONSET_FFT - prediction.shape[-1])  # at least a few frames, as pitch_distance pads
    prediction, target = (nn.functional.pad(x, (0, short)) for x in (prediction, target))
    p = basis @ _magnitude(prediction, ONSET_FFT, ONSET_FFT // 8).pow(2)
    t = basis @ _magnitude(target, ONSET_FFT, ONSET_FFT // 8).pow(2)
    # 60 dB below each clip's loudest band, and never below -100 dB of full scale: a silent
    # target's floor would otherwise fall to nothing and its codec noise count as onsets
    floor = t.detach().amax(dim=(1, 2), keepdim=True).mul(1e-6).clamp(min=ONSET_SILENCE)
    return _flux_distance(torch.maximum(p, floor).log10(), torch.maximum(t, floor).log10())


def _flux_distance(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Per-clip L1 between the rectified rises of two `[B, bands, frames]` log10 levels,
    relative to the target clip's own flux; clips without rises are left out."""
    flux_p = torch.relu(p[..., 1:] - p[..., :-1])
    flux_t = torch.relu(t[..., 1:] - t[..., :-1])
    scale = flux_t.mean(dim=(1, 2))
    sounding = scale > 1e-3
    if not bool(sounding.any()):
        return (flux_p - flux_t).abs().mean() * 0.0
    per_clip = (flux_p - flux_t).abs().mean(dim=(1, 2)) / scale.clamp(min=1e-3)
    return per_clip[sounding].mean()


def bass_onset_distance(prediction: torch.Tensor, target: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """`onset_distance` in semitone bands E1..D#4 of a long (171 ms at 24 kHz) STFT, hop 11 ms.

    The mel flux of `onset_distance` gives the bass a few wide bands, so a bass note that
    comes back late or soft costs it little: measured with a transcriber
    (`benchmarks/note_survival.py`), the bass is what the codec loses most (recall 0.52
    against 0.90 for the guide). Here every bass semitone has its own band, and a note
    counts where it starts. Levels are floored as in `onset_distance`.
    """
    n_fft = 2 ** round(math.log2(BASS_FFT * sample_rate / 24000))
    basis = _pitch_basis(sample_rate, n_fft, BASS_LOWEST, BASS_BANDS).to(prediction.device)
    short = max(0, 2 * n_fft - prediction.shape[-1])
    prediction, target = (nn.functional.pad(x, (0, short)) for x in (prediction, target))
    hop = max(1, n_fft // 16)
    p = basis @ _magnitude(prediction, n_fft, hop).pow(2)
    t = basis @ _magnitude(target, n_fft, hop).pow(2)
    floor = t.detach().amax(dim=(1, 2), keepdim=True).mul(1e-6).clamp(min=ONSET_SILENCE)
    return _flux_distance(torch.maximum(p, floor).log10(), torch.maximum(t, floor).log10())


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
    """Waveform L1 + multi-resolution STFT + mel (+ semitone-band pitch, + onsets, + bass onsets), with fixed weights."""

    def __init__(self, sample_rate: int, *, waveform: float = 1.0, stft: float = 1.0, mel: float = 1.0,
                 pitch: float = 0.0, onset: float = 0.0, bass_onset: float = 0.0,
                 stft_sizes: tuple[int, ...] = STFT_SIZES):
        super().__init__()
        self.sample_rate, self.stft_sizes = sample_rate, tuple(stft_sizes)
        self.weights = (waveform, stft, mel, pitch)
        self.onset, self.bass_onset = onset, bass_onset

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        waveform = (prediction - target).abs().mean()
        stft = multi_resolution_stft_loss(prediction, target, self.stft_sizes)
        mel = mel_distance(prediction, target, self.sample_rate)
        w, s, m, p = self.weights
        out = {"waveform": waveform, "stft": stft, "mel": mel}
        total = w * waveform + s * stft + m * mel
        if p:
            out["pitch"] = pitch_distance(prediction, target, self.sample_rate)
            total = total + p * out["pitch"]
        if self.onset:
            out["onset"] = onset_distance(prediction, target, self.sample_rate)
            total = total + self.onset * out["onset"]
        if self.bass_onset:
            out["bass_onset"] = bass_onset_distance(prediction, target, self.sample_rate)
            total = total + self.bass_onset * out["bass_onset"]
        return {"loss": total, **out}
