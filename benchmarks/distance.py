"""One audio distance for every benchmark that asks "does this sound like that?": the recorded
corpus (`recorded_distance.py`: renders against held-out recorded packages) and the persona
(`persona.py`: persona renders against held-out archive songs).

Features, per one-second window of mono 24-kHz audio (`window_features`): the mean and the
standard deviation of a 40-band log-mel spectrogram (timbre, the loudness shape, how much the
notes move inside the second) and the window's chroma sorted from strongest to weakest (how
clean or dense the harmony is, whatever the key: songs in other keys are not farther apart
for it), 92 numbers; silent windows are skipped. `Distance(reference)` standardises every
number by the reference windows' spread, so no group outweighs the others by its units, and
returns the Fréchet distance between Gaussians fitted to the reference and to a row (the FAD
formula over a hand-made embedding: no pretrained audio embedding can be downloaded here).
Lower is closer. Compare rows on the same number of windows: the covariance estimate, and so
the distance, depends on it.
"""

from __future__ import annotations

import numpy as np

RATE = 24000
N_MELS = 40
FEATURES = 2 * N_MELS + 12


def window_features(audio: np.ndarray, rate: int) -> np.ndarray:
    """`[windows, FEATURES]`: per one-second window, log-mel mean and std and sorted chroma."""
    import librosa

    mono = np.asarray(audio, dtype=np.float32)
    mono = mono.mean(axis=0) if mono.ndim == 2 else mono
    if rate != RATE:
        mono = librosa.resample(mono, orig_sr=rate, target_sr=RATE)
    hop = 480  # 50 frames a second
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=mono, sr=RATE, n_fft=2048, hop_length=hop,
                                                             n_mels=N_MELS), ref=1.0, top_db=None)
    mel = np.maximum(mel, -100.0)
    chroma = librosa.feature.chroma_stft(y=mono, sr=RATE, n_fft=4096, hop_length=hop)
    per = 50
    rows = []
    for k in range(min(mel.shape[1], chroma.shape[1]) // per):
        block = slice(k * per, (k + 1) * per)
        if mel[:, block].max() < -60.0:  # silence says nothing about the sound
            continue
        ordered = np.sort(chroma[:, block].mean(axis=1))[::-1]
        rows.append(np.concatenate([mel[:, block].mean(axis=1), mel[:, block].std(axis=1),
                                    ordered / max(ordered[0], 1e-9)]))
    return np.asarray(rows, dtype=np.float64).reshape(-1, FEATURES)


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of `a` and `b`."""
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root.real))


class Distance:
    """The Fréchet distance from `reference` windows, every feature in the reference's units."""

    def __init__(self, reference: np.ndarray):
        self.centre, self.spread = reference.mean(axis=0), reference.std(axis=0) + 1e-6
        self.reference = self._scale(reference)

    def _scale(self, windows: np.ndarray) -> np.ndarray:
        return (windows - self.centre) / self.spread

    def __call__(self, windows: np.ndarray) -> float:
        return round(frechet(self.reference, self._scale(windows)), 3)
