"""Render folders: a song is never half replaced, --overwrite, the lock, what a kill leaves."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from composer.cli import main
from composer.errors import InputError, RenderError
from composer.rendering import folder
from composer.rendering.folder import check_output


def _render(tiny_models, out, *extra):
    codec, model = tiny_models
    args = ["render", "folk, 120 bpm", "--duration", "8", "--steps", "2", "--no-evaluate", "--no-vocals",
            "--codec", str(codec), "--model", str(model), "-o", str(out), *map(str, extra)]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _snapshot(path):
    return {p.name: p.read_bytes() for p in path.iterdir()}


def test_an_existing_song_needs_overwrite_and_keeps_the_users_files(tmp_path, tiny_models):
    out = tmp_path / "song"
    assert _render(tiny_models, out, "--seed", 1).exit_code == 0
    before = _snapshot(out)
    # unsung (--no-vocals), the writer's words are still timed at their notes, for a singer to sing to
    assert "vocals.wav" not in before and b"<00:" in before["lyrics.lrc"] and "lyrics.json" in before
    result = _render(tiny_models, out, "--seed", 2)
    assert result.exit_code == 2 and "already holds a song" in result.output and "--overwrite" in result.output
    assert _snapshot(out) == before
    (out / "notes.txt").write_text("my notes")
    (out / "lyrics.lrc").write_text("[00:01.00]stale lyrics of another song\n")
    (out / "evaluation.png").write_bytes(b"the old song's picture")  # `composer evaluate` drew it
    assert _render(tiny_models, out, "--seed", 2, "--overwrite").exit_code == 0
    after = _snapshot(out)
    assert after["song.wav"] != before["song.wav"]
    assert after["notes.txt"] == b"my notes"
    assert b"stale lyrics" not in after.get("lyrics.lrc", b"")  # a render file is the new song's or gone
    assert "evaluation.png" not in after  # the old song's picture went with it (it was kept as the user's)
    assert [p.name for p in tmp_path.iterdir()] == ["song"]  # no temporary folder or lock left beside it


def test_an_output_that_is_a_file_or_a_folder_of_other_files_is_refused_up_front(tmp_path, tiny_models):
    target = tmp_path / "taken"
    target.write_text("x")
    result = _render(tiny_models, target)
    assert result.exit_code == 2 and "is a file" in result.output
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"\xff\xd8")
    result = _render(tiny_models, other, "--overwrite")
    assert result.exit_code == 2 and "holds other files" in result.output
    assert (other / "cat.jpg").read_bytes() == b"\xff\xd8"


def test_a_failed_write_leaves_the_previous_song_whole(tmp_path, tiny_models, monkeypatch):
    out = tmp_path / "song"
    assert _render(tiny_models, out, "--seed", 1).exit_code == 0
    before = _snapshot(out)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(folder, "write_report", full_disk)
    result = _render(tiny_models, out, "--seed", 2, "--overwrite")
    assert result.exit_code == 1
    assert "could not be written (No space left on device)" in result.output
    assert _snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["song"]


def test_two_renders_into_one_folder_are_refused(tmp_path):
    out = tmp_path / "song"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from composer.rendering.folder import claim_output
        with claim_output({str(out)!r}):
            print("held", flush=True)
            time.sleep(30)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match="another render is writing there"):
            with folder.claim_output(out):
                pass
    finally:
        holder.kill()
        holder.wait()
    with folder.claim_output(out):  # the kernel dropped the killed render's lock
        pass


def test_a_lock_removed_by_its_holder_as_it_is_taken_is_taken_again(tmp_path, monkeypatch):
    """The holder of `.song.lock` removes it when done; a render that had opened the file just
    before, and locks it after, must not hold that removed file (a third could then lock a new
    one beside it): it locks the file the name leads to now."""
    import fcntl

    out, lock = tmp_path / "song", tmp_path / ".song.lock"
    real, calls = fcntl.flock, []

    def flock(handle, flags):
        calls.append(flags)
        if len(calls) == 1:
            lock.unlink()  # the holder finishes between our open and our lock
        return real(handle, flags)

    monkeypatch.setattr(fcntl, "flock", flock)
    with folder.lock_output(out):
        assert len(calls) == 2 and lock.exists()
        monkeypatch.setattr(fcntl, "flock", real)
        with open(lock) as other, pytest.raises(BlockingIOError):  # the file there is the one held
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert not lock.exists()


def test_what_a_killed_render_left_is_cleared_or_restored(tmp_path):
    out = tmp_path / "song"
    partial = tmp_path / ".song.partial-99999"
    partial.mkdir()
    (partial / "song.wav").write_bytes(b"half")
    old = tmp_path / ".song.old-99999"  # killed between moving the old song away and the new one in
    old.mkdir()
    (old / "song.wav").write_bytes(b"the previous song")
    with folder.claim_output(out, overwrite=True):
        assert not partial.exists()
        assert (out / "song.wav").read_bytes() == b"the previous song"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song"]


def test_the_api_save_replaces_and_reports_a_full_disk(tmp_path, monkeypatch):
    class Fake:
        pass

    def boom(render, out_dir, *, formats, lead_sheet=True):
        (out_dir / "song.wav").write_bytes(b"x")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(folder, "_write_render", boom)
    with pytest.raises(RenderError, match="nothing was changed there"):
        folder.save_render(Fake(), tmp_path / "song")
    assert list(tmp_path.iterdir()) == []


def test_plan_output_that_is_a_folder_is_bad_input(tmp_path):
    result = CliRunner().invoke(main, ["plan", "folk", "--duration", "20", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "is a folder" in result.output


def test_a_failed_swap_puts_the_old_song_and_the_users_files_back(tmp_path, tiny_models, monkeypatch):
    out = tmp_path / "song"
    assert _render(tiny_models, out, "--seed", 1).exit_code == 0
    (out / "notes.txt").write_text("my notes")
    before = _snapshot(out)
    real_replace = os.replace
    calls = []

    def flaky(src, dst):
        calls.append((str(src), str(dst)))
        if str(dst) == str(out) and ".partial-" in str(src):  # the new song cannot move in
            raise OSError(errno.EACCES, "Permission denied")
        return real_replace(src, dst)

    monkeypatch.setattr(folder.os, "replace", flaky)
    result = _render(tiny_models, out, "--seed", 2, "--overwrite")
    assert result.exit_code == 1 and "nothing was changed there" in result.output
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song"]


def test_recovery_gives_the_users_files_from_a_replaced_folder_to_the_new_one(tmp_path):
    out = tmp_path / "song"
    out.mkdir()
    (out / "song.wav").write_bytes(b"new song")
    old = tmp_path / ".song.old-4242"
    old.mkdir()
    (old / "song.wav").write_bytes(b"old song")
    (old / "notes.txt").write_text("mine")
    with folder.claim_output(out, overwrite=True):
        pass
    assert (out / "song.wav").read_bytes() == b"new song"
    assert (out / "notes.txt").read_text() == "mine"
    assert not old.exists()


@pytest.mark.parametrize("target", [".", "..", "inner/.."])
def test_the_current_folder_or_one_above_is_refused_before_any_work(tmp_path, monkeypatch, target):
    # a render is swapped in by renaming folders, which cannot be done to the folder one is in:
    # `-o .` used to render the whole song and then fail
    (tmp_path / "here" / "inner").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "here")
    with pytest.raises(InputError, match="the current folder or one above it"):
        check_output(target)
    assert check_output("song").name == "song"


def test_lyrics_saved_as_utf16_are_read_and_other_encodings_say_what_to_do(tmp_path):
    from composer.data.inputs import read_text_file

    words = "[Verse]\nCafé by the river, naïve and slow\n"
    for encoding in ("utf-16", "utf-16-be", "utf-16-le"):
        path = tmp_path / f"{encoding}.txt"
        data = words.encode(encoding)
        path.write_bytes(data if encoding == "utf-16" else (b"\xfe\xff" if encoding.endswith("be") else b"\xff\xfe")
                         + data)
        assert read_text_file(path, "lyrics") == words
    latin = tmp_path / "latin.txt"
    latin.write_bytes(words.encode("latin-1"))
    with pytest.raises(InputError, match=r"latin.txt: not UTF-8 text \(line 2, byte \d+\); save it as UTF-8"):
        read_text_file(latin, "lyrics")


def test_a_read_only_render_folder_is_still_measured(tmp_path, tiny_models, monkeypatch, caplog):
    from composer.evaluate import folders

    out = tmp_path / "song"
    assert _render(tiny_models, out).exit_code == 0

    def cannot_write(path, *args):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(folders, "_plot", cannot_write)
    with caplog.at_level("WARNING"):
        metrics = folders.evaluate_dir(out)
    assert "tempo" in metrics and "could not be written (Permission denied)" in caplog.text


def test_a_truncated_song_is_said_not_scored(tmp_path, tiny_models):
    out = tmp_path / "song"
    assert _render(tiny_models, out).exit_code == 0
    data = (out / "song.wav").read_bytes()
    (out / "song.wav").write_bytes(data[:500])
    result = CliRunner().invoke(main, ["evaluate", str(out)])
    assert result.exit_code == 2 and "song.wav: truncated" in result.output, result.output


@pytest.mark.parametrize("edit, says", [
    (lambda report: [], "a JSON list, not an object"),
    (lambda report: {**report, "options": 5}, "its 'options' is a int"),
    (lambda report: {**report, "seed": "abc"}, "its render settings cannot be read"),
    (lambda report: {**report, "steps": -3}, "--steps: -3 is outside"),
    (lambda report: {**report, "mode": {"name": "restyle", "strength": "abc"}}, "could not convert"),
    (lambda report: {**report, "mode": {"name": "restyle", "strength": 1.5}}, "strength 1.5 is outside 0..1"),
])
def test_repaint_of_a_hand_edited_report_is_one_line_naming_it(tmp_path, tiny_models, edit, says):
    import json

    out = tmp_path / "song"
    assert _render(tiny_models, out).exit_code == 0
    report = json.loads((out / "report.json").read_text())
    (out / "report.json").write_text(json.dumps(edit(report)))
    before = (out / "song.wav").read_bytes()
    codec, model = tiny_models
    result = CliRunner().invoke(main, ["repaint", str(out), "--section", json.loads(
        (out / "plan.json").read_text())["sections"][0]["name"], "--codec", str(codec), "--model", str(model)])
    assert result.exit_code == 2 and "report.json" in result.output and says in result.output, result.output
    assert (out / "song.wav").read_bytes() == before


def test_an_output_where_no_file_can_be_made_names_it_not_a_temporary_file():
    result = CliRunner().invoke(main, ["plan", "folk", "-o", "/proc/foo.json"])
    assert result.exit_code == 2 and "/proc/foo.json: cannot be written there" in result.output, result.output
    assert ".foo.json." not in result.output


def test_a_model_that_is_not_a_checkpoint_is_named_once_and_an_empty_allowed_licence_is_refused(tmp_path):
    (tmp_path / "afile").write_text("x")
    result = CliRunner().invoke(main, ["render", "folk", "--model", str(tmp_path / "afile"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and result.output.count(str(tmp_path / "afile")) == 1, result.output
    result = CliRunner().invoke(main, ["data", "check", str(tmp_path), "--allow-licence", ""])
    assert result.exit_code == 2 and "--allow-licence: an empty name" in result.output, result.output


def test_a_plan_files_unknown_style_is_said(tmp_path, caplog):
    import json

    import structure
    from composer.data.inputs import read_plan_file

    data = json.loads(structure.plan("folk", duration=20, seed=1).to_json())
    (tmp_path / "ok.json").write_text(json.dumps(data))
    (tmp_path / "odd.json").write_text(json.dumps({**data, "style": "zzz"}))
    with caplog.at_level("WARNING", logger="composer.data.inputs"):
        read_plan_file(tmp_path / "ok.json")
        assert "style" not in caplog.text
        read_plan_file(tmp_path / "odd.json")
    assert "style 'zzz' is not one of the styles" in caplog.text
