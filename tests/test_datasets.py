"""`composer data check` and composer.data.datasets: every bad file is reported by name, good ones pass."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from composer.cli import main
from composer.data.datasets import (
    METADATA_NAME,
    MetadataRow,
    check_audio,
    check_dataset,
    is_opt_in,
    iter_accepted,
    normalise_licence,
    read_metadata,
    write_metadata,
)

RATE = 16000


def tone(seconds: float = 1.5, frequency: float = 440.0, channels: int = 1,
         level: float = 0.5) -> np.ndarray:
    """int16 `[samples, channels]`, so WAV and FLAC hold exactly the same PCM."""
    time = np.arange(int(seconds * RATE)) / RATE
    wave = level * np.sin(2 * np.pi * frequency * time)
    return np.repeat((wave * 32767).astype(np.int16)[:, None], channels, axis=1)


def write_jsonl(folder: Path, lines: list) -> None:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    (folder / METADATA_NAME).write_text(text, encoding="utf-8")


def good(name: str, **fields) -> dict:
    return {"file_name": name, "licence": "cc-by", "consent": True, **fields}


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    """One dataset with every kind of problem; metadata lines are numbered in the comments."""
    folder = tmp_path / "archive"
    (folder / "songs").mkdir(parents=True)
    sf.write(folder / "good.wav", tone(frequency=440), RATE, subtype="PCM_16")
    sf.write(folder / "songs" / "good.flac", tone(frequency=330, channels=2), RATE, subtype="PCM_16")
    sf.write(folder / "whole.flac", tone(seconds=3.0, frequency=550), RATE, subtype="PCM_16")
    data = (folder / "whole.flac").read_bytes()
    (folder / "truncated.flac").write_bytes(data[: len(data) // 2])
    (folder / "whole.flac").unlink()
    sf.write(folder / "whole.wav", tone(seconds=3.0, frequency=550), RATE, subtype="PCM_16")
    data = (folder / "whole.wav").read_bytes()
    (folder / "cut.wav").write_bytes(data[: len(data) // 2])  # its header still says 3 s
    (folder / "whole.wav").unlink()
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.wav").write_text("these are liner notes, not audio\n")
    sf.write(folder / "noconsent.wav", tone(frequency=220), RATE)
    sf.write(folder / "reserved.wav", tone(frequency=660), RATE)
    sf.write(folder / "copy.flac", tone(frequency=440), RATE, subtype="PCM_16")  # good.wav again
    sf.write(folder / "slow.wav", tone(frequency=880), RATE)
    sf.write(folder / "orphan.wav", tone(frequency=990), RATE)
    write_jsonl(folder, [
        good("good.wav", title="Trains", tempo=96, key="D minor", meter="4/4", beard="long"),  # 1
        good("songs/good.flac", consent="opt-in", licence="CC BY-SA 4.0", lyrics="la la"),  # 2
        good("truncated.flac"),  # 3
        good("empty.wav"),  # 4
        good("notes.wav"),  # 5
        {"file_name": "noconsent.wav", "licence": "cc0"},  # 6
        good("reserved.wav", licence="All Rights Reserved"),  # 7
        good("copy.flac"),  # 8
        "{not json",  # 9
        good("slow.wav", tempo=0),  # 10
        good("cut.wav"),  # 11
        good("x" * 300 + ".wav"),  # 12: a name too long for the file system
    ])
    return folder


def refused_by_file(report) -> dict[str, list]:
    found: dict[str, list] = {}
    for problem in report.refused:
        found.setdefault(problem.file, []).append(problem)
    return found


def test_every_problem_is_reported_by_name(messy: Path):
    report = check_dataset(messy)
    assert report.accepted == ["good.wav", "songs/good.flac"]
    refused = refused_by_file(report)
    assert set(refused) == {"truncated.flac", "empty.wav", "notes.wav", "noconsent.wav",
                            "reserved.wav", "copy.flac", METADATA_NAME, "slow.wav", "cut.wav", "x" * 300 + ".wav"}
    assert "truncated: the header says 3.00 s, only 1.50 s decode" in refused["cut.wav"][0].message
    assert "cannot open" in refused["x" * 300 + ".wav"][0].message
    assert "decode" in refused["truncated.flac"][0].message
    assert refused["empty.wav"][0].message == "empty file"
    assert "cannot decode" in refused["notes.wav"][0].message
    assert [(p.line, "consent" in p.message) for p in refused["noconsent.wav"]] == [(6, True)]
    assert [(p.line, "not allowed" in p.message) for p in refused["reserved.wav"]] == [(7, True)]
    assert "good.wav" in refused["copy.flac"][0].message  # same PCM although WAV vs FLAC
    assert [(p.line, "JSON" in p.message) for p in refused[METADATA_NAME]] == [(9, True)]
    assert [(p.line, "tempo 0" in p.message) for p in refused["slow.wav"]] == [(10, True)]
    assert [(w.file, "no row" in w.message) for w in report.warnings] == [("orphan.wav", True)]


def test_cli_exits_2_and_prints_one_line_per_problem(messy: Path):
    result = CliRunner().invoke(main, ["data", "check", str(messy)])
    assert result.exit_code == 2, result.output
    lines = result.stdout.strip().splitlines()
    report = check_dataset(messy)
    assert len(lines) == len(report.refused) + len(report.warnings) + 1
    for problem in report.refused + report.warnings:
        assert sum(problem.file in line and problem.message in line for line in lines) == 1
    assert "metadata.jsonl line 9" in result.stdout
    assert "slow.wav (metadata.jsonl line 10)" in result.stdout
    assert lines[-1].endswith("2 accepted, 10 refused (10 problems), 1 warnings")


def test_clean_folder_exits_0_with_ogg_mp3_and_ffmpeg_formats(tmp_path: Path):
    sf.write(tmp_path / "a.ogg", tone(frequency=440), RATE, format="OGG", subtype="VORBIS")
    sf.write(tmp_path / "b.mp3", tone(frequency=550), RATE, format="MP3", subtype="MPEG_LAYER_III")
    rows = [good("a.ogg", licence="public domain"), good("b.mp3", consent="Yes", licence="CC0")]
    if shutil.which("ffmpeg"):  # AAC in MP4: libsndfile cannot read it, ffmpeg decodes it
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=660:duration=1.5",
                        "-c:a", "aac", str(tmp_path / "c.m4a")], check=True)
        rows.append(good("c.m4a", licence="own work"))
    write_jsonl(tmp_path, rows)
    result = CliRunner().invoke(main, ["data", "check", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines() == [
        f"{tmp_path}: {len(rows)} accepted, 0 refused (0 problems), 0 warnings"]


def test_allow_licence_option_replaces_the_default(tmp_path: Path):
    sf.write(tmp_path / "a.wav", tone(), RATE)
    write_jsonl(tmp_path, [good("a.wav", licence="CC BY-NC 4.0")])
    assert CliRunner().invoke(main, ["data", "check", str(tmp_path)]).exit_code == 2
    allowed = CliRunner().invoke(main, ["data", "check", str(tmp_path), "--allow-licence", "cc-by-nc"])
    assert allowed.exit_code == 0, allowed.output


def test_missing_folder_is_one_line_exit_2(tmp_path: Path):
    result = CliRunner().invoke(main, ["data", "check", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {tmp_path / 'nowhere'}: no such dataset folder"]


def test_missing_metadata_is_refused_and_audio_is_listed(tmp_path: Path):
    sf.write(tmp_path / "a.wav", tone(), RATE)
    report = check_dataset(tmp_path)
    assert [problem.file for problem in report.refused] == [METADATA_NAME]
    assert [problem.file for problem in report.warnings] == ["a.wav"]


def test_audio_health(tmp_path: Path):
    sf.write(tmp_path / "silent.wav", np.zeros(RATE * 2, np.float32), RATE)
    sf.write(tmp_path / "quiet.wav", np.full(RATE * 2, 5e-4, np.float32), RATE, subtype="FLOAT")
    nan = tone().astype(np.float32) / 32768
    nan[100] = np.nan
    sf.write(tmp_path / "nan.wav", nan, RATE, subtype="FLOAT")
    sf.write(tmp_path / "loud.wav", np.clip(tone(level=1.0).astype(np.float32) / 16384, -1, 1), RATE)
    sf.write(tmp_path / "short.wav", tone(seconds=0.3), RATE)
    sf.write(tmp_path / "low.wav", tone(), 4000)
    assert "silent" in check_audio(tmp_path / "silent.wav").refusals[0]
    assert "silent: peak -66.0 dBFS" in check_audio(tmp_path / "quiet.wav").refusals[0]
    assert check_audio(tmp_path / "nan.wav").refusals == ["1 NaN or infinite samples"]
    loud = check_audio(tmp_path / "loud.wav")
    assert not loud.refusals and "clipping" in loud.warnings[0] and loud.digest
    assert "too short: 0.30 s" in check_audio(tmp_path / "short.wav").refusals[0]
    assert "too long" in check_audio(tmp_path / "short.wav", min_seconds=0, max_seconds=0.2).refusals[0]
    assert "below 8000 Hz" in check_audio(tmp_path / "low.wav").refusals[0]
    assert "below the training rate" in check_audio(tmp_path / "short.wav", min_seconds=0,
                                                     sample_rate=24000).warnings[0]
    assert check_audio(tmp_path / "absent.wav").refusals == ["file not found"]


def test_block_reading_matches_a_whole_read(tmp_path: Path, monkeypatch):
    import composer.data.datasets as datasets

    sf.write(tmp_path / "a.flac", tone(seconds=2.0, channels=2), RATE)
    whole = datasets.scan_audio(tmp_path / "a.flac").digest
    monkeypatch.setattr(datasets, "BLOCK_FRAMES", 1000)
    assert datasets.scan_audio(tmp_path / "a.flac").digest == whole


def test_label_checks(tmp_path: Path):
    sf.write(tmp_path / "a.wav", tone(), RATE)
    write_jsonl(tmp_path, [
        good("a.wav", tempo=120.5, key="Bbm", meter=3, beats_per_bar=3, genre=["folk", "pop"]),
        good("a.wav"),  # listed twice
        good("b.wav", tempo="fast", key="H major", meter="7/5", lyrics=["la"], consent="no"),
        good("../outside.wav"),
        [1, 2],
        {"title": "no file name"},
    ])
    report = check_dataset(tmp_path)
    assert report.accepted == ["a.wav"]
    messages = [(problem.line, problem.message) for problem in report.refused]
    assert messages[0] == (2, "listed again (first at line 1)")
    line3 = [message for line, message in messages if line == 3]
    assert [word for word in ("tempo", "key", "meter", "lyrics", "consent")
            if any(message.startswith(word) for message in line3)] == ["tempo", "key", "meter",
                                                                        "lyrics", "consent"]
    assert (3, "file not found") in messages  # with its line, as every other refusal
    assert any(line == 4 and "inside the dataset folder" in message for line, message in messages)
    assert (5, "expected a JSON object, got an array") in messages
    assert (6, "no file_name") in messages


def test_licence_and_consent_spellings():
    assert normalise_licence("CC BY-SA 4.0") == "cc-by-sa"
    assert normalise_licence("cc_by 3.0 unported") == "cc-by"
    assert normalise_licence("CC0-1.0") == "cc0"
    assert normalise_licence("Public Domain") == "public-domain"
    assert normalise_licence(" Own  Work ") == "own-work"
    assert normalise_licence("generated") == "generated"
    assert normalise_licence("all rights reserved") == "all-rights-reserved"
    assert all(is_opt_in(value) for value in (True, "opt-in", "Opt In", "YES", "opted-in"))
    assert not any(is_opt_in(value) for value in (False, None, 1, "no", "opt-out", ""))


def test_read_write_metadata_round_trip(tmp_path: Path):
    write_jsonl(tmp_path, [good("a.wav", location="Leeds", beard="none"), "", "oops"])
    rows = read_metadata(tmp_path)
    assert [(row.line, row.file_name, row.problem is None) for row in rows] == [
        (1, "a.wav", True), (3, None, False)]
    assert rows[0].fields["beard"] == "none" and rows[0].licence == "cc-by"
    write_metadata(tmp_path, [rows[0], {"file_name": "b.wav", "title": "Ünïcode", "licence": "cc0"}])
    again = read_metadata(tmp_path)
    assert [row.file_name for row in again] == ["a.wav", "b.wav"]
    assert again[0].fields == rows[0].fields and again[1].fields["title"] == "Ünïcode"
    assert sorted(path.name for path in tmp_path.iterdir()) == [METADATA_NAME]  # no temp files left
    with pytest.raises(ValueError, match="file_name"):
        write_metadata(tmp_path, [{"title": "no name"}])
    with pytest.raises(ValueError, match="malformed"):
        write_metadata(tmp_path, [MetadataRow(3, None, problem="not valid JSON")])
    assert [row.file_name for row in read_metadata(tmp_path)] == ["a.wav", "b.wav"]


def test_iter_accepted(messy: Path):
    assert [row.file_name for row in iter_accepted(messy)] == ["good.wav", "songs/good.flac"]
    assert [row.licence for row in iter_accepted(messy)] == ["cc-by", "cc-by-sa"]
    quick = [row.file_name for row in iter_accepted(messy, check_audio=False)]
    assert quick == ["good.wav", "songs/good.flac", "truncated.flac", "empty.wav", "notes.wav",
                     "copy.flac", "cut.wav"]
    only_sa = iter_accepted(messy, allowed_licences=["CC BY-SA"])
    assert [row.file_name for row in only_sa] == ["songs/good.flac"]
    with pytest.raises(ValueError, match="not found"):
        iter_accepted(messy / "songs")


def test_analyze_never_reads_outside_the_dataset_folder(tmp_path):
    import json

    import numpy as np
    import soundfile as sf

    from composer.data.labelling import analyze_dataset

    root = tmp_path / "archive"
    root.mkdir()
    sf.write(tmp_path / "outside.wav", np.zeros(8000, dtype=np.float32), 8000)
    (root / "metadata.jsonl").write_text(json.dumps({"file_name": "../outside.wav", "licence": "cc0"}) + "\n")
    counts = analyze_dataset(root, progress=False)
    assert {k: counts[k] for k in ("labelled", "skipped", "failed")} == {"labelled": 0, "skipped": 0, "failed": 1}
    assert not list((root / "plans").iterdir())


def test_a_streamed_wav_with_an_unknown_length_is_not_called_truncated(tmp_path):
    # sox and arecord writing to a pipe put 0x7FFFFFFF where the length goes
    import struct

    sf.write(tmp_path / "take.wav", tone(seconds=3.0, frequency=440), RATE, subtype="PCM_16")
    data = bytearray((tmp_path / "take.wav").read_bytes())
    at = data.find(b"data")
    data[4:8] = data[at + 4: at + 8] = struct.pack("<I", 0x7FFFFFFF)
    (tmp_path / "take.wav").write_bytes(bytes(data))
    assert check_audio(tmp_path / "take.wav").refusals == []


def test_a_file_any_of_its_rows_refuses_is_not_learnt(tmp_path: Path):
    # the first row won: a later row saying consent "no" for the same file was only "listed again"
    from composer.data.datasets import iter_accepted
    from composer.data.labelling import analyze_dataset

    sf.write(tmp_path / "trains.wav", tone(), RATE)
    sf.write(tmp_path / "river.wav", tone(frequency=330), RATE)
    write_jsonl(tmp_path, [good("trains.wav"), good("river.wav"), good("trains.wav", consent="no"),
                           good("river.wav")])  # river listed twice, both rows agree
    report = check_dataset(tmp_path)
    assert report.accepted == ["river.wav"]
    refusal = [p.message for p in report.refused if p.file == "trains.wav" and p.line == 1]
    assert refusal and "line 3, another row for this file, refuses it: consent" in refusal[0]
    assert [row.file_name for row in iter_accepted(tmp_path)] == ["river.wav"]
    assert [row.file_name for row in iter_accepted(tmp_path, check_audio=False)] == ["river.wav"]
    counts = analyze_dataset(tmp_path, progress=False)
    assert counts["refused"] == 3 and counts["labelled"] == 1  # trains twice, river's second row


def test_a_name_in_another_unicode_form_is_found_or_named(tmp_path: Path):
    # macOS writes "Canção" decomposed (NFD); a row typed elsewhere holds it composed (NFC)
    import unicodedata

    from composer.data.revocations import revoke

    composed = "Canção do mar.wav"
    sf.write(tmp_path / unicodedata.normalize("NFD", composed), tone(), RATE)
    write_jsonl(tmp_path, [good(composed)])
    report = check_dataset(tmp_path)
    assert report.accepted == []
    assert "in another Unicode form" in report.refused[0].message and report.refused[0].line == 1
    assert not [w for w in report.warnings if "no row" in w.message]  # the file has its row
    revoke(tmp_path, unicodedata.normalize("NFD", composed), reason="asked")  # either form names the file
    assert "withdrawn" in check_dataset(tmp_path).refused[0].message


def test_a_tempo_written_as_text_is_read_as_a_prompt_reads_it(tmp_path: Path):
    # "120" and "70 BPM" under tempo refused the song, though "96 BPM" under bpm was read
    for index in range(4):
        sf.write(tmp_path / f"s{index}.wav", tone(frequency=200 + 50 * index), RATE)
    write_jsonl(tmp_path, [good(f"s{i}.wav", tempo=t) for i, t in enumerate(("120", "70 BPM", "110 bpm", 96))]
                + [good("s9.wav", tempo="fast")])
    report = check_dataset(tmp_path)
    assert report.accepted == ["s0.wav", "s1.wav", "s2.wav", "s3.wav"]
    assert any('(96, or "96 bpm"), got \'fast\'' in p.message for p in report.refused)


def test_a_damaged_mp3_says_what_ffmpeg_found_not_libsndfiles_guess(tmp_path):
    import shutil

    import pytest

    from composer.data.audio import AudioError, audio_read

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    damaged = tmp_path / "demo.mp3"
    damaged.write_bytes(bytes(range(256)) * 12)
    with pytest.raises(AudioError, match=r"demo\.mp3: cannot decode audio \(") as error:
        audio_read(damaged)
    assert "pipe" not in str(error.value) and "regular file" not in str(error.value)
