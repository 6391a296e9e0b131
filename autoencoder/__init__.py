"""autoencoder: the Codec interface (EnCodec latents), codec training, long encode/decode."""

from __future__ import annotations

from pathlib import Path

__all__ = ["load_codec", "EncodecCodec", "CodecConfig", "CheckpointNotFound", "bundled_codec_path"]


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


class CheckpointNotFound(ValueError):
    """A codec or model path that is neither a checkpoint directory nor in the local cache."""


def _from_hub_cache(name: str) -> Path:
    """The newest local snapshot of a Hugging Face repo id, read from the cache folders only.

    Nothing here can reach the network: the cache layout
    (`hub/models--ORG--NAME/refs/main` -> `snapshots/REVISION`) is read directly.
    """
    import os

    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    repo = hub / ("models--" + name.replace("/", "--"))
    ref = repo / "refs" / "main"
    if "/" in name and ref.is_file():
        snapshot = repo / "snapshots" / ref.read_text().strip()
        if (snapshot / "config.json").is_file():
            return snapshot
    raise CheckpointNotFound(f"codec {name}: not a checkpoint directory (config.json + model.safetensors) "
                             "and not in the local Hugging Face cache")


def __getattr__(name):
    if name in ("EncodecCodec", "CodecConfig"):
        from autoencoder import codec
        return getattr(codec, name)
    raise AttributeError(name)
