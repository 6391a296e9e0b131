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
  (a repeat follows its source when the source's bars change; chords typed into it are
  refused, naming the source to edit; new words make it a section of its own on the same chords);
- a new key of the same mode transposes chords and melodies; a new mode writes the
  chords and melodies again; a new tempo changes only the timing; a new meter
  sketches every melody again.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import replace

from structure.harmony import progression
from structure.planner import lyric_floor, sketch_melody, transpose_chords, transposed
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


def _number(value, path: str, *, integer: bool = False, bounds: tuple | None = None) -> float:
    """A number typed in a cell or field ("4", 4, 4.0), whole when `integer`, within `bounds`."""
    text = str(value if value is not None else "").strip()[:40]
    kind = "a whole number" if integer else "a number"
    if not text:  # a new row's cell (the page may draw it as 0)
        raise PlanError(path, f"empty: give {kind}" + (f" ({bounds[0]:g}..{bounds[1]:g})" if bounds else ""))
    try:
        number = float(text)
    except ValueError:
        raise PlanError(path, f"{text!r} is not {kind}") from None
    whole = math.isfinite(number) and (not integer or number == int(number))
    if bounds is not None and not (whole and bounds[0] <= number <= bounds[1]):
        raise PlanError(path, f"{text} is outside {bounds[0]:g}..{bounds[1]:g}" + (" (a whole number)" if integer else ""))
    if not whole:
        raise PlanError(path, f"{text!r} is not {kind}")
    return int(number) if integer else number


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
    """The lines of a lyrics cell: split at a "/" with a space on either side ("24/7" and
    "and/or" are words of a line)."""
    return [line.strip() for line in re.split(r"\s+/\s*|\s*/\s+", text) if line.strip()]


def _cycled(chords: list[list[str]], bars: int) -> list[list[str]]:
    return [list(chords[b % len(chords)]) for b in range(bars)] if chords else []


def _sketch(name: str, kind: str, bars: int, chords: list[list[str]], lines: list[str], key: Key,
            beats_per_bar: int, energy: float, seed: int, melody_check, division: int = 2) -> list[Note]:
    """The planner's melody for the section, seeded by the plan, the name and what it sets."""
    rng = random.Random(f"{seed}:{name}:{bars}:{'|'.join(' '.join(b) for b in chords)}:{'/'.join(lines)}")
    return sketch_melody(name, kind, chords, lines, key, beats_per_bar, rng, energy=energy,
                         melody_check=melody_check, division=division)


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
    tempo = plan.tempo_bpm if tempo_bpm is None else _number(tempo_bpm, "tempo_bpm", bounds=TEMPO_RANGE)
    meter = plan.beats_per_bar if beats_per_bar is None else _number(beats_per_bar, "beats_per_bar", integer=True,
                                                                      bounds=BEATS_PER_BAR_RANGE)
    style = get_style(plan.style)
    division = plan.beat_division  # beats per bar counts the plan's beats: dotted quarters in 6/8
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
        bars = _number(_cell(row, 2), f"{path}.bars", integer=True)
        chords_text = _text(row, 3, f"{path}.chords")
        energy = _number(_cell(row, 4), f"{path}.energy", bounds=(0.0, 1.0))
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
            shown = before_row[3] if before_row is not None else ""
            source_chords = BAR_SEPARATOR.join(" ".join(bar) for bar in source.chords)
            if chords_text.strip() and chords_text.strip() not in (shown.strip(), source_chords):
                # a repeat plays its source's chords: typed ones were dropped without a word
                raise PlanError(f"{path}.chords", f"{name} repeats {source.name}, so it plays {source.name}'s chords; "
                                                  f"edit {source.name}'s chords, or clear {name}'s repeat_of")
            lines = _lines(lyrics_text)
            if before_row is not None and lyrics_text == before_row[6] or not lines:
                lines = list(source.lyrics)
            section = Section(name=name, kind=kind, bars=bars, chords=[list(b) for b in source.chords], energy=energy,
                              melody=[Note(**vars(n)) for n in source.melody], lyrics=lines, repeat_of=repeat_of,
                              variation=before.variation if before is not None and before.repeat_of else 0.0,
                              seed=before.seed if before is not None else random.Random(f"{seed}:{name}").randrange(2**31))
            if lines != list(source.lyrics):  # new words on the same music: the melody follows them
                section.melody = _sketch(name, kind, bars, section.chords, lines, new_key, meter, energy, seed,
                                         melody_check, division)
                section.repeat_of, section.variation = None, 0.0
        else:
            if not 1 <= bars <= MAX_BARS_PER_SECTION:
                raise PlanError(f"{path}.bars", f"{bars} is outside 1..{MAX_BARS_PER_SECTION}")
            chords = parse_chords(chords_text, f"{path}.chords")
            lines = _lines(lyrics_text)
            need = lyric_floor(lines, meter, division)
            if bars < need:  # the melody would drop lines, or sing them as a patter nobody follows
                raise PlanError(f"{path}.bars", f"{bars} too few for its {len(lines)} lyric lines: at least {need} "
                                                f"(a bar a line, at most {division} syllables a beat)")
            chords_kept = before_row is not None and chords_text == before_row[3]
            unchanged = (before is not None and before.repeat_of is None and chords_kept
                         and [kind, bars, lyrics_text] == [before_row[1], before_row[2], before_row[6]])
            if unchanged and meter == plan.beats_per_bar and same_mode:
                section = replace(before, energy=energy, chords=[list(b) for b in before.chords],
                                  melody=[Note(**vars(n)) for n in before.melody], lyrics=list(before.lyrics))
                if shift:
                    section = transposed(section, shift)
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
                        chords = transpose_chords(chords, shift)
                melody = _sketch(name, kind, bars, chords, lines, new_key, meter, energy, seed, melody_check,
                                 division)
                section = Section(name=name, kind=kind, bars=bars, chords=chords, energy=energy, melody=melody,
                                  lyrics=lines, seed=before.seed if before is not None
                                  else random.Random(f"{seed}:{name}").randrange(2**31))
        made[name] = section
        sections.append(section)
    song = SongPlan(title=check_text(title, "title").strip() or plan.title if title is not None else plan.title,
                    tempo_bpm=tempo, beats_per_bar=meter, key=new_key, sections=sections, tags=dict(plan.tags),
                    style=plan.style, beat_division=division)
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


def _words_match_melody(section: Section) -> bool:
    import lyrics as lyrics_pkg

    want = [syllable for line in section.lyrics for syllable in lyrics_pkg.syllables(line)]
    got = [n.syllable for n in section.melody if n.syllable and n.syllable != lyrics_pkg.MELISMA]
    return want == got


def follow_edited_lyrics(plan: SongPlan) -> tuple[SongPlan, list[str]]:
    """A plan whose words were edited by hand (plan.json) with melodies that sing them, and
    the names of the sections that changed. As in the plan editor, new words on a section
    sketch its melody again (the notes still carried the old words' syllables, and words past
    the old notes were dropped from the lyrics); a repeat of an edited section follows it.
    A section too short for its new lines, or a repeat given words other than its source's,
    is refused by its field."""
    sections: list[Section] = []
    changed: list[str] = []
    old_melody: dict[str, list] = {}  # an edited section's melody before it was sketched again
    for i, section in enumerate(plan.sections):
        path = f"sections[{i}].lyrics"
        if section.repeat_of is not None:
            source = next(s for s in sections if s.name == section.repeat_of)
            unedited = _words_match_melody(section) and [vars(n) for n in section.melody] == [
                vars(n) for n in old_melody.get(source.name, [])]
            same_words = list(section.lyrics) == list(source.lyrics)
            if (same_words and not _words_match_melody(section)) or (source.name in changed and (unedited or same_words)):
                section = replace(section, lyrics=list(source.lyrics), melody=[Note(**vars(n)) for n in source.melody])
                changed.append(section.name)
            elif not _words_match_melody(section):
                raise PlanError(path, f"are not the words of {source.name!r}, which it repeats (a repeat is sung as "
                                      f"its source): edit {source.name}'s words, or take out its repeat_of")
        elif not _words_match_melody(section):
            need = lyric_floor(section.lyrics, plan.beats_per_bar, plan.beat_division)
            if section.bars < need:
                raise PlanError(path, f"{len(section.lyrics)} lines for {section.bars} bars: they need at least {need} "
                                      f"(a bar a line, at most {plan.beat_division} syllables a beat)")
            old_melody[section.name] = section.melody
            section = replace(section, melody=_sketch(section.name, section.kind, section.bars, section.chords,
                                                      list(section.lyrics), plan.key, plan.beats_per_bar,
                                                      section.energy, section.seed, None, plan.beat_division))
            changed.append(section.name)
        sections.append(section)
    if not changed:
        return plan, []
    edited = replace(plan, sections=sections)
    validate(edited)
    return edited, changed
