"""Broken checkpoints given with --model/--codec: one line naming the option, exit 2."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from composer.cli import main


def _variants(codec, model, root):
    """(name, codec dir, model dir) for each kind of damage."""

    def copy(source, name):
        target = root / name
        shutil.copytree(source, target)
        return target

    out = []

    def add(name, which, damage):
        c = copy(codec, f"{name}-codec") if which == "codec" else codec
        m = copy(model, f"{name}-model") if which == "model" else model
        damage(c if which == "codec" else m)
        out.append((name, c, m))

    weights = "model.safetensors"
    for which in ("codec", "model"):
        add(f"truncated-{which}", which, lambda d: (d / weights).write_bytes((d / weights).read_bytes()[:1000]))
        add(f"empty-{which}", which, lambda d: (d / weights).write_bytes(b""))
        add(f"header-{which}", which, lambda d: (d / weights).write_bytes(b"\xff" * 8 + (d / weights).read_bytes()[8:]))
        add(f"flipped-json-{which}", which, lambda d: (d / weights).write_bytes(
            (d / weights).read_bytes()[:8] + b"]" + (d / weights).read_bytes()[9:]))
        add(f"config-empty-{which}", which, lambda d: (d / "config.json").write_text("{}"))
        add(f"config-array-{which}", which, lambda d: (d / "config.json").write_text("[1, 2]"))
        add(f"config-broken-{which}", which, lambda d: (d / "config.json").write_text("{not json"))
        add(f"config-extra-{which}", which, lambda d: (d / "config.json").write_text(
            json.dumps({**json.loads((d / "config.json").read_text()), "bogus_key": 3})))
        add(f"weights-folder-{which}", which, lambda d: ((d / weights).unlink(), (d / weights).mkdir()))
        add(f"no-weights-{which}", which, lambda d: (d / weights).unlink())
        add(f"pickle-{which}", which, lambda d: ((d / weights).rename(d / "pytorch_model.bin")))
    out.append(("swapped", model, codec))
    return out


@pytest.fixture(scope="module")
def variants(tiny_models, tmp_path_factory):
    codec, model = tiny_models
    return _variants(codec, model, tmp_path_factory.mktemp("broken"))


def test_every_broken_checkpoint_is_one_line_and_exit_2(variants, tmp_path):
    for name, codec, model in variants:
        result = CliRunner().invoke(main, ["render", "folk", "--duration", "4", "--steps", "1", "--no-evaluate",
                                           "--no-vocals", "--codec", str(codec), "--model", str(model),
                                           "-o", str(tmp_path / name)])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2, (name, result.output)
        assert len(lines) == 1 and ("--codec" in lines[0] or "--model" in lines[0] or "latent" in lines[0]), \
            (name, result.output)
        assert not (tmp_path / name).exists(), name
