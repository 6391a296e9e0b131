"""Originality and consent: every render checked against what its models learnt.

- `index.OriginalityIndex`: fingerprints, melodies and chords of a model's training
  data, stored next to its checkpoint, with thresholds calibrated on held-out music.
- `check_render`: the `originality` block of a render's report.json (per section,
  the nearest training excerpt by audio, melody and chords; a verdict).
- `melody_check`: what the planner asks before it hands a melody on (a melody that
  repeats a training melody for more than two bars is planned again).
- `query`: "was this in the training set?" for any audio files.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from composer.errors import InputError
from composer.originality.index import (
    INDEX_NAME,
    OriginalityIndex,
    build_index,
    index_exists,
    plan_chords,
    plan_melody,
)

log = logging.getLogger(__name__)

__all__ = ["INDEX_NAME", "OriginalityIndex", "build_index", "check_render", "index_for_model", "load_index",
           "melody_check", "check_plan_melodies", "query"]


@functools.lru_cache(maxsize=4)
def _load_cached(directory: str, stamp: float) -> OriginalityIndex:
    return OriginalityIndex.load(directory)


def load_index(directory: str | Path) -> OriginalityIndex:
    """The index in `directory` (a checkpoint folder or an index folder); cached while unchanged."""
    directory = Path(directory)
    if not index_exists(directory):
        raise InputError(f"{directory}: no originality index ({INDEX_NAME}.json + {INDEX_NAME}.safetensors); "
                         f"build one with `composer originality index DATASET -o {directory}`")
    stamp = (directory / f"{INDEX_NAME}.safetensors").stat().st_mtime
    return _load_cached(str(directory.resolve()), stamp)


def index_for_model(model) -> OriginalityIndex | None:
    """The index stored with a diffusion model's checkpoint, or None (a model built in memory,
    or a checkpoint trained before indexes existed)."""
    directory = getattr(model, "checkpoint_dir", None)
    if directory is None or not index_exists(directory):
        return None
    return load_index(directory)


def lineage_indexes(model) -> list[OriginalityIndex]:
    """The indexes of everything a model learnt: its own, and those of the models it was
    fine-tuned from (`training.init` in each config: "bundled" or a checkpoint folder).
    model: a loaded model or a checkpoint folder (read without loading its weights)."""
    import json

    from composer.models import bundled_model_path

    directory = Path(model) if isinstance(model, (str, Path)) else getattr(model, "checkpoint_dir", None)
    found, seen = [], set()
    for _ in range(8):  # a chain of fine-tunes, at most this deep
        if directory is None or str(Path(directory).resolve()) in seen:
            break
        seen.add(str(Path(directory).resolve()))
        if index_exists(directory):
            found.append(load_index(directory))
        try:
            training = json.loads((Path(directory) / "config.json").read_text()).get("training") or {}
        except (OSError, ValueError, AttributeError):
            break
        init = training.get("init")
        directory = None if not init else bundled_model_path() if init == "bundled" else Path(init)
    return found


def bundled_index() -> OriginalityIndex | None:
    from composer.models import bundled_model_path

    return load_index(bundled_model_path()) if index_exists(bundled_model_path()) else None


# --- the planner's question -------------------------------------------------------------
def melody_check(index):
    """A callable for `structure.plan(melody_check=...)`: (notes, beats per bar) -> a
    description of the training melody copied for more than two bars, or None.
    index: an OriginalityIndex, a list of them (a model's lineage), or None."""
    indexes = [i for i in (index if isinstance(index, (list, tuple)) else [index]) if i is not None and i.melodies]
    if not indexes:
        return None

    def check(notes, beats_per_bar: int) -> str | None:
        array = np.asarray([(n.pitch, n.start, n.duration) for n in sorted(notes, key=lambda n: n.start)],
                           dtype=np.float32).reshape(-1, 3)
        for one in indexes:
            match = one.copied_melody(array, beats_per_bar)
            if match is not None:
                return (f"{match['bars']:g} bars of the training melody of {match['file']} "
                        f"(from bar {match['start_bar']:g})")
        return None

    return check


def check_plan_melodies(plan, index) -> None:
    """Refuse a plan (the user's own) whose melody copies a training melody for more than two bars."""
    check = melody_check(index)
    if check is None:
        return
    for section in plan.sections:
        if section.repeat_of or not section.melody:
            continue
        copied = check(section.melody, plan.beats_per_bar)
        if copied:
            raise InputError(f"plan: section {section.name}'s melody repeats {copied}, which the model learnt; "
                             "change the melody (the limit is 2 bars)")


# --- a render's report ----------------------------------------------------------------------
def check_render(audio: np.ndarray, sample_rate: int, plan, sections: list[dict],
                 index: OriginalityIndex) -> dict:
    """The `originality` block: per section the nearest training excerpt by audio, melody and
    chords, the largest similarities, and the verdict against the index's thresholds."""
    thresholds = index.thresholds
    rows, flags = [], []
    largest = {"audio": 0.0, "melody_bars": 0.0, "chord_bars": 0}
    by_name = {s.name: s for s in plan.sections}
    for entry in sections:
        start, end = int(entry["start"] * sample_rate), int(entry["end"] * sample_rate)
        row: dict = {"section": entry["name"]}
        matches = index.match_audio(audio[..., start:end], sample_rate, top=1)
        if matches:
            m = matches[0]
            row["audio"] = {"file": m["file"], "start": m["start"],
                            "section_time": round(entry["start"] + m["query_start"], 2),
                            "similarity": m["similarity"]}
            largest["audio"] = max(largest["audio"], m["similarity"])
            if m["similarity"] > thresholds["audio"]:
                flags.append(f"{entry['name']}: sounds like {m['file']} at {m['start']:g} s "
                             f"(similarity {m['similarity']:.2f}, threshold {thresholds['audio']:.2f})")
        section = by_name.get(entry["name"])
        if section is not None and section.melody:
            notes, bpb = plan_melody(_one_section(plan, section))
            match = index.match_melody(notes, bpb)
            if match is not None:
                row["melody"] = match
                largest["melody_bars"] = max(largest["melody_bars"], match["bars"])
                if match["bars"] > thresholds.get("melody_bars", 2.0):
                    flags.append(f"{entry['name']}: melody repeats {match['bars']:g} bars of {match['file']}")
        if section is not None and index.chords:
            match = index.match_chords(plan_chords(_one_section(plan, section)))
            if match is not None:
                row["chords"] = match
                largest["chord_bars"] = max(largest["chord_bars"], match["bars"])
                if "chord_bars" in thresholds and match["bars"] > thresholds["chord_bars"]:
                    flags.append(f"{entry['name']}: {match['bars']} bars of the chords of {match['file']}")
        rows.append(row)
    return {"index": {"data_identity": index.meta.get("data_identity"), "files": len(index.files),
                      "hours": index.meta.get("hours"), "datasets": index.meta.get("datasets")},
            "thresholds": {k: thresholds.get(k) for k in ("audio", "melody_bars", "chord_bars", "calibrated")},
            "sections": rows, "largest": {**largest, "audio": round(largest["audio"], 4)},
            "verdict": "close to training data" if flags else "original", "flags": flags}


def _one_section(plan, section):
    from structure.schema import SongPlan

    return SongPlan(title=plan.title, tempo_bpm=plan.tempo_bpm, beats_per_bar=plan.beats_per_bar, key=plan.key,
                    sections=[section], tags=dict(plan.tags), style=plan.style, beat_division=plan.beat_division)


# --- "was this in the training set?" ---------------------------------------------------------
def query(paths: list[str], index: OriginalityIndex, *, top: int = 5) -> list[dict]:
    """Per audio file: the training excerpts above the threshold (`matches`) and the nearest
    one whatever its similarity; a file that cannot be read gets an `error` instead."""
    from composer.data.audio import AudioError, audio_read
    from composer.originality.fingerprint import SAMPLE_RATE

    answers = []
    threshold = index.thresholds["audio"]
    from composer.data.datasets import check_audio

    for path in paths:
        # judged as restyle judges its input: too short, truncated or silent audio cannot be told
        # apart from the training set, and "not in the training set" would clear it falsely
        health = check_audio(path, min_seconds=1.0, max_seconds=24 * 3600.0) if Path(path).is_file() else None
        if health is not None and health.refusals:  # (a folder or a missing path: audio_read says which)
            answers.append({"query": str(path), "error": "; ".join(health.refusals)})
            continue
        try:
            audio, rate = audio_read(path, sample_rate=SAMPLE_RATE, channels=1)
        except (AudioError, InputError, OSError) as error:
            answers.append({"query": str(path), "error": str(error)})
            continue
        matches = index.match_audio(audio, rate, top=top)
        answers.append({"query": str(path),
                        "matches": [m for m in matches if m["similarity"] > threshold],
                        "nearest": matches[0] if matches else None})
    return answers
