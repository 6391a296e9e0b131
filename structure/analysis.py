"""Features of real audio: tempo, beats, meter, key, chroma, chords and sections.

`analyze(audio, sample_rate)` measures a recording with librosa; `estimate_plan`
turns the measurements into a `SongPlan`, so restyled songs and unlabelled
archives go through the same conditioning path (`structure.controls`) as
planned ones. `composer.evaluate.metrics` uses the same functions to score renders.

Everything runs at `ANALYSIS_RATE` on the mono mix with a hop of `HOP`
samples (about 23 ms); a 3-minute song analyses in a few seconds. Times are
in seconds throughout; feature arrays are `[frames, features]`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import librosa
import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from structure.schema import TEMPO_RANGE, Key, Section, SongPlan, tonic_name, validate

ANALYSIS_RATE = 22050
HOP = 512
N_FFT = 2048
N_MELS = 128
N_MFCC = 20

NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# Key spellings that read naturally for each mode (enharmonics score the same).
NO_CHORD = "N"

# Key profiles (major, minor): Krumhansl-Kessler probe-tone ratings and
# Temperley's (Kostka-Payne) corpus profiles.
KEY_PROFILES = {
    "krumhansl": (
        np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88]),
        np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17]),
    ),
    "temperley": (
        np.array([5.0, 2.0, 3.5, 2.0, 4.5, 4.0, 2.0, 4.5, 2.0, 3.5, 1.5, 4.0]),
        np.array([5.0, 2.0, 3.5, 4.5, 2.0, 4.0, 2.0, 4.5, 3.5, 2.0, 1.5, 4.0]),
    ),
}
DEFAULT_TEMPO_BPM = 120.0  # used by estimate_plan only when the audio has no pulse at all
SILENCE_DB = -60.0  # dBFS below which a beat holds no chord
MAX_SECTION_BARS = 256  # the plan's limit


@dataclass
class Analysis:
    """What `analyze` measured. Times in seconds; frame arrays are `[frames, ...]`."""

    duration: float
    tempo_bpm: float  # 0.0 when no pulse was found
    beats: np.ndarray  # [beats] seconds
    downbeats: np.ndarray  # [bars] seconds, a subset of `beats`
    beats_per_bar: int  # 3 or 4
    key: Key
    key_strength: float  # the key's score in `estimate_key`, about -1..1.2
    frame_times: np.ndarray  # [frames] seconds, the centre of each frame
    chroma: np.ndarray  # [frames, 12], each frame's maximum is 1
    mfcc: np.ndarray  # [frames, N_MFCC]
    rms: np.ndarray  # [frames] linear RMS of the mono mix
    log_mel: np.ndarray  # [frames, N_MELS] dB
    onset_envelope: np.ndarray  # [frames] spectral flux of the log-mel spectrogram
    chords: list[str]  # one chord symbol per beat ("C", "F#m", "N")
    boundaries: np.ndarray  # [sections] section starts in seconds; the first is 0.0
    novelty: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [beats] boundary novelty
    beat_division: int = 2  # 3: a compound meter, its beat (a dotted quarter) of three eighths

    @property
    def hop_seconds(self) -> float:
        return HOP / ANALYSIS_RATE


# --- the analysis ----------------------------------------------------------
BLOCK_FRAMES = 2048  # about 47 s: a long song's spectrum and constant-Q transform are made a block at a time
CQT_CONTEXT_FRAMES = 430  # about 10 s of audio each side of a block, longer than the lowest constant-Q filter
TUNING_EXCERPTS, TUNING_EXCERPT_SECONDS = 4, 30.0  # a long song's tuning is estimated from excerpts
TUNING_BLOCK_FRAMES = 512  # their spectrogram's frames at a time (about 12 s: ~15 MB of working copies)


def _mel_power(mono: np.ndarray) -> np.ndarray:
    """The mel power spectrogram `[N_MELS, frames]` of librosa's centred STFT at the analysis rate."""
    return mel_power(mono, ANALYSIS_RATE, n_fft=N_FFT, hop=HOP, n_mels=N_MELS)


def mel_power(mono: np.ndarray, sample_rate: int, *, n_fft: int, hop: int, n_mels: int,
              block_frames: int = BLOCK_FRAMES) -> np.ndarray:
    """`librosa.feature.melspectrogram` (centred, zero padding, power 2) `[n_mels, frames]` in
    float32, made a block of frames at a time, so memory does not grow with the song beyond
    the result (the frames are the same ones)."""
    frames = 1 + len(mono) // hop
    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)
    out = np.empty((n_mels, frames), dtype=np.float32)
    for a in range(0, frames, block_frames):
        b = min(frames, a + block_frames)
        out[:, a:b] = mel_frames(mono, a, b, n_fft=n_fft, hop=hop, basis=basis)
    return out


def mel_frames(mono: np.ndarray, a: int, b: int, *, n_fft: int, hop: int, basis: np.ndarray) -> np.ndarray:
    """Frames [a, b) of `mel_power` (`basis`: librosa's mel filters) `[n_mels, b - a]`."""
    segment = centred_samples(mono, a * hop - n_fft // 2, (b - 1) * hop + n_fft - n_fft // 2)
    power = np.abs(librosa.stft(segment, n_fft=n_fft, hop_length=hop, center=False)) ** 2
    return basis @ power


def centred_samples(mono: np.ndarray, start: int, end: int) -> np.ndarray:
    """Samples [start, end) of `mono` zero-padded on both sides as far as asked (librosa's
    centring, pad_mode "constant"), without padding a copy of the whole song."""
    inside = mono[max(0, start): max(0, min(len(mono), end))]
    before, after = max(0, -start), max(0, end - max(start, len(mono)))
    if not before and not after:
        return inside
    return np.concatenate([np.zeros(before, mono.dtype), inside, np.zeros(after, mono.dtype)])


def frame_rms(mono: np.ndarray, *, frame_length: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """`librosa.feature.rms(y=mono, frame_length, hop_length=hop)[0]` (centred, zero padding)
    from sums of squares per hop, without librosa's framed copy of the song (4 x its size):
    a centred frame is exactly `frame_length / hop` whole hops."""
    if frame_length % hop or (frame_length // 2) % hop:
        return librosa.feature.rms(y=mono, frame_length=frame_length, hop_length=hop)[0]
    taps, lead = frame_length // hop, frame_length // 2 // hop
    frames = 1 + len(mono) // hop
    whole = len(mono) // hop
    sums = np.zeros(lead + frames + taps, dtype=np.float64)
    body = mono[: whole * hop].reshape(whole, hop)
    for a in range(0, whole, BLOCK_FRAMES):  # float32 products summed per hop, like librosa's mean
        block = body[a: a + BLOCK_FRAMES]
        sums[lead + a: lead + a + len(block)] = np.einsum("ij,ij->i", block, block)
    tail = mono[whole * hop:]
    sums[lead + whole] = float(np.dot(tail, tail))
    windows = np.lib.stride_tricks.sliding_window_view(sums, taps)[:frames]
    return np.sqrt(windows.sum(axis=1) / frame_length).astype(np.float32)


def _chroma(mono: np.ndarray, tuning: float | None) -> np.ndarray:
    """Constant-Q chroma `[12, frames]`, in blocks with context for long songs."""
    frames = 1 + len(mono) // HOP
    if frames <= BLOCK_FRAMES + 2 * CQT_CONTEXT_FRAMES:
        return librosa.feature.chroma_cqt(y=mono, sr=ANALYSIS_RATE, hop_length=HOP, tuning=tuning)
    if tuning is None:  # once for the whole song, from excerpts spread over it
        length = int(TUNING_EXCERPT_SECONDS * ANALYSIS_RATE)
        starts = np.linspace(0, len(mono) - length, TUNING_EXCERPTS).astype(int)
        tuning = estimate_tuning(np.concatenate([mono[s: s + length] for s in starts]), bins_per_octave=36,
                                 block_frames=TUNING_BLOCK_FRAMES)
    out = np.empty((12, frames), dtype=np.float32)
    for a in range(0, frames, BLOCK_FRAMES):
        b = min(frames, a + BLOCK_FRAMES)
        lo = max(0, a - CQT_CONTEXT_FRAMES)
        hi = min(frames, b + CQT_CONTEXT_FRAMES)
        block = librosa.feature.chroma_cqt(y=mono[lo * HOP: hi * HOP], sr=ANALYSIS_RATE, hop_length=HOP,
                                           tuning=tuning)
        out[:, a:b] = block[:, a - lo: b - lo]
    return out


def estimate_tuning(mono: np.ndarray, *, bins_per_octave: int, n_fft: int = 2048,
                    block_frames: int = BLOCK_FRAMES) -> float:
    """`librosa.estimate_tuning(y=mono, sr=ANALYSIS_RATE, bins_per_octave=...)` with its
    spectrogram and peak picking (`piptrack`, frame by frame) made a block of frames at a time,
    keeping only the peaks: the same pitches, magnitudes and result, without the whole
    excerpt's spectrogram and its five working copies (about 150 MB for 2 minutes)."""
    hop = n_fft // 4
    frames = 1 + len(mono) // hop
    pitches, magnitudes = [], []
    for a in range(0, frames, block_frames):
        b = min(frames, a + block_frames)
        segment = centred_samples(mono, a * hop - n_fft // 2, (b - 1) * hop + n_fft - n_fft // 2)
        spectrum = np.abs(librosa.stft(segment, n_fft=n_fft, hop_length=hop, center=False))
        pitch, magnitude = librosa.piptrack(S=spectrum, sr=ANALYSIS_RATE, n_fft=n_fft, hop_length=hop)
        found = pitch > 0
        pitches.append(pitch[found])
        magnitudes.append(magnitude[found])
    pitch, magnitude = np.concatenate(pitches), np.concatenate(magnitudes)
    threshold = np.median(magnitude) if len(magnitude) else 0.0
    if not len(pitch):  # no pitched peak (DC, silence): in tune, as librosa says, without its UserWarning
        return 0.0  # reaching the user's terminal
    return float(librosa.pitch_tuning(pitch[magnitude >= threshold], resolution=0.01,
                                      bins_per_octave=bins_per_octave))


def analyze(audio: np.ndarray, sample_rate: int) -> Analysis:
    """Measure tempo, beats, meter, key, chroma, beat chords and section starts.

    audio: `[channels, samples]` or `[samples]`, float, any rate.
    """
    mono = _mono(audio, sample_rate)
    duration = len(mono) / ANALYSIS_RATE
    # Short clips: pad to 3 s so the lowest constant-Q filters fit, then
    # keep only the frames of the clip itself.
    if len(mono) < 3 * ANALYSIS_RATE:
        mono = np.pad(mono, (0, 3 * ANALYSIS_RATE - len(mono)))
    log_mel = librosa.power_to_db(_mel_power(mono), ref=1.0, top_db=None)  # the power let go at once
    np.maximum(log_mel, log_mel.max() - 80.0, out=log_mel)
    # center=False: the spectrogram's frames are already centred; librosa's extra shift of
    # n_fft / (2 hop) frames put every onset and beat about 40 ms late on rendered songs.
    onset_envelope = librosa.onset.onset_strength(S=log_mel, sr=ANALYSIS_RATE, hop_length=HOP, center=False)
    low_bands = librosa.mel_frequencies(N_MELS + 2, fmax=ANALYSIS_RATE / 2)[1:-1] < 200.0
    low_onsets = librosa.onset.onset_strength(S=log_mel[low_bands], sr=ANALYSIS_RATE, hop_length=HOP,
                                              center=False)
    rms = frame_rms(mono)
    # Tuning is estimated from the audio (archives drift off A440), but not from silence.
    tuning = None if rms.max() >= _db_to_amp(SILENCE_DB) else 0.0
    chroma = _chroma(mono, tuning).T
    frames = min(len(chroma), log_mel.shape[1], 1 + int(duration * ANALYSIS_RATE / HOP))
    chroma, log_mel, rms = chroma[:frames], log_mel[:, :frames], rms[:frames]
    onset_envelope, low_onsets = onset_envelope[:frames], low_onsets[:frames]
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=N_MFCC).copy().T  # not a view holding all 128 DCT rows
    frame_times = librosa.frames_to_time(np.arange(frames), sr=ANALYSIS_RATE, hop_length=HOP)

    tempo_bpm, beats = _track_beats(onset_envelope, rms)
    tempo_bpm, beats = _octave_decision(tempo_bpm, beats, frame_times, onset_envelope)
    beat_division, beats, tempo_factor = estimate_division(beats, frame_times, onset_envelope, low_onsets)
    tempo_bpm *= tempo_factor  # the tracker's averaged tempo, on the compound beat where it was re-gridded
    beat_chroma = beat_sync(chroma, frame_times, beats, duration)
    beat_rms = beat_sync(rms[:, None], frame_times, beats, duration)[:, 0]
    beats_per_bar, phase = estimate_meter(beats, frame_times, onset_envelope, low_onsets, beat_chroma)
    downbeats = beats[phase::beats_per_bar]
    chords = estimate_chords(beat_chroma, beat_rms)
    key, key_strength = estimate_key(chroma[rms > _db_to_amp(SILENCE_DB)], chords)
    beat_mfcc = beat_sync(mfcc, frame_times, beats, duration)
    features = similarity_features(beat_chroma, beat_mfcc, beats_per_bar=beats_per_bar)
    novelty = boundary_novelty(features, half_width=4 * beats_per_bar)
    boundaries = pick_boundaries(novelty, beats, downbeats, min_gap=2 * beats_per_bar)
    return Analysis(duration=duration, tempo_bpm=tempo_bpm, beats=beats, downbeats=downbeats,
                    beats_per_bar=beats_per_bar, key=key, key_strength=key_strength,
                    frame_times=frame_times, chroma=chroma, mfcc=mfcc, rms=rms,
                    log_mel=log_mel.T, onset_envelope=onset_envelope, chords=chords, boundaries=boundaries,
                    novelty=novelty, beat_division=beat_division)


# An analysis is confident when the pulse stands out and both halves agree on the key.
# Pulse: onsets at the beats against onsets halfway between them; every guide render of the
# held-out corpora (exact labels, all tempos right) scored 1.44 or more, beatless recordings
# about 1.1.
PULSE_CONFIDENT = 1.5
MIN_CONFIDENT_SECONDS = 20.0


def confidence(analysis: Analysis) -> dict:
    """How far to trust an analysis: `pulse` (beat salience), the keys of the two halves,
    and `confident` (pulse >= PULSE_CONFIDENT, the halves agree on the key, long enough)."""
    beats = analysis.beats
    if len(beats) < 8 or analysis.duration < MIN_CONFIDENT_SECONDS:
        return {"pulse": 0.0, "key_halves": [], "confident": False}
    times, envelope = analysis.frame_times, analysis.onset_envelope

    def strength(at: np.ndarray) -> float:
        frames = np.clip(np.searchsorted(times, at), 0, len(times) - 1)
        near = np.clip(frames[:, None] + np.arange(-1, 2)[None], 0, len(times) - 1)
        return float(envelope[near].max(axis=1).mean())

    pulse = strength(beats) / max(strength((beats[:-1] + beats[1:]) / 2), 1e-9)
    loud = analysis.rms > _db_to_amp(SILENCE_DB)
    first = analysis.frame_times < analysis.duration / 2
    halves = [str(estimate_key(analysis.chroma[part & loud])[0]) if (part & loud).any() else ""
              for part in (first, ~first)]
    return {"pulse": round(pulse, 3), "key_halves": halves,
            "confident": bool(pulse >= PULSE_CONFIDENT and halves[0] == halves[1] != "")}


def _mono(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio[0] if audio.shape[0] == 1 else audio.mean(axis=0)  # one channel: no copy
    if audio.ndim != 1:
        raise ValueError(f"audio: expected [channels, samples] or [samples], got shape {audio.shape}")
    if sample_rate != ANALYSIS_RATE:
        audio = resample(audio, sample_rate, ANALYSIS_RATE)
    return audio.astype(np.float32, copy=False)


def resample(mono: np.ndarray, rate: int, target: int, *, chunk_seconds: float = 10.0) -> np.ndarray:
    """`librosa.resample(mono, orig_sr=rate, target_sr=target)` (soxr HQ; the same samples),
    streamed a chunk at a time into the result: no whole-song working copies."""
    import soxr

    mono = np.asarray(mono, dtype=np.float32)
    out = np.zeros(int(math.ceil(len(mono) * target / rate)), dtype=np.float32)  # librosa's length
    stream = soxr.ResampleStream(rate, target, 1, dtype="float32", quality="HQ")
    chunk, filled = max(1, int(chunk_seconds * rate)), 0
    for start in range(0, max(1, len(mono)), chunk):
        piece = stream.resample_chunk(mono[start: start + chunk], last=start + chunk >= len(mono))
        take = min(len(piece), len(out) - filled)
        out[filled: filled + take] = piece[:take]
        filled += take
    return out


def _db_to_amp(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def _track_beats(onset_envelope: np.ndarray, rms: np.ndarray) -> tuple[float, np.ndarray]:
    """(tempo in BPM from the mean steady beat spacing, beat times in seconds); (0.0, []) when none."""
    if rms.size == 0 or rms.max() < _db_to_amp(SILENCE_DB) or onset_envelope.max() <= 0:
        return 0.0, np.zeros(0)
    _, beat_frames = librosa.beat.beat_track(onset_envelope=onset_envelope, sr=ANALYSIS_RATE,
                                             hop_length=HOP, trim=False, bpm=_global_tempo(onset_envelope))
    # librosa's own trimming drops the beats of a quiet intro; drop only those in silence.
    sounding = rms[np.clip(beat_frames, 0, len(rms) - 1)] >= max(_db_to_amp(SILENCE_DB), rms.max() * 1e-3)
    if not sounding.any():
        return 0.0, np.zeros(0)
    first, last = np.flatnonzero(sounding)[[0, -1]]
    beats = librosa.frames_to_time(beat_frames[first:last + 1], sr=ANALYSIS_RATE, hop_length=HOP)
    if len(beats) < 2:
        return 0.0, beats
    intervals = np.diff(beats)
    median = np.median(intervals)
    # Averaging the steady intervals beats the frame quantisation (~23 ms) of one interval.
    steady = intervals[np.abs(intervals - median) < 0.15 * median]
    return float(60.0 / steady.mean()), beats


def _global_tempo(onset_envelope: np.ndarray, *, ac_seconds: float = 8.0) -> float:
    """`librosa.feature.tempo(onset_envelope=...)` (the mean autocorrelation tempogram under
    librosa's log-normal prior around 120 BPM), the tempogram made a block of frames at a time:
    librosa's whole one is a complex128 [2 x 8 s of frames, song frames] array, about 320 MB
    for a 10-minute song. The mean is linear in the frames, so the blocks add up to it."""
    from librosa import util
    from librosa.core.audio import autocorrelate
    from scipy.signal import get_window

    win = librosa.time_to_frames(ac_seconds, sr=ANALYSIS_RATE, hop_length=HOP).item()
    count = onset_envelope.shape[-1]
    padded = np.pad(onset_envelope, (win // 2, win // 2), mode="linear_ramp", end_values=[0, 0])
    window = get_window("hann", win, fftbins=True)[:, None]
    total = np.zeros(win)
    for a in range(0, count, BLOCK_FRAMES):
        b = min(count, a + BLOCK_FRAMES)
        frames = util.frame(padded[a: b + win - 1], frame_length=win, hop_length=1)
        total += util.normalize(autocorrelate(frames * window, axis=-2), norm=np.inf, axis=-2).sum(axis=-1)
    mean = (total / max(1, count))[:, None]
    return float(librosa.feature.tempo(tg=mean, sr=ANALYSIS_RATE, hop_length=HOP, aggregate=None)[0])


# The beat tracker's prior (about 120 BPM) reads slow songs at double tempo: its "beats" then
# alternate between the song's beats and its off-beats. Measured on guide renders of 25 plans
# (62..150 BPM) and the test corpus's 66-BPM ballad: every double reading had an accent parity
# of 1.68 or more, every right reading above 115 BPM at most 1.55.
HALVE_ABOVE_BPM = 115.0
HALVE_PARITY = 1.62


def _octave_decision(tempo: float, beats: np.ndarray, frame_times: np.ndarray,
                     onset_envelope: np.ndarray) -> tuple[float, np.ndarray]:
    """Halve a fast tempo whose every other beat is much weaker (those are off-beats): the
    metre's pulse is the stronger half. Returns (tempo, beats), unchanged otherwise."""
    if tempo < HALVE_ABOVE_BPM or len(beats) < 8:
        return tempo, beats
    accent = _onsets_at(onset_envelope, frame_times, beats)
    even, odd = float(accent[0::2].mean()), float(accent[1::2].mean())
    if max(even, odd) < HALVE_PARITY * max(min(even, odd), 1e-9):
        return tempo, beats
    kept = beats[0::2] if even >= odd else beats[1::2]
    return tempo / 2.0, kept


def beat_sync(features: np.ndarray, frame_times: np.ndarray, beats: np.ndarray,
              duration: float) -> np.ndarray:
    """Mean of `features [frames, D]` over each beat span: `[beats, D]`.

    Beat i spans `beats[i]..beats[i+1]`; the last beat spans one median interval.
    """
    if len(beats) == 0:
        return np.zeros((0, features.shape[1]), dtype=np.float64)
    step = float(np.median(np.diff(beats))) if len(beats) > 1 else 0.5
    ends = np.append(beats[1:], min(duration, beats[-1] + step))
    starts = np.searchsorted(frame_times, beats)
    stops = np.maximum(np.searchsorted(frame_times, ends), starts + 1)
    cumulative = np.concatenate([np.zeros((1, features.shape[1])), np.cumsum(features, axis=0)])
    starts = np.minimum(starts, len(features) - 1)
    stops = np.minimum(stops, len(features))
    counts = np.maximum(stops - starts, 1)[:, None]
    return (cumulative[stops] - cumulative[starts]) / counts


# --- meter -----------------------------------------------------------------
COMPOUND_TRIPLE = 0.6  # onsets on the tracked beat's thirds against its half: above, its beat has three eighths
COMPOUND_PERIOD_RATIO = 1.5  # eighths accented in threes this much more than in twos: a compound beat
COMPOUND_MIN_CONTRAST = 1.0
COMPOUND_MIN_BEATS = 24
COMPOUND_BOTH_THIRDS = 0.1
# A tracker on the eighths of a slow compound song (its prior near 120 BPM): every third tracked
# beat much stronger than the two between. Measured on guides (`benchmarks/compound_meter.py`
# prompts and 30 more, 40..66 BPM dotted quarters, 3/4 at 110..160 BPM, 4/4 at 120..170): the
# eighths of 6/8, 9/8 and 12/8 ballads, folk and waltzes read at 3x scored 3.3 to 3.6, every 3/4
# at most 1.81, every 4/4 at most 0.47; 12/8 blues read at 3x (1.8 to 2.0) stay unresolved.
EIGHTHS_MIN_BPM = 110.0
EIGHTHS_CONTRAST = 2.5
EIGHTHS_PERIOD_RATIO = 3.0


def _onsets_at(envelope: np.ndarray, frame_times: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The envelope's strongest frame within one frame of each time."""
    index = np.clip(np.searchsorted(frame_times, times), 0, len(frame_times) - 1)
    near = np.clip(index[:, None] + np.arange(-1, 2)[None], 0, len(frame_times) - 1)
    return envelope[near].max(axis=1)


def estimate_division(beats: np.ndarray, frame_times: np.ndarray, onset_envelope: np.ndarray,
                      low_onsets: np.ndarray) -> tuple[int, np.ndarray, float]:
    """(2 or 3 eighths a beat, the beats, the tempo's factor): whether the music is in a compound
    meter (6/8, 12/8), and its beats (the tracked ones, or every third eighth: tempo x 2/3).

    Two readings of a compound song are found (measured on guides of 6/8, 9/8 and 12/8 plans
    and of 20 simple ones, `benchmarks/compound_meter.py`): the beat tracker on its dotted
    quarter, whose thirds then carry more onset strength than its half (`COMPOUND_TRIPLE`);
    or on two eighths (a 6/8 read as 3/4 at 3/2 of its tempo), whose eighths are then accented
    in threes more than in twos, and the beats become every third eighth from the strongest
    phase. Or on the eighths themselves (a slow 12/8 read at three times its tempo), when every
    third tracked beat stands out far more than a fast 3/4's downbeats do (`EIGHTHS_CONTRAST`):
    the beats become those, tempo x 1/3. Simple songs stay 2 with their beats. Fewer than
    `COMPOUND_MIN_BEATS` beats are not enough to tell (random onsets read as compound a fifth of
    the time at 12 beats)."""
    if len(beats) < COMPOUND_MIN_BEATS:
        return 2, beats, 1.0
    tracked = _period_contrasts(_standardise(_onsets_at(onset_envelope, frame_times, beats))
                                + _standardise(_onsets_at(low_onsets, frame_times, beats)), (2, 3))
    (threes, phase), (twos, _) = tracked[3], tracked[2]
    if (60.0 / float(np.median(np.diff(beats))) >= EIGHTHS_MIN_BPM and threes >= EIGHTHS_CONTRAST
            and threes >= EIGHTHS_PERIOD_RATIO * max(twos, 0.0)):
        return 3, beats[phase::3], 1 / 3
    starts, length = beats[:-1], np.diff(beats)
    third, half, two_thirds = (_onsets_at(onset_envelope, frame_times, starts + f * length) for f in (1 / 3, 1 / 2, 2 / 3))
    first, second = float(np.mean(third)), float(np.mean(two_thirds))
    thirds = first + second
    # both eighths sound: one alone (a decay, an echo; 0.016 of the other in a test's synthetic 4/4) is not a
    # compound beat (the compound guides: 0.15 to 0.85)
    if (min(first, second) >= COMPOUND_BOTH_THIRDS * max(first, second)
            and thirds / max(1e-9, thirds + 2 * float(np.mean(half))) >= COMPOUND_TRIPLE):
        return 3, beats, 1.0
    eighths = np.sort(np.concatenate([starts, starts + length / 2]))
    accent = (_standardise(_onsets_at(onset_envelope, frame_times, eighths))
              + _standardise(_onsets_at(low_onsets, frame_times, eighths)))
    contrasts = _period_contrasts(accent, (2, 3))
    (twos, _), (threes, phase) = contrasts[2], contrasts[3]
    if threes >= COMPOUND_MIN_CONTRAST and threes >= COMPOUND_PERIOD_RATIO * max(twos, 0.0):
        return 3, eighths[phase::3], 2 / 3
    return 2, beats, 1.0


def _period_contrasts(accent: np.ndarray, periods: tuple[int, ...]) -> dict[int, tuple[float, int]]:
    """For each period: (how much the strongest phase's accents exceed the others', that phase)."""
    result = {}
    for period in periods:
        contrasts = [float(accent[phase::period].mean()
                           - np.delete(accent, np.arange(phase, len(accent), period)).mean())
                     for phase in range(period)]
        phase = int(np.argmax(contrasts))  # the first of equals
        result[period] = (contrasts[phase], phase)
    return result


def estimate_meter(beats: np.ndarray, frame_times: np.ndarray, onset_envelope: np.ndarray,
                   low_onsets: np.ndarray, beat_chroma: np.ndarray) -> tuple[int, int]:
    """(beats_per_bar, index of the first downbeat) from beat accents.

    Each beat's accent sums its onset strength, its low-band (kick and bass)
    onset strength and how much the harmony changes there (chords change on
    bar lines); every standardised. The meter and phase whose downbeats stand
    out most from the other beats win; 4 unless 3 is clearly better.
    """
    if len(beats) < 8:
        return 4, 0
    onset = _onsets_at(onset_envelope, frame_times, beats)
    low = _onsets_at(low_onsets, frame_times, beats)
    unit = beat_chroma / np.maximum(np.linalg.norm(beat_chroma, axis=1, keepdims=True), 1e-9)
    change = np.concatenate([[0.0], 1.0 - np.sum(unit[1:] * unit[:-1], axis=1)])
    accent = _standardise(onset) + _standardise(low) + 2.0 * _standardise(change)
    best = _period_contrasts(accent, (3, 4))
    meter = 3 if best[3][0] > 1.2 * max(best[4][0], 0.0) and best[3][0] > 0 else 4
    return meter, best[meter][1]


def _standardise(values: np.ndarray) -> np.ndarray:
    spread = values.std()
    return (values - values.mean()) / spread if spread > 1e-9 else np.zeros_like(values)


# --- key and chords ----------------------------------------------------------
def key_scores(chroma: np.ndarray) -> np.ndarray:
    """How well the mean chroma fits each key: `[24]`, majors C..B then minors C..B.

    The mean of its correlations with the Krumhansl-Kessler and the Temperley
    profiles (each alone confuses more keys with their relative or dominant).
    """
    mean = np.asarray(chroma, dtype=np.float64)
    if mean.ndim == 2:
        mean = mean.mean(axis=0) if len(mean) else np.zeros(12)
    scores = np.zeros(24)
    if mean.std() < 1e-9:
        return scores
    for major, minor in KEY_PROFILES.values():
        for tonic in range(12):
            scores[tonic] += np.corrcoef(mean, np.roll(major, tonic))[0, 1] / len(KEY_PROFILES)
            scores[12 + tonic] += np.corrcoef(mean, np.roll(minor, tonic))[0, 1] / len(KEY_PROFILES)
    return scores


def estimate_key(chroma: np.ndarray, chords: list[str] | None = None) -> tuple[Key, float]:
    """(key, score) for chroma `[frames, 12]` or a mean chroma `[12]` (C major if silent).

    chords: beat chord symbols; when given, the profiles' best key and its
    relative gain 0.2 x the share of sounding beats on their tonic triad, which
    settles most relative major/minor ties (the profiles alone cannot tell C
    major from A minor by much). When the chroma cannot tell any keys apart,
    every key takes the bonus.
    """
    scores = key_scores(chroma)
    if chords:
        symbols, _ = chord_templates()
        sounding = [chord for chord in chords if chord != NO_CHORD]
        if sounding:
            # Only the profiles' best key (and any key tied with it) and its relative take the
            # bonus: a song plays its dominant chord about as often as its tonic, and a bonus
            # for every key turned close calls into the dominant key.
            best = int(np.argmax(scores))
            candidates = scores >= scores[best] - 1e-9
            candidates[_relative_key_index(best)] = True
            share = np.array([sounding.count(s) for s in symbols]) / len(sounding)
            scores = np.where(candidates, scores + 0.2 * share, -np.inf)
    best = int(np.argmax(scores))
    if best < 12:
        return Key(tonic_name(best, "major"), "major"), float(scores[best])
    return Key(tonic_name(best - 12, "minor"), "minor"), float(scores[best])


def _relative_key_index(index: int) -> int:
    """Index in `key_scores` order of the relative key: C major (0) <-> A minor (21)."""
    return 12 + (index + 9) % 12 if index < 12 else (index - 12 + 3) % 12


def chord_templates() -> tuple[list[str], np.ndarray]:
    """Symbols and unit-norm templates `[24, 12]` of the major and minor triads."""
    symbols, templates = [], []
    for quality, third in (("", 4), ("m", 3)):
        for root in range(12):
            template = np.zeros(12)
            # The root weighs most: the bass usually plays it, which breaks the
            # tie between a chord and the ones sharing two of its notes.
            template[root] = 1.0
            template[[(root + third) % 12, (root + 7) % 12]] = 0.7
            symbols.append(NOTE_NAMES[root] + quality)
            templates.append(template / np.linalg.norm(template))
    return symbols, np.array(templates)


def chord_scores(chroma: np.ndarray) -> np.ndarray:
    """Cosine similarity of each chroma row `[n, 12]` with each triad: `[n, 24]`."""
    _, templates = chord_templates()
    chroma = np.atleast_2d(chroma)
    unit = chroma / np.maximum(np.linalg.norm(chroma, axis=1, keepdims=True), 1e-9)
    return unit @ templates.T


def estimate_chords(beat_chroma: np.ndarray, beat_rms: np.ndarray, *,
                    self_transition: float = 0.5) -> list[str]:
    """One triad symbol per beat (or "N" when silent), smoothed with a Viterbi pass.

    beat_chroma: `[beats, 12]`; beat_rms: `[beats]` linear RMS.
    """
    if len(beat_chroma) == 0:
        return []
    symbols, _ = chord_templates()
    symbols = symbols + [NO_CHORD]
    silent = beat_rms < _db_to_amp(SILENCE_DB)
    similarity = np.concatenate([chord_scores(beat_chroma), np.zeros((len(beat_chroma), 1))], axis=1)
    similarity[silent, -1] = 2.0  # silence: "N" clearly wins
    similarity[~silent, -1] = -1.0
    probability = np.exp(12.0 * similarity)  # sharp softmax: cosines differ by ~0.1 between triads
    probability /= probability.sum(axis=1, keepdims=True)
    transition = librosa.sequence.transition_loop(len(symbols), self_transition)
    path = librosa.sequence.viterbi_discriminative(probability.T, transition)
    return [symbols[i] for i in path]


# --- sections ----------------------------------------------------------------
def _unit_rows(features: np.ndarray) -> np.ndarray:
    """Beat features `[n, D]`, each dimension standardised, each row scaled to unit length."""
    spread = features.std(axis=0)
    standard = (features - features.mean(axis=0)) / np.where(spread > 1e-9, spread, 1.0)
    return standard / np.maximum(np.linalg.norm(standard, axis=1, keepdims=True), 1e-9)


def self_similarity(features: np.ndarray) -> np.ndarray:
    """Cosine self-similarity `[n, n]` of beat features `[n, D]`, each dimension standardised."""
    if len(features) == 0:
        return np.zeros((0, 0))
    unit = _unit_rows(features)
    return unit @ unit.T


@dataclass
class SimilarityFeatures:
    """What `section_similarity` is made of, per beat: unit harmony and timbre rows and the
    standardised, bar-smoothed loudness. Any block of the matrix comes from them (`block`),
    so a long song's novelty never needs the whole `[beats, beats]` matrix."""

    harmony: np.ndarray  # [beats, 12]
    timbre: np.ndarray  # [beats, 12]
    level: np.ndarray  # [beats]

    def __len__(self) -> int:
        return len(self.level)

    def block(self, rows: slice, cols: slice) -> np.ndarray:
        h, t, lv = self.harmony, self.timbre, self.level
        loudness = 1.0 - np.abs(lv[rows, None] - lv[None, cols]) / 2.0
        return (0.5 * (h[rows] @ h[cols].T) + 0.5 * (t[rows] @ t[cols].T) + loudness) / 2.0


def similarity_features(beat_chroma: np.ndarray, beat_mfcc: np.ndarray, *,
                        beats_per_bar: int) -> SimilarityFeatures:
    """Harmony is chroma and timbre MFCC 1..12 (cosine of standardised features); loudness is
    MFCC 0 smoothed over a bar (1 - half the distance in standard deviations)."""
    if len(beat_chroma) == 0:
        return SimilarityFeatures(np.zeros((0, 12)), np.zeros((0, 12)), np.zeros(0))
    level = np.pad(beat_mfcc[:, 0], beats_per_bar, mode="edge")
    level = np.convolve(level, np.ones(beats_per_bar) / beats_per_bar, mode="same")
    level = _standardise(level[beats_per_bar:-beats_per_bar])
    return SimilarityFeatures(_unit_rows(beat_chroma), _unit_rows(beat_mfcc[:, 1:13]), level)


def section_similarity(beat_chroma: np.ndarray, beat_mfcc: np.ndarray, *,
                       beats_per_bar: int) -> np.ndarray:
    """Self-similarity `[beats, beats]` of harmony, timbre and loudness, about -1..1.

    Harmony is chroma and timbre MFCC 1..12 (cosine of standardised features);
    loudness is MFCC 0 smoothed over a bar (1 - half the distance in standard
    deviations). Loudness weighs as much as the other two together: arrangements
    change their energy at section starts more reliably than their harmony.
    """
    if len(beat_chroma) == 0:
        return np.zeros((0, 0))
    features = similarity_features(beat_chroma, beat_mfcc, beats_per_bar=beats_per_bar)
    return features.block(slice(None), slice(None))


NOVELTY_BLOCK = 512  # beats of the similarity matrix's diagonal band made at a time


def boundary_novelty(features: SimilarityFeatures, *, half_width: int) -> np.ndarray:
    """Foote novelty `[beats]` of the self-similarity (`section_similarity`) that `features`
    make: a Gaussian-tapered checkerboard kernel slid along its diagonal, high where a new
    section starts. Only the band along the diagonal is made, a block of beats at a time."""
    count = len(features)
    if count < 2 * half_width:
        return np.zeros(count)
    offsets = np.arange(-half_width, half_width) + 0.5
    taper = np.exp(-0.5 * (offsets / (0.5 * half_width)) ** 2)
    kernel = np.outer(taper, taper) * np.sign(offsets)[:, None] * np.sign(offsets)[None, :]
    novelty = np.zeros(count)
    for a in range(0, count, NOVELTY_BLOCK):
        b = min(count, a + NOVELTY_BLOCK)
        # the zero-padded matrix's rows and columns [a, b + 2 half_width) are beats [a - hw, b + hw)
        lo, hi = max(0, a - half_width), min(count, b + half_width)
        padded = np.zeros((b - a + 2 * half_width,) * 2)
        at = lo - (a - half_width)
        padded[at: at + hi - lo, at: at + hi - lo] = features.block(slice(lo, hi), slice(lo, hi))
        for i in range(a, b):
            # Beat i starts a section: the kernel's centre sits just before it.
            window = padded[i - a: i - a + 2 * half_width, i - a: i - a + 2 * half_width]
            novelty[i] = max(0.0, float(np.sum(kernel * window)))
    # Near the ends the kernel half-covers padding; fade those rows out.
    edge = np.minimum(np.arange(count), np.arange(count)[::-1]) / half_width
    return novelty * np.clip(edge, 0.0, 1.0)


def pick_boundaries(novelty: np.ndarray, beats: np.ndarray, downbeats: np.ndarray, *,
                    min_gap: int, threshold: float = 0.2) -> np.ndarray:
    """Section starts (seconds, first 0.0) at novelty peaks, snapped to a downbeat within a beat.

    A peak is the largest value within `min_gap` beats on each side and at least
    `threshold` of the largest peak's height above the median novelty.
    """
    starts = [0.0]
    if len(novelty) == 0 or novelty.max() <= 0:
        return np.array(starts)
    floor = np.median(novelty)
    height = novelty.max() - floor
    step = float(np.median(np.diff(beats))) if len(beats) > 1 else 0.5
    for i in range(1, len(novelty)):
        lo, hi = max(0, i - min_gap), min(len(novelty), i + min_gap + 1)
        if novelty[i] < novelty[lo:hi].max() or novelty[i] - floor < threshold * height:
            continue
        time = float(beats[i])
        if len(downbeats):
            nearest = float(downbeats[np.argmin(np.abs(downbeats - time))])
            if abs(nearest - time) <= 1.01 * step:
                time = nearest
        if time - starts[-1] >= min_gap * step * 0.99:
            starts.append(time)
    return np.array(starts)


# --- the plan ----------------------------------------------------------------
def estimate_plan(analysis: Analysis, *, title: str = "analysed",
                  tags: dict[str, str] | None = None) -> SongPlan:
    """A SongPlan that describes the analysed audio.

    Tempo, meter and key come from the analysis; sections lie between the
    boundaries, rounded to whole bars (at least one each), so the plan lasts
    the audio's duration within one bar. Sections whose mean chroma and MFCC
    cluster together share a kind: the most repeated cluster is "chorus", the
    rest "verse", a short first section "intro" and a short last one "outro".
    `repeat_of` stays None: similar is not the same, and the renderer would copy.
    Chords per bar are the most frequent beat chord of the bar; energy is the
    section's RMS level, 1 for the loudest and 0 at 24 dB below it.
    """
    tempo = analysis.tempo_bpm if analysis.tempo_bpm > 0 else DEFAULT_TEMPO_BPM
    tempo = float(np.clip(round(tempo, 2), *TEMPO_RANGE))
    beats_per_bar = analysis.beats_per_bar
    bar_seconds = beats_per_bar * 60.0 / tempo
    total_bars = max(1, round(analysis.duration / bar_seconds))
    starts = _section_start_bars(analysis.boundaries, bar_seconds, total_bars)
    spans = list(zip(starts, starts[1:] + [total_bars]))
    # Audio bars may start after 0 (a pickup): align bar k with the k-th downbeat grid line.
    offset = float(analysis.downbeats[0] % bar_seconds) if len(analysis.downbeats) else 0.0
    if offset > bar_seconds / 2:
        offset -= bar_seconds
    kinds = _section_kinds(analysis, spans, bar_seconds, offset)
    levels = _section_levels(analysis, spans, bar_seconds, offset)
    counts: dict[str, int] = {}
    sections = []
    for (start, end), kind, level in zip(spans, kinds, levels):
        counts[kind] = counts.get(kind, 0) + 1
        chords = [[_bar_chord(analysis, offset + bar * bar_seconds, bar_seconds)]
                  for bar in range(start, end)]
        sections.append(Section(name=f"{kind}{counts[kind]}", kind=kind, bars=end - start,
                                chords=chords, energy=level))
    plan = SongPlan(title=title, tempo_bpm=tempo, beats_per_bar=beats_per_bar, key=analysis.key,
                    sections=sections, tags=dict(tags or {}), beat_division=analysis.beat_division)
    validate(plan)
    return plan


def _section_start_bars(boundaries: np.ndarray, bar_seconds: float, total_bars: int) -> list[int]:
    starts = [0]
    for time in boundaries[1:]:
        bar = int(round(float(time) / bar_seconds))
        if starts[-1] < bar < total_bars:
            starts.append(bar)
    # A plan section holds at most MAX_SECTION_BARS: split longer spans evenly.
    split = []
    for start, end in zip(starts, starts[1:] + [total_bars]):
        pieces = -(-(end - start) // MAX_SECTION_BARS)
        split.extend(start + (end - start) * k // pieces for k in range(pieces))
    return split


def _frame_span(analysis: Analysis, start: float, end: float) -> slice:
    lo, hi = np.searchsorted(analysis.frame_times, [start, end])
    return slice(int(lo), int(max(hi, lo + 1)))


def _section_kinds(analysis: Analysis, spans: list[tuple[int, int]], bar_seconds: float,
                   offset: float) -> list[str]:
    if len(spans) == 1:
        return ["verse"]
    features = np.array([_section_profile(analysis, _frame_span(
        analysis, offset + a * bar_seconds, offset + b * bar_seconds)) for a, b in spans])
    labels = cluster_sections(features)
    sizes = np.bincount(labels)
    kinds = ["verse"] * len(spans)
    if sizes.max() >= 2:
        # Among equally repeated clusters the louder is the chorus.
        loud = [np.mean([features[i, -1] for i in np.flatnonzero(labels == c)]) for c in range(len(sizes))]
        chorus = max(range(len(sizes)), key=lambda c: (sizes[c], loud[c]))
        kinds = ["chorus" if label == chorus else "verse" for label in labels]
    lengths = [b - a for a, b in spans]
    short = np.median(lengths)
    if lengths[0] < short and kinds[0] != "chorus":
        kinds[0] = "intro"
    if lengths[-1] < short and kinds[-1] != "chorus":
        kinds[-1] = "outro"
    return kinds


def _section_profile(analysis: Analysis, frames: slice) -> np.ndarray:
    """Mean chroma, mean MFCC 1..12 (both in units of their frame-level spread) and level."""
    chroma_spread = np.maximum(analysis.chroma.std(axis=0), 1e-6)
    mfcc_spread = np.maximum(analysis.mfcc[:, 1:13].std(axis=0), 1e-6)
    chroma = analysis.chroma[frames].mean(axis=0) / chroma_spread
    mfcc = analysis.mfcc[frames, 1:13].mean(axis=0) / mfcc_spread
    level = 20 * np.log10(max(float(np.sqrt(np.mean(analysis.rms[frames] ** 2))), 1e-6))
    return np.concatenate([chroma, mfcc, [level]])


def cluster_sections(profiles: np.ndarray, *, distance: float = 0.12) -> np.ndarray:
    """Cluster labels `[sections]` (0, 1, ... in order of first appearance).

    profiles: `[sections, D]` from `_section_profile` (the last column, the level,
    is left out). Average-linkage clustering of the RMS distance between
    profiles, cut at `distance` frame-level standard deviations.
    """
    features = profiles[:, :-1]
    if len(features) < 2:
        return np.zeros(len(features), dtype=int)
    centred = features - features.mean(axis=0)
    tree = linkage(centred, method="average", metric="euclidean")
    raw = fcluster(tree, t=distance * np.sqrt(features.shape[1]), criterion="distance")
    order: dict[int, int] = {}
    return np.array([order.setdefault(label, len(order)) for label in raw])


def _section_levels(analysis: Analysis, spans: list[tuple[int, int]], bar_seconds: float,
                    offset: float) -> list[float]:
    levels = []
    for a, b in spans:
        frames = _frame_span(analysis, offset + a * bar_seconds, offset + b * bar_seconds)
        power = float(np.mean(analysis.rms[frames] ** 2)) if analysis.rms[frames].size else 0.0
        levels.append(10 * np.log10(max(power, 1e-12)))
    loudest = max(levels)
    return [round(float(np.clip(1.0 + (level - loudest) / 24.0, 0.0, 1.0)), 2) for level in levels]


def _bar_chord(analysis: Analysis, start: float, bar_seconds: float) -> str:
    first, last = np.searchsorted(analysis.beats, [start - 0.05 * bar_seconds, start + 0.95 * bar_seconds])
    inside = analysis.chords[first:last]
    if not inside:
        return NO_CHORD
    # The most frequent chord; ties go to the earliest in the bar.
    return max(inside, key=lambda chord: (inside.count(chord), -inside.index(chord)))
