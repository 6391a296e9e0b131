"""Tunes of the music21 corpus that ships in its wheel: `Melody`, `TuneRef` and the tune index.

Sources (counted on music21 10.5):

- folk melodies in ABC: Essen (`essenFolksong`, 8,462 tunes without its
  test files), O'Neill's 1850 (`oneills1850`, 1,838 tunes once the
  overlapping files are de-duplicated by tune number) and Ryan's Mammoth
  (`ryansMammoth`, 1,059 tunes). About 90 % of them have a usable meter (see
  `composer.data.tune_parsing`). Almost none carry chord symbols, so
  `structure.harmonise.harmonise_melody` gives them chords.
- Bach chorales (`bach/bwv*`, 410 files once de-duplicated, 403 usable): the melody is
  the soprano part, the chords come from analysis (the chordified score,
  one chord symbol a beat).

The index only counts X: lines, parsing nothing: `list_folk_tunes`, `list_chorales`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from structure.schema import Key

FOLK_COLLECTIONS = {"essen": "essenFolksong", "oneill": "oneills1850", "ryan": "ryansMammoth"}
CHORALE_DIR = "bach"


class UnsupportedTune(ValueError):
    """A tune that cannot become a plan (meter, length, parse failure); the message says why."""


# --- melodies -----------------------------------------------------------------
@dataclass(frozen=True)
class Melody:
    """One tune: notes as (start_beat, duration_beats, midi pitch) from the first bar line.

    `chords`: one list of chord symbols a bar when the source has harmony
    (chorales); None for a bare melody, which `structure.harmonise.harmonise_melody` harmonises.
    """

    title: str
    source: str  # "music21 corpus: essenFolksong/han1.abc, tune 12, Title"
    path: str  # inside the music21 corpus: "essenFolksong/han1.abc"
    tune: str  # the ABC reference number (X:), or the chorale's BWV number
    meter: str  # as written: "6/8"
    beats_per_bar: int
    beat_quarters: float  # quarter notes a beat: 1.0, or 1.5 for compound meters
    key: str  # "D dorian"
    notes: tuple[tuple[float, float, int], ...]
    chords: tuple[tuple[str, ...], ...] | None = None

    @property
    def bars(self) -> int:
        end = max(s + d for s, d, _ in self.notes)
        bars = max(1, math.ceil(end / self.beats_per_bar - 1e-6))
        return max(bars, len(self.chords)) if self.chords else bars

    @property
    def plan_key(self) -> Key:
        return Key.parse(self.key)

    def to_dict(self) -> dict:
        return {"title": self.title, "source": self.source, "path": self.path, "tune": self.tune,
                "meter": self.meter, "beats_per_bar": self.beats_per_bar, "beat_quarters": self.beat_quarters,
                "key": self.key, "notes": [list(n) for n in self.notes],
                "chords": None if self.chords is None else [list(bar) for bar in self.chords]}

    @classmethod
    def from_dict(cls, data: dict) -> Melody:
        chords = data.get("chords")
        return cls(title=data["title"], source=data["source"], path=data["path"], tune=str(data["tune"]),
                   meter=data["meter"], beats_per_bar=int(data["beats_per_bar"]),
                   beat_quarters=float(data["beat_quarters"]), key=data["key"],
                   notes=tuple((float(s), float(d), int(p)) for s, d, p in data["notes"]),
                   chords=None if chords is None else tuple(tuple(bar) for bar in chords))


@dataclass(frozen=True)
class TuneRef:
    """Where one tune lives: a corpus file and the tune's position in it (1-based)."""

    collection: str  # "essen" | "oneill" | "ryan" | "chorales"
    path: str  # inside the music21 corpus
    ordinal: int = 1
    number: str = ""  # the ABC X: field

    @property
    def cache_key(self) -> str:
        return f"{self.path}#{self.ordinal}"


def corpus_root() -> Path:
    """The folder of the music21 corpus inside the installed music21 package."""
    import music21.corpus

    return Path(music21.corpus.__file__).parent


_X_LINE = re.compile(r"(?m)^X:[ \t]*(\S*)")


@lru_cache(maxsize=8)
def abc_blocks(path: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(file header, ((X number, tune text), ...)) of an ABC file."""
    raw = (corpus_root() / path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    starts = [m.start() for m in _X_LINE.finditer(text)]
    header = text[: starts[0]] if starts else text
    blocks = []
    for a, b in zip(starts, starts[1:] + [len(text)]):
        block = text[a:b]
        blocks.append((_X_LINE.match(block).group(1), block))
    return header, tuple(blocks)


@lru_cache(maxsize=4)
def list_folk_tunes(collections: tuple[str, ...] = tuple(FOLK_COLLECTIONS)) -> tuple[TuneRef, ...]:
    """Every folk tune in the corpus, in a stable order (no parsing: X: lines are counted).

    Essen's test files (four versions of one tune) are left out; O'Neill's
    overlapping files are de-duplicated by tune number.
    """
    root = corpus_root()
    refs: list[TuneRef] = []
    for name in collections:
        if name not in FOLK_COLLECTIONS:
            raise ValueError(f"unknown folk collection {name!r} (known: {', '.join(FOLK_COLLECTIONS)})")
        folder = FOLK_COLLECTIONS[name]
        seen: set[str] = set()
        for file in sorted((root / folder).glob("*.abc")):
            if name == "essen" and file.name.startswith("test"):
                continue
            rel = f"{folder}/{file.name}"
            for ordinal, (number, _) in enumerate(abc_blocks(rel)[1], start=1):
                if name == "oneill":
                    if number in seen:
                        continue
                    seen.add(number)
                refs.append(TuneRef(name, rel, ordinal, number))
    return tuple(refs)


@lru_cache(maxsize=1)
def list_chorales() -> tuple[TuneRef, ...]:
    """The Bach chorale files (`bach/bwv*`: MusicXML first, then Humdrum), one per BWV number."""
    folder = corpus_root() / CHORALE_DIR
    preference = {".mxl": 0, ".xml": 1, ".krn": 2}
    best: dict[str, Path] = {}
    for file in folder.iterdir():
        if not file.name.startswith("bwv") or file.suffix not in preference:
            continue
        stem = file.name[: -len(file.suffix)]
        if stem not in best or preference[file.suffix] < preference[best[stem].suffix]:
            best[stem] = file
    return tuple(TuneRef("chorales", f"{CHORALE_DIR}/{best[s].name}", 1, s[3:]) for s in sorted(best))
