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
