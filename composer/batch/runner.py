"""Batch rendering: one song a row of a JSONL or CSV file, resumable and crash-safe.

Phases (`run_batch`): read the rows (`read_rows`); take over the manifest of an
earlier run, so finished songs are skipped (`Manifest`, `_reconcile`); check
every other row by planning it (`_check_rows`), so bad input is reported by line
number before anything renders; render the plans with one of three runners
(in this process, worker processes, or Ray actors), each worker loading the
models once; move every finished song into place (`_finalize`).

Crash safety: a song renders into `OUT_DIR/.partial/NAME` and is moved to
`OUT_DIR/NAME` with one `os.replace` once `report.json` (written last) is there,
so a final name never holds a partial song. The manifest is rewritten
atomically at every change of state, and a lock on `OUT_DIR/.lock` keeps two
batches out of one folder, so a `kill -9` at any moment loses at most the
songs in flight; rerunning the same command redoes them. A row whose song
changed replaces the earlier song of this batch, which is kept in `OUT_DIR/.superseded/`
(`superseded_path`); a name taken by anything else
(a folder or file of the user's, the prompts file itself) fails its row and is
left as it is.

The rows and their fields are in `composer.batch.rows`, the manifest, lock and
progress in `composer.batch.manifest`, the workers in `composer.batch.workers`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from composer.batch.manifest import (
    MANIFEST_NAME,
    PARTIAL_DIR,
    SUPERSEDED_DIR,
    BatchResult,
    Entry,
    Manifest,
    _locked,
    _progress,
    _reporter,
)
from composer.batch.rows import Row, RowError, read_rows
from composer.batch.workers import (
    Job,
    OnStart,
    Outcome,
    _bad_input_types,
    _run_in_process,
    _run_processes,
    _run_ray,
    _Worker,
)
from composer.errors import InputError
from composer.rendering.folder import REPORT_NAME

log = logging.getLogger(__name__)


# --- the batch ------------------------------------------------------------------------------
def run_batch(prompts: str | Path, out_dir: str | Path, *, workers: int = 1, ray_address: str | None = None,
              seed_base: int = 0, codec=None, model=None, options=None, progress: bool = True,
              report: Callable[[str], None] | None = None) -> BatchResult:
    """Render every row of `prompts` into `out_dir/NAME`; resumable, see the module docstring.

    workers: songs at once (worker processes; 1 renders here; Ray actors with
    `ray_address`, where 1 means one actor a cluster CPU). ray_address: "auto", an
    address, or "local" (start Ray here). codec, model: checkpoint folders or loaded
    models (None: bundled). options: RenderOptions. report: receives one line for
    each bad or failed row ("line 3 (name): reason"); default: the log.
    """
    from composer.batch.workers import check_ray_address
    from composer.rendering.options import RenderOptions

    options = options or RenderOptions()
    options.check()
    check_ray_address(ray_address)
    if workers < 1:
        raise InputError(f"--workers: {workers} must be >= 1")
    say = _reporter(report, progress)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output {out_dir}: not a directory")
    rows, errors = read_rows(prompts, seed_base=seed_base)  # an unreadable prompts file: nothing made yet
    out_dir.mkdir(parents=True, exist_ok=True)
    with _locked(out_dir):
        codec_loaded, model_loaded = _load_models_checked(codec, model)
        settings = _settings(options, codec_loaded, model_loaded)
        partial_root = out_dir / PARTIAL_DIR
        shutil.rmtree(partial_root, ignore_errors=True)  # what a killed run left; we hold the lock

        manifest = Manifest(out_dir / MANIFEST_NAME, prompts=str(Path(prompts).resolve()))
        earlier = Manifest.load(manifest.path)
        entries, to_check = _reconcile(rows, earlier, settings, out_dir)
        clashes = [RowError(row.line, row.name, f"{out_dir / row.name} already exists and is not a song this batch "
                            "rendered (name the row otherwise, or move it)")
                   for row, _ in to_check if not _replaceable(out_dir / row.name, row.name in earlier)]
        clashing = {error.line for error in clashes}
        row_warnings: dict[str, list[str]] = {}
        jobs, check_errors = _check_rows([pair for pair in to_check if pair[0].line not in clashing],
                                         progress=progress, model=model_loaded, warnings=row_warnings)
        for row, _ in to_check:
            for message in row_warnings.get(row.name, []):
                log.warning("line %d (%s): %s", row.line, row.name, message)
        errors += clashes + check_errors
        for error in errors:
            entries[error.line] = Entry(error.line, error.name, state="failed", error=error.reason,
                                        error_kind=error.kind)
        for error in sorted(errors, key=lambda e: e.line):
            say(str(error))
        manifest.entries = sorted(entries.values(), key=lambda e: e.line)
        manifest.save()

        by_name = {row.name: entry for row, entry in to_check}
        rows_by_name = {row.name: row for row, _ in to_check}
        with _progress(manifest.entries, total=len(jobs), enabled=progress) as bar:
            def on_start(job: Job) -> None:
                entry = by_name[job.name]
                entry.state, entry.attempts, entry.error, entry.error_kind = "running", entry.attempts + 1, None, None
                manifest.save()

            runner = _runner(jobs, workers=workers, ray_address=ray_address, codec=codec, model=model,
                             loaded=(codec_loaded, model_loaded), options=options, partial_root=partial_root,
                             on_start=on_start)
            with closing(runner), _interrupted_left_pending(manifest):
                for outcome in runner:
                    entry = by_name[outcome.name]
                    entry.seconds = round(outcome.seconds, 3)
                    if outcome.ok:
                        outcome = _finalize(outcome, partial_root, out_dir, entry, rows_by_name.get(outcome.name),
                                            row_warnings.get(outcome.name))
                    if outcome.ok:
                        entry.state = "done"
                    else:
                        entry.state, entry.error, entry.error_kind = "failed", outcome.error, outcome.error_kind
                        say(str(RowError(entry.line, entry.name, outcome.error or "failed",
                                         outcome.error_kind or "render")))
                    manifest.save()
                    bar.song_finished(manifest.entries)
        shutil.rmtree(partial_root, ignore_errors=True)
    return BatchResult(entries=manifest.entries, out_dir=out_dir)


@contextmanager
def _interrupted_left_pending(manifest: Manifest):
    """On an interrupt (Ctrl-C, SIGTERM), the songs in flight are said to be pending again in the
    manifest: they are not running, and the next run renders them."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit):  # not a failure of ours: that says itself, unhidden by a save
        for entry in manifest.entries:
            if entry.state == "running":
                entry.state, entry.error, entry.error_kind = "pending", "interrupted before it finished", None
        manifest.save()
        raise


def _runner(jobs: list[Job], *, workers: int, ray_address: str | None, codec, model, loaded, options,
            partial_root: Path, on_start: OnStart) -> Iterator[Outcome]:
    option_fields = dataclasses.asdict(options)
    if ray_address:
        return _run_ray(jobs, address=ray_address, workers=workers, codec=codec, model=model,
                        options=option_fields, partial_root=partial_root, on_start=on_start)
    if workers > 1 and len(jobs) > 1:
        return _run_processes(jobs, workers=workers, codec=codec, model=model, options=option_fields,
                              partial_root=partial_root, on_start=on_start)
    return _run_in_process(jobs, worker=_Worker(*loaded, option_fields), partial_root=partial_root,
                           on_start=on_start)


def _load_models_checked(codec, model):
    """Load the models once here, so a wrong --model or --codec is one error, not one per row."""
    from composer.models import load_models

    try:
        return load_models(codec, model)
    except (FileNotFoundError, OSError) as error:
        raise InputError(f"--model/--codec: {error}") from None


def _settings(options, codec, model) -> str:
    """The render settings that decide a song's samples (part of every row's fingerprint)."""
    return json.dumps({"options": dataclasses.asdict(options), "codec": codec.identity(),
                       "model": model.identity()}, sort_keys=True, default=str)


def _reconcile(rows: list[Row], earlier: dict[str, Entry], settings: str,
               out_dir: Path) -> tuple[dict[int, Entry], list[tuple[Row, Entry]]]:
    """Entries by line for this run, and the rows still to render.

    A row is skipped when its folder holds its song: the folder's report.json carries the
    fingerprint of the row it was rendered from (`stamp_batch`), so a run killed while it
    re-rendered a changed row (the old song still in place, its entry "running" with the new
    fingerprint) renders it again, and a song whose manifest entry was lost (a row that was
    briefly bad, a deleted manifest) is still recognised.
    """
    entries: dict[int, Entry] = {}
    to_check: list[tuple[Row, Entry]] = []
    for row in rows:
        fingerprint = row.fingerprint(settings)
        old = earlier.get(row.name)
        same = old is not None and old.fingerprint == fingerprint
        held = folder_fingerprint(out_dir / row.name)
        if held == fingerprint or (held is None and same and old.state == "done"
                                   and (out_dir / row.name / REPORT_NAME).is_file()):
            # the folder holds this row's song (its own record says so; a folder from before the
            # record was kept is trusted when the manifest says it finished): nothing to do
            entries[row.line] = (dataclasses.replace(old, line=row.line, state="done", error=None, error_kind=None)
                                 if same else Entry(row.line, row.name, state="done", seed=row.seed,
                                                    fingerprint=fingerprint))
            continue
        entry = Entry(row.line, row.name, seed=row.seed, fingerprint=fingerprint,
                      attempts=old.attempts if same else 0)
        entries[row.line] = entry
        to_check.append((row, entry))
    return entries, to_check


class _RowWarnings(logging.Handler):
    """Collects the warnings planning one row gives; anything quieter goes on to the root
    logger as before."""

    def __init__(self):
        super().__init__(logging.NOTSET)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.messages.append(record.getMessage())
        else:
            logging.getLogger().handle(record)


@contextmanager
def _warnings_of_row():
    """The warnings of planning one row, each one (a genre the planner says once a process is
    said for every row that asks it), kept off the terminal: the caller says them by line."""
    from structure.notices import said_afresh

    handler = _RowWarnings()
    loggers = [logging.getLogger(name) for name in ("structure", "composer", "lyrics")]
    kept = [(logger, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        with said_afresh():
            yield handler.messages
    finally:
        for logger, propagate in kept:
            logger.removeHandler(handler)
            logger.propagate = propagate


def _check_rows(rows: list[tuple[Row, Entry]], *, progress: bool, model=None,
                warnings: dict[str, list[str]] | None = None) -> tuple[list[Job], list[RowError]]:
    """Plan every row up front: bad values (tempo 0, an unknown key) fail here, by line.
    warnings: filled with each planned row's warnings (an unknown genre played as pop), by name."""
    from tqdm import tqdm

    from composer import plan

    jobs, errors = [], []
    for row, _ in tqdm(rows, desc="checking rows", unit="row", disable=not progress or not rows, leave=False):
        said: list[str] = []
        try:
            with _warnings_of_row() as said:
                song = plan(row.prompt, lyrics=row.lyrics, duration=row.duration, seed=row.seed, model=model)
        except _bad_input_types() as error:  # its warnings explain it ("did you mean tempo?"): said with it
            errors.append(RowError(row.line, row.name, "; ".join([str(error), *said])))
            continue
        except Exception as error:  # a planner bug must not stop the other rows
            log.debug("planning line %d failed", row.line, exc_info=True)
            errors.append(RowError(row.line, row.name, f"{type(error).__name__}: {error}", kind="render"))
            continue
        if said and warnings is not None:
            warnings[row.name] = list(said)
        jobs.append(Job(name=row.name, plan_json=song.to_json(), seed=row.seed, voice=row.voice, vocals=row.vocals))
    return jobs, errors


def _replaceable(path: Path, ours: bool) -> bool:
    """Whether a song may be moved to `path`: nothing is there, or an earlier song of this batch
    (`ours`: the manifest names it, or the folder's report.json says a batch rendered it) whose
    folder is still a song folder. Anything else there is the user's, and a batch never deletes
    what it did not make."""
    if not path.exists() and not path.is_symlink():
        return True
    if not path.is_dir() or path.is_symlink() or not (path / REPORT_NAME).is_file():
        return False
    return ours or folder_fingerprint(path) is not None


def superseded_path(out_dir: Path, name: str) -> Path:
    """Where the earlier song of a changed row goes: `OUT/.superseded/NAME`, or NAME.2, NAME.3
    when earlier ones are there. An unnamed, unseeded row takes its name and seed from its line,
    so a line added above it makes it another song: the song it had is kept, not lost."""
    root = out_dir / SUPERSEDED_DIR
    path, number = root / name, 1
    while path.exists() or path.is_symlink():
        number += 1
        path = root / f"{name}.{number}"
    return path


BATCH_KEY = "batch"  # report.json's record of the batch row a song was rendered from


def folder_fingerprint(folder: Path) -> str | None:
    """The fingerprint of the batch row whose song `folder` holds (`stamp_batch`), or None."""
    try:
        report = json.loads((folder / REPORT_NAME).read_text(encoding="utf-8"))
        value = report.get(BATCH_KEY, {}).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def stamp_batch(folder: Path, entry: Entry, row: Row | None = None, warnings: list[str] | None = None) -> None:
    """Record in `folder`'s report.json the row it was rendered from (line and fingerprint,
    what a later run trusts to skip it, and the row as read: its prompt with its metadata
    fields, so the song says what asked for it after the prompts file is edited), before the
    folder is moved into place."""
    from composer.data.audio import write_text_atomic

    path = folder / REPORT_NAME
    report = json.loads(path.read_text(encoding="utf-8"))
    report[BATCH_KEY] = {"line": entry.line, "fingerprint": entry.fingerprint}
    if row is not None:
        report[BATCH_KEY]["row"] = {"prompt": row.prompt, "seed": row.seed, "duration": row.duration,
                                    "lyrics_given": row.lyrics is not None,
                                    **({"voice": row.voice} if row.voice is not None else {}),
                                    **({"vocals": row.vocals} if row.vocals is not None else {}),
                                    **({"warnings": list(warnings)} if warnings else {})}
    write_text_atomic(path, json.dumps(report, indent=2))


def _finalize(outcome: Outcome, partial_root: Path, out_dir: Path, entry: Entry, row: Row | None = None,
              warnings: list[str] | None = None) -> Outcome:
    """Move a complete song folder to its final name in one rename (an older one of this batch
    goes first; anything else there fails the row and is left as it is).

    Returns the outcome, failed when the folder is incomplete or cannot be moved.
    """
    partial, final = partial_root / outcome.name, out_dir / outcome.name
    try:
        if not (partial / REPORT_NAME).is_file():
            raise FileNotFoundError(f"{partial}: rendered but incomplete (no report.json)")
        stamp_batch(partial, entry, row, warnings)
        if not _replaceable(final, ours=True):
            raise FileExistsError(f"{final} appeared while the song rendered and is not a song folder; left as it is")
        if final.exists():  # the earlier song of a row that changed: kept, not deleted
            kept = superseded_path(out_dir, final.name)
            kept.parent.mkdir(parents=True, exist_ok=True)
            os.replace(final, kept)
            os.replace(partial, final)
            log.warning("%s: its row changed, so its song was rendered again; the earlier song is kept in %s",
                        final, kept)
        else:
            os.replace(partial, final)
    except FileExistsError as error:  # the user's: the row must be renamed (and its folder is not ours later)
        return dataclasses.replace(outcome, ok=False, error=str(error), error_kind="input")
    except (OSError, ValueError) as error:  # ValueError: a report.json that is not JSON
        return dataclasses.replace(outcome, ok=False, error=f"moving the song into place: {error}",
                                   error_kind="render")
    return outcome


__all__ = ["BatchResult", "Entry", "Job", "Manifest", "Outcome", "Row", "RowError", "read_rows", "run_batch"]
