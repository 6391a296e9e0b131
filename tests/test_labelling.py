"""Labels by analysis for recorded archives: confidence, long tracks cut into song-length
items at section boundaries, and unconfident labels kept away from the diffusion model."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf
from synthetic_song import RATE, pop_plan, render

from composer.data.labelling import analyze_dataset, cut_points
from structure.analysis import analyze, confidence


def test_a_clear_song_is_confident_and_noise_is_not():
    plan = pop_plan(112.0, "D major")
    trust = confidence(analyze(render(plan), RATE))
    assert trust["confident"] and trust["pulse"] >= 1.5 and trust["key_halves"] == ["D major", "D major"]
    noise = np.random.default_rng(0).normal(0, 0.1, RATE * 40).astype(np.float32)
    assert not confidence(analyze(noise, RATE))["confident"]


def test_cut_points_fall_on_boundaries_and_keep_items_song_length():
    boundaries = np.array([0.0, 40.0, 95.0, 150.0, 230.0, 300.0, 380.0, 450.0])
    cuts = cut_points(boundaries, 500.0, max_seconds=200.0, min_seconds=60.0)
    edges = [0.0, *cuts, 500.0]
    assert set(cuts) <= set(boundaries.tolist())
    assert all(60.0 <= b - a <= 200.0 for a, b in zip(edges, edges[1:]))
    assert cut_points(boundaries, 150.0, max_seconds=200.0, min_seconds=60.0) == []
    # no boundary where one is needed: a cut at the limit, and a short rest is split evenly
    assert cut_points(np.array([0.0]), 230.0, max_seconds=200.0, min_seconds=60.0) == [115.0]


def test_long_tracks_are_cut_into_analysed_items(tmp_path):
    plan = pop_plan(120.0, "G major")  # 40 bars at 120 BPM: 80 s, sections every 8 or 16 s
    audio = render(plan)
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "long.flac", np.stack([audio, audio]).T, RATE)
    noise = np.random.default_rng(1).normal(0, 0.05, RATE * 25).astype(np.float32)
    sf.write(tmp_path / "audio" / "noise.flac", noise, RATE)
    rows = [{"file_name": "audio/long.flac", "licence": "CC0-1.0", "consent": "licence-grant", "split": "train"},
            {"file_name": "audio/noise.flac", "licence": "CC0-1.0", "consent": "licence-grant", "split": "train"}]
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    counts = analyze_dataset(tmp_path, progress=False, max_item_seconds=45.0)
    assert counts["cut"] == 1 and counts["items"] >= 2 and counts["failed"] == 0
    written = [json.loads(line) for line in (tmp_path / "metadata.jsonl").read_text().splitlines()]
    parent = next(r for r in written if r["file_name"] == "audio/long.flac")
    items = [r for r in written if r.get("parent") == "audio/long.flac"]
    assert parent["cut_into"] == [r["file_name"] for r in items] and "plan" not in parent
    assert items[0]["start"] == 0.0 and abs(items[-1]["end"] - 80.0) < 0.1
    assert all(a["end"] == b["start"] for a, b in zip(items, items[1:]))
    for item in items:  # each a real file of its span, analysed on its own, with the parent's licence
        info = sf.info(tmp_path / item["file_name"])
        assert info.channels == 2 and abs(info.duration - (item["end"] - item["start"])) < 0.01
        assert item["plan"] and item["labels_source"] == "analysis" and item["consent"] == "licence-grant"
        assert "labels_confident" in item and "pulse" in item["analysis_confidence"]
    assert 0.0 <= counts["confident_share"] <= 1.0
    noise_row = next(r for r in written if r["file_name"] == "audio/noise.flac")
    assert noise_row["labels_confident"] is False
    # training reads the items, never the parent; the diffusion model never the unconfident noise
    from composer.data.datasets import iter_accepted
    from composer.train.data import accepted_rows

    names = [r.file_name for r in iter_accepted(tmp_path, check_audio=False)]
    assert "audio/long.flac" not in names and all(r["file_name"] in names for r in items)
    assert "audio/noise.flac" in [p.name and str(p.relative_to(tmp_path)) for p, _ in accepted_rows([str(tmp_path)])]
    # rerun: nothing analysed twice
    again = analyze_dataset(tmp_path, progress=False, max_item_seconds=45.0)
    assert again["labelled"] == 0 and again["cut"] == 0
    # consent withdrawn for the long track: its items go with it, in the check and in training
    from composer.data.datasets import check_dataset
    from composer.data.revocations import revoke

    revoke(tmp_path, "audio/long.flac", reason="the artist asked")
    report = check_dataset(tmp_path)
    assert all(r["file_name"] not in report.accepted for r in items)
    assert any("cut from audio/long.flac: consent withdrawn" in str(p) for p in report.refused)
    assert [r.file_name for r in iter_accepted(tmp_path, check_audio=False)] == ["audio/noise.flac"]


def test_analysis_reads_only_what_training_may_use_and_labels_every_file_apart(tmp_path):
    # a file data check refuses (no consent, withdrawn) is never read; "x.wav" and "x.flac" get
    # their own labels; a track whose item names are taken by the user's own files is not cut
    from composer.data.revocations import revoke

    (tmp_path / "audio").mkdir()
    plan = pop_plan(120.0, "G major")
    sf.write(tmp_path / "audio" / "x.wav", render(plan)[: RATE * 40], RATE)
    sf.write(tmp_path / "audio" / "x.flac", render(pop_plan(92.0, "E minor"))[: RATE * 40], RATE)
    sf.write(tmp_path / "audio" / "long.flac", render(plan), RATE)
    mine = np.random.default_rng(2).normal(0, 0.05, RATE * 20).astype(np.float32)
    sf.write(tmp_path / "audio" / "long__part01.flac", mine, RATE)
    for name in ("secret", "gone"):
        sf.write(tmp_path / "audio" / f"{name}.flac", render(plan), RATE)
    ok = {"licence": "CC0-1.0", "consent": "licence-grant"}
    rows = [{"file_name": "audio/x.wav", **ok}, {"file_name": "audio/x.flac", **ok},
            {"file_name": "audio/long.flac", **ok}, {"file_name": "audio/long__part01.flac", **ok},
            {"file_name": "audio/secret.flac", "licence": "All rights reserved"}, {"file_name": "audio/gone.flac", **ok}]
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    revoke(tmp_path, "audio/gone.flac", reason="withdrawn")
    counts = analyze_dataset(tmp_path, progress=False, max_item_seconds=45.0)
    assert counts["refused"] == 2 and counts["cut"] == 0 and counts["failed"] == 0
    written = {r["file_name"]: r for r in map(json.loads, (tmp_path / "metadata.jsonl").read_text().splitlines())}
    assert "plan" not in written["audio/secret.flac"] and "plan" not in written["audio/gone.flac"]
    assert written["audio/x.wav"]["plan"] != written["audio/x.flac"]["plan"]
    assert written["audio/x.wav"]["tempo"] != written["audio/x.flac"]["tempo"]
    assert "cut_into" not in written["audio/long.flac"] and written["audio/long.flac"]["plan"]
    back, _ = sf.read(tmp_path / "audio" / "long__part01.flac", dtype="float32")
    assert np.abs(back - mine).max() < 1e-3  # the user's file is as it was


def test_unconfident_analysed_labels_do_not_train_the_diffusion_model(tmp_path, monkeypatch):
    import composer.train.data as data

    (tmp_path / "audio").mkdir()
    rows = []
    for name, confident in (("sure", True), ("unsure", False)):
        sf.write(tmp_path / "audio" / f"{name}.flac", np.zeros(RATE, np.float32) + 0.1, RATE)
        rows.append({"file_name": f"audio/{name}.flac", "licence": "CC0-1.0", "consent": "opt-in",
                     "labels_source": "analysis", "labels_confident": confident})
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(data, "encode_dataset", lambda rows, *a, **k: [])
    train_rows, _, _, _ = data.latent_items([str(tmp_path)], codec=None, cache_dir=tmp_path / "cache")
    assert [p.name for p, _ in train_rows] == ["sure.flac"]
    assert len(data.accepted_rows([str(tmp_path)])) == 2  # the codec still hears both


def test_labels_the_row_gives_are_kept_and_a_disagreeing_analysis_is_not_trusted(tmp_path, caplog):
    (tmp_path / "audio").mkdir()
    song = render(pop_plan(120.0, "D major"))[: RATE * 40]
    sf.write(tmp_path / "audio" / "given.flac", song, RATE)
    sf.write(tmp_path / "audio" / "agrees.flac", song, RATE)
    ok = {"licence": "CC0-1.0", "consent": "licence-grant"}
    rows = [{"file_name": "audio/given.flac", "tempo": 96, "key": "G major", "beats_per_bar": 3, **ok},
            {"file_name": "audio/agrees.flac", "key": "B minor", **ok}]
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level("WARNING", logger="composer.data.labelling"):
        analyze_dataset(tmp_path, progress=False)
    written = {r["file_name"]: r for r in map(json.loads, (tmp_path / "metadata.jsonl").read_text().splitlines())}
    given, agrees = written["audio/given.flac"], written["audio/agrees.flac"]
    from structure.schema import SongPlan

    # the row's key names the plan's key; its tempo and meter are kept, and the analysis that
    # does not find them is not trusted to teach the diffusion model
    assert str(SongPlan.from_json((tmp_path / given["plan"]).read_text()).key) == "G major"
    assert given["tempo"] == 96 and given["key"] == "G major" and given["labels_confident"] is False
    assert "tempo 96" in " ".join(given["analysis_confidence"]["disagrees_with"])
    assert "does not find the row's tempo 96" in caplog.text
    assert str(SongPlan.from_json((tmp_path / agrees["plan"]).read_text()).key) == "B minor"
    assert "disagrees_with" not in agrees["analysis_confidence"]


def test_overwrite_replaces_what_an_earlier_analysis_filled_not_what_the_row_gave(tmp_path):
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "song.flac", render(pop_plan(120.0, "D major"))[: RATE * 40], RATE)
    row = {"file_name": "audio/song.flac", "licence": "CC0-1.0", "consent": "licence-grant", "mood": "calm"}
    (tmp_path / "metadata.jsonl").write_text(json.dumps(row) + "\n")
    analyze_dataset(tmp_path, progress=False)
    first = json.loads((tmp_path / "metadata.jsonl").read_text())
    assert first["analysed_fields"] == ["beat_division", "beats_per_bar", "key", "tempo"] and first["labels_confident"]
    # an older analysis left other values (say, before a fix): --overwrite replaces them, and is not
    # misled into distrusting the new analysis
    stale = {**first, "tempo": 60, "key": "B minor"}
    (tmp_path / "metadata.jsonl").write_text(json.dumps(stale) + "\n")
    analyze_dataset(tmp_path, progress=False, overwrite=True)
    again = json.loads((tmp_path / "metadata.jsonl").read_text())
    assert again["key"] == first["key"] and again["tempo"] == first["tempo"]
    assert again["labels_confident"] == first["labels_confident"] and "disagrees_with" not in again["analysis_confidence"]
    # a 6/8 row: the analysis counts 3 or 4 beats, so a compound analysis (12/8) is not distrusted for
    # its 2 beats; a simple one (4/4) is: its beat grid is not the row's
    from types import SimpleNamespace

    from composer.data.labelling import _agree_with_given_labels
    from structure.schema import SongPlan

    plan = SongPlan.from_json((tmp_path / again["plan"]).read_text())
    compound = SongPlan.from_dict({**plan.to_dict(), "beat_division": 3})
    trust = {"confident": True}
    _agree_with_given_labels(SimpleNamespace(file_name="x", fields={"meter": "6/8"}), compound, trust)
    assert trust["confident"]
    _agree_with_given_labels(SimpleNamespace(file_name="x", fields={"meter": "6/8"}), plan, trust)
    assert not trust["confident"] and trust["disagrees_with"] == ["compound meter (analysed 4/4)"]
    trust = {"confident": True}
    _agree_with_given_labels(SimpleNamespace(file_name="x", fields={"meter": "3/4"}), plan, trust)
    assert not trust["confident"] and plan.beats_per_bar == 4
    from composer.conditioning import NON_TAG_FIELDS
    from composer.persona.priors import NOT_PRIORS

    assert "analysed_fields" in NON_TAG_FIELDS and "analysed_fields" in NOT_PRIORS


def test_analyze_of_a_file_or_of_a_folder_it_may_not_read_is_an_error(tmp_path):
    from click.testing import CliRunner

    from composer.cli import main

    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "secret.flac", render(pop_plan(120.0, "G major"))[: RATE * 5], RATE)
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "audio/secret.flac",
                                                         "licence": "All rights reserved"}) + "\n")
    result = CliRunner().invoke(main, ["data", "analyze", str(tmp_path)])
    assert result.exit_code == 2 and "every file was refused" in result.output, result.output
    result = CliRunner().invoke(main, ["data", "analyze", str(tmp_path / "metadata.jsonl")])
    assert result.exit_code == 2 and "a file, not a dataset folder" in result.output, result.output
