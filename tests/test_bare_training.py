"""Training's arithmetic needs PyTorch, numpy, safetensors, tqdm and transformers, nothing of the
audio stack: a lent GPU machine has those and no package index, and `benchmarks/training_speed.py
--device cuda` must run there from the working tree alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def test_losses_cards_and_trainers_import_without_the_audio_stack():
    code = textwrap.dedent("""
        import sys
        for name in ("librosa", "soundfile", "soxr", "music21", "pretty_midi", "fluidsynth"):
            sys.modules[name] = None  # as if not installed: importing it fails, find_spec finds nothing
        import torch
        from autoencoder.losses import mel_distance, onset_distance
        from composer.train.cards import machine_summary
        from diffusion.train import DiffusionTrainer  # noqa: F401
        from autoencoder.train import CodecTrainer  # noqa: F401
        g = torch.Generator().manual_seed(0)
        a, b = torch.randn(2, 1, 24000, generator=g), torch.randn(2, 1, 24000, generator=g)
        assert float(mel_distance(a, b, 24000)) > 0 and float(mel_distance(a, a, 24000)) == 0
        assert float(onset_distance(a, b, 24000)) > 0
        assert machine_summary()["torch"]
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


def test_mel_filters_are_librosas():
    import librosa

    from autoencoder.losses import _mel_basis, _onset_basis

    for n_fft, n_mels in [(512, 64), (2048, 80), (4096, 128)]:
        ours = _mel_basis(24000, n_fft, n_mels).numpy()
        theirs = librosa.filters.mel(sr=24000, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=12000.0)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-8)
    onset = _onset_basis(24000, 1024, 64).numpy()
    np.testing.assert_allclose(onset, librosa.filters.mel(sr=24000, n_fft=1024, n_mels=64, fmin=30.0, fmax=8000.0),
                               rtol=0, atol=1e-8)
