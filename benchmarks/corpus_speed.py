"""Corpus rendering throughput (audio minutes per wall minute).

    python benchmarks/corpus_speed.py --minutes 3 --workers 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))


def main() -> None:
    from common import write_result

    from composer.data.corpus import build_corpus

    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        start = time.monotonic()
        records = build_corpus(folder, minutes=args.minutes, seed=123, workers=args.workers, progress=False)
        wall = time.monotonic() - start
    audio_minutes = sum(r["duration"] for r in records) / 60
    write_result("corpus_speed", {"workers": args.workers, "songs": len(records), "audio_minutes": audio_minutes,
                                  "wall_minutes": wall / 60, "audio_minutes_per_wall_minute": audio_minutes / (wall / 60),
                                  "note": "2 songs is too few for steady state; a fresh synthesizer per render "
                                          "(dynamic sample loading) costs ~0.02-2 s per song"},
                 args.out)


if __name__ == "__main__":
    main()
