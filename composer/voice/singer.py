"""The singer: a plan's lyrics sung on its melody, as a dry vocal track.

The speech engine speaks every sung line once (a bank, in the voice's engine voice); the
WORLD vocoder (`pyworld`, MIT licence) analyses that speech into pitch, spectral envelope
and aperiodicity every 5 ms; each placed phone (`composer.voice.score`) then reads its
stretch of the bank: consonants at the engine's own speed (a voice may ask for its lines
read slower, `Voice.slowness`, for fuller vowels, and keep its consonants that slow too),
vowels held with their transitions kept, and the pitch replaced by the notes' (with a short
portamento between legato notes and a delayed vibrato on long ones). Each section is sung on its own, in its own time, so
a section that sings the same notes and words is the same audio; the song is their sum.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from composer.seeds import derived_seed
from composer.voice.engine import Speaker, Spoken, speak
from composer.voice.phonemes import SONORANTS, word_phones
from composer.voice.score import SectionScore, place, sung_syllables
from composer.voice.voices import DEFAULT_VOICE, get_voice, octave_shift

log = logging.getLogger(__name__)

FRAME_PERIOD = 5.0  # ms, WORLD's analysis frame
VIBRATO_RATE = 5.5  # Hz
VIBRATO_DEPTH = 0.22  # semitones (peak)
VIBRATO_AFTER = 0.4  # seconds: notes at least this long get vibrato
PORTAMENTO = 0.035  # seconds each side of a legato note change
TRANSITION = 0.05  # seconds of a vowel's start and end kept at spoken speed
TAIL = 0.08  # seconds of release after the last phone
CONSONANT_GAIN = 2.0  # consonants 3 dB louder than spoken: Whisper's WER on 6 sheets 0.27 -> 0.25 (high)
AIR_HZ = 1000.0  # a voice's `air` (breath on high notes) lies above this frequency
EMPHASIS_HZ = 800.0  # a voice's `emphasis` raises the envelope above its own average over this width
GLOTTAL_LENGTH = 0.04  # seconds: a word that begins with a vowel is attacked after a dip this long
GLOTTAL_DEPTH = 0.35  # the level in the dip (as a singer's glottal onset marks "an | apple")


@dataclass
class Vocal:
    """A dry vocal track `[samples]` at `sample_rate`, and what was sung where. A render's
    mix takes the audio over (`composer.rendering.vocals.add_vocals` leaves None here)."""

    audio: np.ndarray | None
    sample_rate: int
    voice: str
    shift: int  # semitones the melody moved to fit the voice
    sections: list[dict] = field(default_factory=list)  # per sung section: name, start, end, words

    @property
    def sung_spans(self) -> list[tuple[float, float]]:
        """(start, end) seconds of every sung line, song time."""
        return [tuple(span) for section in self.sections for span in section["lines"]]


def load_pyworld():
    with warnings.catch_warnings():  # pyworld imports pkg_resources, which warns on import
        warnings.simplefilter("ignore")
        import pyworld
    return pyworld


@dataclass
class Bank:
    """The spoken words and their WORLD analysis."""

    spoken: Spoken
    index: dict[tuple[str, int], int]  # (line text, word position) -> word number in the bank
    f0: np.ndarray
    sp: np.ndarray
    ap: np.ndarray

    def phone_times(self, source: tuple[str, int], i: int) -> tuple[float, float]:
        phones = self.spoken.words[self.index[source]]
        _, start, end = phones[min(i, len(phones) - 1)]
        return start, end


ANALYSIS_CHUNK = 20.0  # seconds of speech analysed at a time (cut in the pauses between lines)


BANK_CACHE_BYTES = 64 << 20  # a bank's analysis is ~0.8 MB a spoken second: keep only small ones
_BANKS: dict[tuple, tuple] = {}  # the last two small analyses (a repaint or a studio edit re-sings them)
_BANKS_LOCK = threading.Lock()


def _analyse(voice: str | Speaker, bank: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]):
    """`_analyse_now`, remembered for the last two songs whose analysis is under
    BANK_CACHE_BYTES; a long song's is let go once it is sung, not held through the render."""
    key = (voice, bank)
    with _BANKS_LOCK:
        if key in _BANKS:
            _BANKS[key] = _BANKS.pop(key)  # most recent last
            return _BANKS[key]
    result = _analyse_now(voice, bank)
    for array in (result[0].audio, *result[1:]):
        array.flags.writeable = False  # shared by every song that re-sings it: never changed in place
    if sum(a.nbytes for a in result[1:]) + result[0].audio.nbytes <= BANK_CACHE_BYTES:
        with _BANKS_LOCK:
            _BANKS[key] = result
            while len(_BANKS) > 2:
                _BANKS.pop(next(iter(_BANKS)))
    return result


def clear_bank_cache() -> None:
    with _BANKS_LOCK:
        _BANKS.clear()


def _analyse_now(voice: str | Speaker, bank: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]):
    """The bank spoken and analysed: (spoken, f0, sp, ap) every FRAME_PERIOD ms.

    The speech is analysed a chunk of lines at a time, cut in the middle of the pauses
    between lines on the frame grid, and the envelopes are kept in float32: a 10-minute
    song's bank held about 650 MB as one float64 analysis, a quarter of that now."""
    spoken = speak(voice, [[list(word) for word in line] for _, line in bank], [text for text, _ in bank])
    pw = load_pyworld()
    rate = spoken.sample_rate
    hop = int(round(rate * FRAME_PERIOD / 1000.0))
    cuts = _pause_cuts(spoken, [len(line) for _, line in bank], hop)
    # the chunks' frames go straight into the bank's arrays (lists of chunks joined at the end
    # held the analysis twice): every chunk but the last keeps (last - first) / hop frames
    room = len(spoken.audio) // hop + 8  # frames: the last chunk keeps one more, and a short one is padded
    f0_all, filled = np.zeros(room), 0
    sp_all = ap_all = None
    for first, last in zip(cuts[:-1], cuts[1:]):
        x = spoken.audio[first:last].astype(np.float64)
        if len(x) < 2 * hop:
            x = np.pad(x, (0, 2 * hop - len(x)))
        f0, t = pw.dio(x, rate, f0_floor=60.0, f0_ceil=600.0, frame_period=FRAME_PERIOD)
        f0 = pw.stonemask(x, f0, t, rate)
        f0 = _voice_sonorants(f0, t + first / rate, spoken)
        sp = pw.cheaptrick(x, f0, t, rate)
        ap = pw.d4c(x, f0, t, rate)
        keep = len(t) if last == len(spoken.audio) else (last - first) // hop  # the next chunk starts there
        if sp_all is None:
            sp_all = np.zeros((room, sp.shape[1]), dtype=np.float32)
            ap_all = np.zeros((room, ap.shape[1]), dtype=np.float32)
        f0_all[filled: filled + keep] = f0[:keep]
        sp_all[filled: filled + keep] = sp[:keep]
        ap_all[filled: filled + keep] = ap[:keep]
        filled += keep
    return spoken, f0_all[:filled], sp_all[:filled], ap_all[:filled]


def _pause_cuts(spoken: Spoken, line_words: list[int], hop: int) -> list[int]:
    """Sample positions [0, ..., len] where the analysis chunks meet: in the middle of the
    pause after a line, on the frame grid, about every ANALYSIS_CHUNK seconds."""
    rate, total = spoken.sample_rate, len(spoken.audio)
    cuts, at, chunk_start = [0], 0, 0.0
    for count in line_words[:-1]:
        at += count
        end_of_line, next_line = spoken.words[at - 1][-1][2], spoken.words[at][0][1]
        middle = 0.5 * (end_of_line + next_line)
        if middle - chunk_start >= ANALYSIS_CHUNK:
            sample = int(round(middle * rate / hop)) * hop
            if cuts[-1] < sample < total:
                cuts.append(sample)
                chunk_start = middle
    return cuts + [total]


def _voice_sonorants(f0: np.ndarray, t: np.ndarray, spoken: Spoken) -> np.ndarray:
    """f0 where the speech is known to be voiced (vowels, nasals, liquids, glides) but the
    tracker lost it, interpolated from the voiced frames around: the envelope and the
    aperiodicity are then measured as voiced there (otherwise the vowel comes out as noise)."""
    voiced = f0 > 0
    if not voiced.any():
        return f0
    fill = np.interp(t, t[voiced], f0[voiced])
    out = f0.copy()
    for word in spoken.words:
        for phone, start, end in word:
            if phone in SONORANTS:
                sel = (t >= start) & (t < end) & ~voiced
                out[sel] = fill[sel]
    return out


def make_bank(voice: str | Speaker, lines: list[str], phones: dict[str, list[str]]) -> Bank:
    """Every distinct line spoken once, connected (the voice's engine reads the line, aligned
    to the words' phones), and analysed."""
    import lyrics

    texts = sorted(set(lines))
    utterances = tuple((text, tuple(tuple(phones[t]) for t in lyrics.words(text))) for text in texts)
    spoken, f0, sp, ap = _analyse(voice, utterances)
    index, at = {}, 0
    for text in texts:
        for position, _ in enumerate(lyrics.words(text)):
            index[(text, position)] = at
            at += 1
    return Bank(spoken=spoken, index=index, f0=f0, sp=sp, ap=ap)


def sing(plan, *, voice: str = DEFAULT_VOICE, sample_rate: int = 24000, seed: int = 0,
         samples: int | None = None, section_seeds: dict[str, int] | None = None, wrap: bool = False) -> Vocal:
    """The plan's lyrics sung on its melody (dry), `samples` long (default: the song).

    wrap: the song is a loop: what is sung before its start (a first word's consonants, a
    breath) or past its end sounds at the other end, instead of being cut off.

    A section is sung from its notes, words and seed alone, so a repeated chorus is the same
    audio. section_seeds: another seed for the named sections (a repaint re-sings one).
    """
    import lyrics

    chosen = get_voice(voice)
    samples = int(round(plan.duration * sample_rate)) if samples is None else samples
    out = np.zeros(samples, dtype=np.float32)
    sung = [s for s in plan.sections if s.lyrics and any(n.syllable for n in s.melody)]
    pitches = [n.pitch for s in sung for n in s.melody if n.syllable]
    shift = octave_shift(pitches, chosen)
    vocal = Vocal(audio=out, sample_rate=sample_rate, voice=chosen.name, shift=shift)
    if not sung:
        return vocal
    lines = [line for s in sung for line in s.lyrics if lyrics.words(line)]
    tokens = [t for line in lines for t in lyrics.words(line)]
    phones = {t: (p or ["ax"]) for t, p in word_phones(tokens).items()}
    bank = make_bank(chosen.speaker, lines, phones)
    starts = dict(zip((s.name for s in plan.sections), (a for a, _ in plan.section_times())))
    made: dict[str, tuple[np.ndarray, float, SectionScore]] = {}
    todo = []
    for section in sung:
        syllables = sung_syllables(section, plan.beats_per_bar, plan.seconds_per_beat, phones.__getitem__, shift,
                                   fit=(chosen.low, chosen.high))
        if syllables:
            section_seed = (section_seeds or {}).get(section.name, seed)
            todo.append((section, syllables, (_content_key(syllables, chosen.name), section_seed)))
    pace = 1.0 if chosen.slow_consonants else chosen.slowness  # sung consonant = its length in the bank / pace
    uses = Counter(key for _, _, key in todo)  # a section's audio is kept only until its last repeat
    for section, syllables, key in todo:
        if key not in made:
            # consonants keep the engine's own pace unless the voice sings them slowly: the slower reading
            # is for the vowels (at its pace the low voice's consonants pushed its vowels off the beat:
            # word onsets within 60 ms 0.92 -> 0.86; the high voice's, with glottal onsets, stay at 0.91)
            score = place(syllables, lambda source, i: _length(bank.phone_times(source, i)) / pace)
            audio, offset = _sing_section(score, bank, sample_rate, derived_seed(key[1], "voice", key[0]),
                                          breathiness=chosen.breathiness, air=(chosen.air, chosen.speaking_pitch),
                                          emphasis=chosen.emphasis)
            made[key] = (audio, offset, score)
        audio, offset, score = made[key]
        uses[key] -= 1
        if not uses[key]:
            del made[key]
        start = starts[section.name]
        lines: dict[int, list[float]] = {}
        octaves: dict[int, int] = {}
        for syllable in score.syllables:
            span = lines.setdefault(syllable.line, [syllable.start, syllable.end])
            span[1] = syllable.end
            octaves[syllable.line] = syllable.octave
        vocal.sections.append({
            "name": section.name, "start": round(start, 4),
            "words": [(round(start + t, 3), w) for t, w in score.words],
            "lines": [(round(start + a, 3), round(start + b, 3)) for a, b in lines.values()],
            "line_octaves": {line: octave for line, octave in octaves.items() if octave},  # lyric line index: semitones
        })
        first = int(round((start + offset) * sample_rate))
        if wrap and samples > 0:
            np.add.at(out, (first + np.arange(audio.shape[0])) % samples, audio)
            continue
        lo, hi = max(0, first), min(samples, first + audio.shape[0])
        if hi > lo:
            out[lo:hi] += audio[lo - first: hi - first]
    return vocal


def planned_spans(plan) -> list[tuple[float, float]]:
    """(start, end) seconds of every line `sing(plan)` sings, from the plan alone (no speech,
    no synthesis): equal to `sing(plan, ...).sung_spans`, so the accompaniment can be
    rendered while the voice is still being made."""
    import lyrics

    sung = [s for s in plan.sections if s.lyrics and any(n.syllable for n in s.melody)]
    tokens = [t for s in sung for line in s.lyrics for t in lyrics.words(line)]
    phones = {t: (p or ["ax"]) for t, p in word_phones(tokens).items()}
    starts = dict(zip((s.name for s in plan.sections), (a for a, _ in plan.section_times())))
    spans = []
    for section in sung:
        lines: dict[int, list[float]] = {}
        for syllable in sung_syllables(section, plan.beats_per_bar, plan.seconds_per_beat, phones.__getitem__):
            span = lines.setdefault(syllable.line, [syllable.start, syllable.end])
            span[1] = syllable.end
        start = starts[section.name]
        spans += [(round(start + a, 3), round(start + b, 3)) for a, b in lines.values()]
    return spans


def _length(span: tuple[float, float]) -> float:
    return max(0.0, span[1] - span[0])


def _content_key(syllables, voice: str) -> str:
    text = repr([(s.text, s.word, s.line_text, round(s.start, 6), round(s.end, 6), s.notes, s.phones) for s in syllables])
    return hashlib.sha256(f"{voice}|{text}".encode()).hexdigest()[:16]


def _sing_section(score: SectionScore, bank: Bank, sample_rate: int, seed: int,
                  breathiness: float = 0.0, air: tuple[float, int] = (0.0, 55),
                  emphasis: float = 0.0) -> tuple[np.ndarray, float]:
    """The section's vocal and the section-local time (seconds) of its first sample.
    breathiness: the least aperiodicity of every voiced frame (breath noise under the
    harmonics, which shows the formants between them on high notes). air: (level, MIDI note)
    the least aperiodicity above AIR_HZ, rising from none at the note to `level` an octave up.
    emphasis: how much more the formants stand out of the envelope on notes above the same
    MIDI note (`formant_emphasis`; negative flattens them), rising as the air does."""
    import soxr

    pw = load_pyworld()
    rate = bank.spoken.sample_rate
    period = FRAME_PERIOD / 1000.0
    begin = min([p.start for p in score.phones] + [b[0] for b in score.breaths]) - 0.02
    finish = max(p.end for p in score.phones) + TAIL
    frames = int(np.ceil((finish - begin) / period)) + 1
    times = begin + np.arange(frames) * period
    n_bins = bank.sp.shape[1]
    floor = np.full(n_bins, 1e-12)
    sp = np.tile(floor, (frames, 1))
    ap = np.ones((frames, n_bins))
    voiced = np.zeros(frames, dtype=bool)
    active = np.zeros(frames)
    last = bank.sp.shape[0] - 1
    for phone in score.phones:
        sel = np.nonzero((times >= phone.start) & (times < phone.end))[0]
        if sel.size == 0:
            continue
        src_start, src_end = bank.phone_times(phone.word, phone.index)
        source = _source_times(times[sel], phone.start, phone.end, src_start, src_end, phone.part == "nucleus")
        position = np.clip(source / period, 0, last)
        lo = np.floor(position).astype(int)
        hi = np.minimum(lo + 1, last)
        w = (position - lo)[:, None]
        sp[sel] = (1 - w) * bank.sp[lo] + w * bank.sp[hi]
        ap[sel] = (1 - w) * bank.ap[lo] + w * bank.ap[hi]
        src_voiced = bank.f0[np.rint(position).astype(int)] > 0
        voiced[sel] = src_voiced | (phone.phone in SONORANTS)
        active[sel] = 1.0
        if phone.part != "nucleus" and CONSONANT_GAIN != 1.0:
            sp[sel] *= CONSONANT_GAIN
    sung_hz = _pitch_hz(times, score.notes, seed)
    if breathiness > 0:
        ap[voiced] = np.maximum(ap[voiced], breathiness)
    # 0 at the voice's speaking pitch and below, 1 an octave above it and higher
    rise = np.clip((12 * np.log2(sung_hz[voiced] / 440.0) + 69 - air[1]) / 12, 0.0, 1.0)
    if air[0] > 0:
        band = np.arange(n_bins) * rate / (2.0 * (n_bins - 1)) >= AIR_HZ
        ap[np.ix_(voiced, band)] = np.maximum(ap[np.ix_(voiced, band)], air[0] * rise[:, None])
    if emphasis != 0 and voiced.any():
        sp[voiced] = formant_emphasis(sp[voiced], emphasis * rise, rate)
    for phone in score.phones:  # a glottal onset before each word that begins with its vowel
        if phone.part == "nucleus" and phone.index == 0:
            dip = (times >= phone.start - GLOTTAL_LENGTH) & (times < phone.start - 0.005)
            active[dip] = np.minimum(active[dip], GLOTTAL_DEPTH)
    gain = np.convolve(active, np.ones(4) / 4, mode="same")  # 20 ms ramps: no clicks at the edges
    sp *= np.maximum(gain, 1e-6)[:, None] ** 2
    f0 = np.where(voiced, sung_hz, 0.0)
    audio = pw.synthesize(np.ascontiguousarray(f0), np.ascontiguousarray(sp), np.ascontiguousarray(ap), rate,
                          FRAME_PERIOD)
    audio = soxr.resample(audio, rate, sample_rate).astype(np.float32)
    audio += _breaths(score.breaths, begin, audio.shape[0], sample_rate, seed, level=_rms(audio))
    return audio, begin


def formant_emphasis(sp: np.ndarray, amount: np.ndarray, rate: int) -> np.ndarray:
    """Spectral envelopes `[frames, bins]` whose peaks (the formants) stand out `amount`
    (per frame) times more above the envelope's moving average over EMPHASIS_HZ, at the same
    power; a negative amount flattens them toward that average (-1: the average itself). A
    speech codec's postfilter sharpens them for clarity; on a high note, whose harmonics lie far
    apart, sharp formants make the vowel depend on where the harmonics fall, and the high voice
    is understood better with them flattened halfway (`composer.voice.voices`)."""
    from scipy.ndimage import uniform_filter1d

    log_sp = np.log(np.maximum(sp, 1e-16))
    width = max(3, int(round(EMPHASIS_HZ / (rate / (2.0 * (sp.shape[1] - 1))))))
    average = uniform_filter1d(log_sp, size=width, axis=1, mode="nearest")
    out = np.exp(log_sp + np.asarray(amount, dtype=float)[:, None] * (log_sp - average))
    power = sp.sum(axis=1, keepdims=True) / np.maximum(out.sum(axis=1, keepdims=True), 1e-30)
    return (out * power).astype(sp.dtype)


def _source_times(t: np.ndarray, start: float, end: float, src_start: float, src_end: float,
                  held: bool) -> np.ndarray:
    """Bank time for each sung time of a phone: linear, or for a held vowel its first and
    last TRANSITION seconds at spoken speed and the middle stretched."""
    length, spoken = end - start, max(src_end - src_start, 1e-4)
    u = t - start
    if not held or length <= spoken:
        return src_start + u * spoken / max(length, 1e-9)
    edge = min(TRANSITION, 0.3 * spoken)
    middle = np.clip(u - edge, 0, length - 2 * edge) * (spoken - 2 * edge) / max(length - 2 * edge, 1e-9)
    out = src_start + np.minimum(u, edge) + middle
    tail = u > length - edge
    out[tail] = src_end - (length - u[tail])
    return out


def _pitch_hz(times: np.ndarray, notes: list[tuple[float, float, int]], seed: int) -> np.ndarray:
    """The sung pitch at each time: the note sounding (or the last one begun), with
    portamento into legato notes and vibrato on long notes."""
    notes = sorted(notes)
    starts = np.array([n[0] for n in notes])
    index = np.clip(np.searchsorted(starts, times, side="right") - 1, 0, len(notes) - 1)
    midi = np.array([n[2] for n in notes], dtype=np.float64)[index]
    rng = np.random.default_rng(seed)
    rate = VIBRATO_RATE * (1 + 0.06 * (rng.random() - 0.5))
    for k, (start, end, pitch) in enumerate(notes):
        if k and notes[k - 1][2] != pitch and start - notes[k - 1][1] <= 0.05:
            glide = (times > start - PORTAMENTO) & (times < start + PORTAMENTO)
            u = (times[glide] - (start - PORTAMENTO)) / (2 * PORTAMENTO)
            midi[glide] = notes[k - 1][2] + (pitch - notes[k - 1][2]) * (u * u * (3 - 2 * u))
        if end - start >= VIBRATO_AFTER:
            inside = (times >= start) & (times < end)
            t = times[inside] - start
            depth = VIBRATO_DEPTH * np.clip((t - 0.18) / 0.25, 0.0, 1.0)
            midi[inside] += depth * np.sin(2 * np.pi * rate * t)
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _rms(audio: np.ndarray) -> float:
    loud = np.abs(audio) > 1e-4
    return float(np.sqrt(np.mean(audio[loud] ** 2))) if loud.any() else 0.0


def _breaths(breaths: list[tuple[float, float]], begin: float, samples: int, sample_rate: int, seed: int,
             level: float) -> np.ndarray:
    """Soft band-passed noise where the singer breathes in."""
    from scipy.signal import butter, sosfilt

    out = np.zeros(samples, dtype=np.float32)
    if not breaths or level <= 0:
        return out
    rng = np.random.default_rng(seed + 1)
    sos = butter(2, [700, min(6000, sample_rate / 2 - 100)], btype="band", fs=sample_rate, output="sos")
    for a, b in breaths:
        lo, hi = int(round((a - begin) * sample_rate)), int(round((b - begin) * sample_rate))
        lo, hi = max(0, lo), min(samples, hi)
        if hi - lo < 16:
            continue
        noise = sosfilt(sos, rng.standard_normal(hi - lo))
        noise *= np.hanning(hi - lo) * 0.07 * level / max(float(np.std(noise)), 1e-9)
        out[lo:hi] += noise.astype(np.float32)
    return out
