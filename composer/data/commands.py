"""`composer data check|analyze` and `composer corpus build`."""

from __future__ import annotations

import sys

import click

from composer.cli_support import handle_errors


@click.group("data")
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
    from composer.data.datasets import check_dataset

    report = check_dataset(folder, allowed_licences=licences or None)
    click.echo(report.format())
    sys.exit(2 if report.refused else 0)


@data_group.command("analyze")
@click.argument("folder", type=click.Path())
@click.option("--overwrite", is_flag=True, help="Re-analyse files that already have labels.")
@handle_errors
def data_analyze_cmd(folder, overwrite):
    """Fill missing tempo, key, meter, chords and sections of archive audio by analysis."""
    from composer.data.labelling import analyze_dataset

    counts = analyze_dataset(folder, overwrite=overwrite)
    click.echo(f"{folder}: {counts['labelled']} labelled, {counts['skipped']} already labelled, "
               f"{counts['failed']} failed")
    sys.exit(0 if not counts["failed"] else 2)


@click.group("corpus")
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
    from composer.data.corpus import build_corpus

    records = build_corpus(output, minutes=minutes, seed=seed, workers=workers, soundfont=soundfont,
                           validation_soundfont=validation_soundfont, sources=tuple(sources))
    total = sum(r["duration"] for r in records) / 60
    click.echo(f"{output}: {len(records)} songs, {total:.1f} minutes")
