"""`composer data analyze`: label archive audio (tempo, key, meter, chords, sections) by analysis.

Writes the same labels the corpus builder writes (a plan per file in `plans/`,
per-frame controls in `labels/`), and fills `tempo`, `key`, `beats_per_bar`,
`plan` and `labels` in metadata.jsonl where they are missing, so archives and
the rendered corpus train the same way. Resumable: files with a plan are skipped.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from composer.data.audio import audio_read, write_text_atomic

log = logging.getLogger(__name__)

LABEL_FRAME_RATE = 75.0


def analyze_dataset(folder: str | os.PathLike, *, overwrite: bool = False, progress: bool = True) -> dict:
    """Analyse every accepted file lacking labels; returns counts (labelled, skipped, failed)."""
    from tqdm import tqdm

    from composer.data.datasets import read_metadata, write_metadata
    from composer.data.metadata import unsafe_file_name
    from composer.errors import InputError, bad_input_types
    from structure.analysis import analyze, estimate_plan
    from structure.frame_controls import controls

    root = Path(folder)
    rows = read_metadata(root)
    broken = [row.line for row in rows if row.problem]
    if broken:  # rewriting metadata.jsonl would drop those lines: never lose what the user wrote
        raise InputError(f"{root / 'metadata.jsonl'}: lines {', '.join(map(str, broken))} are malformed; "
                         "fix them first (`composer data check` lists the problems)")
    backup = root / "metadata.jsonl.bak"
    if not backup.exists():
        write_text_atomic(backup, (root / "metadata.jsonl").read_text(encoding="utf-8"))
    counts = {"labelled": 0, "skipped": 0, "failed": 0}
    (root / "plans").mkdir(exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    for row in tqdm(rows, desc="analysing", unit="file", disable=not progress):
        if row.fields.get("plan") and not overwrite:
            counts["skipped"] += 1
            continue
        unsafe = unsafe_file_name(row.file_name)
        if unsafe:  # never read outside the dataset folder
            log.warning("line %d: %s", row.line, unsafe)
            counts["failed"] += 1
            continue
        try:
            audio, rate = audio_read(root / row.file_name, channels=1)
            analysis = analyze(audio, rate)
            tags = {k: str(v) for k, v in row.fields.items() if k in ("genre", "mood") and isinstance(v, str)}
            plan = estimate_plan(analysis, title=str(row.fields.get("title", Path(row.file_name).stem)), tags=tags)
        except bad_input_types() as error:
            log.warning("%s: %s", row.file_name, error)
            counts["failed"] += 1
            continue
        stem = Path(row.file_name).with_suffix("").as_posix().replace("/", "__")
        write_text_atomic(root / "plans" / f"{stem}.json", plan.to_json())
        frames = int(np.ceil(analysis.duration * LABEL_FRAME_RATE))
        label_path = root / "labels" / f"{stem}.npy"
        tmp = label_path.with_suffix(".tmp.npy")
        with open(tmp, "wb") as handle:
            np.save(handle, controls(plan, LABEL_FRAME_RATE, frames=frames).astype(np.float16), allow_pickle=False)
        os.replace(tmp, label_path)
        row.fields.setdefault("tempo", round(plan.tempo_bpm, 2))
        row.fields.setdefault("key", str(plan.key))
        row.fields.setdefault("beats_per_bar", plan.beats_per_bar)
        row.fields["plan"] = f"plans/{stem}.json"
        row.fields["labels"] = f"labels/{stem}.npy"
        row.fields["label_frame_rate"] = LABEL_FRAME_RATE
        row.fields["labels_source"] = "analysis"
        counts["labelled"] += 1
        write_metadata(root, rows)  # after each file: a kill loses one file's labels at most
    return counts
