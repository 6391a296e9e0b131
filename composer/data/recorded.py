"""`composer corpus import`: recorded music from Debian packages and user folders, as a dataset.

The free music packages (`PACKAGES`) are found through `dpkg -L`; their audio files
(.ogg, .opus, .mp3, and .ogg members of .pk3 zip archives) are copied unchanged into
`OUT/audio/PACKAGE/...` (libsndfile reads Vorbis and Opus), except MP3, which ffmpeg
converts to FLAC: an MP3 header only estimates the length (from the bitrate), so
`composer data check` would call a whole MP3 truncated. One full decoding pass measures
the duration and refuses undecodable or truncated files. Tracker modules and MIDI files
are not recorded audio and are skipped (and logged).

Each file gets one `metadata.jsonl` row: `file_name`, `source_package`, `title` (from the
tags, else the file name), `licence` (an SPDX id read from the package's machine-readable
`/usr/share/doc/PKG/copyright`: the last `Files:` stanza that matches the file, else the
header; `licence_source` names that file), `attribution` (the stanza's copyright holders),
`consent: "licence-grant"` (the licence is the permission, not an artist's opt-in),
`source: "recorded"`, `duration`, `origin` (the file it came from) and `split`. A few copyright files are free text; a
licence is read from them only when one known statement is found (`free_form_licence`).
Whole packages are held out as the validation split (`DEFAULT_HOLDOUT`), so no track of
a validation package is in training.

User folders (`import_recorded(folders=...)`) take their licence and consent from the
caller. Resumable: a file whose audio and record (`OUT/.records/NAME.json`) both exist is
not imported again; `metadata.jsonl` is rebuilt from every record, sorted by file name.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from composer.data.audio import AudioError, atomic_path, write_text_atomic
from composer.data.metadata import LICENCE_GRANT, consent_kind, write_metadata
from composer.errors import InputError

log = logging.getLogger(__name__)

PACKAGES = ("ufoai-music", "nexuiz-music", "warzone2100-music", "planetblupi-music-ogg", "hyperrogue-music",
            "singularity-music", "asc-music", "drascula-music", "fb-music-high")
# Two packages of different style, about 15% of the accepted hours (electronic game tracks,
# ambient/orchestral pieces); measured in the README.
DEFAULT_HOLDOUT = ("nexuiz-music", "singularity-music")
RECORDED_SUFFIXES = frozenset({".ogg", ".oga", ".opus", ".mp3", ".flac", ".wav"})
ARCHIVE_SUFFIXES = frozenset({".pk3"})
NOT_RECORDED = {".xm": "tracker module", ".mod": "tracker module", ".s3m": "tracker module",
                ".it": "tracker module", ".mid": "MIDI file", ".midi": "MIDI file"}
# Files of a package that are not music: (glob on the path in the package, why).
PACKAGE_SKIPS = {"hyperrogue-music": (("sounds/*", "sound effects, not music"),)}
TRANSCODED = {".mp3": ".flac"}  # source suffix -> the suffix it is stored with
RECORDS = ".records"


# --- copyright files ----------------------------------------------------------
@dataclass(frozen=True)
class Stanza:
    """One `Files:` paragraph of a machine-readable copyright file."""

    patterns: tuple[str, ...]
    licence: str  # the License: short name as written ("GPL-2+", "CC-BY-SA-3.0")
    copyright: str = ""


@dataclass(frozen=True)
class CopyrightFile:
    path: str
    machine_readable: bool
    stanzas: tuple[Stanza, ...] = ()
    header_licence: str | None = None  # the header's License:, or what free text states


def parse_copyright(text: str, path: str = "") -> CopyrightFile:
    """Parse a Debian copyright file (DEP-5 when it says so; else free text, see `free_form_licence`)."""
    paragraphs = _paragraphs(text)
    header = paragraphs[0] if paragraphs else {}
    if not re.search(r"copyright-format|dep-?5", header.get("format", ""), re.IGNORECASE):
        return CopyrightFile(path, False, header_licence=free_form_licence(text))
    stanzas = tuple(Stanza(tuple(p["files"].split()), _first_line(p.get("license", "")),
                           "; ".join(line for line in p.get("copyright", "").splitlines() if line.strip()))
                    for p in paragraphs if "files" in p)
    licence = _first_line(header.get("license", "")) or None
    return CopyrightFile(path, True, stanzas, licence)


def _paragraphs(text: str) -> list[dict[str, str]]:
    """Blank-line separated paragraphs of `Field: value` lines (continuation lines indented)."""
    paragraphs, current, name = [], {}, None
    for line in text.splitlines() + [""]:
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, name = {}, None
        elif line[0] in " \t" and name is not None:
            current[name] += "\n" + line.strip()
        elif ":" in line and line[0] not in " \t":
            key, value = line.split(":", 1)
            name = key.strip().lower()
            current[name] = value.strip()
    return paragraphs


def _first_line(value: str) -> str:
    return value.strip().splitlines()[0].strip() if value.strip() else ""


def path_matches(pattern: str, path: PurePosixPath) -> bool:
    """A DEP-5 `Files:` glob (`*` and `?` also match `/`) against any tail of an installed path.

    Copyright files name paths in the source tree ("music/a.ogg", "base/music/a.ogg"); the
    installed path ends with them ("/usr/share/hyperrogue/music/a.ogg").
    """
    regex = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern))
    parts = path.parts[1:] if path.is_absolute() else path.parts
    return any(regex.fullmatch("/".join(parts[i:])) for i in range(len(parts)))


def licence_for(copyright: CopyrightFile, path: PurePosixPath) -> tuple[str, Stanza | None]:
    """(SPDX licence, the stanza it came from) of one installed file; "unknown" when none is found.

    The last matching `Files:` stanza wins (DEP-5); then the header's licence.
    """
    for stanza in reversed(copyright.stanzas):
        if stanza.licence and any(path_matches(p, path) for p in stanza.patterns):
            return spdx_id(stanza.licence), stanza
    return (spdx_id(copyright.header_licence) if copyright.header_licence else "unknown"), None


_SPDX_NAMES = {"expat": "MIT", "mit": "MIT", "isc": "ISC", "zlib": "Zlib", "cc0": "CC0-1.0",
               "cc0-1.0": "CC0-1.0", "public-domain": "public-domain", "bsd-2-clause": "BSD-2-Clause",
               "bsd-3-clause": "BSD-3-Clause", "apache-2.0": "Apache-2.0", "mpl-2.0": "MPL-2.0",
               "artistic-2.0": "Artistic-2.0", "unlicense": "Unlicense"}


def spdx_id(name: str) -> str:
    """The SPDX id of a Debian short licence name: "GPL-2+" -> "GPL-2.0-or-later",
    "CC-BY-SA-3" -> "CC-BY-SA-3.0", "Expat" -> "MIT"; "GPL-2+ and MIT" -> "GPL-2.0-or-later AND MIT".
    Unknown names ("Drascula-License") come back unchanged."""
    parts = re.split(r"\s+(and|or)\s+", name.strip(), flags=re.IGNORECASE)
    if len(parts) > 1:
        return " ".join(part.upper() if i % 2 else spdx_id(part) for i, part in enumerate(parts))
    text = parts[0]
    gpl = re.fullmatch(r"(A|L)?GPL-?v?(\d)(?:\.(\d))?(\+|-or-later|-only)?", text, re.IGNORECASE)
    if gpl:
        kind, major, minor, later = gpl.groups()
        suffix = "only" if later in (None, "-only") else "or-later"
        return f"{(kind or '').upper()}GPL-{major}.{minor or '0'}-{suffix}"
    cc = re.fullmatch(r"CC-?(BY(?:-NC)?(?:-SA|-ND)?)-?(\d)?(?:\.(\d))?", text, re.IGNORECASE)
    if cc:
        elements, major, minor = cc.groups()
        return f"CC-{elements.upper()}" + (f"-{major}.{minor or '0'}" if major else "")
    return _SPDX_NAMES.get(text.lower(), text)


_CC_ELEMENTS = {"attribution": "BY", "noncommercial": "NC", "non-commercial": "NC", "sharealike": "SA",
                "share-alike": "SA", "noderivs": "ND", "noderivatives": "ND", "no derivatives": "ND"}


def free_form_licence(text: str) -> str | None:
    """The SPDX licence a free-text copyright file states, when exactly one known statement is found.

    Known: "GNU General Public License ... version N ... or (at your option) any later version"
    (or "version N or later"), and the Creative Commons 2.5/3.0 legal code (its "License
    Elements" give the kind, its defined terms the version). Anything else: None (unclear).
    """
    flat = re.sub(r"\s+", " ", text)
    found = set()
    for match in re.finditer(r"GNU (Lesser |Library )?General Public License[^.]{0,80}?version (\d)(?:\.(\d))?"
                             r"(?: of the License)?,? (?:or \(at your option\) any later version|or later)", flat):
        prefix = "L" if match.group(1) else ""
        found.add(f"{prefix}GPL-{match.group(2)}.{match.group(3) or '0'}-or-later")
    elements = re.search(r'"License Elements" means the following high-level license attributes as selected by '
                         r"Licensor and indicated in the title of this License: ([^.]+)\.", flat)
    if elements and "CREATIVE COMMONS" in flat.upper():
        names = [_CC_ELEMENTS.get(e.strip().lower()) for e in elements.group(1).split(",")]
        version = "3.0" if '"Adaptation" means' in flat else "2.5" if '"Derivative Work" means' in flat else None
        if all(names) and version:
            found.add("CC-" + "-".join(names) + f"-{version}")
    return found.pop() if len(found) == 1 else None


# --- finding the files --------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """One audio file to import: a file on disk, or a member of a .pk3 zip."""

    group: str  # the Debian package or the user folder's name
    name: str  # file_name in the dataset: audio/GROUP/...
    path: Path  # the file (for a member: its archive)
    installed: PurePosixPath  # where it sits once installed (a member: beside its archive)
    member: str | None = None


def dpkg_listing(package: str) -> list[Path] | None:
    """The paths `dpkg -L` lists for an installed package; None when it is not installed."""
    if shutil.which("dpkg") is None:
        return None
    result = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return None
    return [Path(line) for line in result.stdout.splitlines() if line.startswith("/")]


def copyright_path(package: str, listing: Iterable[Path]) -> Path:
    """The package's copyright file: the one its listing holds, else /usr/share/doc/PKG/copyright."""
    for path in listing:
        if path.name == "copyright" and path.parent.name == package and path.parent.parent.name == "doc":
            return path
    return Path("/usr/share/doc") / package / "copyright"


def package_sources(package: str, listing: Sequence[Path]) -> tuple[list[Source], list[tuple[str, str]]]:
    """The audio files of one package (sorted by name) and the files skipped, with why.

    Links to a file the package also installs (one track under several folders) are
    imported once, as the file.
    """
    files = sorted(p for p in set(listing) if p.is_file())
    real = {p.resolve() for p in files if not p.is_symlink()}
    found: list[tuple[PurePosixPath, Path, str | None]] = []
    skipped: list[tuple[str, str]] = []
    for path in files:
        suffix = path.suffix.lower()
        if path.is_symlink() and path.resolve() in real:
            continue
        if suffix in RECORDED_SUFFIXES:
            found.append((PurePosixPath(path.as_posix()), path, None))
        elif suffix in ARCHIVE_SUFFIXES:
            members, archive_skips = _archive_members(path)
            found += [(PurePosixPath(path.parent.as_posix()) / m, path, m) for m in members]
            skipped += archive_skips
        elif suffix in NOT_RECORDED:
            skipped.append((str(path), f"{NOT_RECORDED[suffix]}, not recorded audio"))
    kept = []
    for installed, path, member in found:
        reason = next((why for pattern, why in PACKAGE_SKIPS.get(package, ()) if path_matches(pattern, installed)),
                      None)
        if reason:
            skipped.append((str(installed), reason))
        else:
            kept.append((installed, path, member))
    if not kept:
        return [], skipped
    root = PurePosixPath(os.path.commonpath([str(i.parent) for i, _, _ in kept]))
    sources = [Source(package, _output_name(package, i.relative_to(root)), path, i, member)
               for i, path, member in kept]
    return sorted(sources, key=lambda s: s.name), skipped


def _archive_members(path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = sorted(i.filename for i in archive.infolist() if not i.is_dir())
    except (zipfile.BadZipFile, OSError) as error:
        return [], [(str(path), f"not a readable zip archive ({error})")]
    members = [n for n in names if PurePosixPath(n).suffix.lower() in RECORDED_SUFFIXES]
    skipped = [(f"{path}:{n}", f"{NOT_RECORDED[s]}, not recorded audio") for n in names
               if (s := PurePosixPath(n).suffix.lower()) in NOT_RECORDED]
    return members, skipped


def _output_name(group: str, relative: PurePosixPath) -> str:
    suffix = TRANSCODED.get(relative.suffix.lower(), relative.suffix)
    return f"audio/{group}/{relative.with_suffix(suffix).as_posix()}"


def folder_sources(folder: str | os.PathLike) -> list[Source]:
    """The audio files under a user folder (hidden ones skipped), sorted; group = the folder's name."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{folder}: not a folder")
    group = root.resolve().name
    sources = []
    for directory, subfolders, names in os.walk(root):
        subfolders[:] = sorted(s for s in subfolders if not s.startswith("."))
        for name in sorted(names):
            path = Path(directory) / name
            if not name.startswith(".") and path.suffix.lower() in RECORDED_SUFFIXES:
                relative = path.relative_to(root).as_posix()
                sources.append(Source(group, _output_name(group, PurePosixPath(relative)), path,
                                      PurePosixPath(relative)))
    return sorted(sources, key=lambda s: s.name)


# --- importing ----------------------------------------------------------------
@dataclass
class ImportSummary:
    """What `import_recorded` did. `rows`: the whole dataset's rows, sorted by file name."""

    out_dir: str
    rows: list[dict] = field(default_factory=list)
    imported: int = 0
    already: int = 0
    relabelled: int = 0  # imported before with another licence or consent (the new one is taken)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, why)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source, why)
    missing_packages: list[str] = field(default_factory=list)

    def groups(self) -> dict[str, dict]:
        """Per package (or folder): files, seconds, licences and split, in name order."""
        table: dict[str, dict] = {}
        for row in self.rows:
            group = table.setdefault(_group(row), {"files": 0, "seconds": 0.0, "licences": set(), "split": set()})
            group["files"] += 1
            group["seconds"] += row.get("duration", 0.0)
            group["licences"].add(row.get("licence", "?"))
            group["split"].add(row.get("split", "train"))
        return dict(sorted(table.items()))

    def format(self) -> str:
        lines = [f"{'source':24} {'files':>5} {'hours':>6}  split       licence"]
        for name, group in self.groups().items():
            lines.append(f"{name:24} {group['files']:5d} {group['seconds'] / 3600:6.2f}  "
                         f"{'/'.join(sorted(group['split'])):10}  {', '.join(sorted(group['licences']))}")
        hours = {s: sum(r.get("duration", 0.0) for r in self.rows if r.get("split") == s) / 3600
                 for s in ("train", "validation")}
        reasons: dict[str, list[str]] = {}
        for source, why in self.skipped:
            reasons.setdefault(why, []).append(source)
        lines += [f"skipped {len(sources)} file(s), {why}: {sources[0]}" + (" ..." if len(sources) > 1 else "")
                  for why, sources in sorted(reasons.items())]
        lines += [f"failed {source}: {why}" for source, why in self.failed]
        lines += [f"not installed: {name}" for name in self.missing_packages]
        lines.append(f"{self.out_dir}: {len(self.rows)} files ({self.imported} imported now, {self.already} "
                     f"already there{f' ({self.relabelled} relabelled)' if self.relabelled else ''}, {len(self.failed)} failed, {len(self.skipped)} skipped); "
                     f"train {hours['train']:.2f} h, validation {hours['validation']:.2f} h")
        return "\n".join(lines)


def _group(row: dict) -> str:
    return row.get("source_package") or row.get("source_folder") or "?"


def import_recorded(out_dir: str | os.PathLike, *, packages: Sequence[str] | None = None,
                    folders: Sequence[str | os.PathLike] = (), licence: str | None = None,
                    consent: str | None = None, holdout: Iterable[str] | None = None,
                    progress: bool = True) -> ImportSummary:
    """Import packages (default: `PACKAGES` when no folder is given; those installed) and folders.

    licence, consent: for the folders' files (required with folders); consent is "opt-in"
    or "licence-grant". holdout: packages or folders whose files form the validation split
    (default `DEFAULT_HOLDOUT`). Bad files are reported in the summary and skipped; the
    rest finish. Raises InputError for bad options.
    """
    out = Path(out_dir)
    if folders and (not licence or not consent):
        raise InputError("importing a folder needs --licence and --consent (the folder's licence and "
                         "the artist's consent: opt-in, or licence-grant when the licence permits derivatives)")
    if consent is not None and consent_kind(consent) is None:
        raise InputError(f"--consent {consent!r}: use opt-in or {LICENCE_GRANT}")
    if folders:  # what `composer data check` would refuse every file for is said before any is copied
        from composer.data.datasets import allowed_licence_set
        from composer.data.metadata import licence_problem, permits_derivatives

        problem = licence_problem(licence, allowed_licence_set(None))
        if problem:
            raise InputError(f"--licence {licence}: {problem}")
        if consent_kind(consent) == LICENCE_GRANT and not permits_derivatives(licence):
            raise InputError(f"--consent {consent}: a licence grant needs a licence that permits derivative "
                             f"works; {licence} is not one (give opt-in if the artist agreed)")
    if packages is None:
        packages = () if folders else PACKAGES
    holdout = set(DEFAULT_HOLDOUT if holdout is None else holdout)
    summary = ImportSummary(str(out))
    jobs: list[tuple[Source, dict]] = []
    for package in dict.fromkeys(packages):
        listing = dpkg_listing(package)
        if listing is None:
            log.warning("import: %s is not installed (skipped)", package)
            summary.missing_packages.append(package)
            continue
        jobs += _package_jobs(package, listing, summary)
    for folder in folders:
        given = {"source_folder": Path(folder).resolve().name, "licence": licence,
                 "licence_source": "composer corpus import --licence", "consent": consent}
        jobs += [(source, given) for source in folder_sources(folder)]
    jobs = _unique_names(jobs, summary)
    from tqdm import tqdm

    for index, (source, fields) in enumerate(tqdm(jobs, desc="importing", unit="file", disable=not progress), start=1):
        log.info("import [%d/%d] %s", index, len(jobs), source.name)
        _import_one(out, source, fields, summary)
    unknown = holdout - {_group(r) for r in _read_records(out)}
    if unknown and holdout != set(DEFAULT_HOLDOUT):
        log.warning("import: --holdout %s: no such package or folder in %s", ", ".join(sorted(unknown)), out)
    summary.rows = [{**row, "split": "validation" if _group(row) in holdout else "train"}
                    for row in _current_records(out, jobs)]
    out.mkdir(parents=True, exist_ok=True)
    write_metadata(out, summary.rows)
    log.info("import: %d files in %s", len(summary.rows), out)
    return summary


def _unique_names(jobs: list[tuple[Source, dict]], summary: ImportSummary) -> list[tuple[Source, dict]]:
    """The jobs whose file name no earlier job takes ("a.mp3" and "a.flac" both become "a.flac")."""
    first: dict[str, Source] = {}
    kept = []
    for source, fields in jobs:
        if source.name in first:
            message = f"the same file name as {_origin_text(first[source.name])} ({source.name})"
            log.warning("import: %s: %s (skipped)", _origin_text(source), message)
            summary.failed.append((_origin_text(source), message))
            continue
        first[source.name] = source
        kept.append((source, fields))
    return kept


def _origin_text(source: Source) -> str:
    return f"{source.path}:{source.member}" if source.member else str(source.path)


def _package_jobs(package: str, listing: list[Path], summary: ImportSummary) -> list[tuple[Source, dict]]:
    """(source, its licence fields) for every audio file of one installed package."""
    sources, skipped = package_sources(package, listing)
    for what, why in skipped:
        log.info("import: skipped %s (%s)", what, why)
    summary.skipped += skipped
    if not sources:
        log.warning("import: %s has no recorded audio", package)
        return []
    path = copyright_path(package, listing)
    try:
        copyright = parse_copyright(path.read_text(encoding="utf-8", errors="replace"), str(path))
    except OSError as error:
        log.warning("import: %s: cannot read %s (%s); licence unknown", package, path, error)
        copyright = CopyrightFile(str(path), False)
    if not copyright.machine_readable:
        log.warning("import: %s is not machine-readable; licence from its text: %s", path,
                    copyright.header_licence or "unknown")
    jobs = []
    for source in sources:
        spdx, stanza = licence_for(copyright, source.installed)
        fields = {"source_package": package, "licence": spdx, "licence_source": str(path),
                  "consent": LICENCE_GRANT}
        attribution = {"copyright": stanza.copyright if stanza else "",
                       "files": _stanza_label(stanza, copyright, source.installed)}
        jobs.append((source, {**fields, "attribution": attribution}))
    return jobs


def _stanza_label(stanza: Stanza | None, copyright: CopyrightFile, installed: PurePosixPath) -> str:
    """Which part of the copyright file gave the licence: "Files: PATTERN", "header" or "free text"."""
    if stanza is not None:
        return "Files: " + next(p for p in stanza.patterns if path_matches(p, installed))
    return "header" if copyright.machine_readable else "free text"


def _record_path(out: Path, name: str) -> Path:
    return out / RECORDS / f"{name}.json"


def _import_one(out: Path, source: Source, fields: dict, summary: ImportSummary) -> None:
    """Copy (or convert) one file, decode it once, write its record; skip it when already done."""
    target, record_path = out / source.name, _record_path(out, source.name)
    origin = {"path": str(source.path), **({"member": source.member} if source.member else {})}
    if target.is_file() and record_path.is_file():
        record = json.loads(record_path.read_text(encoding="utf-8"))
        updated = {**record, **fields, "origin": origin}  # licence fields follow the current copyright file
        relabelled = [f"{k} {record.get(k)!r} -> {fields[k]!r}" for k in ("licence", "consent")
                      if k in fields and record.get(k) != fields[k]]
        if relabelled:
            log.warning("import: %s was imported before; its %s now", source.name, ", ".join(relabelled))
            summary.relabelled += 1
        if updated != record:
            write_text_atomic(record_path, json.dumps(updated, ensure_ascii=False))
        summary.already += 1
        return
    what = _origin_text(source)
    try:
        with atomic_path(target) as tmp:
            title = _store(source, tmp)
            seconds = _decoded_seconds(tmp, source.name)
    except (AudioError, OSError, zipfile.BadZipFile, KeyError) as error:
        message = str(error)
        log.warning("import: %s: %s (skipped)", what, message)
        summary.failed.append((what, message))
        return
    record = {"file_name": source.name, **{k: v for k, v in fields.items() if k != "attribution"},
              "title": title or _title_from_name(source.name), "source": "recorded",
              "duration": round(seconds, 3), **({"attribution": fields["attribution"]} if "attribution" in fields
                                                else {}), "origin": origin}
    write_text_atomic(record_path, json.dumps(record, ensure_ascii=False))
    summary.imported += 1


def _store(source: Source, tmp: Path) -> str | None:
    """Write the source's audio to `tmp` (a copy, or FLAC converted by ffmpeg); its title tag."""
    if source.installed.suffix.lower() not in TRANSCODED:
        _copy(source, tmp)
        return _title(tmp)
    if source.member is None:
        _transcode(source.path, tmp)
        return _title(source.path)
    staged = tmp.with_name(tmp.name + source.installed.suffix)
    try:
        _copy(source, staged)
        _transcode(staged, tmp)
        return _title(staged)
    finally:
        staged.unlink(missing_ok=True)


def _copy(source: Source, tmp: Path) -> None:
    if source.member is None:
        shutil.copyfile(source.path, tmp)
        return
    with zipfile.ZipFile(source.path) as archive, archive.open(source.member) as member, open(tmp, "wb") as handle:
        shutil.copyfileobj(member, handle, 1 << 20)


def _transcode(source: Path, tmp: Path) -> None:
    """Decode `source` with ffmpeg into 16-bit FLAC at `tmp` (its header then holds the exact length)."""
    if shutil.which("ffmpeg") is None:
        raise AudioError(f"ffmpeg is needed to convert {source.suffix} files to FLAC")
    result = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-protocol_whitelist", "file", "-y",
                             "-i", str(source), "-map", "0:a:0", "-c:a", "flac", "-sample_fmt", "s16",
                             "-f", "flac", str(tmp)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["ffmpeg failed"])[-1]
        raise AudioError(f"cannot convert to FLAC ({reason})")


def _decoded_seconds(path: Path, name: str) -> float:
    """Seconds of audio after decoding the whole file; AudioError when it does not decode."""
    from composer.data.datasets import TRUNCATION_TOLERANCE, scan_audio

    stats = scan_audio(path)
    if stats.error:
        raise AudioError(stats.error.replace(str(path), name))
    if stats.frames == 0:
        raise AudioError("no audio samples")
    if stats.expected_frames and stats.frames < stats.expected_frames - TRUNCATION_TOLERANCE * stats.sample_rate:
        raise AudioError(f"truncated: the header says {stats.expected_frames / stats.sample_rate:.2f} s, "
                         f"only {stats.seconds:.2f} s decode")
    return stats.seconds


def _title(path: Path) -> str | None:
    """The first non-empty title tag (Vorbis comment, ID3, ...), or None."""
    import soundfile as sf

    try:  # libsndfile reads Vorbis comments and ID3's title
        with sf.SoundFile(str(path)) as handle:
            title = handle.title
    except Exception:  # noqa: BLE001 - tags are optional; the file decoded already (through ffmpeg, say)
        return None
    return str(title).strip() or None if title else None


def _title_from_name(name: str) -> str:
    return re.sub(r"[_]+", " ", PurePosixPath(name).stem).strip()


def _current_records(out: Path, jobs: list[tuple[Source, dict]]) -> list[dict]:
    """The records of this run's files, and of every package or folder this run did not import."""
    names, groups = {source.name for source, _ in jobs}, {source.group for source, _ in jobs}
    rows, stale = [], []
    for row in _read_records(out):
        (rows if _group(row) not in groups or row["file_name"] in names else stale).append(row)
    if stale:
        log.warning("import: %d earlier files are no longer in their package or folder (left out of %s): %s",
                    len(stale), "metadata.jsonl", ", ".join(r["file_name"] for r in stale[:3]))
    return rows


def _read_records(out: Path) -> list[dict]:
    """Every record under OUT/.records whose audio exists, sorted by file name."""
    folder = out / RECORDS
    rows = []
    for path in sorted(folder.rglob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            log.warning("import: %s: unreadable record (%s); that file is imported again next time", path, error)
            continue
        if isinstance(record, dict) and (out / str(record.get("file_name", ""))).is_file():
            rows.append(record)
    return sorted(rows, key=lambda r: r["file_name"])
