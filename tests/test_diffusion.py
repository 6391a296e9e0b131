"""The denoiser, objective, samplers and checkpoints on tiny random models."""

from __future__ import annotations

import pytest
import torch
from conftest import killed_after, tiny_codec, tiny_model

from composer.train.diffusion import train_diffusion
from diffusion.flow import MASK_KINDS, random_masks
from diffusion.model import DiffusionModel, TagVocab
from diffusion.sampling import (
    drop_condition,
    get_sampler,
    guided_velocity,
    invert,
    linear_timesteps,
    sample_euler,
    shifted_timesteps,
)
from diffusion.train import DiffusionTrainConfig


def _model(window_frames: int = 24) -> DiffusionModel:
    return tiny_model(tiny_codec(), window_frames=window_frames)


def _cond(model: DiffusionModel, batch: int, frames: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"controls": torch.randn(batch, frames, model.config.unet.num_controls, generator=g),
            "control_groups": torch.ones(batch, len(model.group_names)),
            "tags": model.encode_tags([{"genre": "folk", "mood": "sad"}] * batch),
            "text": torch.randn(batch, 384, generator=g), "text_present": torch.ones(batch)}


def test_forward_shapes_any_length():
    model = _model()
    for frames in (24, 17, 40):
        x = torch.randn(2, 8, frames)
        out = model(x, torch.rand(2), cond=_cond(model, 2, frames))
        assert out.shape == x.shape


def test_sampling_loop_pinned_numerically():
    """A full Euler loop on a fixed tiny model gives fixed numbers (catches silent changes)."""
    model = _model()
    x = torch.randn(1, 8, 24, generator=torch.Generator().manual_seed(0))
    out = sample_euler(model, x, linear_timesteps(4), cond=_cond(model, 1, 24), guidance=2.0)
    again = sample_euler(model, x, linear_timesteps(4), cond=_cond(model, 1, 24), guidance=2.0)
    assert torch.equal(out, again)
    reference = _reference_value(model, x)
    assert abs(float(out.double().norm()) - reference) < 1e-3


def _reference_value(model, x) -> float:
    """The same loop computed by hand (Euler steps of the guided velocity)."""
    cond = _cond(model, 1, 24)
    t = linear_timesteps(4)
    with torch.no_grad():
        for i in range(4):
            v_cond = model(x, torch.full((1,), float(t[i])), cond=cond)
            v_unc = model(x, torch.full((1,), float(t[i])), cond=drop_condition(cond, "all", model.group_names))
            v = v_cond + (2.0 - 1.0) * (v_cond - v_unc)
            x = x + (float(t[i + 1]) - float(t[i])) * v
    return float(x.double().norm())


def test_all_samplers_run_and_keep_known_frames():
    model = _model()
    frames = 24
    known = torch.randn(1, 8, frames)
    mask = torch.zeros(1, 1, frames)
    mask[..., :8] = 1
    cond = {**_cond(model, 1, frames), "known": known, "mask": mask}
    for name in ("euler", "heun", "multistep"):
        out = get_sampler(name)(model, torch.randn(1, 8, frames), shifted_timesteps(6), cond=cond, guidance=1.5)
        assert torch.isfinite(out).all()
        assert torch.allclose(out[..., :8], known[..., :8], atol=1e-6), name


def test_cfg_and_unconditional_paths_differ_and_run():
    model = _model()
    x, t = torch.randn(1, 8, 24), torch.tensor([0.5])
    cond = _cond(model, 1, 24)
    plain = guided_velocity(model, x, t, cond=cond, guidance=None)
    guided = guided_velocity(model, x, t, cond=cond, guidance=3.0)
    per_group = guided_velocity(model, x, t, cond=cond, guidance={"tags": 2.0, "melody": 1.5},
                                group_names=model.group_names)
    unconditional = model(x, t, cond=drop_condition(cond, "all", model.group_names))
    assert not torch.allclose(plain, guided)
    assert not torch.allclose(plain, per_group)
    assert torch.isfinite(unconditional).all()


def test_guidance_interval_guides_only_inside_it():
    model = _model()
    cond = _cond(model, 1, 24)
    batches = []

    def counting(x, t, *, cond):
        batches.append(x.shape[0])
        return model(x, t, cond=cond)

    noise = torch.randn(1, 8, 24, generator=torch.Generator().manual_seed(3))
    times = linear_timesteps(4)  # 1.0, 0.75, 0.5, 0.25 -> 0
    sampler = get_sampler("multistep")
    guided = sampler(counting, noise, times, cond=cond, guidance=3.0)
    assert batches == [2, 2, 2, 2]
    batches.clear()
    middle = sampler(counting, noise, times, cond=cond, guidance=3.0, guidance_interval=(0.3, 0.8))
    assert batches == [1, 2, 2, 1]  # guided at t = 0.75 and 0.5 only
    batches.clear()
    nowhere = sampler(counting, noise, times, cond=cond, guidance=3.0, guidance_interval=(0.9, 0.95))
    plain = sampler(model, noise, times, cond=cond, guidance=None)
    assert batches == [1, 1, 1, 1]
    torch.testing.assert_close(nowhere, plain)
    assert not torch.allclose(middle, guided) and not torch.allclose(middle, plain)
    everywhere = sampler(model, noise, times, cond=cond, guidance=3.0, guidance_interval=(0.0, 1.0))
    torch.testing.assert_close(everywhere, guided)


def test_inversion_then_sampling_roughly_recovers():
    model = _model()
    x0 = torch.randn(1, 8, 24, generator=torch.Generator().manual_seed(3))
    cond = _cond(model, 1, 24)
    steps = linear_timesteps(32)
    noise = invert(model, x0, steps.flip(0), cond=cond)
    back = sample_euler(model, noise, steps, cond=cond)
    assert float((back - x0).abs().mean()) < 0.1


def test_masks_cover_all_kinds():
    g = torch.Generator().manual_seed(0)
    masks = random_masks(400, 64, g, (0.2,) * len(MASK_KINDS))
    known = masks.sum(dim=(1, 2))
    assert (known == 0).any()  # empty
    assert (masks[:, 0, 0] == 1).any() and (masks[:, 0, -1] == 1).any()  # prefix and suffix kinds
    assert ((masks[:, 0, 0] == 1) & (masks[:, 0, -1] == 1)).any()  # ends
    assert ((masks[:, 0, 0] == 0) & (masks[:, 0, -1] == 0) & (known > 0)).any()  # middle


def test_save_load_round_trip(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path / "m")
    again = DiffusionModel.from_pretrained(tmp_path / "m")
    x, t = torch.randn(1, 8, 24), torch.tensor([0.3])
    cond = _cond(model, 1, 24)
    assert torch.equal(model(x, t, cond=cond), again(x, t, cond=cond))
    assert again.identity() == model.identity()
    assert again.vocab.ids == model.vocab.ids
    assert not list(tmp_path.glob("**/*.bin")) and not list(tmp_path.glob("**/*.pt"))  # never pickle


def test_tag_vocabulary_open_ended_and_stable():
    vocab = TagVocab().extend([{"genre": "folk", "mood": "sad"}])
    first = vocab.encode({"genre": "folk", "mood": "sad"})
    grown = vocab.extend([{"location": "Oslo", "beard": "yes"}])
    assert grown.encode({"genre": "folk", "mood": "sad"})[:2] == first  # old ids unchanged
    ids = grown.encode({"genre": "metal", "location": "Oslo"})
    assert ids[0] == grown.ids["genre"]["<unk>"]  # unknown value -> the field's unknown bucket
    assert ids[1] == 0  # missing field -> no tag
    assert ids[2] == grown.ids["location"]["oslo"]


def test_grow_tags_keeps_old_embeddings():
    model = _model()
    before = model.network.tag_embedding.weight.detach().clone()
    model.grow_tags([{"location": f"town{i}", "beard": "long"} for i in range(100)])  # past the spare rows
    after = model.network.tag_embedding.weight
    assert after.shape[0] > before.shape[0] and after.shape[0] >= model.vocab.size
    assert torch.equal(after[: before.shape[0]], before)
    out = model(torch.randn(1, 8, 24), torch.tensor([0.5]),
                cond={"tags": model.encode_tags([{"location": "town99"}])})
    assert torch.isfinite(out).all()


def test_blend_moves_every_weight_part_of_the_way_to_the_fine_tune():
    import copy

    from diffusion.model import blend

    base = _model()
    base.grow_tags([{"genre": "jazz"}])
    tuned = copy.deepcopy(base)
    tuned.grow_tags([{"location": f"town{i}"} for i in range(100)])  # a persona's own fields
    with torch.no_grad():
        for weight in tuned.parameters():
            weight.add_(torch.randn_like(weight))
    known = sorted({0} | {row for values in base.vocab.ids.values() for row in values.values()})
    for strength in (0.0, 0.3, 1.0):
        mixed = blend(base, tuned, strength)
        for name, weight in mixed.state_dict().items():
            b, t = base.state_dict()[name], tuned.state_dict()[name]
            if name.endswith("tag_embedding.weight"):
                assert torch.allclose(weight[known], b[known] + strength * (t[known] - b[known]), atol=1e-6)
                added = [r for r in range(weight.shape[0]) if r not in known]
                assert torch.equal(weight[added], t[added])  # rows the base never had: the fine-tune's
            elif weight.is_floating_point():
                assert torch.allclose(weight, b + strength * (t - b), atol=1e-6), name
        assert mixed.vocab.ids == tuned.vocab.ids
    assert torch.equal(blend(base, tuned, 1.0).network.tag_embedding.weight, tuned.network.tag_embedding.weight)
    stranger = _model()
    stranger.grow_tags([{"genre": "polka"}])  # "polka" where the base has "jazz": not this base's fine-tune
    with pytest.raises(ValueError, match="vocabularies differ"):
        blend(base, stranger, 0.5)
    with pytest.raises(ValueError, match="outside"):
        blend(base, tuned, 1.5)


def test_one_batch_overfit_loss_falls(tmp_path):
    torch.manual_seed(0)
    model = _model()
    x0 = torch.randn(4, 8, 24)
    cond = _cond(model, 4, 24)

    def batches():
        while True:
            yield x0, cond

    generator = torch.Generator().manual_seed(0)
    start = float(model.loss(x0, cond, generator=generator).detach())
    config = DiffusionTrainConfig(steps=150, lr=3e-3, warmup=10, log_every=1000, validate_every=1000,
                                  save_every=1000)
    trained, metrics = train_diffusion(model, batches(), out_dir=tmp_path, config=config, progress=False)
    generator = torch.Generator().manual_seed(0)
    end = float(model.loss(x0, cond, generator=generator).detach())
    assert end < 0.7 * start
    assert (tmp_path / "last" / "state.json").exists() and (tmp_path / "last" / "ema.safetensors").exists()


def test_training_resumes(tmp_path):
    model = _model()
    x0 = torch.randn(2, 8, 24)
    cond = _cond(model, 2, 24)

    def batches():
        while True:
            yield x0, cond

    straight_model = _model()
    config = DiffusionTrainConfig(steps=5, save_every=1, log_every=1, validate_every=100)
    straight, _ = train_diffusion(straight_model, batches(), out_dir=tmp_path / "straight", config=config,
                                  progress=False)

    with pytest.raises(KeyboardInterrupt):  # the process dies part-way, after step 3 was saved
        train_diffusion(model, killed_after(batches(), 3), out_dir=tmp_path / "resumed", config=config, progress=False)
    # ... and a fresh process resumes: the same weights as a run that never stopped
    resumed, metrics = train_diffusion(_model(), batches(), out_dir=tmp_path / "resumed", config=config,
                                       resume=True, progress=False)
    assert metrics["step"] == 5
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
