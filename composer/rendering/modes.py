"""The Dance Diffusion modes at song length: restyle, interpolate, repaint, loop.

Each is a few named phases around the renderer's pieces (`fill_span`, the one
window loop; `decode`; `finish`), so they share its conditioning, seams and
provenance. Restyle and interpolate analyse the input audio
(`structure.analysis`) and condition on what analysis can know (rhythm,
harmony, form); melody, bass and drums are left to the model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from composer.conditioning import ANALYSIS_GROUPS  # what analysis of real audio can pin down
from composer.errors import InputError
from composer.models import load_models
from composer.rendering.options import RenderOptions
from composer.rendering.renderer import Render, decode, finish, render_latents, section_frames
from composer.rendering.vocals import to_pcm
from composer.rendering.windows import (
    WindowContext,
    conv_backend,
    fill_span,
    overlap_frames,
    prepare_conditioning,
    window_positions,
    window_seams,
)
from structure.schema import SongPlan

log = logging.getLogger(__name__)


def _read_audio(path: str | Path, codec) -> np.ndarray:
    """An input recording, judged as `composer data check` judges one (length within the song
    limit, not truncated, finite, not silent) before it is decoded for use."""
    from composer.data.audio import audio_read
    from composer.data.datasets import check_audio
    from structure.schema import MAX_SONG_SECONDS

    if Path(path).is_dir():  # a render folder: its song, as restyle takes it
        from composer.rendering import folder

        song = next((Path(path) / n for n in (folder.SONG_WAV, folder.SONG_FLAC) if (Path(path) / n).is_file()), None)
        if song is None:
            raise InputError(f"{path}: a folder without a song in it (give an audio file or a render folder)")
        path = song
    health = check_audio(path, min_seconds=1.0, max_seconds=MAX_SONG_SECONDS)
    if health.refusals:
        raise InputError(f"{path}: {'; '.join(health.refusals)}")
    for warning in health.warnings:  # clipped or a low rate: it is used, and the user is told (stereo is normal)
        if warning.startswith(("clipping", "sample rate")):
            log.warning("%s: %s", path, warning)
    audio, _ = audio_read(path, sample_rate=codec.sample_rate, channels=codec.channels)
    if audio.shape[-1] < codec.sample_rate:
        raise InputError(f"{path}: shorter than one second")
    return audio


def analysed_plan(audio: np.ndarray, sample_rate: int, *, prompt: str = "", title: str = "analysed") -> SongPlan:
    """A plan estimated from audio, with the style and tags of `prompt` (if any)."""
    from structure.analysis import analyze, estimate_plan

    return with_prompt(estimate_plan(analyze(audio, sample_rate), title=title), prompt)


def with_prompt(plan: SongPlan, prompt: str) -> SongPlan:
    """`plan` with the style and tags of `prompt` (if any) over its own."""
    from composer.conditioning import embed_texts
    from structure.prompt import parse_prompt

    if prompt:
        request = parse_prompt(prompt, embed=embed_texts)
        plan.tags = {**plan.tags, **request.tags}
        if request.style:
            plan.style = request.style
            plan.tags["genre"] = request.style
    return plan


def _source_plan(source: Path | None, seconds: float) -> SongPlan | None:
    """The plan of the render folder a restyle reads (its exact tempo, key, form, melody, words
    and title), when it has one that lasts as long as its song (within a bar: a restyled
    song's plan is in whole bars); None otherwise, and the song is analysed."""
    from composer.rendering import folder

    if source is None or not (source / folder.PLAN_NAME).is_file():
        return None
    try:
        plan = folder.read_plan(source)
    except InputError:
        return None
    bar = plan.seconds_per_beat * plan.beats_per_bar
    return plan if abs(plan.duration - seconds) <= bar + 0.5 else None


def _encode(codec, audio: np.ndarray) -> torch.Tensor:
    """The input's latents, on the sampler's thread count (`encode_guide` says why)."""
    with torch.no_grad(), conv_backend.scope():
        return codec.encode_long(torch.from_numpy(audio)[None])[0]


# --- restyle --------------------------------------------------------------------
def restyle(audio_path: str | Path, prompt: str, *, strength: float = 0.6, seed: int = 0, codec=None, model=None,
            options: RenderOptions | None = None, progress: bool = True) -> Render:
    """Re-render existing audio in another style, keeping its tempo, harmony and form.

    The audio's latents are noised to `strength` (0 keeps them, 1 starts from noise)
    and denoised window by window under the new prompt's tags and the controls
    analysed from the audio.
    """
    from composer.rendering import folder

    if not 0.0 <= strength <= 1.0:
        raise InputError(f"--strength: {strength:g} is outside 0..1")
    options = replace(options or RenderOptions(), control_groups=(options.control_groups if options and
                                                                    options.control_groups else ANALYSIS_GROUPS))
    timings = {}
    clock = time.monotonic()
    kept = _sung_render(audio_path)
    title = Path(audio_path).stem if Path(audio_path).is_file() else Path(audio_path).name
    source = None  # the render folder it comes from, if any
    if kept is not None:  # a sung render: restyle its accompaniment, keep its voice
        audio_path = kept[0]
        source = kept[0].parent
    elif Path(audio_path).is_dir():  # a render folder without a voice: its song
        if not (Path(audio_path) / folder.SONG_WAV).is_file():
            raise InputError(f"{audio_path}: a folder without a song in it (give an audio file or a render folder)")
        audio_path = Path(audio_path) / folder.SONG_WAV
        source = audio_path.parent
    elif Path(audio_path).name in (folder.SONG_WAV, folder.SONG_FLAC):
        source = Path(audio_path).parent
    codec, model = load_models(codec, model)
    audio = _read_audio(audio_path, codec)
    plan = _source_plan(source, audio.shape[-1] / codec.sample_rate)
    if plan is not None:
        title = plan.title
        plan = with_prompt(plan, prompt)
    else:
        plan = analysed_plan(audio, codec.sample_rate, prompt=prompt, title=title)
    latents = _encode(codec, audio)
    total = latents.shape[-1]
    conditioning = prepare_conditioning(plan, model, total, codec.frame_rate, control_groups=options.control_groups)
    timings["analyse_encode"] = time.monotonic() - clock
    clock = time.monotonic()
    canvas = latents.clone()
    filled = torch.zeros(total, dtype=torch.bool)
    windows = []
    if strength > 0:
        windows = fill_span(canvas, filled, 0, total, model=model, conditioning=conditioning, options=options,
                            seed=seed, section="restyle", section_index=0, init=latents, strength=strength)
    timings["diffusion"] = time.monotonic() - clock
    clock = time.monotonic()
    out = decode(codec, canvas, progress=progress)
    timings["decode"] = time.monotonic() - clock
    spans = _clamped_spans(plan, codec.frame_rate, total)
    seams = window_seams(windows)
    stems = vocals_report = None
    if kept is not None:
        out, stems, vocals_report = _with_kept_vocals(out, kept, codec)
    result = finish(plan, out, codec, model, canvas, options=options, seed=seed, spans=spans, windows=windows,
                    seams=seams, timings=timings, stems=stems, vocals_report=vocals_report)
    # where the recording is and what it was: a repaint restyles its section from it again (`_restyled_source`)
    result.report["mode"] = {"name": "restyle", "source": str(Path(audio_path).resolve()),
                             "source_sha256": _file_sha256(Path(audio_path)), "prompt": prompt,
                             "strength": strength}
    return result


def _file_sha256(path: Path) -> str | None:
    """The file's SHA-256 (`composer.originality.index.file_sha256`), None when it cannot be read."""
    from composer.originality.index import file_sha256

    try:
        return file_sha256(path)
    except OSError:
        return None


def _sung_render(path: str | Path) -> tuple[Path, Path, Path] | None:
    """(accompaniment, vocals, dry vocals) when `path` is a sung render folder or its song file."""
    from composer.rendering import folder

    path = Path(path)
    where = path if path.is_dir() else path.parent
    if not (path.is_dir() or path.name in (folder.SONG_WAV, folder.SONG_FLAC)):
        return None
    parts = (where / folder.ACCOMPANIMENT_NAME, where / folder.VOCALS_NAME, where / folder.VOCALS_DRY_NAME)
    return parts if all(p.is_file() for p in parts) else None


def _with_kept_vocals(accompaniment: np.ndarray, kept, codec):
    """The restyled accompaniment with the render's own vocal, levelled as a render levels it."""
    from composer.rendering import folder
    from composer.rendering.vocals import Stems
    from composer.voice.mix import lu_difference, mix, vocal_gain

    _, wet_path, dry_path = kept
    length = accompaniment.shape[-1]

    def mono(path):
        audio = _read_audio(path, codec).mean(axis=0)
        return np.pad(audio, (0, max(0, length - audio.shape[0])))[:length].astype(np.float32)

    wet, dry = mono(wet_path), mono(dry_path)
    whole = [(0.0, length / codec.sample_rate)]
    level = vocal_gain(wet, accompaniment, whole, codec.sample_rate)
    wet, dry = wet * level, dry * level
    try:  # how the render sang it (a repaint of the restyled song re-sings a section the same way)
        source = folder.read_report(wet_path.parent)
    except InputError:
        source = {}
    sung = dict(source.get("vocals") or {})
    # the kept stems are the sung voice at the render's level and gain: a voice re-sung for the
    # restyled song is brought to this level (the restyle's own gain is applied after it)
    sung_at = float(sung.get("level_gain") or 1.0) * float(source.get("gain") or 1.0)
    for name in ("lu_above_accompaniment", "measured_over", "kept_from"):
        sung.pop(name, None)
    report = {**sung, "kept_from": str(wet_path.parent), "level_gain": round(level * sung_at, 6),
              "lu_above_accompaniment": lu_difference(wet, accompaniment, whole, codec.sample_rate),
              "measured_over": "the whole song"}
    return mix(accompaniment, wet), Stems(accompaniment, wet, dry), report


def _clamped_spans(plan: SongPlan, frame_rate: float, total: int) -> list[tuple[int, int]]:
    spans = section_frames(plan, frame_rate)
    return [(min(a, total), min(b, total)) for a, b in spans[:-1]] + [(min(spans[-1][0], total), total)]


# --- interpolate ------------------------------------------------------------------
MAX_INTERPOLATIONS = 64  # songs one interpolation makes


def slerp(a: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:
    """Spherical interpolation between two noise tensors (keeps their norm statistics)."""
    a_flat, b_flat = a.flatten(), b.flatten()
    cos = torch.dot(a_flat, b_flat) / (a_flat.norm() * b_flat.norm() + 1e-12)
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    if float(omega) < 1e-4:
        return (1 - alpha) * a + alpha * b
    return (torch.sin((1 - alpha) * omega) * a + torch.sin(alpha * omega) * b) / torch.sin(omega)


def check_count(count: int) -> None:
    """InputError naming --count unless one interpolation can make `count` songs."""
    if not 2 <= count <= MAX_INTERPOLATIONS:
        raise InputError(f"--count: {count} is outside 2..{MAX_INTERPOLATIONS}")


def interpolate(path_a: str | Path, path_b: str | Path, *, count: int = 5, seed: int = 0, codec=None, model=None,
                options: RenderOptions | None = None, progress: bool = True) -> list[Render]:
    """`count` songs from A to B: both inverted to noise window by window (the flow ODE
    run backwards), noise slerped and conditioning interpolated, then sampled again. Each
    window is inverted as it will be sampled: continuing the frames it shares with the window
    before (its input's own latents there), so its noise expects what it meets at the join.
    Every song is held until the last is made; `interpolations` gives each as it is made."""
    return list(interpolations(path_a, path_b, count=count, seed=seed, codec=codec, model=model, options=options,
                               progress=progress))


def interpolations(path_a: str | Path, path_b: str | Path, *, count: int = 5, seed: int = 0, codec=None, model=None,
                   options: RenderOptions | None = None, progress: bool = True) -> Iterator[Render]:
    """`interpolate`'s songs one at a time, A first, each as soon as it is made (the caller
    saves it and lets it go: a long set is neither held whole nor lost whole)."""
    from diffusion.sampling import invert, shifted_timesteps

    check_count(count)
    options = replace(options or RenderOptions(), control_groups=ANALYSIS_GROUPS)
    codec, model = load_models(codec, model)
    audio_a, audio_b = _read_audio(path_a, codec), _read_audio(path_b, codec)
    # both are cut to the shorter one's length before they are analysed: the end songs' plans,
    # MIDI and lead sheets describe what is made (they described the whole longer input)
    shorter = min(audio_a.shape[-1], audio_b.shape[-1])
    cut = None
    if max(audio_a.shape[-1], audio_b.shape[-1]) - shorter > codec.sample_rate:  # more than a second apart
        longer = path_a if audio_a.shape[-1] > shorter else path_b
        log.warning("interpolate: %s is cut to %.1f s, the length of the shorter input", longer,
                    shorter / codec.sample_rate)
        cut = {"input": str(longer), "from_seconds": round(max(audio_a.shape[-1], audio_b.shape[-1])
                                                            / codec.sample_rate, 3),
               "to_seconds": round(shorter / codec.sample_rate, 3)}
    audio_a, audio_b = audio_a[..., :shorter], audio_b[..., :shorter]
    plan_a = analysed_plan(audio_a, codec.sample_rate, title=Path(path_a).stem)
    plan_b = analysed_plan(audio_b, codec.sample_rate, title=Path(path_b).stem)
    z_a, z_b = _encode(codec, audio_a), _encode(codec, audio_b)
    total = min(z_a.shape[-1], z_b.shape[-1])
    z_a, z_b = z_a[:, :total], z_b[:, :total]
    cond_a = prepare_conditioning(plan_a, model, total, codec.frame_rate, control_groups=ANALYSIS_GROUPS)
    cond_b = prepare_conditioning(plan_b, model, total, codec.frame_rate, control_groups=ANALYSIS_GROUPS)
    positions = window_positions(0, total, total, model.config.window_frames, overlap_frames(options, model))
    ascending = shifted_timesteps(options.steps).flip(0)

    def inverted(latents, conditioning) -> list[torch.Tensor]:
        noises = []
        for index, slot in enumerate(positions):
            cond = conditioning.window_cond(WindowContext(slot, 0, slice(slot.start, slot.end)))
            if index > 0:  # as the window will be sampled: continuing the frames it shares with the one before
                known = torch.zeros(slot.end - slot.start, dtype=torch.bool)
                known[: max(0, positions[index - 1].end - slot.start)] = True
                cond["known"] = (latents[:, slot.start: slot.end] * known)[None]
                cond["mask"] = known.float()[None, None]
            with conv_backend.scope():
                noises.append(invert(model, latents[:, slot.start: slot.end][None], ascending, cond=cond,
                                     guidance=None, group_names=model.group_names)[0])
        return noises

    noise_a, noise_b = inverted(z_a, cond_a), inverted(z_b, cond_b)
    for k, alpha in enumerate(np.linspace(0.0, 1.0, count)):
        conditioning = _mix_conditioning(cond_a, cond_b, float(alpha))
        canvas = torch.zeros_like(z_a)
        filled = torch.zeros(total, dtype=torch.bool)
        clock = time.monotonic()
        windows = fill_span(canvas, filled, 0, total, model=model, conditioning=conditioning,
                            options=replace(options, guidance=1.0), seed=seed, section=f"mix{k}", section_index=0,
                            initial_noise=lambda i, w, a=float(alpha): slerp(noise_a[i], noise_b[i], a))
        diffusion_seconds = time.monotonic() - clock
        clock = time.monotonic()
        audio = decode(codec, canvas, progress=False)
        # the plan of what was made, analysed (an end is its input's): a song between two others has
        # neither's tempo or key for sure, and its plan.json, MIDI and lead sheet describe it
        plan = plan_a if alpha == 0.0 else plan_b if alpha == 1.0 else analysed_plan(
            audio, codec.sample_rate, title=f"{Path(path_a).stem} to {Path(path_b).stem} ({k + 1} of {count})")
        if 0.0 < alpha < 1.0:
            plan.tags = {**(plan_a if alpha < 0.5 else plan_b).tags, **plan.tags}
        seams = window_seams(windows)
        result = finish(plan, audio, codec, model, canvas, options=replace(options, evaluate=False), seed=seed,
                        spans=_clamped_spans(plan, codec.frame_rate, total), windows=windows, seams=seams,
                        timings={"diffusion": diffusion_seconds, "decode": time.monotonic() - clock})
        result.report["mode"] = {"name": "interpolate", "a": str(path_a), "b": str(path_b), "alpha": float(alpha),
                                 "index": k}
        if cut is not None:  # the report says what the log said: the longer input was not used whole
            result.report["mode"]["cut"] = cut
        yield result


def _mix_conditioning(a, b, alpha: float):
    mixed = replace(a)
    mixed.controls = (1 - alpha) * a.controls + alpha * b.controls
    mixed.text = (1 - alpha) * a.text + alpha * b.text
    mixed.tags = a.tags if alpha < 0.5 else b.tags
    return mixed


# --- repaint ------------------------------------------------------------------------
def repaint(out_dir: str | Path, section: str, *, seed: int | None = None, codec=None, model=None,
            progress: bool = True) -> Render:
    """Re-render (and re-sing) one section of a render directory; every other sample stays
    bit-identical (outside the decoder's reach and, for the voice, the room's echo)."""
    from composer.rendering import folder

    with folder.lock_output(out_dir) as out:
        folder.recover(out)  # what a repaint killed while it swapped the song in left beside it
        return _repaint(out_dir, section, seed=seed, codec=codec, model=model, progress=progress)


def _check_plan_is_the_rendered_one(done, spans: list[tuple[int, int]], total: int, codec) -> None:
    """InputError naming plan.json when its sections no longer start where the render's did (the
    plan was edited after the render: a new tempo once ran repaint out of memory), or when the
    latents do not fit the codec."""
    from composer.rendering import folder

    rendered = done.report.get("sections") or []
    moved = [s for (a, _), s, r in zip(spans, done.plan.sections, rendered)
             if s.name != r.get("name") or abs(a / codec.frame_rate - float(r.get("start", -1))) > 1.5 / codec.frame_rate]
    changed = bool(rendered) and (len(rendered) != len(spans) or bool(moved))  # older reports: no sections
    if changed or spans[-1][0] >= total or done.latents.shape[0] != codec.latent_dim:
        what = (f"section {moved[0].name} starts elsewhere than in the render" if moved
                else "its sections are not the ones the render made")
        raise InputError(f"{done.path / folder.PLAN_NAME}: {what} (the plan was changed after it?); repaint "
                         "needs the plan the song was rendered from, or render the new plan")


def _restyled_source(mode: dict, done, codec, total: int) -> torch.Tensor:
    """The latents a restyled song was made from, for its repaint: the recording it restyled,
    noised again to the restyle's strength (a section repainted from the plan's General MIDI
    guide lost the recording: a 0.3 restyle's section came out as far from it as a full
    re-render). When the recording is gone or changed, the song's own latents stand in."""
    if float(mode.get("strength", 1.0)) <= 0.0:  # (checked to be a number in 0..1 by `_repaint`)
        raise InputError(f"{done.path}: restyled at strength 0, so it is its recording unchanged; restyle it again "
                         "with --strength above 0 to repaint it")
    source = Path(str(mode.get("source") or ""))
    try:
        # the same recording: its bytes as restyled (a song of the same length put at that path since would
        # pass a length check); a report from before the hash was kept is trusted on the length alone
        same = source.is_file() and mode.get("source_sha256") in (None, _file_sha256(source))
        if same:
            latents = _encode(codec, _read_audio(source, codec))
            if latents.shape[-1] == total:
                return latents
    except InputError:
        pass
    log.warning("%s: the recording it restyled (%s) is gone or changed; the section is restyled again from this "
                "song's own sound", done.path, source)
    return done.latents


def _repaint(out_dir, section, *, seed, codec, model, progress) -> Render:
    from composer.rendering import folder
    from composer.rendering.vocals import add_vocals, from_pcm, sing_song, song_controls
    from composer.voice.mix import REVERB_SECONDS

    done = folder.load_render(out_dir)
    plan, report = done.plan, done.report
    plan.section(section)  # names the section or raises PlanError listing the known ones
    if (report.get("mode") or {}).get("name") == "loop":  # one section whose end joins its start
        mode = report["mode"]
        raise InputError(f"{out_dir}: a loop is one section, joined end to start; make another with "
                         f"`composer loop {mode.get('prompt', 'PROMPT')!r} --bars {mode.get('bars', 'N')} --seed "
                         f"{int(report.get('seed', 0)) + 1} -o {out_dir} --overwrite`")
    if model is None and (report.get("persona") or {}).get("persona"):
        codec, model = _persona_models(report["persona"], codec)
    codec, model = load_models(codec, model)
    _check_identity(report, codec, model)
    try:  # a report.json edited by hand: one line naming it, before any work
        render_seed = int(report.get("seed", 0))
        options = RenderOptions.from_report(report)
        options.check()
        mode = report.get("mode") or {}
        if mode.get("name") == "restyle":  # made from a recording at its strength: repainted so
            strength = float(mode.get("strength", options.from_guide))
            if not 0.0 <= strength <= 1.0:  # nan too
                raise ValueError(f"restyle strength {strength} is outside 0..1")
            options = replace(options, from_guide=strength)
    except (TypeError, ValueError, AttributeError, InputError) as error:
        raise InputError(f"{done.path / folder.REPORT_NAME}: its render settings cannot be read ({error}); "
                         "render the song again") from None
    seed = (render_seed + 1) % 2 ** 63 if seed is None else seed  # within --seed's own range
    total = done.latents.shape[-1]
    # a restyled or interpolated song's plan is estimated in whole bars, so it rarely ends where
    # its latents do: its last section ends with the song (it crashed, or never finished)
    spans = _clamped_spans(plan, codec.frame_rate, total)
    _check_plan_is_the_rendered_one(done, spans, total, codec)
    old, rate = folder.read_song_pcm(done.path)
    if old.shape[0] != total * codec.hop_length:
        raise InputError(f"{done.path / folder.SONG_WAV}: {old.shape[0] / rate:.2f} s long, but the render made "
                         f"{total * codec.hop_length / codec.sample_rate:.2f} s (cut or replaced?); render the song again")
    # the section and every section that repeats it: a chorus repainted is the new chorus everywhere
    # (repeats stay identical to it, as the render made them); the other sections keep every sample
    repeats = plan.section(section).repeat_of
    if repeats:
        raise InputError(f"--section {section}: repeats {repeats}; repaint {repeats} (the sections that repeat it "
                         f"follow), or take {section}'s repeat_of out of plan.json and render the song again")
    targets = [section]
    for s in plan.sections:  # every section that repeats it, directly or through another repeat
        if s.repeat_of in targets and s.name not in targets:
            targets.append(s.name)
    sung = options.vocals and (done.path / folder.VOCALS_NAME).is_file()
    vocal = None
    if sung:
        options = replace(options, vocal_seeds={**(options.vocal_seeds or {}), **{t: seed for t in targets}})
        vocal = sing_song(plan, options, seed=render_seed, sample_rate=codec.sample_rate,
                          samples=total * codec.hop_length)
    conditioning = prepare_conditioning(plan, model, total, codec.frame_rate, control_groups=options.control_groups,
                                        controls_array=song_controls(plan, options, codec.frame_rate, total))
    clock = time.monotonic()
    from composer.rendering.guide import guide_latents

    if mode.get("name") == "restyle":  # made from a recording, not from the plan's guide: again so
        guide = _restyled_source(mode, done, codec, total)
    else:
        guide = guide_latents(plan, codec, options, total)
    canvas, windows, _ = render_latents(plan, model, conditioning, spans, options=options, seed=seed,
                                        progress=progress, canvas=done.latents, only=targets, guide=guide)
    diffusion_seconds = time.monotonic() - clock
    decoded = decode(codec, canvas)
    names = [s.name for s in plan.sections]
    # the latents change only inside the sections (a repeat's joins are remade inside it); the audio
    # is taken as far as the decoder reaches, and meets the kept audio in `_splice`'s crossfade
    margin = codec.receptive_frames + 1
    ranges = []
    for name in targets:
        start, end = spans[names.index(name)]
        ranges.append((max(0, (start - margin) * codec.hop_length),
                       min(old.shape[0], (end + margin) * codec.hop_length), start, end))
    new_report = dict(report)
    stems_pcm = {}
    if vocal is not None:
        # the song keeps its balance: the voice at the level the render gave it
        mixed, stems, _, _ = add_vocals(decoded, vocal, plan, options, seed=render_seed,
                                        level=float(report["vocals"]["level_gain"]), gain=done.gain)
        new_report["vocals"] = {**report["vocals"], "section_seeds": dict(options.vocal_seeds)}
        # the voice changes from its first breath to the end of its echo
        ranges = [(min(lo, max(0, int((start / codec.frame_rate - 0.5) * rate))),
                   max(hi, min(old.shape[0], int((end / codec.frame_rate + 0.5 + REVERB_SECONDS) * rate))), start, end)
                  for lo, hi, start, end in ranges]
        for name, pcm in ((folder.ACCOMPANIMENT_NAME, stems.accompaniment),
                          (folder.VOCALS_NAME, stems.vocals[None]), (folder.VOCALS_DRY_NAME, stems.vocals_dry[None])):
            stems_pcm[name] = _splice(folder.read_pcm(done.path / name)[0], pcm, ranges)
        new_audio = mixed  # at the song's gain, clipped
    elif sung:  # a restyled sung render: its voice is kept, not sung from the plan
        kept = from_pcm(folder.read_pcm(done.path / folder.VOCALS_NAME)[0].T)
        backing = np.clip(decoded * done.gain, -1.0, 1.0)
        stems_pcm[folder.ACCOMPANIMENT_NAME] = _splice(folder.read_pcm(done.path / folder.ACCOMPANIMENT_NAME)[0],
                                                       backing, ranges)
        n = min(decoded.shape[-1], kept.shape[-1])
        new_audio = np.clip(decoded * done.gain, -1.0, 1.0)
        new_audio[:, :n] = np.clip(decoded[:, :n] * done.gain + kept[:, :n], -1.0, 1.0)
    else:
        new_audio = np.clip(decoded * done.gain, -1.0, 1.0)
    spliced = _splice(old, new_audio, ranges)
    audio = from_pcm(spliced.T)
    # what the report measured is measured again: it describes the song as it now sounds
    if "loudness_lufs" in report:
        from composer.rendering.loudness import integrated_loudness

        new_report["loudness_lufs"] = round(integrated_loudness(audio, rate), 2)
    picture, measured = done.path / folder.EVALUATION_NAME, None
    if report.get("metrics") is not None or picture.is_file():  # measured once, for the report and the picture
        from composer.rendering.renderer import evaluate_into

        new_report["timings"] = dict(report.get("timings") or {})
        measured = evaluate_into(new_report, audio, rate, plan)
    result = Render(audio=audio, sample_rate=rate, plan=plan, report=new_report, latents=canvas, gain=done.gain)
    history = list(report.get("repaints", []))
    history.append({"section": section, "seed": seed, "samples": list(ranges[0][:2]),
                    **({"repeats": targets[1:], "repeat_samples": [[lo, hi] for lo, hi, _, _ in ranges[1:]]}
                       if len(targets) > 1 else {}),
                    "diffusion_seconds": round(diffusion_seconds, 3)})
    result.report["repaints"] = history
    folder.write_repainted(done.path, result, spliced, stems=stems_pcm)
    if measured is not None and picture.is_file():  # `composer evaluate` drew the song before: draw it again
        from composer.evaluate.folders import _plot

        _plot(picture, measured, plan)
    return result


SPLICE_FADE = 1024  # samples (43 ms at 24 kHz) over which a repaint's audio meets the kept audio


def _splice(old: np.ndarray, new: np.ndarray, ranges: list[tuple]) -> np.ndarray:
    """16-bit `old` `[samples, channels]` with the samples of each (lo, hi, ...) of `ranges` from
    `new` `[channels, samples]` (16-bit, or float converted as the render's own files were: `to_pcm`).

    Each range meets the kept audio in a raised-cosine crossfade of `SPLICE_FADE` samples at its
    edges, inside the range: the spectral decoder carries its phase through the whole song, so
    audio decoded after a changed latent has the old magnitudes but not the old phase, and a
    cut back to the old samples clicked. The weights sum to one, so the stems still add up to
    the song."""
    spliced = old.copy()
    for lo, hi, *_ in ranges:
        part = new[..., lo:hi]
        part = (part if part.dtype == np.int16 else to_pcm(part)).T.astype(np.float64)  # [samples, channels]
        kept = old[lo:hi].astype(np.float64)
        fade = min(SPLICE_FADE, (hi - lo) // 4)
        weight = np.ones(hi - lo)  # the new audio's share
        if fade > 0:
            ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)
            if lo > 0:
                weight[:fade] = ramp
            if hi < old.shape[0]:
                weight[-fade:] = ramp[::-1]
        mixed = part * weight[:, None] + kept * (1.0 - weight)[:, None]
        spliced[lo:hi] = np.clip(np.round(mixed), -32768, 32767).astype(np.int16)
    return spliced


def _persona_models(made_by: dict, codec):
    """(codec, model) a persona's daily song was rendered with: its model at the report's
    strength, its codec; (codec, None) with a warning when the persona folder is gone."""
    from composer.persona.daily import load_persona, persona_model

    try:
        persona = load_persona(made_by["persona"])
        model = persona_model(persona, made_by.get("strength", 1.0))  # songs from before strengths: the fine-tune
    except InputError as error:
        log.warning("repaint: the song's persona cannot be loaded (%s); using the bundled model", error)
        return codec, None
    return codec or persona.info.get("codec"), model


def _check_identity(report: dict, codec, model) -> None:
    made_with = report.get("provenance", {})
    if made_with.get("model", {}).get("identity") not in (None, model.identity()):
        log.warning("repainting with a different diffusion model than the render used")
    made = made_with.get("codec", {})
    # The stored latents only need the same decoder (a codec whose encoder alone changed decodes
    # them the same); a report from before decoder identities names the whole codec.
    same = (made.get("decoder_identity") in (None, codec.decoder_identity()) if "decoder_identity" in made
            else made.get("identity") in (None, codec.identity()))
    if not same:
        raise InputError("repaint: the codec differs from the one the render used; pass --codec with that one")


# --- loop -----------------------------------------------------------------------------
def loop_plan(prompt: str, bars: int, *, seed: int = 0, lyrics: str | None = None) -> SongPlan:
    """A one-section plan of `bars` bars in the prompt's style (chords from its chorus).

    lyrics: words to sing in the loop (every line of every section, in order, a phrase each,
    on a melody sketched for them); without them it plays the chorus's tune."""
    import random

    import lyrics as lyrics_pkg
    from composer import plan as make_plan
    from structure.planner import lyric_floor, sketch_melody
    from structure.schema import PlanError, check_text

    if not 1 <= bars <= 64:
        raise InputError(f"--bars: {bars} is outside 1..64")
    lines = []
    if lyrics is not None:
        check_text(lyrics, "lyrics")
        try:
            lines = [line for section in lyrics_pkg.parse(lyrics) for line in section.lines]
        except lyrics_pkg.LyricsError as error:
            raise PlanError("lyrics", str(error).removeprefix("lyrics: ")) from None
        if not lines:
            raise PlanError("lyrics", "no line to sing (only tags or blank lines)")
    from structure.prompt import split_prompt

    ignored = sorted({name.lower() for name, _ in split_prompt(prompt)[0]} & {"duration", "form"})
    if ignored:  # a loop is --bars bars of one section
        log.warning("loop: %s in the prompt does not apply to a loop (it is --bars bars of one section)",
                    " and ".join(ignored))
    song = make_plan(prompt, seed=seed, write_lyrics=False)
    source = next((s for s in song.sections if s.kind in ("chorus", "drop", "hook")), song.sections[0])
    chords = [source.chords[i % len(source.chords)] for i in range(bars)]
    bar_beats = song.beats_per_bar
    if lines:
        need = lyric_floor(lines, bar_beats, song.beat_division)
        if bars < need:
            raise InputError(f"--bars: {bars} too few for the {len(lines)} lines of the lyrics: at least {need} "
                             f"(a bar a line, at most {song.beat_division} syllables a beat)")
        melody = sketch_melody("loop", source.kind, chords, lines, song.key, bar_beats,
                               random.Random(f"{seed}:loop:{'/'.join(lines)}"), energy=source.energy,
                               division=song.beat_division)
    else:
        # the chorus's tune, again each time its chords come round (a 16-bar loop of an 8-bar chorus
        # sings it twice, not once and then nothing)
        period = source.bars * bar_beats
        melody = [replace(n, start=n.start + k * period) for k in range(-(-bars // source.bars))
                  for n in source.melody if n.start + k * period + n.duration <= bars * bar_beats]
    loop_section = replace(source, name="loop", bars=bars, chords=chords, melody=melody, lyrics=lines,
                           repeat_of=None, variation=0.0)
    return replace(song, title=f"{song.title} (loop)", sections=[loop_section])


def loop(prompt: str, bars: int, *, seed: int = 0, codec=None, model=None, options: RenderOptions | None = None,
         progress: bool = True, lyrics: str | None = None) -> Render:
    """A loop of `bars` bars whose end joins its start without a seam.

    Rendered left to right; then the last stretch is repainted knowing both the frames
    before it and the loop's first frames after it (the trained "ends" mask), and the
    audio is decoded circularly so the decoder sees the wrap too. lyrics: words the voice
    sings in it (`loop_plan`), its breath and echo wrapped round the loop as the music is.
    """
    from composer.rendering.vocals import will_sing

    options = options or RenderOptions()
    plan = loop_plan(prompt, bars, seed=seed, lyrics=lyrics)  # bad bars, prompt or words: said before the models load
    if will_sing(plan, options):
        from composer.voice.engine import require_speaker
        from composer.voice.voices import get_voice

        require_speaker(get_voice(options.voice).speaker)
    codec, model = load_models(codec, model)
    total = section_frames(plan, codec.frame_rate)[-1][1]
    # at most a third of the loop: a longer overlap (one fast bar) left no stretch to close the ring with
    overlap = max(1, min(overlap_frames(options, model), total // 3))
    clock = time.monotonic()
    ring = total + overlap  # the loop, then its first `overlap` frames again
    conditioning = prepare_conditioning(plan, model, ring, codec.frame_rate, control_groups=options.control_groups,
                                        controls_array=_circular_controls(plan, codec.frame_rate, total, ring,
                                                                          options))
    canvas = torch.zeros(model.config.unet.latent_dim, ring)
    filled = torch.zeros(ring, dtype=torch.bool)
    windows = fill_span(canvas, filled, 0, total, model=model, conditioning=conditioning, options=options,
                        seed=seed, section="loop", section_index=0)
    # close the ring: the head is known after the end; repaint the tail between them
    canvas[:, total:] = canvas[:, :overlap]
    tail = min(total - overlap, max(overlap, model.config.window_frames - 2 * overlap))
    filled[:] = True
    filled[total - tail: total] = False
    windows += fill_span(canvas, filled, total - tail, total, model=model, conditioning=conditioning,
                         options=options, seed=seed, section="loop-close", section_index=0)
    diffusion_seconds = time.monotonic() - clock
    clock = time.monotonic()
    latents = canvas[:, :total]
    context = codec.receptive_frames
    circular = torch.cat([latents[:, total - context:], latents, latents[:, :context]], dim=1)
    audio = decode(codec, circular)[..., context * codec.hop_length: (context + total) * codec.hop_length]
    audio = _to_bar_length(audio, plan, codec.sample_rate)
    seams = window_seams(windows, end=total)
    seams.append({"frame": total, "kind": "section", "section": "loop-wrap"})
    timings = {"diffusion": diffusion_seconds, "decode": time.monotonic() - clock}
    stems = vocals_report = None
    if will_sing(plan, options):
        clock = time.monotonic()
        audio, stems, vocals_report = _sung_loop(audio, plan, options, seed, codec.sample_rate)
        timings["voice"] = time.monotonic() - clock
    result = finish(plan, audio, codec, model, latents, options=replace(options, evaluate=False), seed=seed,
                    spans=[(0, total)], windows=windows, seams=seams, timings=timings, stems=stems,
                    vocals_report=vocals_report)
    result.report["mode"] = {"name": "loop", "prompt": prompt, "bars": bars}
    result.report["loop_seam"] = loop_seam_score(result.audio, result.sample_rate)
    return result


def loop_samples(plan: SongPlan, sample_rate: int) -> int:
    """The loop's exact length in samples: its bars at its tempo (not rounded to latent frames)."""
    return int(round(plan.sections[0].bars * plan.beats_per_bar * 60.0 / plan.tempo_bpm * sample_rate))


def _to_bar_length(audio, plan: SongPlan, sample_rate: int):
    """The decoded loop (whole latent frames) stretched to its exact bar length, as a periodic
    signal (FFT resampling: the wrap stays seamless). A loop synced at the plan's tempo then
    never drifts; the stretch is a few parts in ten thousand (a cent or two)."""
    from scipy.signal import resample

    exact = loop_samples(plan, sample_rate)
    if exact == audio.shape[-1]:
        return audio
    is_tensor = isinstance(audio, torch.Tensor)
    values = audio.numpy() if is_tensor else np.asarray(audio)
    stretched = resample(values.astype(np.float64), exact, axis=-1).astype(values.dtype)
    return torch.from_numpy(stretched) if is_tensor else stretched


def _circular_controls(plan: SongPlan, frame_rate: float, total: int, ring: int,
                       options: RenderOptions | None = None) -> np.ndarray:
    from composer.rendering.vocals import song_controls
    from structure.frame_controls import controls

    sung = song_controls(plan, options, frame_rate, total) if options is not None else None
    base = sung if sung is not None else controls(plan, frame_rate, frames=total)  # the lead rests under the voice
    return np.concatenate([base, base[: ring - total]], axis=0)


def _sung_loop(accompaniment: np.ndarray, plan: SongPlan, options: RenderOptions, seed: int, rate: int):
    """The loop with its words sung: the voice's breath and echo past the loop's end are
    wrapped round to its start (the room is the steady state of the loop played again and
    again), so the wrap stays seamless. (mix, float stems, the report's "vocals" block)."""
    from composer.rendering.vocals import Stems, sing_song, vocals_report
    from composer.seeds import derived_seed
    from composer.voice.mix import lu_difference, mix, ring_reverb, vocal_gain

    n = accompaniment.shape[-1]
    # what is sung past the end sounds at the start, and the first word's lead-in at the end (it was
    # cut: the voice began at full level on the loop's first sample, a click at every wrap)
    vocal = sing_song(plan, options, seed=seed, sample_rate=rate, samples=n, wrap=True)
    dry = vocal.audio
    wet = ring_reverb(dry, rate, seed=derived_seed(seed, "room"))
    spans = vocal.sung_spans
    level = vocal_gain(wet, accompaniment, spans, rate)
    wet, dry = wet * level, dry * level
    report = {**vocals_report(vocal, options, level=level, above=lu_difference(wet, accompaniment, spans, rate),
                              measured_over="sung lines"), "wrapped": True}
    return mix(accompaniment, wet), Stems(accompaniment, wet, dry), report


def loop_seam_score(audio: np.ndarray, sample_rate: int) -> dict:
    """Log-mel jump at the wrap point vs. the median jump elsewhere (1.0 = no seam)."""
    import librosa

    twice = np.concatenate([audio[0], audio[0]])
    hop = 256
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=twice, sr=sample_rate, hop_length=hop, n_mels=64))
    jumps = np.abs(np.diff(mel, axis=1)).mean(axis=0)
    wrap = int(round(audio.shape[-1] / hop))
    at_wrap = float(jumps[max(0, wrap - 2): wrap + 2].max())
    return {"wrap_jump": at_wrap, "median_jump": float(np.median(jumps)),
            "ratio": at_wrap / max(1e-9, float(np.median(jumps)))}


__all__ = ["restyle", "interpolate", "repaint", "loop", "slerp", "analysed_plan"]
