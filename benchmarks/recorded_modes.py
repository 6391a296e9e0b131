"""Restyle and interpolate on recordings the models never heard (the held-out packages).

30-second excerpts of the held-out recorded packages (nexuiz-music, singularity-music), taken
from files whose analysis is confident (`composer data analyze`: a clear pulse, one key), are
restyled at strengths 0.3 and 0.6, and at 0 (the codec's round trip alone, which shows what the
codec itself keeps); the output is analysed independently and compared with the input's
analysis (tempo within 4 %, the same key, and mir_eval's weighted key score: 1 the same key, 0.5
a fifth away, 0.3 relative, 0.2 parallel). The reference row `opus12` is each excerpt through
Opus at 12 kbps, analysed the same way: what the analyser keeps through a codec that carries
recordings (the codec goal of the recorded-music work), so the restyle rows are read against it.
`codec_colour` shows what the round trip adds to every excerpt (pitch classes, narrow spectral
peaks) and `noise_probe` what it makes of white noise, beside Opus. Pairs of excerpts are interpolated (3 songs
each); every window join of those songs is scored for clicks (`composer.evaluate.seams`: the
share of joins louder in spectral flux than 95 % of ordinary moments of the same song; 0.05 is
what ordinary moments score).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/recorded_modes.py   # writes benchmarks/results/recorded_modes.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import held_out_excerpts, write_result  # noqa: E402
from interpolation import interpolation_rows, joins_summary  # noqa: E402

STRENGTHS = (0.0, 0.3, 0.6)  # 0: the codec's round trip alone
PROMPTS = ["bright pop song", "dark rock song", "calm folk ballad"]
PITCH_CLASSES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


def codec_colour(pairs: list[tuple[np.ndarray, np.ndarray]], rate: int) -> dict:
    """What the codec's round trip adds to every recording, whatever it is: each excerpt's four
    strongest pitch classes (mean chroma) before and after, and the narrow spectral peaks the
    round trip raises over the input on every excerpt (log-magnitude difference, 2.9-Hz bins,
    each excerpt's median difference over 50 Hz..8 kHz taken as its level change; the least
    rise over the excerpts, where it is at least 2 dB)."""
    import librosa

    classes, rises = [], []
    for clip, out in pairs:
        before = librosa.feature.chroma_cqt(y=clip, sr=rate).mean(axis=1)
        after = librosa.feature.chroma_cqt(y=out, sr=rate).mean(axis=1)
        classes.append({"in": [PITCH_CLASSES[i] for i in np.argsort(-before)[:4]],
                        "out": [PITCH_CLASSES[i] for i in np.argsort(-after)[:4]]})
        spectrum = [np.abs(librosa.stft(x, n_fft=8192, hop_length=2048)).mean(axis=1) for x in (clip, out)]
        rise = 20 * np.log10(spectrum[1] + 1e-6) - 20 * np.log10(spectrum[0] + 1e-6)
        band = (np.fft.rfftfreq(8192, 1 / rate) >= 50) & (np.fft.rfftfreq(8192, 1 / rate) <= 8000)
        rises.append(rise - np.median(rise[band]))
    frequencies = np.fft.rfftfreq(8192, 1 / rate)
    least = np.min(rises, axis=0)
    band = np.nonzero((frequencies >= 50) & (frequencies <= 8000) & (least >= 2.0))[0]
    peaks = sorted(band, key=lambda i: -least[i])[:8]
    return {"pitch_classes": classes,
            "peaks_on_every_excerpt": [{"hz": round(float(frequencies[i]), 1), "least_rise_db": round(float(least[i]), 1)}
                                       for i in sorted(peaks)]}


def noise_probe(codec, seconds: float = 10.0) -> dict:
    """White noise (-20 dBFS, seed 0) through the codec's round trip, and through Opus at 12 kbps
    beside it: the narrowest peaks of each one's spectrum over the noise's (its rise minus the
    rise's 100-Hz moving median). A codec that carries recordings gives noise back as noise;
    one fitted to notes gives tones. For the spectral codec, two more rows say which stage makes
    them: its vocoder alone on the noise's own STFT magnitudes, and its decoder given the best
    latents 150 Adam steps find (`note_survival.refined_round_trip`), on the first 4 s."""
    import torch
    from codec_quality import opus_round_trip

    rate = codec.sample_rate
    noise = (0.1 * np.random.default_rng(0).standard_normal(int(seconds * rate))).astype(np.float32)
    with torch.no_grad():
        out = codec.decode(codec.encode(torch.from_numpy(noise)[None, None]))[0, 0].numpy()[: noise.shape[0]]
    stages = {"codec": _narrow_peaks(noise, out, rate),
              "opus12": _narrow_peaks(noise, opus_round_trip(noise[None], rate, 12)[0], rate)}
    if getattr(codec, "spectral", None) is not None:  # which stage makes the tones
        from note_survival import refined_round_trip, vocoded

        short = noise[: 4 * rate]
        stages["vocoder_on_true_magnitudes"] = _narrow_peaks(short, vocoded(codec, short[None])[0], rate)
        stages["latents_optimised_150_steps"] = _narrow_peaks(short, refined_round_trip(codec, short[None], 150)[0], rate)
    return stages


def _narrow_peaks(noise: np.ndarray, out: np.ndarray, rate: int) -> dict:
    import librosa
    from scipy.ndimage import median_filter

    spectrum = [np.abs(librosa.stft(x, n_fft=8192, hop_length=2048)).mean(axis=1) for x in (noise, out)]
    rise = 20 * np.log10(spectrum[1] + 1e-6) - 20 * np.log10(spectrum[0] + 1e-6)
    narrow = rise - median_filter(rise, size=35)
    frequencies = np.fft.rfftfreq(8192, 1 / rate)
    band = np.nonzero((frequencies >= 50) & (frequencies <= 8000))[0]
    top = sorted(band, key=lambda i: -narrow[i])[:10]
    return {"peaks": [{"hz": round(float(frequencies[i]), 1), "above_neighbours_db": round(float(narrow[i]), 1)}
                      for i in sorted(top)],
            "median_peak_db": round(float(np.median(narrow[band])), 2)}


def kept(before, after) -> dict:
    """How much of the input's analysis (`before`) an output's (`after`) keeps."""
    from composer.evaluate.metrics import key_weighted

    return {"tempo_in": round(before.tempo_bpm, 1), "tempo_out": round(after.tempo_bpm, 1),
            "tempo_within_4pct": bool(before.tempo_bpm and abs(after.tempo_bpm - before.tempo_bpm) / before.tempo_bpm
                                      <= 0.04),
            "key_in": str(before.key), "key_out": str(after.key), "key_kept": str(before.key) == str(after.key),
            "key_weighted": key_weighted(before.key, after.key)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/recorded")
    parser.add_argument("--excerpts", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--model", help="Diffusion checkpoint (default: bundled).")
    parser.add_argument("--codec", help="Codec checkpoint (default: bundled).")
    parser.add_argument("--tag", action="append", default=[],
                        help="NAME=VALUE added to every restyle prompt (e.g. source=recorded); repeatable")
    parser.add_argument("--out")
    args = parser.parse_args()

    import torch
    from codec_quality import opus_round_trip

    from composer.data.audio import audio_read
    from composer.models import load_models
    from composer.rendering.modes import restyle
    from composer.rendering.options import RenderOptions
    from structure.analysis import analyze

    torch.set_num_threads(2)
    options = RenderOptions(vocals=False, evaluate=False)
    restyled, references, round_trips = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        excerpts = held_out_excerpts(Path(args.data), args.excerpts, args.seconds, Path(folder))
        for name, path in excerpts:
            clip, rate = audio_read(path)
            before = analyze(clip, rate)
            references.append({"file": name, "reference": "opus12",
                               **kept(before, analyze(opus_round_trip(clip, rate, 12), rate))})
            for strength in STRENGTHS:
                prompt = " ".join([PROMPTS[len(restyled) % len(PROMPTS)], *args.tag])
                result = restyle(path, prompt, strength=strength, seed=1, model=args.model, codec=args.codec, options=options,
                                 progress=False)
                if strength == 0.0:
                    out = np.asarray(result.audio, dtype=np.float32).mean(axis=0)
                    round_trips.append((clip.mean(axis=0)[: out.shape[0]], out[: clip.shape[-1]]))
                restyled.append({"file": name, "strength": strength,
                                 **kept(before, analyze(result.audio, result.sample_rate))})
        joins = interpolation_rows([path for _, path in excerpts], args.pairs, model=args.model, codec=args.codec)
    summary = {}
    for strength in STRENGTHS:
        rows_at = [r for r in restyled if r["strength"] == strength]
        summary[str(strength)] = {"tempo_within_4pct": float(np.mean([r["tempo_within_4pct"] for r in rows_at])),
                                  "key_kept": float(np.mean([r["key_kept"] for r in rows_at])),
                                  "key_weighted": float(np.mean([r["key_weighted"] for r in rows_at]))}
    summary["opus12"] = {k: float(np.mean([r[k] for r in references]))
                         for k in ("tempo_within_4pct", "key_kept", "key_weighted")}
    write_result("recorded_modes", {
        "model_path": args.model, "codec_path": args.codec, "tags": args.tag, "excerpts": len(excerpts), "seconds": args.seconds, "restyle": summary, "restyle_rows": restyled,
        "reference_rows": references, "codec_colour": codec_colour(round_trips, 24000),
        "noise_probe": noise_probe(load_models(None, args.codec)[0]),
        "interpolate": {"pairs": args.pairs, **joins_summary(joins), "goal": "about 0.05 (ordinary moments)"},
        "goal": "restyle keeps tempo within 4 % and the key at strengths up to 0.6",
    }, args.out)


if __name__ == "__main__":
    main()
