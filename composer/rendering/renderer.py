"""Long-form rendering: a whole song from a 1.5-second-window latent diffusion model.

Phases (`render`): check inputs and load models; prepare the song's conditioning
(frame controls from the plan, tags, caption embedding); fill the latent canvas
section by section, window by window (`fill_span`, the one window loop: every
window knows the overlap frames of its predecessor, the first window of a
section continues from the previous section); repeated sections reuse the
latents of the section they repeat (variation 0) or re-render them from those
latents at the variation strength; join sections with beat-aligned
equal-power crossfades (`crossfade_join`), optionally repainting the seam;
decode with `decode_long`; normalise loudness.

Units: seconds for users, frames inside this module, samples only at decode.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from composer.memory import returning_freed_memory, trim
from composer.models import load_models
from composer.rendering.guide import GuideInThread, guide_report, guide_unavailable, uses_guide
from composer.rendering.options import RenderOptions
from composer.rendering.vocals import Stems, add_vocals, song_controls, start_singing
from composer.rendering.windows import (
    SongConditioning,
    Window,
    WindowContext,
    crossfade_join,
    fill_span,
    prepare_conditioning,
    window_seams,
)
from structure.schema import SongPlan

log = logging.getLogger(__name__)


# Longer songs render lean (benchmarks/results/render_speed_long.json): the sentence model is let
# go once the caption is embedded, the originality check waits for the measurement instead of
# running beside it, and every array of 1 MB or more gets its own mapping, returned to the system
# when freed (`composer.memory.returning_freed_memory`, while the song renders: a 30-minute song
# peaked at 1,517 MB against 1,600 MB without it). The codec's decode, which makes and frees such
# blocks all the time, runs 1.4x to 1.6x slower that way, so shorter songs keep glibc's own
# behaviour, and after a long song the thresholds settle where glibc's own do.
LONG_SONG_SECONDS = 600.0


@dataclass
class Render:
    """A rendered song: audio `[channels, samples]`, its plan and its report."""

    audio: np.ndarray
    sample_rate: int
    plan: SongPlan
    report: dict
    latents: torch.Tensor | None = None  # [latent_dim, frames], normalised
    gain: float = 1.0  # loudness gain applied to the decoded audio
    stems: Stems | None = None  # accompaniment and vocals, when the song is sung

    @property
    def duration(self) -> float:
        return self.audio.shape[-1] / self.sample_rate

    def save(self, out_dir: str | Path, *, formats: tuple[str, ...] = ("wav", "flac"), lead_sheet: bool = True) -> Path:
        from composer.rendering.folder import save_render

        return save_render(self, Path(out_dir), formats=formats, lead_sheet=lead_sheet)


@dataclass
class SectionDone:
    """What `render`'s `on_section` receives when a section's latents are made (in song
    order): the canvas so far `[D, frames]`, the section's frames [start, end) and the
    dry vocal of the whole song (None when it is not sung). A later section's join may
    still change the last beat before `end`; the song's audio comes from `render`."""

    index: int
    name: str
    canvas: torch.Tensor
    start: int
    end: int
    vocal: object | None = None


# --- the song -------------------------------------------------------------------
def section_frames(plan: SongPlan, frame_rate: float) -> list[tuple[int, int]]:
    return [(int(round(a * frame_rate)), int(round(b * frame_rate))) for a, b in plan.section_times()]


def render(plan: SongPlan, *, seed: int = 0, steps: int | None = None, codec=None, model=None,
           progress: bool = True, options: RenderOptions | None = None,
           window_hook: Callable[[WindowContext, dict], dict] | None = None,
           on_progress: Callable[[str, int, int], None] | None = None,
           on_section: Callable[[SectionDone], None] | None = None) -> Render:
    """Render the whole song. Same plan, seed and models give the same samples.

    on_progress(section name, frames made, frames in the song) after every window;
    on_section(SectionDone) when a section's latents are made (the studio decodes it to
    play while the rest renders; its `vocal` is there once the voice, sung alongside,
    is done). Neither changes what is rendered."""
    options = options or RenderOptions()
    if steps is not None:
        options.steps = steps
    options = options.check().for_plan(plan)
    if uses_guide(options) and (why := guide_unavailable()) is not None:
        log.warning("rendering from noise, not from the guide: %s", why)
        options = replace(options, from_guide=1.0)
    # composer.memory: a long song's freed arrays go back to the system while it renders
    with returning_freed_memory(plan.duration > LONG_SONG_SECONDS):
        return _render(plan, seed=seed, codec=codec, model=model, progress=progress, options=options,
                       window_hook=window_hook, on_progress=on_progress, on_section=on_section)


def _render(plan: SongPlan, *, seed: int, codec, model, progress: bool, options: RenderOptions,
            window_hook, on_progress, on_section) -> Render:
    timings: dict[str, float] = {}
    clock = time.monotonic()
    codec, model = load_models(codec, model)
    timings["load"] = time.monotonic() - clock
    from composer.originality import check_plan_melodies, lineage_indexes

    check_plan_melodies(plan, lineage_indexes(model))

    clock = time.monotonic()
    frame_rate = codec.frame_rate
    spans = section_frames(plan, frame_rate)
    total = spans[-1][1]
    # the voice is sung in a thread while the accompaniment renders (its lines' times come from the plan)
    singing = start_singing(plan, options, seed=seed, sample_rate=codec.sample_rate,
                            samples=total * codec.hop_length)
    guide = GuideInThread(plan, codec, options, total)  # FluidSynth plays the guide meanwhile
    conditioning = prepare_conditioning(plan, model, total, frame_rate, control_groups=options.control_groups,
                                        controls_array=song_controls(plan, options, frame_rate, total),
                                        hook=window_hook)
    if plan.duration > LONG_SONG_SECONDS:
        from composer.conditioning import release_text_encoder

        release_text_encoder()  # its caption is embedded: ~90 MB back before the long song's peak
    timings["conditioning"] = time.monotonic() - clock
    clock = time.monotonic()
    guide_canvas = guide.latents()  # None when the song starts from noise
    if guide_canvas is not None:
        timings["guide"] = time.monotonic() - clock
    del guide

    def sung_so_far():
        return singing.result()[0] if singing is not None and singing.done() else None

    clock = time.monotonic()
    canvas, windows, seams = render_latents(
        plan, model, conditioning, spans, options=options, seed=seed, progress=progress, on_progress=on_progress,
        guide=guide_canvas, on_section=None if on_section is None else lambda index, canvas: on_section(SectionDone(
            index, plan.sections[index].name, canvas, *spans[index], vocal=sung_so_far())))
    timings["diffusion"] = time.monotonic() - clock
    del conditioning, guide_canvas  # the song's frame controls and the guide's latents
    vocal = None
    if singing is not None:
        clock = time.monotonic()
        vocal, timings["voice"] = singing.result()
        timings["voice_wait"] = time.monotonic() - clock  # what the voice added after the diffusion
        singing = None

    clock = time.monotonic()
    audio = decode(codec, canvas, progress=progress)
    timings["decode"] = time.monotonic() - clock
    trim()  # the decode's working blocks
    stems = vocals_report = gain = None
    if vocal is not None:  # mixed here, so the dry vocal is let go before the song is measured
        check_audio_sound(audio)
        audio, stems, vocals_report, gain = add_vocals(audio, vocal, plan, options, seed=seed)
        timings["mix"] = vocals_report.pop("seconds")
        vocal = None
    trim()  # the voice's and the decode's freed blocks back to the system before the measurement
    return finish(plan, audio, codec, model, canvas, options=options, seed=seed, spans=spans, windows=windows,
                  seams=seams, timings=timings, gain=gain, stems=stems, vocals_report=vocals_report)


def render_latents(plan: SongPlan, model, conditioning: SongConditioning, spans: list[tuple[int, int]], *,
                   options: RenderOptions, seed: int, progress: bool,
                   canvas: torch.Tensor | None = None, only: str | Collection[str] | None = None,
                   guide: torch.Tensor | None = None,
                   on_progress: Callable[[str, int, int], None] | None = None,
                   on_section: Callable[[int, torch.Tensor], None] | None = None) -> tuple[torch.Tensor, list, list]:
    """The latent canvas `[D, frames]` of the song, its windows and seams (frames).

    only: re-render just this section (or these sections) of an existing `canvas` (repaint);
    the others are kept and known on both sides. A section named here that repeats another named
    here is copied from it again (and joined to the kept section after it by inpainting).
    guide: the guide's latents `[D, frames]`; a section that is not a repeat then starts
    from them noised to `options.from_guide` (`composer.rendering.guide`) instead of noise.
    on_progress(section, frames made, total) after each window; on_section(index,
    canvas) when a section is made.
    """
    from tqdm import tqdm

    total = spans[-1][1]
    latent_dim = model.config.unet.latent_dim
    frame_rate = model.config.frame_rate
    fade = max(2, int(round(options.crossfade_beats * plan.seconds_per_beat * frame_rate)) // 2 * 2)
    if canvas is None:
        canvas = torch.zeros(latent_dim, total)
        filled = torch.zeros(total, dtype=torch.bool)
    else:
        canvas = canvas.clone()
        filled = torch.ones(total, dtype=torch.bool)
    windows: list[Window] = []
    seams: list[dict] = []
    names = {s.name: i for i, s in enumerate(plan.sections)}
    bar = tqdm(total=total, desc="rendering", unit="frame", disable=not progress, leave=False)
    made = [0]

    def advance(frames: int, name: str) -> None:
        bar.update(frames)
        made[0] += frames
        if on_progress is not None:
            on_progress(name, made[0], total)

    chosen = None if only is None else ({only} if isinstance(only, str) else set(only))
    for index, (section, (start, end)) in enumerate(zip(plan.sections, spans)):
        if chosen is not None and section.name not in chosen:
            advance(end - start, section.name)
            continue
        bar.set_description(f"rendering {section.name}")
        # A window may reach past its section (context); it makes frames only up to the section's end.
        on_window = lambda w, end=end, name=section.name: advance(min(w.end, end) - w.new_from, name)  # noqa: E731
        source = plan.sections[names[section.repeat_of]] if section.repeat_of else None
        if chosen is not None:  # repaint: everything after the section stays known
            filled[start:end] = False
        if source is not None and (chosen is None or source.name in chosen):
            src_start, src_end = spans[names[source.name]]
            copied = _fit_length(canvas[:, src_start:src_end], end - start)
            if section.variation <= 0.0:
                canvas[:, start:end] = copied
                filled[start:end] = True
                advance(end - start, section.name)
                windows.append(Window(section.name, start, end, start))
            else:
                windows += fill_span(canvas, filled, start, end, model=model, conditioning=conditioning,
                                     options=options, seed=seed + section.seed, section=section.name,
                                     section_index=index, init=copied, strength=section.variation,
                                     on_window=on_window)
            kept_before = chosen is not None and start > 0 and plan.sections[index - 1].name not in chosen
            if start > 0 and not kept_before:  # join: the song so far continued over the boundary, faded into the copy
                seams.append(_join_repeat(canvas, filled, start, src_start, fade, model=model,
                                          conditioning=conditioning, options=options, seed=seed,
                                          section=section.name, index=index, spans=spans, names=names, plan=plan))
            # a repaint's new copy next to a kept section: the join is made again inside the copy only
            # (the kept section's frames hold the render's own join; mixing them again drifted with
            # every repaint), knowing the kept frames on the other side
            half = max(1, fade // 2)
            if kept_before:
                _rejoin(canvas, start, min(end, start + half), model=model, conditioning=conditioning,
                        options=options, seed=seed)
                seams.append({"frame": start, "kind": "section", "section": section.name, "join": "inpainted"})
            if chosen is not None and end < total and plan.sections[index + 1].name not in chosen:
                _rejoin(canvas, max(start, end - half), end, model=model, conditioning=conditioning,
                        options=options, seed=seed)
            if on_section is not None:
                on_section(index, canvas)
            continue
        windows += fill_span(canvas, filled, start, end, model=model, conditioning=conditioning, options=options,
                             seed=seed + section.seed, section=section.name, section_index=index,
                             init=None if guide is None else guide[:, start:end],
                             strength=1.0 if guide is None else options.from_guide, on_window=on_window)
        if start > 0:
            seams.append({"frame": start, "kind": "section", "section": section.name, "join": "continuation"})
        if on_section is not None:
            on_section(index, canvas)
    bar.close()
    between_windows = window_seams(windows, skip={s["frame"] for s in seams})
    if options.repaint_seams:
        for seam in seams:
            _repaint_seam(canvas, seam["frame"], fade, model=model, conditioning=conditioning, options=options,
                          seed=seed)
    return canvas, windows, seams + between_windows


def _fit_length(latents: torch.Tensor, frames: int) -> torch.Tensor:
    """Section latents at another frame count (rounding differs by a frame at most)."""
    if latents.shape[-1] >= frames:
        return latents[:, :frames].clone()
    return torch.nn.functional.pad(latents[None], (0, frames - latents.shape[-1]), mode="replicate")[0]


def _join_repeat(canvas, filled, start, src_start, fade, *, model, conditioning, options, seed, section, index,
                 spans, names, plan) -> dict:
    """Beat-aligned equal-power crossfade from the previous section into a reused one.

    The previous section is continued `fade / 2` frames past the boundary (outpainting),
    the repeat brings `fade / 2` frames of what preceded its source; both meet in a
    crossfade centred on the boundary (a downbeat, since sections are whole bars).
    """
    half = fade // 2
    half = min(half, start, src_start) if src_start > 0 else min(half, start)
    if half <= 0:
        return {"frame": start, "kind": "section", "section": section, "join": "cut"}
    # what the earlier material would play across the boundary: continue it
    scratch = canvas.clone()
    scratch_filled = filled.clone()
    scratch_filled[start:] = False
    fill_span(scratch, scratch_filled, start, min(canvas.shape[-1], start + half), model=model,
              conditioning=conditioning, options=options, seed=seed, section=f"{section}-join",
              section_index=index)
    before = scratch[:, start - half: start + half]
    # what the later material holds before the boundary: the lead-in of its source
    lead_in = canvas[:, src_start - half: src_start] if src_start >= half else canvas[:, start - half: start]
    after = torch.cat([lead_in, canvas[:, start: start + half]], dim=1)
    crossfade_join(canvas, start, before, after)
    return {"frame": start, "kind": "section", "section": section, "join": "crossfade", "frames": 2 * half}


def _rejoin(canvas, lo: int, hi: int, *, model, conditioning, options, seed) -> None:
    """Re-render frames lo..hi from what they hold (inpainting, `options.repaint_strength`),
    every other frame known and kept: a join remade on one side of a boundary."""
    if hi <= lo:
        return
    filled = torch.ones(canvas.shape[-1], dtype=torch.bool)
    filled[lo:hi] = False
    fill_span(canvas, filled, lo, hi, model=model, conditioning=conditioning, options=options, seed=seed,
              section=f"join{lo}", section_index=-1, init=canvas[:, lo:hi].clone(), strength=options.repaint_strength)


def _repaint_seam(canvas, frame, fade, *, model, conditioning, options, seed) -> None:
    """Re-render `fade` frames around a seam from the crossfaded latents (inpainting both ends)."""
    half = max(1, fade // 2)
    lo, hi = max(0, frame - half), min(canvas.shape[-1], frame + half)
    filled = torch.ones(canvas.shape[-1], dtype=torch.bool)
    filled[lo:hi] = False
    fill_span(canvas, filled, lo, hi, model=model, conditioning=conditioning, options=options, seed=seed,
              section=f"seam{frame}", section_index=-1, init=canvas[:, lo:hi].clone(),
              strength=options.repaint_strength)


def check_audio_sound(audio: np.ndarray) -> None:
    """Refuse audio that would make a broken song file: NaN or infinite samples, or silence."""
    from composer.errors import RenderError

    lo, hi = (float(audio.min()), float(audio.max())) if audio.size else (0.0, 0.0)  # NaN carries through both
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise RenderError("the rendered audio holds NaN or infinite samples (damaged weights or a numeric "
                          "setting out of range); nothing was written")
    if not max(hi, -lo) > 0.0:
        raise RenderError("the rendered audio is silent; nothing was written")


def decode(codec, canvas: torch.Tensor, *, progress: bool = False) -> np.ndarray:
    """Latents `[D, frames]` -> audio `[channels, samples]` through `decode_long`."""
    with torch.no_grad():
        audio = codec.decode_long(canvas[None], progress=progress)[0]
    return np.asarray(audio.numpy(), dtype=np.float32)  # no copy: the codec decodes in float32


def finish(plan: SongPlan, audio: np.ndarray, codec, model, canvas: torch.Tensor, *, options: RenderOptions,
           seed: int, spans, windows, seams, timings: dict, gain: float | None = None,
           stems: Stems | None = None, vocals_report: dict | None = None) -> Render:
    """Loudness, report and provenance of `audio` (a sung song's mix, with its `stems` and
    `vocals_report`). Stems in 16-bit PCM (what `add_vocals` gives) mean `audio` and they are
    already at `gain`; float ones (or none) are scaled here."""
    from composer.rendering.loudness import integrated_loudness, loudness_gain
    from composer.rendering.provenance import provenance

    frame_rate = codec.frame_rate
    if stems is None or not stems.is_pcm:  # add_vocals checked its accompaniment
        check_audio_sound(audio)
        gain = loudness_gain(audio, codec.sample_rate) if gain is None else gain
        stems = stems.to_pcm(gain) if stems is not None else None
        audio = np.asarray(audio * gain, dtype=np.float32)  # one new array, clipped in place
        np.clip(audio, -1.0, 1.0, out=audio)
    report = {
        "seed": seed,
        "steps": options.steps,
        "sampler": options.sampler,
        "guidance": options.guidance_weights,
        "guidance_interval": list(options.guidance_interval) if options.guidance_interval else None,
        "control_groups": list(options.control_groups or model.group_names),
        "duration": round(audio.shape[-1] / codec.sample_rate, 4),
        "sample_rate": codec.sample_rate,
        "frame_rate": frame_rate,
        "loudness_lufs": round(integrated_loudness(audio, codec.sample_rate), 2),
        "gain": gain,
        "provenance": provenance(codec, model),
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "sections": [{"name": s.name, "kind": s.kind, "start": round(a / frame_rate, 4), "end": round(b / frame_rate, 4),
                      "repeat_of": s.repeat_of, "variation": s.variation}
                     for s, (a, b) in zip(plan.sections, spans)],
        "windows": [{"section": w.section, "start": round(w.start / frame_rate, 4), "end": round(w.end / frame_rate, 4),
                     "new_from": round(w.new_from / frame_rate, 4)} for w in windows],
        "seams": [{**{k: v for k, v in s.items() if k != "frame"}, "time": round(s["frame"] / frame_rate, 4)}
                  for s in seams],
        "options": {"overlap_seconds": options.overlap_seconds, "crossfade_beats": options.crossfade_beats,
                    "repaint_seams": options.repaint_seams, "from_guide": options.from_guide},
    }
    if (guide := guide_report(options)) is not None:
        report["guide"] = guide
    if vocals_report is not None:
        report["vocals"] = vocals_report
    if not options.originality:
        report["originality"] = {"verdict": "pending", "reason": "checked after the song was written"}
    result = Render(audio=audio, sample_rate=codec.sample_rate, plan=plan, report=report, latents=canvas, gain=gain,
                    stems=stems)
    # The originality check and the measurement read the finished audio and write their own keys of
    # the report: the check runs in a thread beside the measurement (both are mostly one-core work).
    checking = None
    if options.originality:
        # side by side for songs up to LONG_SONG_SECONDS; a longer one's check waits for the
        # measurement, so their working memory is not held at once
        if options.evaluate:
            report["originality"] = {}  # its place in report.json, whichever finishes first
        if options.evaluate and audio.shape[-1] <= LONG_SONG_SECONDS * codec.sample_rate:
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(1, thread_name_prefix="originality")
            checking = pool.submit(_check_originality, report, audio, codec.sample_rate, plan, model)
            pool.shutdown(wait=False)
        elif not options.evaluate:
            _check_originality(report, audio, codec.sample_rate, plan, model)
    try:
        if options.evaluate:
            evaluate_into(report, audio, codec.sample_rate, plan)
    except BaseException:
        if checking is not None:
            checking.exception()  # wait for the check; the measurement's error is the one to report
        raise
    if options.originality and options.evaluate and checking is None:
        _check_originality(report, audio, codec.sample_rate, plan, model)
    if checking is not None:
        checking.result()
    if options.originality and options.evaluate:
        timings = report["timings"]
        for name in ("originality", "evaluate"):  # the same order in report.json whichever ended first
            if name in timings:
                timings[name] = timings.pop(name)
    return result


def evaluate_into(report: dict, audio: np.ndarray, sample_rate: int, plan: SongPlan):
    """report["metrics"]: the render measured against its plan, at its section and window seams;
    returns the measurement (what `composer evaluate` plots)."""
    from composer.evaluate.metrics import measure

    clock = time.monotonic()
    seams = report.get("seams", [])
    measured = measure(audio, sample_rate, plan, [s["time"] for s in seams if s.get("kind") == "section"],
                       [s["time"] for s in seams if s.get("kind") == "window"])
    report["metrics"] = measured.metrics
    report.setdefault("timings", {})["evaluate"] = round(time.monotonic() - clock, 3)
    return measured


def _check_originality(report: dict, audio: np.ndarray, sample_rate: int, plan: SongPlan, model) -> None:
    """report["originality"] from the index stored with the model (when it has one)."""
    from composer.originality import check_render, index_for_model

    index = index_for_model(model)
    if index is None:
        report["originality"] = {"verdict": "not checked",
                                 "reason": "the model's checkpoint has no originality index"}
        return
    clock = time.monotonic()
    report["originality"] = check_render(audio, sample_rate, plan, report["sections"], index)
    report["timings"]["originality"] = round(time.monotonic() - clock, 3)


__all__ = ["Render", "RenderOptions", "SectionDone", "Window", "WindowContext", "render", "fill_span", "crossfade_join"]
