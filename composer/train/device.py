"""Where training runs: `--device auto|cpu|cuda|cuda:N`.

auto takes this process's GPU when PyTorch sees one (under `torchrun`, the one named by
LOCAL_RANK) and the CPU otherwise. Every random draw of training is made on the CPU from
seeded generators, so the device changes the arithmetic, not the run's randomness.
"""

from __future__ import annotations

import os

import torch

from composer.errors import InputError


def training_device(name: str | None = "auto") -> torch.device:
    """The torch device for `--device NAME`; InputError naming --device when it cannot be used."""
    text = (name or "auto").strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise InputError(f"--device {name}: PyTorch sees no CUDA device here (torch {torch.__version__}, "
                             f"{build}); train with --device cpu")
        if text == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        else:
            try:
                device = torch.device(text)
            except RuntimeError:
                raise InputError(f"--device {name}: expected cuda:N with N a device number") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"--device {name}: there are {torch.cuda.device_count()} CUDA device(s)")
        torch.cuda.set_device(device)
        return device
    raise InputError(f"--device {name}: expected auto, cpu, cuda or cuda:N")
