"""Fitting a lyric line to melody notes: one syllable per note, melisma where notes are spare.

`fit_line` returns one entry per note: the syllable text when a new syllable starts on the
note, MELISMA ("_") when the previous syllable is held over it, None for every note of a line
with no syllables. A line with more syllables than notes first goes through `notes_for_line`,
which splits the longest notes until every syllable has one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lyrics.errors import LyricsError
from lyrics.syllables import count_syllables, stresses, syllables

MELISMA = "_"

# Alignment costs (arbitrary units): a stressed syllable on a weak note is worse than an
# unstressed one on a strong note; holding the last or a stressed syllable is cheapest.
_STRESSED_ON_WEAK = 1.0
_UNSTRESSED_ON_STRONG = 0.5
_HOLD = 0.3
_HOLD_STRESSED = 0.2
_HOLD_LAST = 0.1


@dataclass(frozen=True)
class Slot:
    """One melody note that can carry a syllable.

    start: beats from the start of the section; duration: beats (> 0);
    strong: whether the note falls on a strong beat (downbeat or accent).
    """

    start: float
    duration: float
    strong: bool = False


def syllable_counts(lines: list[str]) -> list[int]:
    """Syllables per line, for the melody planner to give each line enough notes."""
    return [count_syllables(line) for line in lines]


def notes_for_line(line: str, slots: list[Slot]) -> list[Slot]:
    """The slots, with the longest notes halved (first half keeps its strength, second half
    weak) until there is one note per syllable of the line. Enough slots come back unchanged.
    """
    _check_slots(slots, line)
    notes = list(slots)
    missing = count_syllables(line) - len(notes)
    if missing > 0 and not notes:
        raise LyricsError(f"lyrics: line {line!r} has syllables but no notes to sing them on")
    for _ in range(max(missing, 0)):
        longest = max(range(len(notes)), key=lambda i: (notes[i].duration, -i))
        note = notes[longest]
        half = note.duration / 2
        notes[longest:longest + 1] = [
            Slot(note.start, half, note.strong), Slot(note.start + half, half, False),
        ]
    return notes


def fit_line(line: str, slots: list[Slot]) -> list[str | None]:
    """One entry per slot: the syllable starting on it, MELISMA ("_") for a held syllable, or
    None for every slot when the line has no syllables.

    Each syllable starts on exactly one slot, in order; stressed syllables land on strong slots
    where the alignment allows, and spare slots extend stressed or final syllables.
    Raises LyricsError when the line has more syllables than slots (use `notes_for_line`).
    """
    _check_slots(slots, line)
    texts = syllables(line)
    if not texts:
        return [None] * len(slots)
    if len(texts) > len(slots):
        raise LyricsError(
            f"lyrics: line {line!r} has {len(texts)} syllables for {len(slots)} notes "
            "(give it notes_for_line(line, slots))"
        )
    fitted: list[str | None] = [MELISMA] * len(slots)
    for text, slot_index in zip(texts, _align(stresses(line), slots)):
        fitted[slot_index] = text
    return fitted


def _check_slots(slots: list[Slot], line: str) -> None:
    previous_start = -math.inf
    for i, slot in enumerate(slots):
        if not (math.isfinite(slot.start) and math.isfinite(slot.duration)):
            raise LyricsError(f"lyrics: note {i} for line {line!r} has a non-finite time")
        if slot.start < 0 or slot.duration <= 0:
            raise LyricsError(
                f"lyrics: note {i} for line {line!r} needs start >= 0 and duration > 0 beats"
            )
        if slot.start < previous_start:
            raise LyricsError(f"lyrics: notes for line {line!r} are not in time order at note {i}")
        previous_start = slot.start


def _align(marks: list[int], slots: list[Slot]) -> list[int]:
    """Index of the slot where each syllable starts, minimising the alignment cost.

    Dynamic programme over (syllable, slot): slot j carries syllable i, either starting it or
    holding it from slot j - 1. Needs len(marks) <= len(slots).
    """
    n, m = len(marks), len(slots)
    cost = [[math.inf] * m for _ in range(n)]
    started = [[False] * m for _ in range(n)]  # back pointer: syllable i starts at slot j
    cost[0][0], started[0][0] = _place_cost(marks[0], slots[0]), True
    for j in range(1, m):
        for i in range(max(0, n - (m - j)), min(n, j + 1)):
            hold = cost[i][j - 1] + _hold_cost(marks[i], i == n - 1)
            start = cost[i - 1][j - 1] + _place_cost(marks[i], slots[j]) if i else math.inf
            cost[i][j], started[i][j] = (start, True) if start <= hold else (hold, False)
    starts, i = [0] * n, n - 1
    for j in range(m - 1, -1, -1):
        if started[i][j]:
            starts[i] = j
            i -= 1
            if i < 0:
                break
    return starts


def _place_cost(mark: int, slot: Slot) -> float:
    if mark and not slot.strong:
        return _STRESSED_ON_WEAK
    if not mark and slot.strong:
        return _UNSTRESSED_ON_STRONG
    return 0.0


def _hold_cost(mark: int, last: bool) -> float:
    if last:
        return _HOLD_LAST
    return _HOLD_STRESSED if mark else _HOLD
