"""Interpolation between two songs: are its window joins ordinary, and do its ends sound like its inputs?

Pairs of 30-s songs are interpolated (`composer interpolate`, 3 songs a pair: alpha 0, 0.5, 1).
For every song, each window join is scored as `composer.evaluate.seams` scores a seam: the share
of joins whose spectral flux ranks above 95 % of ordinary moments of the same song (ordinary
moments: 0.05). For the ends (alpha 0 and 1), the mean absolute difference of 64-band log-mel
spectrograms (24 kHz, natural log) from the input they start or end at: the model re-renders
both inputs from their inverted noise, so an end is never its input exactly, but the closer
the better.

Sources: `synthetic` renders its pairs first with the bundled models (prompts and seeds fixed
below, no voice); `recorded` takes 30-s excerpts of the held-out recorded packages whose
analysis is confident, as `benchmarks/recorded_modes.py` does.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/interpolation.py --source synthetic --out benchmarks/results/interpolation_synthetic.json
    OMP_WAIT_POLICY=PASSIVE python benchmarks/interpolation.py --source recorded --out benchmarks/results/interpolation_recorded.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import held_out_excerpts, write_result  # noqa: E402

SYNTHETIC = [("genre=folk", 1), ("genre=rock", 2), ("genre=jazz", 3), ("genre=pop", 4)]
SECONDS = 30.0


def log_mel_distance(a: np.ndarray, b: np.ndarray, rate: int) -> float:
    import librosa

    n = min(a.shape[-1], b.shape[-1])

    def mel(x: np.ndarray) -> np.ndarray:
        return np.log(librosa.feature.melspectrogram(y=x[:n], sr=rate, n_mels=64) + 1e-5)

    return float(np.mean(np.abs(mel(a) - mel(b))))


def inputs(source: str, count: int, folder: Path, data: Path) -> list[Path]:
    if source == "recorded":
        paths = [path for _, path in held_out_excerpts(data, count, SECONDS, folder)]
        if len(paths) < count:
            raise SystemExit(f"{data}: fewer than {count} confidently analysed files of the held-out packages")
        return paths
    from composer.models import load_models
    from composer.rendering import RenderOptions, render
    from structure.planner import plan

    codec, model = load_models(None, None)
    paths = []
    for prompt, seed in SYNTHETIC[:count]:
        song = render(plan(prompt, duration=SECONDS, seed=seed), seed=seed, codec=codec, model=model,
                      options=RenderOptions(vocals=False, evaluate=False), progress=False)
        paths.append(song.save(folder / f"{prompt.split('=')[1]}{seed}") / "song.wav")
    return paths


def interpolation_rows(paths: list[Path], pairs: int, *, model=None, codec=None) -> list[dict]:
    """Pairs of `paths` (first and second, third and fourth, ...) interpolated, 3 songs a pair:
    per song its window joins' ranks among ordinary moments, and for the ends their log-mel
    distance to the input they start or end at."""
    from composer.data.audio import audio_read
    from composer.evaluate.seams import seam_metrics
    from composer.rendering.modes import interpolate
    from composer.rendering.options import RenderOptions

    rows = []
    for k in range(min(pairs, len(paths) // 2)):
        a, b = paths[2 * k], paths[2 * k + 1]
        for result in interpolate(a, b, count=3, seed=k, model=model, codec=codec,
                                  options=RenderOptions(vocals=False, evaluate=False), progress=False):
            alpha = result.report["mode"]["alpha"]
            joins = [s["time"] for s in result.report["seams"] if s["kind"] == "window"]
            ranks = [r["rank"] for r in seam_metrics(result.audio, result.sample_rate, window_seams=joins)["per_seam"]
                     if r["kind"] == "window"]
            row = {"pair": k, "alpha": alpha, "joins": len(ranks), "above_p95": int(np.sum(np.array(ranks) > 0.95)),
                   "joins_above_p95": round(float(np.mean(np.array(ranks) > 0.95)), 4) if ranks else None}
            if alpha in (0.0, 1.0):
                own, rate = audio_read(a if alpha == 0.0 else b, sample_rate=result.sample_rate, channels=1)
                row["end_log_mel_distance"] = round(log_mel_distance(np.asarray(result.audio).mean(axis=0), own[0],
                                                                     rate), 4)
            rows.append(row)
            print(row, flush=True)
    return rows


def joins_summary(rows: list[dict]) -> dict:
    joins = sum(r["joins"] for r in rows)
    ends = [r["end_log_mel_distance"] for r in rows if "end_log_mel_distance" in r]
    return {"window_joins": joins, "joins_above_p95": round(sum(r["above_p95"] for r in rows) / joins, 4) if joins else None,
            "end_log_mel_distance_mean": round(float(np.mean(ends)), 4) if ends else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=["synthetic", "recorded"], default="synthetic")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--data", default="data/recorded", help="the recorded corpus (--source recorded)")
    parser.add_argument("--out")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as folder:
        rows = interpolation_rows(inputs(args.source, 2 * args.pairs, Path(folder), Path(args.data)), args.pairs)
    write_result("interpolation", {
        "source": args.source, "pairs": args.pairs, "seconds": SECONDS, "rows": rows, "summary": joins_summary(rows),
        "goal": "joins_above_p95 about 0.05 (ordinary moments); the ends as close to their inputs as can be",
    }, args.out)


if __name__ == "__main__":
    main()
