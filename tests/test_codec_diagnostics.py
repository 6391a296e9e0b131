"""The codec benchmarks' diagnostic rows: the decoder's reach with optimised latents
(`note_survival.py --refine`) and what its phase costs (`codec_quality.py --ceiling`)."""

from __future__ import annotations

import math
import os
import sys

import numpy as np
import torch
from conftest import tiny_codec

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

import codec_quality  # noqa: E402
import note_survival  # noqa: E402


def _chord(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    notes = sum(0.2 * np.sin(2 * math.pi * f * t) for f in (196.0, 246.9, 293.7))
    return notes.astype(np.float32)[None]


def test_refined_latents_move_deterministically_and_leave_the_decoder_trainable():
    """Whether they come closer is the benchmark's to measure on the trained codec (a random
    tiny decoder's loss has no useful slope); here: the latents are optimised (the output
    moves off the plain round trip), the same way every time, and nothing stays frozen."""
    codec = tiny_codec()
    audio = _chord(1.0, codec.sample_rate)
    reference = torch.from_numpy(audio)[None]
    with torch.no_grad():
        plain = codec.decode_long(codec.encode_long(reference))[0, :, : audio.shape[-1]].numpy()
    refined = note_survival.refined_round_trip(codec, audio, steps=3)
    assert refined.shape == audio.shape and np.isfinite(refined).all()
    assert np.abs(refined - plain).max() > 1e-4
    assert np.array_equal(refined, note_survival.refined_round_trip(codec, audio, steps=3))
    assert np.array_equal(plain, note_survival.refined_round_trip(codec, audio, steps=0))
    assert all(p.requires_grad for p in codec.parameters())


def test_phase_ceiling_rows_keep_the_clip_s_length_and_the_vocoder_on_true_magnitudes_beats_the_random_codec():
    codec = tiny_codec()
    torch.manual_seed(0)
    codec.set_spectral_decoder({"dim": 32, "intermediate": 64, "layers": 2})
    codec.eval()
    audio = torch.from_numpy(_chord(1.5, codec.sample_rate))[None]
    timings: list[float] = []
    rows = dict(codec_quality.phase_ceiling(codec, audio, 4, timings))
    assert list(rows) == ["vocoder", "vocoder_gl4", "codec_gl4"] and len(timings) == 2
    assert all(row.shape == audio.shape for row in rows.values())
    from autoencoder.losses import mel_distance

    rate = codec.sample_rate
    assert float(mel_distance(rows["vocoder_gl4"], audio, rate)) < float(mel_distance(rows["codec_gl4"], audio, rate))
    assert float(mel_distance(rows["vocoder_gl4"], audio, rate)) <= float(mel_distance(rows["vocoder"], audio, rate))


def test_vocoded_guide_keeps_its_length_and_is_nearer_than_a_random_decoder():
    from autoencoder.losses import mel_distance

    codec = tiny_codec()
    torch.manual_seed(0)
    codec.set_spectral_decoder({"dim": 32, "intermediate": 64, "layers": 2})
    codec.eval()
    audio = _chord(1.5, codec.sample_rate)
    out = note_survival.vocoded(codec, audio)
    reference = torch.from_numpy(audio)[None]
    with torch.no_grad():
        plain = codec.decode_long(codec.encode_long(reference))[..., : audio.shape[-1]]
    assert out.shape == audio.shape
    rate = codec.sample_rate
    assert float(mel_distance(torch.from_numpy(out)[None], reference, rate)) < 0.5 * float(mel_distance(plain, reference, rate))
