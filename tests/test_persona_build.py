"""The archive persona: build and daily on a tiny archive in seconds; same date, same bytes;
a refused file changes nothing learnt; a build killed between steps finishes the same."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from synthetic_song import RATE, pop_plan, render

from composer.cli import main
from composer.persona.daily import DEFAULT_STRENGTH

MOODS = ["sad", "happy", "sad", "calm", "happy", "sad", "calm", "sad"]


def _archive(folder, *, refused: bool = False, refused_tone: float = 330.0):
    from lyrics.writer import SectionSpec, write

    (folder / "audio").mkdir(parents=True)
    rows = []
    for i, mood in enumerate(MOODS):
        tempo = 80.0 + 10 * i if mood == "sad" else 120.0 + 5 * i
        audio = render(pop_plan(tempo, "A minor" if mood == "sad" else "C major"))[: RATE * 24]
        sf.write(folder / "audio" / f"s{i}.wav", audio, RATE)
        specs = [SectionSpec("verse1", "verse", [7, 8, 7, 8]), SectionSpec("chorus1", "chorus", [6, 6, 6, 6])]
        text = "\n\n".join(f"[{s.kind.title()}]\n" + "\n".join(s.lines)
                           for s in write("the harbour at night", mood=mood, sections=specs, seed=i))
        rows.append({"file_name": f"audio/s{i}.wav", "title": f"Song {i}", "mood": mood,
                     "location": "Oslo" if i % 3 else "Bergen", "beard": "long" if i % 2 else "none",
                     "lyrics": text, "licence": "own-work", "consent": "opt-in"})
    if refused:
        t = np.arange(RATE * 24) / RATE
        sf.write(folder / "audio" / "refused.wav", (0.3 * np.sin(2 * np.pi * refused_tone * t)).astype(np.float32), RATE)
        rows.append({"file_name": "audio/refused.wav", "mood": "furious", "location": "Mars", "beard": "blue",
                     "lyrics": "[Verse]\nNever learn this secret line", "licence": "all rights reserved",
                     "consent": "opt-in"})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _build(archive, out, tiny_models, *extra):
    codec_dir, model_dir = tiny_models
    result = CliRunner().invoke(main, ["persona", "build", str(archive), "-o", str(out), "--init", str(model_dir),
                                       "--codec", str(codec_dir), "--steps", "3", "--batch-size", "2",
                                       "--threads", "1", *extra])
    assert result.exit_code == 0, result.output
    return result


def _learnt(persona):
    return {name: (persona / name).read_bytes() for name in ("priors.json", "lyrics.json", "model/model.safetensors")}


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_models):
    root = tmp_path_factory.mktemp("persona")
    archive = _archive(root / "archive", refused=True)
    _build(archive, root / "persona", tiny_models)
    return root, archive, root / "persona"


def test_build_learns_the_archive_and_says_so(built):
    _, _, persona = built
    info = json.loads((persona / "persona.json").read_text())
    assert info["songs"] == 8 and any("refused.wav" in r for r in info["refused"])
    priors = json.loads((persona / "priors.json").read_text())
    assert priors["fields"]["mood"] == {"sad": 4, "happy": 2, "calm": 2}
    assert "Mars" not in priors["fields"]["location"] and "blue" not in priors["fields"]["beard"]
    assert set(priors["tempo"]) >= {"*"}  # tempo given mood where a mood has enough songs
    assert priors["form"]["*"] == {"verse chorus": 8}  # the form the lyrics' tags name, not the analysis's guess
    card = (persona / "PERSONA.md").read_text()
    assert "8 songs" in card and "refused.wav" in card and "own-work (8)" in card
    assert 1.0 < info["lyrics"]["perplexity"] < 1e4 and 1.0 < info["lyrics"]["base_writer_perplexity"]
    lyrics = json.loads((persona / "lyrics.json").read_text())
    assert "secret" not in lyrics["unigrams"]


def test_daily_is_the_same_song_for_the_same_date(built, tiny_models, tmp_path):
    _, _, persona = built
    runs = []
    for attempt in ("a", "b"):
        result = CliRunner().invoke(main, ["daily", "--persona", str(persona), "--date", "2026-12-01",
                                           "-o", str(tmp_path / attempt), "--no-evaluate", "--no-vocals"])
        assert result.exit_code == 0, result.output
        runs.append(tmp_path / attempt / "2026-12-01")
    assert (runs[0] / "song.wav").read_bytes() == (runs[1] / "song.wav").read_bytes()
    report = json.loads((runs[0] / "report.json").read_text())
    drawn = report["persona"]["drawn"]
    assert drawn["mood"] in ("sad", "happy", "calm") and report["persona"]["priors"]["mood"] == "P(mood)"
    plan = json.loads((runs[0] / "plan.json").read_text())
    assert plan["title"] == report["persona"]["title"] and any(s["lyrics"] for s in plan["sections"])
    # the persona's sound, not the General MIDI guide's: from noise unless asked
    assert report["options"]["from_guide"] == 1.0 and "guide" not in report
    result = CliRunner().invoke(main, ["daily", "--persona", str(persona), "--date", "2026-12-01", "--from-guide",
                                       "0.5", "-o", str(tmp_path / "guided"), "--no-evaluate", "--no-vocals"])
    assert result.exit_code == 0, result.output
    guided = tmp_path / "guided" / "2026-12-01"
    assert json.loads((guided / "report.json").read_text())["guide"]["strength"] == 0.5
    assert (guided / "song.wav").read_bytes() != (runs[0] / "song.wav").read_bytes()
    # pinned fields and a run of days: each day its own song, reruns skip what is done
    result = CliRunner().invoke(main, ["daily", "--persona", str(persona), "--date", "2026-12-01", "--days", "2",
                                       "--set", "mood=happy", "-o", str(tmp_path / "run"), "--no-evaluate",
                                       "--no-vocals"])
    assert result.exit_code == 0, result.output
    days = sorted(p.name for p in (tmp_path / "run").iterdir() if p.is_dir() and not p.name.startswith("."))
    assert days == ["2026-12-01", "2026-12-02"]
    pinned = json.loads((tmp_path / "run" / "2026-12-02" / "report.json").read_text())["persona"]
    assert pinned["drawn"]["mood"] == "happy" and pinned["priors"]["mood"] == "pinned"


def test_daily_strength_goes_from_the_base_model_to_the_fine_tune(built, tiny_models, tmp_path):
    _, _, persona = built
    info = json.loads((persona / "persona.json").read_text())
    assert info["strength"] == DEFAULT_STRENGTH and info["model"]["init_identity"]  # the default, and what it blends with
    songs = {}
    for strength in ("0", "0.5", "1"):
        result = CliRunner().invoke(main, ["daily", "--persona", str(persona), "--date", "2026-12-01", "--strength",
                                           strength, "-o", str(tmp_path / strength), "--no-evaluate", "--no-vocals"])
        assert result.exit_code == 0, result.output
        folder = tmp_path / strength / "2026-12-01"
        songs[strength] = (folder / "song.wav").read_bytes()
        assert json.loads((folder / "report.json").read_text())["persona"]["strength"] == float(strength)
    assert len(set(songs.values())) == 3  # the same drawn song, three models
    # the same day again at another strength into a folder that has it: said, kept, or rendered with --overwrite
    args = ["daily", "--persona", str(persona), "--date", "2026-12-01", "--strength", "1", "-o", str(tmp_path / "0"),
            "--no-evaluate", "--no-vocals"]
    kept = CliRunner().invoke(main, args)
    assert kept.exit_code == 0 and "already rendered" in kept.stderr and "--overwrite" in kept.stderr
    assert (tmp_path / "0" / "2026-12-01" / "song.wav").read_bytes() == songs["0"]
    (tmp_path / "0" / "2026-12-01" / "my notes.txt").write_text("mine")
    redone = CliRunner().invoke(main, [*args, "--overwrite"])
    assert redone.exit_code == 0, redone.output
    assert (tmp_path / "0" / "2026-12-01" / "song.wav").read_bytes() == songs["1"]
    assert (tmp_path / "0" / "2026-12-01" / "my notes.txt").read_text() == "mine"
    # a daily song repaints with the model it was rendered with (the persona's, at its strength)
    from composer.rendering.modes import repaint

    folder = tmp_path / "0.5" / "2026-12-01"
    before = json.loads((folder / "report.json").read_text())["provenance"]["model"]["identity"]
    section = json.loads((folder / "plan.json").read_text())["sections"][0]["name"]
    again = repaint(folder, section, progress=False)
    assert again.report["provenance"]["model"]["identity"] == before
    result = CliRunner().invoke(main, ["daily", "--persona", str(persona), "--strength", "1.5", "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--strength 1.5: outside 0..1" in result.output
    # a persona whose base model is no longer the one installed renders only as its fine-tune
    moved = tmp_path / "moved"
    shutil.copytree(persona, moved)
    info["model"]["init_identity"] = "0123456789abcdef"
    (moved / "persona.json").write_text(json.dumps(info))
    result = CliRunner().invoke(main, ["daily", "--persona", str(moved), "-o", str(tmp_path / "y"), "--no-vocals"])
    assert result.exit_code == 2 and "--strength 1" in result.output and "Traceback" not in result.output
    # building again with another strength rewrites the card, and nothing learnt
    before = _learnt(persona)
    _build(built[1], persona, tiny_models, "--strength", "0.8")
    assert json.loads((persona / "persona.json").read_text())["strength"] == 0.8
    assert "strength 0.8" in (persona / "PERSONA.md").read_text() and _learnt(persona) == before
    _build(built[1], persona, tiny_models)  # a rerun (a resume) keeps it
    assert json.loads((persona / "persona.json").read_text())["strength"] == 0.8
    _build(built[1], persona, tiny_models, "--strength", str(DEFAULT_STRENGTH))  # back to the default for the other tests


def test_a_refused_file_changes_nothing_learnt(built, tiny_models, tmp_path):
    _, _, persona = built
    other = _archive(tmp_path / "archive", refused=True, refused_tone=523.0)  # another refused file
    # and files the check refuses for other reasons, which a build used to read (and stop on, or count)
    (other / "audio" / "text.wav").write_text("not audio")
    with (other / "metadata.jsonl").open("a") as rows:
        rows.write(json.dumps({"file_name": "audio/text.wav", "mood": "happy", "licence": "own-work",
                               "consent": "opt-in"}) + "\n")  # undecodable
        rows.write(json.dumps({"file_name": "audio/s0.wav", "mood": "furious", "licence": "all rights reserved",
                               "consent": "none"}) + "\n")  # a file listed again
    _build(other, tmp_path / "persona", tiny_models)
    assert _learnt(tmp_path / "persona") == _learnt(persona)


def test_lyrics_that_cannot_be_sung_are_left_out_of_the_lyric_model(built, tmp_path):
    from composer.persona.build import build_persona

    _, archive, _ = built
    other = tmp_path / "archive"
    shutil.copytree(archive, other)
    rows = [json.loads(line) for line in (other / "metadata.jsonl").read_text().splitlines()]
    rows[0]["lyrics"], rows[1]["lyrics"] = "🎵🎵\n🎶", "[Chorus]\n[Verse]"
    (other / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    state = build_persona(other, tmp_path / "persona", progress=False, stop_after="lyrics")
    assert state["done"]["lyrics"]["songs"] >= 1 and state["done"]["priors"]["songs"] == len(MOODS)


def test_a_killed_build_finishes_the_same(built, tiny_models, tmp_path):
    _, _, persona = built
    archive = _archive(tmp_path / "archive", refused=True)
    for step in ("check", "analysis", "lyrics"):
        result = _build(archive, tmp_path / "persona", tiny_models, "--stop-after", step)
        assert "stopped after" in result.output
    _build(archive, tmp_path / "persona", tiny_models)
    assert _learnt(tmp_path / "persona") == _learnt(persona)


def test_bad_persona_inputs_are_one_line(tmp_path):
    result = CliRunner().invoke(main, ["daily", "--persona", str(tmp_path), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "not a persona" in result.output
    (tmp_path / "x").write_text("")
    result = CliRunner().invoke(main, ["persona", "build", str(tmp_path), "-o", str(tmp_path / "p")])
    assert result.exit_code == 2 and "not an archive" in result.output
    shutil.rmtree(tmp_path / "p", ignore_errors=True)
    (tmp_path / "metadata.jsonl").write_text("")
    result = CliRunner().invoke(main, ["persona", "build", str(tmp_path), "-o", str(tmp_path / "p"), "--device", "tpu"])
    assert result.exit_code == 2 and "--device tpu" in result.output and not (tmp_path / "p").exists()


def test_a_run_of_days_writes_the_archives_rhyme_schemes():
    """Schemes drawn at a run of days' quasi-random quantiles match the archive's shares, and a
    line that opens a new rhyme letter does not rhyme with the lines before it."""
    from collections import Counter

    from composer.persona.lyric_model import LyricModel, scheme_of
    from composer.persona.priors import QuasiRandom, total_variation
    from lyrics import LyricSection

    verses = [["I walk along the river", "The night is cold and long", "I feel the morning shiver",
               "And carry on my song"],
              ["We light a little fire", "And wait beside the door", "The flame is climbing higher",
               "We dance upon the floor"],
              ["The rain is on the water", "The wind is in the trees", "I sing it to my daughter",
               "I wander where I please"]]
    songs = []
    for i in range(12):  # ABAB as written, and the same lines paired (AABB), one song in two
        lines = verses[i % 3]
        lines = lines if i % 2 else [lines[0], lines[2], lines[1], lines[3]]
        songs.append([LyricSection(f"verse{i}", "verse", lines)])
    model = LyricModel.train(songs)
    assert model.schemes["verse"] == {"ABAB": 6, "AABB": 6}
    import random

    written = Counter()
    for day in range(40):
        quantiles = QuasiRandom(day, 7)
        lines = model.write_section("verse", random.Random(day), quantile=quantiles)
        written[scheme_of(lines)] += 1
    assert total_variation(written, model.schemes["verse"]) <= 0.05, written
