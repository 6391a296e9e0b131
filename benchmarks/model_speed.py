"""Codec encode/decode speed (x real time) and denoiser time per frame per step, and the
frames per second a sampler reaches at 8, 16 and 32 steps, with the bundled models.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/model_speed.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))


def timed(fn, repeat: int = 3) -> float:
    fn()
    start = time.monotonic()
    for _ in range(repeat):
        fn()
    return (time.monotonic() - start) / repeat


def main() -> None:
    import torch
    from common import write_result

    from composer.models import load_models
    from diffusion.sampling import get_sampler, shifted_timesteps

    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    codec, model = load_models(None, None)
    seconds = 30.0
    audio = torch.randn(1, 1, int(seconds * codec.sample_rate)) * 0.1
    with torch.no_grad():
        encode = timed(lambda: codec.encode_long(audio), 1)
        latents = codec.encode_long(audio)
        decode = timed(lambda: codec.decode_long(latents), 1)
    frames = model.config.window_frames
    x = torch.randn(1, model.config.unet.latent_dim, frames)
    cond = {"controls": torch.zeros(1, frames, model.config.unet.num_controls),
            "tags": torch.zeros(1, len(model.vocab.fields), dtype=torch.long)}
    with torch.no_grad():
        call = timed(lambda: model(x, torch.tensor([0.5]), cond=cond), 10)
        call_cfg = timed(lambda: model(x.repeat(2, 1, 1), torch.tensor([0.5, 0.5]),
                                       cond={k: v.repeat(2, *([1] * (v.dim() - 1))) for k, v in cond.items()}), 10)
    sampler = get_sampler("multistep")
    rates = {}
    for steps in (8, 16, 32):
        t = timed(lambda s=steps: sampler(model, x, shifted_timesteps(s), cond=cond, guidance=2.0), 2)
        rates[str(steps)] = {"window_seconds": t, "frames_per_second": frames / t,
                             "audio_seconds_per_second": frames / model.config.frame_rate / t}
    write_result("model_speed", {
        "threads": args.threads,
        "codec": {"encode_x_realtime": seconds / encode, "decode_x_realtime": seconds / decode,
                  "parameters": sum(p.numel() for p in codec.parameters())},
        "denoiser": {"parameters": sum(p.numel() for p in model.parameters()), "window_frames": frames,
                     "ms_per_call": call * 1000, "ms_per_guided_call": call_cfg * 1000,
                     "us_per_frame_per_step": call / frames * 1e6},
        "sampler_multistep_guidance2": rates,
    }, args.out)


if __name__ == "__main__":
    main()
