"""Shared fixtures: tiny random codec and diffusion models built in the test, no downloads."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("COMPOSER_RAY_START_SECONDS", "240")  # a Ray test fails, not hangs, if its workers never start
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".cache", "numba"))

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings  # noqa: E402

# Property tests draw the same examples on every run (a clean clone's CI sees what passed here);
# HYPOTHESIS_PROFILE=explore draws new ones each run, to look for more.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

torch.set_num_threads(1)  # tiny models: one thread is fastest and never oversubscribes


def killed_after(stream, count: int):
    """The first `count` items of `stream`, then KeyboardInterrupt: a training process killed part-way."""
    for _ in range(count):
        yield next(stream)
    raise KeyboardInterrupt("killed")


def tiny_codec(seed: int = 0):
    from autoencoder.codec import CodecConfig, LatentCodec

    torch.manual_seed(seed)
    config = CodecConfig.small(num_filters=4, latent_dim=8, sample_rate=8000, ratios=(8, 8, 4))  # 31.25 frames/s
    return LatentCodec(config).eval()


def tiny_model(codec, seed: int = 0, *, window_frames: int = 32, objective: str = "rectified_flow"):
    from diffusion.flow import FlowConfig
    from diffusion.model import DiffusionModel, ModelConfig
    from diffusion.unet import UNetConfig
    from structure.frame_controls import GROUP_NAMES, GROUPS, NUM_CONTROLS

    torch.manual_seed(seed)
    unet = UNetConfig(latent_dim=codec.latent_dim, num_controls=NUM_CONTROLS,
                      control_groups=tuple(GROUPS[g] for g in GROUP_NAMES), group_names=GROUP_NAMES,
                      channels=(16, 16), blocks_per_level=1, cond_dim=16, attention_heads=2, patch=1)
    config = ModelConfig(unet=unet, flow=FlowConfig(objective=objective), frame_rate=codec.frame_rate,
                         window_frames=window_frames, codec=codec.latent_identity())
    model = DiffusionModel(config)
    model.grow_tags([{"genre": "folk", "mood": "sad"}, {"genre": "rock", "mode": "minor"}])
    # random but non-zero output layers, so sampling does something
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0 and p.dim() > 1:
                p.normal_(0, 0.02)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """(codec_dir, model_dir) of tiny random checkpoints saved in half precision."""
    root = tmp_path_factory.mktemp("models")
    codec = tiny_codec()
    model = tiny_model(codec, window_frames=32)
    codec.save_pretrained(root / "codec", dtype=torch.float16)
    from autoencoder.codec import LatentCodec

    reloaded = LatentCodec.from_pretrained(root / "codec")  # identity after the fp16 round trip
    model.config.codec = reloaded.latent_identity()
    model.save_pretrained(root / "model", dtype=torch.float16)
    return root / "codec", root / "model"
