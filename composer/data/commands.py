"""`composer data check|analyze` and `composer corpus build|import`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from composer.cli_support import SEED, handle_errors


@click.group("data")
def data_group():
    """Check and label datasets (audio folders with metadata.jsonl)."""


@data_group.command("check")
@click.argument("folder", type=click.Path())
@click.option("--allow-licence", "licences", multiple=True,
              help="Allowed licence (repeatable; names or SPDX ids); default: the licences that permit "
                   "derivative works (public-domain, CC0, CC-BY, CC-BY-SA, GPL, LGPL, MIT, BSD, ...), "
                   "own-work, generated.")
@handle_errors
def data_check_cmd(folder, licences):
    """Validate an archive: metadata, decoding, audio health, duplicates, licence and consent."""
    from composer.data.datasets import check_dataset
    from composer.errors import InputError

    if any(not licence.strip() for licence in licences):
        raise InputError("--allow-licence: an empty name (give a licence, as CC-BY-4.0 or own-work)")
    report = check_dataset(folder, allowed_licences=licences or None)
    click.echo(report.format())
    sys.exit(2 if report.refused else 0)


@data_group.command("revoke")
@click.argument("dataset", type=click.Path())
@click.argument("file_or_id")
@click.option("--reason", required=True, help="Why consent is withdrawn (kept with the record).")
@click.option("--model", "models", multiple=True, type=click.Path(),
              help="Also say whether this checkpoint learnt the file (repeatable; the bundled model is always checked).")
@handle_errors
def data_revoke_cmd(dataset, file_or_id, reason, models):
    """Withdraw consent for one file of DATASET: training refuses it from now on, and models
    that learnt it are named (here, by `composer doctor` and by `composer originality`)."""
    from composer.data.revocations import revoke, withdrawn_in_index
    from composer.models import bundled_model_path
    from composer.originality import load_index
    from composer.originality.index import index_exists

    record = revoke(dataset, file_or_id, reason=reason)
    click.echo(f"{dataset}: {record.file_name}: {record.describe()}; training will refuse it")
    for folder in [bundled_model_path(), *map(Path, models)]:
        if not index_exists(folder):
            if folder != bundled_model_path():
                click.echo(f"{folder}: no originality index; cannot tell whether it learnt {record.file_name}")
            continue
        hits = [w for w in withdrawn_in_index(load_index(folder), search_paths=[dataset])
                if w["file"] == record.file_name or Path(w["file"]).name == Path(record.file_name).name]
        if hits:
            click.echo(f"{folder}: was trained on {record.file_name}; retrain it without the file "
                       f"(`composer doctor --data {dataset}` lists it until then)")
            if folder != bundled_model_path():  # the user named this folder: its card says so too
                mark_model_card(folder, dataset, record)


def mark_model_card(folder: Path, dataset: str, record) -> None:
    """Add the withdrawal to a model card's "Consent withdrawn since training" section."""
    from composer.data.audio import write_text_atomic

    card = folder / "MODEL_CARD.md"
    text = card.read_text(encoding="utf-8") if card.is_file() else f"# {folder.name}\n"
    heading = "## Consent withdrawn since training"
    line = f"- {dataset}: {record.file_name}: {record.describe()}"
    if line in text:
        return
    if heading not in text:
        text = text.rstrip("\n") + f"\n\n{heading}\n\nThis model learnt files whose consent was withdrawn " \
                                    f"after it was trained; retrain it without them.\n\n"
    write_text_atomic(card, text.rstrip("\n") + "\n" + line + "\n")


@data_group.command("analyze")
@click.argument("folder", type=click.Path())
@click.option("--overwrite", is_flag=True, help="Re-analyse files that already have labels.")
@click.option("--workers", type=int, default=1, show_default=True, help="Analyse in this many local processes.")
@click.option("--ray", "ray_address", help="Analyse as Ray tasks: an address, 'auto', or 'local'.")
@handle_errors
def data_analyze_cmd(folder, overwrite, workers, ray_address):
    """Fill missing tempo, key, meter, chords and sections of archive audio by analysis."""
    from composer.data.labelling import analyze_dataset

    counts = analyze_dataset(folder, overwrite=overwrite, workers=workers, ray_address=ray_address)
    cut = f", {counts['cut']} long tracks cut into {counts['items']} items" if counts["cut"] else ""
    refused = f", {counts['refused']} refused by `composer data check` (not read)" if counts["refused"] else ""
    click.echo(f"{folder}: {counts['labelled']} labelled, {counts['skipped']} already labelled, "
               f"{counts['failed']} failed{refused}{cut}; {counts['confident_share']:.0%} of labelled files analysed "
               f"with confidence (the others train the codec only)")
    if counts["refused"] and not (counts["labelled"] or counts["skipped"] or counts["failed"]):
        click.echo(f"error: {folder}: every file was refused by `composer data check`; nothing analysed", err=True)
        sys.exit(2)
    sys.exit(0 if not counts["failed"] else 2)


@click.group("corpus")
def corpus_group():
    """Build the training corpus from music that ships offline."""


@corpus_group.command("build")
@click.option("-o", "--output", required=True, type=click.Path())
@click.option("--minutes", type=float, required=True, help="About this many minutes of audio.")
@click.option("--soundfont", type=click.Path(), help="Training soundfont (default: fluid-soundfont-gm).")
@click.option("--validation-soundfont", type=click.Path(), help="Validation soundfont (default: MuseScore General).")
@click.option("--seed", type=SEED, default=0, show_default=True)
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


@corpus_group.command("import")
@click.option("-o", "--output", required=True, type=click.Path(), help="The dataset folder to write (or finish).")
@click.option("--package", "packages", multiple=True,
              help="A Debian music package (repeatable); default: all of the free music packages that are "
                   "installed, unless folders are given.")
@click.argument("folders", nargs=-1, type=click.Path(exists=True, file_okay=False))
@click.option("--licence", help="The licence of the folders' files (a name or SPDX id; needed with folders).")
@click.option("--consent", help="The folders' consent: opt-in, or licence-grant (needed with folders).")
@click.option("--holdout", help="Packages or folders (comma-separated) held out whole as the validation split; "
                                "default: nexuiz-music,singularity-music.")
@handle_errors
def corpus_import_cmd(output, packages, folders, licence, consent, holdout):
    """Import recorded music (Debian music packages, or folders) as a dataset with licence and
    consent per file."""
    from composer.data.recorded import import_recorded

    summary = import_recorded(output, packages=packages or None, folders=folders, licence=licence,
                              consent=consent, holdout=[h.strip() for h in holdout.split(",") if h.strip()]
                              if holdout is not None else None)
    click.echo(summary.format())
    if summary.missing_packages and (packages or not summary.rows):  # asked for by name, or nothing to import
        click.echo(f"error: not installed: {', '.join(summary.missing_packages)} (`make recorded-music` installs "
                   "the nine packages, or `sudo apt-get install PACKAGE`)", err=True)
        sys.exit(2)
    sys.exit(2 if summary.failed else 0)
