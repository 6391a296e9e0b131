"""The diffusion model as a checkpoint: network + flow objective + tag vocabulary.

Tags are open-ended: each metadata field (genre, mood, key, or an archive's
own such as location or beard) gets learned embeddings keyed by field and
value, plus an unknown bucket per field. `TagVocab.extend` adds fields and
values without renumbering existing ones, and `DiffusionModel.grow_tags`
enlarges the embedding table, so a persona fine-tune adds its fields with no
code change.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from diffusion.flow import FlowConfig, RectifiedFlow
from diffusion.unet import UNet1D, UNetConfig

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
UNKNOWN = "<unk>"


def _normal(value: object) -> str:
    return str(value).split(",")[0].strip().lower()


@dataclass
class TagVocab:
    """Field -> value -> embedding row. Row 0 means "no tag"."""

    ids: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def fields(self) -> list[str]:
        return list(self.ids)

    @property
    def size(self) -> int:
        return 1 + max((i for values in self.ids.values() for i in values.values()), default=0)

    def extend(self, rows: list[dict[str, object]]) -> TagVocab:
        """A vocabulary that also holds every field and value in `rows`; old ids unchanged."""
        ids = {f: dict(v) for f, v in self.ids.items()}
        next_id = self.size
        for row in rows:
            for name, value in row.items():
                if value is None or value == "":
                    continue
                values = ids.setdefault(name, {})
                if UNKNOWN not in values:
                    values[UNKNOWN] = next_id
                    next_id += 1
                key = _normal(value)
                if key not in values:
                    values[key] = next_id
                    next_id += 1
        return TagVocab(ids)

    def encode(self, tags: dict[str, object]) -> list[int]:
        """One id per field (in `fields` order): the value's row, the field's unknown row, or 0."""
        out = []
        for name, values in self.ids.items():
            value = tags.get(name)
            if value is None or value == "":
                out.append(0)
            else:
                out.append(values.get(_normal(value), values[UNKNOWN]))
        return out


@dataclass
class ModelConfig:
    unet: UNetConfig = field(default_factory=UNetConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    frame_rate: float = 75.0
    window_frames: int = 112  # the 1.5-second training window
    codec: str = ""  # identity of the codec whose latents this model learnt
    tags: dict = field(default_factory=dict)  # TagVocab.ids
    training: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        unet = dict(data.get("unet", {}))
        unet["channels"] = tuple(unet.get("channels", UNetConfig.channels))
        unet["control_groups"] = tuple(tuple(g) for g in unet.get("control_groups", UNetConfig.control_groups))
        unet["group_names"] = tuple(unet.get("group_names", UNetConfig.group_names))
        flow = dict(data.get("flow", {}))
        if "mask_probabilities" in flow:
            flow["mask_probabilities"] = tuple(flow["mask_probabilities"])
        rest = {k: v for k, v in data.items() if k not in ("unet", "flow")}
        return cls(unet=UNetConfig(**unet), flow=FlowConfig(**flow), **rest)


class DiffusionModel(nn.Module):
    """`model(x_t, t, cond=...) -> velocity`; `model.loss(x0, cond, generator=...)` for training."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.vocab = TagVocab(config.tags)
        config.unet.tag_vocab_size = max(config.unet.tag_vocab_size, self.vocab.size)
        self.flow = RectifiedFlow(UNet1D(config.unet), config.flow)

    @property
    def network(self) -> UNet1D:
        return self.flow.network

    @property
    def group_names(self) -> tuple[str, ...]:
        return self.config.unet.group_names

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, *, cond: dict) -> torch.Tensor:
        return self.flow.velocity(x_t, t, cond=cond)

    def loss(self, x0: torch.Tensor, cond: dict, *, generator: torch.Generator) -> torch.Tensor:
        return self.flow.loss(x0, cond, generator=generator)

    def encode_tags(self, tags: list[dict[str, object]]) -> torch.Tensor:
        """`[B, fields]` tag ids for a batch of tag dicts."""
        return torch.tensor([self.vocab.encode(t) for t in tags], dtype=torch.long).reshape(len(tags), -1)

    def grow_tags(self, rows: list[dict[str, object]]) -> None:
        """Add the fields and values of `rows` (e.g. a persona archive's metadata) to the vocabulary."""
        self.vocab = self.vocab.extend(rows)
        self.config.tags = self.vocab.ids
        embedding = self.network.tag_embedding
        if self.vocab.size > embedding.num_embeddings:
            grown = nn.Embedding(self.vocab.size, embedding.embedding_dim, padding_idx=0)
            nn.init.normal_(grown.weight, std=0.02)
            with torch.no_grad():
                grown.weight[: embedding.num_embeddings] = embedding.weight
                grown.weight[0].zero_()
            self.network.tag_embedding = grown
            self.config.unet.tag_vocab_size = self.vocab.size

    def save_pretrained(self, directory: str | Path, *, dtype: torch.dtype = torch.float32) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to(dtype).contiguous() for k, v in self.state_dict().items()}
        # each file written aside and moved in whole (weights first, then the config that names
        # their shapes): a kill leaves the old checkpoint or the new one, never half a file
        import os
        import tempfile

        parts = []
        try:
            for name in (WEIGHTS_NAME, CONFIG_NAME):
                handle, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
                os.close(handle)
                parts.append((tmp, directory / name))
                if name == WEIGHTS_NAME:
                    save_file(state, tmp, metadata={"format": "pt"})
                else:
                    Path(tmp).write_text(json.dumps(self.config.to_dict(), indent=2))
                os.chmod(tmp, 0o644)
            for tmp, final in parts:
                os.replace(tmp, final)
        finally:
            for tmp, _ in parts:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> DiffusionModel:
        directory = Path(directory)
        config = ModelConfig.from_dict(json.loads((directory / CONFIG_NAME).read_text()))
        model = cls(config)
        model.checkpoint_dir = directory  # where files stored beside the weights (its originality index) live
        state = load_file(str(directory / WEIGHTS_NAME))
        bad = [name for name, tensor in state.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
        if bad:
            from diffusion import CheckpointNotFound

            raise CheckpointNotFound(f"model {directory}: weights {bad[0]} hold NaN or infinite values "
                                     "(a damaged checkpoint)")
        model.load_state_dict({k: v.float() for k, v in state.items()})
        return model.eval()

    def identity(self) -> str:
        digest = hashlib.sha256(json.dumps(self.config.to_dict(), sort_keys=True, default=str).encode())
        for name, tensor in sorted(self.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().to(torch.float16).numpy().tobytes())
        return digest.hexdigest()[:16]


def blend(base: DiffusionModel, tuned: DiffusionModel, strength: float) -> DiffusionModel:
    """`tuned` (fine-tuned from `base`) pulled back toward `base`: every weight becomes
    base + strength * (tuned - base), weight-space ensembling as in WiSE-FT (Wortsman et al.,
    "Robust fine-tuning of zero-shot models", 2022). 1 is `tuned`, 0 is `base`'s network.
    Tag rows `base` never had (fields and values the fine-tune added) keep `tuned`'s values.
    The result keeps `tuned`'s config, vocabulary and checkpoint folder."""
    import copy

    if not 0.0 <= float(strength) <= 1.0:
        raise ValueError(f"strength {strength} is outside 0..1")
    for name, values in base.vocab.ids.items():
        if any(tuned.vocab.ids.get(name, {}).get(value) != row for value, row in values.items()):
            raise ValueError(f"the models' tag vocabularies differ at field {name!r}: not a fine-tune of this base")
    base_state, tuned_state = base.state_dict(), tuned.state_dict()
    if set(base_state) != set(tuned_state):
        raise ValueError("the models have different layers: not a fine-tune of this base")
    known = sorted({0} | {row for values in base.vocab.ids.values() for row in values.values()})
    embedding = "flow.network.tag_embedding.weight"
    state = {}
    for name, weight in tuned_state.items():
        start = base_state[name]
        if not weight.is_floating_point():
            state[name] = weight
        elif name == embedding:
            rows = weight.clone()
            rows[known] = start[known] + strength * (weight[known] - start[known])
            state[name] = rows
        elif weight.shape != start.shape:
            raise ValueError(f"the models differ in {name} {tuple(start.shape)} -> {tuple(weight.shape)}: "
                             "not a fine-tune of this base")
        else:
            state[name] = start + strength * (weight - start)
    out = copy.deepcopy(tuned)
    out.load_state_dict(state)
    return out.eval()
