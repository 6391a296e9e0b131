"""`controls(plan, frame_rate)`: per-latent-frame conditioning features from a plan.

One row per latent frame (frame f covers time f / frame_rate seconds). Channels
come in named groups, so a renderer can give the model any subset: only form
and harmony (the model invents melody and drums) or everything.

| group   | channels | meaning |
| ------- | -------- | ------- |
| rhythm  | 0-4      | sin/cos of beat phase, sin/cos of bar phase, tempo (BPM / 200) |
| harmony | 5-16     | chord chroma: 1 for each pitch class sounding in the current chord |
| bass    | 17-29    | bass pitch class one-hot (12), bass onset within this frame (1) |
| melody  | 30-44    | melody pitch class one-hot (12), octave ((midi - 60) / 12), rest flag, onset |
| drums   | 45-47    | kick onset, snare onset, hi-hat/ride onset (from the style's pattern) |
| form    | 48-62    | energy (1), section kind one-hot (12, SECTION_KINDS order), position in section 0..1 (1), position in song 0..1 (1) |

Onsets are 1.0 in the frame that holds the onset and decay over the next two frames.
"""

from __future__ import annotations

import numpy as np

from structure.harmony import parse_chord
from structure.schema import SECTION_KINDS, SongPlan

GROUPS: dict[str, tuple[int, int]] = {
    "rhythm": (0, 5),
    "harmony": (5, 17),
    "bass": (17, 30),
    "melody": (30, 45),
    "drums": (45, 48),
    "form": (48, 63),
}
NUM_CONTROLS = 63
GROUP_NAMES = tuple(GROUPS)


def group_mask(groups: list[str] | tuple[str, ...] | None) -> np.ndarray:
    """Boolean `[NUM_CONTROLS]`, True for channels of the named groups (None: all)."""
    mask = np.zeros(NUM_CONTROLS, dtype=bool)
    for name in groups if groups is not None else GROUP_NAMES:
        if name not in GROUPS:
            raise ValueError(f"unknown control group {name!r} (known: {', '.join(GROUP_NAMES)})")
        start, end = GROUPS[name]
        mask[start:end] = True
    return mask


def _onset_track(times: np.ndarray, frames: int, frame_rate: float) -> np.ndarray:
    track = np.zeros(frames, dtype=np.float32)
    for t in times:
        f = int(np.floor(t * frame_rate + 1e-6))
        for d, v in ((0, 1.0), (1, 0.5), (2, 0.25)):
            if 0 <= f + d < frames:
                track[f + d] = max(track[f + d], v)
    return track


def controls(plan: SongPlan, frame_rate: float, *, frames: int | None = None) -> np.ndarray:
    """Features `[frames, NUM_CONTROLS]` (float32) for the plan at `frame_rate` frames/s.

    frames: number of rows (default: the plan's duration in frames, rounded up).
    """
    from structure.arrangement import arrange  # drum onsets follow the arrangement

    if frames is None:
        frames = int(np.ceil(plan.duration * frame_rate))
    out = np.zeros((frames, NUM_CONTROLS), dtype=np.float32)
    times = np.arange(frames, dtype=np.float64) / frame_rate
    beats = times / plan.seconds_per_beat
    beat_phase = 2 * np.pi * (beats % 1.0)
    bar_phase = 2 * np.pi * ((beats / plan.beats_per_bar) % 1.0)
    out[:, 0], out[:, 1] = np.sin(beat_phase), np.cos(beat_phase)
    out[:, 2], out[:, 3] = np.sin(bar_phase), np.cos(bar_phase)
    out[:, 4] = plan.tempo_bpm / 200.0

    total_beats = plan.total_beats
    for section, (start_beat, end_beat) in zip(plan.sections, plan.section_beats()):
        in_section = (beats >= start_beat) & (beats < end_beat)
        idx = np.nonzero(in_section)[0]
        if len(idx) == 0:
            continue
        local = beats[idx] - start_beat
        out[idx, 48] = section.energy
        out[idx, 49 + SECTION_KINDS.index(section.kind)] = 1.0
        out[idx, 61] = local / (end_beat - start_beat)
        out[idx, 62] = beats[idx] / total_beats
        for bar, chords in enumerate(section.chords):
            beats_each = plan.beats_per_bar / len(chords)
            for c, symbol in enumerate(chords):
                chord = parse_chord(symbol)
                lo = bar * plan.beats_per_bar + c * beats_each
                sel = idx[(local >= lo) & (local < lo + beats_each)]
                if chord.root is not None:
                    out[np.ix_(sel, [5 + pc for pc in chord.pitch_classes])] = 1.0
                    out[sel, 17 + (chord.bass if chord.bass is not None else chord.root)] = 1.0
        out[idx, 43] = 1.0  # rest unless a note sounds
        for note in section.melody:
            sel = idx[(local >= note.start) & (local < note.start + note.duration)]
            out[sel, 30:42] = 0.0
            out[sel, 30 + note.pitch % 12] = 1.0
            out[sel, 42] = (note.pitch - 60) / 12.0
            out[sel, 43] = 0.0
    midi = arrange(plan)
    by_name = {inst.name: inst for inst in midi.instruments}
    out[:, 29] = _onset_track(np.array([n.start for n in by_name["bass"].notes]), frames, frame_rate)
    out[:, 44] = _onset_track(np.array([n.start for n in by_name["melody"].notes]), frames, frame_rate)
    drum_notes = by_name["drums"].notes
    for channel, pitches in ((45, {35, 36}), (46, {37, 38, 40}), (47, {42, 44, 46, 51, 49})):
        out[:, channel] = _onset_track(np.array([n.start for n in drum_notes if n.pitch in pitches]),
                                       frames, frame_rate)
    return out
