"""composer.evaluate.metrics on songs synthesised from plans: each metric finds what was put in."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from synthetic_song import RATE, click, make_plan, pop_plan, render

from composer.cli import main
from composer.data.audio import audio_write
from composer.errors import InputError
from composer.evaluate.folders import aggregate, evaluate_dir, evaluate_paths, format_table
from composer.evaluate.metrics import (
    evaluate_audio,
    loudness_metrics,
    mir_eval_chord,
    mir_eval_key,
    seam_metrics,
    tempo_metrics,
)
from structure.schema import Key


@pytest.fixture(scope="module")
def song():
    plan = pop_plan(128.0, "G major")
    return plan, render(plan)


@pytest.fixture(scope="module")
def clicked(song):
    """The song with a click at an off-beat window seam, and its metrics."""
    plan, audio = song
    audio = audio.copy()
    spb = plan.seconds_per_beat
    window_seams = [12.1, 70 * spb + spb / 2, 45.7]
    click(audio, window_seams[1])
    seams = [start for start, _ in plan.section_times()[1:]]
    metrics = evaluate_audio(audio, RATE, plan, seams=seams, window_seams=window_seams)
    return window_seams[1], metrics


def test_tempo_key_chords_and_boundaries(clicked):
    _, metrics = clicked
    tempo = metrics["tempo"]
    assert tempo["estimated_bpm"] == pytest.approx(128.0, rel=0.02)
    assert tempo["acc1"] and tempo["acc2"] and tempo["stability_bpm"] < 1.0
    assert tempo["estimated_beats_per_bar"] == 4
    assert metrics["key"]["estimated"] == "G major" and metrics["key"]["score"] == 1.0
    assert metrics["key"]["section_score_mean"] >= 0.8
    assert len(metrics["key"]["sections"]) == 6
    assert metrics["chords"]["bars"] == 40 and metrics["chords"]["accuracy"] >= 0.9
    boundaries = metrics["boundaries"]
    assert boundaries["f_3s"] == 1.0 and boundaries["f_0_5s"] == 1.0
    assert np.allclose(boundaries["estimated"], boundaries["planned"], atol=1.0)


def test_repeated_sections_sound_alike(clicked):
    repetition = clicked[1]["repetition"]
    assert repetition["contrast"] > 0.3
    assert repetition["same_label_similarity"] > repetition["different_label_similarity"]
    assert repetition["most_similar_pair_shares_label"] is True


def test_the_clicked_seam_stands_out(clicked):
    click_time, metrics = clicked
    rows = metrics["seams"]["per_seam"]
    assert [r["kind"] for r in rows].count("window") == 3 and [r["kind"] for r in rows].count("section") == 5
    clicked_row = next(r for r in rows if r["time"] == pytest.approx(click_time))
    others = [r for r in rows if r is not clicked_row]
    assert clicked_row["flux"] > 2.0 * max(r["flux"] for r in others)
    assert clicked_row["flux_z"] > 3.0 * max(r["flux_z"] for r in others)
    assert clicked_row["jump"] > 1.5 * max(r["jump"] for r in others)
    assert metrics["seams"]["window_flux_max"] == clicked_row["flux"]
    assert metrics["seams"]["section_flux_max"] < clicked_row["flux"] / 2
    assert clicked_row["rank"] == 1.0  # louder than every ordinary cut point
    assert metrics["seams"]["window_above_p95"] == pytest.approx(1 / 3)


def test_a_click_on_a_section_seam_raises_its_score(song):
    plan, audio = song
    seams = [start for start, _ in plan.section_times()[1:]]
    clean = seam_metrics(audio, RATE, seams=seams, beat_seconds=plan.seconds_per_beat)["per_seam"]
    audio = audio.copy()
    click(audio, seams[1], amplitude=0.9, seconds=0.005)
    rows = seam_metrics(audio, RATE, seams=seams, beat_seconds=plan.seconds_per_beat)["per_seam"]
    assert rows[1]["flux_z"] > clean[1]["flux_z"] + 2.0
    assert rows[1]["flux"] == max(r["flux"] for r in rows)
    assert [r["flux"] for i, r in enumerate(rows) if i != 1] == [r["flux"] for i, r in enumerate(clean) if i != 1]


def test_metrics_are_json_ready(clicked):
    text = json.dumps(clicked[1], allow_nan=False)
    assert json.loads(text) == clicked[1]


def test_loudness_clipping_and_silence():
    t = np.arange(5 * 48000) / 48000
    sine = 0.1 * np.sin(2 * np.pi * 997 * t)  # -20 dBFS peak: -23 LUFS (BS.1770)
    assert loudness_metrics(sine, 48000)["lufs"] == pytest.approx(-23.0, abs=0.3)
    half_silent = np.concatenate([sine[: len(sine) // 2], np.zeros(len(sine) // 2)])
    assert loudness_metrics(half_silent, 48000)["silence_ratio"] == pytest.approx(0.5, abs=0.01)
    clipped = sine.copy()
    clipped[::100] = 1.0
    stereo = np.stack([clipped, sine])
    result = loudness_metrics(stereo, 48000)
    assert result["clipping_ratio"] == pytest.approx(0.005, rel=0.01)
    assert result["silence_ratio"] == 0.0
    silent = loudness_metrics(np.zeros(100), 48000)
    assert silent["lufs"] is None and silent["clipping_ratio"] == 0.0


@pytest.mark.parametrize(("estimated", "planned", "acc1", "acc2"), [
    (128.0, 128.0, True, True), (130.0, 128.0, True, True), (128.0, 64.0, False, True),
    (64.0, 128.0, False, True), (120.0, 40.0, False, True), (150.0, 128.0, False, False),
    (0.0, 120.0, False, False)])
def test_tempo_octave_errors(estimated, planned, acc1, acc2):
    beats = np.arange(0, 30, 60 / estimated) if estimated else np.zeros(0)
    analysis = SimpleNamespace(tempo_bpm=estimated, beats=beats, beats_per_bar=4)
    plan = SimpleNamespace(tempo_bpm=planned, beats_per_bar=4)
    result = tempo_metrics(analysis, plan)
    assert (result["acc1"], result["acc2"]) == (acc1, acc2)


def test_mir_eval_spellings():
    assert [mir_eval_chord(c) for c in ("C", "Am7", "G7", "Bdim", "F#m", "Bbmaj7", "Csus4", "N")] == \
        ["C:maj", "A:min", "G:maj", "B:min", "F#:min", "Bb:maj", "C:sus4", "N"]
    assert mir_eval_key(Key("D", "dorian")) == "D minor"
    assert mir_eval_key(Key("F", "mixolydian")) == "F major"


def test_audio_shorter_than_the_plan(song):
    plan, audio = song
    metrics = evaluate_audio(audio[: len(audio) // 3], RATE, plan)
    assert metrics["duration"]["seconds"] == pytest.approx(plan.duration / 3, abs=0.01)
    assert 0 < metrics["chords"]["bars"] < plan.total_bars
    assert metrics["seams"]["per_seam"] == []


def test_aggregate_and_table():
    results = [{"tempo": {"acc1": True, "estimated_bpm": 120.0}, "key": {"score": 1.0, "estimated": "C major"}},
               {"tempo": {"acc1": False, "estimated_bpm": 100.0}, "key": {"score": None}}]
    summary = aggregate(results)
    assert summary == {"renders": 2, "mean": {"tempo.acc1": 0.5, "tempo.estimated_bpm": 110.0, "key.score": 1.0}}
    table = format_table(results, ["first", "second"]).splitlines()
    assert table[0].split()[:3] == ["render", "bpm", "tempo"]
    assert [line.split()[0] for line in table[2:]] == ["first", "second", "mean"]
    assert table[3].split()[1] == "100.0" and "-" in table[3].split()


def _render_dir(path, *, report: dict | None = None, click_at: float | None = None):
    plan = make_plan(tempo=128.0, key="D major", form=[
        ("verse 1", "verse", 4, ["D", "G", "Bm", "A"]), ("chorus 1", "chorus", 4, ["G", "A", "D", "D"]),
        ("verse 2", "verse", 4, ["D", "G", "Bm", "A"]), ("chorus 2", "chorus", 4, ["G", "A", "D", "D"])])
    audio = render(plan)
    if click_at is not None:
        click(audio, click_at)
    path.mkdir(parents=True)
    audio_write(path / "song.wav", np.stack([audio, audio]), RATE)
    (path / "plan.json").write_text(plan.to_json())
    if report is not None:
        (path / "report.json").write_text(json.dumps(report))
    return plan


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    root = tmp_path_factory.mktemp("renders")
    spb = 60.0 / 128
    seams = [{"time": 7.5, "kind": "section", "section": "chorus 1"},
             {"time": 20 * spb + spb / 2, "kind": "window", "section": "chorus 1"},
             {"time": 15.0, "kind": "section"}, {"time": 22.5, "kind": "section"}]
    _render_dir(root / "a", report={"seed": 0, "seams": seams}, click_at=seams[1]["time"])
    _render_dir(root / "b")
    return root


def test_evaluate_dir_uses_the_report_and_draws(renders):
    metrics = evaluate_dir(renders / "a")
    rows = metrics["seams"]["per_seam"]
    assert [r["kind"] for r in rows] == ["section", "window", "section", "section"]
    assert metrics["seams"]["window_flux_max"] > 2 * metrics["seams"]["section_flux_max"]
    image = (renders / "a" / "evaluation.png").read_bytes()
    assert image.startswith(b"\x89PNG")
    assert sorted(p.name for p in (renders / "a").iterdir()) == ["evaluation.png", "plan.json", "report.json", "song.wav"]
    # Without a report the seams are the planned section starts.
    plain = evaluate_dir(renders / "b")
    assert [r["time"] for r in plain["seams"]["per_seam"]] == pytest.approx([7.5, 15.0, 22.5])
    assert all(r["kind"] == "section" for r in plain["seams"]["per_seam"])


def test_evaluate_paths_on_a_folder_of_renders(renders):
    document = json.loads(evaluate_paths([str(renders)], as_json=True))
    assert list(document["renders"]) == [str(renders / "a"), str(renders / "b")]
    assert document["aggregate"]["renders"] == 2
    assert document["aggregate"]["mean"]["tempo.acc1"] == 1.0
    table = evaluate_paths([str(renders / "b")], as_json=False)
    assert str(renders / "b") in table and "mean" not in table


def test_cli_evaluate(renders):
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate", str(renders / "b"), "--json"])
    assert result.exit_code == 0, result.output
    assert math.isclose(json.loads(result.output)["aggregate"]["mean"]["tempo.acc2"], 1.0)
    missing = runner.invoke(main, ["evaluate", str(renders / "nowhere")])
    assert missing.exit_code == 2
    assert str(renders / "nowhere") in missing.output
    # a bad path or render among good ones: named, and the good ones measured once each
    broken = renders.parent / "broken"
    broken.mkdir(exist_ok=True)
    (broken / "song.wav").write_bytes((renders / "b" / "song.wav").read_bytes())
    (broken / "plan.json").write_text("{not json")
    mixed = runner.invoke(main, ["evaluate", str(renders / "b"), str(broken), str(renders / "nowhere"),
                                 str(renders / "b"), "--json"])
    assert mixed.exit_code == 2
    assert str(broken / "plan.json") in mixed.stderr and str(renders / "nowhere") in mixed.stderr
    assert list(json.loads(mixed.stdout)["renders"]) == [str(renders / "b")]


def test_missing_and_broken_files_name_the_path(tmp_path):
    with pytest.raises(InputError, match="nowhere"):
        evaluate_paths([str(tmp_path / "nowhere")], as_json=False)
    with pytest.raises(InputError, match=str(tmp_path)):
        evaluate_paths([str(tmp_path)], as_json=False)  # a folder with no renders
    render_dir = tmp_path / "render"
    render_dir.mkdir()
    (render_dir / "song.wav").write_bytes(b"")
    with pytest.raises(InputError, match="plan.json"):
        evaluate_dir(render_dir)
    (render_dir / "song.wav").unlink()
    (render_dir / "plan.json").write_text(make_plan(tempo=120.0, key="C", form=[
        ("verse", "verse", 2, ["C"])]).to_json())
    with pytest.raises(InputError, match="song.wav"):
        evaluate_dir(render_dir)
    audio_write(render_dir / "song.wav", np.zeros(RATE, dtype=np.float32), RATE)
    (render_dir / "report.json").write_text("{not json")
    with pytest.raises(InputError, match="report.json"):
        evaluate_dir(render_dir)
    (render_dir / "report.json").write_text(json.dumps({"seams": [{"time": "soon"}]}))
    with pytest.raises(InputError, match=r"seams\[0\]"):
        evaluate_dir(render_dir)
    (render_dir / "plan.json").write_text('{"tempo_bpm": 500}')
    with pytest.raises(InputError, match="plan.json"):
        evaluate_dir(render_dir)


def test_key_weighted_scores_how_far_a_key_moved():
    from composer.evaluate.metrics import key_weighted
    from structure.schema import Key

    assert key_weighted(Key("E", "minor"), Key("E", "minor")) == 1.0
    assert key_weighted(Key("C", "major"), Key("G", "major")) == 0.5  # a fifth up
    assert key_weighted(Key("D", "major"), Key("B", "minor")) == 0.3  # relative
    assert key_weighted(Key("A", "minor"), Key("A", "major")) == 0.2  # parallel
    assert key_weighted(Key("Db", "major"), Key("C#", "major")) == 1.0  # spelt either way
    assert key_weighted(Key("E", "minor"), Key("F#", "major")) == 0.0


def test_a_loops_wrap_is_measured_from_both_sides():
    # a loop's join is at its end: measured on the loop played twice, a click there is found
    from composer.evaluate.metrics import measure
    from structure import plan as make_plan

    song = make_plan("genre=electronic tempo=120", duration=8, seed=0)
    rate = 16000
    t = np.arange(int(8 * rate)) / rate
    smooth = (0.3 * np.sin(2 * np.pi * 250 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)
    clicked = smooth.copy()
    clicked[-rate // 50:] = 0.9  # a step before the join
    wrap = [s for s in measure(clicked[None], rate, song, [], [], loop=True).seam_rows if abs(s["time"] - 8) < 0.01]
    assert len(wrap) == 1 and wrap[0]["jump"] > 3
    assert not [s for s in measure(clicked[None], rate, song, [], []).seam_rows if abs(s["time"] - 8) < 0.01]
    ordinary = [s for s in measure(smooth[None], rate, song, [], [], loop=True).seam_rows if abs(s["time"] - 8) < 0.01]
    assert ordinary[0]["jump"] < wrap[0]["jump"] / 2


def test_a_seam_time_that_is_not_a_number_names_the_seam(tmp_path):
    _render_dir(tmp_path / "r", report={"seams": [{"time": 7.5, "kind": "section"}, {"time": float("nan"), "kind": "window"}]})
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "r")])
    assert result.exit_code == 2 and "seams[1]" in result.output and "Traceback" not in result.output


def test_a_silent_song_is_measured_without_warnings(tmp_path, recwarn):
    import warnings

    from composer.evaluate.folders import evaluate_dir

    plan = _render_dir(tmp_path / "r")
    audio_write(tmp_path / "r" / "song.wav", np.zeros((1, int(plan.duration * RATE)), dtype=np.float32), RATE)
    warnings.simplefilter("always")
    evaluate_dir(tmp_path / "r")
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)], [str(w.message) for w in recwarn]
    assert (tmp_path / "r" / "evaluation.png").stat().st_size > 0
