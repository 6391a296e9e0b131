"""Training throughput on a device: what a persona's fine-tune (and a codec's training) takes
per second, and so the time for a 5,000-song archive (about 250 hours) on this machine or
on one GPU.

The steps are the real ones (`diffusion.train.DiffusionTrainer`, `autoencoder.train.CodecTrainer`
on the bundled models, in the shared training loop's order: forward, backward, clipping,
AdamW, EMA); the batches are random tensors of the recipe's shapes, since the arithmetic does
not depend on the values. Building the latent cache (encoding the archive once) is timed on
the CPU, where `composer train` does it.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/training_speed.py                 # this machine's CPU
    python benchmarks/training_speed.py --device cuda --batch-size 16 128      # one GPU
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

ARCHIVE_HOURS = 250.0  # a 5,000-song archive


def _cond(model, batch: int, frames: int, generator):
    import torch

    return {"controls": torch.randn(batch, frames, model.config.unet.num_controls, generator=generator),
            "control_groups": torch.ones(batch, len(model.group_names)),
            "tags": model.encode_tags([{}] * batch),
            "text": torch.randn(batch, 384, generator=generator), "text_present": torch.ones(batch)}


def _synchronise(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_steps(trainer, batches: list, warmup: int, steps: int, device) -> float:
    """Seconds for `steps` training steps after `warmup` untimed ones (allocations, kernels chosen)."""
    for step in range(warmup):
        trainer.step(batches[step % len(batches)], step)
    _synchronise(device)
    clock = time.monotonic()
    for step in range(warmup, warmup + steps):
        trainer.step(batches[step % len(batches)], step)
    _synchronise(device)
    return time.monotonic() - clock


def diffusion_rate(device, batch_size: int, steps: int) -> dict:
    """Fine-tune steps of the bundled diffusion model per second, and window-seconds learnt per second."""
    import torch

    from composer.models import load_model
    from diffusion.train import DiffusionTrainConfig, DiffusionTrainer

    model = load_model(None).float()
    frames = model.config.window_frames
    generator = torch.Generator().manual_seed(0)
    batches = [(torch.randn(batch_size, model.config.unet.latent_dim, frames, generator=generator),
                _cond(model, batch_size, frames, generator)) for _ in range(4)]
    trainer = DiffusionTrainer(model, DiffusionTrainConfig(steps=steps + 3, warmup=1), device)
    seconds = _timed_steps(trainer, batches, 3, steps, device)
    window = frames / model.config.frame_rate
    rate = steps * batch_size * window / seconds
    return {"batch_size": batch_size, "window_seconds": round(window, 3), "steps": steps,
            "steps_per_second": round(steps / seconds, 3), "window_seconds_per_second": round(rate, 1),
            "parameters": sum(p.numel() for p in model.parameters()),
            "hours_per_pass_over_250_hours": round(ARCHIVE_HOURS * 3600 / rate / 3600, 2),
            "peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 2)
            if device.type == "cuda" else None}


def codec_rate(device, batch_size: int, steps: int, window: float = 1.0) -> dict:
    """Training steps of the bundled codec (encoder and decoder, the spectral losses) per second."""
    import torch

    from autoencoder.train import CodecTrainConfig, CodecTrainer
    from composer.models import load_codec

    codec = load_codec(None).float()
    samples = int(window * codec.sample_rate)
    generator = torch.Generator().manual_seed(0)
    batches = [0.1 * torch.randn(batch_size, 1, samples, generator=generator) for _ in range(4)]
    config = CodecTrainConfig(steps=steps + 2, batch_size=batch_size, stft_sizes=(512, 1024, 2048, 4096),
                              pitch_weight=2.0, onset_weight=0.5, waveform_weight=0.0)
    seconds = _timed_steps(CodecTrainer(codec, config, device), batches, 2, steps, device)
    rate = steps * batch_size * window / seconds
    return {"batch_size": batch_size, "window_seconds": window, "steps": steps,
            "steps_per_second": round(steps / seconds, 3), "audio_seconds_per_second": round(rate, 1),
            "hours_per_pass_over_250_hours": round(ARCHIVE_HOURS * 3600 / rate / 3600, 2)}


def encode_rate(seconds: float = 30.0) -> dict:
    """Encoding the archive into the latent cache, on the CPU (x real time with torch's threads)."""
    import torch

    from composer.models import load_codec

    codec = load_codec(None)
    audio = 0.1 * torch.randn(1, 1, int(seconds * codec.sample_rate), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        codec.encode_long(audio[..., : codec.sample_rate])
        clock = time.monotonic()
        codec.encode_long(audio)
    realtime = seconds / (time.monotonic() - clock)
    return {"threads": torch.get_num_threads(), "encode_x_realtime": round(realtime, 1),
            "hours_for_250_hours": round(ARCHIVE_HOURS / realtime, 2)}


def main() -> None:
    import torch
    from common import write_result

    from composer.train.device import training_device

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the CPU's share)")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[16],
                        help="fine-tune batch sizes to time (16: the persona's default)")
    parser.add_argument("--codec-batch-size", type=int, default=12)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 10 on the CPU, 50 on a GPU)")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = training_device(args.device)
    steps = args.steps or (50 if device.type == "cuda" else 10)
    data = {"device": str(device),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "fine_tune": [diffusion_rate(device, b, steps) for b in args.batch_size],
            "codec_training": codec_rate(device, args.codec_batch_size, max(2, steps // 2)),
            "latent_cache_on_cpu": encode_rate(),
            "archive_hours": ARCHIVE_HOURS,
            "note": "one pass over the archive's audio in the persona's windows; the persona's default fine-tune "
                    "is far shorter (300 steps), a full fine-tune a few passes"}
    name = "training_speed" if device.type == "cpu" else f"training_speed_{device.type}"
    write_result(name, data, args.out)


if __name__ == "__main__":
    main()
