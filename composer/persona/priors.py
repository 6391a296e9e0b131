"""A persona's priors: what the archive's songs are like, to draw a new day's song from.

Every metadata field the artist wrote (mood, genre, location, beard, ...) gets its
empirical distribution, its absence included (a field one song in six has is on one day in
six; counting its values alone put it on every day); tempo, key, meter, form (the sequence of section kinds) and
section lengths come from the labels (exact or analysed), except that a song whose
lyrics carry section tags gives the form those tags name, and a song's own `meter` (or
`time_signature`) and `bpm` fields give its meter and tempo (the artist's own labels). A field
whose value is a list (mood: ["sad", "tender"]) counts each item; empty and null values
are not values. The dependencies that
matter are kept by drawing in order: mood first, then tempo, key and form from the
songs of that mood, the other fields from their own distributions. The moods with too
few songs for their own distributions draw from the songs of all those rarer moods
together, so the days' tempo, key and form still add up to the archive's (drawn from
every song instead, a demo archive's key was 0.103 from its own in total variation
over 200 days, 0.043 pooled, and its tempo 0.090, 0.052). Drawing is a pure function of the seed.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from dataclasses import dataclass, field

# fields that describe the file, the rights or the labels, not the song's manner
NOT_PRIORS = frozenset({
    "file_name", "licence", "license", "consent", "split", "lyrics", "title", "plan", "labels", "label_frame_rate",
    "labels_source", "analysis_confidence", "analysed_fields", "labels_confident", "duration", "sections", "source", "source_package",
    "licence_source", "attribution", "origin", "text", "caption", "tags", "id", "parent", "start", "end",
    "cut_into", "programs", "soundfont", "tempo", "key", "beats_per_bar", "beat_division", "persona", "lyrics_file",
    "source_file", "source_track", "excerpt", "note", "demo_persona", "path",
})
OWN_LABELS = frozenset({"meter", "time_signature", "bpm"})  # a song's own meter and tempo: drawn as those
MIN_GROUP = 5  # songs a mood needs before its own tempo/key/form distribution is used
RARE = "rare moods"  # the group of the moods with fewer songs, pooled


def field_values(value) -> list[str]:
    """A metadata value as the values it counts as: each item of a list, none for null, an empty
    string or a nested object (a drawn day could not write it into a prompt)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        if isinstance(item, str):
            if item.strip():
                out.append(item.strip())
        elif isinstance(item, (bool, int, float)) and not (isinstance(item, float) and not math.isfinite(item)):
            out.append(str(item))
    return out


def _categorical(values) -> dict[str, int]:
    return dict(Counter(str(v) for v in values))


def meter_of(value):
    """The `structure.prompt.Meter` of a meter value (4, "3/4", "6/8"), read as a prompt reads one; None when
    it is not one."""
    from structure.prompt import parse_meter
    from structure.schema import PlanError

    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    try:
        return parse_meter(str(value), "meter")
    except PlanError:
        return None


def _tempo(value) -> float | None:
    """A tempo value (96, "96 bpm"), read as a prompt reads one; None when it is not one."""
    from structure.prompt import parse_tempo
    from structure.schema import PlanError

    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return parse_tempo(str(value), "tempo")
    except PlanError:
        return None


def song_meter(song: dict) -> str | None:
    """A song's meter as the priors count it: beats per bar ("4", "3") for a simple meter, the time
    signature ("6/8", "12/8") for a compound one; its own `meter` or `time_signature` field, else its
    labels'."""
    for name in ("meter", "time_signature", "beats_per_bar"):
        if (meter := meter_of(song.get(name))) is not None:
            if name == "beats_per_bar" and song.get("beat_division") == 3 and meter.division == 2 and 2 <= meter.beats <= 4:
                return meter_text(meter.beats, 3)  # labels of a compound song: dotted-quarter beats
            return meter_text(*meter)
    return None


def compound_tempo(tempo: float, source: str) -> tuple[float, str]:
    """A drawn tempo for a compound day without songs of its own meter to draw from: two thirds, so
    its eighths keep the pace of the songs it was drawn from; and the prior's name, saying so."""
    return max(30.0, round(tempo * 2 / 3, 1)), f"{source} x 2/3 (a compound beat of three eighths)"


def meter_text(beats: int, division: int = 2) -> str:
    """A meter's category in the priors: "4" (beats of a simple meter), "6/8" (a compound one)."""
    return f"{beats * 3}/8" if division == 3 else str(beats)


def song_tempo(song: dict) -> float | None:
    """A song's tempo: its own `bpm` field, else its `tempo` (its own, else its labels': the
    analysis fills `tempo` where it is missing, so a song that says `bpm` says it first)."""
    for name in ("bpm", "tempo"):
        if (tempo := _tempo(song.get(name))) is not None:
            return tempo
    return None


def song_form(song: dict) -> list[str] | None:
    """A song's section kinds (a list, or text such as "verse chorus"); None when any is unknown."""
    from structure.schema import SECTION_KINDS

    form = song.get("form")
    kinds = re.split(r"[\s,]+", form.strip().lower()) if isinstance(form, str) else form
    if not kinds or not isinstance(kinds, (list, tuple)) or not all(k in SECTION_KINDS for k in kinds):
        return None
    return list(kinds)


def song_key(song: dict) -> str | None:
    """A song's key as the planner names it ("Dm", "d minor" and "D minor" are one key; "E♭"
    is "Eb major"), or None when it names none."""
    from structure.schema import Key, PlanError

    value = song.get("key")
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return str(Key.parse(value, "key"))
    except PlanError:
        return None


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
    sequence per draw with a_k = frac(sqrt(p_k)), p_k the k-th prime, so any run of consecutive
    days covers every distribution evenly (200 days match the archive's shares far closer than
    200 independent draws would), while each day stays a pure function of its number and the seed.
    The square roots of distinct primes and 1 are linearly independent over the rationals, so the
    draws are jointly equidistributed too: two fields' values pair in the shares the product of
    their own gives (a golden-ratio draw beside frac(sqrt(5)) = 2 * 0.618... - 1 did not, nor
    did draws 20 apart while the primes were a fixed table of 20)."""

    def __init__(self, day: int, seed: int):
        self.day, self.rng, self.k = day, random.Random(seed), 0

    def __call__(self) -> float:
        alpha = math.sqrt(nth_prime(self.k)) % 1.0
        self.k += 1
        offset = self.rng.random()  # the persona's own offset: days of two personas differ
        return (self.day * alpha + offset) % 1.0


_PRIMES = [2, 3]


def nth_prime(index: int) -> int:
    """The prime at `index` (0: 2, 1: 3, 2: 5, ...), found by trial division and remembered."""
    while len(_PRIMES) <= index:
        candidate = _PRIMES[-1] + 2
        while any(candidate % p == 0 for p in _PRIMES if p * p <= candidate):
            candidate += 2
        _PRIMES.append(candidate)
    return _PRIMES[index]


@dataclass
class Priors:
    fields: dict[str, dict[str, int]] = field(default_factory=dict)  # field -> value -> count
    tempo: dict[str, list[float]] = field(default_factory=dict)  # mood (or "*") -> tempos
    key: dict[str, dict[str, int]] = field(default_factory=dict)  # mood (or "*") -> key -> count
    meter: dict[str, int] = field(default_factory=dict)
    # a compound meter ("6/8") with MIN_GROUP songs or more -> their tempos (dotted quarters, or as the
    # archive counts them): a day in that meter draws its tempo from its own songs
    meter_tempo: dict[str, list[float]] = field(default_factory=dict)
    form: dict[str, dict[str, int]] = field(default_factory=dict)  # mood (or "*") -> "verse chorus ..." -> count
    section_bars: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> bars -> count
    songs: int = 0
    rare_moods: list[str] = field(default_factory=list)  # moods that draw from the RARE group
    # field -> songs without it: a field a few songs have is absent from the other days' songs too
    # (counting its values alone gave it to every day). A persona built before has none: its days
    # have every field, as they did.
    absent: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_songs(cls, songs: list[dict]) -> Priors:
        """songs: dicts of metadata fields plus `tempo`, `key`, `beats_per_bar`, `form` (kinds) and
        `section_bars` [(kind, bars)] from the labels."""
        priors = cls(songs=len(songs))
        names = sorted({k for s in songs for k, v in s.items()
                        if k not in NOT_PRIORS and k not in OWN_LABELS and k not in ("form", "section_bars")
                        and field_values(v)})
        for name in names:
            priors.fields[name] = _categorical(v for s in songs for v in field_values(s.get(name)))
            priors.absent[name] = sum(not field_values(s.get(name)) for s in songs)
        groups: dict[str, list[dict]] = {"*": songs}
        for song in songs:
            for mood in dict.fromkeys(field_values(song.get("mood"))):  # a song of two moods is in both
                groups.setdefault(f"mood={mood}", []).append(song)
        rare = sorted(g.removeprefix("mood=") for g, members in groups.items() if g != "*" and len(members) < MIN_GROUP)
        pooled = [s for s in songs if any(m in rare for m in field_values(s.get("mood")))]
        if len(pooled) >= MIN_GROUP:
            groups[RARE], priors.rare_moods = pooled, rare
        for group, members in groups.items():
            if group != "*" and len(members) < MIN_GROUP:
                continue
            priors.tempo[group] = sorted(t for s in members if (t := song_tempo(s)) is not None)
            priors.key[group] = _categorical(k for s in members if (k := song_key(s)))
            priors.form[group] = _categorical(" ".join(f) for s in members if (f := song_form(s)))
        priors.meter = _categorical(m for s in songs if (m := song_meter(s)) is not None)
        for meter in priors.meter:
            if "/" in meter:  # compound: the tempos that count its dotted quarters (the artist's own, or an
                # analysis that heard the compound beat; one that did not counted quarters or eighths)
                tempos = sorted(t for s in songs if song_meter(s) == meter and (t := song_tempo(s)) is not None
                                and ("bpm" in s or "tempo" not in (s.get("analysed_fields") or ())
                                     or s.get("beat_division") == 3))
                if len(tempos) >= MIN_GROUP:
                    priors.meter_tempo[meter] = tempos
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
        # every draw takes its quantile, pinned or not: a pin changes its own field (and what
        # depends on it), not the draws after it (--set tempo=120 gave another key and title)
        order = (["mood"] if "mood" in self.fields else []) + [f for f in sorted(self.fields) if f != "mood"]
        for name in order:
            at = u()
            if name in pinned:
                drawn[name], sources[name] = pinned.pop(name), "pinned"
            elif (value := self.field_at(name, at)) is not None:
                drawn[name], sources[name] = value, f"P({name})"
        group, given = self.group_of(drawn.get("mood"))

        def source(table: dict) -> tuple[str, str]:  # the mood's songs, or every song where they lack the label
            return (group, given) if table.get(group) else ("*", "")

        (tempo_group, tempo_given), (key_group, key_given) = source(self.tempo), source(self.key)
        at = tempo_at = u() if self.tempo.get(tempo_group) else None
        if "tempo" in pinned:  # pinned values are checked (composer.persona.daily.check_pins)
            drawn["tempo"], sources["tempo"] = float(pinned.pop("tempo")), "pinned"
        elif self.tempo.get(tempo_group):
            tempos = self.tempo[tempo_group]
            drawn["tempo"], sources["tempo"] = round(tempos[min(len(tempos) - 1, int(at * len(tempos)))], 1), \
                f"P(tempo{tempo_given})"
        at = u() if self.key.get(key_group) else None
        if "key" in pinned:
            drawn["key"], sources["key"] = pinned.pop("key"), "pinned"
        elif self.key.get(key_group):
            drawn["key"], sources["key"] = draw_at(self.key[key_group], at), f"P(key{key_given})"
        at = u() if self.meter else None
        if "beats_per_bar" in pinned:
            drawn["beats_per_bar"], sources["beats_per_bar"] = int(pinned.pop("beats_per_bar")), "pinned"
            if (division := pinned.pop("beat_division", 2)) == 3:
                drawn["beat_division"], sources["beat_division"] = 3, "pinned"
        elif self.meter:
            beats, division = meter_of(draw_at(self.meter, at))
            drawn["beats_per_bar"], sources["beats_per_bar"] = beats, "P(meter)"
            if division == 3:
                drawn["beat_division"], sources["beat_division"] = 3, "P(meter)"
        if drawn.get("beat_division") == 3 and "tempo" in drawn and sources["tempo"] != "pinned":
            # a compound beat is three eighths: its tempo from the archive's songs in that meter, with the
            # same quantile; without enough of them, two thirds of the drawn tempo (the eighths keep its pace)
            meter = f"{drawn['beats_per_bar'] * 3}/8"
            if self.meter_tempo.get(meter):
                tempos = self.meter_tempo[meter]
                drawn["tempo"] = round(tempos[min(len(tempos) - 1, int(tempo_at * len(tempos)))], 1)
                sources["tempo"] = f"P(tempo | meter={meter})"
            else:
                drawn["tempo"], sources["tempo"] = compound_tempo(drawn["tempo"], sources["tempo"])
        form_group, form_given = source(self.form)
        at = u() if self.form.get(form_group) else None
        if "form" in pinned:
            form = pinned.pop("form")
            drawn["form"] = form.split() if isinstance(form, str) else list(form)
            sources["form"] = "pinned"
        elif self.form.get(form_group):
            drawn["form"], sources["form"] = draw_at(self.form[form_group], at).split(), f"P(form{form_given})"
        drawn.update(pinned)  # fields the archive never had, given by the user
        sources.update({k: "pinned" for k in pinned})
        return {"values": drawn, "priors": sources}

    def field_at(self, name: str, u: float) -> str | None:
        """A field's value at quantile `u`, or None (the day has no such field) in the top share
        of the quantiles, the share of the archive's songs without it. Absence is drawn with the
        value's own quantile, so a day draws as many quantiles as before, and a field every song
        has draws the value it drew before."""
        present = 1.0 - self.absent.get(name, 0) / self.songs if self.songs else 1.0
        if u >= present:
            return None
        return draw_at(self.fields[name], u / present)

    def group_of(self, mood: str | None) -> tuple[str, str]:
        """The songs a day of this mood draws its tempo, key and form from, and how its
        report names them ("" for every song)."""
        if mood is not None and f"mood={mood}" in self.tempo:
            return f"mood={mood}", f" | mood={mood}"
        if mood is not None and mood in self.rare_moods and RARE in self.tempo:
            named = ", ".join(self.rare_moods[:5]) + (f" and {len(self.rare_moods) - 5} more"
                                                     if len(self.rare_moods) > 5 else "")
            return RARE, f" | mood={mood}, the archive's rare moods pooled ({named})"
        return "*", ""

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
