"""Seams: how much a window or section seam stands out from ordinary moments of the same song.

A seam's score is the peak of a log-mel flux curve near it, divided by the median over
`SEAM_BASELINE_POINTS` random cut points at the same beat phase; its rank says where it
falls among them (an ordinary moment ranks above 0.95 one time in 20).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import librosa
import numpy as np

from structure.analysis import mel_frames, mel_power

SEAM_BASELINE_POINTS = 50
SEAM_SEED = 0  # the random cut points are the same on every run
SEAM_SEARCH = 0.05  # seconds either side of a seam where its peak may lie
SEAM_MELS = 64
SEAM_BLOCK_FRAMES = 8192  # frames of the fine log-mel differenced at a time
SEAM_CLEARANCE = 0.5  # random cut points keep this far (seconds) from seams and the ends


def seam_metrics(audio: np.ndarray, sample_rate: int, *, seams: Sequence[float] = (),
                 window_seams: Sequence[float] = (), beat_seconds: float | None = None) -> dict:
    """How audible each seam is, relative to ordinary moments of the same song.

    audio: `[channels, samples]` or `[samples]`. On a fine log-mel spectrogram
    (~12 ms windows, ~3 ms hop: a click is one or two frames, not smeared into
    the music's onsets), the peak within ±50 ms of each seam of the spectral
    flux (`flux`) and of the frame-to-frame jump (RMS over mel bands, dB; `jump`)
    is divided by its median at 50 random cut points (fixed seed) at least 0.5 s
    from any seam. `flux_z` is the seam's flux as a robust z-score (median, MAD)
    against the same points. 1 (a z near 0) is an ordinary moment; a click is far above.
    `rank` is the share of those points whose flux is below the seam's: an ordinary moment
    ranks 0.5 on average and above 0.95 one time in twenty, so `{kind}_above_p95` (the
    share of seams ranking above 0.95) near 0.05 says the seams are as ordinary as any
    moment; a per-song maximum, by contrast, grows with the number of seams even in audio
    that has none.

    beat_seconds: the planned beat length. When given, each seam's cut points lie
    at the same position within other beats (a seam on a downbeat is compared with
    other beats, not with the quiet between them, so the music's own onsets
    cancel out); otherwise they are uniform in time.
    """
    flux, jump, frame_rate = _seam_curves(audio, sample_rate)
    duration = (audio.shape[-1] / sample_rate) if audio.size else 0.0
    marked = [(float(t), "section") for t in seams] + [(float(t), "window") for t in window_seams]
    seam_times = [t for t, _ in marked]
    rows = []
    for time, kind in sorted(marked):
        if not 0 <= time < duration:
            continue
        points = _baseline_points(time, duration, seam_times, beat_seconds)
        if len(points) == 0:
            continue
        base_flux = np.array([_peak(flux, t, frame_rate) for t in points])
        base_jump = np.array([_peak(jump, t, frame_rate) for t in points])
        flux_median = np.median(base_flux)
        flux_mad = 1.4826 * np.median(np.abs(base_flux - flux_median))
        peak_flux = _peak(flux, time, frame_rate)
        rows.append({"time": time, "kind": kind,
                     "flux": _ratio(peak_flux, flux_median),
                     "rank": float(np.mean(base_flux < peak_flux)),
                     "flux_z": _ratio(peak_flux - flux_median, flux_mad),
                     "jump": _ratio(_peak(jump, time, frame_rate), np.median(base_jump))})
    result: dict[str, Any] = {"per_seam": rows}
    for kind in ("section", "window"):
        for measure in ("flux", "flux_z", "jump"):
            values = [r[measure] for r in rows if r["kind"] == kind and r[measure] is not None]
            result[f"{kind}_{measure}_max"] = max(values) if values else None
            result[f"{kind}_{measure}_mean"] = float(np.mean(values)) if values else None
        ranks = [r["rank"] for r in rows if r["kind"] == kind]
        result[f"{kind}_rank_mean"] = float(np.mean(ranks)) if ranks else None
        result[f"{kind}_above_p95"] = float(np.mean(np.array(ranks) > 0.95)) if ranks else None
    return result


SEAM_KEEP_FRAMES = 1 << 17  # a fine log-mel up to this many frames (about 6 minutes) is kept whole


def _seam_curves(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(flux [frames], jump [frames], frames per second) of the mono mix's fine log-mel.

    The log-mel is floored at its maximum - 80 dB (librosa's `power_to_db(top_db=80)`), which
    needs the whole song's maximum before the first step: a song's fine log-mel (float32) is
    kept whole up to SEAM_KEEP_FRAMES; a longer one is made twice, a block at a time, once for
    its maximum and once for the steps (the same values; memory stays one block)."""
    mono = (audio[0] if audio.shape[0] == 1 else audio.mean(axis=0)) if audio.ndim == 2 else audio
    mono = np.asarray(mono, dtype=np.float32)
    n_fft = int(2 ** round(math.log2(max(64.0, 0.0116 * sample_rate))))
    hop = n_fft // 4
    if len(mono) < n_fft:
        return np.zeros(1), np.zeros(1), sample_rate / hop
    frames = 1 + len(mono) // hop
    whole = frames <= SEAM_KEEP_FRAMES

    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=SEAM_MELS)

    def log_mel(a: int, b: int) -> np.ndarray:  # frames [a, b) in dB (before the floor)
        block = (mel_power(mono, sample_rate, n_fft=n_fft, hop=hop, n_mels=SEAM_MELS) if (a, b) == (0, frames)
                 else mel_frames(mono, a, b, n_fft=n_fft, hop=hop, basis=basis).astype(np.float32, copy=False))
        np.maximum(block, np.float32(1e-10), out=block)  # librosa.power_to_db(ref=1.0, top_db=None)
        np.log10(block, out=block)
        block *= np.float32(10.0)
        return block

    kept = log_mel(0, frames) if whole else None
    top = kept.max() if whole else max(log_mel(a, min(frames, a + SEAM_BLOCK_FRAMES)).max()
                                       for a in range(0, frames, SEAM_BLOCK_FRAMES))
    floor = top - np.float32(80.0)
    flux, jump = np.zeros(frames), np.zeros(frames)
    for a in range(0, frames - 1, SEAM_BLOCK_FRAMES):
        b = min(frames - 1, a + SEAM_BLOCK_FRAMES)
        block = kept[:, a: b + 1] if whole else log_mel(a, b + 1)
        block = np.maximum(block, floor)
        step = block[:, 1:] - block[:, :-1]
        jump[a + 1: b + 1] = np.sqrt(np.mean(step ** 2, axis=0))
        np.maximum(step, 0.0, out=step)
        flux[a + 1: b + 1] = step.mean(axis=0)
    return flux, jump, sample_rate / hop


def _baseline_points(time: float, duration: float, seams: list[float],
                     beat_seconds: float | None) -> np.ndarray:
    """Up to SEAM_BASELINE_POINTS random cut points (seconds) to compare the seam at `time` with."""
    rng = np.random.default_rng(SEAM_SEED)
    if beat_seconds:
        phase = (time / beat_seconds) % 1.0
        candidates = (np.arange(int(duration / beat_seconds) + 1) + phase) * beat_seconds
    else:
        candidates = rng.uniform(0.0, duration, size=20 * SEAM_BASELINE_POINTS)
    candidates = candidates[(candidates >= SEAM_CLEARANCE) & (candidates <= duration - SEAM_CLEARANCE)]
    distance = np.min(np.abs(candidates[:, None] - np.asarray(seams)[None, :]), axis=1)
    candidates = candidates[distance >= SEAM_CLEARANCE]
    if beat_seconds and len(candidates) > SEAM_BASELINE_POINTS:
        candidates = rng.choice(candidates, size=SEAM_BASELINE_POINTS, replace=False)
    return candidates[:SEAM_BASELINE_POINTS]


def _peak(curve: np.ndarray, time: float, frame_rate: float) -> float:
    centre = int(round(time * frame_rate))
    reach = int(math.ceil(SEAM_SEARCH * frame_rate))
    window = curve[max(0, centre - reach):centre + reach + 1]
    return float(window.max()) if window.size else 0.0


def _ratio(value: float, scale: float) -> float | None:
    return float(value / scale) if scale > 1e-12 else None


# --- loudness --------------------------------------------------------------------
