"""`LatentCodec`: the codec backend behind the `Codec` protocol (`autoencoder.protocol`).

Its encoder is EnCodec's (`transformers.EncodecModel`; latents are then EnCodec's
continuous embedding, before the quantiser) or the spectral encoder trained here; its
decoder likewise. The bundled codec is spectral on both sides (`kind == "spectral"`); a
pretrained EnCodec from the local Hugging Face cache uses EnCodec's own. Latents are
normalised per channel with statistics stored in the checkpoint, so the diffusion
model sees roughly unit-variance channels.

Shapes: audio `[batch, channels, samples]` at `sample_rate`; latents
`[batch, latent_dim, frames]` at `frame_rate` = sample_rate / hop_length.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class CodecConfig:
    """Our codec checkpoint's config.json. `encodec` holds EncodecConfig's fields."""

    codec_type: str = "encodec"  # what encodes and decodes: "encodec", "spectral" or "encodec+spectral-decoder"
    encodec: dict = field(default_factory=dict)
    lstm: bool = True  # False: conv-only encoder/decoder (finite receptive field, exact chunking)
    decoder: dict = field(default_factory=dict)  # {} EnCodec's decoder; {"type": "spectral", ...} see spectral.py
    encoder: dict = field(default_factory=dict)  # {} EnCodec's encoder; {"type": "spectral", ...} see spectral.py
    training: dict = field(default_factory=dict)  # command, seed, data licences, metrics

    @classmethod
    def small(cls, *, num_filters: int = 16, latent_dim: int = 64, sample_rate: int = 24000,
              ratios: tuple[int, ...] = (8, 5, 4, 2)) -> CodecConfig:
        """The size trained here on the CPU (conv-only, ~1.6M parameters at 16 filters)."""
        return cls(encodec=dict(sampling_rate=sample_rate, audio_channels=1, num_filters=num_filters,
                                hidden_size=latent_dim, upsampling_ratios=list(ratios), num_lstm_layers=1,
                                num_residual_layers=1, normalize=False, use_causal_conv=False),
                   lstm=False)


class LatentCodec(nn.Module):
    """A continuous-latent codec at EnCodec's frame: EnCodec's encoder/decoder
    (`transformers.EncodecModel`, its quantiser removed) or, in their place, the spectral
    encoder/decoder of `spectral.py` (the bundled codec uses both spectral parts), with
    per-channel latent normalisation. Implements `autoencoder.protocol.Codec`."""

    def __init__(self, config: CodecConfig, model=None):
        super().__init__()
        from transformers import EncodecConfig, EncodecModel
        from transformers.models.encodec.modeling_encodec import EncodecLSTM

        self.config = config
        self.model = model if model is not None else EncodecModel(EncodecConfig(**config.encodec))
        if not config.lstm:
            for part in (self.model.encoder, self.model.decoder):
                for i, layer in enumerate(part.layers):
                    if isinstance(layer, EncodecLSTM):
                        part.layers[i] = nn.Identity()
        self.model.quantizer = None  # unused: we work on continuous latents
        self.spectral = None
        self.spectral_encoder = None
        if config.decoder:
            self.set_spectral_decoder(config.decoder)
        if config.encoder:
            self.set_spectral_encoder(config.encoder)
        dim = self.model.config.hidden_size
        self.register_buffer("latent_mean", torch.zeros(dim))
        self.register_buffer("latent_std", torch.ones(dim))

    # --- the interface (autoencoder.protocol.Codec) ----------------------
    @property
    def kind(self) -> str:
        """What encodes and decodes: "encodec", "spectral" or "encodec+spectral-decoder"."""
        if self.spectral_encoder is not None and self.spectral is not None:
            return "spectral"
        if self.spectral_encoder is None and self.spectral is None:
            return "encodec"
        return "spectral-encoder+encodec" if self.spectral_encoder is not None else "encodec+spectral-decoder"

    @property
    def sample_rate(self) -> int:
        return int(self.model.config.sampling_rate)

    @property
    def channels(self) -> int:
        return int(self.model.config.audio_channels)

    @property
    def hop_length(self) -> int:
        return int(math.prod(self.model.config.upsampling_ratios))

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def latent_dim(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """`[B, channels, samples]` -> normalised latents `[B, latent_dim, ceil(samples / hop)]`."""
        z = self.raw_encode(self._check_audio(audio))
        return (z - self.latent_mean[:, None]) / self.latent_std[:, None]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents `[B, latent_dim, frames]` -> audio `[B, channels, frames * hop]`."""
        z = latents * self.latent_std[:, None] + self.latent_mean[:, None]
        return self.raw_decode(z)

    def raw_encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Un-normalised encoder output (for training and statistics)."""
        return self.encoder_module(self._pad_to_hop(audio))

    def raw_decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder_module(z)[..., : z.shape[-1] * self.hop_length]

    @property
    def decoder_module(self) -> nn.Module:
        """The module that turns raw latents into audio (EnCodec's decoder or the spectral one)."""
        return self.spectral if self.spectral is not None else self.model.decoder

    @property
    def encoder_module(self) -> nn.Module:
        """The module that turns audio into raw latents (EnCodec's encoder or the spectral one)."""
        return self.spectral_encoder if self.spectral_encoder is not None else self.model.encoder

    def set_spectral_encoder(self, settings: dict) -> None:
        """Replace EnCodec's encoder by a fresh `SpectralEncoder` (a new latent space)."""
        from autoencoder.spectral import SpectralEncoder

        settings = {"type": "spectral", **settings}
        if settings["type"] != "spectral":
            raise ValueError(f"unknown encoder type {settings['type']!r} (known: spectral)")
        self.spectral_encoder = SpectralEncoder(self.latent_dim, self.hop_length,
                                                **{k: v for k, v in settings.items() if k != "type"})
        self.model.encoder = None
        self.config.encoder = settings

    def set_spectral_decoder(self, settings: dict) -> None:
        """Replace EnCodec's decoder by a fresh `SpectralDecoder`; the encoder and latents stay as they are."""
        from autoencoder.spectral import SpectralDecoder

        settings = {"type": "spectral", **settings}
        if settings["type"] != "spectral":
            raise ValueError(f"unknown decoder type {settings['type']!r} (known: spectral)")
        self.spectral = SpectralDecoder(self.latent_dim, self.hop_length,
                                        **{k: v for k, v in settings.items() if k != "type"})
        self.model.decoder = None  # its weights are no longer part of the checkpoint
        self.config.decoder = settings

    def add_noise_path(self, bands: int) -> None:
        """Give the spectral decoder a noise path of `bands` mel-spaced bands (`SpectralDecoder`,
        `noise_bands`), shut at the start: the same network, the latents unchanged, so a fine-tune
        of the decoder alone teaches it where the sound is noise."""
        from autoencoder.spectral import SpectralDecoder

        if self.spectral is None:
            raise ValueError("a noise path belongs to a spectral decoder; this codec has EnCodec's")
        if self.spectral.noise_bands:
            raise ValueError(f"this decoder has a noise path already ({self.spectral.noise_bands} bands)")
        old = self.spectral
        settings = {k: v for k, v in self.config.decoder.items() if k != "type"}
        new = SpectralDecoder(self.latent_dim, self.hop_length, **{**settings, "noise_bands": bands})
        missing, unexpected = new.load_state_dict(old.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("noise_head.") for k in missing), (missing, unexpected)
        self.spectral = new.to(next(old.parameters()).device)
        self.config.decoder = {**self.config.decoder, "noise_bands": bands}

    def resize_spectral_decoder(self, n_fft: int) -> None:
        """Give the spectral decoder `n_fft`-point frames (`SpectralDecoder.resized`); latents unchanged."""
        if self.spectral is None:
            raise ValueError("this codec has no spectral decoder to resize")
        self.spectral = self.spectral.resized(n_fft)
        self.config.decoder = {**self.config.decoder, "n_fft": n_fft}

    @property
    def receptive_frames(self) -> int:
        """Frames of context each side that chunked decoding keeps (exact for conv-only models)."""
        if self.config.lstm and (self.spectral is None or self.spectral_encoder is None):
            return 75
        fields = [16 if self.spectral is None else self.spectral.receptive_frames,
                  16 if self.spectral_encoder is None else self.spectral_encoder.receptive_frames]
        return max(fields)

    @torch.no_grad()
    def encode_long(self, audio: torch.Tensor, *, chunk_seconds: float = 10.0, progress: bool = False) -> torch.Tensor:
        """Encode audio of any length in chunks with overlap; memory bounded by the chunk."""
        audio = self._pad_to_hop(self._check_audio(audio))
        hop, frames = self.hop_length, audio.shape[-1] // self.hop_length
        chunk = max(1, int(chunk_seconds * self.frame_rate))
        context = self.receptive_frames
        out = torch.empty(audio.shape[0], self.latent_dim, frames)
        for start in _chunks(frames, chunk, progress, "encode"):
            end = min(frames, start + chunk)
            lo, hi = max(0, start - context), min(frames, end + context)
            z = self.encode(audio[..., lo * hop: hi * hop])
            out[..., start:end] = z[..., start - lo: start - lo + end - start]
        return out

    @torch.no_grad()
    def encode_stream(self, blocks, *, chunk_seconds: float = 10.0) -> torch.Tensor:
        """Encode audio that arrives in blocks (`[channels, n]` arrays or tensors at `sample_rate`).

        Equals `encode_long` of the blocks joined (same chunks, same context), but holds
        only one chunk of audio at a time: for files longer than memory would hold.
        Latents (64 values per 320 samples here) are what is kept.
        """
        hop, context = self.hop_length, self.receptive_frames
        chunk = max(1, int(chunk_seconds * self.frame_rate))
        pending = torch.zeros(1, self.channels, 0)  # audio from frame `offset` * hop on
        offset, start, out = 0, 0, []

        def encode_chunk(end: int, final: bool) -> None:
            nonlocal pending, offset, start
            lo = max(0, start - context)
            hi = end + (0 if final else context)
            piece = pending[..., (lo - offset) * hop: (hi - offset) * hop]
            z = self.encode(piece)
            out.append(z[..., start - lo: start - lo + end - start])
            start = end
            keep_from = max(0, start - context)
            pending = pending[..., (keep_from - offset) * hop:]
            offset = keep_from

        for block in blocks:
            block = torch.as_tensor(block, dtype=torch.float32)
            pending = torch.cat([pending, self._check_audio(block[None])], dim=-1)
            while (offset * hop + pending.shape[-1]) >= (start + chunk + context) * hop:
                encode_chunk(start + chunk, final=False)
        pending = self._pad_to_hop(pending)
        total = offset + pending.shape[-1] // hop
        while start < total:
            end = min(total, start + chunk)
            encode_chunk(end, final=end == total)
        return torch.cat(out, dim=-1) if out else torch.zeros(1, self.latent_dim, 0)

    @torch.no_grad()
    def decode_long(self, latents: torch.Tensor, *, chunk_seconds: float = 10.0, progress: bool = False) -> torch.Tensor:
        """Decode latents of any length in chunks.

        Each chunk is decoded with `receptive_frames` of context on both sides and
        only its centre is kept, so joins carry no clicks: for the conv-only codec
        the result equals one-shot decoding up to float rounding; with LSTMs the
        two agree within the LSTM's fading memory and the joins are crossfaded.
        """
        frames, hop = latents.shape[-1], self.hop_length
        chunk = max(1, int(chunk_seconds * self.frame_rate))
        context = self.receptive_frames
        if self.spectral is not None:  # phase carried across chunks: equals one-shot decoding
            z = latents * self.latent_std[:, None] + self.latent_mean[:, None]
            return self.spectral.decode_chunked(z, chunk=chunk, context=context,
                                                chunks=_chunks(frames, chunk, progress, "decode"))
        fade = 0 if not self.config.lstm else min(context // 2, chunk // 2)  # frames each side
        out = torch.zeros(latents.shape[0], self.channels, frames * hop)
        weight = torch.zeros(frames * hop)
        for start in _chunks(frames, chunk, progress, "decode"):
            end = min(frames, start + chunk)
            keep_lo, keep_hi = max(0, start - fade), min(frames, end + fade)
            lo, hi = max(0, keep_lo - context), min(frames, keep_hi + context)
            audio = self.decode(latents[..., lo:hi])[..., (keep_lo - lo) * hop: (keep_hi - lo) * hop]
            w = torch.ones(audio.shape[-1])
            if fade:  # linear ramps over the overlap with the neighbouring chunks
                ramp = torch.linspace(0, 1, 2 * fade * hop + 2)[1:-1]
                if keep_lo > 0:
                    w[: 2 * fade * hop] = ramp[: min(len(w), 2 * fade * hop)]
                if keep_hi < frames:
                    w[-2 * fade * hop:] = torch.minimum(w[-2 * fade * hop:], ramp.flip(0))
            out[..., keep_lo * hop: keep_hi * hop] += audio * w
            weight[keep_lo * hop: keep_hi * hop] += w
        return out.div_(weight.clamp_(min=1e-8))  # in place: no second whole-song array

    # --- checkpoints ------------------------------------------------------
    def save_pretrained(self, directory: str | Path, *, dtype: torch.dtype = torch.float32) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.encodec = _plain_config(self.model.config)
        self.config.codec_type = self.kind
        state = {k: v.detach().to(dtype).contiguous() for k, v in self._weights().items()}
        # each file written aside and moved in whole (weights first, then the config that names
        # their shapes): a kill leaves the old checkpoint or the new one, never half a file
        import os
        import tempfile

        parts = []
        try:
            for name in (WEIGHTS_NAME, CONFIG_NAME):
                handle, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
                os.close(handle)
                parts.append((tmp, directory / name))
                if name == WEIGHTS_NAME:
                    save_file(state, tmp, metadata={"format": "pt"})
                else:
                    Path(tmp).write_text(json.dumps(asdict(self.config), indent=2))
                os.chmod(tmp, 0o644)
            for tmp, final in parts:
                os.replace(tmp, final)
        finally:
            for tmp, _ in parts:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return directory

    def _weights(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items()}

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> LatentCodec:
        """Load our checkpoint, or a transformers EnCodec (e.g. facebook/encodec_24khz) saved locally."""
        directory = Path(directory)
        data = json.loads((directory / CONFIG_NAME).read_text())
        if data.get("model_type") == "encodec":  # a transformers checkpoint: pretrained EnCodec
            from transformers import EncodecModel

            model = EncodecModel.from_pretrained(str(directory), local_files_only=True)
            codec = cls(CodecConfig(encodec=_plain_config(model.config), lstm=True), model=model)
            return codec.eval()
        config = CodecConfig(**data)
        codec = cls(config)
        state = load_file(str(directory / WEIGHTS_NAME))
        bad = [name for name, tensor in state.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
        if bad:
            from autoencoder import CheckpointNotFound

            raise CheckpointNotFound(f"codec {directory}: weights {bad[0]} hold NaN or infinite values (a damaged checkpoint)")
        codec.load_state_dict({k: v.float() for k, v in state.items()})
        return codec.eval()

    def identity(self) -> str:
        """A short hash of all weights and the config, for provenance."""
        return self._hash(lambda name: True)

    def latent_identity(self) -> str:
        """A hash of what defines the latent space: the encoder and the latent statistics.

        A decoder fine-tuned with the encoder frozen keeps it, so diffusion models
        trained on these latents stay compatible.
        """
        return self._hash(lambda name: name.startswith(("model.encoder.", "spectral_encoder.", "latent_")))

    def decoder_identity(self) -> str:
        """A hash of what turns latents into audio: the decoder and the latent statistics. An
        encoder fine-tuned with the decoder frozen keeps it, so a render's stored latents decode
        (and repaint) the same as before."""
        return self._hash(lambda name: name.startswith(("model.decoder.", "spectral.", "latent_")))

    def _hash(self, keep) -> str:
        digest = hashlib.sha256(json.dumps(_plain_config(self.model.config), sort_keys=True).encode())
        if self.config.encoder:  # (absent for EnCodec's own encoder, so older identities stay the same)
            digest.update(json.dumps(self.config.encoder, sort_keys=True).encode())
        for name, tensor in sorted(self._weights().items()):
            if keep(name):
                digest.update(name.encode())
                digest.update(tensor.detach().to(torch.float16).cpu().numpy().tobytes())
        return digest.hexdigest()[:16]

    # --- helpers --------------------------------------------------------------
    def _check_audio(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.dim() != 3:
            raise ValueError(f"audio must be [batch, channels, samples], got shape {tuple(audio.shape)}")
        if audio.shape[1] != self.channels:
            audio = audio.mean(dim=1, keepdim=True) if self.channels == 1 else audio.expand(-1, self.channels, -1)
        if not torch.isfinite(audio).all():
            raise ValueError("audio contains NaN or infinite samples")
        return audio

    def _pad_to_hop(self, audio: torch.Tensor) -> torch.Tensor:
        remainder = audio.shape[-1] % self.hop_length
        return audio if remainder == 0 else nn.functional.pad(audio, (0, self.hop_length - remainder))


def _plain_config(config) -> dict:
    keep = ("sampling_rate", "audio_channels", "num_filters", "hidden_size", "upsampling_ratios",
            "num_lstm_layers", "num_residual_layers", "normalize", "use_causal_conv", "kernel_size",
            "last_kernel_size", "residual_kernel_size", "dilation_growth_rate", "compress", "norm_type",
            "pad_mode", "trim_right_ratio", "codebook_size", "codebook_dim", "target_bandwidths")
    return {k: getattr(config, k) for k in keep if hasattr(config, k)}


def _chunks(frames: int, chunk: int, progress: bool, desc: str):
    starts = range(0, frames, chunk)
    if progress:
        from tqdm import tqdm

        return tqdm(starts, desc=desc, unit="chunk", leave=False)
    return starts
