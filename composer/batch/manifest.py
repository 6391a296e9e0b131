"""The batch's bookkeeping: the manifest of every row's state, the folder lock, progress and reports."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from composer.errors import InputError

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
PARTIAL_DIR = ".partial"  # songs being rendered; never a final name
SUPERSEDED_DIR = ".superseded"  # the earlier songs of rows that changed: kept, never deleted
LOCK_NAME = ".lock"
STATES = ("pending", "running", "done", "failed")


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
        from composer.data.audio import write_text_atomic

        data = {"version": MANIFEST_VERSION, "prompts": self.prompts, "updated": time.time(),
                "counts": state_counts(self.entries),
                "rows": [dataclasses.asdict(e) for e in sorted(self.entries, key=lambda e: e.line)]}
        write_text_atomic(self.path, json.dumps(data, indent=1) + "\n")


def state_counts(entries: list[Entry]) -> dict[str, int]:
    """Rows by state, with bad input apart from failed renders: `failed` counts only the renders that
    failed (a rerun redoes them) and `bad_input` the rows to fix, as the summary line and the progress
    bar count them, so the manifest never says "failed" for rows the summary calls bad input."""
    counts = {state: sum(e.state == state for e in entries) for state in STATES}
    counts["bad_input"] = sum(e.state == "failed" and e.error_kind == "input" for e in entries)
    counts["failed"] -= counts["bad_input"]
    return counts


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
        body = [(str(e.line), e.name or "-", "bad input" if e.state == "failed" and e.error_kind == "input" else e.state,
                 str(e.attempts),
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


# --- lock, reports and progress -------------------------------------------------------
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
        counts = state_counts(entries)
        self.bar.set_postfix(done=counts["done"], bad_input=counts["bad_input"], failed=counts["failed"],
                             remaining=counts["pending"] + counts["running"], refresh=False)


@contextmanager
def _progress(entries: list[Entry], *, total: int, enabled: bool):
    progress = _BatchProgress(entries, total=total, enabled=enabled)
    try:
        yield progress
    finally:
        progress.bar.close()


__all__ = ["BatchResult", "Entry", "Manifest"]
