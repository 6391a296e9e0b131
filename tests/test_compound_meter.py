"""Compound meters: 6/8, 9/8 and 12/8 are planned as two, three and four dotted-quarter beats a
bar of three eighths each (the tempo counts dotted quarters), and every part that reads the
plan (melody, arrangement, lead sheet, timed lyrics, editing, rendering) keeps that."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from structure.arrangement import arrange
from structure.editing import apply_rows, plan_rows
from structure.export import musicxml_bytes, timed_lyrics
from structure.planner import plan
from structure.prompt import parse_meter, parse_prompt
from structure.schema import PlanError, SongPlan
from structure.styles import KICK, SIDE_STICK, SNARE, get_style

LYRICS = """[Verse]
The river runs down to the sea tonight
And I will follow where the water goes

[Chorus]
Carry me home, carry me home
Over the hills and the heather
"""


def _on_grid(value: float, step: float) -> bool:
    return abs(value / step - round(value / step)) < 1e-3


@pytest.mark.parametrize(("text", "beats", "division", "meter"), [
    ("6/8", 2, 3, "6/8"), ("9/8", 3, 3, "9/8"), ("12/8", 4, 3, "12/8"),
    ("3/4", 3, 2, "3/4"), ("4", 4, 2, "4/4"), ("6/4", 6, 2, "6/4"),
])
def test_time_signatures_read_as_beats_and_their_division(text, beats, division, meter):
    assert tuple(parse_meter(text, "meter")) == (beats, division)
    song = plan(f"genre=folk meter={text}", duration=30, seed=1, write_lyrics=False)
    assert (song.beats_per_bar, song.beat_division, song.meter) == (beats, division, meter)


def test_an_irregular_eighth_meter_is_planned_in_quarters_and_said_so(caplog):
    with caplog.at_level(logging.WARNING):
        assert tuple(parse_meter("5/8", "prompt meter")) == (5, 2)
    assert "5/8 is planned as 5/4" in caplog.text
    assert parse_prompt("a jig in 6/8 about the sea").beat_division == 3


def test_the_tempo_counts_dotted_quarters():
    given = plan("genre=folk tempo=66 meter=6/8", duration=60, seed=3, write_lyrics=False)
    assert given.tempo_bpm == 66 and abs(given.seconds_per_beat - 60 / 66) < 1e-12
    assert abs(given.duration - given.total_bars * 2 * 60 / 66) < 1e-9
    low, high = get_style("folk").tempo_range
    for seed in range(12):  # the style's pace of eighths: two thirds of its quarter-note tempo
        drawn = plan("genre=folk meter=6/8", duration=60, seed=seed, write_lyrics=False).tempo_bpm
        assert round(low * 2 / 3) <= drawn <= round(high * 2 / 3), drawn
        assert abs(plan("genre=folk meter=6/8", duration=60, seed=seed, write_lyrics=False).duration - 60) <= 2 * 60 / drawn


def test_the_melody_moves_in_eighths_of_three_a_beat():
    song = plan("genre=folk meter=6/8", lyrics=LYRICS, seed=5)
    notes = [n for s in song.sections for n in s.melody]
    assert notes
    for note in notes:
        assert _on_grid(note.start, 1 / 6) and _on_grid(note.duration, 1 / 6), note
    offsets = [round(n.start % 1, 3) for n in notes]
    on_eighths = sum(_on_grid(n.start, 1 / 3) for n in notes)
    assert on_eighths >= 0.8 * len(notes)  # sixteenths only where a line is crowded
    assert 0.667 in offsets  # the third eighth of a beat, the lilt of 6/8
    sung = [n for s in song.sections for n in s.melody if n.syllable and n.syllable != "_"]
    assert len(sung) >= 30


def test_the_arrangement_plays_in_six_eight():
    song = plan("genre=folk tempo=60 meter=6/8", duration=40, seed=2, write_lyrics=False)
    midi = arrange(song)
    signature = midi.time_signature_changes[0]
    assert (signature.numerator, signature.denominator) == (6, 8)
    eighth = song.seconds_per_beat / 3
    parts = {inst.name: inst for inst in midi.instruments}
    for name in ("melody", "bass", "chords", "drums"):
        assert parts[name].notes, name
        for note in parts[name].notes:
            assert _on_grid(note.start, eighth / 2), (name, note.start)
    bar = 2 * song.seconds_per_beat
    drums = parts["drums"].notes
    kicks = [n.start for n in drums if n.pitch == KICK]
    backbeats = [n.start for n in drums if n.pitch in (SNARE, SIDE_STICK)]
    assert kicks and backbeats
    assert all(_on_grid(t, bar) for t in kicks)  # the folk groove's kick on each bar's first beat
    assert all(_on_grid(t - song.seconds_per_beat, bar) for t in backbeats)  # the backbeat on its second
    arpeggio = sorted({round(n.start, 6) for n in parts["chords"].notes})
    assert np.allclose(np.diff(arpeggio)[:12], eighth)  # the folk arpeggio on every eighth
    # the file's tempo counts quarter notes, so a DAW's (and pretty_midi's) bar lines are the plan's
    assert midi.get_tempo_changes()[1][0] == pytest.approx(60 * 1.5)
    downbeats = midi.get_downbeats()
    assert np.allclose(np.diff(downbeats)[:8], bar)


def test_the_lead_sheet_and_timed_lyrics_are_in_six_eight():
    song = plan("genre=folk meter=6/8 tempo=60", lyrics=LYRICS, seed=4)
    xml = musicxml_bytes(song).decode()
    assert "<beats>6</beats>" in xml and "<beat-type>8</beat-type>" in xml
    assert "<beat-unit-dot" in xml and "<per-minute>60</per-minute>" in xml
    assert xml.count("<measure ") == song.total_bars  # two dotted quarters fill a 6/8 bar
    lines = timed_lyrics(song)
    first_sung = next(s for s in song.sections if s.lyrics)
    start_beat = dict(zip([s.name for s in song.sections], song.section_beats()))[first_sung.name][0]
    first_note = next(n for n in first_sung.melody if n.syllable and n.syllable != "_")
    assert lines[0].words[0][0] == round((start_beat + first_note.start) * song.seconds_per_beat, 3)


def test_the_plan_file_keeps_the_division_and_older_plans_read_as_simple():
    song = plan("genre=ballad meter=12/8", duration=45, seed=6, write_lyrics=False)
    data = json.loads(song.to_json())
    assert data["beat_division"] == 3
    again = SongPlan.from_json(song.to_json())
    assert again.meter == "12/8" and again.to_json() == song.to_json()
    simple = json.loads(plan("genre=pop", duration=20, seed=6, write_lyrics=False).to_json())
    assert "beat_division" not in simple  # a 4/4 plan is written as before
    assert SongPlan.from_dict(simple).beat_division == 2
    with pytest.raises(PlanError) as error:
        SongPlan.from_dict({**data, "beat_division": 4})
    assert error.value.field == "beat_division"


def test_editing_keeps_the_compound_meter():
    song = plan("genre=folk meter=6/8", lyrics=LYRICS, seed=7)
    same = apply_rows(song, plan_rows(song))
    assert same.meter == "6/8" and same.to_json() == song.to_json()
    rows = plan_rows(song)
    verse = next(i for i, s in enumerate(song.sections) if s.kind == "verse")
    rows[verse][6] = "A new line to sing on the water / And one more line for the road"
    edited = apply_rows(song, rows, beats_per_bar=4)
    assert edited.meter == "12/8"
    resketched = edited.sections[verse].melody
    assert resketched and all(_on_grid(n.start, 1 / 6) for n in resketched)


def test_a_compound_song_renders_its_planned_length():
    from conftest import tiny_codec, tiny_model

    from composer.rendering import RenderOptions, render

    codec = tiny_codec()
    model = tiny_model(codec, window_frames=32)
    song = plan("genre=folk tempo=70 meter=6/8", duration=12, seed=8, write_lyrics=False)
    result = render(song, seed=1, codec=codec, model=model, progress=False,
                    options=RenderOptions(steps=2, evaluate=False, overlap_seconds=0.06))
    assert abs(result.audio.shape[-1] / result.sample_rate - song.duration) < 0.05
    assert np.isfinite(result.audio).all() and np.abs(result.audio).max() > 0


def test_three_chords_in_a_six_eight_bar_all_sound_and_odd_compound_bars_are_refused():
    song = plan("genre=rock tempo=66 meter=6/8", duration=20, seed=9, write_lyrics=False)
    for section in song.sections:
        section.chords = [["C", "F", "G"] for _ in section.chords]
    parts = {inst.name: inst for inst in arrange(song).instruments}
    bar = 2 * song.seconds_per_beat
    pitch_classes = {"C": {0, 4, 7}, "F": {5, 9, 0}, "G": {7, 11, 2}}
    for name in ("bass", "chords"):
        starts = {round((n.start % bar) / (bar / 3)) % 3 for n in parts[name].notes}
        assert starts == {0, 1, 2}, (name, starts)  # every chord of the bar is played
        for note in parts[name].notes:  # and only in its own third of the bar (none at the next one's start)
            third = int(note.start / (bar / 3) + 1e-6)
            sounding = "CFG"[third % 3]
            assert note.pitch % 12 in pitch_classes[sounding], (name, note.start, note.pitch, sounding)
            assert note.end <= (third + 1) * bar / 3 + 1e-6, (name, note.start, note.end)
    data = json.loads(song.to_json())
    with pytest.raises(PlanError) as error:
        SongPlan.from_dict({**data, "beats_per_bar": 6})  # 18/8
    assert error.value.field == "beats_per_bar" and "6/8, 9/8, 12/8" in error.value.problem


def test_a_compound_phrase_ends_a_breath_of_an_eighth_before_the_next():
    song = plan("genre=ballad meter=12/8", lyrics=LYRICS, seed=10)
    for section in song.sections:
        for note in section.melody:
            assert _on_grid(note.start + note.duration, 1 / 6), note  # ends on the eighths' grid too


def test_a_persona_day_in_six_eight_draws_its_tempo_from_its_own_meter():
    from composer.errors import InputError
    from composer.persona.daily import check_pins
    from composer.persona.priors import Priors

    class Fixed:  # the same quantile for every draw
        def __init__(self, at):
            self.at = at

        def __call__(self):
            return self.at

    jigs = [{"meter": "6/8", "tempo": t} for t in (58.0, 60.0, 62.0, 64.0, 66.0)]
    reels = [{"meter": "4/4", "tempo": t} for t in (100.0, 110.0, 120.0, 130.0, 140.0)]
    priors = Priors.from_songs(jigs + reels)
    assert priors.meter_tempo == {"6/8": [58.0, 60.0, 62.0, 64.0, 66.0]}
    day = priors.draw(Fixed(0.9))  # the quantile that draws 6/8 ("4" < "6/8") draws the jigs' tempo
    assert (day["values"]["beats_per_bar"], day["values"]["beat_division"]) == (2, 3)
    assert day["values"]["tempo"] == 66.0 and day["priors"]["tempo"] == "P(tempo | meter=6/8)"
    assert "beat_division" not in priors.draw(Fixed(0.1))["values"]
    few = Priors.from_songs(jigs[:2] + reels)  # too few of its own: two thirds of the drawn tempo
    day = few.draw(Fixed(0.9))
    assert day["values"].get("beat_division") == 3
    assert day["values"]["tempo"] == round(140.0 * 2 / 3, 1) and "x 2/3" in day["priors"]["tempo"]
    pinned = few.draw(Fixed(0.9), {"tempo": 70.0})
    assert pinned["values"]["tempo"] == 70.0 and pinned["values"]["beat_division"] == 3
    with pytest.raises(InputError, match="comes with the meter"):
        check_pins({"beat_division": "3"})
    from composer.persona.priors import song_meter

    # the labels `composer data analyze` fills for a song it finds compound, and for one it finds simple
    assert song_meter({"beats_per_bar": 4, "beat_division": 3}) == "12/8"
    assert song_meter({"beats_per_bar": 4, "beat_division": 2}) == "4"
    assert song_meter({"meter": "3/4", "beats_per_bar": 4, "beat_division": 3}) == "3"  # the song's own word first
    # a 6/8 song whose tempo an analysis read without hearing its compound beat (on the eighths, 3x):
    # not a tempo of dotted quarters, so not in the 6/8 days' tempos
    misread = [{"meter": "6/8", "tempo": 180.0, "analysed_fields": ["tempo"], "beat_division": 2}] * 5
    heard = [{"meter": "6/8", "tempo": 60.0, "analysed_fields": ["tempo"], "beat_division": 3}] * 5
    own = [{"meter": "6/8", "bpm": 62, "tempo": 186.0, "analysed_fields": ["tempo"]}] * 5
    assert Priors.from_songs(misread + heard + own).meter_tempo == {"6/8": [60.0] * 5 + [62.0] * 5}
