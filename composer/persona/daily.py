"""`composer daily --persona DIR`: the song of the day, in the persona's manner.

The date seeds everything (with the persona's identity): the same persona and date
give the same song, byte for byte. Metadata come from the priors (pinned values
with `--set field=value`), lyrics and title from the persona's lyric model, the
plan from the project's planner with those, and the render from the persona's
fine-tuned model (sung, as every song with lyrics is). `--days N` renders a run
of dated folders; a folder already finished is skipped, so a killed run resumes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import random
import re
from dataclasses import dataclass, replace
from pathlib import Path

from composer.errors import InputError
from structure.prompt import field_token

log = logging.getLogger(__name__)

SECTION_TAG = {"verse": "Verse", "chorus": "Chorus", "bridge": "Bridge", "intro": "Intro", "outro": "Outro",
               "pre-chorus": "Pre-Chorus", "solo": "Solo", "interlude": "Interlude", "breakdown": "Breakdown"}
SUNG_KINDS = frozenset({"verse", "chorus", "bridge", "pre-chorus", "hook"})
# How far the persona's model goes from the base model toward its fine-tune (diffusion.model.blend):
# chosen by measurement on 40 demo-persona days (benchmarks/persona.py --renders 40): the key the
# renders keep falls as the strength rises (key score 0.84 at 0.25, 0.80 at 0.35, 0.77 at 0.5,
# 0.42 at 1, against 0.87 for the base model, standard error about 0.05), while the sound comes
# closer to the archive's (Frechet distance to held-out archive songs 61, 56, 48, 22, against 70);
# 0.25 is the strongest blend whose key stays within the noise of the base model's (16 days had
# put 0.5 there, which 40 did not bear out); tempo and form are kept at every strength
DEFAULT_STRENGTH = 0.25


@dataclass
class Persona:
    folder: Path
    info: dict
    priors: object
    lyrics: object

    @property
    def model_dir(self) -> Path:
        return self.folder / "model"


def _archive_of(folder: Path) -> str | None:
    try:
        return json.loads((folder / "state.json").read_text()).get("archive")
    except (OSError, ValueError, AttributeError):
        return None


def _warn_once(message: str) -> None:
    """A warning said once a process (a run of days loads its persona once a day)."""
    from structure.notices import warn_once

    warn_once(log, ("persona", message), "%s", message)


def load_persona(folder: str | Path) -> Persona:
    from composer.persona.build import withdrawn_since
    from composer.persona.lyric_model import LyricModel
    from composer.persona.priors import Priors

    folder = Path(folder)
    withdrawn = withdrawn_since(folder)
    archive = _archive_of(folder)
    if archive and not Path(archive).is_dir():  # moved, or another machine: its withdrawals cannot be seen
        _warn_once(f"--persona {folder}: its archive {archive} is not on this machine, so a consent withdrawn "
                   "there is not seen; keep the archive where it was built, or build the persona again from it")
    if withdrawn:
        raise InputError(f"--persona {folder}: learnt {len(withdrawn)} file(s) whose consent was since withdrawn "
                         f"({', '.join(withdrawn[:3])}{' ...' if len(withdrawn) > 3 else ''}); build it again "
                         f"without them: composer persona build ARCHIVE -o {folder}")
    if not (folder / "persona.json").is_file():
        state = folder / "state.json"
        hint = " (its build did not finish: run `composer persona build` again to resume)" if state.is_file() else ""
        raise InputError(f"--persona {folder}: not a persona{hint}")
    try:
        info = json.loads((folder / "persona.json").read_text())
        priors = Priors.from_dict(json.loads((folder / "priors.json").read_text()))
        lyrics = LyricModel.from_json((folder / "lyrics.json").read_text())
    except (OSError, ValueError, TypeError) as error:
        raise InputError(f"--persona {folder}: damaged ({error})") from None
    return Persona(folder=folder, info=info, priors=priors, lyrics=lyrics)


def persona_strength(persona: Persona, strength: float | None = None) -> float:
    """`strength` checked, or the persona's own (DEFAULT_STRENGTH for one made before strengths)."""
    if strength is None:
        strength = persona.info.get("strength", DEFAULT_STRENGTH)
    try:
        strength = float(strength)
    except (TypeError, ValueError):
        raise InputError(f"--strength {strength!r}: not a number") from None
    if not 0.0 <= strength <= 1.0:
        raise InputError(f"--strength {strength}: outside 0..1 (0: the base model, 1: the persona's fine-tune)")
    return strength


def persona_model(persona: Persona, strength: float | None = None):
    """The persona's diffusion model at `strength` (default: the persona's own, else
    DEFAULT_STRENGTH): its fine-tune pulled back toward the model it was fine-tuned from.
    The fine-tune alone (1) sounds most like the archive but keeps the drawn key less well;
    the base model (0) keeps it, sounding like the archive least. None: no fine-tune."""
    import composer
    from diffusion.model import blend

    if not (persona.model_dir / "config.json").is_file():
        return None
    strength = persona_strength(persona, strength)
    try:
        tuned = composer.load_model(persona.model_dir)
    except InputError as error:  # "--model P/model: ..." names an option the user did not give
        problem = str(error).split(": ", 1)[-1]
        raise InputError(f"--persona {persona.folder}: its fine-tuned model is damaged ({problem}); build it "
                         f"again (remove {persona.model_dir} and run `composer persona build`)") from None
    if strength == 1.0:
        return tuned
    info = persona.info.get("model") or {}
    init = info.get("init")
    base = composer.load_model(None if init in (None, "bundled") else init)
    expected = info.get("init_identity")
    if expected and base.identity() != expected:
        raise InputError(f"--persona {persona.folder}: it was fine-tuned from diffusion model {expected}, and "
                         f"{init or 'bundled'} is now {base.identity()}; render it with --strength 1")
    try:
        return blend(base, tuned, strength)
    except ValueError as error:
        raise InputError(f"--persona {persona.folder}: {error}; render it with --strength 1") from None


def day_seed(persona: Persona, day: dt.date) -> int:
    text = f"{persona.info.get('identity')}|{day.isoformat()}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % (2**31)


_PIN_NAME = re.compile(r"[A-Za-z_][\w\-]*")  # what the prompt reads as a field name
METER_PINS = ("meter", "time_signature", "beats_per_bar")
TEMPO_PINS = ("tempo", "bpm")
LYRIC_PINS = ("lyrics", "lyrics_file")
# pins the day uses without a prior of the archive's fields: its labels, its form, its length, its title
DRAWN_PINS = frozenset({"tempo", "key", "beats_per_bar", "beat_division", "form", "duration", "title"})


def check_pins(pinned: dict[str, str] | None) -> dict:
    """`--set` values checked by the prompt's own parsers and put as the priors draw them:
    tempo (or bpm) a number of BPM, key its name, meter (time_signature, beats_per_bar) beats
    per bar, form a list of section kinds. Anything wrong is an InputError naming the pin, as is a
    pin of what the day does not draw from the priors (lyrics: the lyric model writes its words)."""
    from structure.prompt import parse_duration, parse_meter, parse_tempo
    from structure.schema import SECTION_KINDS, Key, PlanError

    checked: dict = {}
    for name, value in (pinned or {}).items():
        where = f"--set {name}={value}"
        if not isinstance(name, str) or not _PIN_NAME.fullmatch(name):
            raise InputError(f"{where}: a field name is letters, digits, _ and - (starting with a letter)")
        text = str(value).strip()
        if not text:
            raise InputError(f"{where}: empty value")
        lowered = name.lower()
        try:
            if lowered in TEMPO_PINS:
                checked["tempo"] = parse_tempo(text, where)
            elif lowered in METER_PINS:
                checked["beats_per_bar"], division = parse_meter(text, where)
                if division == 3:
                    checked["beat_division"] = division
            elif lowered == "key":
                checked["key"] = str(Key.parse(text, where))
            elif lowered == "form":
                kinds = [kind.lower() for kind in re.split(r"[\s,]+", text) if kind]
                unknown = [kind for kind in kinds if kind not in SECTION_KINDS]
                if unknown:
                    raise InputError(f"{where}: unknown section kind {unknown[0]!r} (known: {', '.join(SECTION_KINDS)})")
                checked["form"] = kinds
            elif lowered == "duration":
                parse_duration(text, where)
                checked["duration"] = text
            elif lowered == "beat_division":
                raise InputError(f"{where}: the beat's division comes with the meter (--set meter=6/8)")
            elif lowered == "seed":
                raise InputError(f"{where}: a daily song's seed is its date (give --date)")
            elif lowered in LYRIC_PINS:  # it was a tag of the prompt while the song sang the model's words
                raise InputError(f"{where}: a daily song's lyrics are written by the persona's lyric model; "
                                 "to sing your own, render them with `composer render --lyrics`")
            else:
                checked[name] = text
        except PlanError as error:
            raise InputError(f"{where}: {error.problem}") from None
    return checked


def unseen_pins(priors, checked: dict) -> list[str]:
    """A warning line for each checked pin of a field no song of the archive has, or of a value
    none has: it is pinned as asked (a new mood is the user's to try), but the persona never
    learnt it, so its sound will not follow it as it follows the archive's own."""
    lines = []
    for name, value in checked.items():
        if name in DRAWN_PINS:
            continue
        seen = priors.fields.get(name)
        if seen is None:
            known = ", ".join(sorted(priors.fields)[:8]) or "none"
            lines.append(f"--set {name}={value}: no song of the archive has the field {name!r} (its fields: "
                         f"{known}); pinned as asked")
        elif value not in seen:
            known = ", ".join(sorted(seen, key=lambda v: (-seen[v], v))[:8])
            lines.append(f"--set {name}={value}: no song of the archive has {name} {value!r} (it has {known}); "
                         "pinned as asked")
    return lines


def kept_differs(report: dict, *, strength: float | None, checked: dict, options) -> list[str]:
    """What a run asks that a day already rendered was not rendered with (its strength, its
    pins, --from-guide), each as "asked (rendered with)": a kept day is said to differ, so
    the user knows to --overwrite it, rather than taking it for what they asked."""
    persona = report.get("persona") or {}
    drawn = {**(persona.get("drawn") or {}), "form": persona.get("form"), "title": persona.get("title")}
    sources = persona.get("priors") or {}
    differs = []
    if persona.get("strength") != strength:
        differs.append(f"strength {strength} (rendered with {persona.get('strength')})")
    for name, value in checked.items():
        if sources.get(name) != "pinned" or drawn.get(name) != value:
            shown = " ".join(value) if isinstance(value, list) else value
            had = drawn.get(name)
            had = " ".join(had) if isinstance(had, list) else had
            differs.append(f"{name}={shown} (rendered without {name})" if had is None else
                           f"{name}={shown} (rendered with {name}={had}, {sources.get(name)})")
    for name in sorted(n for n, source in sources.items() if source == "pinned" and n not in checked):
        differs.append(f"{name} drawn (rendered with {name} pinned to {drawn.get(name)})")
    asked_guide = getattr(options, "from_guide", None)
    had_guide = (report.get("options") or {}).get("from_guide")
    if asked_guide is not None and had_guide is not None and float(had_guide) != float(asked_guide):
        differs.append(f"--from-guide {asked_guide:g} (rendered with {float(had_guide):g})")
    return differs


def draw_song(persona: Persona, day: dt.date, pinned: dict[str, str] | None = None) -> dict:
    """What the day's song is: metadata (and which prior each came from), lyrics, title, prompt.
    A persona whose archive gave its lyric model no words (an instrumental archive), or whose
    model writes no line for the day, gets an instrumental song: lyrics None, and
    `instrumental` says why."""
    from composer.persona.priors import QuasiRandom, compound_tempo, meter_of, song_meter

    pinned = check_pins(pinned)
    seed = day_seed(persona, day)
    rng = random.Random(seed)
    quantiles = QuasiRandom(day.toordinal(), int(persona.info.get("identity", "0") or "0", 16))
    drawn = persona.priors.draw(quantiles, pinned)
    values = drawn["values"]
    for name in ("time_signature", "meter"):  # the priors of a persona built before meter fields were the meter
        if name in values:
            source = drawn["priors"].pop(name)
            meter = song_meter({name: values.pop(name)})
            if meter is not None and drawn["priors"].get("beats_per_bar") != "pinned":
                beats, division = meter_of(meter)
                values["beats_per_bar"], drawn["priors"]["beats_per_bar"] = beats, source
                values.pop("beat_division", None)
                drawn["priors"].pop("beat_division", None)
                if division == 3:
                    values["beat_division"], drawn["priors"]["beat_division"] = 3, source
                    if "tempo" in values and drawn["priors"].get("tempo") != "pinned":  # as `Priors.draw` does
                        values["tempo"], drawn["priors"]["tempo"] = compound_tempo(values["tempo"],
                                                                                  drawn["priors"]["tempo"])
    form = values.pop("form", None) or ["verse", "chorus", "verse", "chorus"]
    # An archive without words (an instrumental artist's) still has a sound, priors and a
    # fine-tune worth a daily song, so the persona makes instrumental songs, and says so in its
    # card and in each report, rather than refusing the whole build or failing every day.
    instrumental = None if persona.lyrics.unigrams else "the archive's lyrics gave the lyric model no words"
    sections, seen, openings = [], {}, set()  # openings: how the song's lines begin, not to be echoed
    for kind in form:
        if kind not in SUNG_KINDS or instrumental:
            sections.append((kind, []))
        elif kind == "chorus" and kind in seen:  # a chorus repeats its words
            sections.append((kind, seen[kind]))
        else:
            lines = persona.lyrics.write_section(kind, rng, quantile=quantiles, openings=openings)
            seen.setdefault(kind, lines)
            sections.append((kind, lines))
    if not instrumental and not any(lines for _, lines in sections):
        instrumental = "the lyric model wrote no line for this day"
        log.warning("%s: %s; an instrumental song", day.isoformat(), instrumental)
    title = pinned.get("title") or persona.lyrics.title(sections, rng)
    if instrumental:
        text = None
    else:
        text = "\n\n".join(f"[{SECTION_TAG.get(kind, kind.title())}]" + ("\n" + "\n".join(lines) if lines else "")
                           for kind, lines in sections)
    tokens = [field_token(key, value) for key, value in sorted(values.items())
              if key not in ("beats_per_bar", "beat_division", "title")]
    if "beats_per_bar" in values:  # the one meter of the prompt: drawn, or pinned
        beats = values["beats_per_bar"]
        tokens.append(f"meter={beats * 3}/8" if values.get("beat_division") == 3 else f"meter={beats}/4")
    if text is None:  # no lyric tags to name the form: the prompt does
        tokens.append(field_token("form", " ".join(form)))
    return {"date": day.isoformat(), "seed": seed, "title": title, "metadata": values, "form": form,
            "priors": drawn["priors"], "lyrics": text, "prompt": " ".join(tokens), "instrumental": instrumental}




def daily(persona_dir: str | Path, out: str | Path, *, start: dt.date, days: int = 1,
          pinned: dict[str, str] | None = None, options=None, codec=None, progress: bool = True,
          on_done=None, strength: float | None = None, overwrite: bool = False, on_skip=None,
          on_fail=None) -> list[Path]:
    """Render `days` songs from `start` into OUT/YYYY-MM-DD (skipping finished ones, each
    passed to `on_skip(folder, report, differs)`, `differs` naming what this run asks that the
    kept day was not rendered with (`kept_differs`), unless `overwrite`: rendered again in place).
    A day whose folder cannot be used (bad input) does not stop the run: it is passed to
    `on_fail(folder, error)` and the other days render; without `on_fail` the first such error
    is raised once every day has been tried.
    strength: how far the model goes toward the persona's fine-tune (`persona_model`).
    options: a persona's song starts from noise unless `options.from_guide` says otherwise, so
    its sound is what the persona learnt, not the General MIDI guide's."""
    import composer
    from composer.errors import bad_input_types
    from composer.rendering.folder import check_output, claim_output, read_report
    from composer.rendering.options import RenderOptions

    # every date is checked before any work: a run past 9999-12-31 used to render its first days
    # and then fail on an OverflowError
    if days < 1 or days > 3660:
        raise InputError(f"--days {days}: outside 1..3660")
    try:
        start + dt.timedelta(days=days - 1)
    except OverflowError:
        raise InputError(f"--date {start.isoformat()} --days {days}: runs past {dt.date.max.isoformat()}, "
                         "the last date there is") from None
    options = options or RenderOptions()
    if options.from_guide is None:
        options = replace(options, from_guide=1.0)
    persona = load_persona(persona_dir)
    checked = check_pins(pinned)  # a wrong pin is said before any day is drawn
    for line in unseen_pins(persona.priors, checked):
        log.warning("%s", line)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"-o {out}: exists and is not a folder")
    model = persona_model(persona, strength)
    strength = None if model is None else persona_strength(persona, strength)
    codec = codec or persona.info.get("codec")  # the codec it was built with (None: the bundled one)
    written, failed = [], []
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        folder = out / day.isoformat()
        if (folder / "report.json").is_file() and not overwrite:  # a render folder is swapped in whole: done
            log.info("%s: already rendered, skipped", folder)
            written.append(folder)
            if on_skip:
                try:
                    report = read_report(folder)
                    differs = kept_differs(report, strength=strength, checked=checked, options=options)
                except InputError:  # its report.json is unreadable: still the user's folder, still kept
                    report, differs = {}, []
                on_skip(folder, report, differs)
            continue
        try:  # a day whose folder cannot be used is that day's failure, not the run's
            check_output(folder, overwrite=overwrite)
        except (*bad_input_types(), PermissionError, FileExistsError, IsADirectoryError,
                NotADirectoryError) as error:
            failed.append(error)
            if on_fail:
                on_fail(folder, error)
            else:
                log.error("%s: %s", folder, error)
            continue
        song = draw_song(persona, day, pinned)
        plan = composer.plan(song["prompt"], lyrics=song["lyrics"], seed=song["seed"], model=model,
                             write_lyrics=not song["instrumental"])  # the planner's own words are not the persona's
        plan.title = song["title"]
        with claim_output(folder, overwrite=overwrite):
            result = composer.render(plan, seed=song["seed"], codec=codec, model=model, options=options,
                                     progress=progress)
            result.report["persona"] = {"persona": str(persona.folder), "identity": persona.info.get("identity"),
                                        "date": song["date"], "drawn": song["metadata"], "form": song["form"],
                                        "priors": song["priors"], "title": song["title"], "strength": strength,
                                        "instrumental": song["instrumental"], "demo": persona.info.get("demo", False)}
            result.save(folder)
        written.append(folder)
        if on_done:
            on_done(folder, result)
    if failed and not on_fail:
        raise failed[0]
    return written
