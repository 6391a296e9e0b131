"""Edit a plan as a table: one row a section (the studio's plan editor).

`plan_rows(plan)` gives the rows; `apply_rows(plan, rows, ...)` gives the plan the edited
rows describe, validated as any plan is (a `PlanError` names the row and column). What a
row keeps and what is written again:

- an unchanged row keeps its section exactly (melody, lyrics' syllables, seed);
- energy alone changes nothing else;
- new bars keep the chords, cycled or cut to the new length, and sketch a new melody;
- new chords or lyrics sketch a new melody on them (one note a syllable);
- a new row (a name not in the plan) gets the style's chords for its kind and a melody;
- a row naming `repeat_of` is that section again: same bars, chords, melody and words
  (a repeat follows its source when the source's bars change);
- a new key of the same mode transposes chords and melodies; a new mode writes the
  chords and melodies again; a new tempo changes only the timing; a new meter
  sketches every melody again.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

from structure.harmony import NO_CHORD, progression, transpose_symbol
from structure.melody import sketch_section
from structure.schema import (
    BEATS_PER_BAR_RANGE,
    MAX_BARS_PER_SECTION,
    MAX_SECTIONS,
    SECTION_KINDS,
    TEMPO_RANGE,
    Key,
    Note,
    PlanError,
    Section,
    SongPlan,
    check_text,
    validate,
)

COLUMNS = ("section", "kind", "bars", "chords", "energy", "repeat_of", "lyrics")
BAR_SEPARATOR = " | "  # chords: "Am F | C G" is two bars
LINE_SEPARATOR = " / "  # lyrics: "first line / second line"


def plan_rows(plan: SongPlan) -> list[list]:
    """One row a section, in `COLUMNS` order."""
    return [[s.name, s.kind, s.bars, BAR_SEPARATOR.join(" ".join(bar) for bar in s.chords), round(s.energy, 3),
             s.repeat_of or "", LINE_SEPARATOR.join(s.lyrics)] for s in plan.sections]


def _cell(row: list, column: int, default=""):
    value = row[column] if column < len(row) else default
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return default
    return value


def _text(row: list, column: int, path: str) -> str:
    return check_text(str(_cell(row, column)).strip(), path)


def _integer(row: list, column: int, path: str) -> int:
    value = _cell(row, column)
    try:
        number = float(str(value).strip())
    except ValueError:
        raise PlanError(path, f"{str(value)[:40]!r} is not a whole number") from None
    if not math.isfinite(number) or number != int(number):
        raise PlanError(path, f"{str(value)[:40]!r} is not a whole number")
    return int(number)


def _fraction(row: list, column: int, path: str) -> float:
    value = _cell(row, column)
    try:
        number = float(str(value).strip())
    except ValueError:
        raise PlanError(path, f"{str(value)[:40]!r} is not a number") from None
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise PlanError(path, f"{str(value)[:40]} is outside 0..1")
    return number


def _song_number(value, path: str, bounds: tuple, *, integer: bool = False) -> float:
    """A song field (tempo, meter) checked before anything is sketched with it."""
    try:
        number = float(str(value).strip())
    except ValueError:
        raise PlanError(path, f"{str(value)[:40]!r} is not a number") from None
    lo, hi = bounds
    if not math.isfinite(number) or not lo <= number <= hi or integer and number != int(number):
        raise PlanError(path, f"{str(value)[:40]} is outside {lo:g}..{hi:g}" + (" (a whole number)" if integer else ""))
    return number


def parse_chords(text: str, path: str) -> list[list[str]]:
    """"Am F | C G" -> [["Am", "F"], ["C", "G"]]."""
    from structure.harmony import parse_chord

    if not text.strip():
        return []
    bars = [bar.split() for bar in text.split("|")]
    for b, bar in enumerate(bars):
        if not bar:
            raise PlanError(f"{path}[{b}]", "empty bar (give at least one chord, or 'N' for none)")
        for chord in bar:
            try:
                parse_chord(chord)
            except PlanError as error:
                raise PlanError(f"{path}[{b}]", error.problem) from None
    return bars


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("/") if line.strip()]


def _cycled(chords: list[list[str]], bars: int) -> list[list[str]]:
    return [list(chords[b % len(chords)]) for b in range(bars)] if chords else []


def _transposed(section: Section, semitones: int) -> Section:
    chords = [[transpose_symbol(c, semitones) if c != NO_CHORD else c for c in bar] for bar in section.chords]
    melody = [Note(n.start, n.duration, n.pitch + semitones, n.syllable) for n in section.melody]
    return replace(section, chords=chords, melody=melody)


def _sketch(name: str, kind: str, bars: int, chords: list[list[str]], lines: list[str], key: Key,
            beats_per_bar: int, energy: float, seed: int, melody_check) -> list[Note]:
    """A melody for the section (the planner's sketch, seeded by the plan and the name)."""
    from structure.planner import MELODY_ATTEMPTS, _attach_syllables, _syllable_counts

    rng = random.Random(f"{seed}:{name}:{bars}:{'|'.join(' '.join(b) for b in chords)}:{'/'.join(lines)}")
    counts = _syllable_counts(lines) if lines else None
    copied = None
    for _ in range(MELODY_ATTEMPTS):
        melody = sketch_section(chords, key, beats_per_bar, rng, syllable_counts=counts, energy=energy)
        if kind in ("intro", "outro", "interlude", "breakdown") and not lines:
            melody = [n for n in melody if n.start < beats_per_bar * 2]
        copied = melody_check(melody, beats_per_bar) if melody_check is not None and melody else None
        if not copied:
            _attach_syllables(melody, lines, beats_per_bar, bars)
            return melody
    raise PlanError("melody", f"section {name}: every one of {MELODY_ATTEMPTS} melody sketches repeats a learnt "
                              f"melody (last: {copied})")


def apply_rows(plan: SongPlan, rows: list[list], *, tempo_bpm: float | None = None, key: str | None = None,
               beats_per_bar: int | None = None, title: str | None = None, seed: int = 0,
               melody_check=None) -> SongPlan:
    """The plan the edited `rows` (and song fields) describe; PlanError names the first bad cell
    as `sections[i].column`."""
    from structure.styles import get_style

    rows = [list(r) for r in rows if any(str(_cell(list(r), c)).strip() for c in range(len(COLUMNS)))]
    if not rows:
        raise PlanError("sections", "the plan needs at least one section")
    if len(rows) > MAX_SECTIONS:
        raise PlanError("sections", f"{len(rows)} sections, more than the limit of {MAX_SECTIONS}")
    new_key = Key.parse(str(key).strip()) if key is not None and str(key).strip() else plan.key
    tempo = plan.tempo_bpm if tempo_bpm is None else _song_number(tempo_bpm, "tempo_bpm", TEMPO_RANGE)
    meter = plan.beats_per_bar if beats_per_bar is None else int(_song_number(beats_per_bar, "beats_per_bar",
                                                                               BEATS_PER_BAR_RANGE, integer=True))
    style = get_style(plan.style)
    old = {s.name: s for s in plan.sections}
    old_rows = {s.name: row for s, row in zip(plan.sections, plan_rows(plan))}
    same_mode = new_key.mode == plan.key.mode
    shift = (new_key.pitch_class - plan.key.pitch_class) % 12
    shift = shift - 12 if shift > 6 else shift
    sections: list[Section] = []
    made: dict[str, Section] = {}
    for i, row in enumerate(rows):
        path = f"sections[{i}]"
        name = _text(row, 0, f"{path}.section")
        if not name:
            raise PlanError(f"{path}.section", "empty (every section needs a name)")
        kind = _text(row, 1, f"{path}.kind").lower()
        if kind not in SECTION_KINDS:
            raise PlanError(f"{path}.kind", f"unknown kind {kind!r} (known: {', '.join(SECTION_KINDS)})")
        bars = _integer(row, 2, f"{path}.bars")
        chords_text = _text(row, 3, f"{path}.chords")
        energy = _fraction(row, 4, f"{path}.energy")
        repeat_of = _text(row, 5, f"{path}.repeat_of") or None
        lyrics_text = _text(row, 6, f"{path}.lyrics")
        before, before_row = old.get(name), old_rows.get(name)
        if repeat_of is not None:
            source = made.get(repeat_of)
            if source is None:
                raise PlanError(f"{path}.repeat_of", f"{repeat_of!r} is not an earlier section")
            if before_row is not None and bars == before_row[2] and before is not None and before.repeat_of == repeat_of:
                bars = source.bars  # the repeat follows its source's new length
            if bars != source.bars:
                raise PlanError(f"{path}.bars", f"a repeat of {source.name!r} must have its {source.bars} bars")
            lines = _lines(lyrics_text)
            if before_row is not None and lyrics_text == before_row[6] or not lines:
                lines = list(source.lyrics)
            section = Section(name=name, kind=kind, bars=bars, chords=[list(b) for b in source.chords], energy=energy,
                              melody=[Note(**vars(n)) for n in source.melody], lyrics=lines, repeat_of=repeat_of,
                              variation=before.variation if before is not None and before.repeat_of else 0.0,
                              seed=before.seed if before is not None else random.Random(f"{seed}:{name}").randrange(2**31))
            if lines != list(source.lyrics):  # new words on the same music: the melody follows them
                section.melody = _sketch(name, kind, bars, section.chords, lines, new_key, meter, energy, seed,
                                         melody_check)
                section.repeat_of, section.variation = None, 0.0
        else:
            if not 1 <= bars <= MAX_BARS_PER_SECTION:
                raise PlanError(f"{path}.bars", f"{bars} is outside 1..{MAX_BARS_PER_SECTION}")
            chords = parse_chords(chords_text, f"{path}.chords")
            lines = _lines(lyrics_text)
            chords_kept = before_row is not None and chords_text == before_row[3]
            unchanged = (before is not None and before.repeat_of is None and chords_kept
                         and [kind, bars, lyrics_text] == [before_row[1], before_row[2], before_row[6]])
            if unchanged and meter == plan.beats_per_bar and same_mode:
                section = replace(before, energy=energy, chords=[list(b) for b in before.chords],
                                  melody=[Note(**vars(n)) for n in before.melody], lyrics=list(before.lyrics))
                if shift:
                    section = _transposed(section, shift)
            else:
                if not chords or (chords_kept and not same_mode):  # none given, or written for the old mode
                    chords = progression(style.name, kind, new_key, bars, random.Random(f"{seed}:{name}:chords"))
                else:
                    if chords_kept and bars != before_row[2]:
                        chords = _cycled(chords, bars)
                    if len(chords) != bars:
                        raise PlanError(f"{path}.chords", f"{len(chords)} bars of chords for {bars} bars "
                                                          f"(separate bars with '|', or clear the cell)")
                    if chords_kept and shift:
                        chords = [[transpose_symbol(c, shift) if c != NO_CHORD else c for c in bar] for bar in chords]
                melody = _sketch(name, kind, bars, chords, lines, new_key, meter, energy, seed, melody_check)
                section = Section(name=name, kind=kind, bars=bars, chords=chords, energy=energy, melody=melody,
                                  lyrics=lines, seed=before.seed if before is not None
                                  else random.Random(f"{seed}:{name}").randrange(2**31))
        made[name] = section
        sections.append(section)
    song = SongPlan(title=check_text(title, "title").strip() or plan.title if title is not None else plan.title,
                    tempo_bpm=tempo, beats_per_bar=meter, key=new_key, sections=sections, tags=dict(plan.tags),
                    style=plan.style)
    validate(song)
    return song


def describe_error(error: PlanError, rows: list[list] | None = None) -> str:
    """"row 3 (chorus1), bars: 0 is outside 1..256" from a PlanError with a table path."""
    import re

    match = re.match(r"sections\[(\d+)\]\.?(\w+)?", error.field)
    if not match:
        names = {"tempo_bpm": "tempo (BPM)", "beats_per_bar": "beats per bar"}
        return f"{names.get(error.field, error.field)}: {error.problem}"
    index = int(match.group(1))
    name = ""
    if rows is not None and index < len(rows) and str(_cell(list(rows[index]), 0)).strip():
        name = f" ({str(_cell(list(rows[index]), 0)).strip()[:40]})"
    column = match.group(2) or "section"
    column = {"name": "section", "melody": "lyrics"}.get(column, column)
    return f"row {index + 1}{name}, {column}: {error.problem}"
