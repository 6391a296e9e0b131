"""Decoder fine-tuning with a frozen encoder keeps the latent space (and diffusion models on it) valid."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import tiny_codec

from autoencoder.train import CodecTrainConfig
from composer.train.codec import train_codec


def test_frozen_encoder_keeps_latent_identity(tmp_path):
    codec = tiny_codec()
    before_latent, before_full = codec.latent_identity(), codec.identity()
    encoder_before = {k: v.clone() for k, v in codec.model.encoder.state_dict().items()}
    generator = torch.Generator().manual_seed(0)

    def batches():
        while True:
            yield torch.randn(2, 1, 2048, generator=generator) * 0.1

    config = CodecTrainConfig(steps=3, lr=1e-3, freeze_encoder=True, log_every=1, save_every=10, validate_every=10)
    train_codec(codec, batches(), out_dir=tmp_path, config=config, progress=False)
    assert all(torch.equal(v, codec.model.encoder.state_dict()[k]) for k, v in encoder_before.items())
    assert codec.latent_identity() == before_latent
    assert codec.identity() != before_full  # the decoder did learn


def test_unfrozen_training_moves_the_latent_space(tmp_path):
    codec = tiny_codec()
    before = codec.latent_identity()

    def batches():
        while True:
            yield torch.randn(2, 1, 2048) * 0.1

    config = CodecTrainConfig(steps=2, lr=1e-3, log_every=1, save_every=10, validate_every=10)
    train_codec(codec, batches(), out_dir=tmp_path, config=config, progress=False)
    assert codec.latent_identity() != before


def _encoder_finetune(anchor_weight):
    from autoencoder.train import CodecTrainer, anchor_drift

    codec = tiny_codec()
    decoder_before = {k: v.clone() for k, v in codec.decoder_module.state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    trainer = CodecTrainer(codec, CodecTrainConfig(steps=20, lr=1e-2, freeze_decoder=True, anchor_weight=anchor_weight))
    anchor = trainer.anchor if trainer.anchor is not None else copy.deepcopy(codec.encoder_module)
    losses = [trainer.step(torch.randn(2, 1, 2048, generator=generator) * 0.1, step) for step in range(20)]
    assert all(torch.equal(v, codec.decoder_module.state_dict()[k]) for k, v in decoder_before.items())
    probe = [torch.randn(2, 1, 2048, generator=torch.Generator().manual_seed(5)) * 0.1]
    return codec, losses, anchor_drift(codec, anchor, probe)


def test_frozen_decoder_trains_the_encoder_and_the_anchor_holds_it():
    free, free_losses, free_drift = _encoder_finetune(0.0)
    held, held_losses, held_drift = _encoder_finetune(100.0)
    assert "anchor" in held_losses[-1] and "anchor" not in free_losses[-1]
    assert free_drift > 0  # the encoder learnt
    assert held_drift < 0.5 * free_drift  # the anchor kept it near where it started
    assert free.latent_identity() != tiny_codec().latent_identity()


def test_encoder_finetune_options_are_checked(tmp_path):
    from composer.errors import InputError
    from composer.train.codec import train_codec_command

    common = dict(steps=1, num_filters=8, latent_dim=8, batch_size=1, window_seconds=0.5, lr=1e-3, seed=0,
                  resume=False, max_minutes=None, threads=None, command="test")
    with pytest.raises(InputError, match="--freeze-decoder needs --init"):
        train_codec_command([str(tmp_path)], str(tmp_path / "out"), freeze_decoder=True, **common)
    with pytest.raises(InputError, match="--anchor-weight"):
        train_codec_command([str(tmp_path)], str(tmp_path / "out"), anchor_weight=1.0, **common)
    for option, value in (("bass_onset_weight", -1.0), ("onset_weight", float("nan")), ("pitch_weight", -0.5)):
        with pytest.raises(InputError, match="--" + option.replace("_", "-") + " "):
            train_codec_command([str(tmp_path)], str(tmp_path / "out"), **{option: value}, **common)


def test_bass_onset_weight_reaches_the_training_loss_and_the_command_line():
    from click.testing import CliRunner

    from autoencoder.train import CodecTrainer
    from composer.cli import main

    generator = torch.Generator().manual_seed(0)
    batch = torch.randn(2, 1, 8192, generator=generator) * 0.1
    plain = CodecTrainer(tiny_codec(), CodecTrainConfig(steps=1, freeze_encoder=True)).step(batch, 0)
    with_bass = CodecTrainer(tiny_codec(), CodecTrainConfig(steps=1, freeze_encoder=True, bass_onset_weight=1.0)).step(batch, 0)
    assert "bass_onset" not in plain and "bass_onset" in with_bass
    assert with_bass["loss"] > plain["loss"]
    help_text = CliRunner().invoke(main, ["train", "codec", "--help"]).output
    assert "--bass-onset-weight" in help_text
