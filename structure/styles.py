"""Styles: song forms, tempo and meter ranges, instruments and drum patterns.

One table per concern, keyed by style name. A form is a list of
(section kind, bars); repeated kinds (a second chorus) become `repeat_of`
the first in the planner.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Style:
    name: str
    form: tuple[tuple[str, int], ...]
    tempo_range: tuple[int, int]
    beats_per_bar: int = 4
    minor_probability: float = 0.3
    melody_program: int = 73  # General MIDI program (0-based)
    bass_program: int = 33
    chord_program: int = 0
    comping: str = "block"  # block | arpeggio | strum | stab | pad
    drums: str = "rock"  # a key of DRUM_PATTERNS, or "" for none
    swing: float = 0.0  # 0: straight eighths; 0.33: triplet swing
    instruments: tuple[str, ...] = field(default_factory=tuple)


STYLES: dict[str, Style] = {s.name: s for s in (
    Style("pop", (("intro", 4), ("verse", 8), ("pre-chorus", 4), ("chorus", 8), ("verse", 8),
                  ("pre-chorus", 4), ("chorus", 8), ("bridge", 8), ("chorus", 8), ("outro", 4)),
          (90, 128), melody_program=80, bass_program=33, chord_program=0, comping="block", drums="pop",
          instruments=("piano", "synth lead", "electric bass", "drums")),
    Style("rock", (("intro", 4), ("verse", 8), ("chorus", 8), ("verse", 8), ("chorus", 8),
                   ("solo", 8), ("chorus", 8), ("outro", 4)),
          (100, 150), melody_program=29, bass_program=34, chord_program=30, comping="strum", drums="rock",
          instruments=("distorted guitar", "overdriven guitar", "bass", "drums")),
    Style("folk", (("intro", 4), ("verse", 8), ("chorus", 8), ("verse", 8), ("chorus", 8),
                   ("bridge", 4), ("chorus", 8), ("outro", 4)),
          (80, 120), minor_probability=0.4, melody_program=73, bass_program=32, chord_program=25,
          comping="arpeggio", drums="folk", instruments=("acoustic guitar", "flute", "upright bass")),
    Style("ballad", (("intro", 4), ("verse", 8), ("chorus", 8), ("verse", 8), ("chorus", 8),
                     ("bridge", 8), ("chorus", 8), ("outro", 4)),
          (60, 84), minor_probability=0.35, melody_program=48, bass_program=32, chord_program=0,
          comping="arpeggio", drums="ballad", instruments=("piano", "strings", "soft drums")),
    Style("electronic", (("intro", 8), ("verse", 8), ("breakdown", 8), ("drop", 16), ("verse", 8),
                         ("breakdown", 8), ("drop", 16), ("outro", 8)),
          (118, 132), minor_probability=0.6, melody_program=81, bass_program=38, chord_program=89,
          comping="pad", drums="four_on_floor", instruments=("synth lead", "synth bass", "pad", "drum machine")),
    Style("hip-hop", (("intro", 4), ("verse", 16), ("hook", 8), ("verse", 16), ("hook", 8), ("outro", 4)),
          (80, 100), minor_probability=0.6, melody_program=11, bass_program=38, chord_program=4,
          comping="stab", drums="hip_hop", swing=0.2, instruments=("electric piano", "808 bass", "drum machine")),
    Style("jazz", (("intro", 4), ("verse", 8), ("chorus", 8), ("solo", 8), ("verse", 8), ("chorus", 8),
                   ("outro", 4)),
          (110, 180), minor_probability=0.25, melody_program=65, bass_program=32, chord_program=0,
          comping="stab", drums="swing", swing=0.33, instruments=("saxophone", "piano", "upright bass", "brushes")),
    Style("country", (("intro", 4), ("verse", 8), ("chorus", 8), ("verse", 8), ("chorus", 8),
                      ("solo", 8), ("chorus", 8), ("outro", 4)),
          (90, 130), minor_probability=0.1, melody_program=110, bass_program=33, chord_program=25,
          comping="strum", drums="country", instruments=("acoustic guitar", "fiddle", "bass", "drums")),
    Style("waltz", (("intro", 4), ("verse", 16), ("chorus", 16), ("verse", 16), ("chorus", 16), ("outro", 4)),
          (84, 160), beats_per_bar=3, minor_probability=0.3, melody_program=40, bass_program=32,
          chord_program=21, comping="waltz", drums="waltz", instruments=("violin", "accordion", "bass")),
    Style("blues", (("intro", 4), ("verse", 12), ("verse", 12), ("solo", 12), ("verse", 12), ("outro", 4)),
          (70, 120), minor_probability=0.0, melody_program=26, bass_program=32, chord_program=16,
          comping="stab", drums="swing", swing=0.33, instruments=("electric guitar", "organ", "bass")),
)}

STYLE_ALIASES = {
    "dance": "electronic", "edm": "electronic", "house": "electronic", "techno": "electronic",
    "hiphop": "hip-hop", "rap": "hip-hop", "swing": "jazz", "bossa": "jazz", "singer-songwriter": "folk",
    "acoustic": "folk", "country-waltz": "waltz", "metal": "rock", "punk": "rock", "indie": "rock",
    "soul": "ballad", "r&b": "ballad", "rnb": "ballad",
}


def get_style(name: str) -> Style:
    """The style named `name` (aliases allowed); pop for anything unknown."""
    name = name.lower().strip()
    return STYLES.get(STYLE_ALIASES.get(name, name), STYLES["pop"])


# Drum patterns: per instrument (GM drum note), onsets in sixteenths of one bar of 4/4
# (of 3/4 for waltz); density grows with section energy in the arranger.
KICK, SNARE, CLOSED_HAT, OPEN_HAT, RIDE, CRASH, SIDE_STICK = 36, 38, 42, 46, 51, 49, 37
DRUM_PATTERNS: dict[str, dict[int, tuple[int, ...]]] = {
    "pop": {KICK: (0, 8, 10), SNARE: (4, 12), CLOSED_HAT: (0, 2, 4, 6, 8, 10, 12, 14)},
    "rock": {KICK: (0, 6, 8), SNARE: (4, 12), CLOSED_HAT: (0, 2, 4, 6, 8, 10, 12, 14)},
    "folk": {KICK: (0, 8), SIDE_STICK: (4, 12), CLOSED_HAT: (0, 4, 8, 12)},
    "ballad": {KICK: (0, 10), SIDE_STICK: (8,), CLOSED_HAT: (0, 4, 8, 12)},
    "four_on_floor": {KICK: (0, 4, 8, 12), SNARE: (4, 12), OPEN_HAT: (2, 6, 10, 14), CLOSED_HAT: (0, 4, 8, 12)},
    "hip_hop": {KICK: (0, 7, 10), SNARE: (4, 12), CLOSED_HAT: (0, 2, 4, 6, 8, 10, 12, 14)},
    "swing": {RIDE: (0, 4, 7, 8, 12, 15), KICK: (0, 8), SIDE_STICK: (4, 12)},
    "country": {KICK: (0, 8), SNARE: (4, 12), CLOSED_HAT: (0, 2, 4, 6, 8, 10, 12, 14)},
    "waltz": {KICK: (0,), SNARE: (4, 8), CLOSED_HAT: (0, 4, 8)},
}

# The same grooves in a compound meter (6/8, 9/8, 12/8): onsets in eighths of a cell of two
# dotted-quarter beats (0..5), repeated over the bar; the backbeat falls on the second beat.
COMPOUND_DRUM_PATTERNS: dict[str, dict[int, tuple[int, ...]]] = {
    "pop": {KICK: (0, 5), SNARE: (3,), CLOSED_HAT: (0, 1, 2, 3, 4, 5)},
    "rock": {KICK: (0, 2), SNARE: (3,), CLOSED_HAT: (0, 1, 2, 3, 4, 5)},
    "folk": {KICK: (0,), SIDE_STICK: (3,), CLOSED_HAT: (0, 2, 3, 5)},
    "ballad": {KICK: (0,), SIDE_STICK: (3,), CLOSED_HAT: (0, 1, 2, 3, 4, 5)},
    "four_on_floor": {KICK: (0, 3), SNARE: (3,), OPEN_HAT: (2, 5), CLOSED_HAT: (0, 3)},
    "hip_hop": {KICK: (0, 2, 5), SNARE: (3,), CLOSED_HAT: (0, 1, 2, 3, 4, 5)},
    "swing": {RIDE: (0, 2, 3, 5), KICK: (0,), SIDE_STICK: (3,)},
    "country": {KICK: (0,), SNARE: (3,), CLOSED_HAT: (0, 1, 2, 3, 4, 5)},
    "waltz": {KICK: (0,), SNARE: (3,), CLOSED_HAT: (0, 2, 3, 5)},
}
