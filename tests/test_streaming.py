"""Files longer than memory would hold: block-wise reading and encoding equal the whole-file path."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import tiny_codec

from composer.data.audio import AudioError, audio_read, audio_stream


def _write(path, rate: int, seconds: float, channels: int = 2) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(rate * seconds)) / rate
    audio = np.stack([0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) + 0.01 * rng.standard_normal(len(t))
                      for c in range(channels)]).astype(np.float32)
    sf.write(path, audio.T, rate, subtype="FLOAT")
    return audio


@pytest.mark.parametrize("chunk_seconds", [0.7, 2.0, 100.0])
def test_encode_stream_equals_encode_long(tmp_path, chunk_seconds):
    codec = tiny_codec()
    _write(tmp_path / "a.wav", 8000, 9.3)
    whole, _ = audio_read(tmp_path / "a.wav", sample_rate=8000, channels=1)
    expected = codec.encode_long(torch.from_numpy(whole)[None], chunk_seconds=chunk_seconds)
    streamed = codec.encode_stream(audio_stream(tmp_path / "a.wav", sample_rate=8000, channels=1, block_seconds=0.45),
                                   chunk_seconds=chunk_seconds)
    assert streamed.shape == expected.shape
    assert (streamed - expected).abs().max() < 1e-5


def test_audio_stream_resamples_seamlessly(tmp_path):
    _write(tmp_path / "b.wav", 44100, 4.0)
    whole, _ = audio_read(tmp_path / "b.wav", sample_rate=8000, channels=1)
    blocks = list(audio_stream(tmp_path / "b.wav", sample_rate=8000, channels=1, block_seconds=0.5))
    assert len(blocks) > 4 and all(b.shape[0] == 1 and b.dtype == np.float32 for b in blocks)
    joined = np.concatenate(blocks, axis=1)
    assert abs(joined.shape[1] - whole.shape[1]) <= 2
    n = min(joined.shape[1], whole.shape[1])
    assert np.abs(joined[:, 200: n - 200] - whole[:, 200: n - 200]).max() < 2e-3  # no seams at block joins


def test_audio_stream_names_the_broken_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty.wav: empty file"):
        next(audio_stream(tmp_path / "empty.wav"))
    audio = np.zeros((8000, 1), dtype=np.float32)
    audio[5000] = np.nan
    sf.write(tmp_path / "nan.wav", audio, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav: contains NaN"):
        list(audio_stream(tmp_path / "nan.wav", block_seconds=0.25))


# --- a long song's render and measurement a block at a time equal the whole-array path ------------
def _music(seconds: float, rate: int = 24000) -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(int(rate * seconds)) / rate
    audio = 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0) + 0.02 * rng.standard_normal(len(t))
    audio[: rate] = 0.0  # a silent second: the -80 dB floor of the seam log-mel binds
    return audio.astype(np.float32)[None]


def test_seam_curves_made_twice_a_block_at_a_time_equal_the_kept_spectrogram(monkeypatch):
    from composer.evaluate import seams

    audio = _music(12.0)
    whole = seams._seam_curves(audio, 24000)
    monkeypatch.setattr(seams, "SEAM_KEEP_FRAMES", 500)
    monkeypatch.setattr(seams, "SEAM_BLOCK_FRAMES", 700)
    blocked = seams._seam_curves(audio, 24000)
    assert np.array_equal(whole[0], blocked[0]) and np.array_equal(whole[1], blocked[1])
    assert whole[0].max() > 0


def test_mel_power_without_a_padded_copy_equals_librosa():
    import librosa

    from structure.analysis import mel_power

    mono = _music(3.0, 22050)[0]
    expected = librosa.feature.melspectrogram(y=mono, sr=22050, n_fft=2048, hop_length=512, n_mels=64,
                                              pad_mode="constant")
    got = mel_power(mono, 22050, n_fft=2048, hop=512, n_mels=64, block_frames=37)
    assert got.shape == expected.shape
    assert np.allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_banded_novelty_equals_the_whole_matrix(monkeypatch):
    from structure import analysis

    rng = np.random.default_rng(0)
    chroma, mfcc = rng.standard_normal((700, 12)), rng.standard_normal((700, 20))
    features = analysis.similarity_features(chroma, mfcc, beats_per_bar=4)
    assert analysis.section_similarity(*(np.zeros((0, n)) for n in (12, 20)), beats_per_bar=4).shape == (0, 0)
    # Foote novelty on the whole zero-padded matrix, as it was computed before the band
    h, full = 16, analysis.section_similarity(chroma, mfcc, beats_per_bar=4)
    offsets = np.arange(-h, h) + 0.5
    taper = np.exp(-0.5 * (offsets / (0.5 * h)) ** 2)
    kernel = np.outer(taper, taper) * np.sign(offsets)[:, None] * np.sign(offsets)[None, :]
    padded = np.pad(full, h)
    whole = np.array([max(0.0, float(np.sum(kernel * padded[i:i + 2 * h, i:i + 2 * h]))) for i in range(700)])
    whole *= np.clip(np.minimum(np.arange(700), np.arange(700)[::-1]) / h, 0.0, 1.0)
    monkeypatch.setattr(analysis, "NOVELTY_BLOCK", 64)
    banded = analysis.boundary_novelty(features, half_width=h)
    assert np.allclose(banded, whole, atol=1e-12) and whole.max() > 0


def test_spectral_decode_envelope_by_blocks_equals_the_whole_envelope():
    from autoencoder.spectral import window_envelope, window_envelope_blocks

    window = torch.hann_window(40)
    whole = window_envelope(window, 12, 50)
    blocks = torch.cat([window_envelope_blocks(window, 12, 50, a, min(54, a + 7)) for a in range(0, 54, 7)])
    assert torch.equal(blocks[: whole.shape[0]], whole)
    assert not blocks[whole.shape[0]:].any()


def test_stems_as_pcm_are_the_samples_soundfile_writes(tmp_path):
    from composer.rendering.vocals import from_pcm, to_pcm

    rng = np.random.default_rng(1)
    audio = (rng.standard_normal((1, 50_000)) * 0.6).astype(np.float32)
    sf.write(tmp_path / "float.wav", np.clip(audio * 1.3, -1, 1).T, 24000, subtype="PCM_16")
    written, _ = sf.read(tmp_path / "float.wav", dtype="int16", always_2d=True)
    pcm = to_pcm(audio, 1.3)
    assert pcm.dtype == np.int16 and np.array_equal(pcm, written.T)
    assert np.abs(from_pcm(pcm) - np.clip(audio * 1.3, -1, 1)).max() <= 1 / 32768


@pytest.mark.parametrize("shape", [(4000,), (1, 4000), (2, 4000), (0,), (1, 0)])
def test_packed_pcm_gives_back_the_same_samples_in_less_memory(shape):
    from composer.rendering.vocals import PackedPCM, Stems

    rng = np.random.default_rng(0)
    t = np.arange(shape[-1]) / 24000
    pcm = (np.broadcast_to(8000 * np.sin(2 * np.pi * 220 * t), shape) + rng.normal(0, 30, shape)).astype(np.int16)
    packed = PackedPCM(pcm)
    back = packed.unpack()
    assert back.shape == pcm.shape and back.dtype == np.int16 and np.array_equal(back, pcm)
    if pcm.size:
        assert packed.nbytes < 0.8 * pcm.nbytes
    stems = Stems(pcm, pcm.reshape(-1)[: shape[-1]], pcm.reshape(-1)[: shape[-1]])
    assert stems.is_pcm
    stems.pack()
    assert all(isinstance(stems._parts[name], PackedPCM) for name in Stems.NAMES)
    assert np.array_equal(stems.accompaniment, pcm) and stems.is_pcm
    with pytest.raises(TypeError):
        PackedPCM(pcm.astype(np.float32))


def test_loudness_of_a_mix_never_made_equals_the_mix():
    from composer.rendering.loudness import integrated_loudness, loudness_gain
    from composer.voice.mix import Summed, add_into, mix

    backing = _music(6.0)
    vocal = (np.random.default_rng(2).standard_normal(6 * 24000 - 500) * 0.1).astype(np.float32)
    made = mix(backing, vocal)
    assert integrated_loudness(Summed(backing, vocal), 24000) == integrated_loudness(made, 24000)
    assert loudness_gain(Summed(backing, vocal), 24000) == loudness_gain(made, 24000)
    assert np.array_equal(add_into(backing.copy(), vocal), made)


def test_freed_memory_goes_back_to_the_system_while_asked_then_the_thresholds_settle(monkeypatch):
    import sys

    from composer import memory

    linux = sys.platform.startswith("linux")
    assert memory.return_freed_memory() is linux and memory.settle_thresholds() is linux
    calls = []
    monkeypatch.setattr(memory, "_set_thresholds", lambda mmap, trim: calls.append((mmap, trim)) or True)
    with memory.returning_freed_memory(False):
        pass
    assert calls == []
    with pytest.raises(RuntimeError), memory.returning_freed_memory():
        assert calls == [(memory.MMAP_THRESHOLD, memory.TRIM_THRESHOLD)]
        raise RuntimeError("a failed render settles them too")
    assert calls == [(memory.MMAP_THRESHOLD, memory.TRIM_THRESHOLD),
                     (memory.SETTLED_MMAP_THRESHOLD, memory.SETTLED_TRIM_THRESHOLD)]


def test_tuning_estimated_a_block_at_a_time_equals_librosa():
    import librosa

    from structure.analysis import estimate_tuning

    rate = 22050
    t = np.arange(rate * 20) / rate
    tone = 0.3 * np.sin(2 * np.pi * 443.0 * t) + 0.2 * np.sin(2 * np.pi * 331.0 * t) * (t % 2 < 1)
    mono = (tone + 0.01 * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32)
    expected = librosa.estimate_tuning(y=mono, sr=rate, bins_per_octave=36)
    assert estimate_tuning(mono, bins_per_octave=36, block_frames=97) == expected != 0.0
