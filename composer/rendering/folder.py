"""The render folder: the one place that knows its files, writes them and reads them back.

A render folder holds `song.wav`, `song.flac` (tagged, with a provenance line),
`plan.json`, `song.mid`, `lead_sheet.musicxml`, `lyrics.lrc` and `lyrics.json` when the
song has lyrics, the stems `vocals.wav`, `vocals_dry.wav` and `accompaniment.wav` when it
is sung (`song.wav` is their mix), `latents.safetensors` (for repaint) and `report.json`. Every file is
written atomically (a temporary name in the same folder, then rename), and `report.json`
is written last: its presence marks a complete render.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from composer.data.audio import atomic_path, audio_write, write_text_atomic
from composer.errors import InputError

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


def save_render(render, out_dir: Path, *, formats: tuple[str, ...] = ("wav", "flac")) -> Path:
    """Write every file of a render (`composer.rendering.Render`) into `out_dir`."""
    import lyrics
    from structure.arrangement import arrange
    from structure.export import timed_lyrics, write_musicxml

    out_dir.mkdir(parents=True, exist_ok=True)
    plan = render.plan
    if "wav" in formats:
        audio_write(out_dir / SONG_WAV, render.audio, render.sample_rate)
    if "flac" in formats:
        write_flac(out_dir, render.audio, render.sample_rate, plan, render.report)
    write_stems(out_dir, render)
    write_text_atomic(out_dir / PLAN_NAME, plan.to_json())
    with atomic_path(out_dir / MIDI_NAME) as tmp:
        arrange(plan).write(str(tmp))
    try:
        with atomic_path(out_dir / LEAD_SHEET_NAME) as tmp:
            write_musicxml(plan, tmp)
    except Exception as error:  # a lead sheet must never cost the user the song
        log.warning("lead sheet not written: %s", error)
    lines = timed_lyrics(plan)
    if lines:
        write_text_atomic(out_dir / LRC_NAME, lyrics.to_lrc(lines, title=plan.title, duration=plan.duration,
                                                            enhanced=True))
        write_text_atomic(out_dir / LYRICS_JSON_NAME, lyrics.to_json_timed(lines, duration=plan.duration))
    if render.latents is not None:
        write_latents(out_dir, render.latents, gain=render.gain, seed=render.report.get("seed"))
    write_report(out_dir, render.report)
    return out_dir


def write_stems(out_dir: Path, render) -> None:
    """The stems of a sung render; a render without them leaves none behind from an earlier song."""
    stems = render.stems
    if stems is None:
        for name in STEM_NAMES:
            (out_dir / name).unlink(missing_ok=True)
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
    from mutagen.flac import FLAC

    from composer.rendering.provenance import provenance_line

    flac = FLAC(str(path))
    flac["title"] = plan.title
    flac["genre"] = plan.tags.get("genre", plan.style)
    flac["bpm"] = f"{plan.tempo_bpm:g}"
    flac["initialkey"] = str(plan.key)
    flac["comment"] = provenance_line(report)
    flac["encoder"] = report.get("provenance", {}).get("software", "song-composer")
    flac["provenance"] = json.dumps(report.get("provenance", {}), default=str)
    flac.save()


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
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{path}: not valid JSON") from None


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
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        fields = json.loads(metadata["render"]) if "render" in metadata else metadata  # older renders: flat
        return handle.get_tensor("latents"), float(fields.get("gain", "1.0"))


def read_song_pcm(out_dir: Path) -> tuple[np.ndarray, int]:
    """song.wav as 16-bit PCM `[samples, channels]` and its sample rate."""
    return read_pcm(out_dir / SONG_WAV)


def read_pcm(path: Path) -> tuple[np.ndarray, int]:
    """A WAV file as 16-bit PCM `[samples, channels]` and its sample rate."""
    import soundfile as sf

    if not path.is_file():
        raise InputError(f"{path}: missing (render the song again)")
    return sf.read(str(path), dtype="int16", always_2d=True)


def write_repainted(out_dir: Path, render, pcm: np.ndarray, *, stems: dict[str, np.ndarray] | None = None) -> None:
    """Replace a render's audio, stems (name -> PCM), latents and report after a repaint (report last)."""
    import soundfile as sf

    for name, stem in (stems or {}).items():
        with atomic_path(out_dir / name) as tmp:
            sf.write(str(tmp), stem, render.sample_rate, subtype="PCM_16")
    with atomic_path(out_dir / SONG_WAV) as tmp:
        sf.write(str(tmp), pcm, render.sample_rate, subtype="PCM_16")
    if (out_dir / SONG_FLAC).exists():
        write_flac(out_dir, render.audio, render.sample_rate, render.plan, render.report)
    write_latents(out_dir, render.latents, gain=render.gain, seed=render.report.get("seed"))
    write_report(out_dir, render.report)
