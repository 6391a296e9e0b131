"""A persona's lyric model: a word trigram model of an archive's lyrics, with its habits.

Trained on the CPU in a second: interpolated absolute-discount trigrams over the
archive's lines (lowercased words of any script, curly apostrophes read as straight
ones, line start and end marks), plus what the
archive does with them: syllables per line, lines per section, rhyme schemes per
section kind (from the CMU dictionary's rhyming parts) and its recurring images
(content words it uses far more than English does; used for titles).

Generation never copies: a line that exists in the archive is thrown away, and no
word may complete a 4-gram of words the archive holds in a line (so the share of
archive 4-grams in a new song is zero by construction, measured anyway by the
benchmark). Lines may begin and end as the archive's do: a 4-gram that takes in a
line's start or end mark is not banned (it banned every line that opens with two
words an archive line opens with, which left only unheard openings).
Each line is chosen among several drawn candidates by a score: its last word rhymes
with the scheme's earlier line, its length fits the drawn syllable count, and it
reads well by the model after its first two words (`continuation_fluency`: mean
surprisal per word). Without that choice the candidates that took an unheard turn
were as likely as any, and a song read as word salad: `benchmarks/persona.py`
measures it by the perplexity of the daily lyrics under a model of the held-out
songs' lyrics (on the demo archive 124.9 before these changes, 38.8 judged on whole
lines, 37.63 judged after the opening; 36.3 for the archive's other songs' own lines). A line
that opens as an earlier line of its song scores worse (OPENING_REPEAT): without it,
the best candidates echoed the same openings through a song.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import random
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from composer.persona.priors import draw_at
from lyrics import capital_i, title_case

START, END = "<s>", "</s>"
# How a line is chosen among its candidates (`benchmarks/persona_lyric_choice.py` measures both):
# by weights exp(-score / T), a line that reads worse by T nats e times rarer; at 0 the best
# always. Drawn (T 0.3 or 0.5) the days' openings vary more, but the lines read worse (43.2
# and 45.1 against 39.0 on the demo archive), and the repeats within a song that made the
# best-only choice monotonous are the opening penalty's to stop.
CHOICE_TEMPERATURE = 0.0
# A candidate that opens with the first two words of an earlier line of its song scores this
# much worse: always taking the best, 25 % of a demo persona's lines opened as an earlier line of
# their song ("We won't back..." four times in one), 12 % of the archive's own; with it 1.5 %.
OPENING_REPEAT = 1.0
DISCOUNT = 0.75
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})  # as lyrics.syllables reads them
_COMMON = frozenset("""a an the and or but of to in on at for with from by as is are was were be been i you he she it
we they me my your our their his her its this that these those there here so if when then than not no all
just like up down out over under into through my me oh yeah la na""".split())


def words(line: str) -> list[str]:
    """The lowercased words of a line, in any script: runs of letters (with the combining marks
    that follow a letter, as Indic scripts write vowels), joined by apostrophes inside a word
    ("don't", "rock'n'roll"); curly apostrophes count as straight ones, digits and other
    marks separate words."""
    text = unicodedata.normalize("NFC", line).translate(_APOSTROPHES).lower()
    found, current = [], []
    for index, char in enumerate(text):
        if char.isalpha() or (current and unicodedata.category(char)[0] == "M"):
            current.append(char)
        elif char == "'" and current and index + 1 < len(text) and text[index + 1].isalpha():
            current.append(char)
        elif current:
            found.append("".join(current))
            current = []
    if current:
        found.append("".join(current))
    return found


def rhyme_part(word: str) -> str | None:
    from lyrics import pronounce

    phones = pronounce.phones_for_word(word)
    return pronounce.rhyming_part(phones[0]) if phones else None


def rhymes(a: str, b: str) -> bool:
    if a == b:
        return False
    ra, rb = rhyme_part(a), rhyme_part(b)
    return ra is not None and ra == rb


def scheme_of(lines: list[str]) -> str:
    """'ABAB'-style letters of a section's lines by the rhyme of their last words."""
    letters, ends = [], []
    for line in lines:
        tokens = words(line)
        last = tokens[-1] if tokens else ""
        for index, earlier in enumerate(ends):
            if last and (last == earlier or rhymes(last, earlier)):
                letters.append(letters[index])
                break
        else:
            letters.append(chr(ord("A") + len(set(letters))) if len(set(letters)) < 26 else "Z")
        ends.append(last)
    return "".join(letters)


def syllables(line: str) -> int:
    from lyrics.syllables import count_syllables

    return sum(count_syllables(w) for w in words(line))


@dataclass
class LyricModel:
    unigrams: dict[str, int] = field(default_factory=dict)
    bigrams: dict[str, dict[str, int]] = field(default_factory=dict)
    trigrams: dict[str, dict[str, int]] = field(default_factory=dict)  # "w1 w2" -> next -> count
    fourgrams: set[str] = field(default_factory=set)  # the lines' word 4-grams: what generation may not complete
    archive_lines: set[str] = field(default_factory=set)
    line_syllables: list[int] = field(default_factory=list)
    section_lines: dict[str, list[int]] = field(default_factory=dict)  # kind -> line counts seen
    schemes: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> scheme -> count
    images: list[str] = field(default_factory=list)
    songs: int = 0

    # --- training -------------------------------------------------------------
    @classmethod
    def train(cls, songs: list[list]) -> LyricModel:
        """songs: each a list of `lyrics.LyricSection` (name, kind, lines)."""
        model = cls(songs=len(songs))
        uni, bi, tri = Counter(), defaultdict(Counter), defaultdict(Counter)
        for sections in songs:
            for section in sections:
                if section.repeat_of or not section.lines:
                    continue
                model.section_lines.setdefault(section.kind, []).append(len(section.lines))
                scheme = scheme_of(section.lines)
                model.schemes.setdefault(section.kind, {})
                model.schemes[section.kind][scheme] = model.schemes[section.kind].get(scheme, 0) + 1
                for line in section.lines:
                    tokens = words(line)
                    if not tokens:
                        continue
                    model.archive_lines.add(" ".join(tokens))
                    model.line_syllables.append(syllables(line))
                    padded = [START, START, *tokens, END]
                    for i in range(2, len(padded)):
                        uni[padded[i]] += 1
                        bi[padded[i - 1]][padded[i]] += 1
                        tri[f"{padded[i - 2]} {padded[i - 1]}"][padded[i]] += 1
                    for i in range(len(tokens) - 3):
                        model.fourgrams.add(" ".join(tokens[i: i + 4]))
        model.unigrams = dict(uni)
        model.bigrams = {k: dict(v) for k, v in bi.items()}
        model.trigrams = {k: dict(v) for k, v in tri.items()}
        model.images = distinctive_words(uni)
        return model

    # --- probabilities ----------------------------------------------------------
    # Count totals and the rhyme index are derived from the counts when first needed and kept
    # on the instance (never saved: `to_json` writes the dataclass fields only). A model is not
    # changed after `train`, so they stay right; integer sums are exact, so the probabilities,
    # and the lyrics drawn with them, are the ones summing on every call gave.
    @functools.cached_property
    def _totals(self) -> tuple[int, dict[str, int], dict[str, int]]:
        return (sum(self.unigrams.values()), {k: sum(v.values()) for k, v in self.bigrams.items()},
                {k: sum(v.values()) for k, v in self.trigrams.items()})

    @functools.cached_property
    def _rhyme_index(self) -> dict[str, list[str]]:
        """rhyming part -> the vocabulary's words with it, sorted."""
        index: dict[str, list[str]] = {}
        for word in sorted(self.unigrams):
            part = rhyme_part(word) if word != END else None
            if part is not None:
                index.setdefault(part, []).append(word)
        return index

    @functools.cached_property
    def _vocabulary(self) -> list[str]:
        return sorted(self.unigrams)

    def probability(self, history: tuple[str, str], word: str) -> float:
        """Interpolated absolute-discount trigram probability; unseen words get add-one mass."""
        return self.probabilities(history, [word])[0]

    def probabilities(self, history: tuple[str, str], candidates: list[str]) -> list[float]:
        """`probability(history, w)` of each candidate, the context's counts looked up once."""
        total_words, bigram_totals, trigram_totals = self._totals
        unigrams, floor = self.unigrams, total_words + len(self.unigrams) + 1
        context = f"{history[0]} {history[1]}"
        levels = [(counts, total, DISCOUNT * len(counts) / total)
                  for counts, total in ((self.bigrams.get(history[1]), bigram_totals.get(history[1])),
                                        (self.trigrams.get(context), trigram_totals.get(context))) if counts]
        out = []
        for word in candidates:
            p = (unigrams.get(word, 0) + 1) / floor
            for counts, total, backoff in levels:
                p = max(counts.get(word, 0) - DISCOUNT, 0) / total + backoff * p
            out.append(p)
        return out

    def surprisal(self, line: str) -> tuple[float, int]:
        """A line's total surprisal by the model (its words and its end, in nats) and how many
        predictions that is."""
        padded = [START, START, *words(line), END]
        return (-sum(math.log(self.probability((padded[i - 2], padded[i - 1]), padded[i]))
                     for i in range(2, len(padded))), len(padded) - 2)

    def fluency(self, line: str) -> float:
        """How badly a line reads by the model: its mean surprisal per prediction; lower reads better."""
        total, count = self.surprisal(line)
        return total / count

    def continuation_fluency(self, line: str) -> float:
        """`fluency` of the line after its first two words: how well it goes on from its opening.
        A line's candidates are judged by this, not by the likelihood of their openings: judged
        whole, the best of 24 candidates favoured the archive's likeliest openings, and across days
        one came to begin 7.5 % of a persona's lines (the archive's commonest, 5.1 % of its lines;
        6.8 % judged this way, `persona_lyric_openings.json`). A line of two words or fewer is
        judged whole."""
        padded = [START, START, *words(line), END]
        if len(padded) <= 5:
            return self.fluency(line)
        surprisals = [-math.log(self.probability((padded[i - 2], padded[i - 1]), padded[i]))
                      for i in range(4, len(padded))]
        return sum(surprisals) / len(surprisals)

    def perplexity(self, lines: list[str]) -> float:
        totals = [self.surprisal(line) for line in lines]
        return math.exp(sum(t for t, _ in totals) / max(1, sum(n for _, n in totals)))

    # --- writing ----------------------------------------------------------------
    def _next_word(self, history: tuple[str, str], rng: random.Random, recent: list[str], *,
                   allow_end: bool, cache: dict | None = None) -> str | None:
        """A next word by the interpolated model, never completing an archive 4-gram; when the
        model's own successors are all banned, any vocabulary word may follow (its unigram share).

        cache: where a section's candidates keep the words and weights of the contexts they have
        met (a pure function of the last three words and allow_end, so the draws are the same)."""
        key = (*recent[-3:], allow_end)  # recent holds START, START at least; history is its last two
        found = cache.get(key) if cache is not None else None
        if found is None:
            successors = set(self.bigrams.get(history[1], {})) | set(self.trigrams.get(" ".join(history), {}))
            prefix, banned = " ".join(recent[-3:]) + " ", self.fourgrams
            allowed = sorted(w for w in successors if prefix + w not in banned and (allow_end or w != END))
            from_successors = bool(allowed)
            if not allowed:
                allowed = [w for w in self._vocabulary if prefix + w not in banned
                           and (allow_end or w != END) and w not in recent[-2:]]
            found = (allowed, list(itertools.accumulate(self.probabilities(history, allowed))) if allowed else [])
            if cache is not None and from_successors:  # (the whole vocabulary's lists are not kept)
                cache[key] = found
        allowed, cumulative = found
        if not allowed:
            return None
        return rng.choices(allowed, cum_weights=cumulative)[0]

    def _draw_line(self, rng: random.Random, target: int = 8, end_word: str | None = None,
                   max_words: int = 20, cache: dict | None = None) -> str | None:
        """A line of about `target` syllables; ending on `end_word` when given (for a rhyme)."""
        history, out, recent, count = (START, START), [], [START, START], 0
        room = target - (syllables(end_word) if end_word else 0)
        for _ in range(max_words):
            if count >= room:
                break
            word = self._next_word(history, rng, recent, allow_end=count >= room - 1 and end_word is None,
                                   cache=cache)
            if word is None:
                return None
            if word == END:
                break
            out.append(word)
            recent.append(word)
            history = (history[1], word)
            count += syllables(word)
        if end_word is not None:
            if " ".join([*recent[-3:], end_word]) in self.fourgrams:
                return None
            out.append(end_word)
        line = " ".join(out)
        if not out or line in self.archive_lines:
            return None
        return line

    def _rhymes_for(self, word: str) -> list[str]:
        """The vocabulary's words that rhyme with `word` (as `rhymes` says), sorted."""
        part = rhyme_part(word)
        return [w for w in self._rhyme_index.get(part, []) if w != word] if part is not None else []

    def write_section(self, kind: str, rng: random.Random, *, tries: int = 24,
                      quantile: Callable[[], float] | None = None, openings: set[str] | None = None) -> list[str]:
        """The lines of a new section of `kind`: its line count, scheme and lengths drawn from the archive's.

        quantile: where the line count and the scheme are drawn from (0..1 each call; default
        `rng.random`); a day's quasi-random quantiles make a run of days match the archive's shares.
        openings: the first two words of the song's lines so far; a candidate that opens as one of
        them scores OPENING_REPEAT worse, and the section's own lines are added to it."""
        openings = set() if openings is None else openings
        quantile = quantile or rng.random
        counts = self.section_lines.get(kind) or [n for v in self.section_lines.values() for n in v] or [4]
        lines_wanted = int(draw_at(Counter(str(n) for n in counts), quantile()))
        schemes = self.schemes.get(kind) or {}
        fitting = {s: c for s, c in schemes.items() if len(s) == lines_wanted}
        scheme = (draw_at(fitting, quantile()) if fitting
                  else "".join(chr(ord("A") + i // 2) for i in range(lines_wanted)))
        lines: list[str] = []
        chosen: dict[int, str] = {}  # scheme position -> its line (a position may stay empty)
        cache: dict = {}  # the contexts the candidates meet: `_next_word`
        for index, letter in enumerate(scheme):
            target = rng.choice(self.line_syllables or [8])
            partner = next((chosen[j] for j in range(index) if scheme[j] == letter and j in chosen), None)
            rhyme_words = self._rhymes_for(partner.split()[-1]) if partner else []
            later = letter in scheme[index + 1:]  # a line others will rhyme with: end on a word that has rhymes
            scored: list[tuple[float, str]] = []
            for _ in range(tries):
                end_word = rng.choice(rhyme_words) if rhyme_words else None
                line = self._draw_line(rng, target, end_word, cache=cache)
                if line is None or line in lines or (end_word and line.split()[-1] in
                                                      [c.split()[-1] for c in chosen.values()]):
                    continue
                last = line.split()[-1]
                others = [chosen[j].split()[-1] for j in chosen if scheme[j] != letter]
                rhyme_ok = (rhymes(last, partner.split()[-1]) if partner is not None
                            else not any(last == o or rhymes(last, o) for o in others))  # a new letter: no rhyme yet
                open_ok = not later or bool(self._rhymes_for(last))
                score = (abs(syllables(line) - target) + (0 if rhyme_ok else 6) + (0 if open_ok else 3)
                         + self.continuation_fluency(line) + (OPENING_REPEAT if _opening(line) in openings else 0))
                scored.append((score, line))
            if not scored:
                continue
            low = min(score for score, _ in scored)
            if CHOICE_TEMPERATURE > 0:
                best = rng.choices([line for _, line in scored],
                                   weights=[math.exp((low - score) / CHOICE_TEMPERATURE) for score, _ in scored])[0]
            else:
                best = next(line for score, line in scored if score == low)
            chosen[index] = best
            lines.append(best)
            openings.add(_opening(best))
        return [capitalised(line) for line in lines]

    def title(self, sections: list[tuple[str, list[str]]], rng: random.Random) -> str:
        """A title: the chorus's first line when short, else its words that are the archive's images."""
        chorus = next((lines for kind, lines in sections if kind == "chorus" and lines), None)
        source = chorus or next((lines for _, lines in sections if lines), ["untitled"])
        first = source[0]
        if len(words(first)) <= 5:
            return title_case(first)
        picked = [w for w in words(first) if w in self.images][:3] or words(first)[-2:]
        return title_case(" ".join(picked))

    # --- storage ------------------------------------------------------------------
    def to_json(self) -> str:
        body = {f.name: (sorted(v) if isinstance(v, set) else v)
                for f in fields(self) for v in [getattr(self, f.name)]}
        return json.dumps(body, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LyricModel:
        body = json.loads(text)
        # a persona built before 2026-12-01 saved 4-grams with the line start and end marks too:
        # kept, they banned every opening an archive line has, and a small archive's days then
        # opened line after line the same way; without them the ban is what a new build has
        body["fourgrams"] = {g for g in body.get("fourgrams", []) if START not in g.split() and END not in g.split()}
        body["archive_lines"] = set(body.get("archive_lines", []))
        return cls(**body)


def _opening(line: str) -> str:
    return " ".join(line.split()[:2])


def capitalised(line: str) -> str:
    """A written line with its first letter capital (and "I"), when that reads back as the same
    words: some letters lowercase back to others ("ß" -> "SS" -> "ss"), which would make a line
    other words than the ones checked against the archive."""
    written = capital_i(line[0].upper() + line[1:])
    return written if words(written) == words(line) else line


def distinctive_words(counts: Counter, top: int = 40) -> list[str]:
    """The archive's recurring images: content words it uses far more than the base writer
    does (smoothed log ratio of the two frequencies), most distinctive first."""
    reference = Counter(w for line in base_writer_lines(800) for w in words(line))
    total, ref_total = sum(counts.values()) or 1, sum(reference.values()) or 1
    scored = {w: math.log((c / total) / ((reference.get(w, 0) + 0.5) / ref_total)) * math.log1p(c)
              for w, c in counts.items()
              if w not in _COMMON and w != END and "'" not in w and len(w) > 3 and c >= 2}
    return [w for w, _ in sorted(scored.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]


@functools.lru_cache(maxsize=4)
def base_writer_lines(count: int = 400, seed: int = 0) -> tuple[str, ...]:
    """Lines of the project's template writer over its moods and varied themes: what the
    base writer writes, for comparing perplexities with the persona model's."""
    from lyrics.banks import MOODS
    from lyrics.writer import SectionSpec, write

    themes = ["love", "the road", "summer", "the city", "home", "the sea", "night", "friends", "rain", "dreams"]
    lines, k = [], 0
    rng = random.Random(seed)
    while len(lines) < count:
        mood = sorted(MOODS)[k % len(MOODS)]
        theme = themes[k % len(themes)]
        specs = [SectionSpec("verse1", "verse", [rng.randint(6, 10) for _ in range(4)]),
                 SectionSpec("chorus1", "chorus", [rng.randint(6, 10) for _ in range(4)])]
        for section in write(theme, mood=mood, sections=specs, seed=seed + k):
            lines += section.lines
        k += 1
    return tuple(lines[:count])
