"""Datasets: audio folders with `metadata.jsonl` (the Hugging Face audiofolder convention).

A dataset is a folder of audio files plus `metadata.jsonl`, one JSON object a
line: `file_name` (a path relative to the folder) and its fields; reading,
writing and checking those labels is in `composer.data.metadata`.

`check_dataset` validates a whole folder and never stops at the first bad
file: every problem is collected into a `CheckReport`. A file is refused when
its licence is not allowed, its consent is neither opt-in nor a licence grant
(a licence that permits derivative works), a label has the wrong type, or its audio is missing, undecodable, truncated, silent, too short or too
long, holds NaN, or duplicates another file. Training reads only what
`iter_accepted` yields.

Audio is never loaded whole just to be checked: `soundfile.info` gives rate,
channels and length from the header, and one pass over blocks finds NaN,
silence, clipping and the content hash. Formats libsndfile cannot read go
through ffmpeg (`composer.data.audio.audio_read`), which decodes the whole file.
"""

from __future__ import annotations

import hashlib
import math
import os
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import soundfile as sf

from composer.data.audio import AudioError, audio_read
from composer.data.metadata import (
    ALLOWED_LICENCES,
    LICENCE_GRANT,
    METADATA_NAME,
    MetadataRow,
    allowed_licence_set,
    consent_kind,
    is_opt_in,
    normalise_licence,
    read_metadata,
    row_problems,
    unsafe_file_name,
    write_metadata,
)
from composer.errors import InputError

AUDIO_SUFFIXES = frozenset({
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aif", ".aiff", ".wma",
})

SILENCE_DBFS = -60.0  # a file whose peak stays below this is silent
CLIP_LEVEL = 0.999  # |sample| at or above this counts as clipped
CLIP_WARN_RATIO = 0.01  # warn when more than this fraction of samples is clipped
MIN_SAMPLE_RATE = 8000  # Hz; below this a file is not music we can learn from
TRUNCATION_TOLERANCE = 0.05  # seconds decoded short of the header's length (MP3 headers estimate)
BLOCK_FRAMES = 1 << 16  # frames read at a time in the health pass


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
class CheckReport:
    """What `check_dataset` found. `accepted` lists file names in metadata order;
    `consents` counts the accepted files by consent ("opt-in", "licence-grant")."""

    folder: str
    accepted: list[str] = field(default_factory=list)
    refused: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    consents: dict[str, int] = field(default_factory=dict)

    @property
    def refused_files(self) -> list[str]:
        """The distinct files (or metadata.jsonl) with at least one refusal, in report order."""
        return list(dict.fromkeys(problem.file for problem in self.refused))

    def format(self) -> str:
        """One line per problem naming the file, then a summary line (which, when any file was
        accepted on a licence grant, counts opt-in and licence-grant files apart)."""
        lines = [f"refused {problem}" for problem in self.refused]
        lines += [f"warning {problem}" for problem in self.warnings]
        summary = (f"{self.folder}: {len(self.accepted)} accepted, "
                   f"{len(self.refused_files)} refused ({len(self.refused)} problems), "
                   f"{len(self.warnings)} warnings")
        if self.consents.get(LICENCE_GRANT):
            summary += (f"; accepted by consent: {self.consents.get('opt-in', 0)} opt-in, "
                        f"{self.consents[LICENCE_GRANT]} licence-grant")
        lines.append(summary)
        return "\n".join(lines)


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
    declared = _wav_data_frames(path) if info.format == "WAV" else None
    stats = AudioStats(sample_rate=int(info.samplerate), channels=int(info.channels),
                       expected_frames=declared or (int(info.frames) if info.frames > 0 else None))
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


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system: no such file
        return False


def _wav_data_frames(path: Path) -> int | None:
    """The frames a WAV's header declares (its data chunk's size over the frame size), or None
    (no such header, or a stream's placeholder size). libsndfile counts the frames the file
    holds, so a WAV cut short would otherwise pass for a shorter, whole one."""
    import struct

    try:
        with open(path, "rb") as handle:
            head = handle.read(65536)
    except OSError:
        return None
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    offset, block_align = 12, None
    while offset + 8 <= len(head):
        chunk, size = head[offset: offset + 4], struct.unpack("<I", head[offset + 4: offset + 8])[0]
        if chunk == b"fmt " and offset + 22 <= len(head):
            block_align = struct.unpack("<H", head[offset + 20: offset + 22])[0]
        elif chunk == b"data":
            if not block_align or size == 0 or size >= 0x7FFFF000:  # a stream's "unknown" (ffmpeg, sox, arecord)
                return None
            return size // block_align
        offset += 8 + size + (size & 1)
    return None


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
    try:
        found = path.is_file()
    except OSError as error:  # a name too long for the file system, say: this file's problem, not the run's
        health.refusals.append(f"cannot open ({error.strerror or error})")
        return health
    if not found:
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
    from composer.data.revocations import read_revocations

    allowed = allowed_licence_set(allowed_licences)
    revoked = read_revocations(root)
    seen: set[str] = set()
    rows = []
    listed = read_metadata(root)
    contested = _contested(listed, allowed, revoked)
    for row in listed:
        if row.problem is not None or _normalised_name(row.file_name) in seen:
            continue
        if _normalised_name(row.file_name) in contested:
            seen.add(_normalised_name(row.file_name))
            continue
        if withdrawal(row, revoked) or row.fields.get("cut_into"):
            seen.add(_normalised_name(row.file_name))  # withdrawn, or trained through its items
            continue
        seen.add(_normalised_name(row.file_name))
        if (not unsafe_file_name(row.file_name) and not row_problems(row, allowed)
                and _is_file(root / row.file_name)):
            rows.append(row)
    return iter(rows)


def _check(folder: str | os.PathLike, *, allowed_licences: Iterable[str] | None,
           min_seconds: float = 1.0, max_seconds: float = 1800,
           sample_rate: int | None = None) -> tuple[CheckReport, list[MetadataRow]]:
    from composer.data.revocations import read_revocations

    root = _dataset_folder(folder)
    allowed = allowed_licence_set(allowed_licences)
    revoked = read_revocations(root)
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
    contested = _contested(rows, allowed, revoked)
    on_disk = {_normalised_name(name): name for name in _audio_files(root)}
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
        refusals = [Problem(row.file_name, row.line, message) for message in row_problems(row, allowed)]
        if name in contested:
            refusals.append(Problem(row.file_name, row.line, contested[name]))
        withdrawn = withdrawal(row, revoked)
        if withdrawn is not None:
            refusals.insert(0, Problem(row.file_name, row.line, withdrawn))
        unsafe = unsafe_file_name(row.file_name)
        if unsafe:
            refusals.insert(0, Problem(row.file_name, row.line, unsafe))
        elif not _is_file(root / row.file_name) and on_disk.get(name, row.file_name) != row.file_name:
            refusals.append(Problem(row.file_name, row.line, f"file not found as written: the folder has "
                                    f"{on_disk[name]!r}, the same name in another Unicode form (as macOS writes "
                                    "names); rename the file or write the row the same way"))
        else:
            health = check_audio(root / row.file_name, min_seconds=min_seconds,
                                 max_seconds=max_seconds, sample_rate=sample_rate)
            refusals += [Problem(row.file_name, row.line, message) for message in health.refusals]
            report.warnings += [Problem(row.file_name, None, message) for message in health.warnings]
            if health.digest in first_with_audio:
                refusals.append(Problem(row.file_name, None,
                                        f"duplicate: the same audio as {first_with_audio[health.digest]}"))
            elif health.digest is not None:
                first_with_audio[health.digest] = row.file_name
        if refusals:
            report.refused += refusals
        elif row.fields.get("cut_into"):
            report.warnings.append(Problem(row.file_name, row.line, f"cut into {len(row.fields['cut_into'])} "
                                                                    "song-length items; training reads those"))
        else:
            report.accepted.append(row.file_name)
            accepted_rows.append(row)
            kind = consent_kind(row.fields.get("consent"))
            report.consents[kind] = report.consents.get(kind, 0) + 1
    for orphan in _audio_files(root):
        if _normalised_name(orphan) not in first_line:
            report.warnings.append(Problem(orphan, None, f"no row in {METADATA_NAME} (not used)"))
    return report, accepted_rows


def _revoked(file_name: str, revoked: dict):
    from composer.data.revocations import _normalised

    return revoked.get(_normalised(file_name)) if revoked else None


def withdrawal(row: MetadataRow, revoked: dict) -> str | None:
    """Why consent for `row` is withdrawn, or None: its own withdrawal, or that of the long
    track it was cut from (`data analyze` writes items `NAME__partNN` with a `parent`)."""
    own = _revoked(row.file_name, revoked)
    if own is not None:
        return own.describe()
    parent = row.fields.get("parent")
    inherited = _revoked(parent, revoked) if isinstance(parent, str) and parent else None
    return f"cut from {parent}: {inherited.describe()}" if inherited is not None else None


def _dataset_folder(folder: str | os.PathLike) -> Path:
    root = Path(folder)
    if not root.exists():
        raise InputError(f"{folder}: no such dataset folder")
    if not root.is_dir():
        raise InputError(f"{folder}: not a folder (a dataset is a folder with {METADATA_NAME})")
    return root


def _normalised_name(file_name: str) -> str:
    """A row's or a file's name as compared: POSIX separators, Unicode NFC (macOS writes
    "Canção" decomposed, NFD; a row typed elsewhere holds it composed)."""
    return unicodedata.normalize("NFC", PurePosixPath(file_name).as_posix())


def _contested(rows: list, allowed: frozenset[str], revoked: dict) -> dict[str, str]:
    """Files listed more than once whose later rows refuse them (no consent, a licence that
    does not allow it, withdrawn): normalised name -> why. The first row no longer wins: a
    file any of its rows refuses is not learnt."""
    from composer.data.metadata import row_problems

    first: dict[str, int] = {}
    contested: dict[str, str] = {}
    for row in rows:
        if row.problem is not None:
            continue
        name = _normalised_name(row.file_name)
        if name not in first:
            first[name] = row.line
            continue
        why = withdrawal(row, revoked) or next(iter(row_problems(row, allowed)), None)
        if why is not None and name not in contested:
            contested[name] = f"line {row.line}, another row for this file, refuses it: {why}"
    return contested


def _audio_files(root: Path) -> list[str]:
    """Audio files under `root` (relative POSIX paths), skipping hidden files and folders."""
    names = []
    for directory, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_SUFFIXES:
                names.append((Path(directory) / name).relative_to(root).as_posix())
    return names


__all__ = [  # the metadata names are re-exported for the modules that import them from here
    "ALLOWED_LICENCES", "AUDIO_SUFFIXES", "LICENCE_GRANT", "METADATA_NAME", "AudioHealth", "AudioStats", "CheckReport",
    "MetadataRow", "Problem", "allowed_licence_set", "check_audio", "check_dataset", "is_opt_in",
    "iter_accepted", "normalise_licence", "read_metadata", "scan_audio", "write_metadata",
]
