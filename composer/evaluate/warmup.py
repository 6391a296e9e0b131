"""Compile (and cache, in NUMBA_CACHE_DIR) what the built-in evaluation compiles on its first
run, so the first render on a fresh machine is not 30 s slower than the rest.

    python -m composer.evaluate.warmup        # `make install` runs it
"""

from __future__ import annotations

import logging
import time

import numpy as np

log = logging.getLogger(__name__)


def warm_up() -> float:
    """Evaluate a short synthetic song once; returns the seconds it took."""
    from composer.evaluate.metrics import evaluate_audio
    from structure.planner import plan

    clock = time.monotonic()
    song = plan("genre=pop", duration=12, seed=0, write_lyrics=False)
    rate = 24000
    t = np.arange(int(song.duration * rate)) / rate
    audio = (0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sign(np.sin(2 * np.pi * t * song.tempo_bpm / 60)))
             ).astype(np.float32)
    evaluate_audio(audio[None], rate, song)
    return time.monotonic() - clock


if __name__ == "__main__":
    import os

    import composer  # noqa: F401 - sets NUMBA_CACHE_DIR before librosa loads numba

    seconds = warm_up()
    print(f"evaluation warmed up in {seconds:.1f} s (numba cache: {os.environ.get('NUMBA_CACHE_DIR')})")
