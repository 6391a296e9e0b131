"""`plan(prompt, lyrics=..., duration=..., seed=...)`: the whole song plan.

Phases: read the prompt; choose style, tempo, meter and key; choose the form
(from lyrics, an explicit `form=`, or the style) and fit it to the requested
duration by choosing bars (never by changing the tempo); harmonise; sketch
the melody (one note per syllable when there are lyrics); name repeats.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from structure.harmony import NO_CHORD, progression, transpose_symbol
from structure.melody import sketch_section
from structure.notices import warn_once
from structure.prompt import Embed, Prompt, parse_prompt
from structure.schema import (
    MAX_BARS_PER_SECTION,
    MAX_LYRICS_CHARACTERS,
    MAX_SECTIONS,
    MAX_SONG_SECONDS,
    SECTION_KINDS,
    TONICS,
    Key,
    Note,
    PlanError,
    Section,
    SongPlan,
    check_text,
    validate,
)
from structure.styles import STYLE_ALIASES, STYLES, Style, get_style

log = logging.getLogger(__name__)

# (melody notes, beats per bar) -> why the melody may not be used, or None
MelodyCheck = Callable[[list[Note], int], "str | None"]

ENERGY = {"intro": 0.3, "verse": 0.5, "pre-chorus": 0.6, "chorus": 0.8, "post-chorus": 0.75,
          "bridge": 0.6, "solo": 0.7, "breakdown": 0.35, "drop": 0.95, "hook": 0.8,
          "interlude": 0.4, "outro": 0.35}
# Kinds whose later occurrences repeat the first one exactly (variation 0).
REPEATING_KINDS = {"chorus", "pre-chorus", "post-chorus", "hook", "drop", "breakdown"}
# Kinds the duration fitter may lengthen or shorten freely (they are not repeated).
FREE_KINDS = ("outro", "intro", "bridge", "solo", "interlude")
VOCAL_KINDS = {"verse", "pre-chorus", "chorus", "post-chorus", "bridge", "hook"}
MOOD_MINOR = {"sad", "wistful", "dark", "melancholic", "nostalgic", "tense", "angry"}
MOOD_MAJOR = {"happy", "uplifting", "playful", "hopeful", "romantic"}
DEFAULT_BARS = {"intro": 4, "verse": 8, "pre-chorus": 4, "chorus": 8, "post-chorus": 4, "bridge": 8,
                "solo": 8, "breakdown": 8, "drop": 16, "hook": 8, "interlude": 4, "outro": 4}


@dataclass
class _Slot:
    """A section before harmonisation: kind, bars and (optionally) its lyric lines."""

    kind: str
    bars: int
    lines: list[str] | None = None
    lyric_repeat_of: int | None = None  # index of the slot whose lyrics this one repeats


def _check_lyric_sections(slots: list[_Slot]) -> None:
    """A section of the lyrics too long for one section of the song is refused by its tag,
    number and first line (it failed the plan's check as "sections[1].bars")."""
    seen: dict[str, int] = {}
    for slot in slots:
        seen[slot.kind] = seen.get(slot.kind, 0) + 1
        if slot.lines and slot.bars > MAX_BARS_PER_SECTION:
            first = slot.lines[0] if len(slot.lines[0]) <= 40 else slot.lines[0][:37] + "..."
            raise PlanError("lyrics", f"[{slot.kind.title()}] number {seen[slot.kind]} ({len(slot.lines)} lines, the "
                                      f"first {first!r}) needs {slot.bars} bars (a bar a line, at most two syllables "
                                      f"a beat), more than a section holds ({MAX_BARS_PER_SECTION}); split it into "
                                      "several sections")


def plan(prompt: str = "", *, lyrics: str | None = None, duration: float | None = None,
         seed: int = 0, write_lyrics: bool = True, embed: Embed | None = None,
         melody_check: MelodyCheck | None = None) -> SongPlan:
    """Plan a song. `duration` in seconds overrides the prompt's; met within one bar.

    embed: a sentence encoder that maps free prompt words to moods and genres
    (`structure.prompt.parse_prompt`); `composer.plan` passes the bundled one.
    melody_check: (notes, beats per bar) -> why a melody may not be used (it copies
    one a model learnt), or None; a refused melody is sketched again.
    """
    rng = random.Random(seed)
    check_text(prompt or "", "prompt")
    if lyrics is not None:
        check_text(lyrics, "lyrics")
    if lyrics is not None and len(lyrics) > MAX_LYRICS_CHARACTERS:
        raise PlanError("lyrics", f"{len(lyrics)} characters, more than the limit of {MAX_LYRICS_CHARACTERS}")
    request = parse_prompt(prompt or "", embed=embed)
    if duration is not None:
        if not 1 <= duration <= MAX_SONG_SECONDS:
            raise PlanError("duration", f"{duration:g} s is outside 1..{MAX_SONG_SECONDS:g} s")
        request.duration = float(duration)
    if request.form and len(request.form) > MAX_SECTIONS:
        raise PlanError("prompt field form", f"{len(request.form)} sections, more than the limit of {MAX_SECTIONS}")
    style = get_style(request.style or "pop")
    unknown = (request.style or "").strip().lower()
    if unknown and unknown not in STYLES and unknown not in STYLE_ALIASES:
        warn_once(log, ("genre", unknown), "genre %s: no style of that name; planned in the pop style, the genre kept "
                  "as a tag (styles: %s)", request.style, ", ".join(sorted(STYLES)))
    tempo = request.tempo_bpm or float(rng.randint(*style.tempo_range))
    beats_per_bar = request.beats_per_bar or style.beats_per_bar
    division = request.beat_division or 2
    if division == 3 and request.tempo_bpm is None:
        # the style's tempo counts quarter notes; a compound beat is three eighths, so the same eighths
        # (the same pace of notes) make two thirds of the beats: a folk song at 96 is a jig at 64
        tempo = float(round(tempo * 2 / 3))
    key = request.key or _choose_key(request, style, rng)
    slots = _form(request, style, lyrics, rng, beats_per_bar, division)
    bar_seconds = beats_per_bar * 60.0 / tempo
    _check_lyric_sections(slots)
    if request.duration is not None:
        asked = [slot.kind for slot in slots]
        target = max(1, round(request.duration / bar_seconds))
        # a form asked for keeps its sections while they can average FORM_MIN_BARS; shorter, it is cut (and said)
        slots = fit_duration(slots, target, beats_per_bar, division,
                             keep_sections=bool(request.form) and target >= FORM_MIN_BARS * len(slots))
        kept = [slot.kind for slot in slots]
        if lyrics is not None and sum(slot.bars for slot in slots) > target:
            log.warning("lyrics: their sections need %d bars at %g BPM (%.0f s), more than the %g s asked; the song "
                        "is that long (a bar a line and at most one syllable an eighth; a section without words that "
                        "plays another's tune keeps its bars)",
                        sum(slot.bars for slot in slots), tempo, sum(slot.bars for slot in slots) * bar_seconds,
                        request.duration)
        if request.form and lyrics is None and len(kept) < len(asked):
            log.warning("form: %d sections do not fit %g s at %g BPM; %d kept (%s); a longer --duration keeps them all",
                        len(asked), request.duration, tempo, len(kept), ", ".join(kept))
    planned = sum(slot.bars for slot in slots) * bar_seconds
    if request.duration is not None and any(slot.bars > MAX_BARS_PER_SECTION for slot in slots):
        most = len(slots) - 1
        raise PlanError("duration", f"{request.duration:g} s is {target} bars at {tempo:g} BPM, more than the "
                                    f"form's {most} section{'s' * (most != 1)} can hold ({MAX_BARS_PER_SECTION} bars "
                                    "each); add sections to the form or ask for a shorter song")
    if planned > MAX_SONG_SECONDS + 1e-6 or len(slots) > MAX_SECTIONS:
        what = "lyrics" if lyrics is not None and request.duration is None else "prompt field form"
        raise PlanError(what, f"would make a song of {planned:.0f} s in {len(slots)} sections, over the limits "
                              f"({MAX_SONG_SECONDS:.0f} s, {MAX_SECTIONS} sections); shorten it or give --duration")
    if write_lyrics and lyrics is None:
        _write_lyrics(slots, request, rng, embed)
    sections = _harmonise(slots, style, key, beats_per_bar, rng, division=division,
                          modulate=request.tags.get("modulate", "").lower() in ("1", "yes", "true"),
                          melody_check=melody_check)
    tags = {"genre": style.name, **request.tags}
    tags.pop("modulate", None)
    song = SongPlan(title=_printable_title(request.title or _title(request)), tempo_bpm=float(tempo),
                    beats_per_bar=beats_per_bar, key=key, sections=sections, tags=tags, style=style.name,
                    beat_division=division)
    validate(song)
    return song


def _choose_key(request: Prompt, style: Style, rng: random.Random) -> Key:
    moods = set(request.tags.get("mood", "").split(", "))
    minor_probability = style.minor_probability
    if moods & MOOD_MINOR:
        minor_probability = 0.85
    elif moods & MOOD_MAJOR:
        minor_probability = 0.1
    tonic = rng.choice([t for t in TONICS if t not in ("C#", "D#", "Gb", "G#", "A#")])
    return Key(tonic, "minor" if rng.random() < minor_probability else "major")


def _form(request: Prompt, style: Style, lyrics: str | None, rng: random.Random, beats_per_bar: int = 4,
          division: int = 2) -> list[_Slot]:
    if lyrics is not None:
        return _form_from_lyrics(lyrics, style, beats_per_bar, division)
    if request.form:
        unknown = [k for k in request.form if k not in SECTION_KINDS]
        if unknown:
            raise PlanError("prompt field form", f"unknown section kind {unknown[0]!r} (known: {', '.join(SECTION_KINDS)})")
        style_bars = dict(style.form)
        return [_Slot(k, style_bars.get(k, DEFAULT_BARS[k])) for k in request.form]
    return [_Slot(kind, bars) for kind, bars in style.form]


def _form_from_lyrics(text: str, style: Style, beats_per_bar: int = 4, division: int = 2) -> list[_Slot]:
    import lyrics as lyrics_pkg

    parsed = lyrics_pkg.parse(text)
    index_of = {section.name: i for i, section in enumerate(parsed)}
    slots = []
    for section in parsed:
        lines = list(section.lines)
        if section.repeat_of is not None and not lines:
            lines = list(parsed[index_of[section.repeat_of]].lines)
        # two bars a line, at least four bars, in whole phrases; long lines get the bars their
        # syllables need (`lyric_floor`), rounded up to whole two-bar phrases
        bars = DEFAULT_BARS.get(section.kind, 4)
        if lines:
            need = lyric_floor(lines, beats_per_bar, division)
            bars = max(4, 2 * len(lines), need + need % 2)
        repeat = index_of.get(section.repeat_of) if section.repeat_of else None
        slots.append(_Slot(section.kind, bars, lines or None, repeat))
    if slots[0].kind != "intro":
        slots.insert(0, _Slot("intro", 4))
        slots = [_shift_repeat(s, 1) for s in slots]
    if slots[-1].kind != "outro":
        slots.append(_Slot("outro", 4))
    return slots


def _shift_repeat(slot: _Slot, offset: int) -> _Slot:
    if slot.lyric_repeat_of is not None:
        slot.lyric_repeat_of += offset
    return slot


FORM_MIN_BARS = 4  # bars a section of a form asked for averages at least before sections are cut to fit


def fit_duration(slots: list[_Slot], target_bars: int, beats_per_bar: int = 4, division: int = 2, *,
                 keep_sections: bool = False) -> list[_Slot]:
    """Choose bars so the form has exactly `target_bars` bars, keeping repeats equal.

    Removes or adds whole sections first (a short song loses its bridge and second
    verse; a long one gains verse/chorus pairs; with `keep_sections`, a form the user
    asked for, none is removed while shorter sections can fit), then adjusts the free sections
    (outro, intro, bridge, solo), and only then the bar count of repeated groups.
    A section with lyric lines keeps the bars its words need (`lyric_floor`): a song whose
    lyrics need more than `target_bars` comes out longer than asked rather than crammed.
    """
    slots = [_Slot(s.kind, s.bars, s.lines, s.lyric_repeat_of) for s in slots]
    if not any(s.lines for s in slots):
        slots = _add_or_remove_sections(slots, target_bars, remove=not keep_sections)
    else:
        slots = _extend_lyric_form(slots, target_bars)
    floors = [lyric_floor(s.lines, beats_per_bar, division) for s in slots]
    caps = (16, 32) if any(s.lines for s in slots) else (32,)
    diff = _absorb(slots, target_bars - sum(s.bars for s in slots), floors, caps)
    while diff < 0:  # still too long: shorten repeated groups (all members together)
        candidates = [g for g in _groups(slots) if all(slots[i].bars > floors[i] for i in g)]
        if not candidates:
            if len(slots) == 1 or any(s.lines for s in slots):
                break
            # every section is down to one bar (very short song, very slow tempo): drop later sections
            diff += slots.pop().bars
            floors.pop()
            continue
        group = max(candidates, key=lambda g: slots[g[0]].bars)
        for i in group:
            slots[i].bars -= 1
        diff = _absorb(slots, diff + len(group), floors, caps)
    if diff > 32 and not any(s.lines for s in slots):
        # more than a free section takes (a long song at a fast tempo): the verses and choruses grow
        # first, to 32 bars, then every section, in steps, so no intro becomes a song of its own
        for cap in (32, 64, 128, MAX_BARS_PER_SECTION):
            diff = _grow_groups(slots, diff, cap)
            diff = _absorb(slots, diff, floors, (cap,))
    if diff > 0:
        slots.append(_Slot("outro", diff))  # more than a section holds: plan() names the duration
    return slots


def _grow_groups(slots: list[_Slot], diff: int, cap: int = MAX_BARS_PER_SECTION) -> int:
    """Lengthen repeated groups (every verse together, every chorus together) a bar at a time,
    up to `cap` bars, while `diff` bars are left; returns what is left."""
    grown = True
    while diff > 0 and grown:
        grown = False
        for group in sorted(_groups(slots), key=len, reverse=True):
            if len(group) < 2 or slots[group[0]].kind in FREE_KINDS:
                continue  # repeated verses and choruses; the free sections grow by `_absorb`
            if len(group) <= diff and all(slots[i].bars < cap for i in group):
                for i in group:
                    slots[i].bars += 1
                diff -= len(group)
                grown = True
    return diff


LYRIC_FRAME_BARS = 8  # how long the intro, outro and an added solo of a lyric song grow before its form does
LYRIC_CHORUS_REPEATS = 2  # times a lyric song's chorus may be sung again at its end to reach the length asked


def _extend_lyric_form(slots: list[_Slot], target_bars: int) -> list[_Slot]:
    """A song of the user's lyrics shorter than asked grows as a songwriter's would, never by
    words it was not given: its intro and outro grow to `LYRIC_FRAME_BARS` bars, then, each
    only while it brings the form closer to `target_bars`, an instrumental solo follows the
    last sung section and the chorus is sung again after it (at most `LYRIC_CHORUS_REPEATS`
    times). What is left goes to the free sections (`_absorb`), as before; without this a
    3-minute song of two verses and two choruses had a 77-second outro."""
    def total(items):
        return sum(s.bars for s in items)

    def closer(extra: int) -> bool:
        return abs(total(slots) + extra - target_bars) < abs(total(slots) - target_bars)

    slots = list(slots)
    for kind in ("outro", "intro"):
        for slot in slots:
            if slot.kind == kind and not slot.lines and slot.bars < LYRIC_FRAME_BARS:
                slot.bars += max(0, min(LYRIC_FRAME_BARS - slot.bars, target_bars - total(slots)))
    sung = [i for i, s in enumerate(slots) if s.lines]
    if not sung or not closer(LYRIC_FRAME_BARS):
        return slots
    def end() -> int:  # after the last sung section or solo (before the outro)
        return max(i for i, s in enumerate(slots) if s.lines or s.kind == "solo") + 1

    def chorus_again() -> _Slot:
        source = slots[chorus]
        return _Slot(source.kind, source.bars, list(source.lines), chorus)

    slots = _insert_slot(slots, sung[-1] + 1, _Slot("solo", LYRIC_FRAME_BARS))
    chorus = next((i for i, s in enumerate(slots) if s.kind in ("chorus", "hook") and s.lines), None)
    for _ in range(LYRIC_CHORUS_REPEATS if chorus is not None else 0):
        if not closer(slots[chorus].bars):
            break
        slots = _insert_slot(slots, end(), chorus_again())
    # a much longer song than its words (minutes of them): more rounds of a solo and the chorus, so
    # no instrumental section grows past 16 bars while another round fits (and none past 256 bars)
    while len(slots) < MAX_SECTIONS - 2:
        room = sum(max(0, 16 - s.bars) for s in slots if s.kind in FREE_KINDS and not s.lines)
        if target_bars - total(slots) <= room or not closer(LYRIC_FRAME_BARS):
            break
        slots = _insert_slot(slots, end(), _Slot("solo", LYRIC_FRAME_BARS))
        if chorus is not None and closer(slots[chorus].bars):
            slots = _insert_slot(slots, end(), chorus_again())
    return slots


def _insert_slot(slots: list[_Slot], index: int, slot: _Slot) -> list[_Slot]:
    """`slots` with `slot` at `index`, the lyric repeats of later slots pointing where they did."""
    moved = [_Slot(s.kind, s.bars, s.lines, s.lyric_repeat_of + 1 if s.lyric_repeat_of is not None
                   and s.lyric_repeat_of >= index else s.lyric_repeat_of) for s in slots]
    return moved[:index] + [slot] + moved[index:]


def lyric_floor(lines: list[str] | None, beats_per_bar: int, division: int = 2) -> int:
    """The fewest bars that sing a section's lyric lines: a bar a line, and no more than one
    syllable an eighth (two a beat, three in a compound meter's beat) in any line (1 for a
    section without lines). The lines share the
    section's bars evenly (`structure.melody.phrase_spans`), so each gets the bars its longest
    line needs: counted over the whole section, a long line beside a short one got half the
    bars it needed and was sung as a patter of sixteenths that nobody follows."""
    if not lines:
        return 1
    longest = max(_syllable_counts(lines))
    return len(lines) * max(1, -(-longest // (division * beats_per_bar)))


def _absorb(slots: list[_Slot], diff: int, floors: list[int] | None = None, caps: tuple[int, ...] = (32,)) -> int:
    """Let the free sections take up `diff` bars (each within its floor..32); return what is left.

    Growing, a section with lyric lines keeps its bars (its words are not stretched), and each
    of `caps` in turn is the most a free section grows to before the next takes its share
    (a lyric song spreads its extra bars: (16, 32)); shrinking stops at `floors`."""
    for cap in caps:
        for kind in FREE_KINDS:
            for i, slot in enumerate(slots):
                if slot.kind != kind or not diff or (diff > 0 and slot.lines):
                    continue
                floor = floors[i] if floors else 1
                change = min(max(0, cap - slot.bars), diff) if diff > 0 else max(min(0, floor - slot.bars), diff)
                slot.bars += change
                diff -= change
    return diff


def _groups(slots: list[_Slot]) -> list[list[int]]:
    by_kind: dict[str, list[int]] = {}
    for i, slot in enumerate(slots):
        by_kind.setdefault(slot.kind, []).append(i)
    return list(by_kind.values())


def _add_or_remove_sections(slots: list[_Slot], target_bars: int, *, remove: bool = True) -> list[_Slot]:
    """Whole-section edits, each made only when it brings the form closer to the target (none
    removed unless `remove`)."""
    def total(items):
        return sum(s.bars for s in items)

    def closer(candidate) -> bool:
        return abs(total(candidate) - target_bars) < abs(total(slots) - target_bars)

    removal_order = ("pre-chorus", "solo", "bridge", "breakdown", "interlude")
    changed = True
    while remove and changed and total(slots) > target_bars and len(slots) > 1:
        changed = False
        options = [[s for j, s in enumerate(slots) if j != i]
                   for kind in removal_order for i, s in enumerate(slots) if s.kind == kind]
        # a middle verse/chorus pair (never the first of its kind, never the last section)
        for i in range(1, len(slots) - 2):
            pair = slots[i:i + 2]
            if all(any(p.kind == s.kind for s in slots[:i]) for p in pair):
                options.append(slots[:i] + slots[i + 2:])
        options += [[s for s in slots if s.kind != kind] for kind in ("intro", "outro")
                    if any(s.kind == kind for s in slots) and len(slots) > 2]
        for candidate in options:
            if closer(candidate):
                slots, changed = candidate, True
                break
    chorus_kind = next((s.kind for s in slots if s.kind in ("chorus", "drop", "hook")), None)
    verse_kind = "verse" if any(s.kind == "verse" for s in slots) else None
    while (chorus_kind or verse_kind) and total(slots) < target_bars:  # a form without a chorus (blues) gains verses
        end = len(slots) - 1 if slots[-1].kind == "outro" else len(slots)
        extra = [_Slot(k, next(s.bars for s in slots if s.kind == k)) for k in (verse_kind, chorus_kind) if k]
        candidate = slots[:end] + extra + slots[end:]
        if not closer(candidate) or len(candidate) > MAX_SECTIONS - 1:  # room for an outro fit_duration adds
            break
        slots = candidate
    return slots


def _write_lyrics(slots: list[_Slot], request: Prompt, rng: random.Random, embed: Embed | None = None) -> None:
    """Draft lyrics for the vocal sections (a chorus repeats word for word); with a sentence encoder,
    their rhymes lean toward the theme (`lyrics.write`'s `related`)."""
    import lyrics as lyrics_pkg

    specs, first_of_kind = [], {}
    for i, slot in enumerate(slots):
        if slot.kind not in VOCAL_KINDS:
            continue
        name = f"s{i}"
        repeat = first_of_kind.get(slot.kind) if slot.kind in REPEATING_KINDS else None
        first_of_kind.setdefault(slot.kind, name)
        lines = max(1, slot.bars // 2)
        specs.append(lyrics_pkg.SectionSpec(name=name, kind=slot.kind, syllables=[7] * lines, repeat_of=repeat))
    if not specs:
        return
    theme = request.tags.get("theme") or request.text or "the open road"
    seed = rng.randrange(2**31)
    related = None
    topic = lyrics_pkg.theme_words(theme)
    if embed is not None and topic:
        related = theme_nearness(" ".join(topic), embed)
    written = lyrics_pkg.write(theme, mood=request.tags.get("mood"), sections=specs, seed=seed, related=related)
    for spec, section in zip(specs, written):
        slots[int(spec.name[1:])].lines = list(section.lines)


@functools.lru_cache(maxsize=4)
def _noun_vectors(embed: Embed):
    from lyrics.banks import NOUNS

    return NOUNS, embed(list(NOUNS))


def theme_nearness(theme: str, embed: Embed) -> dict[str, float]:
    """Each bank noun's cosine to the theme under the sentence encoder `embed` (unit-norm vectors)."""
    nouns, vectors = _noun_vectors(embed)
    return dict(zip(nouns, (vectors @ embed([theme])[0]).astype(float).tolist()))


MELODY_ATTEMPTS = 24  # sketches of a section's melody before a melody check gives up


def _marked_repeat(slot: _Slot, sections: list[Section]) -> Section | None:
    """The section a slot's lyrics mark it as repeating (`lyric_repeat_of`), followed back to the
    first one sung, when it is the same kind, length and words; else None."""
    if slot.lyric_repeat_of is None or not 0 <= slot.lyric_repeat_of < len(sections):
        return None
    named = sections[slot.lyric_repeat_of]
    by_name = {s.name: s for s in sections}
    while named.repeat_of in by_name:
        named = by_name[named.repeat_of]
    if named.kind != slot.kind or named.bars != slot.bars or (slot.lines or []) != (named.lyrics or []):
        return None
    return named


def _harmonise(slots: list[_Slot], style: Style, key: Key, beats_per_bar: int, rng: random.Random,
               *, modulate: bool, melody_check: MelodyCheck | None = None, division: int = 2) -> list[Section]:
    sections: list[Section] = []
    counts: dict[str, int] = {}
    first: dict[tuple[str, int], Section] = {}
    worded: dict[tuple[str, int, tuple[str, ...]], Section] = {}  # the first section to sing these words
    last_chorus = max((i for i, s in enumerate(slots) if s.kind == "chorus"), default=None)
    for index, slot in enumerate(slots):
        counts[slot.kind] = counts.get(slot.kind, 0) + 1
        name = f"{slot.kind}{counts[slot.kind]}"
        source = first.get((slot.kind, slot.bars))
        if slot.lines and slot.kind in REPEATING_KINDS:  # a chorus repeats the one that sang its words
            source = worded.get((slot.kind, slot.bars, tuple(slot.lines)), source)  # ([Chorus x2] after another)
        # a section the lyrics mark as a repeat ([Verse x2], [Bridge x2]) is sung as the one it repeats:
        # any kind, not only a chorus (a verse's second time got a new tune)
        marked = _marked_repeat(slot, sections)
        if marked is not None:
            source = marked
        same_words = source is not None and (slot.lines or []) == (source.lyrics or [])
        repeats = slot.kind in REPEATING_KINDS or marked is not None
        if modulate and index == last_chorus and source is not None and same_words:  # new words are sung, not the old
            section = _modulated(source, name, semitones=1)
        elif source is not None and (repeats and same_words or not slot.lines and slot.kind == "verse"):
            variation = 0.0 if repeats else 0.35
            # a verse without words of its own (an empty [Verse 2] tag) plays the first verse's tune
            # without singing its words again
            sung = bool(slot.lines) or repeats
            section = Section(name=name, kind=slot.kind, bars=slot.bars, chords=[list(b) for b in source.chords],
                              energy=source.energy,
                              melody=[Note(n.start, n.duration, n.pitch, n.syllable if sung else None)
                                      for n in source.melody],
                              lyrics=list(source.lyrics) if sung else [], repeat_of=source.name, variation=variation,
                              seed=rng.randrange(2**31))
        else:
            if source is not None:  # same kind, new words: same chords, melody follows the words
                chords = [list(b) for b in source.chords]
            else:
                chords = progression(style.name, slot.kind, key, slot.bars, rng)
            lines = slot.lines or []
            melody = sketch_melody(name, slot.kind, chords, lines, key, beats_per_bar, rng,
                                   energy=ENERGY.get(slot.kind, 0.5), melody_check=melody_check, division=division)
            section = Section(name=name, kind=slot.kind, bars=slot.bars, chords=chords,
                              energy=ENERGY.get(slot.kind, 0.5), melody=melody, lyrics=lines,
                              seed=rng.randrange(2**31))
        first.setdefault((slot.kind, slot.bars), section)
        if section.repeat_of is None and section.lyrics:
            worded.setdefault((slot.kind, slot.bars, tuple(section.lyrics)), section)
        sections.append(section)
    return sections


def sketch_melody(name: str, kind: str, chords: list[list[str]], lines: list[str], key: Key, beats_per_bar: int,
                  rng: random.Random, *, energy: float, melody_check: MelodyCheck | None = None,
                  division: int = 2) -> list[Note]:
    """A section's melody on its chords (one note a syllable of `lines`, their syllables
    attached), sketched again while `melody_check` finds it copies a learnt melody."""
    counts_per_line = _syllable_counts(lines) if lines else None
    copied = None
    for attempt in range(MELODY_ATTEMPTS):
        melody = sketch_section(chords, key, beats_per_bar, rng, syllable_counts=counts_per_line, energy=energy,
                                division=division)
        if kind in ("intro", "outro", "interlude", "breakdown") and not lines:
            melody = [n for n in melody if n.start < beats_per_bar * 2]  # a motif, not a tune
        copied = melody_check(melody, beats_per_bar) if melody_check is not None and melody else None
        if not copied:
            break
        log.info("%s: melody sketch %d repeats %s; sketching again", name, attempt + 1, copied)
    else:
        raise PlanError("melody", f"section {name}: every one of {MELODY_ATTEMPTS} melody sketches "
                                  f"repeats a learnt melody (last: {copied})")
    _attach_syllables(melody, lines, beats_per_bar, len(chords))
    return melody


def transpose_chords(chords: list[list[str]], semitones: int) -> list[list[str]]:
    return [[transpose_symbol(c, semitones) if c != NO_CHORD else c for c in bar] for bar in chords]


def transposed(section: Section, semitones: int) -> Section:
    """The section's chords and melody `semitones` up (everything else kept)."""
    from dataclasses import replace

    return replace(section, chords=transpose_chords(section.chords, semitones),
                   melody=[Note(n.start, n.duration, n.pitch + semitones, n.syllable) for n in section.melody])


def _modulated(source: Section, name: str, semitones: int) -> Section:
    moved = transposed(source, semitones)
    return Section(name=name, kind=source.kind, bars=source.bars, chords=moved.chords,
                   energy=min(1.0, source.energy + 0.1), melody=moved.melody, lyrics=list(source.lyrics),
                   seed=source.seed + 1)


def _syllable_counts(lines: list[str]) -> list[int]:
    import lyrics as lyrics_pkg

    return [max(1, n) for n in lyrics_pkg.syllable_counts(lines)]


def _attach_syllables(melody: list[Note], lines: list[str], beats_per_bar: int, bars: int) -> None:
    """Write each line's syllables onto the notes of its phrase (lead sheet, LRC)."""
    if not lines:
        return
    import lyrics as lyrics_pkg
    from structure.melody import phrase_spans

    for (start, end), line in zip(phrase_spans(bars, beats_per_bar, len(lines)), lines):
        notes = [n for n in melody if start <= n.start < end]
        if not notes:
            continue
        slots = [lyrics_pkg.Slot(start=n.start, duration=n.duration, strong=n.start == int(n.start)) for n in notes]
        if lyrics_pkg.count_syllables(line) > len(slots):  # a line longer than its phrase's tune: split notes
            slots = lyrics_pkg.notes_for_line(line, slots)
            split = [Note(slot.start, slot.duration, next(n for n in reversed(notes) if n.start <= slot.start).pitch)
                     for slot in slots]
            ids = {id(n) for n in notes}
            melody[:] = sorted([n for n in melody if id(n) not in ids] + split, key=lambda n: n.start)
            notes = split
        for note, syllable in zip(notes, lyrics_pkg.fit_line(line, slots)):
            note.syllable = syllable


def _printable_title(text: str) -> str:
    """A title without control characters (a NUL in a prompt reached the FLAC tags and the lead sheet)."""
    import lyrics as lyrics_pkg

    return lyrics_pkg.printable(text)


def _title(request: Prompt) -> str:
    words = [w for w in request.theme_words if len(w) > 3][:3]
    if words:
        import lyrics as lyrics_pkg

        return lyrics_pkg.title_case(" ".join(words))
    described = " ".join(w for w in (request.tags.get("mood", "").split(",")[0], request.style or "") if w)
    return f"{described} song".strip().title() if described else "Untitled"
