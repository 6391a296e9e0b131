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

    return _checked_load(autoencoder.load_codec, path, bundled_codec_path(), "--codec", "codec")


def load_model(path: str | Path | None = None):
    """A diffusion checkpoint directory, or None (the bundled one)."""
    import diffusion

    return _checked_load(diffusion.load_model, path, bundled_model_path(), "--model", "diffusion model")


def _checked_load(load, path, bundled: Path, option: str, what: str):
    """Load a checkpoint; a broken one (truncated or flipped safetensors, wrong shapes, a bad or
    swapped config.json, weights that are a folder) is one line naming the option and folder:
    bad input when the user gave it, a damaged install when it is the bundled one."""
    from composer.errors import InputError, RenderError, bad_input_types

    where = Path(bundled if path is None else path)
    if where.is_dir() and (where / "config.json").is_file() and not (where / "model.safetensors").is_file():
        problem = "no model.safetensors (only safetensors weights are ever loaded)"
    else:
        try:
            return load(where if path is None else path)
        except bad_input_types() as error:
            if path is None:
                raise RenderError(f"the bundled {what} at {where} is damaged ({error}); reinstall") from None
            said = str(error)
            for prefix in (f"model {path}: ", f"codec {path}: ", f"{path}: "):  # the folder named once
                said = said.removeprefix(prefix)
            raise InputError(f"{option} {path}: {said}") from None
        except (MemoryError, ImportError):  # the machine's or the install's, not the checkpoint's
            raise
        except Exception as error:  # noqa: BLE001 - any other failure to read a checkpoint is the checkpoint's
            problem = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:160] if str(error).strip() else ''}"
    if path is None:
        raise RenderError(f"the bundled {what} at {where} is damaged ({problem}); reinstall the package")
    raise InputError(f"{option} {path}: not a usable {what} checkpoint ({problem})")


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
