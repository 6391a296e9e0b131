"""oneDNN (mkldnn) or PyTorch's own kernels for the bundled models' 1-D convolutions, and
one or two threads for sampling, on this machine: diffusion sampling of a 30-s song and
codec decode/encode of 60 s, each way, with the passive OpenMP wait policy the CLI sets.
Decides `composer.rendering.windows.conv_backend`.

    python benchmarks/conv_backend.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `composer` sets it, before OpenMP starts

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402


def main() -> None:
    import composer
    from composer.models import load_models
    from composer.rendering.options import RenderOptions
    from composer.rendering.renderer import render
    from composer.rendering.windows import conv_backend

    codec, model = load_models(None, None)
    song = composer.plan("wistful folk song about trains, 96 bpm, in D minor", duration=30, seed=1)
    options = RenderOptions(evaluate=False, vocals=False)
    torch.set_num_threads(2)
    rows, audio = {}, {}
    for name, onednn, threads in (("onednn", True, 2), ("native", False, 2), ("native_1_thread", False, 1)):
        conv_backend.onednn, conv_backend.threads = onednn, threads
        render(song, seed=1, codec=codec, model=model, options=options, progress=False)  # warm
        times = []
        for _ in range(3):
            result = render(song, seed=1, codec=codec, model=model, options=options, progress=False)
            times.append(result.report["timings"]["diffusion"])
        audio[name] = result.audio
        z = torch.randn(1, codec.latent_dim, int(75 * 60), generator=torch.Generator().manual_seed(0))
        wave = torch.randn(1, codec.channels, 24000 * 60, generator=torch.Generator().manual_seed(0)) * 0.1
        with torch.no_grad(), torch.backends.mkldnn.flags(enabled=onednn):  # codec: kernels only, its threads
            clock = time.monotonic()
            codec.decode_long(z)
            decode = time.monotonic() - clock
            clock = time.monotonic()
            codec.encode(wave)
            encode = time.monotonic() - clock
        rows[name] = {"sampler_threads": threads, "diffusion_30s_song_s": round(min(times), 3),
                      "codec_decode_60s_s": round(decode, 3), "codec_encode_60s_s": round(encode, 3)}
    conv_backend.onednn, conv_backend.threads = False, 1
    diffusion = {name: row["diffusion_30s_song_s"] for name, row in rows.items()}
    write_result("conv_backend", {
        "threads": torch.get_num_threads(), "omp_wait_policy": os.environ["OMP_WAIT_POLICY"], "rows": rows,
        "diffusion_speedup_native": round(diffusion["onednn"] / diffusion["native"], 2),
        "diffusion_speedup_one_thread": round(diffusion["native"] / diffusion["native_1_thread"], 2),
        "max_abs_audio_difference": float(np.abs(audio["onednn"] - audio["native"]).max()),
        "max_abs_audio_difference_threads": float(np.abs(audio["native"] - audio["native_1_thread"]).max()),
        "decision": "the diffusion sampler runs without oneDNN, on one thread; the codec keeps oneDNN and its threads",
    })


if __name__ == "__main__":
    main()
