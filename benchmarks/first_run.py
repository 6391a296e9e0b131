"""The first render on a fresh machine against the ones after it (the render issue's goal: no
more than 10 s slower).

A fresh machine is simulated as closely as this one allows: a fresh `git clone` of this
repository's HEAD (so no compiled bytecode of the project) and an empty numba cache; then
what `make install` runs last (`python -m composer.evaluate.warmup`), then the default
`composer render` of a 3-minute song three times, each a new process, timed from the
command to its exit. Installed packages, the operating system's file cache and the
sentence model's files are this machine's as they are.

    python benchmarks/first_run.py [--seconds 180] [--out benchmarks/results/first_run.json]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def timed(command: list[str], *, cwd: Path, env: dict) -> float:
    clock = time.monotonic()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.monotonic() - clock


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--renders", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        subprocess.run(["git", "clone", "-q", str(ROOT), str(work / "repo")], check=True)
        repo = work / "repo"
        env = {**os.environ, "NUMBA_CACHE_DIR": str(work / "numba"), "PYTHONPATH": str(repo)}
        warmup = timed([sys.executable, "-m", "composer.evaluate.warmup"], cwd=repo, env=env)
        renders = []
        for k in range(args.renders):
            renders.append(timed([sys.executable, "-m", "composer", "render", "genre=pop mood=happy",
                                  "--duration", str(args.seconds), "--seed", "0", "-o", str(work / f"song{k}")],
                                 cwd=repo, env=env))
            print(f"render {k + 1}: {renders[-1]:.1f} s", file=sys.stderr)
    later = min(renders[1:])
    write_result("first_run", {
        "song_seconds": args.seconds, "warmup_s": round(warmup, 2), "renders_s": [round(r, 2) for r in renders],
        "first_minus_later_s": round(renders[0] - later, 2), "goal_s": 10.0,
        "what": "wall time of `composer render` (process start to exit, default settings) in a fresh clone "
                "with an empty numba cache, after `python -m composer.evaluate.warmup` as `make install` runs it",
    }, args.out)


if __name__ == "__main__":
    main()
