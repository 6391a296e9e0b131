"""autoencoder: the Codec interface (EnCodec latents), codec training, long encode/decode."""

from __future__ import annotations

from pathlib import Path

__all__ = ["load_codec", "EncodecCodec", "CodecConfig", "bundled_codec_path"]


def bundled_codec_path() -> Path:
    """Where the default codec ships inside the composer package."""
    return Path(__file__).resolve().parent.parent / "composer" / "checkpoints" / "codec"


def load_codec(path: str | Path | None = None):
    """Load a codec checkpoint directory (None: the bundled default).

    `path` may also name a transformers EnCodec in the local hub cache
    (e.g. "facebook/encodec_24khz"); nothing is downloaded.
    """
    from autoencoder.codec import EncodecCodec

    if path is None:
        path = bundled_codec_path()
    local = Path(path)
    if not (local / "config.json").is_file():
        local = _from_hub_cache(str(path))
    return EncodecCodec.from_pretrained(local)


def _from_hub_cache(name: str) -> Path:
    from composer.errors import InputError

    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception:
        raise InputError(f"codec {name}: not a checkpoint directory (config.json + model.safetensors) "
                         "and not in the local Hugging Face cache") from None


def __getattr__(name):
    if name in ("EncodecCodec", "CodecConfig"):
        from autoencoder import codec
        return getattr(codec, name)
    raise AttributeError(name)
