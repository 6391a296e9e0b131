"""The `composer` command line. Commands are thin: they parse options and call the library.

Exit codes: 0 success, 2 bad input (one line naming the input), 1 anything else.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from pathlib import Path

import click

# Before torch loads OpenMP: idle threads sleep instead of spinning (matters on 2 shared cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from composer import __version__  # noqa: E402

log = logging.getLogger("composer")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def handle_errors(func):
    """Turn bad-input exceptions into one line on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from composer.errors import bad_input_types

        try:
            return func(*args, **kwargs)
        except bad_input_types() as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except click.exceptions.Exit:
            raise
        except Exception as error:  # anything else is our bug or the machine's
            log.debug("unexpected error", exc_info=True)
            click.echo(f"error: {type(error).__name__}: {error} (run with -v for details)", err=True)
            if os.environ.get("COMPOSER_DEBUG"):
                raise
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="composer")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
def main(verbose: int) -> None:
    """Long-form song composer: plan a song, render it with latent diffusion, and more."""
    _setup_logging(verbose)


# --- plan and guide --------------------------------------------------------
@main.command("plan")
@click.argument("prompt")
@click.option("--lyrics", "lyrics_file", type=click.Path(), help="Lyrics text file ([verse], [chorus] tags or blank-line blocks).")
@click.option("--duration", type=float, help="Target length in seconds (met within one bar).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(), required=True, help="plan.json to write.")
@handle_errors
def plan_cmd(prompt, lyrics_file, duration, seed, output):
    """Write the song plan (form, tempo, key, chords, melody, lyrics) for PROMPT."""
    from composer.audio import write_text_atomic
    from composer.inputs import read_lyrics_file
    from structure.planner import plan

    lyrics_text = read_lyrics_file(lyrics_file) if lyrics_file else None
    song = plan(prompt, lyrics=lyrics_text, duration=duration, seed=seed)
    write_text_atomic(output, song.to_json())
    click.echo(f"{output}: {song.title!r}, {len(song.sections)} sections, {song.duration:.1f} s, "
               f"{song.tempo_bpm:g} BPM, {song.key}")


@main.command("guide")
@click.option("--plan", "plan_file", type=click.Path(), required=True)
@click.option("-o", "--output", type=click.Path(), required=True, help="guide.wav (or .flac) to write.")
@click.option("--soundfont", type=click.Path(), help="General MIDI soundfont (.sf2/.sf3).")
@click.option("--midi", type=click.Path(), help="Also write the arrangement as MIDI.")
@handle_errors
def guide_cmd(plan_file, output, soundfont, midi):
    """Render the plan's arrangement with FluidSynth (a guide track)."""
    from composer.audio import audio_write
    from composer.inputs import read_plan_file
    from structure.arrange import arrange
    from structure.synth import render_midi

    song = read_plan_file(plan_file)
    midi_data = arrange(song)
    audio, rate = render_midi(midi_data, soundfont=soundfont)
    audio_write(output, audio, rate)
    if midi:
        midi_data.write(midi)
    click.echo(f"{output}: {audio.shape[-1] / rate:.1f} s guide at {rate} Hz")


# --- rendering -------------------------------------------------------------------
def _render_options(steps, sampler, guidance, controls, crossfade_beats, repaint_seams, evaluate,
                    overlap_seconds=0.4):
    from composer.errors import InputError
    from composer.renderer import RenderOptions

    if not 0 < overlap_seconds <= 10:
        raise InputError(f"--overlap: {overlap_seconds:g} s is outside (0, 10]")
    options = RenderOptions(sampler=sampler, crossfade_beats=crossfade_beats, repaint_seams=repaint_seams,
                            evaluate=evaluate, overlap_seconds=overlap_seconds)
    if steps is not None:
        options.steps = steps
    if guidance is not None:
        options.guidance = _parse_guidance(guidance)
    if controls:
        options.control_groups = tuple(g.strip() for g in controls.split(",") if g.strip())
    if crossfade_beats < 0:
        raise InputError(f"--crossfade-beats: {crossfade_beats:g} must be >= 0")
    return options


def _int_list(text: str, option: str) -> tuple[int, ...]:
    from composer.errors import InputError

    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InputError(f"{option} {text!r}: expected comma-separated integers") from None


def _parse_guidance(text: str):
    """"2.5" or "tags=3,controls=1.5" (per condition group)."""
    from composer.errors import InputError

    try:
        if "=" not in text:
            return float(text)
        return {k.strip(): float(v) for k, v in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise InputError(f"--guidance {text!r}: expected a number or group=weight pairs") from None


def render_options(func):
    for option in reversed([
        click.option("--steps", type=int, help="Sampler steps (default 10; measured as good as 16 with the bundled models, see benchmarks/results/quality_steps10.json)."),
        click.option("--sampler", type=click.Choice(["multistep", "euler", "heun"]), default="multistep",
                     show_default=True),
        click.option("--guidance", help="Classifier-free guidance: a number, or group=weight pairs "
                                        "(tags, text, controls, rhythm, harmony, bass, melody, drums, form)."),
        click.option("--controls", help="Control groups the plan pins down, e.g. 'form,harmony' (default: all)."),
        click.option("--crossfade-beats", type=float, default=1.0, show_default=True),
        click.option("--overlap", "overlap_seconds", type=float, default=0.4, show_default=True,
                     help="Seconds each window shares with the one before it (outpainting context)."),
        click.option("--repaint-seams", is_flag=True, help="Re-render across section seams by inpainting."),
        click.option("--evaluate/--no-evaluate", default=True, show_default=True,
                     help="Measure the render against its plan into report.json."),
        click.option("--model", "model_dir", type=click.Path(), help="Diffusion checkpoint (default: bundled)."),
        click.option("--codec", "codec_dir", type=click.Path(), help="Codec checkpoint (default: bundled)."),
    ]):
        func = option(func)
    return func


@main.command("render")
@click.argument("prompt", required=False, default="")
@click.option("--plan", "plan_file", type=click.Path(), help="plan.json (instead of planning from PROMPT).")
@click.option("--lyrics", "lyrics_file", type=click.Path(), help="Lyrics text file.")
@click.option("--duration", type=float, help="Target length in seconds.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(), required=True, help="Output directory.")
@render_options
@handle_errors
def render_cmd(prompt, plan_file, lyrics_file, duration, seed, output, steps, sampler, guidance, controls,
               crossfade_beats, repaint_seams, evaluate, overlap_seconds, model_dir, codec_dir):
    """Render a whole song (audio, plan, MIDI, lead sheet, lyrics, report) into OUTPUT."""
    from composer.errors import InputError
    from composer.inputs import read_lyrics_file, read_plan_file
    from composer.renderer import render
    from structure.planner import plan

    options = _render_options(steps, sampler, guidance, controls, crossfade_beats, repaint_seams, evaluate,
                              overlap_seconds)
    if plan_file:
        song = read_plan_file(plan_file)
    elif prompt or lyrics_file:
        lyrics_text = read_lyrics_file(lyrics_file) if lyrics_file else None
        song = plan(prompt, lyrics=lyrics_text, duration=duration, seed=seed)
    else:
        raise InputError("render: give a PROMPT, --plan plan.json or --lyrics FILE")
    result = render(song, seed=seed, codec=codec_dir, model=model_dir, options=options)
    result.save(output)
    click.echo(f"{output}: {result.duration:.1f} s, {len(song.sections)} sections, "
               f"rendered in {sum(result.report['timings'].values()):.1f} s")


@main.command("restyle")
@click.argument("audio", type=click.Path())
@click.argument("prompt")
@click.option("--strength", type=float, default=0.6, show_default=True, help="0 keeps the audio, 1 re-renders fully.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(), required=True)
@render_options
@handle_errors
def restyle_cmd(audio, prompt, strength, seed, output, steps, sampler, guidance, controls, crossfade_beats,
                repaint_seams, evaluate, overlap_seconds, model_dir, codec_dir):
    """Re-render AUDIO in the style of PROMPT, keeping its tempo, harmony and form."""
    from composer.modes import restyle

    options = _render_options(steps, sampler, guidance, controls, crossfade_beats, repaint_seams, evaluate,
                              overlap_seconds)
    result = restyle(audio, prompt, strength=strength, seed=seed, codec=codec_dir, model=model_dir, options=options)
    result.save(output)
    click.echo(f"{output}: restyled {result.duration:.1f} s at strength {strength:g}")


@main.command("interpolate")
@click.argument("audio_a", type=click.Path())
@click.argument("audio_b", type=click.Path())
@click.option("--count", type=int, default=5, show_default=True, help="Songs from A (first) to B (last).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(), required=True)
@render_options
@handle_errors
def interpolate_cmd(audio_a, audio_b, count, seed, output, steps, sampler, guidance, controls, crossfade_beats,
                    repaint_seams, evaluate, overlap_seconds, model_dir, codec_dir):
    """Songs between AUDIO_A and AUDIO_B (noise slerp after inversion)."""
    from composer.modes import interpolate

    options = _render_options(steps, sampler, guidance, controls, crossfade_beats, repaint_seams, evaluate,
                              overlap_seconds)
    results = interpolate(audio_a, audio_b, count=count, seed=seed, codec=codec_dir, model=model_dir, options=options)
    for k, result in enumerate(results):
        result.save(Path(output) / f"{k:02d}")
    click.echo(f"{output}: {len(results)} interpolations of {results[0].duration:.1f} s")


@main.command("repaint")
@click.argument("render_dir", type=click.Path())
@click.option("--section", required=True, help="Name of the section to re-render (e.g. chorus1).")
@click.option("--seed", type=int, help="New seed (default: the render's seed + 1).")
@click.option("--model", "model_dir", type=click.Path(), help="Diffusion checkpoint (default: bundled).")
@click.option("--codec", "codec_dir", type=click.Path(), help="Codec checkpoint (default: bundled).")
@handle_errors
def repaint_cmd(render_dir, section, seed, model_dir, codec_dir):
    """Re-render one section of a render; every other sample stays bit-identical."""
    from composer.modes import repaint

    repaint(render_dir, section, seed=seed, codec=codec_dir, model=model_dir)
    click.echo(f"{render_dir}: repainted {section}")


@main.command("loop")
@click.argument("prompt")
@click.option("--bars", type=int, required=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(), required=True)
@render_options
@handle_errors
def loop_cmd(prompt, bars, seed, output, steps, sampler, guidance, controls, crossfade_beats, repaint_seams,
             evaluate, overlap_seconds, model_dir, codec_dir):
    """A loop of BARS bars whose end joins its start without a seam."""
    from composer.modes import loop

    options = _render_options(steps, sampler, guidance, controls, crossfade_beats, repaint_seams, evaluate,
                              overlap_seconds)
    result = loop(prompt, bars, seed=seed, codec=codec_dir, model=model_dir, options=options)
    result.save(output)
    click.echo(f"{output}: {bars}-bar loop, {result.duration:.2f} s (wrap seam ratio "
               f"{result.report['loop_seam']['ratio']:.2f})")


# --- batch -----------------------------------------------------------------------
@main.command("batch")
@click.argument("prompts", type=click.Path())
@click.option("-o", "--output", type=click.Path(), required=True,
              help="Output directory: one folder a row, and manifest.json.")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Songs rendered at once (worker processes; with --ray, Ray actors, 1 = one a cluster CPU).")
@click.option("--ray", "ray_address", help="Render on a Ray cluster: an address, 'auto', or 'local' (start one here).")
@click.option("--seed", "seed_base", type=int, default=0, show_default=True,
              help="Base seed: a row without a seed gets base + its line number.")
@render_options
@handle_errors
def batch_cmd(prompts, output, workers, ray_address, seed_base, steps, sampler, guidance, controls,
              crossfade_beats, repaint_seams, evaluate, overlap_seconds, model_dir, codec_dir):
    """Render one song a row of PROMPTS (JSONL or CSV) into OUTPUT/NAME; rerun to resume.

    Row fields: prompt, lyrics or lyrics_file, duration, seed, name, and any metadata
    field (genre, mood, tempo, key, ...). Exit code 0 only when every row rendered,
    1 when a render failed (rerun to retry), 2 when rows had bad input.
    """
    from composer.batch import run_batch

    options = _render_options(steps, sampler, guidance, controls, crossfade_beats, repaint_seams, evaluate,
                              overlap_seconds)
    result = run_batch(prompts, output, workers=workers, ray_address=ray_address, seed_base=seed_base,
                       codec=codec_dir, model=model_dir, options=options,
                       report=lambda message: click.echo(message, err=True))
    click.echo(result.table())
    click.echo(result.summary())
    sys.exit(result.exit_code)


# --- doctor ----------------------------------------------------------------
@main.command("doctor")
@click.option("--soundfont", type=click.Path(), help="Check this soundfont instead of the defaults.")
@handle_errors
def doctor_cmd(soundfont):
    """Check the machine: FluidSynth, soundfonts, ffmpeg, bundled models, torch threads."""
    from composer.doctor import run_checks

    problems = 0
    for check in run_checks(soundfont=soundfont):
        mark = "ok  " if check.ok else "MISSING"
        click.echo(f"[{mark}] {check.name}: {check.detail}")
        if not check.ok:
            problems += 1
            if check.fix:
                click.echo(f"         fix: {check.fix}")
    click.echo("all checks passed" if not problems else f"{problems} problem(s) found")
    sys.exit(0 if not problems else 1)


@main.group("data")
def data_group():
    """Check and label datasets (audio folders with metadata.jsonl)."""


@data_group.command("check")
@click.argument("folder", type=click.Path())
@click.option("--allow-licence", "licences", multiple=True,
              help="Allowed licence (repeatable); default: public-domain, cc0, cc-by, cc-by-sa, "
                   "own-work, generated.")
@handle_errors
def data_check_cmd(folder, licences):
    """Validate an archive: metadata, decoding, audio health, duplicates, licence and consent."""
    from composer.datasets import check_dataset

    report = check_dataset(folder, allowed_licences=licences or None)
    click.echo(report.format())
    sys.exit(2 if report.refused else 0)


@data_group.command("analyze")
@click.argument("folder", type=click.Path())
@click.option("--overwrite", is_flag=True, help="Re-analyse files that already have labels.")
@handle_errors
def data_analyze_cmd(folder, overwrite):
    """Fill missing tempo, key, meter, chords and sections of archive audio by analysis."""
    from composer.labelling import analyze_dataset

    counts = analyze_dataset(folder, overwrite=overwrite)
    click.echo(f"{folder}: {counts['labelled']} labelled, {counts['skipped']} already labelled, "
               f"{counts['failed']} failed")
    sys.exit(0 if not counts["failed"] else 2)


@main.group("corpus")
def corpus_group():
    """Build the training corpus from music that ships offline."""


@corpus_group.command("build")
@click.option("-o", "--output", required=True, type=click.Path())
@click.option("--minutes", type=float, required=True, help="About this many minutes of audio.")
@click.option("--soundfont", type=click.Path(), help="Training soundfont (default: fluid-soundfont-gm).")
@click.option("--validation-soundfont", type=click.Path(), help="Validation soundfont (default: MuseScore General).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True)
@click.option("--source", "sources", multiple=True, type=click.Choice(["generated", "folk", "chorales"]),
              default=("generated",), show_default=True,
              help="Material (repeatable; the minutes are shared equally): songs planned here, folk tunes "
                   "(Essen, O'Neill, Ryan's Mammoth) or Bach chorales from the music21 corpus.")
@handle_errors
def corpus_build_cmd(output, minutes, soundfont, validation_soundfont, seed, workers, sources):
    """Render songs planned here (forms, repeats, styles) or music21 folk tunes and chorales
    with FluidSynth, with exact labels."""
    from composer.corpus import build_corpus

    records = build_corpus(output, minutes=minutes, seed=seed, workers=workers, soundfont=soundfont,
                           validation_soundfont=validation_soundfont, sources=tuple(sources))
    total = sum(r["duration"] for r in records) / 60
    click.echo(f"{output}: {len(records)} songs, {total:.1f} minutes")


# --- training ----------------------------------------------------------------
@main.group("train")
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
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUTPUT/training/last.")
@click.option("--max-minutes", type=float, help="Stop after this much wall time.")
@click.option("--threads", type=int, help="torch threads (default: torch's choice).")
@click.option("--init", type=click.Path(), help="Start from this codec checkpoint.")
@click.option("--freeze-encoder", is_flag=True,
              help="Train only the decoder (with --init): the latent space, and diffusion models on it, stay valid.")
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
@handle_errors
def train_codec_cmd(data, output, steps, num_filters, latent_dim, batch_size, window_seconds, lr, seed,
                    resume, max_minutes, threads, init, freeze_encoder, latent_noise, stft_sizes, decoder,
                    decoder_dim, decoder_layers, encoder, encoder_dim, encoder_layers, pitch_weight,
                    decoder_fft):
    """Train the EnCodec-style codec (continuous latents) on the datasets."""
    from composer.training import train_codec_command

    metrics = train_codec_command(list(data), output, steps=steps, num_filters=num_filters,
                                  latent_dim=latent_dim, batch_size=batch_size, window_seconds=window_seconds,
                                  lr=lr, seed=seed, resume=resume, max_minutes=max_minutes, threads=threads,
                                  command="composer " + " ".join(sys.argv[1:]), init=init,
                                  freeze_encoder=freeze_encoder, latent_noise=latent_noise,
                                  stft_sizes=_int_list(stft_sizes, "--stft-sizes"), decoder=decoder,
                                  decoder_dim=decoder_dim, decoder_layers=decoder_layers, encoder=encoder,
                                  encoder_dim=encoder_dim, encoder_layers=encoder_layers,
                                  pitch_weight=pitch_weight, decoder_fft=decoder_fft)
    click.echo(f"{output}: codec trained ({json.dumps(metrics)})")


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
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUTPUT/training/last.")
@click.option("--max-minutes", type=float, help="Stop after this much wall time.")
@click.option("--threads", type=int, help="torch threads (default: torch's choice).")
@click.option("--objective", type=click.Choice(["rectified_flow", "v_diffusion"]), default="rectified_flow",
              show_default=True, help="Training objective of a new model (benchmarks/objective.py compares them).")
@handle_errors
def train_diffusion_cmd(data, codec_dir, output, init, steps, channels, blocks, batch_size, lr, seed, resume,
                        max_minutes, threads, objective):
    """Train the latent diffusion model (runs unchanged under torchrun for DDP)."""
    from composer.errors import InputError
    from composer.training import train_diffusion_command

    try:
        widths = tuple(int(c) for c in channels.split(","))
    except ValueError:
        raise InputError(f"--channels {channels!r}: expected comma-separated integers") from None
    metrics = train_diffusion_command(list(data), codec_dir, output, steps=steps, channels=widths, blocks=blocks,
                                      batch_size=batch_size, lr=lr, seed=seed, resume=resume,
                                      max_minutes=max_minutes, threads=threads, init=init, objective=objective,
                                      command="composer " + " ".join(sys.argv[1:]))
    click.echo(f"{output}: diffusion model trained ({json.dumps(metrics)})")


@main.command("evaluate")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@handle_errors
def evaluate_cmd(paths, as_json):
    """Measure renders against their plans (tempo, key, chords, boundaries, repetition, seams)."""
    from composer.evaluate import evaluate_paths

    click.echo(evaluate_paths(list(paths), as_json))


def run() -> None:  # for `python -m composer`
    main()


if __name__ == "__main__":
    main()
