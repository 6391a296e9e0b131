"""diffusion: the latent denoiser, flow-matching objective, samplers, EMA and training loop."""

from __future__ import annotations

from pathlib import Path

__all__ = ["load_model", "CheckpointNotFound"]


class CheckpointNotFound(ValueError):
    """A model path that is not a checkpoint directory."""


def load_model(path: str | Path):
    """Load a diffusion checkpoint directory (`composer.load_model()` gives the bundled one)."""
    from diffusion.model import DiffusionModel

    directory = Path(path)
    if not (directory / "config.json").is_file():
        raise CheckpointNotFound(f"model {directory}: no diffusion checkpoint (config.json + model.safetensors)")
    return DiffusionModel.from_pretrained(directory)
