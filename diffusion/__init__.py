"""diffusion: the latent denoiser, flow-matching objective, samplers, EMA and training loop."""

from __future__ import annotations

from pathlib import Path

__all__ = ["load_model", "bundled_model_path", "CheckpointNotFound"]


class CheckpointNotFound(ValueError):
    """A model path that is not a checkpoint directory."""


def bundled_model_path() -> Path:
    """Where the default diffusion model ships inside the composer package."""
    return Path(__file__).resolve().parent.parent / "composer" / "checkpoints" / "diffusion"


def load_model(path: str | Path | None = None):
    """Load a diffusion checkpoint directory (None: the bundled default)."""
    from diffusion.model import DiffusionModel

    directory = Path(path) if path is not None else bundled_model_path()
    if not (directory / "config.json").is_file():
        raise CheckpointNotFound(f"model {directory}: no diffusion checkpoint (config.json + model.safetensors)")
    return DiffusionModel.from_pretrained(directory)
