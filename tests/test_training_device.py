"""Where training runs (--device), and training state that survives a kill in the middle of a save."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from conftest import killed_after, tiny_codec, tiny_model

from composer.cli import main
from composer.errors import InputError
from composer.train.device import training_device
from composer.train.diffusion import train_diffusion
from composer.train.state import saved_state
from diffusion.train import DiffusionTrainConfig

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a CUDA device")


def test_device_names():
    assert training_device("cpu") == torch.device("cpu")
    assert training_device(" CPU ") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert training_device("auto").type == expected
    assert training_device(None).type == expected
    for bad in ("tpu", "gpu0", ""):
        if bad:
            with pytest.raises(InputError, match="--device"):
                training_device(bad)


@no_cuda
def test_cuda_without_a_gpu_is_one_clear_error():
    with pytest.raises(InputError, match="--device cuda: PyTorch sees no CUDA device"):
        training_device("cuda")
    with pytest.raises(InputError, match="--device cuda:1"):
        training_device("cuda:1")


@no_cuda
@pytest.mark.parametrize("command", [["train", "diffusion"], ["train", "codec"]])
def test_cli_device_error_names_the_option(tmp_path, command):
    # the device is checked before any data is read: no dataset is needed to see the error
    result = CliRunner().invoke(main, [*command, "--data", str(tmp_path / "absent"), "-o", str(tmp_path / "out"),
                                       "--device", "cuda"])
    assert result.exit_code != 0
    assert "--device cuda" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def _batches(model, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield torch.randn(2, 8, 24, generator=generator), {
            "controls": torch.randn(2, 24, model.config.unet.num_controls, generator=generator),
            "control_groups": torch.ones(2, len(model.group_names)),
            "tags": model.encode_tags([{"genre": "folk"}, {"genre": "rock"}]),
            "text": torch.randn(2, 384, generator=generator), "text_present": torch.ones(2)}


def test_explicit_cpu_device_trains_as_the_default(tmp_path):
    config = DiffusionTrainConfig(steps=3, save_every=3, log_every=1, validate_every=100)
    codec = tiny_codec()
    first, second = tiny_model(codec, window_frames=24), tiny_model(codec, window_frames=24)
    a, _ = train_diffusion(first, _batches(first), out_dir=tmp_path / "a", config=config, progress=False)
    b, _ = train_diffusion(second, _batches(second), out_dir=tmp_path / "b", config=config, progress=False,
                           device=training_device("cpu"))
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


def test_resume_after_a_kill_between_the_renames_of_a_save(tmp_path):
    """A save writes the new state aside, moves the old one out of the way, then moves the new
    one in: a kill between the two moves leaves only the old state, which a rerun resumes."""
    config = DiffusionTrainConfig(steps=4, save_every=1, log_every=1, validate_every=100)
    codec = tiny_codec()
    straight = tiny_model(codec, window_frames=24)
    expected, _ = train_diffusion(straight, _batches(straight), out_dir=tmp_path / "straight", config=config,
                                  progress=False)
    model = tiny_model(codec, window_frames=24)

    with pytest.raises(KeyboardInterrupt):  # the process dies after step 2 was saved
        train_diffusion(model, killed_after(_batches(model), 2), out_dir=tmp_path / "run", config=config, progress=False)
    last = tmp_path / "run" / "last"
    assert saved_state(last) == last and not (tmp_path / "run" / "last.tmp").exists()
    assert not (tmp_path / "run" / "last.previous").exists()
    last.rename(tmp_path / "run" / "last.previous")  # killed after the first rename of step 3's save...
    (tmp_path / "run" / "last.tmp").mkdir()  # ... with step 3's files still aside, half written
    (tmp_path / "run" / "last.tmp" / "model.safetensors").write_bytes(b"half")
    assert saved_state(last) == tmp_path / "run" / "last.previous"

    # the rerun starts from step 2: given the seeded stream from its start, as the commands give
    # it, it draws the two batches step 2 had used again and continues with the third
    resumed, metrics = train_diffusion(tiny_model(codec, window_frames=24), _batches(model),
                                       out_dir=tmp_path / "run", config=config, resume=True, progress=False)
    assert metrics["step"] == 4
    for (name, x), y in zip(expected.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(x, y), name
    assert saved_state(last) == last
    assert not (tmp_path / "run" / "last.previous").exists() and not (tmp_path / "run" / "last.tmp").exists()


def test_doctor_says_where_training_runs():
    from composer import doctor

    check = {c.name: c for c in doctor.run_checks()}["training device (--device auto)"]
    assert check.ok
    if torch.cuda.is_available():
        assert "CUDA" in check.detail
    else:
        assert check.detail.startswith("the CPU (") and ("CPU-only build" in check.detail or "no CUDA" in check.detail)
