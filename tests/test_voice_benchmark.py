"""The voice benchmark's scoring (benchmarks/voice.py): what counts as a word error and which
audio the recogniser is given. The recogniser itself is a benchmark-only extra, not needed here."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

import voice as bench  # noqa: E402


def test_numbers_in_digits_are_the_words_sung():
    assert bench.wer_counts("Forty miles of empty highway", "40 miles of empty highway.") == (0, 5)
    assert bench.wer_counts("Forty miles", "Four females") == (2, 2)
    assert bench.wer_counts("I was born in nineteen ninety nine", "I was born in 1999") == (0, 7)


def _section(lines: list[tuple[float, float]]) -> dict:
    return {"name": "s", "lines": lines}


def test_a_long_section_is_heard_in_two_clips_split_at_a_line():
    short = _section([(0.0, 5.0), (5.5, 10.0), (10.5, 15.0), (15.5, 20.0)])
    long = _section([(21.0, 28.0), (28.5, 35.5), (36.0, 43.0), (43.5, 50.0)])  # 29 s: near Whisper's window
    sections = [short, long, _section([(51.0, 80.0)])]  # one line longer than the limit stays whole
    assert bench.section_pieces(sections, 0) == [(0, 4)]
    assert bench.section_pieces(sections, 1) == [(4, 6), (6, 8)]
    assert bench.section_pieces(sections, 2) == [(8, 9)]


def test_a_clip_keeps_out_the_neighbouring_lines():
    y16 = np.arange(80 * 16000, dtype=np.float32)
    spans = [(0.0, 5.0), (5.2, 10.0), (10.5, 15.0)]
    clip = bench.lines_clip(y16, spans, 1, 2)
    start, end = clip[0] / 16000, (clip[-1] + 1) / 16000
    assert spans[0][1] < start <= spans[1][0]  # after the line before, from just before its own
    assert spans[1][1] <= end < spans[2][0]  # to its end, before the next line
    whole = bench.lines_clip(y16, spans, 0, 3)
    assert whole[0] == 0 and abs((whole[-1] + 1) / 16000 - 15.5) < 1e-3  # 0.5 s after the last line


def test_slowness_overrides_a_voice_and_refuses_bad_pairs(monkeypatch):
    import argparse

    from composer.voice import voices

    monkeypatch.setattr(voices, "VOICES", dict(voices.VOICES))
    import composer.voice

    monkeypatch.setattr(composer.voice, "VOICES", voices.VOICES)
    parser = argparse.ArgumentParser()
    bench._set_slowness(["low=2.5"], parser)
    assert voices.VOICES["low"].slowness == 2.5 and voices.VOICES["low"].speaker.slowness == 2.5
    assert voices.get_voice("low").slowness == 2.5
    for bad in ["low=fast", "tenor=2", "low=0", "low"]:
        with pytest.raises(SystemExit):
            bench._set_slowness([bad], parser)


def test_long_silences_are_shortened_and_sound_is_kept():
    rate = 16000
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate).astype(np.float32)  # 1 s
    quiet = np.full(2 * rate, 1e-4, dtype=np.float32)  # 2 s, 70 dB below the tone
    breath = np.full(rate // 10, 0.01, dtype=np.float32)  # 0.1 s, 27 dB below: not silence
    gap = np.zeros(rate // 5, dtype=np.float32)  # 0.2 s: shorter than what is kept
    clip = np.concatenate([quiet, tone, gap, tone, quiet, breath, quiet, tone])
    out = bench.shorten_silences(clip)
    # each 2-s silence -> 0.3 s; the short gap, the breath and the tones stay whole
    # (to within the level's 10-ms hops at each edge of a silence)
    assert abs(len(out) - (len(clip) - 3 * (2 * rate - int(0.3 * rate)))) <= 6 * 160
    assert np.count_nonzero(np.abs(out) > 0.1) == np.count_nonzero(np.abs(clip) > 0.1)
    assert np.count_nonzero(out == np.float32(0.01)) == rate // 10
    assert bench.shorten_silences(tone).tobytes() == tone.tobytes()  # nothing to shorten
    assert len(bench.shorten_silences(np.zeros(50, dtype=np.float32))) == 50  # shorter than a frame
    assert len(bench.shorten_silences(np.zeros(rate, dtype=np.float32))) == rate  # all silent: nothing louder to cut to
