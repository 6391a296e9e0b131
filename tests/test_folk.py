"""Folk tunes and Bach chorales from the music21 corpus: parsing, cache, harmony, plans, corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from composer.data import folk
from structure import harmonise
from structure.harmony import parse_chord
from structure.schema import Key, SongPlan

FLUID_R3 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("folk-cache")


@pytest.fixture(scope="module")
def melodies(cache_dir):
    return list(folk.iter_folk_melodies(4, seed=0, cache_dir=cache_dir))


def test_tune_index_counts_every_collection_without_parsing():
    refs = folk.list_folk_tunes()
    counts = {name: sum(r.collection == name for r in refs) for name in folk.FOLK_COLLECTIONS}
    assert counts["essen"] > 8000 and counts["oneill"] > 1800 and counts["ryan"] > 1000, counts
    assert len({r.cache_key for r in refs}) == len(refs)
    assert len(folk.list_chorales()) >= 400


def test_order_is_drawn_by_seed_and_takes_collections_in_turn():
    first = folk.folk_order(0)[:30]
    assert first == folk.folk_order(0)[:30]
    assert first != folk.folk_order(1)[:30]
    assert [r.collection for r in first[:3]] == ["essen", "oneill", "ryan"]


def test_melodies_parse_and_are_cached(melodies, cache_dir, monkeypatch):
    assert len(melodies) == 4
    for melody in melodies:
        assert melody.source.startswith("music21 corpus: ") and melody.path.split("/")[0] in (
            "essenFolksong", "oneills1850", "ryansMammoth")
        assert melody.beats_per_bar in (2, 3, 4, 5, 6) and melody.beat_quarters in (1.0, 1.5)
        Key.parse(melody.key)
        assert len(melody.notes) >= folk.MIN_NOTES and folk.MIN_BARS <= melody.bars <= folk.MAX_BARS
        starts = [s for s, _, _ in melody.notes]
        assert starts == sorted(starts) and all(d > 0 for _, d, _ in melody.notes)
        assert all(s + d <= starts[i + 1] + 1e-6 for i, (s, d, _) in enumerate(melody.notes[:-1]))
    cache = json.loads((cache_dir / "folk_melodies.json").read_text())
    assert cache["format"] == folk.CACHE_FORMAT and len(cache["melodies"]) >= 4

    def no_parsing(ref):
        raise AssertionError(f"{ref} parsed again despite the cache")

    monkeypatch.setattr(folk, "parse_abc_tune", no_parsing)
    assert list(folk.iter_folk_melodies(4, seed=0, cache_dir=cache_dir)) == melodies


def test_pickup_moves_to_the_end_of_the_first_bar():
    ref = next(r for r in folk.list_folk_tunes(("oneill",)) if r.number == "2")  # "Fare You Well": f-g | a3-b ...
    melody = folk.parse_abc_tune(ref)
    assert melody.meter == "2/4" and melody.beats_per_bar == 2
    assert melody.notes[0][0] == pytest.approx(1.5)  # two sixteenths before the first bar line
    assert melody.notes[2][0] == pytest.approx(2.0)  # the a of bar 1 on the downbeat


def test_key_is_the_signature_mode_that_ends_on_the_last_note():
    from music21 import key as m21key

    def never():
        raise AssertionError("analysis not needed")

    assert harmonise.choose_key(m21key.Key("G"), 2, never) == Key("G")  # ends on the fifth: G major
    assert harmonise.choose_key(m21key.Key("C"), 2, never) == Key("D", "dorian")  # K:C ending on D
    assert harmonise.choose_key(m21key.Key("G"), 4, never) == Key("E", "minor")
    assert harmonise.choose_key(m21key.Key("A", "dorian"), 9, never) == Key("A", "dorian")
    assert harmonise.choose_key(None, 9, lambda: m21key.Key("a")) == Key("A", "minor")


def test_harmonising_a_c_major_scale_uses_diatonic_chords_that_fit():
    scale = [60, 62, 64, 65, 67, 69, 71, 72, 72, 71, 69, 67, 65, 64, 62, 60]
    notes = [(2.0 * i, 2.0, p) for i, p in enumerate(scale)]  # half notes, two a bar of 4/4
    chords = harmonise.harmonise_melody(notes, Key("C"), 4)
    assert len(chords) == 8
    symbols = [c for bar in chords for c in bar]
    assert set(symbols) <= {"C", "Dm", "Em", "F", "G", "Am"}
    assert set(symbols) & {"C", "F", "G"} and chords[-1][-1] == "C"
    assert sum(s in ("C", "F", "G") for s in symbols) >= len(symbols) / 2
    assert harmonise.chord_fit(notes, chords, 4) >= 0.75


def test_harmonising_a_tune_gives_a_cadence_and_full_fit():
    twinkle = [60, 60, 67, 67, 69, 69, 67, 67, 65, 65, 64, 64, 62, 62, 60, 60]
    notes = [(float(i), 1.0, p) for i, p in enumerate(twinkle)]
    chords = harmonise.harmonise_melody(notes, Key("C"), 4)
    assert chords[0] == ["C"] and chords[-1][-1] == "C" and chords[-1][0] == "G"
    assert harmonise.chord_fit(notes, chords, 4) == 1.0
    # a minor tune's leading tone gets the major V of harmonic minor
    minor = [(0.0, 2.0, 69), (2.0, 2.0, 72), (4.0, 2.0, 71), (6.0, 2.0, 68), (8.0, 4.0, 69)]
    chords = harmonise.harmonise_melody(minor, Key("A", "minor"), 4)
    assert chords[-1] == ["Am"] and "E" in chords[-2]


def test_plans_validate_repeat_and_transpose(melodies):
    from structure.arrangement import arrange

    for index, melody in enumerate(melodies):
        for seed in (index, index + 10):
            plan = folk.plan_from_melody(melody, seed)
            again = SongPlan.from_json(plan.to_json())  # validates
            assert again.to_json() == plan.to_json() == folk.plan_from_melody(melody, seed).to_json()
            verse, second = plan.section("verse1"), plan.section("verse2")
            assert second.repeat_of == "verse1" and second.variation == 0.0
            assert verse.bars == melody.bars == len(verse.chords) and plan.beats_per_bar == melody.beats_per_bar
            assert plan.quarters_per_beat == melody.beat_quarters  # a jig is planned (and accompanied) in 6/8
            if melody.beat_quarters == 1.0:
                assert plan.meter == f"{melody.beats_per_bar}/4"
            else:
                assert plan.meter == melody.meter
            shifts = {n.pitch - p for n, (_, _, p) in zip(verse.melody, melody.notes)}
            assert len(shifts) == 1
            shift = shifts.pop()
            assert min(abs(shift - 12 * k) for k in (-2, -1, 0, 1, 2)) <= folk.TRANSPOSE_RANGE
            assert 70 <= plan.tempo_bpm <= 140 and plan.style in folk.PLAN_STYLES + ("waltz",)
            tracks = {i.name: len(i.notes) for i in arrange(plan, programs={"melody": 73}).instruments}
            assert tracks["melody"] and tracks["bass"] and tracks["chords"]


def test_a_chorale_has_soprano_melody_and_analysed_chords(cache_dir):
    chorale = next(folk.iter_chorales(1, seed=0, cache_dir=cache_dir))
    assert chorale.path.startswith("bach/bwv") and chorale.chords is not None
    assert len(chorale.chords) == chorale.bars and all(chorale.beats_per_bar % len(bar) == 0 for bar in chorale.chords)
    for bar in chorale.chords:
        for symbol in bar:
            parse_chord(symbol)
    assert harmonise.chord_fit(chorale.notes, [list(b) for b in chorale.chords], chorale.beats_per_bar) > 0.8
    assert 60 <= np.median([p for _, _, p in chorale.notes]) <= 80  # the soprano, not the bass
    plan = folk.plan_from_melody(chorale, 3)
    assert len(plan.section("verse1").chords) == chorale.bars


@pytest.mark.skipif(not Path(FLUID_R3).is_file(), reason="fluid-soundfont-gm is not installed")
def test_build_a_tiny_folk_corpus(tmp_path):
    from composer.data.corpus import build_corpus

    kwargs = dict(minutes=0.5, seed=0, soundfont=FLUID_R3, validation_soundfont=FLUID_R3, progress=False,
                  sources=("folk",))
    records = build_corpus(tmp_path, **kwargs)
    assert [r["file_name"] for r in records] == ["audio/folk_00000.flac"]
    record = records[0]
    assert record["licence"] == "public-domain" and record["consent"] == "opt-in"
    assert record["source"].startswith("music21 corpus: ") and "mood" not in record
    assert record["split"] == "train" and record["duration"] >= 20
    plan = SongPlan.from_json((tmp_path / record["plan"]).read_text())
    assert [s["name"] for s in record["sections"]] == [s.name for s in plan.sections]
    assert record["sections"][-1]["end"] == pytest.approx(plan.duration, abs=1e-3)
    labels = np.load(tmp_path / record["labels"])
    assert abs(labels.shape[0] - plan.duration * record["label_frame_rate"]) <= 2
    rows = [json.loads(line) for line in (tmp_path / "metadata.jsonl").read_text().splitlines()]
    assert rows == records
    assert (tmp_path / ".cache" / "folk_melodies.json").is_file()
    audio = tmp_path / record["file_name"]
    stamp = audio.stat().st_mtime_ns
    assert build_corpus(tmp_path, **kwargs) == records  # resumable: nothing is rendered again
    assert audio.stat().st_mtime_ns == stamp


def test_unknown_source_is_refused(tmp_path):
    from composer.data.corpus import build_corpus
    from composer.errors import InputError

    with pytest.raises(InputError, match="--source"):
        build_corpus(tmp_path, minutes=1, sources=("nope",), soundfont=__file__, validation_soundfont=__file__)


def test_cli_corpus_build_takes_sources():
    from click.testing import CliRunner

    from composer.cli import main

    result = CliRunner().invoke(main, ["corpus", "build", "--help"])
    assert result.exit_code == 0 and "--source" in result.output and "chorales" in result.output
    result = CliRunner().invoke(main, ["corpus", "build", "-o", "x", "--minutes", "1", "--source", "jazzz"])
    assert result.exit_code == 2


@pytest.mark.slow
@pytest.mark.skipif(not Path(FLUID_R3).is_file(), reason="fluid-soundfont-gm is not installed")
def test_mixed_sources_keep_generated_items_identical(tmp_path):
    from composer.data.corpus import build_corpus

    common = dict(seed=3, soundfont=FLUID_R3, validation_soundfont=FLUID_R3, progress=False)
    generated = build_corpus(tmp_path / "generated", minutes=0.5, **common)
    mixed = build_corpus(tmp_path / "mixed", minutes=1.5, sources=("generated", "folk", "chorales"), **common)
    names = sorted(r["file_name"] for r in mixed)
    assert names == ["audio/chorale_00000.flac", "audio/folk_00000.flac", "audio/song_00000.flac"]
    assert [r["file_name"] for r in generated] == ["audio/song_00000.flac"]
    # (the audio itself is not compared: FluidSynth's output depends on what the process rendered before)
    for sub in ("records/song_00000.json", "plans/song_00000.json", "labels/song_00000.npy"):
        assert (tmp_path / "generated" / sub).read_bytes() == (tmp_path / "mixed" / sub).read_bytes(), sub
    by_name = {r["file_name"]: r for r in mixed}
    assert by_name["audio/song_00000.flac"]["licence"] == "generated"
    chorale = by_name["audio/chorale_00000.flac"]
    assert chorale["licence"] == "public-domain" and chorale["source"].startswith("music21 corpus: bach/bwv")
