"""Originality: does the index find what the model learnt, and only that? Do renders copy?

On the bundled diffusion model's index (its training data: `data/corpus`, built with the
README's `composer corpus build` command; thresholds calibrated on its validation split
and `data/heldout`):

- recall: 10-second excerpts of training files at random starts, re-encoded as a listener
  passes music on (MP3 at 64 kbps, resampled to 44.1 kHz, 3 dB louder, trimmed anywhere):
  share found (the right file above the threshold);
- false positives: 10-second excerpts of music the index never saw and the threshold was not
  calibrated on (`--heldout`: by default `data/heldout2`, songs planned here with another
  seed, the hardest case: same planner, same soundfont; and the held-out recorded packages
  of `data/recorded`): share with any match above the threshold;
- renders of new plans (prompts and seeds the corpus never used): verdicts and the largest
  similarity; memorisation: renders of the exact plans (and tags) of training songs, the
  share flagged and the closest one came;
- cost: the originality check's share of render time, and the index's size against the
  bundled weights.

    composer corpus build -o data/heldout2 --minutes 15 --seed 123
    OMP_WAIT_POLICY=PASSIVE python benchmarks/originality.py   # writes benchmarks/results/originality.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import write_result  # noqa: E402

NEW_PROMPTS = ["hopeful pop song about the sea", "sad folk ballad", "angry rock song", "calm ballad at night",
               "joyful country song", "dark minor rock"]


def reencode(audio: np.ndarray, rate: int, start: float, seconds: float) -> tuple[np.ndarray, int]:
    import soundfile as sf

    from composer.data.audio import audio_read

    with tempfile.TemporaryDirectory() as folder:
        wav, mp3 = Path(folder) / "in.wav", Path(folder) / "out.mp3"
        sf.write(wav, audio[int(start * rate): int((start + seconds) * rate)], rate)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-af", "volume=3dB", "-ar", "44100",
                        "-b:a", "64k", str(mp3)], check=True)
        decoded, new_rate = audio_read(mp3, sample_rate=None, channels=1)
    return decoded[0], new_rate


def excerpts_of(rows, rng, count: int, seconds: float):
    """(file name, audio, rate, start) of `count` random excerpts, files drawn at random."""
    from composer.data.audio import audio_read

    cache = {}
    for _ in range(count):
        folder, path, name = rows[int(rng.integers(len(rows)))]
        if path not in cache:
            audio, rate = audio_read(path, sample_rate=24000, channels=1)
            cache[path] = (audio[0], rate)
        audio, rate = cache[path]
        length = len(audio) / rate
        if length < seconds + 1:
            continue
        start = float(rng.uniform(0, length - seconds))
        yield name, audio, rate, start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heldout", action="append", default=None,
                        help="Held-out dataset folders for false positives (default: data/heldout2, data/recorded).")
    parser.add_argument("--positives", type=int, default=80)
    parser.add_argument("--negatives", type=int, default=200)
    parser.add_argument("--renders", type=int, default=6)
    parser.add_argument("--render-seconds", type=float, default=40.0)
    parser.add_argument("--out")
    args = parser.parse_args()

    import torch

    import composer
    from composer.models import bundled_model_path
    from composer.originality import load_index
    from composer.originality.index import _dataset_rows
    from composer.rendering.options import RenderOptions
    from structure.schema import SongPlan

    torch.set_num_threads(2)
    index = load_index(bundled_model_path())
    threshold = index.thresholds["audio"]
    rng = np.random.default_rng(0)
    train = [(Path(d), Path(d) / f["file"], f["file"]) for d in index.meta["datasets"] for f in index.files
             if (Path(d) / f["file"]).is_file()]
    if not train:
        raise SystemExit(f"the indexed data ({index.meta['datasets']}) is not here: build it with the README's "
                         "`composer corpus build` command")

    clock = time.monotonic()
    found, positives = 0, []
    for name, audio, rate, start in excerpts_of(train, rng, args.positives, 10.0):
        query, query_rate = reencode(audio, rate, start, 10.0)
        matches = index.match_audio(query, query_rate, top=1)
        best = matches[0] if matches else None
        hit = best is not None and best["file"] == name and best["similarity"] > threshold
        found += hit
        positives.append(best["similarity"] if best else 0.0)
    recall = found / max(1, len(positives))
    query_seconds = (time.monotonic() - clock) / max(1, len(positives))

    heldout = args.heldout or ["data/heldout2", "data/recorded"]
    negatives, by_folder = [], {}
    for folder in heldout:
        if not Path(folder).is_dir():
            print(f"{folder}: not here, skipped", file=sys.stderr)
            continue
        rows = [(Path(d), p, str(p)) for d, p, f in _dataset_rows([folder], split="validation")
                + _dataset_rows([folder], split="train")]
        if Path(folder).name == "recorded":  # only the packages held out of every training run
            rows = [r for r in rows if any(pkg in str(r[1]) for pkg in ("nexuiz", "singularity"))]
        scores = []
        for _, audio, rate, start in excerpts_of(rows, rng, args.negatives // len(heldout), 10.0):
            matches = index.match_audio(audio[int(start * rate): int((start + 10) * rate)], rate, top=1)
            scores.append(matches[0]["similarity"] if matches else 0.0)
        by_folder[folder] = {"excerpts": len(scores), "false_positives": int(sum(s > threshold for s in scores)),
                             "max_similarity": round(float(max(scores)), 4) if scores else None}
        negatives += scores
    fpr = float(np.mean([s > threshold for s in negatives])) if negatives else None

    # renders: new plans, and the exact plans of training songs (memorisation)
    options = RenderOptions(evaluate=False, vocals=False)
    new_rows, memo_rows, shares = [], [], []
    for k in range(args.renders):
        song = composer.plan(NEW_PROMPTS[k % len(NEW_PROMPTS)], seed=1000 + k, duration=args.render_seconds,
                             write_lyrics=False)
        result = composer.render(song, seed=k, options=options, progress=False)
        block = result.report["originality"]
        shares.append(result.report["timings"]["originality"] / sum(result.report["timings"].values()))
        new_rows.append({"prompt": song.tags, "verdict": block["verdict"], "largest": block["largest"]})
    plans = sorted(p for p in (Path(index.meta["datasets"][0]) / "plans").glob("*.json"))
    trained = {Path(f["file"]).stem for f in index.files}
    # the renderer refuses a plan that holds a training melody; to measure what the model
    # itself reproduces, these render through a model loaded without its index and are checked after
    from composer.originality import check_plan_melodies, check_render

    bare = composer.load_model()
    del bare.checkpoint_dir
    refused = 0
    for path in [p for p in plans if p.stem in trained][: args.renders]:
        song = SongPlan.from_json(path.read_text())
        song.sections = _first_seconds(song, args.render_seconds)
        try:
            check_plan_melodies(song, index)
        except Exception:  # noqa: BLE001 - the planner's guard would have refused it
            refused += 1
        result = composer.render(song, seed=0, model=bare, options=options, progress=False)
        block = check_render(result.audio, result.sample_rate, song, result.report["sections"], index)
        memo_rows.append({"plan": path.name, "verdict": block["verdict"], "largest": block["largest"],
                          "nearest": max((r.get("audio", {}) for r in block["sections"]),
                                         key=lambda a: a.get("similarity", 0))})
    bundled = sum(f.stat().st_size for d in ("codec", "diffusion")
                  for f in (bundled_model_path().parent / d).glob("model.safetensors"))
    index_bytes = (bundled_model_path() / "originality.safetensors").stat().st_size + \
        (bundled_model_path() / "originality.json").stat().st_size
    flagged_memo = [r for r in memo_rows if r.get("verdict") != "original"]
    write_result("originality", {
        "index": {"files": len(index.files), "windows": len(index.vectors), "hours": index.meta.get("hours"),
                  "thresholds": index.thresholds, "data_identity": index.meta.get("data_identity")},
        "recall": {"excerpts": len(positives), "found": found, "recall": round(recall, 4),
                   "min_similarity": round(float(min(positives)), 4), "seconds_per_query": round(query_seconds, 3),
                   "goal": ">= 0.95"},
        "false_positives": {"excerpts": len(negatives), "rate": fpr, "by_folder": by_folder, "goal": "<= 0.01"},
        "new_plans": {"renders": new_rows, "flagged": sum(r["verdict"] != "original" for r in new_rows),
                      "goal": "none flagged"},
        "memorisation": {"renders": memo_rows, "refused_by_melody_guard": refused, "flagged_share": round(len(flagged_memo) / max(1, len(memo_rows)), 3),
                         "closest_audio": max((r["largest"]["audio"] for r in memo_rows if "largest" in r), default=None)},
        "cost": {"render_time_share": round(float(np.mean(shares)), 4) if shares else None,
                 "index_bytes": index_bytes, "bundled_weights_bytes": bundled,
                 "size_share": round(index_bytes / bundled, 4), "goal": "<= 0.05 of render time, <= 0.10 of size"},
    }, args.out)


def _first_seconds(song, seconds: float):
    """The plan's sections up to about `seconds` (whole sections; at least one)."""
    kept, total = [], 0.0
    names = set()
    for section in song.sections:
        length = section.bars * song.beats_per_bar * 60.0 / song.tempo_bpm
        if kept and total + length > seconds:
            break
        if section.repeat_of and section.repeat_of not in names:
            continue
        kept.append(section)
        names.add(section.name)
        total += length
    return kept


if __name__ == "__main__":
    main()
