"""The guide as a render's starting point (`RenderOptions.from_guide`).

The plan's own arrangement, played by FluidSynth (the guide), is encoded by the codec, and
every window of a newly made section starts from those latents noised to the strength
`from_guide`, as restyle starts from its audio's (SDEdit), instead of from pure noise.
The model still makes the sound: at strength 0.7 its first step sees noise at 0.82 of the
scale (the sampler's times lean toward the noisy end). What the guide gives it is where the
notes are: on 20 held-out plans renders from noise kept 0.55 of the notes a transcriber finds
in the guide, renders from the guide at 0.7 kept 0.69 at guidance 2 and 0.71 at 2.5, the
guidance a render from its guide takes by default (`benchmarks/results/note_survival*.json`).

With lead "yield" the guide's melody rests under every sung line, as the frame controls'
does (`composer.rendering.vocals.yield_controls`), so the lead instrument does not come
back under the voice through the guide.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future

import numpy as np
import torch

log = logging.getLogger(__name__)

MELODY_TRACK = "melody"  # structure.arrangement's name for the lead part


def uses_guide(options) -> bool:
    """Whether a render with these options starts from the guide (None: not decided, as for
    restyle, loop and interpolation, which never do)."""
    return options.from_guide is not None and options.from_guide < 1.0


def guide_unavailable() -> str | None:
    """Why this machine cannot play a guide (no FluidSynth library, no soundfont), or None."""
    from pathlib import Path

    from structure import load_fluidsynth
    from structure.synth import default_soundfont

    try:
        load_fluidsynth()  # pyfluidsynth loads libfluidsynth here
    except (ImportError, OSError) as error:
        return f"FluidSynth cannot be loaded ({error}); `make install` installs it"
    if not Path(default_soundfont()).is_file():
        return f"no soundfont at {default_soundfont()} (fluid-soundfont-gm; `make install` installs it)"
    return None


def guide_midi(plan, options):
    """The plan's arrangement (pretty_midi), its melody resting under the sung lines when the
    voice sings there and the lead yields."""
    from composer.rendering.vocals import will_sing
    from structure.arrangement import arrange

    midi = arrange(plan)
    if will_sing(plan, options) and options.lead == "yield":
        from composer.voice.singer import planned_spans

        rest_under(midi, planned_spans(plan))
    return midi


def rest_under(midi, spans: list[tuple[float, float]]) -> None:
    """Drop (in place) the melody notes that sound during any of `spans` (seconds)."""
    if not spans:
        return
    bounds = np.asarray(spans, dtype=np.float64)
    for instrument in midi.instruments:
        if instrument.name != MELODY_TRACK:
            continue
        instrument.notes = [n for n in instrument.notes
                            if not np.any((bounds[:, 0] < n.end) & (bounds[:, 1] > n.start))]


def guide_audio(plan, codec, options, frames: int) -> np.ndarray:
    """The guide, float32 `[1, frames * hop]` at the codec's rate."""
    from structure.synth import render_midi

    # each part on its own synthesizer, in threads: the bytes do not depend on how many at once
    audio, _ = render_midi(guide_midi(plan, options), sample_rate=codec.sample_rate,
                           duration=frames * codec.hop_length / codec.sample_rate,
                           workers=max(1, min(4, os.cpu_count() or 1)))
    return audio


def encode_guide(codec, audio: np.ndarray, frames: int) -> torch.Tensor:
    """The guide's normalised latents `[D, frames]` (cut, or padded with its last frame).
    Encoded on the sampler's kernels and thread count (`conv_backend`), not the process's: the
    encoder's sums round differently on 1 and 2 threads, and the render must not depend on
    where it runs (a Ray worker, a batch process, the CLI)."""
    from composer.rendering.windows import conv_backend

    with torch.no_grad(), conv_backend.scope():
        latents = codec.encode_long(torch.from_numpy(audio)[None])[0]
    if latents.shape[-1] < frames:
        latents = torch.cat([latents, latents[:, -1:].expand(-1, frames - latents.shape[-1])], dim=1)
    return latents[:, :frames].contiguous()


def guide_latents(plan, codec, options, frames: int) -> torch.Tensor | None:
    """The guide's latents, or None when the render starts from noise."""
    if not uses_guide(options):
        return None
    return encode_guide(codec, guide_audio(plan, codec, options, frames), frames)


class GuideInThread:
    """FluidSynth plays the guide in a background thread while the song's conditioning is
    prepared; `latents()` encodes it on the calling thread (`encode_guide`)."""

    def __init__(self, plan, codec, options, frames: int):
        self.codec, self.frames = codec, frames
        self.future: Future | None = None
        if uses_guide(options):
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(1, thread_name_prefix="guide")
            self.future = pool.submit(guide_audio, plan, codec, options, frames)
            pool.shutdown(wait=False)

    def latents(self) -> torch.Tensor | None:
        if self.future is None:
            return None
        audio, self.future = self.future.result(), None
        return encode_guide(self.codec, audio, self.frames)


def guide_report(options) -> dict | None:
    """What report.json says of the guide a render started from."""
    if not uses_guide(options):
        return None
    from structure.synth import default_soundfont

    return {"strength": options.from_guide, "soundfont": default_soundfont()}
