"""The vocal stem in a render: sing the plan, make room for the voice, mix it in.

The lead instrument yields to the voice where it sings (`lead`): "yield" renders the
accompaniment with the melody resting under the sung lines (the model was trained on
melody rests), "duck" lowers the whole accompaniment there, "keep" leaves it.
"""

from __future__ import annotations

import time

import numpy as np

from composer.seeds import derived_seed

LEADS = ("yield", "duck", "keep")
MELODY_COLUMNS = slice(30, 42)  # pitch class one-hot (structure.frame_controls)
MELODY_OCTAVE, MELODY_REST, MELODY_ONSET = 42, 43, 44


PCM_BLOCK = 1 << 20  # samples converted at a time


def to_pcm(audio: np.ndarray, *gains: float) -> np.ndarray:
    """16-bit PCM of `audio` times each of `gains` in turn (float32 products), clipped: the
    samples libsndfile writes for the float audio (floor(x * 32768), clipped), made a block at a
    time, so a stem costs half its float size and no whole-song working copy."""
    out = np.empty(audio.shape, dtype=np.int16)
    for start in range(0, audio.shape[-1], PCM_BLOCK):
        x = np.array(audio[..., start: start + PCM_BLOCK], dtype=np.float32)
        for gain in gains:
            x *= gain
        np.clip(x, -1.0, 1.0, out=x)
        x *= np.float32(32768.0)
        np.floor(x, out=x)
        np.clip(x, -32768.0, 32767.0, out=x)
        out[..., start: start + PCM_BLOCK] = x
    return out


def from_pcm(pcm: np.ndarray) -> np.ndarray:
    """Float32 samples of 16-bit PCM (as soundfile reads them: x / 32768)."""
    return pcm.astype(np.float32) / np.float32(32768.0)


class PackedPCM:
    """16-bit PCM held as FLAC in memory: `unpack()` gives the same samples (lossless) and it
    takes 40 to 60 % of the array's size. A sung render holds its stems this way between the
    mix and their files (a 30-minute song's three stems: about 100 MB instead of 250 MB)."""

    RATE = 48000  # FLAC wants a sample rate; the samples do not depend on it
    dtype = np.dtype(np.int16)

    def __init__(self, pcm: np.ndarray):
        import io

        import soundfile as sf

        pcm = np.asarray(pcm)
        if pcm.dtype != np.int16:
            raise TypeError(f"PackedPCM holds 16-bit PCM, not {pcm.dtype}")
        self.shape = pcm.shape
        self.data = b""
        if pcm.size:
            buffer = io.BytesIO()
            sf.write(buffer, pcm.reshape(-1, pcm.shape[-1]).T, self.RATE, format="FLAC", subtype="PCM_16")
            self.data = buffer.getvalue()

    @property
    def nbytes(self) -> int:
        return len(self.data)

    def unpack(self) -> np.ndarray:
        import io

        import soundfile as sf

        if not self.data:
            return np.zeros(self.shape, dtype=np.int16)
        frames, _ = sf.read(io.BytesIO(self.data), dtype="int16", always_2d=True)
        return np.ascontiguousarray(frames.T).reshape(self.shape)


def _part(name: str) -> property:
    def get(self) -> np.ndarray | None:
        part = self._parts[name]
        return part.unpack() if isinstance(part, PackedPCM) else part

    def put(self, value) -> None:
        self._parts[name] = value

    return property(get, put, doc=f"the {name.replace('_', ' ')} stem (an array; a packed one is unpacked)")


class Stems:
    """A song's parts, each `[channels, samples]` or `[samples]`: float before the song's
    gain, or 16-bit PCM (int16, what the stem files hold) once it is applied (`to_pcm`),
    which `pack` holds as FLAC in memory. Reading a part gives its array."""

    NAMES = ("accompaniment", "vocals", "vocals_dry")
    accompaniment = _part("accompaniment")
    vocals = _part("vocals")  # wet
    vocals_dry = _part("vocals_dry")

    def __init__(self, accompaniment, vocals, vocals_dry):
        self._parts = dict(zip(self.NAMES, (accompaniment, vocals, vocals_dry)))

    @property
    def is_pcm(self) -> bool:
        """Every part 16-bit PCM (packed or not), that is, at the song's gain."""
        return all(part is not None and part.dtype == np.int16 for part in self._parts.values())

    def to_pcm(self, gain: float) -> Stems:
        return Stems(*(to_pcm(getattr(self, name), gain) for name in self.NAMES))

    def as_float(self) -> Stems:
        return Stems(*(from_pcm(a) if a.dtype == np.int16 else a for a in (getattr(self, n) for n in self.NAMES)))

    def pack(self, name: str | None = None) -> Stems:
        """Every 16-bit part (or just `name`) held as FLAC in memory, in place; returns self."""
        for key in self.NAMES if name is None else (name,):
            part = self._parts[key]
            if isinstance(part, np.ndarray) and part.dtype == np.int16:
                self._parts[key] = PackedPCM(part)
        return self


def has_lyrics(plan) -> bool:
    return any(s.lyrics and any(n.syllable for n in s.melody) for s in plan.sections)


def sing_song(plan, options, *, seed: int, sample_rate: int, samples: int | None = None, wrap: bool = False):
    """The dry `composer.voice.Vocal` of the plan, or None (no lyrics, or vocals off); wrap: a
    loop's (`composer.voice.sing`)."""
    if not options.vocals or not has_lyrics(plan):
        return None
    from composer.voice import sing

    return sing(plan, voice=options.voice, sample_rate=sample_rate, seed=seed, samples=samples,
                section_seeds=options.vocal_seeds, wrap=wrap)


def will_sing(plan, options) -> bool:
    return bool(options.vocals) and has_lyrics(plan)


def start_singing(plan, options, *, seed: int, sample_rate: int, samples: int | None = None):
    """`sing_song` in a background thread (the voice is made while the accompaniment renders):
    a future of (Vocal, seconds), or None when nothing is sung."""
    if not will_sing(plan, options):
        return None
    from concurrent.futures import ThreadPoolExecutor

    from composer.voice.engine import require_speaker
    from composer.voice.voices import get_voice

    require_speaker(get_voice(options.voice).speaker)  # a missing speech engine fails before the diffusion

    def sing():
        clock = time.monotonic()
        vocal = sing_song(plan, options, seed=seed, sample_rate=sample_rate, samples=samples)
        return vocal, time.monotonic() - clock

    pool = ThreadPoolExecutor(1, thread_name_prefix="voice")
    future = pool.submit(sing)
    pool.shutdown(wait=False)
    return future


def song_controls(plan, options, frame_rate: float, frames: int) -> np.ndarray | None:
    """The frame controls a sung song is rendered with (the melody resting under every line
    the voice sings, with lead "yield"), or None for the plan's own. The lines' times come
    from the plan (`composer.voice.singer.planned_spans`), so the voice need not be made yet."""
    if not will_sing(plan, options) or options.lead != "yield":
        return None
    from composer.voice.singer import planned_spans
    from structure.frame_controls import controls

    return yield_controls(controls(plan, frame_rate, frames=frames), planned_spans(plan), frame_rate)


def yield_controls(array: np.ndarray, spans: list[tuple[float, float]], frame_rate: float) -> np.ndarray:
    """Frame controls with the melody resting under the sung spans (seconds)."""
    out = array.copy()
    for a, b in spans:
        lo, hi = max(0, int(a * frame_rate)), min(out.shape[0], int(np.ceil(b * frame_rate)))
        out[lo:hi, MELODY_COLUMNS] = 0.0
        out[lo:hi, MELODY_OCTAVE] = 0.0
        out[lo:hi, MELODY_REST] = 1.0
        out[lo:hi, MELODY_ONSET] = 0.0
    return out


def chorus_spans(plan, vocal) -> tuple[list[tuple[float, float]], str]:
    """The sung lines of the choruses, or every sung line when the song has no chorus; and
    which of the two it is."""
    kinds = {s.name: s.kind for s in plan.sections}
    spans = [tuple(line) for section in vocal.sections if kinds.get(section["name"]) == "chorus"
             for line in section["lines"]]
    return (spans, "choruses") if spans else (vocal.sung_spans, "sung lines")


def add_vocals(accompaniment: np.ndarray, vocal, plan, options, *, seed: int, level: float | None = None,
               gain: float | None = None) -> tuple[np.ndarray, Stems, dict, float]:
    """The song at its gain, its stems as 16-bit PCM (held packed, `Stems.pack`), the report's
    "vocals" block and the gain.

    The mix is made in `accompaniment`'s own array and `vocal.audio` is let go once its stem
    is made (both are taken over: a 30-minute song holds no second copy of either). level:
    the vocal's gain (default: measured so it sits `LU_ABOVE` over the accompaniment); gain:
    the song's (default: `loudness_gain` of the mix, measured before the mix is made)."""
    from composer.rendering.loudness import loudness_gain
    from composer.voice.mix import Summed, add_into, duck, lu_difference, reverb, vocal_gain

    clock = time.monotonic()
    rate = vocal.sample_rate
    spans, measured_over = chorus_spans(plan, vocal)
    dry = vocal.audio
    if dry.shape[0] != accompaniment.shape[-1]:
        dry = np.pad(dry, (0, max(0, accompaniment.shape[-1] - dry.shape[0])))[: accompaniment.shape[-1]]
    wet = reverb(dry, rate, seed=derived_seed(seed, "room"))
    backing = duck(accompaniment, vocal.sung_spans, rate) if options.lead == "duck" else accompaniment
    level = vocal_gain(wet, backing, spans, rate) if level is None else level
    wet *= level  # the room's own new array
    above = lu_difference(wet, backing, spans, rate)
    gain = loudness_gain(Summed(backing, wet), rate) if gain is None else gain
    stems = Stems(None, None, to_pcm(dry, level, gain)).pack("vocals_dry")  # each stem held as FLAC once made
    vocal.audio = dry = None  # taken over: its stem holds it now
    stems.accompaniment = to_pcm(backing, gain)
    stems.pack("accompaniment")
    song = add_into(backing, wet)  # backing + wet, in backing's array
    song *= gain
    np.clip(song, -1.0, 1.0, out=song)
    stems.vocals = to_pcm(wet, gain)
    stems.pack("vocals")
    del wet
    report = {**vocals_report(vocal, options, level=level, above=above, measured_over=measured_over),
              "seconds": round(time.monotonic() - clock, 3)}
    return song, stems, report, gain


def vocals_report(vocal, options, *, level: float, above: float, measured_over: str) -> dict:
    """The report's "vocals" block: what sang (voice, engine, how), at what level, and where."""
    from composer.voice.singer import GLOTTAL_DEPTH, GLOTTAL_LENGTH
    from composer.voice.voices import get_voice

    chosen = get_voice(vocal.voice)
    speaker = chosen.speaker
    return {
        "voice": vocal.voice, "speech_engine": speaker.engine, "engine_voice": speaker.name,
        "engine_slowness": speaker.slowness, "octave_shift": vocal.shift, "lead": options.lead,
        "singing": {"slow_consonants": chosen.slow_consonants, "breathiness": chosen.breathiness,
                    "air": chosen.air, "air_from_midi": chosen.speaking_pitch,
                    "glottal_onset": {"seconds": GLOTTAL_LENGTH, "depth": GLOTTAL_DEPTH}},
        "level_gain": round(level, 6),
        "lu_above_accompaniment": above,
        "measured_over": measured_over,
        "sections": [{"name": s["name"], "lines": len(s["lines"]), "words": len(s["words"]),
                      **({"lines_moved_an_octave": s["line_octaves"]} if s.get("line_octaves") else {})}
                     for s in vocal.sections],
        "section_seeds": dict(options.vocal_seeds or {}),
    }
