"""The v-diffusion objective behind the same sampler interface as rectified flow."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from diffusion.flow import FlowConfig, RectifiedFlow
from diffusion.sampling import linear_timesteps, sample_euler, sample_multistep


class _Oracle(nn.Module):
    """The exact v-prediction for data that is one known latent `x0` (cosine path)."""

    def __init__(self, x0: torch.Tensor):
        super().__init__()
        self.x0 = x0

    def forward(self, x, s, *, cond):
        shape = (-1, 1, 1)
        alpha, sigma = torch.cos(0.5 * math.pi * s).view(shape), torch.sin(0.5 * math.pi * s).view(shape)
        noise = (x - alpha * self.x0) / sigma.clamp(min=1e-6)
        return alpha * noise - sigma * self.x0


def test_unknown_objective_is_refused():
    with pytest.raises(ValueError, match="unknown objective"):
        FlowConfig(objective="score")


@pytest.mark.parametrize("t", [0.05, 0.3, 0.5, 0.8, 0.97])
def test_v_model_answers_in_rectified_flow_velocity(t):
    x0 = torch.randn(2, 4, 10, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(2, 4, 10, generator=torch.Generator().manual_seed(1))
    flow = RectifiedFlow(_Oracle(x0), FlowConfig(objective="v_diffusion"))
    x_t = (1 - t) * x0 + t * noise
    velocity = flow.velocity(x_t, torch.full((2,), t), cond={})
    assert torch.allclose(velocity, noise - x0, atol=1e-4)


@pytest.mark.parametrize("sampler", [sample_euler, sample_multistep])
def test_samplers_bring_a_v_model_to_its_data(sampler):
    x0 = torch.randn(1, 4, 10, generator=torch.Generator().manual_seed(0))
    flow = RectifiedFlow(_Oracle(x0), FlowConfig(objective="v_diffusion"))
    start = torch.randn(1, 4, 10, generator=torch.Generator().manual_seed(2))
    out = sampler(flow, start, linear_timesteps(8, start=0.999), cond={})
    assert (out - x0).abs().max() < 1e-2


def test_known_frames_reach_a_v_model_clean():
    seen = {}

    class Spy(nn.Module):
        def forward(self, x, s, *, cond):
            seen["x"] = x.clone()
            return torch.zeros_like(x)

    known = torch.full((1, 2, 6), 3.0)
    mask = torch.zeros(1, 1, 6)
    mask[..., :2] = 1
    flow = RectifiedFlow(Spy(), FlowConfig(objective="v_diffusion"))
    flow.velocity(torch.zeros(1, 2, 6), torch.tensor([0.5]), cond={"known": known, "mask": mask})
    assert torch.equal(seen["x"][..., :2], known[..., :2]) and torch.equal(seen["x"][..., 2:], torch.zeros(1, 2, 4))


def test_v_diffusion_model_trains_saves_and_samples(tmp_path):
    from conftest import tiny_codec, tiny_model

    from composer.train.diffusion import train_diffusion
    from diffusion.model import DiffusionModel
    from diffusion.train import DiffusionTrainConfig

    torch.manual_seed(0)
    model = tiny_model(tiny_codec(), window_frames=24, objective="v_diffusion")
    x0 = torch.randn(4, 8, 24)
    g = torch.Generator().manual_seed(0)
    cond = {"controls": torch.randn(4, 24, model.config.unet.num_controls, generator=g),
            "control_groups": torch.ones(4, len(model.group_names))}

    def batches():
        while True:
            yield x0, cond

    def mean_loss() -> float:  # over several draws of t, noise and masks
        with torch.no_grad():
            return sum(float(model.loss(x0, cond, generator=torch.Generator().manual_seed(i))) for i in range(8)) / 8

    start = mean_loss()
    config = DiffusionTrainConfig(steps=150, lr=3e-3, warmup=10, log_every=1000, validate_every=1000, save_every=1000)
    train_diffusion(model, batches(), out_dir=tmp_path / "run", config=config, progress=False)
    assert mean_loss() < 0.8 * start
    model.save_pretrained(tmp_path / "model")
    reloaded = DiffusionModel.from_pretrained(tmp_path / "model")
    assert reloaded.config.flow.objective == "v_diffusion"
    noise = torch.randn(1, 8, 24, generator=torch.Generator().manual_seed(3))
    out = sample_multistep(reloaded, noise, linear_timesteps(8), cond={})
    assert out.shape == noise.shape and torch.isfinite(out).all()
