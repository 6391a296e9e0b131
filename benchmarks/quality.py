"""Quality of renders with the bundled models against their plans, beside the guide
renders of the same plans (the ceiling) and the guide after the codec's round trip
(the ceiling the codec allows): `composer evaluate` metrics on 10 plans that are not
training songs (their seeds are outside the corpus's).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/quality.py --out-dir out/quality

`--from-guide S` renders from the guide noised to S (default: the renderer's); `--seed-offset N`
measures other plans of the same prompts (plan seeds 10000 + N + i).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

PROMPTS = [
    "genre=pop mood=happy", "genre=rock mood=energetic", "genre=folk mood=wistful", "genre=ballad mood=sad",
    "genre=electronic mood=dreamy", "genre=hip-hop mood=dark", "genre=jazz mood=calm", "genre=country mood=hopeful",
    "genre=waltz mood=romantic", "genre=blues mood=nostalgic",
]
SCALARS = [("tempo", "acc1"), ("tempo", "acc2"), ("tempo", "stability_bpm"), ("key", "score"),
           ("key", "section_score_mean"), ("chords", "accuracy"), ("boundaries", "f_3s"), ("boundaries", "f_0_5s"),
           ("repetition", "contrast"), ("repetition", "most_similar_pair_shares_label"),
           ("seams", "section_flux_max"), ("seams", "section_flux_mean"), ("seams", "window_flux_max"),
           ("seams", "window_flux_mean"), ("seams", "section_rank_mean"), ("seams", "section_above_p95"),
           ("seams", "window_rank_mean"), ("seams", "window_above_p95"), ("seams", "section_jump_mean"), ("seams", "window_jump_mean"),
           ("loudness", "lufs"), ("loudness", "clipping_ratio"), ("loudness", "silence_ratio")]


def pick(metrics: dict, group: str, name: str):
    value = metrics.get(group, {}).get(name)
    return float(value) if isinstance(value, (int, float, bool)) else None


def main() -> None:
    import numpy as np
    import torch
    from common import default_steps, render_settings, write_result

    from composer import (
        plan,  # the planner with the model's melody check, as `composer render` plans
    )
    from composer.data.audio import audio_write, write_text_atomic
    from composer.evaluate.folders import evaluate_dir
    from composer.models import load_models
    from composer.rendering import RenderOptions, render
    from structure.arrangement import arrange
    from structure.synth import render_midi

    parser = argparse.ArgumentParser()
    parser.add_argument("--out-dir", default="out/quality")
    parser.add_argument("--duration", type=float, default=75.0)
    parser.add_argument("--steps", type=int, default=default_steps())
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--codec", help="Codec checkpoint (default: bundled).")
    parser.add_argument("--model", help="Diffusion checkpoint (default: bundled).")
    parser.add_argument("--sampler", default="multistep")
    parser.add_argument("--seed-offset", type=int, default=0,
                        help="Other plans of the same prompts: plan seeds 10000 + N + i, render seeds N + i.")
    parser.add_argument("--from-guide", type=float, help="Start from the guide noised to this strength "
                        "(default: the renderer's)")
    parser.add_argument("--guidance-interval", help="LO,HI: guide only at LO < t <= HI (default: the renderer's)")
    parser.add_argument("--guidance", help='Classifier-free guidance: "3" or "melody=4,tags=2" (default: the renderer\'s)')
    parser.add_argument("--tag", action="append", default=[],
                        help="NAME=VALUE added to every plan's tags (e.g. source=synthesised); repeatable")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    extra_tags = dict(tag.split("=", 1) for tag in args.tag)
    codec, model = load_models(args.codec, args.model)
    options = RenderOptions(steps=args.steps, sampler=args.sampler)
    if args.from_guide is not None:
        options.from_guide = args.from_guide
    if args.guidance_interval:
        options.guidance_interval = tuple(float(v) for v in args.guidance_interval.split(","))
    if args.guidance is not None:
        from composer.rendering.options import parse_guidance

        options.guidance = parse_guidance(args.guidance)
    root = Path(args.out_dir)
    rows = []
    for index, prompt in enumerate(PROMPTS[: args.count]):
        song = plan(prompt, model=args.model, duration=args.duration, seed=10_000 + args.seed_offset + index, write_lyrics=False)
        if extra_tags:
            song.tags.update(extra_tags)
        result = render(song, seed=args.seed_offset + index, codec=codec, model=model,
                        options=options, progress=False)
        result.save(root / f"render_{index:02d}")
        guide_dir = root / f"guide_{index:02d}"
        guide_dir.mkdir(parents=True, exist_ok=True)
        audio, rate = render_midi(arrange(song), sample_rate=codec.sample_rate, duration=song.duration)
        audio_write(guide_dir / "song.wav", audio, rate)
        write_text_atomic(guide_dir / "plan.json", song.to_json())
        write_text_atomic(guide_dir / "report.json", json.dumps({"seams": result.report["seams"]}))
        round_dir = root / f"codec_{index:02d}"
        round_dir.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            trip = codec.decode_long(codec.encode_long(torch.from_numpy(audio)[None]))[0].numpy()
        audio_write(round_dir / "song.wav", trip[:, : audio.shape[-1]], rate)
        write_text_atomic(round_dir / "plan.json", song.to_json())
        write_text_atomic(round_dir / "report.json", json.dumps({"seams": result.report["seams"]}))
        rendered = evaluate_dir(root / f"render_{index:02d}")
        ceiling = evaluate_dir(guide_dir)
        through_codec = evaluate_dir(round_dir)
        rows.append({"prompt": prompt, "render": {f"{g}.{n}": pick(rendered, g, n) for g, n in SCALARS},
                     "guide": {f"{g}.{n}": pick(ceiling, g, n) for g, n in SCALARS},
                     "guide_through_codec": {f"{g}.{n}": pick(through_codec, g, n) for g, n in SCALARS},
                     "render_seconds": sum(result.report["timings"].values())})
        print(f"{prompt}: done", file=sys.stderr)

    def mean(kind: str, key: str):
        values = [r[kind][key] for r in rows if r[kind][key] is not None]
        return float(np.mean(values)) if values else None

    keys = [f"{g}.{n}" for g, n in SCALARS]
    table = {key: {"render": mean("render", key), "guide_through_codec": mean("guide_through_codec", key),
                   "guide": mean("guide", key)} for key in keys}
    write_result("quality", {"plans": len(rows), "seed_offset": args.seed_offset, "duration": args.duration, "steps": args.steps,
                             "sampler": args.sampler, "guidance_interval": options.guidance_interval, **render_settings(options, extra_tags), "codec": codec.identity(), "model": model.identity(), "model_path": args.model, "tags": extra_tags,
                             "table": table, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
