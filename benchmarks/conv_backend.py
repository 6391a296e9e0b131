"""oneDNN (mkldnn) or PyTorch's own kernels for the bundled models' 1-D convolutions, on
this machine: diffusion sampling of a 30-s song and codec decode/encode of 60 s, each
both ways (threads as rendering uses them). Decides `composer.rendering.windows.conv_backend`.

    python benchmarks/conv_backend.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

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
    rows, audio = {}, {}
    for onednn in (True, False):
        conv_backend.onednn = onednn
        render(song, seed=1, codec=codec, model=model, options=options, progress=False)  # warm
        times = []
        for _ in range(3):
            result = render(song, seed=1, codec=codec, model=model, options=options, progress=False)
            times.append(result.report["timings"]["diffusion"])
        audio[onednn] = result.audio
        z = torch.randn(1, codec.latent_dim, int(75 * 60), generator=torch.Generator().manual_seed(0))
        wave = torch.randn(1, codec.channels, 24000 * 60, generator=torch.Generator().manual_seed(0)) * 0.1
        with torch.no_grad(), conv_backend.scope():
            clock = time.monotonic()
            codec.decode_long(z)
            decode = time.monotonic() - clock
            clock = time.monotonic()
            codec.encode(wave)
            encode = time.monotonic() - clock
        rows["onednn" if onednn else "native"] = {"diffusion_30s_song_s": round(min(times), 3),
                                                  "codec_decode_60s_s": round(decode, 3),
                                                  "codec_encode_60s_s": round(encode, 3)}
    conv_backend.onednn = False
    write_result("conv_backend", {
        "threads": torch.get_num_threads(), "rows": rows,
        "diffusion_speedup_native": round(rows["onednn"]["diffusion_30s_song_s"] / rows["native"]["diffusion_30s_song_s"], 2),
        "max_abs_audio_difference": float(np.abs(audio[True] - audio[False]).max()),
        "decision": "the diffusion sampler runs without oneDNN; the codec keeps it",
    })


if __name__ == "__main__":
    main()
