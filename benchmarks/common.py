"""Shared helpers for benchmarks: machine description and JSON output."""

from __future__ import annotations

import json
import os
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    from composer.train.cards import machine_summary

    return {**machine_summary(), "cores": os.cpu_count(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}


def write_result(name: str, data: dict, out: str | None = None) -> Path:
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"benchmark": name, "machine": machine(), **data}, indent=2))
    tmp.replace(path)
    print(json.dumps(data, indent=2))
    return path


def default_steps() -> int:
    """The sampler steps `composer render` uses by default (what the benchmarks measure)."""
    from composer.rendering.options import RenderOptions

    return RenderOptions().steps


def render_settings(options, tags: dict | None = None) -> dict:
    """The start and guidance a render with `options` uses for a plan with `tags` (what the
    renderer decides when they are left to it), for the result's JSON."""
    from types import SimpleNamespace

    resolved = options.for_plan(SimpleNamespace(tags=tags or {}))
    return {"from_guide": resolved.from_guide, "guidance": resolved.guidance_weights}


HELD_OUT = ("nexuiz-music", "singularity-music")  # the recorded packages no model was trained on


def held_out_excerpts(data: Path, count: int, seconds: float, folder: Path) -> list[tuple[str, Path]]:
    """(file name, wav path) of up to `count` excerpts of `seconds` from the middle of the held-out
    recorded packages' files whose analysis is confident (`composer data analyze`), written
    into `folder` at 24 kHz."""
    from composer.data.audio import audio_read, audio_write

    rows = [json.loads(line) for line in (data / "metadata.jsonl").read_text().splitlines() if line.strip()]
    chosen = [r for r in rows if r.get("source_package") in HELD_OUT and r.get("labels_confident")
              and not r.get("cut_into")][:count]
    if not chosen:
        raise SystemExit(f"{data}: no confidently analysed file of the held-out packages; run "
                         f"`composer data analyze {data}` first")
    out = []
    for k, row in enumerate(chosen):
        audio, rate = audio_read(data / row["file_name"], sample_rate=24000)
        start = max(0, audio.shape[-1] // 2 - int(seconds * rate / 2))
        path = folder / f"excerpt{k}.wav"
        audio_write(path, audio[:, start: start + int(seconds * rate)], rate)
        out.append((row["file_name"], path))
    return out


def sung_lines(texts) -> list[str]:
    """The lines of lyrics texts as written once (a repeated chorus's words counted once)."""
    from lyrics import parse

    return [line for text in texts for section in parse(text or "") if not section.repeat_of
            for line in section.lines]


def lyric_judge(rows):
    """How the persona benchmarks judge daily lyrics: (held-out rows, the judge: a word-trigram
    model of the held-out songs' lyrics, a lyric model of the other songs to write the judged
    days with). The persona's own lyric model reads the held-out songs too, so its lines would be
    chosen by words the judge knows."""
    from composer.persona.lyric_model import LyricModel
    from lyrics import LyricSection, parse

    held = [r for r in rows if r.fields.get("split") == "validation"]
    judge = LyricModel.train([[LyricSection("verse1", "verse", sung_lines(r.fields.get("lyrics") for r in held))]])
    others = [parse(r.fields["lyrics"]) for r in rows if r not in held
              and isinstance(r.fields.get("lyrics"), str) and r.fields["lyrics"].strip()]
    return held, judge, others
