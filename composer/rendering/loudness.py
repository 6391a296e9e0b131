"""Loudness normalisation (pyloudnorm, ITU-R BS.1770) with a peak ceiling, never clipping."""

from __future__ import annotations

import numpy as np
import pyloudnorm

TARGET_LUFS = -16.0
PEAK_CEILING = 0.97  # linear; about -0.26 dBFS


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """LUFS of `[channels, samples]`; -inf for silence or audio under 0.4 s."""
    if audio.shape[-1] < int(0.4 * sample_rate) or not np.any(audio):
        return float("-inf")
    # float32 in: pyloudnorm filters each channel in float64 but keeps its working copy in the
    # input's dtype, so a 5-minute stereo song peaks at ~170 MB here instead of ~290 MB
    # (the loudness differs by under 0.001 dB).
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(np.asarray(audio, dtype=np.float32).T))


def normalise_loudness(audio: np.ndarray, sample_rate: int, *, target_lufs: float = TARGET_LUFS,
                       peak: float = PEAK_CEILING) -> np.ndarray:
    """Scale to `target_lufs`, then down further if the peak would pass `peak`."""
    gain = loudness_gain(audio, sample_rate, target_lufs=target_lufs, peak=peak)
    return (audio * gain).astype(np.float32)


def loudness_gain(audio: np.ndarray, sample_rate: int, *, target_lufs: float = TARGET_LUFS,
                  peak: float = PEAK_CEILING) -> float:
    """The linear gain `normalise_loudness` applies (1.0 for silence)."""
    loudness = integrated_loudness(audio, sample_rate)
    gain = 1.0 if not np.isfinite(loudness) else 10 ** ((target_lufs - loudness) / 20)
    top = float(np.abs(audio).max()) if audio.size else 0.0
    if top * gain > peak:
        gain = peak / top
    return float(gain)
