"""Songs synthesised with numpy from a SongPlan, for the analysis and evaluation tests.

Each bar's chord is a pad (harmonic partials) over a bass note, with a kick on
every downbeat (and mid-bar in 4/4) and a hi-hat on every beat. Section kinds
sound different: choruses bright and loud, verses mellow, intros and outros quiet. Everything lies on the plan's beat grid,
so the plan is the exact label of the audio.
"""

from __future__ import annotations

import numpy as np

from structure.harmony import parse_chord, realise
from structure.schema import Key, Section, SongPlan

RATE = 22050

# partial count, partial roll-off exponent, pad octave (MIDI of C), loudness
TIMBRES = {
    "chorus": (10, 1.0, 60, 0.30),
    "verse": (3, 2.0, 48, 0.2),
    "bridge": (6, 1.5, 72, 0.20),
    "intro": (2, 3.0, 60, 0.08),
    "outro": (2, 3.0, 60, 0.08),
}


def make_plan(*, tempo: float, key: str, beats_per_bar: int = 4,
              form: list[tuple[str, str, int, list[str]]]) -> SongPlan:
    """form: (name, kind, bars, progression cycled over the bars)."""
    sections = [Section(name=name, kind=kind, bars=bars,
                        chords=[[progression[i % len(progression)]] for i in range(bars)])
                for name, kind, bars, progression in form]
    return SongPlan.from_dict(SongPlan(title="synthetic", tempo_bpm=tempo, beats_per_bar=beats_per_bar,
                                       key=Key.parse(key), sections=sections).to_dict())


def _tone(frequency: float, seconds: float, partials: int, rolloff: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    tone = np.zeros_like(t)
    for h in range(1, partials + 1):
        if frequency * h < RATE / 2 - 500:
            tone += np.sin(2 * np.pi * frequency * h * t) / h**rolloff
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)  # no clicks at note edges
    return tone * fade


def _kick(seconds: float = 0.25) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * (50 * t + 60 * 0.04 * (1 - np.exp(-t / 0.04)))
    return np.sin(phase) * np.exp(-t / 0.08)


def _hat(rng: np.random.Generator, seconds: float = 0.04) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    noise = np.diff(rng.standard_normal(len(t) + 1))  # differenced noise: bright
    return noise * np.exp(-t / 0.01)


def _add(out: np.ndarray, start: float, sound: np.ndarray, gain: float) -> None:
    index = int(round(start * RATE))
    end = min(len(out), index + len(sound))
    if index < end:
        out[index:end] += gain * sound[: end - index]


def click(audio: np.ndarray, time: float, *, amplitude: float = 0.5, seconds: float = 0.003,
          seed: int = 1) -> None:
    """Add a short broadband burst (a splice click) at `time` seconds, in place."""
    noise = np.random.default_rng(seed).standard_normal(int(seconds * RATE))
    _add(audio, time, noise, amplitude)


def render(plan: SongPlan, *, seed: int = 0) -> np.ndarray:
    """Mono float32 `[samples]` at RATE, exactly `plan.duration` long."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(round(plan.duration * RATE)))
    spb = plan.seconds_per_beat
    bar_seconds = spb * plan.beats_per_bar
    kick, hat = _kick(), _hat(rng)
    for section, (start, _) in zip(plan.sections, plan.section_times()):
        partials, rolloff, octave, gain = TIMBRES.get(section.kind, TIMBRES["verse"])
        for bar, chords in enumerate(section.chords):
            bar_start = start + bar * bar_seconds
            chord = parse_chord(chords[0])
            if chord.root is None:
                continue
            pad = sum(_tone(440.0 * 2 ** ((octave + pc - 69) / 12), bar_seconds, partials, rolloff)
                      for pc in chord.pitch_classes)
            _add(out, bar_start, pad / len(chord.pitch_classes), gain)
            bass = _tone(440.0 * 2 ** ((36 + chord.root - 69) / 12), bar_seconds * 0.9, 4, 1.5)
            _add(out, bar_start, bass, gain * 0.5)
            for beat in range(plan.beats_per_bar):
                time = bar_start + beat * spb
                if beat == 0 or (plan.beats_per_bar == 4 and beat == 2):
                    _add(out, time, kick, 0.5 if beat == 0 else 0.35)
                _add(out, time, hat, 0.05 + 0.1 * (section.kind == "chorus"))
    out /= max(1.0, np.abs(out).max() / 0.9)
    return out.astype(np.float32)


def pop_plan(tempo: float = 128.0, key: str = "G major") -> SongPlan:
    """intro 4, verse 8, chorus 8, verse 8, chorus 8, outro 4 bars in a major key."""
    tonic = Key.parse(key)

    def chords(numerals):
        return [realise(n, tonic) for n in numerals]

    if tonic.mode == "minor":
        verse, chorus = chords(["i", "iv", "VI", "V"]), chords(["VI", "VII", "i", "i"])
        intro = chords(["i", "iv"])
    else:
        verse, chorus = chords(["vi", "IV", "I", "V"]), chords(["I", "V", "vi", "IV"])
        intro = chords(["I", "IV"])
    return make_plan(tempo=tempo, key=key, form=[
        ("intro", "intro", 4, intro), ("verse 1", "verse", 8, verse), ("chorus 1", "chorus", 8, chorus),
        ("verse 2", "verse", 8, verse), ("chorus 2", "chorus", 8, chorus), ("outro", "outro", 4, intro)])
