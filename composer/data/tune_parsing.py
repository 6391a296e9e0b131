"""Parsing one tune of the music21 corpus into a `Melody`: ABC folk tunes and Bach chorales.

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
`analyze('key')` (`structure.harmonise.choose_key`). Chorales use their
encoded key, or the analysis; their chords are named a beat at a time by
`structure.harmonise.chord_symbol_for`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from composer.data.melodies import Melody, TuneRef, UnsupportedTune, abc_blocks, corpus_root
from structure.harmonise import choose_key, chord_symbol_for, plan_key_of
from structure.schema import Key

MIN_BARS, MAX_BARS, MIN_NOTES = 4, 64, 8
_FLOAT_DIGITS = 6


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

    header, blocks = abc_blocks(ref.path)
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
        key = plan_key_of(score.analyze("key")) or Key("C")
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
