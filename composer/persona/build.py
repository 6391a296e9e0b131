"""`composer persona build ARCHIVE -o PERSONA_DIR`: learn an artist from their archive.

Steps, each written atomically and recorded in `PERSONA_DIR/state.json`, so a run
killed at any point resumes where it stopped (the fine-tune resumes from its last
checkpoint):

1. check: licence and consent of every file (`composer data check`); refused files
   are named in the card and never read again;
2. analysis: tempo, key, meter, chords and sections for every accepted song whose
   labels are missing (`composer data analyze`, in local processes or as Ray tasks),
   written into `PERSONA_DIR/analysis/`: the archive is only read;
3. priors: the distribution of every metadata field, of tempo and key given mood,
   meter, form and section lengths (`priors.json`);
4. lyrics: a trigram lyric model of the archive's lyrics (`lyrics.json`), measured
   on held-out songs against the same model fitted to the base writer's lines;
5. model: a fine-tune of the diffusion model on the archive's audio (`model/`, with
   its originality index of the archive);
6. the card (`PERSONA.md`, `persona.json`).

Every run checks whether the archive changed since its check (metadata.jsonl, withdrawals, the
files' sizes and times): when it has, the check runs again, and what the persona learnt from
the archive as it was is learnt again (the fine-tune from its start when the accepted files
changed).

Memory: the archive is read a row at a time (metadata, lyrics); audio is read by the
analysis (one file per worker) and by training (its latent cache).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from pathlib import Path

from composer.data.audio import write_text_atomic
from composer.errors import InputError

log = logging.getLogger(__name__)

PERSONA_FORMAT = 1
STEPS = ("check", "analysis", "priors", "lyrics", "model", "card")
HELD_OUT_SHARE = 0.2  # songs whose lyrics measure the lyric model (never trained on)


def _state(out: Path) -> dict:
    path = out / "state.json"
    return json.loads(path.read_text()) if path.is_file() else {"format": PERSONA_FORMAT, "done": {}}


def _save_state(out: Path, state: dict) -> None:
    write_text_atomic(out / "state.json", json.dumps(state, indent=1) + "\n")


def withdrawn_since(out: str | Path) -> list[str]:
    """The files a persona learnt (its check accepted) whose consent its archive has since
    withdrawn (`composer data revoke`); [] when none, or when the archive is not on this machine."""
    from composer.data.revocations import _normalised, read_revocations

    try:
        state = json.loads((Path(out) / "state.json").read_text())
    except (OSError, ValueError):
        return []
    archive = state.get("archive")
    accepted = ((state.get("done") or {}).get("check") or {}).get("accepted") or []
    if not archive or not Path(archive).is_dir():
        return []
    revoked = read_revocations(archive)
    return [name for name in accepted if _normalised(name) in revoked]


def file_stamps(archive: Path) -> dict[str, str]:
    """Each file the metadata lists: "size:mtime" ("missing" when it is not there), a stat each."""
    from composer.data.metadata import read_metadata, unsafe_file_name

    stamps = {}
    for row in read_metadata(archive):
        if row.problem or unsafe_file_name(row.file_name):
            continue
        try:
            stat = (archive / row.file_name).stat()
            stamps[row.file_name] = f"{stat.st_size}:{stat.st_mtime_ns}"
        except OSError:
            stamps[row.file_name] = "missing"
    return stamps


def archive_fingerprint(archive: Path, stamps: dict[str, str] | None = None) -> str:
    """What the check reads, summed up: metadata.jsonl and the withdrawals as bytes, and the
    `file_stamps` (no audio read)."""
    from composer.data.metadata import METADATA_NAME
    from composer.data.revocations import REVOCATIONS_NAME

    digest = hashlib.sha256()
    for name in (METADATA_NAME, REVOCATIONS_NAME):
        path = archive / name
        digest.update(path.read_bytes() if path.is_file() else b"-")
        digest.update(b"\0")
    for name, stamp in sorted((file_stamps(archive) if stamps is None else stamps).items()):
        digest.update(f"{name}:{stamp}\n".encode())
    return digest.hexdigest()[:20]


def _recheck_if_changed(out: Path, archive: Path, state: dict) -> None:
    """The archive changed since the persona's check (or the persona was checked before checks
    were fingerprinted): check it again, and learn again what was learnt from it as it was.

    - A learnt file refused since for its licence or consent, a new file, or a learnt file whose
      audio was replaced: everything after the check is learnt again (the replaced files analysed
      again), the fine-tune from its start (its checkpoints learnt the old set).
    - Learnt files that can no longer be read (missing, undecodable: a drive not mounted) and no
      other change: the persona is kept as it was learnt, and said so; nothing is thrown away.
    - The same files with other metadata (a mood, lyrics): the priors and lyrics are learnt again;
      a finished fine-tune is kept, a half-done one starts again (its tags are the old metadata's).
    A malformed metadata line stops the build, changing nothing: the consent it gives cannot be read."""
    import shutil

    from composer.data.datasets import allowed_licence_set, check_dataset, withdrawal
    from composer.data.labelling import forget_labels
    from composer.data.metadata import read_metadata, row_problems
    from composer.data.revocations import read_revocations

    check = state["done"].get("check")
    if check is None:
        return
    stamps = file_stamps(archive)
    fingerprint = archive_fingerprint(archive, stamps)
    if check.get("fingerprint") == fingerprint:
        return
    rows = read_metadata(archive)
    broken = [str(row.line) for row in rows if row.problem]
    if broken:
        raise InputError(f"{archive / 'metadata.jsonl'}: line(s) {', '.join(broken[:5])} are malformed, so the "
                         "consent they give cannot be read; fix them and build again (the persona is kept as it is)")
    report = check_dataset(archive)
    old, new = set(check.get("accepted") or ()), set(report.accepted)
    listed = {row.file_name: row for row in rows}
    allowed, revoked = allowed_licence_set(None), read_revocations(archive)
    refused = sorted(f for f in old - new if f in listed and (withdrawal(listed[f], revoked)
                                                              or row_problems(listed[f], allowed)))
    unreadable, added = sorted(old - new - set(refused)), sorted(new - old)
    learnt = check.get("stamps") or {}
    replaced = sorted(f for f in old & new if f in learnt and learnt[f] != stamps.get(f))

    def some(names):
        return ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")

    if unreadable and not (refused or added or replaced):
        log.warning("persona %s: %d file(s) it learnt can no longer be read (%s: missing or not audio); it is kept "
                    "as it was learnt (build a new persona to learn the archive without them)", out, len(unreadable),
                    some(unreadable))
        return
    if not report.accepted:
        raise InputError(f"{archive}: no file may be learnt (licence or consent); see `composer data check` "
                         "(the persona is kept as it is)")
    check.update(accepted=report.accepted, refused=[str(p) for p in report.refused],
                 refused_files=report.refused_files, consents=report.consents,
                 fingerprint=fingerprint, stamps={f: stamps.get(f) for f in report.accepted})
    if refused or added or replaced or unreadable:
        said = [f"{len(names)} {what}: {some(names)}" for what, names in (
            ("refused since for their licence or consent", refused), ("new", added),
            ("with other audio", replaced), ("no longer readable", unreadable)) if names]
        log.warning("persona %s: the archive changed since its check (%s); learning it again%s", out, "; ".join(said),
                    ", the fine-tune from its start" if "model" in state["done"] or (out / "model").exists() else "")
        forget_labels(analysis_folder(out), replaced)  # analysed again
        state["done"] = {"check": check}
        if (out / "model").exists():
            shutil.rmtree(out / "model")
    else:
        finished = "model" in state["done"]
        log.warning("persona %s: the archive's metadata changed since its check (the same files); learning its "
                    "priors and lyrics again%s", out, " (the fine-tune is kept, with the tags it learnt)" if finished
                    else ", and its fine-tune from its start (it had begun with the old metadata's tags)")
        state["done"] = {k: v for k, v in state["done"].items() if k in ("check", "analysis", "model")}
        if not finished and (out / "model").exists():
            shutil.rmtree(out / "model")
    for name in ("persona.json", "PERSONA.md"):
        (out / name).unlink(missing_ok=True)  # not a persona until it is built again
    _save_state(out, state)


def _forget_withdrawn(out: Path, state: dict) -> None:
    """A persona that learnt a file whose consent was since withdrawn is built again without it:
    every step from the check on, the fine-tune from its start (its checkpoints learnt the file)."""
    import shutil

    withdrawn = withdrawn_since(out)
    if not withdrawn:
        return
    log.warning("persona %s: consent was withdrawn for %d file(s) it learnt (%s); building it again without them",
                out, len(withdrawn), ", ".join(withdrawn[:3]) + (" ..." if len(withdrawn) > 3 else ""))
    state["done"] = {}
    for name in ("persona.json", "PERSONA.md"):
        (out / name).unlink(missing_ok=True)  # not a persona until it is built again
    if (out / "model").exists():
        shutil.rmtree(out / "model")
    _save_state(out, state)


def _kept_path(state: dict, key: str, given: str | None, flag: str, *, begun: bool) -> str | None:
    """The resolved path `flag` gives, recorded in `state[key]`; without it, the one recorded
    before (None: the bundled model). A different one once the fine-tune has begun: InputError."""
    if key not in state and key == "init" and "model" in state["done"]:  # a persona built before init was kept
        recorded = state["done"]["model"].get("init")
        state[key] = None if recorded in (None, "bundled") else str(Path(recorded).resolve())
    stored = state.get(key)
    if given is None:
        state[key] = stored
        return stored
    resolved = str(Path(given).resolve())
    if key == "init":
        from composer.models import bundled_model_path

        if resolved == str(bundled_model_path().resolve()):  # the bundled one named by its path: the same
            resolved = None
    if begun and key in state and resolved != stored:
        raise InputError(f"{flag} {given}: this persona's fine-tune began with {stored or 'the bundled one'}; "
                         f"rerun without {flag}, or build a new persona in another folder")
    state[key] = resolved
    return resolved


def _claim(out: Path, archive: Path) -> None:
    """The output folder must be new, empty, or a persona of this archive (to resume)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"-o {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        state_path = out / "state.json"
        if not state_path.is_file():
            raise InputError(f"-o {out}: a folder that is not a persona; give a new or empty folder")
        state = json.loads(state_path.read_text())
        if state.get("archive") and state["archive"] != str(archive.resolve()):
            raise InputError(f"-o {out}: the persona of another archive ({state['archive']})")
    out.mkdir(parents=True, exist_ok=True)


def analysis_folder(out: str | Path) -> Path:
    """Where a persona's analysis of its archive is written (`analyze_dataset(into=)`)."""
    return Path(out) / "analysis"


def archive_songs(archive: str | Path, accepted: list[str], labels: str | Path | None = None) -> list[dict]:
    """The accepted rows' fields with their labels (the archive's own, or those an analysis wrote
    into `labels`): tempo, key, meter, form and section bars."""
    from composer.data.labelling import read_labels, with_labels
    from composer.data.metadata import read_metadata
    from structure.schema import SongPlan

    archive = Path(archive)
    analysed = read_labels(labels)
    wanted = set(accepted)
    songs = []
    for row in read_metadata(archive):
        if row.problem or row.file_name not in wanted:
            continue
        wanted.discard(row.file_name)  # its first row, the one the check accepted: a row listing it again is refused
        fields = with_labels(dict(row.fields), analysed.get(row.file_name))
        fields["file_name"] = row.file_name
        if fields.get("plan") and (archive / fields["plan"]).is_file():
            plan = SongPlan.from_json((archive / fields["plan"]).read_text())
            fields.setdefault("tempo", plan.tempo_bpm)
            fields.setdefault("key", str(plan.key))
            fields.setdefault("beats_per_bar", plan.beats_per_bar)
            fields.setdefault("beat_division", plan.beat_division)
            fields["form"] = [s.kind for s in plan.sections]
            fields["section_bars"] = [(s.kind, s.bars) for s in plan.sections]
        written = _lyric_form(fields.get("lyrics"))
        if written:  # the artist's own section tags name the form better than the audio analysis guesses it
            fields["form"] = written
        songs.append(fields)
    return songs


def _lyric_form(text) -> list[str] | None:
    """The section kinds of tagged lyrics, in order (a repeated chorus counted each time); None
    when the lyrics are missing, unreadable or carry no section tags."""
    from lyrics import LyricsError, parse
    from lyrics.sections import is_tag

    if not isinstance(text, str) or not text.strip():
        return None
    first = next(line.strip() for line in text.splitlines() if line.strip())
    if not is_tag(first):  # untagged (at least at first): the kinds would be guesses ("Verse 1:" is a tag too)
        return None
    try:
        return [s.kind for s in parse(text)]
    except LyricsError:
        return None


def _held_out(songs: list[dict], seed: int) -> set[str]:
    """The archive's validation split when it has one (the fine-tune never trains on it either),
    else a seeded fifth of the songs: the lyric model is measured on them by a model fitted
    without them (the persona's own lyric model reads every song)."""
    validation = {s["file_name"] for s in songs if s.get("split") == "validation"}
    if validation:
        return validation
    names = sorted(s["file_name"] for s in songs)
    rng = random.Random(f"persona-holdout-{seed}")
    count = max(1, int(round(HELD_OUT_SHARE * len(names)))) if len(names) > 1 else 0
    return set(rng.sample(names, count))


def build_persona(archive: str | Path, out: str | Path, *, steps: int = 300, init: str | None = None,
                  codec: str | None = None, workers: int = 1, ray_address: str | None = None, seed: int = 0,
                  threads: int | None = None, batch_size: int = 16, lr: float = 5e-5,
                  max_minutes: float | None = None, progress: bool = True, command: str = "",
                  stop_after: str | None = None, strength: float | None = None, device: str = "auto") -> dict:
    """Build (or resume) a persona; returns persona.json's contents. `stop_after`: end after
    that step (what a kill at that point leaves; the tests use it). strength: how far its
    renders go from the base model toward the fine-tune (`composer.persona.daily.persona_model`;
    default: the one it was given before, else DEFAULT_STRENGTH); a finished persona is given
    a new one by building it again with it. device: where the fine-tune runs (auto, cpu, cuda,
    cuda:N)."""
    from composer.batch.workers import check_ray_address
    from composer.data.datasets import check_dataset
    from composer.persona.daily import DEFAULT_STRENGTH
    from composer.persona.lyric_model import LyricModel, base_writer_lines
    from composer.persona.priors import Priors

    check_ray_address(ray_address)
    if workers < 1:
        raise InputError(f"--workers: {workers} must be >= 1")
    # the fine-tune's options are checked before any step, as `composer train` checks them: --batch-size 0
    # failed only after the check, analysis, priors and lyrics had run, and --steps 0 gave no fine-tune
    from composer.train.loop import check_training_options

    check_training_options(out, False, steps=steps, batch_size=batch_size, lr=float(lr), max_minutes=max_minutes,
                           threads=threads)
    if strength is not None and not 0.0 <= float(strength) <= 1.0:
        raise InputError(f"--strength {strength}: outside 0..1 (0: the base model, 1: the fine-tune)")
    for flag, given, kind in (("--init", init, "diffusion"), ("--codec", codec, "codec")):
        # a checkpoint folder, checked before the folder is made and the archive read: a wrong path
        # failed only at the fine-tune, after the check, analysis, priors and lyrics had run
        if given is not None and not (Path(given) / "config.json").is_file():
            raise InputError(f"{flag} {given}: not a {kind} checkpoint folder (config.json and model.safetensors)")
    archive, out = Path(archive), Path(out)
    if not (archive / "metadata.jsonl").is_file():
        raise InputError(f"{archive}: not an archive (an audio folder with metadata.jsonl)")
    from composer.train.device import training_device

    training_device(device)  # a device that cannot be used is said before any step, not at the fine-tune
    _claim(out, archive)
    state = _state(out)
    _forget_withdrawn(out, state)
    _recheck_if_changed(out, archive, state)
    if strength is None:  # a rerun keeps the strength the persona was given
        strength = state["done"].get("card", {}).get("strength", DEFAULT_STRENGTH)
    strength = float(strength)
    state["archive"] = str(archive.resolve())
    # The codec and the model fine-tuned from are the persona's: a rerun without --codec or --init
    # keeps the ones given before (daily renders with that codec), and a different one is refused
    # once the fine-tune has begun (its latent cache and checkpoints are of the first).
    fine_tune_begun = "model" in state["done"] or (out / "model").exists()
    codec = _kept_path(state, "codec", codec, "--codec", begun=fine_tune_begun)
    init = _kept_path(state, "init", init, "--init", begun=fine_tune_begun)
    started = time.monotonic()

    def done(step: str, info: dict) -> bool:
        state["done"][step] = info
        _save_state(out, state)
        log.info("persona %s: %s done", out, step)
        return stop_after == step

    if "check" not in state["done"]:
        stamps = file_stamps(archive)  # before the check: a change while it runs is seen next time
        fingerprint = archive_fingerprint(archive, stamps)
        report = check_dataset(archive)
        info = {"accepted": report.accepted, "refused": [str(p) for p in report.refused],
                "refused_files": report.refused_files,
                "consents": report.consents, "fingerprint": fingerprint,
                "stamps": {f: stamps.get(f) for f in report.accepted}}
        if not report.accepted:
            raise InputError(f"{archive}: no file may be learnt (licence or consent); see `composer data check`")
        if done("check", info):
            return state
    accepted = state["done"]["check"]["accepted"]

    if "analysis" not in state["done"]:
        from composer.data.labelling import analyze_dataset

        clock = time.monotonic()
        counts = analyze_dataset(archive, progress=progress, workers=workers, ray_address=ray_address,
                                 only=set(accepted), into=analysis_folder(out))  # the archive is only read
        seconds = time.monotonic() - clock
        counts["seconds"] = round(seconds, 1)
        counts["seconds_per_song"] = round(seconds / max(1, counts["labelled"]), 3) if counts["labelled"] else None
        if done("analysis", counts):
            return state

    songs = archive_songs(archive, accepted, analysis_folder(out))
    held = _held_out(songs, seed)
    if "priors" not in state["done"]:
        priors = Priors.from_songs(songs)
        write_text_atomic(out / "priors.json", json.dumps(priors.to_dict(), indent=1, sort_keys=True) + "\n")
        if done("priors", {"songs": len(songs), "fields": sorted(priors.fields)}):
            return state

    if "lyrics" not in state["done"]:
        from lyrics import parse
        from lyrics.errors import LyricsError
        from lyrics.sections import LyricSection

        def lyric_songs(names):
            parsed = []
            for s in songs:
                if s["file_name"] in names and isinstance(s.get("lyrics"), str) and s["lyrics"].strip():
                    try:
                        parsed.append(parse(s["lyrics"]))
                    except LyricsError as error:  # tags or emoji alone: its sound is learnt, not its words
                        log.warning("%s: lyrics not learnt (%s)", s["file_name"], error)
            return parsed

        # measured on the held-out songs by a model that has not read them; the persona's own
        # model then reads every song (held-out lyrics were never learnt, nor guarded against
        # copying, and an archive whose only words were held out gave an instrumental persona)
        all_names = {s["file_name"] for s in songs}
        measured = LyricModel.train(lyric_songs(all_names - held))
        model = LyricModel.train(lyric_songs(all_names)) if held else measured
        write_text_atomic(out / "lyrics.json", model.to_json() + "\n")
        held_lines = [line for sections in lyric_songs(held) for sec in sections if not sec.repeat_of
                      for line in sec.lines] if measured.unigrams else []
        if not model.unigrams:  # an instrumental archive: the persona's songs are instrumental (daily.draw_song)
            log.warning("%s: the lyrics give no words to learn; the persona's daily songs are instrumental", archive)
        base = LyricModel.train([[LyricSection("verse1", "verse", list(base_writer_lines(seed=seed)))]])
        info = {"songs": model.songs, "held_out_songs": len(lyric_songs(held)) if held_lines else 0,
                "perplexity": round(measured.perplexity(held_lines), 2) if held_lines else None,
                "base_writer_perplexity": round(base.perplexity(held_lines), 2) if held_lines else None,
                "vocabulary": len(model.unigrams), "images": model.images[:12],
                "instrumental": not model.unigrams}
        if done("lyrics", info):
            return state

    if "model" in state["done"]:  # built: a rerun changes only what it can (the strength, the card)
        kept = state["done"]["model"]
        differ = [f"--{k.replace('_', '-')} {v} (built with {kept[k]})" for k, v in
                  (("batch_size", batch_size), ("lr", lr), ("seed", seed)) if k in kept and kept[k] != v]
        if differ:
            log.warning("persona %s: already fine-tuned, so %s change nothing; build a new persona in another "
                        "folder to train it another way", out, ", ".join(differ))
    if "model" not in state["done"]:
        import composer
        from composer.models import bundled_model_path
        from composer.train.diffusion import train_diffusion_command
        from composer.train.state import saved_state

        clock = time.monotonic()
        metrics = train_diffusion_command(
            [str(archive)], codec, str(out / "model"), steps=steps, channels=(), blocks=1, batch_size=batch_size,
            lr=lr, seed=seed, resume=saved_state(out / "model" / "training" / "last") is not None, max_minutes=max_minutes,
            threads=threads, command=command or f"composer persona build {archive} -o {out}",
            init=str(init or bundled_model_path()), unconfident="uncontrolled", device=device,
            only=set(accepted), labels=str(analysis_folder(out)))  # what the check accepted, nothing it refused (an undecodable file, say)
        if done("model", {"steps": metrics.get("step"), "minutes": round((time.monotonic() - clock) / 60, 2),
                          "validation": {k: v for k, v in metrics.items() if k != "step"},
                          "init": init or "bundled", "batch_size": batch_size, "lr": lr, "seed": seed,
                          # what `persona_model` blends with: it must still be that model
                          "init_identity": composer.load_model(init).identity()}):
            return state

    if state["done"].get("card", {}).get("strength") != strength:
        info = _write_card(out, archive, state, songs, held, minutes=(time.monotonic() - started) / 60,
                           strength=strength)
        done("card", info)
    return json.loads((out / "persona.json").read_text())


def _song_seconds(archive: Path, song: dict) -> float | None:
    """A song's length: its `duration` field when that is a number of seconds, else its audio
    file's header; None when neither says."""
    import math

    import soundfile as sf

    value = song.get("duration")
    if not isinstance(value, bool):
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = None
        if seconds is not None and math.isfinite(seconds) and seconds > 0:
            return seconds
    try:
        return float(sf.info(str(archive / song["file_name"])).duration)
    except (RuntimeError, OSError, ValueError, TypeError, KeyError) as error:
        log.warning("%s: length unknown (%s)", song.get("file_name"), error)
        return None


def persona_identity(out: Path) -> str:
    digest = hashlib.sha256()
    for name in ("priors.json", "lyrics.json", "model/model.safetensors"):
        path = out / name
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _write_card(out: Path, archive: Path, state: dict, songs: list[dict], held: set[str], *, minutes: float,
                strength: float) -> dict:
    from composer.data.metadata import consent_kind
    from composer.persona.cli import refused_files

    check, analysis, lyrics = state["done"]["check"], state["done"]["analysis"], state["done"]["lyrics"]
    seconds = [_song_seconds(archive, s) for s in songs]
    hours = sum(x for x in seconds if x is not None) / 3600
    unknown = sum(x is None for x in seconds)
    licences: dict[str, int] = {}
    consents: dict[str, int] = {}
    for song in songs:
        licence = str(song.get("licence", song.get("license", "?")))
        licences[licence] = licences.get(licence, 0) + 1
        kind = str(consent_kind(song.get("consent")))
        consents[kind] = consents.get(kind, 0) + 1
    body = {"format": PERSONA_FORMAT, "identity": persona_identity(out), "archive": str(archive),
            "songs": len(songs), "hours": round(hours, 3), "songs_of_unknown_length": unknown,
            "held_out_songs": sorted(held),
            "licences": licences, "consents": consents, "refused": check["refused"],
            "refused_files": check.get("refused_files") or refused_files(check["refused"]),
            "analysis": analysis, "lyrics": lyrics, "model": state["done"]["model"],
            "codec": state.get("codec"), "strength": strength,
            "demo": any(bool(s.get("demo_persona")) for s in songs)}
    write_text_atomic(out / "persona.json", json.dumps(body, indent=1) + "\n")
    lines = [f"# Persona of {archive.name}" + (" (a DEMO persona: made-up lyrics and metadata)" if body["demo"] else ""),
             "", f"Learnt from {len(songs)} songs ({hours:.2f} h"
             + (f"; {unknown} of unknown length" if unknown else "")
             + f") of `{archive}`; identity `{body['identity']}`.", "",
             "## Rights", "",
             "- licences: " + ", ".join(f"{k} ({v})" for k, v in sorted(licences.items())),
             "- consent: " + ", ".join(f"{k} ({v})" for k, v in sorted(consents.items())),
             f"- refused ({len(check.get('refused_files') or refused_files(check['refused']))} files, never read): "
             + ("; ".join(check["refused"][:20]) or "none"), "",
             "## Analysis", "", f"```\n{json.dumps(analysis, indent=1)}\n```", "",
             "## Lyrics", "",
             f"- trigram model of {lyrics['songs']} songs' lyrics ({lyrics['vocabulary']} words); on "
             f"{lyrics['held_out_songs']} held-out songs perplexity {lyrics['perplexity']} against "
             f"{lyrics['base_writer_perplexity']} for the same model fitted to the base writer",
             f"- recurring images: {', '.join(lyrics['images'])}",
             *(["- the lyrics give no words to learn: the persona's daily songs are instrumental"]
               if lyrics.get("instrumental") else []), "",
             "## Model", "", f"```\n{json.dumps(state['done']['model'], indent=1)}\n```", "",
             f"Daily songs render at strength {strength}: every weight of the base model moved that share "
             "of the way to the fine-tune's (1: the fine-tune, 0: the base model; `composer daily --strength`).",
             "",
             f"Built in {minutes:.1f} minutes (this run)."]
    write_text_atomic(out / "PERSONA.md", "\n".join(lines) + "\n")
    return {"identity": body["identity"], "strength": strength}
