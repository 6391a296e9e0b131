"""The render folder: the one place that knows its files, writes them and reads them back.

A render folder holds `song.wav`, `song.flac` (tagged, with a provenance line),
`plan.json`, `song.mid`, `lead_sheet.musicxml`, `lyrics.lrc` and `lyrics.json` when the
song has lyrics, the stems `vocals.wav`, `vocals_dry.wav` and `accompaniment.wav` when it
is sung (`song.wav` is their mix), `latents.safetensors` (for repaint) and `report.json`. Every file is
written atomically (a temporary name in the same folder, then rename), and `report.json`
is written last: its presence marks a complete render.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from composer.data.audio import atomic_path, audio_write, write_bytes_atomic, write_text_atomic
from composer.errors import InputError, RenderError

log = logging.getLogger(__name__)

SONG_WAV = "song.wav"
SONG_FLAC = "song.flac"
PLAN_NAME = "plan.json"
MIDI_NAME = "song.mid"
LEAD_SHEET_NAME = "lead_sheet.musicxml"
LRC_NAME = "lyrics.lrc"
LYRICS_JSON_NAME = "lyrics.json"
LATENTS_NAME = "latents.safetensors"
REPORT_NAME = "report.json"
VOCALS_NAME = "vocals.wav"  # the voice with its room (as mixed)
VOCALS_DRY_NAME = "vocals_dry.wav"
ACCOMPANIMENT_NAME = "accompaniment.wav"
STEM_NAMES = (VOCALS_NAME, VOCALS_DRY_NAME, ACCOMPANIMENT_NAME)


EVALUATION_NAME = "evaluation.png"  # `composer evaluate`'s picture of the render
RENDER_FILES = frozenset({SONG_WAV, SONG_FLAC, PLAN_NAME, MIDI_NAME, LEAD_SHEET_NAME, LRC_NAME, LYRICS_JSON_NAME,
                          LATENTS_NAME, REPORT_NAME, EVALUATION_NAME, *STEM_NAMES})


# --- claiming and replacing a render folder ----------------------------------------
def _partial_name(out_dir: Path, kind: str) -> Path:
    return out_dir.parent / f".{out_dir.name}.{kind}-{os.getpid()}"


def check_output(out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Refuse, before any work, an output that cannot take a render: a file, a folder of
    other files, or (without `overwrite`) a folder that already holds a song."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"-o {out}: is a file, not a folder (give a new or empty folder)")
    try:
        here = Path.cwd()
    except OSError:  # the current folder was deleted: nothing to protect
        here = None
    if not out.name or (here is not None and here.is_relative_to(out.resolve())):
        # a render is made beside its folder and swapped in by renames: not possible for the folder
        # the user is in (or one above it)
        raise InputError(f"-o {out_dir}: the current folder or one above it; name a new folder (e.g. -o ./song)")
    if out.is_dir():
        names = {p.name for p in out.iterdir()}
        if names & RENDER_FILES and not overwrite:
            raise InputError(f"-o {out}: already holds a song (pass --overwrite to replace it, or give a new folder)")
        if names and not names & RENDER_FILES:
            raise InputError(f"-o {out}: holds other files, not a song (give a new or empty folder)")
    return out


@contextlib.contextmanager
def lock_output(out_dir: str | Path):
    """Hold a lock beside `out_dir` (the kernel drops it if the process dies); a second
    holder is refused with InputError. The lock file goes when its holder is done; a process
    that opened it just before then, and locks it after, holds a file nobody else sees, so
    it checks that the name still leads to the file it locked (else it tries the new one)."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = out.parent / f".{out.name}.lock"
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        fcntl = None
    while True:
        handle = open(lock, "a+")
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise InputError(f"{out}: another render is writing there") from None
                try:
                    same = os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino
                except FileNotFoundError:
                    same = False
                if not same:  # its holder removed it as we locked it: lock the one there now
                    continue
            try:
                yield out
            finally:
                lock.unlink(missing_ok=True)
            return
        finally:
            handle.close()


@contextlib.contextmanager
def claim_output(out_dir: str | Path, *, overwrite: bool = False):
    """Hold the lock beside `out_dir`, put back what a killed render left there, then check
    it (`check_output`): two renders into one folder are refused."""
    with lock_output(out_dir) as out:
        recover(out)
        check_output(out, overwrite=overwrite)
        yield out


def _stale(out: Path, kind: str) -> list[Path]:
    return sorted(out.parent.glob(f"{glob.escape('.' + out.name)}.{kind}-*"))


def recover(out: Path) -> None:
    """Folders a killed render left beside `out`: a half-written one is removed (the user's
    files it had taken over go back first); a replaced one comes back if the new one never
    arrived, or gives the user's files to the new one."""
    for stale in _stale(out, "old"):
        if not out.exists():
            os.replace(stale, out)
            continue
        _move_foreign(stale, out)
        shutil.rmtree(stale, ignore_errors=True)
    for stale in _stale(out, "partial"):
        shutil.rmtree(stale, ignore_errors=True)


def _move_foreign(source: Path, target: Path) -> None:
    """Move the files of `source` that are not a render's into `target` (never overwriting)."""
    for item in source.iterdir():
        if item.name not in RENDER_FILES and not (target / item.name).exists():
            os.replace(item, target / item.name)


def _swap_in(partial: Path, out: Path) -> None:
    """Put the finished `partial` folder in place of `out`; the files of the old `out` that
    are not a render's (the user's) then move into the new one. If the swap fails, the old
    folder is put back whole."""
    if not out.exists():
        os.replace(partial, out)
        return
    old = _partial_name(out, "old")
    os.replace(out, old)
    try:
        os.replace(partial, out)
    except OSError:
        os.replace(old, out)
        raise
    _move_foreign(old, out)
    shutil.rmtree(old, ignore_errors=True)


def save_render(render, out_dir: Path, *, formats: tuple[str, ...] = ("wav", "flac"),
                lead_sheet: bool = True) -> Path:
    """Write every file of a render (`composer.rendering.Render`) into a temporary folder
    beside `out_dir`, then put it in place of `out_dir`: a failure (a full disk) leaves
    the previous song, if any, whole, and never a mix of two songs. lead_sheet=False leaves
    the MusicXML lead sheet (about 3 s for a 3-minute song) to `write_lead_sheet` later."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial_name(out_dir, "partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    import soundfile

    try:
        _write_render(render, partial, formats=formats, lead_sheet=lead_sheet)
        _swap_in(partial, out_dir)
    except (OSError, soundfile.SoundFileRuntimeError) as error:
        cause = getattr(error, "strerror", None) or str(error) or type(error).__name__
        if "System error" in cause:  # libsndfile's word for a failed write: the disk is the usual cause
            cause = "the disk refused the write (full?)"
        raise RenderError(f"{out_dir}: the song could not be written ({cause}); nothing was changed there") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out_dir


def write_lead_sheet(out_dir: Path, plan) -> None:
    """lead_sheet.musicxml of `plan` into a render folder (a failure is logged: a lead sheet
    must never cost the user the song)."""
    from structure.export import write_musicxml

    try:
        with atomic_path(out_dir / LEAD_SHEET_NAME) as tmp:
            write_musicxml(plan, tmp)
    except Exception as error:
        log.warning("lead sheet not written: %s", error)


def _write_render(render, out_dir: Path, *, formats: tuple[str, ...], lead_sheet: bool = True) -> None:
    import lyrics
    from structure.arrangement import arrange
    from structure.export import timed_lyrics

    plan = render.plan
    if "wav" in formats:
        audio_write(out_dir / SONG_WAV, render.audio, render.sample_rate)
    if "flac" in formats:
        write_flac(out_dir, render.audio, render.sample_rate, plan, render.report)
    write_stems(out_dir, render)
    write_text_atomic(out_dir / PLAN_NAME, plan.to_json())
    with atomic_path(out_dir / MIDI_NAME) as tmp:
        arrange(plan).write(str(tmp))
    if lead_sheet:
        write_lead_sheet(out_dir, plan)
    lines = timed_lyrics(plan)
    kept_from = (render.report.get("vocals") or {}).get("kept_from")
    if lines:
        write_text_atomic(out_dir / LRC_NAME, lyrics.to_lrc(lines, title=plan.title, duration=plan.duration,
                                                            enhanced=True))
        write_text_atomic(out_dir / LYRICS_JSON_NAME, lyrics.to_json_timed(lines, duration=plan.duration))
    elif kept_from:  # a restyle that kept a render's voice keeps its words, sung at the same times
        for name in (LRC_NAME, LYRICS_JSON_NAME):
            source = Path(kept_from) / name
            if source.is_file() and source.resolve() != (out_dir / name).resolve():
                write_bytes_atomic(out_dir / name, source.read_bytes())
    if render.latents is not None:
        write_latents(out_dir, render.latents, gain=render.gain, seed=render.report.get("seed"))
    write_report(out_dir, render.report)


def write_stems(out_dir: Path, render) -> None:
    """The stems of a sung render (none for an unsung one)."""
    stems = render.stems
    if stems is None:
        return
    audio_write(out_dir / ACCOMPANIMENT_NAME, stems.accompaniment, render.sample_rate)
    audio_write(out_dir / VOCALS_NAME, stems.vocals[None], render.sample_rate)
    audio_write(out_dir / VOCALS_DRY_NAME, stems.vocals_dry[None], render.sample_rate)


def write_flac(out_dir: Path, audio: np.ndarray, sample_rate: int, plan, report: dict) -> None:
    with atomic_path(out_dir / SONG_FLAC) as tmp:
        audio_write(tmp, audio, sample_rate)
        tag_flac(tmp, plan, report)


def write_report(out_dir: Path, report: dict) -> None:
    write_text_atomic(out_dir / REPORT_NAME, json.dumps(report, indent=2, default=_jsonable))


def write_latents(out_dir: Path, latents: torch.Tensor, *, gain: float, seed: int | None) -> None:
    """The canvas `[latent_dim, frames]` and the loudness gain applied after decoding."""
    from safetensors.torch import save_file

    # one metadata entry: safetensors writes several in an arbitrary order (same song, other bytes)
    metadata = {"render": json.dumps({"gain": repr(gain), "seed": str(seed)})}
    with atomic_path(out_dir / LATENTS_NAME) as tmp:
        save_file({"latents": latents.contiguous()}, str(tmp), metadata=metadata)


def _jsonable(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def tag_flac(path: Path, plan, report: dict) -> None:
    """Vorbis comments: title, genre, tempo, key and a provenance line (what made it)."""
    from composer.data.audio import write_flac_tags
    from composer.rendering.provenance import provenance_line

    write_flac_tags(path, {
        "title": plan.title,
        "genre": plan.tags.get("genre", plan.style),
        "bpm": f"{plan.tempo_bpm:g}",
        "initialkey": str(plan.key),
        "comment": provenance_line(report),
        "encoder": report.get("provenance", {}).get("software", "song-composer"),
        "provenance": json.dumps(report.get("provenance", {}), default=str),
    })


@dataclass
class RenderFolder:
    """A finished render read back: its plan, report, latents and loudness gain."""

    path: Path
    plan: object
    report: dict
    latents: torch.Tensor
    gain: float


def is_render_dir(path: Path) -> bool:
    return (path / SONG_WAV).is_file() and (path / PLAN_NAME).is_file()


def read_plan(out_dir: Path):
    from composer.data.inputs import read_plan_file

    return read_plan_file(out_dir / PLAN_NAME)


def read_report(out_dir: Path) -> dict:
    path = out_dir / REPORT_NAME
    if not path.is_file():
        raise InputError(f"{out_dir}: not a render directory (no {REPORT_NAME})")
    try:
        report = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{path}: not valid JSON") from None
    if not isinstance(report, dict):
        raise InputError(f"{path}: not a render's report (a JSON {type(report).__name__}, not an object)")
    for name, kind in (("options", dict), ("vocals", dict), ("mode", dict), ("persona", dict)):
        if report.get(name) is not None and not isinstance(report[name], kind):
            raise InputError(f"{path}: its {name!r} is a {type(report[name]).__name__}, not an object; "
                             "render the song again")
    return report


def load_render(out_dir: str | Path) -> RenderFolder:
    """Everything repaint needs from a render folder; InputError names what is missing."""
    out = Path(out_dir)
    report = read_report(out)
    plan = read_plan(out)
    latents, gain = load_latents(out)
    return RenderFolder(path=out, plan=plan, report=report, latents=latents, gain=gain)


def load_latents(out_dir: Path) -> tuple[torch.Tensor, float]:
    """The latents and loudness gain a render saved (for repaint)."""
    from safetensors import safe_open

    path = out_dir / LATENTS_NAME
    if not path.is_file():
        raise InputError(f"{out_dir}: no {LATENTS_NAME} (render it again with this version to repaint)")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            fields = json.loads(metadata["render"]) if "render" in metadata else metadata  # older renders: flat
            latents, gain = handle.get_tensor("latents"), float(fields.get("gain", "1.0"))
    except Exception as error:  # safetensors' own error type for a cut or foreign file, or a bad field
        raise InputError(f"{path}: cannot be read ({type(error).__name__}: {error}); render the song again") from None
    if latents.dim() != 2 or not latents.is_floating_point():
        raise InputError(f"{path}: not a render's latents (shape {tuple(latents.shape)}); render the song again")
    return latents, gain


def read_song_pcm(out_dir: Path) -> tuple[np.ndarray, int]:
    """song.wav as 16-bit PCM `[samples, channels]` and its sample rate."""
    return read_pcm(out_dir / SONG_WAV)


def read_pcm(path: Path) -> tuple[np.ndarray, int]:
    """A WAV file as 16-bit PCM `[samples, channels]` and its sample rate."""
    import soundfile as sf

    if not path.is_file():
        raise InputError(f"{path}: missing (render the song again)")
    try:
        return sf.read(str(path), dtype="int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise InputError(f"{path}: cannot be read ({error}); render the song again") from None


def write_repainted(out_dir: Path, render, pcm: np.ndarray, *, stems: dict[str, np.ndarray] | None = None) -> None:
    """Replace a render's audio, stems (name -> PCM), latents and report after a repaint, as one
    set: the render's files are copied beside the folder, the new ones written there, and the
    copy swapped in (`_swap_in`), so a kill leaves the old song or the new one, never audio
    that no longer matches its latents. The caller holds the folder's lock."""
    import soundfile as sf

    out_dir = Path(out_dir)
    partial = _partial_name(out_dir, "partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        for item in out_dir.iterdir():
            if item.name in RENDER_FILES and item.is_file():
                shutil.copy2(item, partial / item.name)
        for name, stem in (stems or {}).items():
            sf.write(str(partial / name), stem, render.sample_rate, subtype="PCM_16")
        sf.write(str(partial / SONG_WAV), pcm, render.sample_rate, subtype="PCM_16")
        if (out_dir / SONG_FLAC).exists():
            write_flac(partial, render.audio, render.sample_rate, render.plan, render.report)
        write_latents(partial, render.latents, gain=render.gain, seed=render.report.get("seed"))
        write_report(partial, render.report)
        _swap_in(partial, out_dir)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
