"""Lyrics: parsing tagged lyric text, syllables and stress, fitting lines to melody notes,
timed-lyric export (LRC, JSON) and a template lyric writer.

Knows nothing of audio or torch; `structure` and `composer` call it.
"""

from lyrics.errors import LyricsError
from lyrics.fitting import MELISMA, Slot, fit_line, notes_for_line, syllable_counts
from lyrics.sections import (
    SECTION_KINDS,
    LyricSection,
    capital_i,
    kind_of_label,
    parse,
    printable,
    title_case,
    to_text,
)
from lyrics.syllables import (
    count_syllables,
    display_syllables,
    pronunciation,
    stresses,
    syllables,
    words,
    written_words,
)
from lyrics.timed import TimedLine, to_json_timed, to_lrc
from lyrics.writer import SectionSpec, resolve_mood, theme_words, write

__all__ = [
    "MELISMA", "SECTION_KINDS", "LyricSection", "LyricsError", "SectionSpec", "Slot",
    "TimedLine", "capital_i", "count_syllables", "display_syllables", "fit_line", "kind_of_label", "notes_for_line", "parse",
    "printable", "pronunciation", "resolve_mood", "stresses", "syllable_counts", "syllables", "theme_words", "title_case", "to_json_timed",
    "to_lrc", "to_text", "words", "write", "written_words",
]
