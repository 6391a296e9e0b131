"""The voices: which speech engine voice sings, and in what range.

Each voice is a speech engine's voice (Flite's or Festival's, called as programs) sung
through the WORLD vocoder. The range is where the voice sings comfortably; a melody is moved
by whole octaves into it (`octave_shift`), and a line that still leaves the range by another
octave (`line_octave`), as a singer takes a line down that lies too high.
"""

from __future__ import annotations

from dataclasses import dataclass

from composer.errors import InputError
from composer.voice.engine import Speaker


@dataclass(frozen=True)
class Voice:
    name: str
    engine_voice: str  # the engine's voice that speaks the lines
    low: int  # MIDI note range it sings in
    high: int
    description: str
    breathiness: float = 0.0  # least aperiodicity of voiced frames (composer.voice.singer)
    engine: str = "flite"  # "flite" or "festival"
    fallback_voice: str = ""  # the Flite voice for lines the engine's reading does not say (default: engine_voice)
    slowness: float = 1.0  # the engine reads the lines this many times slower than it speaks (composer.voice.engine)
    slow_consonants: bool = False  # consonants keep the slow reading's length (else the engine's own pace)
    air: float = 0.0  # breath above AIR_HZ on high notes: the least aperiodicity there (composer.voice.singer)
    speaking_pitch: int = 55  # MIDI note of the engine voice's speech: the air rises over the octave above it
    emphasis: float = 0.0  # formants raised above the envelope's average on high notes, negative flattens them (singer)

    @property
    def speaker(self) -> Speaker:
        return Speaker(self.engine, self.engine_voice, self.fallback_voice or self.engine_voice, self.slowness)


VOICES = {
    # ranges chosen by measurement (benchmarks/voice.py, Whisper tiny's WER sung on 10 sheets):
    # Flite's slt sung at E3..C5 about twice as well understood as at A3..G5; at D3..A#4 with
    # some breath under the harmonics, 0.13 against 0.22 at E3..C5 without (the breath helps
    # slt's high notes, not rms: 0.10 with it against 0.085)
    # Festival's HTS voice of the same speaker (CMU ARCTIC slt) sung at D3..A#4: 0.082 against
    # 0.123 for Flite's slt on the same clips (benchmarks/voice.py, 2026-11-30; 0.073 once the
    # clips kept out the next section's first word); its breath (0, 0.15, 0.3) and range
    # (C3..G#4, D3..A#4, E3..C5) were measured again with it: none beat D3..A#4 with 0.15 by
    # more than the recogniser's noise (20 sheets later showed differences of a few words to be noise).
    # Read 1.5x slower with its consonants at the engine's pace it lost words (82 / 103 errors in 680
    # on two melody draws, against 71 / 93); with its consonants at the slow reading's pace it gained
    # (53 / 66), but its vowels came off the beat (word onsets within 60 ms 0.91 -> 0.87, goal 0.90).
    # Its errors climb with the note: 5 % of words below G3 (its speech's pitch), 20 % at G4..A4 and
    # 32 % above, where the harmonics are too far apart to show the vowels' formants; breath above
    # 1 kHz on those notes (`air`) shows them: 63 / 64. Read 1.25x slower with slow consonants, and
    # with a glottal onset before vowel-initial words (singer.GLOTTAL_*: their onsets were found
    # 0.80 -> 0.99), 50 / 58 with onsets 0.91 (benchmarks/results/voice_high_sweep.json)
    # Its formants flattened halfway toward the envelope's 800-Hz average on its high notes
    # (`emphasis` -0.5, rising as the air does) it lost fewer words: 39 / 46 against 43 / 53 (20
    # sheets, both melody draws; its plain speech: 26), and by the emphasis from +1 to -1 the
    # errors went 60 / 64, 51 / 54, 43 / 53, 39 / 46, 39 / 48 (-0.75, onsets 0.894), 42 / 55: sharp
    # formants between harmonics far apart make the vowel depend on where the harmonics fall
    # (benchmarks/results/voice_high_emphasis_sweep.json)
    "high": Voice("high", "cmu_us_slt_arctic_hts", 50, 70,
                  "a high voice (D3..A#4), from Festival's HTS US English female voice 'slt'",
                  breathiness=0.15, engine="festival", fallback_voice="slt", slowness=1.25, slow_consonants=True,
                  air=0.8, speaking_pitch=55, emphasis=-0.5),
    # the engine reads the lines slower than it speaks, and the singer keeps the consonants at the
    # engine's pace: fuller vowels, stretched less on long notes. Its errors in 680 sung words on
    # two melody draws (benchmarks/voice.py): 62 / 77 at 1, 47 / 42 at 1.75 (its plain speech: 39);
    # screened with the consonants at the reading's pace: 48 / 49 at 1.5, 47 / 46 at 1.75, 44 / 46
    # at 2, 53 / 75 at 2.5 (voice_slowness_sweep.json)
    "low": Voice("low", "rms", 43, 66, "a low voice (G2..F#4), from Flite's US English male voice 'rms'",
                 slowness=1.75),
}
# the default: the voice that meets every goal on all three melody draws (sung over spoken WER 1.10 / 1.26 / 1.10,
# against 1.50 / 1.77 / 2.27 for "high"; benchmarks/voice.py, 20 sheets, seed offsets 0, 100, 200)
DEFAULT_VOICE = "low"


def get_voice(name: str, *, what: str = "--voice") -> Voice:
    """The voice called `name`; InputError naming `what` and listing the voices otherwise."""
    if isinstance(name, str) and name.strip().lower() in VOICES:
        return VOICES[name.strip().lower()]
    raise InputError(f"{what}: unknown voice {name!r} (known: {', '.join(sorted(VOICES))})")


def octave_shift(pitches: list[int], voice: Voice) -> int:
    """Semitones (a multiple of 12) that put the most notes inside the voice's range,
    the one nearest the range's middle on a tie."""
    if not pitches:
        return 0
    middle = (voice.low + voice.high) / 2
    centre = sorted(pitches)[len(pitches) // 2]

    def score(shift: int) -> tuple[int, float]:
        inside = sum(voice.low <= p + shift <= voice.high for p in pitches)
        return (-inside, abs(centre + shift - middle))

    return min((12 * k for k in range(-4, 5)), key=score)


def line_octave(pitches: list[int], low: int, high: int) -> int:
    """Semitones (-12, 0 or 12) more for one line, already moved by the song's octave: a line
    with most of its notes outside `low..high` moves by the octave that brings the most of them
    in (down on a tie), as a singer takes a line down that lies too high; otherwise 0 (one high
    note is sung where it is: moving the whole line for it put lines at the top of the range).
    A melody wider than the song's octave can place (a high voice's D3..A#4 against a tune from
    A-flat3 to D5) would otherwise sing whole lines outside the range."""
    def inside(k: int) -> int:
        return sum(low <= p + k <= high for p in pitches)

    if not pitches or 2 * inside(0) >= len(pitches):
        return 0
    best = max((-12, 12), key=lambda k: (inside(k), -k))
    return best if inside(best) > inside(0) else 0
