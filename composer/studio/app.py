"""`composer studio`: the Gradio page over `Studio` (composer.studio.session).

Write (prompt, metadata, lyrics) -> Plan (an editable table, a timeline to scale, tempo, key
and meter, checked as any plan is) -> Render (a progress bar a section; each section plays
as soon as it is made) -> the player (section markers, the line being sung), downloads,
the guide render; Edit (repaint a section, restyle, interpolate, loop); Persona (the song
of a day); History (every result in the output folder, reopened after a restart).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from concurrent.futures import Future

from composer.errors import InputError
from composer.rendering.options import GUIDE_STRENGTH
from composer.studio import views
from composer.studio.session import UPLOAD_SUFFIXES, Studio
from composer.voice.voices import DEFAULT_VOICE

log = logging.getLogger(__name__)

VOICES = ("low", "high", "none")
SONG_FIELDS = ("title", "tempo_bpm", "key", "beats_per_bar")  # a plan's fields outside the table


def _prompt(prompt: str, fields: dict[str, str]) -> str:
    parts = [prompt.strip()] if prompt and prompt.strip() else []
    from structure.prompt import field_token

    for name, value in fields.items():
        value = (value or "").strip()
        if value:  # quoted as the prompt parser reads it back: one field, whatever quotes it holds
            parts.append(field_token(name, value))
    return " ".join(parts)


def _message(error: BaseException) -> str:
    """One line for the page: the input named, never a traceback."""
    from structure.schema import PlanError

    if isinstance(error, PlanError):
        from structure.editing import describe_error

        return describe_error(error)
    if isinstance(error, (InputError, ValueError)):
        return str(error)
    return f"failed: {type(error).__name__}: {error} (details in the studio's log)"


def _whole(value, label: str) -> int:
    """A whole number from a number field, or InputError naming the field (an emptied field gives None)."""
    if value is None or value == "":
        raise InputError(f"{label}: give a whole number")
    number = float(value)
    if number != int(number):
        raise InputError(f"{label}: {number:g} is not a whole number")
    return int(number)


def _options(voice: str, steps: int | None = None, from_guide: float | None = None):
    from composer.rendering.options import RenderOptions

    # the slider left at its default means the renderer's default (from noise for a plan that
    # asks for the sound of recordings)
    chosen = None if from_guide is None or float(from_guide) == GUIDE_STRENGTH else float(from_guide)
    options = RenderOptions(vocals=voice != "none", voice=voice if voice != "none" else DEFAULT_VOICE,
                            from_guide=chosen)
    if steps:
        options.steps = int(steps)
    return options.check()


KNOWN_TABLES = 16  # the tables an edit remembers the plans of


def _rows_key(rows) -> str:
    return json.dumps(rows, sort_keys=True, default=str)


def build_app(studio: Studio, *, steps: int | None = None):
    """The page (a `gradio.Blocks`) over `studio`; `steps` overrides the sampler steps (tests)."""
    os.environ["GRADIO_TEMP_DIR"] = str(studio.work / "uploads")  # Gradio's files stay in the output folder
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio as gr

    from structure.editing import COLUMNS, describe_error, plan_rows
    from structure.schema import PlanError, SongPlan

    def to_plan(data):
        return SongPlan.from_dict(data) if data else None

    def render_view(folder: str | None):
        """(player, downloads, section choices) of a render folder."""
        if not folder:
            return views.player_html(None), "", gr.update(choices=[], value=None)
        path = studio.inside(folder)
        report = json.loads((path / "report.json").read_text(encoding="utf-8"))
        lyrics = json.loads((path / "lyrics.json").read_text(encoding="utf-8")) if (path / "lyrics.json").is_file() else []
        # the sections a repaint takes: not a repeat (its source is repainted, the repeats follow),
        # nothing of a loop (one section joined end to start)
        repeats = {s.get("name") for s in json.loads((path / "plan.json").read_text(encoding="utf-8")).get("sections", [])
                   if s.get("repeat_of")} if (path / "plan.json").is_file() else set()
        loop = (report.get("mode") or {}).get("name") == "loop"
        names = [] if loop else [s["name"] for s in report.get("sections", []) if s["name"] not in repeats]
        return (views.player_html(path, report, lyrics), views.downloads_html(studio.downloads(path)),
                gr.update(choices=names, value=names[0] if names else None))

    measuring: dict = {}  # a render's folder -> the Future of its evaluation (`do_render`)

    def measure_left_pending():  # a studio stopped after a song was saved, before it was measured
        for folder in studio.left_pending():
            measured = measuring.setdefault(folder, Future())
            try:
                measured.set_result(studio.evaluate(folder))
            except Exception as error:  # noqa: BLE001 - said when the song is opened (do_measure)
                log.warning("measuring %s, left unmeasured by an earlier run, failed: %s", folder, error)
                measured.set_exception(error)

    threading.Thread(target=measure_left_pending, daemon=True).start()

    def history_rows():
        return [[e.folder, e.kind, e.title, e.created, e.duration, e.originality, e.note] for e in studio.history()]

    def history_update():
        rows = history_rows()
        return gr.update(value=rows), gr.update(choices=[r[0] for r in rows])

    def verdict(folder: str) -> str:
        report = json.loads((studio.inside(folder) / "report.json").read_text(encoding="utf-8"))
        originality = report.get("originality") or {}
        line = f"{folder}: {report.get('duration', 0):.1f} s"
        if originality.get("verdict"):
            line += f"; originality: {originality['verdict']}"
        return line

    # --- handlers ---------------------------------------------------------
    def do_plan(prompt, genre, mood, theme, lyrics, duration, seed):
        try:
            text = _prompt(prompt, {"genre": genre, "mood": mood, "theme": theme})
            plan = studio.plan(text, lyrics=lyrics or None, duration=float(duration) if duration else None,  # empty reads 0: no length asked
                               seed=int(seed or 0))
        except Exception as error:  # noqa: BLE001 - shown on the page
            log.warning("plan: %s", error)
            return (gr.update(),) * 8 + (views.message_html(_message(error), error=True), gr.update())
        return (plan.to_dict(), plan.to_dict(), plan_rows(plan), views.timeline_html(plan), plan.tempo_bpm,
                str(plan.key), plan.beats_per_bar, plan.title,
                views.message_html("The plan is valid. Edit any cell, then Render."), plan_rows(plan))

    def do_edit(data, rows, tempo, key, meter, title, seed, shown, known):
        """The edited plan; a bad cell's message goes under the table, a bad song field's
        (title, tempo, key, meter) next to those fields."""
        plan = to_plan(data)  # the plan as planned (or opened): the table's edits apply to it, so a
        # repeated or late event with the same table gives the same plan
        shown_for = (known or {}).get(_rows_key(rows))
        if shown_for is not None:
            # rows the page was given for an edited plan (a key change moved its chords): a song
            # field's change applies to that plan. Against the first plan its chords read as typed,
            # and a second key change transposed nothing
            plan = to_plan(shown_for)
        keep = (gr.update(),) * 3

        def refused(text: str, *, field: bool = False):
            message = views.message_html(text, error=True)
            return keep + ("" if field else message, gr.update(), message if field else "", text, gr.update())

        if plan is None:
            return refused("Plan a song first.")
        try:
            edited = studio.edit(plan, rows, tempo_bpm=tempo, key=key, beats_per_bar=meter, title=title,
                                 seed=int(seed or 0))
        except PlanError as error:
            return refused(describe_error(error, rows), field=error.field.split(".")[0].split("[")[0] in SONG_FIELDS)
        except Exception as error:  # noqa: BLE001
            return refused(_message(error))
        table_rows = plan_rows(edited)
        remembered = dict(list((known or {}).items())[-(KNOWN_TABLES - 1):])
        remembered[_rows_key(table_rows)] = edited.to_dict()
        # the table is written back only when it shows something new (cycled chords, a repeat
        # that followed its source): redrawing it unasked would drop an edit in progress
        return (edited.to_dict(), table_rows if table_rows != shown else gr.update(), views.timeline_html(edited),
                views.message_html(f"The plan is valid: {edited.duration:.1f} s."), table_rows, "", "",
                remembered)

    def do_render(data, voice, seed, from_guide=None, refused_edit=""):
        plan = to_plan(data)
        if plan is None or refused_edit:
            # a refused edit: the table shows what the plan is not (Render rendered the plan before it)
            text = "Plan a song first." if plan is None else (
                f"The plan refused an edit ({refused_edit}); fix it, or plan again, before Render.")
            yield ("", gr.update(), gr.update(), views.message_html(text, error=True),
                   gr.update(), gr.update(), gr.update(), gr.update(), None)
            return
        events: queue.Queue = queue.Queue()

        def work():
            try:
                entry = studio.render(plan, seed=int(seed or 0), options=_options(voice, steps, from_guide),
                                      evaluate_later=True,
                                      on_progress=lambda name, made, total: events.put(("progress", name, made, total)),
                                      on_clip=lambda preview: events.put(("clip", preview.folder.name,
                                                                          list(preview.clips), list(preview.starts))))
            except Exception as error:  # noqa: BLE001 - shown on the page, logged with its traceback
                if not isinstance(error, (InputError, ValueError)):
                    log.exception("render failed")
                events.put(("error", _message(error)))
                return
            # measured here, on the server, as soon as the song is saved: a page reloaded (or closed)
            # mid-render left it "pending" for ever; the page's own step waits for this one
            measured = measuring[entry.folder] = Future()
            events.put(("done", entry))
            try:
                measured.set_result(studio.evaluate(entry.folder))
            except Exception as error:  # noqa: BLE001 - said by do_measure
                measured.set_exception(error)

        threading.Thread(target=work, daemon=True).start()
        progress = ("", 0, 0)
        shown = 0.0  # when progress was last sent (at most a few times a second: the page redraws it)
        while True:
            event = events.get()
            pending = [event]
            while not events.empty() and pending[-1][0] == "progress":
                pending.append(events.get())
            event = pending[-1]
            if event[0] == "progress":
                progress = event[1:]
                if time.monotonic() - shown < 0.5:
                    continue
                shown = time.monotonic()
                yield (views.progress_html(plan, progress[1], progress[2], progress[0]), gr.update(), gr.update(),
                       gr.update(), gr.update(), gr.update(), gr.update(), gr.update(), gr.update())
            elif event[0] == "clip":
                yield (views.progress_html(plan, progress[1], progress[2], progress[0]),
                       views.preview_html(event[1], event[2], event[3], plan), "", gr.update(), gr.update(), gr.update(),
                       gr.update(), gr.update(), gr.update())
            elif event[0] == "error":
                yield (gr.update(), views.player_html(None), "", views.message_html(event[1], error=True),
                       gr.update(), gr.update(), gr.update(), gr.update(), None)
                return
            else:
                entry = event[1]
                player, downloads, sections = render_view(entry.folder)
                table, choices = history_update()
                yield (views.progress_html(plan, 1, 1), player, downloads,
                       views.message_html(f"{verdict(entry.folder)}; checking its originality, measuring it "
                                          f"against its plan, writing its lead sheet..."),
                       entry.folder, sections, table, choices, entry.folder)
                return

    def do_measure(folder):
        """After a render is in the player: measure it against its plan (as `composer render`
        does) into its report.json. A separate job, so Render can be pressed meanwhile."""
        if not folder:
            return gr.update(), None, gr.update()
        try:
            measured = measuring.pop(folder, None)
            report = measured.result() if measured is not None else studio.evaluate(folder)
            line = verdict(folder) + "; " + views.metrics_line(report.get("metrics") or {})
        except Exception as error:  # noqa: BLE001
            log.warning("evaluation of %s failed: %s", folder, error)
            line = f"{verdict(folder)}; evaluation failed: {_message(error)}"
        return views.message_html(line), None, views.downloads_html(studio.downloads(folder))

    def finished(entries_or_entry):
        entry = entries_or_entry[-1] if isinstance(entries_or_entry, list) else entries_or_entry
        player, downloads, sections = render_view(entry.folder)
        table, choices = history_update()
        return player, downloads, views.message_html(verdict(entry.folder)), entry.folder, sections, table, choices

    def failed(error: BaseException):
        if not isinstance(error, (InputError, ValueError)):
            log.exception("studio job failed")
        return (gr.update(), gr.update(), views.message_html(_message(error), error=True), gr.update(), gr.update(),
                gr.update(), gr.update())

    def do_repaint(folder, section):
        try:
            if not folder:
                raise InputError("repaint: render or open a song first")
            if not section:
                report = json.loads((studio.inside(folder) / "report.json").read_text(encoding="utf-8"))
                if (report.get("mode") or {}).get("name") == "loop":  # it has no sections to choose
                    raise InputError(f"{folder}: a loop is one section, joined end to start; make another loop "
                                     "with another seed")
                raise InputError("repaint: choose a section")
            return finished(studio.repaint(folder, section))
        except Exception as error:  # noqa: BLE001
            return failed(error)

    def do_restyle(upload, prompt, strength, seed):
        try:
            return finished(studio.restyle(upload, prompt or "", strength=float(strength), seed=int(seed or 0),
                                           options=_options(DEFAULT_VOICE, steps)))
        except Exception as error:  # noqa: BLE001
            return failed(error)

    def do_interpolate(a, b, count, seed):
        try:
            return finished(studio.interpolate(a, b, count=_whole(count, "Songs"), seed=int(seed or 0),
                                               options=_options(DEFAULT_VOICE, steps)))
        except Exception as error:  # noqa: BLE001
            return failed(error)

    def do_loop(prompt, bars, seed):
        try:
            return finished(studio.loop(prompt or "", _whole(bars, "Bars"), seed=int(seed or 0), options=_options("none", steps)))
        except Exception as error:  # noqa: BLE001
            return failed(error)

    def do_daily(persona, date, voice):
        try:
            if not (persona or "").strip():
                raise InputError("persona: give a persona folder (made by `composer persona build`)")
            entry = studio.daily(persona.strip(), date, options=_options(voice, steps))
            shown = list(finished(entry))
            if "rendered before" in entry.note:  # the kept day is said, not passed off as a new one
                shown[2] = views.message_html(f"{verdict(entry.folder)}; {entry.note.split('; ', 1)[1]}")
            return tuple(shown)
        except InputError as error:  # the CLI's words for the field on this page
            return failed(InputError(str(error).replace("--persona ", "persona folder ")))
        except Exception as error:  # noqa: BLE001
            return failed(error)

    def do_guide(folder):
        try:
            if not folder:
                raise InputError("guide: render or open a song first")
            guide = studio.guide(folder)
            path = studio.inside(folder)
            report = json.loads((path / "report.json").read_text(encoding="utf-8"))
            return (views.player_html(path, report, audio_name=guide.name), views.downloads_html(studio.downloads(path)),
                    views.message_html(f"{folder}: the guide (FluidSynth) of the plan; Open the song again to compare"))
        except Exception as error:  # noqa: BLE001
            return gr.update(), gr.update(), views.message_html(_message(error), error=True)

    def do_open(folder):
        try:
            if not folder:
                raise InputError("open: choose a folder from the history")
            path = studio.inside(folder)
            if not (path / "plan.json").is_file():  # deleted since the history was shown
                raise InputError(f"{folder}: no longer in {studio.out} (deleted?); reload the page for the history "
                                 "as it is")
            plan = SongPlan.from_json((path / "plan.json").read_text(encoding="utf-8"))
            player, downloads, sections = render_view(folder)
            return (player, downloads, views.message_html(verdict(folder)), folder, sections, plan.to_dict(),
                    plan.to_dict(), plan_rows(plan), views.timeline_html(plan), plan.tempo_bpm, str(plan.key),
                    plan.beats_per_bar, plan.title, plan_rows(plan))
        except Exception as error:  # noqa: BLE001
            return (gr.update(),) * 2 + (views.message_html(_message(error), error=True),) + (gr.update(),) * 11

    # --- the page -----------------------------------------------------------
    work = {"concurrency_limit": 1, "concurrency_id": "studio-job"}  # one job at a time; others queue
    audio_types = list(UPLOAD_SUFFIXES)
    with gr.Blocks(analytics_enabled=False, title="song-composer studio") as app:
        base_state = gr.State(None)  # the plan as planned or opened
        plan_state = gr.State(None)  # with the table's edits: what Render renders
        shown_state = gr.State(None)  # the rows the table shows
        folder_state = gr.State(None)
        measure_state = gr.State(None)  # a render to measure once it is in the player
        refused_state = gr.State("")  # the message of an edit the plan refused ("" when the table is the plan)
        known_state = gr.State({})  # the tables the page was given -> the plans they show (`do_edit`)
        gr.Markdown("## song-composer studio")
        with gr.Tab("Write"):
            with gr.Row():
                prompt = gr.Textbox(label="Prompt", placeholder="wistful folk song about trains, 96 bpm, in D minor",
                                    elem_id="prompt", scale=4)
                duration = gr.Number(label="Length (s)", value=None, elem_id="duration",  # the planner says its limits
                                     scale=1)
                seed = gr.Number(label="Seed", value=0, precision=0, elem_id="seed", scale=1)
            with gr.Row():
                genre = gr.Textbox(label="genre", elem_id="genre")
                mood = gr.Textbox(label="mood", elem_id="mood")
                theme = gr.Textbox(label="theme", elem_id="theme")
            lyrics = gr.Textbox(label="Lyrics ([Verse], [Chorus] tags or blank-line blocks; empty: the writer's)",
                                lines=4, elem_id="lyrics")
            plan_button = gr.Button("Plan", variant="primary", elem_id="plan")
            timeline = gr.HTML(views.timeline_html(None), elem_id="timeline")
            with gr.Row():
                title = gr.Textbox(label="Title", elem_id="title")
                tempo = gr.Number(label="Tempo (BPM; dotted quarters in 6/8)", elem_id="tempo")
                key = gr.Textbox(label="Key", elem_id="key")
                meter = gr.Number(label="Beats per bar (6/8: 2 dotted quarters)", precision=0, elem_id="meter")
            fields_message = gr.HTML("", elem_id="fields-message")  # a bad title, tempo, key or meter, here
            table = gr.Dataframe(headers=list(COLUMNS), datatype=["str", "str", "number", "str", "number", "str", "str"],
                                 type="array", interactive=True, wrap=True, elem_id="plan-table",
                                 label="Plan (chords: bars separated by |; lyrics: lines separated by /)")
            plan_message = gr.HTML("", elem_id="plan-message")
            with gr.Row():
                voice = gr.Dropdown(list(VOICES), value=DEFAULT_VOICE, label="Voice", elem_id="voice")
                from_guide = gr.Slider(0.05, 1.0, value=GUIDE_STRENGTH, step=0.05, elem_id="from-guide",
                                       label="Start from the guide (1: from noise; lower keeps more of the plan's notes)")
                render_button = gr.Button("Render", variant="primary", elem_id="render")
                guide_button = gr.Button("Guide (FluidSynth)", elem_id="guide")
        with gr.Tab("Edit"):
            with gr.Row():
                section = gr.Dropdown([], label="Section to repaint", elem_id="repaint-section")
                repaint_button = gr.Button("Repaint section", elem_id="repaint")
            with gr.Row():
                restyle_file = gr.File(label="Recording to restyle", file_types=audio_types, elem_id="restyle-file")
                restyle_prompt = gr.Textbox(label="Restyle as", elem_id="restyle-prompt")
                strength = gr.Slider(0.0, 1.0, value=0.6, label="Strength", elem_id="strength")
                restyle_button = gr.Button("Restyle", elem_id="restyle")
            with gr.Row():
                file_a = gr.File(label="From", file_types=audio_types, elem_id="interp-a")
                file_b = gr.File(label="To", file_types=audio_types, elem_id="interp-b")
                count = gr.Number(label="Songs", value=3, precision=0, elem_id="interp-count")
                interpolate_button = gr.Button("Interpolate", elem_id="interpolate")
            with gr.Row():
                loop_prompt = gr.Textbox(label="Loop prompt", elem_id="loop-prompt")
                loop_bars = gr.Number(label="Bars", value=4, precision=0, elem_id="loop-bars")
                loop_button = gr.Button("Make loop", elem_id="loop")
        with gr.Tab("Persona"):
            with gr.Row():
                persona = gr.Textbox(label="Persona folder (composer persona build)", elem_id="persona")
                day = gr.Textbox(label="Date (YYYY-MM-DD)", elem_id="day")
                daily_button = gr.Button("Song of the day", elem_id="daily")
        with gr.Tab("History"):
            history = gr.Dataframe(headers=["folder", "kind", "title", "created", "seconds", "originality", "note"],
                                   value=history_rows(), interactive=False, elem_id="history")
            with gr.Row():
                choose = gr.Dropdown([r[0] for r in history_rows()], label="Open", elem_id="open-folder")
                open_button = gr.Button("Open", elem_id="open")
        progress = gr.HTML("", elem_id="progress")
        status = gr.HTML("", elem_id="status")
        player = gr.HTML(views.player_html(None), js_on_load=views.PLAYER_JS, elem_id="player")
        downloads = gr.HTML("", elem_id="downloads")

        plan_outputs = [base_state, plan_state, table, timeline, tempo, key, meter, title, plan_message, shown_state]
        plan_button.click(do_plan, [prompt, genre, mood, theme, lyrics, duration, seed], plan_outputs).then(
            lambda: ("", {}), None, [refused_state, known_state])
        edit_inputs = [base_state, table, tempo, key, meter, title, seed, shown_state, known_state]
        edit_outputs = [plan_state, table, timeline, plan_message, shown_state, fields_message, refused_state,
                        known_state]
        for component in (table, tempo, key, meter, title):
            component.input(do_edit, edit_inputs, edit_outputs, trigger_mode="always_last")
        for component in (tempo, key, meter, title):  # typed, then Enter
            component.submit(do_edit, edit_inputs, edit_outputs, trigger_mode="always_last")
        result_outputs = [player, downloads, status, folder_state, section, history, choose]
        render_button.click(do_render, [plan_state, voice, seed, from_guide, refused_state],
                            [progress, player, downloads, status, folder_state, section, history, choose, measure_state],
                            **work).then(do_measure, [measure_state], [status, measure_state, downloads], **work)
        guide_button.click(do_guide, [folder_state], [player, downloads, status], **work)
        repaint_button.click(do_repaint, [folder_state, section], result_outputs, **work)
        restyle_button.click(do_restyle, [restyle_file, restyle_prompt, strength, seed], result_outputs, **work)
        interpolate_button.click(do_interpolate, [file_a, file_b, count, seed], result_outputs, **work)
        loop_button.click(do_loop, [loop_prompt, loop_bars, seed], result_outputs, **work)
        daily_button.click(do_daily, [persona, day, voice], result_outputs, **work)
        open_button.click(do_open, [choose], result_outputs[:5] + [base_state, plan_state, table, timeline, tempo, key,
                                                                   meter, title, shown_state]).then(
            lambda: ("", {}), None, [refused_state, known_state])
        app.load(history_update, None, [history, choose])  # the history as it is now, on every page load
    return app


def launch(studio: Studio, *, host: str = "127.0.0.1", port: int = 7860, steps: int | None = None,
           block: bool = True):
    """Serve the studio; returns (app, url). `block=False` returns at once (tests)."""
    app = build_app(studio, steps=steps)
    app.queue(default_concurrency_limit=1)
    app.launch(server_name=host, server_port=port, allowed_paths=[str(studio.out)], prevent_thread_lock=True,
               quiet=True, show_error=False, max_file_size=f"{200}mb", css=views.CSS, footer_links=[],
               theme=None)
    url = f"http://{host}:{port}/"
    if block:
        app.block_thread()
    return app, url


__all__ = ["build_app", "launch"]
