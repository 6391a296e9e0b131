"""Fitting lyric lines to melody notes, and timed-lyric export (LRC, JSON)."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lyrics import (
    MELISMA,
    LyricsError,
    Slot,
    TimedLine,
    fit_line,
    notes_for_line,
    syllables,
    to_json_timed,
    to_lrc,
)

_VOCABULARY = ["the", "river", "runs", "beautiful", "I", "will", "always", "love", "you",
               "42", "rock'n'roll", "don't", "imagination", "oh", "train"]
_LINES = st.lists(st.sampled_from(_VOCABULARY), min_size=0, max_size=10).map(" ".join)
_SLOTS = st.lists(
    st.tuples(st.sampled_from([0.25, 0.5, 1.0, 1.5, 2.0]), st.booleans()), min_size=1, max_size=16,
).map(lambda notes: [Slot(sum(d for d, _ in notes[:i]), d, strong) for i, (d, strong)
                     in enumerate(notes)])


def _beats(slots: list[Slot]) -> float:
    return sum(slot.duration for slot in slots)


def test_one_note_per_syllable_lands_stress_on_strong_beats() -> None:
    slots = [Slot(float(i), 1.0, strong=i % 2 == 1) for i in range(4)]
    assert fit_line("the river runs", slots) == ["the", "riv", "er", "runs"]


def test_spare_notes_become_melisma_on_stressed_or_last_syllables() -> None:
    slots = [Slot(float(i), 1.0, strong=i % 2 == 0) for i in range(4)]
    assert fit_line("hello", slots) == ["hel", MELISMA, "lo", MELISMA]


def test_line_without_syllables_leaves_notes_unsung() -> None:
    assert fit_line("...", [Slot(0, 1, True), Slot(1, 1)]) == [None, None]


def test_too_few_notes_is_an_error_until_notes_are_added() -> None:
    slots = [Slot(0, 2, True), Slot(2, 1), Slot(3, 1)]
    with pytest.raises(LyricsError, match="notes_for_line"):
        fit_line("I will always love you", slots)
    notes = notes_for_line("I will always love you", slots)
    assert len(notes) == 6 and _beats(notes) == _beats(slots)
    assert notes[0] == Slot(0, 0.5, True)  # the longest note was halved twice
    assert fit_line("I will always love you", notes) == ["I", "will", "al", "ways", "love", "you"]


def test_bad_slots_are_an_error() -> None:
    with pytest.raises(LyricsError, match="duration"):
        fit_line("hello", [Slot(0, 0)])
    with pytest.raises(LyricsError, match="time order"):
        fit_line("hello", [Slot(2, 1), Slot(0, 1)])
    with pytest.raises(LyricsError, match="no notes"):
        notes_for_line("hello", [])


@settings(max_examples=150, deadline=None)
@given(_LINES, _SLOTS)
def test_every_syllable_sung_once_in_order(line: str, slots: list[Slot]) -> None:
    notes = notes_for_line(line, slots)
    assert len(notes) >= len(syllables(line)) and len(notes) >= len(slots)
    assert _beats(notes) == pytest.approx(_beats(slots))
    assert all(a.start + a.duration == pytest.approx(b.start) for a, b in zip(notes, notes[1:]))
    fitted = fit_line(line, notes)
    assert len(fitted) == len(notes)
    if syllables(line):
        assert fitted[0] != MELISMA
        assert [text for text in fitted if text != MELISMA] == syllables(line)
    else:
        assert fitted == [None] * len(notes)


def _timed_song(beats_per_second: float = 2.0) -> list[TimedLine]:
    """Two fitted lines at 120 bpm, with word times from their notes."""
    timed, offset = [], 0.0
    for line in ["the river runs", "I will always love you"]:
        notes = notes_for_line(line, [Slot(float(i), 1.0, i % 2 == 1) for i in range(4)])
        sung = fit_line(line, notes)
        starts = [offset + n.start / beats_per_second for n, s in zip(notes, sung) if s != "_"]
        words = list(zip(starts[:1] + starts[1:], line.split())) if len(line.split()) <= 3 else None
        end = offset + _beats(notes) / beats_per_second
        timed.append(TimedLine(offset, end, line, words))
        offset = end + 0.5
    return timed


_STAMP = re.compile(r"[\[<](\d+):(\d\d)\.(\d\d)[\]>]")


def _stamps(text: str) -> list[float]:
    return [int(m) * 60 + int(s) + int(c) / 100 for m, s, c in _STAMP.findall(text)]


def test_lrc_standard() -> None:
    lrc = to_lrc(_timed_song(), title="Trains", duration=10.0)
    assert lrc.splitlines()[:3] == ["[ti:Trains]", "[length:00:10.00]", "[00:00.00]the river runs"]
    assert "[00:02.50]I will always love you" in lrc
    times = _stamps(lrc)[1:]  # after [length:]
    assert times == sorted(times) and max(times) <= 10.0


def test_lrc_enhanced_has_word_times() -> None:
    lrc = to_lrc(_timed_song(), enhanced=True)
    first = lrc.splitlines()[0]
    assert first.startswith("[00:00.00]<00:00.00>the <00:00.50>river")
    assert first.endswith("<00:02.00>")
    assert "[00:02.50]I will always love you" in lrc  # no words: a plain line


def test_json_timed() -> None:
    records = json.loads(to_json_timed(_timed_song()))
    assert records[0]["text"] == "the river runs" and records[0]["words"][1] == {
        "start": 0.5, "word": "river"}
    assert records[1]["words"] is None and records[1]["start"] == 2.5


@pytest.mark.parametrize("bad", [
    [TimedLine(-1.0, 1.0, "a")],
    [TimedLine(1.0, 1.0, "a")],
    [TimedLine(0.0, 2.0, "a"), TimedLine(1.0, 3.0, "b")],
    [TimedLine(0.0, 1.0, "a", [(0.5, "x"), (0.2, "y")])],
    [TimedLine(0.0, 1.0, "a", [(1.5, "x")])],
    [TimedLine(0.0, float("nan"), "a")],
])
def test_bad_times_are_an_error(bad: list[TimedLine]) -> None:
    with pytest.raises(LyricsError):
        to_lrc(bad)
    with pytest.raises(LyricsError):
        to_json_timed(bad)


def test_lines_past_the_song_end_are_an_error() -> None:
    with pytest.raises(LyricsError, match="after the song"):
        to_lrc([TimedLine(0.0, 12.0, "a")], duration=10.0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5), st.floats(0.01, 5)), min_size=1, max_size=20))
def test_lrc_times_increase_and_stay_inside_the_song(gaps: list[tuple[float, float]]) -> None:
    lines, time = [], 0.0
    for gap, length in gaps:
        lines.append(TimedLine(time + gap, time + gap + length, "la la"))
        time += gap + length
    lrc = to_lrc(lines, duration=time)
    times = _stamps(lrc)
    minutes, seconds, centis = re.search(r"\[length:(\d+):(\d\d)\.(\d\d)\]", lrc).groups()
    length = int(minutes) * 60 + int(seconds) + int(centis) / 100
    assert times == sorted(times)
    # against the song's own [length:] stamp, rounded as every stamp is (Python's round(0.015, 2)
    # is 0.01, while 0.015 * 100 rounds to 2: hypothesis found that gap)
    assert max(times) <= length
    assert abs(length - time) <= 0.005 + 1e-9


def test_written_words_keep_the_typed_characters() -> None:
    # curly apostrophes and accents as typed (the LRC, lyrics.json and the lead sheet show these)
    from lyrics.syllables import written_words

    assert written_words("Don’t you cry, café — naïve") == [
        ("Don’t", 1), ("you", 1), ("cry,", 1), ("café —", 1), ("naïve", 1)]


def test_display_syllables_show_each_syllable_as_written() -> None:
    # what the lead sheet prints under each sung note: punctuation on the word's ends,
    # apostrophes as typed, and the syllable's place in its word
    import lyrics

    shown = lyrics.display_syllables("“Hello,” don’t stop-believing — 42")
    assert shown[:3] == [("“Hel", "begin"), ("lo,”", "end"), ("don’t", "single")]
    assert [text for text, _ in shown] == ["“Hel", "lo,”", "don’t", "stop-", "be", "liev", "ing —",
                                           "42", "", ""]  # a number as written, held over its sung syllables
    assert [place for _, place in shown][-3:] == ["single", "extend", "extend"]
    assert sum(1 for _, place in shown if place == "begin") == sum(1 for _, place in shown if place == "end")
    assert len(shown) == lyrics.count_syllables("“Hello,” don’t stop-believing — 42")


@pytest.mark.parametrize("line, sung, shown", [
    ("3.14 is pi", ["three", "point", "one", "four", "is", "pi"], "3.14"),
    ("2.5 miles", ["two", "point", "five", "miles"], "2.5"),
    ("100% sure", ["one", "hun", "dred", "per", "cent", "sure"], "100%"),
    ("$5 and $1.50", ["five", "dol", "lars", "and", "one", "dol", "lar", "fif", "ty"], "$5"),
    ("rock & roll", ["rock", "and", "roll"], "rock"),
])
def test_signs_around_numbers_are_sung_and_the_lead_sheet_shows_them_as_written(line, sung, shown) -> None:
    import lyrics

    assert lyrics.syllables(line) == sung
    display = lyrics.display_syllables(line)
    assert len(display) == len(sung) and display[0][0] == shown


@pytest.mark.parametrize("line", ["I have $ 5 today", "pay £ 1,000.50 now", "50%off", "$1,0000", "3.5%", "100 %",
                                  ".5", "5.", "1.2.3", "&&", "A & B", "rock & roll", "€1,000.50 each"])
def test_a_lines_shown_syllables_and_written_words_agree_with_what_is_sung(line) -> None:
    """Each written word sings what the whole line does, so the lead sheet and the word times line up."""
    import lyrics
    from lyrics.syllables import words, written_words

    assert len(lyrics.display_syllables(line)) == lyrics.count_syllables(line)
    assert sum(count for _, count in written_words(line)) == len(words(line))


def test_a_line_no_note_sings_is_shown_above_its_phrase_in_the_lead_sheet() -> None:
    """A line of only emoji has no syllable to put under a note; the lead sheet shows it as
    text where its phrase starts, as LRC and lyrics.json keep it."""
    import music21

    import structure
    from structure.export import musicxml_bytes

    plan = structure.plan("folk, 100 bpm", lyrics="[Verse]\nWalking down the river road\n🎵🎶\n"
                          "Carrying my heavy load\nI will sing it all alone\n", seed=1)
    score = music21.converter.parseData(musicxml_bytes(plan))
    shown = list(score.recurse().getElementsByClass("TextExpression"))
    assert [t.content for t in shown] == ["🎵🎶"]
    verse = next(s for s in plan.sections if s.lyrics)
    start = dict(zip([s.name for s in plan.sections], plan.section_beats()))[verse.name][0]
    sung_after = [n for n in verse.melody if n.syllable and n.syllable != "_"]
    # between the first line's last sung note and the third line's first
    first_line_end = max(n.start for n in sung_after if n.start < verse.bars * plan.beats_per_bar / 4)
    at = shown[0].getOffsetInHierarchy(score) / plan.quarters_per_beat - start
    assert first_line_end < at <= min(n.start for n in sung_after if n.start > at)
    assert not any(t.content == "🎵🎶" for t in score.recurse().getElementsByClass("Lyric"))


@pytest.mark.parametrize("line, sung", [
    ("the 1990s", ["the", "nine", "teen", "nine", "ties"]),
    ("the '80s", ["the", "eight", "ies"]),
    ("till 7:00", ["till", "sev", "en", "o'", "clock"]),
    ("at 3:05", ["at", "three", "oh", "five"]),
    ("at 3:45", ["at", "three", "for", "ty", "five"]),
])
def test_decades_and_times_of_day_are_sung_as_said(line, sung) -> None:
    """"1990s" was sung "nineteen ninety ess", "7:00" "seven zero zero"."""
    import lyrics

    assert lyrics.syllables(line) == sung
    assert len(lyrics.display_syllables(line)) == len(sung)


def test_an_acronym_the_dictionary_does_not_know_is_sung_letter_by_letter() -> None:
    """"NYC" was one note sung "nick"; a word in capitals ("LOVE") or a known acronym ("NASA") is a word."""
    import lyrics

    assert lyrics.syllables("NYC, the DJ") == ["N", "Y", "C", "the", "D", "J"]
    assert lyrics.pronunciation("NYC") == ["EH1", "N", "W", "AY1", "S", "IY1"]
    assert lyrics.syllables("I LOVE NASA") == ["I", "LOVE", "NA", "SA"]
    assert [text for text, _ in lyrics.display_syllables("NYC, the DJ")] == ["N", "Y", "C,", "the", "D", "J"]


def test_the_lead_sheet_keeps_what_is_written_between_the_words_of_a_compound() -> None:
    """"half-empty" lost its hyphen, "Oh—no," its dash and "a.m." its first dot."""
    import lyrics

    def joined(line):
        shown = lyrics.display_syllables(line)
        return "".join(text + (" " if place in ("single", "end") else "") for text, place in shown).strip()

    assert lyrics.display_syllables("half-empty")[0] == ("half-", "single")
    for line in ("Oh—no, wait", "a half-empty glass", "at 5 a.m. sharp", "Ten-thirty, na-na-na,"):
        assert joined(line).replace(" ", "") == line.replace(" ", "")
