"""`composer train codec|diffusion`: datasets on disk -> the training loops of the model packages.

This module owns the file side (which rows may be learnt from, audio windows,
latent caches, model cards); `autoencoder.train` and `diffusion.train` own the
maths. Only rows that `composer.datasets.iter_accepted` yields (allowed licence,
opt-in consent) are ever read, and the model card lists their licences.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from composer.audio import audio_read, audio_stream, write_text_atomic
from composer.errors import InputError

log = logging.getLogger(__name__)


def accepted_rows(folders: list[str]) -> list[tuple[Path, dict]]:
    """(audio path, metadata fields) for every row training may use, across folders."""
    from composer.datasets import iter_accepted

    rows = []
    for folder in folders:
        root = Path(folder)
        if not (root / "metadata.jsonl").is_file():
            raise InputError(f"--data {folder}: no metadata.jsonl (build one with `composer corpus build`)")
        for row in iter_accepted(root, check_audio=False):
            rows.append((root / row.file_name, dict(row.fields)))
    if not rows:
        raise InputError(f"--data {', '.join(folders)}: no file with an allowed licence and opt-in consent")
    return rows


def licence_summary(rows: list[tuple[Path, dict]]) -> dict[str, int]:
    from composer.datasets import normalise_licence

    return dict(Counter(normalise_licence(str(f.get("licence", f.get("license", "")))) for _, f in rows))


def load_audio_rows(rows: list[tuple[Path, dict]], sample_rate: int, *, progress: bool = True) -> list[np.ndarray]:
    """Each row's audio as mono float32 at `sample_rate` (kept in memory for random windows)."""
    from tqdm import tqdm

    return [audio_read(path, sample_rate=sample_rate, channels=1)[0][0]
            for path, _ in tqdm(rows, desc="loading audio", unit="file", disable=not progress)]


def random_audio_windows(clips: list[np.ndarray], *, samples: int, batch_size: int,
                         generator: np.random.Generator) -> Iterator[torch.Tensor]:
    """Endless batches `[batch, 1, samples]` of random windows, clips drawn by length."""
    lengths = np.array([max(1, len(c) - samples) for c in clips], dtype=np.float64)
    weights = lengths / lengths.sum()
    while True:
        batch = np.zeros((batch_size, 1, samples), dtype=np.float32)
        for b, index in enumerate(generator.choice(len(clips), size=batch_size, p=weights)):
            clip = clips[index]
            start = int(generator.integers(0, max(1, len(clip) - samples)))
            piece = clip[start: start + samples]
            batch[b, 0, : len(piece)] = piece * generator.uniform(0.5, 1.0)  # gain augmentation
        yield torch.from_numpy(batch)


def cached_latent_windows(latents: list[torch.Tensor], clips: list[np.ndarray], codec, *, frames: int,
                          batch_size: int, generator: np.random.Generator, context: int | None = None):
    """Endless `LatentBatch`es: windows of whole-song latents (normalised, `[D, T]` each) with
    `context` frames each side, and the audio under the centre `frames`."""
    from autoencoder.train import LatentBatch

    hop = codec.hop_length
    context = codec.receptive_frames if context is None else context
    lengths = np.array([max(1, z.shape[-1] - frames) for z in latents], dtype=np.float64)
    weights = lengths / lengths.sum()
    mean, std = codec.latent_mean[:, None], codec.latent_std[:, None]
    while True:
        z_batch = torch.zeros(batch_size, codec.latent_dim, frames + 2 * context)
        audio = np.zeros((batch_size, 1, frames * hop), dtype=np.float32)
        for b, index in enumerate(generator.choice(len(latents), size=batch_size, p=weights)):
            z, clip = latents[index], clips[index]
            start = int(generator.integers(0, max(1, z.shape[-1] - frames)))
            lo, hi = max(0, start - context), min(z.shape[-1], start + frames + context)
            z_batch[b, :, lo - (start - context): hi - (start - context)] = z[:, lo:hi] * std + mean
            piece = clip[start * hop: (start + frames) * hop]
            audio[b, 0, : len(piece)] = piece
        yield LatentBatch(latents=z_batch, audio=torch.from_numpy(audio), context=context)


def fixed_windows(clips: list[np.ndarray], *, samples: int, count: int, seed: int) -> list[torch.Tensor]:
    """A fixed set of windows (validation), batches of 8."""
    generator = np.random.default_rng(seed)
    stream = random_audio_windows(clips, samples=samples, batch_size=8, generator=generator)
    return [next(stream) for _ in range(max(1, count // 8))]


def train_codec_command(data: list[str], out_dir: str, *, steps: int, num_filters: int, latent_dim: int,
                        batch_size: int, window_seconds: float, lr: float, seed: int, resume: bool,
                        max_minutes: float | None, threads: int | None, command: str,
                        init: str | None = None, freeze_encoder: bool = False, latent_noise: float = 0.1,
                        stft_sizes: tuple[int, ...] = (512, 1024, 2048), decoder: str | None = None,
                        decoder_dim: int = 256, decoder_layers: int = 8, encoder: str | None = None,
                        encoder_dim: int = 256, encoder_layers: int = 4, pitch_weight: float = 0.0,
                        decoder_fft: int | None = None) -> dict:
    """Train a codec on the datasets and write a half-precision checkpoint to `out_dir`.

    init: start from this codec checkpoint; freeze_encoder: train only its decoder, so
    the latent space (and every diffusion model trained on it) stays valid; its latents
    are then encoded once per song (cached) and the decoder learns from whole-song latents.
    decoder: "spectral" puts a fresh `SpectralDecoder` (ConvNeXt + ISTFT) in place of
    EnCodec's decoder; "encodec" (or None) keeps the one the codec has. encoder: "spectral"
    puts a fresh `SpectralEncoder` (log-magnitude STFT + ConvNeXt) in place of EnCodec's.
    """
    from autoencoder.codec import CodecConfig, EncodecCodec
    from autoencoder.train import CodecTrainConfig, fit_latent_statistics, train_codec

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rows = accepted_rows(data)
    train_rows, val_rows = split_rows(rows)
    if freeze_encoder and not init:
        raise InputError("--freeze-encoder needs --init CODEC_DIR (the codec whose latent space to keep)")
    if init:
        codec = EncodecCodec.from_pretrained(init)
        config = codec.config
        previous = dict(config.training)
    else:
        config = CodecConfig.small(num_filters=num_filters, latent_dim=latent_dim)
        codec = EncodecCodec(config)
        previous = {}
    if encoder == "encodec" and codec.spectral_encoder is not None:
        raise InputError(f"--init {init}: has a spectral encoder; EnCodec's encoder cannot be put back")
    if encoder == "spectral" and codec.spectral_encoder is None:
        if freeze_encoder:
            raise InputError("--encoder spectral makes a new latent space: it cannot be combined with --freeze-encoder")
        codec.set_spectral_encoder({"dim": encoder_dim, "layers": encoder_layers})
    if decoder not in (None, "encodec", "spectral"):
        raise InputError(f"--decoder {decoder}: unknown (known: encodec, spectral)")
    if decoder == "spectral" and (codec.spectral is None or not init):
        codec.set_spectral_decoder({"dim": decoder_dim, "layers": decoder_layers,
                                    **({"n_fft": decoder_fft} if decoder_fft else {})})
    elif decoder == "encodec" and codec.spectral is not None:
        raise InputError(f"--init {init}: has a spectral decoder; EnCodec's decoder cannot be put back")
    elif decoder_fft and codec.spectral is None:
        raise InputError("--decoder-fft sets the frame of a spectral decoder: add --decoder spectral")
    elif decoder_fft and codec.spectral.n_fft != decoder_fft:
        hop = codec.hop_length
        if decoder_fft < hop or (decoder_fft - hop) % 2:
            raise InputError(f"--decoder-fft {decoder_fft}: must be >= the hop ({hop}) with an even difference")
        codec.resize_spectral_decoder(decoder_fft)
    frames = int(round(window_seconds * codec.frame_rate))
    samples = frames * codec.hop_length
    train_clips = load_audio_rows(train_rows, codec.sample_rate)
    val_clips = load_audio_rows(val_rows, codec.sample_rate)
    if freeze_encoder:
        items = encode_dataset(train_rows, row_folders(data, rows), codec, Path(out_dir) / "training" / "cache")
        batches = cached_latent_windows([it["latents"] for it in items], train_clips, codec, frames=frames,
                                        batch_size=batch_size, generator=np.random.default_rng(seed))
    else:
        batches = random_audio_windows(train_clips, samples=samples, batch_size=batch_size,
                                       generator=np.random.default_rng(seed))
    validation = fixed_windows(val_clips, samples=samples * 2, count=32, seed=seed + 1)
    train_config = CodecTrainConfig(steps=steps, lr=lr, batch_size=batch_size, seed=seed, max_minutes=max_minutes,
                                    freeze_encoder=freeze_encoder, latent_noise=latent_noise,
                                    stft_sizes=tuple(stft_sizes), pitch_weight=pitch_weight,
                                    waveform_weight=0.0 if codec.spectral is not None else 1.0)
    started = time.monotonic()
    metrics = train_codec(codec, batches, out_dir=Path(out_dir) / "training", config=train_config,
                          validation=validation, resume=resume)
    if not freeze_encoder:  # a frozen encoder keeps its statistics: the latents must not move
        fit_latent_statistics(codec, fixed_windows(train_clips, samples=samples * 4, count=64, seed=seed + 2))
    config.training = {
        **({"previous": previous} if previous else {}),
        "command": command, "seed": seed, "steps": metrics["step"],
        "minutes": round((time.monotonic() - started) / 60, 1),
        "data": data, "files": len(train_rows), "validation_files": len(val_rows),
        "licences": licence_summary(train_rows + val_rows),
        "validation": {k: v for k, v in metrics.items() if k != "step"},
        "machine": machine_summary(), "latent_identity": codec.latent_identity(),
    }
    codec.save_pretrained(out_dir, dtype=torch.float16)
    write_model_card(Path(out_dir), "codec", config.training, extra=asdict(config),
                     log_path=Path(out_dir) / "training" / "log.jsonl")
    return metrics


def machine_summary() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": sys.version.split()[0]}


def loss_curve(log_path: Path, points: int = 12) -> list[str]:
    """Markdown table rows of the training log: loss at ~`points` steps, and every validation."""
    if not log_path.is_file():
        return []
    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    train = [r for r in rows if "loss" in r]
    validation = {r["step"]: r["validation"] for r in rows if "validation" in r}
    keep = train[:: max(1, len(train) // points)] + train[-1:] if train else []
    lines = ["| step | minutes | training loss | validation |", "| --- | --- | --- | --- |"]
    seen = set()
    for r in keep:
        if r["step"] in seen:
            continue
        seen.add(r["step"])
        nearest = max((s for s in validation if s <= r["step"]), default=None)
        shown = json.dumps({k: round(v, 4) for k, v in validation[nearest].items() if isinstance(v, float)}) \
            if nearest is not None else ""
        lines.append(f"| {r['step']} | {r.get('minutes', '')} | {r['loss']:.4f} | {shown} |")
    return lines


def write_model_card(directory: Path, kind: str, training: dict, *, extra: dict | None = None,
                     log_path: Path | None = None) -> None:
    """MODEL_CARD.md: what the model is, the exact command and seed, data licences, loss curve, metrics."""
    lines = [f"# Bundled {kind} model", "",
             f"Trained here with `{training['command']}` (seed {training['seed']}).", "",
             "## Training data", "",
             f"- datasets: {', '.join(map(str, training.get('data', [])))}",
             f"- files: {training.get('files')} training, {training.get('validation_files')} validation",
             "- licences: " + ", ".join(f"{k} ({v} files)" for k, v in training.get("licences", {}).items()),
             "- every file had opt-in consent and an allowed licence (`composer data check`)", "",
             "## Training", "",
             f"- steps: {training.get('steps')}, wall time: {training.get('minutes')} minutes",
             f"- machine: {json.dumps(training.get('machine', {}))}", "",
             "## Validation metrics", "", "```", json.dumps(training.get("validation", {}), indent=2), "```", ""]
    curve = loss_curve(log_path) if log_path else []
    if curve:
        lines += ["## Loss curve", "", *curve, ""]
    if training.get("notes"):
        lines += ["## Notes", "", training["notes"], ""]
    if extra:
        lines += ["## Config", "", "```json", json.dumps(extra, indent=2, default=str), "```", ""]
    write_text_atomic(directory / "MODEL_CARD.md", "\n".join(lines))


# --- diffusion ----------------------------------------------------------------
# Metadata fields that describe a file rather than the music; never used as tags.
NON_TAG_FIELDS = {"file_name", "text", "caption", "licence", "license", "consent", "split", "plan", "labels",
                  "label_frame_rate", "sections", "programs", "source", "soundfont", "title", "lyrics",
                  "duration", "tempo", "bpm", "beats_per_bar", "meter", "tags", "artist_consent"}


def row_tags(fields: dict) -> dict[str, str]:
    """The conditioning tags of a metadata row: its scalar descriptive fields (persona fields too)."""
    tags = {k: str(v) for k, v in (fields.get("tags") or {}).items() if k != "theme"}
    for name, value in fields.items():
        if name not in NON_TAG_FIELDS and isinstance(value, (str, int, float, bool)) and value != "":
            tags[name] = str(value)
    if "key" in tags:  # the mode is a tag; the tonic lives in the controls
        tags["mode"] = tags.pop("key").split()[-1].lower()
    return tags


def _row_plan(root_audio_path: Path, fields: dict, folder: Path):
    from structure.plan import SongPlan

    plan_file = fields.get("plan")
    if not plan_file:
        return None
    return SongPlan.from_json((folder / plan_file).read_text())


def encode_dataset(rows: list[tuple[Path, dict]], folders: dict[Path, Path], codec, cache_dir: Path,
                   *, progress: bool = True) -> list[dict]:
    """Latents and frame controls of every row, cached per codec identity (safetensors)."""
    from safetensors.torch import load_file, save_file
    from tqdm import tqdm

    from structure.controls import NUM_CONTROLS, controls

    cache = cache_dir / f"latents-{codec.latent_identity()}"
    cache.mkdir(parents=True, exist_ok=True)
    items = []
    for path, fields in tqdm(rows, desc="encoding latents", unit="file", disable=not progress):
        key = hashlib_name(path)
        file = cache / f"{key}.safetensors"
        if file.exists():
            tensors = load_file(str(file))
        else:
            stream = audio_stream(path, sample_rate=codec.sample_rate, channels=codec.channels)
            latents = codec.encode_stream(stream)[0]  # block by block: archives may hold very long files
            plan = _row_plan(path, fields, folders[path])
            frames = latents.shape[-1]
            frame_controls = (controls(plan, codec.frame_rate, frames=frames) if plan is not None
                              else np.zeros((frames, NUM_CONTROLS), dtype=np.float32))
            tensors = {"latents": latents.to(torch.float16).contiguous(),
                       "controls": torch.from_numpy(frame_controls).to(torch.float16).contiguous(),
                       "has_controls": torch.tensor([plan is not None])}
            tmp = file.with_suffix(".tmp")
            save_file(tensors, str(tmp))
            tmp.replace(file)
        items.append({"latents": tensors["latents"].float(), "controls": tensors["controls"].float(),
                      "has_controls": bool(tensors["has_controls"][0]), "tags": row_tags(fields),
                      "text": fields.get("text") or fields.get("caption") or ""})
    return items


def split_rows(rows: list[tuple[Path, dict]]) -> tuple[list, list]:
    """(training rows, validation rows); with no validation split, the first training row validates."""
    train_rows = [r for r in rows if r[1].get("split", "train") != "validation"]
    return train_rows, [r for r in rows if r[1].get("split") == "validation"] or train_rows[:1]


def row_folders(data: list[str], rows: list[tuple[Path, dict]]) -> dict[Path, Path]:
    """Each row's dataset folder (where its plan and labels live)."""
    return {path: Path(folder) for folder in data for path, _ in rows if Path(folder) in path.parents}


def latent_items(data: list[str], codec, cache_dir: Path):
    """(train rows, validation rows, train items, validation items): every accepted row's
    latents, controls, tags and caption embedding, encoded once per codec (cached)."""
    rows = accepted_rows(data)
    folders = row_folders(data, rows)
    train_rows, val_rows = split_rows(rows)
    items = encode_dataset(train_rows, folders, codec, cache_dir)
    val_items = encode_dataset(val_rows, folders, codec, cache_dir)
    for item, embedding in zip(items + val_items, text_embeddings([it["text"] for it in items + val_items])):
        item["text_embedding"] = embedding
    return train_rows, val_rows, items, val_items


def hashlib_name(path: Path) -> str:
    import hashlib

    stat = path.stat()
    return hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:20]


def text_embeddings(texts: list[str]) -> torch.Tensor:
    """all-MiniLM-L6-v2 embeddings `[n, 384]` of captions (zeros for empty ones)."""
    from structure.prompt import sentence_embedder

    out = torch.zeros(len(texts), 384)
    present = [i for i, t in enumerate(texts) if t]
    if present:
        embed = sentence_embedder()
        for start in range(0, len(present), 64):
            chunk = present[start: start + 64]
            out[chunk] = torch.from_numpy(embed([texts[i] for i in chunk]))
    return out


def latent_windows(items: list[dict], model, *, frames: int, batch_size: int,
                   generator: np.random.Generator) -> Iterator[tuple[torch.Tensor, dict]]:
    """Endless batches of random windows: (x0 [B, D, frames], cond)."""
    lengths = np.array([max(1, it["latents"].shape[-1] - frames) for it in items], dtype=np.float64)
    weights = lengths / lengths.sum()
    groups = len(model.group_names)
    while True:
        chosen = generator.choice(len(items), size=batch_size, p=weights)
        x0, ctrl, flags, tags, text, present = [], [], [], [], [], []
        for index in chosen:
            item = items[index]
            start = int(generator.integers(0, max(1, item["latents"].shape[-1] - frames)))
            window = item["latents"][:, start: start + frames]
            control = item["controls"][start: start + frames]
            if window.shape[-1] < frames:  # short clip: pad with its own tail (rare)
                window = torch.nn.functional.pad(window, (0, frames - window.shape[-1]), mode="replicate")
                control = torch.nn.functional.pad(control.T, (0, frames - control.shape[0]), mode="replicate").T
            x0.append(window)
            ctrl.append(control)
            flags.append(torch.full((groups,), 1.0 if item["has_controls"] else 0.0))
            tags.append(item["tags"])
            text.append(item["text_embedding"])
            present.append(1.0 if item["text"] else 0.0)
        yield torch.stack(x0), {"controls": torch.stack(ctrl), "control_groups": torch.stack(flags),
                                "tags": model.encode_tags(tags), "text": torch.stack(text),
                                "text_present": torch.tensor(present)}


def train_diffusion_command(data: list[str], codec_dir: str | None, out_dir: str, *, steps: int,
                            channels: tuple[int, ...], blocks: int, batch_size: int, lr: float, seed: int,
                            resume: bool, max_minutes: float | None, threads: int | None, command: str,
                            init: str | None = None, objective: str = "rectified_flow") -> dict:
    """Train (or fine-tune, with `init`) the diffusion model; writes a half-precision checkpoint."""
    from autoencoder import load_codec
    from diffusion.flow import FlowConfig
    from diffusion.model import DiffusionModel, ModelConfig
    from diffusion.train import DiffusionTrainConfig, train_diffusion
    from diffusion.unet import UNetConfig
    from structure.controls import GROUP_NAMES, GROUPS, NUM_CONTROLS

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    codec = load_codec(codec_dir)
    out = Path(out_dir)
    train_rows, val_rows, items, val_items = latent_items(data, codec, out / "training" / "cache")
    if init:  # fine-tune: start from a model, grow its vocabulary with the new fields
        model = DiffusionModel.from_pretrained(init)
        if model.config.codec and model.config.codec != codec.latent_identity():
            raise InputError(f"--init {init}: trained on the latents of codec {model.config.codec}, "
                             f"not {codec.latent_identity()}")
        model.grow_tags([it["tags"] for it in items])
    else:
        unet = UNetConfig(latent_dim=codec.latent_dim, num_controls=NUM_CONTROLS,
                          control_groups=tuple(GROUPS[g] for g in GROUP_NAMES), group_names=GROUP_NAMES,
                          channels=tuple(channels), blocks_per_level=blocks)
        config = ModelConfig(unet=unet, flow=FlowConfig(objective=objective), frame_rate=codec.frame_rate,
                             codec=codec.latent_identity())
        config.tags = {}
        model = DiffusionModel(config)
        model.grow_tags([it["tags"] for it in items])
    frames = model.config.window_frames
    batches = latent_windows(items, model, frames=frames, batch_size=batch_size, generator=np.random.default_rng(seed))
    val_stream = latent_windows(val_items, model, frames=frames, batch_size=16,
                                generator=np.random.default_rng(seed + 1))
    validation = [next(val_stream) for _ in range(4)]
    started = time.monotonic()
    train_config = DiffusionTrainConfig(steps=steps, lr=lr, seed=seed, max_minutes=max_minutes)
    ema_model, metrics = train_diffusion(model, batches, out_dir=out / "training", config=train_config,
                                         validation=validation, resume=resume)
    ema_model.config.training = {
        "command": command, "seed": seed, "steps": metrics["step"],
        "minutes": round((time.monotonic() - started) / 60, 1), "data": data, "files": len(train_rows),
        "validation_files": len(val_rows), "licences": licence_summary(train_rows + val_rows),
        "validation": {k: v for k, v in metrics.items() if k != "step"}, "codec": codec.identity(),
        "codec_latent_identity": codec.latent_identity(),
        "parameters": sum(p.numel() for p in ema_model.parameters()), "machine": machine_summary(),
    }
    ema_model.save_pretrained(out, dtype=torch.float16)
    write_model_card(out, "diffusion", ema_model.config.training, extra=ema_model.config.to_dict(),
                     log_path=out / "training" / "log.jsonl")
    return metrics


class AudioWindowDataset(torch.utils.data.IterableDataset):
    """Endless random windows `[1, samples]` of mono audio clips (codec training)."""

    def __init__(self, clips: list[np.ndarray], *, samples: int, seed: int = 0):
        self.clips, self.samples, self.seed = clips, samples, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        generator = np.random.default_rng([self.seed, info.id if info else 0])
        for batch in random_audio_windows(self.clips, samples=self.samples, batch_size=1, generator=generator):
            yield batch[0]


class LatentWindowDataset(torch.utils.data.IterableDataset):
    """Endless random windows of cached latents `[D, frames]` with their aligned frame
    controls and tags (diffusion training); items from `encode_dataset`."""

    def __init__(self, items: list[dict], model, *, frames: int, seed: int = 0):
        self.items, self.model, self.frames, self.seed = items, model, frames, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        generator = np.random.default_rng([self.seed, info.id if info else 0])
        for x0, cond in latent_windows(self.items, self.model, frames=self.frames, batch_size=1, generator=generator):
            yield x0[0], {k: v[0] for k, v in cond.items()}
