"""autoencoder: the `Codec` protocol and its backend (`LatentCodec`: EnCodec's encoder/decoder from
transformers, or the spectral encoder/decoder trained here at EnCodec's frame), codec
training, long encode/decode. Knows nothing of songs or of composer's folders."""

from __future__ import annotations

from pathlib import Path

__all__ = ["load_codec", "Codec", "LatentCodec", "CodecConfig", "CheckpointNotFound"]


def load_codec(path: str | Path):
    """Load a codec checkpoint directory (`composer.load_codec()` gives the bundled one).

    `path` may also name a transformers EnCodec in the local hub cache
    (e.g. "facebook/encodec_24khz"); nothing is downloaded.
    """
    from autoencoder.codec import LatentCodec

    local = Path(path)
    if not (local / "config.json").is_file():
        local = _from_hub_cache(str(path))
    return LatentCodec.from_pretrained(local)


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
    if name in ("LatentCodec", "CodecConfig"):
        from autoencoder import codec
        return getattr(codec, name)
    if name == "Codec":
        from autoencoder.protocol import Codec
        return Codec
    raise AttributeError(name)
