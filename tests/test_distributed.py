"""The diffusion training loop under DistributedDataParallel (gloo, 2 processes on the CPU)."""

from __future__ import annotations

import os

import pytest
import torch
import torch.multiprocessing as mp


def _rank_setup(rank: int, world: int, port: int) -> None:
    """This process as rank `rank` of `world` (torchrun's environment), one thread, and the tests' helpers importable."""
    import sys

    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"})
    torch.set_num_threads(1)
    sys.path.insert(0, os.path.dirname(__file__))


def _batches(model, rank: int):
    """Batches as composer.train.data.latent_windows yields them (every condition present), each rank its own."""
    generator = torch.Generator().manual_seed(rank)
    while True:
        yield torch.randn(2, 8, 32, generator=generator), {
            "controls": torch.randn(2, 32, 63, generator=generator), "control_groups": torch.ones(2, 6),
            "tags": model.encode_tags([{"genre": "folk"}, {"genre": "rock"}]),
            "text": torch.randn(2, 384, generator=generator), "text_present": torch.ones(2)}


def _spawn(worker, tmp_path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    _rank_setup(rank, world, port)
    from conftest import tiny_codec, tiny_model

    from composer.train.diffusion import train_diffusion
    from diffusion.train import DiffusionTrainConfig

    model = tiny_model(tiny_codec())
    config = DiffusionTrainConfig(steps=3, save_every=3, log_every=1, validate_every=100)
    train_diffusion(model, _batches(model, rank), out_dir=out_dir, config=config, progress=False)
    # DDP keeps replicas identical: every rank ends with the same weights
    state = torch.cat([p.detach().flatten() for p in model.parameters()])
    torch.save(state, os.path.join(out_dir, f"weights{rank}.pt"))  # test-local scratch, written by the test
    import torch.distributed as dist

    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_ranks_stay_in_sync(tmp_path):
    _spawn(_worker, tmp_path)
    first = torch.load(tmp_path / "weights0.pt", weights_only=True)
    second = torch.load(tmp_path / "weights1.pt", weights_only=True)
    assert torch.allclose(first, second)
    assert (tmp_path / "last" / "state.json").exists()  # rank 0 saved


def _budget_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    """Rank 1's clock says the time budget is spent after its first step; rank 0's never does."""
    import datetime

    _rank_setup(rank, world, port)
    import torch.distributed as dist

    # a rank left waiting for one that stopped alone fails in 60 s instead of gloo's 30 minutes
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    from conftest import tiny_codec, tiny_model

    import composer.train.loop as loop
    from composer.train.diffusion import train_diffusion
    from diffusion.train import DiffusionTrainConfig

    if rank == 1:
        calls = iter(range(10 ** 6))

        class Clock:  # the loop's `time`: 0 at the start, then a day later
            @staticmethod
            def monotonic():
                return 0.0 if next(calls) == 0 else 86400.0

        loop.time = Clock
    model = tiny_model(tiny_codec())
    config = DiffusionTrainConfig(steps=5, save_every=100, log_every=1, validate_every=100, max_minutes=60)
    _, metrics = train_diffusion(model, _batches(model, rank), out_dir=out_dir, config=config, progress=False)
    with open(os.path.join(out_dir, f"steps{rank}.txt"), "w") as f:  # test-local scratch
        f.write(str(metrics["step"]))
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_ranks_stop_together_at_a_time_budget(tmp_path):
    _spawn(_budget_worker, tmp_path)
    assert (tmp_path / "steps0.txt").read_text() == (tmp_path / "steps1.txt").read_text() == "1"
    assert (tmp_path / "last" / "state.json").exists()  # rank 0 saved where both stopped
