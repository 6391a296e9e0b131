"""Ours beside a peer in one run: seconds per audio-second of a render with the bundled
models (a 30-s song, 16 steps, guidance, decode included) over MusicGen-small's
(its architecture with random weights, generating 10 s on the same CPU and threads).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/peer_ratio.py --peer-seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))


def main() -> None:
    import torch
    from common import write_result

    from composer.models import load_models
    from composer.rendering import RenderOptions, render
    from structure.planner import plan

    parser = argparse.ArgumentParser()
    parser.add_argument("--peer-seconds", type=float, default=10.0)
    parser.add_argument("--song-seconds", type=float, default=30.0)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(2)
    codec, model = load_models(None, None)
    song = plan("genre=pop mood=happy", duration=args.song_seconds, seed=0, write_lyrics=False)
    start = time.monotonic()
    result = render(song, seed=0, codec=codec, model=model, options=RenderOptions(evaluate=False), progress=False)
    ours = (time.monotonic() - start) / result.duration
    with tempfile.TemporaryDirectory() as folder:
        peer_json = os.path.join(folder, "peer.json")
        subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "peer_musicgen.py"),
                        "--seconds", str(args.peer_seconds), "--out", peer_json], check=True,
                       env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
        with open(peer_json) as handle:
            peer = json.load(handle)
    theirs = peer["seconds_per_audio_second"]
    write_result("peer_ratio", {"ours_seconds_per_audio_second": ours, "ours_song_seconds": result.duration,
                                "musicgen_small_seconds_per_audio_second": theirs,
                                "ratio_ours_over_theirs": ours / theirs, "peer": peer}, args.out)


if __name__ == "__main__":
    main()
