"""The archive persona on the demo archive, part of it held out (its validation split).

    composer persona demo -o data/demo_archive                     # from the recorded corpus
    composer persona build data/demo_archive -o runs/demo_persona --threads 2
    OMP_WAIT_POLICY=PASSIVE python benchmarks/persona.py           # writes benchmarks/results/persona.json

- priors: over 200 drawn days, each field's total-variation distance to the archive's
  distribution (mood, location, beard, genre, key, meter; tempo in 10-BPM bins);
- lyrics: over 50 days' lyrics, lines copied from the archive, the share of 4-grams found
  in the archive, syllables per line and rhyme-scheme agreement against the archive's, and
  the perplexity of the persona's lyric model on the held-out songs' lyrics against the same
  model fitted to the base writer's lines; and how the daily lines read (fluency: their
  perplexity under a model of the held-out songs' lyrics, beside the archive's own lines);
- audio: the same drawn plans rendered by the persona's model (at its strength and at 1, the
  fine-tune alone, or at `--strengths`) and by the base model, and
  their FluidSynth guides: the distance of `benchmarks/distance.py` (the one the recorded-corpus
  benchmark uses: 1-s windows of log-mel statistics and sorted chroma, standardised, Frechet) to
  the held-out archive songs, every row on the same number of windows, and how well each
  follows its plan (tempo within 4 %, key with its standard error, form: section boundaries
  found within 3 s), measured by the built-in evaluation;
- throughput: analysis seconds per song and fine-tune latent-seconds per second on this
  machine, and what 5,000 songs (about 250 hours) would take.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import lyric_judge, sung_lines, write_result  # noqa: E402
from distance import Distance, window_features  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", default="data/demo_archive")
    parser.add_argument("--persona", default="runs/demo_persona")
    parser.add_argument("--days", type=int, default=200)
    parser.add_argument("--lyric-days", type=int, default=50)
    parser.add_argument("--renders", type=int, default=6)
    parser.add_argument("--strengths", default=None,
                        help="comma-separated strengths to render the persona at (default: its own and 1)")
    parser.add_argument("--no-audio", action="store_true",
                        help="Priors and lyrics only (no renders, no throughput): writes persona_priors.json; "
                             "the persona's fine-tune is not used, so a build with --steps 1 will do")
    parser.add_argument("--from-guide", type=float, default=None,
                        help="render every row from its guide noised to this strength (1: from noise; default: "
                             "the renderer's)")
    parser.add_argument("--skip-base", action="store_true",
                        help="render the persona's rows only (the base model's row takes as long as each of them, "
                             "and is the same for every persona built on the same archive with the same priors)")
    parser.add_argument("--out")
    args = parser.parse_args()

    import composer
    from composer.data.audio import audio_read
    from composer.data.metadata import read_metadata
    from composer.persona.daily import draw_song, load_persona, persona_model, persona_strength
    from composer.persona.lyric_model import scheme_of, syllables, words
    from composer.persona.priors import song_key, song_tempo, total_variation
    from composer.rendering.options import RenderOptions
    from lyrics import parse

    persona = load_persona(args.persona)
    archive = Path(args.archive)
    rows = [r for r in read_metadata(archive) if r.problem is None and not r.fields.get("cut_into")]
    from composer.data.labelling import read_labels, with_labels
    from composer.persona.build import analysis_folder

    analysed = read_labels(analysis_folder(args.persona))  # the persona's analysis of songs the archive gives no labels
    for row in rows:
        row.fields = with_labels(row.fields, analysed.get(row.file_name))
    start = dt.date(2027, 1, 1)
    days = [draw_song(persona, start + dt.timedelta(days=k)) for k in range(args.days)]

    # priors ------------------------------------------------------------------------------
    def counts(values):
        return dict(Counter(str(v) for v in values))

    tv = {}
    for field in sorted(persona.priors.fields):
        tv[field] = total_variation(counts(d["metadata"].get(field) for d in days),  # absent: "None", both sides
                                    counts(r.fields.get(field) if r.fields.get(field) not in ("", [], None) else None
                                           for r in rows))
    tv["tempo (10 BPM bins)"] = total_variation(
        counts(int(d["metadata"]["tempo"] // 10) for d in days if "tempo" in d["metadata"]),
        counts(int(t // 10) for r in rows if (t := song_tempo(r.fields)) is not None))
    tv["key"] = total_variation(counts(d["metadata"].get("key") for d in days if "key" in d["metadata"]),
                                counts(k for r in rows if (k := song_key(r.fields))))

    # lyrics ------------------------------------------------------------------------------
    archive_lines, archive_grams, archive_syllables, archive_schemes = set(), set(), [], Counter()
    for row in rows:
        for section in parse(row.fields.get("lyrics", "")):
            if section.repeat_of or not section.lines:
                continue
            archive_schemes[(section.kind, scheme_of(section.lines))] += 1
            for line in section.lines:
                tokens = words(line)
                archive_lines.add(" ".join(tokens))
                archive_syllables.append(syllables(line))
                archive_grams.update(" ".join(tokens[i: i + 4]) for i in range(len(tokens) - 3))
    copied, grams, in_archive, new_syllables, new_schemes = 0, 0, 0, [], Counter()
    for day in days[: args.lyric_days]:
        for section in parse(day["lyrics"]):
            if section.repeat_of or not section.lines:
                continue
            new_schemes[(section.kind, scheme_of(section.lines))] += 1
            for line in section.lines:
                tokens = words(line)
                copied += " ".join(tokens) in archive_lines
                new_syllables.append(syllables(line))
                for i in range(len(tokens) - 3):
                    grams += 1
                    in_archive += " ".join(tokens[i: i + 4]) in archive_grams
    # fluency: how the daily lines read, by a word-trigram model of the held-out songs' lyrics,
    # written by a lyric model of the other songs, beside the archive's other songs' lines (what
    # the artist writes: the floor) and the base writer's (`common.lyric_judge`)
    from composer.persona.lyric_model import LyricModel, base_writer_lines

    held_rows, judge, others = lyric_judge(rows)
    fluency = None
    if held_rows and len(held_rows) < len(rows):
        import copy

        blind = copy.copy(persona)
        blind.lyrics = LyricModel.train(others)
        daily_lines = sung_lines(draw_song(blind, start + dt.timedelta(days=k))["lyrics"] for k in range(args.lyric_days))
        fluency = {"persona_daily": round(judge.perplexity(daily_lines), 2),
                   "archive_other_songs": round(judge.perplexity(sung_lines(r.fields.get("lyrics") for r in rows
                                                                            if r not in held_rows)), 2),
                   "base_writer": round(judge.perplexity(list(base_writer_lines(400))), 2),
                   "daily_distinct_line_share": round(len(set(daily_lines)) / max(1, len(daily_lines)), 3),
                   "what": "perplexity under a word-trigram model of the held-out songs' lyrics; lower reads "
                           "more like the archive (word salad reads high)"}
    scheme_tv = total_variation({str(k): v for k, v in new_schemes.items()},
                                {str(k): v for k, v in archive_schemes.items()})
    lyric_info = persona.info["lyrics"]
    priors_summary = {"days": len(days), "total_variation": {k: round(v, 4) for k, v in tv.items()},
                      "max": round(max(tv.values()), 4), "goal": "each <= 0.1"}
    lyrics_summary = {
        "days": args.lyric_days, "lines_copied": copied, "archive_4gram_share": round(in_archive / max(1, grams), 4),
        "syllables_per_line": {"persona": round(float(np.mean(new_syllables)), 2),
                               "archive": round(float(np.mean(archive_syllables)), 2)},
        "rhyme_scheme_tv": round(scheme_tv, 4),
        "perplexity": {"persona": lyric_info["perplexity"], "base_writer": lyric_info["base_writer_perplexity"]},
        "fluency": fluency,
        "goal": "no copied line, 4-gram share < 0.05, line length and schemes within 10 %, "
                "perplexity below the base writer's"}
    if args.no_audio:
        write_result("persona_priors", {"archive": {"songs": persona.info["songs"], "demo": persona.info.get("demo")},
                                        "priors": priors_summary, "lyrics": lyrics_summary}, args.out)
        return

    # audio ---------------------------------------------------------------------------------
    held = [r for r in rows if r.fields.get("split") == "validation"]
    reference = np.concatenate([window_features(*audio_read(archive / r.file_name, channels=1)) for r in held])
    options = RenderOptions(vocals=False, evaluate=True)
    if args.from_guide is not None:
        from dataclasses import replace

        options = replace(options, from_guide=args.from_guide)
    own = persona_strength(persona)
    strengths = sorted({float(x) for x in args.strengths.split(",")} if args.strengths else {own, 1.0})
    models = {f"persona@{s:g}": persona_model(persona, s) for s in strengths}
    if not args.skip_base:
        models["base"] = composer.load_model()
    plan_model = composer.load_model(persona.model_dir)  # the plan is the same at every strength
    feats: dict[str, list] = {name: [] for name in [*models, "guide"]}
    follow: dict[str, list] = {name: [] for name in models}
    import structure
    from structure.synth import render_midi

    for day in days[: args.renders]:
        plan = composer.plan(day["prompt"], lyrics=day["lyrics"], seed=day["seed"], model=plan_model)
        for name, model in models.items():
            result = composer.render(plan, seed=day["seed"], model=model, options=options, progress=False)
            feats[name].append(window_features(result.audio, result.sample_rate))
            metrics = result.report["metrics"]
            follow[name].append((bool((metrics.get("tempo") or {}).get("acc1")),
                                 float((metrics.get("key") or {}).get("score") or 0.0),
                                 (metrics.get("boundaries") or {}).get("f_3s")))
        guide, rate = render_midi(structure.arrange(plan), duration=plan.duration)
        feats["guide"].append(window_features(guide, rate))
    distance = Distance(reference)
    size = min(sum(len(part) for part in f) for f in feats.values())
    distances = {name: distance(np.concatenate(f)[:size]) for name, f in feats.items()}
    following = {name: {"tempo_within_4pct": float(np.mean([t for t, _, _ in v])),
                        "key_score": float(np.mean([k for _, k, _ in v])),
                        "key_score_sem": float(np.std([k for _, k, _ in v], ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None,
                        "form_boundaries_f_3s": float(np.mean([b for _, _, b in v if b is not None]))
                        if any(b is not None for _, _, b in v) else None}
                 for name, v in follow.items()}

    import time

    from structure.analysis import analyze

    clock, audio_seconds = time.monotonic(), 0.0
    for row in rows[:5]:  # analysis throughput on this machine, one core
        audio, rate = audio_read(archive / row.file_name, channels=1)
        analyze(audio, rate)
        audio_seconds += audio.shape[-1] / rate
    analysis_seconds = time.monotonic() - clock
    seconds_per_song = analysis_seconds / 5
    seconds_per_audio_minute = analysis_seconds / (audio_seconds / 60)
    model_info = persona.info["model"]
    hours = persona.info["hours"]
    train_audio_seconds_per_second = (model_info["steps"] * model_info.get("batch_size", 16) * 1.5
                                      / max(1e-9, model_info["minutes"] * 60))
    write_result("persona", {
        "archive": {"songs": persona.info["songs"], "hours": hours, "held_out": len(held),
                    "demo": persona.info.get("demo")},
        "priors": priors_summary,
        "lyrics": lyrics_summary,
        "audio": {"renders": args.renders, "strength": own, "frechet_to_held_out": distances,
                  "windows_per_row": int(size), "distance": "benchmarks/distance.py", "follows_plan": following,
                  "goal": "persona closer than base; persona follows the plan as well as base",
                  "strengths": "persona@S: the persona's model at strength S (composer.persona.daily.persona_model; "
                               "1 is its fine-tune alone)"},
        "throughput": {"analysis_seconds_per_song": round(seconds_per_song, 2),
                       "analysis_seconds_per_audio_minute_per_core": round(seconds_per_audio_minute, 3),
                       "fine_tune_minutes": model_info.get("minutes"), "fine_tune_steps": model_info.get("steps"),
                       "fine_tune_window_seconds_per_second": round(train_audio_seconds_per_second, 1),
                       "estimate_250_hours_analysis_hours_2_cores": round(250 * 60 * seconds_per_audio_minute
                                                                          / 3600 / 2, 1),
                       "estimate_250_hours_one_epoch_fine_tune_hours": round(250 * 3600
                                                                             / train_audio_seconds_per_second
                                                                             / 3600, 1)},
    }, args.out)


if __name__ == "__main__":
    main()
