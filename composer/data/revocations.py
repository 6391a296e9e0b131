"""Consent that can be withdrawn: `DATASET/revocations.jsonl`.

`composer data revoke DATASET FILE_OR_ID --reason ...` appends one record (the
file's name, its content hash when the file is still there, the reason and the
date). From then on `iter_accepted` never yields the file, `composer data check`
refuses it with the date and reason, and a model whose originality index lists the
file (by name in that dataset, or by content hash) is reported by `composer doctor`
and `composer originality` as trained on since-withdrawn files.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from composer.errors import InputError

log = logging.getLogger(__name__)

REVOCATIONS_NAME = "revocations.jsonl"


@dataclass(frozen=True)
class Revocation:
    file_name: str
    sha256: str | None
    reason: str
    date: str
    id: str | None = None

    def describe(self) -> str:
        return f"consent withdrawn on {self.date}: {self.reason}"


def read_revocations(folder: str | Path) -> dict[str, Revocation]:
    """The dataset's withdrawals by normalised file name (a damaged line is skipped, with a warning)."""
    path = Path(folder) / REVOCATIONS_NAME
    found: dict[str, Revocation] = {}
    if not path.is_file():
        return found
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            revocation = Revocation(file_name=str(record["file_name"]), sha256=record.get("sha256"),
                                    reason=str(record.get("reason", "")), date=str(record.get("date", "")),
                                    id=record.get("id"))
        except (ValueError, KeyError, TypeError) as error:
            log.warning("%s line %d: not a revocation record (%s); skipped", path, number, error)
            continue
        found[_normalised(revocation.file_name)] = revocation
    return found


def _normalised(file_name: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFC", file_name.replace("\\", "/").lstrip("./"))  # macOS names are NFD


def revoke(folder: str | Path, file_or_id: str, *, reason: str, today: _dt.date | None = None) -> Revocation:
    """Record that consent for one file of the dataset is withdrawn (its metadata row stays:
    nothing the user made is deleted)."""
    from composer.data.audio import write_text_atomic
    from composer.data.metadata import METADATA_NAME, read_metadata
    from composer.originality.index import file_sha256

    root = Path(folder)
    if not (root / METADATA_NAME).is_file():
        raise InputError(f"{folder}: not a dataset (no {METADATA_NAME})")
    if not reason or not reason.strip():
        raise InputError("--reason: say why consent is withdrawn (it is kept with the record)")
    rows = [row for row in read_metadata(root) if row.problem is None]
    wanted = _normalised(file_or_id)
    row = next((r for r in rows if _normalised(r.file_name) == wanted), None)
    if row is None:
        row = next((r for r in rows if str(r.fields.get("id", "")) == file_or_id), None)
    if row is None:
        raise InputError(f"{file_or_id}: no file of that name or id in {root / METADATA_NAME}")
    existing = read_revocations(root).get(_normalised(row.file_name))
    if existing is not None:
        return existing
    path = root / row.file_name
    record = Revocation(file_name=row.file_name, sha256=file_sha256(path) if path.is_file() else None,
                        reason=reason.strip(), date=(today or _dt.date.today()).isoformat(),
                        id=str(row.fields["id"]) if "id" in row.fields else None)
    target = root / REVOCATIONS_NAME
    before = target.read_text(encoding="utf-8") if target.is_file() else ""
    if before and not before.endswith("\n"):
        before += "\n"
    body = {k: v for k, v in vars(record).items() if v is not None}
    write_text_atomic(target, before + json.dumps(body, ensure_ascii=False) + "\n")
    return record


def withdrawn_in_index(index, *, search_paths: list[str | Path] = ()) -> list[dict]:
    """Files an originality index covers whose consent has since been withdrawn: the datasets
    the index names (and `search_paths`) are read for revocations; matched by file name
    within the dataset, or by content hash anywhere."""
    folders = []
    for name in [*index.meta.get("datasets", []), *index.meta.get("dataset_paths", []), *search_paths]:
        path = Path(name)
        if path.is_dir() and path.resolve() not in folders:
            folders.append(path.resolve())
    found = []
    for folder in folders:
        revoked = read_revocations(folder)
        hashes = {r.sha256: r for r in revoked.values() if r.sha256}
        for entry in index.files:
            record = None
            if entry.get("dataset") == folder.name:
                record = revoked.get(_normalised(entry["file"]))
            record = record or hashes.get(entry.get("sha256"))
            if record is not None:
                found.append({"dataset": str(folder), "file": entry["file"], "date": record.date,
                              "reason": record.reason})
    return found


def checked_datasets(index) -> tuple[list[str], list[str]]:
    """(dataset folders found here, dataset folders named by the index but not found)."""
    names = [*index.meta.get("dataset_paths", [])] or [*index.meta.get("datasets", [])]
    here = [n for n in names if Path(n).is_dir()]
    return here, [n for n in names if not Path(n).is_dir()]
