"""composer.data.corpus: a tiny rendered corpus has exact labels, is resumable and deterministic."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf

from composer.data.corpus import LABEL_FRAME_RATE, SAMPLE_RATE, build_corpus, item_seed, plan_items
from composer.rendering.loudness import TARGET_LUFS, integrated_loudness
from structure.frame_controls import NUM_CONTROLS, controls
from structure.schema import Key, SongPlan

SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"  # for both splits: the MuseScore sf3 takes ~7 s to load
FIELDS = {"file_name", "text", "tags", "tempo", "key", "beats_per_bar", "sections", "licence", "consent",
          "split", "plan", "labels", "duration"}


def _build(folder):
    return build_corpus(folder, minutes=2.0, seed=0, workers=1, soundfont=SOUNDFONT,
                        validation_soundfont=SOUNDFONT, progress=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    records = _build(folder)
    return folder, records


def _rows(folder):
    return [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]


def _plan(folder, row) -> SongPlan:
    return SongPlan.from_json((folder / row["plan"]).read_text())


def test_items_are_deterministic_and_split():
    items = plan_items(10.0, seed=0)
    assert len(items) == 8 and items == plan_items(10.0, seed=0)
    assert [i.split for i in items].count("validation") == 1 and items[1].split == "validation"
    assert [i.seed for i in items] == [item_seed(0, i) for i in range(8)]
    assert plan_items(10.0, seed=1)[0].seed != items[0].seed
    assert len({i.name for i in items}) == 8


def test_metadata_rows_have_the_documented_fields(corpus):
    folder, records = corpus
    rows = _rows(folder)
    assert rows == sorted(records, key=lambda r: r["file_name"])
    assert {r["split"] for r in rows} == {"train", "validation"}
    for row in rows:
        assert FIELDS <= set(row), FIELDS - set(row)
        assert row["licence"] == "generated" and row["consent"] == "opt-in"
        assert isinstance(row["text"], str) and row["text"]
        assert isinstance(row["tags"], dict) and row["tags"]["genre"] in row["text"]
        song = _plan(folder, row)
        assert row["tempo"] == song.tempo_bpm and Key.parse(row["key"]) == song.key
        assert row["beats_per_bar"] == song.beats_per_bar
        assert row["duration"] == pytest.approx(song.duration, abs=1e-3)
        assert 40 - 2 * 60 * 4 / song.tempo_bpm <= song.duration <= 110 + 2 * 60 * 4 / song.tempo_bpm
        sections = row["sections"]
        assert [s["name"] for s in sections] == [s.name for s in song.sections]
        assert [s["kind"] for s in sections] == [s.kind for s in song.sections]
        assert sections[0]["start"] == 0.0 and sections[-1]["end"] == pytest.approx(row["duration"], abs=1e-3)
        assert all(a["end"] == b["start"] for a, b in zip(sections, sections[1:]))
        assert all(s["end"] > s["start"] for s in sections)
        assert row["labels"].endswith(".npy") and row["file_name"].endswith(".flac")


def test_audio_files_are_normalised(corpus):
    folder, _ = corpus
    for row in _rows(folder):
        audio, rate = sf.read(folder / row["file_name"], dtype="float32", always_2d=True)
        assert rate == SAMPLE_RATE == 24000
        assert audio.shape == (round(_plan(folder, row).duration * SAMPLE_RATE), 1)
        peak = float(np.abs(audio).max())
        assert 0.5 < peak <= 1.0
        loudness = integrated_loudness(audio.T, rate)
        # at the target, or below it where the peak ceiling stopped the gain
        assert loudness <= TARGET_LUFS + 0.5
        assert loudness >= TARGET_LUFS - 1.0 or peak >= 0.96, (loudness, peak)


def test_labels_are_the_plans_controls(corpus):
    folder, _ = corpus
    for row in _rows(folder):
        labels = np.load(folder / row["labels"], allow_pickle=False)
        song = _plan(folder, row)
        assert labels.shape == (math.ceil(song.duration * LABEL_FRAME_RATE), NUM_CONTROLS)
        assert row["label_frame_rate"] == LABEL_FRAME_RATE == 75.0
        assert labels.dtype == np.float16
        assert np.array_equal(labels, controls(song, LABEL_FRAME_RATE).astype(np.float16))


def test_rerun_is_a_no_op_and_lost_files_come_back_identical(corpus):
    folder, records = corpus
    files = sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts)
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    assert _build(folder) == records
    for path, (mtime, data) in before.items():
        if path.name != "metadata.jsonl":  # rewritten, with the same content
            assert path.stat().st_mtime_ns == mtime, path
        assert path.read_bytes() == data, path
    # a lost audio file (the second item: rendered after another one in this process) and a lost
    # label file come back byte for byte
    audio = folder / records[1]["file_name"]
    label = folder / records[0]["labels"]
    audio.unlink()
    label.unlink()
    assert _build(folder) == records
    assert audio.read_bytes() == before[audio][1]
    assert label.read_bytes() == before[label][1]


def test_planned_beats_are_where_the_audio_beats_are(corpus):
    """The labels' beat grid (k * 60 / tempo) is where `structure.analysis` finds the beats.

    Both ways: every planned beat has an estimated beat within 50 ms (median), and every
    estimated beat a planned one (the slow ballads too: the analysis decides the tempo octave
    from the metre's accents).
    """
    from structure.analysis import analyze

    folder, _ = corpus
    for row in _rows(folder):
        audio, rate = sf.read(folder / row["file_name"], dtype="float32")
        analysis = analyze(audio, rate)
        spb = 60.0 / row["tempo"]
        grid = np.arange(0.0, row["duration"] - 1e-6, spb)
        nearest_estimate = np.abs(grid[:, None] - analysis.beats[None, :]).min(axis=1)
        assert np.median(nearest_estimate) < 0.05, (row["file_name"], float(np.median(nearest_estimate)))
        nearest_planned = np.abs((analysis.beats + spb / 2) % spb - spb / 2)
        assert analysis.tempo_bpm == pytest.approx(row["tempo"], rel=0.04), row["file_name"]
        assert np.median(nearest_planned) < 0.05, (row["file_name"], float(np.median(nearest_planned)))


def test_check_dataset_accepts_every_corpus_file(corpus):
    from composer.data.datasets import check_dataset, iter_accepted

    folder, records = corpus
    report = check_dataset(folder)
    assert report.refused == []
    assert sorted(report.accepted) == sorted(r["file_name"] for r in records)
    assert [row.file_name for row in iter_accepted(folder)] == sorted(r["file_name"] for r in records)


def test_bad_arguments_are_input_errors(tmp_path):
    from composer.errors import InputError

    with pytest.raises(InputError, match="minutes"):
        build_corpus(tmp_path, minutes=0, soundfont=SOUNDFONT, progress=False)
    with pytest.raises(InputError, match="no such file"):
        build_corpus(tmp_path, minutes=1, soundfont=str(tmp_path / "none.sf2"), progress=False)


def test_another_seed_in_a_corpus_folder_is_refused(tmp_path):
    # a rerun finishes the same corpus; another seed there would mix two corpora without a word
    from composer.data.corpus import build_corpus
    from composer.errors import InputError

    out = tmp_path / "corpus"
    out.mkdir()
    (out / "corpus.json").write_text(json.dumps({"seed": 0, "sources": ["generated"], "soundfonts": {}}))
    with pytest.raises(InputError, match="a corpus built with seed=0.*this run asks seed=1"):
        build_corpus(out, minutes=0.5, seed=1, progress=False)
    assert not (out / "audio").exists()
    # the same sources in another order make the same corpus
    from pathlib import Path

    from structure.synth import TRAINING_SOUNDFONT, VALIDATION_SOUNDFONT

    fonts = {"train": str(Path(TRAINING_SOUNDFONT).resolve()), "validation": str(Path(VALIDATION_SOUNDFONT).resolve())}
    (out / "corpus.json").write_text(json.dumps({"seed": 0, "sources": ["generated", "folk"], "soundfonts": fonts}))
    from composer.data import corpus

    with pytest.raises(StopIteration):  # past the stamp's check: the first item is planned
        import unittest.mock as mock

        with mock.patch.object(corpus, "plan_items", side_effect=StopIteration), \
                mock.patch.object(corpus, "plan_music21_items", side_effect=StopIteration):
            build_corpus(out, minutes=0.5, seed=0, progress=False, sources=("folk", "generated"))


@pytest.mark.parametrize("minutes", [0, -1, float("nan"), float("inf"), 1e30])
def test_minutes_out_of_range_are_one_error_before_any_work(tmp_path, minutes):
    """1e30 minutes listed its songs until the memory ran out."""
    from composer.data.corpus import build_corpus
    from composer.errors import InputError

    with pytest.raises(InputError, match="--minutes: .* is outside 0..100000"):
        build_corpus(tmp_path / "c", minutes=minutes)
    assert not (tmp_path / "c").exists()


def test_a_soundfont_fluidsynth_cannot_load_is_refused_before_the_folder_is_claimed(tmp_path):
    """A failed start wrote corpus.json with the bad soundfont, which then refused the corrected rerun."""
    from composer.errors import InputError

    bad = tmp_path / "notes.sf2"
    bad.write_text("not a soundfont")
    with pytest.raises(InputError, match="soundfont for the train split: .*notes.sf2: FluidSynth cannot load it"):
        build_corpus(tmp_path / "c", minutes=0.5, soundfont=str(bad))
    assert not (tmp_path / "c" / "corpus.json").exists()
