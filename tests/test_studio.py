"""The studio without a browser: the plan table (structure.editing) and the Studio session."""

from __future__ import annotations

import json

import numpy as np
import pytest

from structure.editing import apply_rows, describe_error, plan_rows
from structure.planner import plan
from structure.schema import PlanError


@pytest.fixture(scope="module")
def song():
    return plan("pop song about rivers, 100 bpm", seed=3)


def _rows(song):
    return [list(r) for r in plan_rows(song)]


def test_unchanged_rows_give_the_same_plan(song):
    assert apply_rows(song, _rows(song)).to_dict() == song.to_dict()
    # numbers typed as text (what a browser table sends) are the same numbers
    typed = [[str(c) for c in row] for row in _rows(song)]
    assert apply_rows(song, typed).to_dict() == song.to_dict()


def test_new_bars_cycle_the_chords_and_repeats_follow(song):
    rows = _rows(song)
    first = next(i for i, s in enumerate(song.sections) if s.kind == "chorus")
    source = song.sections[first]
    rows[first][2] = source.bars + 4
    edited = apply_rows(song, rows)
    chorus = edited.sections[first]
    assert chorus.bars == source.bars + 4
    assert chorus.chords == [source.chords[b % source.bars] for b in range(source.bars + 4)]
    assert chorus.melody and max(n.start + n.duration for n in chorus.melody) <= chorus.bars * edited.beats_per_bar
    repeats = [s for s in edited.sections if s.repeat_of == source.name]
    assert repeats and all(r.bars == chorus.bars and r.melody == chorus.melody for r in repeats)
    others = [i for i, s in enumerate(song.sections) if s.kind not in ("chorus",) and not s.repeat_of]
    assert all(edited.sections[i] == song.sections[i] for i in others)  # the rest untouched
    assert edited.duration == pytest.approx(song.duration + 4 * len([chorus, *repeats]) * 4 * 60 / song.tempo_bpm)


def test_chords_typed_into_a_repeat_are_refused_naming_its_source(song):
    rows = _rows(song)
    index, repeat = next((i, s) for i, s in enumerate(song.sections) if s.repeat_of)
    rows[index][3] = " | ".join(["C"] * repeat.bars)
    with pytest.raises(PlanError) as error:
        apply_rows(song, rows)
    assert error.value.field == f"sections[{index}].chords" and f"edit {repeat.repeat_of}'s chords" in str(error.value)


def test_a_slash_inside_a_lyric_line_is_a_word_not_a_line_break(song):
    rows = _rows(song)
    verse = next(i for i, s in enumerate(song.sections) if s.kind == "verse" and not s.repeat_of)
    rows[verse][6] = "I love you 24/7, and/or more / the second line"
    rows[verse][2] = song.sections[verse].bars + 2  # re-sketched on the new lines
    assert apply_rows(song, rows).sections[verse].lyrics == ["I love you 24/7, and/or more", "the second line"]


def test_a_row_too_short_for_its_lyric_lines_is_refused_not_cut(song):
    # 12 lines in one bar used to keep 8 of them, silently
    rows = _rows(song)
    verse = next(i for i, s in enumerate(song.sections) if s.kind == "verse" and not s.repeat_of)
    rows[verse][6] = " / ".join(f"line number {k}" for k in range(12))
    rows[verse][2] = 1
    with pytest.raises(PlanError, match=r"bars.*1 too few for its 12 lyric lines: at least 12"):
        apply_rows(song, rows)


@pytest.mark.parametrize(("row", "column", "value", "message"), [
    (0, 2, "x", "row 1 ({name}), bars: 'x' is not a whole number"),
    (0, 2, 0, "row 1 ({name}), bars: 0 is outside 1..256"),
    (0, 2, "", "row 1 ({name}), bars: empty: give a whole number"),  # a new row's cell, drawn as 0
    (0, 4, None, "row 1 ({name}), energy: empty: give a number (0..1)"),
    (1, 3, "Am | H7", "row 2 ({name}), chords: unknown chord symbol 'H7'"),
    (1, 3, "Am | F", "row 2 ({name}), chords: 2 bars of chords for"),
    (0, 1, "polka", "row 1 ({name}), kind: unknown kind 'polka'"),
    (0, 4, 2, "row 1 ({name}), energy: 2 is outside 0..1"),
    (2, 5, "nope", "row 3 ({name}), repeat_of: 'nope' is not an earlier section"),
    (1, 0, "intro1", "row 2 (intro1), section: duplicate section name 'intro1'"),
])
def test_a_bad_cell_is_named_by_row_and_column(song, row, column, value, message):
    rows = _rows(song)
    name = rows[row][0]
    rows[row][column] = value
    with pytest.raises(PlanError) as caught:
        apply_rows(song, rows)
    assert describe_error(caught.value, rows).startswith(message.format(name=name))


def test_song_fields_key_tempo_and_meter(song):
    rows = _rows(song)
    faster = apply_rows(song, rows, tempo_bpm=song.tempo_bpm * 2)
    assert faster.sections == song.sections and faster.duration == pytest.approx(song.duration / 2)
    up = apply_rows(song, rows, key=f"{'D' if song.key.tonic != 'D' else 'E'} {song.key.mode}")
    shift = (up.key.pitch_class - song.key.pitch_class) % 12
    shift = shift - 12 if shift > 6 else shift
    assert [n.pitch for n in up.sections[1].melody] == [n.pitch + shift for n in song.sections[1].melody]
    with pytest.raises(PlanError, match="key"):
        apply_rows(song, rows, key="H major")
    waltz = apply_rows(song, rows, beats_per_bar=3)
    assert waltz.beats_per_bar == 3 and all(n.start + n.duration <= s.bars * 3 + 1e-6
                                           for s in waltz.sections for n in s.melody)


@pytest.mark.parametrize(("fields", "message"), [
    ({"tempo_bpm": 0}, "tempo (BPM): 0 is outside 30..300"),
    ({"tempo_bpm": "fast"}, "tempo (BPM): 'fast' is not a number"),
    ({"beats_per_bar": 0}, "beats per bar: 0 is outside 1..12"),
    ({"beats_per_bar": 2.5}, "beats per bar: 2.5 is outside 1..12 (a whole number)"),
    ({"key": "H major"}, "key: "),
])
def test_a_bad_song_field_is_named(song, fields, message):
    with pytest.raises(PlanError) as caught:
        apply_rows(song, _rows(song), **fields)
    assert describe_error(caught.value).startswith(message)


def test_a_new_row_gets_chords_and_a_melody(song):
    rows = _rows(song) + [["solo1", "solo", 8, "", 0.7, "", ""]]
    edited = apply_rows(song, rows)
    solo = edited.sections[-1]
    assert solo.name == "solo1" and len(solo.chords) == 8 and solo.melody


# --- the session ----------------------------------------------------------------------
def test_studio_renders_with_previews_keeps_a_history_and_stays_in_its_folder(tiny_models, tmp_path):
    from composer.errors import InputError
    from composer.rendering.options import RenderOptions
    from composer.studio import Studio

    codec_dir, model_dir = tiny_models
    studio = Studio(tmp_path / "out", codec=codec_dir, model=model_dir)
    song = studio.plan("folk song about rivers, 120 bpm", duration=12, seed=1)
    clips, progress = [], []
    entry = studio.render(song, seed=2, options=RenderOptions(steps=2), evaluate_later=True,
                          on_progress=lambda name, made, total: progress.append((made, total)),
                          on_clip=lambda preview: clips.append(list(preview.clips)))
    assert entry.originality == "pending"
    early = json.loads((studio.out / entry.folder / "report.json").read_text())
    assert "metrics" not in early and early["originality"]["verdict"] == "pending"
    assert not (studio.out / entry.folder / "lead_sheet.musicxml").exists()
    # checked and measured after the song is in the player, as `composer render` does before
    report = studio.evaluate(entry.folder)
    assert report["metrics"]["tempo"]["planned_bpm"] == 120
    assert report["originality"]["verdict"] == "not checked"  # the tiny model has no index
    assert json.loads((studio.out / entry.folder / "report.json").read_text())["metrics"] == report["metrics"]
    assert studio.history()[0].originality == "not checked"
    assert (studio.out / entry.folder / "lead_sheet.musicxml").stat().st_size > 0
    assert len(clips) == len(song.sections) and len(clips[-1]) == len(song.sections)
    assert progress[-1][0] == progress[-1][1] and all(a[0] <= b[0] for a, b in zip(progress, progress[1:]))
    assert all(studio.out in p.parents for p in clips[-1])
    folder = studio.out / entry.folder
    assert (folder / "song.wav").is_file() and entry.kind == "render"
    assert entry.duration == pytest.approx(song.duration, abs=0.05)
    names = [p.name for p in studio.downloads(entry.folder)]
    assert names[:2] == ["song.wav", "song.flac"] and "plan.json" in names and "report.json" in names

    # a new section of the same song as a new folder; the history keeps both, across a restart
    report = json.loads((folder / "report.json").read_text())
    repainted = studio.repaint(entry.folder, report["sections"][0]["name"])
    reopened = Studio(tmp_path / "out", codec=codec_dir, model=model_dir)
    assert [e.folder for e in reopened.history()] == [repainted.folder, entry.folder]
    assert not list((studio.out / ".studio" / "preview").glob("*"))  # a new studio clears old previews
    guide = studio.guide(entry.folder)
    assert guide.parent == folder and guide.stat().st_size > 0

    # nothing outside the folder; uploads are checked as the CLI checks input audio
    with pytest.raises(InputError, match="outside the studio's folder"):
        studio.inside("../elsewhere")
    with pytest.raises(InputError, match="not an audio file"):
        studio.check_upload(tmp_path / "notes.txt")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt nothing")
    with pytest.raises(InputError) as caught:
        studio.restyle(broken, "genre=jazz", options=RenderOptions(steps=2))
    assert str(caught.value).startswith("broken.wav") and str(tmp_path) not in str(caught.value)
    assert len(studio.history()) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.wav", "out"]


def test_previews_do_not_change_the_render(tiny_models):
    """on_section and on_progress only watch: the song is the same samples without them."""
    from composer.rendering.options import RenderOptions
    from composer.rendering.renderer import render

    codec_dir, model_dir = tiny_models
    song = plan("genre=rock", duration=8, seed=5, write_lyrics=False)
    options = RenderOptions(steps=2, evaluate=False)
    plain = render(song, seed=1, codec=codec_dir, model=model_dir, options=options, progress=False)
    seen = []
    watched = render(song, seed=1, codec=codec_dir, model=model_dir, options=options, progress=False,
                     on_section=lambda done: seen.append((done.name, done.start, done.end)),
                     on_progress=lambda *args: None)
    assert np.array_equal(plain.audio, watched.audio)
    assert [s[0] for s in seen] == [s.name for s in song.sections]


def test_studio_restyle_interpolate_and_loop_land_in_the_history(tiny_models, tmp_path):
    from composer.rendering.options import RenderOptions
    from composer.studio import Studio

    codec_dir, model_dir = tiny_models
    studio = Studio(tmp_path / "out", codec=codec_dir, model=model_dir)
    options = RenderOptions(steps=2, evaluate=False, vocals=False)
    song = studio.plan("rock song about engines, 130 bpm", duration=8, seed=3)
    source = studio.out / studio.render(song, seed=1, options=options).folder / "song.wav"
    upload = tmp_path / "demo.wav"  # what a user uploads: a recording of their own
    upload.write_bytes(source.read_bytes())
    styled = studio.restyle(upload, "genre=jazz", strength=0.5, options=options)
    mixes = studio.interpolate(upload, source, count=3, options=options)
    loop = studio.loop("genre=electronic", 2, options=options)
    kinds = [e.kind for e in studio.history()]
    assert kinds == ["loop", "interpolate", "interpolate", "interpolate", "restyle", "render"]
    assert styled.note == "demo.wav at strength 0.5" and len(mixes) == 3
    assert all((studio.out / e.folder / "song.wav").is_file() for e in studio.history())
    assert loop.duration == pytest.approx(2 * 4 * 60 / json.loads(
        (studio.out / loop.folder / "plan.json").read_text())["tempo_bpm"], abs=0.1)


def test_a_damaged_history_is_made_again_from_the_song_folders(tiny_models, tmp_path):
    from composer.rendering.options import RenderOptions
    from composer.studio import Studio

    codec_dir, model_dir = tiny_models
    studio = Studio(tmp_path / "out", codec=codec_dir, model=model_dir)
    options = RenderOptions(steps=2, evaluate=False, vocals=False)
    studio.render(studio.plan("rock song about engines", duration=8, seed=3), seed=1, options=options)
    source = studio.out / studio.history()[0].folder / "song.wav"
    studio.interpolate(source, source, count=2, options=options)  # songs one folder deeper (set/NN)
    studio.loop("genre=electronic", 2, options=options)
    before = [(e.folder, e.kind, e.title) for e in studio.history()]
    assert any("/" in folder for folder, _, _ in before)
    history = studio.out / "history.json"
    damaged = history.read_text() + "x"  # one stray character
    history.write_text(damaged)
    assert [(e.folder, e.kind, e.title) for e in studio.history()] == before
    studio.loop("genre=pop", 2, options=options)  # and a new song keeps the others
    after = [(e.folder, e.kind) for e in studio.history()]
    assert after[1:] == [(f, k) for f, k, _ in before], after
    assert (studio.out / "history.json.damaged").read_text() == damaged


def test_a_song_saved_but_never_measured_is_found_and_measured(tiny_models, tmp_path):
    """A studio stopped between saving a song and measuring it: the next one finds it pending and
    `build_app` measures it (`left_pending`, then `evaluate`)."""
    from composer.rendering.options import RenderOptions
    from composer.studio import Studio

    codec_dir, model_dir = tiny_models
    first = Studio(tmp_path / "out", codec=codec_dir, model=model_dir)
    options = RenderOptions(steps=2, vocals=False)
    entry = first.render(first.plan("rock song about engines", duration=8, seed=3), seed=1, options=options,
                         evaluate_later=True)
    again = Studio(tmp_path / "out", codec=codec_dir, model=model_dir)  # after a restart
    assert again.left_pending() == [entry.folder]
    again.evaluate(entry.folder)
    assert again.left_pending() == [] and again.history()[0].originality not in ("", "pending")
    assert json.loads((again.out / entry.folder / "report.json").read_text())["metrics"]


def test_two_studio_jobs_at_once_get_two_folders(tiny_models, tmp_path):
    # the folder was named before the job lock: the second of two loops of one prompt aimed at the
    # first's folder and failed with "already holds a song (pass --overwrite ...)"
    import threading

    from composer.rendering.options import RenderOptions
    from composer.studio import Studio

    codec_dir, model_dir = tiny_models
    studio = Studio(tmp_path / "out", codec=codec_dir, model=model_dir)
    options = RenderOptions(steps=2, evaluate=False, vocals=False)
    entries, errors = [], []

    def job():
        try:
            entries.append(studio.loop("genre=electronic", 1, options=options))
        except Exception as error:  # noqa: BLE001 - the test reports it
            errors.append(error)

    threads = [threading.Thread(target=job) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len({e.folder for e in entries}) == 2


def test_studio_command_refuses_a_busy_port_and_a_bad_host():
    import socket

    from click.testing import CliRunner

    from composer.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["studio", "--port", str(port), "--out", "unused"])
    assert result.exit_code == 2 and f"--port {port}: cannot listen on 127.0.0.1" in result.output
    result = CliRunner().invoke(main, ["studio", "--host", "no.such.host.invalid", "--out", "unused"])
    assert result.exit_code == 2 and "--host no.such.host.invalid" in result.output
    # an address of another machine: the host is at fault, not the port
    result = CliRunner().invoke(main, ["studio", "--host", "192.0.2.1", "--out", "unused"])
    assert result.exit_code == 2 and "--host 192.0.2.1: not an address of this machine" in result.output


def test_the_clock_rounds_once_and_an_emptied_number_field_is_named():
    from composer.errors import InputError
    from composer.studio.app import _whole
    from composer.studio.views import _clock

    assert [_clock(s) for s in (119.97, 59.94, 61.2)] == ["2:00.0", "0:59.9", "1:01.2"]
    assert _whole(4.0, "Bars") == 4
    for value, says in ((None, "Bars: give a whole number"), (2.5, "Bars: 2.5 is not a whole number")):
        with pytest.raises(InputError, match=says):
            _whole(value, "Bars")


def test_a_field_of_the_page_cannot_set_another_field():
    from composer.studio.app import _prompt
    from structure.prompt import parse_prompt

    assert _prompt("a song", {"genre": "indie rock", "mood": "calm"}) == 'a song genre="indie rock" mood=calm'
    sneaky = parse_prompt(_prompt("", {"genre": 'rock" key="E minor" tempo="70', "theme": "'90s"}))
    assert sneaky.key is None and sneaky.tempo_bpm is None  # one genre, not three fields
    assert sneaky.tags["theme"] == "'90s"
