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
songs in flight; rerunning the same command redoes them.

Row fields: `prompt` (text), `lyrics` (text) or `lyrics_file` (relative to the
PROMPTS file), `duration` (seconds), `seed` (default: --seed base + line number),
`name` (output folder; default `row{line:04d}`). Every other field is metadata
and joins the prompt as `field=value` (genre, mood, tempo, key, persona fields).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import os
import re
import shlex
import shutil
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from composer.errors import InputError

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
PARTIAL_DIR = ".partial"  # songs being rendered; never a final name
TRASH_DIR = ".trash"  # inside PARTIAL_DIR: an old song folder on its way out
LOCK_NAME = ".lock"
ROW_FIELDS = ("prompt", "lyrics", "lyrics_file", "duration", "seed", "name")
STATES = ("pending", "running", "done", "failed")
MAX_NAME_LENGTH = 200
_FIELD_NAME = re.compile(r"^[A-Za-z_][\w\-]*$")


# --- rows ---------------------------------------------------------------------------
@dataclass
class Row:
    """One song of the batch, as read from its line of the PROMPTS file."""

    line: int
    name: str
    prompt: str  # free text and metadata as `field=value` tokens
    lyrics: str | None
    duration: float | None  # seconds
    seed: int

    def fingerprint(self, settings: str) -> str:
        """Hash of everything that decides the song, so an edited row renders again."""
        text = json.dumps([self.prompt, self.lyrics, self.duration, self.seed, settings])
        return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass
class RowError:
    """A row that cannot render: its line, its name when known, and why."""

    line: int
    name: str | None
    reason: str
    kind: str = "input"  # "input" (the row is wrong) or "render" (our bug or the machine's)

    def __str__(self) -> str:
        return f"line {self.line}{f' ({self.name})' if self.name else ''}: {self.reason}"


def read_rows(path: str | Path, *, seed_base: int = 0) -> tuple[list[Row], list[RowError]]:
    """Rows of a JSONL or CSV file, and the errors of the rows that cannot be read.

    The format follows the suffix (.csv; .jsonl, .ndjson, .json), else the first
    character. Lines are numbered from 1 as in an editor; a CSV row is numbered by
    the line it starts on. Names are checked here (no `..`, `/`, `\\`, duplicates).
    """
    path = Path(path)
    records = list(_records(path, _read_prompts_text(path)))
    if not records:
        raise InputError(f"prompts {path}: no rows")
    rows: list[Row] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for line, record in records:
        if isinstance(record, RowError):
            errors.append(record)
            continue
        try:
            row = _row(line, record, base_dir=path.parent, seed_base=seed_base)
        except InputError as error:
            errors.append(RowError(line, _valid_name_or_none(record.get("name", f"row{line:04d}")), str(error)))
            continue
        key = row.name.casefold()  # case-insensitive file systems would merge them
        if key in seen:
            errors.append(RowError(line, row.name, f"name {row.name!r} is already used by line {seen[key]}"))
            continue
        seen[key] = line
        rows.append(row)
    return rows, errors


def _read_prompts_text(path: Path) -> str:
    if not path.is_file():
        raise InputError(f"prompts {path}: no such file")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"prompts {path}: not UTF-8 text") from None


def _records(path: Path, text: str) -> Iterator[tuple[int, dict | RowError]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _csv_records(text)
    if suffix in (".jsonl", ".ndjson", ".json") or text.lstrip()[:1] in ("{", "["):
        if text.lstrip()[:1] == "[":
            raise InputError(f"prompts {path}: a JSON array; expected JSONL (one JSON object a line)")
        return _jsonl_records(text)
    return _csv_records(text)


def _jsonl_records(text: str) -> Iterator[tuple[int, dict | RowError]]:
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as error:
            yield line, RowError(line, None, f"malformed JSON: {error.msg} at column {error.colno}")
            continue
        if not isinstance(record, dict):
            yield line, RowError(line, None, f"expected a JSON object, got {type(record).__name__}")
            continue
        yield line, record


def _csv_records(text: str) -> Iterator[tuple[int, dict | RowError]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    next_line = 1
    while True:
        line = next_line
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise InputError(f"prompts CSV line {reader.line_num}: {error}") from None
        next_line = reader.line_num + 1
        if not any(cell.strip() for cell in cells):
            continue
        if header is None:
            header = [cell.strip() for cell in cells]
            if "" in header or len(set(header)) != len(header):
                raise InputError(f"prompts CSV line {line}: header needs distinct, non-empty column names")
            continue
        if len(cells) > len(header):
            yield line, RowError(line, None, f"{len(cells)} cells but the header has {len(header)} columns")
            continue
        yield line, {name: cell for name, cell in zip(header, cells) if cell.strip()}


def _row(line: int, record: dict, *, base_dir: Path, seed_base: int) -> Row:
    """A checked Row from one record; InputError names the field."""
    record = {key.strip() if isinstance(key, str) else key: value for key, value in record.items()
              if value is not None and value != ""}
    name = _row_name(record.get("name", f"row{line:04d}"))
    prompt = record.get("prompt", "")
    if not isinstance(prompt, str):
        raise InputError(f"prompt: expected text, got {type(prompt).__name__}")
    tokens = [prompt.strip()] if prompt.strip() else []
    for key, value in record.items():
        if key not in ROW_FIELDS:
            tokens.append(_metadata_token(key, value))
    if "lyrics" in record and "lyrics_file" in record:
        raise InputError("give lyrics or lyrics_file, not both")
    lyrics_text = record.get("lyrics")
    if lyrics_text is not None and not isinstance(lyrics_text, str):
        raise InputError(f"lyrics: expected text, got {type(lyrics_text).__name__}")
    if "lyrics_file" in record:
        from composer.inputs import read_lyrics_file

        lyrics_path = Path(str(record["lyrics_file"]))
        lyrics_text = read_lyrics_file(lyrics_path if lyrics_path.is_absolute() else base_dir / lyrics_path)
    if not tokens and not lyrics_text:
        raise InputError("no prompt, metadata fields or lyrics")
    seed = _row_seed(record["seed"]) if "seed" in record else seed_base + line
    duration = _row_duration(record["duration"]) if "duration" in record else None
    return Row(line=line, name=name, prompt=" ".join(tokens), lyrics=lyrics_text, duration=duration, seed=seed)


def _row_name(name: object) -> str:
    """The output folder name: one plain path component, never hidden, never `..`."""
    if not isinstance(name, str):
        raise InputError(f"name: expected text, got {type(name).__name__}")
    if not name.strip():
        raise InputError("name: empty")
    problem = None
    if ".." in name:
        problem = "contains '..'"
    elif "/" in name or "\\" in name:
        problem = "contains a path separator"
    elif name != name.strip() or any(ord(ch) < 32 for ch in name):
        problem = "has surrounding spaces or control characters"
    elif name.startswith("."):
        problem = "starts with '.' (reserved for the batch's own files)"
    elif name in (MANIFEST_NAME, LOCK_NAME) or len(name) > MAX_NAME_LENGTH:
        problem = "is reserved or too long"
    if problem:
        raise InputError(f"name {name!r} {problem}")
    return name


def _valid_name_or_none(name: object) -> str | None:
    try:
        return _row_name(name)
    except InputError:
        return None


def _metadata_token(key: object, value: object) -> str:
    if not isinstance(key, str) or not _FIELD_NAME.match(key):
        raise InputError(f"field {key!r}: not a valid field name (letters, digits, _ and -)")
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float, str)):
        text = str(value).strip()
    elif isinstance(value, list) and all(isinstance(v, (int, float, str)) for v in value):
        text = ", ".join(str(v).strip() for v in value)
    else:
        raise InputError(f"field {key}: expected text, a number or a list of them, got {type(value).__name__}")
    return f"{key}={shlex.quote(text)}"


def _row_seed(value: object) -> int:
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        seed = int(value)
    except (TypeError, ValueError):
        raise InputError(f"seed: expected a whole number, got {value!r}") from None
    if not 0 <= seed < 2**63:
        raise InputError(f"seed: {seed} is outside 0..2^63-1")
    return seed


def _row_duration(value: object) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(str(value).strip().removesuffix("s")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise InputError(f"duration: expected seconds, got {value!r}") from None


# --- the manifest ---------------------------------------------------------------------
@dataclass
class Entry:
    """The manifest's record of one row."""

    line: int
    name: str | None
    state: str = "pending"  # pending, running, done, failed
    error: str | None = None
    error_kind: str | None = None  # "input" or "render" when failed
    attempts: int = 0
    seconds: float | None = None  # render time of the last attempt
    seed: int | None = None
    fingerprint: str | None = None


@dataclass
class Manifest:
    """`OUT_DIR/manifest.json`: every row's state, rewritten atomically at each change."""

    path: Path
    prompts: str
    entries: list[Entry] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> dict[str, Entry]:
        """Entries of an earlier run by name (empty when there was none)."""
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            known = {f.name for f in dataclasses.fields(Entry)}
            entries = [Entry(**{k: v for k, v in row.items() if k in known}) for row in data["rows"]]
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("%s: unreadable (%s); rendering every row again", path, error)
            return {}
        # a bad row's entry may carry the name of a good row (a duplicate): never take it over
        return {entry.name: entry for entry in entries if entry.name and entry.error_kind != "input"}

    def save(self) -> None:
        from composer.audio import write_text_atomic

        counts = {state: sum(e.state == state for e in self.entries) for state in STATES}
        data = {"version": MANIFEST_VERSION, "prompts": self.prompts, "updated": time.time(), "counts": counts,
                "rows": [dataclasses.asdict(e) for e in sorted(self.entries, key=lambda e: e.line)]}
        write_text_atomic(self.path, json.dumps(data, indent=1) + "\n")


@dataclass
class BatchResult:
    """What a batch did: one entry a row, in line order."""

    entries: list[Entry]
    out_dir: Path

    @property
    def exit_code(self) -> int:
        """0: every row done; 1: a render crashed (rerun redoes it); 2: only bad input."""
        failed = [e for e in self.entries if e.state != "done"]
        if any(e.error_kind != "input" for e in failed):
            return 1
        return 2 if failed else 0

    def counts(self) -> dict[str, int]:
        failed = [e for e in self.entries if e.state != "done"]
        return {"rows": len(self.entries), "done": len(self.entries) - len(failed),
                "bad_input": sum(e.error_kind == "input" for e in failed),
                "crashed": sum(e.error_kind != "input" for e in failed)}

    def table(self) -> str:
        """A plain-text table: line, name, state, attempts, seconds, error."""
        header = ("line", "name", "state", "tries", "seconds", "error")
        body = [(str(e.line), e.name or "-", e.state, str(e.attempts),
                 f"{e.seconds:.1f}" if e.seconds is not None else "", e.error or "") for e in self.entries]
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header) - 1)]
        lines = []
        for row in [header, *body]:
            cells = [c.rjust(w) if i in (0, 3, 4) else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
            lines.append("  ".join([*cells, row[-1]]).rstrip())
        return "\n".join(lines)

    def summary(self) -> str:
        c = self.counts()
        return (f"{c['done']} of {c['rows']} songs done, {c['bad_input']} bad input, {c['crashed']} failed to render; "
                f"manifest: {self.out_dir / MANIFEST_NAME}")


# --- jobs and workers ------------------------------------------------------------------
@dataclass
class Job:
    """What a worker needs for one song (small and picklable)."""

    name: str
    plan_json: str
    seed: int


@dataclass
class Outcome:
    """What a worker reports for one song."""

    name: str
    ok: bool
    seconds: float
    error: str | None = None
    error_kind: str | None = None  # "input" or "render"


class _Worker:
    """One render worker: loads the models once, then renders one song a call."""

    def __init__(self, codec, model, options: dict):
        from composer.renderer import RenderOptions, load_models

        self.options = RenderOptions(**options)
        self.error: str | None = None
        self.error_kind = "render"
        try:
            self.codec, self.model = load_models(codec, model)
        except Exception as error:  # reported with every row this worker takes
            self.error = f"loading models: {type(error).__name__}: {error}"
            self.error_kind = "input" if isinstance(error, _bad_input_types()) else "render"

    def render(self, job: Job, out_dir: Path) -> Outcome:
        """Render `job` into `out_dir` (which must not be a final name); never raises for one bad song."""
        from composer.renderer import render
        from structure.plan import SongPlan

        clock = time.monotonic()
        if self.error:
            return Outcome(job.name, ok=False, seconds=0.0, error=self.error, error_kind=self.error_kind)
        try:
            song = SongPlan.from_json(job.plan_json)
            result = render(song, seed=job.seed, codec=self.codec, model=self.model, progress=False,
                            options=dataclasses.replace(self.options))
            shutil.rmtree(out_dir, ignore_errors=True)
            result.save(out_dir)
        except _bad_input_types() as error:
            return Outcome(job.name, ok=False, seconds=time.monotonic() - clock, error=str(error), error_kind="input")
        except Exception as error:
            log.debug("render of %s failed", job.name, exc_info=True)
            return Outcome(job.name, ok=False, seconds=time.monotonic() - clock,
                           error=f"{type(error).__name__}: {error}", error_kind="render")
        return Outcome(job.name, ok=True, seconds=time.monotonic() - clock)


def _bad_input_types():
    from composer.errors import bad_input_types

    return bad_input_types()


OnStart = Callable[[Job], None]


def _run_in_process(jobs: Iterable[Job], *, worker: _Worker, partial_root: Path,
                    on_start: OnStart) -> Iterator[Outcome]:
    for job in jobs:
        on_start(job)
        yield worker.render(job, partial_root / job.name)


# Worker processes: each holds one _Worker, made by the pool's initializer (once per process).
_process_worker: _Worker | None = None


def _init_process_worker(codec, model, options: dict, threads: int, parent_pid: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)  # before torch first loads OpenMP here
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    import torch

    torch.set_num_threads(threads)
    global _process_worker
    _process_worker = _Worker(codec, model, options)


def _exit_with_parent(parent_pid: int) -> None:
    """A worker whose batch was killed (kill -9) stops too, instead of writing on alone."""
    while os.getppid() == parent_pid:
        time.sleep(0.2)
    os._exit(1)


def _render_in_process_worker(job: Job, out_dir: str) -> Outcome:
    assert _process_worker is not None, "pool initializer did not run"
    return _process_worker.render(job, Path(out_dir))


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _run_processes(jobs: Iterable[Job], *, workers: int, codec, model, options: dict, partial_root: Path,
                   on_start: OnStart) -> Iterator[Outcome]:
    """Render with `workers` spawned processes, at most one song each at a time.

    Only as many jobs as workers are submitted, so "running" in the manifest means
    running. If a worker process dies (killed, out of memory) the songs in flight
    fail and a fresh pool takes the rest.
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    threads = max(1, _cores() // workers)
    pending = deque(jobs)
    context = multiprocessing.get_context("spawn")  # fork after torch has threads can hang
    while pending:
        executor = ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=context,
                                       initializer=_init_process_worker,
                                       initargs=(codec, model, options, threads, os.getpid()))
        in_flight: dict = {}
        broken = False
        finished = False
        try:
            while in_flight or (pending and not broken):
                while pending and not broken and len(in_flight) < workers:
                    job = pending.popleft()
                    on_start(job)
                    try:
                        in_flight[executor.submit(_render_in_process_worker, job, str(partial_root / job.name))] = job
                    except BrokenProcessPool:
                        broken = True
                        yield _died(job)
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    job = in_flight.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        broken = True
                        outcome = _died(job)
                    except Exception as error:  # e.g. a result that could not be pickled
                        outcome = Outcome(job.name, ok=False, seconds=0.0, error=f"{type(error).__name__}: {error}",
                                          error_kind="render")
                    yield outcome
            finished = True
        finally:
            executor.shutdown(wait=finished and not broken, cancel_futures=True)


def _died(job: Job) -> Outcome:
    return Outcome(job.name, ok=False, seconds=0.0, error="the worker process died (killed or out of memory)",
                   error_kind="render")


# --- Ray ---------------------------------------------------------------------------------
class _RayWorker:
    """A Ray actor: loads the models once, renders songs on its node, returns their files."""

    def __init__(self, codec, model, options: dict, threads: int):
        import torch

        torch.set_num_threads(threads)
        self._checkpoints = tempfile.mkdtemp(prefix="composer-batch-")
        self.worker = _Worker(_unship(codec, Path(self._checkpoints) / "codec"),
                              _unship(model, Path(self._checkpoints) / "model"), options)

    def render(self, job: Job) -> tuple[Outcome, dict[str, bytes]]:
        with tempfile.TemporaryDirectory(prefix="composer-song-") as scratch:
            song_dir = Path(scratch) / job.name
            outcome = self.worker.render(job, song_dir)
            files = {p.name: p.read_bytes() for p in song_dir.iterdir() if p.is_file()} if outcome.ok else {}
        return outcome, files


def _ship(checkpoint) -> dict:
    """A checkpoint for a node that may not share our disk: a local folder travels as bytes."""
    if isinstance(checkpoint, (str, Path)) and Path(checkpoint).is_dir():
        return {"files": {p.name: p.read_bytes() for p in Path(checkpoint).iterdir() if p.is_file()}}
    return {"value": checkpoint}  # None (bundled default), a hub name, or a loaded model


def _unship(shipped: dict, directory: Path):
    if "files" not in shipped:
        return shipped["value"]
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in shipped["files"].items():
        (directory / name).write_bytes(data)
    return directory


def _write_song_files(out_dir: Path, files: dict[str, bytes]) -> None:
    """The files of a song rendered elsewhere, report.json last (it marks a complete song)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    for name in sorted(files, key=lambda n: n == "report.json"):
        (out_dir / name).write_bytes(files[name])


def _ray_module():
    try:
        import ray
    except ImportError:
        raise InputError("--ray: Ray is not installed (pip install 'song-composer[ray]')") from None
    return ray


def _ray_init(ray, address: str, workers: int) -> None:
    """`local` starts a Ray instance here (num_cpus = workers); anything else joins a cluster."""
    if address == "local":
        ray.init(num_cpus=workers if workers > 1 else None, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)


def _run_ray(jobs: Iterable[Job], *, address: str, workers: int, codec, model, options: dict, partial_root: Path,
             on_start: OnStart) -> Iterator[Outcome]:
    """Render as Ray actor calls: one actor a CPU (or `workers` actors), models loaded once per actor.

    Actors send the song's files back, so the cluster needs no shared disk; the
    song is written here and finalised like a local one.
    """
    ray = _ray_module()
    pending = deque(jobs)
    if not pending:
        return
    started_here = not ray.is_initialized()
    if started_here:
        _ray_init(ray, address, workers)
    try:
        capacity = workers if workers > 1 else max(1, int(ray.cluster_resources().get("CPU", 1)))
        actor_class = ray.remote(num_cpus=1)(_RayWorker)
        codec_ref, model_ref = ray.put(_ship(codec)), ray.put(_ship(model))

        def new_actor():
            return actor_class.remote(codec_ref, model_ref, options, 1)

        idle = [new_actor() for _ in range(min(capacity, len(pending)))]
        in_flight: dict = {}
        while pending or in_flight:
            while pending and idle:
                job, actor = pending.popleft(), idle.pop()
                on_start(job)
                in_flight[actor.render.remote(job)] = (actor, job)
            (ready,), _ = ray.wait(list(in_flight), num_returns=1)
            actor, job = in_flight.pop(ready)
            try:
                outcome, files = ray.get(ready)
                if outcome.ok:
                    _write_song_files(partial_root / job.name, files)
                idle.append(actor)
            except ray.exceptions.RayActorError as error:
                outcome = Outcome(job.name, ok=False, seconds=0.0, error=f"the Ray worker died: {error}",
                                  error_kind="render")
                idle.append(new_actor())
            except ray.exceptions.RayError as error:
                outcome = Outcome(job.name, ok=False, seconds=0.0, error=f"Ray: {error}", error_kind="render")
                idle.append(actor)
            yield outcome
    finally:
        if started_here:
            ray.shutdown()


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
    from composer.renderer import RenderOptions, _check_options

    options = options or RenderOptions()
    _check_options(options)
    if workers < 1:
        raise InputError(f"--workers: {workers} must be >= 1")
    say = _reporter(report, progress)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output {out_dir}: not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    with _locked(out_dir):
        rows, errors = read_rows(prompts, seed_base=seed_base)
        codec_loaded, model_loaded = _load_models_checked(codec, model)
        settings = _settings(options, codec_loaded, model_loaded)
        partial_root = out_dir / PARTIAL_DIR
        shutil.rmtree(partial_root, ignore_errors=True)  # what a killed run left; we hold the lock

        manifest = Manifest(out_dir / MANIFEST_NAME, prompts=str(Path(prompts).resolve()))
        entries, to_check = _reconcile(rows, Manifest.load(manifest.path), settings, out_dir)
        jobs, check_errors = _check_rows(to_check, progress=progress)
        errors += check_errors
        for error in errors:
            entries[error.line] = Entry(error.line, error.name, state="failed", error=error.reason,
                                        error_kind=error.kind)
        for error in sorted(errors, key=lambda e: e.line):
            say(str(error))
        manifest.entries = sorted(entries.values(), key=lambda e: e.line)
        manifest.save()

        by_name = {row.name: entry for row, entry in to_check}
        with _progress(manifest.entries, total=len(jobs), enabled=progress) as bar:
            def on_start(job: Job) -> None:
                entry = by_name[job.name]
                entry.state, entry.attempts, entry.error, entry.error_kind = "running", entry.attempts + 1, None, None
                manifest.save()

            runner = _runner(jobs, workers=workers, ray_address=ray_address, codec=codec, model=model,
                             loaded=(codec_loaded, model_loaded), options=options, partial_root=partial_root,
                             on_start=on_start)
            with closing(runner):
                for outcome in runner:
                    entry = by_name[outcome.name]
                    entry.seconds = round(outcome.seconds, 3)
                    if outcome.ok:
                        outcome = _finalize(outcome, partial_root, out_dir)
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
    from composer.renderer import load_models

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

    A row is skipped when an earlier run finished it with the same fingerprint
    and its folder is complete. A row the earlier run was killed in after its
    folder was moved into place (state still "running") is complete too.
    """
    entries: dict[int, Entry] = {}
    to_check: list[tuple[Row, Entry]] = []
    for row in rows:
        fingerprint = row.fingerprint(settings)
        old = earlier.get(row.name)
        same = old is not None and old.fingerprint == fingerprint
        complete = (out_dir / row.name / "report.json").is_file()
        if same and complete and old.state in ("done", "running"):
            entries[row.line] = dataclasses.replace(old, line=row.line, state="done", error=None, error_kind=None)
            continue
        entry = Entry(row.line, row.name, seed=row.seed, fingerprint=fingerprint,
                      attempts=old.attempts if same else 0)
        entries[row.line] = entry
        to_check.append((row, entry))
    return entries, to_check


def _check_rows(rows: list[tuple[Row, Entry]], *, progress: bool) -> tuple[list[Job], list[RowError]]:
    """Plan every row up front: bad values (tempo 0, an unknown key) fail here, by line."""
    from tqdm import tqdm

    from structure.planner import plan

    jobs, errors = [], []
    for row, _ in tqdm(rows, desc="checking rows", unit="row", disable=not progress or not rows, leave=False):
        try:
            song = plan(row.prompt, lyrics=row.lyrics, duration=row.duration, seed=row.seed)
        except _bad_input_types() as error:
            errors.append(RowError(row.line, row.name, str(error)))
            continue
        except Exception as error:  # a planner bug must not stop the other rows
            log.debug("planning line %d failed", row.line, exc_info=True)
            errors.append(RowError(row.line, row.name, f"{type(error).__name__}: {error}", kind="render"))
            continue
        jobs.append(Job(name=row.name, plan_json=song.to_json(), seed=row.seed))
    return jobs, errors


def _finalize(outcome: Outcome, partial_root: Path, out_dir: Path) -> Outcome:
    """Move a complete song folder to its final name in one rename (an older one goes first).

    Returns the outcome, failed when the folder is incomplete or cannot be moved.
    """
    partial, final = partial_root / outcome.name, out_dir / outcome.name
    try:
        if not (partial / "report.json").is_file():
            raise FileNotFoundError(f"{partial}: rendered but incomplete (no report.json)")
        if final.exists():
            log.info("%s: replacing the earlier folder", final)
            trash = partial_root / TRASH_DIR / final.name
            shutil.rmtree(trash, ignore_errors=True)
            trash.parent.mkdir(parents=True, exist_ok=True)
            os.replace(final, trash)
            os.replace(partial, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(partial, final)
    except OSError as error:
        return dataclasses.replace(outcome, ok=False, error=f"moving the song into place: {error}",
                                   error_kind="render")
    return outcome


@contextmanager
def _locked(out_dir: Path):
    """Hold `OUT_DIR/.lock` for the batch; the kernel drops it when the process dies, even by kill -9."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(out_dir / LOCK_NAME, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"output {out_dir}: another batch is writing there") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _reporter(report: Callable[[str], None] | None, progress: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if report is None:
            log.warning("%s", message)
            return
        from tqdm import tqdm

        with tqdm.external_write_mode(file=sys.stderr):  # keep the progress bar intact
            report(message)

    return say


class _BatchProgress:
    """The batch's progress bar: songs rendered this run, with done/failed/remaining of all rows and an ETA."""

    def __init__(self, entries: list[Entry], *, total: int, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc="batch", unit="song", disable=not enabled, dynamic_ncols=True)
        self._postfix(entries)

    def song_finished(self, entries: list[Entry]) -> None:
        self._postfix(entries)
        self.bar.update(1)

    def _postfix(self, entries: list[Entry]) -> None:
        done = sum(e.state == "done" for e in entries)
        failed = sum(e.state == "failed" for e in entries)
        self.bar.set_postfix(done=done, failed=failed, remaining=len(entries) - done - failed, refresh=False)


@contextmanager
def _progress(entries: list[Entry], *, total: int, enabled: bool):
    progress = _BatchProgress(entries, total=total, enabled=enabled)
    try:
        yield progress
    finally:
        progress.bar.close()


__all__ = ["BatchResult", "Entry", "Job", "Manifest", "Outcome", "Row", "RowError", "read_rows", "run_batch"]
