"""`composer evaluate`: render folders measured (`evaluate_dir`), plotted and tabulated."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from composer.data.audio import atomic_path, audio_read
from composer.errors import InputError
from composer.evaluate.metrics import Measurement, measure
from composer.rendering import folder
from structure.schema import SongPlan

log = logging.getLogger(__name__)


def evaluate_dir(out_dir: str | Path) -> dict:
    """Metrics of a render directory (`song.wav`, `plan.json`, optional `report.json`);
    also writes `evaluation.png` there. Seams come from the report's `seams`
    (`{"time", "kind": "section"|"window"}`), else from the plan's section starts.
    Raises InputError naming the path when a file is missing or unreadable.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise InputError(f"{out_dir}: no such render directory")
    plan = folder.read_plan(out_dir)
    song_path = out_dir / folder.SONG_WAV
    if not song_path.is_file():
        raise InputError(f"{song_path}: missing (a render directory holds song.wav and plan.json)")
    from composer.data.datasets import check_audio

    # a damaged song is said, not scored: a song.wav cut to 500 bytes measured as a row of zeros
    # (a silent or short song is still a song to measure)
    damaged = [r for r in check_audio(song_path, min_seconds=0.0, max_seconds=float("inf")).refusals
               if not r.startswith(("silent", "sample rate", "too "))]
    if damaged:
        raise InputError(f"{song_path}: {'; '.join(damaged)}")
    audio, rate = audio_read(song_path)
    seams, window_seams = _read_seams(out_dir / folder.REPORT_NAME, plan)
    measurement = measure(audio, rate, plan, seams, window_seams, loop=_is_loop(out_dir / folder.REPORT_NAME))
    try:
        _plot(out_dir / folder.EVALUATION_NAME, measurement, plan)
    except OSError as error:  # a read-only folder is still measured; only its picture is not drawn
        log.warning("%s: measured, but its picture could not be written (%s)", out_dir / folder.EVALUATION_NAME,
                    error.strerror or error)
    return measurement.metrics


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
                or not isinstance(seam.get("time"), (int, float)) or not math.isfinite(seam["time"]):
            raise InputError(f"{path}: seams[{i}]: expected {{\"time\": seconds, \"kind\": ...}}")
        kind = seam.get("kind", "section")
        if kind not in ("section", "window"):
            raise InputError(f"{path}: seams[{i}].kind: expected 'section' or 'window', got {kind!r}")
        (section if kind == "section" else window).append(float(seam["time"]))
    return section, window


def _is_loop(path: Path) -> bool:
    """Whether the report says the song is a loop (its end joins its start)."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(report, dict) and isinstance(report.get("mode"), dict) and report["mode"].get("name") == "loop"


def _plot(path: Path, measurement: Measurement, plan: SongPlan) -> None:
    """Self-similarity with the planned boundaries, and the seam scores over time (a silent song's
    flat image is drawn without matplotlib's warnings about it)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _draw(path, measurement, plan)


def _draw(path: Path, measurement: Measurement, plan: SongPlan) -> None:
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


def render_dirs(paths: list[str], errors: list[str] | None = None) -> list[Path]:
    """Each path is a render directory or a folder of them (its direct subfolders); each render
    once, however many paths reach it. errors: where a path that is neither goes (default: it
    raises InputError)."""
    found: list[Path] = []
    seen: set[Path] = set()
    for text in paths:
        path = Path(text)
        try:
            if not path.exists():
                raise InputError(f"{path}: no such directory")
            if not path.is_dir():
                raise InputError(f"{path}: expected a render directory (with song.wav and plan.json)")
            if folder.is_render_dir(path):
                children = [path]
            else:
                children = sorted(child for child in path.iterdir() if child.is_dir() and folder.is_render_dir(child))
                if not children:
                    raise InputError(f"{path}: holds no song.wav and plan.json, nor subfolders that do")
        except InputError as error:
            if errors is None:
                raise
            errors.append(str(error))
            continue
        for child in children:
            if child.resolve() not in seen:
                seen.add(child.resolve())
                found.append(child)
    return found


def evaluate_paths(paths: list[str], as_json: bool, errors: list[str] | None = None) -> str:
    """Evaluate every render under `paths`; the text the CLI prints (JSON or a table).
    errors: where the paths and renders that cannot be evaluated go, one line each, while the
    others are (default: the first raises InputError). With none evaluated, InputError."""
    from composer.errors import bad_input_types

    directories = render_dirs(paths, errors)
    results, names = [], []
    for directory in directories:
        log.info("evaluating %s", directory)
        try:
            results.append(evaluate_dir(directory))
        except bad_input_types() as error:
            if errors is None:
                raise
            errors.append(str(error))
            continue
        names.append(str(directory))
    if not results:
        raise InputError("; ".join(errors or []) or "nothing to evaluate")
    if as_json:
        document = {"renders": dict(zip(names, results)), "aggregate": aggregate(results)}
        return json.dumps(document, indent=2, allow_nan=False)
    return format_table(results, names)
