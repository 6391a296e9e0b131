"""Render wall time and peak memory versus song length, with the bundled models.

Each length runs in a fresh subprocess so its peak RSS is its own. Writes
benchmarks/results/render_speed.json. The budget from the render issue: a
3-minute song in <= 60 s including decode (aim 30 s), peak memory <= 1.5 GB
and flat in length, time linear in length. The render is timed without its built-in
`composer evaluate` pass (`--no-evaluate`); `--evaluate` times that too, and `--sung`
renders what `composer render` renders by default (the writer's lyrics, sung).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/render_speed.py --lengths 30 60 120 180 300 --threads 2
    python benchmarks/render_speed.py --evaluate --sung --lengths 60 180 600 --out benchmarks/results/render_speed_default.json
    python benchmarks/render_speed.py --evaluate --sung --lengths 180 600 1800 --out benchmarks/results/render_speed_long.json

`--from-guide 1` times renders from noise (the renderer's default starts from the guide).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

CHILD = r"""
import json, resource, sys, time, torch
torch.set_num_threads(int(sys.argv[2]))
from structure.planner import plan
from composer.models import load_models
from composer.rendering import RenderOptions, render
codec, model = load_models(None, None)
sung = sys.argv[5] == "1"
if sung:  # what `composer render` plans: the writer's lyrics, melodies checked against what the model learnt
    import composer
    song = composer.plan("genre=pop mood=happy", duration=float(sys.argv[1]), seed=0)
else:
    song = plan("genre=pop mood=happy", duration=float(sys.argv[1]), seed=0, write_lyrics=False)
start = time.monotonic()
from_guide = None if sys.argv[6] == "default" else float(sys.argv[6])
result = render(song, seed=0, codec=codec, model=model, options=RenderOptions(steps=int(sys.argv[3]), evaluate=sys.argv[4] == "1",
                vocals=sung, from_guide=from_guide), progress=False)
wall = time.monotonic() - start
print(json.dumps({"seconds": result.duration, "wall": wall, "timings": result.report["timings"],
                  "windows": len(result.report["windows"]),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    from common import default_steps, write_result

    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", type=float, nargs="+", default=[30, 60, 120, 180, 300])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=default_steps())
    parser.add_argument("--evaluate", action="store_true", help="Include the render's evaluation pass.")
    parser.add_argument("--sung", action="store_true",
                        help="The default render: the writer's lyrics, sung (otherwise instrumental).")
    parser.add_argument("--from-guide", default="default",
                        help="Start from the guide noised to this strength (default: the renderer's).")
    parser.add_argument("--out")
    args = parser.parse_args()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(args.threads)}
    rows = []
    for length in args.lengths:
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", CHILD, str(length), str(args.threads), str(args.steps),
                               "1" if args.evaluate else "0", "1" if args.sung else "0", args.from_guide],
                              capture_output=True, text=True, env=env, check=True)
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["process_wall"] = time.monotonic() - started
        row["seconds_per_audio_second"] = row["wall"] / row["seconds"]
        rows.append(row)
        print(f"{length:>5.0f} s song: {row['wall']:.1f} s wall, {row['peak_rss_mb']:.0f} MB peak", file=sys.stderr)
    three = [r for r in rows if abs(r["seconds"] - 180) < 5]
    summary = {"steps": args.steps, "from_guide": args.from_guide, "threads": args.threads, "evaluate": args.evaluate, "sung": args.sung, "rows": rows,
               "three_minute_wall": three[0]["wall"] if three else None,
               "budget": {"three_minute_seconds": 60, "aim_seconds": 30, "peak_mb": 1536},
               "ru_maxrss_children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
    write_result("render_speed", summary, args.out)


if __name__ == "__main__":
    main()
