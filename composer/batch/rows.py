"""Reading the PROMPTS file of a batch: one `Row` a line of JSONL or CSV, bad rows as `RowError`.

Row fields: `prompt` (text), `lyrics` (text) or `lyrics_file` (a file inside the
PROMPTS file's folder; nothing outside it is read), `duration` (seconds), `seed` (default: --seed base + line number),
`name` (output folder; default `row{line:04d}`), `voice` (the singing voice; default
--voice), `vocals` (false: not sung; default --no-vocals or not). Every other field is metadata
and joins the prompt as `field=value` (genre, mood, tempo, key, persona fields).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from composer.batch.manifest import LOCK_NAME, MANIFEST_NAME
from composer.errors import InputError
from structure.prompt import field_token

ROW_FIELDS = ("prompt", "lyrics", "lyrics_file", "duration", "seed", "name", "voice", "vocals")
# fields that look like a render's options but are not a row's: each row error says what to write instead
NOT_ROW_FIELDS = {
    "no_vocals": "write vocals: false", "no-vocals": "write vocals: false", "instrumental": "write vocals: false",
    **{option: f"--{option.replace('_', '-')} is the batch's option, for every row"
       for option in ("steps", "guidance", "sampler", "from_guide", "strength", "workers", "no_evaluate")},
}
MAX_NAME_LENGTH = 200  # bytes: the folder's temporary name adds some 25 to it, within 255
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
    voice: str | None = None  # None: the batch's --voice
    vocals: bool | None = None  # None: the batch's --no-vocals or not

    def fingerprint(self, settings: str) -> str:
        """Hash of everything that decides the song, so an edited row renders again."""
        values = [self.prompt, self.lyrics, self.duration, self.seed, settings]
        if self.voice is not None:  # rows without a voice keep the fingerprints they had
            values.append(self.voice)
        if self.vocals is not None:
            values.append({"vocals": self.vocals})
        text = json.dumps(values)
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
        header = path.suffix.lower() == ".csv"  # a lone line was read as the header
        raise InputError(f"prompts {path}: no rows" + (" (a CSV file's first line names its columns, as in "
                                                       "prompt,genre,duration; the rows follow it)" if header else ""))
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
        key = unicodedata.normalize("NFC", row.name).casefold()  # case- or form-insensitive file systems merge them
        if key in seen:
            errors.append(RowError(line, row.name, f"name {row.name!r} is already used by line {seen[key]}"))
            continue
        seen[key] = line
        rows.append(row)
    return rows, errors


def _read_prompts_text(path: Path) -> str:
    from composer.data.inputs import read_text_file

    return read_text_file(path, "prompts")


def _records(path: Path, text: str) -> Iterator[tuple[int, dict | RowError]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _csv_records(text)
    if suffix in (".jsonl", ".ndjson", ".json") or text.lstrip()[:1] in ("{", "["):
        if text.lstrip()[:1] == "[" and _is_json_array(text):
            raise InputError(f"prompts {path}: a JSON array; expected JSONL (one JSON object a line)")
        return _jsonl_records(text)
    return _csv_records(text)


def _is_json_array(text: str) -> bool:
    """Whether the whole file is one JSON array: only then is it refused whole. A first line that
    merely starts with `[` is one bad row, reported by its line while the other rows render."""
    try:
        return isinstance(json.loads(text), list)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        return False


def _jsonl_records(text: str) -> Iterator[tuple[int, dict | RowError]]:
    # lines end at "\n" alone: str.splitlines also splits at U+2028 and U+0085, which JSON leaves
    # unescaped inside strings
    for line, raw in enumerate(text.split("\n"), start=1):
        raw = raw.removesuffix("\r")
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as error:
            yield line, RowError(line, None, f"malformed JSON: {error.msg} at column {error.colno}")
            continue
        except ValueError:  # a number of thousands of digits
            yield line, RowError(line, None, "malformed JSON: a number too long to read")
            continue
        except RecursionError:
            yield line, RowError(line, None, "malformed JSON: nested too deeply")
            continue
        if not isinstance(record, dict):
            yield line, RowError(line, None, f"expected a JSON object, got {type(record).__name__}")
            continue
        yield line, record


def _csv_records(text: str) -> Iterator[tuple[int, dict | RowError]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)  # an unclosed quote is an error, not one huge cell
    header: list[str] | None = None
    next_line = 1
    while True:
        line = next_line
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            if "end of data" in str(error):  # the rest of the file is inside the quote
                raise InputError(f"prompts CSV line {line}: a quote opened on line {line} never closes") from None
            next_line = reader.line_num + 1
            yield line, RowError(line, None, f"malformed CSV: {error}")  # the other rows still render
            continue
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
    # an empty field counts as left out, but not an empty `lyrics` or `lyrics_file`: writing lyrics
    # for it would hide the mistake, as an empty --lyrics file is an error too (an empty CSV cell
    # is dropped before this, so a lyrics column may stay empty in rows that want written lyrics)
    record = {key.strip() if isinstance(key, str) else key: value for key, value in record.items()}
    record = {key: value for key, value in record.items()
              if value is not None and (value != "" or key in ("lyrics", "lyrics_file"))}
    name = _row_name(record.get("name", f"row{line:04d}"))
    prompt = record.get("prompt", "")
    if not isinstance(prompt, str):
        raise InputError(f"prompt: expected text, got {type(prompt).__name__}")
    tokens = [prompt.strip()] if prompt.strip() else []
    for key in record:
        if isinstance(key, str) and key.lower() in NOT_ROW_FIELDS:
            raise InputError(f"{key}: not a row's field ({NOT_ROW_FIELDS[key.lower()]})")
    for key, value in record.items():
        if key not in ROW_FIELDS:
            tokens.append(_metadata_token(key, value))
    if "lyrics" in record and "lyrics_file" in record:
        raise InputError("give lyrics or lyrics_file, not both")
    lyrics_text = record.get("lyrics")
    if lyrics_text is not None and not isinstance(lyrics_text, str):
        raise InputError(f"lyrics: expected text, got {type(lyrics_text).__name__}")
    if lyrics_text is not None and not lyrics_text.strip():
        raise InputError("lyrics: empty (leave the field out for lyrics the writer makes)")
    if "lyrics_file" in record:
        from composer.data.inputs import read_lyrics_file

        lyrics_text = read_lyrics_file(_inside(base_dir, record["lyrics_file"]))
    if not tokens and not lyrics_text:
        raise InputError("no prompt, metadata fields or lyrics")
    seed = _row_seed(record["seed"]) if "seed" in record else seed_base + line
    duration = _row_duration(record["duration"]) if "duration" in record else None
    voice = None
    if "voice" in record:
        from composer.voice.voices import get_voice

        voice = get_voice(record["voice"], what="voice").name
    vocals = _row_vocals(record["vocals"]) if "vocals" in record else None
    return Row(line=line, name=name, prompt=" ".join(tokens), lyrics=lyrics_text, duration=duration, seed=seed,
               voice=voice, vocals=vocals)


def _row_vocals(value: object) -> bool:
    """A row's `vocals`: JSON true/false, or a CSV cell's true/false, yes/no, 1/0."""
    if isinstance(value, bool):
        return value
    words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    if isinstance(value, (str, int)) and str(value).strip().lower() in words:
        return words[str(value).strip().lower()]
    raise InputError(f"vocals: expected true or false, got {value!r}")


def _inside(base_dir: Path, name: object) -> Path:
    """`name` as a file inside the PROMPTS file's folder; anything that leaves it is refused."""
    if not isinstance(name, str) or not name.strip():
        raise InputError("lyrics_file: expected a file name relative to the batch file")
    try:
        root = base_dir.resolve()
        path = (root / name).resolve()
    except (OSError, ValueError, RuntimeError) as error:  # a name too long, a NUL byte, a symlink loop
        raise InputError(f"lyrics_file {name[:80]!r}: {error}") from None
    if Path(name).is_absolute() or not path.is_relative_to(root):
        raise InputError(f"lyrics_file {name!r}: outside the batch file's folder (give a path inside {root})")
    return path


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
    elif name in (MANIFEST_NAME, LOCK_NAME) or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_LENGTH:
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
    return field_token(key, text)


def _row_seed(value: object) -> int:
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        seed = int(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"seed: expected a whole number, got {str(value)[:40]!r}") from None
    if not 0 <= seed < 2**63:
        raise InputError(f"seed: {str(seed)[:40]} is outside 0..2^63-1")
    return seed


def _row_duration(value: object) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(str(value).strip().removesuffix("s")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"duration: expected seconds, got {str(value)[:40]!r}") from None


__all__ = ["Row", "RowError", "read_rows"]
