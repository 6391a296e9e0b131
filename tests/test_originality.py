"""Originality and consent: the index finds training excerpts after re-encoding and not
held-out songs; the planner will not hand on a copied melody; withdrawn consent is
refused by training and flagged on a model that learnt the file."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from synthetic_song import RATE
from synthetic_song import render as synth

from composer.cli import main

PROMPTS = ["hopeful pop song", "sad folk ballad", "angry rock song", "calm jazz tune", "happy reggae",
           "dark electronic track", "tender waltz", "bright funk groove"]


def _write_dataset(root, songs, *, validation=()):
    from structure.planner import plan

    (root / "audio").mkdir(parents=True)
    (root / "plans").mkdir()
    rows = []
    for number, (prompt, seed) in enumerate(songs):
        song = plan(prompt, seed=seed, duration=24, write_lyrics=False)
        audio = synth(song, seed=seed)
        sf.write(root / "audio" / f"s{number}.flac", audio.T if audio.ndim == 2 else audio, RATE)
        (root / "plans" / f"s{number}.json").write_text(song.to_json())
        rows.append({"file_name": f"audio/s{number}.flac", "plan": f"plans/s{number}.json", "licence": "generated",
                     "consent": "opt-in", "id": f"song-{number}",
                     "split": "validation" if number in validation else "train"})
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("originality")
    train = _write_dataset(root / "train", [(p, 10 + i) for i, p in enumerate(PROMPTS[:6])], validation=(5,))
    heldout = _write_dataset(root / "heldout", [(p, 50 + i) for i, p in enumerate(PROMPTS[6:])])
    result = CliRunner().invoke(main, ["originality", "index", str(train), "--heldout", str(heldout),
                                       "-o", str(root / "index")])
    assert result.exit_code == 0, result.output
    return train, heldout, root / "index"


def _reencode(source, target, *, start: float, seconds: float = 10.0, gain_db: float = 3.0):
    """An excerpt as a listener would pass it on: trimmed, MP3 at 64 kbps, resampled, louder."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", str(start), "-t", str(seconds), "-i", str(source),
                    "-af", f"volume={gain_db}dB", "-ar", "44100", "-b:a", "64k", str(target)], check=True)


def test_training_excerpt_is_found_after_reencoding_and_heldout_is_not(archive, tmp_path):
    train, heldout, index = archive
    _reencode(train / "audio" / "s2.flac", tmp_path / "excerpt.mp3", start=7.37)
    result = CliRunner().invoke(main, ["originality", str(tmp_path / "excerpt.mp3"),
                                       str(heldout / "audio" / "s0.flac"), "--index", str(index), "--json"])
    assert result.exit_code == 1, result.output  # a match: status 1, for scripts
    answers = [json.loads(line) for line in result.output.splitlines()]
    found, other = answers
    assert [m["file"] for m in found["matches"]] == ["audio/s2.flac"]
    match = found["matches"][0]
    # the excerpt starts 7.37 s into the song: its time and the training time agree within a window hop
    assert abs((match["start"] - match["query_start"]) - 7.37) < 0.6 or match["similarity"] > 0.95
    assert other["matches"] == [] and other["nearest"]["similarity"] < found["matches"][0]["similarity"]
    alone = CliRunner().invoke(main, ["originality", str(heldout / "audio" / "s0.flac"), "--index", str(index)])
    assert alone.exit_code == 0 and "not in the training set" in alone.output, alone.output


def test_the_validation_split_is_not_indexed(archive):
    from composer.originality import load_index

    train, _, index = archive
    files = [f["file"] for f in load_index(index).files]
    assert "audio/s5.flac" not in files and len(files) == 5


def test_a_copied_melody_is_refused_and_the_planner_plans_again(archive):
    from composer.errors import InputError
    from composer.originality import check_plan_melodies, load_index, melody_check
    from structure.planner import plan
    from structure.schema import SongPlan

    train, _, index_dir = archive
    index = load_index(index_dir)
    learnt = SongPlan.from_json((train / "plans" / "s1.json").read_text())
    with pytest.raises(InputError, match=r"melody repeats .*audio/s1\.flac"):
        check_plan_melodies(learnt, index)  # a user's plan holding a training melody
    # the training songs were planned here: the same prompt and seed would make the same melodies
    plain = plan(PROMPTS[1], seed=11, duration=24, write_lyrics=False)
    check = melody_check(index)
    assert check is not None
    assert any(check(s.melody, plain.beats_per_bar) for s in plain.sections if s.melody and not s.repeat_of)
    checked = plan(PROMPTS[1], seed=11, duration=24, write_lyrics=False, melody_check=check)
    check_plan_melodies(checked, index)  # nothing copied any more
    assert [s.name for s in checked.sections] == [s.name for s in plain.sections]


def test_withdrawn_consent_is_refused_by_training_and_flagged_on_the_model(archive, tmp_path):
    from composer.data.datasets import check_dataset, iter_accepted
    from composer.doctor import _consent

    train, _, index = archive
    data = tmp_path / "data"
    shutil.copytree(train, data)
    model = tmp_path / "model"
    result = CliRunner().invoke(main, ["originality", "index", str(data), "-o", str(model)])
    assert result.exit_code == 0, result.output
    assert _consent(model).ok
    result = CliRunner().invoke(main, ["data", "revoke", str(data), "song-3", "--reason", "the artist asked",
                                       "--model", str(model)])
    assert result.exit_code == 0, result.output
    assert "audio/s3.flac" in result.output and "was trained on audio/s3.flac" in result.output
    card = (model / "MODEL_CARD.md").read_text()
    assert "Consent withdrawn since training" in card and "audio/s3.flac" in card and "the artist asked" in card
    assert "audio/s3.flac" not in [r.file_name for r in iter_accepted(data, check_audio=False)]
    report = check_dataset(data)
    assert any("s3.flac" in str(p) and "consent withdrawn" in str(p) and "the artist asked" in str(p)
               for p in report.refused)
    check = _consent(model)
    assert not check.ok and "audio/s3.flac" in check.detail and "the artist asked" in check.detail
    # audio that matches the withdrawn file says so too
    query = CliRunner().invoke(main, ["originality", str(data / "audio" / "s3.flac"), "--index", str(model)])
    assert query.exit_code == 1 and "MATCH audio/s3.flac" in query.output
    assert "consent was withdrawn on" in query.output and "the artist asked" in query.output
    # revoking twice keeps one record; an unknown file is one clear error
    assert CliRunner().invoke(main, ["data", "revoke", str(data), "audio/s3.flac", "--reason", "x"]).exit_code == 0
    assert len((data / "revocations.jsonl").read_text().splitlines()) == 1
    bad = CliRunner().invoke(main, ["data", "revoke", str(data), "nope.flac", "--reason", "x"])
    assert bad.exit_code == 2 and "nope.flac" in bad.output
    # a folder given to `originality` is called a folder, and each file is named once
    folder = CliRunner().invoke(main, ["originality", str(data / "audio"), "--index", str(model)])
    assert folder.exit_code == 2
    assert folder.output.strip() == f"{data / 'audio'}: error: a folder, not an audio file"
    # a withdrawal in another copy of a learnt file (not a folder the index names) is read with --data,
    # as revoke's message says
    copy = tmp_path / "copy"
    shutil.copytree(train, copy)
    said = CliRunner().invoke(main, ["data", "revoke", str(copy), "song-4", "--reason", "later", "--model", str(model)])
    assert f"`composer doctor --data {copy}` lists it" in said.output, said.output
    assert "audio/s4.flac" not in _consent(model).detail
    assert "audio/s4.flac" in _consent(model, (str(copy),)).detail


def test_every_render_reports_its_originality(archive, tiny_models, tmp_path, monkeypatch):
    import composer

    train, _, index = archive
    codec_dir, model_dir = tiny_models
    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    song = composer.plan("hopeful pop song", seed=3, duration=12, model=str(model))  # no index yet: no check
    bare = composer.render(song, seed=0, steps=2, codec=str(codec_dir), model=str(model), progress=False)
    assert bare.report["originality"]["verdict"] == "not checked"
    for name in ("originality.json", "originality.safetensors"):
        shutil.copy(index / name, model / name)
    result = composer.render(song, seed=0, steps=2, codec=str(codec_dir), model=str(model), progress=False)
    block = result.report["originality"]
    assert [row["section"] for row in block["sections"]] == [s.name for s in song.sections]
    assert block["verdict"] in ("original", "close to training data")
    assert block["largest"]["audio"] == max(row["audio"]["similarity"] for row in block["sections"] if "audio" in row)
    assert block["thresholds"]["audio"] > 0 and block["index"]["files"] == 5
    assert np.array_equal(result.audio, bare.audio)  # the check reads the render, it never changes it
    # a long song's check runs after its measurement instead of beside it: the same report
    import composer.rendering.renderer as renderer

    monkeypatch.setattr(renderer, "LONG_SONG_SECONDS", 0.0)
    after = composer.render(song, seed=0, steps=2, codec=str(codec_dir), model=str(model), progress=False)
    assert after.report["originality"] == block and after.report["metrics"] == result.report["metrics"]
    assert list(after.report) == list(result.report) and list(after.report["timings"]) == list(result.report["timings"])


def test_index_round_trips_and_refuses_damage(archive, tmp_path):
    from composer.errors import InputError
    from composer.originality.index import OriginalityIndex

    _, _, index_dir = archive
    index = OriginalityIndex.load(index_dir)
    index.save(tmp_path / "copy")
    again = OriginalityIndex.load(tmp_path / "copy")
    assert np.array_equal(again.vectors, index.vectors) and np.array_equal(again.projection, index.projection)
    assert again.meta == index.meta
    # the arrays of another index beside this one's JSON (a kill between the two writes): damaged
    other = OriginalityIndex.load(index_dir)
    other.vectors = other.vectors[:-1]
    other.window_file, other.window_start = other.window_file[:-1], other.window_start[:-1]
    other.save(tmp_path / "other")
    (tmp_path / "copy" / "originality.safetensors").write_bytes((tmp_path / "other" / "originality.safetensors").read_bytes())
    with pytest.raises(InputError, match="from different runs"):
        OriginalityIndex.load(tmp_path / "copy")
    (tmp_path / "copy" / "originality.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(InputError, match="damaged originality index"):
        OriginalityIndex.load(tmp_path / "copy")
    # doctor names the damage as one failed check, and runs the others
    from composer import doctor

    checks = doctor.run_checks(models=(str(tmp_path / "copy"),))
    damaged = [c for c in checks if str(tmp_path / "copy") in c.name]
    assert len(damaged) == 1 and not damaged[0].ok and "damaged" in damaged[0].detail
    assert any(c.name == "training device (--device auto)" for c in checks)
    # an index is not replaced without --overwrite
    train, _, _ = archive
    result = CliRunner().invoke(main, ["originality", "index", str(train), "-o", str(index_dir)])
    assert result.exit_code == 2 and "already holds an originality index" in result.output


def test_a_fine_tune_is_checked_against_what_its_base_learnt(archive, tiny_models, tmp_path):
    from composer.models import load_model
    from composer.originality import lineage_indexes, melody_check
    from structure.schema import SongPlan

    train, _, index = archive
    _, model_dir = tiny_models
    parent, child = tmp_path / "parent", tmp_path / "child"
    shutil.copytree(model_dir, parent)
    shutil.copytree(model_dir, child)
    for name in ("originality.json", "originality.safetensors"):
        shutil.copy(index / name, parent / name)
    config = json.loads((child / "config.json").read_text())
    config["training"] = {"init": str(parent)}
    (child / "config.json").write_text(json.dumps(config))
    indexes = lineage_indexes(load_model(child))
    assert len(indexes) == 1 and indexes[0].meta["data_identity"]  # the child has none of its own: the parent's
    learnt = SongPlan.from_json((train / "plans" / "s1.json").read_text())
    check = melody_check(indexes)
    assert any(check(s.melody, learnt.beats_per_bar) for s in learnt.sections if s.melody)


def test_a_copy_is_judged_in_beats_for_bars_of_one_beat(archive):
    # in 1/4 every bar is one beat: four "bars" of a learnt tune are four beats, not a copy
    # (every melody a 1/4 loop sketched was refused); six beats are
    from composer.originality.index import OriginalityIndex

    _, _, index_dir = archive
    index = OriginalityIndex.load(index_dir)
    tune = np.array([[60 + (5 * i) % 12, float(i), 1.0] for i in range(10)], dtype=np.float32)  # one a beat
    index.melodies = {0: (tune, 4)}
    assert index.match_melody(tune[:4], 1)["bars"] == 4.0  # four bars of 1/4 ...
    assert index.copied_melody(tune[:4], 1) is None  # ... are not a copy
    assert index.copied_melody(tune[:6], 1) is not None  # six are
    assert index.copied_melody(tune[:8], 4) is None and index.copied_melody(tune, 4) is not None  # 4/4 as before


def test_a_silent_file_has_no_windows_to_match():
    # digital silence used to be fingerprinted (its floor was relative to its own loudest frame)
    from composer.originality.fingerprint import fingerprint

    vectors, times = fingerprint(np.zeros(16000 * 12, dtype=np.float32), 16000)
    assert vectors.shape[0] == 0 and times.shape[0] == 0
    vectors, _ = fingerprint((0.1 * np.sin(np.arange(16000 * 12) * 0.05)).astype(np.float32), 16000)
    assert vectors.shape[0] > 0


def test_audio_that_cannot_be_judged_gets_no_verdict(archive, tmp_path):
    """A 10-sample clip, a truncated file and silence were each cleared as "not in the training set"."""
    _, heldout, index = archive
    sf.write(tmp_path / "tiny.wav", np.zeros(10, np.float32) + 0.1, 16000)
    sf.write(tmp_path / "silent.wav", np.zeros(16000 * 5, np.float32), 16000)
    whole = (tmp_path / "whole.wav")
    sf.write(whole, (0.3 * np.sin(np.arange(16000 * 20) * 0.05)).astype(np.float32), 16000)
    (tmp_path / "cut.wav").write_bytes(whole.read_bytes()[:2000])
    paths = [tmp_path / n for n in ("tiny.wav", "cut.wav", "silent.wav")]
    result = CliRunner().invoke(main, ["originality", *map(str, paths), str(heldout / "audio" / "s0.flac"),
                                       "--index", str(index)])
    assert result.exit_code == 2, result.output
    assert result.output.count("not in the training set") == 1  # the held-out song alone
    for word in ("too short", "truncated", "silent"):
        assert word in result.output
