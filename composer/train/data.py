"""Training data on disk -> batches: the rows training may learn from (licence and consent
checked), audio and latent windows drawn by length, latents cached per codec identity."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from composer.conditioning import cond_batch, row_tags, text_embeddings
from composer.data.audio import audio_read, audio_stream
from composer.errors import InputError

log = logging.getLogger(__name__)


def length_weights(lengths: list[int], window: int, groups: list[int] | None = None) -> np.ndarray:
    """How often to draw each clip: by how many distinct windows it holds (at least one).

    groups: each clip's source (for example its dataset folder); every source then gets
    the same share of the draws, and within a source clips are drawn by length, so 15
    hours of recordings do not drown an hour of synthesised songs."""
    starts = np.array([max(1, length - window) for length in lengths], dtype=np.float64)
    if groups is None:
        return starts / starts.sum()
    labels = np.asarray(groups)
    if labels.shape != starts.shape:
        raise ValueError(f"groups: {labels.shape[0]} labels for {starts.shape[0]} clips")
    weights = np.zeros_like(starts)
    names = np.unique(labels)
    for name in names:
        members = labels == name
        weights[members] = starts[members] / starts[members].sum() / len(names)
    return weights


def accepted_rows(folders: list[str], only: set[str] | None = None,
                  labels: str | Path | None = None) -> list[tuple[Path, dict]]:
    """(audio path, metadata fields) for every row training may use, across folders (and among
    the file names in `only`, when given: what a full `composer data check` accepted), with the
    labels an analysis wrote into the folder `labels` (`composer.data.labelling.with_labels`)."""
    from composer.data.datasets import iter_accepted
    from composer.data.labelling import read_labels, with_labels

    analysed = read_labels(labels)

    rows = []
    for folder in folders:
        root = Path(folder)
        if not (root / "metadata.jsonl").is_file():
            raise InputError(f"--data {folder}: no metadata.jsonl (build one with `composer corpus build`)")
        for row in iter_accepted(root, check_audio=False):
            if only is None or row.file_name in only:
                rows.append((root / row.file_name, with_labels(dict(row.fields), analysed.get(row.file_name))))
    if not rows:
        raise InputError(f"--data {', '.join(folders)}: no file with an allowed licence and opt-in consent, and "
                         "not withdrawn since (`composer data check` names each file's reason)")
    return rows


def licence_summary(rows: list[tuple[Path, dict]]) -> dict[str, int]:
    from composer.data.datasets import normalise_licence

    return dict(Counter(normalise_licence(str(f.get("licence", f.get("license", "")))) for _, f in rows))


def consent_summary(rows: list[tuple[Path, dict]]) -> dict[str, int]:
    """How many files each kind of consent covers (artist opt-in, licence grant, ...)."""
    from composer.data.metadata import consent_kind

    return dict(Counter(consent_kind(f.get("consent")) for _, f in rows))


def load_audio_rows(rows: list[tuple[Path, dict]], sample_rate: int, *, progress: bool = True) -> list[np.ndarray]:
    """Each row's audio as mono float32 at `sample_rate` (kept in memory for random windows)."""
    from tqdm import tqdm

    return [audio_read(path, sample_rate=sample_rate, channels=1)[0][0]
            for path, _ in tqdm(rows, desc="loading audio", unit="file", disable=not progress)]


def random_audio_windows(clips: list[np.ndarray], *, samples: int, batch_size: int,
                         generator: np.random.Generator, groups: list[int] | None = None) -> Iterator[torch.Tensor]:
    """Endless batches `[batch, 1, samples]` of random windows, clips drawn by length
    (each group an equal share, with `groups`)."""
    weights = length_weights([len(c) for c in clips], samples, groups)
    while True:
        batch = np.zeros((batch_size, 1, samples), dtype=np.float32)
        for b, index in enumerate(generator.choice(len(clips), size=batch_size, p=weights)):
            clip = clips[index]
            start = int(generator.integers(0, max(1, len(clip) - samples)))
            piece = clip[start: start + samples]
            batch[b, 0, : len(piece)] = piece * generator.uniform(0.5, 1.0)  # gain augmentation
        yield torch.from_numpy(batch)


def cached_latent_windows(latents: list[torch.Tensor], clips: list[np.ndarray], codec, *, frames: int,
                          batch_size: int, generator: np.random.Generator, context: int | None = None,
                          groups: list[int] | None = None):
    """Endless `LatentBatch`es: windows of whole-song latents (normalised, `[D, T]` each) with
    `context` frames each side, and the audio under the centre `frames`."""
    from autoencoder.train import LatentBatch

    hop = codec.hop_length
    context = codec.receptive_frames if context is None else context
    weights = length_weights([z.shape[-1] for z in latents], frames, groups)
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


def _row_plan(root_audio_path: Path, fields: dict, folder: Path):
    from structure.schema import SongPlan

    plan_file = fields.get("plan")
    if not plan_file:
        return None
    return SongPlan.from_json((folder / plan_file).read_text())


def encode_dataset(rows: list[tuple[Path, dict]], folders: dict[Path, Path], codec, cache_dir: Path,
                   *, progress: bool = True, analysed_groups: tuple[str, ...] | None = None) -> list[dict]:
    """Latents of every row, cached per codec identity and audio file (safetensors), its frame
    controls (from its plan as the metadata names it now: labels added or changed after a run
    are learnt by the next), and the control groups each row's plan describes (`trusted_groups`)."""
    from safetensors.torch import load_file, save_file
    from tqdm import tqdm

    from structure.frame_controls import NUM_CONTROLS, controls

    cache = cache_dir / f"latents-{codec.latent_identity()}"
    cache.mkdir(parents=True, exist_ok=True)
    items = []
    for path, fields in tqdm(rows, desc="encoding latents", unit="file", disable=not progress):
        key = hashlib_name(path)
        file = cache / f"{key}.safetensors"
        if file.exists():
            latents = load_file(str(file))["latents"]
        else:
            stream = audio_stream(path, sample_rate=codec.sample_rate, channels=codec.channels)
            latents = codec.encode_stream(stream)[0].to(torch.float16).contiguous()  # block by block: long files
            tmp = file.with_suffix(".tmp")
            save_file({"latents": latents}, str(tmp))
            tmp.replace(file)
        plan = _row_plan(path, fields, folders[path])
        frames = latents.shape[-1]
        frame_controls = (controls(plan, codec.frame_rate, frames=frames) if plan is not None
                          else np.zeros((frames, NUM_CONTROLS), dtype=np.float32))
        # rounded as the cache once held them, so a run trains the same with or without one
        tensors = {"latents": latents, "controls": torch.from_numpy(frame_controls).to(torch.float16),
                   "has_controls": torch.tensor([plan is not None])}
        has_controls = bool(tensors["has_controls"][0]) and bool(fields.get("plan"))
        items.append({"latents": tensors["latents"].float(), "controls": tensors["controls"].float(),
                      "has_controls": has_controls,
                      "groups": trusted_groups(fields, analysed_groups) if has_controls else (),
                      "tags": trusted_tags(fields, analysed_groups), "text": fields.get("text") or fields.get("caption") or "",
                      "folder": str(folders[path])})
    return items


def trusted_groups(fields: dict, analysed_groups: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The control groups a row's plan really describes: all of them for a plan the song was
    made from, `analysed_groups` (default `ANALYSIS_GROUPS`: no melody, bass or drums) for
    labels found by analysis; the others get flag 0, as when a group is dropped, so the model
    never learns that "melody on" can mean "no melody"."""
    from composer.conditioning import ANALYSIS_GROUPS, CONTROL_GROUPS

    if fields.get("labels_source") == "analysis":
        return ANALYSIS_GROUPS if analysed_groups is None else tuple(analysed_groups)
    return tuple(CONTROL_GROUPS)


def trusted_tags(fields: dict, analysed_groups: tuple[str, ...] | None = None) -> dict[str, str]:
    """A row's conditioning tags (`row_tags`), less the mode of an analysed key where its
    harmony is not learnt (`analysed_groups` without "harmony"): the mode is the key's too."""
    tags = row_tags(fields)
    if fields.get("labels_source") == "analysis" and "harmony" not in trusted_groups(fields, analysed_groups):
        tags.pop("mode", None)
    return tags


def split_rows(rows: list[tuple[Path, dict]]) -> tuple[list, list]:
    """(training rows, validation rows); with no validation split, the first training row validates."""
    train_rows = [r for r in rows if r[1].get("split", "train") != "validation"]
    return train_rows, [r for r in rows if r[1].get("split") == "validation"] or train_rows[:1]


def row_folders(data: list[str], rows: list[tuple[Path, dict]]) -> dict[Path, Path]:
    """Each row's dataset folder (where its plan and labels live)."""
    return {path: Path(folder) for folder in data for path, _ in rows if Path(folder) in path.parents}


def latent_items(data: list[str], codec, cache_dir: Path, *, unconfident: str = "exclude",
                 only: set[str] | None = None, analysed_groups: tuple[str, ...] | None = None,
                 labels: str | Path | None = None):
    """(train rows, validation rows, train items, validation items): every accepted row's
    latents, controls, tags and caption embedding, encoded once per codec (cached).

    unconfident: what to do with rows whose analysed labels are not confident
    (`composer data analyze`): "exclude" them (the corpus: they train the codec only), or
    learn their sound "uncontrolled" (a persona: the artist's sound matters, the wrong
    tempo or chords must not; they train with the plan's controls dropped). only: see
    `accepted_rows`. analysed_groups: the control groups learnt from rows labelled by analysis
    (`trusted_groups`). labels: see `accepted_rows`."""
    rows = accepted_rows(data, only, labels)
    unsure = {path for path, fields in rows
              if fields.get("labels_source") == "analysis" and fields.get("labels_confident") is False}
    if unsure and unconfident == "exclude":
        log.info("%d files with unconfident analysed labels left out (codec training only)", len(unsure))
        rows = [r for r in rows if r[0] not in unsure]
        if not rows:
            raise InputError(f"--data {', '.join(data)}: every file's analysed labels are unconfident "
                             "(`composer data analyze` marks them); nothing for the diffusion model to learn")
    elif unsure:
        log.info("%d files with unconfident analysed labels learnt without their controls", len(unsure))
        rows = [(path, {k: v for k, v in fields.items() if k not in ("plan", "labels")} if path in unsure else fields)
                for path, fields in rows]
    folders = row_folders(data, rows)
    train_rows, val_rows = split_rows(rows)
    items = encode_dataset(train_rows, folders, codec, cache_dir, analysed_groups=analysed_groups)
    val_items = encode_dataset(val_rows, folders, codec, cache_dir, analysed_groups=analysed_groups)
    for item, embedding in zip(items + val_items, text_embeddings([it["text"] for it in items + val_items])):
        item["text_embedding"] = embedding
    return train_rows, val_rows, items, val_items


def hashlib_name(path: Path) -> str:
    import hashlib

    stat = path.stat()
    return hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:20]


def latent_windows(items: list[dict], model, *, frames: int, batch_size: int,
                   generator: np.random.Generator, balance: bool = False) -> Iterator[tuple[torch.Tensor, dict]]:
    """Endless batches of random windows: (x0 [B, D, frames], cond). Each item's control
    groups are on where its plan describes them (`trusted_groups`). balance: every dataset
    folder gets the same share of the windows (by default each clip by its length)."""
    weights = length_weights([it["latents"].shape[-1] for it in items], frames,
                             [it.get("folder", "") for it in items] if balance else None)
    names = model.group_names
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
            trusted = item.get("groups", names if item["has_controls"] else ())
            flags.append(torch.tensor([1.0 if name in trusted else 0.0 for name in names]))
            tags.append(item["tags"])
            text.append(item["text_embedding"])
            present.append(1.0 if item["text"] else 0.0)
        yield torch.stack(x0), cond_batch(controls=torch.stack(ctrl), control_groups=torch.stack(flags),
                                          tags=model.encode_tags(tags), text=torch.stack(text),
                                          text_present=torch.tensor(present))
