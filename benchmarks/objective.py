"""Rectified flow or v-diffusion? Both objectives trained on equal terms, then sampled.

The same U-Net, data, batches, seed, steps and optimiser for each objective; then,
on validation windows (unseen soundfont) with their controls and tags, each model
outpaints the last 72 of 112 frames from the first 40 with the same sampler at 8
and 16 steps. Reported per objective:

- `fd`: Frechet distance between the generated frames and the true frames
  (per-frame latent vectors; lower = closer to the data's distribution);
- `mse`: mean squared error against the true continuation (lower = follows the
  plan's controls and the known prefix more closely);
- `seam`: latent jump across the prefix/continuation join over the true data's
  frame-to-frame jump (1 = as smooth as real music).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/objective.py --data data/corpus --steps 1000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

from distance import frechet  # noqa: E402

PREFIX = 40


def evaluate(model, windows, steps: int) -> dict:
    import torch

    from diffusion.sampling import sample_multistep, shifted_timesteps

    generated, truth, seams, natural = [], [], [], []
    for index, (x0, cond) in enumerate(windows):
        mask = torch.zeros(x0.shape[0], 1, x0.shape[-1])
        mask[..., :PREFIX] = 1
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1000 + index))
        out = sample_multistep(model, noise, shifted_timesteps(steps), cond={**cond, "known": x0, "mask": mask})
        generated.append(out[..., PREFIX:])
        truth.append(x0[..., PREFIX:])
        seams.append((out[..., PREFIX] - out[..., PREFIX - 1]).norm(dim=1))
        natural.append((x0[..., 1:] - x0[..., :-1]).norm(dim=1).mean(dim=1))
    gen, true = torch.cat(generated), torch.cat(truth)
    flat = lambda x: x.transpose(1, 2).reshape(-1, x.shape[1]).double().numpy()  # noqa: E731
    return {"fd": frechet(flat(gen), flat(true)), "mse": float((gen - true).pow(2).mean()),
            "seam": float(torch.cat(seams).mean() / torch.cat(natural).mean())}


def main() -> None:
    import numpy as np
    import torch
    from common import write_result

    from autoencoder import load_codec
    from composer.train.data import latent_items, latent_windows
    from composer.train.diffusion import train_diffusion
    from diffusion.flow import FlowConfig
    from diffusion.model import DiffusionModel, ModelConfig
    from diffusion.train import DiffusionTrainConfig
    from diffusion.unet import UNetConfig
    from structure.frame_controls import GROUP_NAMES, GROUPS, NUM_CONTROLS

    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="data/corpus")
    parser.add_argument("--codec")
    parser.add_argument("--cache", default="out/objective/cache", help="Latent cache folder (shared with training).")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--channels", default="96,160,224")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out-dir", default="out/objective")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    codec = load_codec(args.codec)
    _, _, items, val_items = latent_items([args.data], codec, Path(args.cache))
    results = {}
    for objective in ("rectified_flow", "v_diffusion"):
        torch.manual_seed(0)
        unet = UNetConfig(latent_dim=codec.latent_dim, num_controls=NUM_CONTROLS,
                          control_groups=tuple(GROUPS[g] for g in GROUP_NAMES), group_names=GROUP_NAMES,
                          channels=tuple(int(c) for c in args.channels.split(",")))
        model = DiffusionModel(ModelConfig(unet=unet, flow=FlowConfig(objective=objective),
                                           frame_rate=codec.frame_rate, codec=codec.latent_identity()))
        model.grow_tags([it["tags"] for it in items + val_items])
        frames = model.config.window_frames
        batches = latent_windows(items, model, frames=frames, batch_size=args.batch_size,
                                 generator=np.random.default_rng(0))
        val_stream = latent_windows(val_items, model, frames=frames, batch_size=16, generator=np.random.default_rng(1))
        windows = [next(val_stream) for _ in range(max(1, args.windows // 16))]
        started = time.monotonic()
        config = DiffusionTrainConfig(steps=args.steps, seed=0, warmup=max(1, min(200, args.steps // 5)),
                                      validate_every=10 ** 9, save_every=10 ** 9)
        run = Path(args.out_dir) / objective
        if run.exists():  # the benchmark's own scratch run: each measurement trains afresh
            import shutil

            shutil.rmtree(run)
        ema, _ = train_diffusion(model, batches, out_dir=run, config=config)
        minutes = (time.monotonic() - started) / 60
        ema.eval()
        results[objective] = {"train_minutes": round(minutes, 2),
                              **{f"steps_{n}": evaluate(ema, windows, n) for n in (8, 16)}}
        print(objective, results[objective], file=sys.stderr)
    chosen = min(results, key=lambda o: (results[o]["steps_16"]["fd"], results[o]["steps_16"]["mse"]))
    write_result("objective", {"training_steps": args.steps, "channels": args.channels, "batch_size": args.batch_size,
                               "windows": len(windows) * 16, "prefix_frames": PREFIX, "results": results,
                               "chosen_by_fd_at_16_steps": chosen}, args.out)


if __name__ == "__main__":
    main()
