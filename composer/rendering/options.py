"""How a song is rendered: one options object, validated in one place (`RenderOptions.check`).

The CLI builds it from its options (`RenderOptions.from_cli`), the library from keywords;
both reach `check` before anything is loaded, so a bad value gets one line naming it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from composer.errors import InputError
from composer.voice.voices import DEFAULT_VOICE

# Renders start from the plan's FluidSynth guide noised to this strength (composer.rendering.guide):
# on 20 held-out plans the notes a transcriber finds went from 0.55 of the guide's (from noise) to
# 0.69 at guidance 2 (benchmarks/results/note_survival_from_guide_guidance2*.json), with chords and
# section boundaries as from noise (quality_from_guide_guidance2*.json). The bundled model learnt the guide's own sound world (General MIDI through
# FluidSynth), so starting there does not pull it anywhere it has not been; a prompt asking for
# recordings (source=recorded) and a persona's daily song start from noise.
GUIDE_STRENGTH = 0.7
# Classifier-free guidance when nothing is asked: 2 from noise (and for restyle, loops and
# interpolation), 2.5 when the windows start from the guide. From the guide, 2.5 kept more of the
# guide's notes than 2 on three sets of 10 held-out plans (0.712 / 0.707 / 0.678 of the guide's
# against 0.698 / 0.690 / 0.648: note_survival*.json against note_survival_from_guide_guidance2*.json)
# with the same key and chords (quality*.json); from noise, stronger guidance placed fewer section
# changes where the plan has them (quality_guidance3.json: boundaries within 3 s 0.59 against 0.72).
GUIDANCE = 2.0
GUIDE_GUIDANCE = 2.5


@dataclass
class RenderOptions:
    # 8: the same structure and notes as 10 on the 10 held-out quality plans, from noise
    # (quality_from_noise.json against quality_steps10_current.json; note_survival_from_noise.json
    # against note_survival_steps10.json), 20 % less sampling; 10 was as good as 16 (quality_steps10.json)
    steps: int = 8
    sampler: str = "multistep"
    guidance: float | dict[str, float] | None = None  # None: `guidance_weights` decides (GUIDANCE or GUIDE_GUIDANCE)
    guidance_interval: tuple[float, float] | None = None  # guide only at lo < t <= hi (None: every step)
    overlap_seconds: float = 0.4  # known frames each window shares with its predecessor
    crossfade_beats: float = 1.0  # section joins of reused material
    control_groups: tuple[str, ...] | None = None  # None: every group the plan gives
    repaint_seams: bool = False
    repaint_strength: float = 0.6
    # start each new section's windows from the plan's guide noised to this strength
    # (composer.rendering.guide); 1.0 starts from noise; None: `GUIDE_STRENGTH`, or 1.0 when the
    # prompt asks for the sound of recordings (tag source=recorded)
    from_guide: float | None = None
    evaluate: bool = True
    originality: bool = True  # check the render against what the model learnt (False: the caller does, later)
    vocals: bool = True  # sing the lyrics (composer.voice)
    voice: str = DEFAULT_VOICE
    lead: str = "yield"  # how the lead instrument makes room for the voice (composer.rendering.vocals)
    vocal_seeds: dict[str, int] | None = None  # per-section singing seeds (set by repaint)

    @classmethod
    def from_cli(cls, *, guidance: str | None = None, controls: str | None = None, steps: int | None = None,
                 **values) -> RenderOptions:
        """Options from command-line strings; absent (None) values keep their defaults."""
        options = cls(**{k: v for k, v in values.items() if v is not None})
        if steps is not None:
            options.steps = steps
        if guidance is not None:
            options.guidance = parse_guidance(guidance)
        if controls is not None:
            options.control_groups = tuple(dict.fromkeys(g.strip() for g in controls.split(",") if g.strip()))
            if not options.control_groups:
                from composer.errors import InputError

                raise InputError(f"--controls {controls!r}: name at least one group (e.g. 'form,harmony'); "
                                 "leave it out for all of them")
        return options.check()

    @classmethod
    def from_report(cls, report: dict) -> RenderOptions:
        """The options a render used, from its report.json (repaint renders the same way)."""
        interval = report.get("guidance_interval")
        vocals = report.get("vocals") or {}
        saved = report.get("options") or {}
        return cls(steps=int(report.get("steps", 16)), sampler=report.get("sampler", "multistep"),
                   overlap_seconds=float(saved.get("overlap_seconds", 0.4)),
                   crossfade_beats=float(saved.get("crossfade_beats", 1.0)),
                   repaint_seams=bool(saved.get("repaint_seams", False)),
                   from_guide=float(saved.get("from_guide") or 1.0),  # older renders started from noise
                   guidance=report.get("guidance", GUIDANCE), guidance_interval=tuple(interval) if interval else None,
                   control_groups=tuple(report.get("control_groups") or ()) or None, evaluate=False,
                   vocals=bool(vocals), lead=vocals.get("lead", "yield"),
                   voice=vocals.get("voice", "high"),  # a report without it was sung by "high", the old default
                   vocal_seeds={str(k): int(v) for k, v in (vocals.get("section_seeds") or {}).items()} or None)

    @property
    def guidance_weights(self) -> float | dict[str, float]:
        """The guidance the sampler uses: the one asked for, else `GUIDE_GUIDANCE` when the
        windows start from the guide and `GUIDANCE` otherwise."""
        if self.guidance is not None:
            return self.guidance
        from_guide = self.from_guide is not None and self.from_guide < 1.0
        return GUIDE_GUIDANCE if from_guide else GUIDANCE

    def for_plan(self, plan) -> RenderOptions:
        """These options with `from_guide` decided for `plan` (a copy when it changes)."""
        if self.from_guide is not None:
            return self
        recorded = str((plan.tags or {}).get("source", "")).lower() == "recorded"
        return replace(self, from_guide=1.0 if recorded else GUIDE_STRENGTH)

    def check(self) -> RenderOptions:
        """Raise InputError naming the first bad option; returns self."""
        from diffusion.sampling import SAMPLERS
        from structure.frame_controls import GROUP_NAMES

        if not isinstance(self.steps, int) or not 1 <= self.steps <= 1000:
            raise InputError(f"--steps: {self.steps} is outside 1..1000")
        if self.sampler not in SAMPLERS:
            raise InputError(f"--sampler: unknown {self.sampler!r} (known: {', '.join(SAMPLERS)})")
        weights = self.guidance.values() if isinstance(self.guidance, dict) else \
            [] if self.guidance is None else [self.guidance]
        for weight in weights:
            if not math.isfinite(float(weight)) or not 0.0 <= float(weight) <= 20.0:
                raise InputError(f"--guidance: {weight} is outside 0..20")
        if isinstance(self.guidance, dict):
            known = {"tags", "text", "controls", *GROUP_NAMES}
            unknown = [g for g in self.guidance if g not in known]
            if unknown:
                raise InputError(f"--guidance: unknown group {unknown[0]!r} (known: {', '.join(sorted(known))})")
        interval = self.guidance_interval
        if interval is not None and not (len(interval) == 2 and 0.0 <= interval[0] < interval[1] <= 1.0):
            raise InputError(f"guidance interval {interval!r}: expected (lo, hi) with 0 <= lo < hi <= 1")
        if not math.isfinite(self.overlap_seconds) or not 0 < self.overlap_seconds <= 10:
            raise InputError(f"--overlap: {self.overlap_seconds:g} s is outside (0, 10]")
        if not math.isfinite(self.crossfade_beats) or not 0 <= self.crossfade_beats <= 16:
            raise InputError(f"--crossfade-beats: {self.crossfade_beats:g} is outside 0..16")
        if not math.isfinite(self.repaint_strength) or not 0 < self.repaint_strength <= 1:
            raise InputError(f"repaint strength {self.repaint_strength:g} is outside (0, 1]")
        if self.from_guide is not None and (not math.isfinite(self.from_guide) or not 0 < self.from_guide <= 1):
            raise InputError(f"--from-guide: {self.from_guide:g} is outside (0, 1] (1 starts from noise)")
        from composer.rendering.vocals import LEADS
        from composer.voice.voices import get_voice

        self.voice = get_voice(self.voice).name
        if self.lead not in LEADS:
            raise InputError(f"--lead: unknown {self.lead!r} (known: {', '.join(LEADS)})")
        if self.control_groups is not None:
            unknown = [g for g in self.control_groups if g not in GROUP_NAMES]
            if unknown:
                raise InputError(f"--controls: unknown group {unknown[0]!r} (known: {', '.join(GROUP_NAMES)})")
            off = [g for g in (self.guidance if isinstance(self.guidance, dict) else {})
                   if g in GROUP_NAMES and g not in self.control_groups]
            if off:
                raise InputError(f"--guidance: {off[0]} is not among --controls {','.join(self.control_groups)}; "
                                 "guide only the groups the render is given")
        return self


def parse_guidance(text: str) -> float | dict[str, float]:
    """"2.5" or "tags=3,melody=1.5" (per condition group)."""
    try:
        if "=" not in text:
            return float(text)
        pairs = [(k.strip(), float(v)) for k, v in (part.split("=") for part in text.split(","))]
    except ValueError:
        raise InputError(f"--guidance {text!r}: expected a number or group=weight pairs") from None
    named = [k for k, _ in pairs]
    twice = sorted({k for k in named if named.count(k) > 1})
    if twice:  # which weight would be meant is not said
        raise InputError(f"--guidance {text!r}: {', '.join(twice)} given twice; give each group one weight")
    return dict(pairs)


