"""FluidSynth rendering of arrangements with General MIDI soundfonts from Debian.

Every render gets a fresh synthesizer, so the audio of a song depends on the
song alone: a reused FluidSynth keeps its reverb state and its position in
the 64-sample block across `system_reset`, and then the same MIDI rendered
after another song came out different (a rebuilt corpus item did not match
its first render). Samples load on first use (`synth.dynamic-sample-loading`),
so a fresh synthesizer costs ~0.02 s to start instead of the ~6.5 s that
loading all of the MuseScore sf3 took; rendering runs at 40-85x real time
per core.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pretty_midi

from structure.schema import PlanError

log = logging.getLogger(__name__)

TRAINING_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"  # fluid-soundfont-gm
VALIDATION_SOUNDFONT = "/usr/share/sounds/sf3/MuseScore_General_Full.sf3"  # musescore-general-soundfont
DEFAULT_SAMPLE_RATE = 24000


def default_soundfont() -> str:
    return os.environ.get("COMPOSER_SOUNDFONT", TRAINING_SOUNDFONT)


_DITHER_SEEDED = False


def _seed_dither() -> None:
    """FluidSynth dithers its 16-bit output from a noise table it fills with C's `rand()` the
    first time a synthesizer is made in the process. In a plain Python process nothing has
    called `srand`, so the table is always the same (glibc's default seed, 1); a process that
    seeded it (a Ray worker does) got other noise, and so other audio from the same MIDI. Seeding
    it here, before the first synthesizer, gives every process the plain one's bytes."""
    global _DITHER_SEEDED
    if _DITHER_SEEDED:
        return
    import ctypes

    try:
        ctypes.CDLL(None).srand(1)
    except (OSError, AttributeError):  # not glibc: nothing to seed
        pass
    _DITHER_SEEDED = True


def _synthesizer(soundfont: str, sample_rate: int):
    """A new synthesizer with `soundfont` loaded (the caller deletes it)."""
    import fluidsynth

    _seed_dither()
    synth = fluidsynth.Synth(samplerate=float(sample_rate), **{"synth.dynamic-sample-loading": 1})
    sfid = synth.sfload(soundfont)
    if sfid < 0:
        synth.delete()
        raise PlanError("soundfont", f"{soundfont}: FluidSynth cannot load it")
    return synth, sfid


def render_midi(midi: pretty_midi.PrettyMIDI, *, soundfont: str | None = None,
                sample_rate: int = DEFAULT_SAMPLE_RATE, duration: float | None = None,
                workers: int = 1) -> tuple[np.ndarray, int]:
    """Render MIDI to float32 `[1, samples]` at `sample_rate`, peak-normalised to 0.9.

    duration: seconds; the output is padded or cut to exactly this length (so
    labels computed from the plan line up with the audio sample for sample).
    workers: with more than one, each part is played by its own synthesizer, `workers` at a
    time in threads (FluidSynth lets go of the GIL while it synthesises), for a render's guide;
    the bytes then differ slightly from one synthesizer playing the parts in turn (its reverb
    carries over from part to part), which is what the corpus was made with, so that stays
    the default. Either way the same MIDI gives the same bytes.
    """
    soundfont = soundfont or default_soundfont()
    if not Path(soundfont).is_file():
        raise PlanError("soundfont", f"{soundfont}: no such file (install fluid-soundfont-gm or pass --soundfont)")
    playing = [instrument for instrument in midi.instruments if instrument.notes]
    if workers > 1 and len(playing) > 1:
        parts = _play_apart(playing, str(soundfont), int(sample_rate), workers)
    else:
        synth, sfid = _synthesizer(str(soundfont), int(sample_rate))
        parts = []
        try:
            for instrument in playing:
                synth.system_reset()
                parts.append(instrument.fluidsynth(fs=sample_rate, synthesizer=synth, sfid=sfid))
        finally:
            synth.delete()
    length = max((len(p) for p in parts), default=0)
    mix = np.zeros(length, dtype=np.float64)
    for part in parts:
        mix[: len(part)] += part
    if duration is not None:
        target = int(round(duration * sample_rate))
        mix = np.pad(mix, (0, max(0, target - len(mix))))[:target]
    peak = np.abs(mix).max() if len(mix) else 0.0
    if peak > 0:
        mix *= 0.9 / peak
    return mix.astype(np.float32)[None], sample_rate


def _play_apart(instruments: list, soundfont: str, sample_rate: int, workers: int) -> list[np.ndarray]:
    """Each instrument on its own fresh synthesizer, `workers` threads at a time (the
    synthesizers are made here, one after another: FluidSynth sets itself up on the first)."""
    from concurrent.futures import ThreadPoolExecutor

    synths = []
    try:
        for _ in instruments:
            synths.append(_synthesizer(soundfont, sample_rate))
        with ThreadPoolExecutor(min(workers, len(instruments)), thread_name_prefix="fluidsynth") as pool:
            return list(pool.map(lambda pair: pair[0].fluidsynth(fs=sample_rate, synthesizer=pair[1][0], sfid=pair[1][1]),
                                 zip(instruments, synths)))
    finally:
        for synth, _ in synths:
            synth.delete()
