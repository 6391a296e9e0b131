"""Codec round-trip quality beside Opus (ffmpeg) on the same clips.

Multi-resolution log-mel distance and semitone-band pitch distance (lower is better),
SI-SDR (higher is better) and the share of clips whose key (`structure.analysis.analyze`)
comes back the same, on validation clips (unseen soundfont) of a corpus, or any folder of audio:

    python benchmarks/codec_quality.py --data data/corpus --clips 16

`--ceiling N` adds what the spectral decoder's phase costs, on the same clips: each clip's own
STFT magnitudes (the decoder's frame) through its phase-locked vocoder ("vocoder": the best
the decoder could give back if its network were perfect), and the same after N iterations of
Griffin-Lim from that phase ("vocoder_glN"), and the codec's own predicted magnitudes after
N iterations ("codec_glN").

Every run also measures `tone_fidelity` (pure tones' energy kept at their frequency) and
`noise_tones` (the steady lines the codec makes of white, pink and brown noise, and whether
they come from the decoder's network or its vocoder).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))


def opus_round_trip(audio, rate: int, kbps: int):
    import numpy as np
    import soundfile as sf

    from composer.data.audio import audio_read

    with tempfile.TemporaryDirectory() as folder:
        wav, opus = Path(folder) / "in.wav", Path(folder) / "out.opus"
        sf.write(wav, audio.T, rate)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-c:a", "libopus", "-b:a", f"{kbps}k",
                        str(opus)], check=True)
        decoded, _ = audio_read(opus, sample_rate=rate, channels=1)
    return np.pad(decoded, ((0, 0), (0, max(0, audio.shape[-1] - decoded.shape[-1]))))[:, : audio.shape[-1]]


def tone_fidelity(codec, frequencies=(110.0, 220.0, 330.0, 440.0, 660.0, 880.0)) -> dict:
    """Share of the round trip's energy within 3% of a pure tone's frequency (1.0 = perfect).

    A decoder that has not learnt sustained tones answers with a comb at its frame rate
    (75 Hz here), which reads as a fixed chord to any key or chord estimator.
    """
    import numpy as np
    import torch

    rate = codec.sample_rate
    t = np.arange(rate * 3) / rate
    shares = {}
    for frequency in frequencies:
        tone = (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
        with torch.no_grad():
            out = codec.decode_long(codec.encode_long(torch.from_numpy(tone)[None, None]))[0, 0].numpy()
        segment = out[rate // 2: rate // 2 + 2 * rate] * np.hanning(2 * rate)
        power = np.abs(np.fft.rfft(segment)) ** 2
        freqs = np.fft.rfftfreq(len(segment), 1 / rate)
        near = np.abs(freqs - frequency) <= 0.03 * frequency
        shares[f"{frequency:g}"] = float(power[near].sum() / max(power.sum(), 1e-12))
    return {"per_frequency": shares, "mean": float(np.mean(list(shares.values())))}


def noise_tones(codec, seconds: float = 8.0) -> dict:
    """Tones the codec makes out of noise: for white, pink and brown noise (seeded), the largest
    peak of the round trip's long-term spectrum (8192-point frames) above its own running median
    over 31 bins (about 91 Hz), between 100 Hz and 4 kHz, in dB, beside the same for the input
    (about 2 dB: noise has no lines); for a spectral decoder, also its vocoder alone on the
    noise's own magnitudes and its network's predicted magnitudes, which says where the lines
    come from. A decoder that has only heard notes renders noise as steady partials on the
    equal-tempered pitches it learnt, which any key or chord estimator reads as harmony the
    recording does not have."""
    import numpy as np
    import torch
    from scipy.ndimage import median_filter

    rate = codec.sample_rate
    n, hop = 8192, 2048
    generator = np.random.default_rng(0)
    freqs = np.fft.rfftfreq(n, 1 / rate)
    band = (freqs >= 100) & (freqs <= 4000)
    window = np.hanning(n)

    def peak_db(x: np.ndarray) -> float:
        frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop] * window
        spectrum = np.abs(np.fft.rfft(frames, axis=-1)).mean(0)
        over = 20 * np.log10(spectrum + 1e-12) - 20 * np.log10(median_filter(spectrum, 31) + 1e-12)
        return float(over[band].max())

    out = {}
    for name, slope in (("white", 0.0), ("pink", -3.0), ("brown", -6.0)):
        length = int(seconds * rate)
        spectrum = np.fft.rfft(generator.standard_normal(length))
        f = np.fft.rfftfreq(length, 1 / rate)
        spectrum *= (np.maximum(f, 20.0) / 1000.0) ** (slope / 6.02)
        noise = np.fft.irfft(spectrum, length)
        noise = (0.25 * noise / np.abs(noise).max()).astype(np.float32)
        reference = torch.from_numpy(noise)[None, None]
        with torch.no_grad():
            latents = codec.encode_long(reference)
            back = codec.decode_long(latents)[0, 0].numpy()
        out[name] = {"input_db": round(peak_db(noise), 2), "round_trip_db": round(peak_db(back[:length]), 2)}
        decoder = codec.spectral
        if decoder is not None:  # where the lines come from: the network's magnitudes, or the vocoder
            from autoencoder.spectral import stft_same

            with torch.no_grad():
                own = stft_same(codec._pad_to_hop(reference)[:, 0], decoder.n_fft, decoder.hop_length, decoder.window)
                vocoded = decoder.vocode(own.abs())[0].numpy()
                predicted, _, _ = decoder.frames(latents * codec.latent_std[:, None] + codec.latent_mean[:, None])
            mean = predicted[0].mean(-1).numpy()
            bins = np.arange(mean.shape[0]) * rate / decoder.n_fft
            over = 20 * np.log10(mean + 1e-12) - 20 * np.log10(median_filter(mean, 31 * decoder.n_fft // n + 1) + 1e-12)
            out[name]["vocoder_on_own_magnitudes_db"] = round(peak_db(vocoded[:length]), 2)
            out[name]["decoder_magnitudes_db"] = round(float(over[(bins >= 100) & (bins <= 4000)].max()), 2)
    out["mean_round_trip_db"] = round(float(np.mean([v["round_trip_db"] for v in out.values()])), 2)
    out["what"] = ("largest line above the running median, 100 Hz..4 kHz, dB: the noise itself, its round trip, "
                   "its own magnitudes through the decoder's vocoder (no network), and the time-averaged "
                   "magnitudes the decoder's network predicts from the noise's latents")
    return out


def phase_ceiling(codec, reference, iterations: int, timings: list) -> list:
    """("vocoder", ...), ("vocoder_glN", ...), ("codec_glN", ...): see the module's text."""
    import time

    import torch

    from autoencoder.spectral import griffin_lim, stft_same

    decoder, length = codec.spectral, reference.shape[-1]
    audio = codec._pad_to_hop(reference)[:, 0]
    with torch.no_grad():
        own = stft_same(audio, decoder.n_fft, decoder.hop_length, decoder.window).abs()
        latents = codec.encode_long(reference)
        predicted, _, _ = decoder.frames(latents * codec.latent_std[:, None] + codec.latent_mean[:, None])
        out = []
        for name, magnitude in (("vocoder", own), ("codec", predicted)):
            locked = decoder.vocode(magnitude)
            if name == "vocoder":
                out.append((name, locked[:, None, :length]))
            clock = time.perf_counter()
            refined = griffin_lim(magnitude, locked, decoder.n_fft, decoder.hop_length, decoder.window, iterations)
            timings.append(time.perf_counter() - clock)
            out.append((f"{name}_gl{iterations}", refined[:, None, :length]))
    return out


def main() -> None:
    import json

    import numpy as np
    import torch
    from common import write_result

    from autoencoder.losses import mel_distance, pitch_distance, si_sdr
    from composer.data.audio import audio_read
    from composer.models import load_codec  # the bundled codec unless --codec names one
    from structure.analysis import analyze

    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="data/corpus")
    parser.add_argument("--codec")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--ceiling", type=int, default=0, metavar="N",
                        help="Also the vocoder on the clips' own magnitudes, and N Griffin-Lim iterations.")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(2)
    codec = load_codec(args.codec)
    root = Path(args.data)
    files = []
    if (root / "metadata.jsonl").exists():
        rows = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines() if line.strip()]
        files = [root / r["file_name"] for r in rows if r.get("split") == "validation"] or \
                [root / r["file_name"] for r in rows]
    else:
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg", ".mp3"))
    rng = np.random.default_rng(0)
    scores = {"codec": [], "opus6": [], "opus12": []}
    ceiling = args.ceiling and codec.spectral is not None
    griffin_seconds = []
    for path in files[: args.clips]:
        audio, rate = audio_read(path, sample_rate=codec.sample_rate, channels=1)
        length = int(args.seconds * rate)
        start = int(rng.integers(0, max(1, audio.shape[-1] - length)))
        clip = audio[:, start: start + length]
        reference = torch.from_numpy(clip)[None]
        key = str(analyze(clip, rate).key)
        with torch.no_grad():
            ours = codec.decode_long(codec.encode_long(reference))[..., : length]
        outputs = [("codec", ours), ("opus6", torch.from_numpy(opus_round_trip(clip, rate, 6))[None]),
                   ("opus12", torch.from_numpy(opus_round_trip(clip, rate, 12))[None])]
        if ceiling:
            outputs += phase_ceiling(codec, reference, args.ceiling, griffin_seconds)
        for name, output in outputs:
            scores.setdefault(name, []).append((float(mel_distance(output, reference, rate)), float(si_sdr(output, reference).mean()),
                                 float(pitch_distance(output, reference, rate)),
                                 str(analyze(output[0].numpy(), rate).key) == key))
    table = {name: {"mel_distance": float(np.mean([s[0] for s in v])), "si_sdr": float(np.mean([s[1] for s in v])),
                    "pitch_distance": float(np.mean([s[2] for s in v])), "key_kept": float(np.mean([s[3] for s in v]))}
             for name, v in scores.items()}
    write_result("codec_quality", {"codec": codec.identity(), "tone_fidelity": tone_fidelity(codec),
                                   "noise_tones": noise_tones(codec),
                                   "clips": len(scores["codec"]),
                                   "seconds_per_clip": args.seconds, "data": str(root), "results": table,
                                   "griffin_lim_iterations": args.ceiling if ceiling else None,
                                   "griffin_lim_seconds_per_audio_second":
                                       float(np.mean(griffin_seconds)) / args.seconds if griffin_seconds else None,
                                   "goal": "codec mel_distance below opus12"}, args.out)


if __name__ == "__main__":
    main()
