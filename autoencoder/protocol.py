"""The `Codec` protocol: what the renderer, the modes and training call on a codec.

Units: audio `[batch, channels, samples]` at `sample_rate`; latents `[batch, latent_dim,
frames]` at `frame_rate` = sample_rate / hop_length, normalised to unit variance per channel.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class Codec(Protocol):
    @property
    def sample_rate(self) -> int: ...

    @property
    def channels(self) -> int: ...

    @property
    def hop_length(self) -> int:
        """Audio samples per latent frame (the downsampling ratio)."""

    @property
    def frame_rate(self) -> float: ...

    @property
    def latent_dim(self) -> int: ...

    @property
    def receptive_frames(self) -> int:
        """Latent frames either side that change a decoded frame (exact chunking and splicing)."""

    def encode(self, audio: torch.Tensor) -> torch.Tensor: ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...

    def encode_long(self, audio: torch.Tensor, *, chunk_seconds: float = 10.0,
                    progress: bool = False) -> torch.Tensor: ...

    def encode_stream(self, blocks: Iterable[np.ndarray], *, chunk_seconds: float = 10.0) -> torch.Tensor: ...

    def decode_long(self, latents: torch.Tensor, *, chunk_seconds: float = 10.0,
                    progress: bool = False) -> torch.Tensor: ...

    def identity(self) -> str:
        """A hash of the whole codec (provenance)."""

    def latent_identity(self) -> str:
        """A hash of what defines the latent space (the encoder and latent statistics)."""

    def save_pretrained(self, directory: str | Path, *, dtype: torch.dtype = torch.float32) -> Path: ...
