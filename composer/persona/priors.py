"""A persona's priors: what the archive's songs are like, to draw a new day's song from.

Every metadata field the artist wrote (mood, genre, location, beard, ...) gets its
empirical distribution; tempo, key, meter, form (the sequence of section kinds) and
section lengths come from the labels (exact or analysed), except that a song whose
lyrics carry section tags gives the form those tags name (the artist's own labels). The dependencies that
matter are kept by drawing in order: mood first, then tempo, key and form from the
songs of that mood (falling back to all songs when a mood has too few), the other
fields from their own distributions. Drawing is a pure function of the seed.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field

# fields that describe the file, the rights or the labels, not the song's manner
NOT_PRIORS = frozenset({
    "file_name", "licence", "license", "consent", "split", "lyrics", "title", "plan", "labels", "label_frame_rate",
    "labels_source", "analysis_confidence", "labels_confident", "duration", "sections", "source", "source_package",
    "licence_source", "attribution", "origin", "text", "caption", "tags", "id", "parent", "start", "end",
    "cut_into", "programs", "soundfont", "tempo", "key", "beats_per_bar", "persona", "lyrics_file",
    "source_file", "excerpt", "note", "demo_persona", "path",
})
MIN_GROUP = 5  # songs a mood needs before its own tempo/key/form distribution is used


def _categorical(values) -> dict[str, int]:
    return dict(Counter(str(v) for v in values))


def draw_at(counts: dict[str, int], u: float) -> str:
    """The value at quantile `u` (0..1) of the counts (keys in sorted order)."""
    keys = sorted(counts)
    total = sum(counts[k] for k in keys)
    running = 0.0
    for key in keys:
        running += counts[key] / total
        if u < running:
            return key
    return keys[-1]


class QuasiRandom:
    """Quantiles for a day's draws: the k-th draw of day n is frac(n * a_k + offset_k), a Weyl
    sequence per draw (a_k irrational), so any run of consecutive days covers every
    distribution evenly (200 days match the archive's shares far closer than 200 independent
    draws would), while each day stays a pure function of its number and the seed."""

    def __init__(self, day: int, seed: int):
        self.day, self.rng, self.k = day, random.Random(seed), 0

    def __call__(self) -> float:
        self.k += 1
        alpha = (5 ** 0.5 - 1) / 2 if self.k == 1 else math.sqrt(PRIMES[(self.k - 2) % len(PRIMES)]) % 1.0
        offset = self.rng.random()  # the persona's own offset: days of two personas differ
        return (self.day * alpha + offset) % 1.0


PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71)


@dataclass
class Priors:
    fields: dict[str, dict[str, int]] = field(default_factory=dict)  # field -> value -> count
    tempo: dict[str, list[float]] = field(default_factory=dict)  # mood (or "*") -> tempos
    key: dict[str, dict[str, int]] = field(default_factory=dict)  # mood (or "*") -> key -> count
    meter: dict[str, int] = field(default_factory=dict)
    form: dict[str, dict[str, int]] = field(default_factory=dict)  # mood (or "*") -> "verse chorus ..." -> count
    section_bars: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> bars -> count
    songs: int = 0

    @classmethod
    def from_songs(cls, songs: list[dict]) -> Priors:
        """songs: dicts of metadata fields plus `tempo`, `key`, `beats_per_bar`, `form` (kinds) and
        `section_bars` [(kind, bars)] from the labels."""
        priors = cls(songs=len(songs))
        names = sorted({k for s in songs for k, v in s.items()
                        if k not in NOT_PRIORS and k not in ("form", "section_bars")
                        and isinstance(v, (str, int, float, bool))})
        for name in names:
            priors.fields[name] = _categorical(s[name] for s in songs if name in s)
        groups: dict[str, list[dict]] = {"*": songs}
        for song in songs:
            if "mood" in song:
                groups.setdefault(f"mood={song['mood']}", []).append(song)
        for group, members in groups.items():
            if group != "*" and len(members) < MIN_GROUP:
                continue
            priors.tempo[group] = sorted(float(s["tempo"]) for s in members if s.get("tempo"))
            priors.key[group] = _categorical(s["key"] for s in members if s.get("key"))
            priors.form[group] = _categorical(" ".join(s["form"]) for s in members if s.get("form"))
        priors.meter = _categorical(s["beats_per_bar"] for s in songs if s.get("beats_per_bar"))
        bars: dict[str, Counter] = {}
        for song in songs:
            for kind, count in song.get("section_bars", []):
                bars.setdefault(kind, Counter())[str(count)] += 1
        priors.section_bars = {k: dict(v) for k, v in bars.items()}
        return priors

    def draw(self, u, pinned: dict[str, str] | None = None) -> dict:
        """One day's metadata: every field, tempo, key, meter, form and section bars; `pinned`
        values are kept (and condition what depends on them). Each value says its prior.
        u: a source of quantiles (`QuasiRandom` for a day; any callable returning 0..1)."""
        pinned = dict(pinned or {})
        drawn, sources = {}, {}
        order = (["mood"] if "mood" in self.fields else []) + [f for f in sorted(self.fields) if f != "mood"]
        for name in order:
            if name in pinned:
                drawn[name], sources[name] = pinned.pop(name), "pinned"
            else:
                drawn[name], sources[name] = draw_at(self.fields[name], u()), f"P({name})"
        group = f"mood={drawn['mood']}" if "mood" in drawn and f"mood={drawn['mood']}" in self.tempo else "*"
        given = f" | mood={drawn['mood']}" if group != "*" else ""
        if "tempo" in pinned:
            drawn["tempo"], sources["tempo"] = float(pinned.pop("tempo")), "pinned"
        elif self.tempo.get(group):
            tempos = self.tempo[group]
            drawn["tempo"], sources["tempo"] = round(tempos[min(len(tempos) - 1, int(u() * len(tempos)))], 1), \
                f"P(tempo{given})"
        if "key" in pinned:
            drawn["key"], sources["key"] = pinned.pop("key"), "pinned"
        elif self.key.get(group):
            drawn["key"], sources["key"] = draw_at(self.key[group], u()), f"P(key{given})"
        if self.meter:
            drawn["beats_per_bar"], sources["beats_per_bar"] = int(draw_at(self.meter, u())), "P(meter)"
        if self.form.get(group):
            drawn["form"], sources["form"] = draw_at(self.form[group], u()).split(), f"P(form{given})"
        drawn.update(pinned)  # fields the archive never had, given by the user
        sources.update({k: "pinned" for k in pinned})
        return {"values": drawn, "priors": sources}

    def to_dict(self) -> dict:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, body: dict) -> Priors:
        return cls(**body)


def total_variation(a: dict[str, int], b: dict[str, int]) -> float:
    """Total-variation distance between two count dictionaries."""
    keys = set(a) | set(b)
    sa, sb = sum(a.values()) or 1, sum(b.values()) or 1
    return 0.5 * sum(abs(a.get(k, 0) / sa - b.get(k, 0) / sb) for k in keys)
