"""Run every benchmark; results land in benchmarks/results/*.json."""

from __future__ import annotations

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = [["model_speed.py"], ["render_speed.py"], ["corpus_speed.py"], ["codec_quality.py"],
           ["quality.py"], ["vocoder_ceiling.py"], ["peer_ratio.py"], ["note_survival.py"], ["training_speed.py"],
           ["interpolation.py", "--source", "synthetic", "--out",
            os.path.join(HERE, "results", "interpolation_synthetic.json")]]

if __name__ == "__main__":
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    failed = 0
    for script in SCRIPTS:
        print(f"== {script[0]}", flush=True)
        failed += subprocess.run([sys.executable, os.path.join(HERE, script[0]), *script[1:]], env=env).returncode != 0
    sys.exit(1 if failed else 0)
