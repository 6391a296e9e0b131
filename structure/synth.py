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
    from structure import load_fluidsynth

    fluidsynth = load_fluidsynth()
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
    time in threads (FluidSynth lets go of the GIL while it synthesises), into one int32 mix
    (`_play_apart`: a render's guide, lean for long songs). The sound is the same, the bytes
    are not those of one synthesizer playing the parts in turn (its chorus and reverb carry
    over from part to part), which is what the corpus was made with, so that stays the
    default. Either way the same MIDI gives the same bytes, however many workers.
    """
    soundfont = soundfont or default_soundfont()
    if not Path(soundfont).is_file():
        raise PlanError("soundfont", f"{soundfont}: no such file (install fluid-soundfont-gm or pass --soundfont)")
    playing = [instrument for instrument in midi.instruments if instrument.notes]
    if workers > 1 and len(playing) > 1:
        mix = _play_apart(playing, str(soundfont), int(sample_rate), workers)
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
        mix = np.pad(mix, (0, target - len(mix))) if target > len(mix) else mix[:target]
    peak = np.abs(mix).max() if len(mix) else 0.0
    if peak > 0:
        mix *= 0.9 / peak
    return mix.astype(np.float32, copy=False)[None], sample_rate


def _play_apart(instruments: list, soundfont: str, sample_rate: int, workers: int) -> np.ndarray:
    """The instruments mixed, float32: each on its own fresh synthesizer, `workers` threads at a
    time, its 16-bit samples added into one int32 mix as they are made. Integer sums are exact,
    so the bytes do not depend on which thread adds first, and a 30-minute song holds no part
    whole (pretty_midi's own method makes a float64 array of the song for every part). The
    synthesizers are made here, one after another: FluidSynth sets itself up on the first."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    end = max(max(n.end for n in i.notes) for i in instruments)
    mix = np.zeros(int(np.ceil(sample_rate * (end + 1.0))), dtype=np.int32)
    lock = threading.Lock()
    synths = []
    try:
        for _ in instruments:
            synths.append(_synthesizer(soundfont, sample_rate))
        with ThreadPoolExecutor(min(workers, len(instruments)), thread_name_prefix="fluidsynth") as pool:
            list(pool.map(lambda pair: _play_into(mix, lock, pair[0], *pair[1], sample_rate),
                          zip(instruments, synths)))
    finally:
        for synth, _ in synths:
            synth.delete()
    return mix.astype(np.float32)


def _play_into(out: np.ndarray, lock, instrument, synth, sfid: int, sample_rate: int) -> None:
    """pretty_midi's `Instrument.fluidsynth`, its samples added into `out` (under `lock`) as
    they are made."""
    if instrument.is_drum:  # channel 9, bank 128, as pretty_midi does
        channel = 9
        if synth.program_select(channel, sfid, 128, instrument.program) == -1:
            synth.program_select(channel, sfid, 128, 0)
    else:
        channel = 0
        synth.program_select(channel, sfid, 0, instrument.program)
    events = [(n.start, 0, n.pitch, n.velocity) for n in instrument.notes] + \
             [(n.end, -1, n.pitch, 0) for n in instrument.notes] + \
             [(b.time, 1, b.pitch, 0) for b in instrument.pitch_bends] + \
             [(c.time, 2, c.number, c.value) for c in instrument.control_changes]
    events.sort(key=lambda e: (e[0], e[1] != -1))  # at the same time, note-offs first
    events.append((events[-1][0] + 1.0, 3, 0, 0))  # a second of sound after the last event
    position = int(sample_rate * events[0][0])
    for (_, kind, a, b), (next_time, *_) in zip(events[:-1], events[1:]):
        if kind == 0:
            synth.noteon(channel, a, b)
        elif kind == -1:
            synth.noteoff(channel, a)
        elif kind == 1:
            synth.pitch_bend(channel, a)
        elif kind == 2:
            synth.cc(channel, a, b)
        end = min(int(sample_rate * next_time), len(out))
        if end > position:
            samples = synth.get_samples(end - position)[::2]  # int16 stereo; the left channel
            with lock:
                out[position:end] += samples
            position = end
