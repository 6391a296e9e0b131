"""The bundled models and loading checkpoints: composer knows where its checkpoints ship;
the model packages load whatever directory they are given."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"


def bundled_codec_path() -> Path:
    return CHECKPOINTS / "codec"


def bundled_model_path() -> Path:
    return CHECKPOINTS / "diffusion"


def load_codec(path: str | Path | None = None):
    """A codec checkpoint directory, a Hugging Face id in the local cache, or None (the bundled one)."""
    import autoencoder

    return autoencoder.load_codec(bundled_codec_path() if path is None else path)


def load_model(path: str | Path | None = None):
    """A diffusion checkpoint directory, or None (the bundled one)."""
    import diffusion

    return diffusion.load_model(bundled_model_path() if path is None else path)


def load_models(codec=None, model=None):
    """(codec, model) in eval mode: objects pass through, paths load, None loads the bundled ones."""
    from composer.errors import InputError

    codec = codec if codec is not None and not isinstance(codec, (str, Path)) else load_codec(codec)
    model = model if model is not None and not isinstance(model, (str, Path)) else load_model(model)
    if model.config.codec and model.config.codec != codec.latent_identity():
        log.warning("diffusion model was trained on the latents of codec %s, rendering with %s",
                    model.config.codec, codec.latent_identity())
    if model.config.unet.latent_dim != codec.latent_dim:
        raise InputError(f"model latent width {model.config.unet.latent_dim} does not match the codec's {codec.latent_dim}")
    return codec.eval(), model.eval()
