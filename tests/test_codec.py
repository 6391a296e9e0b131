"""autoencoder: the Codec interface on tiny random codecs (no downloads, CPU, a few seconds)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import killed_after, tiny_codec

from autoencoder import load_codec
from autoencoder.codec import CodecConfig, LatentCodec
from autoencoder.losses import ReconstructionLoss, mel_distance, multi_resolution_stft_loss, si_sdr
from composer.errors import InputError


def _audio(batch: int, samples: int, *, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """Music-like test audio: a few decaying partials plus a little noise."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 8000.0
    tone = sum(torch.sin(2 * math.pi * f * t) / (k + 1) for k, f in enumerate((220.0, 330.0, 495.0, 660.0)))
    noise = torch.randn(batch, channels, samples, generator=generator)
    return (0.2 * tone * torch.exp(-(t % 0.5) * 3) + 0.02 * noise).float()


@pytest.fixture(scope="module")
def codec():
    return tiny_codec()


@pytest.fixture(scope="module")
def lstm_codec():
    torch.manual_seed(1)
    config = CodecConfig.small(num_filters=4, latent_dim=8, sample_rate=8000, ratios=(8, 8, 4))
    config.lstm = True
    return LatentCodec(config).eval()


# --- shapes ----------------------------------------------------------------------------
@pytest.mark.parametrize("samples", [1, 255, 256, 257, 8000, 8000 + 37])
def test_encode_and_decode_shapes(codec, samples):
    hop = codec.hop_length
    assert codec.frame_rate == codec.sample_rate / hop
    with torch.no_grad():
        z = codec.encode(_audio(2, samples))
        assert z.shape == (2, codec.latent_dim, math.ceil(samples / hop))
        audio = codec.decode(z)
    assert audio.shape == (2, codec.channels, z.shape[-1] * hop)
    assert torch.isfinite(z).all() and torch.isfinite(audio).all()


def test_interface_properties(codec):
    settings = codec.config.encodec
    assert codec.sample_rate == settings["sampling_rate"] and codec.channels == settings["audio_channels"] == 1
    assert codec.latent_dim == settings["hidden_size"]
    assert codec.hop_length == math.prod(codec.model.config.upsampling_ratios)
    assert codec.config.lstm is False


# --- chunked encode/decode -------------------------------------------------------------
@pytest.mark.parametrize("chunk_seconds", [0.1, 0.35, 1.0, 2.9, 100.0])
def test_long_encode_and_decode_equal_one_shot(codec, chunk_seconds):
    audio = _audio(2, 8000 * 7 + 123)  # not a multiple of the hop nor of any chunk
    with torch.no_grad():
        z = codec.encode(audio)
        one_shot = codec.decode(z)
    z_long = codec.encode_long(audio, chunk_seconds=chunk_seconds)
    decoded = codec.decode_long(z, chunk_seconds=chunk_seconds)
    assert z_long.shape == z.shape and decoded.shape == one_shot.shape
    assert (z_long - z).abs().max() < 1e-4
    assert (decoded - one_shot).abs().max() < 1e-4


def test_no_click_at_chunk_joins(codec):
    audio = _audio(1, 8000 * 6)
    z = codec.encode_long(audio)
    chunk_seconds = 0.5
    decoded = codec.decode_long(z, chunk_seconds=chunk_seconds)[0, 0]
    step = (decoded[1:] - decoded[:-1]).abs()
    chunk_samples = int(chunk_seconds * codec.frame_rate) * codec.hop_length
    joins = torch.arange(chunk_samples, len(decoded) - 1, chunk_samples)
    near = torch.zeros_like(step, dtype=torch.bool)
    for join in joins.tolist():
        near[max(0, join - 32): join + 32] = True
    assert near.any() and (~near).any()
    assert step[near].max() <= step[~near].max() * 1.01 + 1e-6


def test_lstm_codec_chunked_is_close_to_one_shot(lstm_codec):
    assert lstm_codec.config.lstm and lstm_codec.receptive_frames > 16
    audio = _audio(1, 8000 * 9 + 50)
    with torch.no_grad():
        z = lstm_codec.encode(audio)
        one_shot = lstm_codec.decode(z)
    for chunk_seconds in (1.0, 3.3):
        z_long = lstm_codec.encode_long(audio, chunk_seconds=chunk_seconds)
        decoded = lstm_codec.decode_long(z, chunk_seconds=chunk_seconds)
        assert z_long.shape == z.shape and decoded.shape == one_shot.shape
        assert (z_long - z).abs().max() <= 1e-3 * z.abs().max()
        assert (decoded - one_shot).abs().max() <= 1e-3 * one_shot.abs().max()


# --- checkpoints ---------------------------------------------------------------------------
def test_save_and_load_round_trip_is_exact_in_fp32(codec, tmp_path):
    codec.save_pretrained(tmp_path / "codec")
    assert {p.name for p in (tmp_path / "codec").iterdir()} == {"config.json", "model.safetensors"}
    config = json.loads((tmp_path / "codec" / "config.json").read_text())
    assert config["codec_type"] == "encodec" and config["lstm"] is False
    reloaded = LatentCodec.from_pretrained(tmp_path / "codec")
    assert not reloaded.training
    original, loaded = codec.state_dict(), reloaded.state_dict()
    assert original.keys() == loaded.keys()
    assert all(torch.equal(original[k], loaded[k]) for k in original)
    audio = _audio(1, 4000)
    with torch.no_grad():
        assert torch.equal(codec.encode(audio), reloaded.encode(audio))
        z = codec.encode(audio)
        assert torch.equal(codec.decode(z), reloaded.decode(z))
    assert reloaded.identity() == codec.identity()
    assert load_codec(tmp_path / "codec").identity() == codec.identity()


def test_identity_is_stable_and_tells_weights_apart(codec, tmp_path):
    assert codec.identity() == codec.identity() == tiny_codec().identity()
    assert len(codec.identity()) == 16
    assert tiny_codec(seed=1).identity() != codec.identity()
    codec.save_pretrained(tmp_path / "half", dtype=torch.float16)  # the bundled precision
    assert LatentCodec.from_pretrained(tmp_path / "half").identity() == codec.identity()
    shifted = tiny_codec()
    with torch.no_grad():
        shifted.latent_std.mul_(2.0)
    assert shifted.identity() != codec.identity()


def test_lstm_flag_survives_the_round_trip(lstm_codec, tmp_path):
    lstm_codec.save_pretrained(tmp_path / "lstm")
    reloaded = LatentCodec.from_pretrained(tmp_path / "lstm")
    assert reloaded.config.lstm is True
    audio = _audio(1, 3000)
    with torch.no_grad():
        assert torch.equal(reloaded.encode(audio), lstm_codec.encode(audio))


def test_transformers_encodec_checkpoint_loads(tmp_path):
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(0)
    config = EncodecConfig(sampling_rate=8000, audio_channels=1, num_filters=4, hidden_size=8,
                           upsampling_ratios=[4, 4], num_lstm_layers=1, num_residual_layers=1,
                           codebook_size=16, codebook_dim=8, target_bandwidths=[1.0])
    EncodecModel(config).save_pretrained(str(tmp_path / "encodec"))
    assert json.loads((tmp_path / "encodec" / "config.json").read_text())["model_type"] == "encodec"
    codec = load_codec(tmp_path / "encodec")
    assert codec.config.lstm is True  # pretrained EnCodec keeps its LSTMs
    assert codec.sample_rate == 8000 and codec.hop_length == 16 and codec.latent_dim == 8
    audio = _audio(2, 1000)
    with torch.no_grad():
        z = codec.encode(audio)
        decoded = codec.decode(z)
    assert z.shape == (2, 8, math.ceil(1000 / 16)) and decoded.shape == (2, 1, z.shape[-1] * 16)
    assert torch.isfinite(decoded).all()
    # saved again in our own format, it loads back the same
    codec.save_pretrained(tmp_path / "ours")
    again = load_codec(tmp_path / "ours")
    with torch.no_grad():
        assert torch.allclose(again.encode(audio), z, atol=1e-6)


def test_missing_codec_is_bad_input(tmp_path):
    from autoencoder import CheckpointNotFound
    from composer.errors import bad_input_types

    with pytest.raises(CheckpointNotFound, match="not a checkpoint directory"):
        load_codec(tmp_path / "nowhere")
    assert CheckpointNotFound in bad_input_types()  # the CLI answers it in one line, exit 2


# --- input checks --------------------------------------------------------------------------
def test_nan_and_infinite_input_raise_value_error(codec):
    audio = _audio(1, 1000)
    audio[0, 0, 10] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        codec.encode(audio)
    with pytest.raises(ValueError, match="NaN"):
        codec.encode_long(audio)
    audio[0, 0, 10] = float("inf")
    with pytest.raises(ValueError):
        codec.encode(audio)


@pytest.mark.parametrize("shape", [(1000,), (1, 1000), (1, 1, 1, 1000)])
def test_wrong_rank_raises_value_error(codec, shape):
    with pytest.raises(ValueError, match=r"\[batch, channels, samples\]"):
        codec.encode(torch.zeros(shape))


def test_stereo_input_to_a_mono_codec_is_mixed_down(codec):
    left, right = _audio(1, 2000, seed=1), _audio(1, 2000, seed=2)
    stereo = torch.cat([left, right], dim=1)
    with torch.no_grad():
        assert torch.allclose(codec.encode(stereo), codec.encode((left + right) / 2), atol=1e-6)


def test_mono_input_to_a_stereo_codec_is_duplicated():
    torch.manual_seed(0)
    config = CodecConfig.small(num_filters=4, latent_dim=8, sample_rate=8000, ratios=(8, 8, 4))
    config.encodec["audio_channels"] = 2
    stereo_codec = LatentCodec(config).eval()
    assert stereo_codec.channels == 2
    mono = _audio(1, 2000)
    with torch.no_grad():
        z = stereo_codec.encode(mono)
        assert torch.allclose(z, stereo_codec.encode(mono.repeat(1, 2, 1)), atol=1e-6)
        assert stereo_codec.decode(z).shape == (1, 2, z.shape[-1] * stereo_codec.hop_length)


# --- losses --------------------------------------------------------------------------------
def test_losses_are_zero_for_identical_audio_and_positive_otherwise():
    audio = _audio(2, 8000)
    other = audio + 0.05 * torch.randn(audio.shape, generator=torch.Generator().manual_seed(3))
    assert float(mel_distance(audio, audio, 8000)) == pytest.approx(0.0, abs=1e-6)
    assert float(mel_distance(other, audio, 8000)) > 0.01
    assert float(mel_distance(audio * 0.5, audio, 8000)) > 0.1  # level matters for mel
    assert float(multi_resolution_stft_loss(audio, audio)) == pytest.approx(0.0, abs=1e-5)
    assert float(multi_resolution_stft_loss(other, audio)) > 0.01
    sdr_same = si_sdr(audio, audio)
    assert sdr_same.shape == (2,) and (sdr_same > 60).all()
    assert (si_sdr(audio * 0.3, audio) > 60).all()  # scale-invariant
    noisy = si_sdr(other, audio)
    assert (noisy < sdr_same).all() and (noisy > 0).all()
    losses = ReconstructionLoss(8000)(other, audio)
    assert set(losses) == {"loss", "waveform", "stft", "mel"}
    assert float(losses["loss"]) == pytest.approx(float(losses["waveform"] + losses["stft"] + losses["mel"]), rel=1e-5)


# --- training --------------------------------------------------------------------------------
def _batches(start: int = 0):
    index = start
    while True:
        yield _audio(2, 4096, seed=index)
        index += 1


def _fast_config(steps: int):
    from autoencoder.train import CodecTrainConfig

    return CodecTrainConfig(steps=steps, lr=1e-3, batch_size=2, log_every=1, validate_every=2,
                            save_every=1, seed=0)


def test_train_codec_writes_last_and_resumes(tmp_path):
    from composer.train.codec import train_codec

    codec = tiny_codec()
    before = {k: v.clone() for k, v in codec.state_dict().items()}
    validation = [_audio(1, 4096, seed=100)]
    result = train_codec(codec, _batches(), out_dir=tmp_path, config=_fast_config(3),
                         validation=validation, progress=False)
    assert result["step"] == 3 and "mel_distance" in result and "si_sdr" in result
    assert not codec.training
    state = json.loads((tmp_path / "last" / "state.json").read_text())
    assert state["step"] == 3
    assert {p.name for p in (tmp_path / "last").iterdir()} >= {
        "model.safetensors", "optimizer.safetensors", "rng.safetensors", "state.json"}
    assert not (tmp_path / "last.tmp").exists()
    assert any(not torch.equal(before[k], v) for k, v in codec.state_dict().items())
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]

    resumed = tiny_codec()
    result = train_codec(resumed, _batches(), out_dir=tmp_path, config=_fast_config(5),
                         validation=validation, progress=False, resume=True)
    assert result["step"] == 5
    assert json.loads((tmp_path / "last" / "state.json").read_text())["step"] == 5
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4, 5]
    # nothing left to do: resuming a finished run takes no step
    assert train_codec(tiny_codec(), _batches(), out_dir=tmp_path, config=_fast_config(5),
                       progress=False, resume=True)["step"] == 5
    # a new run over a saved one, without --resume, is refused: the saved run is not thrown away
    with pytest.raises(InputError, match="holds a training run .saved at step 5.; pass --resume"):
        train_codec(tiny_codec(), _batches(), out_dir=tmp_path, config=_fast_config(5), progress=False)


def test_resumed_training_matches_an_uninterrupted_run(tmp_path):
    from composer.train.codec import train_codec

    straight = tiny_codec()
    train_codec(straight, _batches(), out_dir=tmp_path / "a", config=_fast_config(4), progress=False)

    with pytest.raises(KeyboardInterrupt):
        train_codec(tiny_codec(), killed_after(_batches(), 2), out_dir=tmp_path / "b", config=_fast_config(4),
                    progress=False)
    assert json.loads((tmp_path / "b" / "last" / "state.json").read_text())["step"] == 2
    resumed = tiny_codec(seed=7)  # whatever it starts with, resuming loads the saved state
    # the seeded stream from its start, as the commands give it: the resumed run draws the two
    # batches the killed run had used again, and trains on the third and fourth
    train_codec(resumed, _batches(), out_dir=tmp_path / "b", config=_fast_config(4), progress=False,
                resume=True)
    for key, value in straight.state_dict().items():
        assert torch.allclose(value, resumed.state_dict()[key], atol=1e-7), key


def test_latent_statistics_normalise_the_fitting_data():
    from autoencoder.train import fit_latent_statistics

    codec = tiny_codec()
    batches = [_audio(2, 8000, seed=s) * (1 + s) for s in range(3)]
    fit_latent_statistics(codec, batches)
    assert not torch.equal(codec.latent_std, torch.ones_like(codec.latent_std))
    with torch.no_grad():
        z = torch.cat([codec.encode(b).transpose(0, 1).reshape(codec.latent_dim, -1) for b in batches], dim=1)
        assert z.mean(dim=1).abs().max() < 1e-4
        assert (z.std(dim=1) - 1).abs().max() < 1e-3
        # decode undoes the normalisation: the round trip equals the raw one
        raw = codec.raw_decode(codec.raw_encode(batches[0]))
        assert torch.allclose(codec.decode(codec.encode(batches[0])), raw, atol=1e-5)


def test_a_resume_that_asks_for_another_recipe_is_refused(tmp_path):
    from composer.train.codec import train_codec
    from composer.train.loop import run_recipe

    recipe = run_recipe(lr=1e-3, seed=0, data=[tmp_path / "data"])
    train_codec(tiny_codec(), _batches(), out_dir=tmp_path, config=_fast_config(2), progress=False, recipe=recipe)
    log_rows = (tmp_path / "log.jsonl").read_text()
    with pytest.raises(InputError, match=r"trained with lr=0\.001, seed=0; this one asks lr=0\.01, seed=3"):
        train_codec(tiny_codec(), _batches(), out_dir=tmp_path, config=_fast_config(4), progress=False, resume=True,
                    recipe=run_recipe(lr=1e-2, seed=3, data=[tmp_path / "data"]))
    assert (tmp_path / "log.jsonl").read_text() == log_rows  # nothing trained
    # the same recipe continues it (the data folder named another way is the same folder)
    result = train_codec(tiny_codec(), _batches(), out_dir=tmp_path, config=_fast_config(4), progress=False,
                         resume=True, recipe=run_recipe(lr=1e-3, seed=0, data=[tmp_path / "x" / ".." / "data"]))
    assert result["step"] == 4


def test_a_resume_asking_for_other_steps_is_refused_and_an_older_run_without_them_resumes(tmp_path):
    """The learning rate's schedule spans the steps: 3 then --resume --steps 6 did not end as 6 straight."""
    import json

    from composer.train.codec import train_codec
    from composer.train.loop import check_run_folder, run_recipe

    train_codec(tiny_codec(), _batches(), out_dir=tmp_path, config=_fast_config(2), progress=False,
                recipe=run_recipe(lr=1e-3, steps=2))
    with pytest.raises(InputError, match=r"trained with steps=2; this one asks steps=4"):
        check_run_folder(tmp_path, resume=True, recipe=run_recipe(lr=1e-3, steps=4))
    state_path = next(tmp_path.glob("last*/state.json"))
    state = json.loads(state_path.read_text())
    del state["recipe"]["steps"]  # saved before recipes held the steps
    state_path.write_text(json.dumps(state))
    assert check_run_folder(tmp_path, resume=True, recipe=run_recipe(lr=1e-3, steps=4)) is not None
