"""The vocal in the song: a light reverb, its level against the accompaniment, the mix.

The reverb is a convolution (scipy's FFT convolution) with a synthetic room: exponentially
decaying noise, seeded, so the same song gives the same bytes. The level is set with
ITU-R BS.1770 loudness (pyloudnorm) so the voice sits `LU_ABOVE` above the accompaniment
over the choruses (or over every sung line when there is no chorus).
"""

from __future__ import annotations

import numpy as np

REVERB_SECONDS = 1.2  # RT60 of the room
REVERB_WET = 0.22  # the room's level against the dry voice
PREDELAY = 0.018
LU_ABOVE = 2.0  # the vocal's loudness above the accompaniment (the target: 0 to +4 LU)
DUCK_DB = 4.0  # how far the accompaniment dips under the voice with lead="duck"


REVERB_BLOCK = 30  # seconds convolved at a time


def ring_reverb(dry: np.ndarray, sample_rate: int, *, seed: int = 0) -> np.ndarray:
    """`reverb` of a loop played again and again: its steady state, one loop long (the echo
    of the loop's end sounds at its start, so the loop's wrap stays seamless)."""
    n = dry.shape[-1]
    rounds = 1 + int(np.ceil((REVERB_SECONDS + PREDELAY) * sample_rate / max(n, 1)))  # as long as the echo lasts
    return reverb(np.tile(dry, rounds + 1), sample_rate, seed=seed)[rounds * n:].astype(dry.dtype, copy=False)


def reverb(dry: np.ndarray, sample_rate: int, *, seed: int = 0) -> np.ndarray:
    """`dry` `[samples]` with a light room added, same length."""
    from scipy.signal import butter, oaconvolve, sosfilt

    if not np.any(dry):
        return dry.copy()
    rng = np.random.default_rng(seed)
    length = int(REVERB_SECONDS * sample_rate)
    t = np.arange(length) / sample_rate
    room = rng.standard_normal(length) * np.exp(-6.9 * t / REVERB_SECONDS)
    cutoff = min(5000.0, 0.45 * sample_rate)
    room = sosfilt(butter(2, cutoff, btype="low", fs=sample_rate, output="sos"), room)  # air absorbs the highs
    room = np.concatenate([np.zeros(int(PREDELAY * sample_rate)), room])
    room *= REVERB_WET / np.sqrt(np.sum(room ** 2))
    # the room a block at a time (overlap-add: linear, so the sum is the whole convolution): a
    # 10-minute vocal convolved at once held about 300 MB of float64 for a moment
    out = dry.astype(np.float32)  # a copy
    block = REVERB_BLOCK * sample_rate
    for start in range(0, dry.shape[0], block):
        wet = oaconvolve(dry[start: start + block].astype(np.float64), room)
        end = min(dry.shape[0], start + wet.shape[0])
        out[start:end] += wet[: end - start].astype(np.float32)
    return out


def _loudness(audio: np.ndarray, sample_rate: int) -> float:
    from composer.rendering.loudness import integrated_loudness

    return integrated_loudness(np.atleast_2d(audio), sample_rate)


def _spans_audio(audio: np.ndarray, spans: list[tuple[float, float]], sample_rate: int) -> np.ndarray:
    pieces = [audio[..., int(a * sample_rate): int(b * sample_rate)] for a, b in spans]
    pieces = [p for p in pieces if p.shape[-1] > 0]
    return np.concatenate(pieces, axis=-1) if pieces else audio[..., :0]


def _loudnesses(vocal: np.ndarray, accompaniment: np.ndarray, spans: list[tuple[float, float]],
                sample_rate: int) -> tuple[float, float]:
    """(vocal LUFS, accompaniment LUFS) over `spans` (seconds); -inf where silent."""
    backing = _spans_audio(accompaniment, spans, sample_rate)  # the spans first: no whole-song mean
    return (_loudness(_spans_audio(vocal, spans, sample_rate), sample_rate),
            _loudness(backing[0] if backing.shape[0] == 1 else backing.mean(axis=0), sample_rate))


def vocal_gain(vocal: np.ndarray, accompaniment: np.ndarray, spans: list[tuple[float, float]],
               sample_rate: int, *, lu_above: float = LU_ABOVE) -> float:
    """The gain that puts `vocal` `lu_above` LU above `accompaniment` over `spans` (seconds)."""
    voice, backing = _loudnesses(vocal, accompaniment, spans, sample_rate)
    if not np.isfinite(voice):
        return 1.0
    if not np.isfinite(backing):  # a silent backing: the voice at the song's loudness target
        from composer.rendering.loudness import TARGET_LUFS

        backing = TARGET_LUFS - lu_above
    return float(10 ** ((backing + lu_above - voice) / 20))


def lu_difference(vocal: np.ndarray, accompaniment: np.ndarray, spans: list[tuple[float, float]],
                  sample_rate: int) -> float | None:
    """Measured loudness of the vocal minus the accompaniment over `spans` (LU)."""
    voice, backing = _loudnesses(vocal, accompaniment, spans, sample_rate)
    return round(voice - backing, 2) if np.isfinite(voice) and np.isfinite(backing) else None


def duck(accompaniment: np.ndarray, spans: list[tuple[float, float]], sample_rate: int,
         *, depth_db: float = DUCK_DB, ramp: float = 0.08) -> np.ndarray:
    """The accompaniment `depth_db` lower under the sung spans, with `ramp`-second fades."""
    envelope = np.ones(accompaniment.shape[-1])
    for a, b in spans:
        envelope[int(a * sample_rate): int(b * sample_rate)] = 10 ** (-depth_db / 20)
    width = max(1, int(ramp * sample_rate))
    padded = np.pad(envelope, (width // 2, width - 1 - width // 2), mode="edge")  # no fade at the song's ends
    smooth = np.convolve(padded, np.ones(width) / width, mode="valid")
    return (accompaniment * smooth[None]).astype(np.float32)


class Summed:
    """`[channels, samples]` accompaniment plus a mono vocal in every channel, never made
    whole: what `composer.rendering.loudness` reads of it (a channel's samples, the extremes)
    is summed a block at a time, with the same float32 additions as `mix`."""

    BLOCK = 1 << 20

    def __init__(self, accompaniment: np.ndarray, vocal: np.ndarray):
        self.accompaniment, self.vocal = accompaniment, vocal
        self.shape, self.ndim = accompaniment.shape, accompaniment.ndim
        self.size = accompaniment.size

    def __getitem__(self, key: tuple[int, slice]) -> np.ndarray:
        channel, span = key
        out = np.array(self.accompaniment[channel, span], dtype=np.float32)
        start, stop, _ = span.indices(self.shape[-1])
        n = max(0, min(stop, self.vocal.shape[-1]) - start)
        out[:n] += self.vocal[start: start + n]
        return out

    def _blocks(self):
        for channel in range(self.shape[0]):
            for start in range(0, self.shape[-1], self.BLOCK):
                yield self[channel, slice(start, start + self.BLOCK)]

    def max(self) -> float:
        return max((float(b.max()) for b in self._blocks() if b.size), default=0.0)

    def min(self) -> float:
        return min((float(b.min()) for b in self._blocks() if b.size), default=0.0)

    def any(self) -> bool:
        return any(bool(np.any(b)) for b in self._blocks())


def add_into(accompaniment: np.ndarray, vocal: np.ndarray) -> np.ndarray:
    """`mix` made in `accompaniment`'s own array (returned)."""
    n = min(accompaniment.shape[-1], vocal.shape[-1])
    accompaniment[:, :n] += vocal[None, :n]
    return accompaniment


def mix(accompaniment: np.ndarray, vocal: np.ndarray) -> np.ndarray:
    """`[channels, samples]` accompaniment plus the mono vocal in every channel."""
    return add_into(accompaniment.copy(), vocal)
