"""Chords: symbols, roman-numeral progressions per style and section, cadences.

Progressions are written as roman numerals and realised in the plan's key
with music21, so the same style works in every key and mode.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache

from music21 import harmony, roman
from music21 import key as m21key

from structure.schema import Key, PlanError, is_minor_like

NO_CHORD = "N"


@dataclass(frozen=True)
class ChordInfo:
    symbol: str
    root: int | None  # pitch class, None for "N"
    bass: int | None
    pitch_classes: tuple[int, ...]


_ROOT = re.compile(r"(^|/)([A-G])b")


def _to_music21_figure(symbol: str) -> str:
    """music21 writes flats as '-': "Bbmaj7/Ab" -> "B-maj7/A-"."""
    return _ROOT.sub(lambda m: f"{m.group(1)}{m.group(2)}-", symbol.strip())


@lru_cache(maxsize=4096)
def parse_chord(symbol: str, field_path: str = "chord") -> ChordInfo:
    """Parse a chord symbol ("Am7", "F#", "G/B", "N") into pitch classes."""
    if symbol.strip() in (NO_CHORD, "NC", "N.C."):
        return ChordInfo(NO_CHORD, None, None, ())
    try:
        cs = harmony.ChordSymbol(_to_music21_figure(symbol))
        pcs = tuple(sorted({p.pitchClass for p in cs.pitches}))
        if not pcs:
            raise ValueError("no pitches")
        return ChordInfo(symbol, cs.root().pitchClass, cs.bass().pitchClass, pcs)
    except Exception:  # music21 raises several types for bad figures
        raise PlanError(field_path, f"unknown chord symbol {symbol!r}") from None


def music21_key(key: Key) -> m21key.Key:
    tonic = key.tonic.replace("b", "-") if len(key.tonic) > 1 else key.tonic
    mode = {"ionian": "major", "aeolian": "minor"}.get(key.mode, key.mode)
    if mode in ("major", "minor"):
        return m21key.Key(tonic.lower() if mode == "minor" else tonic, mode)
    return m21key.Key(tonic, mode)


@lru_cache(maxsize=4096)
def realise(numeral: str, key: Key) -> str:
    """A roman numeral ("V7", "bVII", "ii") in `key` as a chord symbol ("A7")."""
    rn = roman.RomanNumeral(numeral, music21_key(key))
    figure = harmony.chordSymbolFigureFromChord(rn)
    if not figure or figure == "Chord Symbol Cannot Be Identified":
        figure = rn.root().name
    return _simple_spelling(figure.replace("-", "b"))


_SIMPLE_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_AWKWARD_ROOT = re.compile(r"(^|/)([A-G])(bb|##|x)|(^|/)(Cb|Fb|E#|B#)(?![b#])")


def _simple_spelling(symbol: str) -> str:
    """Respell double flats/sharps and Cb/Fb/E#/B# roots ("Bbb" -> "A") for readable symbols."""
    def respell(match: re.Match) -> str:
        prefix = match.group(1) if match.group(1) is not None else match.group(4) or ""
        name = match.group(2) + match.group(3) if match.group(2) else match.group(5)
        pc = ("C D EF G A B".index(name[0]) + name.count("#") + 2 * name.count("x") - name.count("b")) % 12
        return prefix + _SIMPLE_NAMES[pc]

    return _AWKWARD_ROOT.sub(respell, symbol)


def key_scale_pitch_classes(key: Key) -> set[int]:
    return {p.pitchClass for p in music21_key(key).getScale().getPitches("C4", "B4")}


# Roman-numeral progressions (one chord a bar) by style and section role.
# Major-key and minor-key sets; modes borrow the closer one.
PROGRESSIONS: dict[str, dict[str, list[list[str]]]] = {
    "major": {
        "verse": [["I", "V", "vi", "IV"], ["I", "vi", "IV", "V"], ["vi", "IV", "I", "V"], ["I", "IV", "I", "V"],
                  ["I", "iii", "IV", "V"]],
        "chorus": [["IV", "V", "I", "vi"], ["I", "V", "vi", "IV"], ["IV", "I", "V", "vi"], ["I", "IV", "V", "IV"]],
        "pre-chorus": [["ii", "IV", "V", "V"], ["IV", "V", "IV", "V"], ["vi", "V", "IV", "V"]],
        "bridge": [["vi", "IV", "I", "V"], ["IV", "iv", "I", "V"], ["ii", "V", "iii", "vi"], ["bVII", "IV", "I", "V"]],
        "intro": [["I", "IV", "I", "V"], ["I", "V", "IV", "I"]],
        "outro": [["IV", "V", "I", "I"], ["IV", "I", "V", "I"]],
        "solo": [["I", "IV", "V", "IV"], ["vi", "IV", "I", "V"]],
    },
    "minor": {
        "verse": [["i", "VI", "III", "VII"], ["i", "iv", "v", "i"], ["i", "VII", "VI", "VII"], ["i", "iv", "VI", "V"]],
        "chorus": [["VI", "VII", "i", "i"], ["i", "VI", "III", "VII"], ["iv", "VI", "VII", "i"], ["VI", "III", "VII", "i"]],
        "pre-chorus": [["iv", "VI", "VII", "V"], ["VI", "VII", "iv", "V"]],
        "bridge": [["VI", "VII", "III", "VI"], ["iv", "i", "VI", "V"], ["III", "VII", "VI", "V"]],
        "intro": [["i", "VII", "VI", "V"], ["i", "iv", "i", "V"]],
        "outro": [["iv", "V", "i", "i"], ["VI", "V", "i", "i"]],
        "solo": [["i", "VI", "VII", "i"]],
    },
}
# Styles with their own harmonic language override the role defaults.
STYLE_PROGRESSIONS: dict[str, dict[str, list[list[str]]]] = {
    "jazz": {"verse": [["ii7", "V7", "Imaj7", "vi7"], ["Imaj7", "vi7", "ii7", "V7"], ["iii7", "vi7", "ii7", "V7"]],
             "chorus": [["Imaj7", "IV7", "iii7", "vi7"], ["ii7", "V7", "Imaj7", "Imaj7"]]},
    "blues": {"verse": [["I7", "I7", "I7", "I7", "IV7", "IV7", "I7", "I7", "V7", "IV7", "I7", "V7"]]},
    "hip-hop": {"verse": [["vi", "IV", "vi", "IV"], ["i", "VI", "i", "VI"]]},
}
ROLE_ALIASES = {"post-chorus": "chorus", "hook": "chorus", "drop": "chorus", "breakdown": "bridge",
                "interlude": "intro", "solo": "solo"}


def _mode_family(key: Key) -> str:
    return "minor" if is_minor_like(key.mode) else "major"


def _minorise(numeral: str, family: str) -> str:
    # Style progressions are written for major keys; map them roughly into minor.
    if family == "major":
        return numeral
    mapping = {"Imaj7": "i7", "I7": "i7", "I": "i", "ii7": "iiø7", "ii": "iio", "iii7": "IIImaj7",
               "IV7": "iv7", "IV": "iv", "vi7": "VImaj7", "vi": "VI", "V7": "V7", "V": "V"}
    return mapping.get(numeral, numeral)


def progression(style: str, kind: str, key: Key, bars: int, rng: random.Random, *,
                cadence: bool = True) -> list[list[str]]:
    """Chord symbols for `bars` bars (one chord a bar) ending on a cadence."""
    family = _mode_family(key)
    role = ROLE_ALIASES.get(kind, kind)
    style_choices = STYLE_PROGRESSIONS.get(style, {}).get(role)
    if style_choices:
        numerals = [_minorise(n, family) for n in rng.choice(style_choices)]
    else:
        options = PROGRESSIONS[family].get(role) or PROGRESSIONS[family]["verse"]
        numerals = list(rng.choice(options))
    bar_numerals = [numerals[i % len(numerals)] for i in range(bars)]
    if cadence and bars >= 2:
        tonic = "i" if family == "minor" else "I"
        if role in ("outro", "chorus", "verse") and bars >= 4:
            bar_numerals[-2], bar_numerals[-1] = ("V", tonic) if role != "verse" else (bar_numerals[-2], "V")
        elif role in ("pre-chorus", "bridge", "intro"):
            bar_numerals[-1] = "V"  # half cadence leads into what follows
    return [[realise(n, key)] for n in bar_numerals]


def transpose_symbol(symbol: str, semitones: int) -> str:
    """Transpose a chord symbol ("F#m7/A") by semitones, keeping its quality."""
    if symbol == NO_CHORD:
        return symbol
    transposed = harmony.ChordSymbol(_to_music21_figure(symbol)).transpose(semitones)
    return transposed.figure.replace("-", "b")
