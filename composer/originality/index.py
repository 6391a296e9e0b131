"""The originality index: what a model learnt, searchable by sound, melody and chords.

Built from the training rows of datasets (what `iter_accepted` yields, validation
split left out), stored next to a checkpoint as `originality.safetensors` (arrays)
and `originality.json` (the files it indexes, with their content hashes, and the
calibrated thresholds):

- audio: a fingerprint vector every second (`composer.originality.fingerprint`),
  centred and whitened by the statistics of the indexed windows, so what all
  songs of a style share does not count as a match; exact search (a matrix
  product: a few thousand windows a minute of song);
- melody: every note of every planned song (pitch, start and length in beats),
  matched by runs of equal intervals and rhythms (transposition-free);
- chords: one token per bar (root relative to the key, and quality), matched by
  runs of equal bars.

Thresholds are calibrated on held-out music (the datasets' validation split and
any `heldout` folders): the audio threshold is the 99.9th percentile of held-out
10-second excerpts' best similarity to the index; a melody copies when it repeats
a training melody for more than `MELODY_BARS_LIMIT` bars; the chord threshold is
the 99.9th percentile of held-out songs' longest shared run (common progressions
are everywhere, so only an unusually long run counts).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from composer.errors import InputError
from composer.originality import fingerprint as fp
from composer.originality.search import search

log = logging.getLogger(__name__)

INDEX_NAME = "originality"  # originality.safetensors + originality.json
INDEX_VERSION = 1
COMPONENTS = 96  # whitened dimensions kept per window (float16: 192 bytes a second of audio)
EXCERPT_SECONDS = 10.0  # held-out excerpts the audio threshold is calibrated on
PERCENTILE = 99.9
MELODY_BARS_LIMIT = 2.0  # a melody that repeats a training melody for longer copies it
UNCALIBRATED_AUDIO_THRESHOLD = 0.6  # used (and said) when no held-out music was given
MIN_RUN_NOTES = 4  # shortest melody run worth reporting (3 intervals)
_ROOTS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


# --- symbolic material ----------------------------------------------------------
def plan_melody(plan) -> tuple[np.ndarray, int]:
    """A song's melody `[notes, 3]` (pitch, start beat, length in beats), sections laid end
    to end, and its beats per bar."""
    rows, offset = [], 0.0
    for section in plan.sections:
        for note in sorted(section.melody, key=lambda n: n.start):
            rows.append((note.pitch, offset + note.start, note.duration))
        offset += section.bars * plan.beats_per_bar
    return np.asarray(rows, dtype=np.float32).reshape(-1, 3), int(plan.beats_per_bar)


def _chord_token(symbol: str, tonic: int) -> str:
    """'Am7' in C -> '9:m7': root relative to the key's tonic, and the rest of the symbol."""
    if not symbol or symbol[0] not in _ROOTS:
        return "N"
    root, rest = _ROOTS[symbol[0]], symbol[1:]
    while rest[:1] in ("#", "b"):
        root += 1 if rest[0] == "#" else -1
        rest = rest[1:]
    rest = rest.split("/")[0]
    return f"{(root - tonic) % 12}:{rest}"


def plan_chords(plan) -> list[str]:
    """One token per bar (its chords, relative to the key) for the whole song."""
    tonic = plan.key.pitch_class
    tokens = []
    for section in plan.sections:
        for b in range(section.bars):
            bar = section.chords[b] if b < len(section.chords) else []
            tokens.append(" ".join(_chord_token(c, tonic) for c in bar) or "N")
    return tokens


def _intervals(notes: np.ndarray) -> list[tuple[int, int]]:
    """Tokens between consecutive notes: (pitch step, onset step in 1/12 beats)."""
    if len(notes) < 2:
        return []
    steps = np.diff(notes[:, 0]).astype(int)
    iois = np.round(np.diff(notes[:, 1]) * 12).astype(int)
    return list(zip(steps.tolist(), iois.tolist()))


def longest_common_run(a: list, b: list, min_len: int = 1) -> tuple[int, int, int]:
    """(length, start in a, start in b) of the longest run of equal tokens in both."""
    if not a or not b:
        return 0, 0, 0
    positions: dict = {}
    for j in range(len(b) - min_len + 1):
        positions.setdefault(tuple(b[j: j + min_len]), []).append(j)
    best = (0, 0, 0)
    for i in range(len(a) - min_len + 1):
        for j in positions.get(tuple(a[i: i + min_len]), ()):
            if i > 0 and j > 0 and a[i - 1] == b[j - 1]:
                continue  # inside a run found from an earlier start
            n = min_len
            while i + n < len(a) and j + n < len(b) and a[i + n] == b[j + n]:
                n += 1
            if n > best[0]:
                best = (n, i, j)
    return best


# --- the index ------------------------------------------------------------------
@dataclass
class OriginalityIndex:
    vectors: np.ndarray  # [windows, COMPONENTS] float16, whitened and unit length
    window_file: np.ndarray  # [windows] int32
    window_start: np.ndarray  # [windows] float32 seconds
    mean: np.ndarray  # [fp.dimension()] float32
    projection: np.ndarray  # [fp.dimension(), COMPONENTS] float32
    files: list[dict]  # {"file", "dataset", "sha256", "seconds"}
    melodies: dict[int, tuple[np.ndarray, int]] = field(default_factory=dict)  # file -> (notes, beats per bar)
    chords: dict[int, list[str]] = field(default_factory=dict)  # file -> a token per bar
    thresholds: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    # audio ------------------------------------------------------------------------
    def project(self, raw: np.ndarray) -> np.ndarray:
        y = (raw - self.mean) @ self.projection
        norms = np.linalg.norm(y, axis=1, keepdims=True)
        return (y / np.maximum(norms, 1e-12)).astype(np.float32)

    def match_audio(self, audio: np.ndarray, sample_rate: int, *, top: int = 5) -> list[dict]:
        """The training excerpts this audio matches best, best first (one per file)."""
        raw, times = fp.fingerprint(audio, sample_rate, hop=fp.QUERY_HOP)
        if len(raw) == 0:
            return []
        matches = search(self.project(raw), times, self.vectors, self.window_file, self.window_start, top=top)
        return [{"file": self.files[m.file]["file"], "dataset": self.files[m.file].get("dataset"),
                 "start": round(m.start, 2), "query_start": round(m.query_start, 2),
                 "seconds": round(fp.WINDOW_SECONDS + (m.windows - 1) * fp.INDEX_HOP, 2),
                 "similarity": round(m.similarity, 4)} for m in matches]

    # melody and chords ------------------------------------------------------------------
    def match_melody(self, notes: np.ndarray, beats_per_bar: int) -> dict | None:
        """The training melody this melody repeats longest: file, where, and for how many bars."""
        query = _intervals(notes)
        best = None
        for file, (train_notes, train_bpb) in self.melodies.items():
            length, i, j = longest_common_run(query, _intervals(train_notes), min_len=MIN_RUN_NOTES - 1)
            if length < MIN_RUN_NOTES - 1:
                continue
            first, last = i, i + length  # notes first..last take part
            beats = float(notes[last, 1] + notes[last, 2] - notes[first, 1])
            bars = beats / beats_per_bar
            if best is None or bars > best["bars"]:
                best = {"file": self.files[file]["file"], "start_bar": round(float(train_notes[j, 1]) / train_bpb, 2),
                        "query_bar": round(float(notes[first, 1]) / beats_per_bar, 2),
                        "notes": length + 1, "bars": round(bars, 2)}
        return best

    def match_chords(self, tokens: list[str]) -> dict | None:
        """The training song sharing the longest run of bars of chords (relative to the key)."""
        best = None
        for file, train in self.chords.items():
            length, i, j = longest_common_run(tokens, train)
            if length and (best is None or length > best["bars"]):
                best = {"file": self.files[file]["file"], "start_bar": j, "query_bar": i, "bars": length}
        return best

    def copied_melody(self, notes: np.ndarray, beats_per_bar: int) -> dict | None:
        """The match when a melody repeats a training melody for more than the limit, else None."""
        match = self.match_melody(notes, beats_per_bar)
        limit = self.thresholds.get("melody_bars", MELODY_BARS_LIMIT)
        # a bar of one beat (1/4) is too short to count in: the limit is at least that many bars of 2/4
        if match is not None and match["bars"] * beats_per_bar > limit * max(beats_per_bar, 2):
            return match
        return None

    # storage ------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        from safetensors.numpy import save_file

        from composer.data.audio import atomic_path, write_text_atomic

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {"vectors": self.vectors.astype(np.float16), "window_file": self.window_file.astype(np.int32),
                   "window_start": self.window_start.astype(np.float32), "mean": self.mean.astype(np.float32),
                   "projection": self.projection.astype(np.float32)}
        melody_files = sorted(self.melodies)
        if melody_files:
            tensors["melody_notes"] = np.concatenate([self.melodies[f][0] for f in melody_files]).astype(np.float32)
            tensors["melody_counts"] = np.asarray([len(self.melodies[f][0]) for f in melody_files], dtype=np.int32)
        tensors = {name: np.ascontiguousarray(array) for name, array in tensors.items()}  # safetensors writes memory order
        with atomic_path(directory / f"{INDEX_NAME}.safetensors") as tmp:
            save_file(tensors, str(tmp))
            arrays_sha256 = file_sha256(tmp)
        # the JSON names the arrays it goes with: a kill between the two writes is found on loading
        body = {"version": INDEX_VERSION, "fingerprint": fingerprint_settings(), "arrays_sha256": arrays_sha256,
                "files": self.files,
                "melody_files": [[f, self.melodies[f][1]] for f in melody_files],
                "chords": {str(f): t for f, t in sorted(self.chords.items())},
                "thresholds": self.thresholds, **self.meta}
        write_text_atomic(directory / f"{INDEX_NAME}.json", json.dumps(body, indent=1) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> OriginalityIndex:
        from safetensors.numpy import load_file

        directory = Path(directory)
        meta_path, array_path = directory / f"{INDEX_NAME}.json", directory / f"{INDEX_NAME}.safetensors"
        if not meta_path.is_file() or not array_path.is_file():
            raise InputError(f"{directory}: no originality index ({INDEX_NAME}.json + {INDEX_NAME}.safetensors)")
        try:
            body = json.loads(meta_path.read_text())
            arrays = load_file(str(array_path))
        except Exception as error:  # noqa: BLE001 - any damage is the index's
            raise InputError(f"{directory}: damaged originality index ({type(error).__name__}: {error})") from None
        if body.get("arrays_sha256") not in (None, file_sha256(array_path)):
            raise InputError(f"{directory}: damaged originality index ({INDEX_NAME}.json and "
                             f"{INDEX_NAME}.safetensors are from different runs); rebuild it with "
                             "`composer originality index`")
        if body.get("fingerprint") != fingerprint_settings():
            raise InputError(f"{directory}: originality index made with other fingerprint settings; rebuild it "
                             f"with `composer originality index`")
        melodies: dict[int, tuple[np.ndarray, int]] = {}
        if "melody_notes" in arrays:
            at = 0
            for (file, bpb), count in zip(body["melody_files"], arrays["melody_counts"].tolist()):
                melodies[int(file)] = (arrays["melody_notes"][at: at + count], int(bpb))
                at += count
        meta = {k: v for k, v in body.items()
                if k not in ("version", "fingerprint", "arrays_sha256", "files", "melody_files", "chords", "thresholds")}
        return cls(vectors=arrays["vectors"].astype(np.float32), window_file=arrays["window_file"],
                   window_start=arrays["window_start"], mean=arrays["mean"], projection=arrays["projection"],
                   files=body["files"], melodies=melodies,
                   chords={int(f): t for f, t in body.get("chords", {}).items()},
                   thresholds=body.get("thresholds", {}), meta=meta)

    def nbytes(self) -> int:
        return int(self.vectors.size * 2 + self.window_file.nbytes + self.window_start.nbytes)


def fingerprint_settings() -> dict:
    return {"version": fp.FINGERPRINT_VERSION, "sample_rate": fp.SAMPLE_RATE, "frame_hop": fp.FRAME_HOP,
            "window": fp.WINDOW_SECONDS, "steps": fp.STEPS, "mel_bands": fp.MEL_BANDS,
            "index_hop": fp.INDEX_HOP, "query_hop": fp.QUERY_HOP}


def index_exists(directory: str | Path) -> bool:
    directory = Path(directory)
    return (directory / f"{INDEX_NAME}.json").is_file() and (directory / f"{INDEX_NAME}.safetensors").is_file()


# --- building ---------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _row_plan(folder: Path, fields: dict):
    from structure.schema import SongPlan

    name = fields.get("plan")
    if not name or not (folder / name).is_file():
        return None
    try:
        return SongPlan.from_json((folder / name).read_text())
    except Exception as error:  # noqa: BLE001 - a broken plan only loses its symbolic entries
        log.warning("%s: plan not readable (%s); its melody and chords are not indexed", folder / name, error)
        return None


def _dataset_rows(folders: list[str | Path], *, split: str, only: set[str] | None = None,
                  labels: str | Path | None = None) -> list[tuple[Path, Path, dict]]:
    """(dataset folder, audio path, fields) of the accepted rows in `split` ('train' or 'validation'),
    among the file names in `only` when given, with the labels an analysis wrote into `labels`
    (`composer.data.labelling.with_labels`)."""
    from composer.data.datasets import iter_accepted
    from composer.data.labelling import read_labels, with_labels

    analysed = read_labels(labels)

    rows = []
    for folder in folders:
        root = Path(folder)
        for row in iter_accepted(root, check_audio=False):
            if only is not None and row.file_name not in only:
                continue
            in_validation = row.fields.get("split") == "validation"
            if in_validation == (split == "validation"):
                rows.append((root, root / row.file_name, with_labels(dict(row.fields), analysed.get(row.file_name))))
    return rows


def build_index(folders: list[str | Path], *, heldout: list[str | Path] = (), progress: bool = True,
                command: str | None = None, only: set[str] | None = None,
                labels: str | Path | None = None) -> OriginalityIndex:
    """Index the training rows of `folders`; calibrate on their validation rows and `heldout`.
    only: the file names that may be read (`composer.train.data.accepted_rows`); labels: a folder
    an analysis of them was written into (`composer.data.labelling.analyze_dataset(into=)`)."""
    from tqdm import tqdm

    from composer.data.audio import audio_read

    started = time.monotonic()
    rows = _dataset_rows(folders, split="train", only=only, labels=labels)
    if not rows:
        raise InputError(f"{', '.join(map(str, folders))}: no training file with an allowed licence and consent")
    raw, window_file, window_start, files = [], [], [], []
    melodies: dict[int, tuple[np.ndarray, int]] = {}
    chords: dict[int, list[str]] = {}
    total = np.zeros(fp.dimension(), dtype=np.float64)
    scatter = np.zeros((fp.dimension(), fp.dimension()), dtype=np.float64)
    for folder, path, fields in tqdm(rows, desc="indexing", unit="file", disable=not progress):
        audio, rate = audio_read(path, sample_rate=fp.SAMPLE_RATE, channels=1)
        vectors, starts = fp.fingerprint(audio, rate, hop=fp.INDEX_HOP)
        number = len(files)
        files.append({"file": str(path.relative_to(folder)), "dataset": folder.resolve().name,
                      "sha256": file_sha256(path), "seconds": round(audio.shape[-1] / rate, 2)})
        raw.append(vectors)  # float32: whitening magnifies the rounding of small components
        window_file.append(np.full(len(starts), number, dtype=np.int32))
        window_start.append(starts)
        total += vectors.sum(axis=0)
        scatter += vectors.astype(np.float64).T @ vectors.astype(np.float64)
        plan = _row_plan(folder, fields)
        if plan is not None:
            notes, bpb = plan_melody(plan)
            if len(notes):
                melodies[number] = (notes, bpb)
            chords[number] = plan_chords(plan)
    count = sum(len(r) for r in raw)
    if count == 0:
        raise InputError(f"{', '.join(map(str, folders))}: every training file is silent; nothing to index")
    mean = total / count
    covariance = scatter / count - np.outer(mean, mean)
    values, basis = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1][:COMPONENTS]
    values, basis = np.clip(values[order], 0.0, None), basis[:, order]
    scale = np.sqrt(values) + 1e-3 * np.sqrt(max(float(values[0]), 1e-12))  # whiten, damped for tiny components
    projection = (basis / scale).astype(np.float32)
    if projection.shape[1] < COMPONENTS:
        projection = np.pad(projection, ((0, 0), (0, COMPONENTS - projection.shape[1])))
    index = OriginalityIndex(vectors=np.zeros((0, COMPONENTS), np.float32), window_file=np.concatenate(window_file),
                             window_start=np.concatenate(window_start).astype(np.float32),
                             mean=mean.astype(np.float32), projection=projection, files=files,
                             melodies=melodies, chords=chords)
    index.vectors = np.concatenate([index.project(r) for r in raw]).astype(np.float16)
    index.thresholds = calibrate(index, list(folders), list(heldout), progress=progress, only=only, labels=labels)
    index.meta = {"built_by": command, "datasets": [str(f) for f in folders],
                  "dataset_paths": [str(Path(f).resolve()) for f in folders], "heldout": [str(f) for f in heldout],
                  "windows": int(len(index.vectors)), "hours": round(sum(f["seconds"] for f in files) / 3600, 3),
                  "minutes_to_build": round((time.monotonic() - started) / 60, 2),
                  "data_identity": data_identity(files)}
    return index


def data_identity(files: list[dict]) -> str:
    """A short hash of the indexed files' contents: the identity of the data the index covers."""
    digest = hashlib.sha256("\n".join(sorted(f["sha256"] for f in files)).encode())
    return digest.hexdigest()[:16]


def calibrate(index: OriginalityIndex, folders: list, heldout: list, *, progress: bool = True,
              only: set[str] | None = None, labels: str | Path | None = None) -> dict:
    """Thresholds from held-out music: audio (99.9th percentile of 10-s excerpts' best
    similarity), chords (99.9th percentile of held-out songs' longest shared run of bars)."""
    from tqdm import tqdm

    from composer.data.audio import audio_read

    rows = _dataset_rows(folders, split="validation", only=only, labels=labels) + (_dataset_rows(heldout, split="train")
                                                         + _dataset_rows(heldout, split="validation")
                                                         if heldout else [])
    thresholds = {"melody_bars": MELODY_BARS_LIMIT, "percentile": PERCENTILE,
                  "excerpt_seconds": EXCERPT_SECONDS}
    audio_scores, chord_runs = [], []
    for folder, path, fields in tqdm(rows, desc="calibrating", unit="file", disable=not progress):
        audio, rate = audio_read(path, sample_rate=fp.SAMPLE_RATE, channels=1)
        step = int(EXCERPT_SECONDS * rate)
        for start in range(0, max(1, audio.shape[-1] - step + 1), step):
            matches = index.match_audio(audio[:, start: start + step], rate, top=1)
            audio_scores.append(matches[0]["similarity"] if matches else 0.0)
        plan = _row_plan(folder, fields)
        if plan is not None and index.chords:
            match = index.match_chords(plan_chords(plan))
            chord_runs.append(match["bars"] if match else 0)
    if audio_scores:
        thresholds["audio"] = round(float(np.percentile(audio_scores, PERCENTILE)), 4)
        thresholds["calibrated"] = True
    else:
        thresholds["audio"] = UNCALIBRATED_AUDIO_THRESHOLD
        thresholds["calibrated"] = False
        log.warning("no held-out music (no validation split, no --heldout): the audio threshold is the "
                    "uncalibrated default %.2f", UNCALIBRATED_AUDIO_THRESHOLD)
    thresholds["heldout_excerpts"] = len(audio_scores)
    thresholds["heldout_max"] = round(float(max(audio_scores)), 4) if audio_scores else None
    if chord_runs:
        thresholds["chord_bars"] = float(np.percentile(chord_runs, PERCENTILE))
    return thresholds


