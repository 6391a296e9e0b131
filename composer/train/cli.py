"""`composer train codec|diffusion`: the command-line side of training."""

from __future__ import annotations

import json
import sys

import click

from composer.cli_support import SEED, handle_errors, int_list
from composer.train.loop import check_training_options


# --- training ----------------------------------------------------------------
@click.group("train")
def train_group():
    """Train the codec or the diffusion model on datasets (audio folders)."""


@train_group.command("codec")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(), help="Dataset folder (repeatable).")
@click.option("-o", "--output", required=True, type=click.Path(), help="Checkpoint directory to write.")
@click.option("--steps", type=int, default=20000, show_default=True)
@click.option("--filters", "num_filters", type=int, default=16, show_default=True, help="EnCodec base width.")
@click.option("--latent-dim", type=int, default=64, show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--window", "window_seconds", type=float, default=1.5, show_default=True, help="Seconds per example.")
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUTPUT/training/last.")
@click.option("--max-minutes", type=float, help="Stop after this much wall time.")
@click.option("--threads", type=int, help="torch threads (default: torch's choice).")
@click.option("--init", type=click.Path(), help="Start from this codec checkpoint.")
@click.option("--freeze-encoder", is_flag=True,
              help="Train only the decoder (with --init): the latent space, and diffusion models on it, stay valid.")
@click.option("--freeze-decoder", is_flag=True,
              help="Train only the encoder (with --init): what the decoder makes of latents, so every render, "
                   "stays as it is; pair with --anchor-weight to keep the latent space.")
@click.option("--anchor-weight", type=float, default=0.0, show_default=True,
              help="Weight of the distance (in latent std units) from the --init encoder's latents: a fine-tuned "
                   "encoder stays in the latent space that diffusion models learnt (0: off).")
@click.option("--latent-noise", type=float, default=0.1, show_default=True,
              help="Noise on latents in training (x their std): a decoder robust to sampling errors.")
@click.option("--stft-sizes", default="512,1024,2048", show_default=True,
              help="STFT sizes of the spectral loss (4096 resolves pitch in the low mids).")
@click.option("--decoder", type=click.Choice(["encodec", "spectral"]),
              help="spectral: a fresh ConvNeXt + inverse-STFT decoder in place of EnCodec's "
                   "(default: the codec's own; EnCodec's for a new codec).")
@click.option("--decoder-dim", type=int, default=256, show_default=True, help="Spectral decoder width.")
@click.option("--decoder-layers", type=int, default=8, show_default=True, help="Spectral decoder ConvNeXt blocks.")
@click.option("--encoder", type=click.Choice(["encodec", "spectral"]),
              help="spectral: a fresh log-STFT + ConvNeXt encoder in place of EnCodec's (a new latent space).")
@click.option("--encoder-dim", type=int, default=256, show_default=True, help="Spectral encoder width.")
@click.option("--encoder-layers", type=int, default=4, show_default=True, help="Spectral encoder ConvNeXt blocks.")
@click.option("--decoder-fft", type=int,
              help="Spectral decoder frame (default 4 x hop = 1280); with --init, the decoder's head is resampled.")
@click.option("--pitch-weight", type=float, default=1.0, show_default=True,
              help="Weight of the semitone-band (C2..B6) loss that keeps the bass, chords and key.")
@click.option("--onset-weight", type=float, default=0.0, show_default=True,
              help="Weight of the spectral-flux loss that keeps notes starting on time (0: off).")
@click.option("--bass-onset-weight", type=float, default=0.0, show_default=True,
              help="Weight of the spectral-flux loss in semitone bands E1..D#4 that keeps bass notes on time (0: off).")
@click.option("--adversarial-weight", type=float, default=0.0, show_default=True,
              help="Weight of the decoder's loss against a multi-scale STFT discriminator (EnCodec's), which "
                   "teaches it noise where spectral distances teach steady lines (0: off).")
@click.option("--feature-weight", type=float, default=1.0, show_default=True,
              help="Weight of the discriminator's feature-matching loss (with --adversarial-weight).")
@click.option("--adversarial-start", type=int, default=200, show_default=True,
              help="Steps in which the discriminator learns alone before it teaches the decoder.")
@click.option("--discriminator-filters", type=int, default=16, show_default=True,
              help="Channels of every discriminator layer (EnCodec: 32).")
@click.option("--noise-bands", type=int, default=0, show_default=True,
              help="Give the spectral decoder a noise path of N mel-spaced bands (with --init: added nearly shut, "
                   "the latents unchanged): the share of each band sent with random phase, so noise can come "
                   "back as noise instead of steady lines (0: none added).")
@click.option("--noise-weight", type=float, default=1.0, show_default=True,
              help="Weight of the loss that teaches a noise path where the target is noise (its bands' spectral "
                   "flatness); with a decoder that has one.")
@click.option("--discriminator-lr", type=float, default=1e-4, show_default=True,
              help="The discriminator's learning rate (constant after a 200-step warm-up).")
@click.option("--balance", is_flag=True,
              help="Give every --data folder the same share of training windows (default: by hours).")
@click.option("--device", default="auto", show_default=True,
              help="Where to train: auto (a CUDA GPU when PyTorch sees one, else the CPU), cpu, cuda or cuda:N.")
@handle_errors
def train_codec_cmd(data, output, steps, num_filters, latent_dim, batch_size, window_seconds, lr, seed,
                    resume, max_minutes, threads, init, freeze_encoder, latent_noise, stft_sizes, decoder,
                    decoder_dim, decoder_layers, encoder, encoder_dim, encoder_layers, pitch_weight,
                    decoder_fft, balance, onset_weight, freeze_decoder, anchor_weight, device, bass_onset_weight,
                    adversarial_weight, feature_weight, adversarial_start, discriminator_filters, discriminator_lr, noise_bands, noise_weight):
    """Train the EnCodec-style codec (continuous latents) on the datasets."""
    from composer.errors import InputError
    from composer.train.codec import has_noise_path, train_codec_command

    check_training_options(output, resume, steps=steps, batch_size=batch_size, window_seconds=window_seconds, lr=lr,
                           max_minutes=max_minutes, threads=threads, latent_dim=latent_dim, filters=num_filters,
                           discriminator_lr=discriminator_lr)

    given = _given_options(click.get_current_context())
    if not adversarial_weight:
        idle = [name for name in ("feature_weight", "adversarial_start", "discriminator_filters", "discriminator_lr")
                if name in given]
        if idle:
            raise InputError(f"--{idle[0].replace('_', '-')} sets the adversarial loss, which is off: add "
                             "--adversarial-weight W (> 0), or leave it out")
    if "noise_weight" in given and not noise_bands and not (init and not freeze_decoder and has_noise_path(init)):
        raise InputError("--noise-weight teaches a noise path, and this run trains none: add --noise-bands N, or "
                         "--init a codec whose decoder has one (without --freeze-decoder), or leave it out")

    metrics = train_codec_command(list(data), output, steps=steps, num_filters=num_filters,
                                  latent_dim=latent_dim, batch_size=batch_size, window_seconds=window_seconds,
                                  lr=lr, seed=seed, resume=resume, max_minutes=max_minutes, threads=threads,
                                  command="composer " + " ".join(sys.argv[1:]), init=init,
                                  freeze_encoder=freeze_encoder, latent_noise=latent_noise,
                                  stft_sizes=int_list(stft_sizes, "--stft-sizes"), decoder=decoder,
                                  decoder_dim=decoder_dim, decoder_layers=decoder_layers, encoder=encoder,
                                  encoder_dim=encoder_dim, encoder_layers=encoder_layers,
                                  pitch_weight=pitch_weight, decoder_fft=decoder_fft, balance=balance,
                                  onset_weight=onset_weight, freeze_decoder=freeze_decoder,
                                  anchor_weight=anchor_weight, device=device, bass_onset_weight=bass_onset_weight,
                                  adversarial_weight=adversarial_weight, feature_weight=feature_weight,
                                  adversarial_start=adversarial_start, discriminator_filters=discriminator_filters,
                                  discriminator_lr=discriminator_lr, noise_bands=noise_bands,
                                  noise_weight=noise_weight)
    click.echo(f"{output}: codec trained ({json.dumps(metrics)}){_unfinished(metrics['step'], steps)}")


def _given_options(context: click.Context) -> set[str]:
    """The options typed on the command line (not left at their defaults)."""
    return {name for name in context.params
            if context.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}


@train_group.command("diffusion")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(), help="Dataset folder (repeatable).")
@click.option("--codec", "codec_dir", type=click.Path(), help="Codec checkpoint (default: the bundled one).")
@click.option("-o", "--output", required=True, type=click.Path(), help="Checkpoint directory to write.")
@click.option("--init", type=click.Path(), help="Fine-tune from this model (e.g. a persona from the bundled one).")
@click.option("--steps", type=int, default=20000, show_default=True)
@click.option("--channels", default="160,256,320", show_default=True, help="U-Net widths per level.")
@click.option("--blocks", type=int, default=1, show_default=True, help="Residual blocks per level.")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=4e-4, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUTPUT/training/last.")
@click.option("--max-minutes", type=float, help="Stop after this much wall time.")
@click.option("--threads", type=int, help="torch threads (default: torch's choice).")
@click.option("--objective", type=click.Choice(["rectified_flow", "v_diffusion"]), default="rectified_flow",
              show_default=True, help="Training objective of a new model (benchmarks/objective.py compares them).")
@click.option("--balance", is_flag=True,
              help="Give every --data folder the same share of training windows (default: by hours).")
@click.option("--analysed-groups", default=None,
              help="Control groups learnt from rows labelled by analysis (`composer data analyze`), comma-separated "
                   "(default: rhythm,harmony,form, what an analysis measures); the others are dropped for them.")
@click.option("--device", default="auto", show_default=True,
              help="Where to train: auto (a CUDA GPU when PyTorch sees one, else the CPU), cpu, cuda or cuda:N.")
@handle_errors
def train_diffusion_cmd(data, codec_dir, output, init, steps, channels, blocks, batch_size, lr, seed, resume,
                        max_minutes, threads, objective, balance, analysed_groups, device):
    """Train the latent diffusion model (runs unchanged under torchrun for DDP)."""
    from composer.errors import InputError
    from composer.train.diffusion import train_diffusion_command

    try:
        widths = tuple(int(c) for c in channels.split(","))
    except ValueError:
        raise InputError(f"--channels {channels!r}: expected comma-separated integers") from None
    check_training_options(output, resume, steps=steps, channels=widths, blocks=blocks, batch_size=batch_size, lr=lr,
                           max_minutes=max_minutes, threads=threads)
    groups = None
    if analysed_groups is not None:
        from composer.conditioning import ANALYSIS_GROUPS

        groups = tuple(g.strip() for g in analysed_groups.split(",") if g.strip())
        unknown = [g for g in groups if g not in ANALYSIS_GROUPS]
        if not groups:
            raise InputError(f"--analysed-groups {analysed_groups!r}: name at least one of {', '.join(ANALYSIS_GROUPS)}")
        if unknown:
            raise InputError(f"--analysed-groups {analysed_groups!r}: {', '.join(unknown)} is not a group an analysis "
                             f"measures ({', '.join(ANALYSIS_GROUPS)})")
    metrics = train_diffusion_command(list(data), codec_dir, output, steps=steps, channels=widths, blocks=blocks,
                                      batch_size=batch_size, lr=lr, seed=seed, resume=resume,
                                      max_minutes=max_minutes, threads=threads, init=init, objective=objective,
                                      balance=balance, command="composer " + " ".join(sys.argv[1:]),
                                      device=device, analysed_groups=groups)
    click.echo(f"{output}: diffusion model trained ({json.dumps(metrics)}){_unfinished(metrics['step'], steps)}")


def _unfinished(step: int, steps: int) -> str:
    """What a run stopped by its time budget says: how to go on."""
    return f"; stopped at step {step} of {steps}: the same command with --resume continues it" if step < steps else ""
