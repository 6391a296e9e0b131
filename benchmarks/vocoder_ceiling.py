"""Where a song's key and chords are lost on the way through the codec.

For the 10 quality plans (`benchmarks/quality.py`), the guide render is scored by
`composer evaluate` as it is, after the codec's round trip, and after the decoder's
phase-locked vocoder resynthesises the guide's own STFT magnitudes ("oracle"), at the
decoder frame sizes 1280 and 2560 points, with and without random error on those
magnitudes (log-normal, `--noise` nats). If the oracle keeps the key and the codec does
not, the codec's predicted magnitudes are the limit, not the vocoder; the noisy oracles
show how the frame size decides what imprecise magnitudes do to pitch.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/vocoder_ceiling.py
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))


def oracle(mono, n_fft: int, hop: int, noise: float, seed: int):
    """The guide's own `n_fft`-point magnitudes (times exp(noise * N(0, 1))) through the vocoder."""
    import torch

    from autoencoder.spectral import SpectralDecoder, stft_same

    vocoder = SpectralDecoder(1, hop, n_fft=n_fft, layers=1, dim=8, intermediate=8)
    frames = len(mono) // hop
    audio = torch.from_numpy(mono[: frames * hop]).float()[None]
    magnitude = stft_same(audio, n_fft, hop, vocoder.window).abs()
    if noise:
        magnitude = magnitude * torch.exp(noise * torch.randn(magnitude.shape,
                                                              generator=torch.Generator().manual_seed(seed)))
    return vocoder.vocode(magnitude)[0].numpy()


def main() -> None:
    import numpy as np
    import torch
    from common import write_result
    from quality import PROMPTS

    from autoencoder import load_codec
    from composer.evaluate.metrics import evaluate_audio
    from structure.arrangement import arrange
    from structure.planner import plan
    from structure.synth import render_midi

    parser = argparse.ArgumentParser()
    parser.add_argument("--codec", help="Codec checkpoint (default: bundled).")
    parser.add_argument("--duration", type=float, default=75.0)
    parser.add_argument("--noise", type=float, default=0.7, help="Log-magnitude error of the noisy oracles, nats.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1280, 2560])
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(2)
    codec = load_codec(args.codec)
    rate, hop = codec.sample_rate, codec.hop_length
    scores: dict[str, list[tuple[float, float]]] = {}
    rows = []
    for index, prompt in enumerate(PROMPTS):
        song = plan(prompt, duration=args.duration, seed=10_000 + index, write_lyrics=False)
        audio, _ = render_midi(arrange(song), sample_rate=rate, duration=song.duration)
        mono = audio.mean(axis=0)
        variants = {"guide": mono}
        for n_fft in args.sizes:
            variants[f"oracle_{n_fft}"] = oracle(mono, n_fft, hop, 0.0, index)
            variants[f"oracle_{n_fft}_noise"] = oracle(mono, n_fft, hop, args.noise, index)
        with torch.no_grad():
            variants["codec"] = codec.decode_long(codec.encode_long(torch.from_numpy(audio)[None]))[0].numpy().mean(0)
        row = {"prompt": prompt, "planned_key": str(song.key)}
        for name, signal in variants.items():
            metrics = evaluate_audio(signal, rate, song)
            scores.setdefault(name, []).append((metrics["key"]["score"], metrics["chords"]["accuracy"]))
            row[name] = {"key": metrics["key"]["estimated"], "key_score": metrics["key"]["score"],
                         "chord_accuracy": metrics["chords"]["accuracy"]}
        rows.append(row)
        print(f"{prompt}: done", file=sys.stderr)
    table = {name: {"key_score": float(np.mean([s[0] for s in v])), "chord_accuracy": float(np.mean([s[1] for s in v]))}
             for name, v in scores.items()}
    write_result("vocoder_ceiling", {"codec": codec.identity(), "noise_nats": args.noise, "duration": args.duration,
                                     "table": table, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
