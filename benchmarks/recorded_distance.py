"""How close renders sound to recordings the models never heard: a Fréchet distance from
the held-out recorded packages (nexuiz-music, singularity-music) to each row's audio.

Rows (the same plans for every rendered row; the plans' seeds are outside the corpus's):
- `guide`: the plans' General MIDI guide renders (what the diffusion model first learnt);
- `bundled`: renders by the bundled model;
- `model`: renders by `--model` (for example one that has heard recordings), untagged;
- `model, source=recorded` and `model, source=synthesised`: the same model and plans, the
  plans tagged with the source;
- `bundled, guidance G`: the bundled model at another guidance weight (`--guidance G ...`);
- `bundled, from guide S`: the bundled model from the guide at another strength (`--from-guide S ...`;
  1 starts from noise); with `--model`, also `model, source=recorded, from guide S` (a prompt
  tagged `source=recorded` starts from noise unless told otherwise);
- `held-out recordings (floor)`: windows of the other half of the held-out files, as many as a
  rendered row has: what a row that sounds like those recordings scores at this sample size;
- `held-out recordings through the codec`: the same files after the codec's round trip (the
  same windows): the closest any model that decodes through this codec can come.

The distance is `benchmarks/distance.py`'s (the persona benchmark uses it too): per
one-second window, log-mel mean and spread and sorted chroma, standardised by the reference,
then a Fréchet distance. Lower is closer. Every row is computed the same way, on the same
number of windows.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/recorded_distance.py --model runs/diffusion_rec
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import default_steps, render_settings, write_result  # noqa: E402
from distance import RATE, Distance, window_features  # noqa: E402

HELD_OUT = ("nexuiz-music", "singularity-music")
PROMPTS = ["genre=pop mood=happy", "genre=rock mood=energetic", "genre=folk mood=wistful", "genre=ballad mood=sad",
           "genre=electronic mood=dreamy", "genre=hip-hop mood=dark", "genre=jazz mood=calm",
           "genre=country mood=hopeful"]
def held_out_windows(root: Path, seconds: float, codec) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """(reference windows, floor windows, files, the floor's windows through `codec`): the
    held-out packages' files (every one of them is in the validation split), whole recordings
    alternately assigned to the two halves (the cut parts of one recording stay together); up to
    `seconds` from each file's middle."""
    from composer.data.audio import audio_read

    rows = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines() if line.strip()]
    held = [r for r in rows if r.get("source_package") in HELD_OUT and not r.get("cut_into")]
    chosen = sorted(r["file_name"] for r in held)
    recordings = sorted({r.get("parent") or r["file_name"] for r in held})
    half_of = {r["file_name"]: recordings.index(r.get("parent") or r["file_name"]) % 2 for r in held}
    if len(chosen) < 4:
        raise SystemExit(f"{root}: fewer than 4 files of the held-out packages ({', '.join(HELD_OUT)}); "
                         "run `composer corpus import` first")
    halves: list[list[np.ndarray]] = [[], []]
    coded: list[np.ndarray] = []
    for name in chosen:
        audio, rate = audio_read(root / name, sample_rate=RATE, channels=1)
        middle, span = audio.shape[-1] // 2, int(seconds * RATE)
        clip = audio[0, max(0, middle - span // 2): middle + span // 2]
        features = window_features(clip, RATE)
        if half_of[name] == 1:  # as many windows both ways (silent ones are skipped)
            through = window_features(_round_trip(codec, clip), RATE)
            features = features[: len(through)]
            coded.append(through[: len(features)])
        if len(features):
            halves[half_of[name]].append(features)
    return np.concatenate(halves[0]), np.concatenate(halves[1]), chosen, np.concatenate(coded)


def _round_trip(codec, clip: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        audio = torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32))[None, None]
        return codec.decode_long(codec.encode_long(audio))[0, 0, : clip.shape[-1]].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/recorded")
    parser.add_argument("--model", help="The model to compare with the bundled one (default: only the bundled).")
    parser.add_argument("--codec", help="Codec checkpoint (default: bundled).")
    parser.add_argument("--count", type=int, default=8, help="Plans (at most 8).")
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--steps", type=int, default=default_steps())
    parser.add_argument("--seconds-per-file", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0, help="Subsampling seed of the floor row.")
    parser.add_argument("--guidance", type=float, nargs="*", default=[],
                        help="Also render the bundled model at these guidance weights (a row each).")
    parser.add_argument("--from-guide", type=float, nargs="*", default=[],
                        help="Also render the bundled model (and --model tagged source=recorded) from the guide at "
                             "these strengths (1: from noise; a row each).")
    parser.add_argument("--out")
    args = parser.parse_args()

    import torch

    from composer import plan
    from composer.models import load_codec, load_models
    from composer.rendering import RenderOptions, render
    from structure.arrangement import arrange
    from structure.synth import render_midi

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    reference, floor_pool, files, coded_pool = held_out_windows(Path(args.data), args.seconds_per_file,
                                                                load_codec(args.codec).eval())
    distance = Distance(reference)

    plans = [plan(prompt, model=args.model, duration=args.duration, seed=20_000 + k, write_lyrics=False)
             for k, prompt in enumerate(PROMPTS[: args.count])]
    options = RenderOptions(steps=args.steps, vocals=False, evaluate=False, originality=False)
    windows: dict[str, list[np.ndarray]] = {"guide": []}
    for song in plans:
        audio, rate = render_midi(arrange(song), sample_rate=RATE, duration=song.duration)
        windows["guide"].append(window_features(audio, rate))
    models = [("bundled", None, None, {})]
    models += [(f"bundled, guidance {g:g}", None, None, {"guidance": g}) for g in args.guidance]
    models += [(f"bundled, from guide {f:g}", None, None, {"from_guide": f}) for f in args.from_guide]
    if args.model:
        models += [("model", args.model, None, {}), ("model, source=recorded", args.model, "recorded", {}),
                   ("model, source=synthesised", args.model, "synthesised", {})]
        models += [(f"model, source=recorded, from guide {f:g}", args.model, "recorded", {"from_guide": f})
                   for f in args.from_guide]
    identities = {}
    for name, path, source, changes in models:
        codec, model = load_models(args.codec, path)
        identities[name] = model.identity()
        windows[name] = []
        for k, song in enumerate(plans):
            if source:
                song = _tagged(song, source)
            chosen = dataclasses.replace(options, **changes)
            result = render(song, seed=k, codec=codec, model=model, options=chosen, progress=False)
            windows[name].append(window_features(result.audio, result.sample_rate))
            print(f"{name}: plan {k} done", file=sys.stderr)
    table = {}
    sizes = {name: sum(len(w) for w in parts) for name, parts in windows.items()}
    size = min(min(sizes.values()), len(floor_pool))  # every row, the floor too, on as many windows
    for name, parts in windows.items():
        table[name] = distance(np.concatenate(parts)[:size])
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(floor_pool), size=size, replace=False)
    table["held-out recordings (floor)"] = distance(floor_pool[chosen])
    table["held-out recordings through the codec"] = distance(coded_pool[chosen])
    write_result("recorded_distance", {
        "reference": {"packages": list(HELD_OUT), "files": len(files), "windows": int(len(reference)),
                      "seconds_per_file": args.seconds_per_file},
        "plans": len(plans), "duration": args.duration, "steps": args.steps, "guidance": render_settings(options)["guidance"],
        "windows_per_row": int(size),
        "distance": "benchmarks/distance.py: per 1-s window, 40-band log-mel mean and std, chroma sorted "
                    "strongest first; standardised by the reference; Frechet distance",
        "models": identities, "model_path": args.model, "table": table}, args.out)


def _tagged(song, source: str):
    from structure.schema import SongPlan

    data = json.loads(song.to_json())
    data["tags"] = {**data.get("tags", {}), "source": source}
    return SongPlan.from_json(json.dumps(data))


if __name__ == "__main__":
    main()
