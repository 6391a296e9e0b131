"""structure.analysis on FluidSynth guide renders of planned songs: tempo and key come back.

Twenty plans of every style, tempos spread over 70-150 BPM, all twelve tonics in
both modes, 40-60 s each, rendered with the training soundfont. The tempo must
come back within 4 % (an octave or a 2:3 error is a failure, not a near miss);
the key, or its relative, in at least 18 of 20.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from structure.analysis import analyze
from structure.arrangement import arrange
from structure.planner import plan
from structure.schema import PITCH_CLASS, Key
from structure.synth import TRAINING_SOUNDFONT, render_midi

pytestmark = pytest.mark.slow

STYLES = ("pop", "rock", "folk", "ballad", "electronic", "hip-hop", "jazz", "country", "waltz", "blues")
TONICS = ("C", "G", "D", "A", "E", "B", "F#", "Db", "Ab", "Eb", "Bb", "F")


def _cases() -> list[tuple[str, float, str, float, int]]:
    """(style, tempo, key, duration, seed): 20 plans, each style twice, tempos evenly over 70..150."""
    tempos = [round(70 + 80 * i / 19) for i in range(20)]
    random.Random(0).shuffle(tempos)
    cases = []
    for i in range(20):
        key = f"{TONICS[i % 12]} {'minor' if (i + i // 12) % 2 else 'major'}"
        cases.append((STYLES[i % 10], float(tempos[i]), key, 40.0 + (7 * i) % 21, 1000 + i))
    return cases


def _relative(key: Key) -> tuple[int, str]:
    if key.mode == "major":
        return (key.pitch_class + 9) % 12, "minor"
    return (key.pitch_class + 3) % 12, "major"


@pytest.fixture(scope="module")
def results():
    if not Path(TRAINING_SOUNDFONT).is_file():
        pytest.skip(f"{TRAINING_SOUNDFONT} is not installed (fluid-soundfont-gm)")
    rows = []
    for style, tempo, key, duration, seed in _cases():
        song = plan(f'genre={style} tempo={tempo:g} key="{key}"', duration=duration, seed=seed, write_lyrics=False)
        audio, rate = render_midi(arrange(song), soundfont=TRAINING_SOUNDFONT, duration=song.duration)
        analysis = analyze(audio, rate)
        rows.append((song, analysis))
    return rows


def test_the_cases_are_varied():
    cases = _cases()
    assert {c[0] for c in cases} == set(STYLES)
    tempos = [c[1] for c in cases]
    assert min(tempos) == 70 and max(tempos) == 150 and len(set(tempos)) == 20
    assert len({c[2] for c in cases}) == 20 and {c[2].split()[1] for c in cases} == {"major", "minor"}
    assert all(40 <= c[3] <= 60 for c in cases)


def _tempo_misses(results, cases):
    return [(song.style, song.tempo_bpm, round(analysis.tempo_bpm, 2)) for song, analysis in results
            if (song.style, song.tempo_bpm) in cases and abs(analysis.tempo_bpm / song.tempo_bpm - 1) > 0.04]


def test_tempo_comes_back_within_4_percent(results):
    """Every case, the slow ones too: an electronic arrangement at 70 BPM (bass and open hi-hat
    on every off-beat) was read at 140 until the analysis decided the octave from the accents."""
    cases = {(song.style, song.tempo_bpm) for song, _ in results}
    assert len(cases) == 20
    misses = _tempo_misses(results, cases)
    assert not misses, f"tempo (style, planned, estimated): {misses}"


def test_key_or_relative_comes_back_in_18_of_20(results):
    hits, misses = 0, []
    for song, analysis in results:
        found = (PITCH_CLASS[analysis.key.tonic], analysis.key.mode)
        if found == (song.key.pitch_class, song.key.mode) or found == _relative(song.key):
            hits += 1
        else:
            misses.append((song.style, str(song.key), str(analysis.key)))
    assert hits >= 18, f"{hits}/20; misses (style, planned, estimated): {misses}"


def test_beats_lie_on_the_planned_grid(results):
    for song, analysis in results:
        spb = song.seconds_per_beat
        distance = np.abs((analysis.beats + spb / 2) % spb - spb / 2)
        assert np.median(distance) < 0.05, (song.style, song.tempo_bpm, float(np.median(distance)))


COMPOUND = (("folk", "6/8", 71.0), ("ballad", "12/8", 47.0), ("pop", "6/8", 73.0), ("country", "12/8", 61.0),
            ("rock", "6/8", 71.0), ("waltz", "9/8", 65.0), ("jazz", "12/8", 76.0), ("blues", "12/8", 52.0))


@pytest.fixture(scope="module")
def compound_results():
    if not Path(TRAINING_SOUNDFONT).is_file():
        pytest.skip(f"{TRAINING_SOUNDFONT} is not installed (fluid-soundfont-gm)")
    rows = []
    for index, (style, meter, tempo) in enumerate(COMPOUND):
        song = plan(f"genre={style} meter={meter} tempo={tempo:g}", duration=30, seed=20_000 + index,
                    write_lyrics=False)
        audio, rate = render_midi(arrange(song), soundfont=TRAINING_SOUNDFONT, duration=song.duration)
        rows.append((song, analyze(audio, rate)))
    return rows


def test_compound_meters_are_found_with_their_dotted_quarter_tempo(compound_results):
    """A 6/8 guide is read on its dotted quarter, or on two eighths (as 3/4 at 3/2 of its tempo,
    which the eighths' accents in threes correct), or on the eighths (three times the tempo,
    which every third eighth's accent corrects, the 47-BPM ballad here; the 52-BPM blues' shuffle
    accents its eighths too evenly to tell from a fast 3/4, so that reading stays).
    `test_tempo_comes_back_within_4_percent` and `test_fast_three_four_stays_three_four` are the
    other side: no simple guide is read as compound at another tempo."""
    found = []
    for song, analysis in compound_results:
        ratio = analysis.tempo_bpm / song.tempo_bpm
        if analysis.beat_division == 3:
            found.append(song.style)
            assert abs(ratio - 1) <= 0.04, (song.style, song.meter, song.tempo_bpm, analysis.tempo_bpm)
        else:
            assert abs(ratio - 3) <= 0.12, (song.style, song.meter, song.tempo_bpm, analysis.tempo_bpm)
    assert len(found) >= 7 and "ballad" in found, found


@pytest.mark.parametrize("prompt", ["genre=waltz tempo=150", "genre=folk meter=3/4 tempo=160"])
def test_fast_three_four_stays_three_four(prompt):
    """A fast 3/4's downbeats are accented in threes too, but far less than a slow 12/8's eighths."""
    if not Path(TRAINING_SOUNDFONT).is_file():
        pytest.skip(f"{TRAINING_SOUNDFONT} is not installed (fluid-soundfont-gm)")
    song = plan(prompt, duration=30, seed=7, write_lyrics=False)
    audio, rate = render_midi(arrange(song), soundfont=TRAINING_SOUNDFONT, duration=song.duration)
    analysis = analyze(audio, rate)
    assert analysis.beat_division == 2 and analysis.beats_per_bar == 3
    assert abs(analysis.tempo_bpm / song.tempo_bpm - 1) <= 0.04, analysis.tempo_bpm


def test_an_analysed_compound_plan_is_compound(compound_results):
    from structure.analysis import estimate_plan

    song, analysis = next((s, a) for s, a in compound_results if a.beat_division == 3)
    described = estimate_plan(analysis)
    assert described.compound and described.meter in ("6/8", "9/8", "12/8")
    assert abs(described.tempo_bpm / song.tempo_bpm - 1) <= 0.04


def test_simple_guides_are_not_read_as_compound(results):
    compound = [(song.style, song.tempo_bpm) for song, analysis in results if analysis.beat_division == 3]
    assert not compound, compound  # the swung jazz and blues guides among them too


def test_audio_without_a_pitched_peak_is_in_tune_without_a_warning():
    """A DC offset or silence: librosa warned "Trying to estimate tuning from empty frequency
    set" on the user's terminal (restyle of such a file)."""
    import warnings

    from structure.analysis import estimate_tuning

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert estimate_tuning(np.full(22050 * 3, 0.3, np.float32), bins_per_octave=36) == 0.0
