"""The studio's work, without the web page: plan, edit, render with a preview per section,
repaint, restyle, interpolate, loop, guide, daily song, and a history kept in the output
folder (`history.json`), so a restarted studio reopens every render.

Everything is written inside the output folder: each result in its own render folder
(written whole, as `composer render` writes one), the previews of the render under way in
`.studio/preview/`, uploads and Gradio's files in `.studio/uploads/`. One job runs at a
time (`Studio.busy`); the page queues the others.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from composer.errors import InputError

log = logging.getLogger(__name__)

HISTORY = "history.json"
STUDIO_DIR = ".studio"
UPLOAD_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
MAX_UPLOAD_BYTES = 200 * 1024 * 1024  # 1,800 s of 24-bit stereo FLAC fits; the audio checks do the rest
# what a render folder offers for download, in this order
DOWNLOADS = ("song.wav", "song.flac", "vocals.wav", "vocals_dry.wav", "accompaniment.wav", "song.mid",
             "lead_sheet.musicxml", "lyrics.lrc", "lyrics.json", "plan.json", "report.json", "guide.wav")


@dataclass
class Entry:
    """One result in the history."""

    folder: str  # relative to the output folder
    kind: str  # render, repaint, restyle, interpolate, loop, daily
    title: str
    created: str
    seed: int | None = None
    duration: float | None = None
    note: str = ""
    originality: str = ""


PREVIEW_AHEAD = 60.0  # seconds of song past the render's elapsed time worth decoding early


@dataclass
class Preview:
    """The sections of the render under way, decoded as they are made (`clips`: wav paths,
    `starts`: their times in the song). A section is decoded early only while a listener who
    pressed play at the start could reach it before the song is done (it starts less than
    `PREVIEW_AHEAD` s past the time rendering has taken so far); the player then carries on
    in the finished song from where the preview was."""

    folder: Path
    clips: list[Path] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    gain: float | None = None
    began: float = field(default_factory=time.monotonic)


def keep_files_inside(studio: Studio) -> None:
    """Point this process's temporary files (Python's `tempfile`, Gradio's uploads and cache,
    music21's scratch files, the programs it runs) into the studio's folder."""
    import os
    import tempfile

    scratch = studio.work / "tmp"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    os.environ["TMPDIR"] = str(scratch)
    tempfile.tempdir = str(scratch)
    os.environ["GRADIO_TEMP_DIR"] = str(studio.work / "uploads")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"


def slug(text: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return words[:40].strip("-") or "song"


class Studio:
    """The studio's state: the output folder, the loaded models and the history."""

    def __init__(self, out: str | Path, *, codec=None, model=None):
        self.out = Path(out).resolve()
        if self.out.exists() and not self.out.is_dir():
            raise InputError(f"--out {out}: exists and is not a folder")
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = self.out / STUDIO_DIR
        shutil.rmtree(self.work / "preview", ignore_errors=True)  # previews of a studio that stopped
        (self.work / "uploads").mkdir(parents=True, exist_ok=True)
        self.codec_path, self.model_path = codec, model
        self._models = None
        self.busy = threading.Lock()  # one job at a time
        self._history_lock = threading.Lock()

    # --- models -----------------------------------------------------------
    @property
    def models(self):
        """(codec, model), loaded once."""
        if self._models is None:
            from composer.models import load_models

            self._models = load_models(self.codec_path, self.model_path)
        return self._models

    # --- paths ------------------------------------------------------------
    def inside(self, path: str | Path) -> Path:
        """`path` resolved, refused unless it lies inside the output folder."""
        resolved = (self.out / path).resolve() if not Path(path).is_absolute() else Path(path).resolve()
        if resolved != self.out and self.out not in resolved.parents:
            raise InputError(f"{path}: outside the studio's folder {self.out}")
        return resolved

    def new_folder(self, title: str, kind: str) -> Path:
        base = f"{dt.date.today().isoformat()}-{slug(title)}" if kind != "daily" else "daily"
        for n in range(1, 100000):
            folder = self.out / f"{base}-{kind}-{n:03d}"
            if not folder.exists():
                return folder
        raise InputError(f"{self.out}: no free folder name for {base}")

    # --- history ----------------------------------------------------------
    def history(self) -> list[Entry]:
        """Newest first; entries whose folder is gone are left out."""
        path = self.out / HISTORY
        if not path.is_file():
            return []
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            rows = self._found_songs()
            damaged = path.with_name(HISTORY + ".damaged")
            if not damaged.exists():
                shutil.copyfile(path, damaged)  # what the user had is kept, not written over
            log.warning("%s: unreadable (%s); the history is made again from the %d song folders in %s (the "
                        "damaged file is kept as %s)", path, error, len(rows), self.out, damaged.name)
        entries = []
        for row in rows if isinstance(rows, list) else []:
            try:
                entry = Entry(**{k: row[k] for k in row if k in Entry.__dataclass_fields__})
            except TypeError:
                continue
            if (self.out / entry.folder / "report.json").is_file():
                entries.append(entry)
        return entries[::-1]

    def _found_songs(self) -> list[dict]:
        """History rows (oldest first) for the song folders in the output folder: what a history that
        cannot be read is made again from."""
        rows = []
        reports = [*self.out.glob("*/report.json"), *self.out.glob("*/*/report.json")]  # daily/DATE, set/NN
        folders = [r.parent for r in reports if not any(p.startswith(".") for p in r.relative_to(self.out).parts)]
        for folder in sorted(folders, key=lambda f: ((f / "report.json").stat().st_mtime, f.name)):
            try:
                report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
                plan = json.loads((folder / "plan.json").read_text(encoding="utf-8")) \
                    if (folder / "plan.json").is_file() else {}
            except (OSError, ValueError):
                continue
            mode = (report.get("mode") or {}).get("name") if isinstance(report.get("mode"), dict) else None
            created = dt.datetime.fromtimestamp((folder / "report.json").stat().st_mtime).isoformat(timespec="seconds")
            rows.append(vars(Entry(folder=folder.relative_to(self.out).as_posix(), kind=str(mode or ("daily" if report.get("persona") else "render")),
                                   title=str(plan.get("title") or folder.name), created=created,
                                   seed=report.get("seed"), duration=report.get("duration"),
                                   originality=str((report.get("originality") or {}).get("verdict", "")))))
        return rows

    def _remember(self, folder: Path, kind: str, *, note: str = "") -> Entry:
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        plan = json.loads((folder / "plan.json").read_text(encoding="utf-8")) if (folder / "plan.json").is_file() else {}
        entry = Entry(folder=str(folder.relative_to(self.out)), kind=kind, title=str(plan.get("title") or folder.name),
                      created=dt.datetime.now().isoformat(timespec="seconds"), seed=report.get("seed"),
                      duration=report.get("duration"), note=note,
                      originality=str((report.get("originality") or {}).get("verdict", "")))
        # once (a history made again from the folders already holds this one)
        self._rewrite_history(lambda rows: [r for r in rows if r.get("folder") != entry.folder] + [vars(entry)])
        return entry

    def _rewrite_history(self, change) -> None:
        """history.json (oldest first) through `change(rows) -> rows`, written atomically."""
        from composer.data.audio import write_text_atomic

        with self._history_lock:
            rows = change([vars(e) for e in self.history()[::-1]])
            write_text_atomic(self.out / HISTORY, json.dumps(rows, indent=1))

    def _update_history(self, folder: Path, **fields) -> None:
        name = str(folder.relative_to(self.out))
        self._rewrite_history(lambda rows: [{**row, **fields} if row["folder"] == name else row for row in rows])

    def downloads(self, folder: str | Path) -> list[Path]:
        folder = self.inside(folder)
        return [folder / name for name in DOWNLOADS if (folder / name).is_file()]

    # --- planning ---------------------------------------------------------
    def plan(self, prompt: str, *, lyrics: str | None = None, duration: float | None = None, seed: int = 0):
        import composer

        if not (prompt or "").strip() and not (lyrics or "").strip():
            raise InputError("prompt: give a prompt or lyrics")
        return composer.plan(prompt or "", lyrics=lyrics or None, duration=duration, seed=seed,
                             model=self.models[1])

    def edit(self, plan, rows, *, tempo_bpm=None, key=None, beats_per_bar=None, title=None, seed: int = 0):
        from composer.originality import lineage_indexes, melody_check
        from structure.editing import apply_rows

        return apply_rows(plan, rows, tempo_bpm=tempo_bpm, key=key, beats_per_bar=beats_per_bar, title=title,
                          seed=seed, melody_check=melody_check(lineage_indexes(self.models[1])))

    # --- rendering --------------------------------------------------------
    def render(self, plan, *, seed: int = 0, options=None, on_progress=None, on_clip=None,
               evaluate_later: bool = False) -> Entry:
        """Render `plan` into a new folder. on_progress(section, frames made, total);
        on_clip(Preview) each time a section's audio can be played. evaluate_later: the
        song is written without its evaluation, which `evaluate(entry.folder)` adds (the
        page plays the song meanwhile)."""
        from dataclasses import replace

        from composer.rendering.folder import claim_output
        from composer.rendering.options import RenderOptions
        from composer.rendering.renderer import render

        options = (options or RenderOptions()).check()
        if evaluate_later:
            options = replace(options, evaluate=False, originality=False)
        codec, model = self.models
        with self.busy:  # the folder is named under the lock: two jobs never aim at one name
            folder = self.new_folder(plan.title, "render")
            preview = self._start_preview()
            with claim_output(folder):
                result = render(plan, seed=seed, codec=codec, model=model, options=options, progress=False,
                                on_progress=on_progress,
                                on_section=lambda done: self._preview_section(preview, done, on_clip))
                result.save(folder, lead_sheet=not evaluate_later)
        return self._remember(folder, "render")

    def evaluate(self, folder: str | Path) -> dict:
        """What `composer render` writes with the song, for a render made with
        `evaluate_later`: the originality check against what the model learnt, the metrics
        against the plan, and the lead sheet. Returns the report."""
        from composer.rendering.folder import (
            LEAD_SHEET_NAME,
            read_plan,
            read_report,
            read_song_pcm,
            write_lead_sheet,
            write_report,
        )
        from composer.rendering.renderer import _check_originality, evaluate_into
        from composer.rendering.vocals import from_pcm

        folder = self.inside(folder)
        with self.busy:
            report = read_report(folder)
            pcm, rate = read_song_pcm(folder)
            audio = from_pcm(pcm.T)
            plan = read_plan(folder)
            if (report.get("originality") or {}).get("verdict") == "pending":
                _check_originality(report, audio, rate, plan, self.models[1])
            evaluate_into(report, audio, rate, plan)
            write_report(folder, report)
            if not (folder / LEAD_SHEET_NAME).is_file():
                write_lead_sheet(folder, plan)
        self._update_history(folder, originality=str(report["originality"].get("verdict", "")))
        return report

    def left_pending(self) -> list[str]:
        """The songs saved but never measured (a studio stopped between the two): their folders,
        oldest first, for `evaluate`."""
        return [e.folder for e in self.history()[::-1] if e.originality == "pending"]

    def _start_preview(self) -> Preview:
        root = self.work / "preview"
        shutil.rmtree(root, ignore_errors=True)
        folder = root / f"{time.time_ns()}"
        folder.mkdir(parents=True)
        return Preview(folder)

    def _preview_section(self, preview: Preview, done, on_clip) -> None:
        """Decode the section just made (with a second of context before it) and write it
        as the next clip; the vocal of the section is mixed in dry."""
        from composer.data.audio import audio_write
        from composer.rendering.loudness import loudness_gain
        from composer.rendering.renderer import decode

        codec = self.models[0]
        hop = codec.hop_length
        start_seconds = done.start / codec.frame_rate
        if preview.clips and start_seconds > time.monotonic() - preview.began + PREVIEW_AHEAD:
            return  # nobody can be listening this far ahead: the finished song will be there first
        context = min(done.start, int(round(codec.frame_rate)))
        audio = decode(codec, done.canvas[:, done.start - context: done.end])[..., context * hop:]
        if done.vocal is not None:
            dry = np.asarray(done.vocal.audio)[done.start * hop: done.start * hop + audio.shape[-1]]
            audio = audio + np.pad(dry, (0, audio.shape[-1] - dry.shape[0]))[None] * 0.8
        if preview.gain is None:
            preview.gain = float(loudness_gain(audio, codec.sample_rate)) if np.abs(audio).max() > 0 else 1.0
        # the file is named by the section's place; its name only as letters and digits (a plan's names are
        # checked, and a file name is never made of what a user typed as it stands)
        path = preview.folder / f"{done.index:03d}-{re.sub(r'[^0-9A-Za-z_-]+', '_', done.name)[:40]}.wav"
        audio_write(path, np.clip(audio * preview.gain, -1.0, 1.0), codec.sample_rate)
        preview.clips.append(path)
        preview.starts.append(round(start_seconds, 4))
        if on_clip is not None:
            on_clip(preview)

    def repaint(self, folder: str | Path, section: str, *, seed: int | None = None) -> Entry:
        """Repaint one section of a render into a copy of its folder (the original stays in
        the history)."""
        from composer.rendering.folder import is_render_dir
        from composer.rendering.modes import repaint

        source = self.inside(folder)
        if not is_render_dir(source):
            raise InputError(f"{folder}: not a render folder")
        plan = json.loads((source / "plan.json").read_text(encoding="utf-8"))
        title = str(plan.get("title") or source.name)
        codec, model = self.models
        report = json.loads((source / "report.json").read_text(encoding="utf-8"))
        if (report.get("persona") or {}).get("persona"):  # a daily song: its persona's models (repaint finds them)
            codec, model = None, None
        with self.busy:
            target = self.new_folder(title, "repaint")
            partial = target.with_name(f".{target.name}.partial")
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(source, partial, ignore=shutil.ignore_patterns(".*", "guide.wav"))
            try:
                repaint(partial, section, seed=seed, codec=codec, model=model, progress=False)
                partial.rename(target)
            except InputError as error:  # it names the song, not the copy it was repainted in
                raise InputError(str(error).replace(str(partial), source.name)) from None
            finally:
                shutil.rmtree(partial, ignore_errors=True)
        return self._remember(target, "repaint", note=f"{section} of {source.name}")

    def check_upload(self, path: str | Path | None, what: str = "audio") -> Path:
        """An uploaded file's path, refused (as the CLI refuses input audio) when it is missing,
        of another type or too large; its content is judged when it is read."""
        if path is None or not str(path).strip():
            raise InputError(f"{what}: no file uploaded")
        path = Path(path)
        if path.suffix.lower() not in UPLOAD_SUFFIXES:
            raise InputError(f"{path.name}: not an audio file this studio takes ({', '.join(UPLOAD_SUFFIXES)})")
        if not path.is_file():
            raise InputError(f"{path.name}: the upload is gone; upload it again")
        if path.stat().st_size > MAX_UPLOAD_BYTES:
            raise InputError(f"{path.name}: {path.stat().st_size / 2**20:.0f} MB, more than the limit of "
                             f"{MAX_UPLOAD_BYTES // 2**20} MB")
        return path

    def _named(self, path: Path, error: InputError) -> InputError:
        """The CLI's message about an upload, with the file's own name instead of its upload path."""
        return InputError(str(error).replace(str(path), path.name))

    def restyle(self, audio: str | Path, prompt: str, *, strength: float = 0.6, seed: int = 0, options=None) -> Entry:
        from composer.rendering.folder import claim_output
        from composer.rendering.modes import restyle

        path = self.check_upload(audio)
        if not 0.0 <= strength <= 1.0:
            raise InputError(f"strength: {strength:g} is outside 0..1")
        codec, model = self.models
        with self.busy, claim_output(folder := self.new_folder(f"{path.stem} {prompt}", "restyle")):
            try:
                result = restyle(path, prompt, strength=strength, seed=seed, codec=codec, model=model,
                                 options=options, progress=False)
            except InputError as error:
                raise self._named(path, error) from None
            result.save(folder)
        return self._remember(folder, "restyle", note=f"{path.name} at strength {strength:g}")

    def interpolate(self, audio_a: str | Path, audio_b: str | Path, *, count: int = 3, seed: int = 0,
                    options=None) -> list[Entry]:
        from composer.rendering.modes import interpolate

        a, b = self.check_upload(audio_a, "first recording"), self.check_upload(audio_b, "second recording")
        if not 2 <= count <= 16:
            raise InputError(f"count: {count} is outside 2..16")
        codec, model = self.models
        with self.busy:
            folder = self.new_folder(f"{a.stem} to {b.stem}", "interpolate")
            try:
                results = interpolate(a, b, count=count, seed=seed, codec=codec, model=model, options=options,
                                      progress=False)
            except InputError as error:
                raise self._named(a, self._named(b, error)) from None
            entries = []
            for k, result in enumerate(results):
                result.plan.title = f"{a.stem} to {b.stem} {k + 1}/{len(results)}"
                result.save(folder / f"{k:02d}")
                entries.append(self._remember(folder / f"{k:02d}", "interpolate", note=f"{k + 1} of {len(results)}"))
        return entries

    def loop(self, prompt: str, bars: int, *, seed: int = 0, options=None) -> Entry:
        from composer.rendering.folder import claim_output
        from composer.rendering.modes import loop

        if not 1 <= bars <= 64:
            raise InputError(f"bars: {bars} is outside 1..64")
        codec, model = self.models
        with self.busy, claim_output(folder := self.new_folder(prompt or "untitled", "loop")):
            result = loop(prompt, bars, seed=seed, codec=codec, model=model, options=options, progress=False)
            result.save(folder)
        return self._remember(folder, "loop", note=f"{bars} bars")

    def daily(self, persona: str | Path, date: str, *, options=None) -> Entry:
        from composer.persona.daily import daily

        try:
            day = dt.date.fromisoformat(str(date).strip())
        except ValueError:
            shaped = re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(date).strip())
            raise InputError(f"date: {str(date)[:40]!r} " + ("is no such day" if shaped else "is not YYYY-MM-DD")) \
                from None
        kept: list[list[str]] = []
        with self.busy:
            folders = daily(persona, self.out / "daily", start=day, days=1, options=options, progress=False,
                            on_skip=lambda folder, report, differs: kept.append(differs))
        note = f"persona {Path(persona).name}"
        if kept:  # the day was rendered before: kept, as the CLI keeps it, and said so
            note += ("; rendered before and kept" + (f", though this asks for {'; '.join(kept[0])} (delete its "
                                                    "folder to render it again)" if kept[0] else ""))
        return self._remember(folders[0], "daily", note=note)

    def guide(self, folder: str | Path) -> Path:
        """guide.wav (the plan's FluidSynth arrangement) in a render folder, made once."""
        from composer.data.audio import audio_write
        from composer.rendering.folder import read_plan
        from structure.arrangement import arrange
        from structure.synth import render_midi

        folder = self.inside(folder)
        path = folder / "guide.wav"
        if not path.is_file():
            audio, rate = render_midi(arrange(read_plan(folder)))
            audio_write(path, audio, rate)
        return path
