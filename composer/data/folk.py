"""Folk tunes and Bach chorales from the music21 corpus that ships in its wheel, as song plans.

The tunes and their index are in `composer.data.melodies`, parsing one tune in
`composer.data.tune_parsing`, harmonising a bare melody in `structure.harmonise`.

Parsing costs about 0.06 s an ABC tune (only that tune's text is parsed)
and 0.6 s a chorale (with chordify and chord naming), so tunes are parsed
lazily, only as many as needed, and the extracted melodies are cached as JSON
(`folk_melodies.json`, `chorale_melodies.json`) in a cache folder
(`COMPOSER_CACHE_DIR`, default `~/.cache/song-composer`). The order of
tunes is drawn by seed: each collection shuffled, then taken in turn
(Essen, O'Neill, Ryan), so the small collections are not swamped by Essen.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from collections.abc import Iterable, Iterator
from pathlib import Path

from composer.data.melodies import (
    FOLK_COLLECTIONS,
    Melody,
    TuneRef,
    UnsupportedTune,
    list_chorales,
    list_folk_tunes,
)
from composer.data.tune_parsing import MAX_BARS, MIN_BARS, MIN_NOTES, parse_abc_tune, parse_chorale
from structure.harmonise import harmonise_melody, transpose_chord, transpose_key
from structure.schema import Note, Section, SongPlan, validate
from structure.styles import get_style

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # bump when the extraction changes: older caches are then ignored
PLAN_STYLES = ("folk", "ballad", "country", "jazz", "pop")  # plus "waltz" for three beats a bar
TEMPO_RANGE = (70, 140)
TRANSPOSE_RANGE = 5
MIN_SONG_SECONDS = 40.0  # a short tune is played up to MAX_PASSES times to reach this
MAX_PASSES = 6
MAX_PASS_SECONDS = 75.0  # a long tune gets a faster tempo (up to 140 BPM) to stay under this
SINGABLE_MEDIAN = (55, 81)  # melodies are moved by octaves so their median pitch lies here


# --- the cache and the lazy iterators -------------------------------------------
def default_cache_dir() -> Path:
    return Path(os.environ.get("COMPOSER_CACHE_DIR") or Path.home() / ".cache" / "song-composer")


class MelodyCache:
    """Extracted melodies (or why a tune was skipped) by tune, in one JSON file.

    Entries are saved every `flush_every` new parses and on `save()`; saving
    merges with what another process may have written meanwhile. A file from
    another music21 version or extraction format is ignored.
    """

    def __init__(self, path: str | os.PathLike, *, flush_every: int = 25):
        import music21

        self.path = Path(path)
        self.flush_every = flush_every
        self.stamp = {"format": CACHE_FORMAT, "music21": music21.__version__}
        self.entries: dict[str, dict] = self._read()
        self.pending = 0

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or any(data.get(k) != v for k, v in self.stamp.items()):
            return {}
        entries = data.get("melodies")
        return entries if isinstance(entries, dict) else {}

    def get(self, ref: TuneRef) -> dict | None:
        return self.entries.get(ref.cache_key)

    def put(self, ref: TuneRef, entry: dict) -> None:
        self.entries[ref.cache_key] = entry
        self.pending += 1
        if self.pending >= self.flush_every:
            self.save()

    def save(self) -> None:
        if not self.pending:
            return
        from composer.data.audio import write_text_atomic

        merged = {**self._read(), **self.entries}
        self.entries = merged
        write_text_atomic(self.path, json.dumps({**self.stamp, "melodies": merged}, separators=(",", ":")))
        self.pending = 0


def _load(ref: TuneRef, cache: MelodyCache) -> Melody | None:
    entry = cache.get(ref)
    if entry is None:
        try:
            melody = parse_chorale(ref) if ref.collection == "chorales" else parse_abc_tune(ref)
            entry = {"melody": melody.to_dict()}
        except UnsupportedTune as why:
            entry = {"skip": str(why)}
        cache.put(ref, entry)
    return Melody.from_dict(entry["melody"]) if "melody" in entry else None


def folk_order(seed: int, collections: Iterable[str] = tuple(FOLK_COLLECTIONS)) -> list[TuneRef]:
    """All folk tunes in the order drawn by `seed`: each collection shuffled, then taken in turn."""
    collections = tuple(collections)
    refs = list_folk_tunes(collections)
    queues = []
    for name in collections:
        members = [r for r in refs if r.collection == name]
        random.Random(f"folk:{seed}:{name}").shuffle(members)
        queues.append(members)
    order = []
    for i in range(max((len(q) for q in queues), default=0)):
        order.extend(q[i] for q in queues if i < len(q))
    return order


def chorale_order(seed: int) -> list[TuneRef]:
    refs = list(list_chorales())
    random.Random(f"chorales:{seed}").shuffle(refs)
    return refs


def _iterate(order: list[TuneRef], limit: int | None, cache_path: Path) -> Iterator[Melody]:
    cache = MelodyCache(cache_path)
    count = 0
    try:
        for ref in order:
            if limit is not None and count >= limit:
                return
            melody = _load(ref, cache)
            if melody is not None:
                count += 1
                yield melody
    finally:
        cache.save()


def iter_folk_melodies(limit: int | None = None, seed: int = 0, *, cache_dir: str | os.PathLike | None = None,
                       collections: Iterable[str] = tuple(FOLK_COLLECTIONS)) -> Iterator[Melody]:
    """Up to `limit` usable folk melodies (all when None) in the order drawn by `seed`.

    Parses lazily, only as many tunes as it yields (plus the skipped ones),
    and caches every result in `cache_dir/folk_melodies.json`.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return _iterate(folk_order(seed, collections), limit, cache / "folk_melodies.json")


def iter_chorales(limit: int | None = None, seed: int = 0, *,
                  cache_dir: str | os.PathLike | None = None) -> Iterator[Melody]:
    """Up to `limit` Bach chorales (soprano melody, analysed chords) in the order drawn by `seed`."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return _iterate(chorale_order(seed), limit, cache / "chorale_melodies.json")


# --- plans ------------------------------------------------------------------------
def plan_from_melody(melody: Melody, seed: int, *, style: str | None = None) -> SongPlan:
    """A song plan of one tune: tempo, style and transposition drawn from `seed`.

    Sections: an optional intro on the tune's first two bars' chords (no
    melody), the tune as `verse1`, then played again as `verse2`
    (`repeat_of` verse1, variation 0), and again (`verse3`, `verse4`) while
    the song is shorter than 40 s (six passes at most). The tempo is drawn
    in 70..140 BPM within the style's range, and raised for a long tune so
    that one pass lasts at most 75 s (140 BPM at most). The tune is
    transposed by -5..+5 semitones (and by octaves into a singable
    register), melody, key and chords alike; bare melodies are harmonised
    after transposition.
    """
    rng = random.Random(seed)
    styles = PLAN_STYLES + (("waltz",) if melody.beats_per_bar == 3 else ())
    style = style or rng.choice(styles)
    low, high = get_style(style).tempo_range
    low, high = max(TEMPO_RANGE[0], low), min(TEMPO_RANGE[1], high)
    if low > high:
        low, high = TEMPO_RANGE
    tempo = float(rng.randint(low, high))
    total = melody.bars * melody.beats_per_bar
    tempo = min(float(TEMPO_RANGE[1]), max(tempo, math.ceil(total * 60.0 / MAX_PASS_SECONDS)))
    shift = rng.randint(-TRANSPOSE_RANGE, TRANSPOSE_RANGE)
    pitches = sorted(p for _, _, p in melody.notes)
    median = pitches[len(pitches) // 2]
    while median + shift > SINGABLE_MEDIAN[1]:
        shift -= 12
    while median + shift < SINGABLE_MEDIAN[0]:
        shift += 12
    bpb, bars = melody.beats_per_bar, melody.bars
    key = transpose_key(melody.plan_key, shift)
    notes = []
    for start, duration, pitch in melody.notes:
        duration = min(duration, total - start)
        if duration > 0:
            notes.append(Note(start=start, duration=duration, pitch=min(127, max(0, pitch + shift))))
    if melody.chords is None:
        chords = harmonise_melody(notes, key, bpb, bars=bars)
    else:
        chords = [[transpose_chord(c, shift) for c in bar] for bar in melody.chords]
        chords += [list(chords[-1][-1:]) for _ in range(bars - len(chords))]  # pad to the melody's bars
    intro = bars >= 2 and rng.random() < 0.5
    beats_before = 2 * bpb if intro else 0
    passes = 2
    while passes < MAX_PASSES and (beats_before + passes * total) * 60.0 / tempo < MIN_SONG_SECONDS:
        passes += 1
    sections = []
    if intro:
        sections.append(Section(name="intro1", kind="intro", bars=2, chords=[list(b) for b in chords[:2]],
                                energy=0.3, seed=rng.randrange(2**31)))
    verse_seed = rng.randrange(2**31)
    sections.append(Section(name="verse1", kind="verse", bars=bars, chords=chords, energy=0.5, melody=notes,
                            seed=verse_seed))
    for n in range(2, passes + 1):
        sections.append(Section(name=f"verse{n}", kind="verse", bars=bars, chords=[list(b) for b in chords],
                                energy=0.5, melody=[Note(x.start, x.duration, x.pitch) for x in notes],
                                repeat_of="verse1", variation=0.0, seed=verse_seed))
    plan = SongPlan(title=melody.title, tempo_bpm=tempo, beats_per_bar=bpb, key=key, sections=sections,
                    tags={"genre": style}, style=style,
                    beat_division=3 if melody.beat_quarters == 1.5 else 2)  # a jig is accompanied in 6/8
    validate(plan)
    return plan


__all__ = [
    "CACHE_FORMAT", "FOLK_COLLECTIONS", "MAX_BARS", "MIN_BARS", "MIN_NOTES", "Melody", "MelodyCache", "TuneRef",
    "UnsupportedTune", "chorale_order", "default_cache_dir", "folk_order", "iter_chorales", "iter_folk_melodies",
    "list_chorales", "list_folk_tunes", "parse_abc_tune", "parse_chorale", "plan_from_melody",
]
