"""The song plan: form, tempo, meter, key, chords, melody sketch and lyrics.

`SongPlan` is the one document every other part reads. Its JSON form is
versioned (`PLAN_VERSION`); loading validates every field and raises
`PlanError` naming the field, so the CLI can answer bad input in one line.

Time units: the plan counts in bars and beats. Seconds are derived from
`tempo_bpm` (constant across the song) with `section_times()`. A beat is the
counted (felt) beat: a quarter note in a simple meter (`beat_division` 2: 3/4,
4/4), a dotted quarter in a compound one (`beat_division` 3: 6/8 is two beats a
bar of three eighths, 12/8 four), and `tempo_bpm` counts those beats, as a
metronome mark does.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from lyrics.sections import SECTION_KINDS  # the section kinds a lyric sheet and a plan share

PLAN_VERSION = 1

MODES = ("major", "minor", "dorian", "mixolydian", "lydian", "phrygian", "aeolian", "ionian")
MINOR_LIKE_MODES = ("minor", "aeolian", "dorian", "phrygian")  # a minor third above the tonic
# How a tonic found by pitch class is spelt: flats in major keys (Db, Ab), sharps in minor (C#, G#).
MAJOR_SPELLING = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MINOR_SPELLING = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
TONICS = ("C", "C#", "Db", "D", "D#", "Eb", "E", "F", "F#", "Gb", "G", "G#", "Ab", "A", "A#", "Bb", "B")
PITCH_CLASS = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6,
               "Gb": 6, "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11,
               # spelt on a white key's neighbour: Cb major (seven flats), E# and B# in sharp keys
               "Cb": 11, "Fb": 4, "E#": 5, "B#": 0}


def is_minor_like(mode: str) -> bool:
    """Whether a mode has a minor third (minor, aeolian, dorian, phrygian)."""
    return mode in MINOR_LIKE_MODES


def tonic_name(pitch_class: int, mode: str) -> str:
    """The spelling of a tonic given by pitch class (0 = C) in a mode."""
    return (MINOR_SPELLING if is_minor_like(mode) else MAJOR_SPELLING)[pitch_class % 12]


TEMPO_RANGE = (30.0, 300.0)
BEATS_PER_BAR_RANGE = (1, 12)
BEAT_DIVISIONS = (2, 3)  # simple meters (a beat of two eighths) and compound ones (three)
# What one song may ask for, the same everywhere (plans, prompts' form=, lyrics, input audio):
MAX_SONG_SECONDS = 1800.0  # 30 minutes, as --duration
MAX_SECTIONS = 128
MAX_BARS_PER_SECTION = 256
MAX_NOTES = 20_000  # melody notes in a plan
MAX_LYRICS_CHARACTERS = 50_000


class PlanError(ValueError):
    """A plan field is missing or wrong; the message names the field."""

    def __init__(self, field_path: str, problem: str):
        self.field = field_path
        self.problem = problem
        super().__init__(f"{field_path}: {problem}")

    def __reduce__(self):  # picklable, so worker processes can report it
        return (type(self), (self.field, self.problem))


@dataclass(frozen=True)
class Key:
    tonic: str  # "D", "F#", "Bb"
    mode: str = "major"

    @property
    def pitch_class(self) -> int:
        return PITCH_CLASS[self.tonic]

    def __str__(self) -> str:
        return f"{self.tonic} {self.mode}"

    @classmethod
    def parse(cls, text: str, field_path: str = "key") -> Key:
        """Parse "D minor", "Dm", "f# major", "Bb" (major by default)."""
        if not isinstance(text, str) or not text.strip():
            raise PlanError(field_path, f"expected a key such as 'D minor', got {text!r}")
        match = re.fullmatch(r"\s*([A-Ga-g])\s*([#b♯♭]?)\s*(m|min|maj|[A-Za-z]+)?\s*", text)
        if not match:
            raise PlanError(field_path, f"unknown key {text!r} (expected e.g. 'D minor', 'F# major', 'Bbm')")
        letter, accidental, mode = match.groups()
        accidental = {"♯": "#", "♭": "b"}.get(accidental, accidental)
        tonic = letter.upper() + accidental
        mode = (mode or "major").lower()
        mode = {"m": "minor", "min": "minor", "maj": "major"}.get(mode, mode)
        if tonic not in PITCH_CLASS:
            raise PlanError(field_path, f"unknown tonic {tonic!r}")
        if mode not in MODES:
            raise PlanError(field_path, f"unknown mode {mode!r} (known: {', '.join(MODES)})")
        return cls(tonic=tonic, mode=mode)


@dataclass
class Note:
    """One melody note. `start` and `duration` in beats from the section start."""

    start: float
    duration: float
    pitch: int  # MIDI note number
    syllable: str | None = None


@dataclass
class Section:
    name: str
    kind: str
    bars: int
    chords: list[list[str]] = field(default_factory=list)  # chord symbols, one list per bar
    energy: float = 0.5  # 0..1
    melody: list[Note] = field(default_factory=list)
    lyrics: list[str] = field(default_factory=list)
    repeat_of: str | None = None
    variation: float = 0.0  # 0: identical repeat; 1: fully re-rendered
    seed: int = 0


@dataclass
class SongPlan:
    title: str
    tempo_bpm: float
    beats_per_bar: int
    key: Key
    sections: list[Section]
    tags: dict[str, str] = field(default_factory=dict)
    style: str = "pop"
    beat_division: int = 2  # eighths a beat: 2 (x/4 meters) or 3 (compound: 6/8, 9/8, 12/8)
    version: int = PLAN_VERSION

    # --- derived timing -------------------------------------------------
    @property
    def seconds_per_beat(self) -> float:
        return 60.0 / self.tempo_bpm

    @property
    def compound(self) -> bool:
        return self.beat_division == 3

    @property
    def quarters_per_beat(self) -> float:
        """Quarter notes a beat: 1, or 1.5 (a dotted quarter) in a compound meter."""
        return self.beat_division / 2

    @property
    def time_signature(self) -> tuple[int, int]:
        """(numerator, denominator) as written: (4, 4), (3, 4), (6, 8), (12, 8)."""
        return (self.beats_per_bar * 3, 8) if self.compound else (self.beats_per_bar, 4)

    @property
    def meter(self) -> str:
        """The time signature as text: "4/4", "6/8"."""
        numerator, denominator = self.time_signature
        return f"{numerator}/{denominator}"

    @property
    def total_bars(self) -> int:
        return sum(s.bars for s in self.sections)

    @property
    def total_beats(self) -> int:
        return self.total_bars * self.beats_per_bar

    @property
    def duration(self) -> float:
        """Length of the song in seconds."""
        return self.total_beats * self.seconds_per_beat

    def section_beats(self) -> list[tuple[int, int]]:
        """(start_beat, end_beat) of each section."""
        spans, beat = [], 0
        for section in self.sections:
            end = beat + section.bars * self.beats_per_bar
            spans.append((beat, end))
            beat = end
        return spans

    def section_times(self) -> list[tuple[float, float]]:
        """(start, end) of each section in seconds."""
        spb = self.seconds_per_beat
        return [(a * spb, b * spb) for a, b in self.section_beats()]

    def section(self, name: str) -> Section:
        for section in self.sections:
            if section.name == name:
                return section
        known = ", ".join(s.name for s in self.sections)
        raise PlanError("section", f"no section named {name!r} (sections: {known})")

    # --- JSON -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["key"] = {"tonic": self.key.tonic, "mode": self.key.mode}
        if data["beat_division"] == 2:  # simple meters: the plan as it was before compound ones
            del data["beat_division"]
        return {"version": data.pop("version"), **data}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> SongPlan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise PlanError("plan", f"not valid JSON ({error.msg} at line {error.lineno} column {error.colno})") from None
        except (ValueError, RecursionError) as error:  # a 5,000-digit number, JSON nested 100,000 deep
            raise PlanError("plan", f"not a usable JSON document ({_short(error)})") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> SongPlan:
        plan = _parse_plan(data)
        validate(plan)
        return plan


# --- parsing with field-naming errors -------------------------------------
_PLAN_FIELDS = {"version", "title", "tempo_bpm", "beats_per_bar", "beat_division", "key", "sections", "tags", "style"}
MAX_SECTION_NAME = 64  # names become parts of file names (the studio's section previews)
_SECTION_FIELDS = {"name", "kind", "bars", "chords", "energy", "melody", "lyrics", "repeat_of", "variation", "seed"}


def _require(data: dict, name: str, path: str) -> Any:
    if name not in data:
        raise PlanError(f"{path}{name}", "missing")
    return data[name]


def _number(value: Any, path: str, *, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PlanError(path, f"expected a number, got {value!r:.60}")
    if isinstance(value, int) and abs(value) > 10 ** 15:
        raise PlanError(path, f"{str(value)[:20]}... is far too large a number")
    if value != value or value in (float("inf"), float("-inf")):
        raise PlanError(path, f"expected a finite number, got {value!r}")
    if integer and int(value) != value:
        raise PlanError(path, f"expected a whole number, got {value!r}")
    if integer and abs(value) > 10 ** 15:  # a whole number given as a float: the same limit as an int
        raise PlanError(path, f"{value:.6g} is far too large a number")
    return int(value) if integer else float(value)


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise PlanError(path, f"expected text, got {value!r:.60}")
    check_text(value, path)
    return value


def _short(error: BaseException) -> str:
    text = str(error).split(";")[0].split("\n")[0]
    return text if isinstance(error, ValueError) else "nested too deeply"


def check_text(value: str, path: str) -> str:
    """Text that can be written out (UTF-8): a lone surrogate ("\\ud800") is refused."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise PlanError(path, f"holds a character that is not valid Unicode text "
                              f"({value[error.start]!a} at position {error.start})") from None
    return value


def _parse_plan(data: Any) -> SongPlan:
    if not isinstance(data, dict):
        raise PlanError("plan", "expected a JSON object")
    unknown = set(data) - _PLAN_FIELDS
    if unknown:
        raise PlanError(sorted(unknown)[0], "unknown field")
    version = _number(data.get("version", PLAN_VERSION), "version", integer=True)
    if version > PLAN_VERSION or version < 1:
        raise PlanError("version", f"unsupported plan version {version} (this composer reads 1..{PLAN_VERSION})")
    key_data = _require(data, "key", "")
    if isinstance(key_data, str):
        key = Key.parse(key_data, "key")
    elif isinstance(key_data, dict):
        key = Key.parse(f"{_string(_require(key_data, 'tonic', 'key.'), 'key.tonic')} "
                        f"{_string(key_data.get('mode', 'major'), 'key.mode')}", "key")
    else:
        raise PlanError("key", f"expected an object or text, got {key_data!r}")
    tags = data.get("tags", {})
    if not isinstance(tags, dict):
        raise PlanError("tags", "expected an object of field: value")
    tags = {str(k): str(v) for k, v in tags.items()}
    sections_data = _require(data, "sections", "")
    if not isinstance(sections_data, list) or not sections_data:
        raise PlanError("sections", "expected a non-empty list")
    if len(sections_data) > MAX_SECTIONS:
        raise PlanError("sections", f"{len(sections_data)} sections, more than the limit of {MAX_SECTIONS}")
    notes = sum(len(s.get("melody") or []) for s in sections_data if isinstance(s, dict)
                and isinstance(s.get("melody"), list))
    if notes > MAX_NOTES:
        raise PlanError("sections", f"{notes} melody notes, more than the limit of {MAX_NOTES}")
    sections = [_parse_section(s, f"sections[{i}]") for i, s in enumerate(sections_data)]
    return SongPlan(
        title=_string(data.get("title", "Untitled"), "title"),
        tempo_bpm=_number(_require(data, "tempo_bpm", ""), "tempo_bpm"),
        beats_per_bar=_number(_require(data, "beats_per_bar", ""), "beats_per_bar", integer=True),
        key=key,
        sections=sections,
        tags=tags,
        style=_string(data.get("style", "pop"), "style"),
        beat_division=_number(data.get("beat_division", 2), "beat_division", integer=True),
        version=PLAN_VERSION,
    )


def _parse_section(data: Any, path: str) -> Section:
    if not isinstance(data, dict):
        raise PlanError(path, "expected an object")
    unknown = set(data) - _SECTION_FIELDS
    if unknown:
        raise PlanError(f"{path}.{sorted(unknown)[0]}", "unknown field")
    chords = data.get("chords", [])
    if not isinstance(chords, list) or not all(isinstance(bar, list) for bar in chords):
        raise PlanError(f"{path}.chords", "expected a list of bars, each a list of chord symbols")
    chords = [[_string(c, f"{path}.chords[{i}]") for c in bar] for i, bar in enumerate(chords)]
    melody_data = data.get("melody", [])
    if not isinstance(melody_data, list):
        raise PlanError(f"{path}.melody", "expected a list of notes")
    melody = []
    for i, note in enumerate(melody_data):
        note_path = f"{path}.melody[{i}]"
        if not isinstance(note, dict):
            raise PlanError(note_path, "expected an object with start, duration, pitch")
        syllable = note.get("syllable")
        melody.append(Note(
            start=_number(_require(note, "start", note_path + "."), note_path + ".start"),
            duration=_number(_require(note, "duration", note_path + "."), note_path + ".duration"),
            pitch=_number(_require(note, "pitch", note_path + "."), note_path + ".pitch", integer=True),
            syllable=None if syllable is None else _string(syllable, note_path + ".syllable"),
        ))
    lyrics = data.get("lyrics", [])
    if isinstance(lyrics, str):
        lyrics = lyrics.splitlines()
    if not isinstance(lyrics, list):
        raise PlanError(f"{path}.lyrics", "expected a list of lines")
    repeat_of = data.get("repeat_of")
    return Section(
        name=_string(_require(data, "name", path + "."), f"{path}.name"),
        kind=_string(_require(data, "kind", path + "."), f"{path}.kind"),
        bars=_number(_require(data, "bars", path + "."), f"{path}.bars", integer=True),
        chords=chords,
        energy=_number(data.get("energy", 0.5), f"{path}.energy"),
        melody=melody,
        lyrics=[_string(line, f"{path}.lyrics[{i}]") for i, line in enumerate(lyrics)],
        repeat_of=None if repeat_of is None else _string(repeat_of, f"{path}.repeat_of"),
        variation=_number(data.get("variation", 0.0), f"{path}.variation"),
        seed=_number(data.get("seed", 0), f"{path}.seed", integer=True),
    )


def validate(plan: SongPlan) -> None:
    """Check the musical invariants of a plan; raise PlanError naming the field."""
    from structure.harmony import parse_chord  # local: harmony imports this module

    lo, hi = TEMPO_RANGE
    if not lo <= plan.tempo_bpm <= hi:
        raise PlanError("tempo_bpm", f"{plan.tempo_bpm:g} is outside {lo:g}..{hi:g} BPM")
    lo_b, hi_b = BEATS_PER_BAR_RANGE
    if not lo_b <= plan.beats_per_bar <= hi_b:
        raise PlanError("beats_per_bar", f"{plan.beats_per_bar} is outside {lo_b}..{hi_b}")
    if plan.beat_division not in BEAT_DIVISIONS:
        raise PlanError("beat_division", f"{plan.beat_division} is not 2 (a simple meter: 4/4, 3/4) "
                                         "or 3 (a compound one: 6/8, 12/8)")
    if plan.compound and not 2 <= plan.beats_per_bar <= 4:
        raise PlanError("beats_per_bar", f"{plan.beats_per_bar} dotted-quarter beats a bar is not a compound meter "
                                         "this composer plans (2, 3 or 4: 6/8, 9/8, 12/8)")
    if len(plan.sections) > MAX_SECTIONS:
        raise PlanError("sections", f"{len(plan.sections)} sections, more than the limit of {MAX_SECTIONS}")
    names: dict[str, Section] = {}
    for i, section in enumerate(plan.sections):
        path = f"sections[{i}]"
        if not section.name.strip():
            raise PlanError(f"{path}.name", "empty")
        if len(section.name) > MAX_SECTION_NAME or re.search(r"[/\\\x00-\x1f\x7f]", section.name) \
                or section.name.strip(". ") == "":
            raise PlanError(f"{path}.name", f"{section.name[:40]!r}: a section's name is up to {MAX_SECTION_NAME} "
                                            "characters, without slashes or control characters (e.g. 'chorus2')")
        if section.name in names:
            raise PlanError(f"{path}.name", f"duplicate section name {section.name!r}")
        if section.kind not in SECTION_KINDS:
            raise PlanError(f"{path}.kind", f"unknown kind {section.kind!r} (known: {', '.join(SECTION_KINDS)})")
        if section.bars < 1 or section.bars > MAX_BARS_PER_SECTION:
            raise PlanError(f"{path}.bars", f"{section.bars} is outside 1..{MAX_BARS_PER_SECTION}")
        if not 0.0 <= section.energy <= 1.0:
            raise PlanError(f"{path}.energy", f"{section.energy:g} is outside 0..1")
        if not 0.0 <= section.variation <= 1.0:
            raise PlanError(f"{path}.variation", f"{section.variation:g} is outside 0..1")
        if section.chords and len(section.chords) != section.bars:
            raise PlanError(f"{path}.chords", f"{len(section.chords)} bars of chords for {section.bars} bars")
        for b, bar in enumerate(section.chords):
            if not bar:
                raise PlanError(f"{path}.chords[{b}]", "empty bar (give at least one chord, or 'N' for none)")
            for chord in bar:
                try:
                    parse_chord(chord)  # cached per symbol
                except PlanError as error:
                    raise PlanError(f"{path}.chords[{b}]", error.problem) from None
        section_beats = section.bars * plan.beats_per_bar
        for n, note in enumerate(section.melody):
            if not 0 <= note.pitch <= 127:
                raise PlanError(f"{path}.melody[{n}].pitch", f"{note.pitch} is outside 0..127")
            if note.duration <= 0:
                raise PlanError(f"{path}.melody[{n}].duration", "must be > 0")
            if note.start < 0 or note.start + note.duration > section_beats + 1e-6:
                raise PlanError(f"{path}.melody[{n}]", f"note at beat {note.start:g} lies outside the section's {section_beats} beats")
        if section.repeat_of is not None:
            source = names.get(section.repeat_of)
            if source is None:
                raise PlanError(f"{path}.repeat_of", f"{section.repeat_of!r} is not an earlier section")
            if source.bars != section.bars:
                raise PlanError(f"{path}.bars", f"a repeat of {source.name!r} must have its {source.bars} bars")
        names[section.name] = section
    seconds = plan.total_bars * plan.beats_per_bar * 60.0 / plan.tempo_bpm
    if seconds > MAX_SONG_SECONDS + 1e-6:
        raise PlanError("sections", f"the song lasts {seconds:.0f} s, over the limit of {MAX_SONG_SECONDS:.0f} s "
                                    f"({plan.total_bars} bars at {plan.tempo_bpm:g} BPM)")
    if sum(len(s.melody) for s in plan.sections) > MAX_NOTES:
        raise PlanError("sections", f"more than {MAX_NOTES} melody notes")
