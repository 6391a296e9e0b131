"""`composer corpus import`: recorded music from (fake) Debian packages, licences from their
copyright files, whole packages held out, and `data check` on licence-grant consent."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from composer.cli import main
from composer.data import recorded
from composer.data.datasets import check_dataset
from composer.data.recorded import (
    free_form_licence,
    import_recorded,
    licence_for,
    parse_copyright,
    spdx_id,
)

RATE = 16000

COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: Fake Game

Files: *
Copyright: 2001, The Fake Team
License: GPL-2+

Files:
 base/music/cc-song.ogg
 base/music/other.ogg
Copyright:
 Some Composer
License: CC-BY-SA-3.0

Files: debian/*
Copyright: 2020, A Packager
License: GPL-3+

Files: music/piece.wav
Copyright: Another Composer
License: CC-BY-3.0

License: GPL-2+
 On Debian systems, the complete text of the GNU General Public License
 version 2 can be found in "/usr/share/common-licenses/GPL-2".
"""

FREE_GPL = """This package was debianized by someone.

This program is free software; you can redistribute it and/or
modify it under the terms of the GNU General Public License
as published by the Free Software Foundation; either version 2
of the License, or (at your option) any later version.
"""


def tone(seconds: float = 1.2, frequency: float = 440.0) -> np.ndarray:
    time = np.arange(int(seconds * RATE)) / RATE
    return (0.4 * np.sin(2 * np.pi * frequency * time)).astype(np.float32)


def ogg_bytes(tmp: Path, frequency: float, title: str | None = None) -> bytes:
    path = tmp / f".tone{frequency:g}.ogg"
    with sf.SoundFile(path, "w", RATE, 1, format="OGG", subtype="VORBIS") as handle:
        if title:
            handle.title = title
        handle.write(tone(frequency=frequency))
    return path.read_bytes()


@pytest.fixture
def packages(tmp_path: Path, monkeypatch) -> Path:
    """Two fake packages under tmp_path/root: fake-music (files, an MP3, a .pk3, a link, a
    tracker module, an undecodable file) and other-music (free-text copyright, one file)."""
    root = tmp_path / "root"
    game = root / "usr/share/games/fake"
    (game / "music").mkdir(parents=True)
    (game / "base").mkdir()
    (game / "music" / "tune.ogg").write_bytes(ogg_bytes(tmp_path, 330, title="A Tagged Tune"))
    sf.write(game / "music" / "piece.wav", tone(frequency=550), RATE, subtype="PCM_16")
    sf.write(game / "music" / "loud.mp3", tone(frequency=880), RATE, format="MP3", subtype="MPEG_LAYER_III")
    (game / "music" / "broken.ogg").write_bytes(b"OggS but not really audio" * 10)
    (game / "music" / "old.xm").write_bytes(b"Extended Module: not audio")
    (game / "music" / "alias.ogg").symlink_to("tune.ogg")  # the same track twice: imported once
    with zipfile.ZipFile(game / "base" / "0music.pk3", "w") as archive:
        archive.writestr("music/cc-song.ogg", ogg_bytes(tmp_path, 440))
        archive.writestr("music/gpl_song.ogg", ogg_bytes(tmp_path, 660))
        archive.writestr("music/readme.txt", "not audio")
    doc = root / "usr/share/doc/fake-music"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(COPYRIGHT)
    other = root / "usr/share/other"
    other.mkdir(parents=True)
    (other / "song.ogg").write_bytes(ogg_bytes(tmp_path, 770))
    (root / "usr/share/doc/other-music").mkdir(parents=True)
    (root / "usr/share/doc/other-music/copyright").write_text(FREE_GPL)

    def listing(package: str):
        base = {"fake-music": [game, root / "usr/share/doc/fake-music"],
                "other-music": [other, root / "usr/share/doc/other-music"]}.get(package)
        if base is None:
            return None
        return [d for folder in base for d in [folder, *sorted(folder.rglob("*"))]]

    monkeypatch.setattr(recorded, "dpkg_listing", listing)
    return root


def test_copyright_parsing_picks_the_matching_stanza():
    parsed = parse_copyright(COPYRIGHT, "copyright")
    assert parsed.machine_readable and len(parsed.stanzas) == 4

    def licence(path: str) -> str:
        return licence_for(parsed, PurePosixPath(path))[0]

    # the last matching stanza wins; its path is a tail of the installed path
    assert licence("/usr/share/games/fake/base/music/cc-song.ogg") == "CC-BY-SA-3.0"
    assert licence("/usr/share/games/fake/music/piece.wav") == "CC-BY-3.0"
    assert licence("/usr/share/games/fake/base/music/gpl_song.ogg") == "GPL-2.0-or-later"  # Files: *
    assert licence("/usr/share/games/fake/music/cc-song.ogg") == "GPL-2.0-or-later"  # not base/music/
    assert licence_for(parsed, PurePosixPath("/x/music/piece.wav"))[1].copyright == "Another Composer"
    assert licence_for(parse_copyright(FREE_GPL), PurePosixPath("/a.ogg")) == ("GPL-2.0-or-later", None)
    assert licence_for(parse_copyright("Copyright: someone\nAll rights reserved.\n"), PurePosixPath("/a")) \
        == ("unknown", None)
    assert [spdx_id(n) for n in ("GPL-2+", "GPL-3+", "GPL-2", "LGPL-2.1+", "CC-BY-SA-4.0", "CC0", "Expat",
                                 "Drascula-License", "GPL-2+ and Expat")] == [
        "GPL-2.0-or-later", "GPL-3.0-or-later", "GPL-2.0-only", "LGPL-2.1-or-later", "CC-BY-SA-4.0",
        "CC0-1.0", "MIT", "Drascula-License", "GPL-2.0-or-later AND MIT"]
    cc_text = ('THIS CREATIVE COMMONS PUBLIC LICENSE. "Adaptation" means a work based upon the Work. '
               '"License Elements" means the following high-level license attributes as selected by\n'
               '  Licensor and indicated in the title of this License: Attribution, ShareAlike.')
    assert free_form_licence(cc_text) == "CC-BY-SA-3.0"
    assert free_form_licence(cc_text.replace("ShareAlike", "Noncommercial, No Derivatives")) == "CC-BY-NC-ND-3.0"
    assert free_form_licence(cc_text + "\n" + FREE_GPL) is None  # two statements: unclear


def test_import_writes_one_row_per_file_and_is_idempotent(packages: Path, tmp_path: Path):
    out = tmp_path / "out"
    summary = import_recorded(out, packages=["fake-music", "not-installed"], holdout=[])
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert [r["file_name"] for r in rows] == [
        "audio/fake-music/base/music/cc-song.ogg", "audio/fake-music/base/music/gpl_song.ogg",
        "audio/fake-music/music/loud.flac", "audio/fake-music/music/piece.wav",
        "audio/fake-music/music/tune.ogg"]
    by_name = {PurePosixPath(r["file_name"]).name: r for r in rows}
    assert {n: r["licence"] for n, r in by_name.items()} == {
        "cc-song.ogg": "CC-BY-SA-3.0", "gpl_song.ogg": "GPL-2.0-or-later", "piece.wav": "CC-BY-3.0",
        "tune.ogg": "GPL-2.0-or-later", "loud.flac": "GPL-2.0-or-later"}
    for row in rows:
        assert row["source_package"] == "fake-music" and row["consent"] == "licence-grant"
        assert row["source"] == "recorded" and row["split"] == "train"
        assert row["licence_source"].endswith("usr/share/doc/fake-music/copyright")
        assert row["duration"] == pytest.approx(1.2, abs=0.1)  # MP3 adds encoder padding
        assert (out / row["file_name"]).is_file()
    assert by_name["tune.ogg"]["title"] == "A Tagged Tune" and by_name["gpl_song.ogg"]["title"] == "gpl song"
    assert by_name["cc-song.ogg"]["attribution"] == {"copyright": "Some Composer",
                                                     "files": "Files: base/music/cc-song.ogg"}
    assert by_name["cc-song.ogg"]["origin"]["member"] == "music/cc-song.ogg"
    assert sf.info(out / "audio/fake-music/music/loud.flac").format == "FLAC"  # MP3 is stored as FLAC
    assert [what.endswith("broken.ogg") for what, _ in summary.failed] == [True]
    assert any(what.endswith("old.xm") and "not recorded audio" in why for what, why in summary.skipped)
    assert summary.missing_packages == ["not-installed"] and summary.imported == 5
    # data check accepts them: licence-grant with licences that permit derivatives
    report = check_dataset(out)
    assert len(report.accepted) == 5 and not report.refused
    assert report.format().endswith("accepted by consent: 0 opt-in, 5 licence-grant")

    before = (out / "metadata.jsonl").read_bytes()
    again = import_recorded(out, packages=["fake-music"], holdout=[])
    assert (again.imported, again.already) == (0, 5)
    assert (out / "metadata.jsonl").read_bytes() == before


def test_holdout_puts_whole_packages_in_validation(packages: Path, tmp_path: Path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["corpus", "import", "-o", str(out), "--package", "fake-music",
                                       "--package", "other-music", "--holdout", "other-music"])
    assert result.exit_code == 2, result.output  # broken.ogg failed; the rest finished
    assert "failed" in result.output and "broken.ogg" in result.output
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    splits = {(r["source_package"], r["split"]) for r in rows}
    assert splits == {("fake-music", "train"), ("other-music", "validation")}
    assert [r["licence"] for r in rows if r["source_package"] == "other-music"] == ["GPL-2.0-or-later"]
    # a different holdout on the next run moves the whole package, nothing is imported again
    swapped = import_recorded(out, packages=["fake-music", "other-music"], holdout=["fake-music"])
    assert swapped.imported == 0
    assert {(r["source_package"], r["split"]) for r in swapped.rows} == {
        ("fake-music", "validation"), ("other-music", "train")}


def test_folder_import_needs_licence_and_consent(tmp_path: Path):
    folder = tmp_path / "mine"
    folder.mkdir()
    sf.write(folder / "a.flac", tone(), RATE, subtype="PCM_16")
    runner = CliRunner()
    refused = runner.invoke(main, ["corpus", "import", "-o", str(tmp_path / "out"), str(folder)])
    assert refused.exit_code != 0 and "--licence" in refused.output
    ok = runner.invoke(main, ["corpus", "import", "-o", str(tmp_path / "out"), str(folder),
                              "--licence", "CC-BY-4.0", "--consent", "opt-in"])
    assert ok.exit_code == 0, ok.output
    row = json.loads((tmp_path / "out" / "metadata.jsonl").read_text())
    assert (row["file_name"], row["source_folder"], row["licence"], row["consent"]) == (
        "audio/mine/a.flac", "mine", "CC-BY-4.0", "opt-in")
    # a licence data check refuses is refused before anything is copied, and so is a licence grant
    # under a licence that forbids derivatives
    for licence, consent, says in (("CC-BY-ND-4.0", "licence-grant", "forbids derivative works"),
                                   ("Drascula-License", "opt-in", "not a recognised licence")):
        refused = runner.invoke(main, ["corpus", "import", "-o", str(tmp_path / "nd"), str(folder),
                                       "--licence", licence, "--consent", consent])
        assert refused.exit_code == 2 and says in refused.output and not (tmp_path / "nd").exists(), refused.output
    # importing again under another licence relabels the files, and says so
    again = runner.invoke(main, ["corpus", "import", "-o", str(tmp_path / "out"), str(folder),
                                 "--licence", "MIT", "--consent", "opt-in"])
    assert again.exit_code == 0 and "(1 relabelled)" in again.output, again.output
    assert json.loads((tmp_path / "out" / "metadata.jsonl").read_text())["licence"] == "MIT"


def test_data_check_licences_and_consent(tmp_path: Path):
    rows = [("nd.wav", "CC-BY-NC-ND-4.0", "opt-in"), ("unknown.wav", "Drascula-License", "opt-in"),
            ("gpl.wav", "GPL-2.0-or-later", "licence-grant"), ("grant.wav", "Drascula-License", "licence-grant"),
            ("mine.wav", "CC BY-SA 4.0", "opt-in")]
    for index, name in enumerate(r[0] for r in rows):
        sf.write(tmp_path / name, tone(frequency=300 + 50 * index), RATE, subtype="PCM_16")
    (tmp_path / "metadata.jsonl").write_text("".join(
        json.dumps({"file_name": n, "licence": lic, "consent": c}) + "\n" for n, lic, c in rows))
    report = check_dataset(tmp_path)
    assert report.accepted == ["gpl.wav", "mine.wav"]
    messages = {p.file: [] for p in report.refused}
    for problem in report.refused:
        messages[problem.file].append(problem.message)
    assert "forbids derivative works" in messages["nd.wav"][0]
    assert "'Drascula-License' is not a recognised licence that permits derivative works" in messages["unknown.wav"][0]
    assert report.format().endswith("accepted by consent: 1 opt-in, 1 licence-grant")
    # allowing the unclear licence by hand still refuses it as a licence grant: the consent needs
    # a licence that permits derivative works
    allowed = check_dataset(tmp_path, allowed_licences=["GPL-2.0-or-later", "Drascula-License"])
    assert "unknown.wav" in allowed.accepted and "grant.wav" not in allowed.accepted
    assert [p.message for p in allowed.refused if p.file == "grant.wav"] == [
        "consent 'licence-grant' needs a licence that permits derivative works; 'Drascula-License' is not one"]


def test_a_package_asked_for_by_name_and_not_installed_fails_the_import(packages: Path, tmp_path: Path):
    result = CliRunner().invoke(main, ["corpus", "import", "-o", str(tmp_path / "out"), "--package", "zzz-music"])
    assert result.exit_code == 2 and "not installed: zzz-music" in result.output, result.output
    assert "make recorded-music" in result.output
