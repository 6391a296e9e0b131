"""Harmonising melodies: keys of tunes, diatonic chords, Viterbi chord fitting, transposition.

`harmonise_melody` gives a bare melody one or two chords a bar (see its
docstring); `chord_fit` measures how well chords cover a melody;
`choose_key` reads a tune's key from its signature and last note;
`chord_symbol_for` names a music21 chord as a symbol `parse_chord` accepts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

from structure.harmony import NO_CHORD, music21_key, parse_chord, realise, transpose_symbol
from structure.schema import MODES, PITCH_CLASS, Key, Note, PlanError, is_minor_like, tonic_name


# --- keys -----------------------------------------------------------------------
def plan_key_of(m21_key) -> Key | None:
    """A music21 Key as a plan Key (simple tonic spelling); None for unsupported modes."""
    mode = (m21_key.mode or "major").lower()
    if mode not in MODES:
        return None
    name = m21_key.tonic.name.replace("-", "b")
    tonic = name if name in PITCH_CLASS else tonic_name(m21_key.tonic.pitchClass, mode)
    return Key(tonic, mode)


_MODE_ON_DEGREE = {0: "major", 2: "dorian", 4: "phrygian", 5: "lydian", 7: "mixolydian", 9: "minor"}


def _tonic_triad(key: Key) -> set[int]:
    third = 3 if is_minor_like(key.mode) else 4
    return {key.pitch_class, (key.pitch_class + third) % 12, (key.pitch_class + 7) % 12}


def choose_key(given, final_pitch_class: int, analyse) -> Key:
    """The tune's key: `given` (a music21 Key or KeySignature, or None) when the last note is
    in its tonic triad; else the mode of its signature that ends on the last note; else
    `analyse()` (music21's key analysis)."""
    key = None
    if given is not None:
        m21 = given if hasattr(given, "mode") and given.mode else given.asKey("major")
        key = plan_key_of(m21)
        if key is not None and final_pitch_class in _tonic_triad(key):
            return key
        major_tonic = m21.asKey("major").tonic.pitchClass if hasattr(m21, "asKey") else None
        if major_tonic is not None:
            mode = _MODE_ON_DEGREE.get((final_pitch_class - major_tonic) % 12)
            if mode is not None:
                return Key(tonic_name(final_pitch_class, mode), mode)
    analysed = plan_key_of(analyse())
    if analysed is not None:
        return analysed
    if key is not None:
        return key
    return Key(tonic_name(final_pitch_class, "major"), "major")


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


# --- transposition ------------------------------------------------------------------
def transpose_key(key: Key, semitones: int) -> Key:
    return Key(tonic_name(key.pitch_class + semitones, key.mode), key.mode)


# Not `structure.harmony.transpose_symbol`: a whole number of octaves keeps the spelling as
# written (transpose_symbol("Db", 0) gives "C#"), and a result music21 cannot read back is
# respelled on simple roots.
def transpose_chord(symbol: str, semitones: int) -> str:
    if semitones % 12 == 0 or symbol == NO_CHORD:
        return symbol
    transposed = transpose_symbol(symbol, semitones)
    try:
        parse_chord(transposed)
        return transposed
    except PlanError:  # a spelling music21 cannot read back (double accidentals): respell the root
        info = parse_chord(symbol)
        quality = symbol[1:].lstrip("#b").split("/")[0]
        root = tonic_name(info.root + semitones, "major")
        respelled = root + quality
        if info.bass is not None and info.bass != info.root:
            respelled += "/" + tonic_name(info.bass + semitones, "major")
        parse_chord(respelled)
        return respelled


__all__ = [
    "Candidate", "choose_key", "chord_fit", "chord_symbol_for", "diatonic_chords", "harmonise_melody",
    "plan_key_of", "transpose_chord", "transpose_key",
]
