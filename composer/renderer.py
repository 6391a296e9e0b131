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

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from structure.plan import SongPlan

log = logging.getLogger(__name__)


@dataclass
class RenderOptions:
    steps: int = 10  # as good as 16 on the 10 quality plans, 1.5x faster (benchmarks/results/quality_steps10.json)
    sampler: str = "multistep"
    guidance: float | dict[str, float] = 2.0
    guidance_interval: tuple[float, float] | None = None  # guide only at lo < t <= hi (None: every step)
    overlap_seconds: float = 0.4  # known frames each window shares with its predecessor
    crossfade_beats: float = 1.0  # section joins of reused material
    control_groups: tuple[str, ...] | None = None  # None: every group the plan gives
    repaint_seams: bool = False
    repaint_strength: float = 0.6
    evaluate: bool = True


@dataclass
class Window:
    """One outpainting window: frames [start, end) of the canvas, new from `new_from`."""

    section: str
    start: int
    end: int
    new_from: int


@dataclass
class WindowContext:
    """What the per-window hook receives to build that window's conditioning."""

    window: Window
    section_index: int
    frames: slice


@dataclass
class Render:
    """A rendered song: audio `[channels, samples]`, its plan and its report."""

    audio: np.ndarray
    sample_rate: int
    plan: SongPlan
    report: dict
    latents: torch.Tensor | None = None  # [latent_dim, frames], normalised
    gain: float = 1.0  # loudness gain applied to the decoded audio

    @property
    def duration(self) -> float:
        return self.audio.shape[-1] / self.sample_rate

    def save(self, out_dir: str | Path, *, formats: tuple[str, ...] = ("wav", "flac")) -> Path:
        from composer.outputs import save_render

        return save_render(self, Path(out_dir), formats=formats)


@dataclass
class SongConditioning:
    """Everything the window hook needs, prepared once per song."""

    controls: torch.Tensor  # [frames, C]
    control_groups: torch.Tensor  # [G]
    tags: torch.Tensor  # [fields]
    text: torch.Tensor  # [text_dim]
    text_present: float
    hook: Callable[[WindowContext, dict], dict] | None = None

    def window_cond(self, context: WindowContext) -> dict:
        frames = context.frames
        cond = {"controls": self.controls[frames][None], "control_groups": self.control_groups[None],
                "tags": self.tags[None], "text": self.text[None], "text_present": torch.tensor([self.text_present])}
        return self.hook(context, cond) if self.hook else cond


# --- models -------------------------------------------------------------------
def load_models(codec=None, model=None):
    """(codec, model): objects pass through, paths load, None loads the bundled defaults."""
    from autoencoder import load_codec
    from diffusion import load_model

    codec = codec if codec is not None and not isinstance(codec, (str, Path)) else load_codec(codec)
    model = model if model is not None and not isinstance(model, (str, Path)) else load_model(model)
    if model.config.codec and model.config.codec != codec.latent_identity():
        log.warning("diffusion model was trained on the latents of codec %s, rendering with %s",
                    model.config.codec, codec.latent_identity())
    if model.config.unet.latent_dim != codec.latent_dim:
        from composer.errors import InputError

        raise InputError(f"model latent width {model.config.unet.latent_dim} does not match the codec's {codec.latent_dim}")
    return codec.eval(), model.eval()


def caption(plan: SongPlan) -> str:
    """The caption text the model was trained with, from the plan's tags."""
    mood = plan.tags.get("mood", "").split(",")[0].strip()
    words = " ".join(w for w in (mood, plan.style) if w)
    theme = plan.tags.get("theme")
    about = f" about {theme}" if theme else ""
    return f"{words} song{about}, {plan.tempo_bpm:g} BPM, in {plan.key}"


def prepare_conditioning(plan: SongPlan, model, frames: int, frame_rate: float, *,
                         control_groups: tuple[str, ...] | None, controls_array: np.ndarray | None = None,
                         tags: dict | None = None, text: str | None = None,
                         hook: Callable | None = None) -> SongConditioning:
    from composer.training import row_tags
    from structure.controls import controls as plan_controls

    array = controls_array if controls_array is not None else plan_controls(plan, frame_rate, frames=frames)
    names = model.group_names
    chosen = names if control_groups is None else control_groups
    flags = torch.tensor([1.0 if g in chosen else 0.0 for g in names])
    song_tags = row_tags({**plan.tags, "genre": plan.tags.get("genre", plan.style), "key": str(plan.key)})
    if tags:
        song_tags.update(tags)
    text = caption(plan) if text is None else text
    embedding = _text_embedding(text)
    return SongConditioning(controls=torch.from_numpy(np.asarray(array, dtype=np.float32)), control_groups=flags,
                            tags=model.encode_tags([song_tags])[0], text=embedding,
                            text_present=1.0 if text else 0.0, hook=hook)


def _text_embedding(text: str) -> torch.Tensor:
    if not text:
        return torch.zeros(384)
    from composer.training import text_embeddings

    return text_embeddings([text])[0]


# --- the window loop ------------------------------------------------------------
def window_seed(seed: int, *parts: object) -> int:
    digest = hashlib.sha256(":".join(str(p) for p in (seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def window_positions(start: int, end: int, total: int, size: int, overlap: int) -> list[Window]:
    """Where `fill_span` puts its windows for frames [start, end) of a `total`-frame canvas."""
    windows, position = [], start
    while position < end:
        w_end = min(total, max(0, position - overlap) + size)
        w_start = max(0, w_end - size)  # the song's last window reaches back instead
        windows.append(Window("", w_start, w_end, position))
        position = min(w_end, end)
    return windows


def overlap_frames(options: RenderOptions, model) -> int:
    """Known frames each window shares with its predecessor (at most 3/4 of a window)."""
    size = model.config.window_frames
    return min(max(1, int(round(options.overlap_seconds * model.config.frame_rate))), size * 3 // 4)


def fill_span(canvas: torch.Tensor, filled: torch.Tensor, start: int, end: int, *, model, conditioning: SongConditioning,
              options: RenderOptions, seed: int, section: str, section_index: int,
              init: torch.Tensor | None = None, strength: float = 1.0,
              initial_noise: Callable[[int, Window], torch.Tensor] | None = None,
              on_window: Callable[[Window], None] | None = None) -> list[Window]:
    """Fill canvas frames [start, end) window by window, left to right (outpainting).

    canvas `[D, frames]` and filled `[frames]` (bool) are updated in place. Each window
    is `window_frames` long; frames already filled inside it (the predecessor's overlap,
    the previous section's end, or what follows `end` when repainting) are given as
    known latents with a mask, so a window both continues and leads into its neighbours.
    `init` `[D, end - start]` + `strength` < 1 re-renders from existing latents
    (variation, restyle) instead of from noise; `initial_noise(index, window)` replaces
    the seeded noise (interpolation between inverted songs).
    """
    from diffusion.sampling import get_sampler, shifted_timesteps

    sampler = get_sampler(options.sampler)
    timesteps = shifted_timesteps(options.steps, start=strength)
    positions = window_positions(start, end, canvas.shape[-1], model.config.window_frames,
                                 overlap_frames(options, model))
    windows = []
    for index, slot in enumerate(positions):
        window = Window(section, slot.start, slot.end, slot.new_from)
        w_start, w_end, position = window.start, window.end, window.new_from
        new_end = min(w_end, end)
        generator = torch.Generator().manual_seed(window_seed(seed, section, index))
        if initial_noise is not None:
            noise = initial_noise(index, window)
        else:
            noise = torch.randn(canvas.shape[0], w_end - w_start, generator=generator)
        known_mask = filled[w_start:w_end].clone()
        known_mask[position - w_start: new_end - w_start] = False  # what this window makes
        x = noise
        if init is not None and strength < 1.0:  # start part-way: existing latents noised to t0
            base = canvas[:, w_start:w_end].clone()
            base[:, position - w_start: new_end - w_start] = init[:, position - start: new_end - start]
            t0 = float(timesteps[0])
            x = (1 - t0) * base + t0 * noise
        cond = conditioning.window_cond(WindowContext(window, section_index, slice(w_start, w_end)))
        cond["known"] = canvas[:, w_start:w_end][None]
        cond["mask"] = known_mask.float()[None, None]
        result = sampler(model, x[None], timesteps, cond=cond, guidance=options.guidance,
                         generator=generator, group_names=model.group_names,
                         guidance_interval=options.guidance_interval)[0]
        canvas[:, position:new_end] = result[:, position - w_start: new_end - w_start]
        filled[position:new_end] = True
        windows.append(window)
        if on_window:
            on_window(window)
    return windows


def crossfade_join(canvas: torch.Tensor, boundary: int, before: torch.Tensor, after: torch.Tensor) -> None:
    """Equal-power crossfade in place around frame `boundary`.

    before `[D, 2h]`: what the earlier material holds on frames [boundary - h, boundary + h);
    after `[D, 2h]`: what the later material holds there. cos/sin gains keep the power.
    """
    length = before.shape[-1]
    if length == 0:
        return
    theta = torch.linspace(0, math.pi / 2, length + 2)[1:-1]
    lo = boundary - length // 2
    canvas[:, lo: lo + length] = before * torch.cos(theta) + after * torch.sin(theta)


# --- the song -------------------------------------------------------------------
def section_frames(plan: SongPlan, frame_rate: float) -> list[tuple[int, int]]:
    return [(int(round(a * frame_rate)), int(round(b * frame_rate))) for a, b in plan.section_times()]


def render(plan: SongPlan, *, seed: int = 0, steps: int | None = None, codec=None, model=None,
           progress: bool = True, options: RenderOptions | None = None,
           window_hook: Callable[[WindowContext, dict], dict] | None = None) -> Render:
    """Render the whole song. Same plan, seed and models give the same samples."""
    options = options or RenderOptions()
    if steps is not None:
        options.steps = steps
    _check_options(options)
    timings: dict[str, float] = {}
    clock = time.monotonic()
    codec, model = load_models(codec, model)
    timings["load"] = time.monotonic() - clock

    clock = time.monotonic()
    frame_rate = codec.frame_rate
    spans = section_frames(plan, frame_rate)
    total = spans[-1][1]
    conditioning = prepare_conditioning(plan, model, total, frame_rate, control_groups=options.control_groups,
                                        hook=window_hook)
    timings["conditioning"] = time.monotonic() - clock

    clock = time.monotonic()
    canvas, windows, seams = render_latents(plan, model, conditioning, spans, options=options, seed=seed,
                                            progress=progress)
    timings["diffusion"] = time.monotonic() - clock

    clock = time.monotonic()
    audio = decode(codec, canvas, progress=progress)
    timings["decode"] = time.monotonic() - clock
    return finish(plan, audio, codec, model, canvas, options=options, seed=seed, spans=spans, windows=windows,
                  seams=seams, timings=timings)


def render_latents(plan: SongPlan, model, conditioning: SongConditioning, spans: list[tuple[int, int]], *,
                   options: RenderOptions, seed: int, progress: bool,
                   canvas: torch.Tensor | None = None, only: str | None = None) -> tuple[torch.Tensor, list, list]:
    """The latent canvas `[D, frames]` of the song, its windows and seams (frames).

    only: re-render just this section of an existing `canvas` (repaint); its
    neighbours are kept and known on both sides.
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
    for index, (section, (start, end)) in enumerate(zip(plan.sections, spans)):
        if only is not None and section.name != only:
            bar.update(end - start)
            continue
        bar.set_description(f"rendering {section.name}")
        # A window may reach past its section (context); it makes frames only up to the section's end.
        on_window = lambda w, end=end: bar.update(min(w.end, end) - w.new_from)  # noqa: E731
        source = plan.sections[names[section.repeat_of]] if section.repeat_of else None
        if only is not None:  # repaint: everything after the section stays known
            filled[start:end] = False
        if source is not None and only is None:
            src_start, src_end = spans[names[source.name]]
            copied = _fit_length(canvas[:, src_start:src_end], end - start)
            if section.variation <= 0.0:
                canvas[:, start:end] = copied
                filled[start:end] = True
                bar.update(end - start)
                windows.append(Window(section.name, start, end, start))
            else:
                windows += fill_span(canvas, filled, start, end, model=model, conditioning=conditioning,
                                     options=options, seed=seed + section.seed, section=section.name,
                                     section_index=index, init=copied, strength=section.variation,
                                     on_window=on_window)
            if start > 0:  # join: the song so far continued over the boundary, faded into the copy
                seams.append(_join_repeat(canvas, filled, start, src_start, fade, model=model,
                                          conditioning=conditioning, options=options, seed=seed,
                                          section=section.name, index=index, spans=spans, names=names, plan=plan))
            continue
        windows += fill_span(canvas, filled, start, end, model=model, conditioning=conditioning, options=options,
                             seed=seed + section.seed, section=section.name, section_index=index,
                             on_window=on_window)
        if start > 0:
            seams.append({"frame": start, "kind": "section", "section": section.name, "join": "continuation"})
    bar.close()
    window_seams = [{"frame": w.new_from, "kind": "window", "section": w.section}
                    for w in windows if w.new_from > 0 and w.new_from not in {s["frame"] for s in seams}]
    if options.repaint_seams:
        for seam in seams:
            _repaint_seam(canvas, seam["frame"], fade, model=model, conditioning=conditioning, options=options,
                          seed=seed)
    return canvas, windows, seams + window_seams


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


def _repaint_seam(canvas, frame, fade, *, model, conditioning, options, seed) -> None:
    """Re-render `fade` frames around a seam from the crossfaded latents (inpainting both ends)."""
    half = max(1, fade // 2)
    lo, hi = max(0, frame - half), min(canvas.shape[-1], frame + half)
    filled = torch.ones(canvas.shape[-1], dtype=torch.bool)
    filled[lo:hi] = False
    fill_span(canvas, filled, lo, hi, model=model, conditioning=conditioning, options=options, seed=seed,
              section=f"seam{frame}", section_index=-1, init=canvas[:, lo:hi].clone(),
              strength=options.repaint_strength)


def decode(codec, canvas: torch.Tensor, *, progress: bool = False) -> np.ndarray:
    """Latents `[D, frames]` -> audio `[channels, samples]` through `decode_long`."""
    with torch.no_grad():
        audio = codec.decode_long(canvas[None], progress=progress)[0]
    return audio.numpy().astype(np.float32)


def finish(plan: SongPlan, audio: np.ndarray, codec, model, canvas: torch.Tensor, *, options: RenderOptions,
           seed: int, spans, windows, seams, timings: dict, gain: float | None = None) -> Render:
    """Loudness, report and provenance."""
    from composer.loudness import integrated_loudness, loudness_gain
    from composer.provenance import provenance

    frame_rate = codec.frame_rate
    audio = np.nan_to_num(audio)
    gain = loudness_gain(audio, codec.sample_rate) if gain is None else gain
    audio = np.clip(audio * gain, -1.0, 1.0).astype(np.float32)
    report = {
        "seed": seed,
        "steps": options.steps,
        "sampler": options.sampler,
        "guidance": options.guidance,
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
                    "repaint_seams": options.repaint_seams},
    }
    result = Render(audio=audio, sample_rate=codec.sample_rate, plan=plan, report=report, latents=canvas, gain=gain)
    if options.evaluate:
        clock = time.monotonic()
        from composer.evaluate import evaluate_audio

        report["metrics"] = evaluate_audio(audio, codec.sample_rate, plan,
                                           seams=[s["time"] for s in report["seams"] if s["kind"] == "section"],
                                           window_seams=[s["time"] for s in report["seams"] if s["kind"] == "window"])
        report["timings"]["evaluate"] = round(time.monotonic() - clock, 3)
    return result


def _check_options(options: RenderOptions) -> None:
    from composer.errors import InputError

    if not 1 <= options.steps <= 1000:
        raise InputError(f"--steps: {options.steps} is outside 1..1000")
    from diffusion.sampling import SAMPLERS

    if options.sampler not in SAMPLERS:
        raise InputError(f"--sampler: unknown {options.sampler!r} (known: {', '.join(SAMPLERS)})")
    interval = options.guidance_interval
    if interval is not None and not (len(interval) == 2 and 0.0 <= interval[0] < interval[1] <= 1.0):
        raise InputError(f"guidance interval {interval!r}: expected (lo, hi) with 0 <= lo < hi <= 1")
    if options.control_groups is not None:
        from structure.controls import GROUP_NAMES

        unknown = [g for g in options.control_groups if g not in GROUP_NAMES]
        if unknown:
            raise InputError(f"--controls: unknown group {unknown[0]!r} (known: {', '.join(GROUP_NAMES)})")


__all__ = ["Render", "RenderOptions", "Window", "WindowContext", "render", "fill_span", "crossfade_join"]
