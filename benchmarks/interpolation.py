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
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import write_result  # noqa: E402

SYNTHETIC = [("genre=folk", 1), ("genre=rock", 2), ("genre=jazz", 3), ("genre=pop", 4)]
HELD_OUT = ("nexuiz-music", "singularity-music")
SECONDS = 30.0


def log_mel_distance(a: np.ndarray, b: np.ndarray, rate: int) -> float:
    import librosa

    n = min(a.shape[-1], b.shape[-1])

    def mel(x: np.ndarray) -> np.ndarray:
        return np.log(librosa.feature.melspectrogram(y=x[:n], sr=rate, n_mels=64) + 1e-5)

    return float(np.mean(np.abs(mel(a) - mel(b))))


def inputs(source: str, count: int, folder: Path, data: Path) -> list[Path]:
    from composer.data.audio import audio_read, audio_write

    paths = []
    if source == "synthetic":
        from composer.models import load_models
        from composer.rendering import RenderOptions, render
        from structure.planner import plan

        codec, model = load_models(None, None)
        for prompt, seed in SYNTHETIC[:count]:
            song = render(plan(prompt, duration=SECONDS, seed=seed), seed=seed, codec=codec, model=model,
                          options=RenderOptions(vocals=False, evaluate=False), progress=False)
            paths.append(song.save(folder / f"{prompt.split('=')[1]}{seed}") / "song.wav")
        return paths
    rows = [json.loads(line) for line in (data / "metadata.jsonl").read_text().splitlines() if line.strip()]
    chosen = [r for r in rows if r.get("source_package") in HELD_OUT and r.get("labels_confident")
              and not r.get("cut_into")][:count]
    if len(chosen) < count:
        raise SystemExit(f"{data}: fewer than {count} confidently analysed files of the held-out packages; run "
                         f"`composer data analyze {data}` first")
    for k, row in enumerate(chosen):
        audio, rate = audio_read(data / row["file_name"], sample_rate=24000)
        start = max(0, audio.shape[-1] // 2 - int(SECONDS * rate / 2))
        audio_write(folder / f"excerpt{k}.wav", audio[:, start: start + int(SECONDS * rate)], rate)
        paths.append(folder / f"excerpt{k}.wav")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=["synthetic", "recorded"], default="synthetic")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--data", default="data/recorded", help="the recorded corpus (--source recorded)")
    parser.add_argument("--out")
    args = parser.parse_args()

    import torch

    from composer.data.audio import audio_read
    from composer.evaluate.seams import seam_metrics
    from composer.rendering.modes import interpolate
    from composer.rendering.options import RenderOptions

    torch.set_num_threads(2)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        paths = inputs(args.source, 2 * args.pairs, Path(folder), Path(args.data))
        for k in range(args.pairs):
            a, b = paths[2 * k], paths[2 * k + 1]
            for result in interpolate(a, b, count=3, seed=k, options=RenderOptions(vocals=False, evaluate=False),
                                      progress=False):
                alpha = result.report["mode"]["alpha"]
                joins = [s["time"] for s in result.report["seams"] if s["kind"] == "window"]
                ranks = [r["rank"] for r in seam_metrics(result.audio, result.sample_rate, window_seams=joins)["per_seam"]
                         if r["kind"] == "window"]
                row = {"pair": k, "alpha": alpha, "joins": len(ranks),
                       "joins_above_p95": round(float(np.mean(np.array(ranks) > 0.95)), 4) if ranks else None}
                if alpha in (0.0, 1.0):
                    own, rate = audio_read(a if alpha == 0.0 else b, sample_rate=result.sample_rate, channels=1)
                    row["end_log_mel_distance"] = round(log_mel_distance(np.asarray(result.audio).mean(axis=0), own[0],
                                                                         rate), 4)
                rows.append(row)
                print(row, flush=True)
    above = [r["joins_above_p95"] * r["joins"] for r in rows if r["joins"]]
    ends = [r["end_log_mel_distance"] for r in rows if "end_log_mel_distance" in r]
    write_result("interpolation", {
        "source": args.source, "pairs": args.pairs, "seconds": SECONDS, "rows": rows,
        "summary": {"window_joins": sum(r["joins"] for r in rows),
                    "joins_above_p95": round(sum(above) / max(1, sum(r["joins"] for r in rows)), 4),
                    "end_log_mel_distance_mean": round(float(np.mean(ends)), 4) if ends else None},
        "goal": "joins_above_p95 about 0.05 (ordinary moments); the ends as close to their inputs as can be",
    }, args.out)


if __name__ == "__main__":
    main()
