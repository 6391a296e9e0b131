"""The singing voice: phones on notes, pitch, repeated choruses, repaint, bad lyrics, doctor."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import lyrics
from composer.voice import sing
from composer.voice.phonemes import SyllablePhones, syllabify, word_phones
from composer.voice.score import LEAD, SungSyllable, place
from composer.voice.voices import VOICES, get_voice, octave_shift
from structure.schema import Key, Note, Section, SongPlan

needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed")
needs_festival = pytest.mark.skipif(
    shutil.which("flite") is None or shutil.which("festival") is None
    or not Path("/usr/share/festival/voices/us/cmu_us_slt_arctic_hts").is_dir(),
    reason="festival with its voice cmu_us_slt_arctic_hts is not installed")
RATE = 16000


def _plan(sections: list[Section], tempo: float = 120.0) -> SongPlan:
    return SongPlan(title="t", tempo_bpm=tempo, beats_per_bar=4, key=Key("C", "major"), sections=sections)


def _section(name: str, line: str, pitches: list[int], *, kind: str = "verse", repeat_of: str | None = None,
             beats: float = 1.0) -> Section:
    """One bar-aligned lyric line, a syllable a note (melisma for spare notes)."""
    slots = [lyrics.Slot(i * beats, beats, i % 4 == 0) for i in range(len(pitches))]
    fitted = lyrics.fit_line(line, slots)
    notes = [Note(s.start, s.duration, p, f) for s, p, f in zip(slots, pitches, fitted)]
    bars = max(1, int(np.ceil(len(pitches) * beats / 4)))
    return Section(name=name, kind=kind, bars=bars, chords=[["C"]] * bars, melody=notes, lyrics=[line],
                   repeat_of=repeat_of)


# --- words to phones to time --------------------------------------------------------
def test_syllables_split_at_vowels_with_legal_onsets():
    word = syllabify(["eh", "k", "s", "t", "r", "ax"], 2)  # "extra"
    assert word == [SyllablePhones((), ("eh",), ("k", "s"), 0), SyllablePhones(("t", "r"), ("ax",), (), 3)]
    (one,) = syllabify(["s", "t", "r", "ih", "ng", "z"], 1)
    assert (one.onset, one.nucleus, one.coda) == (("s", "t", "r"), ("ih",), ("ng", "z"))
    # fewer vowels than sung syllables: the vowel is sung again; more: they merge
    assert [s.nucleus for s in syllabify(["f", "ay", "r"], 2)] == [("ay",), ("ay",)]
    assert [s.nucleus for s in syllabify(["f", "ay", "er"], 1)] == [("ay", "er")]
    assert syllabify([], 2)[0].nucleus == ("ax",)


def test_dictionary_words_use_cmudict_and_numbers_are_spelled():
    phones = word_phones(["river", "42"])
    assert phones["river"] == ["r", "ih", "v", "er"]
    assert phones["42"] == ["f", "ao", "r", "t", "iy", "t", "uw"]


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed")
def test_unknown_words_get_phones_from_letter_to_sound():
    phones = word_phones(["zorblax"])["zorblax"]
    assert phones and any(p in ("ao", "aa", "ow") for p in phones)


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed")
def test_accented_unknown_words_are_read_without_accents_and_unsayable_ones_are_said(caplog):
    """"Señorita" was read by English letter-to-sound as "saw-thee-stor-ee-tuh" (ñ as th); Cyrillic
    and kana have no phones and were sung as "uh" without a word."""
    from composer.voice.engine import _readable

    with caplog.at_level("WARNING", logger="composer.voice.phonemes"):
        phones = word_phones(["Señorita", "Привет"])
    assert "n" in phones["Señorita"] and "th" not in phones["Señorita"]
    assert phones["Привет"] == [] and "no English pronunciation for 'Привет'" in caplog.text
    assert _readable("Señorita, naïve and bright") == "Senorita, naive and bright."


def _syllable(start, end, onset, nucleus, coda, pitch=60, notes=None, line=0, position=0):
    return SungSyllable(text="x", word="w", position=position, line_text="w", start=start, end=end,
                        notes=notes or [(start, end, pitch)], phones=SyllablePhones(onset, nucleus, coda, 0), line=line)


def test_onsets_lead_the_beat_vowels_hold_codas_close():
    first = _syllable(1.0, 2.0, ("s", "t"), ("aa",), ("p",))
    score = place([first], lambda word, i: 0.08)
    by_part = {p.part: [] for p in score.phones}
    for phone in score.phones:
        by_part[phone.part].append(phone)
    onset_start = by_part["onset"][0].start
    assert 1.0 - LEAD - 1e-9 <= onset_start < 1.0  # the consonants start at most LEAD before the beat
    vowel = by_part["nucleus"][0]
    assert vowel.start == pytest.approx(by_part["onset"][-1].end)
    assert vowel.end - vowel.start > 0.6  # held for the note
    assert by_part["coda"][-1].end == pytest.approx(2.0)  # closes with the note
    # phones never overlap and keep their order
    for a, b in zip(score.phones, score.phones[1:]):
        assert b.start >= a.end - 1e-9


def test_melisma_holds_one_vowel_over_several_notes():
    notes = [(0.0, 0.5, 60), (0.5, 1.0, 62), (1.0, 1.5, 64)]
    syllable = _syllable(0.0, 1.5, ("l",), ("aa",), (), notes=notes)
    score = place([syllable], lambda word, i: 0.06)
    (vowel,) = [p for p in score.phones if p.part == "nucleus"]
    assert vowel.end == pytest.approx(1.5)
    assert score.notes == notes


def test_next_onset_cuts_the_previous_syllable_and_breaths_follow_rests():
    a = _syllable(0.5, 1.0, ("m",), ("aa",), ("n",), line=0)
    b = _syllable(1.0, 1.5, ("s",), ("iy",), (), line=0, position=1)
    c = _syllable(3.0, 3.5, ("d",), ("ow",), (), line=1)
    score = place([a, b, c], lambda word, i: 0.1)
    a_end = max(p.end for p in score.phones[:3])
    b_start = min(p.start for p in score.phones[3:5])
    assert a_end <= b_start + 1e-9
    assert len(score.breaths) == 2  # before the first line and after the rest
    assert score.breaths[-1][1] <= 3.0 - 0.04 + 1e-9


def test_octave_shift_puts_the_melody_in_the_voice_range():
    low = VOICES["low"]
    assert octave_shift([60, 64, 67, 72], low) == -12
    assert octave_shift([60, 64, 67], VOICES["high"]) == 0
    with pytest.raises(Exception, match="unknown voice"):
        get_voice("tenorissimo")


def test_a_line_outside_the_voice_moves_by_another_octave():
    """A tune wider than the voice (E3..E5 for D3..A#4): no octave holds it all, so each line
    that still leaves the range moves by another octave, its shape kept."""
    from composer.voice.score import sung_syllables

    high = VOICES["high"]
    low_line = _section("verse1", "Walking down the road", [52, 55, 57, 60, 60])
    high_line = _section("chorus1", "Singing to the sky", [72, 74, 76, 76, 74], kind="chorus")
    shift = octave_shift([n.pitch for s in (low_line, high_line) for n in s.melody], high)
    sung = {s.name: sung_syllables(s, 4, 0.5, lambda token: ["s", "ih", "ng"], shift, fit=(high.low, high.high))
            for s in (low_line, high_line)}
    for name, syllables in sung.items():
        pitches = [p for syllable in syllables for _, _, p in syllable.notes]
        planned = [n.pitch for n in (low_line if name == "verse1" else high_line).melody][:len(pitches)]
        assert all(high.low <= p <= high.high for p in pitches), (name, pitches)
        assert len({p - q for p, q in zip(pitches, planned)}) == 1  # the line's shape kept
    assert {s.octave for s in sung["verse1"]} != {s.octave for s in sung["chorus1"]}  # one of them moved
    # without the voice's range, the song's octave alone (a line left outside)
    unfitted = sung_syllables(low_line, 4, 0.5, lambda token: ["ax"], shift)
    assert any(not high.low <= p <= high.high for syllable in unfitted for _, _, p in syllable.notes)


# --- the synthesiser -------------------------------------------------------------------
@pytest.mark.parametrize("voice", [pytest.param("low", marks=needs_flite), pytest.param("high", marks=needs_festival)])
def test_a_sung_note_has_the_notes_pitch(voice):
    import librosa

    song = _plan([_section("verse1", "Home", [57, 57, 57, 57], beats=1.0)])
    vocal = sing(song, voice=voice, sample_rate=RATE, seed=0)
    start, end = 0.3, 1.7  # inside the held vowel
    f0, voiced, _ = librosa.pyin(vocal.audio[int(start * RATE):int(end * RATE)], fmin=100, fmax=600, sr=RATE,
                                 frame_length=1024, hop_length=160)
    cents = 100 * np.abs(librosa.hz_to_midi(f0[voiced]) - (57 + vocal.shift))
    assert voiced.mean() > 0.8
    assert np.median(cents) < 30
    assert (cents < 50).mean() > 0.8


def test_flites_reading_is_aligned_to_the_given_phones():
    from composer.voice.engine import _align, _words_from_alignment

    # "the cat" read with a full vowel, "next" read without its t
    assert _align(["dh", "ax", "k", "ae", "t"], ["dh", "iy", "k", "ae", "t"]) == [0, 1, 2, 3, 4]
    assert _align(["n", "eh", "k", "s", "t"], ["n", "eh", "k", "s"]) == [0, 1, 2, 3, None]
    assert _align(["s", "ow"], ["s", "t", "ow"]) == [0, 2]  # an added phone is nobody's
    found = [("n", 0.0, 0.1), ("eh", 0.1, 0.3), ("k", 0.3, 0.35), ("s", 0.35, 0.5)]
    (word,) = _words_from_alignment([("n", "eh", "k", "s", "t")], [0, 1, 2, 3, None], found)
    assert word == [("n", 0.0, 0.1), ("eh", 0.1, 0.3), ("k", 0.3, 0.35), ("s", 0.35, 0.5), ("t", 0.5, 0.5)]
    (word,) = _words_from_alignment([("s", "ow")], [0, 2], [("s", 0.0, 0.1), ("t", 0.1, 0.15), ("ow", 0.15, 0.4)])
    assert word == [("s", 0.0, 0.15), ("ow", 0.15, 0.4)]  # the added t goes to the phone before it
    (word,) = _words_from_alignment([("b", "ay")], [0, None], [("b", 0.0, 0.1)])
    assert word == [("b", 0.0, 0.1), ("ay", 0.0, 0.1)]  # a vowel left out shares its neighbour's time
    assert _words_from_alignment([("ah",), ("b",)], [0, None], [("ah", 0.0, 0.2)]) is None  # "b" never said


@needs_flite
def test_flite_reads_the_line_and_speaks_bare_phones_only_when_its_reading_differs(monkeypatch):
    from composer.voice import engine

    calls = []
    real = engine._flite
    monkeypatch.setattr(engine, "_flite", lambda voice, source, *rest: calls.append(source[0]) or real(voice, source, *rest))
    phones = word_phones(["carry", "me", "home"])
    line = [phones["carry"], phones["me"], phones["home"]]
    spoken = engine._speak("slt", (("Carry me home!", tuple(map(tuple, line))),))
    assert calls == ["-t"]  # read as text, aligned
    assert [[p for p, _, _ in word] for word in spoken.words] == line
    times = [t for word in spoken.words for _, a, b in word for t in (a, b)]
    assert times == sorted(times) and times[-1] <= spoken.audio.shape[0] / spoken.sample_rate
    calls.clear()
    spoken = engine._speak("slt", (("something else entirely", tuple(map(tuple, line))),))
    assert calls == ["-t", "-p"]  # the reading does not say these phones: spoken from the phones
    assert [[p for p, _, _ in word] for word in spoken.words] == line


@needs_festival
def test_festival_reads_the_lines_and_flite_speaks_a_line_festival_does_not_say(monkeypatch):
    """The high voice: Festival's HTS voice reads every line in one process, aligned to the
    given phones; a line its reading does not say is spoken from the phones by Flite's voice
    of the same speaker, brought to Festival's rate."""
    from composer.voice import engine

    flite_calls = []
    real = engine._flite
    monkeypatch.setattr(engine, "_flite", lambda voice, source, *rest: flite_calls.append((voice, source[0]))
                        or real(voice, source, *rest))
    speaker = VOICES["high"].speaker
    assert speaker.engine == "festival" and speaker.fallback == "slt"
    phones = word_phones(["carry", "me", "home", "river"])
    first = [phones["carry"], phones["me"], phones["home"]]
    second = [phones["river"]]
    spoken = engine._speak(speaker, (("Carry me home!", tuple(map(tuple, first))),
                                     ("something else entirely", tuple(map(tuple, second)))))
    assert flite_calls == [("slt", "-p")]  # only the line Festival read as other phones
    assert spoken.sample_rate == engine.MAX_RATE  # HTS speaks at 32 kHz; a render's rate is enough
    assert [[p for p, _, _ in word] for word in spoken.words] == first + second
    times = [t for word in spoken.words for _, a, b in word for t in (a, b)]
    assert times == sorted(times) and times[-1] <= spoken.audio.shape[0] / spoken.sample_rate
    again = engine._speak(speaker, (("Carry me home!", tuple(map(tuple, first))),
                                    ("something else entirely", tuple(map(tuple, second)))))
    assert np.array_equal(again.audio, spoken.audio)  # Festival's HTS voice is deterministic


@pytest.mark.parametrize("voice", [pytest.param("low", marks=needs_flite), pytest.param("high", marks=needs_festival)])
def test_the_lines_are_read_as_slowly_as_the_voice_asks(voice):
    """A voice's engine reads its lines `slowness` times slower (Flite's duration_stretch,
    the HTS engine's rate), and so does Flite where it speaks a line from the bare phones."""
    import dataclasses

    from composer.voice import engine

    speaker = VOICES[voice].speaker
    phones = word_phones(["carry", "me", "home"])
    line = tuple(tuple(phones[w]) for w in ("carry", "me", "home"))

    def said(slowness, text="Carry me home!"):
        spoken = engine._speak(dataclasses.replace(speaker, slowness=slowness), ((text, line),))
        assert [[p for p, _, _ in word] for word in spoken.words] == [list(w) for w in line]
        return spoken.words[-1][-1][2] - spoken.words[0][0][1]

    assert 1.6 < said(2.0) / said(1.0) < 2.4
    assert 1.6 < said(2.0, "") / said(1.0, "") < 2.4  # no text: Flite speaks the phones


@needs_flite
def test_a_slower_reading_holds_the_vowels_and_keeps_the_consonants_pace(monkeypatch):
    """The voice's slowness lengthens the bank's speech; the sung consonants keep the engine's
    own pace (read slowly they pushed the vowels off the beat), so the phones land where they
    do at slowness 1."""
    import dataclasses

    from composer.voice import singer, voices

    song = _plan([_section("verse1", "Strong winds crossed the street", [57, 59, 60, 62, 64], beats=1.0)])
    scores, banks = {}, {}
    real_place, real_bank = singer.place, singer.make_bank
    for slowness in (1.0, 2.0):
        monkeypatch.setitem(voices.VOICES, "low", dataclasses.replace(VOICES["low"], slowness=slowness))
        monkeypatch.setattr(singer, "place", lambda *a, s=slowness: scores.setdefault(s, real_place(*a)))
        monkeypatch.setattr(singer, "make_bank", lambda *a, s=slowness: banks.setdefault(s, real_bank(*a)))
        sing(song, voice="low", sample_rate=RATE, seed=0)
    spoken = [len(banks[s].spoken.audio) / banks[s].spoken.sample_rate for s in (1.0, 2.0)]
    assert spoken[1] > 1.6 * spoken[0]
    consonants = [[p.end - p.start for p in scores[s].phones if p.part != "nucleus"] for s in (1.0, 2.0)]
    assert len(consonants[0]) == len(consonants[1]) > 5
    assert np.allclose(consonants[1], consonants[0], rtol=0.35, atol=0.02)
    assert abs(sum(consonants[1]) / sum(consonants[0]) - 1) < 0.2


@needs_flite
def test_slow_consonants_keep_the_slow_readings_length(monkeypatch):
    """A voice with `slow_consonants` sings its consonants as long as its slow reading says them
    (the high voice: clearer words), the others at the engine's own pace."""
    import dataclasses

    from composer.voice import singer, voices

    song = _plan([_section("verse1", "Strong winds crossed the street", [57, 59, 60, 62, 64], beats=1.0)])
    scores = {}
    real_place = singer.place
    for slow in (False, True):
        monkeypatch.setitem(voices.VOICES, "low", dataclasses.replace(VOICES["low"], slowness=2.0,
                                                                      slow_consonants=slow))
        monkeypatch.setattr(singer, "place", lambda *a, s=slow: scores.setdefault(s, real_place(*a)))
        sing(song, voice="low", sample_rate=RATE, seed=0)
    consonants = [np.array([p.end - p.start for p in scores[s].phones if p.part != "nucleus"]) for s in (False, True)]
    assert len(consonants[0]) == len(consonants[1]) > 5
    ratio = consonants[1] / consonants[0]  # clusters held to MAX_ONSET and codas filling their room stay
    assert (ratio > 0.99).all() and (ratio > 1.45).sum() >= 3 and ratio.max() == pytest.approx(2.0, abs=0.1)


def _band_flatness(audio: np.ndarray, lo: float, hi: float) -> float:
    """Spectral flatness (geometric over arithmetic mean of the power) of `audio` between lo and hi Hz."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio)))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / RATE)
    band = spectrum[(freqs >= lo) & (freqs < hi)] + 1e-20
    return float(np.exp(np.mean(np.log(band))) / np.mean(band))


@needs_flite
def test_air_breathes_above_1khz_on_high_notes_and_leaves_low_notes_alone(monkeypatch):
    """A voice's `air` fills the spectrum between the harmonics above AIR_HZ on notes above its
    speaking pitch (so the vowels' formants show), keeps the note's pitch, and changes nothing
    on notes below its speaking pitch."""
    import dataclasses

    import librosa

    from composer.voice import voices

    out = {}
    for air in (0.0, 0.8):
        for pitch in (47, 62):  # below the speaking pitch, an octave above it
            monkeypatch.setitem(voices.VOICES, "low", dataclasses.replace(VOICES["low"], low=pitch - 2, high=pitch + 2,
                                                                          speaking_pitch=50, air=air))
            song = _plan([_section("verse1", "Home", [pitch] * 4, beats=1.0)])
            out[air, pitch] = sing(song, voice="low", sample_rate=RATE, seed=0)
    assert all(v.shift == 0 for v in out.values())
    assert np.array_equal(out[0.0, 47].audio, out[0.8, 47].audio)
    held = slice(int(0.4 * RATE), int(1.6 * RATE))  # inside the held vowel
    dry, airy = out[0.0, 62].audio[held], out[0.8, 62].audio[held]
    assert _band_flatness(airy, 1000, 4000) > 3 * _band_flatness(dry, 1000, 4000)
    assert _band_flatness(airy, 100, 700) < 1.5 * _band_flatness(dry, 100, 700)
    f0, voiced, _ = librosa.pyin(airy, fmin=100, fmax=600, sr=RATE, frame_length=1024, hop_length=160)
    assert voiced.mean() > 0.8
    assert np.median(100 * np.abs(librosa.hz_to_midi(f0[voiced]) - 62)) < 30


def test_formant_emphasis_sharpens_or_flattens_the_envelope_at_the_same_power():
    from scipy.ndimage import uniform_filter1d

    from composer.voice.singer import EMPHASIS_HZ, formant_emphasis

    rate, bins = 16000, 513
    freqs = np.linspace(0, rate / 2, bins)
    formants = sum(np.exp(-0.5 * ((freqs - f) / 80) ** 2) for f in (500, 1500, 2500))
    sp = np.tile(1e-3 + formants, (3, 1))
    out = formant_emphasis(sp, np.array([0.0, 1.0, -0.5]), rate)
    assert np.allclose(out[0], sp[0]) and np.allclose(out.sum(axis=1), sp.sum(axis=1))
    width = int(round(EMPHASIS_HZ / (rate / (2.0 * (bins - 1)))))

    log = np.log(sp[0])
    stray = log - uniform_filter1d(log, size=width, mode="nearest")  # above the envelope's moving average
    for row, amount in ((1, 1.0), (2, -0.5)):  # each bin moves by amount x its stray (and one gain for the power)
        moved = np.log(out[row]) - log
        assert np.allclose(moved - moved.mean(), amount * (stray - stray.mean()), atol=1e-6)
    assert np.argmax(out[1][: bins // 4]) == np.argmax(sp[0][: bins // 4])  # the formant stays where it was


@needs_flite
def test_emphasis_changes_only_notes_above_the_speaking_pitch_and_keeps_their_pitch(monkeypatch):
    import dataclasses

    import librosa

    from composer.voice import voices

    out = {}
    for emphasis in (0.0, -0.5):
        for pitch in (47, 62):
            monkeypatch.setitem(voices.VOICES, "low", dataclasses.replace(VOICES["low"], low=pitch - 2, high=pitch + 2,
                                                                          speaking_pitch=50, emphasis=emphasis))
            song = _plan([_section("verse1", "Home", [pitch] * 4, beats=1.0)])
            out[emphasis, pitch] = sing(song, voice="low", sample_rate=RATE, seed=0).audio
    assert np.array_equal(out[0.0, 47], out[-0.5, 47])
    assert not np.array_equal(out[0.0, 62], out[-0.5, 62])
    held = out[-0.5, 62][int(0.4 * RATE): int(1.6 * RATE)]
    f0, voiced, _ = librosa.pyin(held, fmin=100, fmax=600, sr=RATE, frame_length=1024, hop_length=160)
    assert voiced.mean() > 0.8 and np.median(100 * np.abs(librosa.hz_to_midi(f0[voiced]) - 62)) < 30


@needs_flite
def test_a_word_that_begins_with_a_vowel_is_attacked_after_a_glottal_dip(monkeypatch):
    """Sung legato, "is" and "over" would run on from the vowel before; a short dip in level
    before them marks where they begin (a singer's glottal onset), and nowhere else."""
    from composer.voice import singer

    song = _plan([_section("verse1", "Home is over now", [57, 59, 60, 60, 62], beats=1.0)])
    vocals = {}
    for depth in (1.0, singer.GLOTTAL_DEPTH):
        monkeypatch.setattr(singer, "GLOTTAL_DEPTH", depth)
        vocals[depth] = sing(song, voice="low", sample_rate=RATE, seed=0).audio

    def rms(audio, a, b):
        return float(np.sqrt(np.mean(audio[int(a * RATE):int(b * RATE)] ** 2)))

    plain, marked = vocals[1.0], vocals[singer.GLOTTAL_DEPTH]
    for beat in (0.5, 1.0):  # "is", "o-ver"
        assert rms(marked, beat - 0.03, beat - 0.012) < 0.6 * rms(plain, beat - 0.03, beat - 0.012)
    assert rms(marked, 0.15, 0.4) == pytest.approx(rms(plain, 0.15, 0.4), rel=0.02)  # "home" held
    assert rms(marked, 2.0, 2.4) == pytest.approx(rms(plain, 2.0, 2.4), rel=0.02)  # "now" (a consonant)


@needs_festival
def test_a_line_festival_fails_on_is_spoken_from_its_phones_and_the_others_are_read(monkeypatch, caplog):
    from composer.errors import RenderError
    from composer.voice import engine

    real = engine._festival

    def festival(voice, texts, wavs, *rest):
        if any("home" in text for text in texts):
            raise RenderError("festival failed (exit 255): SIOD ERROR")
        return real(voice, texts, wavs, *rest)

    monkeypatch.setattr(engine, "_festival", festival)
    monkeypatch.setattr(engine, "SPEAK_WORKERS", 1)  # both lines in one Festival call, which fails
    phones = word_phones(["carry", "me", "home", "river"])
    first, second = [phones["carry"], phones["me"], phones["home"]], [phones["river"]]
    spoken = engine._speak(VOICES["high"].speaker, (("Carry me home!", tuple(map(tuple, first))),
                                                    ("River.", tuple(map(tuple, second)))))
    assert [[p for p, _, _ in word] for word in spoken.words] == first + second
    assert "Carry me home!" in caplog.text and "spoken from its phones" in caplog.text
    assert "River" not in caplog.text


def test_a_missing_festival_voice_is_named_with_its_install_command(monkeypatch):
    from composer import doctor
    from composer.voice import engine

    monkeypatch.setattr(engine, "festival_path", lambda: None)
    monkeypatch.setattr(engine, "_FOUND", set())
    checks = {c.name: c for c in doctor.run_checks()}
    check = checks["speech engine (festival, for the high voice)"]
    assert not check.ok and "apt-get install festival festvox-us-slt-hts" in check.fix
    if shutil.which("flite"):
        with pytest.raises(engine.EngineMissing, match="apt-get install festival festvox-us-slt-hts"):
            engine.require_speaker(VOICES["high"].speaker)
        assert engine.require_speaker(VOICES["low"].speaker).engine == "flite"


@needs_flite
def test_the_bank_analysed_in_chunks_matches_one_analysis(monkeypatch):
    """Long banks are analysed a few lines at a time (memory): the frames line up with one
    whole analysis, and the envelopes agree away from the cuts, which fall in pauses."""
    import composer.voice.singer as singer
    import lyrics
    from composer.voice.phonemes import word_phones

    lines = [f"{text} {n}" for n, text in enumerate(["the river runs beneath the bridge tonight",
                                                      "carry me home where the lights are low",
                                                      "I remember every word you said"] * 2)]
    phones = {t: (p or ["ax"]) for t, p in word_phones([t for line in lines for t in lyrics.words(line)]).items()}
    bank = tuple((line, tuple(tuple(phones[t]) for t in lyrics.words(line))) for line in sorted(lines))
    monkeypatch.setattr(singer, "ANALYSIS_CHUNK", 1e9)
    singer.clear_bank_cache()
    spoken, f0, sp, ap = singer._analyse("slt", bank)
    monkeypatch.setattr(singer, "ANALYSIS_CHUNK", 3.0)
    singer.clear_bank_cache()
    cuts = singer._pause_cuts(spoken, [len(line) for _, line in bank], 80 * spoken.sample_rate // 16000)
    assert len(cuts) > 3  # several chunks
    _, f0_c, sp_c, ap_c = singer._analyse("slt", bank)
    singer.clear_bank_cache()
    assert f0_c.shape == f0.shape and sp_c.shape == sp.shape and sp_c.dtype == np.float32
    assert np.isclose(f0_c, f0, rtol=1e-3).mean() > 0.97
    voiced = f0 > 0
    assert np.median(np.abs(np.log(sp_c[voiced] + 1e-12) - np.log(sp[voiced] + 1e-12))) < 1e-3


@needs_flite
def test_a_repeated_chorus_is_sung_identically_and_the_same_seed_gives_the_same_bytes():
    chorus = _section("chorus1", "Carry me home tonight", [60, 62, 64, 65, 67, 67, 67, 67], kind="chorus")
    again = _section("chorus2", "Carry me home tonight", [60, 62, 64, 65, 67, 67, 67, 67], kind="chorus",
                     repeat_of="chorus1")
    song = _plan([chorus, again])
    vocal = sing(song, voice="low", sample_rate=RATE, seed=3)
    bar = int(song.section_times()[1][0] * RATE)
    # the second chorus starts after the first's echo-free tail: compare the sung middle
    lo, hi = int(0.2 * RATE), bar - int(0.2 * RATE)
    assert np.abs(vocal.audio[lo:hi]).max() > 0.01
    assert np.array_equal(vocal.audio[lo:hi], vocal.audio[bar + lo: bar + hi])
    twice = sing(song, voice="low", sample_rate=RATE, seed=3)
    assert np.array_equal(vocal.audio, twice.audio)
    other = sing(song, voice="low", sample_rate=RATE, seed=4)
    assert not np.array_equal(vocal.audio, other.audio)


@pytest.mark.parametrize("voice", [pytest.param("low", marks=needs_flite), pytest.param("high", marks=needs_festival)])
@pytest.mark.parametrize("line", ["", "[chorus]", "zxqv blorptang", "42 times 1999", "🙂🙂 love 🙂", "!!! ...",
                                  "Ça va, naïve café", "don't stop-believin'", 'a "quoted" back\\slash (paren) line;'])
def test_bad_lyrics_never_crash_the_voice(line, voice):
    pitches = [60, 62, 64, 65, 67, 69, 71, 72]
    slots = [lyrics.Slot(float(i), 1.0) for i in range(len(pitches))]
    if lyrics.count_syllables(line) > len(slots):
        slots = lyrics.notes_for_line(line, slots)
    fitted = lyrics.fit_line(line, slots)
    notes = [Note(s.start, s.duration, pitches[min(i, 7)], f) for i, (s, f) in enumerate(zip(slots, fitted))]
    section = Section("verse1", "verse", 2, [["C"], ["C"]], melody=notes, lyrics=[line] if line else [])
    vocal = sing(_plan([section]), voice=voice, sample_rate=RATE, seed=0)
    assert np.isfinite(vocal.audio).all()
    assert vocal.audio.shape[0] == int(round(4.0 * RATE))
    if lyrics.count_syllables(line):
        assert np.abs(vocal.audio).max() > 0.01
    else:
        assert not np.any(vocal.audio)


def test_a_missing_speech_engine_is_named_with_its_install_command(monkeypatch):
    from composer import doctor
    from composer.voice import engine

    monkeypatch.setattr(engine, "flite_path", lambda: None)
    checks = {c.name: c for c in doctor.run_checks()}
    check = checks["speech engine (flite, for the singing voice)"]
    assert not check.ok and "apt-get install flite" in check.fix
    with pytest.raises(engine.EngineMissing, match="apt-get install flite"):
        engine.require_flite()


# --- in a render --------------------------------------------------------------------------
def _composer(*args):
    from click.testing import CliRunner

    from composer.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@needs_flite
def test_render_sings_repaint_resings_one_section_restyle_keeps_the_voice(tmp_path, tiny_models):
    codec, model = tiny_models
    out = tmp_path / "song"
    lyric_file = tmp_path / "words.txt"
    lyric_file.write_text("[verse]\nHome, sweet home\nThe river runs\n\n[chorus]\nCarry me, carry me\nHome again\n")
    result = _composer("render", "folk, 120 bpm", "--lyrics", lyric_file, "--seed", 2, "--steps", 2,
                       "--no-evaluate", "--voice", "low", "--codec", codec, "--model", model, "-o", out)
    assert result.exit_code == 0, result.output
    for name in ("vocals.wav", "vocals_dry.wav", "accompaniment.wav", "song.wav"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["vocals"]["voice"] == "low"
    assert (report["vocals"]["speech_engine"], report["vocals"]["engine_voice"]) == ("flite", "rms")  # what sang
    assert report["vocals"]["engine_slowness"] == VOICES["low"].slowness > 1  # and how slowly it read
    assert report["vocals"]["singing"]["slow_consonants"] is VOICES["low"].slow_consonants  # and how it sang
    assert report["vocals"]["singing"]["air"] == VOICES["low"].air
    assert report["vocals"]["singing"]["glottal_onset"]["depth"] < 1
    assert 0.0 <= report["vocals"]["lu_above_accompaniment"] <= 4.0
    song, rate = sf.read(out / "song.wav", dtype="float32", always_2d=True)
    backing, _ = sf.read(out / "accompaniment.wav", dtype="float32", always_2d=True)
    voice, _ = sf.read(out / "vocals.wav", dtype="float32", always_2d=True)
    assert np.abs(song - np.clip(backing + voice, -1, 1)).max() < 3 / 32767  # the song is the mix of its stems
    # the words as written, punctuation kept, at the times the voice sings them
    assert "Home," in (out / "lyrics.lrc").read_text()
    timed = json.loads((out / "lyrics.json").read_text())
    assert timed[0]["words"][0]["word"] == "Home,"
    assert "<text>Home,</text>" in (out / "lead_sheet.musicxml").read_text()

    sections = report["sections"]
    target = [s for s in sections if s["name"].startswith("chorus")][-1]  # a sung section: its voice is re-sung
    before = {n: sf.read(out / n, dtype="int16", always_2d=True)[0] for n in ("song.wav", "vocals.wav")}
    result = _composer("repaint", out, "--section", target["name"], "--codec", codec, "--model", model)
    assert result.exit_code == 0, result.output
    after = {n: sf.read(out / n, dtype="int16", always_2d=True)[0] for n in before}
    repainted = json.loads((out / "report.json").read_text())
    lo, hi = repainted["repaints"][-1]["samples"]
    assert lo >= int((target["start"] - 1.0) * rate)  # the section, its first breath, the decoder's reach
    for name in before:
        assert np.array_equal(before[name][:lo], after[name][:lo]), name
        assert np.array_equal(before[name][hi:], after[name][hi:]), name
        assert not np.array_equal(before[name], after[name]), name
    assert repainted["vocals"]["section_seeds"] == {target["name"]: 3}

    restyled = tmp_path / "restyled"
    result = _composer("restyle", out / "song.wav", "genre=jazz", "--strength", 0.5, "--steps", 2, "--no-evaluate",
                       "--codec", codec, "--model", model, "-o", restyled)
    assert result.exit_code == 0, result.output
    kept, _ = sf.read(restyled / "vocals_dry.wav", dtype="float32")
    dry, _ = sf.read(out / "vocals_dry.wav", dtype="float32")
    n = min(len(kept), len(dry))
    loud = np.abs(dry[:n]) > 0.05
    ratio = kept[:n][loud] / dry[:n][loud]
    assert np.std(ratio) < 0.05 * np.abs(np.mean(ratio))  # the same voice, only its level changed
    for name in ("lyrics.lrc", "lyrics.json"):  # and its words, at the times it sings them
        assert (restyled / name).read_bytes() == (out / name).read_bytes()
    # its plan and lead sheet are the song's, words and title kept (they were an analysis titled
    # "accompaniment", without words), in the new style; the report says which voice sang
    source_plan, restyled_plan = (json.loads((d / "plan.json").read_text()) for d in (out, restyled))
    assert restyled_plan["title"] == source_plan["title"] and restyled_plan["style"] == "jazz"
    assert [s.get("lyrics") for s in restyled_plan["sections"]] == [s.get("lyrics") for s in source_plan["sections"]]
    assert "<text>Home,</text>" in (restyled / "lead_sheet.musicxml").read_text()
    restyled_report = json.loads((restyled / "report.json").read_text())
    assert restyled_report["vocals"]["voice"] == "low"
    # repainting the restyled song re-sings its section in the same voice, and keeps the mix: song = accompaniment + vocals
    chorus = [s for s in restyled_report["sections"] if s["name"].startswith("chorus")][0]
    a, b = int(chorus["start"] * rate), int(chorus["end"] * rate)
    sung_before = np.sqrt(np.mean(sf.read(restyled / "vocals.wav", dtype="float32")[0][a:b] ** 2))
    result = _composer("repaint", restyled, "--section", chorus["name"], "--codec", codec, "--model", model)
    assert result.exit_code == 0, result.output
    sung_after = np.sqrt(np.mean(sf.read(restyled / "vocals.wav", dtype="float32")[0][a:b] ** 2))
    assert 0.5 < sung_after / sung_before < 2.0  # re-sung at the level the restyle gave the voice
    song, _ = sf.read(restyled / "song.wav", dtype="float32", always_2d=True)
    backing, _ = sf.read(restyled / "accompaniment.wav", dtype="float32", always_2d=True)
    voice, _ = sf.read(restyled / "vocals.wav", dtype="float32", always_2d=True)
    n = min(len(song), len(backing), len(voice))
    assert np.abs(song[:n] - np.clip(backing[:n] + voice[:n], -1, 1)).max() < 4 / 32767


def test_no_vocals_leaves_no_stems_and_an_unknown_voice_is_bad_input(tmp_path, tiny_models):
    codec, model = tiny_models
    out = tmp_path / "plain"
    result = _composer("render", "folk, 120 bpm", "--duration", 10, "--steps", 2, "--no-evaluate", "--no-vocals",
                       "--codec", codec, "--model", model, "-o", out)
    assert result.exit_code == 0, result.output
    assert not (out / "vocals.wav").exists() and not (out / "accompaniment.wav").exists()
    assert "vocals" not in json.loads((out / "report.json").read_text())
    result = _composer("render", "folk", "--duration", 10, "--voice", "castrato", "--codec", codec, "--model", model,
                       "-o", tmp_path / "bad")
    assert result.exit_code == 2
    assert "--voice: unknown voice 'castrato'" in result.output


def test_batch_rows_choose_their_voice(tmp_path):
    from composer.batch.rows import read_rows

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "folk", "voice": "low"}\n{"prompt": "pop"}\n{"prompt": "x", "voice": "bass"}\n')
    rows, errors = read_rows(prompts)
    assert [r.voice for r in rows] == ["low", None]
    assert len(errors) == 1 and "voice: unknown voice 'bass'" in errors[0].reason
    assert Path(prompts).is_file()


def test_planned_spans_are_the_lines_the_voice_sings():
    """The accompaniment rests under lines timed from the plan alone, while the voice is
    made alongside: the two must agree exactly."""
    import composer
    from composer.voice.singer import planned_spans, sing

    song = composer.plan("pop song about rivers", duration=40, seed=4)
    assert planned_spans(song) == sing(song, sample_rate=8000, seed=0).sung_spans != []


def test_the_room_added_in_blocks_is_the_whole_convolution(monkeypatch):
    import composer.voice.mix as mix

    rate = 8000
    dry = np.random.default_rng(0).standard_normal(7 * rate).astype(np.float32) * 0.1
    monkeypatch.setattr(mix, "REVERB_BLOCK", 2)  # 4 blocks, each room tail crossing into the next
    wet = mix.reverb(dry, rate, seed=3)
    monkeypatch.setattr(mix, "REVERB_BLOCK", 100)  # one block
    whole = mix.reverb(dry, rate, seed=3)
    assert wet.dtype == np.float32 and wet.shape == dry.shape
    np.testing.assert_allclose(wet, whole, atol=1e-6)
    assert not np.allclose(wet, dry)  # a room was added


def test_only_small_bank_analyses_are_kept(monkeypatch):
    """A long song's WORLD analysis is let go once sung (not held through the render); small
    ones are remembered for a repaint."""
    from composer.voice import singer

    calls = []
    monkeypatch.setattr(singer, "_analyse_now", lambda voice, bank: calls.append(bank) or (
        type("S", (), {"audio": np.zeros(len(bank) * 1000, np.float32)})(), np.zeros(10), np.zeros(10), np.zeros(10)))
    singer.clear_bank_cache()
    monkeypatch.setattr(singer, "BANK_CACHE_BYTES", 8000)
    small, large = ((("ax",),),), ((("ax",),),) * 3
    kept = singer._analyse("slt", small)
    assert singer._analyse("slt", small) is kept and len(calls) == 1
    with pytest.raises(ValueError):  # shared by every song that re-sings it: nobody may change it
        kept[2][0] = 1.0
    singer._analyse("slt", large)
    singer._analyse("slt", large)
    assert len(calls) == 3  # 12 kB of analysis: not kept
    singer.clear_bank_cache()


def test_a_loops_echo_wraps_round_it():
    """A sung loop's room is its steady state: the echo of its end sounds at its start, so the
    loop played again and again has no seam (a cut echo would drop at the wrap)."""
    from composer.voice.mix import reverb, ring_reverb

    rate, n = 8000, 6000  # a loop shorter than the echo (1.2 s): it wraps more than once
    dry = np.zeros(n, dtype=np.float32)
    dry[n - 400: n - 100] = np.sin(np.arange(300) * 0.3)  # a note just before the end
    wet = ring_reverb(dry, rate, seed=3)
    assert np.abs(wet[:200]).max() > 0.01  # its echo, at the start
    shifted = ring_reverb(np.roll(dry, 1234), rate, seed=3)
    assert np.allclose(shifted, np.roll(wet, 1234), atol=1e-6)  # a ring: shifting the loop shifts its room
    played = reverb(np.tile(dry, 6), rate, seed=3)[-n:]
    assert np.allclose(played, wet, atol=1e-6)  # what the loop sounds like played again and again


@needs_flite
def test_a_loop_sings_its_words_and_wraps_its_voice(tmp_path, tiny_models):
    codec, model = tiny_models
    words = tmp_path / "hook.txt"
    words.write_text("[Chorus]\nRound and round, we go\nRound again\n")
    out = tmp_path / "loop"
    result = _composer("loop", "folk, 120 bpm", "--bars", 4, "--lyrics", words, "--steps", 2, "--voice", "low",
                       "--codec", codec, "--model", model, "-o", out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["vocals"]["voice"] == "low" and report["vocals"]["wrapped"] is True
    song, rate = sf.read(out / "song.wav", dtype="float32", always_2d=True)
    backing, _ = sf.read(out / "accompaniment.wav", dtype="float32", always_2d=True)
    voice, _ = sf.read(out / "vocals.wav", dtype="float32", always_2d=True)
    bar = 4 * 60.0 / 120
    assert song.shape[0] == backing.shape[0] == voice.shape[0] == round(4 * bar * rate)  # still exactly its bars
    assert np.abs(song - np.clip(backing + voice, -1, 1)).max() < 3 / 32767
    assert np.sqrt(np.mean(voice ** 2)) > 0.01  # it sings
    # its first word begins on the downbeat: the lead-in before it sounds at the loop's end (it was
    # cut, and the voice began at full level on the first sample: a click at every wrap)
    dry, _ = sf.read(out / "vocals_dry.wav", dtype="float32")
    edge = int(0.02 * rate)
    head, tail = (float(np.sqrt(np.mean(x ** 2))) for x in (dry[:edge], dry[-edge:]))
    assert head > 0.01 and tail > 0.25 * head
    assert "<00:02.00>round, <00:02.50>we" in (out / "lyrics.lrc").read_text()  # each word at its time
    assert "<text>Round</text>" in (out / "lead_sheet.musicxml").read_text()
    # too many words for its bars, or none: one clear line naming the file
    words.write_text("\n".join(["la " * 12] * 6))
    result = _composer("loop", "folk", "--bars", 2, "--lyrics", words, "--codec", codec, "--model", model,
                       "-o", tmp_path / "crammed")
    assert result.exit_code == 2 and "--bars: 2 too few for the 6 lines" in result.output
    words.write_text("[Chorus]\n\n[Verse]\n")
    result = _composer("loop", "folk", "--bars", 2, "--lyrics", words, "--codec", codec, "--model", model,
                       "-o", tmp_path / "empty")
    assert result.exit_code == 2 and f"lyrics {words}: only section tags" in result.output
