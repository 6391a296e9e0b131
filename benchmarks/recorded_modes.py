"""Restyle and interpolate on recordings the models never heard (the held-out packages).

30-second excerpts of the held-out recorded packages (nexuiz-music, singularity-music), taken
from files whose analysis is confident (`composer data analyze`: a clear pulse, one key), are
restyled at strengths 0.3 and 0.6, and at 0 (the codec's round trip alone, which shows what the
codec itself keeps); the output is analysed independently and compared with the input's
analysis (tempo within 4 %, the same key). Pairs of excerpts are interpolated (3 songs
each); every window join of those songs is scored for clicks (`composer.evaluate.seams`: the
share of joins louder in spectral flux than 95 % of ordinary moments of the same song; 0.05 is
what ordinary moments score).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/recorded_modes.py   # writes benchmarks/results/recorded_modes.json
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

HELD_OUT = ("nexuiz-music", "singularity-music")
STRENGTHS = (0.0, 0.3, 0.6)  # 0: the codec's round trip alone
PROMPTS = ["bright pop song", "dark rock song", "calm folk ballad"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/recorded")
    parser.add_argument("--excerpts", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--model", help="Diffusion checkpoint (default: bundled).")
    parser.add_argument("--codec", help="Codec checkpoint (default: bundled).")
    parser.add_argument("--tag", action="append", default=[],
                        help="NAME=VALUE added to every restyle prompt (e.g. source=recorded); repeatable")
    parser.add_argument("--out")
    args = parser.parse_args()

    import torch

    from composer.data.audio import audio_read, audio_write
    from composer.evaluate.seams import seam_metrics
    from composer.rendering.modes import interpolate, restyle
    from composer.rendering.options import RenderOptions
    from structure.analysis import analyze

    torch.set_num_threads(2)
    root = Path(args.data)
    rows = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines() if line.strip()]
    chosen = [r for r in rows if r.get("source_package") in HELD_OUT and r.get("labels_confident")
              and not r.get("cut_into")][: args.excerpts]
    if not chosen:
        raise SystemExit(f"{root}: no confidently analysed file of the held-out packages; run "
                         f"`composer data analyze {root}` first")
    options = RenderOptions(vocals=False, evaluate=False)
    restyled, joins = [], []
    with tempfile.TemporaryDirectory() as folder:
        excerpts = []
        for k, row in enumerate(chosen):
            audio, rate = audio_read(root / row["file_name"], sample_rate=24000)
            start = max(0, audio.shape[-1] // 2 - int(args.seconds * rate / 2))
            clip = audio[:, start: start + int(args.seconds * rate)]
            path = Path(folder) / f"excerpt{k}.wav"
            audio_write(path, clip, rate)
            excerpts.append((row["file_name"], path, analyze(clip, rate)))
        for name, path, before in excerpts:
            for strength in STRENGTHS:
                prompt = " ".join([PROMPTS[len(restyled) % len(PROMPTS)], *args.tag])
                result = restyle(path, prompt, strength=strength, seed=1, model=args.model, codec=args.codec, options=options,
                                 progress=False)
                after = analyze(result.audio, result.sample_rate)
                tempo_ok = bool(before.tempo_bpm and abs(after.tempo_bpm - before.tempo_bpm) / before.tempo_bpm <= 0.04)
                restyled.append({"file": name, "strength": strength, "tempo_in": round(before.tempo_bpm, 1),
                                 "tempo_out": round(after.tempo_bpm, 1), "tempo_within_4pct": tempo_ok,
                                 "key_in": str(before.key), "key_out": str(after.key),
                                 "key_kept": str(before.key) == str(after.key)})
        for k in range(min(args.pairs, len(excerpts) // 2)):
            a, b = excerpts[2 * k][1], excerpts[2 * k + 1][1]
            for result in interpolate(a, b, count=3, seed=k, model=args.model, codec=args.codec, options=options, progress=False):
                windows = [s["time"] for s in result.report["seams"] if s["kind"] == "window"]
                metrics = seam_metrics(result.audio, result.sample_rate, window_seams=windows)
                joins += [r["rank"] for r in metrics["per_seam"] if r["kind"] == "window"]
    summary = {}
    for strength in STRENGTHS:
        rows_at = [r for r in restyled if r["strength"] == strength]
        summary[str(strength)] = {"tempo_within_4pct": float(np.mean([r["tempo_within_4pct"] for r in rows_at])),
                                  "key_kept": float(np.mean([r["key_kept"] for r in rows_at]))}
    write_result("recorded_modes", {
        "model_path": args.model, "codec_path": args.codec, "tags": args.tag, "excerpts": len(chosen), "seconds": args.seconds, "restyle": summary, "restyle_rows": restyled,
        "interpolate": {"pairs": args.pairs, "window_joins": len(joins),
                        "joins_above_p95": float(np.mean(np.array(joins) > 0.95)) if joins else None,
                        "goal": "about 0.05 (ordinary moments)"},
        "goal": "restyle keeps tempo within 4 % and the key at strengths up to 0.6",
    }, args.out)


if __name__ == "__main__":
    main()
