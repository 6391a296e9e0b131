"""Datasets: audio folders with `metadata.jsonl` (the Hugging Face audiofolder convention).

A dataset is a folder of audio files plus `metadata.jsonl`, one JSON object a
line: `file_name` (a path relative to the folder) and its fields (title, tempo,
key, meter, mood, genre, lyrics, licence, consent, and any persona field such
as location or beard; unknown fields are kept).

`check_dataset` validates a whole folder and never stops at the first bad
file: every problem is collected into a `CheckReport`. A file is refused when
its licence is not allowed, its consent is not opt-in, a label has the wrong
type, or its audio is missing, undecodable, truncated, silent, too short or too
long, holds NaN, or duplicates another file. Training reads only what
`iter_accepted` yields.

Audio is never loaded whole just to be checked: `soundfile.info` gives rate,
channels and length from the header, and one pass over blocks finds NaN,
silence, clipping and the content hash. Formats libsndfile cannot read go
through ffmpeg (`composer.audio.audio_read`), which decodes the whole file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import soundfile as sf

from composer.audio import AudioError, audio_read, write_text_atomic
from composer.errors import InputError
from structure.plan import BEATS_PER_BAR_RANGE, TEMPO_RANGE, Key, PlanError

METADATA_NAME = "metadata.jsonl"
AUDIO_SUFFIXES = frozenset({
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aif", ".aiff", ".wma",
})
# "generated": music rendered by this project from public-domain or generated scores.
ALLOWED_LICENCES = frozenset({"public-domain", "cc0", "cc-by", "cc-by-sa", "own-work", "generated"})
OPT_IN_WORDS = frozenset({"opt-in", "optin", "opted-in", "yes", "true"})

SILENCE_DBFS = -60.0  # a file whose peak stays below this is silent
CLIP_LEVEL = 0.999  # |sample| at or above this counts as clipped
CLIP_WARN_RATIO = 0.01  # warn when more than this fraction of samples is clipped
MIN_SAMPLE_RATE = 8000  # Hz; below this a file is not music we can learn from
TRUNCATION_TOLERANCE = 0.05  # seconds decoded short of the header's length (MP3 headers estimate)
BLOCK_FRAMES = 1 << 16  # frames read at a time in the health pass

_LICENCE_ALIASES = {
    "pd": "public-domain",
    "publicdomain": "public-domain",
    "public-domain-mark": "public-domain",
    "cc-zero": "cc0",
    "cc-0": "cc0",
    "creative-commons-zero": "cc0",
    "ownwork": "own-work",
    "own": "own-work",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset. `line` is the metadata.jsonl line, when one is at fault."""

    file: str
    line: int | None
    message: str

    def location(self) -> str:
        if self.line is None:
            return self.file
        if self.file == METADATA_NAME:
            return f"{METADATA_NAME} line {self.line}"
        return f"{self.file} ({METADATA_NAME} line {self.line})"

    def __str__(self) -> str:
        return f"{self.location()}: {self.message}"


@dataclass
class MetadataRow:
    """One line of metadata.jsonl.

    `fields` holds every key except `file_name`, unknown ones included. A line
    that cannot be used (not JSON, not an object, no string `file_name`) is
    kept as a row with `problem` set, so a reader can report it and go on.
    """

    line: int
    file_name: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None

    @property
    def licence(self) -> str | None:
        """The normalised licence ("cc-by-sa", "public-domain", ...), or None when absent."""
        value = self.fields.get("licence", self.fields.get("license"))
        return normalise_licence(value) if isinstance(value, str) else None

    def to_dict(self) -> dict[str, Any]:
        if self.problem is not None or self.file_name is None:
            raise InputError(f"{METADATA_NAME} line {self.line}: cannot write a malformed row "
                             f"({self.problem})")
        return {"file_name": self.file_name, **self.fields}


@dataclass
class CheckReport:
    """What `check_dataset` found. `accepted` lists file names in metadata order."""

    folder: str
    accepted: list[str] = field(default_factory=list)
    refused: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def refused_files(self) -> list[str]:
        """The distinct files (or metadata.jsonl) with at least one refusal, in report order."""
        return list(dict.fromkeys(problem.file for problem in self.refused))

    def format(self) -> str:
        """One line per problem naming the file, then a summary line."""
        lines = [f"refused {problem}" for problem in self.refused]
        lines += [f"warning {problem}" for problem in self.warnings]
        lines.append(f"{self.folder}: {len(self.accepted)} accepted, "
                     f"{len(self.refused_files)} refused ({len(self.refused)} problems), "
                     f"{len(self.warnings)} warnings")
        return "\n".join(lines)


# --- licence and consent ----------------------------------------------------
def normalise_licence(text: str) -> str:
    """Canonical licence name: "CC BY-SA 4.0" -> "cc-by-sa", "Public Domain" -> "public-domain"."""
    name = re.sub(r"[\s_]+", "-", text.strip().lower())
    name = re.sub(r"-+", "-", name).strip("-")
    name = re.sub(r"-(international|unported|generic)$", "", name)
    name = re.sub(r"-v?\d+(\.\d+)*$", "", name)  # version: "cc-by-4.0", "cc0-1.0"
    return _LICENCE_ALIASES.get(name, name)


def allowed_licence_set(licences: Iterable[str] | None = None) -> frozenset[str]:
    """Normalised allowed licences; None gives `ALLOWED_LICENCES`."""
    if licences is None:
        return ALLOWED_LICENCES
    return frozenset(normalise_licence(licence) for licence in licences)


def is_opt_in(consent: Any) -> bool:
    """True for `true`, "opt-in" or "yes" (any case and spacing); anything else is not consent."""
    if consent is True:
        return True
    if isinstance(consent, str):
        return re.sub(r"[\s_-]+", "-", consent.strip().lower()) in OPT_IN_WORDS
    return False


# --- reading and writing metadata.jsonl -------------------------------------
def read_metadata(folder: str | os.PathLike) -> list[MetadataRow]:
    """Read `folder/metadata.jsonl`, one row per non-blank line.

    Malformed lines come back as rows with `problem` set instead of stopping
    the read. Raises InputError when the file does not exist.
    """
    path = Path(folder) / METADATA_NAME
    if not path.is_file():
        raise InputError(f"{path}: not found (a dataset folder needs {METADATA_NAME})")
    rows = []
    with path.open("rb") as handle:  # line by line: metadata of a large archive stays small
        for number, raw in enumerate(handle, start=1):
            row = _parse_line(number, raw)
            if row is not None:
                rows.append(row)
    return rows


def _parse_line(number: int, raw: bytes) -> MetadataRow | None:
    try:
        text = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
    except UnicodeDecodeError:
        return MetadataRow(number, None, problem="not UTF-8 text")
    if not text:
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        return MetadataRow(number, None, problem=f"not valid JSON ({error.msg}, column {error.colno})")
    if not isinstance(record, dict):
        return MetadataRow(number, None, problem=f"expected a JSON object, got {_json_type(record)}")
    name = record.pop("file_name", None)
    if name is None:
        return MetadataRow(number, None, record, problem="no file_name")
    if not isinstance(name, str) or not name.strip():
        return MetadataRow(number, None, record,
                           problem=f"file_name must be a non-empty string, got {name!r}")
    return MetadataRow(number, name, record)


def write_metadata(folder: str | os.PathLike,
                   rows: Iterable[MetadataRow | Mapping[str, Any]]) -> Path:
    """Write `folder/metadata.jsonl` atomically; rows are MetadataRow or dicts with file_name."""
    lines = []
    for index, row in enumerate(rows, start=1):
        record = row.to_dict() if isinstance(row, MetadataRow) else dict(row)
        name = record.pop("file_name", None)
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"metadata row {index}: file_name must be a non-empty string, got {name!r}")
        try:
            lines.append(json.dumps({"file_name": name, **record}, ensure_ascii=False, allow_nan=False))
        except (TypeError, ValueError) as error:
            raise InputError(f"metadata row {index} ({name}): cannot be written as JSON: {error}") from None
    path = Path(folder) / METADATA_NAME
    write_text_atomic(path, "".join(line + "\n" for line in lines))
    return path


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


# --- label checks -------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_tempo(value: Any) -> str | None:
    low, high = TEMPO_RANGE
    if not _is_number(value) or not math.isfinite(value):
        return f"tempo must be a number of beats per minute, got {value!r}"
    if not low <= value <= high:
        return f"tempo {value:g} is outside {low:g}..{high:g} BPM"
    return None


def _check_key(value: Any) -> str | None:
    try:
        Key.parse(value)
    except PlanError as error:
        return str(error)
    return None


def _check_beats(name: str, value: Any) -> str | None:
    low, high = BEATS_PER_BAR_RANGE
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        return f"{name} must be a whole number of beats per bar in {low}..{high}, got {value!r}"
    return None


def _check_meter(value: Any) -> str | None:
    """An int (beats per bar) or a time signature such as "3/4" or "6/8"."""
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(1|2|4|8|16|32)\s*", value)
        if not match:
            return f"meter must be beats per bar or a time signature such as '3/4', got {value!r}"
        return _check_beats("meter", int(match.group(1)))
    return _check_beats("meter", value)


def _check_text(name: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if isinstance(value, str) else f"{name} must be a string, got {value!r}"
    return check


def _check_labels(name: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return None
        return f"{name} must be a string or a list of strings, got {value!r}"
    return check


# Fields with a known type; any other field is kept unchecked (persona fields and the like).
FIELD_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "tempo": _check_tempo,
    "key": _check_key,
    "meter": _check_meter,
    "beats_per_bar": lambda value: _check_beats("beats_per_bar", value),
    "lyrics": _check_text("lyrics"),
    "title": _check_text("title"),
    "mood": _check_labels("mood"),
    "genre": _check_labels("genre"),
}


def _unsafe_file_name(file_name: str) -> str | None:
    """Why `file_name` points outside the dataset folder, or None when it does not."""
    name = PurePosixPath(file_name)
    if name.is_absolute() or ".." in name.parts or "\\" in file_name:
        return f"file_name {file_name!r} must be a relative path inside the dataset folder"
    return None


def _row_problems(row: MetadataRow, allowed: frozenset[str]) -> list[str]:
    """Everything wrong with a row's labels, licence and consent (no audio is read)."""
    problems = []
    for key, check in FIELD_CHECKS.items():
        if key in row.fields:
            problem = check(row.fields[key])
            if problem:
                problems.append(problem)
    licence = row.fields.get("licence", row.fields.get("license"))
    if licence is None:
        problems.append("no licence field")
    elif not isinstance(licence, str):
        problems.append(f"licence must be a string, got {licence!r}")
    elif normalise_licence(licence) not in allowed:
        problems.append(f"licence {licence!r} is not allowed (allowed: {', '.join(sorted(allowed))})")
    if "consent" not in row.fields:
        problems.append("no consent field (needs opt-in: true, \"opt-in\" or \"yes\")")
    elif not is_opt_in(row.fields["consent"]):
        problems.append(f"consent {row.fields['consent']!r} is not opt-in")
    return problems


# --- audio checks -------------------------------------------------------------
@dataclass
class AudioStats:
    """What one pass over a file's samples found. `expected_frames`: the header's length."""

    sample_rate: int = 0
    channels: int = 0
    frames: int = 0
    expected_frames: int | None = None
    peak: float = 0.0
    clipped: int = 0
    non_finite: int = 0
    digest: str | None = None
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


@dataclass
class AudioHealth:
    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    digest: str | None = None  # sha256 of the decoded PCM; None when the audio is unusable


def scan_audio(path: str | os.PathLike, *, stop_after_seconds: float | None = None) -> AudioStats:
    """Decode `path` block by block: rate, channels, length, peak, clipping, NaN count, sha256.

    The hash covers rate, channels and the decoded float32 samples, so the same
    recording in WAV and in FLAC hashes alike. `stop_after_seconds`: when the
    header already says the file is longer, skip the decoding pass.
    """
    path = Path(path)
    try:
        info = sf.info(str(path))
    except Exception:  # libsndfile does not know the format: ffmpeg decodes it whole
        return _scan_with_ffmpeg(path)
    stats = AudioStats(sample_rate=int(info.samplerate), channels=int(info.channels),
                       expected_frames=int(info.frames) if info.frames > 0 else None)
    if stop_after_seconds is not None and info.frames > stop_after_seconds * info.samplerate:
        stats.frames = int(info.frames)
        return stats
    digest = _new_digest(stats.sample_rate, stats.channels)
    try:
        with sf.SoundFile(str(path)) as sound:
            while True:
                block = sound.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
                if not len(block):
                    break
                _add_block(stats, block)
                digest.update(np.ascontiguousarray(block).tobytes())
    except Exception as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        stats.error = f"cannot decode after {stats.seconds:.2f} s ({message})"
        return stats
    stats.digest = digest.hexdigest()
    return stats


def _scan_with_ffmpeg(path: Path) -> AudioStats:
    try:
        audio, rate = audio_read(path)
    except AudioError as error:
        return AudioStats(error=str(error).removeprefix(f"{path}: "))
    stats = AudioStats(sample_rate=rate, channels=audio.shape[0])
    frames = np.ascontiguousarray(audio.T)  # [samples, channels], as soundfile reads
    _add_block(stats, frames)
    digest = _new_digest(rate, audio.shape[0])
    digest.update(frames.tobytes())
    stats.digest = digest.hexdigest()
    return stats


def _new_digest(sample_rate: int, channels: int):
    digest = hashlib.sha256()
    digest.update(f"{sample_rate}:{channels}:".encode())
    return digest


def _add_block(stats: AudioStats, block: np.ndarray) -> None:
    """Fold one `[frames, channels]` block into the running statistics."""
    finite = np.isfinite(block)
    stats.non_finite += int(block.size - np.count_nonzero(finite))
    magnitude = np.abs(np.where(finite, block, 0.0))
    stats.peak = max(stats.peak, float(magnitude.max(initial=0.0)))
    stats.clipped += int(np.count_nonzero(magnitude >= CLIP_LEVEL))
    stats.frames += len(block)


def check_audio(path: str | os.PathLike, *, min_seconds: float = 1.0, max_seconds: float = 1800,
                sample_rate: int | None = None) -> AudioHealth:
    """Judge one audio file: decodes, not truncated, no NaN, not silent, length within limits.

    sample_rate: the rate training will use (Hz); a file below it is warned about,
    since upsampling cannot restore the missing band.
    """
    path = Path(path)
    health = AudioHealth()
    if not path.is_file():
        health.refusals.append("file not found")
        return health
    if path.stat().st_size == 0:
        health.refusals.append("empty file")
        return health
    stats = scan_audio(path, stop_after_seconds=max_seconds)
    if stats.error:
        health.refusals.append(stats.error)
        return health
    if stats.frames == 0:
        health.refusals.append("no audio samples")
        return health
    seconds = stats.seconds
    if stats.expected_frames and stats.frames < stats.expected_frames - TRUNCATION_TOLERANCE * stats.sample_rate:
        health.refusals.append(f"truncated: the header says {stats.expected_frames / stats.sample_rate:.2f} s, "
                               f"only {seconds:.2f} s decode")
    if stats.sample_rate < MIN_SAMPLE_RATE:
        health.refusals.append(f"sample rate {stats.sample_rate} Hz is below {MIN_SAMPLE_RATE} Hz")
    elif sample_rate is not None and stats.sample_rate < sample_rate:
        health.warnings.append(f"sample rate {stats.sample_rate} Hz is below the training rate "
                               f"{sample_rate} Hz (upsampled, no high band)")
    if stats.channels > 2:
        health.warnings.append(f"{stats.channels} channels (mixed down for training)")
    if seconds < min_seconds:
        health.refusals.append(f"too short: {seconds:.2f} s (minimum {min_seconds:g} s)")
    if seconds > max_seconds:
        health.refusals.append(f"too long: {seconds:.1f} s (maximum {max_seconds:g} s)")
    if stats.digest is None:  # decoding was skipped because the file is too long
        return health
    if stats.non_finite:
        health.refusals.append(f"{stats.non_finite} NaN or infinite samples")
    elif stats.peak < 10 ** (SILENCE_DBFS / 20):
        level = 20 * math.log10(stats.peak) if stats.peak > 0 else -math.inf
        health.refusals.append(f"silent: peak {level:.1f} dBFS (below {SILENCE_DBFS:g} dBFS)")
    total = stats.frames * max(stats.channels, 1)
    if stats.clipped / total > CLIP_WARN_RATIO:
        health.warnings.append(f"clipping: {stats.clipped / total:.1%} of samples at full scale")
    if not health.refusals:
        health.digest = stats.digest
    return health


# --- the whole dataset --------------------------------------------------------
def check_dataset(folder: str | os.PathLike, *, allowed_licences: Iterable[str] | None = None,
                  min_seconds: float = 1.0, max_seconds: float = 1800,
                  sample_rate: int | None = None) -> CheckReport:
    """Check every row of `folder/metadata.jsonl` and every audio file in the folder.

    allowed_licences: licence names (any spelling); None gives `ALLOWED_LICENCES`.
    min_seconds, max_seconds: accepted length of one file, in seconds.
    sample_rate: the training rate in Hz (files below it get a warning).
    Raises InputError only when `folder` is not a directory; everything else
    is a Problem in the report.
    """
    report, _ = _check(folder, allowed_licences=allowed_licences, min_seconds=min_seconds,
                       max_seconds=max_seconds, sample_rate=sample_rate)
    return report


def iter_accepted(folder: str | os.PathLike, allowed_licences: Iterable[str] | None = None, *,
                  check_audio: bool = True) -> Iterator[MetadataRow]:
    """The rows training may use, in metadata order.

    check_audio: run the full `check_dataset` (decoding every file once); with
    False only labels, licence, consent and the file's existence are checked.
    Raises InputError when the folder or its metadata.jsonl is missing.
    """
    root = _dataset_folder(folder)
    if not (root / METADATA_NAME).is_file():
        raise InputError(f"{root / METADATA_NAME}: not found (a dataset folder needs {METADATA_NAME})")
    if check_audio:
        _, rows = _check(root, allowed_licences=allowed_licences)
        return iter(rows)
    allowed = allowed_licence_set(allowed_licences)
    seen: set[str] = set()
    rows = []
    for row in read_metadata(root):
        if row.problem is not None or _normalised_name(row.file_name) in seen:
            continue
        seen.add(_normalised_name(row.file_name))
        if (not _unsafe_file_name(row.file_name) and not _row_problems(row, allowed)
                and (root / row.file_name).is_file()):
            rows.append(row)
    return iter(rows)


def _check(folder: str | os.PathLike, *, allowed_licences: Iterable[str] | None,
           min_seconds: float = 1.0, max_seconds: float = 1800,
           sample_rate: int | None = None) -> tuple[CheckReport, list[MetadataRow]]:
    root = _dataset_folder(folder)
    allowed = allowed_licence_set(allowed_licences)
    report = CheckReport(folder=str(folder))
    accepted_rows: list[MetadataRow] = []
    if (root / METADATA_NAME).is_file():
        rows = read_metadata(root)
    else:
        rows = []
        report.refused.append(Problem(METADATA_NAME, None,
                                      "not found: a dataset needs one JSON object per audio file"))
    first_line: dict[str, int] = {}  # normalised file name -> its metadata line
    first_with_audio: dict[str, str] = {}  # content hash -> file name
    for row in rows:
        if row.problem is not None:
            report.refused.append(Problem(METADATA_NAME, row.line, row.problem))
            continue
        name = _normalised_name(row.file_name)
        if name in first_line:
            report.refused.append(Problem(row.file_name, row.line,
                                          f"listed again (first at line {first_line[name]})"))
            continue
        first_line[name] = row.line
        refusals = [Problem(row.file_name, row.line, message) for message in _row_problems(row, allowed)]
        unsafe = _unsafe_file_name(row.file_name)
        if unsafe:
            refusals.insert(0, Problem(row.file_name, row.line, unsafe))
        else:
            health = check_audio(root / row.file_name, min_seconds=min_seconds,
                                 max_seconds=max_seconds, sample_rate=sample_rate)
            refusals += [Problem(row.file_name, None, message) for message in health.refusals]
            report.warnings += [Problem(row.file_name, None, message) for message in health.warnings]
            if health.digest in first_with_audio:
                refusals.append(Problem(row.file_name, None,
                                        f"duplicate: the same audio as {first_with_audio[health.digest]}"))
            elif health.digest is not None:
                first_with_audio[health.digest] = row.file_name
        if refusals:
            report.refused += refusals
        else:
            report.accepted.append(row.file_name)
            accepted_rows.append(row)
    for orphan in _audio_files(root):
        if orphan not in first_line:
            report.warnings.append(Problem(orphan, None, f"no row in {METADATA_NAME} (not used)"))
    return report, accepted_rows


def _dataset_folder(folder: str | os.PathLike) -> Path:
    root = Path(folder)
    if not root.exists():
        raise InputError(f"{folder}: no such dataset folder")
    if not root.is_dir():
        raise InputError(f"{folder}: not a folder (a dataset is a folder with {METADATA_NAME})")
    return root


def _normalised_name(file_name: str) -> str:
    return PurePosixPath(file_name).as_posix()


def _audio_files(root: Path) -> list[str]:
    """Audio files under `root` (relative POSIX paths), skipping hidden files and folders."""
    names = []
    for directory, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_SUFFIXES:
                names.append((Path(directory) / name).relative_to(root).as_posix())
    return names
