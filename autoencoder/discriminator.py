"""A multi-scale STFT discriminator and the adversarial losses that train the codec's decoder with it.

Spectral distances alone cannot teach a decoder to send noise: a smooth, steady spectrum
is closer (in any L1 of magnitudes) to one noise than another draw of the same noise is,
so the bundled decoder answers noise, breath and cymbals with steady lines on tempered
pitches (`noise_tones` in `benchmarks/codec_quality.py`: 17 to 22 dB above their
neighbours). A discriminator judges whether a spectrogram looks like real audio, which a
line where noise should be does not.

The architecture is EnCodec's MS-STFT discriminator (Défossez et al., "High Fidelity
Neural Audio Compression", 2022, section 3.4; audiocraft's `adversarial/discriminators/msstftd.py`):
for each of several STFT sizes, the complex spectrogram's real and imaginary parts (here with
its magnitudes compressed, as speech-enhancement discriminators do) go
through 2-D convolutions over time and frequency (dilated in time, strided in frequency),
with weight normalisation and leaky ReLUs. The losses are theirs too: hinge losses for
both players and an L1 feature-matching loss relative to the real features' scale.

Shapes: audio `[B, 1, samples]` -> per scale, logits `[B, 1, frames, bins']` and the
feature maps of every layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


@dataclass
class DiscriminatorConfig:
    filters: int = 16  # channels of every layer (EnCodec: 32; fewer keeps a CPU step short)
    stft_sizes: tuple[int, ...] = (2048, 1024, 512)
    dilations: tuple[int, ...] = (1, 2, 4)  # in time, one strided layer each
    kernel: tuple[int, int] = (3, 9)  # (time, frequency)
    compression: float = 0.3  # the spectrum's magnitudes are raised to this power, its phase kept


def _padding(kernel: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    return ((kernel[0] - 1) * dilation[0] // 2, (kernel[1] - 1) * dilation[1] // 2)


class STFTDiscriminator(nn.Module):
    """One scale: the complex STFT (`n_fft` points, hop n_fft / 4) of the audio, judged by 2-D convolutions."""

    def __init__(self, n_fft: int, config: DiscriminatorConfig):
        super().__init__()
        self.n_fft, self.hop_length, self.compression = n_fft, n_fft // 4, config.compression
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        filters, kernel = config.filters, config.kernel
        # the first layer strides in frequency too: the bins of a long STFT cost most, and
        # lines and noise differ over many of them
        layers = [nn.Conv2d(2, filters, kernel, stride=(1, 2), padding=_padding(kernel))]
        for dilation in config.dilations:
            layers.append(nn.Conv2d(filters, filters, kernel, stride=(1, 2), dilation=(dilation, 1),
                                    padding=_padding(kernel, (dilation, 1))))
        square = (kernel[0], kernel[0])
        layers.append(nn.Conv2d(filters, filters, square, padding=_padding(square)))
        self.layers = nn.ModuleList(weight_norm(layer) for layer in layers)
        self.post = weight_norm(nn.Conv2d(filters, 1, square, padding=_padding(square)))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        flat = audio.reshape(-1, audio.shape[-1])
        spectrum = torch.stft(flat, self.n_fft, hop_length=self.hop_length, window=self.window,
                              normalized=True, return_complex=True)  # [B, bins, frames]
        # power-law compressed, phase kept: quiet bins (noise, reverb tails) weigh as much as loud
        # partials, and the layers start from inputs of order 1 (raw, music's bins are 1e-3..1e-1
        # and a fresh discriminator barely moved in 200 steps: hinge loss 1.96 of 2)
        spectrum = spectrum * (spectrum.abs() + 1e-5).pow(self.compression - 1)
        x = torch.view_as_real(spectrum).permute(0, 3, 2, 1)  # [B, 2 (real, imaginary), frames, bins]
        features = []
        for layer in self.layers:
            x = nn.functional.leaky_relu(layer(x), 0.2)
            features.append(x)
        return self.post(x), features


class MultiScaleSTFTDiscriminator(nn.Module):
    """`STFTDiscriminator`s at several STFT sizes; `forward` returns a list of (logits, features), one per scale."""

    def __init__(self, config: DiscriminatorConfig | None = None):
        super().__init__()
        self.config = config or DiscriminatorConfig()
        self.scales = nn.ModuleList(STFTDiscriminator(n_fft, self.config) for n_fft in self.config.stft_sizes)

    def forward(self, audio: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [scale(audio) for scale in self.scales]


def discriminator_loss(real: list, fake: list) -> torch.Tensor:
    """Hinge loss of the discriminator, averaged over scales: real logits above 1, generated below -1."""
    total = sum(torch.relu(1 - r).mean() + torch.relu(1 + f).mean() for (r, _), (f, _) in zip(real, fake))
    return total / len(real)


def generator_loss(fake: list) -> torch.Tensor:
    """Hinge loss of the generator (the decoder), averaged over scales: its logits above 1."""
    return sum(torch.relu(1 - f).mean() for f, _ in fake) / len(fake)


def feature_matching_loss(real: list, fake: list) -> torch.Tensor:
    """L1 between the discriminator's features of real and generated audio, each layer relative
    to the real features' mean magnitude, averaged over layers and scales."""
    total, count = 0.0, 0
    for (_, real_features), (_, fake_features) in zip(real, fake):
        for r, f in zip(real_features, fake_features):
            r = r.detach()
            total = total + (f - r).abs().mean() / r.abs().mean().clamp(min=1e-8)
            count += 1
    return total / max(1, count)
