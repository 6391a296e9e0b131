"""structure.analysis on songs synthesised from plans: each feature finds what was put in."""

from __future__ import annotations

import warnings

import librosa
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic_song import RATE, make_plan, pop_plan, render

from structure.analysis import (
    Analysis,
    analyze,
    chord_scores,
    chord_templates,
    estimate_key,
    estimate_plan,
)
from structure.harmony import parse_chord
from structure.schema import Key, SongPlan


def _starts(plan: SongPlan) -> np.ndarray:
    return np.array([start for start, _ in plan.section_times()])


def _same_chord(a: str, b: str) -> bool:
    return parse_chord(a).pitch_classes == parse_chord(b).pitch_classes


@pytest.fixture(scope="module")
def pop_128():
    plan = pop_plan(128.0, "G major")
    return plan, analyze(render(plan), RATE)


@pytest.fixture(scope="module")
def minor_100():
    plan = pop_plan(100.0, "A minor")
    return plan, analyze(render(plan), RATE)


@pytest.fixture(scope="module")
def waltz():
    plan = make_plan(tempo=96.0, key="D major", beats_per_bar=3, form=[
        ("verse 1", "verse", 8, ["D", "G", "A", "D"]), ("chorus 1", "chorus", 8, ["G", "A", "Bm", "D"]),
        ("verse 2", "verse", 8, ["D", "G", "A", "D"]), ("chorus 2", "chorus", 8, ["G", "A", "Bm", "D"])])
    return plan, analyze(render(plan), RATE)


@pytest.mark.parametrize("song", ["pop_128", "minor_100", "waltz"])
def test_tempo_meter_and_key(song, request):
    plan, analysis = request.getfixturevalue(song)
    assert analysis.tempo_bpm == pytest.approx(plan.tempo_bpm, rel=0.02)
    assert analysis.beats_per_bar == plan.beats_per_bar
    assert analysis.key == plan.key
    assert analysis.duration == pytest.approx(plan.duration, abs=0.01)


@pytest.mark.parametrize("song", ["pop_128", "minor_100", "waltz"])
def test_beats_and_downbeats_lie_on_the_planned_grid(song, request):
    plan, analysis = request.getfixturevalue(song)
    spb = plan.seconds_per_beat
    bar = spb * plan.beats_per_bar
    assert len(analysis.beats) >= 0.9 * plan.total_beats
    beat_error = np.abs((analysis.beats + spb / 2) % spb - spb / 2)
    assert np.median(beat_error) < 0.05
    bar_error = np.abs((analysis.downbeats + bar / 2) % bar - bar / 2)
    assert np.all(bar_error < 0.1)
    assert np.all(np.isin(analysis.downbeats, analysis.beats))


@pytest.mark.parametrize("song", ["pop_128", "minor_100", "waltz"])
def test_boundaries_within_a_second(song, request):
    plan, analysis = request.getfixturevalue(song)
    planned = _starts(plan)
    assert analysis.boundaries[0] == 0.0
    assert len(analysis.boundaries) == len(planned)
    assert np.all(np.abs(analysis.boundaries - planned) < 1.0)


@pytest.mark.parametrize("song", ["pop_128", "minor_100"])
def test_beat_chords_follow_the_plan(song, request):
    plan, analysis = request.getfixturevalue(song)
    bar = plan.seconds_per_beat * plan.beats_per_bar
    planned = [chords[0] for section in plan.sections for chords in section.chords]
    hits = [_same_chord(chord, planned[min(int((time + 0.05) // bar), len(planned) - 1)])
            for time, chord in zip(analysis.beats, analysis.chords)]
    assert len(analysis.chords) == len(analysis.beats)
    assert np.mean(hits) >= 0.9


def test_frame_features_have_matching_shapes(pop_128):
    _, analysis = pop_128
    frames = len(analysis.frame_times)
    assert analysis.chroma.shape == (frames, 12)
    assert analysis.mfcc.shape[0] == analysis.rms.shape[0] == analysis.onset_envelope.shape[0] == frames
    assert analysis.log_mel.shape[0] == frames
    assert np.all(np.diff(analysis.frame_times) > 0)
    assert analysis.frame_times[-1] == pytest.approx(analysis.duration, abs=2 * analysis.hop_seconds)


def test_estimate_plan_describes_the_song(pop_128):
    plan, analysis = pop_128
    estimate = estimate_plan(analysis, title="copy", tags={"genre": "pop"})
    assert SongPlan.from_dict(estimate.to_dict()).to_dict() == estimate.to_dict()
    assert estimate.title == "copy" and estimate.tags == {"genre": "pop"}
    assert estimate.tempo_bpm == pytest.approx(128.0, rel=0.02)
    assert estimate.beats_per_bar == 4 and estimate.key == Key("G", "major")
    assert [s.bars for s in estimate.sections] == [s.bars for s in plan.sections]
    assert [s.kind for s in estimate.sections] == [s.kind for s in plan.sections]
    assert all(s.repeat_of is None for s in estimate.sections)
    assert len({s.name for s in estimate.sections}) == len(estimate.sections)
    planned = [c[0] for s in plan.sections for c in s.chords]
    estimated = [c[0] for s in estimate.sections for c in s.chords]
    assert np.mean([_same_chord(a, b) for a, b in zip(planned, estimated)]) >= 0.9
    energy = {s.kind: s.energy for s in estimate.sections}
    assert energy["chorus"] == 1.0 and energy["intro"] < energy["verse"] < energy["chorus"]
    assert abs(estimate.duration - analysis.duration) <= 60.0 * 4 / estimate.tempo_bpm


def test_estimate_plan_of_a_waltz(waltz):
    plan, analysis = waltz
    estimate = estimate_plan(analysis)
    assert estimate.beats_per_bar == 3
    assert [s.kind for s in estimate.sections] == ["verse", "chorus", "verse", "chorus"]
    assert estimate.total_bars == plan.total_bars


def test_stereo_input_at_another_rate():
    plan = make_plan(tempo=110.0, key="E minor", form=[
        ("verse", "verse", 4, ["Em", "Am", "B", "Em"]), ("chorus", "chorus", 4, ["C", "Am", "B", "Em"])])
    mono = render(plan)
    stereo = np.stack([mono, mono * 0.8])
    stereo = np.repeat(stereo, 2, axis=1)  # 44.1 kHz by sample doubling: same content
    analysis = analyze(stereo, 2 * RATE)
    assert analysis.tempo_bpm == pytest.approx(110.0, rel=0.02)
    assert analysis.key == Key("E", "minor")
    assert analysis.duration == pytest.approx(plan.duration, abs=0.01)


@pytest.mark.parametrize("seconds", [0.01, 3.0])
def test_silence_gives_an_empty_but_valid_analysis(seconds):
    analysis = analyze(np.zeros(int(seconds * RATE), dtype=np.float32), RATE)
    assert analysis.tempo_bpm == 0.0 and len(analysis.beats) == 0 and analysis.chords == []
    assert list(analysis.boundaries) == [0.0]
    plan = estimate_plan(analysis)
    assert plan.total_bars >= 1 and plan.sections[0].chords[0] == ["N"]
    SongPlan.from_dict(plan.to_dict())


def test_key_profiles_find_scales():
    scale = np.zeros(12)
    scale[[0, 2, 4, 5, 7, 9, 11]] = 1.0
    scale[[0, 4, 7]] += 1.0  # tonic triad weighs more, as in music
    for tonic in (0, 3, 7, 10):
        key, _ = estimate_key(np.roll(scale, tonic))
        assert key.pitch_class == tonic and key.mode == "major"
    minor = np.zeros(12)
    minor[[9, 11, 0, 2, 4, 5, 8]] = 1.0  # A harmonic minor
    minor[[9, 0, 4]] += 1.0
    assert estimate_key(minor)[0] == Key("A", "minor")
    # When the chroma cannot tell keys apart, the share of beats on each tonic chord does.
    flat = np.ones(12)
    assert estimate_key(flat, ["Am", "Dm", "Am", "E", "Am"])[0] == Key("A", "minor")
    assert estimate_key(flat, ["C", "F", "C", "G", "C"])[0] == Key("C", "major")
    assert estimate_key(np.zeros(12))[0] == Key("C", "major")


def test_chord_templates_name_triads():
    symbols, templates = chord_templates()
    assert len(symbols) == 24 and templates.shape == (24, 12)
    assert np.allclose(np.linalg.norm(templates, axis=1), 1.0)
    for symbol in ("C", "Am", "F#", "Ebm", "Bb"):
        chroma = np.zeros(12)
        chroma[list(parse_chord(symbol).pitch_classes)] = 1.0
        chroma[parse_chord(symbol).root] = 1.5  # bass on the root
        assert _same_chord(symbols[int(np.argmax(chord_scores(chroma)[0]))], symbol)


def _fake_analysis(duration: float, tempo: float, beats_per_bar: int, boundaries: list[float]) -> Analysis:
    beats = np.arange(0.0, duration, 60.0 / tempo)
    frame_times = np.arange(0.0, duration, 0.05)
    rng = np.random.default_rng(0)
    return Analysis(duration=duration, tempo_bpm=tempo, beats=beats, downbeats=beats[::beats_per_bar],
                    beats_per_bar=beats_per_bar, key=Key("D", "minor"), key_strength=0.8,
                    frame_times=frame_times, chroma=rng.random((len(frame_times), 12)),
                    mfcc=rng.standard_normal((len(frame_times), 20)), rms=rng.random(len(frame_times)),
                    log_mel=rng.standard_normal((len(frame_times), 128)),
                    onset_envelope=rng.random(len(frame_times)), chords=["Dm"] * len(beats),
                    boundaries=np.array([0.0] + sorted(boundaries)))


@settings(max_examples=40, deadline=None)
@given(duration=st.floats(2.0, 400.0), tempo=st.floats(40.0, 240.0), beats_per_bar=st.sampled_from([3, 4]),
       fractions=st.lists(st.floats(0.0, 1.0), max_size=12))
def test_estimated_plan_lasts_the_audio_within_one_bar(duration, tempo, beats_per_bar, fractions):
    analysis = _fake_analysis(duration, tempo, beats_per_bar, [f * duration for f in fractions])
    plan = estimate_plan(analysis)
    bar_seconds = beats_per_bar * 60.0 / plan.tempo_bpm
    assert abs(plan.duration - duration) <= bar_seconds + 1e-9
    assert all(section.bars >= 1 and len(section.chords) == section.bars for section in plan.sections)
    SongPlan.from_dict(plan.to_dict())


@pytest.mark.parametrize("length", [100, 512, 2047, 2048, 5000, 66167])
def test_streamed_parts_of_the_analysis_equal_librosa(length):
    """The frame RMS from per-hop sums, the blocked mel spectrogram and the chunked resampling
    give librosa's values without its whole-song working copies."""
    from structure.analysis import frame_rms, mel_power, resample

    y = (np.random.default_rng(length).standard_normal(length) * 0.3).astype(np.float32)
    np.testing.assert_allclose(frame_rms(y), librosa.feature.rms(y=y, frame_length=2048, hop_length=512)[0],
                               rtol=1e-5, atol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa: n_fft too large for the shortest input
        whole = librosa.feature.melspectrogram(y=y, sr=24000, n_fft=256, hop_length=64, n_mels=32)
    np.testing.assert_allclose(mel_power(y, 24000, n_fft=256, hop=64, n_mels=32, block_frames=7), whole,
                               rtol=1e-5, atol=1e-12)  # the same frames; the matrix product's rounding differs
    np.testing.assert_array_equal(resample(y, 24000, 22050, chunk_seconds=0.01),
                                  librosa.resample(y, orig_sr=24000, target_sr=22050))


def test_seam_curves_and_levels_in_blocks_equal_the_whole(monkeypatch):
    from composer.evaluate import metrics, seams

    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((2, 24000 * 4 + 77)) * 0.2).astype(np.float32)
    audio[:, :24000] *= 1e-4
    audio[0, :5] = 1.0
    flux, jump, rate = seams._seam_curves(audio, 24000)
    levels = metrics.loudness_metrics(audio, 24000)
    monkeypatch.setattr(seams, "SEAM_BLOCK_FRAMES", 50)
    monkeypatch.setattr(metrics, "LEVEL_BLOCK_SAMPLES", 3000)
    blocked = seams._seam_curves(audio, 24000)
    np.testing.assert_allclose(blocked[0], flux, rtol=1e-6)  # (a one-frame block sums in another order)
    np.testing.assert_allclose(blocked[1], jump, rtol=1e-6)
    assert metrics.loudness_metrics(audio, 24000) == levels
    # the reference: librosa's log-mel differenced in one piece
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=audio.mean(axis=0), sr=24000, n_fft=256, hop_length=64,
                                                             n_mels=seams.SEAM_MELS), ref=1.0, top_db=None)
    mel = np.maximum(mel, mel.max() - 80.0)
    step = np.diff(mel, axis=1)
    np.testing.assert_allclose(flux[1:], np.maximum(step, 0.0).mean(axis=0), rtol=1e-6)
    assert levels["clipping_ratio"] == 5 / audio.size and levels["silence_ratio"] > 0.2


@pytest.mark.parametrize(("channels", "seconds", "rate"), [(1, 2.0, 24000), (2, 7.01, 24000), (1, 5.2, 44100)])
def test_streamed_loudness_is_pyloudnorms(channels, seconds, rate):
    """The chunked BS.1770 measure gives pyloudnorm's value exactly, at any chunk size."""
    import pyloudnorm

    from composer.rendering.loudness import _streamed_loudness, integrated_loudness

    rng = np.random.default_rng(channels)
    audio = (rng.standard_normal((channels, int(seconds * rate))) * 0.1).astype(np.float32)
    audio[:, : audio.shape[1] // 3] *= 1e-3  # a quiet third: the gates matter
    reference = pyloudnorm.Meter(rate).integrated_loudness(audio.T.copy())
    for chunk in (1000, 9601, 1 << 20):
        assert _streamed_loudness(audio, rate, chunk) == reference
    assert integrated_loudness(audio, rate) == reference
    assert integrated_loudness(np.zeros((1, rate)), rate) == float("-inf")


def test_an_analysed_plan_names_its_sections_as_the_planner_does():
    # "chorus1", not "chorus 1": `repaint --section chorus1` works on a restyled song as on any other
    from synthetic_song import RATE, pop_plan, render

    from structure.analysis import analyze, estimate_plan

    plan = estimate_plan(analyze(render(pop_plan(120.0, "G major")), RATE))
    assert all(" " not in s.name and s.name == f"{s.kind}{s.name[len(s.kind):]}" for s in plan.sections)
    assert all(s.name[len(s.kind):].isdigit() for s in plan.sections)
