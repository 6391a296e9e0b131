"""`composer persona demo -o DIR`: a DEMO archive to try the persona path offline.

Made from the recorded corpus (`composer corpus import`: free Debian game music
whose licences permit derivative works): an excerpt of each accepted track of the
training packages (the held-out packages stay unseen), with lyrics and metadata
made up here by the template writer, so every row says `demo_persona: true` and
the card says DEMO. The made-up fields have the dependencies a real archive has:
mood follows the excerpt's analysed tempo and mode, the location and the beard
follow the mood, and each mood writes about its own themes.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np

from composer.errors import InputError

log = logging.getLogger(__name__)

MOODS_BY_FEEL = {("fast", "major"): ["happy", "hopeful"], ("fast", "minor"): ["angry", "dark"],
                 ("slow", "major"): ["calm", "tender"], ("slow", "minor"): ["sad", "wistful"]}
LOCATIONS = {"happy": ["Lisbon", "Bergen"], "hopeful": ["Bergen", "Oslo"], "angry": ["Berlin", "Oslo"],
             "dark": ["Berlin", "Tromsø"], "calm": ["Tromsø", "Lisbon"], "tender": ["Lisbon", "Oslo"],
             "sad": ["Tromsø", "Oslo"], "wistful": ["Oslo", "Tromsø"]}
THEMES = {"happy": ["the harbour lights", "summer trains"], "hopeful": ["the northern road", "morning ferries"],
          "angry": ["the iron city", "broken engines"], "dark": ["the long winter", "empty stations"],
          "calm": ["the quiet fjord", "slow rivers"], "tender": ["your kitchen window", "the harbour lights"],
          "sad": ["the last ferry", "the long winter"], "wistful": ["old letters", "the northern road"]}
HELD_OUT_PACKAGES = ("nexuiz-music", "singularity-music")
MIN_SECONDS = 5.0  # an excerpt fades in and out over 0.5 s each and is analysed for tempo and key


def track_of(row) -> str:
    """The recording a corpus row comes from: a cut item's parent track, else its own file."""
    parent = row.fields.get("parent")
    return parent if isinstance(parent, str) and parent else row.file_name


def make_demo_archive(source: str | Path, out: str | Path, *, songs: int = 60, seconds: float = 45.0,
                      seed: int = 0, progress: bool = True) -> dict:
    """Write the demo archive; returns counts. Needs the recorded corpus at `source`."""
    from tqdm import tqdm

    from composer.data.audio import audio_read, audio_write, write_text_atomic
    from composer.data.datasets import iter_accepted
    from lyrics.writer import SectionSpec, write
    from structure.analysis import analyze

    source, out = Path(source), Path(out)
    if not seconds >= MIN_SECONDS:  # NaN too
        raise InputError(f"--seconds {seconds:g}: an excerpt is at least {MIN_SECONDS:g} s long")
    if songs < 1:
        raise InputError(f"--songs {songs}: at least 1")
    if not (source / "metadata.jsonl").is_file():
        raise InputError(f"{source}: no recorded corpus (make recorded-music, then "
                         f"composer corpus import -o {source})")
    if out.exists() and any(out.iterdir()):
        raise InputError(f"-o {out}: not empty; give a new folder")
    rows = [r for r in iter_accepted(source, check_audio=False)
            if str(r.fields.get("source_package", "")) not in HELD_OUT_PACKAGES and not r.fields.get("cut_into")
            and float(r.fields.get("duration") or 0) >= seconds + 10]
    if len(rows) < 1:
        raise InputError(f"{source}: no accepted recorded track of {seconds + 10:g} s or more")
    rng = random.Random(seed)
    rng.shuffle(rows)
    chosen = [rows[number % len(rows)] for number in range(songs)]
    # the held-out songs (the validation split, every fifth track) share no recording with the
    # learnt ones: a long track's cut items are one track (their `parent`), which had put a
    # third of the held-out songs beside excerpts of the same recording in training
    tracks = list(dict.fromkeys(track_of(row) for row in chosen))
    held = set(tracks[4::5]) if len(tracks) > 1 else set()
    (out / "audio").mkdir(parents=True, exist_ok=True)
    records = []
    for number in tqdm(range(songs), desc="demo archive", unit="song", disable=not progress):
        row = chosen[number]
        audio, rate = audio_read(source / row.file_name)
        length = audio.shape[-1] / rate
        start = rng.uniform(0.0, max(0.0, length - seconds - 5.0))
        clip = audio[:, int(start * rate): int((start + seconds) * rate)]
        fade = int(0.5 * rate)
        clip = clip.copy()
        clip[:, :fade] *= np.linspace(0, 1, fade, dtype=np.float32)
        clip[:, -fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
        analysis = analyze(clip, rate)
        feel = ("fast" if analysis.tempo_bpm >= 110 else "slow", "minor" if analysis.key.mode == "minor" else "major")
        mood = rng.choice(MOODS_BY_FEEL[feel])
        theme = rng.choice(THEMES[mood])
        specs = [SectionSpec("verse1", "verse", [rng.randint(6, 9) for _ in range(4)]),
                 SectionSpec("chorus1", "chorus", [rng.randint(5, 8) for _ in range(4)]),
                 SectionSpec("verse2", "verse", [rng.randint(6, 9) for _ in range(4)]),
                 SectionSpec("chorus2", "chorus", [], repeat_of="chorus1")]
        sections = write(theme, mood=mood, sections=specs, seed=seed * 1000 + number)
        text = "\n\n".join(f"[{s.kind.title()}]\n" + "\n".join(s.lines) for s in sections)
        name = f"audio/demo_{number:03d}.flac"
        audio_write(out / name, clip, rate)
        records.append({
            "file_name": name, "title": sections[1].lines[0] if sections[1].lines else f"Demo {number}",
            "lyrics": text, "mood": mood, "genre": "game score",
            "location": rng.choice(LOCATIONS[mood]), "beard": rng.choice(["long", "long", "short"]
                                                                          if mood in ("angry", "dark", "sad")
                                                                          else ["short", "none", "none"]),
            "licence": row.fields.get("licence"), "consent": row.fields.get("consent"),
            "source_package": row.fields.get("source_package"), "source_file": row.file_name,
            "source_track": track_of(row),
            "excerpt": [round(start, 2), round(start + seconds, 2)], "duration": seconds,
            "demo_persona": True, "split": "validation" if track_of(row) in held else "train",
            "note": "DEMO: recorded music under its own free licence; lyrics and metadata made up by "
                    "song-composer's template writer"})
    write_text_atomic(out / "metadata.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    write_text_atomic(out / "README.md", "# A DEMO archive\n\nMade by `composer persona demo`: excerpts of "
                      "freely licensed recorded music (see each row's licence and source_package) with lyrics and "
                      "metadata made up by the template writer. Not an artist's work.\n")
    return {"songs": len(records), "tracks": len({r["source_file"] for r in records})}
