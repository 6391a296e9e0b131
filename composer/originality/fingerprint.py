"""Audio fingerprints for originality checks: codec-independent, robust to re-encoding.

A fingerprint is a sequence of vectors, one per `WINDOW_SECONDS` window of audio,
each the coarse log-mel spectrum (`MEL_BANDS` bands, 60 Hz to 8 kHz) and the
chroma of the window's `STEPS` time steps. Both are made gain-free (the mel by
removing the window's mean level, the chroma by normalising each step), so a
louder copy has the same fingerprint; the 8 kHz ceiling keeps MP3 at 64 kbps
(which removes the top octave) and resampling out of it. Vectors are centred
and unit-length: the dot product of two is their cosine similarity.

Training audio is indexed every `INDEX_HOP` seconds; a query is fingerprinted
every `QUERY_HOP` seconds, so whatever the query's trim, one of its windows
starts within `QUERY_HOP / 2` of an indexed window.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000  # fingerprints are taken at this rate (the 8 kHz ceiling is its Nyquist)
FRAME_HOP = 0.125  # seconds per spectral frame
WINDOW_SECONDS = 2.0  # seconds per fingerprint vector
STEPS = 8  # time steps per vector (WINDOW_SECONDS / STEPS seconds each)
MEL_BANDS = 24
INDEX_HOP = 1.0  # seconds between indexed windows
QUERY_HOP = 0.125  # seconds between query windows (one spectral frame)
FINGERPRINT_VERSION = 1  # bump when anything above or below changes the vectors
_N_FFT = 4096
_QUIET = 1e-4  # frame energy (linear, relative) below which chroma is treated as silence


def _frames(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono audio -> per-frame features `[frames, MEL_BANDS + 12]` (log-mel, chroma)."""
    import librosa

    from composer.data.audio import resample

    mono = np.asarray(audio, dtype=np.float32)
    if mono.ndim == 2:
        mono = mono.mean(axis=0)
    if sample_rate != SAMPLE_RATE:
        mono = resample(mono[None], sample_rate, SAMPLE_RATE)[0]
    hop = int(round(FRAME_HOP * SAMPLE_RATE))
    if len(mono) < _N_FFT:
        mono = np.pad(mono, (0, _N_FFT - len(mono)))
    power = np.abs(librosa.stft(mono, n_fft=_N_FFT, hop_length=hop, center=True)) ** 2
    mel = librosa.feature.melspectrogram(S=power, sr=SAMPLE_RATE, n_mels=MEL_BANDS, fmin=60.0, fmax=8000.0)
    log_mel = np.log10(mel + 1e-10)
    chroma = librosa.feature.chroma_stft(S=power, sr=SAMPLE_RATE, norm=None, tuning=0.0)
    return np.concatenate([log_mel, chroma], axis=0).T.astype(np.float32)


def _vector(frames: np.ndarray) -> np.ndarray:
    """One window's frames `[WINDOW_SECONDS / FRAME_HOP, F]` -> its unit vector."""
    per_step = frames.shape[0] // STEPS
    steps = frames[: per_step * STEPS].reshape(STEPS, per_step, -1).mean(axis=1)
    mel = steps[:, :MEL_BANDS] - steps[:, :MEL_BANDS].mean()  # gain-free
    chroma = steps[:, MEL_BANDS:]
    energy = chroma.sum(axis=1, keepdims=True)
    chroma = np.where(energy > _QUIET * max(float(energy.max()), 1e-12), chroma / np.maximum(energy, 1e-12), 0.0)
    # weight the two views equally: mel in dB-like units, chroma as shares
    vector = np.concatenate([mel.ravel() / 2.0, (chroma - 1.0 / 12).ravel() * 4.0])
    vector = vector - vector.mean()
    norm = np.linalg.norm(vector)
    return (vector / norm if norm > 0 else vector).astype(np.float32)


def fingerprint(audio: np.ndarray, sample_rate: int, *, hop: float = QUERY_HOP) -> tuple[np.ndarray, np.ndarray]:
    """(vectors `[N, D]`, start seconds `[N]`) of every `WINDOW_SECONDS` window, `hop` apart.

    Audio shorter than one window gives one vector of what there is. Silent windows
    (below -60 dBFS) are left out: silence matches silence everywhere.
    """
    if not np.abs(np.asarray(audio)).max(initial=0.0) >= 1e-3:  # the whole file below -60 dBFS (or digital silence)
        return np.zeros((0, dimension()), dtype=np.float32), np.zeros(0, dtype=np.float32)
    frames = _frames(audio, sample_rate)
    per_window = int(round(WINDOW_SECONDS / FRAME_HOP))
    stride = max(1, int(round(hop / FRAME_HOP)))
    if frames.shape[0] < per_window:
        frames = np.pad(frames, ((0, per_window - frames.shape[0]), (0, 0)), mode="edge")
    starts = range(0, frames.shape[0] - per_window + 1, stride)
    loud = frames[:, :MEL_BANDS].max(axis=1)
    floor = loud.max() - 6.0  # 60 dB below the loudest frame
    vectors, times = [], []
    for start in starts:
        window = frames[start: start + per_window]
        if loud[start: start + per_window].max() < floor:
            continue
        vectors.append(_vector(window))
        times.append(start * FRAME_HOP)
    if not vectors:
        return np.zeros((0, dimension()), dtype=np.float32), np.zeros(0, dtype=np.float32)
    return np.stack(vectors), np.asarray(times, dtype=np.float32)


def dimension() -> int:
    return STEPS * (MEL_BANDS + 12)
