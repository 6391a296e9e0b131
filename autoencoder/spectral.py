"""A Fourier-domain decoder for EnCodec latents (Vocos-style: ConvNeXt at the frame rate + ISTFT).

EnCodec's own decoder upsamples latents 320x with transposed convolutions. Trained
briefly and without an adversarial loss (all a CPU allows), it leaves a comb at the
frame rate (75 Hz and its multiples) and loses sustained pitch: a guide render's key
does not survive the round trip. This decoder never upsamples in time: a ConvNeXt
stack runs at the latent frame rate and predicts one STFT frame of log magnitudes per
latent frame; an inverse STFT with overlap-add makes the waveform. Every
frequency bin is a parameter of the output, the phase follows from the magnitudes
(a phase-locked vocoder, see `SpectralDecoder`), so pitch is learnt from spectral
losses alone, and the whole decoder costs a few MFLOPs per frame.

Reference: Siuzdak, "Vocos: Closing the gap between time-domain and Fourier-based
neural vocoders for high-quality audio synthesis" (2023), whose EnCodec variant
decodes the same 75 Hz, 24 kHz latents.

Shapes: `[batch, latent_dim, frames]` -> `[batch, 1, frames * hop_length]`.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def istft_same(spectrum: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor) -> torch.Tensor:
    """Inverse STFT with "same" padding: `[B, n_fft // 2 + 1, T]` complex -> `[B, T * hop_length]`.

    Frame t is centred on the middle of hop block t, so frame t of the latents and
    samples `[t * hop, (t + 1) * hop)` line up, and T frames give exactly T * hop samples
    (torch.istft's centred frames would give (T - 1) * hop).
    """
    frames = spectrum.shape[-1]
    pad, size = (n_fft - hop_length) // 2, (frames - 1) * hop_length + n_fft
    audio = overlap_add(torch.fft.irfft(spectrum, n_fft, dim=1) * window[None, :, None], hop_length)
    envelope = window_envelope(window, hop_length, frames)
    return audio[:, pad: size - pad] / envelope[pad: size - pad].clamp(min=1e-11)


def stft_same(audio: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor) -> torch.Tensor:
    """Complex STFT with `istft_same`'s framing: `[B, T * hop]` -> `[B, n_fft // 2 + 1, T]`.

    Frame t is the window centred on hop block t, so T * hop samples give exactly T frames.
    """
    pad = (n_fft - hop_length) // 2
    return torch.stft(nn.functional.pad(audio, (pad, pad)), n_fft, hop_length=hop_length, window=window,
                      center=False, return_complex=True)


def window_envelope(window: torch.Tensor, hop_length: int, frames: int) -> torch.Tensor:
    """The squared window overlap-added over `frames` frames: `[(frames - 1) * hop + n_fft]`.

    Equal to `overlap_add` of `frames` copies of window**2, in memory of the output's size:
    the window is cut into hop-long pieces and each piece is added to every frame at once
    (an expanded copy for `fold` costs n_fft floats per frame: 230 MB for a 5-minute
    song at 2560 points, measured as the growth of peak memory with song length).
    """
    n_fft = window.shape[0]
    pieces = -(-n_fft // hop_length)
    padded = nn.functional.pad(window.square(), (0, pieces * hop_length - n_fft)).view(pieces, hop_length)
    envelope = window.new_zeros((frames - 1 + pieces) * hop_length)
    for k in range(pieces):
        envelope[k * hop_length: (k + frames) * hop_length].view(frames, hop_length).add_(padded[k])
    return envelope[: (frames - 1) * hop_length + n_fft]


def window_envelope_blocks(window: torch.Tensor, hop_length: int, frames: int, first: int, last: int) -> torch.Tensor:
    """Hop blocks [first, last) of the zero-extended `window_envelope`: `[(last - first) * hop]`,
    the same sums in the same order, without the whole song's envelope."""
    n_fft = window.shape[0]
    pieces = -(-n_fft // hop_length)
    padded = nn.functional.pad(window.square(), (0, pieces * hop_length - n_fft)).view(pieces, hop_length)
    envelope = window.new_zeros((last - first) * hop_length)
    for k in range(pieces):  # piece k of frame f lies in hop block f + k
        lo, hi = max(first, k), min(last, k + frames)
        if hi > lo:
            envelope[(lo - first) * hop_length: (hi - first) * hop_length].view(hi - lo, hop_length).add_(padded[k])
    return envelope


ENVELOPE_BLOCKS = 1 << 14  # hop blocks of the output normalised at a time


def overlap_add(pieces: torch.Tensor, hop_length: int) -> torch.Tensor:
    """Frames `[B, n_fft, T]` added at `hop_length` spacing: `[B, (T - 1) * hop + n_fft]`."""
    n_fft, count = pieces.shape[1], pieces.shape[2]
    size = (count - 1) * hop_length + n_fft
    return nn.functional.fold(pieces, output_size=(1, size), kernel_size=(1, n_fft), stride=(1, hop_length))[:, 0, 0]


def griffin_lim(magnitude: torch.Tensor, init: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor,
                iterations: int, momentum: float = 0.99) -> torch.Tensor:
    """Audio `[B, T * hop]` whose STFT magnitudes approach `magnitude` `[B, bins, T]`, from the phase of `init`.

    Fast Griffin-Lim (Perraudin, Balazs and Sondergaard, 2013): project onto the given
    magnitudes, resynthesise, re-analyse, with momentum on the re-analysed spectrum. With
    `stft_same`/`istft_same` framing, so `init` is any audio in the decoder's framing (its
    phase-locked output, say). A measurement tool for what the phase costs (a phase vocoder
    keeps partials coherent frame to frame, not the STFT consistent across frames):
    `benchmarks/codec_quality.py --ceiling`.
    """
    angles = torch.sgn(stft_same(init, n_fft, hop_length, window))
    previous = None
    for _ in range(iterations):
        current = stft_same(istft_same(magnitude * angles, n_fft, hop_length, window), n_fft, hop_length, window)
        target = current if previous is None else current - (momentum / (1 + momentum)) * previous
        previous = current
        angles = target / target.abs().clamp(min=1e-16)
    return istft_same(magnitude * angles, n_fft, hop_length, window)


NOISE_START = -3.0  # a new noise path's logit: 5 % of the energy, so a fine-tune starts near the old sound
NOISE_EDGE = 1e-6  # shares are kept this far inside 0..1 where their square roots are taken
NOISE_GAIN = 20.0  # the noise head's outputs are scaled up: Adam moves a parameter by about the learning rate
# a step, and a path that starts shut must open within a fine-tune's few thousand steps


def noise_band_basis(bins: int, bands: int) -> torch.Tensor:
    """`[bins, bands]`: each STFT bin's share from the two nearest of `bands` noise bands, whose
    centres are equally spaced on the mel scale from 0 Hz to Nyquist (linear interpolation;
    rows sum to 1), so a few dozen numbers per frame say where the sound is noise."""
    def mel(fraction: torch.Tensor) -> torch.Tensor:  # of Nyquist at 24 kHz: a shape, not a calibration
        return 2595.0 * torch.log10(1.0 + fraction * 12000.0 / 700.0)

    position = mel(torch.linspace(0.0, 1.0, bins, dtype=torch.float64)) / float(mel(torch.tensor(1.0)))
    position = position * (bands - 1)
    low = position.floor().long().clamp(max=bands - 1)
    high = (low + 1).clamp(max=bands - 1)
    fraction = position - low.double()
    basis = torch.zeros(bins, bands, dtype=torch.float64)
    basis[torch.arange(bins), low] += 1 - fraction
    basis[torch.arange(bins), high] += fraction
    return basis.float()


FLATNESS_OF_NOISE = math.exp(-0.5772156649)  # geometric over arithmetic mean of an exponential variable's draws


def band_noisiness(audio: torch.Tensor, decoder: SpectralDecoder) -> torch.Tensor:
    """How noise-like each of the decoder's noise bands is in each frame of `audio` `[B, 1, T * hop]`:
    `[B, bands, T]` in 0..1, the band's spectral flatness (geometric over arithmetic mean of its
    bins' power, weighted as the band is) over that of noise (0.56). A partial makes a band peaky
    (near 0); noise, breath, cymbals and rooms make it flat (near 1); a band within 20 dB of the
    floor (80 dB below the clip's loudest bin) is empty and scores 0. The target of the noise path."""
    power = stft_same(audio.reshape(-1, audio.shape[-1]), decoder.n_fft, decoder.hop_length, decoder.window).abs().pow(2)
    floor = power.amax(dim=(1, 2), keepdim=True).clamp(min=1e-10) * 1e-8  # 80 dB down: silence is not noise
    weights = decoder.noise_basis / decoder.noise_basis.sum(dim=0, keepdim=True)  # [bins, bands], columns sum to 1
    log_mean = torch.einsum("kb,nkt->nbt", weights, torch.log(power + floor))
    mean = torch.einsum("kb,nkt->nbt", weights, power + floor)
    flatness = (torch.exp(log_mean) / mean / FLATNESS_OF_NOISE).clamp(max=1.0)
    # a band near the floor is flat because it is empty, not because it is noise: 0 there (phase-locked, as before)
    return torch.where(mean > 100 * floor, flatness, torch.zeros_like(flatness))


def noise_phase(first_frame: int, frames: int, bins: int, device: torch.device | str | None = None) -> torch.Tensor:
    """`[1, bins, frames]` phases in [0, 2 pi) that look random but are a fixed integer hash
    of (absolute frame, bin): the same on every machine, and the same for a frame whether a
    song is decoded whole or in chunks."""
    mask = 0xFFFFFFFF
    frame = torch.arange(first_frame, first_frame + frames, dtype=torch.int64, device=device)
    bin_index = torch.arange(bins, dtype=torch.int64, device=device)
    h = (frame[None, :] * 0x9E3779B1 + bin_index[:, None] * 0x85EBCA77 + 0x165667B1) & mask
    for shift, multiplier in ((16, 0x7FEB352D), (15, 0x2C1B3C6D)):  # a 32-bit integer mixer; multipliers below 2 ** 31 keep every product inside int64
        h = ((h ^ (h >> shift)) * multiplier) & mask
    h = h ^ (h >> 16)
    return (h.double() * (2 * math.pi / 2 ** 32)).float()[None]


class ConvNeXtBlock(nn.Module):
    """Depthwise conv -> LayerNorm -> pointwise MLP, with a learnt residual scale."""

    def __init__(self, dim: int, intermediate: int, kernel_size: int, layer_scale: float):
        super().__init__()
        self.depthwise = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.up = nn.Linear(dim, intermediate)
        self.down = nn.Linear(intermediate, dim)
        self.scale = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, dim, T]
        h = self.depthwise(x).transpose(1, 2)
        h = self.down(nn.functional.gelu(self.up(self.norm(h))))
        return x + (self.scale * h).transpose(1, 2)


class SpectralDecoder(nn.Module):
    """Latents `[B, latent_dim, T]` -> audio `[B, 1, T * hop_length]` through an ISTFT head.

    The network predicts log magnitudes; the phase follows from them (`phase="locked"`,
    the default): a phase vocoder with identity phase locking, see `locked_advance`.
    Measured on the corpus: with phase left to the network, as raw per-frame phase or
    as integrated instantaneous frequency (`phase="integrated"`, where the head's
    second half gives each bin's deviation from its centre frequency), spectral losses
    alone do not teach coherent phase on a CPU budget: the predicted magnitudes were
    right, but the overlapping frames cancelled (the STFT of the output at a piano's
    417 Hz partial was 5x below the predicted magnitude) and every partial smeared.
    Locked, the same magnitudes came out at their level. Absolute phase is not
    defined either way, so the decoder trains on magnitudes at several resolutions,
    not on waveform error.
    """

    def __init__(self, latent_dim: int, hop_length: int, *, dim: int = 256, intermediate: int = 768,
                 layers: int = 8, kernel_size: int = 7, n_fft: int | None = None, phase: str = "locked",
                 noise_bands: int = 0):
        super().__init__()
        if phase not in ("locked", "integrated"):
            raise ValueError(f"unknown phase mode {phase!r} (known: locked, integrated)")
        self.hop_length, self.kernel_size, self.layers, self.phase = hop_length, kernel_size, layers, phase
        self.n_fft = n_fft or 4 * hop_length
        if self.n_fft < hop_length or (self.n_fft - hop_length) % 2:
            raise ValueError(f"n_fft {self.n_fft} must be >= hop {hop_length} with an even difference")
        self.bins = self.n_fft // 2 + 1
        self.embed = nn.Conv1d(latent_dim, dim, kernel_size, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList(ConvNeXtBlock(dim, intermediate, kernel_size, 1.0 / layers) for _ in range(layers))
        self.final_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, 2 * self.bins)  # log magnitude and frequency deviation per bin
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        # The noise path: the share of each band's energy that is sent with random phase.
        self.noise_bands = noise_bands
        self.noise_head = None
        if noise_bands:
            self.noise_head = nn.Linear(dim, noise_bands)
            with torch.no_grad():  # a new path starts nearly shut: the decoder sounds as before, then learns
                self.noise_head.weight.zero_()
                self.noise_head.bias.fill_(NOISE_START / NOISE_GAIN)
            self.register_buffer("noise_basis", noise_band_basis(self.bins, noise_bands), persistent=False)
        # A sinusoid's peak magnitude grows with the window: the cap (against overflow) scales with it.
        self.log_magnitude_cap = 6.0 + math.log(self.n_fft / 1280)

    @property
    def receptive_frames(self) -> int:
        """Latent frames each side that can reach a frame's magnitude or frequency (the convolutions)."""
        return (self.layers + 1) * (self.kernel_size // 2)

    @torch.no_grad()
    def resized(self, n_fft: int) -> SpectralDecoder:
        """This decoder with `n_fft`-point output frames: the same ConvNeXt body, the head
        resampled along frequency (new bin k reads old bin k * old_n / new_n, linearly
        interpolated) and its log magnitudes raised by log(new_n / old_n), the growth of a
        sinusoid's peak with the window. A starting point for training (`--decoder-fft`):
        a longer frame keeps bass pitch where the predicted magnitudes are imprecise
        (measured with true magnitudes and 0.7 nats of noise: key score 0.85 at 1280
        points, 1.00 at 2560).
        """
        body = self.embed.in_channels, self.hop_length
        new = SpectralDecoder(*body, dim=self.embed.out_channels, intermediate=self.blocks[0].up.out_features,
                              layers=self.layers, kernel_size=self.kernel_size, n_fft=n_fft, phase=self.phase,
                              noise_bands=self.noise_bands)
        own = {k: v for k, v in self.state_dict().items() if not k.startswith("head.")}
        new.load_state_dict(own, strict=False)
        position = torch.arange(new.bins, dtype=torch.float64) * self.n_fft / n_fft
        low = position.floor().long().clamp(max=self.bins - 1)
        high = (low + 1).clamp(max=self.bins - 1)
        frac = (position - low.double()).float()
        for half in range(2):
            rows = slice(half * self.bins, (half + 1) * self.bins)
            weight, bias = self.head.weight[rows], self.head.bias[rows]
            new_rows = slice(half * new.bins, (half + 1) * new.bins)
            new.head.weight[new_rows] = weight[low] * (1 - frac[:, None]) + weight[high] * frac[:, None]
            new.head.bias[new_rows] = bias[low] * (1 - frac) + bias[high] * frac
        new.head.bias[: new.bins] += math.log(n_fft / self.n_fft)
        return new

    def _features(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latents `[B, latent_dim, T]` -> the ConvNeXt's normalised features `[B, T, dim]`."""
        x = self.norm(self.embed(z).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x.transpose(1, 2))

    def noise_shares(self, z: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """Raw latents -> each noise band's share of the energy sent with random phase, `[B, bands, T]` in 0..1."""
        if self.noise_head is None:
            raise ValueError("this decoder has no noise path")
        features = self._features(z) if features is None else features
        return torch.sigmoid(NOISE_GAIN * self.noise_head(features)).transpose(1, 2)

    def frames(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Raw latents -> (magnitude, phase advance in radians per frame, noise share in 0..1 or
        None without a noise path), each `[B, bins, T]`."""
        magnitude, deviation, noise, _ = self._frames_and_shares(z)
        return magnitude, deviation, noise

    def _frames_and_shares(self, z: torch.Tensor):
        """`frames`, and the noise bands' shares `[B, bands, T]` they were spread from (None without a noise path)."""
        features = self._features(z)
        out = self.head(features).transpose(1, 2)
        log_magnitude, deviation = out.chunk(2, dim=1)
        magnitude = torch.exp(log_magnitude.clamp(max=self.log_magnitude_cap))
        noise = shares = None
        if self.noise_head is not None:
            shares = self.noise_shares(z, features)
            noise = self.noise_basis @ shares  # [B, bins, T]
        return magnitude, math.pi * torch.tanh(deviation), noise, shares

    def synthesize(self, magnitude: torch.Tensor, deviation: torch.Tensor, *, first_frame: int = 0,
                   phase: torch.Tensor | None = None,
                   noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Windowed frames `[B, n_fft, T]` of frames `first_frame ...`, and the phase after the last one.

        `phase` `[B, bins]` is the running deviation phase before `first_frame` (zeros to
        start); a bin's own advance depends only on the absolute frame index, so chunks
        synthesised in order with the carried phase equal one pass over the whole.
        `noise` `[B, bins, T]`: the share of each bin's energy sent with a random phase (a
        fixed function of the absolute frame and the bin, so decoding stays deterministic
        and chunked decoding equals one pass), the rest phase-locked.
        """
        batch, bins, count = magnitude.shape
        device = magnitude.device
        start = (torch.zeros(batch, bins, 1, dtype=torch.float64, device=device) if phase is None
                 else phase[..., None].double())
        if self.phase == "locked":
            advance, nearest = self.locked_advance(magnitude)
            running = start + torch.cumsum(advance, dim=-1)
            offset = math.pi * (torch.arange(bins, device=device).view(1, bins, 1) - nearest).double()
            total = torch.remainder(running.gather(1, nearest) + offset, 2 * math.pi).float()
        else:
            running = start + torch.cumsum(deviation.double(), dim=-1)
            index = torch.arange(first_frame + 1, first_frame + count + 1, dtype=torch.int64, device=device)
            own = (torch.arange(bins, dtype=torch.int64, device=device)[:, None] * self.hop_length * index[None]) % self.n_fft
            total = torch.remainder(running + (2 * math.pi / self.n_fft) * own.double(), 2 * math.pi).float()
        if noise is None:
            spectrum = torch.polar(magnitude, total)
        else:  # energy split: a bin's power, analysed again, is kept whatever its noise share
            # Overlapping frames of random phase add in power, not amplitude: analysed with the same
            # window, their magnitudes come back sqrt(hop / n_fft) as large (in rms), so they are raised by
            # the inverse (measured in the tests: 0.45 of the given magnitude at 4x overlap without it).
            gain = math.sqrt(self.n_fft / self.hop_length)
            noise = noise.clamp(NOISE_EDGE, 1 - NOISE_EDGE)  # a square root's slope is infinite at 0 (a run went NaN)
            spectrum = (torch.polar(magnitude * torch.sqrt(1 - noise), total)
                        + torch.polar(gain * magnitude * torch.sqrt(noise), noise_phase(first_frame, count, bins, device)))
        pieces = torch.fft.irfft(spectrum, self.n_fft, dim=1) * self.window[None, :, None]
        return pieces, torch.remainder(running[..., -1], 2 * math.pi)

    @torch.no_grad()
    def locked_advance(self, magnitude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Phase advance per frame (float64 radians) and the governing peak of every bin, `[B, bins, T]`.

        A phase vocoder with identity phase locking (Laroche and Dolson, 1999): each
        spectral peak's frequency comes from parabolic interpolation of the log magnitude
        around it; every bin advances at the frequency of its nearest peak, and takes
        that peak's phase plus pi per bin of distance (a Hann-windowed sinusoid's
        shape), so a partial's bins stay coherent from frame to frame and the
        overlap-add reinforces instead of cancelling. The phase thus follows from the
        magnitudes; the network only learns magnitudes.
        """
        batch, bins, count = magnitude.shape
        level = torch.log(magnitude + 1e-7)
        edge = torch.full((batch, 1, count), -math.inf, device=magnitude.device)
        left, right = torch.cat([edge, level[:, :-1]], 1), torch.cat([level[:, 1:], edge], 1)
        floor = level.amax(dim=1, keepdim=True) - math.log(1e4)  # peaks within 80 dB of the frame's loudest
        peak = (level > left) & (level >= right) & (level > floor)
        curvature = left - 2 * level + right
        inside = peak & torch.isfinite(left) & torch.isfinite(right) & (curvature < 0)
        fraction = torch.where(inside, 0.5 * (left - right) / torch.where(inside, curvature, -1.0), 0.0)
        fraction = fraction.clamp(-0.5, 0.5)
        index = torch.arange(bins, device=magnitude.device).view(1, bins, 1).expand(batch, bins, count)
        below = torch.where(peak, index, -1).cummax(dim=1).values
        above_flipped = torch.where(peak.flip(1), index, -1).cummax(dim=1).values
        above = torch.where(above_flipped >= 0, bins - 1 - above_flipped, -1).flip(1)
        far = 2 * bins
        to_below = torch.where(below >= 0, index - below, far)
        to_above = torch.where(above >= 0, above - index, far)
        nearest = torch.where(to_below <= to_above, below, above)
        nearest = torch.where(nearest >= 0, nearest, index)  # a frame without peaks: every bin its own
        frequency = nearest.double() + fraction.gather(1, nearest).double()  # in bins
        return (2 * math.pi * self.hop_length / self.n_fft) * frequency, nearest

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decode_chunked(z, chunk=z.shape[-1])

    def vocode(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Magnitudes `[B, bins, T]` (e.g. `stft_same(audio).abs()`) -> audio `[B, T * hop]`
        through the phase vocoder alone, no network: what the decoder can at best give back."""
        hop, count = self.hop_length, magnitude.shape[-1]
        pieces, _ = self.synthesize(magnitude, torch.zeros_like(magnitude))
        pad, size = (self.n_fft - hop) // 2, (count - 1) * hop + self.n_fft
        envelope = window_envelope(self.window, hop, count)
        return overlap_add(pieces, hop)[:, pad: size - pad] / envelope[pad: size - pad].clamp(min=1e-11)

    def decode_chunked(self, z: torch.Tensor, *, chunk: int, context: int | None = None,
                       chunks=None, shares_out: list | None = None) -> torch.Tensor:
        """Decode in chunks of `chunk` frames, each seeing `context` latent frames either side.

        Frames are synthesised in order with the phase carried across chunks and
        overlap-added into one buffer, so the result equals one pass (memory: the audio
        plus one chunk's frames). `chunks`: an iterable of chunk starts (e.g. wrapped in tqdm).
        `shares_out`: a list that gets each chunk's noise-band shares `[B, bands, frames]` (a noise
        path's training loss reads them from the same pass, not from a second run of the network).
        """
        batch, _, total = z.shape
        context = self.receptive_frames if context is None else context
        hop, n_fft = self.hop_length, self.n_fft
        pad, size = (n_fft - hop) // 2, (total - 1) * hop + n_fft
        buffer = z.new_zeros(batch, size)
        phase = None
        for start in (range(0, total, chunk) if chunks is None else chunks):
            end = min(total, start + chunk)
            lo, hi = max(0, start - context), min(total, end + context)
            magnitude, deviation, noise, shares = self._frames_and_shares(z[..., lo:hi])
            if shares_out is not None and shares is not None:
                shares_out.append(shares[..., start - lo: end - lo])
            pieces, phase = self.synthesize(magnitude[..., start - lo: end - lo], deviation[..., start - lo: end - lo],
                                            first_frame=start, phase=phase,
                                            noise=None if noise is None else noise[..., start - lo: end - lo])
            added = overlap_add(pieces, hop)
            buffer[:, start * hop: start * hop + added.shape[-1]] += added
        # divided by the window's overlap a block at a time, in place: no whole-song envelope or quotient
        blocks = -(-size // hop)
        for first in range(0, blocks, ENVELOPE_BLOCKS):
            last = min(blocks, first + ENVELOPE_BLOCKS)
            lo, hi = max(pad, first * hop), min(size - pad, last * hop)
            if hi > lo:
                envelope = window_envelope_blocks(self.window, hop, total, first, last)
                buffer[:, lo:hi] /= envelope[lo - first * hop: hi - first * hop].clamp(min=1e-11)
        return buffer[:, None, pad: size - pad]


class SpectralEncoder(nn.Module):
    """Audio `[B, 1, T * hop_length]` -> latents `[B, latent_dim, T]` from a log-magnitude STFT.

    Frame t is the window centred on hop block t (the decoder's framing). A waveform
    encoder must first learn frequency-selective filters from scratch, which takes far
    longer than a CPU allows (measured: the EnCodec-architecture encoder trained here
    kept so little pitch that a guide render's key did not survive the round trip); this
    one starts from the spectrum, with a window long enough (85 ms at 24 kHz) to tell
    semitones apart in the bass, and learns what to keep of it.
    """

    def __init__(self, latent_dim: int, hop_length: int, *, dim: int = 256, intermediate: int = 768,
                 layers: int = 4, kernel_size: int = 7, n_fft: int | None = None):
        super().__init__()
        self.hop_length, self.kernel_size, self.layers = hop_length, kernel_size, layers
        self.n_fft = n_fft or 6 * hop_length + (hop_length % 2)
        if self.n_fft < hop_length or (self.n_fft - hop_length) % 2:
            raise ValueError(f"n_fft {self.n_fft} must be >= hop {hop_length} with an even difference")
        self.bins = self.n_fft // 2 + 1
        self.embed = nn.Conv1d(self.bins, dim, 1)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList(ConvNeXtBlock(dim, intermediate, kernel_size, 1.0 / layers) for _ in range(layers))
        self.final_norm = nn.LayerNorm(dim, eps=1e-6)
        self.out = nn.Linear(dim, latent_dim)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    @property
    def receptive_frames(self) -> int:
        """Hop blocks each side that can reach a latent frame (the STFT window + the convolutions)."""
        return self.layers * (self.kernel_size // 2) + -(-self.n_fft // (2 * self.hop_length)) + 1

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spectrum = stft_same(audio.reshape(-1, audio.shape[-1]), self.n_fft, self.hop_length, self.window)
        features = torch.log(spectrum.abs() + 1e-5)  # [B, bins, T]
        x = self.norm(self.embed(features).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.out(self.final_norm(x.transpose(1, 2))).transpose(1, 2)
