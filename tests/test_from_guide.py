"""Renders that start from the plan's FluidSynth guide (`RenderOptions.from_guide`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import tiny_codec, tiny_model

from composer.errors import InputError
from composer.rendering import RenderOptions, modes, render
from composer.rendering.guide import guide_latents, guide_midi
from structure.planner import plan


@pytest.fixture(scope="module")
def models():
    codec = tiny_codec()
    return codec, tiny_model(codec, window_frames=32)


@pytest.fixture(scope="module")
def song():
    return plan("genre=folk", duration=10, seed=4, write_lyrics=False)


def _options(**kwargs) -> RenderOptions:
    return RenderOptions(steps=3, evaluate=False, overlap_seconds=0.06, vocals=False, **kwargs)


def _frames(song, codec) -> int:
    return int(round(song.section_times()[-1][1] * codec.frame_rate))


def test_a_render_from_the_guide_starts_from_its_latents(models, song):
    codec, model = models
    guide = guide_latents(song, codec, _options(from_guide=0.5), _frames(song, codec))
    assert guide.shape == (codec.latent_dim, _frames(song, codec)) and guide.abs().sum() > 0
    near = render(song, seed=1, codec=codec, model=model, options=_options(from_guide=0.05), progress=False)
    mid = render(song, seed=1, codec=codec, model=model, options=_options(from_guide=0.5), progress=False)
    noise = render(song, seed=1, codec=codec, model=model, options=_options(from_guide=1.0), progress=False)
    new = [s for s in song.sections if not s.repeat_of]  # repeats copy what their source made
    spans = dict(zip((s.name for s in song.sections), song.section_times()))
    frames = torch.cat([torch.arange(round(spans[s.name][0] * codec.frame_rate), round(spans[s.name][1] * codec.frame_rate))
                        for s in new])

    def distance(result):
        return float((result.latents[:, frames] - guide[:, frames]).abs().mean())

    # the closer the strength to 0, the closer the render to the guide's own latents
    assert distance(near) < 0.5 * distance(mid) < 0.5 * distance(noise)
    assert near.report["guide"]["strength"] == 0.05 and near.report["options"]["from_guide"] == 0.05
    assert "guide" not in noise.report and noise.report["options"]["from_guide"] == 1.0
    again = render(song, seed=1, codec=codec, model=model, options=_options(from_guide=0.5), progress=False)
    assert np.array_equal(again.audio, mid.audio)  # same inputs, same bytes


def test_the_guides_melody_rests_under_the_sung_lines():
    from composer.voice.singer import planned_spans

    sung = plan("genre=pop", duration=20, seed=2, write_lyrics=True)
    spans = planned_spans(sung)
    assert spans

    def melody(options):
        return next(i for i in guide_midi(sung, options).instruments if i.name == "melody").notes

    def under(notes):
        return [n for n in notes if any(a < n.end and b > n.start for a, b in spans)]

    assert under(melody(RenderOptions(lead="keep"))) and under(melody(RenderOptions(vocals=False)))
    resting = melody(RenderOptions(lead="yield"))
    assert not under(resting) and len(resting) < len(melody(RenderOptions(lead="keep")))


def test_repaint_starts_from_the_guide_the_render_did(models, song, tmp_path):
    codec, model = models
    render(song, seed=1, codec=codec, model=model, options=_options(from_guide=0.4), progress=False).save(tmp_path / "r")
    assert RenderOptions.from_report(json.loads((tmp_path / "r" / "report.json").read_text())).from_guide == 0.4
    modes.repaint(tmp_path / "r", song.sections[0].name, codec=codec, model=model, progress=False)
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["options"]["from_guide"] == 0.4 and report["guide"]["strength"] == 0.4
    assert RenderOptions.from_report({}).from_guide == 1.0  # a render from before the option started from noise


def test_by_default_a_render_starts_from_the_guide_unless_it_asks_for_recordings(models, song):
    from dataclasses import replace

    from composer.rendering.options import GUIDE_STRENGTH

    codec, model = models
    assert _options().for_plan(song).from_guide == GUIDE_STRENGTH < 1
    recorded = replace(song, tags={**song.tags, "source": "recorded"})
    assert _options().for_plan(recorded).from_guide == 1.0
    assert _options(from_guide=0.3).for_plan(recorded).from_guide == 0.3  # asked for: kept
    result = render(song, seed=1, codec=codec, model=model, options=_options(), progress=False)
    assert result.report["guide"]["strength"] == GUIDE_STRENGTH


def test_guidance_left_to_the_renderer_is_stronger_from_the_guide_than_from_noise(models, song, tmp_path):
    from dataclasses import replace

    from composer.rendering.options import GUIDANCE, GUIDE_GUIDANCE

    codec, model = models
    assert GUIDE_GUIDANCE != GUIDANCE
    assert _options().for_plan(song).guidance_weights == GUIDE_GUIDANCE
    recorded = replace(song, tags={**song.tags, "source": "recorded"})
    assert _options().for_plan(recorded).guidance_weights == GUIDANCE
    assert _options().guidance_weights == GUIDANCE  # restyle, loops, interpolation: not from a guide
    assert _options(guidance=3.0).for_plan(song).guidance_weights == 3.0  # asked for: kept
    default = render(song, seed=1, codec=codec, model=model, options=_options(), progress=False)
    assert default.report["guidance"] == GUIDE_GUIDANCE
    same = render(song, seed=1, codec=codec, model=model, options=_options(guidance=GUIDE_GUIDANCE), progress=False)
    other = render(song, seed=1, codec=codec, model=model, options=_options(guidance=GUIDANCE), progress=False)
    assert np.array_equal(default.audio, same.audio) and not np.array_equal(default.audio, other.audio)
    default.save(tmp_path / "r")  # repaint renders with the guidance the song was made with
    assert RenderOptions.from_report(json.loads((tmp_path / "r" / "report.json").read_text())).guidance == GUIDE_GUIDANCE
    noise = render(song, seed=1, codec=codec, model=model, options=_options(from_guide=1.0), progress=False)
    assert noise.report["guidance"] == GUIDANCE


def test_without_a_soundfont_a_render_starts_from_noise_and_says_why(models, song, monkeypatch, caplog):
    codec, model = models
    monkeypatch.setenv("COMPOSER_SOUNDFONT", "/nonexistent/GM.sf2")
    with caplog.at_level("WARNING"):
        result = render(song, seed=1, codec=codec, model=model, options=_options(), progress=False)
    assert "not from the guide: no soundfont at /nonexistent/GM.sf2" in caplog.text
    assert result.report["options"]["from_guide"] == 1.0 and "guide" not in result.report
    monkeypatch.delenv("COMPOSER_SOUNDFONT")
    noise = render(song, seed=1, codec=codec, model=model, options=_options(from_guide=1.0), progress=False)
    assert np.array_equal(result.audio, noise.audio)


@pytest.mark.parametrize("value", [0.0, -0.2, 1.5, float("nan"), float("inf")])
def test_a_strength_outside_0_to_1_is_refused(value):
    with pytest.raises(InputError, match="--from-guide"):
        RenderOptions(from_guide=value).check()


def test_the_cli_takes_from_guide(tmp_path, tiny_models):
    from click.testing import CliRunner

    from composer.cli import main

    codec, model = tiny_models
    args = ["render", "genre=pop", "--duration", "6", "--steps", "2", "--no-evaluate", "--no-vocals",
            "--codec", str(codec), "--model", str(model)]
    result = CliRunner().invoke(main, [*args, "--from-guide", "0.6", "-o", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r" / "report.json").read_text())["guide"]["strength"] == 0.6
    result = CliRunner().invoke(main, [*args, "--from-guide", "2", "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--from-guide" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


def test_fluidsynth_plays_the_same_bytes_in_a_process_that_seeded_c_rand():
    """FluidSynth's dither noise comes from C's rand(); a Ray worker seeds it, and its guides
    (so its renders) came out different from the same MIDI until structure.synth seeded it."""
    import os
    import subprocess
    import sys

    # CI=1: pyfluidsynth then prints where it found the library on import; only the digest
    # may reach stdout (the clean-clone CI sets CI, and that line once broke this test).
    env = {**os.environ, "CI": "1"}
    script = (
        "import ctypes, hashlib, sys\n"
        "if sys.argv[1] == 'seeded': ctypes.CDLL(None).srand(12345)\n"
        "from structure.planner import plan\n"
        "from structure.arrangement import arrange\n"
        "from structure.synth import render_midi\n"
        "song = plan('genre=folk', duration=4, seed=5, write_lyrics=False)\n"
        "audio, _ = render_midi(arrange(song), sample_rate=8000, duration=4)\n"
        "print(hashlib.sha256(audio.tobytes()).hexdigest())\n")
    digests = {mode: subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True,
                                    check=True, env=env).stdout.strip() for mode in ("plain", "seeded")}
    assert len(digests["plain"]) == 64 and digests["plain"] == digests["seeded"]


def test_parts_played_apart_give_the_same_bytes_however_many_at_once():
    from structure.arrangement import arrange
    from structure.synth import render_midi

    midi = arrange(plan("genre=rock", duration=6, seed=1, write_lyrics=False))
    one, _ = render_midi(midi, sample_rate=8000, duration=6, workers=1)
    apart = [render_midi(midi, sample_rate=8000, duration=6, workers=w)[0] for w in (2, 3, 2)]
    assert all(np.array_equal(apart[0], a) for a in apart[1:])
    # the same music (the shared synthesizer's chorus and reverb carry over from part to part, so
    # the waveforms differ in phase): the same loudness, 100 ms at a time
    def envelope(audio):
        return np.sqrt((audio[0].reshape(-1, 800) ** 2).mean(axis=1))

    assert apart[0].shape == one.shape and np.corrcoef(envelope(apart[0]), envelope(one))[0, 1] > 0.95


def test_the_studios_slider_sets_the_strength_and_its_default_is_the_renderers():
    from composer.rendering.options import GUIDE_STRENGTH
    from composer.studio.app import _options as studio_options

    assert studio_options("low", None, 0.4).from_guide == 0.4
    assert studio_options("low", None, 1.0).from_guide == 1.0
    assert studio_options("low", None, GUIDE_STRENGTH).from_guide is None  # source=recorded still starts from noise
    with pytest.raises(InputError, match="--from-guide"):
        studio_options("low", None, 0.0)



def test_a_loop_starts_from_noise(models):
    """Started from its guide, a loop's wrap seam stood out more (bundled models, 4 prompts of
    4 bars: 5.5 to 7.9 times the median jump, against 2.6 to 6.6 from noise), so loops do not."""
    codec, model = models
    result = modes.loop("genre=electronic", 2, seed=1, codec=codec, model=model, options=_options(), progress=False)
    assert "guide" not in result.report
