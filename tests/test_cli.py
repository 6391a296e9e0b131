"""The command line: every command runs end to end; bad input exits 2 with one line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from composer import __version__
from composer.cli import main

FAST = ["--steps", "2", "--no-evaluate"]


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_error_line(result) -> str:
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_help_lists_command_groups():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("plan", "guide", "render", "restyle", "interpolate", "repaint", "loop", "batch", "corpus",
                    "data", "train", "evaluate", "doctor"):
        assert command in result.output, command


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_doctor_reports_missing_soundfont_truthfully(tmp_path):
    result = run("doctor", "--soundfont", tmp_path / "missing.sf2")
    assert result.exit_code == 1
    assert "MISSING" in result.output and "missing.sf2" in result.output
    assert "fix:" in result.output


def test_doctor_on_a_folder_that_is_no_model_says_so(tmp_path):
    result = run("doctor", "--model", tmp_path)
    assert result.exit_code == 1 and "neither a model checkpoint nor an originality index" in result.output


def test_doctor_loads_the_soundfont_it_is_given(tmp_path):
    (tmp_path / "text.sf2").write_text("not a soundfont")
    result = run("doctor", "--soundfont", tmp_path / "text.sf2")
    assert result.exit_code == 1 and "FluidSynth cannot load it" in result.output


def test_output_paths_that_cannot_be_written_are_one_line_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("mine")
    result = run("plan", "folk", "--duration", "10", "-o", tmp_path / "afile" / "p.json")
    assert result.exit_code == 2 and "afile is a file, not a folder" in result.output
    assert "Error:" not in result.output and (tmp_path / "afile").read_text() == "mine"
    assert run("plan", "folk", "--duration", "10", "-o", tmp_path / "p.json").exit_code == 0
    result = run("guide", "--plan", tmp_path / "p.json", "-o", tmp_path / "g.wav", "--midi", tmp_path)
    assert result.exit_code == 2 and "--midi" in result.output and not (tmp_path / "g.wav").exists()
    result = run("originality", "index", tmp_path, "-o", tmp_path / "afile")
    assert result.exit_code == 2 and "a file; the index is a folder" in result.output


@pytest.mark.parametrize("seed, says", [("-5", "outside 0..2^63-1"), (str(2**70), "outside 0..2^63-1"),
                                        ("abc", "not a whole number")])
def test_a_seed_outside_what_batch_rows_take_is_refused(tmp_path, seed, says):
    result = run("plan", "folk", "--duration", "8", "--seed", seed, "-o", tmp_path / "p.json")
    assert result.exit_code == 2 and says in result.output and not (tmp_path / "p.json").exists()


def test_plan_and_guide(tmp_path):
    result = run("plan", 'genre=folk tempo=96 key="D minor"', "--duration", "20", "--seed", "3",
                 "-o", tmp_path / "plan.json")
    assert result.exit_code == 0, result.output
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["tempo_bpm"] == 96 and plan["key"] == {"tonic": "D", "mode": "minor"}
    result = run("guide", "--plan", tmp_path / "plan.json", "-o", tmp_path / "guide.wav", "--midi", tmp_path / "g.mid")
    assert result.exit_code == 0, result.output
    import soundfile as sf

    info = sf.info(str(tmp_path / "guide.wav"))
    assert abs(info.duration - 20) < 2.6  # within a bar of 4/4 at 96 BPM
    assert (tmp_path / "g.mid").stat().st_size > 0
    # an output never replaces what the command reads, nor takes another kind of file's name
    (tmp_path / "words.txt").write_text("[Verse]\nthe night train calls\n")
    lyrics = (tmp_path / "words.txt").read_text()
    before = (tmp_path / "plan.json").read_text()
    for args, says in (
            (["plan", "folk", "--lyrics", tmp_path / "words.txt", "-o", tmp_path / "words.txt"], "a plan is written as .json"),
            (["plan", "folk", "-o", tmp_path / "guide.wav"], "a plan is written as .json"),
            (["plan", "folk", "-o", f"{tmp_path / 'new'}/"], "is a folder"),
            (["guide", "--plan", tmp_path / "plan.json", "-o", tmp_path / "x.wav", "--midi", tmp_path / "plan.json"],
             "MIDI is written as .mid"),
            (["guide", "--plan", tmp_path / "plan.json", "-o", tmp_path / "plan.json"], "the guide is written as"),
            (["guide", "--plan", tmp_path / "plan.json", "-o", tmp_path / "x.mid", "--midi", tmp_path / "x.mid"],
             "the guide is written as")):
        result = run(*args)
        assert result.exit_code == 2 and says in result.output, (args, result.output)
    assert (tmp_path / "words.txt").read_text() == lyrics and (tmp_path / "plan.json").read_text() == before
    assert not (tmp_path / "new").exists() and not (tmp_path / "x.wav").exists()
    (tmp_path / "same.json").symlink_to(tmp_path / "plan.json")
    result = run("plan", "folk", "--lyrics", tmp_path / "plan.json", "-o", tmp_path / "same.json")
    assert result.exit_code == 2 and "is the file --lyrics reads" in result.output


def test_render_from_prompt_and_plan(tmp_path, tiny_models):
    codec, model = tiny_models
    result = run("render", "genre=rock mood=happy", "--duration", "8", "--seed", "1", "-o", tmp_path / "a",
                 "--codec", codec, "--model", model, *FAST)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a" / "report.json").exists()
    result = run("render", "--plan", tmp_path / "a" / "plan.json", "--seed", "1", "-o", tmp_path / "b",
                 "--codec", codec, "--model", model, *FAST)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a" / "song.wav").read_bytes() == (tmp_path / "b" / "song.wav").read_bytes()


def test_render_with_lyrics_writes_lrc(tmp_path, tiny_models):
    codec, model = tiny_models
    (tmp_path / "words.txt").write_text("[verse]\nthe train goes by\nand so do I\n\n[chorus]\nroll on\nroll on\n")
    result = run("render", "genre=folk", "--lyrics", tmp_path / "words.txt", "-o", tmp_path / "s",
                 "--codec", codec, "--model", model, *FAST)
    assert result.exit_code == 0, result.output
    assert "train" in (tmp_path / "s" / "lyrics.lrc").read_text()


def test_modes_from_the_command_line(tmp_path, tiny_models):
    codec, model = tiny_models
    models = ["--codec", codec, "--model", model]
    assert run("render", "genre=pop", "--duration", "8", "-o", tmp_path / "r", *models, *FAST).exit_code == 0
    plan = json.loads((tmp_path / "r" / "plan.json").read_text())
    section = plan["sections"][0]["name"]
    result = run("repaint", tmp_path / "r", "--section", section, *models)
    assert result.exit_code == 0, result.output
    result = run("restyle", tmp_path / "r" / "song.wav", "genre=jazz", "--strength", "0.4", "-o", tmp_path / "st",
                 *models, *FAST)
    assert result.exit_code == 0, result.output
    result = run("interpolate", tmp_path / "r" / "song.wav", tmp_path / "st" / "song.wav", "--count", "2",
                 "-o", tmp_path / "mix", *models, "--steps", "2")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "mix" / "01" / "song.wav").exists()
    # into a song's own folder (it wrote 00/, 01/ inside it), or too many to hold: one line, nothing made
    for args, message in ((["--count", "2", "-o", tmp_path / "st"], "holds a song"),
                          (["--count", "65", "-o", tmp_path / "many"], "outside 2..64")):
        result = run("interpolate", tmp_path / "r" / "song.wav", tmp_path / "st" / "song.wav", *args, *models)
        assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "st" / "00").exists() and not (tmp_path / "many").exists()
    # again with fewer songs and --overwrite: the set is these two, not two of three
    result = run("interpolate", tmp_path / "r" / "song.wav", tmp_path / "st" / "song.wav", "--count", "3",
                 "-o", tmp_path / "mix", "--overwrite", *models, "--steps", "2")
    assert result.exit_code == 0 and (tmp_path / "mix" / "02" / "song.wav").exists()
    (tmp_path / "mix" / "02" / "mine.txt").write_text("kept")  # a folder holding the user's file stays
    (tmp_path / "mix" / "notes.txt").write_text("kept")
    result = run("interpolate", tmp_path / "r" / "song.wav", tmp_path / "st" / "song.wav", "--count", "2",
                 "-o", tmp_path / "mix", "--overwrite", *models, "--steps", "2")
    assert result.exit_code == 0 and (tmp_path / "mix" / "02" / "mine.txt").exists()
    (tmp_path / "mix" / "02" / "mine.txt").unlink()
    result = run("interpolate", tmp_path / "r" / "song.wav", tmp_path / "st" / "song.wav", "--count", "2",
                 "-o", tmp_path / "mix", "--overwrite", *models, "--steps", "2")
    assert sorted(p.name for p in (tmp_path / "mix").iterdir()) == ["00", "01", "notes.txt"]
    result = run("loop", "genre=electronic", "--bars", "2", "-o", tmp_path / "loop", *models, "--steps", "2")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command, option", [
    (["interpolate", "a.wav", "b.wav"], "--controls"),  # interpolation conditions on what analysis can know
    (["interpolate", "a.wav", "b.wav"], "--guidance"),  # inversion needs the unguided flow
    (["loop", "genre=pop", "--bars", "2"], "--crossfade-beats"),  # a loop has no section joins
    (["restyle", "a.wav", "genre=jazz"], "--repaint-seams"),
])
def test_a_command_refuses_an_option_it_cannot_honour(tmp_path, command, option):
    result = run(*command, "-o", tmp_path / "out", option, "2")
    assert result.exit_code == 2 and f"No such option '{option}'" in result.output


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "tags=nan", "nosuchgroup=2", "tags=3,tags=4"])
def test_guidance_that_is_not_a_finite_weight_is_refused(tmp_path, value):
    result = run("render", "genre=pop", "--guidance", value, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "--guidance" in result.output
    assert not (tmp_path / "out").exists()


def test_training_analysed_rows_on_a_group_no_analysis_measures_is_refused(tmp_path):
    result = run("train", "diffusion", "--data", tmp_path, "--analysed-groups", "rhythm,melody", "-o", tmp_path / "m")
    assert result.exit_code == 2 and "--analysed-groups" in result.output and "melody" in result.output
    assert not (tmp_path / "m").exists()
    result = run("train", "diffusion", "--data", tmp_path, "--analysed-groups", " , ", "-o", tmp_path / "m")
    assert result.exit_code == 2 and "name at least one" in result.output and not (tmp_path / "m").exists()


def test_guidance_for_a_group_the_controls_turn_off_is_refused(tmp_path):
    result = run("render", "genre=pop", "--controls", "form,harmony", "--guidance", "tags=3,melody=1.5",
                 "-o", tmp_path / "out")
    assert result.exit_code == 2 and "melody is not among --controls" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, names", [
    (["render", "--plan", "missing.json", "-o", "out"], "missing.json"),
    (["render", "genre=pop", "--plan", "p.json", "-o", "out"], "not both"),
    (["render", "tempo=0", "-o", "out"], "tempo"),
    (["render", "key=H", "-o", "out"], "key"),
    (["plan", "genre=pop", "--duration", "0", "-o", "p.json"], "duration"),
    (["restyle", "nope.wav", "genre=jazz", "-o", "out"], "nope.wav"),
    (["restyle", "BROKEN", "genre=jazz", "--strength", "0.5", "-o", "out"], "BROKEN"),
    (["repaint", "not_a_render", "--section", "chorus1"], "not_a_render"),
    (["loop", "genre=pop", "--bars", "0", "-o", "out"], "bars"),
    (["render", "genre=pop", "--lyrics", "EMPTY", "-o", "out"], "EMPTY"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, tiny_models, monkeypatch, args, names):
    codec, model = tiny_models
    monkeypatch.chdir(tmp_path)
    (tmp_path / "BROKEN").write_bytes(b"RIFF....WAVEfmt garbage")
    (tmp_path / "EMPTY").write_text("   \n")
    if args[0] in ("render", "restyle", "loop", "repaint"):
        args = args + ["--codec", str(codec), "--model", str(model)]
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert names in one_error_line(result)


def test_malformed_plan_names_the_field(tmp_path, tiny_models):
    codec, model = tiny_models
    (tmp_path / "plan.json").write_text(json.dumps({"tempo_bpm": 120, "beats_per_bar": 4, "key": "C major",
                                                    "sections": [{"name": "a", "kind": "verse", "bars": 0}]}))
    result = run("render", "--plan", tmp_path / "plan.json", "-o", tmp_path / "o", "--codec", codec, "--model", model)
    assert result.exit_code == 2
    assert "sections[0].bars" in one_error_line(result)
    (tmp_path / "plan.json").write_text("{not json")
    result = run("guide", "--plan", tmp_path / "plan.json", "-o", tmp_path / "g.wav")
    assert result.exit_code == 2
    assert "not valid JSON" in one_error_line(result)


def test_strength_outside_range(tmp_path, tiny_models):
    codec, model = tiny_models
    assert run("render", "genre=pop", "--duration", "6", "-o", tmp_path / "r", "--codec", codec, "--model", model,
               *FAST).exit_code == 0
    result = run("restyle", tmp_path / "r" / "song.wav", "genre=jazz", "--strength", "1.5", "-o", tmp_path / "x",
                 "--codec", codec, "--model", model)
    assert result.exit_code == 2
    assert "strength" in one_error_line(result)


def test_unknown_section_for_repaint(tmp_path, tiny_models):
    codec, model = tiny_models
    assert run("render", "genre=pop", "--duration", "6", "-o", tmp_path / "r", "--codec", codec, "--model", model,
               *FAST).exit_code == 0
    result = run("repaint", tmp_path / "r", "--section", "bridge9", "--codec", codec, "--model", model)
    assert result.exit_code == 2
    assert "bridge9" in one_error_line(result)


def test_missing_checkpoints_are_bad_input(tmp_path):
    for flag in ("--model", "--codec"):
        result = run("render", "genre=pop", "--duration", "6", "-o", tmp_path / "o", flag, tmp_path / "nope", *FAST)
        assert result.exit_code == 2, result.output
        assert "nope" in one_error_line(result)


def test_codec_from_the_local_hub_cache_only(tmp_path, monkeypatch, tiny_models):
    """A hub id resolves from the cache folders alone (no network code is involved)."""
    import shutil

    from autoencoder import load_codec

    codec_dir, _ = tiny_models
    repo = tmp_path / "hub" / "models--someone--tiny-codec"
    shutil.copytree(codec_dir, repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert load_codec("someone/tiny-codec").identity() == load_codec(codec_dir).identity()


def test_a_restyle_that_moved_the_key_says_so_in_one_line(capsys):
    from composer.cli_support import echo_key_change

    moved = {"metrics": {"key": {"estimated": "F# major", "planned": "A minor", "score": 0.0}}}
    echo_key_change("out", moved)
    line = capsys.readouterr().err.strip()
    assert line.startswith("out: the output's key reads F# major, the input's A minor") and "\n" not in line
    for kept in ({"metrics": {"key": {"estimated": "A minor", "planned": "A minor", "score": 1.0}}},
                 {"metrics": {"key": {"estimated": "E minor", "planned": "A minor", "score": 0.5}}},  # a fifth
                 {"metrics": {}}, {}):  # --no-evaluate: nothing measured, nothing said
        echo_key_change("out", kept)
        assert capsys.readouterr().err == ""


def test_interpolations_are_saved_as_made_and_one_set_at_a_time(tmp_path, monkeypatch):
    import composer.rendering.modes as modes
    from composer.errors import RenderError
    from composer.rendering.folder import lock_output

    class Made:  # what the CLI needs of a Render: save() and duration
        duration = 1.0

        def save(self, out):
            out.mkdir(parents=True)
            (out / "song.wav").write_bytes(b"RIFF")

    def two_then_fail(*args, **kwargs):
        yield Made()
        yield Made()
        raise RenderError("the third song failed")

    monkeypatch.setattr(modes, "interpolations", two_then_fail)
    result = run("interpolate", "a.wav", "b.wav", "--count", "4", "-o", tmp_path / "mix")
    assert result.exit_code != 0 and "the third song failed" in result.output
    # the songs made before the failure are kept, and no lock is left behind
    assert sorted(p.name for p in (tmp_path / "mix").iterdir()) == ["00", "01"]
    # a second run into a set folder that another run holds is refused, before any work
    with lock_output(tmp_path / "busy" / "set"):
        result = run("interpolate", "a.wav", "b.wav", "--count", "2", "-o", tmp_path / "busy")
    assert result.exit_code == 2 and "another render is writing there" in result.output
    assert not (tmp_path / "busy" / "00").exists()
    # a run that fails before making anything leaves no folder of its own
    monkeypatch.setattr(modes, "interpolations", lambda *a, **k: _fail())
    result = run("interpolate", "a.wav", "b.wav", "--count", "2", "-o", tmp_path / "none")
    assert result.exit_code != 0 and not (tmp_path / "none").exists()


def _fail():
    from composer.errors import InputError

    raise InputError("a.wav: no such file")


@pytest.mark.parametrize("args, says", [
    (["data", "analyze", "{tmp}", "--workers", "-3"], "--workers: -3 must be >= 1"),
    (["corpus", "build", "-o", "{tmp}/c", "--minutes", "1", "--workers", "0"], "--workers: 0 must be >= 1"),
    (["persona", "build", "{tmp}", "-o", "{tmp}/p", "--workers", "0"], "--workers: 0 must be >= 1"),
    (["render", "genre=pop", "--controls", "", "-o", "{tmp}/r"], "--controls '': name at least one group"),
    (["plan", "genre=pop", "--lyrics", "{tmp}", "-o", "{tmp}/p.json"], "a folder, not a file"),
])
def test_options_that_mean_nothing_are_refused_in_one_line(tmp_path, args, says):
    (tmp_path / "metadata.jsonl").write_text("")
    result = run(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 2 and says in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metadata.jsonl"]  # nothing made


def test_a_lyric_section_too_long_for_a_section_names_the_file_and_the_tag(tmp_path):
    # it failed the plan's own check: "sections[1].bars: 300 is outside 1..256"
    words = tmp_path / "long verse.txt"
    words.write_text("[Verse]\nA short first verse\n\n[Verse]\n" + "\n".join(["la " * 60] * 40) + "\n")
    result = run("plan", "folk", "--lyrics", words, "-o", tmp_path / "plan.json")
    assert result.exit_code == 2
    assert f"lyrics {words}: [Verse] number 2 (40 lines" in result.output and "split it" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "plan.json").exists()


@pytest.mark.parametrize("command, args, says", [
    ("codec", ["--steps", "-5"], "--steps: -5 must be 1 or more"),
    ("codec", ["--steps", "0"], "--steps: 0 must be 1 or more"),
    ("codec", ["--batch-size", "0"], "--batch-size: 0 must be 1 or more"),
    ("codec", ["--window", "0"], "--window: 0.0 must be a number above 0"),
    ("codec", ["--lr", "-1"], "--lr: -1.0 must be a number above 0"),
    ("codec", ["--max-minutes", "-1"], "--max-minutes: -1.0 must be a number above 0"),
    ("codec", ["--threads", "0"], "--threads: 0 must be 1 or more"),
    ("codec", ["--resume"], "holds no saved run to continue; leave out --resume"),
    ("diffusion", ["--channels", "0,0"], "--channels 0,0: every width must be 1 or more"),
    ("diffusion", ["--batch-size", "0"], "--batch-size: 0 must be 1 or more"),
    ("diffusion", ["--steps", "-1"], "--steps: -1 must be 1 or more"),
])
def test_training_options_are_checked_before_any_work(tmp_path, command, args, says):
    """An untrained model was written for --steps 0 or -5, and other options failed deep in torch."""
    result = run("train", command, "--data", tmp_path / "no_data_needed", "-o", tmp_path / "run", *args)
    assert result.exit_code == 2 and says in one_error_line(result), result.output
    assert not (tmp_path / "run").exists()


def test_a_control_group_named_twice_is_one_group():
    from composer.rendering.options import RenderOptions

    assert RenderOptions.from_cli(controls="form,form,harmony").control_groups == ("form", "harmony")


def test_an_originality_index_of_a_missing_dataset_is_refused_before_any_indexing(tmp_path):
    result = run("originality", "index", tmp_path / "nowhere", "-o", tmp_path / "index")
    assert result.exit_code == 2 and "nowhere: no such dataset folder" in one_error_line(result)
