"""The Python API exactly as the README documents it: its python block runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_api_block() -> str:
    text = README.read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_documented_names_are_the_functions_whatever_was_imported_before():
    import composer
    import structure
    import structure.arrangement  # noqa: F401  (importing every module first must not shadow the API)
    import structure.frame_controls  # noqa: F401
    import structure.planner  # noqa: F401
    import structure.schema  # noqa: F401

    for name in ("plan", "controls", "arrange"):
        assert callable(getattr(structure, name)), name
    for name in ("plan", "render", "load_codec", "load_model"):
        assert callable(getattr(composer, name)), name


@pytest.mark.slow
def test_the_readme_python_block_runs_as_written(tmp_path, monkeypatch):
    from composer.rendering import Render
    from structure import SongPlan
    from structure import plan as structure_plan

    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_api_block(), "README.md", "exec"), namespace)
    song = namespace["song"]
    assert isinstance(song, SongPlan) and abs(song.duration - 20) < 4
    assert namespace["again"].to_json() == song.to_json()
    assert namespace["features"].shape[0] == int(round(song.duration * 75.0))
    assert [b.kind for b in namespace["blocks"]] == ["verse", "chorus"]
    assert namespace["moody"].tags.get("mood") == "happy"  # "joyful", read by the sentence encoder
    assert "mood" not in structure_plan("joyful song about summer", duration=20, seed=2).tags  # torch-free: no encoder
    result = namespace["result"]
    assert isinstance(result, Render) and abs(result.duration - song.duration) < 0.05
    audio, rate = sf.read(tmp_path / "out" / "api_song" / "song.wav")
    assert rate == namespace["codec"].sample_rate and np.abs(audio).max() > 0.01
    assert namespace["model"].config.codec == namespace["codec"].latent_identity()
