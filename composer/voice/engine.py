"""The speech engines: Flite (Debian's `flite`) and Festival (Debian's `festival`), called
as programs.

They do two jobs: letter-to-sound for words the CMU dictionary does not know (Flite), and
speaking the song's lines, each line once as connected speech, with the end time of every
phone, which the singer then moves onto the notes. The engine reads each line as text (its
lexicon's stress, phrasing and durations), and its phones are aligned to the sung ones; a
line whose reading does not match them is spoken from the bare phones by Flite (`-p`), in
the speaker's Flite voice. A voice may ask for its lines read slower than the engine speaks
(`Speaker.slowness`: Flite's `duration_stretch`, the HTS engine's rate): sung, slower readings
were understood better (composer.voice.voices). Flite's licence is BSD-style; Festival's and
its HTS voice's are BSD-style too (Edinburgh, CMU, Nagoya); both are called as programs,
never linked.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from composer.errors import RenderError

log = logging.getLogger(__name__)

INSTALL_HINT = "apt-get install flite"
FESTIVAL_INSTALL_HINT = "apt-get install festival festvox-us-slt-hts"
PAUSE = "pau"
# Flite's US English phone set: CMU ARPAbet in lower case without stress, "ax" for AH0.
PHONES = frozenset("aa ae ah ao aw ax axr ay b ch d dh eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh t th "
                   "uh uw v w y z zh".split())
VOWELS = frozenset("aa ae ah ao aw ax axr ay eh er ey ih iy ow oy uh uw".split())


class EngineMissing(RenderError):
    """The speech engine is not installed."""


@dataclass(frozen=True)
class Speaker:
    """Who speaks the lines: `engine` ("flite" or "festival"), the engine's `name` for the
    voice, and `fallback`, the Flite voice (the same recorded speaker where there is one)
    that speaks a line from bare phones when the engine's reading does not say them."""

    engine: str
    name: str
    fallback: str
    slowness: float = 1.0  # the lines are read this many times slower than the engine's own pace


def as_speaker(voice: str | Speaker) -> Speaker:
    """A Speaker; a plain string is a Flite voice."""
    return voice if isinstance(voice, Speaker) else Speaker("flite", voice, voice)


@dataclass
class Spoken:
    """Speech of a bank of words: mono audio, its rate, and each word's phones as
    (phone, start seconds, end seconds)."""

    audio: np.ndarray
    sample_rate: int
    words: list[list[tuple[str, float, float]]]


def flite_path() -> str | None:
    return shutil.which("flite")


def require_flite() -> str:
    path = flite_path()
    if path is None:
        raise EngineMissing(f"the singing voice needs the speech engine Flite, which is not installed "
                            f"(install it with: {INSTALL_HINT}; or render with --no-vocals)")
    return path


def festival_path() -> str | None:
    return shutil.which("festival")


def festival_voice_missing(name: str) -> str | None:
    """None when Festival has the voice `name`; otherwise why not."""
    path = festival_path()
    if path is None:
        return "festival is not on PATH"
    try:
        done = subprocess.run([path, "--batch", f"(voice_{name})"], capture_output=True, text=True, timeout=60,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"festival failed: {error}"
    return None if done.returncode == 0 else f"festival lacks the voice {name}"


_FOUND: set[tuple[str | None, str]] = set()  # Festival voices found (asking Festival takes 0.2 s)


def require_speaker(voice: str | Speaker) -> Speaker:
    """The speaker, when every program it needs is installed; EngineMissing with the command
    that installs them otherwise."""
    speaker = as_speaker(voice)
    require_flite()  # letter-to-sound and the bare-phones fallback
    if speaker.engine == "festival" and (festival_path(), speaker.name) not in _FOUND:
        why = festival_voice_missing(speaker.name)
        if why is None:
            _FOUND.add((festival_path(), speaker.name))
        else:
            raise EngineMissing(f"the voice needs the speech engine Festival with its voice {speaker.name} ({why}; "
                                f"install it with: {FESTIVAL_INSTALL_HINT}; or render with --no-vocals)")
    elif speaker.engine != "flite":
        raise RenderError(f"voice: unknown speech engine {speaker.engine!r}")
    return speaker


def _run(args: list[str]) -> str:
    try:
        done = subprocess.run([require_flite(), *args], capture_output=True, text=True, timeout=120,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RenderError(f"flite failed: {error}") from None
    if done.returncode != 0:
        raise RenderError(f"flite failed (exit {done.returncode}): {done.stderr.strip()[:200]}")
    return done.stdout


def letter_to_sound(words: list[str]) -> dict[str, list[str]]:
    """Flite's phones for each word (its lexicon, then its letter-to-sound rules)."""
    words = [w for w in dict.fromkeys(words) if w]
    if not words:
        return {}
    # words separated by commas: Flite puts a pause between them, which splits the answer
    text = ", ".join(words)
    segments = _run(["-ps", "-t", text, "none"]).split()
    groups: list[list[str]] = [[]]
    for phone in segments:
        if phone == PAUSE:
            if groups[-1]:
                groups.append([])
        elif phone in PHONES:
            groups[-1].append(phone)
    groups = [g for g in groups if g]
    if len(groups) != len(words):  # a word Flite read as several (or as nothing): one at a time
        return {word: _letter_to_sound_one(word) for word in words}
    return dict(zip(words, groups))


def _letter_to_sound_one(word: str) -> list[str]:
    return [p for p in _run(["-ps", "-t", word, "none"]).split() if p in PHONES]


@functools.lru_cache(maxsize=2)
def _speak_cached(voice: Speaker, lines: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]) -> Spoken:
    out = _speak(voice, lines)
    out.audio.flags.writeable = False  # shared by every caller with the same lines: never changed in place
    return out


def speak(voice: str | Speaker, lines: list[list[list[str]]], texts: list[str] | None = None) -> Spoken:
    """Speak each line (a list of words, each a list of phones) as one connected utterance,
    with a pause between lines, by `voice` (a Speaker, or the name of a Flite voice).
    `Spoken.words` lists every word of every line in order, with its phones' times.

    texts: each line as written. The engine then reads the line itself (its lexicon's stress,
    its phrasing and durations), and its phones are aligned to the given ones; read from bare
    phones, Flite has no stress or phrasing, and that speech, slowed and sung on one pitch,
    was much harder to understand (Whisper's WER on 8 sheets 0.43 against 0.07 read as text).
    A line whose reading does not align with its phones is spoken from the phones by Flite."""
    texts = list(texts) if texts is not None else [""] * len(lines)
    if len(texts) != len(lines):
        raise ValueError("speak: one text per line")
    return _speak_cached(as_speaker(voice),
                         tuple((text, tuple(tuple(word) for word in line)) for text, line in zip(texts, lines)))


def _speak(voice: str | Speaker, lines: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]) -> Spoken:
    from concurrent.futures import ThreadPoolExecutor

    speaker = as_speaker(voice)
    for _, line in lines:
        for word in line:
            bad = [p for p in word if p not in PHONES]
            if bad or not word:
                raise RenderError(f"voice: cannot speak phones {list(word)!r}")
    with tempfile.TemporaryDirectory(prefix="composer-voice-") as folder:
        texts = [_readable(text) for text, _ in lines]
        readings: list = [None] * len(lines)
        if speaker.engine == "festival":  # one Festival process reads a share of the lines
            wanted = [i for i, text in enumerate(texts) if text]
            shares = [wanted[k::SPEAK_WORKERS] for k in range(SPEAK_WORKERS)]
            with ThreadPoolExecutor(max_workers=SPEAK_WORKERS) as pool:
                for share, said in zip(shares, pool.map(
                        lambda share: _festival_lines(speaker.name, [texts[i] for i in share],
                                                      [Path(folder) / f"f{i}.wav" for i in share],
                                                      speaker.slowness), shares)):
                    for i, reading in zip(share, said):
                        readings[i] = reading
        with ThreadPoolExecutor(max_workers=SPEAK_WORKERS) as pool:  # one Flite process a line
            spoken = list(pool.map(
                lambda i: _speak_line(speaker, texts[i], lines[i][1], Path(folder) / f"{i}.wav", readings[i]),
                range(len(lines))))
    if not spoken:
        return Spoken(audio=np.zeros(0, np.float32), sample_rate=16000, words=[])
    # a line Flite spoke for a Festival voice is brought to Festival's rate; speech above
    # MAX_RATE is brought down to it (the WORLD analysis costs in proportion to the rate)
    rate = min(MAX_RATE, max(rate for _, rate, _ in spoken))
    if any(line_rate != rate for _, line_rate, _ in spoken):
        import soxr

        spoken = [(audio if line_rate == rate else soxr.resample(audio, line_rate, rate).astype(np.float32), rate, words)
                  for audio, line_rate, words in spoken]
    audio, words, at = [], [], 0
    for line_audio, _, line_words in spoken:
        # each line keeps LINE_PAUSE of its silence either side (a long song's bank is analysed whole)
        said = [t for word in line_words for _, a, b in word for t in (a, b)]
        first = max(0, int((min(said) - LINE_PAUSE) * rate)) if said else 0
        last = min(line_audio.shape[0], int(np.ceil((max(said) + LINE_PAUSE) * rate))) if said else 0
        offset = (at - first) / rate
        words += [[(p, offset + a, offset + b) for p, a, b in word] for word in line_words]
        audio.append(line_audio[first:last])
        at += last - first
    return Spoken(audio=np.concatenate(audio) if audio else np.zeros(0, np.float32), sample_rate=int(rate),
                  words=words)


SPEAK_WORKERS = 2
MAX_RATE = 24000  # Hz: a render's rate; Festival's HTS voice speaks at 32 kHz
LINE_PAUSE = 0.12  # seconds of a line's silence kept before and after it in the bank
MIN_ALIGNED = 0.6  # share of a line's phones the engine's reading must say as given, or the phones are spoken


def _speak_line(speaker: Speaker, text: str, line: tuple[tuple[str, ...], ...], wav: Path, reading=None):
    """(audio, rate, words) of one line; each word's phones with their (start, end) seconds.
    text: the line as the engine reads it (`_readable`); reading: the engine's (audio, rate,
    segments) of it where already made (Festival); Flite reads it here."""
    expected = [p for word in line for p in word]
    if text and (reading is not None or speaker.engine == "flite"):  # a line Festival failed on: the phones
        audio, rate, segments = (reading if reading is not None
                                 else _flite(speaker.name, ["-t", text], wav, speaker.slowness))
        found = [s for s in segments if s[0] not in (PAUSE, FESTIVAL_SILENCE)]
        match = _align(expected, [s[0] for s in found])
        words = _words_from_alignment(line, match, found)
        same = sum(m is not None and found[m][0] == p for p, m in zip(expected, match))
        if words is not None and same >= MIN_ALIGNED * len(expected):
            return audio, rate, words
        log.debug("voice: %s's reading of %r does not match its phones; spoken from the phones", speaker.engine, text)
    phones = [PAUSE] + expected + [PAUSE]
    audio, rate, segments = _flite(speaker.fallback, ["-p", " ".join(phones)], wav, speaker.slowness)
    if [name for name, _, _ in segments] != phones:
        raise RenderError(f"flite voice {speaker.fallback!r} did not speak the phones it was given")
    found = [s for s in segments if s[0] != PAUSE]
    words, at = [], 0
    for word in line:
        words.append(found[at: at + len(word)])
        at += len(word)
    return audio, rate, words


def _readable(text: str) -> str:
    """The line as Flite should read it: words, digits and phrasing punctuation only."""
    import re

    from lyrics.syllables import unaccented

    text = re.sub(r"[^\w\s',.;:!?-]", " ", unaccented(text or ""))
    text = re.sub(r"\s+", " ", text).strip(" -")
    if not re.search(r"\w", text):
        return ""
    return text if text[-1] in ".!?" else text.rstrip(",;:") + "."


def _flite(voice: str, source: list[str], wav: Path,
           slowness: float = 1.0) -> tuple[np.ndarray, int, list[tuple[str, float, float]]]:
    import soundfile as sf

    slower = ["--setf", f"duration_stretch={slowness:g}"] if slowness != 1.0 else []
    listing = _run([*slower, "-voice", voice, "-psdur", *source, "-o", str(wav)])
    audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    return audio.mean(axis=1), int(rate), _segments(listing.split(), f"flite voice {voice!r}")


FESTIVAL_SILENCE = "h#"
_MARK = "composer-segment"


def _festival(voice: str, texts: list[str], wavs: list[Path],
              slowness: float = 1.0) -> list[tuple[np.ndarray, int, list]]:
    """Festival's reading of each text in voice `voice`: (audio, rate, segments), as `_flite`
    gives; one Festival process for all of them (it loads the voice once). slowness: the
    HTS engine's speech rate is 1 / slowness (its `-r`; Festival's voices here are HTS)."""
    import soundfile as sf

    if not texts:
        return []
    path = festival_path()
    if path is None:
        raise EngineMissing(f"the voice needs the speech engine Festival (install it with: {FESTIVAL_INSTALL_HINT}; "
                            f"or render with --no-vocals)")
    script = [f"(voice_{voice})"]
    if slowness != 1.0:
        script.append(f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {1.0 / slowness:.6g}))))')
    for k, (text, wav) in enumerate(zip(texts, wavs)):
        quoted = text.replace("\\", " ").replace('"', " ")
        script.append(f'(set! utt (utt.synth (Utterance Text "{quoted}")))\n'
                      f'(utt.save.wave utt "{wav}" \'riff)\n'
                      f'(format t "{_MARK} {k}\\n")\n'
                      f'(mapcar (lambda (s) (format t "%s:%f\\n" (item.name s) (item.feat s "end"))) '
                      f"(utt.relation.items utt 'Segment))")
    scm = wavs[0].with_suffix(".scm")
    scm.write_text("\n".join(script) + "\n")
    try:
        done = subprocess.run([path, "--batch", str(scm)], capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RenderError(f"festival failed: {error}") from None
    if done.returncode != 0:
        raise RenderError(f"festival failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[:200]}")
    listings: dict[int, list[str]] = {}
    current = None
    for row in done.stdout.splitlines():
        if row.startswith(_MARK):
            current = listings.setdefault(int(row.split()[1]), [])
        elif current is not None and row.strip():
            current.append(row.strip())
    out = []
    for k, wav in enumerate(wavs):
        if k not in listings or not wav.exists():
            raise RenderError(f"festival voice {voice!r} did not read {texts[k]!r}")
        audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
        out.append((audio.mean(axis=1), int(rate), _segments(listings[k], f"festival voice {voice!r}")))
    return out


def _festival_lines(voice: str, texts: list[str], wavs: list[Path], slowness: float = 1.0) -> list:
    """`_festival` of the texts in one process; if that fails, each text on its own, and a
    text Festival cannot read at all gets None (its line is spoken from the phones)."""
    try:
        return _festival(voice, texts, wavs, slowness)
    except EngineMissing:
        raise
    except RenderError as error:
        if len(texts) == 1:
            log.warning("voice: Festival could not read %r (%s); that line is spoken from its phones", texts[0], error)
            return [None]
    return [reading for text, wav in zip(texts, wavs) for reading in _festival_lines(voice, [text], [wav], slowness)]


def _segments(listing, who: str) -> list[tuple[str, float, float]]:
    """(phone, start, end) from `phone:end` items."""
    segments, start = [], 0.0
    for item in listing:
        name, _, end = item.rpartition(":")
        try:
            segments.append((name, start, float(end)))
        except ValueError:
            raise RenderError(f"{who}: unreadable phone timing {item!r}") from None
        start = float(end)
    return segments


def _align(expected: list[str], spoken: list[str]) -> list[int | None]:
    """For each expected phone, the index of the spoken phone it was said as (None: not said):
    the cheapest edit script, where a vowel read as another vowel (or a consonant as another
    consonant) costs less than a vowel read as a consonant."""
    n, m = len(expected), len(spoken)
    cost = np.zeros((n + 1, m + 1))
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            a, b = expected[i - 1], spoken[j - 1]
            change = 0.0 if a == b else (0.6 if (a in VOWELS) == (b in VOWELS) else 1.4)
            cost[i, j] = min(cost[i - 1, j - 1] + change, cost[i - 1, j] + 1.0, cost[i, j - 1] + 1.0)
    match: list[int | None] = [None] * n
    i, j = n, m
    while i > 0 and j > 0:
        a, b = expected[i - 1], spoken[j - 1]
        change = 0.0 if a == b else (0.6 if (a in VOWELS) == (b in VOWELS) else 1.4)
        if cost[i, j] == cost[i - 1, j - 1] + change:
            match[i - 1] = j - 1
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + 1.0:
            i -= 1
        else:
            j -= 1
    return match


def _words_from_alignment(line, match, found) -> list[list[tuple[str, float, float]]] | None:
    """Each word's phones (as given) with the times Flite said them: a phone it left out is
    given no time at the end of the phone before it (a vowel left out shares the time of
    the phone next to it); phones it added inside a word go to the phone before them. None
    when a word was not said at all."""
    words, at = [], 0
    for word in line:
        picks = match[at: at + len(word)]
        at += len(word)
        said = [k for k in picks if k is not None]
        if not said:
            return None
        times = []
        for i, k in enumerate(picks):
            if k is None:
                times.append(None)
                continue
            later = [q for q in picks[i + 1:] if q is not None]
            end = found[later[0]][1] if later else found[k][2]  # up to the next said phone
            times.append((found[k][1], max(found[k][2], end)))
        for i, phone in enumerate(word):
            if times[i] is None:
                before = next((times[q] for q in range(i - 1, -1, -1) if times[q] is not None), None)
                after = next((times[q] for q in range(i + 1, len(word)) if times[q] is not None), None)
                if phone in VOWELS:
                    near = before or after
                    times[i] = near
                else:
                    edge = before[1] if before else after[0]
                    times[i] = (edge, edge)
        words.append([(phone, a, b) for phone, (a, b) in zip(word, times)])
    return words
