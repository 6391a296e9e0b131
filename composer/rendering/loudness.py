"""Loudness normalisation (pyloudnorm, ITU-R BS.1770) with a peak ceiling, never clipping."""

from __future__ import annotations

import numpy as np
import pyloudnorm

TARGET_LUFS = -16.0
PEAK_CEILING = 0.97  # linear; about -0.26 dBFS


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """LUFS of `[channels, samples]` (or `[samples]`); -inf for silence or audio under 0.4 s.

    pyloudnorm's measure (ITU-R BS.1770-4: K-weighting, 400-ms blocks every 100 ms, absolute
    and relative gates), computed a chunk at a time: pyloudnorm filters a whole copy of the
    song in float64 (about 270 MB for a 10-minute song); here the filters carry their state
    from chunk to chunk and each block's mean square is taken as pyloudnorm takes it, from the
    same float32 samples, so the result is pyloudnorm's."""
    audio = np.atleast_2d(audio) if isinstance(audio, np.ndarray) else audio  # or a voice.mix.Summed
    if audio.shape[-1] < int(0.4 * sample_rate) or not audio.any():
        return float("-inf")
    return _streamed_loudness(audio, sample_rate)


LOUDNESS_CHUNK = 1 << 20  # samples of a channel filtered at a time


def _streamed_loudness(audio: np.ndarray, rate: int, chunk: int | None = None) -> float:
    from scipy.signal import lfilter

    meter = pyloudnorm.Meter(rate)
    stages = list(meter._filters.values())  # K-weighting: the high shelf, then the high pass
    chunk = chunk or LOUDNESS_CHUNK
    channels, samples = audio.shape
    block, step = meter.block_size, 1.0 - meter.overlap
    count = int(np.round((samples / rate - block) / (block * step))) + 1
    bounds = [(int(block * (j * step) * rate), int(block * (j * step + 1) * rate)) for j in range(count)]
    z = np.zeros((channels, count))
    for channel in range(channels):
        states = [np.zeros(max(len(f.a), len(f.b)) - 1) for f in stages]
        kept, kept_from, j = np.zeros(0, dtype=np.float32), 0, 0
        for start in range(0, samples, chunk):
            x = audio[channel, start: start + chunk].astype(np.float32)  # pyloudnorm's working copy is float32
            for index, f in enumerate(stages):
                y, states[index] = lfilter(f.b, f.a, x, zi=states[index])
                x = (f.passband_gain * y).astype(np.float32)
            kept = np.concatenate([kept, x])
            end, last = start + len(x), start + chunk >= samples
            while j < count and (bounds[j][1] <= end or last):
                lo, hi = bounds[j]
                z[channel, j] = (1.0 / (block * rate)) * np.sum(np.square(kept[lo - kept_from: hi - kept_from]))
                j += 1
            if j < count:
                kept, kept_from = kept[bounds[j][0] - kept_from:], bounds[j][0]
    weights = [1.0, 1.0, 1.0, 1.41, 1.41]
    with np.errstate(divide="ignore", invalid="ignore"):
        levels = [-0.691 + 10.0 * np.log10(np.sum([weights[i] * z[i, j] for i in range(channels)]))
                  for j in range(count)]
        gated = [j for j, level in enumerate(levels) if level >= -70.0]
        average = [np.mean([z[i, j] for j in gated]) for i in range(channels)]
        relative = -0.691 + 10.0 * np.log10(np.sum([weights[i] * average[i] for i in range(channels)])) - 10.0
        gated = [j for j, level in enumerate(levels) if level > relative and level > -70.0]
        average = np.nan_to_num(np.array([np.mean([z[i, j] for j in gated]) for i in range(channels)]))
        return float(-0.691 + 10.0 * np.log10(np.sum([weights[i] * average[i] for i in range(channels)])))


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
    top = max(float(audio.max()), -float(audio.min())) if audio.size else 0.0  # no |audio| copy
    if top * gain > peak:
        gain = peak / top
    return float(gain)
