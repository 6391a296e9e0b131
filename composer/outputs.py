"""Writing a render directory: audio, plan, MIDI, lead sheet, lyrics, report, latents.

Every file is written atomically (temporary name in the same folder, then
rename), so a killed render never leaves a half file under a final name.
`report.json` is written last: its presence marks a complete render.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from composer.audio import atomic_path, audio_write, write_text_atomic

log = logging.getLogger(__name__)

LATENTS_NAME = "latents.safetensors"


def save_render(render, out_dir: Path, *, formats: tuple[str, ...] = ("wav", "flac")) -> Path:
    import lyrics
    from structure.arrange import arrange
    from structure.export import timed_lyrics, write_musicxml

    out_dir.mkdir(parents=True, exist_ok=True)
    plan = render.plan
    if "wav" in formats:
        audio_write(out_dir / "song.wav", render.audio, render.sample_rate)
    if "flac" in formats:
        with atomic_path(out_dir / "song.flac") as tmp:
            audio_write(tmp, render.audio, render.sample_rate)
            tag_flac(tmp, plan, render.report)
    write_text_atomic(out_dir / "plan.json", plan.to_json())
    with atomic_path(out_dir / "song.mid") as tmp:
        arrange(plan).write(str(tmp))
    try:
        with atomic_path(out_dir / "lead_sheet.musicxml") as tmp:
            write_musicxml(plan, tmp)
    except Exception as error:  # a lead sheet must never cost the user the song
        log.warning("lead sheet not written: %s", error)
    lines = timed_lyrics(plan)
    if lines:
        write_text_atomic(out_dir / "lyrics.lrc", lyrics.to_lrc(lines, title=plan.title, duration=plan.duration,
                                                                enhanced=True))
        write_text_atomic(out_dir / "lyrics.json", lyrics.to_json_timed(lines, duration=plan.duration))
    if render.latents is not None:
        from safetensors.torch import save_file

        with atomic_path(out_dir / LATENTS_NAME) as tmp:
            save_file({"latents": render.latents.contiguous()}, str(tmp),
                      metadata={"gain": repr(render.gain), "seed": str(render.report.get("seed"))})
    write_text_atomic(out_dir / "report.json", json.dumps(render.report, indent=2, default=_jsonable))
    return out_dir


def _jsonable(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def tag_flac(path: Path, plan, report: dict) -> None:
    """Vorbis comments: title, genre, tempo, key and a provenance line (what made it)."""
    from mutagen.flac import FLAC

    from composer.provenance import provenance_line

    flac = FLAC(str(path))
    flac["title"] = plan.title
    flac["genre"] = plan.tags.get("genre", plan.style)
    flac["bpm"] = f"{plan.tempo_bpm:g}"
    flac["initialkey"] = str(plan.key)
    flac["comment"] = provenance_line(report)
    flac["encoder"] = report.get("provenance", {}).get("software", "song-composer")
    flac["provenance"] = json.dumps(report.get("provenance", {}), default=str)
    flac.save()


def load_latents(out_dir: Path) -> tuple[torch.Tensor, float]:
    """The latents and loudness gain a render saved (for repaint)."""
    from safetensors import safe_open

    from composer.errors import InputError

    path = out_dir / LATENTS_NAME
    if not path.is_file():
        raise InputError(f"{out_dir}: no {LATENTS_NAME} (render it again with this version to repaint)")
    with safe_open(str(path), framework="pt") as handle:
        gain = float(handle.metadata().get("gain", "1.0"))
        return handle.get_tensor("latents"), gain
