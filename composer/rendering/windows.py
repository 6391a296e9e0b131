"""The one window loop (`fill_span`): a span of the latent canvas filled window by window.

Every window is `window_frames` long and knows the frames already made inside it (its
predecessor's overlap, the previous section's end, or what follows when repainting) as
known latents with a mask: outpainting is the inpainting the model was trained on. The
per-window hook (`SongConditioning.hook`) lets a caller change one window's conditioning.
Joins of reused material use `crossfade_join`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from composer.conditioning import caption, cond_batch, control_flags, plan_tags, text_embeddings
from composer.rendering.options import RenderOptions
from composer.seeds import derived_seed
from structure.schema import SongPlan


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
        cond = cond_batch(controls=self.controls[frames][None], control_groups=self.control_groups[None],
                          tags=self.tags[None], text=self.text[None], text_present=torch.tensor([self.text_present]))
        return self.hook(context, cond) if self.hook else cond


def window_seams(windows: list[Window], *, end: int | None = None, skip: set[int] = frozenset()) -> list[dict]:
    """A seam (frame, kind "window", section) where each window's new frames begin, except at
    frame 0, at or past `end`, and at frames in `skip` (already section seams)."""
    return [{"frame": w.new_from, "kind": "window", "section": w.section} for w in windows
            if 0 < w.new_from and (end is None or w.new_from < end) and w.new_from not in skip]


# --- conditioning ---------------------------------------------------------
def prepare_conditioning(plan: SongPlan, model, frames: int, frame_rate: float, *,
                         control_groups: tuple[str, ...] | None, controls_array: np.ndarray | None = None,
                         tags: dict | None = None, text: str | None = None,
                         hook: Callable | None = None) -> SongConditioning:
    from structure.frame_controls import controls as plan_controls

    array = controls_array if controls_array is not None else plan_controls(plan, frame_rate, frames=frames)
    flags = control_flags(model.group_names, control_groups)
    song_tags = plan_tags(plan)
    if tags:
        song_tags.update(tags)
    text = caption(plan) if text is None else text
    embedding = text_embeddings([text])[0]
    return SongConditioning(controls=torch.from_numpy(np.asarray(array, dtype=np.float32)), control_groups=flags,
                            tags=model.encode_tags([song_tags])[0], text=embedding,
                            text_present=1.0 if text else 0.0, hook=hook)


# --- the window loop ------------------------------------------------------------
class ConvBackend:
    """Which kernels, and how many threads, the denoiser uses while sampling.

    - Kernels: on this project's 2-core CPUs PyTorch's own kernels run the small 1-D
      convolutions of the bundled denoiser faster than oneDNN (1.25x to 1.64x, by the day;
      the codec's larger ones are faster with oneDNN, which it keeps). COMPOSER_ONEDNN=1
      keeps oneDNN for sampling.
    - Threads: one. A window's denoiser call is about 0.56 GFLOP in some 300 small kernels,
      so a second thread costs more in hand-offs than it gains (with the passive OpenMP wait
      policy the CLI sets, a 30-s song's diffusion takes 1.5x as long on two threads as on
      one), and the other core is free for the voice, sung alongside.
      COMPOSER_SAMPLER_THREADS=N overrides it (a larger denoiser, a bigger machine).
    Both measured by `benchmarks/conv_backend.py` (`benchmarks/results/conv_backend.json`)."""

    def __init__(self):
        import os

        self.onednn = os.environ.get("COMPOSER_ONEDNN", "") == "1"
        threads = os.environ.get("COMPOSER_SAMPLER_THREADS", "").strip()
        self.threads = int(threads) if threads.isdigit() and int(threads) > 0 else 1
        if threads and str(self.threads) != threads.lstrip("0"):
            import logging

            logging.getLogger(__name__).warning("COMPOSER_SAMPLER_THREADS=%r: not a whole number above 0; the "
                                                "sampler uses one thread", threads)

    @contextmanager
    def scope(self):
        before = torch._C._get_mkldnn_enabled()
        threads = torch.get_num_threads()
        torch._C._set_mkldnn_enabled(self.onednn)
        if self.threads != threads:
            torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch._C._set_mkldnn_enabled(before)
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)


conv_backend = ConvBackend()


def window_seed(seed: int, *parts: object) -> int:
    return derived_seed(seed, *parts)


def window_positions(start: int, end: int, total: int, size: int, overlap: int) -> list[Window]:
    """Where `fill_span` puts its windows for frames [start, end) of a `total`-frame canvas."""
    windows, position, end = [], start, min(end, total)  # a span past the canvas would never end
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
    with conv_backend.scope():  # the sampler's kernels and threads, once for the span
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
            result = sampler(model, x[None], timesteps, cond=cond, guidance=options.guidance_weights,
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
