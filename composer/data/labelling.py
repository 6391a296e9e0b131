"""`composer data analyze`: label archive audio (tempo, key, meter, chords, sections) by analysis.

Writes the same labels the corpus builder writes (a plan per file in `plans/`,
per-frame controls in `labels/`), and fills `tempo`, `key`, `beats_per_bar` (`beat_division` 3: compound),
`plan` and `labels` in metadata.jsonl where they are missing, so archives and
the rendered corpus train the same way. Resumable: files with a plan are skipped.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np

from composer.data.audio import audio_read, write_text_atomic

log = logging.getLogger(__name__)

LABEL_FRAME_RATE = 75.0


MAX_ITEM_SECONDS = 300.0  # longer tracks are cut into song-length items at section boundaries
MIN_ITEM_SECONDS = 90.0


LABELS_NAME = "labels.jsonl"  # an analysis written beside a dataset, not into it (`analyze_dataset(into=)`)
_LABEL_KEYS = ("plan", "labels", "label_frame_rate", "labels_source", "analysis_confidence",
               "labels_confident", "analysed_fields")
_MEASURED = ("tempo", "key", "beats_per_bar", "beat_division")
_OWN_METER = ("meter", "time_signature", "beats_per_bar")


def analyze_dataset(folder: str | os.PathLike, *, overwrite: bool = False, progress: bool = True,
                    max_item_seconds: float = MAX_ITEM_SECONDS, workers: int = 1,
                    ray_address: str | None = None, only: set[str] | None = None,
                    into: str | os.PathLike | None = None) -> dict:
    """Analyse every accepted file lacking labels; returns counts (labelled, skipped, failed,
    confident, cut, items) and `confident_share` of the labelled files.

    A track longer than `max_item_seconds` is cut at section boundaries into items written
    beside it (`NAME__partNN.flac`, rows with `parent`, `start`, `end`), each analysed on its
    own; the parent row keeps its file and gets `cut_into` (training reads the items). An
    analysis is `labels_confident` when its pulse is clear and both halves agree on the key
    (`structure.analysis.confidence`); diffusion training leaves the others out (they still
    train the codec). workers: analyse in that many local processes; ray_address: as Ray
    tasks (the writing stays in this process, in metadata order). only: analyse just these
    file names (a persona's accepted songs: a refused file is never read). into: write the
    labels into that folder instead (`plans/`, `labels/` and `labels.jsonl`, which
    `read_labels` and `with_labels` give back), leaving `folder` as it is: a persona's archive
    is the artist's, and may be read-only; no track is cut then."""
    from composer.batch.workers import check_ray_address

    check_ray_address(ray_address)
    from tqdm import tqdm

    from composer.data.datasets import (
        _contested,
        _normalised_name,
        allowed_licence_set,
        read_metadata,
        withdrawal,
        write_metadata,
    )
    from composer.data.metadata import row_problems, unsafe_file_name
    from composer.data.revocations import read_revocations
    from composer.errors import InputError, bad_input_types
    from structure.analysis import confidence, estimate_plan

    if Path(folder).exists() and not Path(folder).is_dir():
        raise InputError(f"{folder}: a file, not a dataset folder (a folder with audio and metadata.jsonl)")

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"--workers: {workers} must be >= 1")
    root = Path(folder)
    rows = read_metadata(root)
    target = root if into is None else Path(into)
    labels = None if into is None else read_labels(target)
    broken = [row.line for row in rows if row.problem]
    if broken and into is None:  # rewriting metadata.jsonl would drop those lines: never lose what the user wrote
        raise InputError(f"{root / 'metadata.jsonl'}: line{'s' * (len(broken) > 1)} {', '.join(map(str, broken))} "
                         f"{'are' if len(broken) > 1 else 'is'} malformed; "
                         "fix them first (`composer data check` lists the problems)")
    backup = root / "metadata.jsonl.bak"
    if into is None and not backup.exists():
        write_text_atomic(backup, (root / "metadata.jsonl").read_text(encoding="utf-8"))
    counts = {"labelled": 0, "skipped": 0, "failed": 0, "refused": 0, "confident": 0, "cut": 0, "items": 0}
    allowed, revoked = allowed_licence_set(None), read_revocations(root)
    (target / "plans").mkdir(parents=True, exist_ok=True)
    (target / "labels").mkdir(exist_ok=True)
    pending = []
    contested, first_line = _contested(rows, allowed, revoked), {}
    for row in rows:
        if row.problem or (only is not None and row.file_name not in only):
            continue
        name = _normalised_name(row.file_name)
        if name in first_line or name in contested:  # as data check: a second row, or a row another refuses
            log.warning("%s (line %d): not analysed, refused (%s)", row.file_name, row.line,
                        f"listed again (first at line {first_line[name]})" if name in first_line else contested[name])
            counts["refused"] += 1
            first_line.setdefault(name, row.line)
            continue
        first_line[name] = row.line
        if row.fields.get("cut_into") or (row.fields.get("plan") and not overwrite):
            counts["skipped"] += 1
            counts["confident"] += bool(row.fields.get("labels_confident", row.fields.get("plan")
                                                         and row.fields.get("labels_source") != "analysis"))
        elif unsafe_file_name(row.file_name):  # never read outside the dataset folder
            log.warning("line %d: %s", row.line, unsafe_file_name(row.file_name))
            counts["failed"] += 1
        elif withdrawal(row, revoked) or row_problems(row, allowed):  # what training refuses is never read
            log.warning("%s: not analysed, refused (%s)", row.file_name,
                        withdrawal(row, revoked) or "; ".join(row_problems(row, allowed)))
            counts["refused"] += 1
        elif labels is not None and row.file_name in labels and not overwrite:
            counts["skipped"] += 1  # analysed into the folder before (a second row of it is refused above)
            counts["confident"] += bool(labels[row.file_name].get("labels_confident"))
        else:
            pending.append(row)
    bar = tqdm(total=len(pending), desc="analysing", unit="file", disable=not progress)
    with _mapper(workers, ray_address) as mapper:
        while pending:  # rounds: the items of tracks cut in one round are analysed in the next
            next_round = []
            for row, analysis in zip(pending, mapper(_analyse_file, [str(root / r.file_name) for r in pending])):
                bar.update(1)
                if isinstance(analysis, str):
                    log.warning("%s: %s", row.file_name, analysis)
                    counts["failed"] += 1
                    continue
                if analysis.duration > max_item_seconds and not row.fields.get("parent") and into is None:
                    items = cut_long_track(root, row, analysis, max_seconds=max_item_seconds,
                                           listed={r.file_name for r in rows})
                    if items:
                        rows.extend(items)
                        next_round += items
                        bar.total += len(items)
                        counts["cut"] += 1
                        counts["items"] += len(items)
                        write_metadata(root, rows)
                        continue
                try:
                    tags = {k: str(v) for k, v in row.fields.items()
                            if k in ("genre", "mood") and isinstance(v, str)}
                    plan = estimate_plan(analysis, title=str(row.fields.get("title", Path(row.file_name).stem)),
                                         tags=tags)
                    trust = confidence(analysis)
                    _agree_with_given_labels(row, plan, trust)
                except bad_input_types() as error:
                    log.warning("%s: %s", row.file_name, error)
                    counts["failed"] += 1
                    continue
                counts["labelled"] += 1
                counts["confident"] += trust["confident"]
                if into is None:
                    _write_labels(root, row, plan, analysis, trust)
                    write_metadata(root, rows)  # after each file: a kill loses one file's labels at most
                else:
                    labelled_row = dataclasses.replace(row, fields=dict(row.fields))
                    _write_labels(target, labelled_row, plan, analysis, trust)
                    entry = {k: labelled_row.fields[k] for k in (*labelled_row.fields["analysed_fields"], *_LABEL_KEYS)}
                    _append_label(target, row.file_name, entry)  # after each file, as above
                    labels[row.file_name] = entry
            pending = next_round
    bar.close()
    if into is None:
        labelled = [r.fields for r in rows if r.fields.get("plan") and not r.fields.get("cut_into")]
    else:
        labelled = [with_labels(r.fields, labels.get(r.file_name)) for r in rows
                    if not r.problem and (only is None or r.file_name in only)]
        labelled = [f for f in labelled if f.get("plan")]
    counts["confident_share"] = round(sum(bool(f.get("labels_confident", True)) for f in labelled)
                                      / max(1, len(labelled)), 4)
    return counts


def _append_label(target: Path, file_name: str, entry: dict) -> None:
    """One file's analysis, appended to `labels.jsonl` and synced (a kill loses at most the line being written)."""
    import json

    path = target / LABELS_NAME
    torn = False
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            torn = handle.read(1) != b"\n"  # a kill mid-line: that line ends here, unreadable, skipped
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(("\n" if torn else "") + json.dumps({"file_name": file_name, **entry}, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def forget_labels(folder: str | os.PathLike, names: list[str]) -> None:
    """Take these files out of an analysis written into `folder` (their audio changed): the next
    `analyze_dataset(into=folder)` analyses them again."""
    import json

    path = Path(folder) / LABELS_NAME
    if not names or not path.is_file():
        return
    gone = set(names)
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("file_name") not in gone:
            kept.append(line)
    write_text_atomic(path, "".join(f"{line}\n" for line in kept))


def read_labels(folder: str | os.PathLike | None) -> dict[str, dict]:
    """The analysis written into `folder` (`analyze_dataset(into=folder)`): each file name's fields,
    its plan and labels as absolute paths; {} when there is none. The last line of a file wins; a
    line a kill left unfinished is skipped."""
    import json

    labels: dict[str, dict] = {}
    if folder is None or not (Path(folder) / LABELS_NAME).is_file():
        return labels
    root = Path(folder).resolve()
    for line in (root / LABELS_NAME).read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str):
            continue
        name = entry.pop("file_name")
        for key in ("plan", "labels"):
            if isinstance(entry.get(key), str):
                entry[key] = str(root / entry[key])
        labels[name] = entry
    return labels


def with_labels(fields: dict, labels: dict | None) -> dict:
    """A row's fields with the labels an analysis wrote beside its dataset (`read_labels`): none
    when the row has a plan of its own; the measured tempo, key and meter only where the row does
    not give its own (a row's own meter or time signature stands for both beats_per_bar and
    beat_division)."""
    if not labels or fields.get("plan"):
        return fields
    own_meter = any(fields.get(name) not in (None, "") for name in _OWN_METER)
    merged = dict(fields)
    taken = []
    for name in labels.get("analysed_fields") or ():
        if name in _MEASURED and fields.get(name) in (None, "") and not (own_meter and name in ("beats_per_bar", "beat_division")):
            merged[name] = labels[name]
            taken.append(name)
    merged.update({k: labels[k] for k in _LABEL_KEYS if k in labels})
    merged["analysed_fields"] = taken
    return merged


def _analysed_fields(row) -> set[str]:
    """The fields of a row an earlier analysis filled (not the user's): recorded in
    `analysed_fields`, or, for a row labelled before they were, tempo, key and beats_per_bar."""
    if row.fields.get("labels_source") == "analysis" and "analysed_fields" not in row.fields:
        return {"tempo", "key", "beats_per_bar"}
    return set(row.fields.get("analysed_fields") or ())


def _agree_with_given_labels(row, plan, trust: dict) -> None:
    """Labels the row already gives are the user's word: its key names the plan's key (the chords
    stay as analysed); a tempo (beyond 4 %) or meter the analysis does not find makes the
    labels unconfident (`trust`), so no diffusion model learns a beat grid that contradicts them."""
    from structure.prompt import parse_meter, parse_tempo
    from structure.schema import Key, PlanError

    filled = _analysed_fields(row)
    given = {k: v for k, v in row.fields.items() if k not in filled}  # an earlier analysis's are not the user's
    try:
        if isinstance(given.get("key"), str) and given["key"].strip():
            plan.key = Key.parse(given["key"], "key")
        tempo = parse_tempo(str(given["tempo"]), "tempo") if given.get("tempo") not in (None, "") else None
        meter = parse_meter(str(given["beats_per_bar"] if "beats_per_bar" in given else given.get("meter", "")),
                            "meter") if (given.get("beats_per_bar") or given.get("meter")) else None
    except PlanError as error:  # data check refuses such rows; analysed anyway, say it
        log.warning("%s: its own label is not read (%s)", row.file_name, error)
        return
    disagree = []
    if tempo is not None and abs(plan.tempo_bpm - tempo) > 0.04 * tempo:
        disagree.append(f"tempo {tempo:g} (analysed {plan.tempo_bpm:g})")
    # the analysis counts 3 or 4 beats a bar (of quarters, or of dotted quarters when it hears a compound
    # meter): a row's other counts (2/4, 6/8 as two beats) are not distrusted for it
    if meter is not None and meter.division == 2 and meter.beats in (3, 4) and meter.beats != plan.beats_per_bar:
        disagree.append(f"{meter.beats} beats a bar (analysed {plan.beats_per_bar})")
    elif meter is not None and (meter.division == 3) != (plan.beat_division == 3):  # 6/8 heard as 4/4, or 4/4 as 12/8
        disagree.append(f"{'compound' if meter.division == 3 else 'simple'} meter (analysed {plan.meter})")
    if disagree:
        log.warning("%s: the analysis does not find the row's %s; its labels are kept for the codec only",
                    row.file_name, " and ".join(disagree))
        trust["confident"] = False
        trust["disagrees_with"] = disagree


def label_stem(file_name: str) -> str:
    """The name of a file's plan and labels (`plans/STEM.json`, `labels/STEM.npy`): readable,
    and one per file: "x.wav" and "x.flac", or "a/b.wav" and "a__b.wav", get their own."""
    import hashlib

    readable = Path(file_name).with_suffix("").as_posix().replace("/", "__")
    return f"{readable}-{hashlib.sha1(file_name.encode('utf-8')).hexdigest()[:8]}"


def _same_audio(path: Path, audio: np.ndarray) -> bool:
    """Whether `path` holds `audio` as 16-bit FLAC (an item an earlier, killed run wrote)."""
    from composer.data.audio import AudioError

    try:
        there, _ = audio_read(path)
    except AudioError:  # unreadable: not what this analysis writes
        return False
    return there.shape == audio.shape and bool(np.abs(there - np.clip(audio, -1, 1)).max(initial=0.0) <= 2.0 / 32768)


def _write_labels(root: Path, row, plan, analysis, trust: dict) -> None:
    from structure.frame_controls import controls

    stem = label_stem(row.file_name)
    write_text_atomic(root / "plans" / f"{stem}.json", plan.to_json())
    frames = int(np.ceil(analysis.duration * LABEL_FRAME_RATE))
    label_path = root / "labels" / f"{stem}.npy"
    tmp = label_path.with_suffix(".tmp.npy")
    with open(tmp, "wb") as handle:
        np.save(handle, controls(plan, LABEL_FRAME_RATE, frames=frames).astype(np.float16), allow_pickle=False)
    os.replace(tmp, label_path)
    # the fields the analysis fills (the row's own stay): a later --overwrite replaces these, not those
    filled = _analysed_fields(row)
    own_meter = any(row.fields.get(name) not in (None, "") and name not in filled for name in _OWN_METER)
    for name, value in (("tempo", round(plan.tempo_bpm, 2)), ("key", str(plan.key)),
                        ("beats_per_bar", plan.beats_per_bar), ("beat_division", plan.beat_division)):
        if name in ("beats_per_bar", "beat_division") and own_meter:  # the row's own meter says it, not the analysis
            if name in filled:  # an earlier analysis's, from before the row gave its meter
                row.fields.pop(name, None)
                filled.discard(name)
            continue
        if name in filled or row.fields.get(name) in (None, ""):  # null or empty: left out, so measured
            row.fields[name] = value
            filled.add(name)
    row.fields["analysed_fields"] = sorted(filled)
    row.fields["plan"] = f"plans/{stem}.json"
    row.fields["labels"] = f"labels/{stem}.npy"
    row.fields["label_frame_rate"] = LABEL_FRAME_RATE
    row.fields["labels_source"] = "analysis"
    row.fields["analysis_confidence"] = {"pulse": trust["pulse"], "key_halves": trust["key_halves"],
                                         **({"disagrees_with": trust["disagrees_with"]}
                                            if trust.get("disagrees_with") else {})}
    row.fields["labels_confident"] = trust["confident"]


def _analyse_file(path: str):
    """One file's `Analysis`, or the reason it could not be analysed (runs in worker processes)."""
    from composer.errors import bad_input_types
    from structure.analysis import analyze

    try:
        audio, rate = audio_read(path, channels=1)
        return analyze(audio, rate)
    except bad_input_types() as error:
        return str(error)


class _mapper:
    """An ordered, lazy `map` over local processes (`workers` > 1), Ray tasks (`ray_address`:
    an address, "auto" or "local"), or this process."""

    def __init__(self, workers: int = 1, ray_address: str | None = None):
        self.workers, self.ray_address, self.pool, self.ray = max(1, int(workers)), ray_address, None, None

    def __enter__(self):
        if self.ray_address:
            from composer.batch.workers import _ray_init, _ray_module

            self.ray = _ray_module()
            self.started_ray = not self.ray.is_initialized()
            if self.started_ray:
                _ray_init(self.ray, self.ray_address, self.workers)
        elif self.workers > 1:
            from concurrent.futures import ProcessPoolExecutor

            from composer.processes import watch_parent

            self.pool = ProcessPoolExecutor(max_workers=self.workers, initializer=watch_parent,
                                            initargs=(os.getpid(),))
        return self

    def __call__(self, function, items):
        if self.ray is not None:
            remote = self.ray.remote(function)
            return (self.ray.get(ref) for ref in [remote.remote(item) for item in items])
        if self.pool is not None:
            return self.pool.map(function, items)
        return map(function, items)

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
        if self.ray is not None and self.started_ray:
            self.ray.shutdown()
        return False


def cut_points(boundaries: np.ndarray, duration: float, *, max_seconds: float,
               min_seconds: float) -> list[float]:
    """Where to cut a long track into song-length items: section boundaries, each item between
    `min_seconds` and `max_seconds` where the boundaries allow (else the nearest boundary past
    `max_seconds`, or a cut at `max_seconds` when no boundary is near). Returns the inner cuts."""
    cuts, start = [], 0.0
    candidates = sorted(float(b) for b in boundaries if 0.0 < b < duration)
    while duration - start > max_seconds:
        inside = [b for b in candidates if start + min_seconds <= b <= start + max_seconds]
        cut = inside[-1] if inside else start + max_seconds
        if duration - cut < min_seconds:  # the rest would be too short: split what is left in two
            halves = [b for b in candidates if start + min_seconds <= b <= duration - min_seconds]
            middle = (start + duration) / 2
            cut = min(halves, key=lambda b: abs(b - middle)) if halves else middle
        cuts.append(round(cut, 3))
        start = cut
    return cuts


def cut_long_track(root: Path, row, analysis, *, max_seconds: float, listed: set[str] = frozenset()) -> list:
    """Write a long track's song-length items (`NAME__partNN.flac`) and return their new rows;
    the parent row gets `cut_into` (kept, no longer trained on). A track whose item names are
    taken (`listed` in the metadata, or a file of other audio) is not cut: [] and a warning."""
    from composer.data.audio import audio_write
    from composer.data.metadata import MetadataRow

    cuts = cut_points(analysis.boundaries, analysis.duration, max_seconds=max_seconds,
                      min_seconds=MIN_ITEM_SECONDS)
    if not cuts:
        return []
    audio, rate = audio_read(root / row.file_name)  # every channel, the file's own rate
    edges = [0.0, *cuts, analysis.duration]
    stem = Path(row.file_name).with_suffix("")
    for number, (a, b) in enumerate(zip(edges, edges[1:]), 1):
        name = f"{stem.as_posix()}__part{number:02d}.flac"
        if name in listed or ((root / name).exists() and not _same_audio(root / name, audio[:, int(a * rate): int(b * rate)])):
            log.warning("%s: not cut into items (%s is already a file of the dataset); analysed whole",
                        row.file_name, name)
            return []
    items = []
    inherited = {k: v for k, v in row.fields.items()
                 if k not in ("plan", "labels", "label_frame_rate", "labels_source", "tempo", "key", "beats_per_bar",
                              "beat_division",
                              "duration", "sections", "analysis_confidence", "labels_confident", "cut_into")}
    for number, (a, b) in enumerate(zip(edges, edges[1:]), 1):
        name = f"{stem.as_posix()}__part{number:02d}.flac"
        audio_write(root / name, audio[:, int(a * rate): int(b * rate)], rate)
        items.append(MetadataRow(line=0, file_name=name, fields={
            **inherited, "parent": row.file_name, "start": round(a, 3), "end": round(b, 3),
            "duration": round(b - a, 3)}))
    row.fields["cut_into"] = [item.file_name for item in items]
    return items
