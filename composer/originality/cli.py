"""`composer originality`: was this audio in the training set? and `originality index`."""

from __future__ import annotations

import json
import sys

import click

from composer.cli_support import handle_errors


class _QueryByDefault(click.Group):
    """`composer originality AUDIO...` queries; `composer originality index ...` builds."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["query", *args]
        return super().parse_args(ctx, args)


@click.group("originality", cls=_QueryByDefault)
def originality_group():
    """Check audio against what a model learnt (its originality index).

    \b
    composer originality AUDIO... [--model DIR | --index DIR] [--json]
    composer originality index DATASET... -o INDEX [--heldout FOLDER]
    """


@originality_group.command("query", hidden=True)
@click.argument("audio", nargs=-1, required=True, type=click.Path())
@click.option("--model", "model_dir", type=click.Path(), help="Diffusion checkpoint whose index to use (default: bundled).")
@click.option("--index", "index_dir", type=click.Path(), help="An index folder (`composer originality index`).")
@click.option("--top", type=int, default=3, show_default=True, help="Nearest training files shown per query.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object a query.")
@handle_errors
def query_cmd(audio, model_dir, index_dir, top, as_json):
    """Which training files each AUDIO matches (start times, similarities).

    Exit status, for scripts: 0 when no file matches, 1 when one does, 2 when a file could not
    be checked (the others are still answered)."""
    from composer.errors import InputError
    from composer.models import bundled_model_path
    from composer.originality import load_index, query

    if model_dir and index_dir:
        raise InputError("originality: give --model or --index, not both")
    index = load_index(index_dir or model_dir or bundled_model_path())
    from composer.data.revocations import withdrawn_in_index

    answers = query(list(audio), index, top=max(1, top))
    threshold = index.thresholds["audio"]
    withdrawn = {w["file"]: w for w in withdrawn_in_index(index)}  # consent taken back since the index was made
    for answer in answers:
        for m in answer.get("matches", []):
            if m["file"] in withdrawn:
                m["withdrawn"] = {k: withdrawn[m["file"]][k] for k in ("date", "reason")}
        if as_json:
            click.echo(json.dumps(answer))
        elif "error" in answer:
            error = str(answer["error"]).removeprefix(f"{answer['query']}: ")  # the file named once
            click.echo(f"{answer['query']}: error: {error}", err=True)
        elif answer["matches"]:
            for m in answer["matches"]:
                gone = (f"; its consent was withdrawn on {m['withdrawn']['date']} ({m['withdrawn']['reason']})"
                        if "withdrawn" in m else "")
                click.echo(f"{answer['query']}: MATCH {m['file']} at {m['start']:g} s (query {m['query_start']:g} s), "
                           f"similarity {m['similarity']:.3f} > {threshold:.3f}{gone}")
        else:
            nearest = answer["nearest"]
            where = (f"nearest {nearest['file']} at {nearest['start']:g} s, similarity {nearest['similarity']:.3f}"
                     if nearest else "no audible windows")
            click.echo(f"{answer['query']}: not in the training set ({where}; threshold {threshold:.3f})")
    if any("error" in a for a in answers):
        sys.exit(2)  # the other files were answered
    if any(a.get("matches") for a in answers):
        sys.exit(1)  # as grep: a match found


@originality_group.command("index")
@click.argument("datasets", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help="Folder to write the index into.")
@click.option("--heldout", multiple=True, type=click.Path(),
              help="Held-out music (dataset folders) to calibrate the threshold on (repeatable); "
                   "the datasets' validation split is always used.")
@click.option("--overwrite", is_flag=True, help="Replace the index already in OUTPUT.")
@handle_errors
def index_cmd(datasets, output, heldout, overwrite):
    """Build the originality index of DATASET folders (audio + metadata.jsonl), without training."""
    from pathlib import Path

    from composer.errors import InputError
    from composer.originality import build_index
    from composer.originality.index import index_exists

    if Path(output).exists() and not Path(output).is_dir():  # said before the indexing, not after it
        raise InputError(f"-o {output}: a file; the index is a folder")
    if Path(output).is_dir() and index_exists(Path(output)) and not overwrite:
        raise InputError(f"-o {output}: already holds an originality index (pass --overwrite to replace it)")
    for folder in [*datasets, *heldout]:  # before the indexing, not after it
        if not (Path(folder) / "metadata.jsonl").is_file():
            raise InputError(f"{folder}: no such dataset folder (audio and metadata.jsonl)")
    index = build_index(list(datasets), heldout=list(heldout), command="composer " + " ".join(sys.argv[1:]))
    index.save(output)
    t = index.thresholds
    click.echo(f"{output}: indexed {len(index.files)} files ({index.meta['hours']:.2f} h, "
               f"{len(index.vectors)} windows, {len(index.melodies)} melodies); audio threshold {t['audio']:.3f} "
               f"({'calibrated on ' + str(t['heldout_excerpts']) + ' held-out excerpts' if t['calibrated'] else 'uncalibrated: no held-out music'})")
