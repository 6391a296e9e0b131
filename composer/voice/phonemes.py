"""Words to sung phones: the CMU dictionary (the pronunciation the lyrics module counts),
Flite's letter-to-sound rules for any other word, split into syllables (onset, nucleus,
coda) that match the lyric's syllable count, so every note gets its own syllable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import lyrics
from composer.voice.engine import PHONES, VOWELS, letter_to_sound
from lyrics.syllables import unaccented

# Two-consonant onsets English allows; longer clusters keep their last two as the onset.
_ONSETS = frozenset(tuple(pair.split("-")) for pair in (
    "p-r p-l b-r b-l t-r d-r k-r k-l g-r g-l f-r f-l th-r sh-r s-p s-t s-k s-m s-n s-l s-w "
    "t-w d-w k-w hh-w hh-y p-y b-y k-y f-y m-y v-y").split())
SONORANTS = VOWELS | {"m", "n", "ng", "l", "r", "w", "y"}


@dataclass(frozen=True)
class SyllablePhones:
    """One sung syllable: consonants before the vowel, the held part, consonants after."""

    onset: tuple[str, ...]
    nucleus: tuple[str, ...]
    coda: tuple[str, ...]
    start: int = 0  # index of its first phone in the word's phones (the spoken source)

    @property
    def phones(self) -> tuple[str, ...]:
        return self.onset + self.nucleus + self.coda


def from_arpabet(phones: list[str]) -> list[str]:
    """CMU dictionary phones (with stress digits) in Flite's set: "AH0" -> "ax", "EY1" -> "ey"."""
    out = []
    for phone in phones:
        base = re.sub(r"\d", "", phone).lower()
        out.append("ax" if phone == "AH0" else base)
    return [p for p in out if p in PHONES]


def word_phones(tokens: list[str]) -> dict[str, list[str]]:
    """Phones of every sung token: the dictionary first, Flite's rules for the rest."""
    found: dict[str, list[str]] = {}
    unknown = []
    for token in dict.fromkeys(tokens):
        phones = lyrics.pronunciation(token)
        if phones:
            found[token] = from_arpabet(phones)
        else:
            unknown.append(token)
    if unknown:
        spelled = {token: " ".join(_spoken_form(token)) for token in unknown}
        guessed = letter_to_sound(list(spelled.values()))
        for token, text in spelled.items():
            found[token] = guessed.get(text) or []
        silent = [token for token in unknown if not found[token]]
        if silent:  # Cyrillic, kana, ½: the engine's English letter-to-sound has no phones for them
            import logging

            logging.getLogger(__name__).warning(
                "voice: no English pronunciation for %s; sung as an open vowel", ", ".join(map(repr, silent[:8]))
                + (f" and {len(silent) - 8} more" if len(silent) > 8 else ""))
    return found


def _spoken_form(token: str) -> list[str]:
    """What Flite is asked to read for an unknown token (numbers spelled out, letters only)."""
    from lyrics.numbers import number_words

    if token[:1].isdigit():
        return number_words(token) or list(token)
    cleaned = re.sub(r"[^\w']", "", unaccented(token)).strip("'")
    return [cleaned or token]


def syllabify(phones: list[str], count: int) -> list[SyllablePhones]:
    """`count` syllables from a word's phones (count >= 1).

    One vowel a syllable when the counts agree; otherwise neighbouring vowels merge into
    one nucleus (more vowels than syllables) or the last vowel is sung again (fewer). A word
    with no vowel ("hmm") is one nucleus of its sonorants. Consonants between vowels go to
    the next syllable's onset (at most two, when English allows the pair), the rest to the
    coda before.
    """
    count = max(1, count)
    phones = [p for p in phones if p in PHONES]
    if not phones:
        return [SyllablePhones((), ("ax",), ())] * count  # nothing to say: an open vowel
    nuclei = [i for i, p in enumerate(phones) if p in VOWELS]
    if not nuclei:
        sonorant = [i for i, p in enumerate(phones) if p in SONORANTS] or [len(phones) // 2]
        nuclei = [sonorant[0]]
    # group vowel positions into `count` nuclei (runs of vowel indices)
    groups: list[list[int]] = []
    for k in range(count):
        lo = k * len(nuclei) // count
        hi = max(lo + 1, (k + 1) * len(nuclei) // count)
        groups.append(nuclei[min(lo, len(nuclei) - 1):min(hi, len(nuclei))] or [nuclei[-1]])
    # boundaries: the consonants between group k's last vowel and group k+1's first vowel
    cuts = []
    for k in range(count - 1):
        end, start = groups[k][-1] + 1, groups[k + 1][0]
        if start < end:  # the same vowel sung again
            cuts.append((end, end))
            continue
        between = phones[end:start]
        take = 0
        if between:
            take = 1
            if len(between) >= 2 and (between[-2], between[-1]) in _ONSETS:
                take = 2
        cuts.append((end + len(between) - take, start))
    out = []
    onset_from = 0
    for k in range(count):
        first, last = groups[k][0], groups[k][-1]
        onset = tuple(phones[onset_from:first]) if onset_from <= first else ()
        nucleus = tuple(phones[first:last + 1])
        if k + 1 < count:
            coda_end, next_onset = cuts[k]
            coda = tuple(phones[last + 1:coda_end])
            onset_from = coda_end if coda_end < next_onset else next_onset
        else:
            coda = tuple(phones[last + 1:])
        out.append(SyllablePhones(onset, nucleus, coda, first - len(onset)))
    return out
