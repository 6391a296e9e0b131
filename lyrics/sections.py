"""Lyric sections: parsing tagged or untagged lyric text, and writing the tagged form back.

Tagged text has one tag per line, `[verse]`, `[Chorus 2]`, `[pre-chorus]`, `[Verse 1: Artist]`
(any case, numbered or not; the number is ignored and sections are numbered in order of
appearance per kind), or written as lyric sheets on the web write them: `(Chorus)`, `Verse 2:`,
`Chorus x2`, `[Chorus] x2`, a bare `Chorus` on its own line. A repeat mark (`x2`) sings the
section that many times. Every line up to the next tag belongs to the tagged section; blank lines
inside a section are dropped. A tagged chorus (or pre-chorus, post-chorus, hook) with no lines
repeats the previous section of its kind.

Untagged text (before the first tag, or all of it) is split into blocks at blank lines; a block
whose text recurs is a chorus, every other block a verse.

Lines are kept whole, however long (a 300-character line stays one line; the melody gets
extra notes for it through `notes_for_line`); runs of whitespace inside a line become one space.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field

from lyrics.errors import LyricsError

logger = logging.getLogger(__name__)

SECTION_KINDS = (
    "intro", "verse", "pre-chorus", "chorus", "post-chorus", "bridge",
    "solo", "breakdown", "drop", "hook", "interlude", "outro",
)
# A tag of one of these kinds with no lines repeats the previous section of the kind.
REPEATING_KINDS = frozenset({"chorus", "pre-chorus", "post-chorus", "hook"})
_KIND_BY_LABEL = {kind.replace("-", ""): kind for kind in SECTION_KINDS} | {
    "refrain": "chorus", "prehook": "pre-chorus", "build": "pre-chorus", "buildup": "pre-chorus",
    "lift": "pre-chorus", "postrefrain": "post-chorus", "break": "breakdown",
    "instrumental": "solo", "middleeight": "bridge", "middle": "bridge", "prelude": "intro",
    "coda": "outro", "ending": "outro", "tag": "outro",
}
_TAG = re.compile(r"\[([^\[\]]*)\]")
_REPEAT_MARK = re.compile(r"\(?\s*[x×]\s*\d+\s*\)?\s*$", re.IGNORECASE)
_REPEAT_COUNT = re.compile(r"[x×]\s*(\d+)\s*\)?\s*$", re.IGNORECASE)
# Labels written without square brackets, as lyric sheets on the web have them: "(Chorus)",
# "Chorus:", "Verse 2:", "Chorus x2", "[Chorus] x2", or a bare "Chorus" / "Verse 1" (the main kinds only:
# a sung line is rarely one of those words alone). A parenthesised line must name a kind with its
# letters alone ("(Chorus)", not "(hold on, break it down)", which is a backing vocal).
_LOOSE_TAG = re.compile(r"^(?:\((?P<paren>[^()]{1,30})\)|\[(?P<square>[^\[\]]{1,30})\]|(?P<bare>[A-Za-z][A-Za-z \-]{0,20}?\s*\d{0,2}))"
                        r"\s*:?\s*(?P<repeat>\(?\s*[x×]\s*\d+\s*\)?)?\s*:?$", re.IGNORECASE)
_BARE_KINDS = frozenset({"verse", "chorus", "pre-chorus", "post-chorus", "bridge", "hook", "intro", "outro"})
MAX_REPEAT = 8  # "[Chorus x2]": the section sung this many times at most
# a line's own repeat mark, as lyric sheets write it at its end: "Hold on to me (x2)", "... x3", "... [2x]"
_LINE_REPEAT = re.compile(r"\s+(?:[(\[]\s*(?:[x×]\s*(\d+)|(\d+)\s*[x×])\s*[)\]]|[x×](\d+))\s*$", re.IGNORECASE)


@dataclass
class LyricSection:
    """One section of a song's lyrics.

    name: unique, kind plus its number in order of appearance ("verse1", "chorus2").
    kind: one of SECTION_KINDS.
    lines: the sung lines (empty for an instrumental section).
    repeat_of: name of the first earlier section of the same kind with the same lines
        (compared ignoring case, spacing and punctuation), or None.
    """

    name: str
    kind: str
    lines: list[str] = field(default_factory=list)
    repeat_of: str | None = None


@dataclass
class _Block:
    kind: str
    lines: list[str]
    tagged: bool
    times: int = 1  # "[Chorus x2]": sung twice


def kind_of_label(label: str) -> str | None:
    """The section kind a tag label names ("Verse 2" -> "verse", "Refrain" -> "chorus"),
    or None when the label names no kind."""
    label = _REPEAT_MARK.sub("", label.split(":")[0]).casefold()
    letters = re.sub(r"[^a-z]", "", label)
    if letters in _KIND_BY_LABEL:
        return _KIND_BY_LABEL[letters]
    for word in re.findall(r"[a-z]+", label):  # "Final Chorus", "Guitar Solo"
        if word in _KIND_BY_LABEL:
            return _KIND_BY_LABEL[word]
    return None


def printable(text: str) -> str:
    """`text` on one line without control characters (a stray \\x01 from a paste has no place in
    a lyric or a title, nor in the XML, LRC and FLAC tags made of them), runs of spaces made one."""
    return " ".join("".join(c for c in text if c.isspace() or unicodedata.category(c) != "Cc").split())


_PRONOUN_I = re.compile(r"(?<![\w'’])i(?=(?:['’](?:m|ll|ve|d|s))?(?![\w'’]))")


def capital_i(line: str) -> str:
    """A line with the pronoun written as "I" ("i'm" -> "I'm"), what a model of lower-cased
    words writes back in lower case."""
    return _PRONOUN_I.sub("I", line)


def title_case(text: str) -> str:
    """A title: each word's first letter capital, the rest of it as written ("won't back down"
    -> "Won't Back Down"; str.title() gives "Won'T")."""
    return " ".join(word[:1].upper() + word[1:] for word in capital_i(text).split(" "))


def parse(text: str) -> list[LyricSection]:
    """Sections of a lyric text, tagged or untagged (see the module docstring)."""
    if not isinstance(text, str):
        raise LyricsError(f"lyrics: expected text, got {type(text).__name__}")
    if not text.strip():
        raise LyricsError("lyrics: empty text (no lines to sing)")
    sections = _name_sections(_blocks(text.splitlines()))
    if not any(section.lines for section in sections):
        raise LyricsError("lyrics: only section tags, no lines to sing")
    from lyrics.syllables import words

    if not any(words(line) for section in sections for line in section.lines):
        raise LyricsError("lyrics: no words to sing (only emoji, symbols or punctuation)")
    return sections


def to_text(sections: list[LyricSection]) -> str:
    """The tagged form of sections, `[Verse 1]` then its lines, a blank line between sections.

    Names are not written: parsing numbers sections again in order of appearance, so
    `parse(to_text(parse(text))) == parse(text)`.
    """
    counts: dict[str, int] = {}
    parts = []
    for section in sections:
        _check_writable(section)
        counts[section.kind] = counts.get(section.kind, 0) + 1
        parts.append("\n".join([f"[{section.kind.title()} {counts[section.kind]}]", *section.lines]))
    return "\n\n".join(parts) + "\n"


def _check_writable(section: LyricSection) -> None:
    if section.kind not in SECTION_KINDS:
        raise LyricsError(f"lyrics: section {section.name!r} has unknown kind {section.kind!r}")
    for line in section.lines:
        if (not line.strip() or len(line.splitlines()) != 1 or _TAG.fullmatch(line.strip())
                or _loose_tag(" ".join(line.split()))):
            raise LyricsError(
                f"lyrics: section {section.name!r} line {line!r} is blank, holds a line break "
                "or looks like a tag"
            )


def _blocks(raw_lines: list[str]) -> list[_Block]:
    """Untagged blocks before the first tag, then one block per tag."""
    untagged: list[list[str]] = [[]]
    tagged: list[_Block] = []
    for raw in raw_lines:
        line = printable(raw)
        tag = _TAG.fullmatch(line)
        loose = None if tag else _loose_tag(line)
        if tag or loose:
            label = tag.group(1) if tag else loose
            tagged.append(_Block(_kind_of_tag(label), [], tagged=True, times=_repeat_count(label)))
        elif tagged:
            if line:
                tagged[-1].lines.extend(_sung_lines(line))
        elif line:
            untagged[-1].extend(_sung_lines(line))
        elif untagged[-1]:
            untagged.append([])
    return _untagged_blocks([block for block in untagged if block]) + tagged


def _sung_lines(line: str) -> list[str]:
    """A line as sung: "Hold on to me (x2)" is the line twice, without its mark (it was sung "ex two")."""
    match = _LINE_REPEAT.search(line)
    if match is None or not _LINE_REPEAT.sub("", line).strip():
        return [line]
    times = int(match.group(1) or match.group(2) or match.group(3))
    if not 1 <= times <= MAX_REPEAT:
        logger.warning("lyrics: %r asks for %d times; a line is sung 1 to %d times", line, times, MAX_REPEAT)
    return [_LINE_REPEAT.sub("", line)] * max(1, min(MAX_REPEAT, times))


def is_tag(line: str) -> bool:
    """Whether a line is a section tag, in any style `parse` reads ("[Chorus]", "Verse 1:",
    "(Bridge)", "Chorus x2")."""
    line = printable(line)
    return bool(_TAG.fullmatch(line) or _loose_tag(line))


def _loose_tag(line: str) -> str | None:
    """The label of a section tag written without square brackets around it alone ("(Chorus)",
    "Verse 2:", "[Chorus] x2", a bare "Chorus"), with its repeat mark; None for a sung line."""
    match = _LOOSE_TAG.match(line)
    if not match or not line:
        return None
    label = match.group("paren") or match.group("square") or match.group("bare") or ""
    letters = re.sub(r"[^a-z]", "", _REPEAT_MARK.sub("", label).casefold())
    kind = _KIND_BY_LABEL.get(letters)
    if kind is None or (match.group("bare") and not line.endswith(":") and not match.group("repeat")
                        and kind not in _BARE_KINDS):
        return None
    return f"{label} {match.group('repeat') or ''}".strip()


def _repeat_count(label: str) -> int:
    """How many times a tag asks for its section ("Chorus x2": 2), within 1..MAX_REPEAT."""
    match = _REPEAT_COUNT.search(label)
    if match and int(match.group(1)) > MAX_REPEAT:
        logger.warning("lyrics: %r asks for %s times; a section is sung %d times at most", label, match.group(1),
                    MAX_REPEAT)
    elif match and int(match.group(1)) < 1:
        logger.warning("lyrics: %r asks for %s times; a tagged section is sung once (leave its lines out to "
                       "drop it)", label, match.group(1))
    return max(1, min(MAX_REPEAT, int(match.group(1)))) if match else 1


def _kind_of_tag(label: str) -> str:
    kind = kind_of_label(label)
    if kind is None:
        logger.warning("lyrics: unknown section tag [%s], read as a verse", label)
        return "verse"
    return kind


def _untagged_blocks(blocks: list[list[str]]) -> list[_Block]:
    """A block whose text recurs is a chorus; every other block is a verse."""
    seen: dict[tuple[str, ...], int] = {}
    for lines in blocks:
        key = _lines_key(lines)
        seen[key] = seen.get(key, 0) + 1
    return [
        _Block("chorus" if seen[_lines_key(lines)] > 1 else "verse", lines, tagged=False)
        for lines in blocks
    ]


def _name_sections(blocks: list[_Block]) -> list[LyricSection]:
    counts: dict[str, int] = {}
    first_with: dict[tuple[str, tuple[str, ...]], str] = {}
    latest: dict[str, LyricSection] = {}
    sections = []
    for block in [copy for each in blocks for copy in [each] * each.times]:
        counts[block.kind] = counts.get(block.kind, 0) + 1
        lines = block.lines
        if not lines and block.tagged and block.kind in REPEATING_KINDS and block.kind in latest:
            lines = list(latest[block.kind].lines)
        elif not lines and block.tagged and block.kind in REPEATING_KINDS:
            logger.warning("lyrics: [%s] has no lines and no earlier %s to repeat; it is instrumental",
                           block.kind, block.kind)
        section = LyricSection(f"{block.kind}{counts[block.kind]}", block.kind, lines)
        if lines:
            key = (block.kind, _lines_key(lines))
            section.repeat_of = first_with.setdefault(key, section.name)
            if section.repeat_of == section.name:
                section.repeat_of = None
            latest[block.kind] = section
        sections.append(section)
    return sections


def _lines_key(lines: list[str]) -> tuple[str, ...]:
    """Lines compared ignoring case, spacing and punctuation (kept when a line has only those)."""
    return tuple("".join(c for c in line.casefold() if c.isalnum()) or line for line in lines)
