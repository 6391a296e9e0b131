"""Placing sung phones on the plan's notes (section-local seconds).

Every syllable starts on its note: its onset consonants begin at most `LEAD` seconds
before the beat so the word lands on it, the vowel is held for the note (and on through
tied melisma notes, following their pitches), the coda consonants close at the note's end
(or where the next syllable's onset begins). A breath is drawn before a line that follows
a rest. Consonants keep their spoken length up to a cap and shrink when notes are fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import lyrics
from composer.voice.phonemes import SyllablePhones, syllabify
from composer.voice.voices import line_octave

LEAD = 0.05  # seconds an onset may start before its beat
MAX_ONSET = 0.16  # seconds, all onset consonants of a syllable together
MAX_CODA = 0.16
MIN_NUCLEUS = 0.04
BREATH_GAP = 0.3  # a rest at least this long before a line gets a breath
BREATH_LENGTH = 0.22


@dataclass
class PlacedPhone:
    """One phone at its sung time. word, index: the word's entry in the phone bank and the
    phone's position in it (the spoken source); part: "onset", "nucleus" or "coda"."""

    phone: str
    start: float
    end: float
    word: tuple[str, int]  # the spoken source: (line text, word position) in the bank
    index: int
    part: str
    line: int = 0


@dataclass
class SungSyllable:
    text: str
    word: str  # the sung token ("42" for "forty two")
    position: int  # the token's place in its line
    line_text: str  # the line as written (the bank speaks each line once)
    start: float  # the beat it is sung on (seconds)
    end: float  # the end of its last (melisma) note
    notes: list[tuple[float, float, int]]  # (start, end, MIDI pitch) of its notes
    phones: SyllablePhones
    line: int
    octave: int = 0  # semitones its line moved beyond the song's octave to fit the voice

    @property
    def source(self) -> tuple[str, int]:
        return (self.line_text, self.position)


@dataclass
class SectionScore:
    """What one section sings: its syllables, their phones in time, the notes (for pitch)
    and the breaths (start, end)."""

    syllables: list[SungSyllable] = field(default_factory=list)
    phones: list[PlacedPhone] = field(default_factory=list)
    notes: list[tuple[float, float, int]] = field(default_factory=list)
    breaths: list[tuple[float, float]] = field(default_factory=list)

    @property
    def words(self) -> list[tuple[float, str]]:
        """(time, word) of each sung word's first syllable."""
        out, last = [], None
        for syllable in self.syllables:
            key = (syllable.line, syllable.position)
            if syllable.text and key != last:
                out.append((syllable.start, syllable.word))
            last = key
        return out


def sung_syllables(section, beats_per_bar: int, seconds_per_beat: float,
                   phones_of: Callable[[str], list[str]], shift: int = 0,
                   fit: tuple[int, int] | None = None) -> list[SungSyllable]:
    """The syllables of a section's lyric lines on its melody notes (`structure` fills
    `Note.syllable`: the syllable text on the note it starts on, "_" on the notes it is held
    over). shift: semitones added to every pitch (the voice's octave). fit: the voice's range
    (MIDI low, high); a line that lies outside it moves by another octave (`line_octave`)."""
    from structure.melody import phrase_spans

    spb = seconds_per_beat
    out: list[SungSyllable] = []
    if not section.lyrics:
        return out
    spans = phrase_spans(section.bars, beats_per_bar, len(section.lyrics))
    for line_index, ((lo, hi), text) in enumerate(zip(spans, section.lyrics)):
        notes = sorted((n for n in section.melody if lo <= n.start < hi), key=lambda n: n.start)
        runs: list[list] = []
        for note in notes:
            if note.syllable and note.syllable != lyrics.MELISMA:
                runs.append([note])
            elif note.syllable == lyrics.MELISMA and runs and _touches(runs[-1][-1], note):
                runs[-1].append(note)
        octave = line_octave([n.pitch + shift for run in runs for n in run], *fit) if fit is not None else 0
        moved = shift + octave
        pieces = []
        for position, token in enumerate(lyrics.words(text)):
            count = max(1, len(lyrics.syllables(token)))
            for syllable in syllabify(phones_of(token), count):
                pieces.append((position, token, syllable))
        texts = lyrics.syllables(text)
        for run, (position, token, syllable), written in zip(runs, pieces, texts):
            out.append(SungSyllable(
                text=written, word=token, position=position, line_text=text, start=run[0].start * spb,
                end=(run[-1].start + run[-1].duration) * spb,
                notes=[(n.start * spb, (n.start + n.duration) * spb, n.pitch + moved) for n in run],
                phones=syllable, line=line_index, octave=octave))
    return out


def _touches(previous, note, slack: float = 0.26) -> bool:
    return note.start - (previous.start + previous.duration) <= slack


def place(syllables: list[SungSyllable], duration_of: Callable[[tuple[str, int], int], float]) -> SectionScore:
    """Phones in time for a section's syllables. duration_of((line text, word position), index):
    the spoken length of that word's phone `index` (seconds), which consonants keep when there
    is room."""
    score = SectionScore(syllables=syllables,
                         notes=[note for syllable in syllables for note in syllable.notes])
    # first pass: when each syllable's onset starts (the previous syllable ends there)
    plans = []
    for syllable in syllables:
        onset, coda = _part_indices(syllable)
        span = syllable.end - syllable.start
        onset_length = _capped([duration_of(syllable.source, i) for i in onset], MAX_ONSET, 0.45 * span)
        plans.append((onset, coda, onset_length))
    for k, (syllable, (onset, coda, onset_length)) in enumerate(zip(syllables, plans)):
        onset_start = syllable.start - min(LEAD, sum(onset_length))
        end = syllable.end
        if k + 1 < len(syllables):
            following = syllables[k + 1]
            next_start = following.start - min(LEAD, sum(plans[k + 1][2]))
            end = min(end, next_start)
        end = max(end, syllable.start + MIN_NUCLEUS)
        coda_length = _capped([duration_of(syllable.source, i) for i in coda], MAX_CODA,
                              0.35 * (end - syllable.start))
        time = onset_start
        for i, length in zip(onset, onset_length):
            score.phones.append(PlacedPhone(_name(syllable, i), time, time + length, syllable.source, i, "onset",
                                            syllable.line))
            time += length
        coda_start = end - sum(coda_length)
        nucleus_start, nucleus = time, _nucleus_indices(syllable)
        if coda_start - nucleus_start < MIN_NUCLEUS:  # fast notes: squeeze the consonants
            coda_start = max(nucleus_start + MIN_NUCLEUS, end - sum(coda_length) * 0.5)
        for j, i in enumerate(nucleus):  # a merged nucleus shares the held time evenly
            a = nucleus_start + (coda_start - nucleus_start) * j / len(nucleus)
            b = nucleus_start + (coda_start - nucleus_start) * (j + 1) / len(nucleus)
            score.phones.append(PlacedPhone(_name(syllable, i), a, b, syllable.source, i, "nucleus",
                                            syllable.line))
        time = coda_start
        scale = (end - coda_start) / max(sum(coda_length), 1e-9)
        for i, length in zip(coda, coda_length):
            score.phones.append(PlacedPhone(_name(syllable, i), time, time + length * scale, syllable.source, i,
                                            "coda", syllable.line))
            time += length * scale
    score.breaths = _breaths(score.phones)
    return score


def _part_indices(syllable: SungSyllable) -> tuple[list[int], list[int]]:
    base = syllable.phones.start
    onset = list(range(base, base + len(syllable.phones.onset)))
    coda_from = base + len(syllable.phones.onset) + len(syllable.phones.nucleus)
    return onset, list(range(coda_from, coda_from + len(syllable.phones.coda)))


def _nucleus_indices(syllable: SungSyllable) -> list[int]:
    base = syllable.phones.start + len(syllable.phones.onset)
    return list(range(base, base + len(syllable.phones.nucleus)))


def _name(syllable: SungSyllable, index: int) -> str:
    return syllable.phones.phones[index - syllable.phones.start]


def _capped(lengths: list[float], cap: float, room: float) -> list[float]:
    total = sum(lengths)
    limit = max(0.0, min(cap, room))
    if total <= limit or total <= 0:
        return lengths
    return [length * limit / total for length in lengths]


def _breaths(phones: list[PlacedPhone]) -> list[tuple[float, float]]:
    """A breath before each line that follows a rest of BREATH_GAP or more (or opens the section)."""
    starts: dict[int, float] = {}
    ends: dict[int, float] = {}
    for phone in phones:
        starts.setdefault(phone.line, phone.start)
        ends[phone.line] = phone.end
    out = []
    previous_end = None
    for line in sorted(starts):
        start = starts[line]
        gap = start - previous_end if previous_end is not None else start + 1.0
        length = min(BREATH_LENGTH, gap - 0.1)
        if gap >= BREATH_GAP and length > 0.05 and start - 0.04 - length >= 0:
            out.append((start - 0.04 - length, start - 0.04))
        previous_end = ends[line]
    return out
