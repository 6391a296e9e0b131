"""The batch's workers: render `Job`s into `Outcome`s here, in spawned worker processes, or on Ray actors."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from composer.errors import InputError
from composer.processes import watch_parent
from composer.rendering.folder import REPORT_NAME

log = logging.getLogger(__name__)



# --- jobs and workers ------------------------------------------------------------------
@dataclass
class Job:
    """What a worker needs for one song (small and picklable)."""

    name: str
    plan_json: str
    seed: int
    voice: str | None = None  # None: the batch's options
    vocals: bool | None = None  # None: the batch's options


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
        from composer.models import load_models
        from composer.rendering.options import RenderOptions

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
        from composer.rendering.renderer import render
        from structure.schema import SongPlan

        clock = time.monotonic()
        if self.error:
            return Outcome(job.name, ok=False, seconds=0.0, error=self.error, error_kind=self.error_kind)
        try:
            song = SongPlan.from_json(job.plan_json)
            result = render(song, seed=job.seed, codec=self.codec, model=self.model, progress=False,
                            options=dataclasses.replace(self.options, **({"voice": job.voice} if job.voice else {}),
                                                        **({"vocals": job.vocals} if job.vocals is not None else {})))
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
    watch_parent(parent_pid)  # a worker whose batch was killed (kill -9) stops too, instead of writing on alone
    import torch

    torch.set_num_threads(threads)
    global _process_worker
    _process_worker = _Worker(codec, model, options)


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
            if not finished:  # interrupted (Ctrl-C to this process alone, SIGTERM): the workers stop now; left
                # running, the interpreter's exit waited for their songs and the next run threw them away
                for process in list((getattr(executor, "_processes", None) or {}).values()):
                    process.terminate()
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
        checkpoints = tempfile.mkdtemp(prefix="composer-batch-")
        try:  # the models load into memory here; their shipped files are not needed after
            self.worker = _Worker(_unship(codec, Path(checkpoints) / "codec"),
                                  _unship(model, Path(checkpoints) / "model"), options)
        finally:
            shutil.rmtree(checkpoints, ignore_errors=True)

    def ready(self) -> bool:
        """Answers once the actor has started and loaded the models (`_await_actors`)."""
        return True

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
    for name in sorted(files, key=lambda n: n == REPORT_NAME):
        (out_dir / name).write_bytes(files[name])


def _ray_module():
    try:
        import ray
    except ImportError:
        raise InputError("--ray: Ray is not installed (pip install 'song-composer[ray]')") from None
    return ray


RAY_START_SECONDS = 600.0  # how long Ray's actors may take to start and load the models


def _await_actors(ray, actors: list) -> None:
    """Wait until every actor has started, or fail the batch in one line: a Ray worker that dies as
    it starts (out of memory, a node without the project installed) is started again and again,
    and the batch would wait for it forever. COMPOSER_RAY_START_SECONDS sets the wait."""
    from composer.errors import RenderError

    seconds = float(os.environ.get("COMPOSER_RAY_START_SECONDS", "") or RAY_START_SECONDS)
    try:
        ray.get([actor.ready.remote() for actor in actors], timeout=seconds)
    except ray.exceptions.GetTimeoutError:
        raise RenderError(f"Ray: its workers did not start within {seconds:g} s (out of memory, or a node "
                          "without this project installed?); Ray's logs are in /tmp/ray/session_latest/logs") from None
    except ray.exceptions.RayError as error:
        raise RenderError(f"Ray: a worker failed to start: {str(error).splitlines()[0]}") from None


def check_ray_address(address: str | None) -> None:
    """InputError naming --ray unless `address` is "local", "auto", HOST:PORT or ray://HOST:PORT
    (checked before any work: Ray's own error came after every row was planned)."""
    import re

    if address is None or address in ("local", "auto"):
        return
    if not re.fullmatch(r"(ray://)?[\w.\-]+:\d{1,5}|(ray://)?\[[0-9A-Fa-f:]+\]:\d{1,5}", str(address).strip()):
        raise InputError(f"--ray {address!r}: give 'local' (start Ray here), 'auto' (the cluster this machine "
                         "belongs to) or a cluster's HOST:PORT")


def _ray_init(ray, address: str, workers: int) -> None:
    """`local` starts a Ray instance here (num_cpus = workers); anything else joins a cluster."""
    check_ray_address(address)
    try:
        if address == "local":
            ray.init(num_cpus=workers if workers > 1 else None, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ValueError, ConnectionError) as error:
        raise InputError(f"--ray {address}: {error}") from None


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
        _await_actors(ray, idle)
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


__all__ = ["Job", "Outcome"]
