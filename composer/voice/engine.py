"""The speech engine: Flite (Debian's `flite`), called as a program.

It does two jobs: letter-to-sound for words the CMU dictionary does not know, and speaking
the song's lines from given phones (`-p`), each line once as connected speech, with the end
time of every phone (`-psdur`), which the singer then moves onto the notes. Flite's licence is BSD-style; it is called as
a program, never linked.
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
PAUSE = "pau"
# Flite's US English phone set: CMU ARPAbet in lower case without stress, "ax" for AH0.
PHONES = frozenset("aa ae ah ao aw ax axr ay b ch d dh eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh t th "
                   "uh uw v w y z zh".split())
VOWELS = frozenset("aa ae ah ao aw ax axr ay eh er ey ih iy ow oy uh uw".split())


class EngineMissing(RenderError):
    """The speech engine is not installed."""


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
def _speak_cached(voice: str, lines: tuple[tuple[tuple[str, ...], ...], ...]) -> Spoken:
    return _speak(voice, lines)


def speak(voice: str, lines: list[list[list[str]]]) -> Spoken:
    """Speak each line (a list of words, each a list of phones) as one connected utterance,
    with a pause between lines, in Flite voice `voice`. `Spoken.words` lists every word of
    every line in order, with its phones' times."""
    return _speak_cached(voice, tuple(tuple(tuple(word) for word in line) for line in lines))


def _speak(voice: str, lines: tuple[tuple[tuple[str, ...], ...], ...]) -> Spoken:
    import soundfile as sf

    phones = [PAUSE]
    for line in lines:
        for word in line:
            bad = [p for p in word if p not in PHONES]
            if bad or not word:
                raise RenderError(f"voice: cannot speak phones {list(word)!r}")
            phones += list(word)
        phones.append(PAUSE)
    with tempfile.TemporaryDirectory(prefix="composer-voice-") as folder:
        wav = Path(folder) / "bank.wav"
        listing = _run(["-voice", voice, "-psdur", "-p", " ".join(phones), "-o", str(wav)])
        audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    timed = []
    for item in listing.split():
        name, _, end = item.rpartition(":")
        timed.append((name, float(end)))
    if [name for name, _ in timed] != phones:
        raise RenderError(f"flite voice {voice!r} did not speak the phones it was given")
    segments: list[tuple[str, float, float]] = []
    start = 0.0
    for name, end in timed:
        if name != PAUSE:
            segments.append((name, start, end))
        start = end
    words: list[list[tuple[str, float, float]]] = []
    at = 0
    for line in lines:
        for word in line:
            words.append(segments[at: at + len(word)])
            at += len(word)
    return Spoken(audio=audio.mean(axis=1), sample_rate=int(rate), words=words)


def version() -> str | None:
    path = flite_path()
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.strip().splitlines()[0] if out.strip() else "flite"
