"""Timed lyrics: LRC (standard and enhanced word-timed) and JSON export."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from lyrics.errors import LyricsError

_EPSILON = 1e-6  # seconds of slack when comparing times


@dataclass
class TimedLine:
    """One sung line. start, end: seconds from the start of the song (end > start).

    words: optional (start seconds, word) pairs, in time order inside [start, end].
    """

    start: float
    end: float
    text: str
    words: list[tuple[float, str]] | None = None


def to_lrc(
    lines: list[TimedLine],
    *,
    title: str | None = None,
    duration: float | None = None,
    enhanced: bool = False,
) -> str:
    """LRC text: `[mm:ss.xx]line` per line, and an empty `[mm:ss.xx]` at a line's end when
    silence follows. enhanced=True adds word times, `[mm:ss.xx]<mm:ss.xx>word <mm:ss.xx>word
    <mm:ss.xx>` (the last stamp is the line's end), to lines that have `words`.

    title: written as `[ti:...]`; duration: song length in seconds, written as `[length:...]`
    and checked to hold every line. Raises LyricsError for negative, non-finite, overlapping or
    out-of-order times.
    """
    _check(lines, duration)
    out = []
    if title:
        out.append(f"[ti:{_one_line(title).replace('[', '(').replace(']', ')')}]")
    if duration is not None:
        out.append(f"[length:{_stamp(duration)}]")
    for i, line in enumerate(lines):
        out.append(f"[{_stamp(line.start)}]{_sung_text(line, enhanced)}")
        is_last = i + 1 == len(lines)
        if is_last or _stamp(lines[i + 1].start) != _stamp(line.end):
            out.append(f"[{_stamp(line.end)}]")  # clears the display during the silence
    return "\n".join(out) + "\n"


def to_json_timed(lines: list[TimedLine], *, duration: float | None = None) -> str:
    """JSON list of lines: {"start", "end", "text", "words": [{"start", "word"}] or null},
    times in seconds rounded to milliseconds. Validated as `to_lrc` does."""
    _check(lines, duration)
    records = [
        {
            "start": round(line.start, 3),
            "end": round(line.end, 3),
            "text": _one_line(line.text),
            "words": None if line.words is None else [
                {"start": round(time, 3), "word": _one_line(word)} for time, word in line.words
            ],
        }
        for line in lines
    ]
    return json.dumps(records, ensure_ascii=False, indent=1)


def _sung_text(line: TimedLine, enhanced: bool) -> str:
    if not enhanced or not line.words:
        return _one_line(line.text)
    timed = " ".join(f"<{_stamp(time)}>{_one_line(word)}" for time, word in line.words)
    return f"{timed} <{_stamp(line.end)}>"


def _stamp(seconds: float) -> str:
    """mm:ss.xx for a time in seconds (minutes grow past 99 when needed)."""
    minutes, centis = divmod(round(seconds * 100), 6000)
    return f"{minutes:02d}:{centis // 100:02d}.{centis % 100:02d}"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _check(lines: list[TimedLine], duration: float | None) -> None:
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise LyricsError(f"lyrics: song duration {duration!r} s must be finite and > 0")
    previous_end = 0.0
    for i, line in enumerate(lines):
        where = f"lyrics: timed line {i} ({_one_line(line.text)[:40]!r})"
        if not (math.isfinite(line.start) and math.isfinite(line.end)):
            raise LyricsError(f"{where}: times must be finite")
        if line.start < 0 or line.end <= line.start:
            raise LyricsError(f"{where}: needs 0 <= start < end, got {line.start}..{line.end} s")
        if line.start < previous_end - _EPSILON:
            raise LyricsError(f"{where}: starts at {line.start} s, before the previous line ends")
        if duration is not None and line.end > duration + _EPSILON:
            raise LyricsError(f"{where}: ends at {line.end} s, after the song ({duration} s)")
        _check_words(line, where)
        previous_end = line.end


def _check_words(line: TimedLine, where: str) -> None:
    previous = line.start
    for time, word in line.words or []:
        if not math.isfinite(time) or time < previous - _EPSILON or time > line.end + _EPSILON:
            raise LyricsError(
                f"{where}: word {word!r} at {time} s is out of order or outside the line"
            )
        previous = time
