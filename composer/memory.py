"""Memory that a long render frees goes back to the system.

glibc's malloc serves an allocation from its heap unless it is larger than a threshold that
rises, by default, to the size of the largest mapped block freed so far (up to 32 MB). After
the first whole-song arrays are freed, every block array of a long song (a few MB each) is
served from the heap, and the heap keeps what it once held: a 30-minute render measured
240 MB more resident memory after its decode than the arrays it held. Fixing the threshold at
`MMAP_THRESHOLD` gives every larger array its own mapping, returned to the system when freed,
at the price of fresh pages for each (the codec's decode runs 1.6x slower): the renderer asks
for it for long songs only (`composer.rendering.renderer.LONG_SONG_SECONDS`). `trim` gives an
arena's free pages back between phases. Elsewhere than glibc both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

MMAP_THRESHOLD = 1 << 20  # bytes
TRIM_THRESHOLD = 1 << 20  # bytes of free heap top kept before it is given back
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_done = False
_libc = None


def _glibc():
    global _libc
    if _libc is None and sys.platform.startswith("linux"):
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:
            _libc = False
    return _libc or None


def return_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds once per process; False where there is no glibc."""
    global _done
    libc = _glibc()
    if _done or libc is None:
        return _done
    try:
        _done = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
            bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except AttributeError:  # a C library without mallopt
        return False
    if not _done:
        log.debug("mallopt refused the thresholds")
    return _done


def trim() -> bool:
    """Give the free pages of every malloc arena back to the system (glibc's `malloc_trim`):
    called between a render's phases, when a thread's arena (the voice's, the check's) holds
    the small blocks of a finished phase. False where there is no glibc."""
    libc = _glibc()
    try:
        return bool(libc.malloc_trim(0)) if libc is not None else False
    except AttributeError:
        return False
