"""The melody sketch: chord tones on strong beats, mostly stepwise, phrases ending on
stable degrees, inside a singer's range. With lyrics, each phrase has one note per
syllable of its line.
"""

from __future__ import annotations

import random

from structure.harmony import key_scale_pitch_classes, parse_chord
from structure.schema import Key, Note, is_minor_like

SINGER_RANGE = (55, 76)  # G3..E5: a comfortable range for most voices


def tonic_register(key: Key) -> int:
    """The MIDI note of the tonic near the middle of the singer's range (C4..B4)."""
    return 60 + key.pitch_class


def _scale_notes(key: Key) -> list[int]:
    pcs = key_scale_pitch_classes(key)
    low, high = SINGER_RANGE
    return [m for m in range(low, high + 1) if m % 12 in pcs]


def phrase_spans(bars: int, beats_per_bar: int, lines: int | None) -> list[tuple[float, float]]:
    """(start, end) in beats of each phrase: two bars a phrase, or one a lyric line."""
    total = bars * beats_per_bar
    if lines:
        edges = [round(i * bars / lines) * beats_per_bar for i in range(lines + 1)]
        if len(set(edges)) < len(edges):  # more lines than bars: split bars evenly in beats
            edges = [round(i * total / lines * 2) / 2 for i in range(lines + 1)]
        return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    bars_per_phrase = 2 if bars >= 2 else 1
    spans, bar = [], 0
    while bar < bars:
        length = min(bars_per_phrase, bars - bar)
        spans.append((float(bar * beats_per_bar), float((bar + length) * beats_per_bar)))
        bar += length
    return spans


def phrase_rhythm(start: float, end: float, notes: int, beats_per_bar: int,
                  rng: random.Random, division: int = 2) -> list[tuple[float, float]]:
    """Onsets and durations (beats) of `notes` notes inside [start, end).

    Strong beats are filled first; the last note is held to the phrase end
    (minus a breath) so phrases end on a long note. A phrase of a few notes in a long span
    keeps to its first two bars (or two beats a note): a one-word line was one note held for
    four bars. `division` is the eighths a beat: 2, or 3 in a compound meter (6/8, 12/8),
    whose notes fall on thirds of its dotted-quarter beat, the third eighth (the lilt of
    a jig's long-short) before the second.
    """
    notes = max(1, notes)
    end = min(end, start + max(2.0 * beats_per_bar, 2.0 * notes))
    length = end - start
    crowded = notes > division * max(1.0, length - 1)
    resolution = division * (2 if crowded else 1)  # eighths, or sixteenths when crowded
    usable = max(1, int((length - 1) * resolution)) if length > 1 else int(length * resolution)
    notes = min(notes, max(1, int(length * resolution)))
    usable = max(usable, notes)
    def weight(slot: int) -> float:
        beat, within = divmod(slot, resolution)
        if within == 0:
            return 4.0 if beat % beats_per_bar == 0 else 2.0
        if crowded and within % 2:
            return 0.5  # a sixteenth between eighths
        eighth = within // (2 if crowded else 1)
        return 1.0 if division == 2 or eighth == 2 else 0.8

    slots = list(range(usable))
    chosen = {0}
    ranked = sorted(slots[1:], key=lambda s: (-weight(s) - rng.random() * 1.5))
    for slot in ranked:
        if len(chosen) >= notes:
            break
        chosen.add(slot)
    onsets = sorted(chosen)
    rhythm = []
    for i, slot in enumerate(onsets):
        onset = start + slot / resolution
        # the last note ends a breath before the phrase does: an eighth (and no more than a quarter of the phrase)
        next_onset = start + onsets[i + 1] / resolution if i + 1 < len(onsets) else end - min(1 / division, length / 4)
        rhythm.append((onset, max(1.0 / resolution, next_onset - onset)))
    return rhythm


def sketch_section(chords: list[list[str]], key: Key, beats_per_bar: int, rng: random.Random, *,
                   syllable_counts: list[int] | None = None, energy: float = 0.5, division: int = 2) -> list[Note]:
    """Melody notes for one section (beats from the section start)."""
    bars = len(chords)
    scale = _scale_notes(key)
    home = tonic_register(key)
    spans = phrase_spans(bars, beats_per_bar, len(syllable_counts) if syllable_counts else None)
    melody: list[Note] = []
    previous = min(scale, key=lambda m: abs(m - home))
    for index, (start, end) in enumerate(spans):
        if syllable_counts:
            count = syllable_counts[index]
        else:
            density = 1.0 + 1.5 * energy  # notes per beat grows with energy
            count = max(2, int((end - start - 1) * density * rng.uniform(0.6, 1.0)))
        rhythm = phrase_rhythm(start, end, count, beats_per_bar, rng, division)
        for n, (onset, duration) in enumerate(rhythm):
            chord = parse_chord(chords[min(int(onset // beats_per_bar), bars - 1)][0])
            chord_tones = set(chord.pitch_classes) or {key.pitch_class}
            strong = onset == int(onset)
            if n == len(rhythm) - 1:  # phrase end: a stable degree of the key in the chord if possible
                stable = {key.pitch_class, (key.pitch_class + (3 if is_minor_like(key.mode) else 4)) % 12,
                          (key.pitch_class + 7) % 12}
                targets = ([m for m in scale if m % 12 in (stable & chord_tones or stable)]
                           or [m for m in scale if m % 12 in stable])
                pitch = min(targets, key=lambda m: (abs(m - previous), abs(m - home)))
            elif strong:
                targets = [m for m in scale if m % 12 in chord_tones] or scale
                leap = rng.choice((0, 0, 0, 2, -2, 4, -4))
                pitch = min(targets, key=lambda m: abs(m - (previous + leap)) + 0.1 * abs(m - home))
            else:  # stepwise, drifting back toward the middle of the range
                index_in_scale = min(range(len(scale)), key=lambda i: abs(scale[i] - previous))
                step = rng.choice((-1, 1, 1, -1, 0)) if abs(previous - home) < 7 else (-1 if previous > home else 1)
                pitch = scale[max(0, min(len(scale) - 1, index_in_scale + step))]
            melody.append(Note(start=round(onset, 4), duration=round(duration, 4), pitch=int(pitch)))
            previous = pitch
    return melody
