"""Training-data plumbing: tags from metadata, window datasets, licence summaries."""

from __future__ import annotations

import numpy as np
import torch
from conftest import tiny_codec, tiny_model

from composer.conditioning import row_tags
from composer.train.data import latent_windows, licence_summary, random_audio_windows


def test_row_tags_keep_persona_fields_and_drop_file_fields():
    tags = row_tags({"file_name": "a.flac", "genre": "folk", "mood": "sad", "key": "D minor", "location": "Oslo",
                     "beard": "long", "licence": "cc-by", "consent": True, "tempo": 96, "text": "a caption",
                     "tags": {"theme": "trains", "instrument": "banjo"}})
    assert tags == {"genre": "folk", "mood": "sad", "mode": "minor", "location": "Oslo", "beard": "long",
                    "instrument": "banjo"}


def test_window_datasets_shapes_and_alignment():
    clips = [np.arange(1000, dtype=np.float32), np.arange(500, dtype=np.float32)]
    batch = next(random_audio_windows(clips, samples=100, batch_size=2, generator=np.random.default_rng(0)))
    assert batch.shape == (2, 1, 100)
    diffs = np.diff(batch[0, 0].numpy())
    assert np.allclose(diffs, diffs[0], rtol=1e-3)  # one contiguous stretch of a clip (times a gain)
    model = tiny_model(tiny_codec())
    frames = torch.arange(40, dtype=torch.float32)
    items = [{"latents": frames.repeat(8, 1), "controls": frames[:, None].repeat(1, 63), "has_controls": True,
              "tags": {"genre": "folk"}, "text": "x", "text_embedding": torch.zeros(384)}]
    x0, cond = next(latent_windows(items, model, frames=16, batch_size=2, generator=np.random.default_rng(1)))
    assert x0.shape == (2, 8, 16) and cond["controls"].shape == (2, 16, 63)
    assert torch.equal(x0[0, 0], cond["controls"][0, :, 0])  # controls aligned frame by frame with latents
    assert cond["tags"][0].tolist() == model.encode_tags([{"genre": "folk"}])[0].tolist()


def test_licence_summary_normalises():
    rows = [(None, {"licence": "CC BY-SA 4.0"}), (None, {"licence": "public domain"}), (None, {"license": "cc0"})]
    assert licence_summary(rows) == {"cc-by-sa": 1, "public-domain": 1, "cc0": 1}
