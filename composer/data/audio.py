"""Audio I/O: `audio_read` and `audio_write`, the only places that touch audio files.

Arrays are float32 `[channels, samples]`. Reading resamples with soxr and falls
back to ffmpeg for formats libsndfile cannot decode; writing is atomic (a
temporary file in the same folder, then `os.replace`), so a killed process
never leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


class AudioError(ValueError):
    """An audio file cannot be used; the message names the file."""


def audio_read(path: str | os.PathLike, *, sample_rate: int | None = None,
               channels: int | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 `[channels, samples]`.

    sample_rate: resample to this rate (soxr, high quality) when given.
    channels: 1 averages to mono; 2 duplicates mono; None keeps the file's.
    Raises AudioError naming the file when it is missing, empty, undecodable
    or holds NaN/inf samples.
    """
    path = _existing_file(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        audio = data.T
    except Exception as error:  # libsndfile cannot decode it: try ffmpeg
        audio, rate = _read_with_ffmpeg(path, str(error))
    if audio.shape[1] == 0:
        raise AudioError(f"{path}: no audio samples")
    audio = _checked_channels(audio, channels, path)
    if sample_rate is not None and sample_rate != rate:
        audio = resample(audio, rate, sample_rate)
        rate = sample_rate
    return np.ascontiguousarray(audio, dtype=np.float32), int(rate)


def audio_stream(path: str | os.PathLike, *, sample_rate: int | None = None, channels: int | None = None,
                 block_seconds: float = 30.0):
    """Read an audio file block by block as float32 `[channels, samples]` (memory: one block).

    For files longer than memory would hold. Resampling streams through soxr, so the
    blocks join seamlessly. Formats libsndfile cannot read (e.g. MP3 on old libsndfile)
    are decoded whole by ffmpeg and then cut into blocks. Raises AudioError naming the
    file, as `audio_read` does (NaN/inf are checked block by block).
    """
    path = _existing_file(path)
    try:
        info = sf.info(str(path))
        rate, source = int(info.samplerate), None
    except Exception:
        whole, rate = audio_read(path, channels=channels)
        source = whole
    target = sample_rate or rate
    stream = None
    any_samples = False

    def convert(block: np.ndarray, last: bool) -> np.ndarray:
        nonlocal stream
        block = _checked_channels(block, channels, path)
        if target == rate:
            return np.ascontiguousarray(block, dtype=np.float32)
        if stream is None:
            stream = soxr.ResampleStream(rate, target, block.shape[0], dtype="float32", quality="HQ")
        return np.ascontiguousarray(stream.resample_chunk(np.ascontiguousarray(block.T), last=last).T)

    size = max(1, int(block_seconds * rate))
    if source is not None:
        pieces = (source[:, i: i + size] for i in range(0, source.shape[1], size))
    else:
        pieces = (b.T for b in sf.blocks(str(path), blocksize=size, dtype="float32", always_2d=True))
    previous = None
    for piece in pieces:
        if previous is not None:
            out = convert(previous, last=False)
            any_samples = any_samples or out.shape[1] > 0
            if out.shape[1]:
                yield out
        previous = piece
    if previous is None or (previous.shape[1] == 0 and not any_samples):
        raise AudioError(f"{path}: no audio samples")
    out = convert(previous, last=True)
    if out.shape[1]:
        yield out


def _existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        raise AudioError(f"{path}: a folder, not an audio file")
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file")
    return path


def _checked_channels(audio: np.ndarray, channels: int | None, path: Path) -> np.ndarray:
    """Refuse NaN/inf; 1 averages to mono, 2 duplicates mono, None keeps the channels."""
    if not np.isfinite(audio).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    if channels == 1 and audio.shape[0] > 1:
        return audio.mean(axis=0, keepdims=True)
    if channels == 2 and audio.shape[0] == 1:
        return np.repeat(audio, 2, axis=0)
    return audio


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample `[channels, samples]` with soxr."""
    if from_rate == to_rate:
        return audio
    return soxr.resample(audio.T, from_rate, to_rate, quality="HQ").T.astype(np.float32)


def refuse_playlists(path: Path) -> None:
    """A playlist (HLS, ffconcat, SDP) dressed as audio would make ffmpeg read other files."""
    with open(path, "rb") as handle:
        head = handle.read(64).lstrip()
    if head.startswith((b"#EXTM3U", b"#EXT-X", b"ffconcat", b"v=0")):
        raise AudioError(f"{path}: a playlist, not audio (it would point the decoder at other files)")


def _read_with_ffmpeg(path: Path, sf_error: str) -> tuple[np.ndarray, int]:
    if shutil.which("ffmpeg") is None:
        raise AudioError(f"{path}: cannot decode ({sf_error}); ffmpeg is not installed")
    refuse_playlists(path)
    probe = subprocess.run(
        # only local files: a playlist named .wav must not lead ffmpeg to other files or the network
        ["ffmpeg", "-nostdin", "-v", "error", "-protocol_whitelist", "file", "-i", str(path), "-f", "f32le",
         "-acodec", "pcm_f32le", "-"],
        capture_output=True, check=False)
    if probe.returncode != 0 or not probe.stdout:
        # ffmpeg's own reason: libsndfile's for a file it does not know is often beside the point
        # ("not a regular file (possibly a pipe?)" for a damaged MP3)
        said = [re.sub(r"^\[[^]]*\]\s*", "", line.strip()).removeprefix(f"{path}: ")
                for line in probe.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
        why = "; ".join(dict.fromkeys(said[-2:])) if said else (sf_error.splitlines()[0] if sf_error else "")
        raise AudioError(f"{path}: cannot decode audio ({why or 'unknown format'})")
    # ffmpeg keeps the source rate and channels; ask for them explicitly.
    info = subprocess.run(["ffprobe", "-v", "error", "-protocol_whitelist", "file", "-select_streams", "a:0",
                           "-show_entries",
                           "stream=sample_rate,channels", "-of", "csv=p=0", str(path)],
                          capture_output=True, text=True, check=False)
    try:
        rate_text, channel_text = info.stdout.strip().split(",")[:2]
        rate, n_channels = int(rate_text), int(channel_text)
    except ValueError:
        raise AudioError(f"{path}: cannot read its sample rate") from None
    samples = np.frombuffer(probe.stdout, dtype=np.float32)
    samples = samples[: len(samples) // n_channels * n_channels]
    return samples.reshape(-1, n_channels).T.copy(), rate


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path beside `path`; move it into place on success only.

    A `path` that is a device or a pipe (`-o /dev/null`, a FIFO) is written to, not replaced:
    the finished file is copied into it. A regular file that is replaced keeps its mode.
    """
    import shutil
    import stat

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    special = mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)
    try:
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix,
                                       dir=tempfile.gettempdir() if special else path.parent)
    except OSError as error:  # a folder that takes no new files (/proc, read-only): said of the path asked for
        from composer.errors import InputError

        raise InputError(f"{path}: cannot be written there ({error.strerror or error})") from None
    os.close(handle)
    try:
        yield Path(tmp)
        if special:
            with open(tmp, "rb") as source, open(path, "wb") as target:
                shutil.copyfileobj(source, target)
            return
        # mkstemp makes 0600 files: outputs get the usual mode, or the mode of the file they replace
        os.chmod(tmp, stat.S_IMODE(mode) if mode is not None and stat.S_ISREG(mode) else 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


WRITE_BLOCK = 1 << 20  # samples of each channel written at a time


def audio_write(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, *,
                subtype: str | None = None) -> Path:
    """Write `[channels, samples]` (or `[samples]`) atomically; format from the suffix.
    16-bit PCM (int16) is written as it is; anything else as float, clipped to -1..1."""
    if not (isinstance(audio, np.ndarray) and audio.dtype == np.int16):
        audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    path = Path(path)
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(path.suffix.lower())
    if fmt is None:
        raise AudioError(f"{path}: unsupported output format (use .wav, .flac or .ogg)")
    if subtype is None:
        subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS"}[fmt]
    with atomic_path(path) as tmp:
        # a block at a time (the same samples): no clipped copy of a whole song, and libsndfile's
        # Vorbis encoder crashes (SIGSEGV) when one call hands it more than a minute or so
        with sf.SoundFile(str(tmp), "w", sample_rate, audio.shape[0], subtype=subtype, format=fmt) as out:
            for start in range(0, audio.shape[-1], WRITE_BLOCK):
                block = audio[:, start: start + WRITE_BLOCK].T
                out.write(block if audio.dtype == np.int16 else np.clip(block, -1.0, 1.0))
    return path


# --- FLAC tags ---------------------------------------------------------------
# A FLAC file is "fLaC", metadata blocks (a byte: last-block flag and type, then a 24-bit
# big-endian length) and the audio frames; its tags are one VORBIS_COMMENT block (type 4) of
# little-endian lengths (https://xiph.org/flac/format.html). Written here rather than through
# mutagen, which is GPL-2.0 (this project is Apache-2.0 and links no GPL library).
_VORBIS_COMMENT = 4


def _flac_blocks(handle, path) -> tuple[list[tuple[int, bytes]], int]:
    """([(type, body)], where the audio frames start) of the FLAC file open in `handle`, read
    from its start; only the metadata is read. ValueError when it is not FLAC or is cut short."""
    handle.seek(0)
    if handle.read(4) != b"fLaC":
        raise ValueError(f"{path}: not a FLAC file")
    blocks, at = [], 4
    while True:
        header = handle.read(4)
        if len(header) < 4:
            raise ValueError(f"{path}: its FLAC metadata ends early")
        length = int.from_bytes(header[1:4], "big")
        body = handle.read(length)
        if len(body) < length:
            raise ValueError(f"{path}: a FLAC metadata block runs past the end of the file")
        blocks.append((header[0] & 0x7F, body))
        at += 4 + length
        if header[0] & 0x80:
            return blocks, at


def write_flac_tags(path: str | os.PathLike, tags: dict[str, str], vendor: str = "song-composer") -> None:
    """Set a FLAC file's tags (Vorbis comments) to `tags`; the audio frames are copied as they
    are, a block at a time (a 30-minute song is not held in memory). Names are ASCII without
    "="; one value each. The file is replaced in one rename (the caller writes into a
    temporary file in any case)."""
    import shutil

    path = Path(path)

    def field(text: str) -> bytes:
        encoded = text.encode("utf-8")
        return len(encoded).to_bytes(4, "little") + encoded

    for name in tags:
        if not name or "=" in name or not all(0x20 <= ord(c) <= 0x7D for c in name):
            raise ValueError(f"FLAC tag name {name!r}: ASCII without '='")
    comment = field(vendor) + len(tags).to_bytes(4, "little") + b"".join(
        field(f"{name.upper()}={value}") for name, value in tags.items())
    if len(comment) >= 1 << 24:
        raise ValueError(f"{path}: tags of {len(comment)} bytes; a FLAC block holds under 16 MiB")
    tagged = path.with_name(f".{path.name}.tags")
    try:
        with path.open("rb") as source, tagged.open("wb") as target:
            blocks, audio_at = _flac_blocks(source, path)
            kept = [(kind, body) for kind, body in blocks if kind != _VORBIS_COMMENT]
            kept.insert(1, (_VORBIS_COMMENT, comment))  # STREAMINFO stays first
            target.write(b"fLaC")
            for index, (kind, body) in enumerate(kept):
                last = 0x80 if index == len(kept) - 1 else 0
                target.write(bytes([kind | last]) + len(body).to_bytes(3, "big") + body)
            source.seek(audio_at)
            shutil.copyfileobj(source, target, 1 << 20)
        os.replace(tagged, path)
    finally:
        tagged.unlink(missing_ok=True)


def read_flac_tags(path: str | os.PathLike) -> dict[str, list[str]]:
    """A FLAC file's tags: each name (lower case) with its values in order. ValueError when the
    file is not FLAC or its metadata is damaged."""
    path = Path(path)
    with path.open("rb") as handle:
        blocks, _ = _flac_blocks(handle, path)
    tags: dict[str, list[str]] = {}
    for kind, body in blocks:
        if kind != _VORBIS_COMMENT:
            continue

        def number(at: int, body: bytes = body) -> int:
            if at + 4 > len(body):
                raise ValueError(f"{path}: its Vorbis comment block ends early")
            return int.from_bytes(body[at: at + 4], "little")

        at = 4 + number(0)
        count, at = number(at), at + 4
        for _ in range(count):  # each entry is checked against the block: a count of 4 billion ends here
            length = number(at)
            if at + 4 + length > len(body):
                raise ValueError(f"{path}: its Vorbis comment block ends early")
            name, _, value = body[at + 4: at + 4 + length].decode("utf-8", "replace").partition("=")
            tags.setdefault(name.lower(), []).append(value)
            at += 4 + length
    return tags
