"""The codec's adversarial training: the multi-scale STFT discriminator, its losses, and a run
that trains the decoder against it and resumes exactly (tiny codecs, CPU, seconds)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import killed_after, tiny_codec

from autoencoder.discriminator import (
    DiscriminatorConfig,
    MultiScaleSTFTDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
)
from composer.errors import InputError


def _tones_and_noise(batch: int, samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise (the real audio here), and a steady chord at the same level (what the bundled decoder makes of noise)."""
    generator = torch.Generator().manual_seed(seed)
    noise = 0.05 * torch.randn(batch, 1, samples, generator=generator)
    t = torch.arange(samples) / 8000.0
    chord = sum(torch.sin(2 * math.pi * f * t + k) for k, f in enumerate((440.0, 554.4, 659.3)))
    return noise, (0.05 * chord / math.sqrt(1.5)).expand(batch, 1, samples).contiguous()


def test_the_discriminator_judges_every_scale_and_learns_to_tell_lines_from_noise():
    torch.manual_seed(0)
    config = DiscriminatorConfig(filters=8, stft_sizes=(512, 256))
    discriminator = MultiScaleSTFTDiscriminator(config)
    noise, lines = _tones_and_noise(4, 4000, seed=1)
    judged = discriminator(noise)
    assert len(judged) == 2
    for (logits, features), n_fft in zip(judged, config.stft_sizes):
        frames = 4000 // (n_fft // 4) + 1
        assert logits.shape[:3] == (4, 1, frames)
        assert len(features) == len(config.dilations) + 2 and features[0].shape[1] == 8
    optimizer = torch.optim.AdamW(discriminator.parameters(), lr=1e-3, betas=(0.5, 0.9))
    with torch.no_grad():
        first = float(discriminator_loss(discriminator(noise), discriminator(lines)))
    assert first == pytest.approx(2.0, abs=0.1)  # a fresh one cannot tell them apart
    for step in range(40):
        noise, _ = _tones_and_noise(4, 4000, seed=10 + step)  # a new draw of the noise each step
        loss = discriminator_loss(discriminator(noise), discriminator(lines))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    noise, _ = _tones_and_noise(4, 4000, seed=999)
    with torch.no_grad():
        assert float(discriminator_loss(discriminator(noise), discriminator(lines))) < 1.0
        # and the decoder's loss says the lines are not noise
        assert float(generator_loss(discriminator(lines))) > float(generator_loss(discriminator(noise)))


def test_adversarial_losses():
    real = [(torch.full((2, 1, 3, 4), 2.0), [torch.ones(2, 4, 3, 4)])]
    fake = [(torch.full((2, 1, 3, 4), -2.0), [torch.zeros(2, 4, 3, 4)])]
    assert float(discriminator_loss(real, fake)) == 0.0  # both beyond the hinge
    assert float(discriminator_loss(fake, real)) == pytest.approx(6.0)
    assert float(generator_loss(fake)) == pytest.approx(3.0) and float(generator_loss(real)) == 0.0
    assert float(feature_matching_loss(real, real)) == 0.0
    assert float(feature_matching_loss(real, fake)) == pytest.approx(1.0)  # relative to the real features


def _batches():
    index = 0
    while True:
        noise, lines = _tones_and_noise(2, 4096, seed=index)
        yield noise + lines
        index += 1


def _config(steps: int):
    from autoencoder.train import CodecTrainConfig

    return CodecTrainConfig(steps=steps, lr=1e-3, batch_size=2, log_every=1, validate_every=100, save_every=1,
                            seed=0, adversarial_weight=0.5, adversarial_start=1, adversarial_window=0.3)


def test_adversarial_training_moves_the_decoder_and_resumes_exactly(tmp_path):
    from composer.train.codec import train_codec

    straight = tiny_codec()
    train_codec(straight, _batches(), out_dir=tmp_path / "a", config=_config(4), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert "adversarial" not in rows[0] and {"discriminator", "adversarial", "feature"} <= set(rows[1])
    saved = tmp_path / "a" / "last"
    assert (saved / "discriminator.safetensors").is_file() and (saved / "optimizer.discriminator.safetensors").is_file()

    with pytest.raises(KeyboardInterrupt):
        train_codec(tiny_codec(), killed_after(_batches(), 2), out_dir=tmp_path / "b", config=_config(4), progress=False)
    resumed = tiny_codec(seed=7)
    train_codec(resumed, _batches(), out_dir=tmp_path / "b", config=_config(4), progress=False, resume=True)
    for key, value in straight.state_dict().items():
        assert torch.allclose(value, resumed.state_dict()[key], atol=1e-6), key
    from safetensors.torch import load_file

    a = load_file(str(saved / "discriminator.safetensors"))
    b = load_file(str(tmp_path / "b" / "last" / "discriminator.safetensors"))
    for key, value in a.items():
        assert torch.allclose(value, b[key], atol=1e-6), key



def test_the_decoders_adversarial_loss_reaches_the_decoder_and_not_the_discriminator():
    from autoencoder.train import CodecTrainer

    trainer = CodecTrainer(tiny_codec(), _config(4))
    audio = next(_batches())
    output = trainer.codec.raw_decode(trainer.codec.raw_encode(audio))[..., : audio.shape[-1]]
    losses = {}
    before = {k: v.clone() for k, v in trainer.discriminator.state_dict().items()}
    loss = trainer._adversarial_step(output, audio, step=3, losses=losses)
    assert {"discriminator", "adversarial", "feature"} <= set(losses) and float(loss.detach()) > 0
    # the discriminator took its own step on the detached output
    assert any(not torch.equal(before[k], v) for k, v in trainer.discriminator.state_dict().items())
    trainer.optimizer.zero_grad()
    trainer.discriminator_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    decoder = trainer.codec.decoder_module
    assert sum(float(p.grad.abs().sum()) for p in decoder.parameters() if p.grad is not None) > 0
    assert all(p.grad is None for p in trainer.discriminator.parameters())
    # before adversarial_start the discriminator learns alone: no loss for the decoder
    assert float(trainer._adversarial_step(output.detach(), audio, step=0, losses={})) == 0.0


def test_the_command_refuses_an_adversarial_loss_it_cannot_apply(tmp_path):
    from composer.train.codec import train_codec_command

    common = dict(steps=1, num_filters=4, latent_dim=8, batch_size=2, window_seconds=0.5, lr=1e-3, seed=0,
                  resume=False, max_minutes=None, threads=None, command="test")
    with pytest.raises(InputError, match="--adversarial-weight trains the decoder"):
        train_codec_command([str(tmp_path)], str(tmp_path / "out"), init=str(tmp_path), freeze_decoder=True,
                            adversarial_weight=0.1, **common)
    with pytest.raises(InputError, match="--adversarial-weight -1: must be a finite number"):
        train_codec_command([str(tmp_path)], str(tmp_path / "out"), adversarial_weight=-1.0, **common)
    with pytest.raises(InputError, match="--discriminator-lr 0: must be a finite number > 0"):
        train_codec_command([str(tmp_path)], str(tmp_path / "out"), adversarial_weight=0.1, discriminator_lr=0.0,
                            **common)
    with pytest.raises(InputError, match="--adversarial-start -5"):
        train_codec_command([str(tmp_path)], str(tmp_path / "out"), adversarial_weight=0.1, adversarial_start=-5,
                            **common)


def test_a_run_saved_without_a_discriminator_is_not_resumed_with_one(tmp_path):
    from dataclasses import replace

    from composer.train.codec import train_codec

    plain = replace(_config(2), adversarial_weight=0.0)
    train_codec(tiny_codec(), _batches(), out_dir=tmp_path / "run", config=plain, progress=False)
    state = tmp_path / "run" / "last" / "state.json"
    saved = json.loads(state.read_text())
    saved.pop("recipe", None)  # a run saved before runs kept their recipe: only the files can tell
    state.write_text(json.dumps(saved))
    with pytest.raises(InputError, match="trained with other options.*discriminator.safetensors") as error:
        train_codec(tiny_codec(), _batches(), out_dir=tmp_path / "run", config=_config(4), progress=False,
                    resume=True)
    assert str(error.value).startswith(f"{tmp_path / 'run'}: its saved run (step 2)")


def test_options_of_a_loss_that_is_off_are_refused_in_one_line(tmp_path):
    from click.testing import CliRunner

    from composer.cli import main

    (tmp_path / "data").mkdir()
    for extra, said in ((["--feature-weight", "2"], "--feature-weight sets the adversarial loss, which is off"),
                        (["--discriminator-lr", "3e-4"], "--discriminator-lr sets the adversarial loss"),
                        (["--noise-weight", "0.5"], "--noise-weight teaches a noise path, and this run trains none")):
        result = CliRunner().invoke(main, ["train", "codec", "--data", str(tmp_path / "data"), "-o",
                                           str(tmp_path / "out"), *extra], catch_exceptions=False)
        lines = [line for line in result.output.strip().splitlines() if line.strip()]
        assert result.exit_code != 0 and len(lines) == 1 and said in lines[0], result.output
        assert not (tmp_path / "out").exists()
