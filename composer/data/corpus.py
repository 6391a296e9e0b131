"""`composer corpus build`: a training corpus rendered here from material that ships offline.

Each item is a whole song planned by `structure` in one of its styles (forms,
repeats, chords, melody) or a folk melody from the music21 corpus harmonised
by `structure`, arranged with instruments drawn for variety, rendered with
FluidSynth, loudness-normalised and written as FLAC with exact labels: the
plan (`plans/NAME.json`) and its per-frame controls (`labels/NAME.npy`).
`fluid-soundfont-gm` renders the training split; the MuseScore soundfont
renders a validation split with timbres the models never hear in training.

Sources (`sources=`): "generated" (songs planned here, items `song_NNNNN`),
"folk" (Essen, O'Neill and Ryan's Mammoth melodies harmonised by
`composer.data.folk`, items `folk_NNNNN`) and "chorales" (Bach chorales with
analysed chords, items `chorale_NNNNN`); see `composer.data.folk`. The minutes
are shared equally between the sources. Parsed tunes are cached in
`OUT/.cache/`.

Resumable: every file is written atomically and an item is skipped when its
audio, plan and labels all exist; `metadata.jsonl` is rebuilt at the end
from per-item records. Deterministic: item i of a source depends only on
(seed, i) (for folk and chorales also on the seed's order of tunes).
"""

from __future__ import annotations

import json
import logging
import os
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from composer.data.audio import audio_write, write_text_atomic
from composer.rendering.loudness import normalise_loudness
from composer.seeds import derived_seed

log = logging.getLogger(__name__)

SAMPLE_RATE = 24000
LABEL_FRAME_RATE = 75.0  # EnCodec's 24 kHz frame rate; plans allow any other
STYLES = ("pop", "rock", "folk", "ballad", "electronic", "hip-hop", "jazz", "country", "waltz", "blues")
MOODS = ("happy", "sad", "wistful", "energetic", "calm", "dark", "romantic", "hopeful", "nostalgic", "dreamy")
# GM programs (0-based) to draw from per track, for timbre variety.
PROGRAM_POOLS = {
    "melody": (0, 4, 11, 24, 26, 40, 52, 56, 65, 68, 71, 73, 80, 81, 105, 110),
    "bass": (32, 33, 34, 35, 38, 39, 43),
    "chords": (0, 2, 4, 16, 19, 21, 24, 25, 27, 29, 30, 46, 48, 49, 88, 89, 90),
}


SOURCES = ("generated", "folk", "chorales")
MAX_CORPUS_MINUTES = 100_000.0  # about 1,700 hours, 80,000 songs: the item list stays small
ITEM_PREFIX = {"generated": "song", "folk": "folk", "chorales": "chorale"}


@dataclass(frozen=True)
class CorpusItem:
    index: int
    name: str
    split: str  # "train" | "validation"
    seed: int
    source: str = "generated"  # one of SOURCES
    melody: dict | None = None  # folk and chorales: `composer.data.folk.Melody.to_dict()`


def item_seed(seed: int, index: int) -> int:
    return derived_seed(seed, index, bits=32)


def plan_items(minutes: float, *, seed: int, validation_fraction: float = 0.1,
               mean_seconds: float = 75.0) -> list[CorpusItem]:
    """The items of a corpus of about `minutes` minutes (songs of 40-110 s)."""
    count = max(1, int(round(minutes * 60 / mean_seconds)))
    items = []
    for i in range(count):
        s = item_seed(seed, i)
        split = "validation" if (i % max(2, round(1 / validation_fraction)) == 1) else "train"
        items.append(CorpusItem(i, f"song_{i:05d}", split, s))
    return items


def source_item_seed(seed: int, source: str, index: int) -> int:
    """The seed of item `index` of a music21 source (generated items keep `item_seed`)."""
    return derived_seed(seed, source, index, bits=32)


def plan_music21_items(source: str, minutes: float, *, seed: int, cache_dir: str | os.PathLike,
                       validation_fraction: float = 0.1) -> list[CorpusItem]:
    """Folk or chorale items, in the seed's order of tunes, until they last `minutes` minutes.

    Item i plays the i-th usable tune of that order; its split follows the
    rule of `plan_items`. Each item's plan is made here to know its length
    (cheap) and again by the worker that renders it; tunes are parsed once
    and cached in `cache_dir`.
    """
    from composer.data.folk import iter_chorales, iter_folk_melodies

    melodies = (iter_folk_melodies if source == "folk" else iter_chorales)(None, seed, cache_dir=cache_dir)
    every = max(2, round(1 / validation_fraction))
    target = minutes * 60
    items: list[CorpusItem] = []
    total = 0.0
    try:
        for i, melody in enumerate(melodies):
            item = CorpusItem(i, f"{ITEM_PREFIX[source]}_{i:05d}", "validation" if i % every == 1 else "train",
                              source_item_seed(seed, source, i), source=source, melody=melody.to_dict())
            duration = _music21_song_for_item(item)[0].duration
            if items and total + duration - target > target - total:
                break  # this song would overshoot the target by more than stopping short of it
            items.append(item)
            total += duration
            if total >= target:
                break
        else:
            log.warning("corpus: the %s source ran out of tunes at %d items (%.1f minutes)", source,
                        len(items), total / 60)
    finally:
        melodies.close()
    return items


def _song_for_item(item: CorpusItem):
    from structure.planner import plan

    rng = random.Random(item.seed)
    style = rng.choice(STYLES)
    mood = rng.choice(MOODS)
    duration = rng.uniform(40, 110)
    prompt = f"genre={style} mood={mood}"
    song = plan(prompt, duration=duration, seed=item.seed, write_lyrics=False)
    programs = {track: rng.choice(pool) for track, pool in PROGRAM_POOLS.items()}
    return song, programs, f"{mood} {style} song, {song.tempo_bpm:g} BPM, in {song.key}"


def _music21_song_for_item(item: CorpusItem):
    from composer.data.folk import Melody, plan_from_melody

    melody = Melody.from_dict(item.melody)
    rng = random.Random(item.seed)
    song = plan_from_melody(melody, rng.randrange(2**31))
    programs = {track: rng.choice(pool) for track, pool in PROGRAM_POOLS.items()}
    what = "Bach chorale" if item.source == "chorales" else "folk tune"
    caption = f"{song.title}: {what} arranged as {song.style}, {song.tempo_bpm:g} BPM, in {song.key}"
    return song, programs, caption, melody.source


def render_item(item: CorpusItem, out_dir: Path, soundfonts: dict[str, str]) -> dict:
    """Render one item into out_dir (audio, plan, labels, record); skip when done."""
    from structure.arrangement import arrange
    from structure.frame_controls import controls
    from structure.synth import render_midi

    record_path = out_dir / "records" / f"{item.name}.json"
    audio_path = out_dir / "audio" / f"{item.name}.flac"
    plan_path = out_dir / "plans" / f"{item.name}.json"
    label_path = out_dir / "labels" / f"{item.name}.npy"
    if all(p.exists() for p in (record_path, audio_path, plan_path, label_path)):
        return json.loads(record_path.read_text())
    if item.source == "generated":
        song, programs, caption = _song_for_item(item)
    else:
        song, programs, caption, source = _music21_song_for_item(item)
    midi = arrange(song, programs=programs)
    audio, rate = render_midi(midi, soundfont=soundfonts[item.split], sample_rate=SAMPLE_RATE, duration=song.duration)
    audio = normalise_loudness(audio, rate)
    labels = controls(song, LABEL_FRAME_RATE)
    audio_write(audio_path, audio, rate, subtype="PCM_16")
    write_text_atomic(plan_path, song.to_json())
    with open(label_path.with_suffix(".tmp.npy"), "wb") as handle:
        np.save(handle, labels.astype(np.float16), allow_pickle=False)
    os.replace(label_path.with_suffix(".tmp.npy"), label_path)
    record = {
        "file_name": f"audio/{item.name}.flac",
        "split": item.split,
        "text": caption,
        "title": song.title,
        "tags": song.tags,
        "genre": song.style,
        "mood": song.tags.get("mood"),
        "tempo": song.tempo_bpm,
        "key": str(song.key),
        "beats_per_bar": song.beats_per_bar,
        **({"meter": song.meter} if song.compound else {}),  # a jig's 6/8, which beats_per_bar 2 does not say
        "duration": round(song.duration, 4),
        "sections": [{"name": s.name, "kind": s.kind, "start": round(a, 4), "end": round(b, 4)}
                     for s, (a, b) in zip(song.sections, song.section_times())],
        "plan": f"plans/{item.name}.json",
        "labels": f"labels/{item.name}.npy",
        "label_frame_rate": LABEL_FRAME_RATE,
        "programs": programs,
        "soundfont": Path(soundfonts[item.split]).name,
        "source": "generated by structure.plan (song form, chords and melody made here)",
        "licence": "generated",
        "consent": "opt-in",
    }
    if item.source != "generated":
        record["source"] = source
        record["licence"] = "public-domain"
        if record["mood"] is None:
            del record["mood"]
    write_text_atomic(record_path, json.dumps(record))
    return record


def _worker(args) -> dict:
    item, out_dir, soundfonts = args
    return render_item(item, Path(out_dir), soundfonts)


def build_corpus(out_dir: str | os.PathLike, *, minutes: float, seed: int = 0, workers: int = 1,
                 soundfont: str | None = None, validation_soundfont: str | None = None,
                 progress: bool = True, sources: tuple[str, ...] | list[str] = ("generated",)) -> list[dict]:
    """Build (or finish building) a corpus of about `minutes` minutes in `out_dir`.

    sources: any of "generated", "folk", "chorales"; the minutes are shared
    equally between them.
    """
    from tqdm import tqdm

    from composer.errors import InputError
    from structure.synth import TRAINING_SOUNDFONT, VALIDATION_SOUNDFONT

    if not 0 < minutes <= MAX_CORPUS_MINUTES:  # nan and inf too: 1e30 minutes filled the memory listing its songs
        raise InputError(f"--minutes: {minutes:g} is outside 0..{MAX_CORPUS_MINUTES:g} (exclusive of 0)")
    if workers < 1:
        raise InputError(f"--workers: {workers} must be >= 1")
    sources = tuple(dict.fromkeys(sources))
    unknown = [s for s in sources if s not in SOURCES]
    if not sources or unknown:
        raise InputError(f"--source: {', '.join(unknown) or 'none given'} (known: {', '.join(SOURCES)})")
    soundfonts = {"train": soundfont or TRAINING_SOUNDFONT,
                  "validation": validation_soundfont or soundfont or VALIDATION_SOUNDFONT}
    for split, path in soundfonts.items():
        if not Path(path).is_file():
            raise InputError(f"soundfont for the {split} split: {path}: no such file")
    from structure.schema import PlanError
    from structure.synth import _synthesizer

    for split, path in soundfonts.items():  # before the corpus's record is written: a file FluidSynth cannot
        try:  # load left a record that refused the corrected rerun into the same folder
            synth, _ = _synthesizer(str(path), SAMPLE_RATE)
            synth.delete()
        except PlanError as error:
            raise InputError(f"soundfont for the {split} split: {error}") from None
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"-o {out_dir}: is a file; the corpus is a folder")
    # what makes its songs: a rerun finishes the same corpus (or grows it, with more --minutes);
    # another seed, source or soundfont in the same folder would mix two corpora
    recipe = {"seed": seed, "sources": sorted(sources),  # in any order: the songs are the same
              "soundfonts": {split: str(Path(path).resolve()) for split, path in soundfonts.items()}}
    stamp = out / "corpus.json"
    try:
        kept = json.loads(stamp.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: this run's recipe is written
        kept = None
    if isinstance(kept, dict) and isinstance(kept.get("sources"), list):
        kept["sources"] = sorted(map(str, kept["sources"]))
    changed = sorted(k for k in recipe if isinstance(kept, dict) and kept.get(k) != recipe[k])
    if changed:
        raise InputError(f"-o {out_dir}: a corpus built with " + ", ".join(f"{k}={kept.get(k)}" for k in changed)
                         + "; this run asks " + ", ".join(f"{k}={recipe[k]}" for k in changed)
                         + " (give the same options to finish it, or name a new folder)")
    for sub in ("audio", "plans", "labels", "records"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    if kept != recipe:  # a rerun of the same corpus writes nothing
        write_text_atomic(stamp, json.dumps(recipe, indent=1) + "\n")
    share = minutes / len(sources)
    items = []
    for source in sources:
        if source == "generated":
            items += plan_items(share, seed=seed)
        else:
            items += plan_music21_items(source, share, seed=seed, cache_dir=out / ".cache")
    jobs = [(item, str(out), soundfonts) for item in items]
    bar = tqdm(total=len(items), desc="corpus", unit="song", disable=not progress)
    records: list[dict] = []
    if workers <= 1:
        for job in jobs:
            records.append(_worker(job))
            bar.update()
    else:
        from composer.processes import watch_parent

        with ProcessPoolExecutor(max_workers=workers, initializer=watch_parent, initargs=(os.getpid(),)) as pool:
            for record in pool.map(_worker, jobs, chunksize=1):
                records.append(record)
                bar.update()
    bar.close()
    lines = "".join(json.dumps(r) + "\n" for r in sorted(records, key=lambda r: r["file_name"]))
    write_text_atomic(out / "metadata.jsonl", lines)
    total = sum(r["duration"] for r in records) / 60
    log.info("corpus: %d songs, %.1f minutes in %s", len(records), total, out)
    return records
