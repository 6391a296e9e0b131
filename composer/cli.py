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

from composer import __version__

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


def run() -> None:  # for `python -m composer`
    main()


if __name__ == "__main__":
    main()
