"""The `composer` command line. Commands are thin: they parse options and call the library.

Exit codes: 0 success, 2 bad input (one line naming the input), 1 anything else.
"""

from __future__ import annotations

import functools
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
from composer.cli_support import (  # noqa: E402
    SEED,
    echo_key_change,
    echo_originality,
    handle_errors,
    writable_file,
)
from composer.voice.voices import DEFAULT_VOICE  # noqa: E402

log = logging.getLogger("composer")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


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
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(), required=True, help="plan.json to write.")
@handle_errors
def plan_cmd(prompt, lyrics_file, duration, seed, output):
    """Write the song plan (form, tempo, key, chords, melody, lyrics) for PROMPT."""
    from composer import plan
    from composer.data.audio import write_text_atomic
    from composer.data.inputs import naming_lyrics, read_lyrics_file
    from composer.errors import InputError

    if Path(output).is_dir():
        raise InputError(f"-o {output}: is a folder (give the plan's file name, e.g. {Path(output) / 'plan.json'})")
    writable_file(output, "-o", inputs={"--lyrics": lyrics_file}, suffixes=(".json",), what="a plan")
    lyrics_text = read_lyrics_file(lyrics_file) if lyrics_file else None
    with naming_lyrics(lyrics_file):
        song = plan(prompt, lyrics=lyrics_text, duration=duration, seed=seed)
    write_text_atomic(output, song.to_json())
    meter = f", {song.meter} (the tempo counts dotted quarters)" if song.compound else ""
    click.echo(f"{output}: {song.title!r}, {len(song.sections)} sections, {song.duration:.1f} s, "
               f"{song.tempo_bpm:g} BPM, {song.key}{meter}")


@main.command("guide")
@click.option("--plan", "plan_file", type=click.Path(), required=True)
@click.option("-o", "--output", type=click.Path(), required=True, help="guide.wav (or .flac) to write.")
@click.option("--soundfont", type=click.Path(), help="General MIDI soundfont (.sf2/.sf3).")
@click.option("--midi", type=click.Path(), help="Also write the arrangement as MIDI.")
@handle_errors
def guide_cmd(plan_file, output, soundfont, midi):
    """Render the plan's arrangement with FluidSynth (a guide track)."""
    from composer.data.audio import atomic_path, audio_write
    from composer.data.inputs import read_plan_file
    from composer.errors import InputError
    from structure.arrangement import arrange
    from structure.synth import render_midi

    song = read_plan_file(plan_file)
    writable_file(output, "-o", inputs={"--plan": plan_file, "--soundfont": soundfont},
                  suffixes=(".wav", ".flac", ".ogg"), what="the guide")
    if midi:
        writable_file(midi, "--midi", inputs={"--plan": plan_file, "--soundfont": soundfont},
                      suffixes=(".mid", ".midi"), what="the arrangement's MIDI")
        if Path(midi).resolve() == Path(output).resolve():
            raise InputError(f"--midi {midi}: is also -o; give the MIDI its own name")
    midi_data = arrange(song)
    audio, rate = render_midi(midi_data, soundfont=soundfont)
    audio_write(output, audio, rate)
    if midi:
        with atomic_path(midi) as tmp:
            midi_data.write(str(tmp))
    click.echo(f"{output}: {audio.shape[-1] / rate:.1f} s guide at {rate} Hz")


# --- rendering -------------------------------------------------------------------
RENDER_OPTIONS = {
    "steps": click.option("--steps", type=int, help="Sampler steps (default 8; measured as good as 10 with the bundled "
                                                    "models: benchmarks/results/quality_steps10_current.json against "
                                                    "quality_from_noise.json)."),
    "sampler": click.option("--sampler", type=click.Choice(["multistep", "euler", "heun"]), default="multistep",
                            show_default=True),
    "guidance": click.option("--guidance", help="Classifier-free guidance: a number, or group=weight pairs "
                                                "(tags, text, controls, rhythm, harmony, bass, melody, drums, form); "
                                                "default 2.5 for a render from its guide, else 2."),
    "controls": click.option("--controls", help="Control groups the plan pins down, e.g. 'form,harmony' "
                                                "(default: all)."),
    "crossfade_beats": click.option("--crossfade-beats", type=float, default=1.0, show_default=True,
                                    help="Length of the crossfade that joins a repeated section."),
    "overlap_seconds": click.option("--overlap", "overlap_seconds", type=float, default=0.4, show_default=True,
                                    help="Seconds each window shares with the one before it (outpainting context)."),
    "from_guide": click.option("--from-guide", "from_guide", type=float,
                               help="Start every window from the plan's FluidSynth guide noised to this strength "
                                    "(0..1; 1 starts from noise; default 0.7, or 1 for a prompt with "
                                    "source=recorded). Lower keeps more of the plan's notes."),
    "repaint_seams": click.option("--repaint-seams", is_flag=True, help="Re-render across section seams by inpainting."),
    "evaluate": click.option("--evaluate/--no-evaluate", default=True, show_default=True,
                             help="Measure the render against its plan into report.json."),
    "vocals": click.option("--vocals/--no-vocals", default=True, show_default=True,
                           help="Sing the lyrics (vocals.wav, accompaniment.wav; song.wav is their mix)."),
    "voice": click.option("--voice", default=DEFAULT_VOICE, show_default=True,
                          help="The singing voice: low (G2..F#4, the clearest) or high (D3..A#4; its words are "
                               "harder to follow on its high notes)."),
    "lead": click.option("--lead", type=click.Choice(["yield", "duck", "keep"]), default="yield", show_default=True,
                         help="How the lead instrument makes room for the voice: rests under it, dips, or stays."),
}
SONG_OPTIONS = tuple(RENDER_OPTIONS)


def render_options(*names: str):
    """Add the render options NAMES to a command; it receives them as one checked
    `options` (RenderOptions). A command offers only the options it honours."""

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            from composer.rendering.options import RenderOptions

            kwargs["options"] = RenderOptions.from_cli(**{name: kwargs.pop(name) for name in names})
            return func(*args, **kwargs)

        for name in reversed(names):
            wrapper = RENDER_OPTIONS[name](wrapper)
        wrapper = click.option("--codec", "codec_dir", type=click.Path(),
                               help="Codec checkpoint (default: bundled).")(wrapper)
        return click.option("--model", "model_dir", type=click.Path(),
                            help="Diffusion checkpoint (default: bundled).")(wrapper)

    return decorate


@main.command("render")
@click.argument("prompt", required=False, default="")
@click.option("--plan", "plan_file", type=click.Path(), help="plan.json (instead of planning from PROMPT).")
@click.option("--lyrics", "lyrics_file", type=click.Path(), help="Lyrics text file.")
@click.option("--duration", type=float, help="Target length in seconds.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(), required=True, help="Output directory.")
@click.option("--overwrite", is_flag=True, help="Replace the song already in OUTPUT.")
@handle_errors
@render_options(*SONG_OPTIONS)
def render_cmd(prompt, plan_file, lyrics_file, duration, seed, output, overwrite, options, model_dir, codec_dir):
    """Render a whole song (audio, plan, MIDI, lead sheet, lyrics, report) into OUTPUT."""
    from composer.rendering.folder import claim_output

    with claim_output(output, overwrite=overwrite):
        _render_into(output, prompt, plan_file, lyrics_file, duration, seed, options, model_dir, codec_dir)


def _render_into(output, prompt, plan_file, lyrics_file, duration, seed, options, model_dir, codec_dir):
    from composer import plan
    from composer.data.inputs import naming_lyrics, read_lyrics_file, read_plan_file
    from composer.errors import InputError
    from composer.rendering.renderer import render

    if plan_file:
        if duration is not None or lyrics_file:
            raise InputError("render: --duration and --lyrics apply when planning from a PROMPT; "
                             "a --plan has its own length and lyrics")
        if prompt:
            raise InputError(f"render: give a PROMPT ({prompt[:40]!r}) or --plan {plan_file}, not both; a plan "
                             "already says what the prompt would")
        song = read_plan_file(plan_file)
    elif prompt or lyrics_file:
        lyrics_text = read_lyrics_file(lyrics_file) if lyrics_file else None
        with naming_lyrics(lyrics_file):
            song = plan(prompt, lyrics=lyrics_text, duration=duration, seed=seed, model=model_dir)
    else:
        raise InputError("render: give a PROMPT, --plan plan.json or --lyrics FILE")
    result = render(song, seed=seed, codec=codec_dir, model=model_dir, options=options)
    result.save(output)
    click.echo(f"{output}: {result.duration:.1f} s, {len(song.sections)} sections, "
               f"rendered in {sum(v for k, v in result.report['timings'].items() if k != 'voice'):.1f} s")
    echo_originality(output, result.report)


@main.command("restyle")
@click.argument("audio", type=click.Path())
@click.argument("prompt")
@click.option("--strength", type=float, default=0.6, show_default=True, help="0 keeps the audio, 1 re-renders fully.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(), required=True)
@click.option("--overwrite", is_flag=True, help="Replace the song already in OUTPUT.")
@handle_errors
@render_options("steps", "sampler", "guidance", "controls", "overlap_seconds", "evaluate")
def restyle_cmd(audio, prompt, strength, seed, output, overwrite, options, model_dir, codec_dir):
    """Re-render AUDIO in the style of PROMPT, keeping its tempo, harmony and form (and the
    voice, when AUDIO is a sung render's song.wav or folder)."""
    from composer.rendering.folder import claim_output
    from composer.rendering.modes import restyle

    with claim_output(output, overwrite=overwrite):
        result = restyle(audio, prompt, strength=strength, seed=seed, codec=codec_dir, model=model_dir,
                         options=options)
        result.save(output)
    click.echo(f"{output}: restyled {result.duration:.1f} s at strength {strength:g}")
    echo_originality(output, result.report)
    echo_key_change(output, result.report)


@main.command("interpolate")
@click.argument("audio_a", type=click.Path())
@click.argument("audio_b", type=click.Path())
@click.option("--count", type=int, default=5, show_default=True, help="Songs from A (first) to B (last).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(), required=True)
@click.option("--overwrite", is_flag=True, help="Replace the song already in OUTPUT.")
@handle_errors
@render_options("steps", "sampler", "overlap_seconds")
def interpolate_cmd(audio_a, audio_b, count, seed, output, overwrite, options, model_dir, codec_dir):
    """Songs between AUDIO_A and AUDIO_B (noise slerp after inversion), in OUTPUT/00, 01, ..."""
    from composer.errors import InputError
    from composer.rendering.folder import RENDER_FILES, REPORT_NAME, check_output, lock_output
    from composer.rendering.modes import check_count, interpolations

    check_count(count)
    if Path(output).exists() and not Path(output).is_dir():
        check_output(output)
    made, duration, fresh = 0, 0.0, not Path(output).exists()
    try:
        # one set at a time in OUTPUT: a second run there is refused (the lock file, OUTPUT/.set.lock,
        # goes when the run ends; OUTPUT may be the folder the user is in, so nothing is written beside it)
        with lock_output(Path(output) / "set"):
            if any((Path(output) / name).exists() for name in RENDER_FILES):
                raise InputError(f"-o {output}: holds a song; interpolations go into a folder of their own (00, 01, ...)")
            for k in range(count):
                check_output(Path(output) / f"{k:02d}", overwrite=overwrite)
            for k, result in enumerate(interpolations(audio_a, audio_b, count=count, seed=seed, codec=codec_dir,
                                                      model=model_dir, options=options)):
                result.save(Path(output) / f"{k:02d}")  # saved as made: a set stopped midway keeps its first songs
                made, duration = k + 1, result.duration
            if overwrite:  # an earlier, longer run's songs past this one's last are not this set's: they go
                import re
                import shutil

                for stale in sorted(Path(output).iterdir()):
                    if (re.fullmatch(r"\d{2}", stale.name) and int(stale.name) >= made and stale.is_dir()
                            and not stale.is_symlink() and (stale / REPORT_NAME).is_file()
                            and {p.name for p in stale.iterdir()} <= RENDER_FILES):
                        shutil.rmtree(stale)
    finally:
        if fresh and Path(output).is_dir() and not any(Path(output).iterdir()):
            Path(output).rmdir()  # a run that made nothing leaves no folder of its own
    click.echo(f"{output}: {made} interpolations of {duration:.1f} s")


@main.command("repaint")
@click.argument("render_dir", type=click.Path())
@click.option("--section", required=True, help="Name of the section to re-render (e.g. chorus1).")
@click.option("--seed", type=SEED, help="New seed (default: the render's seed + 1).")
@click.option("--model", "model_dir", type=click.Path(), help="Diffusion checkpoint (default: bundled).")
@click.option("--codec", "codec_dir", type=click.Path(), help="Codec checkpoint (default: bundled).")
@handle_errors
def repaint_cmd(render_dir, section, seed, model_dir, codec_dir):
    """Re-render one section of a render; every other sample stays bit-identical."""
    from composer.rendering.modes import repaint

    repaint(render_dir, section, seed=seed, codec=codec_dir, model=model_dir)
    click.echo(f"{render_dir}: repainted {section}")


@main.command("loop")
@click.argument("prompt")
@click.option("--bars", type=int, required=True)
@click.option("--lyrics", "lyrics_file", type=click.Path(),
              help="Words to sing in the loop (a lyrics file: every line, in order, a phrase each).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(), required=True)
@click.option("--overwrite", is_flag=True, help="Replace the song already in OUTPUT.")
@handle_errors
@render_options("steps", "sampler", "guidance", "controls", "overlap_seconds", "vocals", "voice", "lead")
def loop_cmd(prompt, bars, lyrics_file, seed, output, overwrite, options, model_dir, codec_dir):
    """A loop of BARS bars whose end joins its start without a seam (sung with --lyrics)."""
    from composer.data.inputs import naming_lyrics, read_lyrics_file
    from composer.rendering.folder import claim_output
    from composer.rendering.modes import loop

    words = read_lyrics_file(lyrics_file) if lyrics_file else None
    with claim_output(output, overwrite=overwrite), naming_lyrics(lyrics_file):
        result = loop(prompt, bars, seed=seed, codec=codec_dir, model=model_dir, options=options, lyrics=words)
        result.save(output)
    click.echo(f"{output}: {bars}-bar loop, {result.duration:.2f} s (wrap seam ratio "
               f"{result.report['loop_seam']['ratio']:.2f})")
    echo_originality(output, result.report)


# --- batch -----------------------------------------------------------------------
@main.command("batch")
@click.argument("prompts", type=click.Path())
@click.option("-o", "--output", type=click.Path(), required=True,
              help="Output directory: one folder a row, and manifest.json.")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Songs rendered at once (worker processes; with --ray, Ray actors, 1 = one a cluster CPU).")
@click.option("--ray", "ray_address", help="Render on a Ray cluster: an address, 'auto', or 'local' (start one here).")
@click.option("--seed", "seed_base", type=SEED, default=0, show_default=True,
              help="Base seed: a row without a seed gets base + its line number.")
@handle_errors
@render_options(*SONG_OPTIONS)
def batch_cmd(prompts, output, workers, ray_address, seed_base, options, model_dir, codec_dir):
    """Render one song a row of PROMPTS (JSONL or CSV) into OUTPUT/NAME; rerun to resume.

    Row fields: prompt, lyrics or lyrics_file, duration, seed, name, voice (low or high), vocals (false:
    not sung), and any metadata field (genre, mood, tempo, key, ...). Exit code 0 only when every row
    rendered, 1 when a render failed (rerun to retry), 2 when rows had bad input.
    """
    import signal

    from composer.batch.runner import run_batch

    def terminated(signum, frame):  # a scheduler's SIGTERM ends the batch as Ctrl-C does: workers stopped,
        raise KeyboardInterrupt  # the songs in flight marked pending (it killed the process as it stood)

    before = signal.signal(signal.SIGTERM, terminated)
    try:
        result = run_batch(prompts, output, workers=workers, ray_address=ray_address, seed_base=seed_base,
                           codec=codec_dir, model=model_dir, options=options,
                           report=lambda message: click.echo(message, err=True))
    finally:
        signal.signal(signal.SIGTERM, before)
    click.echo(result.table())
    click.echo(result.summary())
    sys.exit(result.exit_code)


# --- doctor ----------------------------------------------------------------
@main.command("doctor")
@click.option("--soundfont", type=click.Path(), help="Check this soundfont instead of the defaults.")
@click.option("--model", "models", multiple=True, type=click.Path(),
              help="Also check the consent of what this checkpoint learnt (repeatable).")
@click.option("--data", "data", multiple=True, type=click.Path(),
              help="Also read the withdrawals of consent in this dataset folder (repeatable; the folders a "
                   "model's index names are always read).")
@handle_errors
def doctor_cmd(soundfont, models, data):
    """Check the machine: FluidSynth, soundfonts, ffmpeg, bundled models, torch threads."""
    from composer.doctor import run_checks
    from composer.errors import InputError

    missing = [d for d in data if not Path(d).is_dir()]
    if missing:
        raise InputError(f"--data {missing[0]}: no such dataset folder")
    problems = 0
    for check in run_checks(soundfont=soundfont, models=tuple(models), data=tuple(data)):
        mark = "ok  " if check.ok else "MISSING"
        click.echo(f"[{mark}] {check.name}: {check.detail}")
        if not check.ok:
            problems += 1
            if check.fix:
                click.echo(f"         fix: {check.fix}")
    click.echo("all checks passed" if not problems else f"{problems} problem(s) found")
    sys.exit(0 if not problems else 1)


@main.command("evaluate")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@handle_errors
def evaluate_cmd(paths, as_json):
    """Measure renders against their plans (tempo, key, chords, boundaries, repetition, seams).
    A path or render that cannot be measured is named on stderr (exit code 2); the others are."""
    from composer.evaluate.folders import evaluate_paths

    errors: list[str] = []
    click.echo(evaluate_paths(list(paths), as_json, errors))
    for error in errors:
        click.echo(f"error: {error}", err=True)
    if errors:
        sys.exit(2)


def _add_groups() -> None:
    from composer.data.commands import corpus_group, data_group
    from composer.originality.cli import originality_group
    from composer.persona.cli import daily_cmd, persona_group
    from composer.studio.cli import studio_cmd
    from composer.train.cli import train_group

    for group in (data_group, corpus_group, train_group, originality_group, persona_group, daily_cmd, studio_cmd):
        main.add_command(group)


_add_groups()


def run() -> None:  # for `python -m composer`
    main()


if __name__ == "__main__":
    main()
