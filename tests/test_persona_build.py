"""The archive persona: build and daily on a tiny archive in seconds; same date, same bytes;
a refused file changes nothing learnt; a build killed between steps finishes the same."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

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


def _copied(built, tmp_path):
    root, archive, persona = built
    mine, archive_copy = tmp_path / "persona", tmp_path / "archive"
    shutil.copytree(archive, archive_copy)
    shutil.copytree(persona, mine)
    state = json.loads((mine / "state.json").read_text())
    state["archive"] = str(archive_copy.resolve())
    (mine / "state.json").write_text(json.dumps(state))
    return archive_copy, mine


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


def test_daily_strength_goes_from_the_base_model_to_the_fine_tune(built, tiny_models, tmp_path, caplog):
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
    # fine-tune options on a built persona change nothing, and it says so
    with caplog.at_level("WARNING", logger="composer.persona.build"):
        _build(built[1], persona, tiny_models, "--strength", "0.8", "--lr", "0.001")
    assert "--lr 0.001 (built with" in caplog.text and _learnt(persona) == before
    _build(built[1], persona, tiny_models, "--strength", str(DEFAULT_STRENGTH))  # back to the default for the other tests


def test_a_refused_file_changes_nothing_learnt(built, tiny_models, tmp_path):
    _, _, persona = built
    other = _archive(tmp_path / "archive", refused=True, refused_tone=523.0)  # another refused file
    # and files the check refuses for other reasons, which a build used to read (and stop on, or count)
    (other / "audio" / "text.wav").write_text("not audio")
    with (other / "metadata.jsonl").open("a") as rows:
        rows.write(json.dumps({"file_name": "audio/text.wav", "mood": "happy", "licence": "own-work",
                               "consent": "opt-in"}) + "\n")  # undecodable
        rows.write(json.dumps({"file_name": "audio/s0.wav", "mood": "furious", "licence": "own-work",
                               "consent": "opt-in"}) + "\n")  # a file listed again (its first row's labels stand)
    _build(other, tmp_path / "persona", tiny_models)
    assert _learnt(tmp_path / "persona") == _learnt(persona)
    # a row listing it again without consent refuses the file, though its first row gave it
    # (the first row won: the file was learnt)
    lines = (other / "metadata.jsonl").read_text().splitlines()
    lines[-1] = json.dumps({"file_name": "audio/s0.wav", "licence": "own-work", "consent": "none"})
    (other / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    from composer.data.datasets import check_dataset

    assert "audio/s0.wav" not in check_dataset(other).accepted


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


# --- what a review found: each test fails on the code before its fix ------------------------------


def _tiny_persona(priors, lyrics, identity="5eed"):
    from composer.persona.daily import Persona

    return Persona(folder=None, info={"identity": identity}, priors=priors, lyrics=lyrics)


def _verse_model():
    from composer.persona.lyric_model import LyricModel
    from lyrics import LyricSection

    lines = ["I walk along the river", "The night is cold and long", "I feel the morning shiver",
             "And carry on my song", "We light a little fire", "And wait beside the door"]
    return LyricModel.train([[LyricSection("verse1", "verse", lines[:4])], [LyricSection("chorus1", "chorus", lines[2:])]])


def test_lyric_words_are_read_in_any_script():
    from composer.persona.lyric_model import LyricModel, words
    from lyrics import LyricSection

    assert words("I don’t know, corazón") == ["i", "don't", "know", "corazón"]
    assert words("Привет, мир! rock'n'roll") == ["привет", "мир", "rock'n'roll"]
    lines = ["Я иду по тёмной улице", "Ночь холодна и длинна", "Я пою свою песню тихо", "И жду тебя до утра",
             "Ветер в поле снова плачет", "Светит новая луна"]
    model = LyricModel.train([[LyricSection(f"verse{i}", "verse", lines[i:] + lines[:i])] for i in range(6)])
    assert {"улице", "луна", "тёмной"} <= set(model.unigrams)
    written = model.write_section("verse", __import__("random").Random(3))
    assert written and all(set(words(line)) <= set(model.unigrams) for line in written)


def test_an_archive_without_words_gives_instrumental_days(built, tmp_path):
    """Its sound, priors and fine-tune are still the artist's: the build goes on, says so, and each
    day is an instrumental song of the drawn form (it used to fail every day: only section tags)."""
    from composer.persona.build import build_persona
    from composer.persona.daily import draw_song
    from composer.persona.lyric_model import LyricModel
    from composer.persona.priors import Priors

    _, archive, persona = built
    other = tmp_path / "archive"
    shutil.copytree(archive, other)
    rows = [json.loads(line) for line in (other / "metadata.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("lyrics", None)
    (other / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    state = build_persona(other, tmp_path / "p", progress=False, stop_after="lyrics")
    assert state["done"]["lyrics"]["instrumental"] and state["done"]["lyrics"]["vocabulary"] == 0
    priors = Priors.from_songs([{"mood": "sad", "form": ["verse", "chorus", "bridge"]}])
    song = draw_song(_tiny_persona(priors, LyricModel.train([])), __import__("datetime").date(2027, 1, 1))
    assert song["lyrics"] is None and "no words" in song["instrumental"]
    assert 'form="verse chorus bridge"' in song["prompt"]
    # and rendered: the built persona with a lyric model of no words
    silent = tmp_path / "silent"
    shutil.copytree(persona, silent)
    (silent / "lyrics.json").write_text(LyricModel.train([]).to_json())
    result = CliRunner().invoke(main, ["daily", "--persona", str(silent), "--date", "2027-01-01",
                                       "-o", str(tmp_path / "out"), "--no-evaluate"])
    assert result.exit_code == 0, result.output
    assert "instrumental" in result.output
    report = json.loads((tmp_path / "out" / "2027-01-01" / "report.json").read_text())
    assert report["persona"]["instrumental"]
    plan = json.loads((tmp_path / "out" / "2027-01-01" / "plan.json").read_text())
    assert not any(s.get("lyrics") for s in plan["sections"])


def test_quasi_random_draws_are_independent_of_each_other():
    """Any two of a day's draws pair evenly over a run of days (the golden-ratio first draw and
    frac(sqrt(5)) fourth were dependent: 12 of 16 pairs; a table of 20 primes repeated draw 2 as 22)."""
    import itertools
    from collections import Counter

    from composer.persona.priors import QuasiRandom

    days, draws = 2000, 30
    seqs = []
    for day in range(days):
        quantiles = QuasiRandom(day, 11)
        seqs.append([quantiles() for _ in range(draws)])
    for j, k in itertools.combinations(range(draws), 2):
        if j >= 4 and k - j != 20:
            continue
        bins = Counter((int(s[j] * 4), int(s[k] * 4)) for s in seqs)
        assert len(bins) == 16, (j, k, sorted(bins))
        assert max(abs(c / days - 1 / 16) for c in bins.values()) < 0.03, (j, k, bins)


def test_two_fields_pair_as_their_own_shares_multiply():
    """The demo archive's fields (mood drawn first, location fourth): over many days every pair of
    values occurs, in the share the product of the two marginals gives."""
    from collections import Counter

    from composer.persona.priors import Priors, QuasiRandom

    moods = ["sad"] * 4 + ["happy"] * 3 + ["calm"] * 2 + ["dark"]
    songs = [{"mood": m, "beard": ["long", "none"][i % 2], "genre": "folk",
              "location": ["Oslo", "Bergen", "Lisbon", "Tromsø"][(i * 3) % 4]} for i, m in enumerate(moods * 2)]
    priors = Priors.from_songs(songs)
    days = 2000
    pairs = Counter()
    for day in range(days):
        values = priors.draw(QuasiRandom(day, 3))["values"]
        pairs[(values["mood"], values["location"])] += 1
    mood, location = priors.fields["mood"], priors.fields["location"]
    assert len(pairs) == len(mood) * len(location)
    for (m, place), count in pairs.items():
        expected = mood[m] / sum(mood.values()) * location[place] / sum(location.values())
        assert abs(count / days - expected) < 0.015, (m, place, count / days, expected)


def test_an_archives_meter_and_a_pinned_meter_are_the_ones_rendered():
    import datetime as dt

    from composer.persona.daily import draw_song
    from composer.persona.priors import Priors
    from structure.prompt import parse_prompt

    songs = [{"mood": "sad", "meter": "3/4", "beats_per_bar": 4, "tempo": 90.0, "key": "A minor"},
             {"mood": "sad", "time_signature": "6/8", "beats_per_bar": 4, "tempo": 92.0, "key": "A minor"},
             {"mood": "sad", "beats_per_bar": 4, "tempo": 94.0, "key": "A minor"}]
    priors = Priors.from_songs(songs)
    # 6/8 is a compound meter (two dotted-quarter beats a bar), not six quarter notes
    assert priors.meter == {"3": 1, "6/8": 1, "4": 1} and "meter" not in priors.fields
    own_tempo = Priors.from_songs([{"bpm": 96, "tempo": 120.0}])  # the analysis fills tempo; bpm is the artist's
    assert own_tempo.tempo["*"] == [96.0] and "bpm" not in own_tempo.fields
    persona = _tiny_persona(priors, _verse_model())
    drawn = set()
    for day in range(12):
        song = draw_song(persona, dt.date(2027, 1, 1) + dt.timedelta(days=day))
        asked = parse_prompt(song["prompt"])
        assert asked.beats_per_bar == song["metadata"]["beats_per_bar"]
        assert (asked.beat_division or 2) == song["metadata"].get("beat_division", 2)
        drawn.add((asked.beats_per_bar, asked.beat_division))
    assert drawn == {(3, 2), (2, 3), (4, 2)}, drawn
    for pin in ({"meter": "3/4"}, {"time_signature": "3/4"}, {"beats_per_bar": "3"}):
        song = draw_song(persona, dt.date(2027, 1, 1), pin)
        assert parse_prompt(song["prompt"]).beats_per_bar == 3 and song["metadata"]["beats_per_bar"] == 3
        assert song["priors"]["beats_per_bar"] == "pinned" and song["prompt"].count("meter=") == 1
    song = draw_song(persona, dt.date(2027, 1, 1), {"meter": "12/8"})
    assert "meter=12/8" in song["prompt"] and song["prompt"].count("meter=") == 1
    assert song["metadata"]["beat_division"] == 3 and song["priors"]["beat_division"] == "pinned"


def test_pins_are_checked_by_the_prompts_parsers():
    import datetime as dt

    from composer.errors import InputError
    from composer.persona.daily import check_pins, draw_song
    from composer.persona.priors import Priors

    persona = _tiny_persona(Priors.from_songs([{"mood": "sad", "form": ["verse", "chorus"]}]), _verse_model())
    song = draw_song(persona, dt.date(2027, 1, 1), {"form": "verse, chorus bridge", "tempo": "96 bpm",
                                                    "key": "d minor", "title": "Mine"})
    assert song["form"] == ["verse", "chorus", "bridge"] and song["priors"]["form"] == "pinned"
    assert "[Bridge]" in song["lyrics"] and song["metadata"]["tempo"] == 96.0 and song["title"] == "Mine"
    assert song["metadata"]["key"] == "D minor"
    for pin, said in ((("form", "verse chores"), "--set form=verse chores: unknown section kind 'chores'"),
                      (("tempo", "fast"), "--set tempo=fast: expected a tempo in BPM"),
                      (("bpm", "900"), "--set bpm=900: tempo 900 is outside"),
                      (("meter", "waltz"), "--set meter=waltz: expected a meter"),
                      (("key", "H major"), "--set key=H major:"),
                      (("duration", "long"), "--set duration=long:"),
                      (("seed", "4"), "--set seed=4: a daily song's seed is its date"),
                      (("my field", "x"), "--set my field=x: a field name")):
        with pytest.raises(InputError) as error:
            check_pins(dict([pin]))
        assert str(error.value).startswith(said), str(error.value)


def test_daily_renders_a_pinned_meter_and_form(built, tmp_path):
    _, _, persona = built
    result = CliRunner().invoke(main, ["daily", "--persona", str(persona), "--date", "2026-12-03", "--set",
                                       "meter=3/4", "--set", "form=verse chorus bridge", "-o", str(tmp_path / "o"),
                                       "--no-evaluate", "--no-vocals"])
    assert result.exit_code == 0, result.output
    plan = json.loads((tmp_path / "o" / "2026-12-03" / "plan.json").read_text())
    assert plan["beats_per_bar"] == 3 and "bridge" in [s["kind"] for s in plan["sections"]]
    drawn = json.loads((tmp_path / "o" / "2026-12-03" / "report.json").read_text())["persona"]
    assert drawn["drawn"]["beats_per_bar"] == 3 and drawn["form"] == ["verse", "chorus", "bridge"]


def test_a_bad_pin_is_one_line(built, tmp_path):
    _, _, persona = built
    for pin, said in (("tempo=fast", "--set tempo=fast: expected a tempo in BPM"),
                      ("form=verse chores", "--set form=verse chores: unknown section kind")):
        result = CliRunner().invoke(main, ["daily", "--persona", str(persona), "--set", pin, "-o", str(tmp_path / "x")])
        assert result.exit_code == 2 and said in result.output and "Traceback" not in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


def test_list_empty_and_null_metadata_values():
    import datetime as dt

    from composer.persona.daily import draw_song
    from composer.persona.priors import Priors

    songs = [{"mood": ["sad", "tender"], "location": "", "beard": None, "tempo": 80.0},
             {"mood": "sad", "location": "Oslo", "beard": "long", "tempo": 82.0},
             {"mood": ["sad"], "location": "  ", "tempo": 84.0},
             {"mood": [], "location": None, "tags": ["x"], "tempo": 86.0},
             *({"mood": "sad", "location": "Bergen", "tempo": 88.0 + i} for i in range(3))]
    priors = Priors.from_songs(songs)
    assert priors.fields == {"mood": {"sad": 6, "tender": 1}, "location": {"Oslo": 1, "Bergen": 3},
                             "beard": {"long": 1}}
    assert "mood=sad" in priors.tempo and len(priors.tempo["mood=sad"]) == 6  # a song of two moods counts in each
    persona = _tiny_persona(priors, _verse_model())
    for day in range(20):
        values = draw_song(persona, dt.date(2027, 2, 1) + dt.timedelta(days=day))["metadata"]
        # empty and null are absences: a day lacks the field as often as the songs do
        assert values.get("location") in ("Oslo", "Bergen", None) and values.get("mood") in ("sad", "tender", None)
    assert priors.absent == {"mood": 1, "location": 3, "beard": 6}


def test_a_rebuild_keeps_its_codec_and_refuses_another(built, tiny_models, tmp_path):
    _, archive, persona = built
    codec_dir, _ = tiny_models
    copy = tmp_path / "persona"
    shutil.copytree(persona, copy)
    before = json.loads((copy / "persona.json").read_text())
    assert before["codec"] == str(codec_dir.resolve())
    # rebuilt without --codec or --init (a new strength rewrites the card): the persona keeps both
    result = CliRunner().invoke(main, ["persona", "build", str(archive), "-o", str(copy), "--strength", "0.4"])
    assert result.exit_code == 0, result.output
    after = json.loads((copy / "persona.json").read_text())
    assert after["strength"] == 0.4 and after["codec"] == before["codec"] and after["model"] == before["model"]
    assert json.loads((copy / "state.json").read_text())["init"] == before["model"]["init"]
    # a half-done fine-tune resumed with another codec: one line, nothing changed
    state = json.loads((copy / "state.json").read_text())
    del state["done"]["model"], state["done"]["card"]
    (copy / "state.json").write_text(json.dumps(state))
    other = tmp_path / "other_codec"
    shutil.copytree(codec_dir, other)
    result = CliRunner().invoke(main, ["persona", "build", str(archive), "-o", str(copy), "--codec", str(other)])
    assert result.exit_code == 2 and f"--codec {other}: this persona's fine-tune began with {codec_dir.resolve()}" \
        in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert json.loads((copy / "state.json").read_text()) == state


def test_init_is_kept_resolved(tmp_path, monkeypatch):
    from composer.persona.build import _kept_path

    monkeypatch.chdir(tmp_path)
    state = {"done": {}}
    assert _kept_path(state, "init", "models/base", "--init", begun=False) == str(tmp_path / "models" / "base")
    assert _kept_path(state, "init", None, "--init", begun=True) == str(tmp_path / "models" / "base")
    legacy = {"done": {"model": {"init": "models/base"}}}  # a persona built before init was kept (relative)
    assert _kept_path(legacy, "init", None, "--init", begun=True) == str(tmp_path / "models" / "base")
    from composer.models import bundled_model_path

    bundled = {"done": {}, "init": None}  # begun with the bundled model: naming it by its path is the same
    assert _kept_path(bundled, "init", str(bundled_model_path()), "--init", begun=True) is None


def test_song_lengths_come_from_the_audio_when_the_metadata_has_none(built, tmp_path):
    _, archive, persona = built
    assert json.loads((persona / "persona.json").read_text())["hours"] == round(len(MOODS) * 24 / 3600, 3)
    # a duration written as m:ss (the card step used to stop on it, after the fine-tune, every rerun)
    copy, copied = tmp_path / "persona", tmp_path / "archive"
    shutil.copytree(persona, copy)
    shutil.copytree(archive, copied)
    rows = [json.loads(line) for line in (copied / "metadata.jsonl").read_text().splitlines()]
    rows[0]["duration"], rows[1]["duration"] = "3:45", 60
    (copied / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    state = json.loads((copy / "state.json").read_text())
    state["archive"] = str(copied.resolve())
    (copy / "state.json").write_text(json.dumps(state))
    result = CliRunner().invoke(main, ["persona", "build", str(copied), "-o", str(copy), "--strength", "0.3"])
    assert result.exit_code == 0, result.output
    assert json.loads((copy / "persona.json").read_text())["hours"] == round((7 * 24 + 60) / 3600, 3)
    from composer.persona.build import _song_seconds

    for duration in ("3:45", None, "", "long", float("nan"), True):
        assert _song_seconds(archive, {"file_name": "audio/s0.wav", "duration": duration}) == 24.0
    assert _song_seconds(archive, {"file_name": "audio/s0.wav", "duration": 225}) == 225.0
    assert _song_seconds(archive, {"file_name": "audio/missing.wav"}) is None


class _SummedOnce(dict):
    """Counts whose totals may be summed once: a second sum is the per-call re-summing that made a
    section of a 1,500-song archive take 20 s."""

    sums = 0

    def values(self):
        type(self).sums += 1
        assert type(self).sums <= 1, "the unigram counts were summed again"
        return super().values()


def test_lyric_probabilities_sum_the_counts_once_and_are_unchanged():
    import random

    from composer.persona.lyric_model import DISCOUNT, LyricModel

    model = _verse_model()

    def reference(history, word):  # the model's definition, summed afresh
        vocabulary = len(model.unigrams) + 1
        p = (model.unigrams.get(word, 0) + 1) / (sum(model.unigrams.values()) + vocabulary)
        for counts in (model.bigrams.get(history[1]), model.trigrams.get(f"{history[0]} {history[1]}")):
            if counts:
                total = sum(counts.values())
                p = max(counts.get(word, 0) - DISCOUNT, 0) / total + DISCOUNT * len(counts) / total * p
        return p

    histories = [("<s>", "<s>"), ("<s>", "i"), ("the", "night"), ("cold", "and"), ("x", "y")]
    for history in histories:
        for word in [*sorted(model.unigrams), "unseen"]:
            assert model.probability(history, word) == reference(history, word)
    counted = LyricModel.from_json(model.to_json())
    _SummedOnce.sums = 0
    counted.unigrams = _SummedOnce(counted.unigrams)
    assert counted.write_section("verse", random.Random(1)) == model.write_section("verse", random.Random(1))
    assert counted.to_json() == model.to_json()  # what is derived is not saved
    # a big archive's vocabulary (every successor banned, so each word is drawn from all of it)
    rng = random.Random(0)
    vocabulary = [f"w{i}" for i in range(30000)]
    big = LyricModel(unigrams={w: rng.randint(1, 9) for w in vocabulary}, line_syllables=[6],
                     section_lines={"verse": [4]}, bigrams={"<s>": {"w1": 1}})
    assert len(big.write_section("verse", random.Random(2), tries=2)) == 4  # (its time: the totals summed once, above)


def test_a_demo_excerpt_too_short_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["persona", "demo", "-o", str(tmp_path / "d"), "--source", str(tmp_path),
                                       "--seconds", "0.3"])
    assert result.exit_code == 2 and "--seconds 0.3: an excerpt is at least 5 s long" in result.output


def test_a_withdrawal_stops_the_persona_until_it_is_built_again_without_the_file(built, tiny_models, tmp_path):
    from composer.data.revocations import revoke
    from composer.errors import InputError
    from composer.persona.daily import load_persona

    archive_copy, mine = _copied(built, tmp_path)  # the persona, and its archive where state.json says
    before = _learnt(mine)
    load_persona(mine)
    revoke(archive_copy, "audio/s2.wav", reason="the artist asked")
    # a daily song (or a repaint of one) is refused, naming the file and the fix
    with pytest.raises(InputError, match=r"learnt 1 file\(s\) whose consent was since withdrawn \(audio/s2.wav\)"):
        load_persona(mine)
    result = CliRunner().invoke(main, ["daily", "--persona", str(mine), "-o", str(tmp_path / "d"), "--no-vocals"])
    assert result.exit_code == 2 and "withdrawn" in result.output and not (tmp_path / "d").exists()
    from composer import doctor  # a persona folder is checked as the model it fine-tuned

    check = next(c for c in doctor.run_checks(models=(str(mine),)) if str(mine) in c.name)
    assert not check.ok and "audio/s2.wav" in check.detail
    # building it again learns everything afresh, without the file
    _build(archive_copy, mine, tiny_models)
    info = json.loads((mine / "persona.json").read_text())
    assert info["songs"] == 7 and "audio/s2.wav" not in json.loads((mine / "state.json").read_text())["done"]["check"]["accepted"]
    load_persona(mine)
    assert _learnt(mine)["model/model.safetensors"] != before["model/model.safetensors"]


def test_every_songs_lyrics_are_learnt_and_held_out_ones_still_measure(built, tmp_path):
    # the held-out fifth was measured on and never learnt: an archive whose only words were held
    # out gave an instrumental persona, and a daily song could copy a held-out line
    from composer.persona.build import build_persona
    from composer.persona.lyric_model import LyricModel, words

    _, archive, _ = built
    other = tmp_path / "archive"
    shutil.copytree(archive, other)
    rows = [json.loads(line) for line in (other / "metadata.jsonl").read_text().splitlines()]
    state = build_persona(other, tmp_path / "persona", progress=False, stop_after="lyrics")
    model = LyricModel.from_json((tmp_path / "persona" / "lyrics.json").read_text())
    learnt = set(model.archive_lines)
    from composer.data.datasets import check_dataset

    accepted = set(check_dataset(other).accepted)
    for row in (r for r in rows if r["file_name"] in accepted):  # a refused file's words never are
        for line in row.get("lyrics", "").splitlines():
            if line.strip() and not line.startswith("["):
                assert " ".join(words(line)) in learnt, (row["file_name"], line)
    assert state["done"]["lyrics"]["held_out_songs"] >= 1 and state["done"]["lyrics"]["perplexity"] is not None
    keep = next(r for r in rows if r["file_name"] in accepted and r.get("lyrics"))
    for row in rows:  # only one song has words
        if row is not keep:
            row["lyrics"] = ""
    (other / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    state = build_persona(other, tmp_path / "one", progress=False, stop_after="lyrics")
    assert state["done"]["lyrics"]["instrumental"] is False


def test_a_pin_changes_its_own_field_only_and_keys_are_one_spelling():
    # --set tempo=120 gave another key, meter and title (every later draw moved by one); "Dm" and
    # "D minor" were two keys of the priors
    from composer.persona.priors import Priors, QuasiRandom

    songs = [{"mood": m, "key": k, "tempo": t, "beats_per_bar": b, "genre": "folk", "location": place}
             for m, k, t, b, place in [("sad", "Dm", 70, 3, "Oslo"), ("sad", "D minor", 72, 4, "Bergen"),
                                       ("happy", "E♭ major", 120, 4, "Oslo"), ("happy", "c minor", 118, 3, "Lisbon"),
                                       ("sad", "F♯ minor", 66, 4, "Lisbon"), ("happy", "Bb", 124, 4, "Bergen")]]
    priors = Priors.from_songs(songs)
    assert priors.key["*"] == {"D minor": 2, "Eb major": 1, "C minor": 1, "F# minor": 1, "Bb major": 1}
    for day in range(40):
        free = priors.draw(QuasiRandom(day, 5))["values"]
        for field, value in (("tempo", 99.0), ("location", "Tromsø"), ("genre", "jazz")):
            pinned = priors.draw(QuasiRandom(day, 5), {field: value})["values"]
            assert pinned[field] == value
            assert {k: v for k, v in pinned.items() if k != field} == {k: v for k, v in free.items() if k != field}


def test_a_songs_form_is_read_from_lyric_tags_of_every_style():
    # only "[Verse]" tags counted: "Verse 1:" and "(Chorus)" songs fell back to the audio's guess
    from composer.persona.build import _lyric_form

    assert _lyric_form("Verse 1:\nla la\nChorus:\nhey\nVerse 2:\nlo lo\nChorus:\nhey") == [
        "verse", "chorus", "verse", "chorus"]
    assert _lyric_form("(Verse)\nla\n(Chorus)\nhey\n(Bridge)\nwhy\n(Chorus)\n") == ["verse", "chorus", "bridge", "chorus"]
    assert _lyric_form("[Verse]\nla\n[Chorus]\nhey") == ["verse", "chorus"]
    assert _lyric_form("just words\nmore words") is None  # untagged: the kinds would be guesses


def test_daily_lines_read_as_the_archive_does_and_copy_none_of_its_4_grams(monkeypatch):
    """Each line is chosen among its candidates by how it reads by the model (with its length and
    rhyme): the best (temperature 0, shipped), or drawn with a worse one less likely; either way
    the lines read better than the candidates drawn for them, by a model of other lyrics of the
    same writer. A line rarely opens as an earlier line of its song. Lines may open as the
    archive's do; no word 4-gram of the archive is written."""
    import random

    from composer.persona import lyric_model
    from composer.persona.lyric_model import LyricModel, base_writer_lines, words
    from lyrics import LyricSection

    archive = list(base_writer_lines(240, seed=0))
    model = LyricModel.train([[LyricSection(f"verse{i}", "verse", archive[i: i + 4])] for i in range(0, 240, 4)])
    reference = LyricModel.train([[LyricSection("verse1", "verse", list(base_writer_lines(400, seed=5)))]])
    drawn = []
    for day in range(24):
        rng = random.Random(100 + day)
        drawn += [line for _ in range(48) if (line := model._draw_line(rng, rng.choice(model.line_syllables)))]

    def written():
        return [line for day in range(24) for line in model.write_section("verse", random.Random(day))]

    assert lyric_model.CHOICE_TEMPERATURE == 0.0
    chosen = written()  # 13.2 against 24.9
    assert reference.perplexity(chosen) < 0.65 * reference.perplexity(drawn)
    monkeypatch.setattr(lyric_model, "CHOICE_TEMPERATURE", 0.5)
    sampled = written()  # 19.2
    assert 0.7 * reference.perplexity(drawn) < reference.perplexity(sampled) < 0.95 * reference.perplexity(drawn)
    chosen += sampled
    monkeypatch.setattr(lyric_model, "CHOICE_TEMPERATURE", 0.0)

    def echoes():  # lines that open as an earlier line of their song (three sections a song)
        count = 0
        for day in range(12):
            openings, rng, song = set(), random.Random(day), []
            for _ in range(3):
                song += model.write_section("verse", rng, openings=openings)
            count += len(song) - len({" ".join(words(line)[:2]) for line in song})
        return count

    penalised = echoes()  # 1 of 432 lines
    monkeypatch.setattr(lyric_model, "OPENING_REPEAT", 0.0)
    assert penalised * 3 < echoes()  # 32
    archive_grams = {" ".join(t[i: i + 4]) for line in archive for t in [words(line)] for i in range(len(t) - 3)}
    openings = {tuple(words(line)[:2]) for line in archive}
    assert not [line for line in chosen for t in [words(line)] for i in range(len(t) - 3)
                if " ".join(t[i: i + 4]) in archive_grams]
    assert not [line for line in chosen if " ".join(words(line)) in model.archive_lines]
    assert sum(tuple(words(line)[:2]) in openings for line in chosen) >= len(chosen) // 2


def test_rare_moods_draw_their_keys_from_their_own_songs_pooled():
    """Moods with too few songs for their own distributions draw tempo, key and form from their
    songs pooled, so the days' keys add up to the archive's (drawn from every song, the rare
    moods' keys came out at a fraction of their share); a day says where its key came from."""
    from collections import Counter

    from composer.persona.priors import Priors, QuasiRandom, total_variation

    songs = ([{"mood": "happy", "key": "C major", "bpm": 120}] * 10 + [{"mood": "calm", "key": "G major", "bpm": 80}] * 10
             + [{"mood": "sad", "key": "D minor", "bpm": 70}] * 3 + [{"mood": "dark", "key": "E minor", "bpm": 140}] * 2
             + [{"mood": "odd", "key": "A minor", "bpm": 100}])
    priors = Priors.from_songs(songs)
    assert priors.rare_moods == ["dark", "odd", "sad"]
    days = [priors.draw(QuasiRandom(day, 3)) for day in range(600)]
    drawn = Counter(d["values"]["key"] for d in days)
    assert total_variation(drawn, Counter(s["key"] for s in songs)) < 0.03, drawn
    rare = next(d for d in days if d["values"]["mood"] == "sad")
    assert rare["values"]["key"] in ("D minor", "E minor", "A minor")
    assert "pooled" in rare["priors"]["key"] and "sad" in rare["priors"]["key"]
    assert Priors.from_dict(priors.to_dict()).draw(QuasiRandom(5, 3)) == priors.draw(QuasiRandom(5, 3))
    old = priors.to_dict()
    del old["rare_moods"]  # a persona built before the rare moods were pooled still draws
    assert Priors.from_dict(old).draw(QuasiRandom(5, 3))["values"]["mood"]
    # a mood whose songs have no key label draws its key from every song (not none at all)
    unlabelled = Priors.from_songs(songs + [{"mood": "quiet", "bpm": 60}] * 6)
    quiet = next(d for d in (unlabelled.draw(QuasiRandom(day, 3)) for day in range(200))
                 if d["values"]["mood"] == "quiet")
    assert quiet["values"]["tempo"] == 60 and quiet["priors"]["tempo"] == "P(tempo | mood=quiet)"
    assert quiet["values"]["key"] in {s["key"] for s in songs} and quiet["priors"]["key"] == "P(key)"


def test_an_older_personas_lyric_model_loads_with_todays_ban_and_lines_keep_their_words():
    """A lyric model saved with its 4-grams' line start and end marks (before 2026-12-01) loads
    with the ban a new build has; a written line's capital never makes it other words."""
    import json

    from composer.persona.lyric_model import END, START, LyricModel, capitalised, words

    model = _verse_model()
    body = json.loads(model.to_json())
    body["fourgrams"] += [f"{START} {START} i walk", f"{START} i walk along", f"cold and long {END}"]
    assert LyricModel.from_json(json.dumps(body)).fourgrams == model.fourgrams
    assert "i walk along the" in model.fourgrams and not any(START in g or END in g for g in model.fourgrams)
    for line in ["ß light the way", "ıt is late", "i walk alone", "ſo it goes", "évening falls"]:
        assert words(capitalised(line)) == words(line), line
    assert capitalised("i walk alone") == "I walk alone" and capitalised("évening falls") == "Évening falls"


def test_the_demo_archives_held_out_songs_share_no_recording_with_the_learnt_ones(tmp_path):
    """The demo archive's validation split is whole tracks: a long track's cut items (one
    `parent`) are held out together, or learnt together."""
    import json

    import soundfile

    from composer.persona.demo import make_demo_archive

    corpus = tmp_path / "corpus"
    (corpus / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for track in range(6):
        for item in range(3):  # each track cut into three items
            name = f"audio/t{track}_{item}.wav"
            tone = np.sin(2 * np.pi * (220 + 30 * track) * np.arange(16 * 8000) / 8000) * 0.3
            soundfile.write(corpus / name, (tone + 0.01 * rng.standard_normal(tone.shape)).astype(np.float32), 8000)
            rows.append({"file_name": name, "licence": "CC-BY-4.0", "consent": True, "duration": 16.0,
                         "source_package": "pkg", "parent": f"audio/t{track}.ogg"})
    (corpus / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    make_demo_archive(corpus, tmp_path / "demo", songs=15, seconds=5.0, progress=False)
    made = [json.loads(line) for line in (tmp_path / "demo" / "metadata.jsonl").read_text().splitlines()]
    parent = {r["file_name"]: r["parent"] for r in rows}
    split_of: dict[str, set] = {}
    for row in made:
        split_of.setdefault(parent[row["source_file"]], set()).add(row["split"])
        assert row["source_track"] == parent[row["source_file"]]
    assert all(len(splits) == 1 for splits in split_of.values()), split_of
    assert {"train", "validation"} == {s for splits in split_of.values() for s in splits}


def test_a_lines_candidates_are_judged_after_their_opening(monkeypatch):
    """Judged whole, the best of a line's candidates favours the archive's likeliest openings, and
    across days one opening took 8 % of a persona's lines (`persona_lyric_openings.json`); judged
    after their first two words, the opening stays as the model drew it."""
    import math
    import random

    from composer.persona import lyric_model
    from composer.persona.lyric_model import END, START, LyricModel, words
    from lyrics import LyricSection

    draw = random.Random(1)
    nouns = "river morning fire window highway garden harbour winter summer mountain shadow engine".split()
    verbs = "follow carry wander gather borrow whisper answer".split()
    lines = []
    for i in range(120):  # a quarter of the archive's lines open "we run"
        if i % 4 == 0:
            lines.append(f"we run along the {draw.choice(nouns)} and {draw.choice(verbs)} the {draw.choice(nouns)}")
        else:
            who = draw.choice(["she", "they", "you", "the night", "my heart", "old friends", "the rain"])
            lines.append(f"{who} {draw.choice(verbs)}s the {draw.choice(nouns)} beside the {draw.choice(nouns)}")
    model = LyricModel.train([[LyricSection(f"verse{k}", "verse", lines[k * 4:(k + 1) * 4])] for k in range(30)])
    line = "we run beside the harbour"
    padded = [START, START, *words(line), END]
    after = [-math.log(model.probability((padded[i - 2], padded[i - 1]), padded[i])) for i in range(4, len(padded))]
    assert model.continuation_fluency(line) == pytest.approx(sum(after) / len(after))
    assert model.continuation_fluency("hello") == model.fluency("hello")

    def share():
        written = [line for day in range(40) for line in model.write_section("verse", random.Random(day))]
        return sum(words(line)[:2] == ["we", "run"] for line in written) / len(written)

    after_opening = share()  # 0.025
    monkeypatch.setattr(LyricModel, "continuation_fluency", LyricModel.fluency)
    assert share() > 2 * after_opening  # 0.075 judged whole
    assert lyric_model.CHOICE_TEMPERATURE == 0.0


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_build_only_reads_the_archive_and_learns_its_analysis_from_the_persona(built, tiny_models, tmp_path):
    """The analysis goes into PERSONA/analysis/, not into the artist's archive (which may be
    read-only), and the priors, fine-tune and originality index learn it from there."""
    _, _, persona = built
    archive = _archive(tmp_path / "archive", refused=True)
    before = _tree(archive)
    _build(archive, tmp_path / "persona", tiny_models)
    assert _tree(archive) == before  # no labels, plans, backup or rewritten metadata.jsonl
    assert _learnt(tmp_path / "persona") == _learnt(persona)
    from composer.data.labelling import read_labels

    labels = read_labels(tmp_path / "persona" / "analysis")
    assert set(labels) == {f"audio/s{i}.wav" for i in range(len(MOODS))}  # the refused file never read
    assert all(Path(entry["plan"]).is_file() and entry["labels_source"] == "analysis" for entry in labels.values())
    priors = json.loads((tmp_path / "persona" / "priors.json").read_text())
    assert priors["tempo"]["*"]  # the archive gives no tempo: the persona's analysis did
    model = json.loads((tmp_path / "persona" / "model" / "config.json").read_text())
    assert model["training"]["files"] == len(MOODS)


def test_an_archive_changed_since_its_check_is_checked_and_learnt_again(built, tiny_models, tmp_path):
    """A consent taken back in metadata.jsonl (not through `data revoke`) after the check, even
    mid-build: the song is refused and nothing learnt from it stays; a mood edited: the priors
    are learnt again and the fine-tune kept."""
    archive = _archive(tmp_path / "archive")
    out = tmp_path / "persona"
    _build(archive, out, tiny_models, "--stop-after", "check")
    rows = [json.loads(line) for line in (archive / "metadata.jsonl").read_text().splitlines()]
    rows[2]["consent"], rows[2]["location"] = "no", "Tromsø"
    (archive / "metadata.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    _build(archive, out, tiny_models)
    state = json.loads((out / "state.json").read_text())
    assert "audio/s2.wav" not in state["done"]["check"]["accepted"]
    priors = json.loads((out / "priors.json").read_text())
    assert "Tromsø" not in priors["fields"]["location"] and json.loads((out / "persona.json").read_text())["songs"] == 7
    model = _learnt(out)["model/model.safetensors"]
    # the same files, another mood: priors again, the fine-tune kept
    rows[3]["mood"] = "euphoric"
    (archive / "metadata.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    _build(archive, out, tiny_models)
    assert "euphoric" in json.loads((out / "priors.json").read_text())["fields"]["mood"]
    assert _learnt(out)["model/model.safetensors"] == model
    # consent given again: the file is learnt again, the fine-tune from its start
    rows[2]["consent"] = "opt-in"
    (archive / "metadata.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    _build(archive, out, tiny_models)
    assert json.loads((out / "persona.json").read_text())["songs"] == 8
    assert "Tromsø" in json.loads((out / "priors.json").read_text())["fields"]["location"]


def test_a_rows_own_compound_meter_is_kept_and_a_simple_analysis_distrusted(tmp_path):
    """A row that says 6/8 gets no analysed beats_per_bar; when the analysis hears a simple meter,
    its labels are not trusted for the beat grid."""
    from composer.data.labelling import analyze_dataset, read_labels, with_labels

    archive = _archive(tmp_path / "archive")
    rows = [json.loads(line) for line in (archive / "metadata.jsonl").read_text().splitlines()]
    rows[0]["meter"] = "6/8"  # its audio is a 4/4 pop song
    (archive / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = _tree(archive)
    analyze_dataset(archive, progress=False, only={"audio/s0.wav", "audio/s1.wav"}, into=tmp_path / "labels")
    assert _tree(archive) == before
    labels = read_labels(tmp_path / "labels")
    own = with_labels(rows[0], labels["audio/s0.wav"])
    assert "beats_per_bar" not in own and "beat_division" not in own and own["meter"] == "6/8"
    assert own["labels_confident"] is False and "compound meter" in " ".join(
        own["analysis_confidence"]["disagrees_with"])
    other = with_labels(rows[1], labels["audio/s1.wav"])
    assert other["beats_per_bar"] == 4 and other["tempo"] and set(other["analysed_fields"]) >= {"tempo", "key"}
    # the same into the archive itself (`composer data analyze`)
    analyze_dataset(archive, progress=False, only={"audio/s0.wav"})
    row = json.loads((archive / "metadata.jsonl").read_text().splitlines()[0])
    assert "beats_per_bar" not in row and row["meter"] == "6/8" and row["labels_confident"] is False


def test_an_analysis_written_beside_resumes_and_skips_a_torn_line(tmp_path):
    from composer.data.labelling import analyze_dataset, read_labels

    archive = _archive(tmp_path / "archive")
    into = tmp_path / "labels"
    counts = analyze_dataset(archive, progress=False, only={"audio/s0.wav"}, into=into)
    assert counts["labelled"] == 1
    with open(into / "labels.jsonl", "a") as handle:
        handle.write('{"file_name": "audio/s1.wav", "pla')  # a kill while writing
    assert set(read_labels(into)) == {"audio/s0.wav"}
    counts = analyze_dataset(archive, progress=False, only={"audio/s0.wav", "audio/s1.wav"}, into=into)
    assert counts["skipped"] == 1 and counts["labelled"] == 1
    assert set(read_labels(into)) == {"audio/s0.wav", "audio/s1.wav"}
    # a second row of an analysed file is refused on every run, not skipped (nor counted twice)
    with (archive / "metadata.jsonl").open("a") as rows:
        rows.write(json.dumps({"file_name": "audio/s0.wav", "licence": "own-work", "consent": "opt-in"}) + "\n")
    counts = analyze_dataset(archive, progress=False, only={"audio/s0.wav", "audio/s1.wav"}, into=into)
    assert (counts["skipped"], counts["refused"], counts["labelled"]) == (2, 1, 0)


# --- a second review: each test fails on the code before its fix ---------------------------------


def test_a_field_few_songs_have_is_on_as_few_days():
    """favourite_colour on 1 song of 6 was on every day: its absence is a category of the draw, so
    over 200 days each field, absence included, is within 0.1 of the archive's; and a persona's
    priors.json from before absences were counted still loads and draws every field, as it did."""
    import datetime as dt
    from collections import Counter

    from composer.persona.daily import draw_song
    from composer.persona.priors import Priors, total_variation

    songs = [{"mood": m, "genre": "folk", "beard": b} for m, b in
             zip(["sad", "happy", "sad", "calm", "happy", "sad"], ["long", None, "none", "", "long", "none"])]
    songs[0]["favourite_colour"], songs[1]["rating"] = "teal", 5
    priors = Priors.from_songs(songs)
    persona = _tiny_persona(priors, _verse_model())
    days = [draw_song(persona, dt.date(2027, 3, 1) + dt.timedelta(days=d))["metadata"] for d in range(200)]
    for name in ("favourite_colour", "rating", "beard", "mood", "genre"):
        drawn = Counter(str(d.get(name, "(absent)")) for d in days)
        archive = Counter(str(s.get(name) or "(absent)") for s in songs)
        assert total_variation(drawn, archive) <= 0.1, (name, drawn, archive)
    assert sum("favourite_colour" in d for d in days) < 60  # not every day
    assert draw_song(persona, dt.date(2027, 3, 5)) == draw_song(persona, dt.date(2027, 3, 5))  # the date's own
    old = priors.to_dict()
    del old["absent"]
    older = _tiny_persona(Priors.from_dict(old), _verse_model())
    assert all("favourite_colour" in draw_song(older, dt.date(2027, 3, 1) + dt.timedelta(days=d))["metadata"]
               for d in range(10))


def test_a_run_of_days_renders_past_a_day_it_cannot_use(built, tmp_path):
    _, _, persona = built
    out = tmp_path / "D"
    (out / "2026-06-02").mkdir(parents=True)
    (out / "2026-06-02" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(main, ["daily", "--persona", str(persona), "--date", "2026-06-01", "--days", "3",
                                       "-o", str(out), "--no-evaluate", "--no-vocals"])
    assert result.exit_code == 2, result.output
    assert (out / "2026-06-01" / "report.json").is_file() and (out / "2026-06-03" / "report.json").is_file()
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "2026-06-02" in errors[0] and "Traceback" not in result.output
    assert (out / "2026-06-02" / "notes.txt").read_text() == "mine"
    assert "2 of 3 days done, 1 bad input" in result.output
    result = CliRunner().invoke(main, ["daily", "--persona", str(persona), "--date", "9999-12-31", "--days", "2",
                                       "-o", str(tmp_path / "late")])
    assert result.exit_code == 2 and "runs past 9999-12-31" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "late").exists()


def test_build_options_are_checked_before_any_step(tmp_path):
    archive = _archive(tmp_path / "archive")
    for option, value in (("--batch-size", "0"), ("--steps", "0"), ("--steps", "-2"), ("--max-minutes", "-1"),
                          ("--lr", "0"), ("--lr", "nan")):
        result = CliRunner().invoke(main, ["persona", "build", str(archive), "-o", str(tmp_path / "p"), option, value])
        assert result.exit_code == 2 and result.output.startswith(f"error: {option}:"), (option, result.output)
        assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "p").exists()


def test_pins_the_day_does_not_use_are_refused_or_warned(built, tmp_path):
    from composer.errors import InputError
    from composer.persona.daily import check_pins, unseen_pins
    from composer.persona.priors import Priors

    for pin, said in ((("lyrics", "hello world"), "composer render --lyrics"),
                      (("meter", "5/7"), "--set meter=5/7: expected a meter")):
        with pytest.raises(InputError) as error:
            check_pins(dict([pin]))
        assert said in str(error.value), str(error.value)
    assert check_pins({"meter": "3"}) == {"beats_per_bar": 3} and check_pins({"meter": "6/8"})["beat_division"] == 3
    priors = Priors.from_songs([{"mood": "sad"}, {"mood": "calm"}])
    warned = unseen_pins(priors, check_pins({"mood": "euphoric", "colour": "red", "tempo": "96", "title": "Mine"}))
    assert len(warned) == 2 and "mood=euphoric" in warned[0] and "colour=red" in warned[1], warned
    assert unseen_pins(priors, {"mood": "sad"}) == []
    _, _, persona = built
    result = CliRunner().invoke(main, ["daily", "--persona", str(persona), "--set", "lyrics=hello world",
                                       "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--set lyrics=hello world" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


def test_a_kept_day_that_differs_from_the_request_says_so(built, tmp_path):
    _, _, persona = built

    def daily(out, *extra):
        return CliRunner().invoke(main, ["daily", "--persona", str(persona), "--date", "2026-12-05", "-o",
                                         str(tmp_path / out), "--no-evaluate", "--no-vocals", *extra])

    assert daily("o").exit_code == 0
    same = daily("o")
    assert same.exit_code == 0 and "kept as it is" in same.output and "asks for" not in same.output, same.output
    for extra, said in ((["--strength", "1"], "strength 1.0 (rendered with 0.25)"),
                        (["--set", "form=verse bridge"], "form=verse bridge (rendered with form=verse chorus")):
        other = daily("o", *extra)
        assert other.exit_code == 0 and said in other.output and "--overwrite" in other.output, other.output
    assert daily("p", "--set", "mood=happy").exit_code == 0
    drawn = daily("p")
    assert "mood drawn (rendered with mood pinned to happy)" in drawn.output, drawn.output


def test_the_refused_count_is_of_files(monkeypatch, tmp_path):
    import composer.persona.build as build
    from composer.persona.cli import refused_files

    problems = ["audio/x.flac (metadata.jsonl line 7): licence 'all rights reserved' is not allowed",
                "audio/x.flac (metadata.jsonl line 7): consent 'no' is not opt-in", "audio/y.flac: file not found"]
    assert refused_files(problems) == ["audio/x.flac", "audio/y.flac"]
    info = {"songs": 6, "hours": 0.1, "refused": problems, "lyrics": {"instrumental": True}}
    monkeypatch.setattr(build, "build_persona", lambda *args, **kwargs: info)
    result = CliRunner().invoke(main, ["persona", "build", str(tmp_path), "-o", str(tmp_path / "p")])
    assert result.exit_code == 0 and "persona of 6 songs (0.10 h), 2 refused;" in result.output, result.output
    # a build records the check's own list of files: names with ": " in them count apart
    info["refused"] = ["audio/Live: Oslo.wav: consent 'no' is not opt-in", "audio/Live: Bergen.wav: file not found"]
    info["refused_files"] = ["audio/Live: Oslo.wav", "audio/Live: Bergen.wav"]
    result = CliRunner().invoke(main, ["persona", "build", str(tmp_path), "-o", str(tmp_path / "p")])
    assert "2 refused;" in result.output, result.output


def test_null_labels_are_labels_left_out(tmp_path):
    """`"tempo": null` is no tempo: the check accepts the song and the analysis measures it."""
    from composer.data.datasets import check_dataset
    from composer.data.labelling import analyze_dataset, read_labels, with_labels

    archive = _archive(tmp_path / "archive")
    rows = [json.loads(line) for line in (archive / "metadata.jsonl").read_text().splitlines()]
    rows[0].update(tempo=None, genre=None, key="", meter=None)
    (archive / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert "audio/s0.wav" in check_dataset(archive).accepted
    analyze_dataset(archive, progress=False, only={"audio/s0.wav"}, into=tmp_path / "labels")
    fields = with_labels(rows[0], read_labels(tmp_path / "labels")["audio/s0.wav"])
    assert fields["tempo"] > 0 and fields["key"] and fields["beats_per_bar"] == 4


def test_a_persona_whose_archive_is_not_here_says_withdrawals_are_not_seen(built, tmp_path, caplog):
    import importlib

    daily_module = importlib.import_module("composer.persona.daily")  # the package exports the function daily

    _, _, persona = built
    mine = tmp_path / "persona"
    shutil.copytree(persona, mine)
    state = json.loads((mine / "state.json").read_text())
    state["archive"] = str(tmp_path / "moved_away")
    (mine / "state.json").write_text(json.dumps(state))
    from structure.notices import said_afresh

    with said_afresh(), caplog.at_level("WARNING", logger="composer.persona.daily"):
        daily_module.load_persona(mine)
        daily_module.load_persona(mine)
    said = [r.getMessage() for r in caplog.records if "not on this machine" in r.getMessage()]
    assert len(said) == 1 and "moved_away" in said[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="composer.persona.daily"):
        daily_module.load_persona(persona)  # its archive is here: nothing said
    assert not any("not on this machine" in r.getMessage() for r in caplog.records)


def test_a_damaged_persona_model_names_the_persona(built, tmp_path):
    from composer.errors import InputError
    from composer.persona.daily import load_persona, persona_model

    _, _, persona = built
    mine = tmp_path / "persona"
    shutil.copytree(persona, mine)
    (mine / "model" / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(InputError, match=r"^--persona .*: its fine-tuned model is damaged") as error:
        persona_model(load_persona(mine), 1.0)
    assert "--model" not in str(error.value)


def test_the_studios_song_of_a_day_already_made_is_kept_and_said(built, tiny_models, tmp_path):
    from composer.errors import InputError
    from composer.rendering.options import RenderOptions
    from composer.studio import Studio

    _, _, persona = built
    codec_dir, model_dir = tiny_models
    studio = Studio(tmp_path / "out", codec=codec_dir, model=model_dir)
    options = RenderOptions(steps=2, evaluate=False, vocals=False)
    first = studio.daily(persona, "2026-12-01", options=options)
    again = studio.daily(persona, "2026-12-01", options=options)
    assert "rendered before" not in first.note and "rendered before and kept" in again.note
    assert [e.folder for e in studio.history()] == [first.folder]  # one row for the one song
    with pytest.raises(InputError, match="'2026-02-30' is no such day"):
        studio.daily(persona, "2026-02-30", options=options)


def test_a_missing_file_or_a_broken_line_keeps_the_persona_and_replaced_audio_is_learnt_again(
        built, tiny_models, tmp_path, caplog):
    archive, mine = _copied(built, tmp_path)
    before = _learnt(mine)
    _build(archive, mine, tiny_models)  # nothing changed (the copy keeps the files' times): nothing relearnt
    assert _learnt(mine) == before
    # a drive not mounted: the learnt file is missing; the persona stays as it was learnt
    moved = tmp_path / "s3.wav"
    (archive / "audio" / "s3.wav").rename(moved)
    with caplog.at_level("WARNING", logger="composer.persona.build"):
        _build(archive, mine, tiny_models)
    assert "can no longer be read (audio/s3.wav" in caplog.text and _learnt(mine) == before
    assert (mine / "persona.json").is_file()
    moved.rename(archive / "audio" / "s3.wav")
    # a malformed line: the consent it gives cannot be read; one error, the persona kept
    text = (archive / "metadata.jsonl").read_text()
    (archive / "metadata.jsonl").write_text(text + "{not json\n")
    result = CliRunner().invoke(main, ["persona", "build", str(archive), "-o", str(mine), "--steps", "3",
                                       "--batch-size", "2", "--threads", "1"])
    assert result.exit_code == 2 and "malformed" in result.output and _learnt(mine) == before
    (archive / "metadata.jsonl").write_text(text)
    # other audio under a learnt name: analysed again, and the fine-tune from its start
    from composer.data.labelling import read_labels

    sf.write(archive / "audio" / "s3.wav", render(pop_plan(150.0, "E major"))[: RATE * 24], RATE)
    weights = (mine / "model" / "model.safetensors").stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level("WARNING", logger="composer.persona.build"):
        _build(archive, mine, tiny_models)
    assert "1 with other audio: audio/s3.wav" in caplog.text
    assert abs(read_labels(mine / "analysis")["audio/s3.wav"]["tempo"] - 150) < 3  # analysed again
    assert (mine / "model" / "model.safetensors").stat().st_mtime_ns != weights  # fine-tuned again


def test_metadata_changed_during_a_fine_tune_starts_it_again(built, tiny_models, tmp_path):
    """Its checkpoints' tag vocabulary is the old metadata's: resuming them failed for good."""
    archive = _archive(tmp_path / "archive")
    out = tmp_path / "persona"
    _build(archive, out, tiny_models, "--stop-after", "lyrics")
    (out / "model" / "training").mkdir(parents=True)  # a fine-tune begun (what a kill mid-way leaves)
    (out / "model" / "training" / "log.jsonl").write_text("{}\n")
    rows = [json.loads(line) for line in (archive / "metadata.jsonl").read_text().splitlines()]
    rows[0]["mood"] = "euphoric"
    (archive / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _build(archive, out, tiny_models)
    assert (out / "model" / "model.safetensors").is_file() and json.loads((out / "persona.json").read_text())
    assert "euphoric" in json.loads((out / "priors.json").read_text())["fields"]["mood"]


def test_an_init_or_codec_that_is_not_a_checkpoint_is_refused_before_any_step(tmp_path):
    """A wrong --init failed only at the fine-tune, after the check, analysis, priors and lyrics."""
    from composer.errors import InputError
    from composer.persona.build import build_persona

    (tmp_path / "afile").write_text("x")
    for flag in ("init", "codec"):
        with pytest.raises(InputError, match=f"--{flag} .*afile: not a"):
            build_persona(tmp_path / "archive", tmp_path / "p", **{flag: str(tmp_path / "afile")})
    assert not (tmp_path / "p").exists()
