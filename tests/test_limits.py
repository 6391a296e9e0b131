"""The same documented size limits everywhere: plans, form=, lyrics, input audio (exit 2, up front)."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf
from click.testing import CliRunner

import structure.schema as schema
from composer.cli import main
from structure.planner import plan


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_plan_over_the_limits_is_refused_naming_the_field(tmp_path):
    song = json.loads(plan("folk", duration=20, seed=0).to_json())
    many = dict(song, sections=[dict(song["sections"][0], name=f"s{i}", repeat_of=None)
                                for i in range(schema.MAX_SECTIONS + 1)])
    (tmp_path / "many.json").write_text(json.dumps(many))
    result = _run("render", "--plan", tmp_path / "many.json", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "sections" in result.output and str(schema.MAX_SECTIONS) in result.output
    first = dict(song["sections"][0], bars=256, chords=[["C"]] * 256, repeat_of=None)
    long = dict(song, sections=[dict(first, name=f"s{i}") for i in range(12)])
    (tmp_path / "long.json").write_text(json.dumps(long))
    result = _run("render", "--plan", tmp_path / "long.json", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "over the limit of 1800 s" in result.output
    assert not (tmp_path / "out").exists()


def test_form_and_lyrics_over_the_limits_are_refused(tmp_path):
    form = " ".join(["verse"] * (schema.MAX_SECTIONS + 1))
    result = _run("plan", f'form="{form}"', "-o", tmp_path / "p.json")
    assert result.exit_code == 2 and "form" in result.output
    words = tmp_path / "words.txt"
    words.write_text("la " * (schema.MAX_LYRICS_CHARACTERS // 3 + 10))
    result = _run("plan", "folk", "--lyrics", words, "-o", tmp_path / "p.json")
    assert result.exit_code == 2 and "lyrics" in result.output and "characters" in result.output
    words.write_text("[verse]\nthe trains go by at night and day\n\n" * 400)
    result = _run("plan", "folk", "--lyrics", words, "-o", tmp_path / "p.json")
    assert result.exit_code == 2 and "would make a song of" in result.output
    assert not (tmp_path / "p.json").exists()


def test_input_audio_over_the_limit_or_truncated_is_refused_before_decoding(tmp_path, tiny_models, monkeypatch):
    codec, model = tiny_models
    monkeypatch.setattr(schema, "MAX_SONG_SECONDS", 5.0)
    path = tmp_path / "long.wav"
    sf.write(path, 0.1 * np.sin(np.arange(6 * 8000) / 8000 * 2 * np.pi * 220), 8000)
    result = _run("restyle", path, "genre=jazz", "--codec", codec, "--model", model, "-o", tmp_path / "o")
    assert result.exit_code == 2 and "too long" in result.output
    monkeypatch.setattr(schema, "MAX_SONG_SECONDS", 1800.0)
    flac = tmp_path / "cut.flac"
    sf.write(flac, 0.1 * np.sin(np.arange(4 * 8000) / 8000 * 2 * np.pi * 220), 8000)
    data = flac.read_bytes()
    flac.write_bytes(data[: len(data) // 2])
    result = _run("restyle", flac, "genre=jazz", "--codec", codec, "--model", model, "-o", tmp_path / "o")
    assert result.exit_code == 2, result.output


def test_a_playlist_named_wav_is_refused_not_followed(tmp_path):
    import pytest

    from composer.data.audio import AudioError, audio_read

    other = tmp_path / "secret.wav"
    sf.write(other, np.zeros(8000, dtype=np.float32), 8000)
    playlist = tmp_path / "song.wav"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1,\n{other}\n#EXT-X-ENDLIST\n")
    with pytest.raises(AudioError, match="a playlist, not audio"):
        audio_read(playlist)
