"""Metrics of a render against its plan (issue 9): `composer evaluate OUT_DIR`.

`evaluate_audio` measures one song: tempo, key, chords per bar, section
boundaries, how much repeated sections sound alike, how audible the seams are,
loudness, clipping and silence. `evaluate_dir` reads a render directory and
also draws `evaluation.png`; `evaluate_paths` is what the CLI prints.

Features come from `structure.analysis`, the same analysis that turns real
audio into plans. Beat-synchronous features are taken on the plan's own beat
grid (a render follows the plan's timing), so a beat-tracker slip cannot blur
the repetition measure. Times are seconds.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import mir_eval
import numpy as np

from composer.evaluate.seams import seam_metrics  # noqa: E402
from structure.analysis import (
    NO_CHORD,
    NOTE_NAMES,
    SILENCE_DB,
    Analysis,
    SimilarityFeatures,
    analyze,
    beat_sync,
    chord_scores,
    chord_templates,
    estimate_key,
    similarity_features,
)
from structure.harmony import parse_chord
from structure.schema import Key, SongPlan, is_minor_like

log = logging.getLogger(__name__)

TEMPO_TOLERANCE = 0.04  # tempo_acc1/acc2: within 4 % (MIREX)
TEMPO_OCTAVES = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
BOUNDARY_WINDOWS = (3.0, 0.5)  # seconds either side (MIREX segment detection)
CLIP_LEVEL = 0.999
SILENCE_FRAME = 0.05  # seconds
LEVEL_BLOCK_SAMPLES = 1 << 20  # samples a channel of the level measures reads at a time


# --- one song ----------------------------------------------------------------
def evaluate_audio(audio: np.ndarray, sample_rate: int, plan: SongPlan, *,
                   seams: Sequence[float] = (), window_seams: Sequence[float] = ()) -> dict:
    """Metrics of `audio` (`[channels, samples]` or `[samples]`) against `plan`.

    seams: section seams in seconds; window_seams: outpainting window seams.
    Returns a JSON-ready dict of metric groups (tempo, key, chords, boundaries,
    repetition, seams, loudness); a metric that cannot be measured is None.
    """
    return measure(audio, sample_rate, plan, seams, window_seams).metrics


@dataclass
class Measurement:
    metrics: dict
    beat_grid: np.ndarray  # [beats] the plan's beat times inside the audio, seconds
    features: SimilarityFeatures  # what the self-similarity on that grid is made of
    seam_rows: list[dict]

    @property
    def similarity(self) -> np.ndarray:
        """The self-similarity `[beats, beats]` on the beat grid (made when asked: it grows
        with the square of the song's length)."""
        return self.features.block(slice(None), slice(None)) if len(self.features) else np.zeros((0, 0))


def measure(audio: np.ndarray, sample_rate: int, plan: SongPlan, seams: Sequence[float],
             window_seams: Sequence[float], *, loop: bool = False) -> Measurement:
    """`loop`: the audio's end joins its start; its seams, the wrap among them, are measured on
    the loop played twice (the wrap in the middle, heard from both sides)."""
    audio = np.asarray(audio, dtype=np.float32)
    analysis = analyze(audio, sample_rate)
    grid = np.arange(plan.total_beats) * plan.seconds_per_beat
    grid = grid[grid < analysis.duration - 1e-6]
    beat_chroma = beat_sync(analysis.chroma, analysis.frame_times, grid, analysis.duration)
    beat_mfcc = beat_sync(analysis.mfcc, analysis.frame_times, grid, analysis.duration)
    if loop:
        length = audio.shape[-1] / sample_rate
        inside = [t for t in seams if 0 < t < length - 0.05]  # the wrap is marked once, at the join
        # each seam once, the wrap at the join of the two plays (its ordinary moments are drawn
        # from both, so one near the loop's end is heard from both sides too)
        seam_group = seam_metrics(np.concatenate([audio, audio], axis=-1), sample_rate,
                                  seams=[*inside, length], window_seams=list(window_seams),
                                  beat_seconds=plan.seconds_per_beat)
    else:
        seam_group = seam_metrics(audio, sample_rate, seams=seams, window_seams=window_seams,
                                  beat_seconds=plan.seconds_per_beat)
    metrics = {
        "duration": {"seconds": analysis.duration, "planned_seconds": plan.duration},
        "tempo": tempo_metrics(analysis, plan),
        "key": key_metrics(analysis, plan),
        "chords": chord_metrics(analysis, plan),
        "boundaries": boundary_metrics(analysis, plan),
        "repetition": repetition_metrics(beat_chroma, beat_mfcc, plan),
        "seams": seam_group,
        "loudness": loudness_metrics(audio, sample_rate),
    }
    features = similarity_features(beat_chroma, beat_mfcc, beats_per_bar=plan.beats_per_bar)
    return Measurement(metrics=_json_ready(metrics), beat_grid=grid, features=features,
                        seam_rows=seam_group["per_seam"])


# --- tempo -------------------------------------------------------------------
def tempo_metrics(analysis: Analysis, plan: SongPlan) -> dict:
    """Estimated vs planned BPM; acc1 within 4 %, acc2 also at x2, x1/2, x3, x1/3;
    stability: standard deviation (BPM) of the local tempo over 8-beat windows."""
    estimated, planned = analysis.tempo_bpm, plan.tempo_bpm

    def within(factor: float) -> bool:
        return abs(estimated - factor * planned) <= TEMPO_TOLERANCE * factor * planned

    return {
        "estimated_bpm": estimated if estimated > 0 else None,
        "planned_bpm": planned,
        "acc1": within(1.0),
        "acc2": any(within(f) for f in TEMPO_OCTAVES),
        "stability_bpm": _tempo_stability(analysis.beats),
        "estimated_beats_per_bar": analysis.beats_per_bar,
        "planned_beats_per_bar": plan.beats_per_bar,
    }


def _tempo_stability(beats: np.ndarray, window: int = 8) -> float | None:
    intervals = np.diff(beats)
    if len(intervals) < 2:
        return None
    half = window // 2
    local = [60.0 / np.median(intervals[max(0, i - half):i + half]) for i in range(len(intervals))]
    return float(np.std(local))


# --- key ---------------------------------------------------------------------
def mir_eval_key(key: Key) -> str:
    """A plan key as mir_eval spells it; modes other than major/minor map to the nearer one."""
    return f"{key.tonic} {'minor' if is_minor_like(key.mode) else 'major'}"


def key_metrics(analysis: Analysis, plan: SongPlan) -> dict:
    """mir_eval weighted key score (1 right, 0.5 fifth, 0.3 relative, 0.2 parallel) for
    the whole song and for each section, against the plan's key."""
    reference = mir_eval_key(plan.key)
    sections = []
    for section, (start, end) in zip(plan.sections, plan.section_times()):
        if start >= analysis.duration:
            break
        frames = (analysis.frame_times >= start) & (analysis.frame_times < end)
        sounding = frames & (analysis.rms >= 10 ** (SILENCE_DB / 20))
        in_section = (analysis.beats >= start) & (analysis.beats < end)
        chords = [c for c, inside in zip(analysis.chords, in_section) if inside]
        if not sounding.any():
            sections.append({"name": section.name, "estimated": None, "score": None})
            continue
        key, _ = estimate_key(analysis.chroma[sounding], chords)
        sections.append({"name": section.name, "estimated": str(key),
                         "score": _key_score(reference, key)})
    scores = [s["score"] for s in sections if s["score"] is not None]
    return {
        "estimated": str(analysis.key),
        "planned": str(plan.key),
        "score": _key_score(reference, analysis.key),
        "section_score_mean": float(np.mean(scores)) if scores else None,
        "sections": sections,
    }


def _key_score(reference: str, estimated: Key) -> float:
    return float(mir_eval.key.weighted_score(reference, mir_eval_key(estimated)))


def key_weighted(reference: Key, estimated: Key) -> float:
    """mir_eval's weighted key score of one analysed key against another (1 the same, 0.5 a
    fifth away, 0.3 relative, 0.2 parallel, else 0): how far a restyle moved its input's key."""
    return _key_score(mir_eval_key(reference), estimated)


# --- chords ------------------------------------------------------------------
def mir_eval_chord(symbol: str) -> str:
    """A chord symbol as a mir_eval label reduced to root and third: "C:maj", "A:min", "N".

    Chords without a third (sus, power chords) keep their own quality, which
    mir_eval's majmin comparison leaves out of the score.
    """
    chord = parse_chord(symbol)
    if chord.root is None:
        return "N"
    root, pcs = chord.root, set(chord.pitch_classes)
    name = NOTE_NAMES[root]
    if (root + 4) % 12 in pcs:
        return f"{name}:maj"
    if (root + 3) % 12 in pcs:
        return f"{name}:min"
    if (root + 5) % 12 in pcs:
        return f"{name}:sus4"
    if (root + 2) % 12 in pcs:
        return f"{name}:sus2"
    return f"{name}:5"


def chord_metrics(analysis: Analysis, plan: SongPlan) -> dict:
    """Each planned bar's first chord vs the triad that best fits the bar's mean chroma
    ("N" when the bar is silent), compared on root and major/minor third."""
    symbols, _ = chord_templates()
    bar_seconds = plan.seconds_per_beat * plan.beats_per_bar
    planned, estimated = [], []
    bar_starts = [start + b * bar_seconds for section, (start, _) in
                  zip(plan.sections, plan.section_times()) for b in range(section.bars)]
    # A section written without chords has nothing to compare with: skip its bars.
    bar_chords = [bar[0] if bar else None for section in plan.sections
                  for bar in (section.chords or [[]] * section.bars)]
    for start, chord in zip(bar_starts, bar_chords):
        if start >= analysis.duration:
            break
        if chord is None:
            continue
        frames = (analysis.frame_times >= start) & (analysis.frame_times < start + bar_seconds)
        if not frames.any() or np.sqrt(np.mean(analysis.rms[frames] ** 2)) < 10 ** (SILENCE_DB / 20):
            guess = NO_CHORD
        else:
            guess = symbols[int(np.argmax(chord_scores(analysis.chroma[frames].mean(axis=0))[0]))]
        planned.append(chord)
        estimated.append(guess)
    if not planned:
        return {"accuracy": None, "bars": 0, "planned": [], "estimated": []}
    comparison = mir_eval.chord.majmin([mir_eval_chord(c) for c in planned],
                                       [mir_eval_chord(c) for c in estimated])
    counted = comparison >= 0
    return {
        "accuracy": float(comparison[counted].mean()) if counted.any() else None,
        "bars": int(counted.sum()),
        "planned": planned,
        "estimated": estimated,
    }


# --- section boundaries --------------------------------------------------------
def boundary_metrics(analysis: Analysis, plan: SongPlan) -> dict:
    """mir_eval segment detection (precision, recall, F) of the estimated section
    starts against the planned ones, at ±3 s and ±0.5 s; the song's start and
    end are not counted (None when the plan has a single section)."""
    planned = [start for start, _ in plan.section_times()]
    result: dict[str, Any] = {"planned": planned, "estimated": [float(t) for t in analysis.boundaries]}
    end = max(analysis.duration, plan.duration)
    reference = _intervals(planned, end)
    estimate = _intervals(list(analysis.boundaries), end)
    for window in BOUNDARY_WINDOWS:
        tag = f"{window:g}s".replace(".", "_")
        if len(planned) < 2:
            scores = (None, None, None)
        else:
            with warnings.catch_warnings():  # "estimated boundaries are empty" is a valid 0
                warnings.simplefilter("ignore")
                scores = mir_eval.segment.detection(reference, estimate, window=window, trim=True)
        result.update({f"precision_{tag}": scores[0], f"recall_{tag}": scores[1], f"f_{tag}": scores[2]})
    return result


def _intervals(starts: list[float], end: float) -> np.ndarray:
    starts = sorted(s for s in starts if s < end)
    return np.array([[a, b] for a, b in zip(starts, starts[1:] + [end])])


# --- repetition ----------------------------------------------------------------
def repetition_metrics(beat_chroma: np.ndarray, beat_mfcc: np.ndarray, plan: SongPlan) -> dict:
    """How much sections with the same label sound alike, compared with the rest.

    Two sections share a label when they have the same kind or the same
    `repeat_of` source. Their similarity is the mean cosine, beat for beat, of
    standardised chroma and MFCC (1..12) features over the shorter one's beats.
    contrast = mean similarity of same-label pairs minus that of the others.
    """
    features = _repetition_features(beat_chroma, beat_mfcc)
    beats = [(a, min(b, len(features))) for a, b in plan.section_beats() if a < len(features)]
    labels = [_repeat_root(plan, s) for s in plan.sections[:len(beats)]]
    kinds = [s.kind for s in plan.sections[:len(beats)]]
    same, different, best = [], [], None
    for i in range(len(beats)):
        for j in range(i + 1, len(beats)):
            length = min(beats[i][1] - beats[i][0], beats[j][1] - beats[j][0])
            if length < 1:
                continue
            a = features[beats[i][0]:beats[i][0] + length]
            b = features[beats[j][0]:beats[j][0] + length]
            similarity = float(np.mean(np.sum(a * b, axis=1)))
            shared = kinds[i] == kinds[j] or labels[i] == labels[j]
            (same if shared else different).append(similarity)
            if best is None or similarity > best[0]:
                best = (similarity, i, j, shared)
    same_mean = float(np.mean(same)) if same else None
    different_mean = float(np.mean(different)) if different else None
    return {
        "same_label_similarity": same_mean,
        "different_label_similarity": different_mean,
        "contrast": same_mean - different_mean if same and different else None,
        "most_similar_pair": [plan.sections[best[1]].name, plan.sections[best[2]].name] if best else None,
        "most_similar_pair_shares_label": best[3] if best else None,
    }


def _repetition_features(beat_chroma: np.ndarray, beat_mfcc: np.ndarray) -> np.ndarray:
    """Unit-norm rows `[beats, 24]`: standardised chroma and MFCC 1..12, each half alike."""
    blocks = []
    for block in (beat_chroma, beat_mfcc[:, 1:13]):
        spread = block.std(axis=0) if len(block) else np.ones(block.shape[1])
        standard = (block - block.mean(axis=0)) / np.where(spread > 1e-9, spread, 1.0)
        blocks.append(standard / np.sqrt(block.shape[1]))
    features = np.concatenate(blocks, axis=1)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-9)


def _repeat_root(plan: SongPlan, section) -> str:
    seen = set()
    while section.repeat_of is not None and section.name not in seen:
        seen.add(section.name)
        section = plan.section(section.repeat_of)
    return section.name


# --- seams ---------------------------------------------------------------------
def loudness_metrics(audio: np.ndarray, sample_rate: int) -> dict:
    """Integrated loudness (LUFS, ITU-R BS.1770 via pyloudnorm), the share of samples
    at |x| >= 0.999, and the share of 50 ms frames below -60 dBFS."""
    from composer.rendering.loudness import integrated_loudness

    audio = audio[None] if audio.ndim == 1 else audio
    value = integrated_loudness(audio, sample_rate)  # -inf under one gating block (0.4 s) or silent
    lufs = float(value) if np.isfinite(value) else None
    frame = max(1, int(SILENCE_FRAME * sample_rate))
    frames = audio.shape[1] // frame
    # Frame powers and clipped samples a block at a time: no whole-song float64 or |x| copies.
    power, clipped = np.zeros(frames), 0
    step = max(1, LEVEL_BLOCK_SAMPLES // frame) * frame
    for start in range(0, audio.shape[1], step):
        block = audio[:, start: start + step]
        clipped += int(np.count_nonzero(block >= CLIP_LEVEL)) + int(np.count_nonzero(block <= -CLIP_LEVEL))
        whole = block.shape[1] // frame
        if whole:
            shaped = block[:, : whole * frame].reshape(audio.shape[0], whole, frame).astype(np.float64)
            power[start // frame: start // frame + whole] = np.einsum("cfi,cfi->f", shaped, shaped)
    if frames:
        rms = np.sqrt(power / (audio.shape[0] * frame))
        silence = float(np.mean(rms < 10 ** (SILENCE_DB / 20)))
    else:
        silence = None
    return {
        "lufs": lufs,
        "clipping_ratio": clipped / audio.size if audio.size else None,
        "silence_ratio": silence,
    }


def _json_ready(value: Any) -> Any:
    """numpy scalars to Python, NaN and infinities to None."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value
