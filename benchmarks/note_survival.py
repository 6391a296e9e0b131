"""Do the notes survive? An automatic transcriber against each song's own MIDI, on held-out
plans: the guide render (the ceiling), the guide after the codec's round trip, and renders.

The transcriber is Spotify's Basic Pitch (Apache-2.0; its ONNX model ships inside the
`basic-pitch` wheel and runs with onnxruntime, installed by `make bench-deps`;
it is used here only, never at run time). Reference notes: the pitched parts of the plan's
arrangement (melody, bass, chords; not the drums). A note is found when the transcriber
has a note of the same pitch (within 50 cents) whose onset is within 70 ms
(`mir_eval.transcription`, offsets ignored). Reported: precision, recall and F1 per row,
and each row's F1 as a share of the guide's (the issue's goals: the round trip at least
0.85 of the guide's, renders at least 0.7).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/note_survival.py [--model DIR] [--codec DIR]

`--refine N` adds the decoder's reach: the guide's latents optimised for N Adam steps through
the frozen decoder (the codec's own training loss: waveform, multi-resolution STFT, mel, pitch
x2, onsets x0.5), so the row shows what a perfect encoder could give this decoder.
`--from-guide S` renders from the guide noised to S (`composer render --from-guide`; default:
the renderer's), `--seed-offset N` measures other plans of the same prompts (plan seeds
10000 + N + i).
`--vocoder` adds the guide's own STFT magnitudes through the spectral decoder's phase-locked
vocoder (no network: what the decoder's synthesis alone keeps). `--no-render` leaves the renders
out (the codec rows alone).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import default_steps, render_settings, write_result  # noqa: E402

PROMPTS = ["genre=pop mood=happy", "genre=rock mood=energetic", "genre=folk mood=wistful", "genre=ballad mood=sad",
           "genre=electronic mood=dreamy", "genre=hip-hop mood=dark", "genre=jazz mood=calm",
           "genre=country mood=hopeful", "genre=waltz mood=romantic", "genre=blues mood=nostalgic"]
ONSET_TOLERANCE = 0.07
PITCH_TOLERANCE_CENTS = 50.0


def transcriber():
    """Basic Pitch's ONNX model (from its wheel)."""
    import logging

    logging.getLogger().setLevel(logging.ERROR)  # it warns about every backend it does not find
    try:
        from basic_pitch import ICASSP_2022_MODEL_PATH
        from basic_pitch.inference import Model
    except ImportError:
        raise SystemExit("the transcriber is missing: make bench-deps") from None
    path = Path(ICASSP_2022_MODEL_PATH)
    return Model(path if path.suffix == ".onnx" else path.with_suffix(".onnx"))


def transcribe(model, audio: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(onset/offset intervals [n, 2] in seconds, pitches in Hz) that Basic Pitch hears."""
    from basic_pitch.inference import predict

    from composer.data.audio import audio_write

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.wav"
        audio_write(path, np.asarray(audio, dtype=np.float32), rate)
        _, _, events = predict(str(path), model)
    if not events:
        return np.zeros((0, 2)), np.zeros(0)
    intervals = np.array([[e[0], max(e[1], e[0] + 1e-3)] for e in events], dtype=np.float64)
    pitches = 440.0 * 2.0 ** ((np.array([e[2] for e in events], dtype=np.float64) - 69) / 12)
    return intervals, pitches


PARTS = ("melody", "bass", "chords")


def reference_notes(midi) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(intervals, pitches in Hz, part names) of the arrangement's pitched notes."""
    notes = [(inst.name, n) for inst in midi.instruments if not inst.is_drum for n in inst.notes]
    intervals = np.array([[n.start, max(n.end, n.start + 1e-3)] for _, n in notes], dtype=np.float64).reshape(-1, 2)
    pitches = 440.0 * 2.0 ** ((np.array([n.pitch for _, n in notes], dtype=np.float64) - 69) / 12)
    return intervals, pitches, np.array([name for name, _ in notes])


def note_scores(reference: tuple[np.ndarray, np.ndarray, np.ndarray], estimate: tuple[np.ndarray, np.ndarray]) -> dict:
    """Precision, recall and F1 of the transcription, and the recall of each part."""
    from mir_eval.transcription import match_notes

    intervals, pitches, parts = reference
    if len(estimate[1]) == 0 or len(pitches) == 0:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                **{f"recall_{p}": 0.0 if (parts == p).any() else None for p in PARTS}}
    matched = match_notes(intervals, pitches, estimate[0], estimate[1], onset_tolerance=ONSET_TOLERANCE,
                          pitch_tolerance=PITCH_TOLERANCE_CENTS, offset_ratio=None)
    found = np.zeros(len(pitches), dtype=bool)
    found[[r for r, _ in matched]] = True
    precision, recall = len(matched) / len(estimate[1]), len(matched) / len(pitches)
    f1 = 2 * precision * recall / (precision + recall) if matched else 0.0
    out = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}
    for part in PARTS:
        mine = parts == part
        out[f"recall_{part}"] = round(float(found[mine].mean()), 4) if mine.any() else None
    return out


def vocoded(codec, audio: np.ndarray) -> np.ndarray:
    """`audio`'s own STFT magnitudes (the decoder's frame) through the decoder's vocoder."""
    import torch

    from autoencoder.spectral import stft_same

    decoder = codec.spectral
    mono = codec._pad_to_hop(torch.from_numpy(audio)[None])[:, 0].mean(0, keepdim=True)
    with torch.no_grad():
        out = decoder.vocode(stft_same(mono, decoder.n_fft, decoder.hop_length, decoder.window).abs())
    return out.numpy()[:, : audio.shape[-1]]


def refined_round_trip(codec, audio: np.ndarray, steps: int, lr: float = 0.05) -> np.ndarray:
    """`audio` through the codec with its latents optimised for `steps` Adam steps through the
    frozen decoder (deterministic: no random draws)."""
    import torch

    from autoencoder.losses import ReconstructionLoss

    loss = ReconstructionLoss(codec.sample_rate, pitch=2.0, onset=0.5, stft_sizes=(512, 1024, 2048, 4096))
    target = codec._pad_to_hop(torch.from_numpy(audio)[None])
    with torch.no_grad():
        start = codec.encode_long(target)
    latents = start.clone().requires_grad_(True)
    frozen = [p for p in codec.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        optimiser = torch.optim.Adam([latents], lr=lr)
        for _ in range(steps):
            value = loss(codec.decode(latents), target)["loss"]
            optimiser.zero_grad()
            value.backward()
            optimiser.step()
    finally:
        for p in frozen:
            p.requires_grad_(True)
    with torch.no_grad():
        return codec.decode_long(latents.detach())[0].numpy()[:, : audio.shape[-1]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="Diffusion checkpoint (default: bundled).")
    parser.add_argument("--codec", help="Codec checkpoint (default: bundled).")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--steps", type=int, default=default_steps())
    parser.add_argument("--guidance", default=None, help='Classifier-free guidance: "3" or "melody=4,tags=2" '
                        "(default: the renderer's)")
    parser.add_argument("--refine", type=int, default=0, metavar="N",
                        help="Also the guide's latents optimised N steps through the frozen decoder.")
    parser.add_argument("--vocoder", action="store_true", help="Also the guide's true magnitudes through the vocoder.")
    parser.add_argument("--seed-offset", type=int, default=0,
                        help="Other plans of the same prompts: plan seeds 10000 + N + i, render seeds N + i.")
    parser.add_argument("--from-guide", type=float, help="Renders start from the guide noised to this strength "
                        "(default: the renderer's)")
    parser.add_argument("--no-render", action="store_true", help="Only the guide and codec rows.")
    parser.add_argument("--out")
    args = parser.parse_args()

    import torch

    from composer import plan
    from composer.models import load_models
    from composer.rendering import RenderOptions, render
    from structure.arrangement import arrange
    from structure.synth import render_midi

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    codec, model = load_models(args.codec, args.model)
    listener = transcriber()
    options = RenderOptions(steps=args.steps, vocals=False, evaluate=False, originality=False)
    if args.from_guide is not None:
        options.from_guide = args.from_guide
    if args.guidance is not None:
        from composer.rendering.options import parse_guidance

        options.guidance = parse_guidance(args.guidance)
    rows = []
    for index, prompt in enumerate(PROMPTS[: args.count]):
        song = plan(prompt, model=args.model, duration=args.duration, seed=10_000 + args.seed_offset + index, write_lyrics=False)
        midi = arrange(song)
        reference = reference_notes(midi)
        guide, rate = render_midi(midi, sample_rate=codec.sample_rate, duration=song.duration)
        with torch.no_grad():
            trip = codec.decode_long(codec.encode_long(torch.from_numpy(guide)[None]))[0].numpy()[:, : guide.shape[-1]]
        outputs = [("guide", guide), ("guide_through_codec", trip)]
        if args.vocoder and codec.spectral is not None:
            outputs.append(("guide_vocoder", vocoded(codec, guide)))
        if args.refine:
            outputs.append(("guide_refined_latents", refined_round_trip(codec, guide, args.refine)))
        if not args.no_render:
            rendered = render(song, seed=args.seed_offset + index, codec=codec, model=model, options=options, progress=False)
            outputs.append(("render", rendered.audio))
        row = {"prompt": prompt, "reference_notes": int(len(reference[1]))}
        for name, audio in outputs:
            row[name] = note_scores(reference, transcribe(listener, audio, rate))
        rows.append(row)
        print(f"{prompt}: " + ", ".join(f"{name} {row[name]['f1']:.2f}" for name, _ in outputs), file=sys.stderr)
    names = [name for name in ("guide", "guide_vocoder", "guide_through_codec", "guide_refined_latents", "render") if name in rows[0]]
    table = {}
    for name in names:
        table[name] = {k: round(float(np.mean([r[name][k] for r in rows if r[name][k] is not None])), 4)
                       for k in ("precision", "recall", "f1", *(f"recall_{p}" for p in PARTS))}
    guide_f1 = max(table["guide"]["f1"], 1e-9)
    shares = {name: round(table[name]["f1"] / guide_f1, 3) for name in names if name != "guide"}
    write_result("note_survival", {
        "transcriber": "basic-pitch 0.4.0 (ICASSP 2022 model, ONNX)", "onset_tolerance_s": ONSET_TOLERANCE,
        "pitch_tolerance_cents": PITCH_TOLERANCE_CENTS, "plans": len(rows), "seed_offset": args.seed_offset, "duration": args.duration,
        "steps": args.steps, **render_settings(options), "refine_steps": args.refine or None, "codec": codec.identity(), "model": model.identity(), "model_path": args.model,
        "table": table, "f1_share_of_guide": shares,
        "goals": {"guide_through_codec": ">= 0.85 of the guide's F1", "render": ">= 0.7 of the guide's F1 (aim 0.8)"},
        "rows": rows}, args.out)


if __name__ == "__main__":
    main()
