"""Reading user files with one clear error that names the file."""

from __future__ import annotations

from pathlib import Path

from composer.errors import InputError


def read_text_file(path: str | Path, what: str) -> str:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path}: no such file")
    try:
        return path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the text
    except UnicodeDecodeError:
        raise InputError(f"{what} {path}: not UTF-8 text") from None


def read_plan_file(path: str | Path):
    """Load and validate a plan.json; PlanError/InputError name the file and the field."""
    from structure.schema import PlanError, SongPlan

    text = read_text_file(path, "plan")
    try:
        return SongPlan.from_json(text)
    except PlanError as error:
        raise InputError(f"plan {path}: {error}") from None


def read_lyrics_file(path: str | Path) -> str:
    text = read_text_file(path, "lyrics")
    if not text.strip():
        raise InputError(f"lyrics {path}: empty")
    return text
