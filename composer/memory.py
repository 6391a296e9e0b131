"""Memory that a long render frees goes back to the system.

glibc's malloc serves an allocation from its heap unless it is larger than a threshold that
rises, by default, to the size of the largest mapped block freed so far (up to 32 MB). After
the first whole-song arrays are freed, every block array of a long song (a few MB each) is
served from the heap, and the heap keeps what it once held: a 30-minute render measured
240 MB more resident memory after its decode than the arrays it held. Fixing the threshold at
`MMAP_THRESHOLD` gives every larger array its own mapping, returned to the system when freed,
at the price of fresh pages for each (the codec's decode runs 1.4x slower): the renderer asks
for it for long songs only (`composer.rendering.renderer.LONG_SONG_SECONDS`), and only while
it renders one (`returning_freed_memory`): after it, the thresholds are fixed where glibc's
own settle (`SETTLED_MMAP_THRESHOLD`), so a later, shorter song in the same process (the
studio, a batch worker) decodes at its usual speed (a 3-minute decode: 1.87 s before a long
song, 2.55 s with the 1-MB threshold left on, 1.94 s after settling). `trim` gives an arena's
free pages back between phases. Elsewhere than glibc all of them do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from contextlib import contextmanager

log = logging.getLogger(__name__)

MMAP_THRESHOLD = 1 << 20  # bytes
TRIM_THRESHOLD = 1 << 20  # bytes of free heap top kept before it is given back
# where glibc's dynamic thresholds end up (its ceiling for the mmap threshold on 64-bit
# systems, and twice that for trimming, as it sets them)
SETTLED_MMAP_THRESHOLD = 32 << 20
SETTLED_TRIM_THRESHOLD = 64 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_libc = None


def _glibc():
    global _libc
    if _libc is None and sys.platform.startswith("linux"):
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:
            _libc = False
    return _libc or None


def _set_thresholds(mmap: int, trim: int) -> bool:
    libc = _glibc()
    if libc is None:
        return False
    try:
        done = bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, trim))
    except AttributeError:  # a C library without mallopt
        return False
    if not done:
        log.debug("mallopt refused the thresholds %d and %d", mmap, trim)
    return done


def return_freed_memory() -> bool:
    """Fix glibc's mmap and trim thresholds at 1 MB: every larger array freed goes back to the
    system. False where there is no glibc."""
    return _set_thresholds(MMAP_THRESHOLD, TRIM_THRESHOLD)


def settle_thresholds() -> bool:
    """Fix the thresholds where glibc's dynamic ones settle (32 MB, 64 MB): arrays under 32 MB
    are served from the heap again. False where there is no glibc."""
    return _set_thresholds(SETTLED_MMAP_THRESHOLD, SETTLED_TRIM_THRESHOLD)


@contextmanager
def returning_freed_memory(active: bool = True):
    """`return_freed_memory` inside (when `active`), `settle_thresholds` after."""
    if not active or not return_freed_memory():
        yield
        return
    try:
        yield
    finally:
        settle_thresholds()


def trim() -> bool:
    """Give the free pages of every malloc arena back to the system (glibc's `malloc_trim`):
    called between a render's phases, when a thread's arena (the voice's, the check's) holds
    the small blocks of a finished phase. False where there is no glibc."""
    libc = _glibc()
    try:
        return bool(libc.malloc_trim(0)) if libc is not None else False
    except AttributeError:
        return False
