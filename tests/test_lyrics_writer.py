"""The template lyric writer: determinism, syllable targets, repeats, hooks and rhymes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lyrics import (
    LyricsError,
    SectionSpec,
    count_syllables,
    parse,
    pronounce,
    to_text,
    words,
    write,
)
from lyrics.writer import resolve_mood, theme_words

THEME = "wistful folk song about trains, 96 bpm, in D minor"
FORM = [
    SectionSpec("verse1", "verse", [8, 8, 8, 8]),
    SectionSpec("chorus1", "chorus", [7, 7, 9, 6]),
    SectionSpec("verse2", "verse", [8, 9, 8, 9]),
    SectionSpec("chorus2", "chorus", [], repeat_of="chorus1"),
    SectionSpec("bridge1", "bridge", [6, 6, 6, 6]),
    SectionSpec("solo1", "solo", []),
    SectionSpec("chorus3", "chorus", [7, 7, 9, 6], repeat_of="chorus2"),
    SectionSpec("outro1", "outro", [24, 3, 1, 2]),
]


def _within_one(sections, specs) -> bool:
    targets = {spec.name: spec.syllables for spec in specs}
    return all(
        abs(count_syllables(line) - target) <= 1
        for section in sections if section.repeat_of is None
        for line, target in zip(section.lines, targets[section.name], strict=True)
    )


def _rhymes(a: str, b: str) -> bool:
    a, b = words(a)[-1].lower(), words(b)[-1].lower()
    parts = {pronounce.rhyming_part(p) for p in pronounce.phones_for_word(a)}
    return a == b or any(pronounce.rhyming_part(p) in parts for p in pronounce.phones_for_word(b))


def test_writes_every_section_with_its_name_kind_and_repeats() -> None:
    song = write(THEME, sections=FORM, seed=3)
    assert [(s.name, s.kind) for s in song] == [(spec.name, spec.kind) for spec in FORM]
    by_name = {s.name: s for s in song}
    assert by_name["chorus2"].lines == by_name["chorus3"].lines == by_name["chorus1"].lines
    assert by_name["chorus2"].repeat_of == by_name["chorus3"].repeat_of == "chorus1"
    assert by_name["solo1"].lines == []
    assert _within_one(song, FORM)


def test_deterministic_in_seed() -> None:
    assert write(THEME, sections=FORM, seed=5) == write(THEME, sections=FORM, seed=5)
    assert write(THEME, sections=FORM, seed=5) != write(THEME, sections=FORM, seed=6)


def test_chorus_hook_holds_a_theme_word_and_sections_rhyme() -> None:
    song = write(THEME, sections=FORM, seed=1)
    chorus = next(s for s in song if s.kind == "chorus")
    assert "trains" in chorus.lines[0].lower()
    for section in song:
        if len(section.lines) == 4 and section.kind in ("verse", "chorus"):
            a, b, c, d = section.lines
            assert (_rhymes(a, b) and _rhymes(c, d)) or (_rhymes(a, c) and _rhymes(b, d))
        if section.kind == "bridge":
            assert _rhymes(section.lines[1], section.lines[3])


def test_written_lyrics_survive_the_tagged_round_trip() -> None:
    song = write("love song about the ocean", mood="tender", sections=FORM[:4], seed=0)
    assert parse(to_text(song)) == song


def test_theme_words_and_mood() -> None:
    assert theme_words(THEME) == ["trains"]
    assert theme_words("genre=rock mood=angry a song about city lights") == ["city", "lights"]
    # a possessive names its noun, and words that are no subject are left out of the hook
    assert theme_words("a song about my mother's garden") == ["mother", "garden"]
    assert theme_words("a ballad about falling in love again") == ["falling"]  # "love" names the mood
    assert resolve_mood(None, THEME) == "wistful"
    assert resolve_mood("Happy", "") == "joyful"
    assert resolve_mood("zzz", "") == "hopeful"


@pytest.mark.parametrize(("specs", "message"), [
    ([], "at least one"),
    ([SectionSpec("v", "nonsense", [8])], "unknown kind"),
    ([SectionSpec("v", "verse", [8]), SectionSpec("v", "verse", [8])], "unique"),
    ([SectionSpec("c", "chorus", [8], repeat_of="x")], "not an earlier"),
    ([SectionSpec("c", "chorus", [8]), SectionSpec("d", "chorus", [9], repeat_of="c")],
     "syllables"),
    ([SectionSpec("v", "verse", [0])], "whole numbers"),
])
def test_bad_specs_are_an_error(specs: list[SectionSpec], message: str) -> None:
    with pytest.raises(LyricsError, match=message):
        write("trains", sections=specs)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["verse", "chorus", "bridge", "pre-chorus", "hook", "outro"]),
    st.lists(st.integers(1, 30), min_size=1, max_size=9),
    st.sampled_from([None, "sad", "happy", "angry", "calm", "romantic"]),
    st.integers(0, 1000),
)
def test_syllable_targets_are_met(kind: str, targets: list[int], mood: str | None,
                                  seed: int) -> None:
    specs = [SectionSpec("s1", kind, targets)]
    song = write("a song about the sea and summer", mood=mood, sections=specs, seed=seed)
    assert len(song[0].lines) == len(targets)
    assert _within_one(song, specs)


def test_a_theme_leans_the_rhymes_toward_its_nearest_nouns() -> None:
    from lyrics.banks import NOUNS

    near = {"sea", "shore", "tide", "wave", "ocean", "sail", "storm", "river", "moon", "night"}
    related = {noun: (0.8 if noun in near else 0.05) for noun in NOUNS}
    sections = [SectionSpec("v1", "verse", [7] * 4), SectionSpec("c1", "chorus", [7] * 4),
                SectionSpec("v2", "verse", [7] * 4)]

    def ends(lean) -> list[str]:
        out = []
        for seed in range(6):
            for section in write("a song about the harbour", sections=sections, seed=seed, related=lean):
                out += [line.split()[-1].strip(",.").lower() for line in section.lines]
        return out

    plain, leaning = ends(None), ends(related)
    assert sum(e in near for e in leaning) > 2 * sum(e in near for e in plain) + 5, (plain, leaning)
    assert all(abs(count_syllables(line) - 7) <= 1 for seed in range(3)
               for section in write("a song about the harbour", sections=sections, seed=seed, related=related)
               for line in section.lines)
    # a theme with no content words (the writer's fallback) is written as without a lean
    assert write("a song", sections=sections, seed=1, related=related) == write("a song", sections=sections, seed=1)


def test_the_planner_leans_the_lyrics_only_when_it_has_a_sentence_encoder() -> None:
    import hashlib

    import numpy as np

    from structure.planner import plan

    def embed(texts: list[str]) -> np.ndarray:  # a deterministic stand-in for the sentence encoder
        vectors = np.stack([np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).normal(size=16)
                            for t in texts])
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    themed = "a folk song about the harbour at night"
    lines = lambda song: [line for s in song.sections for line in s.lyrics]  # noqa: E731
    assert lines(plan(themed, seed=2, embed=embed)) != lines(plan(themed, seed=2))
    assert lines(plan(themed, seed=2, embed=embed)) == lines(plan(themed, seed=2, embed=embed))
    assert lines(plan("genre=pop mood=happy", seed=2, embed=embed)) == lines(plan("genre=pop mood=happy", seed=2))


def test_a_hook_does_not_end_on_its_own_theme_word() -> None:
    sections = [SectionSpec("c1", "chorus", [7] * 4), SectionSpec("v1", "verse", [7] * 4)]
    related = {"train": 0.9, "rain": 0.7, "trail": 0.6}
    for theme in ("a song about trains", "a song about rain"):
        word = theme_words(theme)[0]
        for seed in range(12):
            for lean in (None, related):
                hook = write(theme, sections=sections, seed=seed, related=lean)[0].lines[0]
                hook_words = words(hook)
                if hook_words[0].casefold() == word:  # a hook: the theme word opens it
                    assert hook_words[-1].casefold().rstrip("s") != word.rstrip("s"), (seed, hook)
