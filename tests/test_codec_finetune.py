"""Decoder fine-tuning with a frozen encoder keeps the latent space (and diffusion models on it) valid."""

from __future__ import annotations

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
