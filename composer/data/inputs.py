"""Reading user files with one clear error that names the file."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

from composer.errors import InputError

log = logging.getLogger(__name__)


def read_text_file(path: str | Path, what: str) -> str:
    path = Path(path)
    try:
        exists = path.is_file()
    except OSError as error:  # a name too long for the file system
        raise InputError(f"{what} {str(path)[:120]}: {error.strerror or error}") from None
    if not exists:
        raise InputError(f"{what} {path}: " + ("a folder, not a file" if path.is_dir() else "no such file"))
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"{what} {path}: {error.strerror or error}") from None
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 with its byte-order mark (Notepad's "Unicode")
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise InputError(f"{what} {path}: starts as UTF-16 text but does not decode as it; "
                             "save it as UTF-8") from None
    try:
        return data.decode("utf-8-sig")  # a byte-order mark is not part of the text
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise InputError(f"{what} {path}: not UTF-8 text (line {line}, byte {error.start}); "
                         "save it as UTF-8") from None


def read_plan_file(path: str | Path):
    """Load and validate a plan.json; PlanError/InputError name the file and the field."""
    from structure.editing import follow_edited_lyrics
    from structure.schema import PlanError, SongPlan

    text = read_text_file(path, "plan")
    try:
        plan, changed = follow_edited_lyrics(SongPlan.from_json(text))
    except PlanError as error:
        raise InputError(f"plan {path}: {error}") from None
    if changed:
        log.warning("plan %s: the words of %s were changed; the melody is sketched again for them (as the plan "
                    "editor does)", path, ", ".join(changed))
    from structure.styles import STYLE_ALIASES, STYLES

    style = str(plan.style or "").lower().strip()
    if style and STYLE_ALIASES.get(style, style) not in STYLES:  # as a prompt's unknown genre is said
        log.warning("plan %s: style %r is not one of the styles (%s); it is arranged in the pop style", path,
                    plan.style, ", ".join(sorted(STYLES)))
    return plan


def read_lyrics_file(path: str | Path) -> str:
    text = read_text_file(path, "lyrics")
    if not text.strip():
        raise InputError(f"lyrics {path}: empty")
    return text


@contextmanager
def naming_lyrics(path: str | Path | None):
    """A plan's error in the lyrics names the file they were read from."""
    from lyrics.errors import LyricsError
    from structure.schema import PlanError

    try:
        yield
    except PlanError as error:
        if path and error.field == "lyrics":
            raise InputError(f"lyrics {path}: {error.problem}") from None
        raise
    except LyricsError as error:  # the parser's own ("lyrics: only section tags, ...")
        message = str(error)
        if path and message.startswith("lyrics: "):
            raise InputError(f"lyrics {path}: {message[len('lyrics: '):]}") from None
        raise
