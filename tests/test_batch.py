"""`composer batch`: row parsing, bad rows by line, crash-safe resume, local and Ray workers agree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile

from composer.batch.manifest import MANIFEST_NAME, PARTIAL_DIR
from composer.batch.rows import Row, read_rows
from composer.batch.runner import run_batch
from composer.errors import InputError
from composer.rendering import RenderOptions

ROOT = Path(__file__).resolve().parents[1]


def fast_options() -> RenderOptions:
    return RenderOptions(steps=2, evaluate=False, overlap_seconds=0.05)


def write_jsonl(path: Path, rows: list[dict | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def manifest(out_dir: Path) -> dict:
    return json.loads((out_dir / MANIFEST_NAME).read_text())


def song_dirs(out_dir: Path) -> list[str]:
    return sorted(p.name for p in out_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


# --- parsing --------------------------------------------------------------------------
def test_csv_rows_merge_metadata_and_number_lines(tmp_path):
    (tmp_path / "lyrics").mkdir()
    (tmp_path / "lyrics" / "trains.txt").write_text("[verse]\nthe night train calls\n")
    prompts = tmp_path / "songs.csv"
    prompts.write_text(
        "prompt,genre,key,tempo,duration,seed,name,lyrics_file\n"
        'wistful song about trains,folk,D minor,96,60,,trains,lyrics/trains.txt\n'
        "\n"
        '"a prompt over\ntwo lines",rock,,,30,7,,\n'
    )
    rows, errors = read_rows(prompts, seed_base=100)
    assert errors == []
    first, second = rows
    assert (first.line, first.name, first.seed, first.duration) == (2, "trains", 102, 60.0)
    assert first.prompt == 'wistful song about trains genre=folk key="D minor" tempo=96'
    assert first.lyrics == "[verse]\nthe night train calls\n"
    # a quoted cell spanning lines: numbered by the line the row starts on
    assert (second.line, second.name, second.seed) == (4, "row0004", 7)
    assert second.prompt == "a prompt over\ntwo lines genre=rock" and second.lyrics is None
    # a quote that never closes would swallow the rest of the file into one cell: an error naming its line
    prompts.write_text('prompt,duration\npop,10\n"rock,20\nfolk,30\n')
    with pytest.raises(InputError, match="line 3: a quote opened on line 3 never closes"):
        read_rows(prompts)


def test_a_rows_vocals_field_and_option_like_fields(tmp_path):
    """`vocals` is a row's field (true/false, yes/no, 1/0); `no_vocals` or `steps` in a row are
    refused by name with what to write instead (they were kept as tags, and the song was sung)."""
    prompts = write_jsonl(tmp_path / "p.jsonl", [
        {"prompt": "calm piano", "vocals": False},
        {"prompt": "calm piano", "vocals": "yes"},
        {"prompt": "calm piano", "no_vocals": True},
        {"prompt": "calm piano", "steps": 20},
        {"prompt": "calm piano", "vocals": "maybe"},
        {"prompt": "calm piano"},
    ])
    rows, errors = read_rows(prompts)
    assert [(row.line, row.vocals) for row in rows] == [(1, False), (2, True), (6, None)]
    assert [(e.line, e.reason) for e in errors] == [
        (3, "no_vocals: not a row's field (write vocals: false)"),
        (4, "steps: not a row's field (--steps is the batch's option, for every row)"),
        (5, "vocals: expected true or false, got 'maybe'")]
    assert "vocals" not in rows[0].prompt
    settings = "{}"
    assert rows[0].fingerprint(settings) != Row(**{**rows[0].__dict__, "vocals": None}).fingerprint(settings)


def test_a_row_without_vocals_is_not_sung_and_its_song_says_its_row(tmp_path, tiny_models):
    codec_dir, model_dir = tiny_models
    prompts = write_jsonl(tmp_path / "p.jsonl", [
        {"prompt": "folk song about trains", "genre": "folk", "duration": 4, "vocals": False, "name": "quiet"}])
    out = tmp_path / "out"
    result = run_batch(prompts, out, codec=codec_dir, model=model_dir, options=fast_options(), progress=False)
    assert result.exit_code == 0
    assert not (out / "quiet" / "vocals.wav").exists()
    report = json.loads((out / "quiet" / "report.json").read_text())
    assert report["batch"]["row"] == {"prompt": "folk song about trains genre=folk", "seed": 1, "duration": 4.0,
                                      "lyrics_given": False, "vocals": False}


@pytest.mark.parametrize("name, reason", [
    ("../escape", "'..'"), ("a/b", "separator"), ("a\\b", "separator"), ("  ", "empty"),
    (".partial", "starts with '.'"), (7, "expected text"),
])
def test_bad_names_are_reported_by_line(tmp_path, name, reason):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"genre": "folk"}, {"genre": "folk", "name": name}])
    rows, errors = read_rows(prompts)
    assert [r.name for r in rows] == ["row0001"]
    assert len(errors) == 1 and errors[0].line == 2 and reason in errors[0].reason


def test_duplicate_names_and_unreadable_rows(tmp_path):
    prompts = write_jsonl(tmp_path / "p.jsonl", [
        {"genre": "folk", "name": "Song"}, '{"genre": "folk"', "", {"mood": "sad", "name": "song"},
        {"genre": "pop", "lyrics_file": "missing.txt"}, ["not", "an", "object"], {"genre": {"nested": 1}},
        {"name": "empty"},
    ])
    rows, errors = read_rows(prompts)
    assert [r.name for r in rows] == ["Song"]
    reasons = {e.line: e.reason for e in errors}
    assert set(reasons) == {2, 4, 5, 6, 7, 8}
    assert "malformed JSON" in reasons[2]
    assert "already used by line 1" in reasons[4]
    assert "missing.txt: no such file" in reasons[5]
    assert "JSON object" in reasons[6] and "genre" in reasons[7] and "no prompt" in reasons[8]


@pytest.mark.parametrize("content", [None, "", "[1, 2]", b"\x00\xff\xfe binary"])
def test_an_unreadable_prompts_file_makes_nothing(tmp_path, content):
    prompts = tmp_path / "p.jsonl"
    if content is not None:
        prompts.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(InputError, match="p.jsonl"):
        run_batch(prompts, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_first_line_starting_with_a_bracket_is_one_bad_row_not_an_array_file(tmp_path):
    # only a file that parses whole as a JSON array is refused whole ("[1, 2]" above)
    prompts = write_jsonl(tmp_path / "p.jsonl", ["[1, 2, 3]", {"genre": "pop"}, {"genre": "folk"}])
    rows, errors = read_rows(prompts)
    assert [r.line for r in rows] == [2, 3]
    assert [(e.line, e.reason) for e in errors] == [(1, "expected a JSON object, got list")]
    prompts.write_text('[\n {"genre": "pop"},\n {"genre": "folk"}\n]\n')
    with pytest.raises(InputError, match="p.jsonl: a JSON array; expected JSONL"):
        read_rows(prompts)


def test_empty_lyrics_are_bad_input_and_left_out_lyrics_are_written(tmp_path):
    prompts = write_jsonl(tmp_path / "p.jsonl", [
        {"genre": "pop", "lyrics": ""}, {"genre": "pop", "lyrics": " \n\t"}, {"genre": "pop", "lyrics_file": ""},
        {"genre": "pop"}, {"genre": "pop", "lyrics": None},
    ])
    rows, errors = read_rows(prompts)
    assert [(r.line, r.lyrics) for r in rows] == [(4, None), (5, None)]  # None: the writer's lyrics
    reasons = {e.line: e.reason for e in errors}
    assert set(reasons) == {1, 2, 3}
    assert reasons[1].startswith("lyrics: empty") and reasons[2].startswith("lyrics: empty")
    assert reasons[3].startswith("lyrics_file:")
    # an empty CSV cell is a column this row leaves out, not empty lyrics
    prompts = tmp_path / "p.csv"
    prompts.write_text("prompt,lyrics\npop,\nrock,[verse]\n")
    rows, errors = read_rows(prompts)
    assert errors == [] and [r.lyrics for r in rows] == [None, "[verse]"]


@pytest.mark.parametrize("where", ["../secret.txt", "ABSOLUTE", "sub/../../secret.txt"])
def test_lyrics_file_outside_the_batch_folder_is_refused_unread(tmp_path, where):
    batch_dir = tmp_path / "batch"
    batch_dir.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("[verse]\nthe password is swordfish\n")
    (batch_dir / "ok.txt").write_text("[verse]\nrolling down the line\n")
    name = str(secret) if where == "ABSOLUTE" else where
    prompts = write_jsonl(batch_dir / "p.jsonl", [{"genre": "pop", "lyrics_file": "ok.txt"},
                                                  {"genre": "pop", "lyrics_file": name}])
    rows, errors = read_rows(prompts)
    assert [r.lyrics for r in rows] == ["[verse]\nrolling down the line\n"]
    assert len(errors) == 1 and errors[0].line == 2 and "outside the batch file's folder" in errors[0].reason
    assert "swordfish" not in errors[0].reason


def test_rows_that_break_path_and_text_handling_fail_alone_and_lines_stay_right(tmp_path):
    """A NUL byte or a 300-character lyrics_file, a name over 200 bytes, two names that one file
    system would merge (NFC and NFD), and U+2028 inside a JSON string (str.splitlines splits there):
    each fails its own row by line, or is read whole, and the other rows still come."""
    cafe_nfc, cafe_nfd = "caf\u00e9", "cafe\u0301"
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"genre": "pop", "lyrics": "[verse]\nline one\u2028still line one"},
        {"genre": "pop", "lyrics_file": "a\u0000b.txt"},
        {"genre": "pop", "lyrics_file": "x" * 300 + ".txt"},
        {"genre": "pop", "name": "\u6b4c" * 84},
        {"genre": "pop", "name": cafe_nfc},
        {"genre": "pop", "name": cafe_nfd},
        {"genre": "folk"},
    ]) + "\n", encoding="utf-8")
    rows, errors = read_rows(prompts)
    assert [(r.line, r.name) for r in rows] == [(1, "row0001"), (5, cafe_nfc), (7, "row0007")]
    assert "\u2028" in rows[0].lyrics
    reasons = {e.line: e.reason for e in errors}
    assert set(reasons) == {2, 3, 4, 6}
    assert reasons[2].startswith("lyrics_file") and reasons[3].startswith("lyrics") and "too long" in reasons[3]
    assert "too long" in reasons[4] and "already used by line 5" in reasons[6]


def test_a_malformed_csv_row_fails_alone(tmp_path):
    prompts = tmp_path / "p.csv"
    prompts.write_text('prompt,duration\npop,10\n"genre=folk" tempo=90,20\nrock,30\n')
    rows, errors = read_rows(prompts)
    assert [(r.line, r.prompt) for r in rows] == [(2, "pop"), (4, "rock")]
    assert [(e.line, e.reason.split(":")[0]) for e in errors] == [(3, "malformed CSV")]


def test_a_prompts_file_that_is_not_utf8_names_the_line(tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_bytes(b'{"genre": "pop"}\n{"genre": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"p.jsonl: not UTF-8 text \(line 2"):
        read_rows(prompts)


# --- rendering ------------------------------------------------------------------------
def test_six_rows_two_bad_give_four_songs_and_two_named_errors(tmp_path, tiny_models):
    codec_dir, model_dir = tiny_models
    prompts = write_jsonl(tmp_path / "p.jsonl", [
        {"genre": "folk", "mood": "sad", "duration": 6, "name": "first"},
        {"prompt": "genre=rock tempo=0", "duration": 6},
        {"genre": "pop", "key": "E minor", "duration": 6, "seed": 11},
        {"genre": "folk", "duration": 6, "name": "../outside"},
        {"genre": "rock", "tempo": 120, "duration": 6, "lyrics": "[verse]\nrolling down the line\n"},
        {"genre": "folk", "meter": "3/4", "duration": 6},
    ])
    messages: list[str] = []
    out = tmp_path / "out"
    result = run_batch(prompts, out, codec=codec_dir, model=model_dir, options=fast_options(), progress=False,
                       report=messages.append)
    assert result.exit_code == 2
    assert song_dirs(out) == ["first", "row0003", "row0005", "row0006"]
    for name in song_dirs(out):
        assert (out / name / "report.json").is_file() and (out / name / "song.wav").is_file()
    assert len(messages) == 2
    assert messages[0].startswith("line 2 (row0002): ") and "tempo 0" in messages[0]
    assert messages[1].startswith("line 4: ") and "'..'" in messages[1]
    states = {row["line"]: (row["state"], row["error_kind"]) for row in manifest(out)["rows"]}
    assert states == {1: ("done", None), 2: ("failed", "input"), 3: ("done", None), 4: ("failed", "input"),
                      5: ("done", None), 6: ("done", None)}
    assert "tempo 0" in result.table() and not (out / PARTIAL_DIR).exists()
    row_two = next(line for line in result.table().splitlines() if line.strip().startswith("2 "))
    assert "bad input" in row_two and " failed " not in row_two  # as the summary line counts it

    # a rerun renders nothing again; an edited row renders again under its name
    before = (out / "first" / "song.wav").stat().st_mtime_ns
    again = run_batch(prompts, out, codec=codec_dir, model=model_dir, options=fast_options(), progress=False,
                      report=messages.append)
    assert again.exit_code == 2 and all(e.attempts <= 1 for e in again.entries)
    assert (out / "first" / "song.wav").stat().st_mtime_ns == before
    write_jsonl(prompts, [{"genre": "folk", "mood": "sad", "duration": 6, "name": "first", "seed": 3}])
    edited = run_batch(prompts, out, codec=codec_dir, model=model_dir, options=fast_options(), progress=False)
    assert edited.exit_code == 0 and edited.entries[0].attempts == 1
    assert (out / "first" / "song.wav").stat().st_mtime_ns != before


def test_bad_rows_fail_alone_and_the_manifest_counts_them_as_the_summary_does(tmp_path, tiny_models):
    """Empty lyrics and a first line starting with `[` are bad input of their own rows; the
    manifest counts bad input apart from failed renders, as the summary line does."""
    codec_dir, model_dir = tiny_models
    prompts = write_jsonl(tmp_path / "p.jsonl", [
        "[1, 2, 3]",
        {"genre": "folk", "duration": 6, "lyrics": "", "name": "emptylyr"},
        {"genre": "folk", "duration": 6, "name": "written"},
    ])
    messages: list[str] = []
    out = tmp_path / "out"
    result = run_batch(prompts, out, codec=codec_dir, model=model_dir, options=fast_options(), progress=False,
                       report=messages.append)
    assert result.exit_code == 2 and song_dirs(out) == ["written"]
    assert len(messages) == 2
    assert messages[0].startswith("line 1: ") and "JSON object" in messages[0]
    assert messages[1].startswith("line 2 (emptylyr): lyrics: empty")
    counts = result.counts()
    assert "1 of 3 songs done, 2 bad input, 0 failed to render" in result.summary()
    assert manifest(out)["counts"] == {"pending": 0, "running": 0, "done": counts["done"],
                                       "failed": counts["crashed"], "bad_input": counts["bad_input"]}


def test_a_row_never_replaces_what_the_user_put_under_its_name(tmp_path, tiny_models):
    """A folder or file of the user's at a row's name (the prompts file itself, too) fails that
    row, untouched; the other rows render."""
    codec_dir, model_dir = tiny_models
    out = tmp_path / "out"
    (out / "mydir").mkdir(parents=True)
    (out / "mydir" / "important.txt").write_text("mine")
    (out / "notes").write_text("also mine")
    prompts = write_jsonl(out / "p.jsonl", [
        {"genre": "folk", "duration": 6, "name": "mydir"},
        {"genre": "folk", "duration": 6, "name": "notes"},
        {"genre": "folk", "duration": 6, "name": "p.jsonl"},
        {"genre": "folk", "duration": 6, "name": "fresh"},
    ])
    text = prompts.read_text()
    messages: list[str] = []
    result = run_batch(prompts, out, codec=codec_dir, model=model_dir, options=fast_options(), progress=False,
                       report=messages.append)
    assert result.exit_code == 2 and len(messages) == 3
    assert all("already exists and is not a song this batch rendered" in m for m in messages)
    assert (out / "mydir" / "important.txt").read_text() == "mine" and (out / "notes").read_text() == "also mine"
    assert prompts.read_text() == text and (out / "fresh" / "report.json").is_file()
    # a rerun refuses them again (a failed row's name does not make the folder the batch's)
    again = run_batch(prompts, out, codec=codec_dir, model=model_dir, options=fast_options(), progress=False,
                      report=messages.append)
    assert again.exit_code == 2 and (out / "mydir" / "important.txt").read_text() == "mine"


def test_a_crashed_render_fails_its_row_only_and_a_rerun_redoes_it(tmp_path, tiny_models, monkeypatch):
    import composer.rendering.renderer

    codec_dir, model_dir = tiny_models
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"genre": "folk", "duration": 6, "name": name}
                                                 for name in ("fine", "crashes")])
    real_render = composer.rendering.renderer.render

    def flaky_render(plan, **kwargs):
        if kwargs["seed"] == 2:
            raise RuntimeError("out of memory")
        return real_render(plan, **kwargs)

    monkeypatch.setattr(composer.rendering.renderer, "render", flaky_render)
    out = tmp_path / "out"
    result = run_batch(prompts, out, codec=codec_dir, model=model_dir, options=fast_options(), progress=False)
    assert result.exit_code == 1 and song_dirs(out) == ["fine"]
    crashed = result.entries[1]
    assert (crashed.state, crashed.error_kind, crashed.error) == ("failed", "render", "RuntimeError: out of memory")
    assert manifest(out)["counts"] == {"pending": 0, "running": 0, "done": 1, "failed": 1, "bad_input": 0}

    monkeypatch.setattr(composer.rendering.renderer, "render", real_render)
    again = run_batch(prompts, out, codec=codec_dir, model=model_dir, options=fast_options(), progress=False)
    assert again.exit_code == 0 and song_dirs(out) == ["crashes", "fine"]
    assert [e.attempts for e in again.entries] == [1, 2]


def test_a_changed_row_interrupted_while_it_re_renders_is_rendered_again(tmp_path, tiny_models, monkeypatch):
    """The old song stays in place while its changed row re-renders; a run stopped then (its entry
    "running" with the new fingerprint) must not take the old song for the new one. And a song
    whose manifest entry is lost is still the batch's: skipped when its row is unchanged."""
    import composer.rendering.renderer

    codec_dir, model_dir = tiny_models
    out = tmp_path / "out"

    def batch(tempo: int):
        prompts = write_jsonl(tmp_path / "p.jsonl", [{"genre": "folk", "tempo": tempo, "duration": 6, "name": "song"},
                                                     {"genre": "rock", "duration": 6, "name": "other"}])
        return run_batch(prompts, out, codec=codec_dir, model=model_dir, options=fast_options(), progress=False)

    def tempo_of_song() -> float:
        return json.loads((out / "song" / "plan.json").read_text())["tempo_bpm"]

    assert batch(90).exit_code == 0 and tempo_of_song() == 90
    real_render = composer.rendering.renderer.render

    def interrupted(plan, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(composer.rendering.renderer, "render", interrupted)
    with pytest.raises(KeyboardInterrupt):
        batch(120)
    # the song in flight is pending again, not "running": nothing runs once the batch has stopped
    assert [row["state"] for row in manifest(out)["rows"]] == ["pending", "done"] and tempo_of_song() == 90
    monkeypatch.setattr(composer.rendering.renderer, "render", real_render)
    assert batch(120).exit_code == 0 and tempo_of_song() == 120
    # the song it replaced is kept
    assert json.loads((out / ".superseded" / "song" / "plan.json").read_text())["tempo_bpm"] == 90

    (out / MANIFEST_NAME).unlink()  # lost: the folders' own records still say which rows they hold
    before = {name: (out / name / "song.wav").stat().st_mtime_ns for name in ("song", "other")}
    again = batch(120)
    assert again.exit_code == 0 and [e.state for e in again.entries] == ["done", "done"]
    assert {name: (out / name / "song.wav").stat().st_mtime_ns for name in ("song", "other")} == before
    assert batch(100).exit_code == 0 and tempo_of_song() == 100  # and changed, it is replaced, not refused
    assert json.loads((out / ".superseded" / "song.2" / "plan.json").read_text())["tempo_bpm"] == 120


def test_a_line_added_above_unnamed_rows_keeps_the_songs_they_had(tmp_path, tiny_models):
    """An unnamed, unseeded row takes its name and seed from its line: a line added above it
    makes it another song in another folder, and the song that folder held is kept."""
    codec_dir, model_dir = tiny_models
    rows = [{"prompt": "folk song", "duration": 4}, {"prompt": "rock song", "duration": 4}]
    prompts = write_jsonl(tmp_path / "rows.jsonl", rows)
    out = tmp_path / "out"
    first = run_batch(prompts, out, codec=codec_dir, model=model_dir, options=fast_options(), progress=False)
    assert first.exit_code == 0 and song_dirs(out) == ["row0001", "row0002"]
    made = {name: (out / name / "song.wav").read_bytes() for name in ("row0001", "row0002")}
    write_jsonl(prompts, [{"prompt": "a new first song", "duration": 4}, *rows])
    again = run_batch(prompts, out, codec=codec_dir, model=model_dir, options=fast_options(), progress=False)
    assert again.exit_code == 0 and song_dirs(out) == ["row0001", "row0002", "row0003"]
    kept = {path.name: (path / "song.wav").read_bytes() for path in (out / ".superseded").iterdir()}
    assert kept == made  # both earlier songs, whole


def _batch_command(prompts: Path, out: Path, tiny_models) -> list[str]:
    codec_dir, model_dir = tiny_models
    return [sys.executable, "-m", "composer", "batch", str(prompts), "-o", str(out), "--workers", "1",
            "--steps", "2", "--no-evaluate", "--codec", str(codec_dir), "--model", str(model_dir)]


@pytest.mark.slow
def test_batch_killed_part_way_resumes_with_every_song_once(tmp_path, tiny_models):
    prompts = write_jsonl(tmp_path / "p.jsonl", [
        {"genre": genre, "mood": mood, "duration": 6}
        for genre, mood in [("folk", "sad"), ("rock", "dark"), ("pop", "happy"), ("folk", "calm"),
                            ("rock", "angry"), ("pop", "dreamy")]
    ])
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    first = subprocess.Popen(_batch_command(prompts, out, tiny_models), cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    done = 0
    while done == 0:
        assert first.poll() is None, first.stderr.read().decode()
        assert time.monotonic() < deadline, "no song finished in time"
        time.sleep(0.05)
        if (out / MANIFEST_NAME).is_file():
            done = sum(row["state"] == "done" for row in manifest(out)["rows"])
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    first.stderr.close()
    killed_at = manifest(out)["rows"]
    assert any(row["state"] != "done" for row in killed_at), "the batch finished before it could be killed"

    rerun = subprocess.run(_batch_command(prompts, out, tiny_models), cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    names = [f"row{line:04d}" for line in range(1, 7)]
    assert song_dirs(out) == names and not (out / PARTIAL_DIR).exists()
    assert sorted(p.name for p in out.iterdir() if not p.is_dir()) == [".lock", MANIFEST_NAME]
    rows = manifest(out)["rows"]
    assert [row["state"] for row in rows] == ["done"] * 6
    for before, after in zip(killed_at, rows):  # finished songs were not rendered again
        if before["state"] == "done":
            assert after["attempts"] == before["attempts"] == 1
    for name in names:
        assert not [p for p in (out / name).iterdir() if p.name.startswith(".")]  # no temporary files
        audio, rate = soundfile.read(out / name / "song.wav")
        assert rate == 8000 and len(audio) > 5 * rate
        assert soundfile.info(out / name / "song.flac").frames == len(audio)
        json.loads((out / name / "report.json").read_text())
        json.loads((out / name / "plan.json").read_text())


def test_orphaned_worker_exits_when_its_batch_is_killed(tmp_path):
    """A worker's watchdog: when the batch process dies (kill -9), the worker stops too."""
    parent = subprocess.Popen([sys.executable, "-c", (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import sys; from composer.processes import exit_with_parent; '"
        " 'exit_with_parent(int(sys.argv[1]))', str(os.getpid())])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n")], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    time.sleep(0.5)
    assert Path(f"/proc/{child}").exists() or sys.platform != "linux"
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    parent.stdout.close()
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        if Path(f"/proc/{child}/status").is_file() and "zombie" in Path(f"/proc/{child}/status").read_text():
            return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the worker outlived its batch")


@pytest.mark.slow
def test_ray_workers_that_never_start_fail_the_batch_in_one_line(monkeypatch):
    # a Ray worker killed as it starts (out of memory) is started again and again: the batch
    # waited for it forever (seen here once, with the machine's memory full)
    ray = pytest.importorskip("ray")
    from composer.batch.workers import _await_actors
    from composer.errors import RenderError

    class Stuck:
        exceptions = ray.exceptions

        def get(self, refs, timeout=None):
            assert timeout == 2.5
            raise ray.exceptions.GetTimeoutError("no answer")

    class Actor:
        class ready:
            @staticmethod
            def remote():
                return object()

    monkeypatch.setenv("COMPOSER_RAY_START_SECONDS", "2.5")
    with pytest.raises(RenderError, match="did not start within 2.5 s"):
        _await_actors(Stuck(), [Actor()])


def test_worker_processes_and_ray_render_the_same_bytes(tmp_path, tiny_models):
    codec_dir, model_dir = tiny_models
    prompts = write_jsonl(tmp_path / "p.jsonl", [
        {"genre": "folk", "duration": 6, "seed": 5, "name": "one"},
        {"genre": "rock", "key": "A minor", "duration": 6, "seed": 9, "name": "two"},
    ])

    def render_with(out: str, **runner) -> dict[str, bytes]:
        result = run_batch(prompts, tmp_path / out, codec=codec_dir, model=model_dir, options=fast_options(),
                           progress=False, **runner)
        assert result.exit_code == 0, result.table()
        assert song_dirs(tmp_path / out) == ["one", "two"]
        return {f"{name}/{stem}": (tmp_path / out / name / stem).read_bytes()
                for name in ("one", "two") for stem in ("song.wav", "accompaniment.wav", "vocals_dry.wav")}

    def differences(got: dict[str, bytes], want: dict[str, bytes]) -> list[str]:
        """Which files differ, and by how much (the stems say where a difference began)."""
        import io

        import numpy as np

        found = []
        for key in sorted(want):
            if got[key] != want[key]:
                a, b = (soundfile.read(io.BytesIO(x), dtype="int16")[0].astype(int).ravel() for x in (got[key], want[key]))
                n = min(len(a), len(b))
                diff = np.abs(a[:n] - b[:n])
                found.append(f"{key}: {int((diff > 0).sum())} samples differ, by up to {int(diff.max())}, "
                             f"first at {int(np.argmax(diff > 0))}, lengths {len(a)} / {len(b)}")
        return found

    here = render_with("here")
    assert differences(render_with("processes", workers=2), here) == []
    pytest.importorskip("ray")  # an optional extra: the local paths above are checked without it
    assert differences(render_with("ray", ray_address="local", workers=2), here) == []


def test_analysis_workers_end_with_a_killed_parent(tmp_path):
    """data analyze --workers N (and corpus build) pool processes stop when their parent is killed (kill -9)."""
    parent = subprocess.Popen([sys.executable, "-c", (
        "import time\n"
        "from composer.data.labelling import _mapper\n"
        "with _mapper(2, None) as mapper:\n"
        "    results = mapper(time.sleep, [60, 60])\n"
        "    time.sleep(1.0)\n"
        "    print(' '.join(str(p) for p in mapper.pool._processes), flush=True)\n"
        "    time.sleep(60)\n")], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    workers = [int(p) for p in parent.stdout.readline().split()]
    assert len(workers) == 2
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = []
        for pid in workers:
            status = Path(f"/proc/{pid}/status")
            if status.is_file() and "zombie" not in status.read_text():
                alive.append(pid)
        if not alive:
            return
        time.sleep(0.1)
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    pytest.fail(f"analysis workers {alive} outlived their parent")


def test_each_rows_planning_warnings_are_said_by_line_and_kept_in_its_report(tmp_path, tiny_models, caplog):
    """An unknown genre is played as pop: the planner says so once a process, without a line, and an
    unattended batch could not tell which songs fell back."""
    codec_dir, model_dir = tiny_models
    prompts = write_jsonl(tmp_path / "p.jsonl", [
        {"genre": "polka-trance", "duration": 4, "vocals": False},
        {"genre": "folk", "duration": 4, "vocals": False},
        {"genre": "polka-trance", "duration": 4, "vocals": False},
    ])
    out = tmp_path / "out"
    with caplog.at_level("WARNING"):
        result = run_batch(prompts, out, codec=codec_dir, model=model_dir, options=fast_options(), progress=False)
    assert result.exit_code == 0
    said = [r.getMessage() for r in caplog.records if "polka-trance" in r.getMessage()]
    assert [m.split(":")[0] for m in said] == ["line 1 (row0001)", "line 3 (row0003)"]
    for name, warned in (("row0001", True), ("row0002", False), ("row0003", True)):
        row = json.loads((out / name / "report.json").read_text())["batch"]["row"]
        assert ("polka-trance" in " ".join(row.get("warnings", []))) == warned


@pytest.mark.parametrize("address", ["zzz", "http://x", "host:port", ""])
def test_a_ray_address_that_cannot_be_one_is_refused_before_any_work(tmp_path, address):
    from composer.batch.workers import check_ray_address
    from composer.data.labelling import analyze_dataset

    prompts = write_jsonl(tmp_path / "p.jsonl", [{"genre": "folk", "duration": 4}])
    for call in (lambda: run_batch(prompts, tmp_path / "out", ray_address=address, progress=False),
                 lambda: analyze_dataset(tmp_path, ray_address=address, progress=False)):
        with pytest.raises(InputError, match="--ray .*give 'local'"):
            call()
    assert not (tmp_path / "out").exists()
    for fine in ("local", "auto", "10.0.0.5:6379", "ray://head.example:10001", None):
        check_ray_address(fine)


def test_a_batch_sent_sigterm_stops_its_workers_and_leaves_its_songs_pending(tmp_path, tiny_models):
    """A scheduler's SIGTERM killed the batch as it stood: the manifest kept "running" rows."""
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"genre": "folk", "duration": 30} for _ in range(4)])
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    command = [part if part != "1" else "2" for part in _batch_command(prompts, out, tiny_models)]  # --workers 2
    batch = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not ((out / MANIFEST_NAME).is_file() and any(r["state"] == "running" for r in manifest(out)["rows"])):
        assert batch.poll() is None, batch.stderr.read().decode()
        assert time.monotonic() < deadline, "no song started in time"
        time.sleep(0.05)
    batch.send_signal(signal.SIGTERM)
    assert batch.wait(timeout=120) == 130
    batch.stderr.close()
    states = [row["state"] for row in manifest(out)["rows"]]
    assert "running" not in states and "pending" in states
