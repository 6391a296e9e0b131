"""Lyric parsing (tags, untagged blocks, repeats), the tagged round trip, syllables and stress."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lyrics
from lyrics import SECTION_KINDS, LyricSection, LyricsError, parse, to_text

# Hand-checked sung syllable counts (dictionary words, contractions, numbers, unknown words).
HAND_CHECKED = {
    "hello": 2, "world": 1, "beautiful": 3, "hyphenation": 4, "information": 4,
    "university": 5, "yesterday": 3, "remember": 3, "believe": 2, "table": 2, "little": 2,
    "idea": 3, "lion": 2, "quiet": 2, "poem": 2, "going": 2, "trains": 1, "strength": 1,
    "banana": 3, "elephant": 3, "butterfly": 3, "tomorrow": 3, "together": 3,
    "imagination": 5, "music": 2, "morning": 2, "don't": 1, "I'm": 1, "can't": 1,
    "rock'n'roll": 3, "runnin'": 2, "gonna": 2, "42": 3, "1999": 5, "3rd": 1, "100": 3,
    "twenty-one": 3, "café": 2, "lalala": 3, "skrrt": 1,
}

SONG = """\
[Verse 1]
Down by the station, early in the morning
See the little puffer-billies all in a row

[Chorus]
Whistle blowing, wheels are turning
Off we go

[verse 2]
Rails go running, out across the valley

[CHORUS]

[Bridge]
Steam and iron, coal and fire
"""


def test_tagged_sections_numbered_per_kind() -> None:
    sections = parse(SONG)
    assert [s.name for s in sections] == ["verse1", "chorus1", "verse2", "chorus2", "bridge1"]
    assert [s.kind for s in sections] == ["verse", "chorus", "verse", "chorus", "bridge"]
    assert sections[0].lines == [
        "Down by the station, early in the morning",
        "See the little puffer-billies all in a row",
    ]


def test_empty_chorus_tag_repeats_previous_chorus() -> None:
    chorus1, chorus2 = (s for s in parse(SONG) if s.kind == "chorus")
    assert chorus2.lines == chorus1.lines
    assert chorus2.repeat_of == "chorus1" and chorus1.repeat_of is None


def test_untagged_recurring_block_is_chorus() -> None:
    text = "one two three\nfour five\n\nla la la\nsing along\n\nsix seven\n\nLa la la,\nsing  along!\n"
    sections = parse(text)
    assert [s.name for s in sections] == ["verse1", "chorus1", "verse2", "chorus2"]
    assert sections[3].repeat_of == "chorus1"
    assert sections[3].lines == ["La la la,", "sing along!"]


def test_untagged_text_before_first_tag() -> None:
    sections = parse("intro words here\n\n[Chorus]\nhey hey\n")
    assert [(s.name, s.kind) for s in sections] == [("verse1", "verse"), ("chorus1", "chorus")]


@pytest.mark.parametrize(("tag", "kind"), [
    ("[Refrain]", "chorus"), ("[prechorus]", "pre-chorus"), ("[Pre Chorus 2]", "pre-chorus"),
    ("[pre-chorus]", "pre-chorus"), ("[Break]", "breakdown"), ("[Instrumental]", "solo"),
    ("[interlude]", "interlude"), ("[HOOK]", "hook"), ("[Outro]", "outro"), ("[intro]", "intro"),
    ("[Verse 2: Guest Singer]", "verse"), ("[Final Chorus]", "chorus"), ("[Chorus x2]", "chorus"),
    ("[Guitar Solo]", "solo"), ("[post-chorus]", "post-chorus"), ("[drop]", "drop"),
])
def test_tag_synonyms(tag: str, kind: str) -> None:
    assert parse(f"{tag}\nsome words to sing\n")[0].kind == kind


def test_unknown_tag_is_verse_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="lyrics"):
        sections = parse("[foo]\nwords\n[chorus]\nmore words\n")
    assert sections[0].kind == "verse"
    assert "[foo]" in caplog.text


@pytest.mark.parametrize("text", ["", "   \n\t\n", "\n\n"])
def test_empty_text_is_an_error(text: str) -> None:
    with pytest.raises(LyricsError, match="lyrics: empty"):
        parse(text)


def test_tags_without_lines_are_an_error() -> None:
    with pytest.raises(LyricsError, match="no lines"):
        parse("[verse]\n\n[chorus]\n[bridge]\n")


@pytest.mark.parametrize("text", ["🎵🎵\n🎶", "!!! ...\n--", "[Chorus]\n🙂 🙂"])
def test_lyrics_without_words_are_an_error(text: str) -> None:
    """As tags alone are: nothing would be sung, yet the lyrics files would time lines."""
    with pytest.raises(LyricsError, match="no words to sing"):
        parse(text)
    assert parse(text + "\nla la la")  # one line with words is enough


def test_not_text_is_an_error() -> None:
    with pytest.raises(LyricsError):
        parse(None)  # type: ignore[arg-type]


def test_long_lines_are_kept_whole_and_unicode_is_fine() -> None:
    long_line = " ".join(["wandering"] * 60)
    sections = parse(f"[verse]\n{long_line}\nça ira, naïve café\n你好 世界\n")
    assert sections[0].lines == [long_line, "ça ira, naïve café", "你好 世界"]


def test_ten_thousand_lines_parse() -> None:
    # (how fast is the benchmarks' business, not a timed test's: under load it failed at 1 s)
    block = "[Verse]\nline one of the verse\nline two\n\n[Chorus]\nsing it loud\nsing it proud\n\n"
    text = block * 1250  # 10,000 lines
    sections = parse(text)
    assert len(sections) == 2500
    assert sections[-1].repeat_of == "chorus1"


def test_to_text_round_trip_example() -> None:
    sections = parse(SONG)
    assert parse(to_text(sections)) == sections
    assert to_text(sections).startswith("[Verse 1]\n")


def test_to_text_rejects_unwritable_lines() -> None:
    with pytest.raises(LyricsError, match="looks like a tag"):
        to_text([LyricSection("verse1", "verse", ["[chorus]"])])
    with pytest.raises(LyricsError, match="unknown kind"):
        to_text([LyricSection("x1", "x", ["words"])])


LOOSE = """Verse 1:
Walking down the road
I see the lights

(Chorus)
Carry me home
Carry me home

[Chorus] x2

Bridge:
(hold on, break it down)
Chorus girls are dancing

Verse
the night is long
"""


def test_tags_written_as_lyric_sheets_on_the_web_write_them() -> None:
    sections = parse(LOOSE)
    assert [(s.name, s.repeat_of) for s in sections] == [
        ("verse1", None), ("chorus1", None), ("chorus2", "chorus1"), ("chorus3", "chorus1"),
        ("bridge1", None), ("verse2", None)]
    # a parenthesised backing vocal and a line that starts with a kind's name are sung
    assert sections[4].lines == ["(hold on, break it down)", "Chorus girls are dancing"]
    assert parse(to_text(sections)) == sections
    with pytest.raises(LyricsError, match="looks like a tag"):
        to_text([LyricSection("verse1", "verse", ["(Chorus)"])])


def test_a_repeat_mark_sings_the_section_that_many_times_and_an_empty_first_chorus_warns(caplog) -> None:
    sections = parse("[verse]\nla la\n\n[Chorus x2]\nhome again\n")
    assert [(s.name, s.lines) for s in sections] == [
        ("verse1", ["la la"]), ("chorus1", ["home again"]), ("chorus2", ["home again"])]
    with caplog.at_level(logging.WARNING, logger="lyrics"):
        parse("[chorus]\n\n[verse]\nla la\n")
    assert "no earlier chorus to repeat" in caplog.text


TAGS = ["[verse]", "[Verse 2]", "[CHORUS]", "[chorus]", "[Pre-Chorus]", "[bridge]", "[outro]",
        "[intro]", "[hook]", "[solo]", "[Refrain]", "[foo]", "[Verse 1: Someone]", "[]",
        "(Chorus)", "Verse 2:", "Chorus x2", "[Chorus] x3", "Bridge", "(hold on, break it down)"]
_PIECES = st.one_of(
    st.sampled_from(TAGS), st.just(""), st.just("  "),
    st.sampled_from(["la la la", "Oh, la la!", "hello world", "[a]b]", "naïve ça"]),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
)
LYRIC_TEXTS = st.lists(_PIECES, max_size=25).map("\n".join)


@settings(max_examples=150, deadline=None)
@given(LYRIC_TEXTS)
def test_parse_fails_only_with_lyrics_error_and_round_trips(text: str) -> None:
    logging.getLogger("lyrics").setLevel(logging.ERROR)  # unknown-tag warnings are expected
    try:
        sections = parse(text)
    except LyricsError:
        return
    names = [s.name for s in sections]
    assert len(set(names)) == len(names)
    for i, section in enumerate(sections):
        assert section.kind in SECTION_KINDS
        if section.repeat_of is not None:
            source = next(s for s in sections[:i] if s.name == section.repeat_of)
            assert source.kind == section.kind and source.repeat_of is None
    assert parse(to_text(sections)) == sections


@pytest.mark.parametrize(("word", "count"), sorted(HAND_CHECKED.items()))
def test_hand_checked_syllable_counts(word: str, count: int) -> None:
    assert lyrics.count_syllables(word) == count
    assert len(lyrics.syllables(word)) == count
    assert len(lyrics.stresses(word)) == count


def test_syllable_texts() -> None:
    assert lyrics.syllables("hyphenation") == ["hy", "phen", "a", "tion"]
    assert lyrics.syllables("42") == ["for", "ty", "two"]
    assert lyrics.syllables("rock'n'roll") == ["rock", "'n'", "roll"]
    assert lyrics.syllables("It's 2 o'clock") == ["It's", "two", "o'", "clock"]


def test_stresses() -> None:
    assert lyrics.stresses("the river") == [0, 1, 0]
    assert lyrics.stresses("I believe in you") == [0, 0, 1, 0, 0]
    assert lyrics.stresses("remember") == [0, 1, 0]
    assert lyrics.stresses("blorptastic") == [0, 1, 0]  # unknown: stress before -ic


def test_line_counts() -> None:
    assert lyrics.count_syllables("Don't stop believin', it's 1999!") == 11
    assert lyrics.count_syllables("... !!! ...") == 0
    assert lyrics.syllable_counts(["hello world", "", "a beautiful day"]) == [3, 0, 5]


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[A-Za-z]{1,14}('[a-z]{1,3})?", fullmatch=True))
def test_syllables_spell_the_word(word: str) -> None:
    parts = lyrics.syllables(word)
    assert "".join(parts) == word
    assert all(parts) and len(parts) == len(lyrics.stresses(word))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_text_has_consistent_syllables(text: str) -> None:
    assert lyrics.count_syllables(text) == len(lyrics.syllables(text)) == len(lyrics.stresses(text))


def test_lyrics_imports_no_audio_torch_or_other_song_packages() -> None:
    forbidden = {"torch", "torchaudio", "structure", "composer", "diffusion", "autoencoder",
                 "librosa", "soundfile", "soxr", "pyloudnorm", "fluidsynth"}
    for path in Path(lyrics.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            assert not {m.split(".")[0] for m in modules} & forbidden, path.name


def test_control_characters_are_dropped_from_lines() -> None:
    # a stray \x01 made the lead sheet malformed XML
    assert parse("[verse]\nla\x01 la\x7f la\n")[0].lines == ["la la la"]


def test_titles_and_the_pronoun_are_written_as_people_write_them() -> None:
    import lyrics

    assert lyrics.title_case("nobody we won't back") == "Nobody We Won't Back"  # str.title(): "Won'T"
    assert lyrics.title_case("i nobody can stop i'm") == "I Nobody Can Stop I'm"
    assert lyrics.capital_i("and i'm sure i'll know, i said") == "and I'm sure I'll know, I said"
    assert lyrics.capital_i("iris is in it, hi") == "iris is in it, hi"


def test_a_repeat_count_past_the_limit_says_so(caplog) -> None:
    with caplog.at_level("WARNING", logger="lyrics.sections"):
        sections = parse("[Chorus x999]\nsing it loud\n")
    assert "asks for 999 times; a section is sung 8 times at most" in caplog.text
    assert len(sections) == 8


def test_a_repeat_count_of_nought_is_sung_once_and_says_so(caplog) -> None:
    with caplog.at_level("WARNING", logger="lyrics.sections"):
        sections = parse("[Chorus x0]\nsing it loud\n")
    assert "asks for 0 times; a tagged section is sung once" in caplog.text
    assert len(sections) == 1


def test_a_lines_own_repeat_mark_sings_it_again_without_the_mark():
    """"Hold on to me (x2)" was sung "...to me ex two" once."""
    from lyrics import parse

    text = "[Verse]\nHold on to me (x2)\nWalking down the road x3\nCall me [2x]\nMalcolm X 2\nNumber 2x\n"
    assert parse(text)[0].lines == ["Hold on to me"] * 2 + ["Walking down the road"] * 3 + ["Call me"] * 2 + [
        "Malcolm X 2", "Number 2x"]
