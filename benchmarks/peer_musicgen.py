"""Time a peer: the MusicGen-small architecture generating audio on the CPU.

The model is built from configs with random weights (nothing is downloaded):
a T5-base text encoder, the 32 kHz EnCodec and a 24-layer, 1024-wide decoder
over 4 codebooks, as in facebook/musicgen-small. Random weights cost the same
compute per token as trained ones, and MusicGen has no end-of-sequence token,
so the timing is the real model's. Generation runs as musicgen-small's
generation config does: sampling, top-k 250, classifier-free guidance 3.

    python benchmarks/peer_musicgen.py --seconds 10 --out benchmarks/results/peer_musicgen.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # build from configs only
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Spinning OpenMP threads stall every op by milliseconds when the cores are
# shared with other work (500x slower layer norms); wait passively instead.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import (  # noqa: E402
    EncodecConfig,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForConditionalGeneration,
    T5Config,
)

THREADS = 2
PROMPT_TOKENS = 12  # a short text prompt's length in T5 tokens
GENERATION = {"do_sample": True, "top_k": 250, "guidance_scale": 3.0}


def musicgen_small_config() -> MusicgenConfig:
    """facebook/musicgen-small's architecture."""
    text_encoder = T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12,
                            num_heads=12, relative_attention_num_buckets=32, feed_forward_proj="relu")
    audio_encoder = EncodecConfig(sampling_rate=32000, audio_channels=1, chunk_length_s=None,
                                  overlap=None, codebook_size=2048, codebook_dim=128, hidden_size=128,
                                  num_filters=64, num_residual_layers=1, upsampling_ratios=[8, 5, 4, 4],
                                  norm_type="weight_norm", kernel_size=7, last_kernel_size=7,
                                  residual_kernel_size=3, dilation_growth_rate=2, use_causal_conv=False,
                                  pad_mode="reflect", compress=2, num_lstm_layers=2,
                                  trim_right_ratio=1.0, normalize=False, target_bandwidths=[2.2])
    decoder = MusicgenDecoderConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                    ffn_dim=4096, num_codebooks=4, vocab_size=2048,
                                    max_position_embeddings=2048, activation_function="gelu")
    return MusicgenConfig(text_encoder=text_encoder, audio_encoder=audio_encoder, decoder=decoder)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(seconds: float, seed: int = 0) -> dict:
    torch.set_num_threads(THREADS)
    torch.manual_seed(seed)
    clock = time.perf_counter()
    config = musicgen_small_config()
    model = MusicgenForConditionalGeneration(config).eval()
    build_seconds = time.perf_counter() - clock
    frame_rate = config.audio_encoder.sampling_rate / int(torch.tensor(config.audio_encoder.upsampling_ratios).prod())
    new_tokens = int(round(seconds * frame_rate))
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, config.text_encoder.vocab_size, (1, PROMPT_TOKENS), generator=generator)
    with torch.inference_mode():
        clock = time.perf_counter()
        audio = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                               max_new_tokens=new_tokens, **GENERATION)
        wall = time.perf_counter() - clock
    audio_seconds = audio.shape[-1] / config.audio_encoder.sampling_rate
    return {
        "model": "musicgen-small architecture (random weights, built from configs)",
        "parameters": sum(p.numel() for p in model.parameters()),
        "requested_seconds": seconds,
        "audio_seconds": round(audio_seconds, 3),
        "new_tokens": new_tokens,
        "generation": GENERATION,
        "build_seconds": round(build_seconds, 2),
        "wall_seconds": round(wall, 2),
        "seconds_per_audio_second": round(wall / audio_seconds, 3),
        "device": "cpu",
        "cpu_model": cpu_model(),
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average": os.getloadavg()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="audio seconds to generate")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/peer_musicgen.json"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.seconds <= 0:
        parser.error("--seconds must be > 0")
    result = run(args.seconds, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
