"""`arrange(plan)`: the plan as a multi-track pretty_midi arrangement.

Tracks: melody, bass, chords (comping per style) and drums (pattern per style,
denser with energy). Everything is placed on the plan's beat grid, so labels
derived from the plan line up with the rendered audio exactly.
"""

from __future__ import annotations

import math

import pretty_midi

from structure.harmony import parse_chord
from structure.schema import SongPlan
from structure.styles import (
    CLOSED_HAT,
    COMPOUND_DRUM_PATTERNS,
    CRASH,
    DRUM_PATTERNS,
    KICK,
    RIDE,
    Style,
    get_style,
)

TRACK_NAMES = ("melody", "bass", "chords", "drums")


def arrange(plan: SongPlan, *, style: Style | None = None, programs: dict[str, int] | None = None,
            transpose: int = 0) -> pretty_midi.PrettyMIDI:
    """Multi-track MIDI of the plan. `programs` overrides GM programs per track name."""
    style = style or get_style(plan.style)
    programs = {"melody": style.melody_program, "bass": style.bass_program,
                "chords": style.chord_program, **(programs or {})}
    # MIDI counts tempo in quarter notes: a compound beat (a dotted quarter) is 1.5 of them, so a
    # DAW's bar lines fall where the plan's do (notes are placed in seconds either way)
    midi = pretty_midi.PrettyMIDI(initial_tempo=plan.tempo_bpm * plan.quarters_per_beat)
    midi.time_signature_changes.append(pretty_midi.TimeSignature(*plan.time_signature, 0.0))
    compound = plan.compound
    tracks = {name: pretty_midi.Instrument(program=programs[name], name=name) for name in ("melody", "bass", "chords")}
    drums = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
    spb = plan.seconds_per_beat
    for section, (start_beat, _) in zip(plan.sections, plan.section_beats()):
        velocity = int(60 + 50 * section.energy)
        for note in section.melody:
            onset = (start_beat + note.start) * spb
            tracks["melody"].notes.append(pretty_midi.Note(
                velocity=min(127, velocity + 10), pitch=note.pitch + transpose,
                start=onset, end=onset + note.duration * spb * 0.95))
        for bar, chords in enumerate(section.chords):
            bar_beat = start_beat + bar * plan.beats_per_bar
            beats_each = plan.beats_per_bar / len(chords)
            for c, symbol in enumerate(chords):
                chord = parse_chord(symbol)
                if chord.root is None:
                    continue
                chord_beat = bar_beat + c * beats_each
                _bass(tracks["bass"], chord.bass if chord.bass is not None else chord.root, chord.pitch_classes,
                      chord_beat, beats_each, spb, velocity, style, transpose, compound)
                _comp(tracks["chords"], chord.pitch_classes, chord_beat, beats_each, spb, velocity - 15, style, transpose,
                      compound)
        if style.drums and section.energy >= 0.3:
            if compound:
                _compound_drums(drums, start_beat, section.bars, plan.beats_per_bar, spb, section.energy, style)
            else:
                _drums(drums, start_beat, section.bars, plan.beats_per_bar, spb, section.energy, style)
    midi.instruments.extend([tracks["melody"], tracks["bass"], tracks["chords"], drums])
    return midi


def _bass(track, root_pc, pcs, beat, beats, spb, velocity, style: Style, transpose: int,
          compound: bool = False) -> None:
    root = 36 + (root_pc + transpose) % 12  # C2..B2
    fifth = root + 7
    if style.name in ("jazz", "blues"):  # walking quarter notes (dotted quarters) through chord tones
        tones = [root, root + (pcs[1] - pcs[0]) % 12 if len(pcs) > 1 else root + 4, fifth, root + 12]
        pattern = [(i, tones[i % len(tones)], 0.9) for i in range(int(beats))]
    elif compound:  # a compound beat: root and fifth by turns, long-short (quarter, eighth) when driven
        pattern = []
        for i in range(math.ceil(beats)):  # a chord of less than a beat (three in a 6/8 bar) still sounds
            tone = root if i % 2 == 0 else fifth
            if style.name in ("waltz", "folk", "ballad"):
                pattern.append((i, tone, 0.9))
            else:
                pattern += [(i, tone, 0.6), (i + 2 / 3, tone, 0.3)]
    elif style.name in ("waltz", "country", "folk"):
        pattern = [(0, root, 0.9)] + ([(2, fifth, 0.9)] if beats >= 3 else [])
    elif style.name == "electronic":
        pattern = [(i + 0.5, root, 0.4) for i in range(int(beats))]
    else:
        pattern = [(0, root, 1.4), (1.5, root, 0.4), (2, root, 0.9), (3, fifth, 0.9)]
    for offset, pitch, length in pattern:
        if offset < beats:
            start = (beat + offset) * spb
            track.notes.append(pretty_midi.Note(velocity=velocity, pitch=pitch, start=start,
                                                end=start + min(length, beats - offset) * spb))


def _voicing(pcs, transpose: int) -> list[int]:
    return sorted(55 + (pc + transpose - 7) % 12 for pc in pcs[:4])  # G3..F#4, close position


def _comp(track, pcs, beat, beats, spb, velocity, style: Style, transpose: int, compound: bool = False) -> None:
    voicing = _voicing(pcs, transpose)
    if compound and style.comping in ("arpeggio", "strum", "stab"):
        # three eighths a beat: an arpeggio on every eighth, strums and stabs on the beat and its third eighth
        if style.comping == "arpeggio":
            hits = [(i / 3, [voicing[i % len(voicing)]], 1 / 3) for i in range(int(beats * 3))]
        elif style.comping == "strum":
            hits = [(o, voicing, 0.45) for b in range(math.ceil(beats)) for o in (b, b + 2 / 3)]
        else:  # stab: the downbeat, then the third eighth of each beat
            hits = [(0, voicing, 0.3)] + [(b + 2 / 3, voicing, 0.3) for b in range(math.ceil(beats))]
    elif style.comping == "arpeggio":
        steps = int(beats * 2)
        hits = [(i * 0.5, [voicing[i % len(voicing)]], 0.5) for i in range(steps)]
    elif style.comping == "strum":
        hits = [(o, voicing, 0.45) for o in (0, 1, 1.5, 2.5, 3) if o < beats]
    elif style.comping == "stab":
        hits = [(o, voicing, 0.3) for o in (0, 1.5, 2.5) if o < beats]
    elif style.comping == "waltz":
        hits = [(o, voicing, 0.8) for o in (1, 2) if o < beats]
    else:  # block / pad: held chords
        hits = [(0, voicing, beats)]
    for offset, pitches, length in hits:
        if compound:  # a chord of part of a beat (three in a 6/8 bar): nothing at or past its end
            if offset >= beats - 1e-9:
                continue
            length = min(length, beats - offset)
        start = (beat + offset) * spb
        # off-beat arpeggio notes and strums softer than those on the beat, so the comping
        # marks the beat instead of competing with it (equal eighths read as double tempo,
        # a 3+3+2 strum as two-thirds of it)
        accent = 0 if offset == int(offset) or style.comping not in ("arpeggio", "strum") else -20
        for pitch in pitches:
            track.notes.append(pretty_midi.Note(velocity=max(30, velocity + accent), pitch=pitch, start=start,
                                                end=start + length * spb * 0.95))


def _drums(track, start_beat, bars, beats_per_bar, spb, energy, style: Style) -> None:
    pattern = DRUM_PATTERNS[style.drums]
    sixteenths_per_bar = beats_per_bar * 4
    for bar in range(bars):
        bar_beat = start_beat + bar * beats_per_bar
        for pitch, onsets in pattern.items():
            for onset in onsets:
                if onset >= sixteenths_per_bar:
                    continue
                if energy < 0.5 and pitch != KICK and onset % 4:  # sparse in quiet sections
                    continue
                swing = style.swing * 0.5 if onset % 4 == 2 else 0.0
                start = (bar_beat + onset / 4 + swing) * spb
                accent = 15 if onset % sixteenths_per_bar == 0 else 0
                track.notes.append(pretty_midi.Note(velocity=int(55 + 45 * energy + accent), pitch=pitch,
                                                    start=start, end=start + 0.1))
        if bar == 0 and energy >= 0.7:
            start = bar_beat * spb
            track.notes.append(pretty_midi.Note(velocity=100, pitch=CRASH, start=start, end=start + 0.5))


def _compound_drums(track, start_beat, bars, beats_per_bar, spb, energy, style: Style) -> None:
    """The style's groove in a compound meter: its pattern on a cell of two dotted-quarter beats
    (six eighths, as `COMPOUND_DRUM_PATTERNS` writes it), repeated over the bar."""
    pattern = COMPOUND_DRUM_PATTERNS[style.drums]
    eighths_per_bar = beats_per_bar * 3
    for bar in range(bars):
        bar_beat = start_beat + bar * beats_per_bar
        for pitch, onsets in pattern.items():
            for eighth in range(eighths_per_bar):
                if eighth % 6 not in onsets:
                    continue
                if energy < 0.5 and pitch != KICK and eighth % 3:  # sparse in quiet sections: the beats only
                    continue
                start = (bar_beat + eighth / 3) * spb
                # the beats marked, the eighths between them softer: three eighths a beat, heard as one beat
                accent = 15 if eighth == 0 else -15 if eighth % 3 and pitch in (CLOSED_HAT, RIDE) else 0
                track.notes.append(pretty_midi.Note(velocity=int(55 + 45 * energy + accent), pitch=pitch,
                                                    start=start, end=start + 0.1))
        if bar == 0 and energy >= 0.7:
            start = bar_beat * spb
            track.notes.append(pretty_midi.Note(velocity=100, pitch=CRASH, start=start, end=start + 0.5))
