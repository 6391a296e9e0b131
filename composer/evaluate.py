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

import json
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import librosa
import mir_eval
import numpy as np
import pyloudnorm

from composer.audio import atomic_path, audio_read
from composer.errors import InputError
from structure.analysis import (
    NO_CHORD,
    NOTE_NAMES,
    SILENCE_DB,
    Analysis,
    analyze,
    beat_sync,
    chord_scores,
    chord_templates,
    estimate_key,
    section_similarity,
)
from structure.harmony import parse_chord
from structure.plan import Key, PlanError, SongPlan

log = logging.getLogger(__name__)

TEMPO_TOLERANCE = 0.04  # tempo_acc1/acc2: within 4 % (MIREX)
TEMPO_OCTAVES = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
BOUNDARY_WINDOWS = (3.0, 0.5)  # seconds either side (MIREX segment detection)
SEAM_BASELINE_POINTS = 50
SEAM_SEED = 0  # the random cut points are the same on every run
SEAM_SEARCH = 0.05  # seconds either side of a seam where its peak may lie
SEAM_MELS = 64
SEAM_CLEARANCE = 0.5  # random cut points keep this far (seconds) from seams and the ends
CLIP_LEVEL = 0.999
SILENCE_FRAME = 0.05  # seconds
MINOR_MODES = ("minor", "aeolian", "dorian", "phrygian")


# --- one song ----------------------------------------------------------------
def evaluate_audio(audio: np.ndarray, sample_rate: int, plan: SongPlan, *,
                   seams: Sequence[float] = (), window_seams: Sequence[float] = ()) -> dict:
    """Metrics of `audio` (`[channels, samples]` or `[samples]`) against `plan`.

    seams: section seams in seconds; window_seams: outpainting window seams.
    Returns a JSON-ready dict of metric groups (tempo, key, chords, boundaries,
    repetition, seams, loudness); a metric that cannot be measured is None.
    """
    return _measure(audio, sample_rate, plan, seams, window_seams).metrics


@dataclass
class _Measurement:
    metrics: dict
    beat_grid: np.ndarray  # [beats] the plan's beat times inside the audio, seconds
    similarity: np.ndarray  # [beats, beats] on that grid
    seam_rows: list[dict]


def _measure(audio: np.ndarray, sample_rate: int, plan: SongPlan, seams: Sequence[float],
             window_seams: Sequence[float]) -> _Measurement:
    audio = np.asarray(audio, dtype=np.float32)
    analysis = analyze(audio, sample_rate)
    grid = np.arange(plan.total_beats) * plan.seconds_per_beat
    grid = grid[grid < analysis.duration - 1e-6]
    beat_chroma = beat_sync(analysis.chroma, analysis.frame_times, grid, analysis.duration)
    beat_mfcc = beat_sync(analysis.mfcc, analysis.frame_times, grid, analysis.duration)
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
    similarity = (section_similarity(beat_chroma, beat_mfcc, beats_per_bar=plan.beats_per_bar)
                  if len(grid) else np.zeros((0, 0)))
    return _Measurement(metrics=_json_ready(metrics), beat_grid=grid, similarity=similarity,
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
    return f"{key.tonic} {'minor' if key.mode in MINOR_MODES else 'major'}"


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


def _seam_curves(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(flux [frames], jump [frames], frames per second) of the mono mix's fine log-mel."""
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    n_fft = int(2 ** round(math.log2(max(64.0, 0.0116 * sample_rate))))
    hop = n_fft // 4
    if len(mono) < n_fft:
        return np.zeros(1), np.zeros(1), sample_rate / hop
    mel = librosa.feature.melspectrogram(y=mono.astype(np.float32), sr=sample_rate, n_fft=n_fft,
                                         hop_length=hop, n_mels=SEAM_MELS)
    log_mel = librosa.power_to_db(mel, ref=1.0, top_db=None)
    log_mel = np.maximum(log_mel, log_mel.max() - 80.0)
    step = np.diff(log_mel, axis=1)
    flux = np.concatenate([[0.0], np.maximum(step, 0.0).mean(axis=0)])
    jump = np.concatenate([[0.0], np.sqrt(np.mean(step**2, axis=0))])
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
def loudness_metrics(audio: np.ndarray, sample_rate: int) -> dict:
    """Integrated loudness (LUFS, ITU-R BS.1770 via pyloudnorm), the share of samples
    at |x| >= 0.999, and the share of 50 ms frames below -60 dBFS."""
    audio = audio[None] if audio.ndim == 1 else audio
    lufs = None
    if audio.shape[1] >= int(0.4 * sample_rate):  # one gating block
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyloudnorm warns about possible clipping
            value = pyloudnorm.Meter(sample_rate).integrated_loudness(audio.T.astype(np.float64))
        lufs = float(value) if np.isfinite(value) else None
    frame = max(1, int(SILENCE_FRAME * sample_rate))
    frames = audio.shape[1] // frame
    if frames:
        blocks = audio[:, :frames * frame].reshape(audio.shape[0], frames, frame)
        rms = np.sqrt(np.mean(blocks.astype(np.float64) ** 2, axis=(0, 2)))
        silence = float(np.mean(rms < 10 ** (SILENCE_DB / 20)))
    else:
        silence = None
    return {
        "lufs": lufs,
        "clipping_ratio": float(np.mean(np.abs(audio) >= CLIP_LEVEL)) if audio.size else None,
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


# --- render directories ----------------------------------------------------------
def evaluate_dir(out_dir: str | Path) -> dict:
    """Metrics of a render directory (`song.wav`, `plan.json`, optional `report.json`);
    also writes `evaluation.png` there. Seams come from the report's `seams`
    (`{"time", "kind": "section"|"window"}`), else from the plan's section starts.
    Raises InputError naming the path when a file is missing or unreadable.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise InputError(f"{out_dir}: no such render directory")
    plan = _read_plan(out_dir / "plan.json")
    song_path = out_dir / "song.wav"
    if not song_path.is_file():
        raise InputError(f"{song_path}: missing (a render directory holds song.wav and plan.json)")
    audio, rate = audio_read(song_path)
    seams, window_seams = _read_seams(out_dir / "report.json", plan)
    measurement = _measure(audio, rate, plan, seams, window_seams)
    _plot(out_dir / "evaluation.png", measurement, plan)
    return measurement.metrics


def _read_plan(path: Path) -> SongPlan:
    if not path.is_file():
        raise InputError(f"{path}: missing (a render directory holds song.wav and plan.json)")
    try:
        return SongPlan.from_json(path.read_text(encoding="utf-8"))
    except PlanError as error:
        raise InputError(f"{path}: {error}") from None


def _read_seams(path: Path, plan: SongPlan) -> tuple[list[float], list[float]]:
    planned = [start for start, _ in plan.section_times()[1:]]
    if not path.is_file():
        return planned, []
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(report, dict) or "seams" not in report:
        return planned, []
    seams = report["seams"]
    if not isinstance(seams, list):
        raise InputError(f"{path}: seams: expected a list of {{time, kind}}")
    section, window = [], []
    for i, seam in enumerate(seams):
        if not isinstance(seam, dict) or isinstance(seam.get("time"), bool) \
                or not isinstance(seam.get("time"), (int, float)):
            raise InputError(f"{path}: seams[{i}]: expected {{\"time\": seconds, \"kind\": ...}}")
        kind = seam.get("kind", "section")
        if kind not in ("section", "window"):
            raise InputError(f"{path}: seams[{i}].kind: expected 'section' or 'window', got {kind!r}")
        (section if kind == "section" else window).append(float(seam["time"]))
    return section, window


def _plot(path: Path, measurement: _Measurement, plan: SongPlan) -> None:
    """Self-similarity with the planned boundaries, and the seam scores over time."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 10), layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, height_ratios=[3, 1])
    end = float(measurement.beat_grid[-1] + plan.seconds_per_beat) if len(measurement.beat_grid) else 1.0
    if measurement.similarity.size:
        image = top.imshow(measurement.similarity, origin="lower", cmap="magma", vmin=-0.5, vmax=1.0,
                           extent=(0, end, 0, end), interpolation="nearest")
        figure.colorbar(image, ax=top, shrink=0.8, label="similarity")
    for section, (start, _) in zip(plan.sections, plan.section_times()):
        if start < end:
            top.axvline(start, color="cyan", linewidth=0.8)
            top.axhline(start, color="cyan", linewidth=0.8)
            top.text(start, end, f" {section.name}", color="black", fontsize=7, rotation=90,
                     va="bottom", ha="left")
    top.set_xlabel("seconds")
    top.set_ylabel("seconds")
    top.set_title(f"{plan.title}: beat self-similarity and planned sections", pad=40)
    for kind, colour in (("section", "tab:red"), ("window", "tab:blue")):
        rows = [r for r in measurement.seam_rows if r["kind"] == kind and r["jump"] is not None]
        if rows:
            bottom.stem([r["time"] for r in rows], [r["jump"] for r in rows], linefmt=colour,
                        markerfmt="o", basefmt=" ", label=f"{kind} seams: log-mel jump")
            bottom.scatter([r["time"] for r in rows], [r["flux"] for r in rows], marker="x",
                           color=colour, label=f"{kind} seams: spectral flux")
    bottom.axhline(1.0, color="grey", linestyle="--", linewidth=0.8)
    bottom.set_xlim(0, end)
    bottom.set_xlabel("seconds")
    bottom.set_ylabel("seam / typical moment")
    if measurement.seam_rows:
        bottom.legend(loc="upper right", fontsize=8)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)


# --- folders of renders ------------------------------------------------------------
def _flatten(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Scalar metrics under dotted names ("tempo.acc1"); booleans count as 0/1."""
    flat = {}
    for name, value in metrics.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(_flatten(value, key + "."))
        elif isinstance(value, bool):
            flat[key] = float(value)
        elif isinstance(value, (int, float)):
            flat[key] = float(value)
    return flat


def aggregate(results: list[dict]) -> dict:
    """The mean of each scalar metric over the renders that have it:
    `{"renders": count, "mean": {"tempo.acc1": ..., ...}}`."""
    sums: dict[str, list[float]] = {}
    for result in results:
        for key, value in _flatten(result).items():
            sums.setdefault(key, []).append(value)
    return {"renders": len(results), "mean": {key: float(np.mean(v)) for key, v in sums.items()}}


TABLE_COLUMNS = (
    ("tempo.estimated_bpm", "bpm", "{:.1f}"),
    ("tempo.acc2", "tempo", "{:.2f}"),
    ("tempo.stability_bpm", "stab", "{:.2f}"),
    ("key.score", "key", "{:.2f}"),
    ("chords.accuracy", "chords", "{:.2f}"),
    ("boundaries.f_3s", "F@3s", "{:.2f}"),
    ("boundaries.f_0_5s", "F@.5s", "{:.2f}"),
    ("repetition.contrast", "repeat", "{:+.2f}"),
    ("seams.section_jump_max", "seam", "{:.2f}"),
    ("seams.window_jump_max", "wseam", "{:.2f}"),
    ("loudness.lufs", "LUFS", "{:.1f}"),
    ("loudness.clipping_ratio", "clip", "{:.4f}"),
    ("loudness.silence_ratio", "silent", "{:.2f}"),
)


def format_table(results: list[dict], names: list[str]) -> str:
    """A plain-text table: one row per render (and their mean when several), headline
    metrics as columns; "-" where a metric could not be measured."""
    rows = [(name, _flatten(result)) for name, result in zip(names, results)]
    if len(results) > 1:
        rows.append(("mean", aggregate(results)["mean"]))
    header = ["render"] + [title for _, title, _ in TABLE_COLUMNS]
    body = [[name] + [fmt.format(flat[key]) if key in flat else "-" for key, _, fmt in TABLE_COLUMNS]
            for name, flat in rows]
    widths = [max(len(row[c]) for row in [header] + body) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if c == 0 else cell.rjust(w)
                       for c, (cell, w) in enumerate(zip(row, widths))) for row in [header] + body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _is_render_dir(path: Path) -> bool:
    return (path / "song.wav").is_file() and (path / "plan.json").is_file()


def render_dirs(paths: list[str]) -> list[Path]:
    """Each path is a render directory or a folder of them (its direct subfolders)."""
    found = []
    for text in paths:
        path = Path(text)
        if not path.exists():
            raise InputError(f"{path}: no such directory")
        if not path.is_dir():
            raise InputError(f"{path}: expected a render directory (with song.wav and plan.json)")
        if _is_render_dir(path):
            found.append(path)
            continue
        children = sorted(child for child in path.iterdir() if child.is_dir() and _is_render_dir(child))
        if not children:
            raise InputError(f"{path}: holds no song.wav and plan.json, nor subfolders that do")
        found.extend(children)
    return found


def evaluate_paths(paths: list[str], as_json: bool) -> str:
    """Evaluate every render under `paths`; the text the CLI prints (JSON or a table)."""
    directories = render_dirs(paths)
    results = []
    for directory in directories:
        log.info("evaluating %s", directory)
        results.append(evaluate_dir(directory))
    names = [str(d) for d in directories]
    if as_json:
        document = {"renders": dict(zip(names, results)), "aggregate": aggregate(results)}
        return json.dumps(document, indent=2, allow_nan=False)
    return format_table(results, names)
