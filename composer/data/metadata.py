"""`metadata.jsonl`: the labels of a dataset folder (the Hugging Face audiofolder convention).

One JSON object a line: `file_name` (a path relative to the folder) and its
fields (title, tempo, key, meter, mood, genre, lyrics, licence, consent, and
any persona field such as location or beard; unknown fields are kept).

Licences are names in any spelling or SPDX ids ("CC BY-SA 4.0", "GPL-2.0-or-later",
"GPL-3+", "MIT"), also simple expressions ("GPL-2.0-or-later OR CC-BY-SA-3.0"). Consent
is the artist's opt-in, or "licence-grant": the file's licence itself grants the right
to make derivative works (free music from Debian packages), accepted only with a licence
in `DERIVATIVE_LICENCES`. A licence that forbids derivatives (-ND) or that is not
recognised is refused by default, with the reason.

Reading never stops at a bad line: it comes back as a `MetadataRow` with
`problem` set. `row_problems` lists what is wrong with a row's labels,
licence and consent (no audio is read); `composer.data.datasets` checks the
audio and the whole folder.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from composer.data.audio import write_text_atomic
from composer.errors import InputError
from structure.schema import BEATS_PER_BAR_RANGE, TEMPO_RANGE, Key, PlanError

METADATA_NAME = "metadata.jsonl"
# Licence families (see `normalise_licence`) that let anyone make and share derivative works.
DERIVATIVE_LICENCES = frozenset({
    "public-domain", "cc0", "cc-by", "cc-by-sa", "gpl", "lgpl", "agpl", "mit", "bsd", "isc", "zlib",
    "apache", "mpl", "artistic", "unlicense",
})
# "generated": music rendered by this project from public-domain or generated scores.
ALLOWED_LICENCES = DERIVATIVE_LICENCES | {"own-work", "generated"}
# Recognised licences that do not permit derivative works for everyone (refused by default).
RESTRICTED_LICENCES = frozenset({"cc-by-nc", "cc-by-nc-sa", "cc-by-nd", "cc-by-nc-nd", "all-rights-reserved"})
OPT_IN_WORDS = frozenset({"opt-in", "optin", "opted-in", "yes", "true"})
LICENCE_GRANT = "licence-grant"  # consent: the licence grants derivative works (not the artist's opt-in)

_LICENCE_ALIASES = {
    "pd": "public-domain",
    "publicdomain": "public-domain",
    "public-domain-mark": "public-domain",
    "cc-zero": "cc0",
    "cc-0": "cc0",
    "creative-commons-zero": "cc0",
    "ownwork": "own-work",
    "own": "own-work",
    "expat": "mit",
    "x11": "mit",
    "mit-x11": "mit",
    "bsd-2-clause": "bsd",
    "bsd-3-clause": "bsd",
    "0bsd": "bsd",
    "the-unlicense": "unlicense",
}


@dataclass
class MetadataRow:
    """One line of metadata.jsonl.

    `fields` holds every key except `file_name`, unknown ones included. A line
    that cannot be used (not JSON, not an object, no string `file_name`) is
    kept as a row with `problem` set, so a reader can report it and go on.
    """

    line: int
    file_name: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None

    @property
    def licence(self) -> str | None:
        """The normalised licence ("cc-by-sa", "public-domain", ...), or None when absent."""
        value = self.fields.get("licence", self.fields.get("license"))
        return normalise_licence(value) if isinstance(value, str) else None

    def to_dict(self) -> dict[str, Any]:
        if self.problem is not None or self.file_name is None:
            raise InputError(f"{METADATA_NAME} line {self.line}: cannot write a malformed row "
                             f"({self.problem})")
        return {"file_name": self.file_name, **self.fields}


# --- licence and consent ----------------------------------------------------
def normalise_licence(text: str) -> str:
    """Canonical licence name: "CC BY-SA 4.0" -> "cc-by-sa", "GPL-2.0-or-later" -> "gpl"."""
    name = re.sub(r"[\s_]+", "-", text.strip().lower())
    name = re.sub(r"-+", "-", name).strip("-")
    name = re.sub(r"-(international|unported|generic)$", "", name)
    name = re.sub(r"(\+|-or-later|-only)$", "", name)  # "GPL-2+", "GPL-2.0-or-later", "GPL-2.0-only"
    name = re.sub(r"-v?\d+(\.\d+)*$", "", name)  # version: "cc-by-4.0", "cc0-1.0"
    name = re.sub(r"^(a|l)?gpl-?v?\d.*$", r"\1gpl", name)  # "gplv2", "gpl-3+-with-bison-exception"
    return _LICENCE_ALIASES.get(name, name)


def licence_terms(text: str) -> tuple[str, list[str]] | None:
    """("or" | "and", normalised licences) of a licence or a simple SPDX expression.

    "GPL-2.0-or-later OR CC-BY-SA-3.0" -> ("or", ["gpl", "cc-by-sa"]); a single licence is
    ("or", [name]). None when the expression mixes AND and OR (not judged here).
    """
    parts = re.split(r"\s+(and|or)\s+", text.strip().strip("()"), flags=re.IGNORECASE)
    operators = {word.lower() for word in parts[1::2]}
    if len(operators) > 1:
        return None
    return (operators.pop() if operators else "or"), [normalise_licence(p.strip("() ")) for p in parts[0::2]]


def permits_derivatives(text: str) -> bool:
    """True when the licence (or expression) lets anyone make derivative works (`DERIVATIVE_LICENCES`)."""
    return licence_allowed(text, DERIVATIVE_LICENCES)


def licence_allowed(text: str, allowed: frozenset[str]) -> bool:
    terms = licence_terms(text)
    if terms is None:
        return False
    operator, names = terms
    return (any if operator == "or" else all)(name in allowed for name in names)


def licence_problem(text: str, allowed: frozenset[str]) -> str | None:
    """Why a licence is refused (forbids derivatives, not allowed, not recognised), or None."""
    if licence_allowed(text, allowed):
        return None
    listed = ", ".join(sorted(allowed))
    terms = licence_terms(text)
    names = terms[1] if terms else []
    if names and all(re.search(r"(^|-)nd($|-)", name) for name in names):
        return f"licence {text!r} forbids derivative works (-ND), so it is not allowed (allowed: {listed})"
    if names and all(name in DERIVATIVE_LICENCES | RESTRICTED_LICENCES | ALLOWED_LICENCES for name in names):
        return f"licence {text!r} is not allowed (allowed: {listed})"
    return (f"licence {text!r} is not a recognised licence that permits derivative works, so it is "
            f"not allowed (allowed: {listed})")


def allowed_licence_set(licences: Iterable[str] | None = None) -> frozenset[str]:
    """Normalised allowed licences; None gives `ALLOWED_LICENCES`."""
    if licences is None:
        return ALLOWED_LICENCES
    return frozenset(normalise_licence(licence) for licence in licences)


def is_opt_in(consent: Any) -> bool:
    """True for `true`, "opt-in" or "yes" (any case and spacing); anything else is not consent."""
    if consent is True:
        return True
    if isinstance(consent, str):
        return re.sub(r"[\s_-]+", "-", consent.strip().lower()) in OPT_IN_WORDS
    return False


def is_licence_grant(consent: Any) -> bool:
    """True for "licence-grant" (or "license-grant", any case and spacing)."""
    return isinstance(consent, str) and \
        re.sub(r"[\s_-]+", "-", consent.strip().lower()) in {LICENCE_GRANT, "license-grant"}


def consent_kind(consent: Any) -> str | None:
    """"opt-in", "licence-grant" or None (not consent) for a row's consent value."""
    if is_opt_in(consent):
        return "opt-in"
    return LICENCE_GRANT if is_licence_grant(consent) else None


# --- reading and writing metadata.jsonl -------------------------------------
def read_metadata(folder: str | os.PathLike) -> list[MetadataRow]:
    """Read `folder/metadata.jsonl`, one row per non-blank line.

    Malformed lines come back as rows with `problem` set instead of stopping
    the read. Raises InputError when the file does not exist.
    """
    path = Path(folder) / METADATA_NAME
    if not path.is_file():
        raise InputError(f"{path}: not found (a dataset folder needs {METADATA_NAME})")
    rows = []
    with path.open("rb") as handle:  # line by line: metadata of a large archive stays small
        for number, raw in enumerate(handle, start=1):
            row = _parse_line(number, raw)
            if row is not None:
                rows.append(row)
    return rows


def _parse_line(number: int, raw: bytes) -> MetadataRow | None:
    try:
        text = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
    except UnicodeDecodeError:
        return MetadataRow(number, None, problem="not UTF-8 text")
    if not text:
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        return MetadataRow(number, None, problem=f"not valid JSON ({error.msg}, column {error.colno})")
    except ValueError:  # a number of thousands of digits
        return MetadataRow(number, None, problem="not valid JSON (a number too long to read)")
    except RecursionError:
        return MetadataRow(number, None, problem="not valid JSON (nested too deeply)")
    if not isinstance(record, dict):
        return MetadataRow(number, None, problem=f"expected a JSON object, got {_json_type(record)}")
    name = record.pop("file_name", None)
    if name is None:
        return MetadataRow(number, None, record, problem="no file_name")
    if not isinstance(name, str) or not name.strip():
        return MetadataRow(number, None, record,
                           problem=f"file_name must be a non-empty string, got {name!r}")
    return MetadataRow(number, name, record)


def write_metadata(folder: str | os.PathLike,
                   rows: Iterable[MetadataRow | Mapping[str, Any]]) -> Path:
    """Write `folder/metadata.jsonl` atomically; rows are MetadataRow or dicts with file_name."""
    lines = []
    for index, row in enumerate(rows, start=1):
        record = row.to_dict() if isinstance(row, MetadataRow) else dict(row)
        name = record.pop("file_name", None)
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"metadata row {index}: file_name must be a non-empty string, got {name!r}")
        try:
            lines.append(json.dumps({"file_name": name, **record}, ensure_ascii=False, allow_nan=False))
        except (TypeError, ValueError) as error:
            raise InputError(f"metadata row {index} ({name}): cannot be written as JSON: {error}") from None
    path = Path(folder) / METADATA_NAME
    write_text_atomic(path, "".join(line + "\n" for line in lines))
    return path


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


# --- label checks -------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_tempo(value: Any) -> str | None:
    """A number of beats per minute, or text a prompt reads as one ("120", "120 BPM"), as a
    row's `bpm` is read (the same text under `tempo` refused the song)."""
    low, high = TEMPO_RANGE
    if isinstance(value, str):
        try:
            value = float(value.lower().replace("bpm", "").strip())
        except ValueError:
            return f"tempo must be a number of beats per minute (96, or \"96 bpm\"), got {value!r}"
    if not _is_number(value) or not math.isfinite(value):
        return f"tempo must be a number of beats per minute, got {value!r}"
    if not low <= value <= high:
        return f"tempo {value:g} is outside {low:g}..{high:g} BPM"
    return None


def _check_key(value: Any) -> str | None:
    try:
        Key.parse(value)
    except PlanError as error:
        return str(error)
    return None


def _check_beats(name: str, value: Any) -> str | None:
    low, high = BEATS_PER_BAR_RANGE
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        return f"{name} must be a whole number of beats per bar in {low}..{high}, got {value!r}"
    return None


def _check_meter(value: Any) -> str | None:
    """An int (beats per bar) or a time signature such as "3/4" or "6/8"."""
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(1|2|4|8|16|32)\s*", value)
        if not match:
            return f"meter must be beats per bar or a time signature such as '3/4', got {value!r}"
        return _check_beats("meter", int(match.group(1)))
    return _check_beats("meter", value)


def _check_text(name: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if isinstance(value, str) else f"{name} must be a string, got {value!r}"
    return check


def _check_labels(name: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return None
        return f"{name} must be a string or a list of strings, got {value!r}"
    return check


# Fields with a known type; any other field is kept unchecked (persona fields and the like).
FIELD_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "tempo": _check_tempo,
    "key": _check_key,
    "meter": _check_meter,
    "beats_per_bar": lambda value: _check_beats("beats_per_bar", value),
    "lyrics": _check_text("lyrics"),
    "title": _check_text("title"),
    "mood": _check_labels("mood"),
    "genre": _check_labels("genre"),
}


def unsafe_file_name(file_name: str) -> str | None:
    """Why `file_name` points outside the dataset folder, or None when it does not."""
    name = PurePosixPath(file_name)
    if name.is_absolute() or ".." in name.parts or "\\" in file_name:
        return f"file_name {file_name!r} must be a relative path inside the dataset folder"
    return None


def row_problems(row: MetadataRow, allowed: frozenset[str]) -> list[str]:
    """Everything wrong with a row's labels, licence and consent (no audio is read)."""
    problems = []
    for key, check in FIELD_CHECKS.items():
        if row.fields.get(key) not in (None, ""):  # a null or empty label is a label left out
            problem = check(row.fields[key])
            if problem:
                problems.append(problem)
    licence = row.fields.get("licence", row.fields.get("license"))
    if licence is None:
        problems.append("no licence field")
    elif not isinstance(licence, str):
        problems.append(f"licence must be a string, got {licence!r}")
    else:
        problem = licence_problem(licence, allowed)
        if problem:
            problems.append(problem)
    if "consent" not in row.fields:
        problems.append("no consent field (needs opt-in: true, \"opt-in\" or \"yes\"; or \"licence-grant\" "
                        "with a licence that permits derivative works)")
    elif is_licence_grant(row.fields["consent"]):
        if not isinstance(licence, str) or not permits_derivatives(licence):
            problems.append(f"consent 'licence-grant' needs a licence that permits derivative works; "
                            f"{licence!r} is not one")
    elif not is_opt_in(row.fields["consent"]):
        problems.append(f"consent {row.fields['consent']!r} is not opt-in (nor licence-grant)")
    return problems
