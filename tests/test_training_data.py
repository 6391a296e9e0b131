"""Training-data plumbing: tags from metadata, window datasets, licence summaries."""

from __future__ import annotations

import numpy as np
import torch
from conftest import tiny_codec, tiny_model

from composer.training import AudioWindowDataset, LatentWindowDataset, licence_summary, row_tags


def test_row_tags_keep_persona_fields_and_drop_file_fields():
    tags = row_tags({"file_name": "a.flac", "genre": "folk", "mood": "sad", "key": "D minor", "location": "Oslo",
                     "beard": "long", "licence": "cc-by", "consent": True, "tempo": 96, "text": "a caption",
                     "tags": {"theme": "trains", "instrument": "banjo"}})
    assert tags == {"genre": "folk", "mood": "sad", "mode": "minor", "location": "Oslo", "beard": "long",
                    "instrument": "banjo"}


def test_window_datasets_shapes_and_alignment():
    clips = [np.arange(1000, dtype=np.float32), np.arange(500, dtype=np.float32)]
    item = next(iter(AudioWindowDataset(clips, samples=100, seed=0)))
    assert item.shape == (1, 100)
    diffs = np.diff(item[0].numpy())
    assert np.allclose(diffs, diffs[0], rtol=1e-3)  # one contiguous stretch of a clip (times a gain)
    model = tiny_model(tiny_codec())
    frames = torch.arange(40, dtype=torch.float32)
    items = [{"latents": frames.repeat(8, 1), "controls": frames[:, None].repeat(1, 63), "has_controls": True,
              "tags": {"genre": "folk"}, "text": "x", "text_embedding": torch.zeros(384)}]
    x0, cond = next(iter(LatentWindowDataset(items, model, frames=16, seed=1)))
    assert x0.shape == (8, 16) and cond["controls"].shape == (16, 63)
    assert torch.equal(x0[0], cond["controls"][:, 0])  # controls aligned frame by frame with latents
    assert cond["tags"].tolist() == model.encode_tags([{"genre": "folk"}])[0].tolist()


def test_licence_summary_normalises():
    rows = [(None, {"licence": "CC BY-SA 4.0"}), (None, {"licence": "public domain"}), (None, {"license": "cc0"})]
    assert licence_summary(rows) == {"cc-by-sa": 1, "public-domain": 1, "cc0": 1}
