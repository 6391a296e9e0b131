"""The spectral (ConvNeXt + inverse STFT) decoder in place of EnCodec's, on tiny codecs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from conftest import tiny_codec
from safetensors.torch import load_file

from autoencoder import load_codec
from autoencoder.codec import LatentCodec
from autoencoder.losses import mel_distance
from autoencoder.spectral import istft_same, overlap_add, stft_same, window_envelope
from autoencoder.train import CodecTrainConfig, LatentBatch
from composer.train.codec import train_codec


def _spectral_codec(seed: int = 0, phase: str = "locked") -> LatentCodec:
    codec = tiny_codec(seed)
    torch.manual_seed(seed)
    codec.set_spectral_decoder({"dim": 32, "intermediate": 64, "layers": 2, "phase": phase})
    return codec.eval()


def _tone(samples: int, frequency: float = 440.0, rate: int = 8000) -> torch.Tensor:
    t = torch.arange(samples) / rate
    return (0.3 * torch.sin(2 * math.pi * frequency * t))[None, None]


@pytest.mark.parametrize("n_fft,hop", [(1024, 256), (64, 16), (48, 16)])
def test_istft_same_inverts_stft_same(n_fft, hop):
    frames = 40
    signal = torch.randn(3, frames * hop, generator=torch.Generator().manual_seed(0))
    window = torch.hann_window(n_fft)
    spectrum = stft_same(signal, n_fft, hop, window)
    assert spectrum.shape[-1] == frames  # frame t is centred on hop block t
    rebuilt = istft_same(spectrum, n_fft, hop, window)
    assert rebuilt.shape == signal.shape
    assert (rebuilt - signal).abs().max() < 1e-4


@pytest.mark.parametrize("phase", ["locked", "integrated"])
def test_spectral_codec_shapes_and_chunked_decoding_equal_one_shot(phase):
    codec = _spectral_codec(phase=phase)
    audio = _tone(8000 * 5 + 77)
    with torch.no_grad():
        z = codec.encode(audio)
        one_shot = codec.decode(z)
    assert one_shot.shape == (1, 1, z.shape[-1] * codec.hop_length)
    assert codec.receptive_frames >= codec.spectral.receptive_frames
    for chunk_seconds in (0.3, 1.0, 2.2):
        assert (codec.decode_long(z, chunk_seconds=chunk_seconds) - one_shot).abs().max() < 1e-5


def test_swapping_the_decoder_keeps_the_latent_space_and_survives_a_round_trip(tmp_path):
    plain = tiny_codec()
    codec = _spectral_codec()
    assert codec.latent_identity() == plain.latent_identity()  # diffusion models on these latents stay valid
    assert codec.identity() != plain.identity()
    codec.save_pretrained(tmp_path / "codec")
    config = json.loads((tmp_path / "codec" / "config.json").read_text())
    assert config["decoder"]["type"] == "spectral" and config["decoder"]["layers"] == 2
    names = load_file(str(tmp_path / "codec" / "model.safetensors")).keys()
    assert any(n.startswith("spectral.") for n in names) and not any(n.startswith("model.decoder.") for n in names)
    reloaded = load_codec(tmp_path / "codec")
    assert reloaded.spectral is not None and reloaded.identity() == codec.identity()
    z = torch.randn(1, codec.latent_dim, 50, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(reloaded.decode(z), codec.decode(z))


def test_unknown_decoder_type_is_refused():
    with pytest.raises(ValueError, match="unknown decoder type"):
        tiny_codec().set_spectral_decoder({"type": "wavenet"})


def test_decoder_learns_a_tone_from_cached_latents(tmp_path):
    """The point of the spectral decoder: pitch comes through after a short decoder-only fit."""
    codec = _spectral_codec()
    hop, frames, context = codec.hop_length, 24, codec.receptive_frames
    with torch.no_grad():
        z = codec.raw_encode(_tone((frames + 2 * context) * hop))
    target = _tone((frames + 2 * context) * hop)[..., context * hop: (context + frames) * hop]

    def batches():
        while True:
            yield LatentBatch(latents=z, audio=target, context=context)

    def error() -> float:
        with torch.no_grad():
            return float(mel_distance(codec.raw_decode(z)[..., context * hop: (context + frames) * hop], target, 8000))

    before = error()
    encoder = {k: v.clone() for k, v in codec.model.encoder.state_dict().items()}
    config = CodecTrainConfig(steps=150, lr=3e-3, freeze_encoder=True, latent_noise=0.0, log_every=50, waveform_weight=0.0,
                              save_every=1000, validate_every=1000, stft_sizes=(512, 1024, 2048))
    train_codec(codec, batches(), out_dir=tmp_path, config=config, progress=False)
    assert all(torch.equal(v, codec.model.encoder.state_dict()[k]) for k, v in encoder.items())
    with torch.no_grad():
        out = codec.raw_decode(z)[0, 0, context * hop: (context + frames) * hop].numpy()
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    peak = np.fft.rfftfreq(len(out), 1 / 8000)[spectrum.argmax()]
    assert abs(peak - 440.0) < 440 * 0.03, peak
    assert error() < 0.9 * before


def _dataset(data):
    data.mkdir()
    rows = []
    for i, split in enumerate(["train", "train", "validation"]):
        t = np.arange(8000 * 3) / 8000
        sf.write(data / f"s{i}.wav", (0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t)).astype(np.float32), 8000)
        rows.append({"file_name": f"s{i}.wav", "licence": "CC0-1.0", "consent": "opt-in", "split": split})
    (data / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def test_train_codec_command_puts_in_a_spectral_decoder_and_keeps_the_latents(tmp_path):
    from composer.cli import main

    codec_dir = tmp_path / "codec"
    tiny_codec().save_pretrained(codec_dir)
    data = _dataset(tmp_path / "data")
    out = tmp_path / "spectral"
    result = CliRunner().invoke(main, ["train", "codec", "--data", str(data), "-o", str(out), "--init", str(codec_dir),
                                       "--freeze-encoder", "--decoder", "spectral", "--decoder-dim", "16",
                                       "--decoder-layers", "1", "--steps", "3", "--batch-size", "2", "--window", "0.5",
                                       "--threads", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    trained = load_codec(out)
    assert trained.spectral is not None and trained.config.decoder["dim"] == 16
    assert trained.latent_identity() == load_codec(codec_dir).latent_identity()
    assert list((out / "training" / "cache").glob("latents-*/*.safetensors"))  # encoded once, cached
    card = (out / "MODEL_CARD.md").read_text()
    assert "spectral" in card and card.startswith("# Codec model\n")  # a run's card, not the bundled one's


def _fully_spectral_codec(seed: int = 0) -> LatentCodec:
    codec = _spectral_codec(seed)
    torch.manual_seed(seed)
    codec.set_spectral_encoder({"dim": 32, "intermediate": 64, "layers": 2})
    return codec.eval()


def test_spectral_encoder_shapes_chunking_and_identity(tmp_path):
    plain = _spectral_codec()
    codec = _fully_spectral_codec()
    assert codec.latent_identity() != plain.latent_identity()  # a new latent space
    audio = _tone(8000 * 6 + 99)
    with torch.no_grad():
        z = codec.encode(audio)
    assert z.shape == (1, codec.latent_dim, math.ceil(audio.shape[-1] / codec.hop_length))
    for chunk_seconds in (0.4, 1.3):
        assert (codec.encode_long(audio, chunk_seconds=chunk_seconds) - z).abs().max() < 1e-4
    codec.save_pretrained(tmp_path / "codec")
    names = load_file(str(tmp_path / "codec" / "model.safetensors")).keys()
    assert not any(n.startswith("model.") for n in names)  # neither EnCodec part is stored
    reloaded = load_codec(tmp_path / "codec")
    assert reloaded.config.encoder["type"] == "spectral" and reloaded.latent_identity() == codec.latent_identity()
    with torch.no_grad():
        assert torch.equal(reloaded.encode(audio), z)


def test_spectral_encoder_latents_tell_pitches_apart():
    """Even untrained, the spectral encoder's latents differ between a semitone's neighbours
    (its input already resolves them); training decides what to keep."""
    codec = _fully_spectral_codec()
    with torch.no_grad():
        a, b, c = (codec.encode(_tone(8000, f))[..., 5:-5].mean(-1) for f in (220.0, 233.08, 220.0))
    assert torch.equal(a, c) and (a - b).abs().max() > 1e-3


def test_new_spectral_codec_trains_from_the_command_line(tmp_path):
    from composer.cli import main

    result = CliRunner().invoke(main, ["train", "codec", "--data", str(_dataset(tmp_path / "data")), "-o",
                                       str(tmp_path / "codec"), "--encoder", "spectral", "--decoder", "spectral",
                                       "--encoder-dim", "16", "--encoder-layers", "1", "--decoder-dim", "16",
                                       "--decoder-layers", "1", "--steps", "2", "--batch-size", "2", "--window", "0.5",
                                       "--threads", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    codec = load_codec(tmp_path / "codec")
    assert codec.spectral_encoder is not None and codec.spectral is not None
    assert (codec.latent_std != 1).any()  # statistics fitted to the data after training


def test_spectral_encoder_and_frozen_encoder_do_not_mix(tmp_path):
    from composer.cli import main

    codec_dir = tmp_path / "codec"
    tiny_codec().save_pretrained(codec_dir)
    result = CliRunner().invoke(main, ["train", "codec", "--data", str(_dataset(tmp_path / "data")), "-o",
                                       str(tmp_path / "x"), "--init", str(codec_dir), "--freeze-encoder",
                                       "--encoder", "spectral"])
    assert result.exit_code == 2 and "cannot be combined with --freeze-encoder" in result.output


def test_a_song_renders_and_restyles_through_the_spectral_codec(tmp_path):
    from conftest import tiny_model

    from composer.rendering import RenderOptions, modes, render
    from structure.planner import plan

    codec = _fully_spectral_codec()
    model = tiny_model(codec, window_frames=32)
    song = plan("genre=folk mood=calm", duration=8, seed=0, write_lyrics=False)
    options = RenderOptions(steps=2, evaluate=False, overlap_seconds=0.06)
    first = render(song, seed=3, codec=codec, model=model, options=options, progress=False)
    again = render(song, seed=3, codec=codec, model=model, options=options, progress=False)
    assert np.array_equal(first.audio, again.audio) and np.isfinite(first.audio).all()
    assert abs(first.audio.shape[-1] / first.sample_rate - song.duration) < 0.05
    first.save(tmp_path / "song")
    restyled = modes.restyle(tmp_path / "song" / "song.wav", "genre=rock", strength=0.5, seed=1, codec=codec,
                             model=model, options=options, progress=False)
    assert np.isfinite(restyled.audio).all() and restyled.audio.shape[-1] > 0


@pytest.mark.parametrize("frequency", [437.0, 443.3, 97.0])
def test_phase_locking_turns_a_tone_s_magnitudes_back_into_the_tone(frequency):
    """Only magnitudes go in; the locked phase makes the overlapping frames add up coherently."""
    from autoencoder.spectral import SpectralDecoder

    rate, hop = 24000, 320
    decoder = SpectralDecoder(4, hop, dim=8, intermediate=8, layers=1)
    frames = 150
    tone = _tone(frames * hop, frequency, rate)[0, 0]
    magnitude = stft_same(tone[None], decoder.n_fft, hop, decoder.window).abs()
    audio = decoder.vocode(magnitude)[0]
    assert magnitude.shape[-1] == frames and audio.shape[-1] == frames * hop
    middle = audio[20 * hop: -20 * hop].numpy()
    reference = tone[20 * hop: -20 * hop].numpy()
    assert abs(np.sqrt((middle ** 2).mean()) / np.sqrt((reference ** 2).mean()) - 1) < 0.05  # no cancellation
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(len(middle))))
    peak = np.fft.rfftfreq(len(middle), 1 / rate)[spectrum.argmax()]
    assert abs(peak - frequency) < max(0.005 * frequency, 1.0)
    assert spectrum.max() ** 2 / (spectrum ** 2).sum() > 0.3  # a clean line, not a smear


def test_resized_decoder_reads_the_old_head_at_the_same_frequencies_and_keeps_the_latents(tmp_path):
    codec = _spectral_codec()
    old = codec.spectral
    z = torch.randn(1, codec.latent_dim, 12)
    with torch.no_grad():
        old_magnitude, _, _ = old.frames(z)
        before = codec.latent_identity()
        codec.resize_spectral_decoder(2 * old.n_fft)
        new_magnitude, _, _ = codec.spectral.frames(z)
    assert codec.spectral.n_fft == 2 * old.n_fft and codec.config.decoder["n_fft"] == 2 * old.n_fft
    # New bin 2k is old bin k's frequency: the same log magnitude, plus log 2 for the longer window.
    torch.testing.assert_close(new_magnitude[:, ::2].log(), old_magnitude.log() + math.log(2), atol=1e-4, rtol=1e-4)
    between = new_magnitude[:, 1:-1:2].log()
    assert torch.all(between <= torch.maximum(new_magnitude[:, :-2:2], new_magnitude[:, 2::2]).log() + 1e-4)
    assert codec.latent_identity() == before
    codec.save_pretrained(tmp_path / "c")
    loaded = load_codec(tmp_path / "c")
    assert loaded.spectral.n_fft == 2 * old.n_fft
    audio = loaded.decode(torch.randn(1, codec.latent_dim, 10))
    assert audio.shape[-1] == 10 * codec.hop_length and torch.isfinite(audio).all()


def test_pitch_distance_sees_a_semitone_that_the_mel_distance_hardly_does():
    from autoencoder.losses import _pitch_basis, pitch_distance

    basis = _pitch_basis(24000, 8192)
    torch.testing.assert_close(basis.sum(dim=1), torch.ones(basis.shape[0]))
    t = torch.arange(24000) / 24000

    def chord(root: float) -> torch.Tensor:  # a bass note and its triad, with harmonics
        notes = [root, root * 2 ** (4 / 12) * 2, root * 2 ** (7 / 12) * 2]
        wave = sum(sum(0.2 / h * torch.sin(2 * math.pi * h * f * t) for h in (1, 2, 3)) for f in notes)
        return wave[None, None]

    c, c_sharp = chord(65.41), chord(69.30)
    assert float(pitch_distance(c, c, 24000)) == 0.0
    shifted = float(pitch_distance(c_sharp, c, 24000))
    quieter = float(pitch_distance(0.9 * c, c, 24000))
    assert shifted > 5 * quieter
    assert shifted / quieter > float(mel_distance(c_sharp, c, 24000)) / float(mel_distance(0.9 * c, c, 24000))


def test_train_codec_resizes_a_decoder_frame_from_the_command_line(tmp_path):
    from composer.cli import main

    codec_dir = tmp_path / "codec"
    _spectral_codec().save_pretrained(codec_dir)
    base = ["train", "codec", "--data", str(_dataset(tmp_path / "data")), "--init", str(codec_dir),
            "--freeze-encoder", "--steps", "2", "--batch-size", "2", "--window", "0.5", "--threads", "1"]
    out = tmp_path / "wide"
    result = CliRunner().invoke(main, base + ["-o", str(out), "--decoder", "spectral", "--decoder-fft", "2048"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    trained = load_codec(out)
    assert trained.spectral.n_fft == 2048 and trained.config.decoder["n_fft"] == 2048
    assert trained.latent_identity() == load_codec(codec_dir).latent_identity()
    assert "pitch_distance" in json.loads((out / "config.json").read_text())["training"]["validation"]
    result = CliRunner().invoke(main, base + ["-o", str(tmp_path / "bad"), "--decoder-fft", "1001"])
    assert result.exit_code == 2 and "--decoder-fft 1001" in result.output


@pytest.mark.parametrize("n_fft,hop,frames", [(2560, 320, 9), (1280, 320, 1), (48, 16, 5), (50, 16, 7)])
def test_window_envelope_equals_overlap_adding_every_frame(n_fft, hop, frames):
    window = torch.hann_window(n_fft)
    expected = overlap_add(window.square()[None, :, None].expand(1, -1, frames).contiguous(), hop)[0]
    torch.testing.assert_close(window_envelope(window, hop, frames), expected)


def test_onset_distance_sees_a_late_note_that_the_long_window_losses_hardly_do():
    from autoencoder.losses import ReconstructionLoss, onset_distance, pitch_distance

    t = torch.arange(24000) / 24000

    def bass(start: float) -> torch.Tensor:  # a plucked A2 starting at `start` seconds
        u = (t - start).clamp(min=0)
        return (0.5 * torch.sin(2 * math.pi * 110 * u) * torch.exp(-3 * u) * (t >= start))[None, None]

    on_time, late = bass(0.30), bass(0.38)
    assert float(onset_distance(on_time, on_time, 24000)) == 0.0
    assert float(onset_distance(late, on_time, 24000)) > 5 * float(onset_distance(0.8 * on_time, on_time, 24000))
    # the semitone-band loss (0.34-s window) barely tells 80 ms apart
    assert float(pitch_distance(late, on_time, 24000)) < float(onset_distance(late, on_time, 24000)) / 3
    # a silent clip's codec noise is no onset, and does not swamp the clips that have notes
    silence, hiss = torch.zeros_like(on_time), 1e-4 * torch.randn(on_time.shape, generator=torch.Generator().manual_seed(0))
    assert float(onset_distance(hiss, silence, 24000)) == 0.0
    batch = float(onset_distance(torch.cat([late, hiss]), torch.cat([on_time, silence]), 24000))
    assert abs(batch - float(onset_distance(late, on_time, 24000))) < 1e-6
    with_onsets = ReconstructionLoss(24000, onset=0.5)(late, on_time)
    assert "onset" in with_onsets and float(with_onsets["loss"]) > float(ReconstructionLoss(24000)(late, on_time)["loss"])


def test_griffin_lim_makes_the_vocoder_s_output_consistent_with_its_magnitudes():
    """Two partials a semitone apart share a window's main lobe: the phase-locked vocoder
    gives one phase to both, so its output's STFT drifts from the magnitudes it was given;
    Griffin-Lim iterations from that phase bring it back, and more iterations bring it closer."""
    from autoencoder.spectral import SpectralDecoder, griffin_lim

    rate, hop = 24000, 320
    decoder = SpectralDecoder(4, hop, dim=8, intermediate=8, layers=1, n_fft=2560)
    frames = 120
    t = np.arange(frames * hop) / rate
    mixture = torch.from_numpy((0.3 * np.sin(2 * np.pi * 196.0 * t) + 0.2 * np.sin(2 * np.pi * 207.7 * t)
                                + 0.1 * np.sin(2 * np.pi * 587.3 * t + 1.0)).astype(np.float32))[None]
    window = decoder.window
    magnitude = stft_same(mixture, decoder.n_fft, hop, window).abs()
    locked = decoder.vocode(magnitude)

    def inconsistency(audio):
        return float(torch.linalg.norm(stft_same(audio, decoder.n_fft, hop, window).abs() - magnitude)
                     / torch.linalg.norm(magnitude))

    few = griffin_lim(magnitude, locked, decoder.n_fft, hop, window, iterations=4)
    more = griffin_lim(magnitude, locked, decoder.n_fft, hop, window, iterations=16)
    assert few.shape == locked.shape == mixture.shape
    assert inconsistency(more) < inconsistency(few) < 0.8 * inconsistency(locked)
    assert torch.equal(more, griffin_lim(magnitude, locked, decoder.n_fft, hop, window, iterations=16))


def test_bass_onset_distance_sees_a_wrong_or_late_bass_note_in_a_mix_that_the_mel_flux_hardly_does():
    """In a mix, the low mel bands rise with the kick and everything else; in semitone bands
    of a long window, the bass note has its own."""
    from autoencoder.losses import ReconstructionLoss, bass_onset_distance, onset_distance

    rate = 24000
    t = torch.arange(2 * rate) / rate

    def note(start: float, frequency: float, decay: float = 2.0, level: float = 0.4) -> torch.Tensor:
        u = (t - start).clamp(min=0)
        return (level * torch.sin(2 * math.pi * frequency * u) * torch.exp(-decay * u) * (t >= start))[None, None]

    def kick(start: float) -> torch.Tensor:
        u = (t - start).clamp(min=0)
        phase = 2 * math.pi * torch.cumsum(50 + 100 * torch.exp(-30 * u), 0) / rate
        return (0.8 * torch.sin(phase) * torch.exp(-12 * u) * (t >= start))[None, None]

    noise = torch.Generator().manual_seed(0)
    hats = sum((0.05 * torch.randn(t.shape, generator=noise) * torch.exp(-60 * (t - s).clamp(min=0)) * (t >= s))[None, None]
               for s in [0.1 + 0.25 * k for k in range(8)])
    chords = sum(note(s, f, 1.0, 0.15) for s in (0.2, 1.0) for f in (220.0, 277.2, 329.6))
    band = kick(0.4) + kick(0.9) + kick(1.4) + hats + chords
    played = band + note(0.4, 55.0) + note(1.1, 73.42)  # A1, then D2
    assert float(bass_onset_distance(played, played, rate)) == 0.0
    for other in (band + note(0.4, 58.27) + note(1.1, 73.42),  # A#1 on the same beat
                  band + note(0.5, 55.0) + note(1.2, 73.42),  # both 100 ms late
                  band + 0.3 * (note(0.4, 55.0) + note(1.1, 73.42))):  # 10 dB too soft
        assert float(bass_onset_distance(other, played, rate)) > 5 * float(onset_distance(other, played, rate))
    wrong = band + note(0.4, 58.27) + note(1.1, 73.42)
    loss = ReconstructionLoss(rate, bass_onset=1.0)(wrong, played)
    assert "bass_onset" in loss and float(loss["loss"]) > float(ReconstructionLoss(rate)(wrong, played)["loss"])


# --- the noise path -----------------------------------------------------------------------------
def test_noise_phase_is_a_fixed_function_of_frame_and_bin():
    from autoencoder.spectral import noise_phase

    whole = noise_phase(0, 300, 65)
    assert whole.shape == (1, 65, 300)
    assert torch.equal(noise_phase(120, 180, 65), whole[..., 120:])  # chunks see the frames a whole pass does
    assert torch.equal(noise_phase(0, 300, 65), whole)
    assert float(whole.min()) >= 0 and float(whole.max()) < 2 * math.pi
    # spread like random phases: a mean resultant near 0, in every bin and every frame
    unit = torch.polar(torch.ones_like(whole), whole)
    assert float(unit.mean().abs()) < 0.02
    assert float(unit.mean(dim=-1).abs().max()) < 0.3 and float(unit.mean(dim=1).abs().max()) < 0.4


def test_noise_bands_share_every_bin_between_two_neighbours():
    from autoencoder.spectral import noise_band_basis

    basis = noise_band_basis(1281, 32)
    assert basis.shape == (1281, 32)
    assert torch.allclose(basis.sum(dim=1), torch.ones(1281))
    assert float(basis[0, 0]) == 1.0 and float(basis[-1, -1]) == 1.0
    assert ((basis > 0).sum(dim=1) <= 2).all()
    # mel-spaced: the lowest band spans fewer bins than the highest
    assert int((basis[:, 1] > 0).sum()) < int((basis[:, -2] > 0).sum())


def _line_height_db(audio: np.ndarray, n: int = 1024) -> float:
    """The largest peak of the long-term spectrum above its running median (as `noise_tones` measures)."""
    from scipy.ndimage import median_filter

    frames = np.lib.stride_tricks.sliding_window_view(audio, n)[:: n // 4] * np.hanning(n)
    spectrum = np.abs(np.fft.rfft(frames, axis=-1)).mean(0)
    over = 20 * np.log10(spectrum + 1e-12) - 20 * np.log10(median_filter(spectrum, 31) + 1e-12)
    return float(over[10:-10].max())


def test_the_noise_path_sends_a_steady_spectrum_as_noise_where_phase_locking_makes_lines():
    """A steady, smooth spectrum is what a network predicts for noise; locked, its peaks become steady
    sinusoids (lines), while through the noise path it comes back as noise."""
    from autoencoder.spectral import SpectralDecoder

    decoder = SpectralDecoder(4, 320, dim=8, intermediate=8, layers=1, noise_bands=8)
    frames, bins = 200, decoder.bins
    ripple = 1 + 0.3 * torch.cos(torch.arange(bins) * 2 * math.pi / 23)  # gentle bumps, as a network's are
    magnitude = (0.05 * ripple)[None, :, None].expand(1, bins, frames).contiguous()
    hop, pad = decoder.hop_length, (decoder.n_fft - decoder.hop_length) // 2

    def synthesised(noise):
        pieces, _ = decoder.synthesize(magnitude, torch.zeros_like(magnitude), noise=noise)
        size = (frames - 1) * hop + decoder.n_fft
        return (overlap_add(pieces, hop)[0, pad: size - pad]
                / window_envelope(decoder.window, hop, frames)[pad: size - pad]).numpy()

    locked = synthesised(None)
    noisy = synthesised(torch.ones_like(magnitude))
    locked_db, noisy_db = (_line_height_db(x[20 * hop: -20 * hop]) for x in (locked, noisy))
    assert locked_db > 8 and noisy_db < 4  # white noise itself measures about 3 dB here
    # analysed again, the noise has the magnitudes it was given, in rms (overlapping random-phase
    # frames add in power, not in amplitude: the path raises them to make up for it)
    analysed = stft_same(torch.from_numpy(noisy)[None], decoder.n_fft, hop, decoder.window).abs()[..., 20:-20]
    ratio = float(analysed.pow(2).mean().sqrt() / magnitude[..., 20:-20].pow(2).mean().sqrt())
    assert 0.9 < ratio < 1.1


def test_a_noise_path_is_added_shut_chunks_like_one_pass_and_survives_a_round_trip(tmp_path):
    codec = _spectral_codec()
    z = torch.randn(1, codec.latent_dim, 120, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        before = codec.decode(z)
    latent_identity = codec.latent_identity()
    codec.add_noise_path(16)
    assert codec.config.decoder["noise_bands"] == 16 and codec.latent_identity() == latent_identity
    with torch.no_grad():
        after = codec.decode(z)
        # nearly shut: a sliver of the energy moves to the noise path
        assert float((after - before).pow(2).mean() / before.pow(2).mean()) < 0.15
        codec.spectral.noise_head.bias.fill_(0.0)  # half the energy noise: what chunks must agree on
        one_shot = codec.decode(z)
        for chunk_seconds in (0.3, 1.1):
            assert (codec.decode_long(z, chunk_seconds=chunk_seconds) - one_shot).abs().max() < 1e-5
    with pytest.raises(ValueError, match="has a noise path already"):
        codec.add_noise_path(16)
    codec.save_pretrained(tmp_path / "codec")
    reloaded = load_codec(tmp_path / "codec")
    assert reloaded.spectral.noise_bands == 16
    with torch.no_grad():
        assert torch.equal(reloaded.decode(z), codec.decode(z))  # same bytes: the noise is no random draw
        assert torch.equal(reloaded.spectral.resized(reloaded.spectral.n_fft * 2).noise_head.weight,
                           reloaded.spectral.noise_head.weight)


def test_one_decoder_pass_gives_the_audio_and_the_noise_shares_the_noise_loss_reads():
    codec = _spectral_codec()
    codec.add_noise_path(8)
    z = torch.randn(2, codec.latent_dim, 40, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        codec.spectral.noise_head.bias.fill_(0.0)
        collected: list[torch.Tensor] = []
        audio = codec.spectral.decode_chunked(z, chunk=z.shape[-1], shares_out=collected)
        assert len(collected) == 1 and torch.equal(collected[0], codec.spectral.noise_shares(z))
        assert torch.equal(audio, codec.spectral(z))  # what raw_decode gives
        chunked: list[torch.Tensor] = []
        codec.spectral.decode_chunked(z, chunk=16, shares_out=chunked)
        assert torch.allclose(torch.cat(chunked, dim=-1), collected[0], atol=1e-6)


def test_band_noisiness_tells_noise_from_partials():
    from autoencoder.spectral import SpectralDecoder, band_noisiness

    decoder = SpectralDecoder(4, 80, dim=8, intermediate=8, layers=1, noise_bands=8)  # 8 kHz: a tiny codec's rate
    generator = torch.Generator().manual_seed(0)
    noise = 0.1 * torch.randn(1, 1, 80 * 200, generator=generator)
    tone = _tone(80 * 200, 1000.0)
    on_noise, on_tone = band_noisiness(noise, decoder), band_noisiness(tone, decoder)
    assert on_noise.shape == (1, 8, 200) and float(on_noise.min()) >= 0 and float(on_noise.max()) <= 1
    assert float(on_noise[..., 10:-10].mean()) > 0.8
    band = int(decoder.noise_basis[decoder.n_fft * 1000 // 8000].argmax())  # the band the tone is in
    assert float(on_tone[0, band, 10:-10].mean()) < 0.2
    # empty bands and silence are not noise (they were scored 1 before a review)
    assert float(on_tone[0, :, 10:-10].max()) < 0.2
    assert float(band_noisiness(torch.zeros(1, 1, 80 * 50), decoder).max()) == 0.0


def test_the_noise_loss_opens_the_noise_path_on_noise_and_closes_it_on_a_tone():
    from autoencoder.train import CodecTrainer

    for audio, opens in ((0.1 * torch.randn(2, 1, 4096, generator=torch.Generator().manual_seed(5)), True),
                         (_tone(4096, 1000.0).expand(2, 1, 4096).contiguous(), False)):
        codec = _spectral_codec()
        codec.add_noise_path(8)
        # the band the tone is in
        band = int(codec.spectral.noise_basis[codec.spectral.n_fft * 1000 // 8000].argmax())
        with torch.no_grad():
            codec.spectral.noise_head.bias.fill_(0.0)  # half open: free to go either way
        trainer = CodecTrainer(codec, CodecTrainConfig(steps=10, lr=1e-3, freeze_encoder=True, noise_weight=1.0,
                                                       waveform_weight=0.0, latent_noise=0.0))
        with torch.no_grad():
            before = codec.spectral.noise_shares(codec.raw_encode(audio))
        losses = [trainer.step(audio, step)["noise"] for step in range(5)]
        with torch.no_grad():
            after = codec.spectral.noise_shares(codec.raw_encode(audio))
        assert losses[-1] < losses[0]
        if opens:
            assert float(after.mean()) > float(before.mean())
        else:
            assert float(after[:, band].mean()) < float(before[:, band].mean())


def test_a_noise_share_of_exactly_0_or_1_keeps_the_gradients_finite():
    """A run went NaN when a band's share reached exactly 0 or 1 (a square root's slope is infinite there)."""
    from autoencoder.spectral import SpectralDecoder

    decoder = SpectralDecoder(4, 80, dim=8, intermediate=8, layers=1, noise_bands=4)
    magnitude = torch.rand(1, decoder.bins, 30, generator=torch.Generator().manual_seed(0)).requires_grad_()
    noise = torch.zeros(1, decoder.bins, 30)
    noise[:, ::2] = 1.0
    noise.requires_grad_()
    pieces, _ = decoder.synthesize(magnitude, torch.zeros_like(magnitude), noise=noise)
    pieces.pow(2).sum().backward()
    assert torch.isfinite(magnitude.grad).all() and torch.isfinite(noise.grad).all()


def test_a_frozen_decoder_s_noise_path_teaches_the_encoder_nothing():
    """The noise loss trains the decoder's noise path; with the decoder frozen it would only pull the latents."""
    from autoencoder.train import CodecTrainer

    codec = _spectral_codec()
    codec.add_noise_path(8)
    trainer = CodecTrainer(codec, CodecTrainConfig(steps=2, lr=1e-3, freeze_decoder=True, noise_weight=1.0,
                                                   waveform_weight=0.0))
    assert "noise" not in trainer.step(0.1 * torch.randn(2, 1, 4096, generator=torch.Generator().manual_seed(2)), 0)
