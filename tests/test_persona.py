"""Persona fine-tuning: an archive's own metadata fields become conditioning with no code change."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf
from click.testing import CliRunner

from composer.cli import main
from diffusion import load_model


def _archive(folder, sample_rate: int = 8000) -> None:
    folder.mkdir()
    rows = []
    rng = np.random.default_rng(0)
    for i, (mood, location) in enumerate([("sad", "Oslo"), ("happy", "Bergen"), ("sad", "Tromsø")]):
        t = np.arange(sample_rate * 4) / sample_rate
        audio = 0.3 * np.sin(2 * np.pi * (220 + 40 * i) * t) + 0.01 * rng.standard_normal(len(t))
        sf.write(folder / f"song{i}.wav", audio.astype(np.float32), sample_rate)
        rows.append({"file_name": f"song{i}.wav", "title": f"Song {i}", "mood": mood, "location": location,
                     "beard": "long" if i else "none", "licence": "own-work", "consent": "opt-in",
                     "lyrics": "la la la"})
    rows.append({"file_name": "refused.wav", "licence": "all rights reserved", "consent": "opt-in"})
    sf.write(folder / "refused.wav", np.zeros(sample_rate * 4, dtype=np.float32), sample_rate)
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_persona_fine_tune_adds_archive_fields(tmp_path, tiny_models):
    codec_dir, model_dir = tiny_models
    _archive(tmp_path / "archive")
    result = CliRunner().invoke(main, ["train", "diffusion", "--data", str(tmp_path / "archive"), "--codec",
                                       str(codec_dir), "--init", str(model_dir), "-o", str(tmp_path / "persona"),
                                       "--steps", "2", "--batch-size", "2", "--threads", "1"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    persona = load_model(tmp_path / "persona")
    assert {"location", "beard", "mood"} <= set(persona.vocab.fields)
    assert "tromsø" in persona.vocab.ids["location"]
    card = (tmp_path / "persona" / "MODEL_CARD.md").read_text()
    assert "own-work" in card and "all rights reserved" not in card  # refused files are never learnt
    base = load_model(model_dir)
    assert persona.vocab.ids["genre"] == base.vocab.ids["genre"]  # the base vocabulary is kept
