"""Exports of a plan: MIDI (the arrangement), a MusicXML lead sheet, timed lyrics."""

from __future__ import annotations

from pathlib import Path

from structure.schema import SongPlan


def lead_sheet(plan: SongPlan):
    """A music21 Score: the melody with chord symbols above and syllables below the notes.

    music21 counts in quarter notes; a compound meter's beat is a dotted quarter (1.5 of them)."""
    from music21 import duration, expressions, harmony, key, metadata, meter, note, stream, tempo

    from structure.harmony import NO_CHORD, _to_music21_figure, music21_key

    part = stream.Part(id="melody")  # a fixed id: music21 would draw a random one (same plan, same bytes)
    part.insert(0, meter.TimeSignature(plan.meter))
    mark = tempo.MetronomeMark(number=plan.tempo_bpm)
    if plan.compound:  # the mark counts dotted quarters
        mark = tempo.MetronomeMark(number=plan.tempo_bpm, referent=duration.Duration(plan.quarters_per_beat))
    part.insert(0, mark)
    q = plan.quarters_per_beat
    m21_key = music21_key(plan.key)
    part.insert(0, key.KeySignature(m21_key.sharps))
    for section, (start_beat, _) in zip(plan.sections, plan.section_beats()):
        for bar, chords in enumerate(section.chords):
            beats_each = plan.beats_per_bar / len(chords)
            for c, symbol in enumerate(chords):
                if symbol == NO_CHORD:
                    continue
                part.insert((start_beat + bar * plan.beats_per_bar + c * beats_each) * q,
                            harmony.ChordSymbol(_to_music21_figure(symbol)))
        shown = _written_syllables(section, plan.beats_per_bar)
        for at, text in _unsung_lines(section, plan.beats_per_bar):  # no note to sit under: shown as text
            part.insert(_on_grid((start_beat + at) * q), expressions.TextExpression(text))
        for n in section.melody:
            m21_note = note.Note(n.pitch, quarterLength=_quantise(n.duration * q))
            if n.syllable and n.syllable != "_":
                text, syllabic = shown.get(id(n), (n.syllable, "single"))
                if syllabic != "extend":  # a written number's later notes: held under the word
                    # begin / middle / end: notation software joins a word's syllables with hyphens
                    m21_note.lyrics = [note.Lyric(text, syllabic=syllabic, applyRaw=True)]
            part.insert(_on_grid((start_beat + n.start) * q), m21_note)
    # rests up to the song's end: a last bar without melody still holds its chord symbol
    part.makeRests(refStreamOrTimeRange=[0.0, float(plan.total_beats * q)], fillGaps=True, inPlace=True)
    score = stream.Score()
    score.metadata = metadata.Metadata(title=plan.title)
    score.insert(0, part)
    return score


def _written_syllables(section, beats_per_bar: int) -> dict[int, tuple[str, str]]:
    """The syllable each sung note shows, with the punctuation the lyric was written with
    ("home," rather than "home"), and its place in its word (MusicXML's syllabic: single,
    begin, middle, end), keyed by the note's id."""
    import lyrics
    from structure.melody import phrase_spans

    shown: dict[int, tuple[str, str]] = {}
    if not section.lyrics:
        return shown
    for (lo, hi), text in zip(phrase_spans(section.bars, beats_per_bar, len(section.lyrics)), section.lyrics):
        sung = [n for n in section.melody if lo <= n.start < hi and n.syllable and n.syllable != "_"]
        for note_, display in zip(sung, lyrics.display_syllables(text)):
            shown[id(note_)] = display
    return shown


def _unsung_lines(section, beats_per_bar: int) -> list[tuple[float, str]]:
    """(beat in the section, text) of each lyric line that no note sings: a line of only
    emoji or signs, which the lead sheet shows as written above its phrase, as LRC and
    lyrics.json keep it."""
    from structure.melody import phrase_spans

    if not section.lyrics:
        return []
    spans = phrase_spans(section.bars, beats_per_bar, len(section.lyrics))
    return [(lo, text) for (lo, hi), text in zip(spans, section.lyrics)
            if text.strip() and not any(lo <= n.start < hi and n.syllable and n.syllable != "_"
                                        for n in section.melody)]


def _quantise(beats: float) -> float:
    """A written length: the nearest sixteenth, at least one."""
    return max(0.25, _on_grid(beats))


def _on_grid(beats: float) -> float:
    """A written time: the nearest sixteenth (a note on the downbeat stays there)."""
    return round(beats * 4) / 4


def write_musicxml(plan: SongPlan, path: str | Path) -> Path:
    """Write the lead sheet as MusicXML to `path` (the caller makes it atomic)."""
    path = Path(path)
    path.write_bytes(musicxml_bytes(plan))
    return path


def musicxml_bytes(plan: SongPlan) -> bytes:
    """The lead sheet's MusicXML. The same plan gives the same bytes: music21 names each part
    with a random id and dates the file, so the ids are numbered in order and the date left out."""
    import re

    from music21.musicxml.m21ToXml import GeneralObjectExporter

    text = GeneralObjectExporter(lead_sheet(plan).makeNotation()).parse().decode("utf-8")
    ids: dict[str, str] = {}
    text = re.sub(r'(?<=id=")P[0-9a-f]{32}(?=")', lambda m: ids.setdefault(m.group(0), f"P{len(ids) + 1}"), text)
    text = re.sub(r"\s*<encoding-date>[^<]*</encoding-date>", "", text)
    return text.encode("utf-8")


def timed_lyrics(plan: SongPlan):
    """`lyrics.TimedLine`s (seconds) from the melody notes that carry each line's syllables."""
    import lyrics
    from structure.melody import phrase_spans

    spb = plan.seconds_per_beat
    lines = []
    for section, (start_beat, _) in zip(plan.sections, plan.section_beats()):
        if not section.lyrics:
            continue
        spans = phrase_spans(section.bars, plan.beats_per_bar, len(section.lyrics))
        for (lo, hi), text in zip(spans, section.lyrics):
            notes = [n for n in section.melody if lo <= n.start < hi]
            sung = [n for n in notes if n.syllable and n.syllable != "_"]
            start = (start_beat + (sung[0].start if sung else lo)) * spb
            end = (start_beat + (max(n.start + n.duration for n in notes) if notes else hi)) * spb
            words = _word_times(text, sung, start_beat, spb)
            lines.append(lyrics.TimedLine(start=round(start, 3), end=round(max(end, start + 0.01), 3),
                                          text=text, words=words or None))
    return lines


def _word_times(text: str, sung, start_beat: float, spb: float) -> list[tuple[float, str]]:
    """The time of each written word's first syllable; the words keep their punctuation and case."""
    import lyrics

    times, index = [], 0
    for written, _ in lyrics.written_words(text):
        if index >= len(sung):
            break
        times.append((round((start_beat + sung[index].start) * spb, 3), written))
        index += max(1, len(lyrics.syllables(written)))
    return times
