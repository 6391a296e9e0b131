"""Do compound meters come through? Songs asked in 6/8 and 12/8, their FluidSynth guides and their
renders with the bundled models, beside the same prompts in the quarter-note meter a plan used to
give them (6/4 and 12/4 at the same tempo: how 6/8 was planned before compound meters).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/compound_meter.py --out-dir out/compound

The lilt is measured on the plan's own beat grid (the render keeps the plan's timing): the
onset strength (librosa, 5.8-ms hops) at each beat's thirds against its half,
`triple = (e(1/3) + e(2/3)) / (e(1/3) + e(2/3) + 2 e(1/2))`, averaged over the beats: 0.5 when
neither division is heard, toward 1 for three eighths a beat, toward 0 for two. Beside it, what
`composer evaluate` measures (tempo within 4 % of the dotted-quarter beat, and at x2, x3, x1/2,
x1/3; key; chords).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

PROMPTS = [
    ("genre=folk mood=wistful", "6/8"), ("genre=ballad mood=sad", "12/8"), ("genre=pop mood=happy", "6/8"),
    ("genre=country mood=hopeful", "12/8"), ("genre=rock mood=energetic", "6/8"), ("genre=waltz mood=romantic", "9/8"),
    ("genre=jazz mood=calm", "12/8"), ("genre=blues mood=nostalgic", "12/8"),
]


def triple_score(audio, rate: int, beat_times, beat_seconds: float) -> float | None:
    """The onset strength on a beat's thirds against its half (see the module docstring)."""
    import librosa
    import numpy as np

    mono = np.asarray(audio, dtype=np.float32).reshape(-1, np.asarray(audio).shape[-1]).mean(axis=0)
    mono = librosa.resample(mono, orig_sr=rate, target_sr=22050)
    hop = 128
    envelope = librosa.onset.onset_strength(y=mono, sr=22050, hop_length=hop)
    frames_per_second = 22050 / hop
    reach = max(1, int(0.015 * frames_per_second))

    def at(t: float) -> float:
        centre = int(round(t * frames_per_second))
        window = envelope[max(0, centre - reach): centre + reach + 1]
        return float(window.max()) if len(window) else 0.0

    scores = []
    for start in beat_times:
        if start + beat_seconds > len(mono) / 22050:
            break
        third, two_thirds, half = (at(start + beat_seconds * f) for f in (1 / 3, 2 / 3, 1 / 2))
        total = third + two_thirds + 2 * half
        if total > 0:
            scores.append((third + two_thirds) / total)
    return float(np.mean(scores)) if scores else None


def main() -> None:
    import numpy as np
    import soundfile as sf
    import torch
    from common import default_steps, render_settings, write_result

    from composer import plan
    from composer.data.audio import audio_write, write_text_atomic
    from composer.evaluate.folders import evaluate_dir
    from composer.models import load_models
    from composer.rendering import RenderOptions, render
    from structure.arrangement import arrange
    from structure.synth import render_midi

    parser = argparse.ArgumentParser()
    parser.add_argument("--out-dir", default="out/compound")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--count", type=int, default=len(PROMPTS))
    parser.add_argument("--steps", type=int, default=default_steps())
    parser.add_argument("--seed-offset", type=int, default=0)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    codec, model = load_models(None, None)
    options = RenderOptions(steps=args.steps)
    root = Path(args.out_dir)
    rows = []
    for index, (prompt, meter) in enumerate(PROMPTS[: args.count]):
        seed = 20_000 + args.seed_offset + index
        compound = plan(f"{prompt} meter={meter}", duration=args.duration, seed=seed, write_lyrics=False)
        numerator = int(meter.split("/")[0])
        before = plan(f"{prompt} meter={numerator}/4 tempo={compound.tempo_bpm:g}", duration=args.duration,
                      seed=seed, write_lyrics=False)  # how a plan read 6/8 before: 6 quarter notes a bar
        row = {"prompt": prompt, "meter": meter, "tempo_bpm": compound.tempo_bpm}
        for name, song in (("compound", compound), ("before", before)):
            guide, rate = render_midi(arrange(song), sample_rate=codec.sample_rate, duration=song.duration)
            result = render(song, seed=args.seed_offset + index, codec=codec, model=model, options=options,
                            progress=False)
            folder = root / f"{name}_{index:02d}"
            result.save(folder)
            guide_dir = root / f"{name}_guide_{index:02d}"
            guide_dir.mkdir(parents=True, exist_ok=True)
            audio_write(guide_dir / "song.wav", guide, rate)
            write_text_atomic(guide_dir / "plan.json", song.to_json())
            write_text_atomic(guide_dir / "report.json", json.dumps({"seams": result.report["seams"]}))
            beats = np.arange(song.total_beats) * song.seconds_per_beat
            rendered, _ = sf.read(folder / "song.wav", always_2d=True)
            for kind, audio, metrics in (("guide", guide, evaluate_dir(guide_dir)),
                                         ("render", rendered.T, evaluate_dir(folder))):
                row[f"{name}_{kind}"] = {
                    "meter": song.meter,
                    "triple": triple_score(audio, rate, beats, song.seconds_per_beat),
                    "tempo_acc1": metrics["tempo"]["acc1"], "tempo_acc2": metrics["tempo"]["acc2"],
                    "estimated_bpm": metrics["tempo"]["estimated_bpm"],
                    "key": metrics["key"]["score"], "chords": metrics["chords"]["accuracy"],
                }
        rows.append(row)
        print(f"{prompt} {meter}: compound guide/render triple {row['compound_guide']['triple']:.3f} / "
              f"{row['compound_render']['triple']:.3f}; before {row['before_guide']['triple']:.3f} / "
              f"{row['before_render']['triple']:.3f}", file=sys.stderr)

    def mean(column: str, key: str):
        values = [float(r[column][key]) for r in rows if r[column][key] is not None]
        return float(np.mean(values)) if values else None

    columns = ("compound_guide", "compound_render", "before_guide", "before_render")
    table = {key: {column: mean(column, key) for column in columns}
             for key in ("triple", "tempo_acc1", "tempo_acc2", "key", "chords")}
    write_result("compound_meter", {"plans": len(rows), "duration": args.duration, "steps": args.steps,
                                    "seed_offset": args.seed_offset, **render_settings(options),
                                    "codec": codec.identity(), "model": model.identity(),
                                    "table": table, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
