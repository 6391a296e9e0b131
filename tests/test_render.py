"""Long-form rendering and the Dance Diffusion modes, end to end on tiny random models."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import tiny_codec, tiny_model

from composer.rendering import RenderOptions, modes, render
from composer.rendering.windows import crossfade_join, window_positions
from structure.planner import plan


@pytest.fixture(scope="module")
def models():
    codec = tiny_codec()
    return codec, tiny_model(codec, window_frames=32)


def _options(**kwargs) -> RenderOptions:
    return RenderOptions(steps=3, evaluate=False, overlap_seconds=0.06, **kwargs)


@pytest.fixture(scope="module")
def song():
    return plan("genre=pop mood=happy", duration=14, seed=0, write_lyrics=True)


@pytest.fixture(scope="module")
def rendered(models, song, tmp_path_factory):
    codec, model = models
    result = render(song, seed=1, codec=codec, model=model, options=_options(), progress=False)
    out = tmp_path_factory.mktemp("render") / "song"
    result.save(out)
    return result, out


def test_outputs_written(rendered, song):
    result, out = rendered
    names = {p.name for p in out.iterdir()}
    assert {"song.wav", "song.flac", "plan.json", "song.mid", "lead_sheet.musicxml", "report.json",
            "latents.safetensors"} <= names
    if any(s.lyrics for s in song.sections):
        assert "lyrics.lrc" in names
    assert not [n for n in names if n.startswith(".")]  # no temporary leftovers
    audio, rate = sf.read(out / "song.wav")
    assert rate == result.sample_rate
    assert np.abs(audio).max() <= 1.0


def test_report_times_match_audio(rendered, song):
    result, out = rendered
    report = json.loads((out / "report.json").read_text())
    duration = report["duration"]
    assert abs(duration - song.duration) < 0.05
    assert report["sections"][0]["start"] == 0.0
    assert abs(report["sections"][-1]["end"] - duration) < 0.02
    for window in report["windows"]:
        assert 0 <= window["start"] <= window["new_from"] <= window["end"] <= duration + 1e-6
    assert all(0 < seam["time"] < duration for seam in report["seams"])
    assert report["provenance"]["model"]["identity"] and report["provenance"]["codec"]["identity"]
    assert {"load", "conditioning", "diffusion", "decode"} <= set(report["timings"])


def test_flac_carries_provenance(rendered):
    from composer.data.audio import read_flac_tags

    result, out = rendered
    tags = read_flac_tags(out / "song.flac")
    assert "song-composer" in tags["comment"][0]
    assert tags["title"] == [result.plan.title] and tags["bpm"] == [f"{result.plan.tempo_bpm:g}"]
    assert tags["initialkey"] == [str(result.plan.key)]
    assert json.loads(tags["provenance"][0]) == json.loads(json.dumps(result.report["provenance"], default=str))
    # the tags leave the audio as it was, and other readers read them
    with sf.SoundFile(out / "song.flac") as handle:
        assert handle.title == result.plan.title and handle.frames == len(sf.read(out / "song.wav")[0])


def test_repeated_sections_have_identical_latents(rendered, song, models):
    result, _ = rendered
    codec, _ = models
    rate = codec.frame_rate
    spans = {s.name: (int(round(a * rate)), int(round(b * rate))) for s, (a, b) in zip(song.sections, song.section_times())}
    repeats = [s for s in song.sections if s.repeat_of and s.variation == 0]
    assert repeats, "the plan should repeat its chorus"
    half_beat = int(song.seconds_per_beat * rate)  # crossfades touch half a beat at each join
    for section in repeats:
        a0, a1 = spans[section.repeat_of]
        b0, b1 = spans[section.name]
        n = min(a1 - a0, b1 - b0) - half_beat
        assert n > half_beat
        assert torch.equal(result.latents[:, b0 + half_beat: b0 + n], result.latents[:, a0 + half_beat: a0 + n])


def test_same_seed_same_bytes(models, song, rendered, tmp_path):
    codec, model = models
    again = render(song, seed=1, codec=codec, model=model, options=_options(), progress=False)
    again.save(tmp_path / "again")
    assert (tmp_path / "again" / "song.wav").read_bytes() == (rendered[1] / "song.wav").read_bytes()
    other = render(song, seed=2, codec=codec, model=model, options=_options(), progress=False)
    assert not np.array_equal(other.audio, again.audio)


def test_variation_rerenders_repeat(models):
    codec, model = models
    song = plan("genre=pop", duration=14, seed=0, write_lyrics=False)
    repeat = next(s for s in song.sections if s.repeat_of)
    repeat.variation = 0.5
    result = render(song, seed=1, codec=codec, model=model, options=_options(), progress=False)
    rate = codec.frame_rate
    spans = {s.name: (int(round(a * rate)), int(round(b * rate))) for s, (a, b) in zip(song.sections, song.section_times())}
    a0, a1 = spans[repeat.repeat_of]
    b0, b1 = spans[repeat.name]
    n = min(a1 - a0, b1 - b0)
    assert not torch.equal(result.latents[:, b0:b0 + n], result.latents[:, a0:a0 + n])


def test_control_subset_and_guidance_per_group(models, song):
    codec, model = models
    options = _options(control_groups=("form", "harmony"), guidance={"tags": 2.0, "harmony": 1.5})
    result = render(song, seed=1, codec=codec, model=model, options=options, progress=False)
    assert result.report["control_groups"] == ["form", "harmony"]
    assert np.isfinite(result.audio).all()


def test_guidance_interval_is_reported_checked_and_kept_by_repaint(models, tmp_path):
    from composer.errors import InputError

    codec, model = models
    song = plan("genre=folk", duration=10, seed=4, write_lyrics=False)
    result = render(song, seed=1, codec=codec, model=model, options=_options(guidance_interval=(0.2, 0.9)),
                    progress=False)
    assert result.report["guidance_interval"] == [0.2, 0.9]
    everywhere = render(song, seed=1, codec=codec, model=model, options=_options(), progress=False)
    assert everywhere.report["guidance_interval"] is None and not np.array_equal(result.audio, everywhere.audio)
    result.save(tmp_path / "r")
    modes.repaint(tmp_path / "r", song.sections[0].name, codec=codec, model=model, progress=False)
    assert json.loads((tmp_path / "r" / "report.json").read_text())["guidance_interval"] == [0.2, 0.9]
    with pytest.raises(InputError, match="guidance interval"):
        render(song, seed=1, codec=codec, model=model, options=_options(guidance_interval=(0.9, 0.2)), progress=False)


def test_seam_repaint_option(models, song):
    codec, model = models
    result = render(song, seed=1, codec=codec, model=model, options=_options(repaint_seams=True), progress=False)
    assert result.report["options"]["repaint_seams"] is True


def test_window_positions_cover_span_and_advance():
    for start, end, total, size, overlap in [(0, 100, 100, 32, 8), (10, 50, 200, 32, 24), (0, 5, 5, 32, 8)]:
        windows = window_positions(start, end, total, size, overlap)
        assert windows[0].new_from == start
        for a, b in zip(windows, windows[1:]):
            assert b.new_from > a.new_from
            assert b.start <= b.new_from  # each window sees what came before it
        assert all(w.end - w.start <= size for w in windows)


def test_sampling_runs_on_its_own_kernels_and_threads_and_restores_them(monkeypatch):
    from composer.rendering.windows import ConvBackend

    monkeypatch.delenv("COMPOSER_ONEDNN", raising=False)
    monkeypatch.delenv("COMPOSER_SAMPLER_THREADS", raising=False)
    backend = ConvBackend()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with backend.scope():
            assert torch.get_num_threads() == 1
            assert not torch._C._get_mkldnn_enabled()
        assert torch.get_num_threads() == 2 and torch._C._get_mkldnn_enabled()
        monkeypatch.setenv("COMPOSER_SAMPLER_THREADS", "3")
        with ConvBackend().scope():
            assert torch.get_num_threads() == 3
        monkeypatch.setenv("COMPOSER_SAMPLER_THREADS", "many")  # not a count: the default
        assert ConvBackend().threads == 1
    finally:
        torch.set_num_threads(before)


def test_crossfade_is_equal_power():
    canvas = torch.zeros(1, 40)
    before, after = torch.ones(1, 20), torch.ones(1, 20)
    crossfade_join(canvas, 20, before, after)
    theta = torch.linspace(0, np.pi / 2, 22)[1:-1]
    assert torch.allclose(canvas[0, 10:30], torch.cos(theta) + torch.sin(theta))


def test_repaint_changes_only_its_section(models, tmp_path):
    codec, model = models
    song = plan("genre=rock", duration=14, seed=3, write_lyrics=False)
    render(song, seed=1, codec=codec, model=model, options=_options(), progress=False).save(tmp_path / "r")
    before, rate = sf.read(tmp_path / "r" / "song.wav", dtype="int16")
    target = song.sections[1]
    modes.repaint(tmp_path / "r", target.name, codec=codec, model=model, progress=False)
    after, _ = sf.read(tmp_path / "r" / "song.wav", dtype="int16")
    start, end = (round(t * codec.frame_rate) / codec.frame_rate for t in song.section_times()[1])  # frame grid
    margin = (codec.receptive_frames + 1) / codec.frame_rate
    changed = np.nonzero(before != after)[0] / rate
    assert len(changed) > 0
    # chorus1 and chorus2, which repeats it: the chorus is new everywhere, and nothing else changed
    assert song.sections[2].repeat_of == target.name
    _, repeat_end = (round(t * codec.frame_rate) / codec.frame_rate for t in song.section_times()[2])
    fade = 2 * song.seconds_per_beat  # at most the crossfade into the kept section after the repeat
    assert changed.min() >= start - margin - 1e-6 and changed.max() <= repeat_end + fade + margin + 1e-6
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["repaints"][-1]["section"] == target.name and report["repaints"][-1]["repeats"] == ["chorus2"]
    from composer.rendering.folder import load_render

    latents = load_render(tmp_path / "r").latents
    (a, b), (c, d) = [(round(x * codec.frame_rate), round(y * codec.frame_rate)) for x, y in song.section_times()[1:3]]
    beat = int(song.seconds_per_beat * codec.frame_rate) + 2
    inner = slice(beat, min(b - a, d - c) - beat)  # away from the joins, which are crossfaded
    assert torch.equal(latents[:, a:b][:, inner], latents[:, c:d][:, inner])


def test_a_repaint_measures_the_song_again(models, tmp_path):
    """The report's metrics and loudness, and an evaluation.png `composer evaluate` drew, describe
    the repainted song, not the one before."""
    from composer.evaluate.folders import evaluate_dir
    from composer.rendering.loudness import integrated_loudness

    codec, model = models
    song = plan("genre=rock", duration=14, seed=3, write_lyrics=False)
    render(song, seed=1, codec=codec, model=model, options=replace(_options(), evaluate=True), progress=False).save(tmp_path / "r")
    evaluate_dir(tmp_path / "r")
    before = json.loads((tmp_path / "r" / "report.json").read_text())
    picture = (tmp_path / "r" / "evaluation.png").read_bytes()
    modes.repaint(tmp_path / "r", song.sections[1].name, codec=codec, model=model, progress=False)
    after = json.loads((tmp_path / "r" / "report.json").read_text())
    audio, rate = sf.read(tmp_path / "r" / "song.wav", dtype="float32", always_2d=True)
    assert after["loudness_lufs"] == round(integrated_loudness(audio.T, rate), 2)
    assert after["metrics"] == json.loads(json.dumps(evaluate_dir(tmp_path / "r"))) != before["metrics"]
    assert (tmp_path / "r" / "evaluation.png").read_bytes() != picture


def test_a_repaint_that_fails_while_writing_leaves_the_old_song_whole(models, tmp_path, monkeypatch):
    # the files were replaced one at a time: a failure (a kill, a full disk) after song.wav left
    # audio that no longer matched its latents and report
    from composer.rendering import folder

    codec, model = models
    song = plan("genre=rock", duration=10, seed=3, write_lyrics=False)
    render(song, seed=1, codec=codec, model=model, options=_options(), progress=False).save(tmp_path / "r")
    (tmp_path / "r" / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(folder, "write_report", full_disk)
    with pytest.raises(OSError):
        modes.repaint(tmp_path / "r", song.sections[1].name, codec=codec, model=model, progress=False)
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "r") == []  # nothing left beside it
    monkeypatch.undo()
    modes.repaint(tmp_path / "r", song.sections[1].name, codec=codec, model=model, progress=False)
    assert (tmp_path / "r" / "notes.txt").read_text() == "mine"  # the user's file goes with the new song
    assert (tmp_path / "r" / "song.wav").read_bytes() != before["song.wav"]


def test_repaint_unknown_section_is_bad_input(rendered, models):
    from structure.schema import PlanError

    _, out = rendered
    codec, model = models
    with pytest.raises(PlanError, match="no section named"):
        modes.repaint(out, "nope", codec=codec, model=model, progress=False)


def test_repaint_refuses_a_folder_whose_files_no_longer_match(rendered, models, tmp_path):
    """An edited plan (a new tempo: a longer song than its latents), a cut song.wav, cut latents:
    one error naming the file, nothing rewritten (an edited tempo ran out of memory before)."""
    import shutil

    from composer.errors import InputError

    _, out = rendered
    codec, model = models
    cases = {
        "plan.json": lambda p: _slower(p),
        "song.wav": lambda p: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2]),
        "latents.safetensors": lambda p: p.write_bytes(p.read_bytes()[:100]),
    }
    for name, damage in cases.items():
        copy = tmp_path / name
        shutil.copytree(out, copy)
        damage(copy / name)
        before = {f.name: f.read_bytes() for f in copy.iterdir() if f.is_file()}
        with pytest.raises(InputError, match=name.replace(".", r"\.")):
            modes.repaint(copy, song_section(copy), codec=codec, model=model, progress=False)
        assert {f.name: f.read_bytes() for f in copy.iterdir() if f.is_file()} == before


def _slower(path):
    plan = json.loads(path.read_text())
    plan["tempo_bpm"] = plan["tempo_bpm"] / 2
    path.write_text(json.dumps(plan))


def song_section(folder):
    return json.loads((folder / "plan.json").read_text())["sections"][0]["name"]


def test_loop_wraps(models):
    codec, model = models
    result = modes.loop("genre=electronic", 2, seed=0, codec=codec, model=model, options=_options(), progress=False)
    bar_seconds = result.plan.beats_per_bar * result.plan.seconds_per_beat
    # exactly its bars, to the sample (not whole latent frames): a loop synced at its tempo never drifts
    assert result.audio.shape[-1] == round(2 * bar_seconds * result.sample_rate)
    assert np.isfinite(result.report["loop_seam"]["ratio"])


def test_a_loop_is_not_repainted_as_a_song(models, tmp_path):
    # a repaint renders a section left to right: it would break the join of the loop's end to its start
    from composer.errors import InputError

    codec, model = models
    result = modes.loop("genre=electronic", 2, seed=0, codec=codec, model=model, options=_options(), progress=False)
    result.save(tmp_path / "loop")
    before = (tmp_path / "loop" / "song.wav").read_bytes()
    with pytest.raises(InputError, match="a loop is one section, joined end to start; make another with"):
        modes.repaint(tmp_path / "loop", "loop", codec=codec, model=model, progress=False)
    assert (tmp_path / "loop" / "song.wav").read_bytes() == before


def test_a_loop_shorter_than_its_overlap_still_closes_its_ring(models):
    # one fast bar (0.6 s) against a 2-s overlap: the closing stretch came out negative, so the wrap
    # was never repainted
    codec, model = models
    result = modes.loop("genre=rock tempo=300 meter=3/4", 1, seed=2, codec=codec, model=model,
                        options=RenderOptions(steps=3, evaluate=False, overlap_seconds=2.0), progress=False)
    assert any(w["section"] == "loop-close" for w in result.report["windows"])
    assert np.isfinite(result.audio).all()


def test_loop_seam_score_finds_a_click_at_the_wrap():
    rate = 8000
    t = np.arange(rate) / rate
    seamless = np.sin(2 * np.pi * 200 * t)[None].astype(np.float32)  # whole cycles: wraps cleanly
    clicked = seamless.copy()
    clicked[0, -40:] = 0.0  # a gap just before the wrap
    assert modes.loop_seam_score(seamless, rate)["ratio"] < 2.0
    assert modes.loop_seam_score(clicked, rate)["ratio"] > 3.0 * modes.loop_seam_score(seamless, rate)["ratio"]


def test_restyle_and_interpolate(models, rendered):
    codec, model = models
    _, out = rendered
    styled = modes.restyle(out / "song.wav", "genre=jazz mood=calm", strength=0.5, seed=0, codec=codec, model=model,
                           options=_options(), progress=False)
    assert abs(styled.duration - rendered[0].duration) < 0.05
    assert styled.plan.style == "jazz"
    kept = modes.restyle(out / "song.wav", "genre=jazz", strength=0.0, seed=0, codec=codec, model=model,
                         options=_options(), progress=False)
    assert kept.report["mode"]["strength"] == 0.0
    mixes = modes.interpolate(out / "song.wav", out / "song.flac", count=3, codec=codec, model=model,
                              options=_options(), progress=False)
    assert len(mixes) == 3 and [m.report["mode"]["alpha"] for m in mixes] == [0.0, 0.5, 1.0]
    # the song between describes itself: its plan is its own audio's analysis, not an input's
    middle = mixes[1]
    assert middle.plan.title == "song to song (2 of 3)"
    assert middle.plan.tempo_bpm == modes.analysed_plan(middle.audio, middle.sample_rate).tempo_bpm


def test_interpolate_takes_render_folders_as_restyle_does(models, rendered, tmp_path):
    codec, model = models
    _, out = rendered
    by_folder = modes.interpolate(out, out / "song.wav", count=2, codec=codec, model=model, options=_options(),
                                  progress=False)
    by_file = modes.interpolate(out / "song.wav", out / "song.wav", count=2, codec=codec, model=model,
                                options=_options(), progress=False)
    assert torch.equal(by_folder[0].latents, by_file[0].latents)
    from composer.errors import InputError

    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="a folder without a song"):
        modes.interpolate(tmp_path / "empty", out, count=2, codec=codec, model=model, options=_options(), progress=False)


def test_interpolation_inverts_each_window_as_it_will_sample_it(models, rendered, monkeypatch):
    """Each window after the first is sampled continuing the frames it shares with the one
    before (known, masked); it is inverted to noise the same way, with the input's own latents
    there, so the noise it starts from expects what it meets at the join (inverted without them,
    12 % of the joins of interpolated recordings clicked: benchmarks/recorded_modes.py)."""
    import diffusion.sampling

    codec, model = models
    _, out = rendered
    real, seen = diffusion.sampling.invert, []

    def invert(denoiser, x0, timesteps, *, cond, **kwargs):
        seen.append((x0[0].clone(), {k: v.clone() for k, v in cond.items() if k in ("known", "mask")}))
        return real(denoiser, x0, timesteps, cond=cond, **kwargs)

    monkeypatch.setattr(diffusion.sampling, "invert", invert)
    modes.interpolate(out / "song.wav", out / "song.wav", count=2, codec=codec, model=model, options=_options(),
                      progress=False)
    masked = [(window, cond) for window, cond in seen if "mask" in cond]
    assert len(seen) >= 4 and len(masked) == len(seen) - 2  # two inputs: all but each one's first window
    for window, cond in masked:
        mask = cond["mask"][0, 0].bool()
        assert 0 < int(mask.sum()) < mask.numel() and mask[0]  # the shared frames lead the window
        assert torch.equal(cond["known"][0][:, mask], window[:, mask])  # the input's own latents there
        assert not cond["known"][0][:, ~mask].any()


def test_interpolating_inputs_of_different_lengths_says_the_cut(models, rendered, tmp_path, caplog):
    codec, model = models
    _, out = rendered
    audio, rate = sf.read(out / "song.wav", dtype="float32")
    sf.write(tmp_path / "short.wav", audio[: len(audio) // 2], rate)
    with caplog.at_level("WARNING", logger="composer.rendering.modes"):
        mixes = modes.interpolate(out / "song.wav", tmp_path / "short.wav", count=2, codec=codec, model=model,
                                  options=_options(), progress=False)
    assert f"{out / 'song.wav'} is cut to" in caplog.text and abs(mixes[0].duration - len(audio) / rate / 2) < 0.1
    # the first song's plan is the cut song's (it was the whole input's: 2x too long, sections past the end)
    bar = mixes[0].plan.seconds_per_beat * mixes[0].plan.beats_per_bar
    assert mixes[0].plan.duration <= mixes[0].duration + bar
    # and each song's report says it, beside the log
    for mix in mixes:
        cut = mix.report["mode"]["cut"]
        assert cut["input"] == str(out / "song.wav") and abs(cut["to_seconds"] - mix.duration) < 0.1
        assert abs(cut["from_seconds"] - len(audio) / rate) < 0.01


def test_a_restyled_song_repaints_though_its_plan_is_in_whole_bars(models, rendered, tmp_path):
    # restyle saves a plan estimated in whole bars, which ends elsewhere than its latents: repaint
    # crashed on a shape mismatch (plan shorter) or looped forever (plan longer)
    codec, model = models
    _, out = rendered
    audio, rate = sf.read(out / "song.wav", dtype="float32")
    for cut in (0.83, 0.91):  # two lengths that end inside a bar of the estimated plan
        clip = tmp_path / f"clip{cut}.wav"
        sf.write(clip, audio[: int(len(audio) * cut)], rate)
        styled = modes.restyle(clip, "genre=jazz", strength=0.5, seed=0, codec=codec, model=model,
                               options=_options(), progress=False)
        folder = tmp_path / f"styled{cut}"
        styled.save(folder)
        last = styled.plan.sections[-1].name
        repainted = modes.repaint(folder, last, seed=4, codec=codec, model=model, progress=False)
        assert repainted.audio.shape == styled.audio.shape
    assert window_positions(0, 518, 450, 112, 30)[-1].end == 450  # a span past the canvas ends with it


def test_restyle_of_a_render_folder_without_a_voice_restyles_its_song(models, song, tmp_path):
    # it said "file not found" (the folder was read as an audio file)
    from composer.errors import InputError

    codec, model = models
    out = tmp_path / "plain"
    render(song, seed=1, codec=codec, model=model, options=_options(vocals=False), progress=False).save(out)
    styled = modes.restyle(out, "genre=jazz", strength=0.3, seed=0, codec=codec, model=model, options=_options(),
                           progress=False)
    assert styled.report["mode"]["source"] == str(out / "song.wav")
    with pytest.raises(InputError, match="a folder without a song"):
        modes.restyle(tmp_path, "genre=jazz", codec=codec, model=model, options=_options(), progress=False)


def test_restyle_strength_outside_range(models, rendered):
    from composer.errors import InputError

    codec, model = models
    with pytest.raises(InputError, match="strength"):
        modes.restyle(rendered[1] / "song.wav", "genre=jazz", strength=1.5, codec=codec, model=model)


def test_slerp_endpoints():
    a, b = torch.randn(8, 10), torch.randn(8, 10)
    assert torch.allclose(modes.slerp(a, b, 0.0), a, atol=1e-5)
    assert torch.allclose(modes.slerp(a, b, 1.0), b, atol=1e-5)


# sha256 of the audio and latents of the `rendered` fixture's song. A change here must be deliberate:
# it changes every user's song for the same seed. Last changed by the caption's sentence embedding
# made on the sampler's one thread (it rounded differently on 1 and 2 threads, so a batch worker's
# song differed from the CLI's by a few 16-bit steps); before that by guidance 2.5 (was 2) for renders
# that start from the guide (options.GUIDE_GUIDANCE; the render from noise kept its bytes). Before that
# (the audio only) by the glottal onset
# before words that begin with a vowel (singer.GLOTTAL_*). Before that by the voice singing
# the vowels of a slower reading of its lines (Voice.slowness, 1.75 for the low voice; its consonants
# keep the engine's pace). Before that by starting
# renders from the plan's guide (RenderOptions.from_guide, 0.7 by default): the same song from noise
# (from_guide=1.0) gave the bytes before it (PINNED_FROM_NOISE). Before that (the audio only) by the voice: Flite reads
# each line as text, the default voice is the low one; before that by the vocal's room added a
# 30-s block at a time into float32 (float rounding), and before that by keeping the voice's WORLD analysis
# in float32, made a few lines at a time (a quarter of the memory; the envelopes round to float32);
# before that by sampling without oneDNN (1.64x faster; float rounding only: the bundled models' 30-s song
# differs by at most 4e-5, benchmarks/results/conv_backend.json); before that by the singing voice; before
# that, unchanged since 621ebae.
PINNED_AUDIO = "d25b4fae9bf1fc3396ccf9a8a0a9566ed4122b33b8f91f2854d18635cc745f11"
PINNED_LATENTS = "a7a1986440420116cb3bcad7c40c29ff8fb55094a37fef32452f91e68bdaa9b5"
PINNED_FROM_NOISE = ("2d85815f708d71268a7adcc73e47b12d1819cac0f5462cdef4e52a5b00212b1f",
                     "4a8348e8348a0b402c7b50161f38ad3ff4db22d1bd35cfc1f7e68147eef4fb42")


def _digests(result) -> tuple[str, str]:
    import hashlib

    return (hashlib.sha256(result.audio.tobytes()).hexdigest(),
            hashlib.sha256(result.latents.numpy().tobytes()).hexdigest())


def test_same_seed_gives_the_pinned_bytes(rendered, models, song):
    result, _ = rendered
    assert _digests(result) == (PINNED_AUDIO, PINNED_LATENTS)
    codec, model = models
    from_noise = render(song, seed=1, codec=codec, model=model, options=_options(from_guide=1.0), progress=False)
    assert _digests(from_noise) == PINNED_FROM_NOISE


@pytest.mark.parametrize("bad", [np.nan, np.inf, 0.0])
def test_a_song_that_is_not_finite_or_is_silent_is_refused(bad):
    from composer.errors import RenderError
    from composer.rendering.renderer import check_audio_sound

    audio = np.full((1, 800), 0.1, dtype=np.float32)
    check_audio_sound(audio)
    audio[0, 400] = bad
    if bad == 0.0:
        audio[:] = 0.0
    with pytest.raises(RenderError):
        check_audio_sound(audio)


def test_a_checkpoint_with_nan_weights_is_refused(tmp_path, models):
    from safetensors.torch import load_file, save_file

    import diffusion
    from autoencoder.codec import LatentCodec

    codec, model = models
    model.save_pretrained(tmp_path / "model")
    codec.save_pretrained(tmp_path / "codec")
    for name, loader, error in (("model", diffusion.load_model, diffusion.CheckpointNotFound),
                                ("codec", LatentCodec.from_pretrained, ValueError)):
        weights = load_file(str(tmp_path / name / "model.safetensors"))
        first = next(k for k, v in weights.items() if v.is_floating_point() and v.numel() > 1)
        weights[first].view(-1)[0] = float("nan")
        save_file(weights, str(tmp_path / name / "model.safetensors"))
        with pytest.raises(error, match="NaN"):
            loader(tmp_path / name)



def test_repaint_needs_the_renders_decoder_not_its_encoder(models, tmp_path):
    """A codec whose encoder alone was fine-tuned decodes the stored latents the same, so it may
    repaint; one with another decoder is refused."""
    import copy

    from composer.errors import InputError

    codec, model = models
    song = plan("genre=rock", duration=8, seed=3, write_lyrics=False)
    render(song, seed=1, codec=codec, model=model, options=_options(), progress=False).save(tmp_path / "r")
    new_encoder = copy.deepcopy(codec)
    with torch.no_grad():
        next(new_encoder.encoder_module.parameters()).add_(0.01)
    assert new_encoder.identity() != codec.identity() and new_encoder.decoder_identity() == codec.decoder_identity()
    modes.repaint(tmp_path / "r", song.sections[0].name, codec=new_encoder, model=model, progress=False)
    new_decoder = copy.deepcopy(codec)
    with torch.no_grad():
        next(new_decoder.decoder_module.parameters()).add_(0.01)
    with pytest.raises(InputError, match="codec differs"):
        modes.repaint(tmp_path / "r", song.sections[0].name, codec=new_decoder, model=model, progress=False)


def test_a_long_song_renders_lean_with_the_same_bytes(models, song, monkeypatch):
    """Past LONG_SONG_SECONDS a render lets the sentence model go after its caption, gives freed
    arrays back to the system and checks originality after the measurement: nothing it makes changes."""
    from composer import conditioning
    from composer.rendering import renderer

    codec, model = models
    options = dict(seed=1, codec=codec, model=model, progress=False)
    usual = render(song, options=RenderOptions(steps=3, overlap_seconds=0.06), **options)
    from composer import memory

    monkeypatch.setattr(renderer, "LONG_SONG_SECONDS", 1.0)
    thresholds = []
    monkeypatch.setattr(memory, "_set_thresholds", lambda mmap, trim: thresholds.append(mmap) or True)
    lean = render(song, options=RenderOptions(steps=3, overlap_seconds=0.06), **options)
    assert thresholds == [memory.MMAP_THRESHOLD, memory.SETTLED_MMAP_THRESHOLD]  # while it rendered
    assert conditioning._sentence_model.cache_info().currsize == 0
    assert np.array_equal(lean.audio, usual.audio) and lean.report["metrics"] == usual.report["metrics"]
    if usual.stems is not None:
        assert lean.stems.accompaniment.dtype == np.int16
        assert all(np.array_equal(getattr(lean.stems, k), getattr(usual.stems, k))
                   for k in ("accompaniment", "vocals", "vocals_dry"))


def test_a_long_loop_sings_its_tune_each_time_its_chords_come_round():
    plan = modes.loop_plan("genre=pop", 16, seed=0)
    section, bar = plan.sections[0], plan.beats_per_bar
    chorus = next(s for s in make_plan_for_loop().sections if s.kind == "chorus")
    first = [(n.pitch, n.start) for n in section.melody if n.start < chorus.bars * bar]
    again = [(n.pitch, n.start - chorus.bars * bar) for n in section.melody
             if chorus.bars * bar <= n.start < 2 * chorus.bars * bar]
    assert first and again == first and all(n.start + n.duration <= 16 * bar for n in section.melody)


def make_plan_for_loop():
    from composer import plan as make_plan

    return make_plan("genre=pop", seed=0, write_lyrics=False)


def test_a_render_does_not_depend_on_the_process_thread_count(song):
    # a batch worker runs on one thread, the CLI on two: the same song and seed must be the same bytes
    # (with a spectral codec, as the bundled one is: EnCodec's transposed convolutions round by thread)
    codec = tiny_codec()
    codec.set_spectral_encoder({"dim": 16, "layers": 1})
    codec.set_spectral_decoder({"dim": 16, "layers": 1})
    codec.eval()
    model = tiny_model(codec, window_frames=32)
    threads = torch.get_num_threads()
    digests = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            digests.append(_digests(render(song, seed=1, codec=codec, model=model, options=_options(),
                                           progress=False)))
    finally:
        torch.set_num_threads(threads)
    assert digests[0] == digests[1]


def test_repainting_a_chorus_again_and_again_keeps_every_other_section(models, tmp_path):
    # the repeat's joins are remade inside the repeat: the kept sections' latents never change
    # (the join into a repeat used to be mixed again on every repaint, and grew)
    from dataclasses import replace

    from composer.errors import InputError
    from composer.rendering.folder import load_render

    codec, model = models
    song = plan("genre=rock", duration=14, seed=3, write_lyrics=False)
    song.sections.append(replace(song.sections[2], name="chorus3", repeat_of="chorus2"))  # a chain of repeats
    render(song, seed=1, codec=codec, model=model, options=_options(), progress=False).save(tmp_path / "r")
    spans = [(round(a * codec.frame_rate), round(b * codec.frame_rate)) for a, b in song.section_times()]
    original = load_render(tmp_path / "r").latents.clone()
    for seed in (5, 6, 7):
        modes.repaint(tmp_path / "r", "chorus1", seed=seed, codec=codec, model=model, progress=False)
    latents = load_render(tmp_path / "r").latents
    for name in ("verse1", "outro1"):
        a, b = spans[[s.name for s in song.sections].index(name)]
        assert torch.equal(latents[:, a:b], original[:, a:b]), name
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["repaints"][-1]["repeats"] == ["chorus2", "chorus3"]  # through chorus2, too
    # a repeat is repainted through what it repeats
    with pytest.raises(InputError, match="--section chorus2: repeats chorus1; repaint chorus1"):
        modes.repaint(tmp_path / "r", "chorus2", codec=codec, model=model, progress=False)


def test_a_repaint_meets_the_kept_audio_in_a_crossfade():
    # the decoder carries its phase through the song: a cut back to the old samples clicked
    old = np.zeros((10000, 1), dtype=np.int16)
    new = np.full((1, 10000), 1000, dtype=np.int16)
    spliced = modes._splice(old, new, [(2000, 8000)])
    assert (spliced[:2000] == 0).all() and (spliced[8000:] == 0).all()
    assert (spliced[2000 + modes.SPLICE_FADE: 8000 - modes.SPLICE_FADE] == 1000).all()
    edge = spliced[2000: 2000 + modes.SPLICE_FADE, 0]
    assert (np.diff(edge.astype(int)) >= 0).all() and edge[0] < 10 and edge[-1] > 990


def test_a_clipped_input_is_used_and_the_user_is_told(models, tmp_path, caplog):
    codec, _ = models
    time_axis = np.arange(3 * 24000) / 24000
    clipped = np.clip(3 * np.sin(2 * np.pi * 220 * time_axis), -1, 1).astype(np.float32)
    sf.write(tmp_path / "loud.wav", clipped, 24000)
    stereo = np.stack([clipped, clipped], axis=1) * 0.3
    sf.write(tmp_path / "stereo.wav", stereo, 24000)
    with caplog.at_level("WARNING", logger="composer.rendering.modes"):
        modes._read_audio(tmp_path / "loud.wav", codec)
        modes._read_audio(tmp_path / "stereo.wav", codec)
    assert "loud.wav: clipping:" in caplog.text and "stereo.wav" not in caplog.text  # stereo is no fault


def test_a_restyled_song_repaints_from_its_recording_at_its_strength(models, rendered, tmp_path, monkeypatch, caplog):
    """A restyle's section was repainted from the plan's General MIDI guide at the default 0.7:
    the user's recording was lost from it (a 0.3 restyle's repaint as far off as a re-render)."""
    codec, model = models
    _, out = rendered
    audio, rate = sf.read(out / "song.wav", dtype="float32")
    clip = tmp_path / "mine.wav"
    sf.write(clip, audio[: len(audio) // 2], rate)
    styled = modes.restyle(clip, "genre=jazz", strength=0.3, seed=0, codec=codec, model=model,
                           options=_options(), progress=False)
    folder = tmp_path / "styled"
    styled.save(folder)
    seen = []
    real = modes.render_latents

    def recording(*args, **kwargs):
        seen.append((kwargs["guide"], kwargs["options"].from_guide))
        return real(*args, **kwargs)

    monkeypatch.setattr(modes, "render_latents", recording)
    section = styled.plan.sections[0].name
    modes.repaint(folder, section, seed=4, codec=codec, model=model, progress=False)
    source = modes._encode(codec, modes._read_audio(clip, codec))
    assert torch.equal(seen[-1][0], source) and seen[-1][1] == 0.3
    sf.write(clip, audio[len(audio) // 2: 2 * (len(audio) // 2)], rate)  # another recording of that length there
    with caplog.at_level("WARNING", logger="composer.rendering.modes"):
        modes.repaint(folder, section, seed=5, codec=codec, model=model, progress=False)
    assert "is gone or changed" in caplog.text and not torch.equal(seen[-1][0], source)
    caplog.clear()
    clip.unlink()  # the recording is gone: the song's own sound stands in, and the user is told
    with caplog.at_level("WARNING", logger="composer.rendering.modes"):
        modes.repaint(folder, section, seed=5, codec=codec, model=model, progress=False)
    assert "is gone or changed" in caplog.text and seen[-1][1] == 0.3
    assert seen[-1][0].shape == source.shape and not torch.equal(seen[-1][0], source)


def test_a_loop_prompts_duration_and_form_are_said_not_to_apply(caplog):
    with caplog.at_level("WARNING", logger="composer.rendering.modes"):
        song = modes.loop_plan("folk duration=600 form=verse,chorus", 4, seed=1)
    assert len(song.sections) == 1 and song.sections[0].bars == 4
    assert "duration and form in the prompt does not apply to a loop" in caplog.text
