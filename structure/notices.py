"""Warnings said once a process: a persona's run of days plans the artist's own genre every
day, and says that it is played in the pop style once, not daily. A batch says each row's
warnings afresh (`said_afresh`), so every row that falls back is named by its line."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

_SAID: set[Hashable] = set()


def warn_once(logger: logging.Logger, key: Hashable, message: str, *args) -> None:
    """`logger.warning(message, *args)` the first time `key` is given in this process."""
    if key in _SAID:
        return
    _SAID.add(key)
    logger.warning(message, *args)


@contextmanager
def said_afresh() -> Iterator[None]:
    """Inside, every warning is said again, as if none had been; those said before are still
    said once a process after."""
    before = set(_SAID)
    _SAID.clear()
    try:
        yield
    finally:
        _SAID.update(before)
