"""Folk tunes and Bach chorales from the music21 corpus that ships in its wheel, as song plans.

Sources (counted on music21 10.5):

- folk melodies in ABC: Essen (`essenFolksong`, 8,462 tunes without its
  test files), O'Neill's 1850 (`oneills1850`, 1,838 tunes once the
  overlapping files are de-duplicated by tune number) and Ryan's Mammoth
  (`ryansMammoth`, 1,059 tunes). About 90 % of them have a usable meter (see
  below). Almost none carry chord symbols, so `harmonise_melody` gives them
  chords.
- Bach chorales (`bach/bwv*`, 410 files once de-duplicated, 403 usable): the melody is
  the soprano part, the chords come from analysis (the chordified score,
  one chord symbol a beat).

Tunes are taken as written: music21's `expandRepeats()` over-expands these
ABC tunes (64 quarter notes became 192), so repeat signs are ignored and
first and second endings both play once. A pickup bar is moved to the end of
a padded first bar so that downbeats fall on bar lines.

Meters: x/4 (2 to 6 quarter beats a bar) and 2/2 or C| (read as 4/4: the
same durations in quarter beats); compound 6/8, 9/8 and 12/8 count in
dotted-quarter beats (2, 3 or 4 beats a bar, so an eighth note lasts 1/3
beat and the tempo is in dotted quarters). Anything else (3/8, 3/2, 4/2,
free meter, real meter changes) is skipped, and so is a tune whose full
bars drift off the bar grid (a transcription with a bar too long or short);
a short bar inside a tune (a pickup after a double bar) is kept.

Key: the ABC `K:` field when the last note belongs to its tonic triad; else
the mode of that key signature that ends on the last note (K:C ending on D
is D dorian), the usual reading of folk tunes; else music21's
`analyze('key')`. Chorales use their encoded key, or the analysis.

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
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from structure.harmony import NO_CHORD, music21_key, parse_chord, realise, transpose_symbol
from structure.plan import MODES, PITCH_CLASS, Key, Note, PlanError, Section, SongPlan, validate
from structure.styles import get_style

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # bump when the extraction changes: older caches are then ignored
FOLK_COLLECTIONS = {"essen": "essenFolksong", "oneill": "oneills1850", "ryan": "ryansMammoth"}
CHORALE_DIR = "bach"
MIN_BARS, MAX_BARS, MIN_NOTES = 4, 64, 8
PLAN_STYLES = ("folk", "ballad", "country", "jazz", "pop")  # plus "waltz" for three beats a bar
TEMPO_RANGE = (70, 140)
TRANSPOSE_RANGE = 5
MIN_SONG_SECONDS = 40.0  # a short tune is played up to MAX_PASSES times to reach this
MAX_PASSES = 6
MAX_PASS_SECONDS = 75.0  # a long tune gets a faster tempo (up to 140 BPM) to stay under this
SINGABLE_MEDIAN = (55, 81)  # melodies are moved by octaves so their median pitch lies here
_FLOAT_DIGITS = 6


class UnsupportedTune(ValueError):
    """A tune that cannot become a plan (meter, length, parse failure); the message says why."""


# --- melodies -----------------------------------------------------------------
@dataclass(frozen=True)
class Melody:
    """One tune: notes as (start_beat, duration_beats, midi pitch) from the first bar line.

    `chords`: one list of chord symbols a bar when the source has harmony
    (chorales); None for a bare melody, which `harmonise_melody` harmonises.
    """

    title: str
    source: str  # "music21 corpus: essenFolksong/han1.abc, tune 12, Title"
    path: str  # inside the music21 corpus: "essenFolksong/han1.abc"
    tune: str  # the ABC reference number (X:), or the chorale's BWV number
    meter: str  # as written: "6/8"
    beats_per_bar: int
    beat_quarters: float  # quarter notes a beat: 1.0, or 1.5 for compound meters
    key: str  # "D dorian"
    notes: tuple[tuple[float, float, int], ...]
    chords: tuple[tuple[str, ...], ...] | None = None

    @property
    def bars(self) -> int:
        end = max(s + d for s, d, _ in self.notes)
        bars = max(1, math.ceil(end / self.beats_per_bar - 1e-6))
        return max(bars, len(self.chords)) if self.chords else bars

    @property
    def plan_key(self) -> Key:
        return Key.parse(self.key)

    def to_dict(self) -> dict:
        return {"title": self.title, "source": self.source, "path": self.path, "tune": self.tune,
                "meter": self.meter, "beats_per_bar": self.beats_per_bar, "beat_quarters": self.beat_quarters,
                "key": self.key, "notes": [list(n) for n in self.notes],
                "chords": None if self.chords is None else [list(bar) for bar in self.chords]}

    @classmethod
    def from_dict(cls, data: dict) -> Melody:
        chords = data.get("chords")
        return cls(title=data["title"], source=data["source"], path=data["path"], tune=str(data["tune"]),
                   meter=data["meter"], beats_per_bar=int(data["beats_per_bar"]),
                   beat_quarters=float(data["beat_quarters"]), key=data["key"],
                   notes=tuple((float(s), float(d), int(p)) for s, d, p in data["notes"]),
                   chords=None if chords is None else tuple(tuple(bar) for bar in chords))


@dataclass(frozen=True)
class TuneRef:
    """Where one tune lives: a corpus file and the tune's position in it (1-based)."""

    collection: str  # "essen" | "oneill" | "ryan" | "chorales"
    path: str  # inside the music21 corpus
    ordinal: int = 1
    number: str = ""  # the ABC X: field

    @property
    def cache_key(self) -> str:
        return f"{self.path}#{self.ordinal}"


def corpus_root() -> Path:
    """The folder of the music21 corpus inside the installed music21 package."""
    import music21.corpus

    return Path(music21.corpus.__file__).parent


_X_LINE = re.compile(r"(?m)^X:[ \t]*(\S*)")


@lru_cache(maxsize=8)
def _abc_blocks(path: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(file header, ((X number, tune text), ...)) of an ABC file."""
    raw = (corpus_root() / path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    starts = [m.start() for m in _X_LINE.finditer(text)]
    header = text[: starts[0]] if starts else text
    blocks = []
    for a, b in zip(starts, starts[1:] + [len(text)]):
        block = text[a:b]
        blocks.append((_X_LINE.match(block).group(1), block))
    return header, tuple(blocks)


@lru_cache(maxsize=4)
def list_folk_tunes(collections: tuple[str, ...] = tuple(FOLK_COLLECTIONS)) -> tuple[TuneRef, ...]:
    """Every folk tune in the corpus, in a stable order (no parsing: X: lines are counted).

    Essen's test files (four versions of one tune) are left out; O'Neill's
    overlapping files are de-duplicated by tune number.
    """
    root = corpus_root()
    refs: list[TuneRef] = []
    for name in collections:
        if name not in FOLK_COLLECTIONS:
            raise ValueError(f"unknown folk collection {name!r} (known: {', '.join(FOLK_COLLECTIONS)})")
        folder = FOLK_COLLECTIONS[name]
        seen: set[str] = set()
        for file in sorted((root / folder).glob("*.abc")):
            if name == "essen" and file.name.startswith("test"):
                continue
            rel = f"{folder}/{file.name}"
            for ordinal, (number, _) in enumerate(_abc_blocks(rel)[1], start=1):
                if name == "oneill":
                    if number in seen:
                        continue
                    seen.add(number)
                refs.append(TuneRef(name, rel, ordinal, number))
    return tuple(refs)


@lru_cache(maxsize=1)
def list_chorales() -> tuple[TuneRef, ...]:
    """The Bach chorale files (`bach/bwv*`: MusicXML first, then Humdrum), one per BWV number."""
    folder = corpus_root() / CHORALE_DIR
    preference = {".mxl": 0, ".xml": 1, ".krn": 2}
    best: dict[str, Path] = {}
    for file in folder.iterdir():
        if not file.name.startswith("bwv") or file.suffix not in preference:
            continue
        stem = file.name[: -len(file.suffix)]
        if stem not in best or preference[file.suffix] < preference[best[stem].suffix]:
            best[stem] = file
    return tuple(TuneRef("chorales", f"{CHORALE_DIR}/{best[s].name}", 1, s[3:]) for s in sorted(best))


# --- parsing --------------------------------------------------------------------
def _meter(ratio: str) -> tuple[int, float]:
    """(beats a bar, quarter notes a beat) of a time signature, or UnsupportedTune."""
    numerator, _, denominator = ratio.partition("/")
    if not (numerator.isdigit() and denominator.isdigit()):
        raise UnsupportedTune(f"meter {ratio!r}")
    n, d = int(numerator), int(denominator)
    if d == 4 and 2 <= n <= 6:
        return n, 1.0
    if (n, d) == (2, 2):
        return 4, 1.0
    if d == 8 and n in (6, 9, 12):
        return n // 3, 1.5
    raise UnsupportedTune(f"meter {ratio}")


def _tonic_name(pitch_class: int, mode: str) -> str:
    minor_like = mode in ("minor", "aeolian", "dorian", "phrygian")
    names = (("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B") if minor_like
             else ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"))
    return names[pitch_class % 12]


def _plan_key_of(m21_key) -> Key | None:
    """A music21 Key as a plan Key (simple tonic spelling); None for unsupported modes."""
    mode = (m21_key.mode or "major").lower()
    if mode not in MODES:
        return None
    name = m21_key.tonic.name.replace("-", "b")
    tonic = name if name in PITCH_CLASS else _tonic_name(m21_key.tonic.pitchClass, mode)
    return Key(tonic, mode)


_MODE_ON_DEGREE = {0: "major", 2: "dorian", 4: "phrygian", 5: "lydian", 7: "mixolydian", 9: "minor"}


def _tonic_triad(key: Key) -> set[int]:
    third = 3 if key.mode in ("minor", "aeolian", "dorian", "phrygian") else 4
    return {key.pitch_class, (key.pitch_class + third) % 12, (key.pitch_class + 7) % 12}


def choose_key(given, final_pitch_class: int, analyse) -> Key:
    """The tune's key: `given` (a music21 Key or KeySignature, or None) when the last note is
    in its tonic triad; else the mode of its signature that ends on the last note; else
    `analyse()` (music21's key analysis)."""
    key = None
    if given is not None:
        m21 = given if hasattr(given, "mode") and given.mode else given.asKey("major")
        key = _plan_key_of(m21)
        if key is not None and final_pitch_class in _tonic_triad(key):
            return key
        major_tonic = m21.asKey("major").tonic.pitchClass if hasattr(m21, "asKey") else None
        if major_tonic is not None:
            mode = _MODE_ON_DEGREE.get((final_pitch_class - major_tonic) % 12)
            if mode is not None:
                return Key(_tonic_name(final_pitch_class, mode), mode)
    analysed = _plan_key_of(analyse())
    if analysed is not None:
        return analysed
    if key is not None:
        return key
    return Key(_tonic_name(final_pitch_class, "major"), "major")


@dataclass(frozen=True)
class BarLayout:
    """Where a part's bars go: its meter, and the start (in quarter notes) of each measure."""

    meter: str
    beats_per_bar: int
    beat_quarters: float
    starts: tuple[float, ...]  # one per measure of the part, in order
    gaps: float  # quarter notes of rest inserted to put full bars back on the bar grid


def bar_layout(part) -> BarLayout:
    """Lay a part's measures on the bar grid of its meter, or raise UnsupportedTune.

    The meter is the one that governs most of the tune; music21 gives a
    short bar of a transcription (a pickup inside the tune, a bar with a
    note too many) a meter of its own, which is allowed. A pickup first bar
    goes at the end of a padded bar 0. A full bar that would start off the
    grid (the strain before it ends short, its pickup written only for the
    repeat) is moved to the next bar line, leaving a rest; a tune that
    would need a rest of more than half a bar is refused.
    """
    measures = list(part.getElementsByClass("Measure"))
    if not measures:
        raise UnsupportedTune("no bars")
    governed: list[tuple[object, float]] = []  # (time signature, length) per measure
    current = None
    for measure in measures:
        current = next(iter(measure.getElementsByClass("TimeSignature")), current)
        governed.append((current, float(measure.duration.quarterLength)))
    if current is None:
        raise UnsupportedTune("no meter")
    weight: dict[str, float] = {}
    for ts, length in governed:
        if ts is not None:
            weight[ts.ratioString] = weight.get(ts.ratioString, 0.0) + length
    meter = max(weight, key=lambda r: weight[r])
    beats_per_bar, beat_quarters = _meter(meter)
    bar = beats_per_bar * beat_quarters
    for ts, length in governed:
        if ts is not None and ts.ratioString != meter and length >= bar - 1e-6:
            raise UnsupportedTune(f"meter changes ({', '.join(sorted(weight))})")
    first = governed[0][1]
    position = bar - first if 0 < first < bar - 1e-6 else 0.0
    starts, gaps = [], 0.0
    for _, length in governed:
        phase = position % bar
        if abs(length - bar) < 1e-6 and min(phase, bar - phase) > 1e-6:
            gap = bar - phase
            if gap > bar / 2 + 1e-6:
                raise UnsupportedTune("bar lines drift off the meter (a bar too long or short)")
            position += gap
            gaps += gap
        starts.append(position)
        position += length
    return BarLayout(meter, beats_per_bar, beat_quarters, tuple(starts), gaps)


def _melody_notes(part, layout: BarLayout) -> list[tuple[float, float, int]]:
    """(start, duration, pitch) in beats, measures placed by `layout`: ties merged, grace notes
    dropped, the top of any chord, no overlaps (a note is cut where the next one starts).

    Ties are merged here only between notes of the same pitch: O'Neill's
    transcribers write slurs as ties (`a3-b`), which music21's `stripTies`
    would merge into one note.
    """
    raw: dict[float, tuple[float, int]] = {}
    tied_from: float | None = None  # start of the note whose tie is still open
    for measure, measure_start in zip(part.getElementsByClass("Measure"), layout.starts):
        for element in measure.flatten().notes:
            length = float(element.duration.quarterLength)
            if length <= 0 or element.duration.isGrace:
                continue
            pitch = max(p.midi for p in element.pitches)
            start = measure_start + float(element.offset)
            tie = element.tie.type if element.tie is not None else None
            if (tied_from is not None and raw[tied_from][1] == pitch
                    and abs(tied_from + raw[tied_from][0] - start) < 1e-6):
                raw[tied_from] = (raw[tied_from][0] + length, pitch)
                tied_from = tied_from if tie in ("start", "continue") else None
                continue
            if start in raw and raw[start][1] >= pitch:
                continue
            raw[start] = (length, pitch)
            tied_from = start if tie in ("start", "continue") else None
    notes = []
    starts = sorted(raw)
    beat = layout.beat_quarters
    for i, start in enumerate(starts):
        length, pitch = raw[start]
        if i + 1 < len(starts):
            length = min(length, starts[i + 1] - start)
        notes.append((round(start / beat, _FLOAT_DIGITS), round(length / beat, _FLOAT_DIGITS), int(pitch)))
    return [n for n in notes if n[1] > 0]


def _check_length(notes, beats_per_bar: int) -> None:
    if len(notes) < MIN_NOTES:
        raise UnsupportedTune(f"only {len(notes)} notes")
    bars = math.ceil(max(s + d for s, d, _ in notes) / beats_per_bar - 1e-6)
    if not MIN_BARS <= bars <= MAX_BARS:
        raise UnsupportedTune(f"{bars} bars (outside {MIN_BARS}..{MAX_BARS})")


def parse_abc_tune(ref: TuneRef) -> Melody:
    """Parse one tune of an ABC file (only that tune's text) into a Melody."""
    from music21 import converter

    header, blocks = _abc_blocks(ref.path)
    number, text = blocks[ref.ordinal - 1]
    try:
        score = converter.parseData(header + text, format="abc")
    except Exception as error:  # music21 raises many types on odd ABC
        raise UnsupportedTune(f"music21 cannot parse it ({type(error).__name__})") from None
    if hasattr(score, "scores"):  # an Opus: take its first score
        scores = list(score.scores)
        if not scores:
            raise UnsupportedTune("empty")
        score = scores[0]
    part = score.parts[0] if score.parts else score
    layout = bar_layout(part)
    meter, beats_per_bar, beat_quarters = layout.meter, layout.beats_per_bar, layout.beat_quarters
    notes = _melody_notes(part, layout)
    _check_length(notes, beats_per_bar)
    given = next(iter(part.recurse().getElementsByClass(["Key", "KeySignature"])), None)
    key = choose_key(given, notes[-1][2] % 12, lambda: score.analyze("key"))
    title = (score.metadata.title if score.metadata and score.metadata.title else "").strip() or "Untitled"
    source = f"music21 corpus: {ref.path}, tune {number or ref.ordinal}, {title}"
    return Melody(title=title, source=source, path=ref.path, tune=number or str(ref.ordinal), meter=meter,
                  beats_per_bar=beats_per_bar, beat_quarters=beat_quarters, key=str(key), notes=tuple(notes))


def _chord_pitch_classes(chord) -> set[int]:
    return {p.pitchClass for p in chord.pitches}


def chord_symbol_for(chord, key: Key, previous: str | None = None) -> str:
    """A chord symbol for a music21 chord (a chordified beat) that `parse_chord` and
    `transpose_symbol` accept: music21's own figure when it names a plain chord, else the
    previous chord when it holds all these notes, else the diatonic triad of `key` that
    covers most of them (its root on the bass note when tied)."""
    from music21 import harmony

    pcs = _chord_pitch_classes(chord)
    if len(pcs) >= 3:
        try:
            figure = harmony.chordSymbolFigureFromChord(chord)
        except Exception:  # music21 fails on some unusual sonorities
            figure = ""
        figure = figure.replace("-", "b")
        if figure and not re.search(r"Cannot|add|power|omit|pedal|bb|##", figure):
            try:
                parse_chord(figure)
                parse_chord(transpose_symbol(figure, 1))
                return figure
            except Exception:
                pass
    if previous and previous != NO_CHORD and pcs <= set(parse_chord(previous).pitch_classes):
        return previous
    bass = chord.bass().pitchClass if chord.pitches else None
    best = max(diatonic_chords(key), key=lambda c: (len(pcs & c.pitch_classes), c.root == bass, c.primary))
    return best.symbol


def parse_chorale(ref: TuneRef) -> Melody:
    """A chorale: the soprano part as the melody, one analysed chord symbol a beat."""
    from music21 import corpus

    try:
        score = corpus.parse(str(corpus_root() / ref.path), forceSource=True)
    except Exception as error:
        raise UnsupportedTune(f"music21 cannot parse it ({type(error).__name__})") from None
    if len(score.parts) < 2:
        raise UnsupportedTune("not a part score")
    soprano = next((p for p in score.parts if (p.partName or "").lower().startswith("soprano")), score.parts[0])
    layout = bar_layout(soprano)
    meter, beats_per_bar = layout.meter, layout.beats_per_bar
    if layout.beat_quarters != 1.0:
        raise UnsupportedTune(f"meter {meter}")
    notes = _melody_notes(soprano, layout)
    _check_length(notes, beats_per_bar)
    given = next(iter(score.recurse().getElementsByClass("Key")), None)
    key = choose_key(given, notes[-1][2] % 12, lambda: score.analyze("key")) if given is not None else None
    if key is None:
        key = _plan_key_of(score.analyze("key")) or Key("C")
    measures = list(score.chordify().getElementsByClass("Measure"))
    if len(measures) != len(layout.starts):
        raise UnsupportedTune("the parts disagree on the bars")
    spans = []
    for measure, measure_start in zip(measures, layout.starts):
        for c in measure.flatten().notes:
            if c.duration.quarterLength > 0:
                start = measure_start + float(c.offset)
                spans.append((start, start + float(c.duration.quarterLength), c))
    bars = math.ceil(max(s + d for s, d, _ in notes) / beats_per_bar - 1e-6)
    per_beat: list[str | None] = []
    previous = None
    for beat in range(bars * beats_per_bar):
        overlapping = [(min(b, beat + 1) - max(a, beat), -a, c) for a, b, c in spans if a < beat + 1 and b > beat]
        if not overlapping:
            per_beat.append(None)
            continue
        chord = max(overlapping, key=lambda o: (o[0], o[1]))[2]
        previous = chord_symbol_for(chord, key, previous)
        per_beat.append(previous)
    first = next((c for c in per_beat if c), None)
    if first is None:
        raise UnsupportedTune("no chords")
    filled, last = [], first
    for symbol in per_beat:  # beats before the pickup take the first chord, gaps the one before
        last = symbol or last
        filled.append(last)
    chords = tuple(_compress_bar(filled[b * beats_per_bar:(b + 1) * beats_per_bar]) for b in range(bars))
    title = f"Chorale BWV {ref.number}"
    if score.metadata is not None and score.metadata.title and not score.metadata.title.startswith("bwv"):
        title = f"{score.metadata.title.strip()} (BWV {ref.number})"
    source = f"music21 corpus: {ref.path}, J. S. Bach, {title}"
    return Melody(title=title, source=source, path=ref.path, tune=ref.number, meter=meter,
                  beats_per_bar=beats_per_bar, beat_quarters=1.0, key=str(key), notes=tuple(notes), chords=chords)


def _compress_bar(symbols: list[str]) -> tuple[str, ...]:
    """One bar's chords a beat, shortened while the bar divides evenly: [C, C, G, G] -> (C, G)."""
    symbols = list(symbols)
    while len(symbols) % 2 == 0 and len(symbols) > 1 and all(
            symbols[i] == symbols[i + 1] for i in range(0, len(symbols), 2)):
        symbols = symbols[::2]
    if len(set(symbols)) == 1:
        symbols = symbols[:1]
    return tuple(symbols)


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
        from composer.audio import write_text_atomic

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


# --- harmonisation ----------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    numeral: str
    degree: int  # 1..7
    symbol: str
    pitch_classes: frozenset[int]
    root: int

    @property
    def primary(self) -> float:
        """The bonus of the primary triads: I, then V, then IV."""
        return {1: 0.12, 5: 0.1, 4: 0.08}.get(self.degree, 0.0)


_NUMERALS = ("I", "II", "III", "IV", "V", "VI", "VII")


@lru_cache(maxsize=256)
def diatonic_chords(key: Key) -> tuple[Candidate, ...]:
    """The major and minor triads on the degrees of `key`'s scale (diminished ones left out),
    realised with `structure.harmony.realise`; minor keys also get the major V of harmonic minor."""
    m21 = music21_key(key)
    scale = [m21.pitchFromDegree(d).pitchClass for d in range(1, 8)]
    numerals = []
    for d in range(7):
        third, fifth = (scale[(d + 2) % 7] - scale[d]) % 12, (scale[(d + 4) % 7] - scale[d]) % 12
        if fifth != 7:
            continue
        numerals.append((_NUMERALS[d] if third == 4 else _NUMERALS[d].lower(), d + 1))
    if key.mode in ("minor", "aeolian") and ("V", 5) not in numerals:
        numerals.append(("V", 5))
    candidates = []
    for numeral, degree in numerals:
        symbol = realise(numeral, key)
        info = parse_chord(symbol)
        candidates.append(Candidate(numeral, degree, symbol, frozenset(info.pitch_classes), info.root))
    return tuple(candidates)


def _coverage(notes, start: float, end: float, pitch_classes: frozenset[int]) -> tuple[float, float]:
    """(duration of chord tones, duration of all notes) of the melody inside [start, end)."""
    inside = covered = 0.0
    for s, d, p in notes:
        overlap = min(s + d, end) - max(s, start)
        if overlap > 0:
            inside += overlap
            if p % 12 in pitch_classes:
                covered += overlap
    return covered, inside


def _slot_score(notes, start: float, end: float, chord: Candidate) -> float:
    covered, inside = _coverage(notes, start, end, chord.pitch_classes)
    score = covered / inside if inside else 0.0
    downbeat = next((p for s, d, p in notes if s <= start + 1e-6 < s + d), None)
    if downbeat is not None and downbeat % 12 in chord.pitch_classes:
        score += 0.1
    return score + chord.primary


def _transition(a: Candidate, b: Candidate) -> float:
    if a.symbol == b.symbol:
        return 0.04
    return {(5, 1): 0.1, (4, 5): 0.05, (2, 5): 0.05, (4, 1): 0.05, (1, 4): 0.03, (1, 5): 0.03,
            (6, 2): 0.03, (6, 4): 0.03}.get((a.degree, b.degree), 0.0)


def harmonise_melody(notes, key: Key, beats_per_bar: int, *, bars: int | None = None,
                     cadence: bool = True, split_margin: float = 0.25) -> list[list[str]]:
    """Chord symbols per bar for a melody given as (start_beat, duration_beats, pitch) or `Note`s.

    Each bar gets the diatonic triad of `key` that best covers its melody
    (duration-weighted chord tones, a downbeat chord tone counts extra),
    favouring I, V and IV, smooth functional moves (V-I, IV-V, ii-V) and an
    authentic cadence (V then I) at the end; a Viterbi pass picks the best
    sequence. A bar of four or six beats is split in two halves when the
    halves fit different chords clearly better (by `split_margin` of
    coverage) than any one chord does.
    """
    notes = [(n.start, n.duration, n.pitch) if isinstance(n, Note) else tuple(n) for n in notes]
    if bars is None:
        end = max((s + d for s, d, _ in notes), default=beats_per_bar)
        bars = max(1, math.ceil(end / beats_per_bar - 1e-6))
    candidates = diatonic_chords(key)
    slots: list[tuple[int, float, float]] = []  # (bar, start, end)
    for bar in range(bars):
        start, end = bar * beats_per_bar, (bar + 1) * beats_per_bar
        if beats_per_bar in (4, 6) and _split_bar(notes, start, end, candidates, split_margin):
            middle = start + beats_per_bar / 2
            slots += [(bar, start, middle), (bar, middle, end)]
        else:
            slots.append((bar, start, end))
    choice = _viterbi(notes, slots, candidates, cadence=cadence)
    chords: list[list[str]] = [[] for _ in range(bars)]
    for (bar, _, _), chord in zip(slots, choice):
        chords[bar].append(chord.symbol)
    return [bar[:1] if len(set(bar)) == 1 else bar for bar in chords]


def _split_bar(notes, start: float, end: float, candidates, margin: float) -> bool:
    def best(a, b):
        scored = []
        for c in candidates:
            covered, inside = _coverage(notes, a, b, c.pitch_classes)
            scored.append((covered / inside if inside else 0.0, c.primary, c))
        return max(scored, key=lambda x: (x[0], x[1]))

    middle = (start + end) / 2
    whole, first, second = best(start, end), best(start, middle), best(middle, end)
    if first[2].symbol == second[2].symbol:
        return False
    if not _coverage(notes, start, middle, frozenset())[1] or not _coverage(notes, middle, end, frozenset())[1]:
        return False
    return (first[0] + second[0]) / 2 >= whole[0] + margin


def _viterbi(notes, slots, candidates, *, cadence: bool) -> list[Candidate]:
    count = len(slots)
    scores = []
    for i, (_, start, end) in enumerate(slots):
        row = []
        for c in candidates:
            value = _slot_score(notes, start, end, c)
            if cadence and i == count - 1 and c.degree == 1:
                value += 0.5
            if cadence and count >= 2 and i == count - 2 and c.degree == 5:
                value += 0.15 + (0.05 if c.numeral == "V" else 0.0)
            row.append(value)
        scores.append(row)
    best = list(scores[0])
    back: list[list[int]] = []
    for i in range(1, count):
        new, pointers = [], []
        for j, c in enumerate(candidates):
            k = max(range(len(candidates)), key=lambda k: best[k] + _transition(candidates[k], c))
            new.append(best[k] + _transition(candidates[k], c) + scores[i][j])
            pointers.append(k)
        best, back = new, back + [pointers]
    j = max(range(len(candidates)), key=lambda j: best[j])
    path = [j]
    for pointers in reversed(back):
        j = pointers[j]
        path.append(j)
    return [candidates[j] for j in reversed(path)]


def chord_fit(notes, chords: list[list[str]], beats_per_bar: int) -> float:
    """The fraction of the melody's duration that sounds over a chord containing it."""
    covered = total = 0.0
    for bar, symbols in enumerate(chords):
        each = beats_per_bar / len(symbols)
        for c, symbol in enumerate(symbols):
            start = bar * beats_per_bar + c * each
            pcs = frozenset(parse_chord(symbol).pitch_classes)
            a, b = _coverage([(n.start, n.duration, n.pitch) if isinstance(n, Note) else n for n in notes],
                             start, start + each, pcs)
            covered, total = covered + a, total + b
    return covered / total if total else 0.0


# --- plans ------------------------------------------------------------------------
def transpose_key(key: Key, semitones: int) -> Key:
    return Key(_tonic_name(key.pitch_class + semitones, key.mode), key.mode)


def _transpose_chord(symbol: str, semitones: int) -> str:
    if semitones % 12 == 0 or symbol == NO_CHORD:
        return symbol
    transposed = transpose_symbol(symbol, semitones)
    try:
        parse_chord(transposed)
        return transposed
    except PlanError:  # a spelling music21 cannot read back (double accidentals): respell the root
        info = parse_chord(symbol)
        quality = symbol[1:].lstrip("#b").split("/")[0]
        root = _tonic_name(info.root + semitones, "major")
        respelled = root + quality
        if info.bass is not None and info.bass != info.root:
            respelled += "/" + _tonic_name(info.bass + semitones, "major")
        parse_chord(respelled)
        return respelled


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
        chords = [[_transpose_chord(c, shift) for c in bar] for bar in melody.chords]
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
                    tags={"genre": style}, style=style)
    validate(plan)
    return plan


__all__ = [
    "FOLK_COLLECTIONS", "Melody", "MelodyCache", "TuneRef", "UnsupportedTune", "chord_fit", "chorale_order",
    "default_cache_dir", "diatonic_chords", "folk_order", "harmonise_melody", "iter_chorales",
    "iter_folk_melodies", "list_chorales", "list_folk_tunes", "parse_abc_tune", "parse_chorale",
    "plan_from_melody", "transpose_key",
]
