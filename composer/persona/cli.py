"""`composer persona build|demo` and `composer daily`."""

from __future__ import annotations

import datetime as dt
import sys

import click

from composer.cli_support import SEED, echo_originality, handle_errors


@click.group("persona")
def persona_group():
    """Learn an artist from their archive (audio + metadata.jsonl with lyrics and any fields)."""


@persona_group.command("build")
@click.argument("archive", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help="The persona folder (rerun to resume).")
@click.option("--steps", type=int, default=300, show_default=True, help="Fine-tune steps of the diffusion model.")
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--lr", type=float, default=5e-5, show_default=True)
@click.option("--init", type=click.Path(), help="Diffusion model to fine-tune (default: the bundled one).")
@click.option("--codec", type=click.Path(), help="Codec (default: the bundled one).")
@click.option("--workers", type=int, default=1, show_default=True, help="Local processes for the analysis.")
@click.option("--ray", "ray_address", help="Analyse as Ray tasks: an address, 'auto', or 'local'.")
@click.option("--threads", type=int, help="torch threads for the fine-tune.")
@click.option("--max-minutes", type=float, help="Stop the fine-tune after this much wall time.")
@click.option("--device", default="auto", show_default=True,
              help="Where the fine-tune runs: auto (a CUDA GPU when PyTorch sees one, else the CPU), cpu, cuda or cuda:N.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--strength", type=float, help="How far daily renders go from the base model toward the fine-tune "
              "(0..1; default: the persona's, else 0.25, chosen by measurement: see README). Rerun on a built persona "
              "to change it.")
@click.option("--stop-after", type=click.Choice(["check", "analysis", "priors", "lyrics", "model"]), hidden=True)
@handle_errors
def persona_build_cmd(archive, output, steps, batch_size, lr, init, codec, workers, ray_address, threads,
                      max_minutes, device, seed, strength, stop_after):
    """Build the persona of ARCHIVE: check, analysis, priors, lyric model, fine-tune, PERSONA.md."""
    from composer.persona.build import build_persona

    info = build_persona(archive, output, steps=steps, init=init, codec=codec, workers=workers,
                         ray_address=ray_address, seed=seed, threads=threads, batch_size=batch_size, lr=lr,
                         max_minutes=max_minutes, command="composer " + " ".join(sys.argv[1:]),
                         stop_after=stop_after, strength=strength, device=device)
    if stop_after:
        click.echo(f"{output}: stopped after {stop_after} (rerun to finish)")
        return
    lyrics = ("no words in its lyrics: its daily songs are instrumental" if info["lyrics"].get("instrumental")
              else f"lyric perplexity {info['lyrics']['perplexity']} (base writer "
                   f"{info['lyrics']['base_writer_perplexity']})")
    click.echo(f"{output}: persona of {info['songs']} songs ({info['hours']:.2f} h), "
               f"{len(info.get('refused_files') or refused_files(info['refused']))} refused; {lyrics}; "
               f"see {output}/PERSONA.md")


def refused_files(problems: list[str]) -> list[str]:
    """The distinct files of the check's refusals ("FILE (metadata.jsonl line N): why", "FILE: why"), as
    `CheckReport.refused_files` counts them: a file refused for its licence and its consent is one
    refused file, not two."""
    import re

    files = (re.match(r"(.*?)(?: \(metadata\.jsonl line \d+\)| line \d+)?: ", p) for p in problems)
    return list(dict.fromkeys(m.group(1) if m else p for m, p in zip(files, problems)))


@persona_group.command("demo")
@click.option("-o", "--output", required=True, type=click.Path(), help="The demo archive folder to write.")
@click.option("--source", type=click.Path(), default="data/recorded", show_default=True,
              help="The recorded corpus (`composer corpus import`).")
@click.option("--songs", type=int, default=60, show_default=True)
@click.option("--seconds", type=float, default=45.0, show_default=True, help="Length of each song's excerpt.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@handle_errors
def persona_demo_cmd(output, source, songs, seconds, seed):
    """Write a DEMO archive (recorded excerpts + made-up lyrics and metadata) to try personas on."""
    from composer.persona.demo import make_demo_archive

    counts = make_demo_archive(source, output, songs=songs, seconds=seconds, seed=seed)
    click.echo(f"{output}: DEMO archive of {counts['songs']} songs from {counts['tracks']} recorded tracks")


def _date(value: str | None) -> dt.date:
    from composer.errors import InputError

    if value is None:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(f"--date {value!r}: expected YYYY-MM-DD") from None


def _pins(values: tuple[str, ...]) -> dict[str, str]:
    from composer.errors import InputError

    pins = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"--set {item!r}: expected field=value (e.g. mood=hopeful)")
        pins[key.strip()] = value.strip()
    return pins


@click.command("daily")
@click.option("--persona", "persona_dir", required=True, type=click.Path(), help="A persona folder.")
@click.option("--date", "date", help="The day (YYYY-MM-DD; default today): it seeds everything.")
@click.option("--days", type=int, default=1, show_default=True, help="Render this many days from --date.")
@click.option("--set", "pins", multiple=True, help="Pin a field: --set mood=hopeful (repeatable).")
@click.option("-o", "--output", required=True, type=click.Path(), help="Folder of dated song folders.")
@click.option("--voice", help="Voice for the lyrics (low, high).")
@click.option("--no-vocals", is_flag=True, help="Render without the sung vocal.")
@click.option("--no-evaluate", is_flag=True, help="Skip the built-in evaluation.")
@click.option("--strength", type=float, help="How far to go from the base model toward the persona's fine-tune "
              "(0..1; default: the persona's, see its PERSONA.md).")
@click.option("--from-guide", "from_guide", type=float,
              help="Start from the plan's FluidSynth guide noised to this strength (default 1: from noise, so "
                   "the persona's sound is its own; lower keeps more of the plan's notes).")
@click.option("--overwrite", is_flag=True, help="Render days already in OUTPUT again (your own files there are "
              "kept); without it they are skipped, and said so.")
@handle_errors
def daily_cmd(persona_dir, date, days, pins, output, voice, no_vocals, no_evaluate, strength, from_guide, overwrite):
    """The persona's song of the day in OUTPUT/YYYY-MM-DD (a run of days with --days; reruns resume)."""
    from composer.persona.daily import daily
    from composer.rendering.options import RenderOptions

    options = RenderOptions(evaluate=not no_evaluate, vocals=not no_vocals, from_guide=from_guide,
                            **({"voice": voice} if voice else {})).check()

    def done(folder, result):
        persona = result.report["persona"]
        click.echo(f"{folder}: \"{persona['title']}\" ({', '.join(f'{k}={v}' for k, v in persona['drawn'].items())})"
                   + (f"; instrumental: {persona['instrumental']}" if persona.get("instrumental") else ""))
        echo_originality(folder, result.report)

    def skipped(folder, report, differs):
        persona = report.get("persona") or {}
        said = (f"{folder}: already rendered (\"{persona.get('title', '?')}\", strength {persona.get('strength')}); "
                "kept as it is")
        if differs:  # a kept day that is not what was asked is said to be so, not passed off as it
            said += f", though this run asks for {'; '.join(differs)} (--overwrite renders it as asked)"
        else:
            said += " (--overwrite renders it again)"
        click.echo(said, err=True)

    failed = []

    def fail(folder, error):  # one line a day, as `composer batch` says a bad row; the other days go on
        failed.append(folder)
        click.echo(f"error: {error}", err=True)

    written = daily(persona_dir, output, start=_date(date), days=days, pinned=_pins(pins), options=options,
                    on_done=done, strength=strength, overwrite=overwrite, on_skip=skipped, on_fail=fail)
    if failed:  # bad input (a day's folder), as batch's exit code 2: rerunning will not mend it
        click.echo(f"{len(written)} of {days} days done, {len(failed)} bad input "
                   f"({', '.join(f.name for f in failed[:5])}{' ...' if len(failed) > 5 else ''})", err=True)
        sys.exit(2)
