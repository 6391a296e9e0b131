"""Lyrics errors."""


class LyricsError(ValueError):
    """Lyrics cannot be used; the message names the input and what is wrong."""
